//! Termination reasons and errors: exact sentences, labels and failure flags.

use core::time::Duration;
use std::collections::HashSet;
use std::error::Error;

use supervisor_lifecycle::{FailureKind, ServiceLifecycle, ServicePhase, TerminationReason};

use crate::support::expected_kind;

fn every_reason() -> Vec<TerminationReason> {
    vec![
        TerminationReason::Completed,
        TerminationReason::Cancelled,
        TerminationReason::Unrecoverable("disk full".to_owned()),
        TerminationReason::CircuitBreakerOpen {
            failures: 6,
            max_retries: 5,
        },
        TerminationReason::Panicked("index out of bounds".to_owned()),
        TerminationReason::ShutdownTimeout {
            timeout: Duration::from_millis(1_500),
        },
        TerminationReason::DoNotRestart("bad credentials".to_owned()),
        TerminationReason::TerminateTree("schema mismatch".to_owned()),
    ]
}

#[test]
fn display_is_an_exact_human_sentence() {
    let sentences: Vec<String> = every_reason().iter().map(ToString::to_string).collect();
    assert_eq!(
        sentences,
        [
            "completed successfully",
            "cancelled by shutdown",
            "unrecoverable error: disk full",
            "circuit breaker open after 6 failures (max retries 5)",
            "panicked: index out of bounds",
            "aborted after the shutdown timeout of 1.5s",
            "gave up, asked not to be restarted: bad credentials",
            "asked to terminate the supervisor: schema mismatch",
        ]
    );
    for sentence in &sentences {
        assert!(!sentence.is_empty());
        assert!(!sentence.ends_with('.'), "{sentence}");
        assert_eq!(sentence.to_lowercase(), *sentence);
    }
    assert!(sentences[3].contains("circuit breaker"));
}

#[test]
fn kinds_are_exact_and_unique() {
    let kinds: Vec<&str> = every_reason().iter().map(TerminationReason::kind).collect();
    assert_eq!(
        kinds,
        [
            "completed",
            "cancelled",
            "unrecoverable",
            "circuit_breaker_open",
            "panicked",
            "shutdown_timeout",
            "do_not_restart",
            "terminate_tree",
        ]
    );
    for reason in every_reason() {
        assert_eq!(reason.kind(), expected_kind(&reason));
    }
    let unique: HashSet<&str> = kinds.iter().copied().collect();
    assert_eq!(unique.len(), kinds.len());
}

#[test]
fn only_completed_and_cancelled_are_not_failures() {
    let failures: Vec<bool> = every_reason()
        .iter()
        .map(TerminationReason::is_failure)
        .collect();
    assert_eq!(failures, [false, false, true, true, true, true, true, true]);
}

#[test]
fn invalid_transition_names_both_phases() {
    let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    let error = lifecycle
        .transition_to_backing_off(Duration::ZERO, Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(error.from(), ServicePhase::Starting);
    assert_eq!(error.to(), ServicePhase::BackingOff);
    assert_eq!(
        error.to_string(),
        "invalid lifecycle transition from starting to backing off"
    );
    let copy = error;
    assert_eq!(copy, error);
    let as_error: &dyn Error = &error;
    assert!(as_error.source().is_none());
}

#[test]
fn not_running_names_the_phase() {
    let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    lifecycle.transition_to_running(Duration::ZERO).unwrap();
    lifecycle
        .transition_to_backing_off(Duration::ZERO, Duration::ZERO)
        .unwrap();
    let error = lifecycle
        .record_failure(FailureKind::Error, "late failure")
        .unwrap_err();
    assert_eq!(error.phase(), ServicePhase::BackingOff);
    assert_eq!(
        error.to_string(),
        "cannot record a failure while the service is backing off (only while running or stopping)"
    );
    let as_error: &dyn Error = &error;
    assert!(as_error.source().is_none());
}
