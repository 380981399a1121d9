//! The holes of the reference implementation, each closed and tested: panics,
//! the shutdown timeout, duplicate names, spawning after shutdown, invalid
//! backoff, error chains.

use std::time::Duration;

use supervisor_core::{
    BackoffConfig, InvalidBackoff, RestartPolicy, ServiceContext, ServicePhase, SpawnError,
    SpawnOptions, Supervisor, SupervisorConfig, TerminationReason, service_fn,
};
use tokio::time::Instant;

use crate::support::{
    Event, Scripted, Step, advance, config, exact_backoff, recorded_supervisor, supervisor,
    wait_for_phase,
};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_failure_and_the_policy_restarts_the_service() {
    let (sup, rec) = recorded_supervisor(config());
    let svc = Scripted::new("risky", RestartPolicy::OnFailure, [Step::Panic(5 * MS)]);
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(1)).await;

    assert_eq!(svc.starts().len(), 2, "restarted after the panic");
    let snap = sup.service_lifecycle("risky").unwrap();
    assert_eq!(snap.phase, ServicePhase::Running);
    assert_eq!(snap.failures.total(), 1);
    assert_eq!(snap.last_error.as_deref(), Some("run 1 panicked"));
    assert_eq!(sup.metrics().snapshot().failures.panic, 1);
    assert!(rec.events().contains(&Event::Failed(
        "risky".into(),
        supervisor_core::FailureKind::Panic
    )));
}

#[tokio::test(start_paused = true)]
async fn a_panic_under_never_terminates_panicked_and_frees_the_active_slot() {
    let sup = supervisor();
    let svc = Scripted::new("fragile", RestartPolicy::Never, [Step::Panic(MS)]);
    let handle = sup.spawn_service(svc.clone()).unwrap();
    advance(Duration::from_secs(1)).await;

    let snap = handle.snapshot();
    assert_eq!(snap.phase, ServicePhase::Terminated);
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("panicked")
    );
    assert_eq!(
        snap.termination_reason,
        Some(TerminationReason::Panicked("run 1 panicked".into()))
    );
    assert_eq!(sup.metrics().snapshot().active_services, 0);
    assert!(
        sup.wait_for_drain().await.is_clean(),
        "the task itself ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_with_a_formatted_message_is_recorded() {
    let sup = supervisor();
    sup.spawn_service(
        service_fn("fmt", |_ctx: ServiceContext| async move {
            let code = 42;
            if code == 42 {
                panic!("bad state {code}");
            }
            anyhow::Ok(())
        })
        .with_restart_policy(RestartPolicy::Never),
    )
    .unwrap();
    advance(MS).await;
    let snap = sup.service_lifecycle("fmt").unwrap();
    assert_eq!(snap.last_error.as_deref(), Some("bad state 42"));
}

