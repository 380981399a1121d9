//! The demo as a real process: built with cargo and started, it is sent
//! SIGTERM once its circuit breaker has tripped, and exits 0 within its
//! shutdown timeout with every service drained and the one that ignores
//! cancellation reported as aborted. A real Prometheus scrapes it. With
//! `--chaos` it stops, restarts and removes services and still drains and
//! exits 0 on SIGTERM; with `--fail-critical-after` its critical service
//! fails for good and it exits 2 by itself, naming the service. Every run
//! checks that the table the demo built from the lifecycle events agrees
//! with the supervisor's final snapshots.
//!
//! Real time on purpose: this is the only test of the signal handling and of
//! the demo's output. Nothing sleeps for a fixed time: each step waits for
//! what it needs (a line of the demo's stdout, its exit, an answer of
//! Prometheus) up to a generous deadline, so a fast machine finishes in about
//! the demo's own timings (the breaker trips about 1 s in, the chaos task has
//! stopped, restarted and removed a service about 11 s in, the drain waits
//! out the 2 s shutdown timeout) and a slow one still passes. Unix only (it
//! sends SIGTERM with `kill`).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tests::prometheus::{PrometheusServer, ScrapeConfig, Tool};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The demo's shutdown timeout (`SHUTDOWN_TIMEOUT` in `examples/fleet.rs`).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Slack on top of the shutdown timeout for the process to exit.
const EXIT_MARGIN: Duration = Duration::from_secs(3);

/// The longest any one step may take on a slow machine before the test fails:
/// a line of stdout, a value in Prometheus, the demo exiting by itself.
const PATIENCE: Duration = Duration::from_secs(30);

/// The demo's exit code when its critical service failed for good.
const CRITICAL_FAILED: i32 = 2;

/// What the demo prints when the table it built from the events agrees with
/// the supervisor's final snapshots.
const VIEW_AGREES: &str = "the live view agrees with the supervisor's snapshots";

#[tokio::test]
async fn the_demo_drains_every_service_on_sigterm_and_exits_0() {
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet, &[]);

    // Run at least until `price-poller`'s circuit breaker has tripped: by then
    // it has restarted four times.
    demo.wait_for_stdout("the circuit breaker to trip", |stdout| {
        stdout.contains("circuit breaker open").then_some(())
    })
    .await;
    assert!(
        demo.child.try_wait().expect("the demo's status").is_none(),
        "the demo exited before SIGTERM\n{}",
        demo.output()
    );

    let signalled = Instant::now();
    demo.terminate().await;
    let status = demo.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
    let took = signalled.elapsed();

    let output = demo.output();
    let stdout = demo.stdout();
    assert!(status.success(), "the demo exited with {status}\n{output}");
    assert!(
        took >= SHUTDOWN_TIMEOUT,
        "the demo waited for the hung service's timeout ({took:?})\n{output}"
    );

    let metrics = final_metrics(&stdout);
    let metric = |key: &str| metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    for (key, expected) in [
        ("active_services", 0),
        ("spawned_total", 5),
        ("terminated_total", 5),
        ("circuit_breaker_trips", 1),
        ("failures_timeout", 1),
    ] {
        assert_eq!(metric(key), Some(expected), "{key}\n{output}");
    }
    assert!(
        metric("restarts_total").is_some_and(|restarts| restarts >= 4),
        "price-poller alone restarted four times\n{output}"
    );
    let aborted = stdout
        .lines()
        .find_map(|line| line.strip_prefix("aborted at the shutdown timeout: "))
        .unwrap_or_else(|| panic!("no aborted list\n{output}"));
    assert_eq!(aborted, r#"["stubborn-worker"]"#, "{output}");
    assert_drained_truthfully(&stdout, &output);
}

#[tokio::test]
async fn the_demo_survives_its_chaos_task_and_drains_on_sigterm() {
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet, &["--chaos"]);

    // The chaos task picks its calls from a fixed seed: the first ones to
    // succeed are a removal about 5 s in, a stop about 9 s and a restart
    // about 11 s in.
    let calls = ["stop", "restart", "remove"];
    demo.wait_for_stdout("a stop, a restart and a removal that succeeded", |stdout| {
        calls
            .iter()
            .all(|call| chaos_success(stdout, call).is_some())
            .then_some(())
    })
    .await;

    demo.terminate().await;
    let status = demo.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
    let output = demo.output();
    let stdout = demo.stdout();
    assert!(status.success(), "the demo exited with {status}\n{output}");

    // What the chaos task says it did, the events say too.
    for call in calls {
        let (service, ok, lines) = chaos_success(&stdout, call).expect("seen before SIGTERM");
        let changes: Vec<&str> = event_changes(&lines, service).collect();
        let shown = match call {
            "stop" => {
                let reason = ok
                    .strip_prefix(" (terminated: ")
                    .and_then(|reason| reason.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("a stop's `Ok` names the reason: {ok}"));
                changes.iter().any(|change| {
                    change.contains("→ terminated") && change.ends_with(&format!(": {reason}"))
                })
            }
            "restart" => changes
                .iter()
                .any(|change| change.ends_with("→ restarting")),
            _ => changes.contains(&"removed"),
        };
        assert!(
            shown,
            "the events do not show the {call} of {service} (Ok{ok}): {changes:?}\n{output}"
        );
    }
    assert_drained_truthfully(&stdout, &output);
}

