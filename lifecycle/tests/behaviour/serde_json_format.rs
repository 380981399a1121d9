//! The JSON form of the serializable types (feature `serde`).

use core::time::Duration;

use serde_json::json;
use supervisor_lifecycle::{
    FailureKind, ServiceLifecycle, ServiceLifecycleSnapshot, ServicePhase, TerminationReason,
};

#[test]
fn phases_serialize_as_their_metric_labels() {
    for phase in ServicePhase::ALL {
        let value = serde_json::to_value(phase).unwrap();
        assert_eq!(value, json!(phase.as_str()));
        let back: ServicePhase = serde_json::from_value(value).unwrap();
        assert_eq!(back, phase);
    }
}

#[test]
fn reasons_have_a_snake_case_external_tag() {
    let cases = [
        (TerminationReason::Completed, json!("completed")),
        (TerminationReason::Cancelled, json!("cancelled")),
        (
            TerminationReason::Unrecoverable("disk full".to_owned()),
            json!({ "unrecoverable": "disk full" }),
        ),
        (
            TerminationReason::CircuitBreakerOpen {
                failures: 6,
                max_retries: 5,
            },
            json!({ "circuit_breaker_open": { "failures": 6, "max_retries": 5 } }),
        ),
        (
            TerminationReason::Panicked("boom".to_owned()),
            json!({ "panicked": "boom" }),
        ),
        (
            TerminationReason::ShutdownTimeout {
                timeout: Duration::from_millis(1_500),
            },
            json!({ "shutdown_timeout": { "timeout": { "secs": 1, "nanos": 500_000_000 } } }),
        ),
        (
            TerminationReason::DoNotRestart("bad credentials".to_owned()),
            json!({ "do_not_restart": "bad credentials" }),
        ),
        (
            TerminationReason::TerminateTree("schema mismatch".to_owned()),
            json!({ "terminate_tree": "schema mismatch" }),
        ),
    ];
    for (reason, expected) in cases {
        assert_eq!(serde_json::to_value(&reason).unwrap(), expected);
        let back: TerminationReason = serde_json::from_value(expected).unwrap();
        assert_eq!(back, reason);
    }
}

#[test]
fn a_snapshot_serializes_field_by_field() {
    let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    lifecycle
        .transition_to_running(Duration::from_secs(1))
        .unwrap();
    lifecycle
        .record_failure(FailureKind::Error, "reset")
        .unwrap();
    lifecycle
        .transition_to_terminated(
            Duration::from_secs(3),
            TerminationReason::Panicked("boom".to_owned()),
        )
        .unwrap();
    let snapshot = lifecycle.snapshot(Duration::from_secs(3));
    let value = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(
        value,
        json!({
            "service_name": "feed",
            "phase": "terminated",
            "start_count": 1,
            "failures": { "error": 1, "panic": 0, "timeout": 0, "hung": 0 },
            "last_error": "reset",
            "termination_reason": { "panicked": "boom" },
            "ready": false,
            "seq": 3,
            "cumulative_running_time": { "secs": 2, "nanos": 0 },
            "current_backoff": null,
            "last_transition_at": { "secs": 3, "nanos": 0 },
        })
    );
    let back: ServiceLifecycleSnapshot = serde_json::from_value(value).unwrap();
    assert_eq!(back, snapshot);
}
