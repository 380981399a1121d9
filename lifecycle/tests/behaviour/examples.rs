//! Worked scenarios with exact expected values.

use core::time::Duration;
use std::sync::Arc;

use supervisor_lifecycle::{
    FailureCounts, FailureKind, InvalidTransition, ServiceLifecycle, ServiceLifecycleSnapshot,
    ServicePhase, TerminationReason,
};

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// A lifecycle in `phase`, reached along the shortest legal path at time 0.
fn in_phase(phase: ServicePhase) -> ServiceLifecycle {
    let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    let path: &[ServicePhase] = match phase {
        ServicePhase::Starting => &[],
        ServicePhase::Running => &[ServicePhase::Running],
        ServicePhase::BackingOff => &[ServicePhase::Running, ServicePhase::BackingOff],
        ServicePhase::Restarting => &[
            ServicePhase::Running,
            ServicePhase::BackingOff,
            ServicePhase::Restarting,
        ],
        ServicePhase::Stopping => &[ServicePhase::Stopping],
        ServicePhase::Terminated => &[ServicePhase::Terminated],
        _ => unreachable!("a phase added to the crate must be added to the tests"),
    };
    for step in path {
        let result = match step {
            ServicePhase::Running => lifecycle.transition_to_running(Duration::ZERO),
            ServicePhase::BackingOff => {
                lifecycle.transition_to_backing_off(Duration::ZERO, secs(1))
            }
            ServicePhase::Restarting => lifecycle.transition_to_restarting(Duration::ZERO),
            ServicePhase::Stopping => lifecycle.transition_to_stopping(Duration::ZERO),
            _ => lifecycle.transition_to_terminated(Duration::ZERO, TerminationReason::Completed),
        };
        result.unwrap();
    }
    assert_eq!(lifecycle.phase(), phase);
    lifecycle
}

#[test]
fn a_new_lifecycle_is_starting_with_nothing_counted() {
    let lifecycle = ServiceLifecycle::new(String::from("risk-engine"), secs(7));
    assert_eq!(lifecycle.name(), "risk-engine");
    assert_eq!(&**lifecycle.name_arc(), "risk-engine");
    assert_eq!(lifecycle.phase(), ServicePhase::Starting);
    assert_eq!(lifecycle.start_count(), 0);
    assert_eq!(lifecycle.restart_count(), 0);
    assert_eq!(lifecycle.failures().total(), 0);
    assert_eq!(lifecycle.last_error(), None);
    assert_eq!(lifecycle.current_backoff(), None);
    assert_eq!(lifecycle.termination_reason(), None);
    assert_eq!(lifecycle.last_transition_at(), secs(7));
    assert_eq!(lifecycle.time_in_phase(secs(10)), secs(3));
    assert_eq!(lifecycle.cumulative_running_time(secs(100)), Duration::ZERO);
}

#[test]
fn the_name_is_shared_not_copied() {
    let name: Arc<str> = Arc::from("feed");
    let lifecycle = ServiceLifecycle::new(Arc::clone(&name), Duration::ZERO);
    assert!(Arc::ptr_eq(lifecycle.name_arc(), &name));
    let copy = lifecycle.clone();
    assert!(Arc::ptr_eq(copy.name_arc(), &name));
    assert_eq!(copy, lifecycle);
}

#[test]
fn a_failure_restart_and_shutdown_are_counted_and_timed() {
    let mut lifecycle = ServiceLifecycle::new("feed", secs(0));
    lifecycle.transition_to_running(secs(2)).unwrap();
    assert_eq!(lifecycle.start_count(), 1);
    assert_eq!(lifecycle.restart_count(), 0);
    assert_eq!(lifecycle.last_transition_at(), secs(2));
    assert_eq!(lifecycle.cumulative_running_time(secs(5)), secs(3));

    lifecycle
        .record_failure(FailureKind::Error, "connection reset")
        .unwrap();
    lifecycle
        .record_failure(FailureKind::Panic, String::from("read timeout"))
        .unwrap();
    assert_eq!(lifecycle.phase(), ServicePhase::Running);
    assert_eq!(lifecycle.failures().total(), 2);
    assert_eq!(
        (lifecycle.failures().error, lifecycle.failures().panic),
        (1, 1)
    );
    assert_eq!(lifecycle.last_error(), Some("read timeout"));
    assert_eq!(lifecycle.last_transition_at(), secs(2));

    lifecycle
        .transition_to_backing_off(secs(12), secs(4))
        .unwrap();
    assert_eq!(lifecycle.current_backoff(), Some(secs(4)));
    assert_eq!(lifecycle.last_transition_at(), secs(12));
    assert_eq!(lifecycle.cumulative_running_time(secs(15)), secs(10));

    lifecycle.transition_to_restarting(secs(16)).unwrap();
    assert_eq!(lifecycle.current_backoff(), None);
    assert_eq!(lifecycle.last_transition_at(), secs(16));

    lifecycle.transition_to_running(secs(17)).unwrap();
    assert_eq!(lifecycle.start_count(), 2);
    assert_eq!(lifecycle.restart_count(), 1);
    assert_eq!(lifecycle.cumulative_running_time(secs(20)), secs(13));
    // The last error survives the healthy restart.
    assert_eq!(lifecycle.last_error(), Some("read timeout"));

    lifecycle.transition_to_stopping(secs(27)).unwrap();
    assert_eq!(lifecycle.cumulative_running_time(secs(99)), secs(20));
    lifecycle
        .transition_to_terminated(secs(28), TerminationReason::Cancelled)
        .unwrap();
    assert_eq!(lifecycle.phase(), ServicePhase::Terminated);
    assert_eq!(
        lifecycle.termination_reason(),
        Some(&TerminationReason::Cancelled)
    );
    assert_eq!(lifecycle.last_transition_at(), secs(28));
    assert_eq!(lifecycle.cumulative_running_time(secs(99)), secs(20));

    assert_eq!(
        lifecycle.snapshot(secs(99)),
        ServiceLifecycleSnapshot {
            service_name: "feed".to_owned(),
            phase: ServicePhase::Terminated,
            start_count: 2,
            failures: FailureCounts {
                error: 1,
                panic: 1,
                timeout: 0,
                hung: 0,
            },
            last_error: Some("read timeout".to_owned()),
            termination_reason: Some(TerminationReason::Cancelled),
            cumulative_running_time: secs(20),
            current_backoff: None,
            last_transition_at: secs(28),
            ready: false,
            // Eight changes: six transitions, two failures.
            seq: 8,
        }
    );
}

