//! The demo as a real process: built with cargo, started, sent SIGTERM after a
//! few seconds, it exits 0 within its shutdown timeout with every service
//! drained and the one that ignores cancellation reported as aborted.
//!
//! Real time on purpose: this is the only test of the signal handling and of
//! the demo's output. Unix only (it sends SIGTERM with `kill`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::time::Instant;

/// The demo's shutdown timeout (`SHUTDOWN_TIMEOUT` in `examples/fleet.rs`).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the demo runs before SIGTERM: time for restarts, a panic and the
/// circuit breaker of `price-poller` (which trips after about 1.5 s).
const RUN_FOR: Duration = Duration::from_secs(3);

/// Slack on top of the shutdown timeout for the process to exit.
const EXIT_MARGIN: Duration = Duration::from_secs(3);

/// How long to wait, after [`RUN_FOR`], for the circuit breaker to trip on a
/// slow machine before failing.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_demo_drains_every_service_on_sigterm_and_exits_0() {
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet);

    // Let it run, at least until the circuit breaker has tripped.
    tokio::time::sleep(RUN_FOR).await;
    let deadline = Instant::now() + PATIENCE;
    while !demo.stdout().contains("circuit breaker open") {
        assert!(
            Instant::now() < deadline,
            "the circuit never tripped\n{}",
            demo.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        demo.child.try_wait().expect("the demo's status").is_none(),
        "the demo exited before SIGTERM\n{}",
        demo.output()
    );

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .expect("`kill` runs");
    assert!(kill.success(), "kill -TERM failed: {kill}");
    let status = demo.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
    let took = signalled.elapsed();
    demo.join_readers();

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
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_demo_and_sees_the_flaky_service_restart() {
    use tests::prometheus::{PrometheusServer, ScrapeConfig, Tool};

    let Some(prometheus) = Tool::Prometheus.require().unwrap() else {
        return;
    };
    let fleet = build_the_demo();
    let mut demo = Demo::start(&fleet);
    let addr = demo.metrics_addr().await;

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
                "prometheus never saw a restart: {err}
{}
{}",
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

    let kill = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .expect("`kill` runs");
    assert!(kill.success());
    let status = demo.wait_for_exit(SHUTDOWN_TIMEOUT + EXIT_MARGIN).await;
    assert!(
        status.success(),
        "the demo exited with {status}\n{}",
        demo.output()
    );
}

/// The demo's process, killed if the test fails before it exits.
struct Demo {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Demo {
    fn start(fleet: &Path) -> Self {
        let mut child = Command::new(fleet)
            // Any free port for its `/metrics`, so runs never collide.
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", fleet.display()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            read_in_background(child.stdout.take().expect("piped"), Arc::clone(&stdout)),
            read_in_background(child.stderr.take().expect("piped"), Arc::clone(&stderr)),
        ];
        Self {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The address the demo printed for its `/metrics` endpoint.
    async fn metrics_addr(&self) -> std::net::SocketAddr {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self.stdout().lines().find_map(|line| {
                line.strip_prefix("serving metrics on http://")?
                    .strip_suffix("/metrics")?
                    .parse()
                    .ok()
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "the demo never printed its metrics address\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn output(&self) -> String {
        let stderr = self.stderr.lock().unwrap().clone();
        format!("--- stdout\n{}\n--- stderr\n{stderr}", self.stdout())
    }

    /// Waits up to `limit` for the demo to exit; fails the test otherwise.
    async fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("the demo's status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not exit within {limit:?} of SIGTERM\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the pipes are closed and read to their end.
    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            reader.join().expect("a pipe reader");
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Appends everything read from `pipe` to `into`, on its own thread, so the
/// demo never blocks on a full pipe.
fn read_in_background(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut text = into.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    })
}

/// Builds the `fleet` example of `supervisor-core` into this workspace's target
/// directory and returns the path of the executable, as cargo reports it.
fn build_the_demo() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let output = Command::new(env!("CARGO"))
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
