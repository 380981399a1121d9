//! Prometheus adapter of the supervisor: a [`MetricsSink`] that keeps
//! [prometheus-client](prometheus_client) metric families up to date, an
//! OpenMetrics renderer and, behind the `server` feature, a minimal
//! `GET /metrics` HTTP server.
//!
//! # Key types
//!
//! - [`PrometheusSink`]: registers the `supervisor_*` families in a
//!   [`Registry`] you own (no global state) and implements [`MetricsSink`];
//!   its table of series is the reference for names, types and labels.
//! - [`render`] / [`render_prometheus_text`]: the registry as OpenMetrics text
//!   (what scrapers get) or as Prometheus text 0.0.4 (what `promtool` lints).
//! - [`MetricsServer`] and [`serve`] (feature `server`): `/metrics` over
//!   HTTP/1.1 on a tokio listener, loopback by default ([`DEFAULT_ADDR`]).
//!
//! # Who should depend on this crate
//!
//! Binaries that run a supervisor and expose its metrics to Prometheus. Of the
//! supervisor's crates, this one depends on `supervisor-metrics` only, never
//! on `supervisor-core`, and it depends on tokio only with the `server`
//! feature: libraries that already have an HTTP stack use [`render`] from
//! their own handler.
//! For other back-ends through the `metrics` facade, use
//! `supervisor-metrics-facade` instead.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `server` | no | [`MetricsServer`], [`serve`], [`DEFAULT_ADDR`]; pulls tokio (`net`, `io-util`, `time`, `rt`, `macros`) |
//!
//! # Examples
//!
//! Register the sink, hand it to the supervisor as an `Arc`, render the
//! registry:
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
//! With the `server` feature, serve it (the registry is `Send + Sync`; the
//! sink updates it through atomics, so no lock is shared with the server):
//!
//! ```no_run
//! # #[cfg(feature = "server")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use std::sync::Arc;
//!
//! use prometheus_client::registry::Registry;
//! use supervisor_prometheus::{DEFAULT_ADDR, PrometheusSink, serve};
//!
//! let mut registry = Registry::default();
//! let sink = Arc::new(PrometheusSink::register(&mut registry));
//! # let _ = sink;
//! serve(DEFAULT_ADDR, Arc::new(registry)).await
//! # }
//! # #[cfg(not(feature = "server"))]
//! # fn main() {}
//! ```
//!
//! [`MetricsSink`]: supervisor_metrics::MetricsSink
//! [`Registry`]: prometheus_client::registry::Registry
#![cfg_attr(
    feature = "server",
    doc = "[`MetricsServer`]: crate::MetricsServer\n[`serve`]: crate::serve\n[`DEFAULT_ADDR`]: crate::DEFAULT_ADDR"
)]
#![cfg_attr(
    not(feature = "server"),
    doc = "[`MetricsServer`]: #feature-flags\n[`serve`]: #feature-flags\n[`DEFAULT_ADDR`]: #feature-flags"
)]

mod render;
#[cfg(feature = "server")]
mod server;
mod sink;

/// The prometheus-client version this crate is built against, so callers can
/// name its `Registry` without a second, possibly different, dependency.
pub use prometheus_client;

pub use self::render::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, render, render_prometheus_text,
};
#[cfg(feature = "server")]
pub use self::server::{
    DEFAULT_ADDR, MAX_CONNECTIONS, MAX_REQUEST_HEAD_BYTES, METRICS_PATH, MetricsServer,
    REQUEST_TIMEOUT, serve,
};
pub use self::sink::{
    DEFAULT_PREFIX, InvalidPrefix, PrometheusSink, SeriesHandle, UPTIME_BUCKETS_SECONDS,
};

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