#[tokio::test(start_paused = true)]
async fn hung_services_are_aborted_at_the_shutdown_timeout() {
    let (sup, rec) = recorded_supervisor(config().with_shutdown_timeout(Duration::from_secs(2)));
    let hung = Scripted::new("hung", RestartPolicy::OnFailure, [Step::Hang]);
    let polite = Scripted::new(
        "polite",
        RestartPolicy::OnFailure,
        [Step::UntilCancelled(MS)],
    );
    sup.spawn_service(hung.clone()).unwrap();
    sup.spawn_service(polite.clone()).unwrap();
    wait_for_phase(&sup, "hung", ServicePhase::Running).await;

    sup.trigger_shutdown();
    let started = Instant::now();
    let report = sup.wait_for_drain().await;
    let waited = started.elapsed();

    assert!(
        waited >= Duration::from_secs(2),
        "waited the timeout: {waited:?}"
    );
    assert!(
        waited <= Duration::from_secs(2) + 10 * MS,
        "and not much more: {waited:?}"
    );
    assert_eq!(report.aborted, ["hung"]);
    assert!(report.unwound);
    assert!(!report.is_clean());

    let snap = sup.service_lifecycle("hung").unwrap();
    assert_eq!(snap.phase, ServicePhase::Terminated);
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("shutdown_timeout")
    );
    let polite = sup.service_lifecycle("polite").unwrap();
    assert_eq!(
        polite.termination_reason,
        Some(TerminationReason::Cancelled)
    );
    let m = sup.metrics().snapshot();
    assert_eq!(m.active_services, 0);
    assert_eq!(m.terminated_total, 2);
    assert_eq!(m.failures.timeout, 1);
    assert_eq!(snap.failures.timeout, 1);
    assert_eq!(polite.failures.total(), 0);
    assert!(rec.events().contains(&Event::Terminated(
        "hung".into(),
        TerminationReason::ShutdownTimeout {
            timeout: Duration::from_secs(2)
        }
    )));
    // Asked to stop at once, aborted at the timeout: its events end with
    // its termination.
    assert_eq!(
        rec.phases("hung"),
        [
            ServicePhase::Starting,
            ServicePhase::Running,
            ServicePhase::Stopping,
            ServicePhase::Terminated
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_cleanup_in_stopping_is_aborted_at_the_timeout() {
    let sup = Supervisor::new(config().with_shutdown_timeout(Duration::from_secs(1)));
    let slow = Scripted::new(
        "slow",
        RestartPolicy::OnFailure,
        [Step::UntilCancelled(Duration::from_secs(10))],
    );
    sup.spawn_service(slow.clone()).unwrap();
    advance(MS).await;
    sup.trigger_shutdown();
    let report = sup.wait_for_drain().await;
    assert_eq!(report.aborted, ["slow"]);
    assert_eq!(slow.cleanups_done(), 0, "dropped only after the timeout");
    assert_eq!(sup.metrics().snapshot().active_services, 0);
}

#[tokio::test(start_paused = true)]
async fn wait_for_drain_without_shutdown_waits_for_services_to_finish() {
    let sup = supervisor();
    sup.spawn_service(Scripted::new(
        "job",
        RestartPolicy::OnFailure,
        [Step::Succeed(Duration::from_secs(100))],
    ))
    .unwrap();
    let started = Instant::now();
    let report = sup.wait_for_drain().await;
    assert!(report.is_clean());
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(100),
        "no timeout before shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_live_service_with_the_same_name_is_refused() {
    let sup = supervisor();
    let first = Scripted::new("feed", RestartPolicy::OnFailure, [Step::Succeed(10 * MS)]);
    sup.spawn_service(first.clone()).unwrap();
    let second = Scripted::new("feed", RestartPolicy::OnFailure, []);
    let err = sup.spawn_service(second.clone()).unwrap_err();
    assert_eq!(
        err,
        SpawnError::DuplicateName {
            name: "feed".into()
        }
    );
    assert_eq!(sup.service_count(), 1);
    assert_eq!(sup.metrics().snapshot().spawned_total, 1);
    advance(5 * MS).await;
    assert!(second.starts().is_empty(), "the refused service never ran");
    assert_eq!(first.starts().len(), 1, "the first one is untouched");

    // Once the first has terminated, the name is free again.
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        sup.service_lifecycle("feed").unwrap().phase,
        ServicePhase::Terminated
    );
    sup.spawn_service(second.clone()).unwrap();
    advance(MS).await;
    assert_eq!(second.starts().len(), 1);
    assert_eq!(
        sup.service_lifecycle("feed").unwrap().phase,
        ServicePhase::Running
    );
}

#[tokio::test(start_paused = true)]
async fn spawning_after_shutdown_is_refused() {
    let sup = supervisor();
    sup.trigger_shutdown();
    assert!(sup.is_shutting_down());
    let svc = Scripted::new("late", RestartPolicy::OnFailure, []);
    let err = sup.spawn_service(svc.clone()).unwrap_err();
    assert_eq!(
        err,
        SpawnError::ShuttingDown {
            name: "late".into()
        }
    );
    assert_eq!(sup.service_count(), 0);
    assert_eq!(sup.metrics().snapshot().spawned_total, 0);
    advance(MS).await;
    assert!(svc.starts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_invalid_backoff_is_a_typed_error_and_registers_nothing() {
    let sup = supervisor();
    let invalid = [
        BackoffConfig::new(Duration::from_secs(10), Duration::from_secs(1)),
        BackoffConfig::default().with_multiplier(f64::NAN),
        BackoffConfig::default().with_multiplier(0.5),
        BackoffConfig::default().with_circuit_breaker(3, Duration::ZERO),
    ];
    for backoff in invalid {
        let err = sup
            .spawn_service_with_options(
                Scripted::new("bad", RestartPolicy::OnFailure, []),
                SpawnOptions::with_backoff(backoff),
            )
            .unwrap_err();
        let SpawnError::InvalidBackoff { name, source } = &err else {
            panic!("expected InvalidBackoff, got {err:?}");
        };
        assert_eq!(name, "bad");
        assert_eq!(Some(*source), backoff.validate().err());
        assert!(std::error::Error::source(&err).is_some());
    }
    // The default backoff of the supervisor is validated too.
    let sup2 = Supervisor::new(config().with_default_backoff(BackoffConfig::new(
        Duration::from_secs(2),
        Duration::from_secs(1),
    )));
    assert!(matches!(
        sup2.spawn_service(Scripted::new("x", RestartPolicy::OnFailure, [])),
        Err(SpawnError::InvalidBackoff {
            source: InvalidBackoff::BaseExceedsMax { .. },
            ..
        })
    ));
    assert_eq!(sup.service_count() + sup2.service_count(), 0);
    assert_eq!(sup.metrics().snapshot().spawned_total, 0);
}

#[test]
fn spawning_outside_a_runtime_is_a_typed_error() {
    let sup = Supervisor::new(SupervisorConfig::default().without_signal_handler());
    let err = sup
        .spawn_service(Scripted::new("orphan", RestartPolicy::OnFailure, []))
        .unwrap_err();
    assert_eq!(
        err,
        SpawnError::NoRuntime {
            name: "orphan".into()
        }
    );
    assert_eq!(sup.service_count(), 0);
}

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot subscribe to the order book")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn the_failure_message_carries_the_whole_source_chain() {
    let sup = supervisor();
    sup.spawn_service(
        service_fn("typed", |_ctx: ServiceContext| async move {
            Err::<(), _>(Outer(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            )))
        })
        .with_restart_policy(RestartPolicy::Never),
    )
    .unwrap();
    sup.spawn_service(
        service_fn("anyhow", |_ctx: ServiceContext| async move {
            use anyhow::Context as _;
            Err::<(), _>(std::io::Error::other("disk full")).context("cannot write the journal")
        })
        .with_restart_policy(RestartPolicy::Never),
    )
    .unwrap();
    advance(MS).await;
    assert_eq!(
        sup.service_lifecycle("typed")
            .unwrap()
            .last_error
            .as_deref(),
        Some("cannot subscribe to the order book: connection reset by peer")
    );
    assert_eq!(
        sup.service_lifecycle("anyhow")
            .unwrap()
            .last_error
            .as_deref(),
        Some("cannot write the journal: disk full")
    );
}

#[tokio::test(start_paused = true)]
async fn last_error_survives_a_healthy_restart() {
    let sup = supervisor();
    let svc = Scripted::new(
        "recovering",
        RestartPolicy::Always,
        [Step::Fail(MS), Step::Succeed(MS)],
    );
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(svc.starts().len(), 3);
    let snap = sup.service_lifecycle("recovering").unwrap();
    assert_eq!(snap.phase, ServicePhase::Running);
    assert_eq!(snap.last_error.as_deref(), Some("run 1 failed"));
}

#[derive(Debug)]
struct PanickingSink;

impl supervisor_core::MetricsSink for PanickingSink {
    type Handle = ();

    fn resolve(&self, _service: &str) {}
    fn phase_changed(&self, _service: &(), _from: ServicePhase, to: ServicePhase) {
        panic!("sink bug while entering {to}");
    }
    fn service_terminated(&self, _service: &(), _reason: &TerminationReason, _uptime: Duration) {
        panic!("sink bug on termination");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_sink_never_takes_a_service_down() {
    let (sup, rec) =
        recorded_supervisor(config().with_metrics_sink(std::sync::Arc::new(PanickingSink)));
    let svc = Scripted::new("robust", RestartPolicy::OnFailure, [Step::Fail(MS)]);
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(svc.starts().len(), 2, "restarted despite the sink");
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());

    let snap = sup.service_lifecycle("robust").unwrap();
    assert_eq!(snap.phase, ServicePhase::Terminated);
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("cancelled")
    );
    let m = sup.metrics().snapshot();
    assert_eq!(
        (m.active_services, m.terminated_total, m.restarts_total),
        (0, 1, 1)
    );
    // Sinks after the panicking one still get every event.
    assert_eq!(rec.phases("robust").last(), Some(&ServicePhase::Terminated));
}
