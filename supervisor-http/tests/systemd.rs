//! The systemd notifier in a real child process, against a real Unix
//! datagram socket bound by the test: the test plays the service manager.
//!
//! The child is this test binary run again with `SUPERVISOR_HTTP_SYSTEMD_CHILD`
//! set to a scenario: [`child_process`] then runs a supervisor with the
//! notifier instead of returning. The test sets `NOTIFY_SOCKET` and
//! `WATCHDOG_USEC` for it as systemd does, and `WATCHDOG_PID` too, through
//! `sh -c 'export WATCHDOG_PID=$$; exec …'` (the shell's pid is the child's
//! after `exec`): `sd-notify` honours `WATCHDOG_USEC` only in the process it
//! names. The child's services wait for lines on its stdin, so the test
//! decides when they are ready, or when the critical one fails.
//!
//! Real time on purpose, and nothing sleeps for a fixed time: each step waits
//! for a notification (or the child's exit) up to a generous deadline. The
//! watchdog's pace is checked with bounds that a slow machine cannot break:
//! no more pings than one per half interval since the child started, and no
//! gap longer than the whole interval (what systemd itself enforces). Linux
//! only (it sends SIGTERM with `kill`).

#![cfg(all(target_os = "linux", feature = "systemd"))]

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{
    RestartPolicy, ServiceContext, ShutdownError, SpawnOptions, Supervisor, SupervisorConfig,
    service_fn,
};
use supervisor_http::systemd::{self, Notifier, ReadyWhen};
use tokio::net::UnixDatagram;
use tokio::sync::watch;
use tokio::time::Instant;

/// The variable that makes this binary a child, and names its scenario.
const CHILD: &str = "SUPERVISOR_HTTP_SYSTEMD_CHILD";

/// `WATCHDOG_USEC` for the child: it pings every half of it.
const WATCHDOG: Duration = Duration::from_secs(3);

/// The child's shutdown timeout, as the demo's.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the stubborn service of the `critical` scenario holds the drain:
/// two watchdog periods, during which no ping may come.
const STUBBORN_STOP: Duration = WATCHDOG;

/// The longest any one step may take on a slow machine before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The child's exit code when its critical service failed for good (the
/// demo's).
const CRITICAL_FAILED: i32 = 2;

#[tokio::test]
async fn ready_status_watchdog_and_stopping_reach_the_service_manager() {
    let mut run = Run::start("ready", Some(WATCHDOG)).await;

    // Before `db` is ready: the status says what waits, the watchdog is fed,
    // and no READY=1.
    run.wait_for(
        "three pings and a status naming what is not ready",
        |seen| seen.count("WATCHDOG=1") >= 3 && seen.any("STATUS=3 services, 2 not ready: api, db"),
    )
    .await;
    let ready = run.make_ready("STATUS=3 services, all ready").await;

    // The watchdog goes on once ready.
    run.wait_for("two more pings", |seen| {
        seen.count_after(ready, "WATCHDOG=1") >= 2
    })
    .await;

    run.terminate();
    run.wait_for("STOPPING=1", |seen| seen.any("STOPPING=1"))
        .await;
    let stopping = run.seen().index_of("STOPPING=1");
    assert!(
        run.seen().datagrams[stopping].lines.iter().any(|line| {
            // The drain of these cooperative services may be over by the
            // time the status is computed.
            line.starts_with("STATUS=shutting down (received SIGTERM): ")
                || line == "STATUS=drained (received SIGTERM)"
        }),
        "STOPPING=1 comes with the status\n{}",
        run.dump()
    );

    let status = run.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "{}", run.dump());
    run.read_the_rest();
    let seen = run.seen();
    assert_eq!(seen.count("READY=1"), 1, "{}", run.dump());
    assert_eq!(seen.count("STOPPING=1"), 1, "{}", run.dump());
    assert!(ready < stopping);
    assert_eq!(
        seen.last_status(),
        Some("drained (received SIGTERM)"),
        "{}",
        run.dump()
    );
    run.check_the_watchdog_pace(stopping);
}

