//! Memory: the resident set stays flat over a million restarts of a service
//! that fails as soon as it starts, with no backoff. A restart allocates
//! nothing that outlives it: one task per service, which loops instead of
//! respawning, tracked by a `TaskTracker` that keeps no per-task result.
//!
//! The resident set is the whole process's, and the other tests of this
//! binary run on parallel threads, so the test measures in a child process:
//! it runs this same test binary again, filtered to this one test, with
//! [`CHILD`] set, and checks that the child passed. Linux only (it reads
//! `/proc/self/status`).
//!
//! The runtime is real (not paused): a zero backoff arms no timer, so the
//! restarts run as fast as the machine goes: about 100 000 per second in the
//! dev profile, so the full million runs in every profile in about ten
//! seconds (under load from the rest of the suite, about fifteen).

use std::process::Command;
use std::time::Duration;

use supervisor_core::{
    BackoffConfig, RestartPolicy, ServiceContext, SpawnOptions, Supervisor, service_fn,
};
use tokio::time::Instant;

use crate::support::{ScriptError, supervisor};

/// Set in the child process, which does the measuring.
const CHILD: &str = "SUPERVISOR_SOAK_CHILD";

/// Restarts before the first measurement, so every buffer, arena and cache
/// has reached its steady size.
const WARM_UP: u64 = 100_000;

/// Restarts between the two measurements.
const RESTARTS: u64 = 1_000_000;

/// The most the resident set may grow over [`RESTARTS`]: 1 MiB, about one
/// byte per restart.
const MAX_GROWTH: u64 = 1 << 20;

/// Fails the test if the restarts take longer than this (they take about ten
/// seconds in the dev profile).
const TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn rss_stays_flat_over_a_million_restarts_of_an_instantly_failing_service() {
    if std::env::var_os(CHILD).is_some() {
        measure();
        return;
    }
    let this_test = format!(
        "{}::rss_stays_flat_over_a_million_restarts_of_an_instantly_failing_service",
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

/// The child's side: runs the service, measures, asserts.
fn measure() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let supervisor = supervisor();
        let crash_loop = service_fn("crash-loop", |_ctx: ServiceContext| async {
            Err::<(), _>(ScriptError("connection refused".to_owned()))
        })
        .with_restart_policy(RestartPolicy::OnFailure);
        let zero = BackoffConfig::new(Duration::ZERO, Duration::ZERO).without_circuit_breaker();
        supervisor
            .spawn_service_with_options(crash_loop, SpawnOptions::with_backoff(zero))
            .expect("a valid service");

        let deadline = Instant::now() + TIMEOUT;
        wait_for_restarts(&supervisor, WARM_UP, deadline).await;
        let rss_before = resident_set_bytes();
        let restarts_before = supervisor.metrics().snapshot().restarts_total;
        let started = Instant::now();

        wait_for_restarts(&supervisor, restarts_before + RESTARTS, deadline).await;
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

/// Lets the service run until it has restarted `n` times; fails the test at
/// `deadline`.
async fn wait_for_restarts(supervisor: &Supervisor, n: u64, deadline: Instant) {
    loop {
        let restarts = supervisor.metrics().snapshot().restarts_total;
        if restarts >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {restarts} of {n} restarts within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
