//! [`PrometheusSink`]: the [`MetricsSink`] that keeps prometheus-client metric
//! families up to date.
//!
//! # Invariants
//!
//! 1. Every per-service series of a service is created together, when the
//!    first handle of its name is resolved (at spawn), and removed together
//!    when the last handle of that name is given back (`service_removed`):
//!    label cardinality is bounded by the number of services the supervisor
//!    holds.
//! 2. The hot path (every event but spawn, termination and removal) updates
//!    the atomics its [`SeriesHandle`] holds: no lookup, no lock, no
//!    allocation.
//! 3. `active_services` counts the services whose `active` flag is set; the
//!    flag flips on at spawn and off at termination (or removal), and only the
//!    flip moves the gauge, so a repeated or missing event never drifts it.
//! 4. No method panics: lock poisoning is ignored (no code path panics while
//!    holding a lock, and the protected data stays consistent anyway).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
pub use supervisor_metrics::InvalidPrefix;
use supervisor_metrics::{
    FailureKind, MetricsSink, ServiceEntry, ServiceMap, ServicePhase, TerminationReason, series,
};

/// The metric name prefix used by [`PrometheusSink::register`].
pub const DEFAULT_PREFIX: &str = "supervisor";

/// Upper bounds, in seconds, of the buckets of `supervisor_service_uptime_seconds`.
///
/// Roughly exponential from one second to one week, on boundaries people read
/// at a glance: 1 s, 10 s, 1 min, 5 min, 15 min, 1 h, 6 h, 1 day, 1 week. The
/// `+Inf` bucket is implicit.
///
/// # Examples
///
/// ```
/// use supervisor_prometheus::UPTIME_BUCKETS_SECONDS;
///
/// assert_eq!(UPTIME_BUCKETS_SECONDS.first(), Some(&1.0));
/// assert_eq!(UPTIME_BUCKETS_SECONDS.last(), Some(&(7.0 * 24.0 * 3600.0)));
/// assert!(UPTIME_BUCKETS_SECONDS.windows(2).all(|pair| pair[0] < pair[1]));
/// ```
pub const UPTIME_BUCKETS_SECONDS: [f64; 9] = [
    1.0, 10.0, 60.0, 300.0, 900.0, 3_600.0, 21_600.0, 86_400.0, 604_800.0,
];

/// A [`MetricsSink`] that writes every supervisor event to metric families
/// registered in a prometheus-client [`Registry`].
///
/// Create it with [`register`](Self::register) (prefix `supervisor`) or
/// [`register_with_prefix`](Self::register_with_prefix), then render the
/// registry with [`render`](crate::render) (or serve it with
/// `supervisor-http`). The sink is `Send + Sync`; share it as `Arc<PrometheusSink>`.
/// The registry holds its own handles to the same
/// series, so it can be moved into an `Arc` for the exporter after
/// registration.
///
/// # Series
///
/// With the default prefix (`<p>` below is the prefix):
///
/// | series | type | labels | meaning |
/// |--------|------|--------|---------|
/// | `<p>_restarts_total` | counter | `service` | runs started after the first one |
/// | `<p>_active_services` | gauge | | services spawned and not yet terminated |
/// | `<p>_spawned_total` | counter | | services spawned (restarts are not spawns) |
/// | `<p>_terminated_total` | counter | `service`, `reason` | terminations, by [`TerminationReason::kind`] |
/// | `<p>_failures_total` | counter | `service`, `kind` | failed runs, by [`FailureKind::as_str`] |
/// | `<p>_circuit_breaker_trips_total` | counter | `service` | circuit breakers that opened |
/// | `<p>_service_uptime_seconds` | histogram | `service` | cumulative running time, observed at termination ([`UPTIME_BUCKETS_SECONDS`]) |
/// | `<p>_service_phase` | gauge | `service`, `phase` | 1 for the current [`ServicePhase`], 0 for the others |
/// | `<p>_backoff_delay_seconds` | gauge | `service` | delay of the last scheduled restart |
///
/// Per-service series are created with value zero when the service is
/// spawned (so `rate()` and alerts see them from the start), except
/// `terminated_total`, whose `reason` series appear at termination. A respawn
/// of a terminated service's name keeps counting in the same series. They are
/// all removed when the last entry of the name leaves the supervisor
/// (`service_removed`), so the number of series is bounded by the number of
/// services. A family without any series (before the first spawn,
/// or `terminated_total` before the first termination) is left out of the
/// exposition entirely, `# HELP` line included: prometheus-client skips empty
/// families. The one-hot phase gauge is updated one series at a time: a
/// scrape racing a transition may see both phases at 1 for an instant.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use prometheus_client::registry::Registry;
/// use supervisor_metrics::{MetricsSink, TerminationReason};
/// use supervisor_prometheus::{PrometheusSink, render};
///
/// let mut registry = Registry::default();
/// let sink = Arc::new(PrometheusSink::register(&mut registry));
///
/// let feed = sink.resolve("feed"); // What the supervisor does at spawn.
/// sink.service_spawned(&feed);
/// sink.service_started(&feed, 1);
/// sink.service_started(&feed, 2);
/// sink.service_terminated(&feed, &TerminationReason::Completed, Duration::from_secs(5));
///
/// let text = render(&registry)?;
/// assert!(text.contains("supervisor_restarts_total{service=\"feed\"} 1\n"));
/// assert!(text.contains("supervisor_terminated_total{service=\"feed\",reason=\"completed\"} 1\n"));
/// assert!(text.contains("supervisor_active_services 0\n"));
/// # Ok::<(), std::fmt::Error>(())
/// ```
pub struct PrometheusSink {
    prefix: String,
    families: Families,
    services: ServiceMap<ServiceSeries>,
}

