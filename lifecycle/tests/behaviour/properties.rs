//! Property tests: random sequences of operations, at arbitrary times (going
//! backwards included), against the reference model in `support`.

use core::time::Duration;

use proptest::prelude::*;
use supervisor_lifecycle::{ServiceLifecycle, ServicePhase};

use crate::support::{Model, Op, op, reason, time};

/// Drives `lifecycle` and `model` through `ops`, checking after each step that
/// they agree, that a rejected step changed nothing, and the invariants.
fn run(
    lifecycle: &mut ServiceLifecycle,
    model: &mut Model,
    ops: &[(Op, Duration)],
) -> Result<(), TestCaseError> {
    for (op, probe) in ops {
        let before = lifecycle.clone();
        let expected = model.apply(op);
        let actual = op.apply(lifecycle);
        prop_assert_eq!(actual, expected, "op {:?} from {:?}", op, before.phase());
        if actual.is_err() {
            prop_assert_eq!(&*lifecycle, &before);
        }
        model.assert_matches(lifecycle, *probe);
        prop_assert_eq!(
            lifecycle.termination_reason().is_some(),
            lifecycle.phase() == ServicePhase::Terminated
        );
        prop_assert_eq!(
            lifecycle.current_backoff().is_some(),
            lifecycle.phase() == ServicePhase::BackingOff
        );
        prop_assert_eq!(
            lifecycle.phase().is_alive(),
            lifecycle.phase() != ServicePhase::Terminated
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn random_operations_agree_with_the_model(
        created in time(),
        ops in prop::collection::vec((op(), time()), 0..64),
    ) {
        let mut lifecycle = ServiceLifecycle::new("market-feed", created);
        let mut model = Model::new("market-feed", created);
        model.assert_matches(&lifecycle, created);
        run(&mut lifecycle, &mut model, &ops)?;
    }

    #[test]
    fn counters_count_accepted_operations(
        ops in prop::collection::vec((op(), time()), 0..64),
    ) {
        let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
        let mut entries_into_running = 0u64;
        let mut accepted_failures = 0u64;
        let mut aborts = 0u64;
        let mut last_message: Option<String> = None;
        for (op, _) in &ops {
            let accepted = op.apply(&mut lifecycle).is_ok();
            match op {
                Op::Running(_) if accepted => entries_into_running += 1,
                Op::Failure(_, message) if accepted => {
                    accepted_failures += 1;
                    last_message = Some(message.clone());
                }
                Op::Terminated(_, reason) if accepted && reason.is_abort() => {
                    aborts += 1;
                    last_message = Some(reason.to_string());
                }
                _ => {}
            }
        }
        prop_assert_eq!(lifecycle.start_count(), entries_into_running);
        prop_assert_eq!(lifecycle.restart_count(), entries_into_running.saturating_sub(1));
        prop_assert_eq!(lifecycle.failures().total(), accepted_failures + aborts);
        prop_assert_eq!(lifecycle.last_error(), last_message.as_deref());
    }

    #[test]
    fn terminated_is_absorbing(
        prefix in prop::collection::vec((op(), time()), 0..16),
        terminated_at in time(),
        first_reason in reason(),
        ops in prop::collection::vec((op(), time()), 1..32),
    ) {
        let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
        for (op, _) in &prefix {
            let _ = op.apply(&mut lifecycle);
        }
        if lifecycle.phase() != ServicePhase::Terminated {
            lifecycle.transition_to_terminated(terminated_at, first_reason)?;
        }
        let terminated = lifecycle.clone();
        for (op, probe) in &ops {
            let result = op.apply(&mut lifecycle);
            prop_assert!(result.is_err());
            let (from, _) = result.unwrap_err();
            prop_assert_eq!(from, ServicePhase::Terminated);
            prop_assert_eq!(&lifecycle, &terminated);
            prop_assert_eq!(
                lifecycle.cumulative_running_time(*probe),
                terminated.cumulative_running_time(Duration::ZERO)
            );
        }
    }

    #[test]
    fn no_operation_panics_at_extreme_times(
        ops in prop::collection::vec(
            (op(), prop_oneof![Just(Duration::ZERO), Just(Duration::MAX)]),
            0..64,
        ),
    ) {
        let mut lifecycle = ServiceLifecycle::new("feed", Duration::MAX);
        let mut model = Model::new("feed", Duration::MAX);
        run(&mut lifecycle, &mut model, &ops)?;
    }
}

#[cfg(feature = "serde")]
proptest! {
    #[test]
    fn snapshots_round_trip_through_json(
        ops in prop::collection::vec((op(), time()), 0..64),
        now in time(),
    ) {
        let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
        for (op, _) in &ops {
            let _ = op.apply(&mut lifecycle);
        }
        let snapshot = lifecycle.snapshot(now);
        let json = serde_json::to_string(&snapshot).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: supervisor_lifecycle::ServiceLifecycleSnapshot =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, snapshot);
    }

    #[test]
    fn reasons_round_trip_through_json(reason in reason()) {
        let json = serde_json::to_string(&reason).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: supervisor_lifecycle::TerminationReason =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, reason);
    }
}