#[tokio::test]
async fn the_demo_exits_2_naming_its_critical_service_when_it_fails_for_good() {
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet, &["--fail-critical-after", "1"]);

    // No signal: the critical service's circuit breaker trips a second or
    // two after it starts failing, and the demo drains and exits by itself.
    let status = demo.wait_for_exit(PATIENCE).await;
    let output = demo.output();
    let stdout = demo.stdout();
    assert_eq!(status.code(), Some(CRITICAL_FAILED), "{output}");
    assert!(
        demo.stderr()
            .contains("critical service `market-feed` failed: circuit breaker open after"),
        "{output}"
    );
    assert_drained_truthfully(&stdout, &output);
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_demo_and_sees_the_flaky_service_restart() {
    let Some(prometheus) = Tool::Prometheus.require().unwrap() else {
        return;
    };
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet, &[]);
    let addr = demo
        .wait_for_stdout("the metrics address", |stdout| {
            stdout.lines().find_map(|line| {
                line.strip_prefix("serving metrics on http://")?
                    .strip_suffix("/metrics")?
                    .parse::<std::net::SocketAddr>()
                    .ok()
            })
        })
        .await;

    let server = PrometheusServer::start(&prometheus, &ScrapeConfig::new([addr]))
        .await
        .unwrap_or_else(|err| panic!("cannot start prometheus: {err}"));
    // `order-consumer` is the demo's flaky service: it fails three times.
    let query = r#"supervisor_restarts_total{service="order-consumer"}"#;
    let samples = server
        .wait_for(query, PATIENCE, |samples| {
            samples.iter().any(|s| s.value > 0.0)
        })
        .await
        .unwrap_or_else(|err| {
            panic!(
                "prometheus never saw a restart: {err}\n{}\n{}",
                server.log(),
                demo.output()
            )
        });
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(
        samples[0].labels.get("job").map(String::as_str),
        Some("supervisor")
    );
    let up = server.query("up").await.unwrap();
    assert_eq!(up.iter().map(|s| s.value).collect::<Vec<_>>(), [1.0]);

    demo.terminate().await;
    let status = demo.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
    assert!(
        status.success(),
        "the demo exited with {status}\n{}",
        demo.output()
    );
}

/// Everything read so far from one of the demo's pipes.
#[derive(Debug, Default)]
struct Pipe {
    text: String,
    /// The demo closed the pipe (it exited).
    closed: bool,
}

/// The demo's process, killed if the test fails before it exits.
struct Demo {
    child: Child,
    stdout: watch::Receiver<Pipe>,
    stderr: watch::Receiver<Pipe>,
    readers: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Starts the demo with `args` besides the metrics address.
    fn start(fleet: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(fleet)
            // Any free port for its `/metrics`, so runs never collide.
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", fleet.display()));
        let (stdout_reader, stdout) = read_in_background(child.stdout.take().expect("piped"));
        let (stderr_reader, stderr) = read_in_background(child.stderr.take().expect("piped"));
        Self {
            child,
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    fn stdout(&self) -> String {
        self.stdout.borrow().text.clone()
    }

    fn stderr(&self) -> String {
        self.stderr.borrow().text.clone()
    }

    fn output(&self) -> String {
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    /// Waits until `find` finds something in the demo's stdout so far, and
    /// returns it; fails the test after [`PATIENCE`], or if the demo closes
    /// its stdout first.
    async fn wait_for_stdout<T>(&self, what: &str, find: impl Fn(&str) -> Option<T>) -> T {
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

    /// Sends SIGTERM.
    async fn terminate(&self) {
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
    async fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
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

/// Builds the `fleet` example of `supervisor-core` into this workspace's target
/// directory and returns the path of the executable, as cargo reports it.
fn build_the_demo() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let output = std::process::Command::new(env!("CARGO"))
        .current_dir(workspace)
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
fn final_metrics(stdout: &str) -> Vec<(String, u64)> {
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
fn assert_drained_truthfully(stdout: &str, output: &str) {
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

/// The chaos task's first `call` (`stop`, `restart`, `remove`) that
/// returned `Ok` (`<time>  chaos: <call> <service> → Ok<detail>`): its
/// service, its detail, and the demo's lines from the call's announcement
/// (`<time>  chaos: <call> <service>`) on.
fn chaos_success<'a>(stdout: &'a str, call: &str) -> Option<(&'a str, &'a str, Vec<&'a str>)> {
    let lines: Vec<&str> = stdout.lines().collect();
    let prefix = format!("chaos: {call} ");
    let (at, service, ok) = lines.iter().enumerate().find_map(|(at, line)| {
        let (_, rest) = line.split_once(&prefix)?;
        let (service, result) = rest.split_once(" → ")?;
        Some((at, service, result.strip_prefix("Ok")?))
    })?;
    let announced = format!("chaos: {call} {service}");
    let from = lines[..at]
        .iter()
        .rposition(|line| line.ends_with(&announced))?;
    Some((service, ok, lines[from..].to_vec()))
}

/// The changes in the event lines of `service` among `lines`
/// (`<time>  <service>  <change>`).
fn event_changes<'a>(lines: &[&'a str], service: &'a str) -> impl Iterator<Item = &'a str> {
    lines.iter().filter_map(move |line| {
        let (time, rest) = line.trim_start().split_once("  ")?;
        time.strip_suffix('s')?.parse::<f64>().ok()?;
        Some(rest.strip_prefix(service)?.trim_start())
    })
}
