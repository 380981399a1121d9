//! The status page in a real browser: the real demo process serves it, and
//! `tests/browser/status-page.mjs` drives Debian's Chromium (headless,
//! through `playwright-core`) against it.
//!
//! The script starts the browser first and says `ready`; only then is the
//! demo started, so the page is up while the demo's services are still
//! failing and restarting (its restarts all happen in its first two
//! seconds). The script loads the page, finds every service of the demo,
//! sees a restart counter change without a reload, checks that the rows
//! agree with `/status` and that markup in the data (a service named
//! `<script>alert(1)</script>`) shows as text, and writes a screenshot to
//! `target/browser/status-page.png`. Then the demo gets SIGTERM, the page
//! must show the shutdown and its cause, and the demo must exit 0.
//!
//! A test binary of its own: a browser is heavy, and nothing else should run
//! beside it. Needs `node`, Chromium and the script's `node_modules`, which
//! `cargo xtask ci` installs (`apt-get install chromium`, `npm ci`). Under
//! `CI=true` a missing one fails the test; elsewhere the test says what is
//! missing and passes without running.
//!
//! Real time on purpose (a real process and a real browser), but nothing
//! sleeps: every step waits for a line of a child's output, or its exit, up
//! to a generous limit.

#![allow(missing_docs)]
// A real browser and a real process: the deadlines are wall-clock ones.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The services of the demo fleet, by path: the page must show each of
/// them (and the script checks that the nested ones sit under their node).
const DEMO_SERVICES: &[&str] = &[
    "market-data",
    "market-data/exchange-link",
    "market-data/market-feed",
    "orders",
    "orders/order-consumer",
    "orders/risk-engine",
    "price-poller",
    "stubborn-worker",
];

/// The longest one step may take on a slow machine: the browser starting,
/// the demo printing its address, the page showing what the script waits
/// for (the script's own waits take half of it).
const PATIENCE: Duration = Duration::from_secs(60);

/// The demo's shutdown timeout plus slack for its drain and exit.
const EXIT_LIMIT: Duration = Duration::from_secs(15);

#[test]
fn the_status_page_follows_the_real_demo_live_in_a_real_browser() {
    let Some(tools) = Tools::find() else {
        return;
    };
    let fleet = build_the_demo();
    let screenshot = target_dir().join("browser").join("status-page.png");
    // A stale screenshot must not pass for this run's.
    let _ = std::fs::remove_file(&screenshot);

    let mut script = Script::start(&tools, &screenshot);
    script.expect("ready", None);

    let mut demo = Demo::start(&fleet);
    let addr = demo.address();
    script.send(&format!("url http://{addr}/"));
    script.expect("live-checks-passed", Some(&demo));

    demo.terminate();
    script.send("terminated");
    script.expect("done", Some(&demo));
    let status = script.process.wait_for_exit(PATIENCE);
    assert!(
        status.success(),
        "the browser script exited with {status}\n{}",
        script.process.output()
    );

    let status = demo.process.wait_for_exit(EXIT_LIMIT);
    assert!(
        status.success(),
        "the demo exited with {status} after SIGTERM\n{}",
        demo.process.output()
    );

    let png = std::fs::read(&screenshot)
        .unwrap_or_else(|err| panic!("no screenshot at {}: {err}", screenshot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} is not a screenshot of a page ({} bytes)",
        screenshot.display(),
        png.len()
    );
    // Shown with `--nocapture`: what the browser saw.
    println!("{}", script.process.output());
}

/// What the browser test needs from outside the workspace.
struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    script_dir: PathBuf,
}

impl Tools {
    /// `node`, Chromium and the script's `node_modules`; `None` (after saying
    /// why) when one is missing outside CI. Panics when one is missing under
    /// `CI=true`.
    fn find() -> Option<Self> {
        let script_dir = workspace_root().join("tests").join("browser");
        let node = PathBuf::from(std::env::var_os("NODE").unwrap_or_else(|| "node".into()));
        let chromium = PathBuf::from(
            std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
        );
        let mut missing = Vec::new();
        let node_runs = Command::new(&node)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|output| output.status.success());
        if !node_runs {
            missing.push(format!("`{}` (Node.js) does not run", node.display()));
        }
        if !chromium.is_file() {
            missing.push(format!(
                "no Chromium at {} (Debian's `chromium` package; or set CHROMIUM)",
                chromium.display()
            ));
        }
        let playwright = script_dir.join("node_modules/playwright-core/package.json");
        if !playwright.is_file() {
            missing.push(format!(
                "no {} (`npm ci` in {})",
                playwright.display(),
                script_dir.display()
            ));
        }
        if missing.is_empty() {
            return Some(Tools {
                node,
                chromium,
                script_dir,
            });
        }
        let why = format!(
            "the browser test cannot run: {}; `cargo xtask ci` installs what it needs",
            missing.join("; ")
        );
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{why}");
        }
        // Past the test harness's capture, so a skip is never silent.
        let _ = writeln!(std::io::stderr(), "skipping the browser test: {why}");
        None
    }
}

