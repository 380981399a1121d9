//! [`MetricsSink`], the trait every metrics back-end implements, and
//! [`NoopSink`].

use std::time::Duration;

use lifecycle::{FailureKind, ServicePhase, TerminationReason};

/// A metrics back-end the supervisor reports lifecycle events to.
///
/// A sink resolves what it keeps for one service **once**, when the service is
/// spawned ([`resolve`](Self::resolve), as `tracing` resolves a span once and
/// then records into it), and every event of that service then hands it back
/// as `&Self::Handle`: a sink that keeps pre-registered counters in its handle
/// updates them without looking anything up by name on the hot path.
///
/// Every event method has an empty default body: implement only the events
/// you need (adding an event later is not a breaking change). See the crate
/// documentation for the delivery contract.
///
/// # Examples
///
/// A sink that logs terminations: its handle is the service's name.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use supervisor_metrics::{MetricsSink, TerminationReason};
///
/// #[derive(Debug)]
/// struct Log;
///
/// impl MetricsSink for Log {
///     type Handle = Arc<str>;
///
///     fn resolve(&self, service: &str) -> Arc<str> {
///         Arc::from(service)
///     }
///
///     fn service_terminated(&self, service: &Arc<str>, reason: &TerminationReason, uptime: Duration) {
///         println!("{service} stopped after {uptime:?}: {reason}");
///     }
/// }
///
/// let feed = Log.resolve("feed");
/// Log.service_terminated(&feed, &TerminationReason::Completed, Duration::from_secs(3));
/// ```
pub trait MetricsSink: Send + Sync + 'static {
    /// What the sink keeps for one service: its pre-resolved series, its name,
    /// or `()` for a sink that only aggregates.
    type Handle: Send + Sync + 'static;

    /// Resolves the sink's per-service state. Called once per spawn, before
    /// any event of that spawn; it is not an event itself.
    ///
    /// Several live handles may exist for one name: a terminated service's
    /// entry and the new spawn that reuses its name, until the old entry's
    /// [`service_removed`](Self::service_removed).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_metrics::MetricsSink;
    ///
    /// #[derive(Debug)]
    /// struct Aggregate;
    ///
    /// impl MetricsSink for Aggregate {
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    /// }
    ///
    /// Aggregate.resolve("feed");
    /// ```
    fn resolve(&self, service: &str) -> Self::Handle;

    /// A service was registered with the supervisor (once per spawn, the first
    /// event of that spawn).
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
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    ///     fn service_spawned(&self, _service: &()) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = Spawns::default();
    /// sink.service_spawned(&sink.resolve("feed"));
    /// sink.service_spawned(&sink.resolve("db"));
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 2);
    /// ```
    fn service_spawned(&self, service: &Self::Handle) {
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
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    ///     fn service_started(&self, _service: &(), start_count: u64) {
    ///         self.0.fetch_max(start_count, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = MostStarts::default();
    /// sink.service_started(&(), 1);
    /// sink.service_started(&(), 2);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 2);
    /// ```
    fn service_started(&self, service: &Self::Handle, start_count: u64) {
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
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    ///     fn phase_changed(&self, _service: &(), _from: ServicePhase, to: ServicePhase) {
    ///         if to == ServicePhase::BackingOff {
    ///             self.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// }
    ///
    /// let sink = BackOffs::default();
    /// sink.phase_changed(&(), ServicePhase::Starting, ServicePhase::Running);
    /// sink.phase_changed(&(), ServicePhase::Running, ServicePhase::BackingOff);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    /// ```
    fn phase_changed(&self, service: &Self::Handle, from: ServicePhase, to: ServicePhase) {
        let _ = (service, from, to);
    }

    /// A run of a service ended in failure (or was aborted: [`FailureKind::Timeout`]).
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
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    ///     fn service_failed(&self, _service: &(), kind: FailureKind) {
    ///         if kind == FailureKind::Timeout {
    ///             self.0.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     }
    /// }
    ///
    /// let sink = Aborts::default();
    /// sink.service_failed(&(), FailureKind::Error);
    /// sink.service_failed(&(), FailureKind::Timeout);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    /// ```
    fn service_failed(&self, service: &Self::Handle, kind: FailureKind) {
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
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    ///     fn backoff_scheduled(&self, _service: &(), delay: Duration) {
    ///         self.0.fetch_max(delay.as_secs(), Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = LongestDelaySecs::default();
    /// sink.backoff_scheduled(&(), Duration::from_secs(8));
    /// sink.backoff_scheduled(&(), Duration::from_secs(2));
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 8);
    /// ```
    fn backoff_scheduled(&self, service: &Self::Handle, delay: Duration) {
        let _ = (service, delay);
    }

    /// A service's circuit breaker opened: it will not be restarted again.
    /// Delivered right before that termination's
    /// [`service_terminated`](Self::service_terminated).
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
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    ///     fn circuit_opened(&self, _service: &(), _failures: u32, _max_retries: u32) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = Trips::default();
    /// sink.circuit_opened(&(), 11, 10);
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 1);
    /// ```
    fn circuit_opened(&self, service: &Self::Handle, failures: u32, max_retries: u32) {
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
    ///     type Handle = ();
    ///     fn resolve(&self, _service: &str) {}
    ///     fn service_terminated(&self, _service: &(), _reason: &TerminationReason, uptime: Duration) {
    ///         self.0.fetch_add(uptime.as_secs(), Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// let sink = UptimeSecs::default();
    /// sink.service_terminated(&(), &TerminationReason::Completed, Duration::from_secs(3));
    /// sink.service_terminated(&(), &TerminationReason::Cancelled, Duration::from_secs(4));
    /// assert_eq!(sink.0.load(Ordering::Relaxed), 7);
    /// ```
    fn service_terminated(
        &self,
        service: &Self::Handle,
        reason: &TerminationReason,
        uptime: Duration,
    ) {
        let _ = (service, reason, uptime);
    }

    /// A terminated service's entry left the supervisor: a new spawn with the
    /// same name replaced it (or, with removal, the host removed it). The last
    /// event of that handle: the sink gets it back by value and can drop the
    /// per-service series no other live handle uses.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use supervisor_metrics::MetricsSink;
    ///
    /// #[derive(Debug)]
    /// struct Names;
    ///
    /// impl MetricsSink for Names {
    ///     type Handle = Arc<str>;
    ///     fn resolve(&self, service: &str) -> Arc<str> {
    ///         Arc::from(service)
    ///     }
    ///     fn service_removed(&self, service: Arc<str>) {
    ///         println!("{service} is gone");
    ///     }
    /// }
    ///
    /// Names.service_removed(Names.resolve("feed"));
    /// ```
    fn service_removed(&self, service: Self::Handle) {
        drop(service);
    }
}

/// A sink that discards every event.
///
/// # Examples
///
/// ```
/// use supervisor_metrics::{FailureKind, MetricsSink, NoopSink};
///
/// let sink = NoopSink;
/// let feed = sink.resolve("feed");
/// sink.service_failed(&feed, FailureKind::Panic); // Nothing happens.
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl MetricsSink for NoopSink {
    type Handle = ();

    fn resolve(&self, _service: &str) {}
}
