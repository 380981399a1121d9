//! The metrics boundary of the supervisor: one sink trait, a no-op sink, the
//! always-on in-memory counters, and what adapters share.
//!
//! # Key types
//!
//! - [`MetricsSink`]: what a metrics back-end implements. It resolves its
//!   per-service state once per spawn ([`MetricsSink::resolve`]) and gets it
//!   back with every event, so the hot path never looks a service up by name.
//!   Every event method has a no-op default body, so adding an event later is
//!   not a breaking change.
//! - [`NoopSink`]: discards everything.
//! - [`SupervisorMetrics`]: lock-free counters the supervisor always keeps; it
//!   is itself a [`MetricsSink`] and backs `Supervisor::metrics()`.
//! - [`MetricsSnapshot`]: plain data read from [`SupervisorMetrics`].
//! - For adapters: [`ServiceMap`] (per-service state shared by every live
//!   handle of a name), the series catalogue [`series`], and the metric-prefix
//!   grammar ([`validate_prefix`], [`InvalidPrefix`]).
//! - Re-exported from `lifecycle`: [`FailureKind`], [`FailureCounts`],
//!   [`ServicePhase`], [`TerminationReason`].
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
//! | `serde` | no      | `Serialize`/`Deserialize` for [`MetricsSnapshot`] (and the re-exported lifecycle types) |
//!
//! # Delivery contract
//!
//! 1. [`resolve`](MetricsSink::resolve) is called once per spawn, before any
//!    event of that spawn, and [`service_removed`](MetricsSink::service_removed)
//!    gives the handle back when the service's entry leaves the supervisor;
//!    every event in between receives that handle.
//! 2. Every event is delivered exactly once per occurrence, one event per
//!    call, in the order it happened for a given service (events of different
//!    services interleave). `service_spawned` is a spawn's first event,
//!    `service_terminated` its last before `service_removed`.
//! 3. No lock of the supervisor is held while a sink runs: a sink may call
//!    back into the supervisor (read snapshots, format it, spawn or stop a
//!    service). Events such a call causes for the service being reported are
//!    delivered after the current one, in order.
//! 4. A sink should not block and should not allocate per event: it runs on
//!    the service's task, on the hot path.
//! 5. A sink should not panic; if it does, the supervisor catches the panic
//!    and that sink loses exactly that one event (if `resolve` panics, it is
//!    tried again before the service's next event).
//!
//! # Examples
//!
//! A custom sink that counts panics per service, with its counter resolved
//! once:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use supervisor_metrics::{FailureKind, MetricsSink};
//!
//! #[derive(Debug, Default)]
//! struct PanicCounter;
//!
//! impl MetricsSink for PanicCounter {
//!     type Handle = Arc<AtomicU64>;
//!
//!     fn resolve(&self, _service: &str) -> Arc<AtomicU64> {
//!         Arc::default()
//!     }
//!
//!     fn service_failed(&self, panics: &Arc<AtomicU64>, kind: FailureKind) {
//!         if kind == FailureKind::Panic {
//!             panics.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! let sink = PanicCounter;
//! let feed = sink.resolve("feed");
//! sink.service_failed(&feed, FailureKind::Panic);
//! sink.service_failed(&feed, FailureKind::Error);
//! assert_eq!(feed.load(Ordering::Relaxed), 1);
//! ```

mod counters;
mod map;
mod prefix;
pub mod series;
mod sink;

pub use lifecycle::{FailureCounts, FailureKind, ServicePhase, TerminationReason};

pub use crate::counters::{MetricsSnapshot, SupervisorMetrics};
pub use crate::map::{ServiceEntry, ServiceMap};
pub use crate::prefix::{InvalidPrefix, validate_prefix};
pub use crate::sink::{MetricsSink, NoopSink};

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
