//! The metrics boundary of the supervisor: one sink trait, a no-op sink, and the
//! always-on in-memory counters.
//!
//! # Key types
//!
//! - [`MetricsSink`]: what a metrics back-end implements. Every method has a
//!   no-op default body, so adding an event later is not a breaking change.
//! - [`NoopSink`]: discards everything.
//! - [`SupervisorMetrics`]: lock-free counters the supervisor always keeps; it
//!   is itself a [`MetricsSink`] and backs `Supervisor::metrics()`.
//! - [`MetricsSnapshot`]: plain data read from [`SupervisorMetrics`].
//!
//! # Who should depend on this crate
//!
//! Authors of metrics adapters (Prometheus, the `metrics` facade, StatsD, …).
//! This crate has no runtime dependency: an adapter depends on it, never on
//! `supervisor-core`, so swapping back-ends never touches the core.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `serde` | no      | `Serialize`/`Deserialize` for [`MetricsSnapshot`] |
//!
//! # Delivery contract
//!
//! The supervisor calls a sink from the service's own task, on the hot path:
//!
//! 1. every event is delivered exactly once per occurrence, in the order it
//!    happened for a given service (events of different services interleave);
//! 2. a sink must not block and should not allocate per event;
//! 3. a sink should not panic; if it does, the supervisor catches the panic
//!    and that sink loses that one event, and nothing else is affected.
//!
//! # Examples
//!
//! A custom sink that counts failures by kind:
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use supervisor_metrics::{FailureKind, MetricsSink};
//!
//! #[derive(Debug, Default)]
//! struct PanicCounter(AtomicU64);
//!
//! impl MetricsSink for PanicCounter {
//!     fn service_failed(&self, _service: &str, kind: FailureKind) {
//!         if kind == FailureKind::Panic {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! let sink = PanicCounter::default();
//! sink.service_failed("feed", FailureKind::Panic);
//! sink.service_failed("feed", FailureKind::Error);
//! assert_eq!(sink.0.load(Ordering::Relaxed), 1);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

pub use lifecycle::{ServicePhase, TerminationReason};

pub mod series;

