//! The HTTP surface of a supervisor, on axum: Prometheus metrics, the probes
//! Kubernetes and load balancers ask, the fleet's status as JSON, its
//! lifecycle events as Server-Sent Events, and a status page.
//!
//! # Key types
//!
//! - [`SupervisorRoutes`]: the endpoints of one [`Supervisor`], built into an
//!   axum [`Router`](axum::Router) that a host merges into its own app in
//!   one line: `app.merge(SupervisorRoutes::new(supervisor.clone()))`.
//!
//!   | route | answers |
//!   |---|---|
//!   | `GET /` | the status page, compiled into the crate |
//!   | `GET /livez` | `200`, or `503` once a critical service failed for good, the restart intensity was exceeded, a service's [`TerminateTree`](supervisor_core::TerminateTree) error shut the supervisor down, or the shutdown has finished |
//!   | `GET /readyz` | `200` when every service is ready (or every critical one: [`ReadyWhen`]), `503` with those that are not, and from the moment shutdown begins |
//!   | `GET /status` | every service's snapshot, settings and dependencies, as JSON |
//!   | `GET /events` | the lifecycle events, as Server-Sent Events |
//!   | `GET /metrics` | feature `prometheus`, `SupervisorRoutes::with_prometheus`: OpenMetrics when asked for, the text format 0.0.4 otherwise |
//!
//! - [`ReadyWhen`]: which services `/readyz` (and systemd's `READY=1`)
//!   waits for: all of them, or the critical ones only.
//! - [`Limits`]: the size of a request body, the time of a request, the
//!   requests and event streams at once, and the connection bounds, all as
//!   tower layers and hyper settings.
//! - [`HttpServer`] and [`serve`]: for a host without an HTTP server, the
//!   routes on a listener of their own (loopback by default,
//!   [`DEFAULT_ADDR`]), shut down gracefully once the supervisor has
//!   drained ([`drained`]).
//!
//! No endpoint changes the supervisor. Services' error messages appear in
//! `/status`, in the events and on the page, as the services wrote them:
//! JSON-encoded, shown as text, never as HTML, but readable by whoever
//! reaches the surface.
//!
//! # Who should depend on this crate
//!
//! Programs that run a [`Supervisor`] and are run in turn by Kubernetes,
//! systemd or a person with a browser. It is the one adapter that depends on
//! `supervisor-core` (the others depend on `supervisor-metrics` only): it
//! serves the supervisor itself. A host with another HTTP stack can call the
//! same [`Supervisor`] methods from its own handlers.
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `prometheus` | yes | `SupervisorRoutes::with_prometheus` and `GET /metrics`; pulls `supervisor-prometheus` |
//! | `systemd` | no | the `systemd` module: `sd_notify` for `Type=notify` services; pulls `sd-notify` |
//!
//! # Examples
//!
//! A supervisor served on a free loopback port until it has drained (with
//! its metrics: `SupervisorRoutes::with_prometheus`):
//!
//! ```
//! use std::net::SocketAddr;
//!
//! use supervisor_core::{service_fn, ServiceContext, Supervisor, SupervisorConfig};
//! use supervisor_http::{HttpServer, SupervisorRoutes, drained};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
//! supervisor.spawn_service(service_fn("feed", |ctx: ServiceContext| async move {
//!     ctx.cancelled().await;
//!     anyhow::Ok(())
//! }))?;
//!
//! let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
//! println!("serving http://{}/", server.local_addr());
//! let routes = SupervisorRoutes::new(supervisor.clone());
//! let serving = tokio::spawn(server.run(routes, drained(&supervisor)));
//!
//! supervisor.trigger_shutdown(); // Or SIGTERM, with `run_until_shutdown`.
//! supervisor.wait_for_drain().await;
//! serving.await?; // The server stops once the supervisor has drained.
//! # Ok(())
//! # }
//! ```
//!
//! [`Supervisor`]: supervisor_core::Supervisor
#![forbid(unsafe_code)]

mod events;
mod limits;
#[cfg(feature = "prometheus")]
mod metrics;
mod readiness;
mod routes;
mod server;
#[cfg(feature = "systemd")]
pub mod systemd;

pub use self::limits::Limits;
pub use self::readiness::ReadyWhen;
pub use self::routes::SupervisorRoutes;
pub use self::server::{DEFAULT_ADDR, HttpServer, drained, serve};

// The README's example is a doctest too, so that it stays true to the API
// (it serves the metrics).
#[cfg(all(doctest, feature = "prometheus"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
