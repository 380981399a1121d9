//! Adapter of the supervisor's [`MetricsSink`] to the [`metrics`] facade: the
//! same series as `supervisor-prometheus`, recorded through whichever
//! `metrics` recorder the application installed.
//!
//! # Key types
//!
//! - [`FacadeSink`]: implements [`MetricsSink`] with `metrics::counter!`,
//!   `gauge!` and `histogram!`; [`FacadeSink::describe`] registers the help
//!   text and units of every series.
//! - [`InvalidPrefix`]: a metric name prefix rejected by
//!   [`FacadeSink::with_prefix`].
//!
//! # Who should depend on this crate
//!
//! Applications that already export through a `metrics` recorder
//! (`metrics-exporter-prometheus`, StatsD, OpenTelemetry bridges, …) and want
//! the supervisor's series next to their own. To expose to Prometheus directly
//! with its official client, use `supervisor-prometheus` instead. Like every
//! adapter, this crate depends on `supervisor-metrics` only, never on
//! `supervisor-core` or a runtime.
//!
//! # Feature flags
//!
//! None. The only external dependency is `metrics` (0.24, default features
//! off).
//!
//! # Series
//!
//! With the default prefix `supervisor` (names are passed to the recorder in
//! full, suffixes included):
//!
//! | name | kind | labels | unit |
//! |------|------|--------|------|
//! | `supervisor_restarts_total` | counter | `service` | |
//! | `supervisor_active_services` | gauge | | |
//! | `supervisor_spawned_total` | counter | | |
//! | `supervisor_terminated_total` | counter | `service`, `reason` | |
//! | `supervisor_failures_total` | counter | `service`, `kind` | |
//! | `supervisor_circuit_breaker_trips_total` | counter | `service` | |
//! | `supervisor_service_uptime_seconds` | histogram | `service` | seconds |
//! | `supervisor_service_phase` | gauge | `service`, `phase` | |
//! | `supervisor_backoff_delay_seconds` | gauge | `service` | seconds |
//!
//! Label values are [`ServicePhase::as_str`], [`FailureKind::as_str`] and
//! [`TerminationReason::kind`]. Bucketing the histogram is the recorder's
//! business.
//!
//! # Handles and recorders
//!
//! The per-service handles are registered with the recorder current when the
//! service is spawned ([`MetricsSink::resolve`]) and kept in its
//! [`FacadeHandle`], so later events are an atomic update, with no look-up.
//! Install the recorder before spawning services. The `metrics` facade has no
//! way to delete a series: when the last entry of a name leaves the supervisor
//! (`service_removed`) the sink drops its handles, and recorders that support
//! it (for example an idle timeout) expire the series.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//!
//! use supervisor_metrics::MetricsSink;
//! use supervisor_metrics_facade::FacadeSink;
//!
//! // After installing a recorder, e.g. `metrics_exporter_prometheus::PrometheusBuilder`:
//! let sink = FacadeSink::new();
//! sink.describe();
//! let sink = Arc::new(sink);
//! // `SupervisorConfig::default().with_metrics_sink(Arc::clone(&sink))` in
//! // supervisor-core; events can also be sent by hand:
//! let feed = sink.resolve("feed");
//! sink.service_spawned(&feed);
//! sink.service_started(&feed, 2);
//! ```
//!
//! [`ServicePhase::as_str`]: supervisor_metrics::ServicePhase::as_str
//! [`FailureKind::as_str`]: supervisor_metrics::FailureKind::as_str
//! [`TerminationReason::kind`]: supervisor_metrics::TerminationReason::kind

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, SharedString, Unit};
pub use supervisor_metrics::InvalidPrefix;
use supervisor_metrics::series::{self, Series};
use supervisor_metrics::{
    FailureKind, MetricsSink, ServiceEntry, ServiceMap, ServicePhase, TerminationReason,
};

/// The metric name prefix used by [`FacadeSink::new`].
pub const DEFAULT_PREFIX: &str = "supervisor";

