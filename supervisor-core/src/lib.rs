//! A supervisor for long-running tokio services: the in-process equivalent of
//! an Erlang/OTP supervisor, systemd's restart logic and Kubernetes'
//! CrashLoopBackOff.
//!
//! # Key types
//!
//! - [`Supervisor`] runs many services, each in its own task, restarts them
//!   by policy, and shuts them all down in dependency order, each within
//!   its own stop timeout.
//! - [`Service`] is what you implement (or build with [`service_fn`]); its
//!   [`RestartPolicy`] says when it is restarted. Each run gets a
//!   [`ServiceContext`]: its own cancellation, and
//!   [`ready`](ServiceContext::ready) to say it is up.
//! - [`SpawnOptions`] holds one service's settings (OTP's child spec): its
//!   backoff, a restart policy that overrides the service's, its
//!   [`StopTimeout`], its dependencies ([`after`](SpawnOptions::after)), the
//!   [heartbeat](SpawnOptions::heartbeat) its runs must send, and whether it
//!   [signals readiness](SpawnOptions::signals_readiness) itself, is
//!   [temporary](SpawnOptions::temporary) or
//!   [critical](SpawnOptions::critical).
//! - [`ServiceHandle`], returned by every spawn (or by
//!   [`Supervisor::service`]), controls one service:
//!   [`stop`](ServiceHandle::stop), [`restart`](ServiceHandle::restart),
//!   [`remove`](ServiceHandle::remove),
//!   [`wait_terminated`](ServiceHandle::wait_terminated),
//!   [`wait_for_phase`](ServiceHandle::wait_for_phase); the [`Supervisor`]
//!   does the same by name. A refused call is a [`ControlError`].
//! - [`Supervisor::subscribe`] returns [`LifecycleEvents`], a stream of
//!   [`LifecycleEvent`]s: one per change of any service, in order for each
//!   service, numbered to join them to the snapshots without a gap.
//! - [`Readiness`] (from [`Supervisor::readiness`]), [`Supervisor::is_ready`]
//!   and [`Supervisor::wait_ready`] say whether everything is up; they turn
//!   false the moment shutdown begins.
//! - [`DrainReport`] says how the shutdown went (what was aborted, the
//!   slowest stops, how long it took) and its [`ShutdownCause`]; a critical
//!   service's failure makes [`Supervisor::run_until_shutdown`] return
//!   [`ShutdownError::CriticalFailed`], too many restarts
//!   [`ShutdownError::IntensityExceeded`].
//! - [`Strategy`] and [`RestartIntensity`] (from `supervisor-lifecycle`, with
//!   [`IntensityWindow`] that counts it) are OTP's supervisor flags: what
//!   restarts together, and how many restarts are too many.
//! - [`DoNotRestart`] and [`TerminateTree`] wrap a run's error to say more
//!   than "I failed" (suture's `ErrDoNotRestart` and
//!   `ErrTerminateSupervisorTree`): do not restart me, whatever my policy;
//!   stop the whole supervisor ([`ShutdownError::TreeTerminated`], unless
//!   [`SupervisorConfig::ignore_terminate_tree`]). They are found anywhere in
//!   the error's `source()` chain.
//! - [`SupervisorSpec`] nests a supervisor in another
//!   ([`Supervisor::spawn_supervisor`]): a supervision tree, where a child
//!   supervisor that gives up escalates to its parent as a
//!   [`NestedError`].
//! - [`BackoffConfig`] (from the `supervisor-backoff` crate) sets the restart
//!   delays and the circuit breaker; [`ServiceLifecycleSnapshot`] (from
//!   `supervisor-lifecycle`) is what you read back.
//! - Metrics go to the built-in [`SupervisorMetrics`] and to any
//!   [`MetricsSink`] added with [`SupervisorConfig::with_metrics_sink`].
//!
//! # The policy table
//!
//! How a run that ends on its own is handled:
//!
//! | run ended with | `Always` | `OnFailure` | `Never` |
//! |---|---|---|---|
//! | `Ok(())` | restart after a short fixed delay, backoff reset | `Completed` | `Completed` |
//! | `Err(_)` | restart after backoff | restart after backoff | `Unrecoverable` |
//! | `Err(_)` with a [`DoNotRestart`] in its chain | `DoNotRestart` | `DoNotRestart` | `DoNotRestart` |
//! | `Err(_)` with a [`TerminateTree`] in its chain | `TerminateTree`, and the supervisor shuts down ([`ShutdownCause::TreeTerminated`]) | same | same |
//! | panic (in `run`, its future, its drop, or its error's formatting) | restart after backoff | restart after backoff | `Panicked` |
//! | no heartbeat in time ([`SpawnOptions::heartbeat`]): stopped, then | restart after backoff | restart after backoff | `Unrecoverable` |
//! | too many failures in the breaker's window | `CircuitBreakerOpen` | `CircuitBreakerOpen` | — |
//!
//! What is asked of a service comes first, whatever its policy (a run is
//! asked to stop through its context, and dropped if it is still running at
//! its stop timeout):
//!
//! | asked | the service | if dropped at its stop timeout |
//! |---|---|---|
//! | a stop by the host ([`ServiceHandle::stop`], [`ServiceHandle::remove`]) | terminates `Stopped` | `StopTimeout` |
//! | a stop because a dependency terminated | terminates `DependencyStopped` | `StopTimeout` |
//! | a restart by the host ([`ServiceHandle::restart`]) | starts again at once: a restart, not a failure, backoff untouched | starts again, after a `Timeout` failure |
//! | shutdown | terminates `Cancelled` | `ShutdownTimeout` |
//!
//! Both error rows count an [`Error`](FailureKind::Error) failure and set
//! `last_error`, and are failures for good (a critical service's
//! `DoNotRestart` is a [`ShutdownCause::CriticalFailed`]; a
//! `TerminateTree` is the tree's termination, critical or not); the outermost
//! of the two in a chain decides. Under
//! [`SupervisorConfig::ignore_terminate_tree`] a `TerminateTree` is a
//! `DoNotRestart`. A restart asked for by the host does not restart a run
//! that ends with either; a stop or the shutdown asked for first decides (the
//! failure still recorded).
//!
//! A stop reaches a service wherever it is (running, backing off, waiting
//! for its dependencies) and is final: nothing starts it again. A drop at
//! the timeout counts as a [`Timeout`](FailureKind::Timeout) failure; under
//! [`StopTimeout::Immediate`] the run is dropped at once, without a failure,
//! and the service ends as in the second column. A run that misses its
//! heartbeat is asked to stop the same way (its context cancelled, dropped
//! at its stop timeout), and its end is a [`Hung`](FailureKind::Hung)
//! failure handled by the policy table above; a stop, restart or shutdown
//! asked for meanwhile decides instead, as in this table (the hang still
//! counted). Once shutdown began
//! nothing restarts: a run that ends on its own and would be restarted, or
//! a backoff that ends, terminates `Cancelled`.
//!
//! # Strategies
//!
//! The table above is how one service restarts. [`Strategy`]
//! ([`SupervisorConfig::with_strategy`]) says what restarts with it, as in
//! OTP:
//!
//! | strategy | when a service's policy restarts it |
//! |---|---|
//! | [`OneForOne`](Strategy::OneForOne) (default) | it restarts alone, as above |
//! | [`OneForAll`](Strategy::OneForAll) | every other service stops, newest first; after its backoff, all start again in spawn order |
//! | [`RestForOne`](Strategy::RestForOne) | the services spawned after it stop, newest first; after its backoff, it and they start again in spawn order |
//!
//! Policies map to OTP's restart types: `Always` is permanent, `OnFailure`
//! transient (a clean exit completes it and restarts nothing), `Never`
//! temporary (its exit restarts nothing; a group restart stops it for
//! good). A host restart restarts one service; a host stop is final; a
//! circuit breaker that opens ends its service alone. Under `OneForAll` and
//! `RestForOne` the shutdown stops the services one at a time, newest first
//! (under `OneForOne`, all at once, dependants first). We depart from OTP on
//! purpose in two ways: the failed service's backoff delays the group's
//! start, and a terminated service is not started again by a group restart.
//! [`Strategy`] has the details.
//!
//! [`SupervisorConfig::with_restart_intensity`] bounds the restarts of the
//! whole supervisor within a period ([`RestartIntensity`], counted as OTP
//! counts it: each policy restart under `OneForOne` and each group restart
//! is one charge, host restarts are not charged); past it the supervisor
//! stops every service in reverse spawn order and shuts down with
//! [`ShutdownCause::IntensityExceeded`], and
//! [`Supervisor::run_until_shutdown`] returns
//! [`ShutdownError::IntensityExceeded`]. There is no limit by default.
//!
//! # Supervision trees
//!
//! A [`SupervisorSpec`] runs a supervisor as a service of another: each run
//! of its node builds a fresh child supervisor (its own strategy, restart
//! intensity and shutdown timeout) and spawns its children on it; the node
//! is ready once they are, and stops by draining them. Nested services are
//! named by their path from the root (`db/pool`) in snapshots, events,
//! status and metric labels, and the root controls them by path
//! ([`Supervisor::service`]); the whole tree shares one set of counters,
//! sinks and one event stream. When a child's intensity trips, its node's
//! run fails with [`NestedError::Escalated`], and the parent handles it like
//! any failure: OTP's escalation, bounded at each level by that level's
//! intensity, up to the root's, whose trip makes
//! [`Supervisor::run_until_shutdown`] return
//! [`ShutdownError::IntensityExceeded`]. We depart from OTP on purpose in
//! one more way: a node restarted by its policy waits for its backoff first.
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
//! | `serde` | no      | `Serialize`/`Deserialize` for [`RestartPolicy`], [`Strategy`], [`RestartIntensity`], [`BackoffConfig`], [`StopTimeout`], [`ServiceLifecycleSnapshot`] (with [`TerminationReason`], [`FailureCounts`]) and [`MetricsSnapshot`]; `Serialize` for [`LifecycleEvent`] and [`EventKind`] |

