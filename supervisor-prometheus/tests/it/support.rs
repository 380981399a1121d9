//! Shared helpers: a chaotic but plausible sequence of supervisor events, and
//! reading values back from a rendered exposition.

use std::time::Duration;

use supervisor_metrics::{FailureKind, MetricsSink, ServicePhase, TerminationReason};

/// A service name that needs every escape of the exposition format.
pub(crate) const WEIRD_SERVICE: &str = "we\"ird\\name\nx";

/// Its label value as rendered: `"` and `\` backslash-escaped, newline as `\n`.
pub(crate) const WEIRD_SERVICE_ESCAPED: &str = r#"we\"ird\\name\nx"#;

/// Feeds `sink` the events of a supervisor that lived through a bit of
/// everything, interleaving services the way concurrent tasks would:
///
/// - `flaky` fails (error, panic, error), restarts twice, trips its circuit
///   breaker after the third failure and terminates;
/// - `stuck` ignores the shutdown and is aborted after the drain timeout;
/// - `ephemeral` completes and is removed;
/// - `steady` and [`WEIRD_SERVICE`] keep running.
pub(crate) fn chaotic_run(sink: &dyn MetricsSink) {
    use ServicePhase::{BackingOff, Restarting, Running, Starting, Stopping, Terminated};

    for service in ["flaky", "stuck", "ephemeral", "steady", WEIRD_SERVICE] {
        sink.service_spawned(service);
    }
    sink.service_started("flaky", 1);
    sink.phase_changed("flaky", Starting, Running);
    sink.service_started("steady", 1);
    sink.phase_changed("steady", Starting, Running);
    sink.service_started("ephemeral", 1);
    sink.phase_changed("ephemeral", Starting, Running);

    sink.service_failed("flaky", FailureKind::Error);
    sink.phase_changed("flaky", Running, BackingOff);
    sink.backoff_scheduled("flaky", Duration::from_millis(500));
    sink.service_started("stuck", 1);
    sink.phase_changed("stuck", Starting, Running);
    sink.phase_changed("flaky", BackingOff, Restarting);
    sink.service_started("flaky", 2);
    sink.phase_changed("flaky", Restarting, Running);

    sink.phase_changed("ephemeral", Running, Terminated);
    sink.service_terminated(
        "ephemeral",
        &TerminationReason::Completed,
        Duration::from_millis(250),
    );
    sink.service_removed("ephemeral");

    sink.service_failed("flaky", FailureKind::Panic);
    sink.phase_changed("flaky", Running, BackingOff);
    sink.backoff_scheduled("flaky", Duration::from_secs(1));
    sink.service_started(WEIRD_SERVICE, 1);
    sink.phase_changed(WEIRD_SERVICE, Starting, Running);
    sink.phase_changed("flaky", BackingOff, Restarting);
    sink.service_started("flaky", 3);
    sink.phase_changed("flaky", Restarting, Running);
    sink.service_failed("flaky", FailureKind::Error);
    sink.circuit_opened("flaky", 3, 2);
    sink.phase_changed("flaky", Running, Terminated);
    sink.service_terminated(
        "flaky",
        &TerminationReason::CircuitBreakerOpen {
            failures: 3,
            max_retries: 2,
        },
        Duration::from_millis(12_500),
    );

    sink.phase_changed("stuck", Running, Stopping);
    sink.service_failed("stuck", FailureKind::Timeout);
    sink.phase_changed("stuck", Stopping, Terminated);
    sink.service_terminated(
        "stuck",
        &TerminationReason::ShutdownTimeout {
            timeout: Duration::from_secs(5),
        },
        Duration::from_secs(3_600),
    );
}

/// The sample lines of an exposition (no comments), for exact look-ups.
pub(crate) fn samples(exposition: &str) -> Vec<&str> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect()
}

/// The value of the sample whose name and labels are exactly `series`
/// (`name{label="value",...}` as rendered), if there is one.
pub(crate) fn value<'a>(exposition: &'a str, series: &str) -> Option<&'a str> {
    samples(exposition)
        .into_iter()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}