impl PrometheusSink {
    /// Registers the sink's metric families in `registry` under the prefix
    /// [`DEFAULT_PREFIX`] (`supervisor`).
    ///
    /// Registering twice in the same registry with the same prefix exposes
    /// every family twice, which scrapers reject: register once and share the
    /// sink.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use supervisor_metrics::MetricsSink;
    /// use supervisor_prometheus::{PrometheusSink, render};
    ///
    /// let mut registry = Registry::default();
    /// let sink = PrometheusSink::register(&mut registry);
    /// sink.service_spawned(&sink.resolve("feed"));
    ///
    /// assert!(render(&registry)?.contains("supervisor_spawned_total 1\n"));
    /// # Ok::<(), std::fmt::Error>(())
    /// ```
    #[must_use = "the sink is the only handle that updates the registered series"]
    pub fn register(registry: &mut Registry) -> Self {
        Self::register_unchecked(registry, DEFAULT_PREFIX)
    }

    /// Registers the sink's metric families in `registry` under `prefix`
    /// instead of `supervisor`, for example to run two supervisors in one
    /// process.
    ///
    /// The prefix is joined to the names with `_`, after any prefix `registry`
    /// itself carries.
    ///
    /// # Errors
    ///
    /// [`InvalidPrefix`] if `prefix` is empty, starts with a digit or with
    /// `__` (reserved by Prometheus), or holds a character other than an ASCII
    /// letter, digit or `_`.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use supervisor_metrics::MetricsSink;
    /// use supervisor_prometheus::{PrometheusSink, render};
    ///
    /// let mut registry = Registry::default();
    /// let sink = PrometheusSink::register_with_prefix(&mut registry, "ingest")?;
    /// sink.service_spawned(&sink.resolve("feed"));
    /// assert!(render(&registry)?.contains("ingest_spawned_total 1\n"));
    ///
    /// let error = PrometheusSink::register_with_prefix(&mut registry, "my-app").unwrap_err();
    /// assert_eq!(error.prefix(), "my-app");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_with_prefix(
        registry: &mut Registry,
        prefix: &str,
    ) -> Result<Self, InvalidPrefix> {
        supervisor_metrics::validate_prefix(prefix)?;
        Ok(Self::register_unchecked(registry, prefix))
    }

    /// The metric name prefix this sink registered its families under.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use supervisor_prometheus::PrometheusSink;
    ///
    /// let sink = PrometheusSink::register(&mut Registry::default());
    /// assert_eq!(sink.prefix(), "supervisor");
    /// ```
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of services the sink currently holds series for.
    ///
    /// # Examples
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    /// use supervisor_metrics::MetricsSink;
    /// use supervisor_prometheus::PrometheusSink;
    ///
    /// let sink = PrometheusSink::register(&mut Registry::default());
    /// let feed = sink.resolve("feed");
    /// let _index = sink.resolve("index");
    /// sink.service_removed(feed);
    /// assert_eq!(sink.tracked_services(), 1);
    /// ```
    #[must_use]
    pub fn tracked_services(&self) -> usize {
        self.services.len()
    }

    fn register_unchecked(registry: &mut Registry, prefix: &str) -> Self {
        let families = Families::default();
        families.register(registry.sub_registry_with_prefix(prefix));
        PrometheusSink {
            prefix: prefix.to_owned(),
            families,
            services: ServiceMap::new(),
        }
    }
}