#[test]
fn a_snapshot_while_backing_off_shows_the_delay() {
    let mut lifecycle = ServiceLifecycle::new("feed", secs(0));
    lifecycle.transition_to_running(secs(1)).unwrap();
    lifecycle
        .transition_to_backing_off(secs(3), secs(5))
        .unwrap();
    assert_eq!(
        lifecycle.snapshot(secs(4)),
        ServiceLifecycleSnapshot {
            service_name: "feed".to_owned(),
            phase: ServicePhase::BackingOff,
            start_count: 1,
            failures: FailureCounts::default(),
            last_error: None,
            termination_reason: None,
            cumulative_running_time: secs(2),
            current_backoff: Some(secs(5)),
            last_transition_at: secs(3),
            ready: false,
            seq: 2,
        }
    );
}

#[test]
fn running_can_end_directly_in_termination() {
    let mut lifecycle = ServiceLifecycle::new("feed", secs(0));
    lifecycle.transition_to_running(secs(1)).unwrap();
    lifecycle
        .record_failure(FailureKind::Error, "bad config")
        .unwrap();
    let reason = TerminationReason::Unrecoverable("bad config".to_owned());
    lifecycle
        .transition_to_terminated(secs(4), reason.clone())
        .unwrap();
    assert_eq!(lifecycle.termination_reason(), Some(&reason));
    assert_eq!(lifecycle.cumulative_running_time(secs(50)), secs(3));
    assert_eq!(
        lifecycle
            .snapshot(secs(50))
            .termination_reason
            .map(|reason| reason.to_string())
            .as_deref(),
        Some("unrecoverable error: bad config")
    );
}

#[test]
fn leaving_backing_off_clears_the_delay_whatever_the_target() {
    for target in [
        ServicePhase::Restarting,
        ServicePhase::Stopping,
        ServicePhase::Terminated,
    ] {
        let mut lifecycle = in_phase(ServicePhase::BackingOff);
        assert_eq!(lifecycle.current_backoff(), Some(secs(1)));
        let result = match target {
            ServicePhase::Restarting => lifecycle.transition_to_restarting(secs(2)),
            ServicePhase::Stopping => lifecycle.transition_to_stopping(secs(2)),
            _ => lifecycle.transition_to_terminated(secs(2), TerminationReason::Cancelled),
        };
        result.unwrap();
        assert_eq!(lifecycle.current_backoff(), None, "{target:?}");
        assert_eq!(lifecycle.last_transition_at(), secs(2));
    }
}

#[test]
fn stopping_is_reachable_from_every_phase_before_it() {
    for phase in [
        ServicePhase::Starting,
        ServicePhase::Running,
        ServicePhase::BackingOff,
        ServicePhase::Restarting,
    ] {
        let mut lifecycle = in_phase(phase);
        lifecycle.transition_to_stopping(secs(3)).unwrap();
        assert_eq!(lifecycle.phase(), ServicePhase::Stopping);
        assert_eq!(lifecycle.last_transition_at(), secs(3));
    }
    for phase in [ServicePhase::Stopping, ServicePhase::Terminated] {
        let mut lifecycle = in_phase(phase);
        let before = lifecycle.clone();
        let error: InvalidTransition = lifecycle.transition_to_stopping(secs(3)).unwrap_err();
        assert_eq!((error.from(), error.to()), (phase, ServicePhase::Stopping));
        assert_eq!(lifecycle, before);
    }
}