/// A [`MetricsSink`] that records every supervisor event through the
/// [`metrics`] facade.
///
/// See the [crate documentation](crate) for the series and for when handles
/// are bound to a recorder.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::{FailureKind, MetricsSink};
/// use supervisor_metrics_facade::FacadeSink;
///
/// let sink = FacadeSink::new();
/// // Without a recorder every update goes to the facade's no-op recorder.
/// let feed = sink.resolve("feed");
/// sink.service_spawned(&feed);
/// sink.service_failed(&feed, FailureKind::Error);
/// ```
pub struct FacadeSink {
    names: Names,
    services: ServiceMap<ServiceHandles>,
}

impl FacadeSink {
    /// A sink whose series are named `supervisor_*`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics_facade::FacadeSink;
    ///
    /// assert_eq!(FacadeSink::new().prefix(), "supervisor");
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_valid_prefix(DEFAULT_PREFIX)
    }

    /// A sink whose series are named `<prefix>_*`, for example to tell two
    /// supervisors of one process apart.
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
    /// use supervisor_metrics_facade::FacadeSink;
    ///
    /// let sink = FacadeSink::with_prefix("ingest")?;
    /// assert_eq!(sink.prefix(), "ingest");
    /// assert!(FacadeSink::with_prefix("in-gest").is_err());
    /// # Ok::<(), supervisor_metrics_facade::InvalidPrefix>(())
    /// ```
    pub fn with_prefix(prefix: &str) -> Result<Self, InvalidPrefix> {
        supervisor_metrics::validate_prefix(prefix)?;
        Ok(Self::with_valid_prefix(prefix))
    }

    fn with_valid_prefix(prefix: &str) -> Self {
        FacadeSink {
            names: Names::new(prefix),
            services: ServiceMap::new(),
        }
    }

    /// The metric name prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.names.prefix
    }

    /// Describes every series (help text, and unit for the two in seconds) to
    /// the current recorder, so exporters can print `# HELP` lines.
    ///
    /// Call it once, after installing the recorder and before the first
    /// event; calling it again only repeats the descriptions.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics_facade::FacadeSink;
    ///
    /// let sink = FacadeSink::new();
    /// // metrics::set_global_recorder(recorder)?;
    /// sink.describe();
    /// ```
    pub fn describe(&self) {
        let names = &self.names;
        metrics::describe_counter!(names.restarts.clone(), series::RESTARTS.help);
        metrics::describe_gauge!(names.active_services.clone(), series::ACTIVE_SERVICES.help);
        metrics::describe_counter!(names.spawned.clone(), series::SPAWNED.help);
        metrics::describe_counter!(names.terminated.clone(), series::TERMINATED.help);
        metrics::describe_counter!(names.failures.clone(), series::FAILURES.help);
        metrics::describe_counter!(
            names.circuit_breaker_trips.clone(),
            series::CIRCUIT_BREAKER_TRIPS.help
        );
        metrics::describe_histogram!(
            names.uptime.clone(),
            Unit::Seconds,
            series::SERVICE_UPTIME.help
        );
        metrics::describe_gauge!(names.phase.clone(), series::SERVICE_PHASE.help);
        metrics::describe_gauge!(
            names.backoff_delay.clone(),
            Unit::Seconds,
            series::BACKOFF_DELAY.help
        );
    }

    /// The number of services the sink currently holds handles for.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::MetricsSink;
    /// use supervisor_metrics_facade::FacadeSink;
    ///
    /// let sink = FacadeSink::new();
    /// let feed = sink.resolve("feed");
    /// assert_eq!(sink.tracked_services(), 1);
    /// sink.service_removed(feed);
    /// assert_eq!(sink.tracked_services(), 0);
    /// ```
    #[must_use]
    pub fn tracked_services(&self) -> usize {
        self.services.len()
    }

    fn active_services(&self) -> Gauge {
        metrics::gauge!(self.names.active_services.clone())
    }
}