impl fmt::Debug for PrometheusSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSink")
            .field("prefix", &self.prefix)
            .field("tracked_services", &self.tracked_services())
            .finish_non_exhaustive()
    }
}

impl MetricsSink for PrometheusSink {
    type Handle = SeriesHandle;

    fn resolve(&self, service: &str) -> SeriesHandle {
        SeriesHandle(self.services.acquire(service, |name| {
            ServiceSeries::new(&self.families, Arc::clone(name))
        }))
    }

    fn service_spawned(&self, service: &SeriesHandle) {
        self.families.spawned.inc();
        if !service.0.active.swap(true, Ordering::AcqRel) {
            self.families.active_services.inc();
        }
        service.0.set_phase(ServicePhase::Starting);
    }

    fn service_started(&self, service: &SeriesHandle, start_count: u64) {
        if start_count > 1 {
            service.0.restarts.inc();
        }
    }

    fn phase_changed(&self, service: &SeriesHandle, from: ServicePhase, to: ServicePhase) {
        service.0.switch_phase(from, to);
    }

    fn service_failed(&self, service: &SeriesHandle, kind: FailureKind) {
        service.0.record_failure(&self.families, kind);
    }

    fn backoff_scheduled(&self, service: &SeriesHandle, delay: Duration) {
        service.0.backoff_delay.set(delay.as_secs_f64());
    }

    fn circuit_opened(&self, service: &SeriesHandle, _failures: u32, _max_retries: u32) {
        service.0.circuit_breaker_trips.inc();
    }

    fn service_terminated(
        &self,
        service: &SeriesHandle,
        reason: &TerminationReason,
        uptime: Duration,
    ) {
        let series = &service.0;
        series.record_termination(&self.families, reason.kind());
        series.uptime.observe(uptime.as_secs_f64());
        series.set_phase(ServicePhase::Terminated);
        if series.active.swap(false, Ordering::AcqRel) {
            self.families.active_services.dec();
        }
    }

    fn service_removed(&self, service: SeriesHandle) {
        let Some(series) = self.services.release(service.0) else {
            // Another live entry of the name still uses the series.
            return;
        };
        // Removing a service that never terminated breaks the delivery
        // contract; keep the gauge consistent with the series that remain.
        if series.active.swap(false, Ordering::AcqRel) {
            self.families.active_services.dec();
        }
        series.remove_from(&self.families);
    }
}

/// The series of one service, resolved once when it is spawned
/// ([`PrometheusSink::resolve`](MetricsSink::resolve)): every later event
/// updates them without a lookup.
///
/// # Examples
///
/// ```
/// use prometheus_client::registry::Registry;
/// use supervisor_metrics::MetricsSink;
/// use supervisor_prometheus::{PrometheusSink, SeriesHandle};
///
/// let sink = PrometheusSink::register(&mut Registry::default());
/// let feed: SeriesHandle = sink.resolve("feed");
/// assert_eq!(feed.service(), "feed");
/// ```
#[derive(Debug)]
pub struct SeriesHandle(ServiceEntry<ServiceSeries>);