#[tokio::test]
async fn no_watchdog_once_a_critical_service_failed() {
    let mut run = Run::start("critical", Some(WATCHDOG)).await;
    run.wait_for("READY=1", |seen| seen.any("READY=1")).await;
    let ready = run.seen().index_of("READY=1");
    run.wait_for("three pings, two after READY=1", |seen| {
        seen.count("WATCHDOG=1") >= 3 && seen.count_after(ready, "WATCHDOG=1") >= 2
    })
    .await;

    run.say("fail");
    run.wait_for("STOPPING=1", |seen| seen.any("STOPPING=1"))
        .await;
    let stopping = run.seen().index_of("STOPPING=1");
    assert!(
        run.seen().datagrams[stopping].lines.iter().any(|line| {
            line.starts_with("STATUS=shutting down (critical service `feed` failed: ")
        }),
        "STOPPING=1 names the critical service\n{}",
        run.dump()
    );

    let status = run.wait_for_exit().await;
    assert_eq!(status.code(), Some(CRITICAL_FAILED), "{}", run.dump());
    run.read_the_rest();
    // The drain held the stubborn service for its stop timeout (two watchdog
    // periods, as the child measured it), and no ping came all along.
    let took = run.drain_took();
    assert!(
        took >= STUBBORN_STOP,
        "the drain took {took:?}\n{}",
        run.dump()
    );
    assert_eq!(
        run.seen().count_after(stopping, "WATCHDOG=1"),
        0,
        "the watchdog was fed after a critical failure\n{}",
        run.dump()
    );
    run.check_the_watchdog_pace(stopping);
}

#[tokio::test]
async fn ready_when_the_critical_services_are_despite_a_failed_one() {
    let mut run = Run::start("critical-ready", None).await;
    run.wait_for("a status naming the failed service", |seen| {
        seen.any("STATUS=2 services, 1 not ready: feed; 1 failed for good: poller")
    })
    .await;
    run.make_ready("STATUS=2 services, 1 failed for good: poller")
        .await;

    run.terminate();
    run.wait_for("STOPPING=1", |seen| seen.any("STOPPING=1"))
        .await;
    let status = run.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "{}", run.dump());
    run.read_the_rest();
    assert_eq!(run.seen().count("READY=1"), 1, "{}", run.dump());
    assert_eq!(
        run.seen().count("WATCHDOG=1"),
        0,
        "no WATCHDOG_USEC\n{}",
        run.dump()
    );
}

#[tokio::test]
async fn without_notify_socket_the_notifier_returns_at_once() {
    let mut run = Run::start("no-socket", None).await;
    let status = run.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "{}", run.dump());
    run.read_the_rest();
    assert!(run.seen().datagrams.is_empty(), "{}", run.dump());
}

