//! [`SupervisorMetrics`], the always-on supervisor-wide counters, and
//! [`MetricsSnapshot`], their plain-data copy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lifecycle::{FailureCounts, FailureKind, TerminationReason};

use crate::MetricsSink;

/// The supervisor's always-on, supervisor-wide counters: relaxed atomics, no
/// lock, no allocation per event.
///
/// It is a [`MetricsSink`] (with no per-service state), fed the same events as
/// every other sink. Per-service numbers live in each service's lifecycle
/// snapshot, not here.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_metrics::{MetricsSink, SupervisorMetrics, TerminationReason};
///
/// let metrics = SupervisorMetrics::new();
/// metrics.service_spawned(&());
/// metrics.service_started(&(), 1);
/// metrics.service_started(&(), 2);
/// metrics.service_terminated(&(), &TerminationReason::Cancelled, Duration::from_secs(1));
///
/// let snapshot = metrics.snapshot();
/// assert_eq!(snapshot.spawned_total, 1);
/// assert_eq!(snapshot.restarts_total, 1);
/// assert_eq!(snapshot.terminated_total, 1);
/// assert_eq!(snapshot.active_services, 0);
/// ```
#[derive(Debug, Default)]
pub struct SupervisorMetrics {
    restarts_total: AtomicU64,
    active_services: AtomicU64,
    spawned_total: AtomicU64,
    terminated_total: AtomicU64,
    circuit_breaker_trips: AtomicU64,
    /// One counter per [`FailureKind::ALL`] entry, in that order.
    failures: [AtomicU64; FailureKind::ALL.len()],
}

impl SupervisorMetrics {
    /// Counters all at zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::{MetricsSnapshot, SupervisorMetrics};
    ///
    /// let metrics = SupervisorMetrics::new();
    /// assert_eq!(metrics.snapshot(), MetricsSnapshot::default());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every counter.
    ///
    /// Each counter is read atomically, but not all of them at one instant: a
    /// snapshot taken while services change state may be mid-event (for
    /// example `spawned_total` already counted but `active_services` not yet).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::{FailureKind, MetricsSink, SupervisorMetrics};
    ///
    /// let metrics = SupervisorMetrics::new();
    /// metrics.service_spawned(&());
    /// metrics.service_failed(&(), FailureKind::Error);
    /// metrics.circuit_opened(&(), 11, 10);
    ///
    /// let snapshot = metrics.snapshot();
    /// assert_eq!(snapshot.active_services, 1);
    /// assert_eq!(snapshot.failures.error, 1);
    /// assert_eq!(snapshot.circuit_breaker_trips, 1);
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut failures = FailureCounts::default();
        for (kind, counter) in FailureKind::ALL.iter().zip(&self.failures) {
            add(&mut failures, *kind, load(counter));
        }
        MetricsSnapshot {
            restarts_total: load(&self.restarts_total),
            active_services: load(&self.active_services),
            spawned_total: load(&self.spawned_total),
            terminated_total: load(&self.terminated_total),
            circuit_breaker_trips: load(&self.circuit_breaker_trips),
            failures,
        }
    }
}

/// Adds `count` failures of `kind` (saturating).
fn add(failures: &mut FailureCounts, kind: FailureKind, count: u64) {
    let counter = match kind {
        FailureKind::Error => &mut failures.error,
        FailureKind::Panic => &mut failures.panic,
        FailureKind::Timeout => &mut failures.timeout,
        FailureKind::Hung => &mut failures.hung,
        // A kind this crate does not know yet: counted nowhere rather than
        // under another kind's name.
        _ => return,
    };
    *counter = counter.saturating_add(count);
}

impl MetricsSink for SupervisorMetrics {
    type Handle = ();

    fn resolve(&self, _service: &str) {}

    fn service_spawned(&self, _service: &()) {
        self.spawned_total.fetch_add(1, Ordering::Relaxed);
        self.active_services.fetch_add(1, Ordering::Relaxed);
    }

    fn service_started(&self, _service: &(), start_count: u64) {
        if start_count > 1 {
            self.restarts_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn service_failed(&self, _service: &(), kind: FailureKind) {
        if let Some(index) = FailureKind::ALL.iter().position(|known| *known == kind) {
            self.failures[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn circuit_opened(&self, _service: &(), _failures: u32, _max_retries: u32) {
        self.circuit_breaker_trips.fetch_add(1, Ordering::Relaxed);
    }

    fn service_terminated(&self, _service: &(), _reason: &TerminationReason, _uptime: Duration) {
        self.terminated_total.fetch_add(1, Ordering::Relaxed);
        // Saturating: a termination is only ever reported after its spawn, but
        // a counter must never wrap even if a caller breaks that contract.
        let _ = self
            .active_services
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |active| {
                Some(active.saturating_sub(1))
            });
    }
}

/// Plain-data copy of [`SupervisorMetrics`].
///
/// # Examples
///
/// ```
/// use supervisor_metrics::SupervisorMetrics;
///
/// let snapshot = SupervisorMetrics::new().snapshot();
/// assert_eq!(snapshot.failures.total(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MetricsSnapshot {
    /// Relaunches of a service after a previous run ended (clean or failed).
    pub restarts_total: u64,
    /// Services spawned and not yet terminated.
    pub active_services: u64,
    /// Services spawned (restarts are not spawns).
    pub spawned_total: u64,
    /// Services that reached `Terminated`.
    pub terminated_total: u64,
    /// Circuit breakers that opened.
    pub circuit_breaker_trips: u64,
    /// Failed runs of every service, by kind.
    pub failures: FailureCounts,
}