impl Default for FacadeSink {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FacadeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FacadeSink")
            .field("prefix", &self.prefix())
            .field("tracked_services", &self.tracked_services())
            .finish_non_exhaustive()
    }
}

impl MetricsSink for FacadeSink {
    type Handle = FacadeHandle;

    fn resolve(&self, service: &str) -> FacadeHandle {
        FacadeHandle(self.services.acquire(service, |name| {
            ServiceHandles::new(&self.names, Arc::clone(name))
        }))
    }

    fn service_spawned(&self, service: &FacadeHandle) {
        metrics::counter!(self.names.spawned.clone()).increment(1);
        let handles = &service.0;
        if !handles.active.swap(true, Ordering::AcqRel) {
            self.active_services().increment(1.0);
        }
        handles.set_phase(ServicePhase::Starting);
    }

    fn service_started(&self, service: &FacadeHandle, start_count: u64) {
        if start_count > 1 {
            service.0.restarts.increment(1);
        }
    }

    fn phase_changed(&self, service: &FacadeHandle, from: ServicePhase, to: ServicePhase) {
        service.0.switch_phase(from, to);
    }

    fn service_failed(&self, service: &FacadeHandle, kind: FailureKind) {
        let handles = &service.0;
        match handles.failures.iter().find(|(known, _)| *known == kind) {
            Some((_, counter)) => counter.increment(1),
            // A kind added to the enum but not to `FailureKind::ALL`.
            None => metrics::counter!(
                self.names.failures.clone(),
                "service" => handles.service.clone(),
                "kind" => kind.as_str()
            )
            .increment(1),
        }
    }

    fn backoff_scheduled(&self, service: &FacadeHandle, delay: Duration) {
        service.0.backoff_delay.set(delay.as_secs_f64());
    }

    fn circuit_opened(&self, service: &FacadeHandle, _failures: u32, _max_retries: u32) {
        service.0.circuit_breaker_trips.increment(1);
    }

    fn service_terminated(
        &self,
        service: &FacadeHandle,
        reason: &TerminationReason,
        uptime: Duration,
    ) {
        let handles = &service.0;
        metrics::counter!(
            self.names.terminated.clone(),
            "service" => handles.service.clone(),
            "reason" => reason.kind()
        )
        .increment(1);
        handles.uptime.record(uptime.as_secs_f64());
        handles.set_phase(ServicePhase::Terminated);
        if handles.active.swap(false, Ordering::AcqRel) {
            self.active_services().decrement(1.0);
        }
    }

    fn service_removed(&self, service: FacadeHandle) {
        if let Some(handles) = self.services.release(service.0) {
            // A service removed before it terminated breaks the delivery
            // contract; keep the gauge consistent anyway.
            if handles.active.swap(false, Ordering::AcqRel) {
                self.active_services().decrement(1.0);
            }
        }
    }
}

/// The handles of one service, registered with the recorder once, when the
/// service is spawned ([`FacadeSink::resolve`](MetricsSink::resolve)): every
/// later event updates them without building a key.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::MetricsSink;
/// use supervisor_metrics_facade::{FacadeHandle, FacadeSink};
///
/// let sink = FacadeSink::new();
/// let feed: FacadeHandle = sink.resolve("feed");
/// assert_eq!(feed.service(), "feed");
/// ```
#[derive(Debug)]
pub struct FacadeHandle(ServiceEntry<ServiceHandles>);

impl FacadeHandle {
    /// The service's name (its `service` label).
    #[must_use]
    pub fn service(&self) -> &str {
        self.0.name()
    }
}

/// Full metric names, shared (`Arc`) so handing one to a macro clones a
/// pointer, not the string.
#[derive(Debug)]
struct Names {
    prefix: String,
    restarts: SharedString,
    active_services: SharedString,
    spawned: SharedString,
    terminated: SharedString,
    failures: SharedString,
    circuit_breaker_trips: SharedString,
    uptime: SharedString,
    phase: SharedString,
    backoff_delay: SharedString,
}

