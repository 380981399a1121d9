//! `cargo xtask`: every check of the workspace behind one command.
//!
//! ```text
//! cargo xtask ci          # everything CI runs, in order, failing fast
//! cargo xtask deps        # only the dependency-isolation check
//! cargo xtask unused-deps # only the check that every declared dependency is used
//! cargo xtask package     # only the packaging check (publish dry run of the libraries)
//! cargo xtask browser     # only the status page in a real browser (installs Chromium, `npm ci`)
//! cargo xtask bench       # the benchmarks, release build (a few minutes); `--smoke`: tiny N
//! cargo xtask mutants     # cargo-mutants on the pure crates (slow; not part of ci)
//! ```
//!
//! Kept deliberately small: `anyhow` and `std::process`, one `match` on the task
//! name, so the xtask itself compiles in a couple of seconds.

// The wall clock ban in clippy.toml is for library code; the xtask times its steps.
#![allow(clippy::disallowed_methods)]

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Crates that must never depend on an async runtime.
const PURE_CRATES: &[&str] = &[
    "supervisor-backoff",
    "supervisor-lifecycle",
    "supervisor-metrics",
];

/// Runtime crates none of the pure crates may pull in.
const RUNTIMES: &[&str] = &["tokio", "tokio-util", "async-std", "smol", "futures", "mio"];

/// What the test step builds and runs (doctests run in their own step).
const TEST_SELECTION: &[&str] = &[
    "--locked",
    "--workspace",
    "--all-features",
    "--lib",
    "--bins",
    "--tests",
    "--examples",
];

/// Metrics adapters: they plug in through `supervisor-metrics` and must never
/// depend on the core. `supervisor-http` is the one adapter that does (it
/// serves the supervisor itself), so it is not listed here.
const ADAPTERS: &[&str] = &["supervisor-prometheus", "supervisor-metrics-facade"];

/// The HTTP stack, which only `supervisor-http` may pull in: not the core,
/// the pure crates or the metrics adapters.
const HTTP_STACK: &[&str] = &["axum", "hyper", "hyper-util", "tower-http"];

fn main() -> Result<()> {
    let task = env::args().nth(1).unwrap_or_else(|| "help".to_owned());
    let root = workspace_root()?;
    env::set_current_dir(&root).with_context(|| format!("cannot enter {}", root.display()))?;
    match task.as_str() {
        "ci" => ci(),
        "deps" => step("dependency isolation", check_dependency_isolation),
        "unused-deps" => step("unused dependencies", check_unused_dependencies),
        "package" => step("packaging", check_packaging),
        "browser" => browser(),
        "mutants" => mutants(),
        "bench" => bench(),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <ci|deps|unused-deps|package|browser|bench [--smoke]|mutants>"
            );
            Ok(())
        }
        other => bail!("unknown task `{other}`; try `cargo xtask help`"),
    }
}

