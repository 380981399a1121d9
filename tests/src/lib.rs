//! The workspace's shared test-support library: what more than one test suite
//! needs, written once. Library code of the workspace never depends on it; the
//! members' tests do, as a dev-dependency.
//!
//! # Key items
//!
//! - [`exposition`]: reading samples back from a Prometheus or OpenMetrics
//!   text exposition (`supervisor-prometheus`'s tests and the behaviour tests).
//! - [`BreakerModel`]: the reference model of the circuit breaker (`backoff`'s
//!   properties and the chaos tests of the behaviour suite).
//! - `sink` (feature `sink`): `ByName` and `chaotic_run`, one script of
//!   lifecycle events for any `MetricsSink` (the tests of both metrics
//!   adapters).
//! - `prometheus` (feature `prometheus`): find `promtool` and `prometheus`,
//!   lint with `promtool check metrics`, run a real Prometheus against a
//!   target and query it, and an HTTP client (any request, Server-Sent Events).
//!
//! # Who should depend on this crate
//!
//! Test suites of this workspace only, as a dev-dependency. Its library
//! depends on no workspace crate but `supervisor-metrics` (feature `sink`), so
//! every member, `backoff` included, can dev-depend on it without a cycle.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `sink` | yes | the `sink` module; pulls `supervisor-metrics` |
//! | `prometheus` | yes | the `prometheus` module; pulls tokio (`rt`, `time`), `ureq`, `serde_json`, `tempfile`, `which` |
//!
//! The workspace dependency turns the default features off, so a member names
//! what it uses (`backoff` uses neither and builds nothing more).

mod breaker;
pub mod exposition;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "sink")]
pub mod sink;

pub use self::breaker::BreakerModel;
