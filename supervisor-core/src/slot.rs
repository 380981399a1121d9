//! Per-service shared state and the telemetry fan-out.
//!
//! # Invariants
//!
//! 1. A service's [`ServiceLifecycle`] lives in its own [`ServiceSlot`], behind
//!    a lock held only for the few instructions of one transition, never
//!    across an `.await`. The registry is not touched by transitions.
//! 2. Every successful transition emits exactly one `phase_changed` event,
//!    while the slot's lock is held, so each service's events reach the sinks
//!    in the order the transitions happened.
//! 3. A panicking sink loses the event it panicked on; nothing else is
//!    affected (the panic is caught in `Telemetry::emit`).
//! 4. `service_terminated` is emitted by the one transition into `Terminated`
//!    that succeeds; `Terminated` is absorbing, so it is emitted once per spawn
//!    whether the service's task or the drain timeout gets there first.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use lifecycle::{
    InvalidTransition, ServiceLifecycle, ServiceLifecycleSnapshot, ServicePhase, TerminationReason,
};
use supervisor_metrics::{FailureKind, MetricsSink, ServiceMetricsSnapshot, SupervisorMetrics};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::RestartPolicy;

/// What every service's task shares: the sinks every event goes to, the
/// supervisor's clock origin, and the settings the tasks read.
pub(crate) struct Telemetry {
    pub(crate) counters: Arc<SupervisorMetrics>,
    sinks: Box<[Arc<dyn MetricsSink>]>,
    epoch: Instant,
    pub(crate) clean_restart_delay: Duration,
}

impl Telemetry {
    pub(crate) fn new(sinks: Vec<Arc<dyn MetricsSink>>, clean_restart_delay: Duration) -> Self {
        Self {
            counters: Arc::new(SupervisorMetrics::new()),
            sinks: sinks.into_boxed_slice(),
            epoch: Instant::now(),
            clean_restart_delay,
        }
    }

    /// Time since the supervisor was created, the origin of every time value
    /// handed to `backoff` and `lifecycle`.
    pub(crate) fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    /// Delivers one event to the built-in counters and every sink.
    ///
    /// A sink that panics loses that event, and only that event: the panic is
    /// caught here so it can never take a service's task (and its lifecycle
    /// bookkeeping) down with it.
    pub(crate) fn emit(&self, event: impl Fn(&dyn MetricsSink)) {
        event(&*self.counters);
        for sink in &*self.sinks {
            let delivered = panic::catch_unwind(AssertUnwindSafe(|| event(&**sink)));
            if delivered.is_err() {
                tracing::error!("a metrics sink panicked; the event was dropped for that sink");
            }
        }
    }
}

/// One supervised service's shared state: written by its own task, read by
/// snapshots and, at the drain timeout, by the supervisor.
pub(crate) struct ServiceSlot {
    pub(crate) name: Arc<str>,
    pub(crate) policy: RestartPolicy,
    state: Mutex<ServiceState>,
    abort: OnceLock<AbortHandle>,
}

/// What the slot's lock protects.
struct ServiceState {
    lifecycle: ServiceLifecycle,
    /// Failures by kind; `restarts_total` is read from the lifecycle.
    failures: FailureCounts,
}

/// Failures of one service by kind (its restarts are the lifecycle's).
#[derive(Default)]
struct FailureCounts {
    error: u64,
    panic: u64,
    timeout: u64,
}

impl FailureCounts {
    fn record(&mut self, kind: FailureKind) {
        let counter = match kind {
            FailureKind::Error => &mut self.error,
            FailureKind::Panic => &mut self.panic,
            // `FailureKind` is non-exhaustive; every kind added later is a
            // timeout-like abort until it gets its own counter.
            _ => &mut self.timeout,
        };
        *counter = counter.saturating_add(1);
    }
}

