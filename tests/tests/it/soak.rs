//! Memory: the resident set stays flat over two hundred thousand restarts of
//! a service that fails as soon as it starts, with no backoff. A restart
//! allocates nothing that outlives it: one task per service, which loops
//! instead of respawning, tracked by a `TaskTracker` that keeps no per-task
//! result.
//!
//! The resident set is the whole process's, and the other tests of this
//! binary run on parallel threads, so the test measures in a child process:
//! it runs this same test binary again, filtered to this one test, with
//! [`CHILD`] set, and checks that the child passed. Linux only (it reads
//! `/proc/self/status`).
//!
//! The runtime is real (not paused): a zero backoff arms no timer, so the
//! restarts run as fast as the machine goes. Nothing polls or sleeps: a sink
//! wakes the test when the service reaches the start count it waits for,
//! and the test measures there.
//!
//! # Why these numbers
//!
//! - [`WARM_UP`]: the resident set reaches its steady size within the first
//!   thousand restarts (the runtime's and the allocator's first growth);
//!   twenty times that leaves a wide margin. The first read of
//!   `/proc/self/status` also moves the heap's top, once, by 64 to 128 KiB:
//!   the warm-up reads it once too, so the measured growth is that of the
//!   restarts alone (zero pages in every run so far).
//! - [`RESTARTS`] and [`MAX_GROWTH`]: 256 KiB over 200 000 restarts is about
//!   1.3 bytes per restart (the test ran a million restarts against 1 MiB
//!   before), so a leak of even the smallest heap block (32 bytes with glibc)
//!   on every restart exceeds it 25 times over, and on one restart in ten
//!   still more than twice, while the allocator's page-sized noise stays far
//!   below it.
//! - Time: a restart takes about 2.5 µs in the dev profile on one core (the
//!   supervisor, the built-in counters and this sink), so the 220 000
//!   restarts take about half a second, and the whole test, child process
//!   included, about a second even with the rest of the suite running on the
//!   other core. [`TIMEOUT`] only turns a hang into a failure.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, MetricsSink, RestartPolicy, ServiceContext, SpawnOptions, Supervisor, service_fn,
};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::support::{ScriptError, config};

/// Set in the child process, which does the measuring.
const CHILD: &str = "SUPERVISOR_SOAK_CHILD";

/// Restarts before the first measurement, so every buffer, arena and cache
/// has reached its steady size.
const WARM_UP: u64 = 20_000;

/// Restarts between the two measurements.
const RESTARTS: u64 = 200_000;

/// The most the resident set may grow over [`RESTARTS`]: 256 KiB, about 1.3
/// bytes per restart.
const MAX_GROWTH: u64 = 256 << 10;

/// Fails the test if the restarts take longer than this (they take about half
/// a second in the dev profile).
const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn rss_stays_flat_over_many_restarts_of_an_instantly_failing_service() {
    if std::env::var_os(CHILD).is_some() {
        measure();
        return;
    }
    let this_test = format!(
        "{}::rss_stays_flat_over_many_restarts_of_an_instantly_failing_service",
        module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_crate, path)| path)
    );
    let exe = std::env::current_exe().expect("the path of this test binary");
    let output = Command::new(exe)
        .args([
            this_test.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the soak failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "the child ran the soak:\n{stdout}"
    );
    assert!(stdout.contains("soak: restarts="), "{stdout}");
}

/// A sink that wakes the test when the service reaches the start count the
/// test waits for.
#[derive(Debug, Default)]
struct StartCount {
    target: AtomicU64,
    reached: Notify,
}

impl StartCount {
    /// Waits until the service has been started `n` times; fails the test at
    /// `deadline`. Must be called before the service gets there (the service
    /// runs on the same current-thread runtime, so it does not move on while
    /// the target is set).
    async fn wait_for_start(&self, n: u64, deadline: Instant) {
        self.target.store(n, Ordering::Relaxed);
        let reached = tokio::time::timeout_at(deadline, self.reached.notified()).await;
        assert!(reached.is_ok(), "fewer than {n} starts within {TIMEOUT:?}");
    }
}

impl MetricsSink for StartCount {
    type Handle = ();

    fn resolve(&self, _service: &str) {}

    fn service_started(&self, _service: &(), start_count: u64) {
        if start_count == self.target.load(Ordering::Relaxed) {
            self.reached.notify_one();
        }
    }
}

/// The child's side: runs the service, measures, asserts.
fn measure() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let starts = Arc::new(StartCount::default());
        let supervisor = Supervisor::new(config().with_metrics_sink(Arc::clone(&starts)));
        let crash_loop = service_fn("crash-loop", |_ctx: ServiceContext| async {
            Err::<(), _>(ScriptError("connection refused".to_owned()))
        })
        .with_restart_policy(RestartPolicy::OnFailure);
        let zero = BackoffConfig::new(Duration::ZERO, Duration::ZERO).without_circuit_breaker();
        supervisor
            .spawn_service_with_options(crash_loop, SpawnOptions::with_backoff(zero))
            .expect("a valid service");

        // Reading the resident set moves the heap's top the first time: do it
        // once during the warm-up. Start `n + 1` is the `n`-th restart.
        let _ = resident_set_bytes();
        let deadline = Instant::now() + TIMEOUT;
        starts.wait_for_start(WARM_UP + 1, deadline).await;
        let rss_before = resident_set_bytes();
        let restarts_before = supervisor.metrics().snapshot().restarts_total;
        let started = Instant::now();

        starts
            .wait_for_start(restarts_before + RESTARTS + 1, deadline)
            .await;
        let elapsed = started.elapsed();
        let rss_after = resident_set_bytes();
        let restarts = supervisor.metrics().snapshot().restarts_total - restarts_before;

        println!(
            "soak: restarts={restarts} seconds={:.2} rate={:.0}/s rss_before={rss_before} \
             rss_after={rss_after} growth={} bytes",
            elapsed.as_secs_f64(),
            restarts as f64 / elapsed.as_secs_f64(),
            i128::from(rss_after) - i128::from(rss_before),
        );
        assert!(restarts >= RESTARTS, "measured after {restarts} restarts");
        assert!(
            rss_after < rss_before + MAX_GROWTH,
            "the resident set grew from {rss_before} to {rss_after} bytes over {restarts} restarts"
        );

        let snapshot = supervisor
            .service_lifecycle("crash-loop")
            .expect("registered");
        assert_eq!(snapshot.failures.total(), snapshot.start_count);
        assert_eq!(snapshot.last_error.as_deref(), Some("connection refused"));
        supervisor.trigger_shutdown();
        assert!(supervisor.wait_for_drain().await.is_clean());
        assert_eq!(supervisor.metrics().snapshot().active_services, 0);
    });
}

/// The resident set of this process, in bytes (`VmRSS` of
/// `/proc/self/status`, the same count as the second field of
/// `/proc/self/statm`, but in kB rather than pages of an unknown size).
fn resident_set_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status:\n{status}"));
    kib * 1024
}
