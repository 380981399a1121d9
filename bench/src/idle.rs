//! Scenarios 1–3: start N idle services (each awaits cancellation), their
//! resident memory, and their drain after a shutdown request.
//!
//! Each measurement runs in a fresh process (`--child lifecycle|memory`), so
//! the allocator state one variant leaves behind never helps or hurts the next.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::fleet::{Fleet, Variant};
use crate::measure::{Arrivals, now, per, rss_bytes, run_on_worker, runtime};
use crate::script::{Script, names};

/// Idle services started and drained once before the timed run, so lazy
/// one-time initialisation (thread-locals, the allocator's first arenas) is
/// not charged to small N.
const WARM_UP: usize = 1_000;

/// Child `lifecycle <variant> <n>`: ns/service to start `n` idle services
/// until all are running, and ns/service to drain them.
pub(crate) fn lifecycle_child(
    variant: Variant,
    n: usize,
    limit: Duration,
) -> Result<Vec<(&'static str, f64)>> {
    let runtime = runtime()?;
    let warm_up = names(n.min(WARM_UP));
    let names = names(n);
    run_on_worker(&runtime, async move {
        start_and_drain(variant, &warm_up, limit).await?;
        let (start, drain) = start_and_drain(variant, &names, limit).await?;
        let count = names.len() as u64;
        Ok(vec![
            ("start_ns", per(start, count)),
            ("drain_ns", per(drain, count)),
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
        let fleet = Fleet::start_once(variant, &names, &script)?;
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
) -> Result<(Duration, Duration)> {
    let arrivals = Arc::new(Arrivals::new(names.len()));
    let script = Arc::new(Script::idle(Arc::clone(&arrivals)));

    let started = now();
    let fleet = Fleet::start_once(variant, names, &script)?;
    arrivals.wait(limit).await?;
    let start = started.elapsed();

    let supervisor = fleet.supervisor().cloned();
    let drained = now();
    fleet.drain(limit).await?;
    let drain = drained.elapsed();

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
    Ok((start, drain))
}
