//! A supervisor for long-running tokio services: the in-process equivalent of
//! an Erlang/OTP supervisor, systemd's restart logic and Kubernetes'
//! CrashLoopBackOff.
//!
//! # Key types
//!
//! - [`Supervisor`] runs many services, each in its own task, and shuts them
//!   all down through a [`CancellationToken`](tokio_util::sync::CancellationToken)
//!   tree with a drain timeout.
//! - [`Service`] is what you implement (or build with [`service_fn`]); its
//!   [`RestartPolicy`] says when it is restarted.
//! - [`BackoffConfig`] (from the `supervisor-backoff` crate) sets the restart
//!   delays and the circuit breaker; [`ServiceLifecycleSnapshot`] (from
//!   `supervisor-lifecycle`) is what you read back.
//! - Metrics go to the built-in [`SupervisorMetrics`] and to any
//!   [`MetricsSink`] added with [`SupervisorConfig::with_metrics_sink`].
//!
//! # The policy table
//!
//! | run ended with | `Always` | `OnFailure` | `Never` |
//! |---|---|---|---|
//! | `Ok(())` | restart after a short fixed delay, backoff reset | `Completed` | `Completed` |
//! | `Err(_)` | restart after backoff | restart after backoff | `Unrecoverable` |
//! | panic (in `run`, its future, its drop, or its error's formatting) | restart after backoff | restart after backoff | `Panicked` |
//! | asked to stop by the supervisor (any time) | `Cancelled` | `Cancelled` | `Cancelled` |
//! | too many failures in the breaker's window | `CircuitBreakerOpen` | `CircuitBreakerOpen` | — |
//! | still running at the shutdown timeout | `ShutdownTimeout` (aborted) | same | same |
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use supervisor_core::{
//!     service_fn, BackoffConfig, RestartPolicy, ServiceContext, SpawnOptions, Supervisor,
//!     SupervisorConfig,
//! };
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
//!
//! // A service that fails twice, then stays up until shutdown.
//! let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let flaky = service_fn("flaky", move |ctx: ServiceContext| {
//!     let attempts = attempts.clone();
//!     async move {
//!         if attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
//!             anyhow::bail!("connection refused");
//!         }
//!         ctx.cancelled().await;
//!         Ok(())
//!     }
//! })
//! .with_restart_policy(RestartPolicy::OnFailure);
//! let backoff = BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(5));
//! supervisor.spawn_service_with_options(flaky, SpawnOptions::with_backoff(backoff))?;
//!
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! let snapshot = supervisor.service_lifecycle("flaky").unwrap();
//! assert_eq!(snapshot.start_count, 3);
//! assert_eq!(snapshot.last_error.as_deref(), Some("connection refused"));
//!
//! supervisor.trigger_shutdown();
//! assert!(supervisor.wait_for_drain().await.is_clean());
//! assert_eq!(supervisor.metrics().snapshot().restarts_total, 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `serde` | no      | `Serialize`/`Deserialize` for [`RestartPolicy`], [`BackoffConfig`], [`ServiceLifecycleSnapshot`] (with [`TerminationReason`], [`FailureCounts`]) and [`MetricsSnapshot`] |

mod config;
mod context;
mod drain;
mod error;
mod events;
mod panics;
mod runner;
mod service;
mod shared;
mod slot;
mod supervisor;
mod telemetry;

pub use backoff::{BackoffConfig, InvalidBackoff, Jitter};
pub use config::{
    DEFAULT_CLEAN_RESTART_DELAY, DEFAULT_EVENT_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT, SpawnOptions,
    StopTimeout, SupervisorConfig,
};
pub use context::ServiceContext;
pub use drain::{DrainReport, ServiceStop, ShutdownCause};
pub use error::{ControlError, ReadyError, ShutdownError, SpawnError};
pub use events::{EventKind, LifecycleEvent, LifecycleEvents, RecvError};
pub use lifecycle::{ServiceLifecycleSnapshot, ServicePhase, TerminationReason};
pub use service::{BoxError, RestartPolicy, Service, ServiceFn, service_fn};
pub use supervisor::{Readiness, ServiceHandle, Supervisor};
pub use supervisor_metrics::{
    FailureCounts, FailureKind, MetricsSink, MetricsSnapshot, NoopSink, SupervisorMetrics,
};

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