fn ci() -> Result<()> {
    let started = Instant::now();
    // Property tests run many more cases in CI than locally.
    let proptest_cases = env::var("PROPTEST_CASES").unwrap_or_else(|_| "2048".to_owned());

    step("rustfmt", || cargo(&["fmt", "--all", "--", "--check"], &[]))?;
    step("clippy (all targets, all features)", || {
        cargo(
            &[
                "clippy",
                "--locked",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    })?;
    // `backoff` is `no_std` whatever its features; with none it has no
    // dependency at all (the isolation step checks that), and this step and the
    // backoff test step below check that build.
    step("clippy (backoff with no feature)", || {
        cargo(
            &[
                "clippy",
                "--locked",
                "-p",
                "supervisor-backoff",
                "--no-default-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    })?;
    step("unused dependencies", check_unused_dependencies)?;
    step("dependency isolation", check_dependency_isolation)?;
    step(
        "fetch prometheus + promtool (Debian package, unpacked)",
        fetch_prometheus,
    )?;
    step(
        "install chromium (Debian package) + the browser test's npm packages",
        install_browser_tools,
    )?;
    // Runs the browser test too (`tests/tests/browser.rs`, its own binary).
    step("tests (overflow checks on)", || {
        cargo(
            &[&["test"], TEST_SELECTION].concat(),
            &[("PROPTEST_CASES", proptest_cases.as_str())],
        )
    })?;
    step(
        "bench smoke (tiny N, checks counters, no timing targets)",
        bench_smoke,
    )?;
    step("tests (backoff with no feature)", || {
        cargo(
            &[
                "test",
                "--locked",
                "-p",
                "supervisor-backoff",
                "--no-default-features",
            ],
            &[("PROPTEST_CASES", "256")],
        )
    })?;
    step("doctests", || {
        cargo(
            &["test", "--locked", "--workspace", "--all-features", "--doc"],
            &[],
        )
    })?;
    step("rustdoc (warnings denied)", || {
        cargo(
            &[
                "doc",
                "--locked",
                "--workspace",
                "--all-features",
                "--no-deps",
            ],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    step(
        "packaging (publish dry run of the library crates)",
        check_packaging,
    )?;
    println!(
        "\nxtask ci: all checks passed in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every publishable crate packages, and builds from its `.crate` alone.
///
/// `cargo publish --workspace --dry-run` takes each member whose manifest
/// does not say `publish = false` (the library crates), packages it, resolves
/// the unpublished crates it depends on through a local overlay registry,
/// builds the unpacked package, and uploads nothing. It needs cargo 1.90
/// (multi-package publishing) and the crates.io index. Every crate is
/// verified: on 2 vCPUs this takes about 14 s as the last step of `ci`, which
/// has built the dependencies it reuses (17 s from an empty target folder). No
/// `--allow-dirty`: CI works on a clean clone, and a file left uncommitted in
/// a package folder (tracked or not, unless ignored) is what this should catch.
///
/// Cargo extracts each overlay package into `$CARGO_HOME/registry/src` and,
/// finding an extraction of the same name and version there later, reuses it
/// without looking: a second dry run on the same machine would verify each
/// crate against its dependencies' sources from the first. The extractions
/// (and cached `.crate` files) of our own unpublished packages are removed
/// first; cargo makes them again from the fresh packages.
fn check_packaging() -> Result<()> {
    forget_extracted_packages()?;
    cargo(&["publish", "--locked", "--workspace", "--dry-run"], &[])
}

/// The publishable packages, as `cargo publish --workspace` packages them.
const PUBLISHED: &[&str] = &[
    "supervisor-backoff",
    "supervisor-lifecycle",
    "supervisor-metrics",
    "supervisor-metrics-facade",
    "supervisor-prometheus",
    "supervisor-core",
    "supervisor-http",
];

/// Removes `{package}-{version}` of [`PUBLISHED`] from cargo's registry
/// sources and caches (see [`check_packaging`]).
fn forget_extracted_packages() -> Result<()> {
    let manifest = fs::read_to_string(workspace_root()?.join("Cargo.toml"))?;
    let version = manifest
        .split("[workspace.package]")
        .nth(1)
        .and_then(|section| {
            section
                .lines()
                .find_map(|line| line.trim().strip_prefix("version = \""))
        })
        .and_then(|rest| rest.strip_suffix('"'))
        .context("no version in [workspace.package]")?
        .to_owned();
    let cargo_home = match env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?)
            .join(".cargo"),
    };
    for (kind, suffix) in [("src", ""), ("cache", ".crate")] {
        let Ok(registries) = fs::read_dir(cargo_home.join("registry").join(kind)) else {
            continue;
        };
        for registry in registries.flatten() {
            for package in PUBLISHED {
                let path = registry.path().join(format!("{package}-{version}{suffix}"));
                let removed = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else if path.is_file() {
                    fs::remove_file(&path)
                } else {
                    continue;
                };
                removed.with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// The adapter's tests run `promtool` and a real Prometheus server; Debian's
/// `prometheus` package has both. Installing it would start a daemon, so the
/// script downloads and unpacks it into `target/tools/prometheus`.
fn fetch_prometheus() -> Result<()> {
    let status = Command::new("bash")
        .arg("supervisor-prometheus/fetch-prometheus.sh")
        .status()
        .context("cannot run supervisor-prometheus/fetch-prometheus.sh")?;
    if status.success() {
        return Ok(());
    }
    let in_ci = env::var("CI").is_ok_and(|v| v == "true");
    let skip = env::var("SUPERVISOR_SKIP_PROMTOOL").is_ok_and(|v| v == "1");
    if skip && !in_ci {
        println!("  could not fetch prometheus; SUPERVISOR_SKIP_PROMTOOL=1, its tests will skip");
        return Ok(());
    }
    bail!(
        "could not fetch prometheus/promtool ({status}); the tests need them \
         (outside CI, SUPERVISOR_SKIP_PROMTOOL=1 skips them explicitly)"
    )
}

/// The Node.js script of the browser test, with its `package-lock.json`.
const BROWSER_SCRIPT_DIR: &str = "tests/browser";

/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser test (`tests/tests/browser.rs`) drives Debian's Chromium with
/// `playwright-core` from npm (whose own browser download does not work
/// here). This installs the `chromium` package with apt-get when it is
/// missing (refreshing the package lists once if the install fails), and the
/// script's packages with `npm ci`. Under `CI=true` a missing tool fails the
/// run; elsewhere (no root, no Node.js) the browser test says why and skips.
fn install_browser_tools() -> Result<()> {
    let installed = install_chromium().and_then(|()| npm_ci());
    match installed {
        Ok(()) => Ok(()),
        Err(err) if !env::var("CI").is_ok_and(|v| v == "true") => {
            println!("  {err:#}\n  outside CI the browser test will skip");
            Ok(())
        }
        Err(err) => Err(err),
    }
}

fn install_chromium() -> Result<()> {
    if !Path::new(CHROMIUM).is_file() {
        let install = || {
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends", "chromium"])
                .env("DEBIAN_FRONTEND", "noninteractive"))
        };
        // The package lists may be missing or stale on a fresh machine.
        if install().is_err() {
            println!("  apt-get install failed; running apt-get update and retrying");
            run(Command::new("apt-get").args(["update", "-q"]))?;
            install()?;
        }
    }
    run(Command::new(CHROMIUM).arg("--version")).with_context(|| format!("{CHROMIUM} does not run"))
}

fn npm_ci() -> Result<()> {
    run(Command::new("node").arg("--version")).context("Node.js (`node`) does not run")?;
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(BROWSER_SCRIPT_DIR))
    .with_context(|| format!("`npm ci` failed in {BROWSER_SCRIPT_DIR}"))
}

/// `cargo xtask browser`: only the browser test, with its output.
fn browser() -> Result<()> {
    step("install chromium + npm packages", install_browser_tools)?;
    step("the status page in a real browser", || {
        cargo(
            &[
                "test",
                "--locked",
                "-p",
                "tests",
                "--test",
                "browser",
                "--",
                "--nocapture",
            ],
            &[],
        )
    })
}

/// Runs `command`, failing unless it exits 0.
fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} exited with {status}");
    }
    Ok(())
}

fn mutants() -> Result<()> {
    if Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        step("install cargo-mutants", || {
            cargo(&["install", "--locked", "cargo-mutants"], &[])
        })?;
    }
    step("cargo mutants (backoff, lifecycle)", || {
        cargo(
            &[
                "mutants",
                "-p",
                "supervisor-backoff",
                "-p",
                "supervisor-lifecycle",
                "--timeout",
                "120",
            ],
            &[("PROPTEST_CASES", "256")],
        )
    })
}

/// Every declared dependency is used.
///
/// Library targets: rustc's `unused_crate_dependencies` lint, which is exact
/// (cargo caps the lints of registry crates, so it fires for ours only).
/// It would be noise on the other targets, since each test, example and
/// doctest sees every dev-dependency and uses only some. So for the
/// dev-dependencies, and for the dependencies of binary-only packages, the
/// declared name must appear as a crate path (`name::`, `use name`, `extern
/// crate name`) in some `.rs` file of the package: a textual check, which a
/// mention in a comment can fool, but which catches a forgotten dependency.
fn check_unused_dependencies() -> Result<()> {
    cargo(
        &[
            "clippy",
            "--locked",
            "--workspace",
            "--lib",
            "--all-features",
            "--",
            "-D",
            "unused_crate_dependencies",
        ],
        &[],
    )?;
    let root = fs::read_to_string("Cargo.toml").context("cannot read Cargo.toml")?;
    let mut unused = Vec::new();
    for member in workspace_members(&root) {
        let folder = Path::new(&member);
        let manifest = fs::read_to_string(folder.join("Cargo.toml"))
            .with_context(|| format!("cannot read {member}/Cargo.toml"))?;
        let mut sources = String::new();
        for file in rust_files(folder)? {
            sources.push_str(
                &fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
            );
            sources.push('\n');
        }
        let dependencies = declared_dependencies(&manifest);
        for dependency in &dependencies {
            if !names_crate(&sources, &dependency.replace('-', "_")) {
                unused.push(format!("{member}: {dependency}"));
            }
        }
        println!("  {member}: {} declared dependencies", dependencies.len());
    }
    if !unused.is_empty() {
        bail!(
            "declared but never named in the package's sources: {}",
            unused.join(", ")
        );
    }
    Ok(())
}

/// The folders of `members = [...]` in the root manifest.
fn workspace_members(root_manifest: &str) -> Vec<String> {
    let Some((_, list)) = root_manifest.split_once("members = [") else {
        return Vec::new();
    };
    let list = list.split_once(']').map_or(list, |(list, _)| list);
    list.split(',')
        .map(|member| member.trim().trim_matches('"').to_owned())
        .filter(|member| !member.is_empty())
        .collect()
}

/// The keys of every dependency table of a member manifest (the names the
/// code uses, renames included): `[dependencies]`, `[dev-dependencies]`,
/// `[build-dependencies]`, their `[target.….dependencies]` forms, and
/// `[dependencies.name]` headers. Reads the line-per-dependency layout of this
/// workspace; the lines of a multi-line array are skipped.
fn declared_dependencies(manifest: &str) -> Vec<String> {
    const TABLES: &[&str] = &["dependencies", "dev-dependencies", "build-dependencies"];
    let mut names = Vec::new();
    let mut in_table = false;
    let mut depth = 0_i32;
    for line in manifest.lines() {
        let line = line.split_once('#').map_or(line, |(code, _)| code).trim();
        let continued = depth > 0;
        depth += line.matches(['[', '{']).count() as i32;
        depth -= line.matches([']', '}']).count() as i32;
        if continued || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let segments: Vec<&str> = header.trim_end_matches(']').split('.').collect();
            in_table = false;
            match segments.as_slice() {
                [.., table] if TABLES.contains(table) => in_table = true,
                [.., table, name] if TABLES.contains(table) => names.push((*name).to_owned()),
                _ => {}
            }
            continue;
        }
        if in_table {
            let key = line.split(['=', '.']).next().unwrap_or_default();
            names.push(key.trim().trim_matches('"').to_owned());
        }
    }
    names
}

/// Whether `sources` use the crate `name` (`name::…`, `use name`, `extern crate
/// name`), not counting a path segment of something else (`other::name::…`).
fn names_crate(sources: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    sources.match_indices(name).any(|(at, _)| {
        let before = &sources[..at];
        let after = &sources[at + name.len()..];
        if before.ends_with(is_ident) || after.starts_with(is_ident) {
            return false;
        }
        if let Some(path) = before.strip_suffix("::") {
            return !path.ends_with(is_ident);
        }
        after.starts_with("::") || before.ends_with("use ") || before.ends_with("extern crate ")
    })
}

/// The `.rs` files under `folder`, skipping `target` and hidden folders.
fn rust_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// `cargo tree` resolves the same graph as `cargo metadata`; we read its flat
/// package list for each pure crate, with and without default features.
fn check_dependency_isolation() -> Result<()> {
    for krate in PURE_CRATES {
        for features in [&["--all-features"][..], &["--no-default-features"][..]] {
            let tree = normal_dependencies(krate, features)?;
            if let Some(runtime) = tree.iter().find(|name| RUNTIMES.contains(&name.as_str())) {
                bail!("`{krate}` must not depend on a runtime, but it pulls in `{runtime}`");
            }
            if *krate == "supervisor-backoff" && features == ["--no-default-features"] {
                let deps: Vec<&String> =
                    tree.iter().filter(|name| name.as_str() != *krate).collect();
                if !deps.is_empty() {
                    bail!(
                        "`{krate}` without default features must have no dependency, found {deps:?}"
                    );
                }
            }
        }
        println!("  {krate}: no runtime dependency");
    }
    for krate in ADAPTERS {
        let tree = normal_dependencies(krate, &["--all-features"])?;
        if tree.iter().any(|name| name == "supervisor-core") {
            bail!("`{krate}` must not depend on `supervisor-core`");
        }
        println!("  {krate}: does not depend on supervisor-core");
    }
    for krate in PURE_CRATES
        .iter()
        .chain(ADAPTERS)
        .chain(&["supervisor-core"])
    {
        let tree = normal_dependencies(krate, &["--all-features"])?;
        if let Some(http) = tree.iter().find(|name| HTTP_STACK.contains(&name.as_str())) {
            bail!("`{krate}` must not depend on the HTTP stack, but it pulls in `{http}`");
        }
    }
    println!(
        "  only supervisor-http pulls in the HTTP stack ({})",
        HTTP_STACK.join(", ")
    );
    let tree = normal_dependencies("supervisor-http", &["--no-default-features"])?;
    if let Some(prometheus) = tree
        .iter()
        .find(|name| ["supervisor-prometheus", "prometheus-client"].contains(&name.as_str()))
    {
        bail!("`supervisor-http` without default features must not pull in `{prometheus}`");
    }
    println!("  supervisor-http: Prometheus only with its `prometheus` feature");
    Ok(())
}

/// The names of every package in the normal dependency tree of `krate`.
fn normal_dependencies(krate: &str, features: &[&str]) -> Result<Vec<String>> {
    let mut args = vec![
        "tree", "--locked", "-p", krate, "-e", "normal", "--target", "all", "--prefix", "none",
        "--format", "{p}",
    ];
    args.extend_from_slice(features);
    let output = Command::new("cargo")
        .args(&args)
        .output()
        .context("cannot run cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree -p {krate} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// `cargo xtask bench`: the benchmark suite, full run, release build; the
/// report goes to `target/bench/latest.md` (see `bench/src/main.rs`).
/// `cargo xtask bench --smoke` is the tiny run CI does, [`bench_smoke`].
fn bench() -> Result<()> {
    if env::args().nth(2).as_deref() == Some("--smoke") {
        return step("bench smoke", bench_smoke);
    }
    // Both binaries: `supervisor-bench` runs `alloc-count` from its own folder.
    step("bench (release build)", || {
        cargo(
            &[
                "build",
                "--release",
                "--locked",
                "-p",
                "supervisor-bench",
                "--bins",
            ],
            &[],
        )
    })?;
    step("bench (full run, a few minutes)", || {
        cargo(
            &[
                "run",
                "--release",
                "--locked",
                "-p",
                "supervisor-bench",
                "--bin",
                "supervisor-bench",
                "--",
                "--full",
            ],
            &[],
        )
    })
}

/// The benchmark suite with tiny N (`--smoke`), so it never rots: every
/// scenario runs and checks its counters, in seconds; the timings mean nothing.
///
/// Built in the dev profile with the same package, feature and target selection
/// as the test step, so every dependency comes from the test build and only the
/// two bench binaries are compiled; hence `cargo build` and running the binary
/// from the target folder rather than `cargo run -p` (which would resolve
/// features for the bench crate alone and rebuild tokio and the core).
fn bench_smoke() -> Result<()> {
    // The test step's selection, so every artifact of the tests is reused.
    cargo(&[&["build"], TEST_SELECTION].concat(), &[])?;
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let exe = target
        .join("debug")
        .join(format!("supervisor-bench{}", env::consts::EXE_SUFFIX));
    let status = Command::new(&exe)
        .arg("--smoke")
        .status()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !status.success() {
        bail!("`{} --smoke` exited with {status}", exe.display());
    }
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("\n==> {name}");
    let started = Instant::now();
    let result = f();
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            println!("==> {name}: ok ({secs:.1}s)");
            Ok(())
        }
        Err(err) => Err(err.context(format!("step `{name}` failed after {secs:.1}s"))),
    }
}

fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let mut command = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let status = command
        .status()
        .with_context(|| format!("cannot start cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` exited with {status}", args.join(" "));
    }
    Ok(())
}

fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = env::var("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("xtask"));
    Ok(manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".")))
}