#[test]
fn a_rejected_move_changes_nothing() {
    let mut lifecycle = in_phase(ServicePhase::BackingOff);
    lifecycle.transition_to_restarting(secs(5)).unwrap();
    let before = lifecycle.clone();
    let error = lifecycle
        .transition_to_backing_off(secs(9), secs(9))
        .unwrap_err();
    assert_eq!(error.from(), ServicePhase::Restarting);
    assert_eq!(error.to(), ServicePhase::BackingOff);
    assert_eq!(lifecycle, before);
    assert_eq!(lifecycle.current_backoff(), None);
    assert_eq!(lifecycle.last_transition_at(), secs(5));

    let error = lifecycle
        .record_failure(FailureKind::Error, "not running")
        .unwrap_err();
    assert_eq!(error.phase(), ServicePhase::Restarting);
    assert_eq!(lifecycle, before);
    assert_eq!(lifecycle.failures().total(), 0);
}

#[test]
fn failures_are_recorded_only_while_running_or_stopping() {
    for phase in ServicePhase::ALL {
        let mut lifecycle = in_phase(phase);
        let result = lifecycle.record_failure(FailureKind::Error, "boom");
        if matches!(phase, ServicePhase::Running | ServicePhase::Stopping) {
            assert_eq!(result, Ok(()));
            assert_eq!(lifecycle.failures().error, 1);
            assert_eq!(lifecycle.last_error(), Some("boom"));
        } else {
            assert_eq!(result.unwrap_err().phase(), phase);
            assert_eq!(lifecycle.failures().total(), 0);
            assert_eq!(lifecycle.last_error(), None);
        }
    }
}

#[test]
fn time_going_backwards_counts_as_zero() {
    let mut lifecycle = ServiceLifecycle::new("feed", secs(100));
    lifecycle.transition_to_running(secs(100)).unwrap();
    assert_eq!(lifecycle.cumulative_running_time(secs(40)), Duration::ZERO);
    assert_eq!(lifecycle.time_in_phase(secs(40)), Duration::ZERO);
    // Left Running "before" entering it: the interval adds nothing.
    lifecycle
        .transition_to_backing_off(secs(50), secs(1))
        .unwrap();
    assert_eq!(lifecycle.last_transition_at(), secs(50));
    assert_eq!(lifecycle.cumulative_running_time(secs(500)), Duration::ZERO);
    lifecycle.transition_to_restarting(secs(10)).unwrap();
    lifecycle.transition_to_running(secs(20)).unwrap();
    lifecycle.transition_to_stopping(secs(26)).unwrap();
    assert_eq!(lifecycle.cumulative_running_time(Duration::ZERO), secs(6));
}

#[test]
fn running_time_saturates_at_the_maximum() {
    let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    lifecycle.transition_to_running(Duration::ZERO).unwrap();
    assert_eq!(
        lifecycle.cumulative_running_time(Duration::MAX),
        Duration::MAX
    );
    lifecycle
        .transition_to_backing_off(Duration::MAX, Duration::MAX)
        .unwrap();
    lifecycle.transition_to_restarting(Duration::ZERO).unwrap();
    lifecycle.transition_to_running(Duration::ZERO).unwrap();
    assert_eq!(
        lifecycle.cumulative_running_time(Duration::MAX),
        Duration::MAX
    );
    assert_eq!(
        lifecycle.cumulative_running_time(Duration::ZERO),
        Duration::MAX
    );
    lifecycle.transition_to_stopping(secs(1)).unwrap();
    assert_eq!(
        lifecycle.cumulative_running_time(Duration::ZERO),
        Duration::MAX
    );
}

#[test]
fn a_second_termination_keeps_the_first_reason() {
    let mut lifecycle = in_phase(ServicePhase::Stopping);
    lifecycle
        .transition_to_terminated(
            secs(2),
            TerminationReason::ShutdownTimeout { timeout: secs(30) },
        )
        .unwrap();
    let before = lifecycle.clone();
    let error = lifecycle
        .transition_to_terminated(secs(3), TerminationReason::Completed)
        .unwrap_err();
    assert_eq!(
        (error.from(), error.to()),
        (ServicePhase::Terminated, ServicePhase::Terminated)
    );
    assert_eq!(lifecycle, before);
    assert_eq!(
        lifecycle
            .snapshot(secs(3))
            .termination_reason
            .map(|reason| reason.kind()),
        Some("shutdown_timeout")
    );
}

#[test]
fn lifecycles_compare_by_their_whole_state() {
    let mut first = ServiceLifecycle::new("feed", Duration::ZERO);
    let second = first.clone();
    assert_eq!(first, second);
    first.transition_to_running(Duration::ZERO).unwrap();
    assert_ne!(first, second);
    assert_ne!(
        ServiceLifecycle::new("feed", Duration::ZERO),
        ServiceLifecycle::new("feed", secs(1))
    );
    assert_ne!(
        ServiceLifecycle::new("feed", Duration::ZERO),
        ServiceLifecycle::new("risk", Duration::ZERO)
    );
}