/// `tests/browser/status-page.mjs`, spoken to over its standard streams.
struct Script {
    process: Process,
    stdin: ChildStdin,
}

impl Script {
    fn start(tools: &Tools, screenshot: &Path) -> Self {
        let mut command = Command::new(&tools.node);
        command
            .arg("status-page.mjs")
            .current_dir(&tools.script_dir)
            .env("CHROMIUM", &tools.chromium)
            .env("SCREENSHOT", screenshot)
            .env("EXPECTED_SERVICES", DEMO_SERVICES.join(","))
            .env("PATIENCE_MS", (PATIENCE.as_millis() / 2).to_string());
        let (process, stdin) = Process::start("the browser script", command);
        Script {
            process,
            stdin: stdin.expect("piped"),
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|err| {
                panic!(
                    "cannot write `{line}` to the browser script: {err}\n{}",
                    self.process.output()
                )
            });
    }

    /// Waits for the script to print `line`; fails with everything it (and
    /// the demo, if it runs) printed when it exits or fails first.
    fn expect(&mut self, line: &str, demo: Option<&Demo>) {
        let found = self
            .process
            .wait_for_line(PATIENCE, |printed| printed == line);
        if found.is_none() {
            let demo = demo.map(|demo| demo.process.output()).unwrap_or_default();
            panic!(
                "the browser script never said `{line}`\n{}\n{demo}",
                self.process.output()
            );
        }
    }
}

/// The demo fleet, serving its HTTP surface on a free port.
struct Demo {
    process: Process,
}

impl Demo {
    fn start(fleet: &Path) -> Self {
        let mut command = Command::new(fleet);
        command
            .args(["--http-addr", "127.0.0.1:0"])
            .env("NO_COLOR", "1");
        let (process, _) = Process::start("the demo", command);
        Demo { process }
    }

    /// The address the demo says it serves on: the first `http://ADDR` it
    /// prints.
    fn address(&mut self) -> String {
        let line = self
            .process
            .wait_for_line(PATIENCE, |line| line.contains("http://"));
        let Some(line) = line else {
            panic!(
                "the demo never printed its address\n{}",
                self.process.output()
            );
        };
        let after = line.split_once("http://").map_or("", |(_, after)| after);
        after
            .split(['/', ' '])
            .next()
            .filter(|addr| addr.parse::<std::net::SocketAddr>().is_ok())
            .unwrap_or_else(|| panic!("no address in the demo's line `{line}`"))
            .to_owned()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.process.pid.to_string()])
            .status()
            .expect("`kill` runs");
        assert!(status.success(), "kill -TERM failed: {status}");
    }
}

/// A child process whose output is read on threads of its own (so it never
/// blocks on a full pipe): stdout line by line into a channel, both streams
/// into a log for failure messages. Killed if the test ends before it exits.
struct Process {
    what: &'static str,
    pid: u32,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
    exited: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

impl Process {
    fn start(what: &'static str, mut command: Command) -> (Self, Option<ChildStdin>) {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {what} ({command:?}): {err}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (line_sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let stdout_log = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                append(&stdout_log, &line);
                // The test may have stopped listening: the log still has it.
                let _ = line_sender.send(line);
            }
        });
        let stderr_log = Arc::clone(&log);
        thread::spawn(move || {
            let mut text = String::new();
            let mut stderr = BufReader::new(stderr);
            while stderr.read_line(&mut text).is_ok_and(|read| read > 0) {
                append(&stderr_log, &format!("[stderr] {}", text.trim_end()));
                text.clear();
            }
        });
        let stdin = child.stdin.take();
        let pid = child.id();
        let (exit_sender, exited) = mpsc::channel();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_sender.send(status);
            }
        });
        let process = Process {
            what,
            pid,
            lines,
            log,
            exited,
            status: None,
        };
        (process, stdin)
    }

    /// The next line of stdout for which `wanted` holds, within `limit`;
    /// `None` if the process closes its stdout (exits) or the time is up.
    fn wait_for_line(&mut self, limit: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Some(line),
                Ok(_) => {}
                // Out of time, or the process closed its stdout.
                Err(_) => return None,
            }
        }
    }

    fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        match self.exited.recv_timeout(limit) {
            Ok(status) => {
                self.status = Some(status);
                status
            }
            Err(_) => panic!(
                "{} did not exit within {limit:?}\n{}",
                self.what,
                self.output()
            ),
        }
    }

    fn output(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|err| err.into_inner());
        format!("--- {} (pid {})\n{log}", self.what, self.pid)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.status.is_none() && self.exited.try_recv().is_err() {
            // Still running: the test failed part-way. Only this child.
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

fn append(log: &Mutex<String>, line: &str) {
    let mut log = log.lock().unwrap_or_else(|err| err.into_inner());
    log.push_str(line);
    log.push('\n');
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Builds the demo (the `fleet` example) and returns its executable, as
/// cargo names it in its JSON messages.
fn build_the_demo() -> PathBuf {
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--locked", "--example", "fleet"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cannot build the demo");
    let messages = String::from_utf8_lossy(&output.stdout);
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "fleet")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo names no `fleet` executable:\n{messages}"))
}