/// The child's entry point: returns at once, unless this process was started
/// by one of the tests above (then it exits with the supervisor's outcome).
#[test]
fn child_process() {
    let Ok(scenario) = std::env::var(CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let code = runtime.block_on(child(&scenario));
    drop(runtime);
    std::process::exit(code);
}

/// Runs `scenario` in the child and returns its exit code.
async fn child(scenario: &str) -> i32 {
    let said = listen_to_stdin();
    let config = SupervisorConfig::default().with_shutdown_timeout(SHUTDOWN_TIMEOUT);
    let supervisor = Supervisor::new(config);
    let mut ready_when = ReadyWhen::AllServices;
    match scenario {
        "ready" => {
            let db = ready_when_told("db", said);
            let options = SpawnOptions::default().signals_readiness();
            supervisor
                .spawn_service_with_options(db, options)
                .expect("db");
            let after_db = SpawnOptions::default().after(["db"]);
            supervisor
                .spawn_service_with_options(idle("api"), after_db)
                .expect("api");
            supervisor.spawn_service(idle("cache")).expect("cache");
        }
        "critical" => {
            let feed = service_fn("feed", move |ctx: ServiceContext| {
                let mut said = said.clone();
                async move {
                    tokio::select! {
                        _ = said.wait_for(|lines| lines.iter().any(|line| line == "fail")) => {
                            Err(std::io::Error::other("the exchange hung up"))
                        }
                        () = ctx.cancelled() => Ok(()),
                    }
                }
            });
            let critical = SpawnOptions::default()
                .critical()
                .restart_policy(RestartPolicy::Never);
            supervisor
                .spawn_service_with_options(feed, critical)
                .expect("feed");
            let stubborn = service_fn("stubborn", |_ctx: ServiceContext| {
                std::future::pending::<Result<(), std::io::Error>>()
            });
            let held = SpawnOptions::default().stop_timeout(STUBBORN_STOP);
            supervisor
                .spawn_service_with_options(stubborn, held)
                .expect("stubborn");
        }
        "critical-ready" => {
            let feed = ready_when_told("feed", said);
            let critical = SpawnOptions::default().critical().signals_readiness();
            supervisor
                .spawn_service_with_options(feed, critical)
                .expect("feed");
            let poller = service_fn("poller", |_ctx: ServiceContext| async {
                Err::<(), _>(std::io::Error::other("the upstream is gone"))
            })
            .with_restart_policy(RestartPolicy::Never);
            supervisor.spawn_service(poller).expect("poller");
            ready_when = ReadyWhen::CriticalServices;
        }
        "no-socket" => {
            supervisor.spawn_service(idle("feed")).expect("feed");
            let returned = tokio::time::timeout(PATIENCE, systemd::notify(&supervisor)).await;
            let at_once = returned.is_ok() && !supervisor.is_shutting_down();
            supervisor.trigger_shutdown();
            supervisor.wait_for_drain().await;
            return if at_once { 0 } else { 3 };
        }
        other => panic!("no scenario {other:?}"),
    }
    let notifier = Notifier::new(&supervisor)
        .with_status_interval(Duration::from_millis(100))
        .with_ready_when(ready_when)
        .spawn();
    let outcome = supervisor.run_until_shutdown().await;
    notifier.await.expect("the notifier ends cleanly");
    match outcome {
        Ok(report) => {
            println!("drain took {} ms", report.took.as_millis());
            0
        }
        Err(ShutdownError::CriticalFailed { report, .. }) => {
            println!("drain took {} ms", report.took.as_millis());
            CRITICAL_FAILED
        }
        Err(error) => {
            eprintln!("{error}");
            1
        }
    }
}

/// A service that says it is ready once `ready` was written to stdin.
fn ready_when_told(
    name: &'static str,
    said: watch::Receiver<Vec<String>>,
) -> impl supervisor_core::Service {
    service_fn(name, move |ctx: ServiceContext| {
        let mut said = said.clone();
        async move {
            tokio::select! {
                _ = said.wait_for(|lines| lines.iter().any(|line| line == "ready")) => ctx.ready(),
                () = ctx.cancelled() => return Ok(()),
            }
            ctx.cancelled().await;
            Ok::<(), std::io::Error>(())
        }
    })
}

/// A service that runs until it is asked to stop.
fn idle(name: &'static str) -> impl supervisor_core::Service {
    service_fn(name, |ctx: ServiceContext| async move {
        ctx.cancelled().await;
        Ok::<(), std::io::Error>(())
    })
}

/// The lines read so far from stdin, by a thread of their own (a blocking
/// read must not hold up the runtime's shutdown).
fn listen_to_stdin() -> watch::Receiver<Vec<String>> {
    let (lines, said) = watch::channel(Vec::new());
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            lines.send_modify(|lines| lines.push(line));
        }
    });
    said
}

/// One datagram the child sent, split in its `KEY=value` lines.
#[derive(Debug)]
struct Datagram {
    at: Instant,
    lines: Vec<String>,
}

/// Every datagram received so far, in order.
#[derive(Debug, Default)]
struct Seen {
    datagrams: Vec<Datagram>,
}

