//! Scenarios 4, 5 and 8: the restart cycle of one failing service (4c: with
//! one live subscriber to the lifecycle events; 4d: spawned with a heartbeat
//! interval), a burst of N services
//! failing and restarting at once, and the soak (RSS before and after a
//! million restarts).
//!
//! The project restarts a service inside its one task; raw tokio respawns the
//! run as a task and awaits it (the loop the issue names as the baseline).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use supervisor_core::{LifecycleEvents, RecvError};
use tokio_util::sync::CancellationToken;

use crate::fleet::{Fleet, Variant, zero_backoff};
use crate::measure::{Arrivals, now, per, rss_bytes, run_on_worker, runtime};
use crate::script::{Gate, Script, names};

/// ns per restart of one service that fails `restarts` times in a row.
pub(crate) fn cycle(variant: Variant, restarts: u64, limit: Duration) -> Result<f64> {
    cycle_of(variant, restarts, limit, |fleet, name, script| {
        fleet.spawn_restarting(name, script)
    })
}

/// [`cycle`] for the project, the service spawned with a heartbeat of
/// `interval` when it is `Some` (long enough never to fire: the figure is
/// what requiring heartbeats costs each run).
pub(crate) fn heartbeat_cycle(
    interval: Option<Duration>,
    restarts: u64,
    limit: Duration,
) -> Result<f64> {
    let options = match interval {
        Some(interval) => zero_backoff().heartbeat(interval),
        None => zero_backoff(),
    };
    cycle_of(
        Variant::Project,
        restarts,
        limit,
        move |fleet, name, script| fleet.spawn_supervised_with(name, script, options),
    )
}

/// ns per restart of one service, spawned by `spawn`, that fails `restarts`
/// times in a row.
fn cycle_of(
    variant: Variant,
    restarts: u64,
    limit: Duration,
    spawn: impl FnOnce(&Fleet, &Arc<str>, &Arc<Script>) -> Result<()> + Send + 'static,
) -> Result<f64> {
    let runtime = runtime()?;
    run_on_worker(&runtime, async move {
        let done = Arc::new(Arrivals::new(1));
        let script = Arc::new(Script::failing(restarts, Arc::clone(&done)));
        let mut fleet = Fleet::new(variant)?;
        let started = now();
        spawn(&fleet, &Arc::from("crasher"), &script)?;
        done.wait(limit).await?;
        let elapsed = started.elapsed();
        check_restarts(&fleet, &[Arc::clone(&script)], restarts)?;
        fleet.drain(limit).await?;
        Ok(per(elapsed, restarts))
    })
}

/// What [`observed_cycle`] measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
    /// ns per restart.
    pub(crate) ns: f64,
    /// Events the subscriber received.
    pub(crate) received: u64,
    /// Events it missed because it fell behind (`RecvError::Lagged`).
    pub(crate) missed: u64,
}

/// The restart cycle of the project (as [`cycle`]), with one live
/// subscriber draining `Supervisor::subscribe()` in its own task when
/// `subscribed`.
pub(crate) fn observed_cycle(restarts: u64, subscribed: bool, limit: Duration) -> Result<Observed> {
    let runtime = runtime()?;
    run_on_worker(&runtime, async move {
        let done = Arc::new(Arrivals::new(1));
        let script = Arc::new(Script::failing(restarts, Arc::clone(&done)));
        let mut fleet = Fleet::new(Variant::Project)?;
        let subscriber = match fleet.supervisor() {
            Some(supervisor) if subscribed => Some(tokio::spawn(listen(supervisor.subscribe()))),
            _ => None,
        };
        let started = now();
        fleet.spawn_restarting(&Arc::from("crasher"), &script)?;
        done.wait(limit).await?;
        let elapsed = started.elapsed();
        check_restarts(&fleet, &[Arc::clone(&script)], restarts)?;
        fleet.drain(limit).await?;
        // The channel closes when the supervisor is gone.
        drop(fleet);
        let (received, missed) = match subscriber {
            Some(subscriber) => tokio::time::timeout(limit, subscriber)
                .await
                .with_context(|| {
                    format!("the event channel was still open {limit:?} after the supervisor was dropped")
                })?
                .context("the subscriber panicked")?,
            None => (0, 0),
        };
        if subscribed {
            // Every restart is at least one change of the lifecycle.
            ensure!(
                received + missed >= restarts,
                "{received} events received and {missed} missed for {restarts} restarts"
            );
        }
        Ok(Observed {
            ns: per(elapsed, restarts),
            received,
            missed,
        })
    })
}

