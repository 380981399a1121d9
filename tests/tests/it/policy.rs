//! The reference's policy table, one test per row, under paused time.

use std::time::Duration;

use supervisor_core::{RestartPolicy, ServicePhase, SpawnOptions, TerminationReason, service_fn};
use tokio::time::Instant;

use crate::support::{
    Event, Scripted, Step, advance, config, exact_backoff, recorded_supervisor, supervisor,
    wait_for_phase,
};

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn error_backs_off_exponentially_then_restarts_on_failure_policy() {
    let sup = supervisor();
    let svc = Scripted::new(
        "flaky",
        RestartPolicy::OnFailure,
        [
            Step::Fail(10 * MS),
            Step::Fail(10 * MS),
            Step::Fail(10 * MS),
        ],
    );
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(2)).await;

    let starts = svc.starts();
    let ends = svc.ends();
    assert_eq!(starts.len(), 4, "three failures then a healthy run");
    // Exact delays: 100 ms, 200 ms, 400 ms between each failure and the next start.
    for (i, expected) in [100, 200, 400].into_iter().enumerate() {
        assert_eq!(
            starts[i + 1] - ends[i],
            expected * MS,
            "gap after failure {i}"
        );
    }
    let snap = sup.service_lifecycle("flaky").unwrap();
    assert_eq!(snap.phase, ServicePhase::Running);
    assert_eq!(snap.start_count, 4);
    assert_eq!(snap.failures.total(), 3);
    assert_eq!(snap.last_error.as_deref(), Some("run 3 failed"));
    assert_eq!(sup.metrics().snapshot().restarts_total, 3);
    assert_eq!(sup.metrics().snapshot().failures.error, 3);
}

