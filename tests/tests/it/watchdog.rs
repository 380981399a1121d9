//! Heartbeats (`SpawnOptions::heartbeat`, systemd's `WatchdogSec`): a run
//! that does not beat in time is hung, stopped, and restarted by policy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use supervisor_core::{
    FailureKind, RestartPolicy, Service, ServiceContext, ServicePhase, SpawnError, SpawnOptions,
    TerminationReason, service_fn,
};
use tokio::time::Instant;

use crate::support::{
    Event, advance, config, exact_backoff, recorded_supervisor, supervisor, wait_for_phase,
};

const INTERVAL: Duration = Duration::from_secs(2);

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Exact backoff (100 ms doubling), a 2 s heartbeat, and `policy`.
fn watched(policy: RestartPolicy) -> SpawnOptions {
    SpawnOptions::with_backoff(exact_backoff())
        .restart_policy(policy)
        .heartbeat(INTERVAL)
}

/// A service that never beats: it waits to be asked to stop, then returns
/// after `cleanup`.
fn silent(name: &'static str, cleanup: Duration) -> impl Service {
    service_fn(name, move |ctx: ServiceContext| async move {
        ctx.cancelled().await;
        if !cleanup.is_zero() {
            tokio::time::sleep(cleanup).await;
        }
        anyhow::Ok(())
    })
}

/// Instants, recorded by services.
#[derive(Clone, Default)]
struct Times(Arc<Mutex<Vec<Instant>>>);

impl Times {
    fn push(&self) {
        self.0.lock().unwrap().push(Instant::now());
    }

    fn get(&self) -> Vec<Instant> {
        self.0.lock().unwrap().clone()
    }
}

/// Records the instant it is dropped at.
struct DropGuard(Times);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.push();
    }
}

/// A service that never beats and stops when asked: hung at each interval,
/// restarted by policy after its backoff, the hang counted as its own kind
/// in the snapshot, the built-in metrics and the sinks' events.
#[tokio::test(start_paused = true)]
async fn a_service_that_never_beats_is_restarted_by_policy_as_hung() {
    for policy in [RestartPolicy::Always, RestartPolicy::OnFailure] {
        let (supervisor, recorder) = recorded_supervisor(config());
        let started = Instant::now();
        let starts = Times::default();
        let svc = {
            let starts = starts.clone();
            service_fn("silent", move |ctx: ServiceContext| {
                starts.push();
                async move {
                    ctx.cancelled().await;
                    anyhow::Ok(())
                }
            })
        };
        let handle = supervisor
            .spawn_service_with_options(svc, watched(policy))
            .unwrap();

        advance(ms(3000)).await;
        // Hung at 2 s, stopped at once, backed off 100 ms, started at 2.1 s.
        assert_eq!(starts.get(), [started, started + ms(2100)], "{policy:?}");
        let snapshot = handle.snapshot();
        assert_eq!(snapshot.phase, ServicePhase::Running);
        assert_eq!(snapshot.failures.hung, 1);
        assert_eq!(snapshot.failures.total(), 1);
        assert_eq!(
            snapshot.last_error.as_deref(),
            Some("no heartbeat within 2s")
        );
        let metrics = supervisor.metrics().snapshot();
        assert_eq!((metrics.failures.hung, metrics.failures.timeout), (1, 0));
        assert_eq!(metrics.restarts_total, 1);
        assert_eq!(
            recorder.phases("silent"),
            [
                ServicePhase::Starting,
                ServicePhase::Running,
                ServicePhase::Stopping,
                ServicePhase::BackingOff,
                ServicePhase::Restarting,
                ServicePhase::Running,
            ]
        );
        let hung_at = recorder
            .timed_events()
            .into_iter()
            .find(|(_, event)| *event == Event::Failed("silent".into(), FailureKind::Hung))
            .map(|(at, _)| at);
        assert_eq!(hung_at, Some(started + INTERVAL));

        // The second run hangs too, and backs off twice as long.
        advance(ms(2000)).await;
        assert_eq!(handle.snapshot().failures.hung, 2);
        assert_eq!(recorder.backoffs(), [ms(100), ms(200)]);
    }
}

