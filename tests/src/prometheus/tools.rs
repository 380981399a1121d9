//! Locating `promtool` and `prometheus`, and running `promtool check metrics`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set to `1` to skip checks whose tool is missing, outside CI only.
pub const SKIP_ENV_VAR: &str = "SUPERVISOR_SKIP_PROMTOOL";

/// Overrides the folder `fetch-prometheus.sh` unpacks the package into.
const TOOLS_DIR_ENV_VAR: &str = "PROMETHEUS_TOOLS_DIR";

/// A binary of Debian's `prometheus` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tool {
    /// `promtool`, the linter and checker.
    Promtool,
    /// `prometheus`, the server.
    Prometheus,
}

impl Tool {
    /// The file name of the binary.
    #[must_use]
    pub const fn binary_name(self) -> &'static str {
        match self {
            Tool::Promtool => "promtool",
            Tool::Prometheus => "prometheus",
        }
    }

    /// The environment variable that may hold the binary's path.
    #[must_use]
    pub const fn env_var(self) -> &'static str {
        match self {
            Tool::Promtool => "PROMTOOL",
            Tool::Prometheus => "PROMETHEUS",
        }
    }

    /// Finds the binary, looking where the [module documentation](super)
    /// says, in that order.
    ///
    /// # Errors
    ///
    /// [`ToolNotFound`] listing every place looked at; immediately if the
    /// environment variable is set but does not name a file.
    pub fn locate(self) -> Result<PathBuf, ToolNotFound> {
        self.locate_in(&Environment::current())
    }

    /// Like [`locate`](Self::locate), with the policy of the test suite for a
    /// missing tool.
    ///
    /// Returns `Ok(None)` only outside CI and only when [`SKIP_ENV_VAR`] is
    /// `1`, after printing why the check is skipped to stderr.
    ///
    /// # Errors
    ///
    /// [`ToolNotFound`] when the tool is missing and `CI=true`, or when it is
    /// missing and [`SKIP_ENV_VAR`] is not `1`.
    pub fn require(self) -> Result<Option<PathBuf>, ToolNotFound> {
        self.require_in(&Environment::current())
    }

    fn require_in(self, environment: &Environment) -> Result<Option<PathBuf>, ToolNotFound> {
        match self.locate_in(environment) {
            Ok(path) => Ok(Some(path)),
            Err(error) if !error.in_ci && environment.skip_requested => {
                eprintln!("skipping: {error}");
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    fn locate_in(self, environment: &Environment) -> Result<PathBuf, ToolNotFound> {
        let not_found = |searched, explicit| ToolNotFound {
            tool: self,
            searched,
            explicit,
            in_ci: environment.in_ci,
        };
        if let Some(explicit) = environment.explicit.get(&self) {
            let path = PathBuf::from(explicit);
            if path.is_file() {
                return Ok(path);
            }
            return Err(not_found(vec![path], true));
        }
        let tool_dirs = environment
            .tools_dir
            .iter()
            .chain(std::iter::once(&environment.default_tools_dir))
            .map(|dir| dir.join("usr").join("bin"));
        let path_dirs = environment.path.iter().flat_map(std::env::split_paths);
        let searched: Vec<PathBuf> = tool_dirs.chain(path_dirs).collect();
        let found = std::env::join_paths(&searched).ok().and_then(|paths| {
            which::which_in(self.binary_name(), Some(paths), &environment.cwd).ok()
        });
        found.ok_or_else(|| not_found(searched, false))
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.binary_name())
    }
}

/// A [`Tool`] that could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolNotFound {
    tool: Tool,
    searched: Vec<PathBuf>,
    explicit: bool,
    in_ci: bool,
}

impl ToolNotFound {
    /// The tool that is missing.
    #[must_use]
    pub fn tool(&self) -> Tool {
        self.tool
    }

    /// Every folder looked in, in order; the one path given by the
    /// environment variable when it is set.
    #[must_use]
    pub fn searched(&self) -> &[PathBuf] {
        &self.searched
    }
}

impl fmt::Display for ToolNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tool = self.tool;
        let env_var = tool.env_var();
        if self.explicit {
            let path = self
                .searched
                .first()
                .map(|path| path.display().to_string())
                .unwrap_or_default();
            write!(
                f,
                "`{tool}` not found: `{env_var}` is set to `{path}`, which is not a file"
            )?;
        } else {
            write!(
                f,
                "`{tool}` not found in `${TOOLS_DIR_ENV_VAR}/usr/bin`, `target/tools/prometheus/usr/bin` or `PATH` \
                 ({} folders); run `supervisor-prometheus/fetch-prometheus.sh` or set `{env_var}` to its path",
                self.searched.len()
            )?;
        }
        if self.in_ci {
            write!(f, " (CI=true: a missing tool fails the check)")
        } else {
            write!(f, " (outside CI, set {SKIP_ENV_VAR}=1 to skip this check)")
        }
    }
}

impl std::error::Error for ToolNotFound {}

/// What `locate` reads from the process environment, gathered once.
#[derive(Debug)]
struct Environment {
    explicit: HashMap<Tool, OsString>,
    tools_dir: Option<PathBuf>,
    default_tools_dir: PathBuf,
    path: Option<OsString>,
    /// Where relative folders of `PATH` start from.
    cwd: PathBuf,
    in_ci: bool,
    skip_requested: bool,
}