impl SeriesHandle {
    /// The service's name (its `service` label).
    #[must_use]
    pub fn service(&self) -> &str {
        self.0.name()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    service: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TerminationLabels {
    service: Arc<str>,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    service: Arc<str>,
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    service: Arc<str>,
    phase: &'static str,
}

/// A gauge holding an `f64`, stored as its bits in an `AtomicU64`.
type FloatGauge = Gauge<f64, AtomicU64>;

/// The constructor of the uptime histograms: a `fn` pointer, so the family
/// type can be named.
type HistogramConstructor = fn() -> Histogram;

fn uptime_histogram() -> Histogram {
    Histogram::new(UPTIME_BUCKETS_SECONDS)
}

/// Every family the sink registers; clones share their storage with the
/// copies boxed in the registry.
#[derive(Debug)]
struct Families {
    restarts: Family<ServiceLabels, Counter>,
    active_services: Gauge,
    spawned: Counter,
    terminated: Family<TerminationLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    circuit_breaker_trips: Family<ServiceLabels, Counter>,
    uptime: Family<ServiceLabels, Histogram, HistogramConstructor>,
    phase: Family<PhaseLabels, Gauge>,
    backoff_delay: Family<ServiceLabels, FloatGauge>,
}

impl Default for Families {
    fn default() -> Self {
        Families {
            restarts: Family::default(),
            active_services: Gauge::default(),
            spawned: Counter::default(),
            terminated: Family::default(),
            failures: Family::default(),
            circuit_breaker_trips: Family::default(),
            uptime: Family::new_with_constructor(uptime_histogram),
            phase: Family::default(),
            backoff_delay: Family::default(),
        }
    }
}

impl Families {
    /// Registers a clone of every family. Counter names carry no `_total`:
    /// the encoder appends it. Units are appended as `_seconds`. The encoder
    /// appends a full stop to each help text.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            series::RESTARTS.name,
            series::RESTARTS.help,
            self.restarts.clone(),
        );
        registry.register(
            series::ACTIVE_SERVICES.name,
            series::ACTIVE_SERVICES.help,
            self.active_services.clone(),
        );
        registry.register(
            series::SPAWNED.name,
            series::SPAWNED.help,
            self.spawned.clone(),
        );
        registry.register(
            series::TERMINATED.name,
            series::TERMINATED.help,
            self.terminated.clone(),
        );
        registry.register(
            series::FAILURES.name,
            series::FAILURES.help,
            self.failures.clone(),
        );
        registry.register(
            series::CIRCUIT_BREAKER_TRIPS.name,
            series::CIRCUIT_BREAKER_TRIPS.help,
            self.circuit_breaker_trips.clone(),
        );
        registry.register_with_unit(
            series::SERVICE_UPTIME.name,
            series::SERVICE_UPTIME.help,
            Unit::Seconds,
            self.uptime.clone(),
        );
        registry.register(
            series::SERVICE_PHASE.name,
            series::SERVICE_PHASE.help,
            self.phase.clone(),
        );
        registry.register_with_unit(
            series::BACKOFF_DELAY.name,
            series::BACKOFF_DELAY.help,
            Unit::Seconds,
            self.backoff_delay.clone(),
        );
    }
}

/// Handles to every series of one service, created once.
#[derive(Debug)]
pub(crate) struct ServiceSeries {
    labels: ServiceLabels,
    /// Spawned and not yet terminated: the service counts in `active_services`.
    active: AtomicBool,
    restarts: Counter,
    circuit_breaker_trips: Counter,
    uptime: Histogram,
    backoff_delay: FloatGauge,
    /// One gauge per entry of `ServicePhase::ALL`.
    phases: Vec<(ServicePhase, Gauge)>,
    /// One counter per entry of `FailureKind::ALL`.
    failures: Vec<(FailureKind, Counter)>,
    /// Label sets created after the spawn (terminations, and failure kinds
    /// missing from `FailureKind::ALL`), remembered for removal.
    late_labels: Mutex<Vec<LateLabels>>,
}

#[derive(Debug, PartialEq, Eq)]
enum LateLabels {
    Termination(TerminationLabels),
    Failure(FailureLabels),
}

