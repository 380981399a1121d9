//! Temporary services (OTP's temporary children, jobs): a process that spawns
//! uniquely named jobs for ever keeps a bounded registry, bounded metric
//! series and flat memory.
//!
//! A test binary of its own because it counts the live bytes of the heap with
//! a counting global allocator (`stats_alloc`), and reads the process's
//! resident set: other tests running alongside would move both.

#![allow(missing_docs)]

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use supervisor_core::{
    RestartPolicy, ServiceContext, SpawnOptions, Supervisor, SupervisorConfig, service_fn,
};
use supervisor_prometheus::PrometheusSink;
use supervisor_prometheus::prometheus_client::registry::Registry;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Jobs in all, each spawned once under its own name.
const JOBS: usize = 100_000;

/// Jobs in flight at a time.
const BATCH: usize = 1_000;

/// Jobs run before measuring, for the runtime's, the registry's and the
/// sink's tables to reach their working size.
const WARM_UP: usize = 10 * BATCH;

/// The live heap may grow by this much over the measured jobs: tables that
/// settle a little later (hash tables that rehash into a larger size while
/// names come and go). Keeping anything per job would take several MiB.
const MAX_LIVE_GROWTH: isize = 2 * 1024 * 1024;

/// The resident set may grow by this much (fragmentation, lazily touched
/// pages), far below what keeping anything per job would take (100k jobs).
#[cfg(target_os = "linux")]
const MAX_RSS_GROWTH: u64 = 8 * 1024 * 1024;

#[test]
fn a_hundred_thousand_temporary_jobs_leave_no_entry_no_series_and_flat_memory() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let mut registry = Registry::default();
        let sink = Arc::new(PrometheusSink::register(&mut registry));
        let supervisor = Supervisor::new(
            SupervisorConfig::default()
                .without_signal_handler()
                .with_metrics_sink(sink),
        );
        let options = || {
            SpawnOptions::default()
                .restart_policy(RestartPolicy::Never)
                .temporary()
        };
        let run_batch = |first: usize| {
            let supervisor = supervisor.clone();
            async move {
                let mut handles = Vec::with_capacity(BATCH);
                for i in first..first + BATCH {
                    let job = service_fn(format!("job-{i:06}"), |_ctx: ServiceContext| async {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        anyhow::Ok(())
                    });
                    handles.push(
                        supervisor
                            .spawn_service_with_options(job, options())
                            .unwrap(),
                    );
                }
                assert!(supervisor.service_count() >= 1, "registered while they run");
                for handle in handles {
                    handle.wait_terminated().await;
                    assert!(handle.is_removed());
                }
                assert_eq!(supervisor.service_count(), 0);
            }
        };

        for first in (0..WARM_UP).step_by(BATCH) {
            run_batch(first).await;
        }
        #[cfg(target_os = "linux")]
        let rss_before = resident_set_bytes();
        let region = Region::new(GLOBAL);
        for first in (WARM_UP..JOBS).step_by(BATCH) {
            run_batch(first).await;
        }
        let change = region.change();
        // Live bytes: allocated minus freed (a reallocation's growth or
        // shrinkage is counted in those two already).
        let live = change.bytes_allocated as isize - change.bytes_deallocated as isize;
        let measured = JOBS - WARM_UP;
        println!("temporary: jobs={measured} live_heap_growth={live} bytes");
        assert!(
            live < MAX_LIVE_GROWTH,
            "the live heap grew by {live} bytes over {measured} jobs"
        );
        #[cfg(target_os = "linux")]
        {
            let rss_after = resident_set_bytes();
            let growth = rss_after.saturating_sub(rss_before);
            println!("temporary: rss_before={rss_before} rss_after={rss_after} growth={growth}");
            assert!(
                growth < MAX_RSS_GROWTH,
                "the resident set grew by {growth} bytes over {measured} jobs"
            );
        }

        let metrics = supervisor.metrics().snapshot();
        assert_eq!(metrics.spawned_total, JOBS as u64);
        assert_eq!(metrics.terminated_total, JOBS as u64);
        assert_eq!(supervisor.service_count(), 0);
        let exposition = supervisor_prometheus::render_prometheus_text(&registry).unwrap();
        assert!(
            !exposition.contains("job-"),
            "no series of a forgotten job is left:\n{}",
            exposition
                .lines()
                .filter(|line| line.contains("job-"))
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    });
}

/// The resident set of this process, in bytes (`VmRSS` of
/// `/proc/self/status`).
#[cfg(target_os = "linux")]
fn resident_set_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}
