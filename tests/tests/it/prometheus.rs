//! The Prometheus adapter on a real supervisor: the exposition after a chaotic
//! fleet agrees with the built-in counters and passes `promtool check metrics`.

use std::sync::Arc;
use std::time::Duration;

use supervisor_core::{RestartPolicy, SpawnOptions, Supervisor};
use supervisor_prometheus::prometheus_client::registry::Registry;
use supervisor_prometheus::{PrometheusSink, render, render_prometheus_text};
use tests::exposition::{sum_of, value};
use tests::prometheus::{Tool, promtool_check_metrics};

use crate::support::{Scripted, Step, advance, config, exact_backoff, wait_for_phase};

const MS: Duration = Duration::from_millis(1);

/// Runs a fleet with restarts, a panic, a circuit trip and an abort at the
/// shutdown timeout, and returns the supervisor and its registry.
async fn chaotic_fleet() -> (Supervisor, Registry) {
    let mut registry = Registry::default();
    let sink = Arc::new(PrometheusSink::register(&mut registry));
    let sup = Supervisor::new(
        config()
            .with_shutdown_timeout(Duration::from_secs(1))
            .with_metrics_sink(sink),
    );
    let spawn = |svc: Scripted, backoff| {
        sup.spawn_service_with_options(svc, SpawnOptions::with_backoff(backoff))
            .unwrap();
    };
    spawn(
        Scripted::new(
            "flaky",
            RestartPolicy::OnFailure,
            [Step::Fail(MS), Step::Fail(MS)],
        ),
        exact_backoff(),
    );
    spawn(
        Scripted::new(
            "risky \"engine\"\\",
            RestartPolicy::Always,
            [Step::Panic(MS), Step::Succeed(MS)],
        ),
        exact_backoff(),
    );
    spawn(
        Scripted::new("doomed", RestartPolicy::Always, vec![Step::Fail(MS); 10]),
        exact_backoff().with_circuit_breaker(2, Duration::from_secs(60)),
    );
    spawn(
        Scripted::new("once", RestartPolicy::Never, [Step::Succeed(MS)]),
        exact_backoff(),
    );
    spawn(
        Scripted::new("hung", RestartPolicy::OnFailure, [Step::Hang]),
        exact_backoff(),
    );
    advance(Duration::from_secs(5)).await;
    wait_for_phase(&sup, "doomed", supervisor_core::ServicePhase::Terminated).await;
    sup.trigger_shutdown();
    let report = sup.wait_for_drain().await;
    assert_eq!(report.aborted, ["hung"]);
    (sup, registry)
}

#[tokio::test(start_paused = true)]
async fn the_exposition_agrees_with_the_built_in_counters() {
    let (sup, registry) = chaotic_fleet().await;
    let m = sup.metrics().snapshot();
    let text = render(&registry).unwrap();

    assert_eq!(
        sum_of(&text, "supervisor_restarts_total"),
        m.restarts_total as f64
    );
    assert_eq!(
        sum_of(&text, "supervisor_spawned_total"),
        m.spawned_total as f64
    );
    assert_eq!(
        sum_of(&text, "supervisor_terminated_total"),
        m.terminated_total as f64
    );
    assert_eq!(sum_of(&text, "supervisor_active_services"), 0.0);
    assert_eq!(
        sum_of(&text, "supervisor_circuit_breaker_trips_total"),
        m.circuit_breaker_trips as f64
    );
    assert_eq!(
        sum_of(&text, "supervisor_failures_total"),
        m.failures.total() as f64
    );
    assert_eq!(m.circuit_breaker_trips, 1);
    assert_eq!(m.failures.panic, 1);
    assert_eq!(m.failures.timeout, 1);
    assert_eq!(
        value(
            &text,
            r#"supervisor_terminated_total{service="hung",reason="shutdown_timeout"}"#
        ),
        Some("1")
    );
    assert_eq!(
        value(&text, r#"supervisor_restarts_total{service="flaky"}"#),
        Some("2")
    );
    // Every service ends with exactly one phase at 1: terminated.
    for snap in sup.lifecycle_snapshots() {
        assert_eq!(snap.phase, supervisor_core::ServicePhase::Terminated);
    }
    assert_eq!(sum_of(&text, "supervisor_service_phase"), 5.0);
    // The label value with a quote and a backslash is escaped.
    assert!(
        text.contains(r#"service="risky \"engine\"\\""#),
        "escaped label missing:\n{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn promtool_accepts_the_exposition_of_a_chaotic_fleet() {
    let Some(promtool) = Tool::Promtool.require().unwrap() else {
        return;
    };
    let (_sup, registry) = chaotic_fleet().await;
    let text = render_prometheus_text(&registry).unwrap();
    let output = promtool_check_metrics(&promtool, &text).unwrap();
    assert!(
        output.is_clean(),
        "promtool check metrics complained: {output:?}\n{text}"
    );
}