/// A metrics back-end the supervisor reports lifecycle events to.
///
/// Every method takes `&self` and has an empty default body: implement only
/// the events you need. See the crate documentation for the delivery contract
/// (exactly once, non-blocking, no per-event allocation).
///
/// `service` is the service's registered name; it is unique among live
/// services of one supervisor.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_metrics::{MetricsSink, TerminationReason};
///
/// #[derive(Debug)]
/// struct Log;
///
/// impl MetricsSink for Log {
///     fn service_terminated(&self, service: &str, reason: &TerminationReason, uptime: Duration) {
///         println!("{service} stopped after {uptime:?}: {reason}");
///     }
/// }
///
/// Log.service_terminated("feed", &TerminationReason::Completed, Duration::from_secs(3));
/// ```
pub trait MetricsSink: Send + Sync + 'static {
    /// A service was registered with the supervisor (once per spawn).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use supervisor_metrics::MetricsSink;
    ///
    /// # #[derive(Debug, Default)]
    /// struct Spawns(AtomicU64);
    ///
    /// impl MetricsSink for Spawns {
    ///     fn service_spawned(&self, _service: &str) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = Spawns::default();
    /// sink.service_spawned("feed");
    /// sink.service_spawned("db");
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 2);
    /// ```
    fn service_spawned(&self, service: &str) {
        let _ = service;
    }

    /// A service's `run` was entered: `start_count` is 1 for the first start
    /// and `n + 1` for the `n`-th restart.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use supervisor_metrics::MetricsSink;
    ///
    /// // The most starts of any one service: a crash loop shows here.
    /// # #[derive(Debug, Default)]
    /// struct MostStarts(AtomicU64);
    ///
    /// impl MetricsSink for MostStarts {
    ///     fn service_started(&self, _service: &str, start_count: u64) {
    ///         self.0.fetch_max(start_count, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = MostStarts::default();
    /// sink.service_started("db", 1);
    /// sink.service_started("db", 2);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 2);
    /// ```
    fn service_started(&self, service: &str, start_count: u64) {
        let _ = (service, start_count);
    }

    /// A service moved from one lifecycle phase to another.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use supervisor_metrics::{MetricsSink, ServicePhase};
    ///
    /// # #[derive(Debug, Default)]
    /// struct BackOffs(AtomicU64);
    ///
    /// impl MetricsSink for BackOffs {
    ///     fn phase_changed(&self, _service: &str, _from: ServicePhase, to: ServicePhase) {
    ///         if to == ServicePhase::BackingOff {
    ///             self.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// }
    ///
    /// let sink = BackOffs::default();
    /// sink.phase_changed("feed", ServicePhase::Starting, ServicePhase::Running);
    /// sink.phase_changed("feed", ServicePhase::Running, ServicePhase::BackingOff);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    /// ```
    fn phase_changed(&self, service: &str, from: ServicePhase, to: ServicePhase) {
        let _ = (service, from, to);
    }

    /// A run of a service ended in failure.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use supervisor_metrics::{FailureKind, MetricsSink};
    ///
    /// # #[derive(Debug, Default)]
    /// struct Aborts(AtomicU64);
    ///
    /// impl MetricsSink for Aborts {
    ///     fn service_failed(&self, _service: &str, kind: FailureKind) {
    ///         if kind == FailureKind::Timeout {
    ///             self.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// }
    ///
    /// let sink = Aborts::default();
    /// sink.service_failed("feed", FailureKind::Error);
    /// sink.service_failed("feed", FailureKind::Timeout);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    /// ```
    fn service_failed(&self, service: &str, kind: FailureKind) {
        let _ = (service, kind);
    }

    /// A restart of a service was scheduled after `delay`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use supervisor_metrics::MetricsSink;
    ///
    /// # #[derive(Debug, Default)]
    /// struct LongestDelaySecs(AtomicU64);
    ///
    /// impl MetricsSink for LongestDelaySecs {
    ///     fn backoff_scheduled(&self, _service: &str, delay: Duration) {
    ///         self.0.fetch_max(delay.as_secs(), Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = LongestDelaySecs::default();
    /// sink.backoff_scheduled("feed", Duration::from_secs(8));
    /// sink.backoff_scheduled("db", Duration::from_secs(2));
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 8);
    /// ```
    fn backoff_scheduled(&self, service: &str, delay: Duration) {
        let _ = (service, delay);
    }

    /// A service's circuit breaker opened: it will not be restarted again.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use supervisor_metrics::MetricsSink;
    ///
    /// # #[derive(Debug, Default)]
    /// struct Trips(AtomicU64);
    ///
    /// impl MetricsSink for Trips {
    ///     fn circuit_opened(&self, _service: &str, _failures: u32, _max_retries: u32) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = Trips::default();
    /// sink.circuit_opened("db", 11, 10);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    /// ```
    fn circuit_opened(&self, service: &str, failures: u32, max_retries: u32) {
        let _ = (service, failures, max_retries);
    }

    /// A service reached `Terminated` (exactly once per spawn). `uptime` is its
    /// cumulative time in `Running` over all its runs.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use supervisor_metrics::{MetricsSink, TerminationReason};
    ///
    /// # #[derive(Debug, Default)]
    /// struct UptimeSecs(AtomicU64);
    ///
    /// impl MetricsSink for UptimeSecs {
    ///     fn service_terminated(&self, _service: &str, _reason: &TerminationReason, uptime: Duration) {
    ///         self.0.fetch_add(uptime.as_secs(), Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = UptimeSecs::default();
    /// sink.service_terminated("feed", &TerminationReason::Completed, Duration::from_secs(3));
    /// sink.service_terminated("db", &TerminationReason::Cancelled, Duration::from_secs(4));
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 7);
    /// ```
    fn service_terminated(&self, service: &str, reason: &TerminationReason, uptime: Duration) {
        let _ = (service, reason, uptime);
    }

    /// A terminated service's entry was removed from the supervisor; its
    /// per-service series can be dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicU64, Ordering};
    /// use supervisor_metrics::MetricsSink;
    ///
    /// # #[derive(Debug, Default)]
    /// struct Removals(AtomicU64);
    ///
    /// impl MetricsSink for Removals {
    ///     fn service_removed(&self, _service: &str) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = Removals::default();
    /// sink.service_removed("feed");
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    /// ```
    fn service_removed(&self, service: &str) {
        let _ = service;
    }
}

