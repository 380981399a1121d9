//! What a terminated service keeps: its registry entry and lifecycle (until
//! it is removed), and nothing of its task.
//!
//! A test binary of its own because it counts the live bytes of the heap with
//! a counting global allocator (`stats_alloc`), which replaces the allocator
//! of the whole process. Live bytes, not the resident set: a resident set
//! also grows when the small allocations a terminated service keeps are
//! carved out of a freed task's memory (fragmentation), which says nothing
//! about what is kept.
//!
//! Each service's run holds a 1 KiB buffer across an `.await`: its task is
//! over 1 KiB, and stored inline in tokio's task allocation (tokio boxes only
//! futures above 2 KiB in debug builds, 16 KiB in release ones). A task kept
//! alive by a forgotten handle would keep over 1 KiB per service.

#![allow(missing_docs)]

use std::alloc::System;
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use supervisor_core::{RestartPolicy, ServiceContext, Supervisor, SupervisorConfig, service_fn};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The size of each run's future, at least.
const BUFFER: usize = 1024;

/// Services measured, after a warm-up batch of the same size.
const SERVICES: usize = 2_000;

/// The most a terminated service may keep: its slot, lifecycle, name and
/// registry entry take a few hundred bytes; a kept task would add over
/// [`BUFFER`].
const MAX_BYTES_PER_TERMINATED: usize = 768;

#[test]
fn a_terminated_service_keeps_its_entry_and_lifecycle_but_not_its_task() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
        let spawn_and_wait = |first: usize| {
            let supervisor = supervisor.clone();
            async move {
                for i in first..first + SERVICES {
                    let job = service_fn(format!("job-{i:06}"), |_ctx: ServiceContext| async {
                        let buffer = [7_u8; BUFFER];
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        std::hint::black_box(&buffer);
                        anyhow::Ok(())
                    })
                    .with_restart_policy(RestartPolicy::Never);
                    supervisor.spawn_service(job).expect("a valid service");
                }
                assert!(supervisor.wait_for_drain().await.is_clean());
            }
        };
        // The first batch grows the registry's table and the runtime's
        // buffers to their size; the second is measured.
        spawn_and_wait(0).await;
        let region = Region::new(GLOBAL);
        spawn_and_wait(SERVICES).await;
        let change = region.change();

        // Live bytes: allocated minus freed (a reallocation's growth or
        // shrinkage is counted in those two already).
        let kept = change.bytes_allocated as isize - change.bytes_deallocated as isize;
        let per_service = kept.max(0).unsigned_abs() / SERVICES;
        println!("terminated: services={SERVICES} kept_bytes={kept} per_service={per_service}");
        assert_eq!(
            supervisor.service_count(),
            2 * SERVICES,
            "all still registered"
        );
        assert_eq!(supervisor.metrics().snapshot().active_services, 0);
        assert!(
            per_service < MAX_BYTES_PER_TERMINATED,
            "each terminated service keeps {per_service} bytes"
        );
    });
}
