//! One chaotic but plausible script of lifecycle events for any
//! [`MetricsSink`], and [`ByName`], which drives a sink by service name as a
//! supervisor would: the shared input of the metrics adapters' tests, so both
//! adapters are checked against the same history.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use supervisor_metrics::{FailureKind, MetricsSink, ServicePhase, TerminationReason};

/// Drives a sink by service name, as a supervisor would: each name is
/// resolved once, at its first event (normally its spawn), and its handle is
/// given back by `service_removed`. Dereferences to the sink.
pub struct ByName<'a, S: MetricsSink> {
    sink: &'a S,
    handles: RefCell<HashMap<String, S::Handle>>,
}

impl<S: MetricsSink> std::ops::Deref for ByName<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        self.sink
    }
}

impl<S: MetricsSink> std::fmt::Debug for ByName<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let handles = self.handles.borrow();
        let mut names: Vec<&String> = handles.keys().collect();
        names.sort_unstable();
        f.debug_struct("ByName")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl<'a, S: MetricsSink> ByName<'a, S> {
    /// Drives `sink`, with no name resolved yet.
    #[must_use]
    pub fn new(sink: &'a S) -> Self {
        Self {
            sink,
            handles: RefCell::default(),
        }
    }

    fn with(&self, service: &str, event: impl FnOnce(&S, &S::Handle)) {
        let mut handles = self.handles.borrow_mut();
        let handle = handles
            .entry(service.to_owned())
            .or_insert_with(|| self.sink.resolve(service));
        event(self.sink, handle);
    }

    /// [`MetricsSink::service_spawned`] of `service`.
    pub fn service_spawned(&self, service: &str) {
        self.with(service, |sink, handle| sink.service_spawned(handle));
    }

    /// [`MetricsSink::service_started`] of `service`.
    pub fn service_started(&self, service: &str, start_count: u64) {
        self.with(service, |sink, handle| {
            sink.service_started(handle, start_count);
        });
    }

    /// [`MetricsSink::phase_changed`] of `service`.
    pub fn phase_changed(&self, service: &str, from: ServicePhase, to: ServicePhase) {
        self.with(service, |sink, handle| sink.phase_changed(handle, from, to));
    }

    /// [`MetricsSink::service_failed`] of `service`.
    pub fn service_failed(&self, service: &str, kind: FailureKind) {
        self.with(service, |sink, handle| sink.service_failed(handle, kind));
    }

    /// [`MetricsSink::backoff_scheduled`] of `service`.
    pub fn backoff_scheduled(&self, service: &str, delay: Duration) {
        self.with(service, |sink, handle| {
            sink.backoff_scheduled(handle, delay)
        });
    }

    /// [`MetricsSink::circuit_opened`] of `service`.
    pub fn circuit_opened(&self, service: &str, failures: u32, max_retries: u32) {
        self.with(service, |sink, handle| {
            sink.circuit_opened(handle, failures, max_retries);
        });
    }

    /// [`MetricsSink::service_terminated`] of `service`.
    pub fn service_terminated(&self, service: &str, reason: &TerminationReason, uptime: Duration) {
        self.with(service, |sink, handle| {
            sink.service_terminated(handle, reason, uptime);
        });
    }

    /// [`MetricsSink::service_removed`] of `service`: gives its handle back
    /// (a no-op for a name never seen).
    pub fn service_removed(&self, service: &str) {
        let handle = self.handles.borrow_mut().remove(service);
        if let Some(handle) = handle {
            self.sink.service_removed(handle);
        }
    }
}

/// A service name that needs every escape of the exposition format.
pub const WEIRD_SERVICE: &str = "we\"ird\\name\nx";

/// Its label value as rendered: `"` and `\` backslash-escaped, newline as `\n`.
pub const WEIRD_SERVICE_ESCAPED: &str = r#"we\"ird\\name\nx"#;

/// Feeds `sink` the events of a supervisor that lived through a bit of
/// everything, interleaving services the way concurrent tasks would:
///
/// - `flaky` fails (error, panic, error), backs off 500 ms then 1 s,
///   restarts twice, trips its circuit breaker after the third failure
///   (`failures: 3, max_retries: 2`) and terminates with an uptime of 12.5 s;
/// - `stuck` ignores the shutdown and is aborted after the 5 s drain timeout
///   (a `Timeout` failure), with an uptime of one hour;
/// - `ephemeral` completes after 250 ms and is removed;
/// - `steady` and [`WEIRD_SERVICE`] keep running.
///
/// Five spawns, two services still active, four names still resolved.
pub fn chaotic_run<S: MetricsSink>(sink: &ByName<'_, S>) {
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