impl ServiceSeries {
    fn new(families: &Families, service: Arc<str>) -> Self {
        let labels = ServiceLabels { service };
        let phases = ServicePhase::ALL
            .iter()
            .map(|&phase| {
                let labels = PhaseLabels {
                    service: Arc::clone(&labels.service),
                    phase: phase.as_str(),
                };
                (phase, families.phase.get_or_create_owned(&labels))
            })
            .collect();
        let failures = FailureKind::ALL
            .iter()
            .map(|&kind| {
                let labels = FailureLabels {
                    service: Arc::clone(&labels.service),
                    kind: kind.as_str(),
                };
                (kind, families.failures.get_or_create_owned(&labels))
            })
            .collect();
        ServiceSeries {
            restarts: families.restarts.get_or_create_owned(&labels),
            circuit_breaker_trips: families.circuit_breaker_trips.get_or_create_owned(&labels),
            uptime: families.uptime.get_or_create_owned(&labels),
            backoff_delay: families.backoff_delay.get_or_create_owned(&labels),
            active: AtomicBool::new(false),
            phases,
            failures,
            late_labels: Mutex::new(Vec::new()),
            labels,
        }
    }

    /// One transition: raise `to`, then lower `from` (a service's events
    /// arrive in order, after a spawn that set every phase, so the other
    /// phases are at 0 already).
    fn switch_phase(&self, from: ServicePhase, to: ServicePhase) {
        // `phases` follows `ServicePhase::ALL`, which `index` positions in.
        let gauge = |phase: ServicePhase| self.phases.get(phase.index()).map(|(_, gauge)| gauge);
        if let Some(raised) = gauge(to) {
            raised.set(1);
        }
        if from != to {
            if let Some(lowered) = gauge(from) {
                lowered.set(0);
            }
        }
    }

    /// Sets every phase: 1 for `current`, 0 for the others.
    fn set_phase(&self, current: ServicePhase) {
        // Raise the new phase before lowering the others, so a concurrent
        // scrape never sees a service without a phase.
        for (phase, gauge) in &self.phases {
            if *phase == current {
                gauge.set(1);
            }
        }
        for (phase, gauge) in &self.phases {
            if *phase != current {
                gauge.set(0);
            }
        }
    }

    fn record_failure(&self, families: &Families, kind: FailureKind) {
        if let Some((_, counter)) = self.failures.iter().find(|(known, _)| *known == kind) {
            counter.inc();
            return;
        }
        // A kind added to the enum but not to `FailureKind::ALL`: slow path.
        let labels = FailureLabels {
            service: Arc::clone(&self.labels.service),
            kind: kind.as_str(),
        };
        families.failures.get_or_create(&labels).inc();
        self.remember(LateLabels::Failure(labels));
    }

    fn record_termination(&self, families: &Families, reason: &'static str) {
        let labels = TerminationLabels {
            service: Arc::clone(&self.labels.service),
            reason,
        };
        families.terminated.get_or_create(&labels).inc();
        self.remember(LateLabels::Termination(labels));
    }

    fn remember(&self, labels: LateLabels) {
        let mut late_labels = self
            .late_labels
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !late_labels.contains(&labels) {
            late_labels.push(labels);
        }
    }

    fn remove_from(&self, families: &Families) {
        families.restarts.remove(&self.labels);
        families.circuit_breaker_trips.remove(&self.labels);
        families.uptime.remove(&self.labels);
        families.backoff_delay.remove(&self.labels);
        for (phase, _) in &self.phases {
            families.phase.remove(&PhaseLabels {
                service: Arc::clone(&self.labels.service),
                phase: phase.as_str(),
            });
        }
        for (kind, _) in &self.failures {
            families.failures.remove(&FailureLabels {
                service: Arc::clone(&self.labels.service),
                kind: kind.as_str(),
            });
        }
        let late_labels = std::mem::take(
            &mut *self
                .late_labels
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for labels in late_labels {
            match labels {
                LateLabels::Termination(labels) => families.terminated.remove(&labels),
                LateLabels::Failure(labels) => families.failures.remove(&labels),
            };
        }
    }
}