impl Names {
    fn new(prefix: &str) -> Self {
        let name = |series: Series, suffix: &str| {
            SharedString::from(Arc::<str>::from(format!(
                "{prefix}_{}{suffix}",
                series.name
            )))
        };
        Names {
            prefix: prefix.to_owned(),
            restarts: name(series::RESTARTS, "_total"),
            active_services: name(series::ACTIVE_SERVICES, ""),
            spawned: name(series::SPAWNED, "_total"),
            terminated: name(series::TERMINATED, "_total"),
            failures: name(series::FAILURES, "_total"),
            circuit_breaker_trips: name(series::CIRCUIT_BREAKER_TRIPS, "_total"),
            uptime: name(series::SERVICE_UPTIME, "_seconds"),
            phase: name(series::SERVICE_PHASE, ""),
            backoff_delay: name(series::BACKOFF_DELAY, "_seconds"),
        }
    }
}

/// The handles of one service, registered once.
#[derive(Debug)]
pub(crate) struct ServiceHandles {
    /// The `service` label value.
    service: SharedString,
    /// Spawned and not yet terminated: the service counts in `active_services`.
    active: AtomicBool,
    restarts: Counter,
    circuit_breaker_trips: Counter,
    uptime: Histogram,
    backoff_delay: Gauge,
    /// One gauge per entry of `ServicePhase::ALL`.
    phases: Vec<(ServicePhase, Gauge)>,
    /// One counter per entry of `FailureKind::ALL`.
    failures: Vec<(FailureKind, Counter)>,
}

impl ServiceHandles {
    fn new(names: &Names, service: Arc<str>) -> Self {
        let service = SharedString::from(service);
        let phases = ServicePhase::ALL
            .iter()
            .map(|&phase| {
                let gauge = metrics::gauge!(
                    names.phase.clone(),
                    "service" => service.clone(),
                    "phase" => phase.as_str()
                );
                (phase, gauge)
            })
            .collect();
        let failures = FailureKind::ALL
            .iter()
            .map(|&kind| {
                let counter = metrics::counter!(
                    names.failures.clone(),
                    "service" => service.clone(),
                    "kind" => kind.as_str()
                );
                (kind, counter)
            })
            .collect();
        ServiceHandles {
            restarts: metrics::counter!(names.restarts.clone(), "service" => service.clone()),
            circuit_breaker_trips: metrics::counter!(
                names.circuit_breaker_trips.clone(),
                "service" => service.clone()
            ),
            uptime: metrics::histogram!(names.uptime.clone(), "service" => service.clone()),
            backoff_delay: metrics::gauge!(names.backoff_delay.clone(), "service" => service.clone()),
            active: AtomicBool::new(false),
            phases,
            failures,
            service,
        }
    }

    /// One transition: raise `to`, then lower `from` (a service's events
    /// arrive in order, after a spawn that set every phase, so the other
    /// phases are at 0 already).
    fn switch_phase(&self, from: ServicePhase, to: ServicePhase) {
        // `phases` follows `ServicePhase::ALL`, which `index` positions in.
        let gauge = |phase: ServicePhase| self.phases.get(phase.index()).map(|(_, gauge)| gauge);
        if let Some(raised) = gauge(to) {
            raised.set(1.0);
        }
        if from != to {
            if let Some(lowered) = gauge(from) {
                lowered.set(0.0);
            }
        }
    }

    /// Sets every phase: 1 for `current`, 0 for the others.
    fn set_phase(&self, current: ServicePhase) {
        // Raise the new phase before lowering the others, so a concurrent
        // export never sees a service without a phase.
        for (phase, gauge) in &self.phases {
            if *phase == current {
                gauge.set(1.0);
            }
        }
        for (phase, gauge) in &self.phases {
            if *phase != current {
                gauge.set(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_their_suffixes() {
        let names = Names::new("ingest");
        assert_eq!(&*names.restarts, "ingest_restarts_total");
        assert_eq!(&*names.uptime, "ingest_service_uptime_seconds");
        assert_eq!(&*names.backoff_delay, "ingest_backoff_delay_seconds");
    }
}

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