/// A service that beats every half interval is never taken as hung.
#[tokio::test(start_paused = true)]
async fn a_service_that_beats_every_half_interval_runs_untouched() {
    let supervisor = supervisor();
    let svc = service_fn("pump", |ctx: ServiceContext| async move {
        loop {
            tokio::select! {
                () = ctx.cancelled() => return anyhow::Ok(()),
                () = tokio::time::sleep(INTERVAL / 2) => ctx.heartbeat(),
            }
        }
    });
    let handle = supervisor
        .spawn_service_with_options(svc, watched(RestartPolicy::Always))
        .unwrap();

    advance(Duration::from_secs(3600)).await;
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.phase, ServicePhase::Running);
    assert_eq!(snapshot.start_count, 1);
    assert_eq!(snapshot.failures.total(), 0);
    assert_eq!(supervisor.metrics().snapshot().failures.hung, 0);
}

/// A hung run that ignores its cancellation is dropped exactly at its stop
/// timeout, then restarted by policy: one `Hung` failure, no `Timeout`.
#[tokio::test(start_paused = true)]
async fn a_hung_run_that_ignores_cancellation_is_dropped_at_its_stop_timeout() {
    let supervisor = supervisor();
    let started = Instant::now();
    let (starts, drops) = (Times::default(), Times::default());
    let svc = {
        let (starts, drops) = (starts.clone(), drops.clone());
        service_fn("stuck", move |_ctx: ServiceContext| {
            starts.push();
            let guard = DropGuard(drops.clone());
            async move {
                let _guard = guard;
                std::future::pending::<anyhow::Result<()>>().await
            }
        })
    };
    let options = watched(RestartPolicy::OnFailure).stop_timeout(ms(1500));
    let handle = supervisor.spawn_service_with_options(svc, options).unwrap();

    advance(ms(2500)).await;
    assert_eq!(handle.snapshot().phase, ServicePhase::Stopping);
    assert_eq!(drops.get(), []);

    advance(ms(1150)).await;
    // Hung at 2 s, dropped at 3.5 s, restarted at 3.6 s.
    assert_eq!(drops.get(), [started + ms(3500)]);
    assert_eq!(starts.get(), [started, started + ms(3600)]);
    let snapshot = handle.snapshot();
    assert_eq!(snapshot.phase, ServicePhase::Running);
    assert_eq!((snapshot.failures.hung, snapshot.failures.timeout), (1, 0));
    assert_eq!(
        snapshot.last_error.as_deref(),
        Some("no heartbeat within 2s, and did not stop within 1.5s: dropped")
    );
}

/// The first deadline counts from the start of the run: not from the spawn
/// (here the run waits 5 s for its dependency), and a beat just before it is
/// in time, one just after it is not.
#[tokio::test(start_paused = true)]
async fn the_first_deadline_counts_from_the_start_of_the_run() {
    let supervisor = supervisor();
    let spawned = Instant::now();
    let db = service_fn("db", |ctx: ServiceContext| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        ctx.ready();
        ctx.cancelled().await;
        anyhow::Ok(())
    });
    supervisor
        .spawn_service_with_options(db, SpawnOptions::default().signals_readiness())
        .unwrap();

    let beating = |name: &'static str, first_beat: Duration, cancelled: Times| {
        service_fn(name, move |ctx: ServiceContext| {
            let cancelled = cancelled.clone();
            async move {
                let mut wait = first_beat;
                loop {
                    tokio::select! {
                        () = ctx.cancelled() => {
                            cancelled.push();
                            return anyhow::Ok(());
                        }
                        () = tokio::time::sleep(wait) => ctx.heartbeat(),
                    }
                    wait = INTERVAL / 2;
                }
            }
        })
    };
    let (early_cancelled, late_cancelled) = (Times::default(), Times::default());
    let options = watched(RestartPolicy::OnFailure).after(["db"]);
    let early = supervisor
        .spawn_service_with_options(
            beating("early", INTERVAL - ms(1), early_cancelled.clone()),
            options.clone(),
        )
        .unwrap();
    let late = supervisor
        .spawn_service_with_options(
            beating("late", INTERVAL + ms(1), late_cancelled.clone()),
            options,
        )
        .unwrap();

    advance(ms(7050)).await;
    // Both runs started at 5 s, when `db` was ready.
    assert_eq!(early_cancelled.get(), []);
    assert_eq!(late_cancelled.get(), [spawned + ms(7000)]);
    assert_eq!(late.snapshot().failures.hung, 1);

    advance(Duration::from_secs(60)).await;
    let early = early.snapshot();
    assert_eq!((early.start_count, early.failures.total()), (1, 0));
}