impl ServiceSlot {
    pub(crate) fn new(name: Arc<str>, policy: RestartPolicy, now: Duration) -> Self {
        Self {
            state: Mutex::new(ServiceState {
                lifecycle: ServiceLifecycle::new(Arc::clone(&name), now),
                failures: FailureCounts::default(),
            }),
            name,
            policy,
            abort: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ServiceState> {
        // Sink panics are caught, so nothing panics under this lock; if
        // something ever did, the lifecycle is still consistent (a transition
        // happens whole or not at all), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_abort_handle(&self, handle: AbortHandle) {
        let _ = self.abort.set(handle);
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.lock().lifecycle.phase().is_alive()
    }

    pub(crate) fn snapshot(&self, now: Duration) -> ServiceLifecycleSnapshot {
        self.lock().lifecycle.snapshot(now)
    }

    pub(crate) fn metrics(&self) -> ServiceMetricsSnapshot {
        let state = self.lock();
        ServiceMetricsSnapshot {
            restarts_total: state.lifecycle.restart_count(),
            failures_error: state.failures.error,
            failures_panic: state.failures.panic,
            failures_timeout: state.failures.timeout,
        }
    }

    /// Runs one lifecycle transition and reports it, plus whatever `also`
    /// emits about it, all under the slot's lock: a racing termination by the
    /// drain can never slip in between a transition and its events.
    pub(crate) fn transition(
        &self,
        telemetry: &Telemetry,
        apply: impl FnOnce(&mut ServiceLifecycle, Duration) -> Result<(), InvalidTransition>,
        also: impl Fn(&dyn MetricsSink, &ServiceLifecycle),
    ) -> Result<(), InvalidTransition> {
        self.transition_at(telemetry, telemetry.now(), apply, also)
    }

    /// [`transition`](Self::transition) at a time the caller already read.
    pub(crate) fn transition_at(
        &self,
        telemetry: &Telemetry,
        now: Duration,
        apply: impl FnOnce(&mut ServiceLifecycle, Duration) -> Result<(), InvalidTransition>,
        also: impl Fn(&dyn MetricsSink, &ServiceLifecycle),
    ) -> Result<(), InvalidTransition> {
        let mut state = self.lock();
        let lifecycle = &mut state.lifecycle;
        let from = lifecycle.phase();
        apply(lifecycle, now)?;
        let to = lifecycle.phase();
        telemetry.emit(|sink| {
            sink.phase_changed(&self.name, from, to);
            also(sink, lifecycle);
        });
        Ok(())
    }

    /// Records a failed run. Refused (and not reported) only when the drain
    /// timeout terminated the service meanwhile.
    pub(crate) fn record_failure(&self, telemetry: &Telemetry, kind: FailureKind, message: String) {
        let mut state = self.lock();
        if state.lifecycle.record_failure(message).is_ok() {
            state.failures.record(kind);
            telemetry.emit(|sink| sink.service_failed(&self.name, kind));
        }
    }

    /// Moves the service to `Terminated` and reports it. Returns `false`, and
    /// reports nothing, if it already was (the other side of the drain race
    /// got there first).
    ///
    /// The events that belong to the reason are emitted here, under the same
    /// lock, so they are counted only for the termination that happened:
    /// `circuit_opened` for [`TerminationReason::CircuitBreakerOpen`],
    /// `service_failed(Timeout)` for [`TerminationReason::ShutdownTimeout`].
    pub(crate) fn terminate(&self, telemetry: &Telemetry, reason: TerminationReason) -> bool {
        let now = telemetry.now();
        let mut state = self.lock();
        let ServiceState {
            lifecycle,
            failures,
        } = &mut *state;
        let from = lifecycle.phase();
        if lifecycle.transition_to_terminated(now, reason).is_err() {
            return false;
        }
        let uptime = lifecycle.cumulative_running_time(now);
        let name = &*self.name;
        if let Some(reason) = lifecycle.termination_reason() {
            if matches!(reason, TerminationReason::ShutdownTimeout { .. }) {
                failures.record(FailureKind::Timeout);
            }
            telemetry.emit(|sink| {
                match *reason {
                    TerminationReason::CircuitBreakerOpen {
                        failures,
                        max_retries,
                    } => sink.circuit_opened(name, failures, max_retries),
                    TerminationReason::ShutdownTimeout { .. } => {
                        sink.service_failed(name, FailureKind::Timeout);
                    }
                    _ => {}
                }
                sink.phase_changed(name, from, ServicePhase::Terminated);
                sink.service_terminated(name, reason, uptime);
            });
        }
        true
    }

    /// Aborts the service's task (after the drain timeout).
    pub(crate) fn abort(&self) {
        if let Some(handle) = self.abort.get() {
            handle.abort();
        }
    }
}
