//! Scenarios 1–3: start N idle services (each awaits cancellation), their
//! resident memory, and their drain after a shutdown request.
//!
//! Each measurement runs in a fresh process (`--child lifecycle|memory`), so
//! the allocator state one variant leaves behind never helps or hurts the next.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::fleet::{Fleet, Variant};
use crate::measure::{Arrivals, median, now, per, rss_bytes, run_on_worker, runtime};
use crate::script::{Script, names};

/// Idle services started and drained once before the timed run, so lazy
/// one-time initialisation (thread-locals, the allocator's first arenas) is
/// not charged to small N.
const WARM_UP: usize = 1_000;

/// Child `lifecycle <variant> <n> <warm-services>`: ns/service to start `n` idle services
/// until all are running, and ns/service to drain them; twice.
///
/// `cold`: the first `n` services of the process, whose memory the kernel
/// must fault in (page faults cost more the more memory a variant uses).
/// `warm`: `n` more right after the first `n` drained, on memory the
/// allocator already holds: the machinery's own CPU cost; repeated until
/// `warm_services` services were started, and the median kept.
pub(crate) fn lifecycle_child(
    variant: Variant,
    n: usize,
    warm_services: usize,
    limit: Duration,
) -> Result<Vec<(&'static str, f64)>> {
    let runtime = runtime()?;
    let warm_up = names(n.min(WARM_UP));
    let names = names(n);
    run_on_worker(&runtime, async move {
        start_and_drain(variant, &warm_up, limit).await?;
        let count = names.len() as u64;
        let cold = start_and_drain(variant, &names, limit).await?;
        // Small N are noisy: repeat the warm measurement, keep the median.
        let mut warm = Vec::new();
        for _ in 0..(warm_services / n.max(1)).max(1) {
            warm.push(start_and_drain(variant, &names, limit).await?);
        }
        let warm_median = |of: fn(&Times) -> Duration| {
            median(
                &warm
                    .iter()
                    .map(|times| per(of(times), count))
                    .collect::<Vec<_>>(),
            )
        };
        Ok(vec![
            ("cold_start_ns", per(cold.start, count)),
            ("cold_spawn_loop_ns", per(cold.spawn_loop, count)),
            ("cold_drain_ns", per(cold.drain, count)),
            ("warm_start_ns", warm_median(|times| times.start)),
            ("warm_spawn_loop_ns", warm_median(|times| times.spawn_loop)),
            ("warm_drain_ns", warm_median(|times| times.drain)),
            ("warm_repetitions", warm.len() as f64),
        ])
    })
}

/// Child `memory <variant> <n>`: the resident-set growth per idle service
/// once `n` are running. No warm-up: everything the services touch counts.
pub(crate) fn memory_child(
    variant: Variant,
    n: usize,
    limit: Duration,
) -> Result<Vec<(&'static str, f64)>> {
    let runtime = runtime()?;
    let names = names(n);
    let arrivals = Arc::new(Arrivals::new(n));
    let script = Arc::new(Script::idle(Arc::clone(&arrivals)));
    let before = rss_bytes()?;
    run_on_worker(&runtime, async move {
        let mut fleet = Fleet::start_once(variant, &names, &script)?;
        arrivals.wait(limit).await?;
        let after = rss_bytes()?;
        fleet.drain(limit).await?;
        ensure!(after >= before, "RSS shrank while starting services");
        Ok(vec![
            ("bytes_per_service", (after - before) as f64 / n as f64),
            ("rss_before", before as f64),
            ("rss_after", after as f64),
        ])
    })
}

/// Starts one idle service per name, waits until all run, then drains them.
async fn start_and_drain(
    variant: Variant,
    names: &Arc<[Arc<str>]>,
    limit: Duration,
) -> Result<Times> {
    let arrivals = Arc::new(Arrivals::new(names.len()));
    let script = Arc::new(Script::idle(Arc::clone(&arrivals)));

    let started = now();
    let mut fleet = Fleet::start_once(variant, names, &script)?;
    let spawned = started.elapsed();
    arrivals.wait(limit).await?;
    let start = started.elapsed();

    let supervisor = fleet.supervisor().cloned();
    let drained = now();
    fleet.drain(limit).await?;
    let drain = drained.elapsed();
    drop(fleet);

    if let Some(supervisor) = supervisor {
        let metrics = supervisor.metrics().snapshot();
        ensure!(
            metrics.spawned_total == names.len() as u64
                && metrics.terminated_total == names.len() as u64
                && metrics.active_services == 0,
            "counters after the drain of {} services: {metrics:?}",
            names.len()
        );
    }
    ensure!(
        script.runs() == names.len() as u64,
        "{} runs for {} services",
        script.runs(),
        names.len()
    );
    Ok(Times {
        start,
        spawn_loop: spawned,
        drain,
    })
}

/// What [`start_and_drain`] measured.
#[derive(Debug, Clone, Copy)]
struct Times {
    /// From the first spawn until every service runs.
    start: Duration,
    /// Of which the spawning loop itself (the peer spawns from its own task:
    /// there the loop is only the `Toplevel` creation).
    spawn_loop: Duration,
    /// From the shutdown request until every service ended.
    drain: Duration,
}