/// Under `Never`, a hang terminates the service as failed: `Unrecoverable`
/// with the hang's message.
#[tokio::test(start_paused = true)]
async fn a_hang_under_never_terminates_the_service_as_failed() {
    let supervisor = supervisor();
    let started = Instant::now();
    let svc = silent("once", Duration::ZERO);
    let handle = supervisor
        .spawn_service_with_options(svc, watched(RestartPolicy::Never))
        .unwrap();

    let last = handle.wait_terminated().await;
    assert_eq!(started.elapsed(), INTERVAL);
    assert_eq!(
        last.termination_reason,
        Some(TerminationReason::Unrecoverable(
            "no heartbeat within 2s".to_owned()
        ))
    );
    assert_eq!((last.start_count, last.failures.hung), (1, 1));
    let metrics = supervisor.metrics().snapshot();
    assert_eq!((metrics.failures.hung, metrics.terminated_total), (1, 1));
    assert_eq!(supervisor.readiness().failed, ["once"]);
}

/// A hang counts against the circuit breaker like any failure.
#[tokio::test(start_paused = true)]
async fn hangs_trip_the_circuit_breaker() {
    let supervisor = supervisor();
    let svc = silent("silent", Duration::ZERO);
    let backoff = exact_backoff().with_circuit_breaker(2, Duration::from_secs(60));
    let options = SpawnOptions::with_backoff(backoff)
        .restart_policy(RestartPolicy::Always)
        .heartbeat(INTERVAL);
    let handle = supervisor.spawn_service_with_options(svc, options).unwrap();

    let last = handle.wait_terminated().await;
    assert!(
        matches!(
            last.termination_reason,
            Some(TerminationReason::CircuitBreakerOpen { max_retries: 2, .. })
        ),
        "{last:?}"
    );
    assert_eq!(last.failures.hung, last.failures.total());
    assert_eq!(last.failures.hung, last.start_count);
}

/// A stop asked for while a hung run is being stopped wins: the service
/// ends `Stopped` (the hang recorded), and nothing starts it again.
#[tokio::test(start_paused = true)]
async fn a_stop_during_the_cancellation_of_a_hung_run_is_final() {
    let supervisor = supervisor();
    let started = Instant::now();
    let svc = silent("slow", Duration::from_secs(1));
    let handle = supervisor
        .spawn_service_with_options(svc, watched(RestartPolicy::Always))
        .unwrap();
    advance(INTERVAL - ms(1)).await;
    assert_eq!(handle.snapshot().phase, ServicePhase::Running);
    advance(ms(501)).await;
    assert_eq!(handle.snapshot().phase, ServicePhase::Stopping);

    let last = handle.stop().await.unwrap();
    assert_eq!(started.elapsed(), ms(3000), "the run's own cleanup");
    assert_eq!(last.termination_reason, Some(TerminationReason::Stopped));
    assert_eq!((last.start_count, last.failures.hung), (1, 1));

    advance(Duration::from_secs(3600)).await;
    assert_eq!(handle.snapshot().start_count, 1);
}

/// The shutdown, during the cancellation of a hung run, ends it `Cancelled`.
#[tokio::test(start_paused = true)]
async fn a_shutdown_during_the_cancellation_of_a_hung_run_cancels_it() {
    let supervisor = supervisor();
    let svc = silent("slow", Duration::from_secs(1));
    let handle = supervisor
        .spawn_service_with_options(svc, watched(RestartPolicy::Always))
        .unwrap();
    wait_for_phase(&supervisor, "slow", ServicePhase::Stopping).await;

    supervisor.trigger_shutdown();
    supervisor.wait_for_drain().await;
    let last = handle.snapshot();
    assert_eq!(last.termination_reason, Some(TerminationReason::Cancelled));
    assert_eq!((last.start_count, last.failures.hung), (1, 1));
}

/// A zero interval could never be met: the spawn is refused, typed.
#[tokio::test(start_paused = true)]
async fn a_zero_heartbeat_interval_is_refused_at_spawn() {
    let supervisor = supervisor();
    let svc = silent("never", Duration::ZERO);
    let refused = supervisor
        .spawn_service_with_options(svc, SpawnOptions::default().heartbeat(Duration::ZERO))
        .unwrap_err();
    assert_eq!(
        refused,
        SpawnError::InvalidHeartbeat {
            name: "never".to_owned()
        }
    );
    assert_eq!(
        refused.to_string(),
        "cannot spawn `never`: its heartbeat interval is zero"
    );
    assert_eq!(supervisor.service_count(), 0);
}