/// How a run of a service failed.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::FailureKind;
///
/// assert_eq!(FailureKind::Panic.as_str(), "panic");
/// assert_eq!(FailureKind::ALL.len(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// `run` returned an error.
    Error,
    /// `run` panicked.
    Panic,
    /// The service was still running when the shutdown timeout expired and
    /// was aborted.
    Timeout,
}

impl FailureKind {
    /// Every kind, in a stable order.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::FailureKind;
    ///
    /// let labels: Vec<&str> = FailureKind::ALL.iter().map(|kind| kind.as_str()).collect();
    /// assert_eq!(labels, ["error", "panic", "timeout"]);
    /// ```
    pub const ALL: [FailureKind; 3] =
        [FailureKind::Error, FailureKind::Panic, FailureKind::Timeout];

    /// A stable, lowercase label for metric series.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::FailureKind;
    ///
    /// assert_eq!(FailureKind::Error.as_str(), "error");
    /// assert_eq!(FailureKind::Timeout.to_string(), FailureKind::Timeout.as_str());
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
        }
    }

    const fn index(self) -> usize {
        match self {
            FailureKind::Error => 0,
            FailureKind::Panic => 1,
            FailureKind::Timeout => 2,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sink that discards every event.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::{MetricsSink, NoopSink};
///
/// NoopSink.service_spawned("feed");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl MetricsSink for NoopSink {}

/// The supervisor's always-on, supervisor-wide counters: relaxed atomics, no
/// lock, no allocation per event.
///
/// It is a [`MetricsSink`], fed the same events as every other sink. The
/// per-service counters ([`ServiceMetricsSnapshot`]) are kept by the
/// supervisor next to each service's lifecycle, where no lookup by name is
/// needed (`Supervisor::service_metrics`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_metrics::{MetricsSink, SupervisorMetrics, TerminationReason};
///
/// let metrics = SupervisorMetrics::new();
/// metrics.service_spawned("feed");
/// metrics.service_started("feed", 1);
/// metrics.service_started("feed", 2);
/// metrics.service_terminated("feed", &TerminationReason::Cancelled, Duration::from_secs(1));
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
    failures: [AtomicU64; 3],
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
    /// metrics.service_spawned("db");
    /// metrics.service_failed("db", FailureKind::Error);
    /// metrics.circuit_opened("db", 11, 10);
    ///
    /// let snapshot = metrics.snapshot();
    /// assert_eq!(snapshot.active_services, 1);
    /// assert_eq!(snapshot.failures_error, 1);
    /// assert_eq!(snapshot.circuit_breaker_trips, 1);
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            restarts_total: load(&self.restarts_total),
            active_services: load(&self.active_services),
            spawned_total: load(&self.spawned_total),
            terminated_total: load(&self.terminated_total),
            circuit_breaker_trips: load(&self.circuit_breaker_trips),
            failures_error: load(&self.failures[FailureKind::Error.index()]),
            failures_panic: load(&self.failures[FailureKind::Panic.index()]),
            failures_timeout: load(&self.failures[FailureKind::Timeout.index()]),
        }
    }
}

impl MetricsSink for SupervisorMetrics {
    fn service_spawned(&self, _service: &str) {
        self.spawned_total.fetch_add(1, Ordering::Relaxed);
        self.active_services.fetch_add(1, Ordering::Relaxed);
    }

