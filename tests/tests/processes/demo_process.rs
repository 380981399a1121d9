//! The demo fleet as a real child process, for the tests that play its
//! operator (`demo`) or its service manager (`kubelet`, `systemd`): built with cargo,
//! started on a free port, its output lines waited for as they come, its
//! HTTP surface asked like a probe, SIGTERM sent, its exit awaited.
//!
//! Nothing here sleeps for a fixed time as a check: each wait is for a line
//! of the demo's output, an answer of its HTTP surface or its exit, up to a
//! deadline. Unix only (SIGTERM is sent with `kill`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tests::prometheus::{HttpResponse, http_get};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The demo's shutdown timeout (`SHUTDOWN_TIMEOUT` in `examples/fleet.rs`).
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Slack on top of the shutdown timeout for the process to exit.
pub(crate) const EXIT_MARGIN: Duration = Duration::from_secs(3);

/// The longest any one step may take on a slow machine before the test fails:
/// a line of stdout, an answer, the demo exiting by itself.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The demo's exit code when its critical service failed for good.
pub(crate) const CRITICAL_FAILED: i32 = 2;

/// How often [`Demo::probe_until`] asks, as a (fast) probe would.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// What the demo prints when the table it built from the events agrees with
/// the supervisor's final snapshots.
const VIEW_AGREES: &str = "the live view agrees with the supervisor's snapshots";

/// Everything read so far from one of the demo's pipes.
#[derive(Debug, Default)]
struct Pipe {
    text: String,
    /// The demo closed the pipe (it exited).
    closed: bool,
}

/// The demo's process, killed if the test fails before it exits.
pub(crate) struct Demo {
    pub(crate) child: Child,
    stdout: watch::Receiver<Pipe>,
    stderr: watch::Receiver<Pipe>,
    readers: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Starts the demo with `args` besides the HTTP address.
    pub(crate) fn start(fleet: &Path, args: &[&str]) -> Self {
        let mut command = Command::new(fleet);
        // Not under systemd, whatever runs the tests.
        command.env_remove("NOTIFY_SOCKET");
        Self::spawn(command, args)
    }