impl Seen {
    fn count(&self, line: &str) -> usize {
        self.count_after_index(0, line)
    }

    /// How many datagrams after the one at `index` carry `line`.
    fn count_after(&self, index: usize, line: &str) -> usize {
        self.count_after_index(index + 1, line)
    }

    fn count_after_index(&self, from: usize, line: &str) -> usize {
        self.datagrams
            .iter()
            .skip(from)
            .filter(|datagram| datagram.lines.iter().any(|l| l == line))
            .count()
    }

    fn any(&self, line: &str) -> bool {
        self.count(line) > 0
    }

    /// The index of the first datagram that carries `line`.
    fn index_of(&self, line: &str) -> usize {
        self.datagrams
            .iter()
            .position(|datagram| datagram.lines.iter().any(|l| l == line))
            .unwrap_or_else(|| panic!("no {line}"))
    }

    fn last_status(&self) -> Option<&str> {
        self.datagrams
            .iter()
            .flat_map(|datagram| &datagram.lines)
            .filter_map(|line| line.strip_prefix("STATUS="))
            .next_back()
    }

    /// The times of the `WATCHDOG=1` datagrams before the one at `index`.
    fn pings_before(&self, index: usize) -> Vec<Instant> {
        self.datagrams[..index]
            .iter()
            .filter(|datagram| datagram.lines.iter().any(|line| line == "WATCHDOG=1"))
            .map(|datagram| datagram.at)
            .collect()
    }
}

