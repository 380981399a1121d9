//! Prometheus adapter of the supervisor: a [`MetricsSink`] that keeps
//! [prometheus-client](prometheus_client) metric families up to date, and
//! the renderers of its registry.
//!
//! # Key types
//!
//! - [`PrometheusSink`]: registers the `supervisor_*` families in a
//!   [`Registry`] you own (no global state) and implements [`MetricsSink`];
//!   its table of series is the reference for names, types and labels.
//! - [`render`] / [`render_prometheus_text`]: the registry as OpenMetrics text
//!   (what a Prometheus server asks for) or as Prometheus text 0.0.4 (what
//!   `curl` users and `promtool check metrics` read).
//!
//! # Who should depend on this crate
//!
//! Binaries that run a supervisor and expose its metrics to Prometheus. Of the
//! supervisor's crates, this one depends on `supervisor-metrics` only, never
//! on `supervisor-core` or a runtime. To serve the registry on `GET /metrics`
//! (with content negotiation, next to the probes and the status page), use
//! `supervisor-http`; a program with its own HTTP stack calls [`render`] or
//! [`render_prometheus_text`] from its handler.
//! For other back-ends through the `metrics` facade, use
//! `supervisor-metrics-facade` instead.
//!
//! # Feature flags
//!
//! None.
//!
//! # Examples
//!
//! Register the sink, hand it to the supervisor as an `Arc`, render the
//! registry (the registry is `Send + Sync`; the sink updates it through
//! atomics, so rendering shares no lock with the services):
//!
//! ```
//! use std::sync::Arc;
//!
//! use prometheus_client::registry::Registry;
//! use supervisor_metrics::{FailureKind, MetricsSink, ServicePhase};
//! use supervisor_prometheus::{PrometheusSink, render};
//!
//! let mut registry = Registry::default();
//! let sink = Arc::new(PrometheusSink::register(&mut registry));
//! // `SupervisorConfig::default().with_metrics_sink(Arc::clone(&sink))` in
//! // supervisor-core; here the events are sent by hand.
//! let feed = sink.resolve("feed");
//! sink.service_spawned(&feed);
//! sink.phase_changed(&feed, ServicePhase::Starting, ServicePhase::Running);
//! sink.service_failed(&feed, FailureKind::Panic);
//!
//! let text = render(&registry)?;
//! assert!(text.contains("supervisor_failures_total{service=\"feed\",kind=\"panic\"} 1\n"));
//! assert!(text.contains("supervisor_service_phase{service=\"feed\",phase=\"running\"} 1\n"));
//! assert!(text.contains("supervisor_service_phase{service=\"feed\",phase=\"starting\"} 0\n"));
//! # Ok::<(), std::fmt::Error>(())
//! ```
//!
//! [`MetricsSink`]: supervisor_metrics::MetricsSink
//! [`Registry`]: prometheus_client::registry::Registry

mod render;
mod sink;

/// The prometheus-client version this crate is built against, so callers can
/// name its `Registry` without a second, possibly different, dependency.
pub use prometheus_client;

pub use self::render::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, render, render_prometheus_text,
};
pub use self::sink::{
    DEFAULT_PREFIX, InvalidPrefix, PrometheusSink, SeriesHandle, UPTIME_BUCKETS_SECONDS,
};

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