    fn service_started(&self, _service: &str, start_count: u64) {
        if start_count > 1 {
            self.restarts_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn service_failed(&self, _service: &str, kind: FailureKind) {
        self.failures[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn circuit_opened(&self, _service: &str, _failures: u32, _max_retries: u32) {
        self.circuit_breaker_trips.fetch_add(1, Ordering::Relaxed);
    }

    fn service_terminated(&self, _service: &str, _reason: &TerminationReason, _uptime: Duration) {
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

/// The counters of one service: restarts and failures by kind.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::ServiceMetricsSnapshot;
///
/// assert_eq!(ServiceMetricsSnapshot::default().failures_total(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceMetricsSnapshot {
    /// Relaunches of this service.
    pub restarts_total: u64,
    /// Runs that returned an error.
    pub failures_error: u64,
    /// Runs that panicked.
    pub failures_panic: u64,
    /// Aborts after the shutdown timeout.
    pub failures_timeout: u64,
}

impl ServiceMetricsSnapshot {
    /// Counts one failure of `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::{FailureKind, ServiceMetricsSnapshot};
    ///
    /// let mut counters = ServiceMetricsSnapshot::default();
    /// counters.record_failure(FailureKind::Panic);
    /// assert_eq!(counters.failures(FailureKind::Panic), 1);
    /// ```
    pub fn record_failure(&mut self, kind: FailureKind) {
        let counter = match kind {
            FailureKind::Error => &mut self.failures_error,
            FailureKind::Panic => &mut self.failures_panic,
            FailureKind::Timeout => &mut self.failures_timeout,
        };
        *counter = counter.saturating_add(1);
    }

    /// Failures of one kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::{FailureKind, ServiceMetricsSnapshot};
    ///
    /// let counters = ServiceMetricsSnapshot {
    ///     failures_error: 2,
    ///     ..ServiceMetricsSnapshot::default()
    /// };
    /// assert_eq!(counters.failures(FailureKind::Error), 2);
    /// assert_eq!(counters.failures(FailureKind::Panic), 0);
    /// ```
    #[must_use]
    pub fn failures(&self, kind: FailureKind) -> u64 {
        match kind {
            FailureKind::Error => self.failures_error,
            FailureKind::Panic => self.failures_panic,
            FailureKind::Timeout => self.failures_timeout,
        }
    }

    /// Failures of every kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::ServiceMetricsSnapshot;
    ///
    /// let counters = ServiceMetricsSnapshot {
    ///     restarts_total: 3,
    ///     failures_error: 2,
    ///     failures_panic: 1,
    ///     failures_timeout: 0,
    /// };
    /// assert_eq!(counters.failures_total(), 3);
    /// ```
    #[must_use]
    pub fn failures_total(&self) -> u64 {
        self.failures_error
            .saturating_add(self.failures_panic)
            .saturating_add(self.failures_timeout)
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
/// assert_eq!(snapshot.failures_total(), 0);
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
    /// Runs that returned an error.
    pub failures_error: u64,
    /// Runs that panicked.
    pub failures_panic: u64,
    /// Services aborted after the shutdown timeout.
    pub failures_timeout: u64,
}

impl MetricsSnapshot {
    /// Failures of every kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::{FailureKind, MetricsSink, SupervisorMetrics};
    ///
    /// let metrics = SupervisorMetrics::new();
    /// metrics.service_failed("feed", FailureKind::Error);
    /// metrics.service_failed("db", FailureKind::Panic);
    /// assert_eq!(metrics.snapshot().failures_total(), 2);
    /// ```
    #[must_use]
    pub fn failures_total(&self) -> u64 {
        self.failures_error
            .saturating_add(self.failures_panic)
            .saturating_add(self.failures_timeout)
    }

    /// Failures of one kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::{FailureKind, MetricsSink, SupervisorMetrics};
    ///
    /// let metrics = SupervisorMetrics::new();
    /// metrics.service_failed("feed", FailureKind::Timeout);
    /// let snapshot = metrics.snapshot();
    /// assert_eq!(snapshot.failures(FailureKind::Timeout), 1);
    /// assert_eq!(snapshot.failures(FailureKind::Error), 0);
    /// ```
    #[must_use]
    pub fn failures(&self, kind: FailureKind) -> u64 {
        match kind {
            FailureKind::Error => self.failures_error,
            FailureKind::Panic => self.failures_panic,
            FailureKind::Timeout => self.failures_timeout,
        }
    }
}

/// Per-service state of a metrics adapter, keyed by service name.
///
/// An event costs a shared read lock and a lookup by `&str` (no allocation);
/// the write lock is taken only the first time a service is seen (its entry is
/// created then) and when it is removed. Adapters keep their per-service
/// handles (label sets, counters) here so the hot path never builds labels.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use supervisor_metrics::ServiceMap;
///
/// let restarts: ServiceMap<AtomicU64> = ServiceMap::new();
/// restarts.with("feed", |_name| AtomicU64::new(0), |count| count.fetch_add(1, Ordering::Relaxed));
/// restarts.with("feed", |_name| AtomicU64::new(0), |count| count.fetch_add(1, Ordering::Relaxed));
/// assert_eq!(restarts.len(), 1);
/// let feed = restarts.remove("feed").unwrap();
/// assert_eq!(feed.load(Ordering::Relaxed), 2);
/// assert!(restarts.is_empty());
/// ```
pub struct ServiceMap<T> {
    entries: RwLock<HashMap<Arc<str>, T>>,
}

impl<T> ServiceMap<T> {
    /// An empty map.
    ///
    /// # Examples
    ///
    /// ```
    /// let map: supervisor_metrics::ServiceMap<u64> = supervisor_metrics::ServiceMap::new();
    /// assert!(map.is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// Runs `update` on the entry of `service`, creating it with `create`
    /// (given the interned name) if there is none yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::ServiceMap;
    ///
    /// let names: ServiceMap<String> = ServiceMap::new();
    /// let label = names.with("feed", |name| format!("service={name}"), |label| label.clone());
    /// assert_eq!(label, "service=feed");
    /// ```
    pub fn with<R>(
        &self,
        service: &str,
        create: impl FnOnce(&Arc<str>) -> T,
        update: impl FnOnce(&T) -> R,
    ) -> R {
        if let Some(entry) = self.read().get(service) {
            return update(entry);
        }
        let mut entries = self.write();
        let entry = entries
            .entry(Arc::from(service))
            .or_insert_with_key(|name| create(name));
        update(entry)
    }

    /// Removes and returns the entry of `service`, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::ServiceMap;
    ///
    /// let map: ServiceMap<u8> = ServiceMap::new();
    /// map.with("feed", |_| 7, |_| ());
    /// assert_eq!(map.remove("feed"), Some(7));
    /// assert_eq!(map.remove("feed"), None);
    /// ```
    pub fn remove(&self, service: &str) -> Option<T> {
        self.write().remove(service)
    }

    /// The number of services with an entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let map: supervisor_metrics::ServiceMap<u8> = supervisor_metrics::ServiceMap::new();
    /// map.with("a", |_| 0, |_| ());
    /// assert_eq!(map.len(), 1);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no service has an entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let map: supervisor_metrics::ServiceMap<u8> = supervisor_metrics::ServiceMap::new();
    /// assert!(map.is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A panic inside `create` or `update` poisons the lock; the map itself is
    // never left half-updated, so it stays usable.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, T>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, T>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for ServiceMap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for ServiceMap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceMap")
            .field("services", &self.len())
            .finish()
    }
}

/// A metric name prefix that does not follow the metric name grammar shared
/// by Prometheus, OpenMetrics and the `metrics` facade's exporters.
///
/// Returned by [`validate_prefix`], and by the adapters' constructors that
/// take a prefix.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::validate_prefix;
///
/// let error = validate_prefix("9lives").unwrap_err();
/// assert_eq!(error.prefix(), "9lives");
/// assert_eq!(
///     error.to_string(),
///     "invalid metric prefix `9lives`: expected an ASCII letter or `_` followed by ASCII letters, \
///      digits or `_`, not starting with `__`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPrefix {
    prefix: String,
}

impl InvalidPrefix {
    /// The rejected prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(supervisor_metrics::validate_prefix("").unwrap_err().prefix(), "");
    /// ```
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl fmt::Display for InvalidPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid metric prefix `{}`: expected an ASCII letter or `_` followed by ASCII letters, \
             digits or `_`, not starting with `__`",
            self.prefix
        )
    }
}

impl std::error::Error for InvalidPrefix {}

/// Checks that `prefix` can start a metric name: an ASCII letter or `_`, then
/// ASCII letters, digits or `_`, and not `__` (reserved by Prometheus).
///
/// # Errors
///
/// [`InvalidPrefix`] naming the rejected prefix.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::validate_prefix;
///
/// assert!(validate_prefix("supervisor").is_ok());
/// assert!(validate_prefix("__reserved").is_err());
/// ```
pub fn validate_prefix(prefix: &str) -> Result<(), InvalidPrefix> {
    let mut chars = prefix.chars();
    let valid_start =
        matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_');
    let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid_start && valid_rest && !prefix.starts_with("__") {
        return Ok(());
    }
    Err(InvalidPrefix {
        prefix: prefix.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_the_metric_name_grammar() {
        for valid in ["supervisor", "_x", "a1_b2", "A"] {
            assert_eq!(validate_prefix(valid), Ok(()), "{valid}");
        }
        for invalid in ["", "1a", "__reserved", "a-b", "a:b", "a b", "é"] {
            assert!(validate_prefix(invalid).is_err(), "{invalid}");
        }
    }
}

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