/// The child process, the socket it notifies, and what it said.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    started: Instant,
    socket: UnixDatagram,
    path: PathBuf,
    seen: Seen,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Run {
    /// Binds the socket and starts the child for `scenario`, with
    /// `WATCHDOG_USEC` set to `watchdog` (and without `NOTIFY_SOCKET` for
    /// the `no-socket` scenario).
    async fn start(scenario: &str, watchdog: Option<Duration>) -> Self {
        let path = std::env::temp_dir().join(format!(
            "supervisor-http-systemd-{}-{scenario}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        let mut command = Command::new("sh");
        command
            .args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""])
            .arg(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, scenario)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if scenario != "no-socket" {
            command.env("NOTIFY_SOCKET", &path);
        }
        if let Some(watchdog) = watchdog {
            command.env("WATCHDOG_USEC", watchdog.as_micros().to_string());
        }
        let started = Instant::now();
        let mut child = command.spawn().expect("start the child");
        let stdin = child.stdin.take();
        let (stdout, stdout_reader) = read_in_background(child.stdout.take().expect("piped"));
        let (stderr, stderr_reader) = read_in_background(child.stderr.take().expect("piped"));
        Self {
            child,
            stdin,
            started,
            socket,
            path,
            seen: Seen::default(),
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        }
    }

    fn seen(&self) -> &Seen {
        &self.seen
    }

    /// Receives datagrams until `done` holds for what was seen; fails the
    /// test after [`PATIENCE`].
    async fn wait_for(&mut self, what: &str, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.seen) {
            let mut buffer = [0; 4096];
            match tokio::time::timeout_at(deadline, self.socket.recv(&mut buffer)).await {
                Ok(Ok(len)) => self.record(&buffer[..len]),
                Ok(Err(error)) => panic!("cannot receive: {error}\n{}", self.dump()),
                Err(_elapsed) => panic!("no {what} within {PATIENCE:?}\n{}", self.dump()),
            }
        }
    }

    /// Checks that no `READY=1` came yet, tells the child's services to be
    /// ready, waits for `READY=1` and checks that `status` came with it;
    /// returns the index of its datagram.
    async fn make_ready(&mut self, status: &str) -> usize {
        assert_eq!(
            self.seen.count("READY=1"),
            0,
            "ready too early\n{}",
            self.dump()
        );
        self.say("ready");
        self.wait_for("READY=1", |seen| seen.any("READY=1")).await;
        let ready = self.seen.index_of("READY=1");
        assert!(
            self.seen.datagrams[ready]
                .lines
                .iter()
                .any(|line| line == status),
            "READY=1 comes with {status}\n{}",
            self.dump()
        );
        ready
    }

    /// Reads what is left in the socket (the child has exited: all it sent
    /// is there).
    fn read_the_rest(&mut self) {
        let mut buffer = [0; 4096];
        while let Ok(len) = self.socket.try_recv(&mut buffer) {
            self.record(&buffer[..len]);
        }
    }

    fn record(&mut self, datagram: &[u8]) {
        let text = String::from_utf8_lossy(datagram);
        self.seen.datagrams.push(Datagram {
            at: Instant::now(),
            lines: text.lines().map(str::to_owned).collect(),
        });
    }

    /// Writes `line` to the child's stdin.
    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush");
    }

    /// Sends SIGTERM to the child.
    fn terminate(&self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("`kill` runs");
        assert!(kill.success(), "kill -TERM failed: {kill}");
    }

    /// Waits for the child to exit and for its output to be read, up to
    /// [`PATIENCE`].
    async fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the child did not exit within {PATIENCE:?}\n{}",
                self.dump()
            );
            // Polling, not an assertion: std has no wait with a deadline.
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.stdin = None;
        for reader in self.readers.drain(..) {
            reader.join().expect("a pipe reader");
        }
        status
    }

    /// The drain's duration, as the child printed it.
    fn drain_took(&self) -> Duration {
        let stdout = self.stdout.lock().expect("stdout").clone();
        let millis = stdout
            .lines()
            // libtest may have printed the test's name on the same line.
            .find_map(|line| line.split_once("drain took ").map(|(_, rest)| rest))
            .and_then(|rest| rest.strip_suffix(" ms"))
            .and_then(|millis| millis.parse().ok())
            .unwrap_or_else(|| panic!("no drain time\n{}", self.dump()));
        Duration::from_millis(millis)
    }

    /// The watchdog's pings before the datagram at `stopping` came every
    /// half `WATCHDOG_USEC`: no gap longer than the whole of it (systemd's
    /// deadline), and no more of them than one per half since the child
    /// started (sends cannot be closer than the period; receiving late
    /// only bunches them up).
    fn check_the_watchdog_pace(&self, stopping: usize) {
        let period = WATCHDOG / 2;
        let pings = self.seen.pings_before(stopping);
        assert!(pings.len() >= 3, "{} pings\n{}", pings.len(), self.dump());
        for pair in pings.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap <= WATCHDOG,
                "a gap of {gap:?} between pings\n{}",
                self.dump()
            );
        }
        let last = *pings.last().expect("pings");
        let most = (last - self.started).as_secs_f64() / period.as_secs_f64() + 1.0;
        assert!(
            pings.len() as f64 <= most,
            "{} pings in {:?}: more than one per {period:?}\n{}",
            pings.len(),
            last - self.started,
            self.dump()
        );
    }

    /// Everything seen, for a failure message.
    fn dump(&self) -> String {
        let mut text = String::from("--- notifications\n");
        for datagram in &self.seen.datagrams {
            let at = datagram.at - self.started;
            text.push_str(&format!("{at:>10.3?}  {}\n", datagram.lines.join(" | ")));
        }
        text.push_str("--- child stdout\n");
        text.push_str(&self.stdout.lock().expect("stdout"));
        text.push_str("--- child stderr\n");
        text.push_str(&self.stderr.lock().expect("stderr"));
        text
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads `pipe` to its end on a thread of its own, so the child never
/// blocks on a full pipe.
fn read_in_background(
    mut pipe: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let writer = Arc::clone(&text);
    let reader = std::thread::spawn(move || {
        let mut buffer = [0; 4096];
        while let Ok(len) = pipe.read(&mut buffer) {
            if len == 0 {
                break;
            }
            let chunk = String::from_utf8_lossy(&buffer[..len]).into_owned();
            writer.lock().expect("output").push_str(&chunk);
        }
    });
    (text, reader)
}