impl Environment {
    fn current() -> Self {
        let explicit = [Tool::Promtool, Tool::Prometheus]
            .into_iter()
            .filter_map(|tool| {
                Some((
                    tool,
                    std::env::var_os(tool.env_var()).filter(|value| !value.is_empty())?,
                ))
            })
            .collect();
        Environment {
            explicit,
            tools_dir: std::env::var_os(TOOLS_DIR_ENV_VAR)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from),
            // This crate is `<workspace>/tests`; the script's default
            // destination is `<workspace>/target/tools/prometheus`, whatever
            // `CARGO_TARGET_DIR` says.
            default_tools_dir: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("tools")
                .join("prometheus"),
            path: std::env::var_os("PATH"),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            in_ci: std::env::var("CI").is_ok_and(|value| value == "true"),
            skip_requested: std::env::var(SKIP_ENV_VAR).is_ok_and(|value| value == "1"),
        }
    }
}

/// The outcome of a finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; `None` if the process was killed by a signal.
    pub code: Option<i32>,
    /// Everything printed on stdout, lossily decoded.
    pub stdout: String,
    /// Everything printed on stderr, lossily decoded.
    pub stderr: String,
}

impl CommandOutput {
    /// Exit code 0 and nothing printed on either stream: for `promtool check
    /// metrics`, a clean lint.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.code == Some(0) && self.stdout.trim().is_empty() && self.stderr.trim().is_empty()
    }
}

/// Pipes `exposition` (Prometheus text format 0.0.4, as
/// `supervisor_prometheus::render_prometheus_text` renders it) into
/// `promtool check metrics` and waits for it.
///
/// `promtool check metrics` reads the Prometheus text format 0.0.4 only; fed
/// OpenMetrics it reports every counter as lacking help text.
///
/// # Errors
///
/// The I/O error of starting `promtool`, writing its input or reading its
/// output. A lint failure is not an error: inspect the [`CommandOutput`].
pub fn promtool_check_metrics(promtool: &Path, exposition: &str) -> io::Result<CommandOutput> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take();
    // Write from another thread so a large input cannot deadlock against
    // promtool filling its output pipes.
    let input = exposition.to_owned();
    let writer = std::thread::spawn(move || -> io::Result<()> {
        match stdin {
            Some(mut stdin) => stdin.write_all(input.as_bytes()),
            None => Ok(()),
        }
    });
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| io::Error::other("the thread writing promtool's input panicked"))??;
    Ok(CommandOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(dir: &Path) -> Environment {
        Environment {
            explicit: HashMap::new(),
            tools_dir: None,
            default_tools_dir: dir.join("missing"),
            path: Some(OsString::from(dir.join("also-missing"))),
            cwd: dir.to_owned(),
            in_ci: false,
            skip_requested: false,
        }
    }

    #[test]
    fn an_explicit_path_that_is_not_a_file_is_an_error_without_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let mut environment = environment(dir.path());
        environment
            .explicit
            .insert(Tool::Promtool, OsString::from("/nonexistent/promtool"));
        let error = Tool::Promtool.locate_in(&environment).unwrap_err();
        assert_eq!(error.searched(), [PathBuf::from("/nonexistent/promtool")]);
        assert!(
            error
                .to_string()
                .contains("`PROMTOOL` is set to `/nonexistent/promtool`")
        );
    }

    #[test]
    fn a_missing_tool_is_skipped_only_on_request_and_never_in_ci() {
        let dir = tempfile::tempdir().unwrap();
        let mut environment = environment(dir.path());
        for (in_ci, skip_requested, skipped) in [
            (false, false, false),
            (false, true, true),
            (true, false, false),
            (true, true, false),
        ] {
            environment.in_ci = in_ci;
            environment.skip_requested = skip_requested;
            let outcome = Tool::Promtool.require_in(&environment);
            assert_eq!(outcome.is_ok(), skipped, "CI={in_ci} skip={skip_requested}");
            if let Ok(found) = outcome {
                assert_eq!(found, None);
            }
        }
    }

    #[test]
    fn a_missing_tool_lists_every_place_and_the_ci_policy() {
        let dir = tempfile::tempdir().unwrap();
        let mut environment = environment(dir.path());
        environment.in_ci = true;
        let error = Tool::Prometheus.locate_in(&environment).unwrap_err();
        assert_eq!(error.searched().len(), 2);
        assert!(
            error
                .to_string()
                .ends_with("(CI=true: a missing tool fails the check)")
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_tools_folder_comes_before_path_and_needs_an_executable() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let tools_bin = dir.path().join("tools").join("usr").join("bin");
        let path_bin = dir.path().join("path-bin");
        for bin in [&tools_bin, &path_bin] {
            std::fs::create_dir_all(bin).unwrap();
            let file = bin.join("promtool");
            std::fs::write(&file, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut environment = environment(dir.path());
        environment.tools_dir = Some(dir.path().join("tools"));
        environment.path = Some(OsString::from(&path_bin));
        assert_eq!(
            Tool::Promtool.locate_in(&environment),
            Ok(tools_bin.join("promtool"))
        );

        // A file that is not executable is not the tool.
        let file = tools_bin.join("promtool");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            Tool::Promtool.locate_in(&environment),
            Ok(path_bin.join("promtool"))
        );
    }
}