#[tokio::test(start_paused = true)]
async fn error_restarts_under_always_policy() {
    let (sup, rec) = recorded_supervisor(config());
    let svc = Scripted::new("a", RestartPolicy::Always, [Step::Fail(MS)]);
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(svc.starts().len(), 2);
    assert_eq!(svc.starts()[1] - svc.ends()[0], 100 * MS);
    assert_eq!(
        rec.phases("a"),
        [
            ServicePhase::Starting,
            ServicePhase::Running,
            ServicePhase::BackingOff,
            ServicePhase::Restarting,
            ServicePhase::Running,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn error_terminates_unrecoverable_under_never_policy() {
    let sup = supervisor();
    let svc = Scripted::new("once", RestartPolicy::Never, [Step::Fail(5 * MS)]);
    let handle = sup.spawn_service(svc.clone()).unwrap();
    advance(Duration::from_secs(10)).await;

    assert_eq!(svc.starts().len(), 1, "never restarted");
    let snap = handle.snapshot();
    assert_eq!(snap.phase, ServicePhase::Terminated);
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("unrecoverable")
    );
    assert_eq!(
        snap.termination_reason,
        Some(TerminationReason::Unrecoverable("run 1 failed".into()))
    );
    let m = sup.metrics().snapshot();
    assert_eq!(
        (m.active_services, m.terminated_total, m.restarts_total),
        (0, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn clean_exit_restarts_after_fixed_delay_and_resets_backoff_under_always() {
    let (sup, rec) = recorded_supervisor(config().with_clean_restart_delay(50 * MS));
    // Two failures grow the backoff; a clean exit resets it, so the next
    // failure backs off from the base again.
    let svc = Scripted::new(
        "loop",
        RestartPolicy::Always,
        [
            Step::Fail(MS),
            Step::Fail(MS),
            Step::Succeed(MS),
            Step::Fail(MS),
        ],
    );
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    advance(Duration::from_secs(2)).await;

    let (starts, ends) = (svc.starts(), svc.ends());
    assert_eq!(starts.len(), 5);
    assert_eq!(starts[1] - ends[0], 100 * MS);
    assert_eq!(starts[2] - ends[1], 200 * MS);
    assert_eq!(starts[3] - ends[2], 50 * MS, "clean exit: the fixed delay");
    assert_eq!(
        starts[4] - ends[3],
        100 * MS,
        "backoff reset by the clean exit"
    );
    let backoffs: Vec<Duration> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Backoff(_, d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(backoffs, [100 * MS, 200 * MS, 50 * MS, 100 * MS]);
    // A clean exit is not a failure.
    assert_eq!(sup.service_lifecycle("loop").unwrap().failures.total(), 3);
}

#[tokio::test(start_paused = true)]
async fn clean_exit_completes_under_on_failure_and_never() {
    for policy in [RestartPolicy::OnFailure, RestartPolicy::Never] {
        let sup = supervisor();
        let svc = Scripted::new("job", policy, [Step::Succeed(20 * MS)]);
        let handle = sup.spawn_service(svc.clone()).unwrap();
        advance(Duration::from_secs(5)).await;
        assert_eq!(svc.starts().len(), 1, "{policy}: not restarted");
        let snap = handle.snapshot();
        assert_eq!(snap.phase, ServicePhase::Terminated);
        assert_eq!(
            snap.termination_reason
                .as_ref()
                .map(TerminationReason::kind),
            Some("completed"),
            "{policy}"
        );
        assert_eq!(snap.cumulative_running_time, 20 * MS);
        assert_eq!(sup.metrics().snapshot().active_services, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_while_running_goes_through_stopping() {
    let (sup, rec) = recorded_supervisor(config());
    let svc = Scripted::new(
        "feed",
        RestartPolicy::Always,
        [Step::UntilCancelled(30 * MS)],
    );
    sup.spawn_service(svc.clone()).unwrap();
    wait_for_phase(&sup, "feed", ServicePhase::Running).await;

    sup.trigger_shutdown();
    let started = Instant::now();
    let report = sup.wait_for_drain().await;
    assert!(report.is_clean());
    assert_eq!(
        started.elapsed(),
        30 * MS,
        "drain waited for the cleanup, no more"
    );
    assert_eq!(
        svc.cleanups_done(),
        1,
        "the run future was not dropped mid-cleanup"
    );
    assert_eq!(
        rec.phases("feed"),
        [
            ServicePhase::Starting,
            ServicePhase::Running,
            ServicePhase::Stopping,
            ServicePhase::Terminated,
        ]
    );
    let snap = sup.service_lifecycle("feed").unwrap();
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("cancelled")
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_during_backoff_stops_without_waiting_the_delay() {
    let sup = supervisor();
    let backoff =
        supervisor_core::BackoffConfig::new(Duration::from_secs(60), Duration::from_secs(60))
            .with_jitter(supervisor_core::Jitter::None)
            .without_circuit_breaker();
    let svc = Scripted::new("slow", RestartPolicy::OnFailure, [Step::Fail(MS)]);
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(backoff))
        .unwrap();
    wait_for_phase(&sup, "slow", ServicePhase::BackingOff).await;
    assert_eq!(
        sup.service_lifecycle("slow").unwrap().current_backoff,
        Some(Duration::from_secs(60))
    );

    sup.trigger_shutdown();
    let started = Instant::now();
    assert!(sup.wait_for_drain().await.is_clean());
    assert!(started.elapsed() < MS, "did not wait out the 60 s backoff");
    assert_eq!(svc.starts().len(), 1);
    let snap = sup.service_lifecycle("slow").unwrap();
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("cancelled")
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_before_the_first_start_never_runs_the_service() {
    let (sup, rec) = recorded_supervisor(config());
    let svc = Scripted::new("late", RestartPolicy::Always, []);
    sup.spawn_service(svc.clone()).unwrap();
    // The task has not been polled yet.
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());
    assert!(svc.starts().is_empty());
    assert_eq!(
        rec.phases("late"),
        [
            ServicePhase::Starting,
            ServicePhase::Stopping,
            ServicePhase::Terminated
        ]
    );
    assert_eq!(sup.metrics().snapshot().active_services, 0);
}

#[tokio::test(start_paused = true)]
async fn circuit_breaker_opens_and_the_service_never_starts_again() {
    let (sup, rec) = recorded_supervisor(config());
    let backoff = exact_backoff().with_circuit_breaker(2, Duration::from_secs(60));
    let svc = Scripted::new("doomed", RestartPolicy::Always, vec![Step::Fail(MS); 10]);
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(backoff))
        .unwrap();
    advance(Duration::from_secs(3600)).await;

    // Two retries allowed: the third failure inside the window opens it.
    assert_eq!(svc.starts().len(), 3);
    let snap = sup.service_lifecycle("doomed").unwrap();
    assert_eq!(snap.phase, ServicePhase::Terminated);
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("circuit_breaker_open")
    );
    assert!(
        snap.termination_reason
            .unwrap()
            .to_string()
            .contains("circuit breaker")
    );
    assert_eq!(sup.metrics().snapshot().circuit_breaker_trips, 1);
    assert!(
        rec.events()
            .contains(&Event::CircuitOpened("doomed".into(), 3, 2))
    );
    assert!(rec.events().contains(&Event::Terminated(
        "doomed".into(),
        TerminationReason::CircuitBreakerOpen {
            failures: 3,
            max_retries: 2
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn a_run_longer_than_the_cooldown_resets_the_backoff() {
    let sup = supervisor();
    let backoff = exact_backoff().with_cooldown(Duration::from_secs(10));
    let svc = Scripted::new(
        "stable",
        RestartPolicy::OnFailure,
        [
            Step::Fail(MS),
            Step::Fail(MS),
            // Long healthy run, then a crash: back to the base delay.
            Step::Fail(Duration::from_secs(10)),
            // Short run after that: the backoff grows again.
            Step::Fail(MS),
        ],
    );
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(backoff))
        .unwrap();
    advance(Duration::from_secs(20)).await;
    let (starts, ends) = (svc.starts(), svc.ends());
    assert_eq!(starts.len(), 5);
    assert_eq!(starts[1] - ends[0], 100 * MS);
    assert_eq!(starts[2] - ends[1], 200 * MS);
    assert_eq!(starts[3] - ends[2], 100 * MS, "reset after a 10 s run");
    assert_eq!(starts[4] - ends[3], 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn a_run_just_shorter_than_the_cooldown_does_not_reset() {
    let sup = supervisor();
    let backoff = exact_backoff().with_cooldown(Duration::from_secs(10));
    let svc = Scripted::new(
        "almost",
        RestartPolicy::OnFailure,
        [Step::Fail(MS), Step::Fail(Duration::from_secs(10) - MS)],
    );
    sup.spawn_service_with_options(svc.clone(), SpawnOptions::with_backoff(backoff))
        .unwrap();
    advance(Duration::from_secs(20)).await;
    let (starts, ends) = (svc.starts(), svc.ends());
    assert_eq!(starts[2] - ends[1], 200 * MS);
}

#[tokio::test(start_paused = true)]
async fn the_lifecycle_entry_exists_from_the_moment_of_spawn() {
    let sup = supervisor();
    let handle = sup
        .spawn_service(Scripted::new("new", RestartPolicy::OnFailure, []))
        .unwrap();
    // Not polled yet: the entry is there, in Starting.
    let snap = sup.service_lifecycle("new").unwrap();
    assert_eq!(snap.phase, ServicePhase::Starting);
    assert_eq!(snap.start_count, 0);
    assert_eq!(handle.phase(), ServicePhase::Starting);
    assert_eq!(sup.service_count(), 1);
    assert_eq!(sup.metrics().snapshot().spawned_total, 1);
    assert_eq!(sup.metrics().snapshot().active_services, 1);
}

#[tokio::test(start_paused = true)]
async fn metrics_count_each_event_exactly_once() {
    let (sup, rec) = recorded_supervisor(config());
    let flaky = Scripted::new(
        "flaky",
        RestartPolicy::OnFailure,
        [Step::Fail(MS), Step::Panic(MS), Step::Succeed(MS)],
    );
    let always = Scripted::new("always", RestartPolicy::Always, [Step::Succeed(MS)]);
    sup.spawn_service_with_options(flaky.clone(), SpawnOptions::with_backoff(exact_backoff()))
        .unwrap();
    sup.spawn_service(always.clone()).unwrap();
    advance(Duration::from_secs(5)).await;
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());

    let m = sup.metrics().snapshot();
    assert_eq!(m.spawned_total, 2);
    assert_eq!(m.terminated_total, 2);
    assert_eq!(m.active_services, 0);
    // flaky: 3 runs (2 restarts); always: 2 runs (1 restart).
    assert_eq!(m.restarts_total, 3);
    assert_eq!(
        (m.failures.error, m.failures.panic, m.failures.timeout),
        (1, 1, 0)
    );
    let terminated = rec
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Terminated(..)))
        .count();
    assert_eq!(terminated, 2);
    let flaky = sup.service_lifecycle("flaky").unwrap();
    assert_eq!(
        (
            flaky.restart_count(),
            flaky.failures.error,
            flaky.failures.panic
        ),
        (2, 1, 1)
    );
    assert_eq!(sup.service_lifecycle("always").unwrap().restart_count(), 1);
    let snapshots = sup.lifecycle_snapshots();
    let failures: u64 = snapshots.iter().map(|s| s.failures.total()).sum();
    assert_eq!(failures, m.failures.total());
    let restarts: u64 = snapshots.iter().map(|s| s.restart_count()).sum();
    assert_eq!(restarts, m.restarts_total);
    assert_eq!(
        snapshots
            .iter()
            .map(|s| s.service_name.as_str())
            .collect::<Vec<_>>(),
        ["always", "flaky"],
        "sorted by name"
    );
}

#[tokio::test(start_paused = true)]
async fn service_fn_receives_a_working_context() {
    let sup = supervisor();
    sup.spawn_service(service_fn(
        "ctx",
        |ctx: supervisor_core::ServiceContext| async move {
            assert_eq!(ctx.name(), "ctx");
            assert!(!ctx.is_cancelled());
            let child = ctx.token().child_token();
            child.cancelled().await;
            assert!(ctx.is_cancelled());
            anyhow::Ok(())
        },
    ))
    .unwrap();
    advance(10 * MS).await;
    sup.trigger_shutdown();
    assert!(sup.wait_for_drain().await.is_clean());
    let snap = sup.service_lifecycle("ctx").unwrap();
    assert_eq!(
        snap.termination_reason
            .as_ref()
            .map(TerminationReason::kind),
        Some("cancelled")
    );
    assert_eq!(
        snap.failures.total(),
        0,
        "the assertions inside the service held"
    );
}