/// Drains `events` until the channel closes; the events received and missed.
async fn listen(mut events: LifecycleEvents) -> (u64, u64) {
    let (mut received, mut missed) = (0, 0);
    loop {
        match events.recv().await {
            Ok(event) => {
                std::hint::black_box(&event);
                received += 1;
            }
            Err(RecvError::Lagged { missed: more }) => missed += more,
            Err(_) => return (received, missed),
        }
    }
}

/// ns per restart while `n` services, released together, each fail
/// `failures` times in a row; `reps` bursts, timed from the starting gun to
/// the last service running again.
pub(crate) fn burst(
    variant: Variant,
    n: usize,
    failures: u64,
    reps: u64,
    limit: Duration,
) -> Result<f64> {
    let runtime = runtime()?;
    let names = names(n);
    run_on_worker(&runtime, async move {
        let mut timed = Duration::ZERO;
        for _ in 0..reps {
            let ready = Arc::new(Arrivals::new(n));
            let done = Arc::new(Arrivals::new(n));
            let gate = Gate {
                ready: Arc::clone(&ready),
                go: CancellationToken::new(),
            };
            let scripts: Vec<Arc<Script>> = (0..n)
                .map(|_| {
                    Arc::new(Script::failing(failures, Arc::clone(&done)).with_gate(gate.clone()))
                })
                .collect();
            let mut fleet = Fleet::new(variant)?;
            for (name, script) in names.iter().zip(&scripts) {
                fleet.spawn_restarting(name, script)?;
            }
            ready.wait(limit).await?;

            let released = now();
            gate.go.cancel();
            done.wait(limit).await?;
            timed += released.elapsed();

            check_restarts(&fleet, &scripts, failures)?;
            fleet.drain(limit).await?;
        }
        Ok(per(timed, n as u64 * failures * reps))
    })
}

/// Child `soak <variant> <restarts> <warm-up>`: the RSS after `warm-up`
/// restarts of one failing service, and after `restarts` more.
pub(crate) fn soak_child(
    variant: Variant,
    restarts: u64,
    warm_up: u64,
    limit: Duration,
) -> Result<Vec<(&'static str, f64)>> {
    let runtime = runtime()?;
    run_on_worker(&runtime, async move {
        let mark = Arc::new(Arrivals::new(1));
        let done = Arc::new(Arrivals::new(1));
        let total = warm_up + restarts;
        let script = Arc::new(
            Script::failing(total, Arc::clone(&done))
                .with_checkpoint(warm_up + 1, Arc::clone(&mark)),
        );
        let mut fleet = Fleet::new(variant)?;
        fleet.spawn_restarting(&Arc::from("soak"), &script)?;
        mark.wait(limit).await?;
        let before = rss_bytes()?;
        done.wait(limit).await?;
        let after = rss_bytes()?;
        check_restarts(&fleet, &[Arc::clone(&script)], total)?;
        fleet.drain(limit).await?;
        Ok(vec![
            ("growth_bytes", after as f64 - before as f64),
            ("rss_before", before as f64),
            ("rss_after", after as f64),
        ])
    })
}

/// Every script ran `restarts + 1` times, and the supervisor counted every
/// restart.
fn check_restarts(fleet: &Fleet, scripts: &[Arc<Script>], restarts: u64) -> Result<()> {
    for script in scripts {
        ensure!(
            script.runs() == restarts + 1,
            "a service ran {} times, expected {}",
            script.runs(),
            restarts + 1
        );
    }
    if let Some(supervisor) = fleet.supervisor() {
        let metrics = supervisor.metrics().snapshot();
        let expected = scripts.len() as u64 * restarts;
        ensure!(
            metrics.restarts_total == expected && metrics.failures.error == expected,
            "expected {expected} restarts and failures, the supervisor counted {metrics:?}"
        );
    }
    Ok(())
}