    /// Starts `command` (the demo, or a shell that `exec`s it) with `args`
    /// and the HTTP address appended.
    pub(crate) fn spawn(mut command: Command, args: &[&str]) -> Self {
        let mut child = command
            // Any free port for its HTTP surface, so runs never collide.
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {command:?}: {err}"));
        let (stdout_reader, stdout) = read_in_background(child.stdout.take().expect("piped"));
        let (stderr_reader, stderr) = read_in_background(child.stderr.take().expect("piped"));
        Self {
            child,
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    /// Builds and starts the demo with `args`, and returns it with the
    /// address of its HTTP surface once it says it.
    pub(crate) async fn serving(args: &[&str]) -> (Self, SocketAddr) {
        let demo = Self::start(&build_the_demo(), args);
        let addr = demo.http_addr().await;
        (demo, addr)
    }

    pub(crate) fn stdout(&self) -> String {
        self.stdout.borrow().text.clone()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.borrow().text.clone()
    }

    pub(crate) fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits until `find` finds something in the demo's stdout so far, and
    /// returns it; fails the test after [`PATIENCE`], or if the demo closes
    /// its stdout first.
    pub(crate) async fn wait_for_stdout<T>(
        &self,
        what: &str,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        let mut stdout = self.stdout.clone();
        let mut found = None;
        let waited = tokio::time::timeout(
            PATIENCE,
            stdout.wait_for(|pipe| {
                found = find(&pipe.text);
                found.is_some() || pipe.closed
            }),
        )
        .await;
        if waited.is_err() {
            panic!("no sign of {what} within {PATIENCE:?}\n{}", self.output());
        }
        found.unwrap_or_else(|| panic!("the demo exited before {what}\n{}", self.output()))
    }

    /// The address the demo serves its HTTP surface on, once it says it.
    pub(crate) async fn http_addr(&self) -> SocketAddr {
        self.wait_for_stdout("the HTTP address", |stdout| {
            stdout.lines().find_map(|line| {
                line.strip_prefix("serving metrics on http://")?
                    .strip_suffix("/metrics")?
                    .parse::<SocketAddr>()
                    .ok()
            })
        })
        .await
    }

    /// Asks `GET path` of the demo at `addr` every [`PROBE_INTERVAL`], as a
    /// probe does, until `wanted` accepts an answer, and returns it; fails
    /// the test after [`PATIENCE`], or once the surface stops answering.
    pub(crate) async fn probe_until(
        &self,
        addr: SocketAddr,
        path: &str,
        what: &str,
        wanted: impl Fn(&HttpResponse) -> bool,
    ) -> HttpResponse {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match http_get(addr, path, &[]).await {
                Ok(response) if wanted(&response) => return response,
                Ok(_) => {}
                Err(error) => panic!(
                    "{path} did not answer before {what}: {error}\n{}",
                    self.output()
                ),
            }
            assert!(
                Instant::now() < deadline,
                "no sign of {what} on {path} within {PATIENCE:?}\n{}",
                self.output()
            );
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    /// Sends SIGTERM, and checks that the demo drains and exits 0 in time.
    pub(crate) async fn stop_cleanly(&mut self) {
        self.terminate().await;
        let status = self.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
        assert!(
            status.success(),
            "the demo exited with {status}\n{}",
            self.output()
        );
    }

    /// Sends SIGTERM.
    pub(crate) async fn terminate(&self) {
        let pid = self.child.id().expect("the demo is running");
        let kill = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("`kill` runs");
        assert!(kill.success(), "kill -TERM failed: {kill}");
    }

    /// Waits up to `limit` for the demo to exit, then for its pipes to be read
    /// to their end; fails the test otherwise.
    pub(crate) async fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("the demo's status"),
            Err(_elapsed) => panic!("the demo did not exit within {limit:?}\n{}", self.output()),
        };
        for reader in self.readers.drain(..) {
            reader.await.expect("a pipe reader");
        }
        status
    }
}

/// Reads `pipe` line by line into a [`Pipe`] on a task of its own, so the demo
/// never blocks on a full pipe and the test can wait for a line.
fn read_in_background(
    pipe: impl AsyncRead + Unpin + Send + 'static,
) -> (JoinHandle<()>, watch::Receiver<Pipe>) {
    let (sender, receiver) = watch::channel(Pipe::default());
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sender.send_modify(|pipe| {
                pipe.text.push_str(&line);
                pipe.text.push('\n');
            });
        }
        sender.send_modify(|pipe| pipe.closed = true);
    });
    (reader, receiver)
}

/// The workspace's root folder.
pub(crate) fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
}

/// Builds the `fleet` example of `supervisor-core` into this workspace's target
/// directory and returns the path of the executable, as cargo reports it.
pub(crate) fn build_the_demo() -> PathBuf {
    let output = std::process::Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "supervisor-core",
            "--example",
            "fleet",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo build failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "fleet"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the demo's executable")
}

/// The `key=value` pairs of the demo's `final metrics:` line.
pub(crate) fn final_metrics(stdout: &str) -> Vec<(String, u64)> {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("final metrics: "))
        .unwrap_or_else(|| panic!("no final metrics in:\n{stdout}"));
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| {
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value} is not a count"));
            (key.to_owned(), value)
        })
        .collect()
}

/// What every run of the demo ends with: no service still active, and the
/// table it built from the events agreeing with the supervisor's snapshots.
pub(crate) fn assert_drained_truthfully(stdout: &str, output: &str) {
    let metrics = final_metrics(stdout);
    assert!(
        metrics.contains(&("active_services".to_owned(), 0)),
        "a service outlived the drain\n{output}"
    );
    assert!(
        stdout.contains(VIEW_AGREES),
        "the live view disagrees with the snapshots\n{output}"
    );
}