mod config;
mod context;
mod drain;
mod error;
mod escalation;
mod events;
mod group;
mod panics;
mod runner;
mod service;
mod shared;
mod slot;
mod supervisor;
mod telemetry;
mod tree;

pub use backoff::{BackoffConfig, InvalidBackoff, Jitter};
pub use config::{
    DEFAULT_CLEAN_RESTART_DELAY, DEFAULT_EVENT_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT, SpawnOptions,
    StopTimeout, Strategy, SupervisorConfig,
};
pub use context::ServiceContext;
pub use drain::{DrainReport, ServiceStop, ShutdownCause};
pub use error::{ControlError, NestedError, ReadyError, ShutdownError, SpawnError};
pub use escalation::{DoNotRestart, TerminateTree};
pub use events::{EventKind, LifecycleEvent, LifecycleEvents, RecvError};
pub use lifecycle::{
    IntensityExceeded, IntensityWindow, RestartIntensity, ServiceLifecycleSnapshot, ServicePhase,
    TerminationReason,
};
pub use service::{BoxError, RestartPolicy, Service, ServiceFn, service_fn};
pub use supervisor::{Readiness, ServiceHandle, ServiceStatus, Supervisor};
pub use supervisor_metrics::{
    FailureCounts, FailureKind, MetricsSink, MetricsSnapshot, NoopSink, SupervisorMetrics,
};
pub use tree::SupervisorSpec;

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
