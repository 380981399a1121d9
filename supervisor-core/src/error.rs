//! Errors of the supervisor's public API.

use std::error::Error as StdError;
use std::fmt;

use backoff::InvalidBackoff;
use lifecycle::TerminationReason;

use crate::{DrainReport, ShutdownCause};

/// Why [`Supervisor::spawn_service`](crate::Supervisor::spawn_service) refused
/// a service. Nothing was started and nothing was registered.
///
/// # Examples
///
/// ```
/// use supervisor_core::{service_fn, SpawnError, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let svc = || service_fn("feed", |ctx: supervisor_core::ServiceContext| async move {
///     ctx.cancelled().await;
///     anyhow::Ok(())
/// });
/// supervisor.spawn_service(svc()).unwrap();
/// let err = supervisor.spawn_service(svc()).unwrap_err();
/// assert!(matches!(err, SpawnError::DuplicateName { .. }));
/// assert_eq!(err.to_string(), "a live service named `feed` is already supervised");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SpawnError {
    /// A live (not yet terminated) service already has this name.
    DuplicateName {
        /// The name asked for.
        name: String,
    },
    /// Shutdown has started; no new service is accepted.
    ShuttingDown {
        /// The service that was refused.
        name: String,
    },
    /// `spawn_service` was called outside a tokio runtime.
    NoRuntime {
        /// The service that was refused.
        name: String,
    },
    /// The tokio runtime has no time driver (build it with `enable_time`, or
    /// `enable_all`): backoff delays and stop timeouts need timers.
    NoTimeDriver {
        /// The service that was refused.
        name: String,
    },
    /// The service's `name` or `restart_policy` panicked, so it could not be
    /// registered.
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The service's backoff configuration is invalid.
    InvalidBackoff {
        /// The service that was refused.
        name: String,
        /// What is wrong with the configuration.
        source: InvalidBackoff,
    },
    /// The heartbeat interval of
    /// [`SpawnOptions::heartbeat`](crate::SpawnOptions::heartbeat) is zero:
    /// no run could ever meet it.
    InvalidHeartbeat {
        /// The service that was refused.
        name: String,
    },
    /// The name contains a `/`, which separates the segments of a nested
    /// service's path ([`SupervisorSpec`](crate::SupervisorSpec)): a service
    /// `pool` of the node `db` is addressed as `db/pool`.
    InvalidName {
        /// The name that was refused.
        name: String,
    },
    /// A dependency named in [`SpawnOptions::after`](crate::SpawnOptions::after)
    /// is not registered (dependencies are spawned first).
    UnknownDependency {
        /// The service that was refused.
        name: String,
        /// The dependency that is missing.
        dependency: String,
    },
    /// A dependency has terminated: the service could never start.
    DependencyTerminated {
        /// The service that was refused.
        name: String,
        /// The terminated dependency.
        dependency: String,
    },
    /// The dependencies form a cycle. Dependencies must be registered before
    /// their dependants, so the only cycle a spawn can ask for is a service
    /// that depends on itself.
    DependencyCycle {
        /// The service that was refused.
        name: String,
        /// The cycle, starting and ending with `name`.
        cycle: Vec<String>,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::DuplicateName { name } => {
                write!(f, "a live service named `{name}` is already supervised")
            }
            SpawnError::ShuttingDown { name } => {
                write!(f, "cannot spawn `{name}`: the supervisor is shutting down")
            }
            SpawnError::NoRuntime { name } => {
                write!(f, "cannot spawn `{name}`: not inside a tokio runtime")
            }
            SpawnError::NoTimeDriver { name } => write!(
                f,
                "cannot spawn `{name}`: the tokio runtime has no time driver (enable_time)"
            ),
            SpawnError::Panicked { message } => {
                write!(f, "cannot spawn a service whose name panicked: {message}")
            }
            SpawnError::InvalidBackoff { name, .. } => {
                write!(f, "invalid backoff configuration for `{name}`")
            }
            SpawnError::InvalidHeartbeat { name } => {
                write!(f, "cannot spawn `{name}`: its heartbeat interval is zero")
            }
            SpawnError::InvalidName { name } => write!(
                f,
                "cannot spawn `{name}`: a name must not contain `/`, the separator of nested paths"
            ),
            SpawnError::UnknownDependency { name, dependency } => write!(
                f,
                "cannot spawn `{name}`: its dependency `{dependency}` is not registered"
            ),
            SpawnError::DependencyTerminated { name, dependency } => write!(
                f,
                "cannot spawn `{name}`: its dependency `{dependency}` has terminated"
            ),
            SpawnError::DependencyCycle { name, cycle } => write!(
                f,
                "cannot spawn `{name}`: its dependencies form a cycle ({})",
                cycle.join(" -> ")
            ),
        }
    }
}

impl StdError for SpawnError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            SpawnError::InvalidBackoff { source, .. } => Some(source),
            SpawnError::DuplicateName { .. }
            | SpawnError::ShuttingDown { .. }
            | SpawnError::NoRuntime { .. }
            | SpawnError::NoTimeDriver { .. }
            | SpawnError::Panicked { .. }
            | SpawnError::InvalidHeartbeat { .. }
            | SpawnError::InvalidName { .. }
            | SpawnError::UnknownDependency { .. }
            | SpawnError::DependencyTerminated { .. }
            | SpawnError::DependencyCycle { .. } => None,
        }
    }
}

/// Why a control call ([`ServiceHandle::stop`](crate::ServiceHandle::stop),
/// [`Supervisor::restart_service`](crate::Supervisor::restart_service), …)
/// did nothing.
///
/// # Examples
///
/// ```
/// use supervisor_core::{ControlError, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let err = supervisor.stop_service("ghost").await.unwrap_err();
/// assert_eq!(err, ControlError::NotFound { name: "ghost".into() });
/// assert_eq!(err.to_string(), "no service named `ghost` is registered");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// No service is registered under this name.
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The service was removed (this handle outlived it).
    Removed {
        /// The service's name.
        name: String,
    },
    /// The service has terminated: there is nothing left to stop or restart.
    Terminated {
        /// The service's name.
        name: String,
        /// Why it terminated.
        reason: TerminationReason,
    },
    /// The service is being stopped (a stop, a removal, or its dependency
    /// stopped): it cannot be restarted.
    Stopping {
        /// The service's name.
        name: String,
    },
    /// Shutdown has started: every service is being stopped already.
    ShuttingDown {
        /// The service's name.
        name: String,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotFound { name } => write!(f, "no service named `{name}` is registered"),
            ControlError::Removed { name } => write!(f, "service `{name}` was removed"),
            ControlError::Terminated { name, reason } => {
                write!(f, "service `{name}` has terminated ({reason})")
            }
            ControlError::Stopping { name } => write!(f, "service `{name}` is being stopped"),
            ControlError::ShuttingDown { name } => {
                write!(
                    f,
                    "cannot control `{name}`: the supervisor is shutting down"
                )
            }
        }
    }
}

impl StdError for ControlError {}

/// Why [`Supervisor::run_until_shutdown`](crate::Supervisor::run_until_shutdown)
/// returned an error: `main` should exit non-zero.
///
/// # Examples
///
/// ```
/// use supervisor_core::{
///     service_fn, RestartPolicy, ServiceContext, ShutdownError, SpawnOptions, Supervisor,
///     SupervisorConfig, TerminationReason,
/// };
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// let db = service_fn("db", |_ctx: ServiceContext| async { anyhow::bail!("disk full") });
/// let options = SpawnOptions::default().restart_policy(RestartPolicy::Never).critical();
/// supervisor.spawn_service_with_options(db, options).unwrap();
///
/// match supervisor.run_until_shutdown().await {
///     Err(ShutdownError::CriticalFailed { service, reason, report }) => {
///         assert_eq!(service, "db");
///         assert_eq!(reason, TerminationReason::Unrecoverable("disk full".into()));
///         assert!(report.is_clean());
///     }
///     other => panic!("unexpected: {other:?}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The signal handlers could not be installed (nothing was triggered).
    Signals(std::io::Error),
    /// A [critical](crate::SpawnOptions::critical) service failed for good,
    /// and everything was shut down.
    CriticalFailed {
        /// The critical service.
        service: String,
        /// Why it terminated.
        reason: TerminationReason,
        /// How the shutdown that followed went.
        report: DrainReport,
    },
    /// More restarts were called for than the
    /// [restart intensity](crate::SupervisorConfig::with_restart_intensity)
    /// tolerates, and everything was shut down.
    IntensityExceeded {
        /// The service whose restart tripped it.
        service: String,
        /// The restarts tolerated within `period`.
        max_restarts: u32,
        /// The period.
        period: std::time::Duration,
        /// What the drain did.
        report: DrainReport,
    },
    /// A service's run failed with a [`TerminateTree`](crate::TerminateTree)
    /// error, and everything was shut down
    /// ([`ShutdownCause::TreeTerminated`](crate::ShutdownCause::TreeTerminated)).
    TreeTerminated {
        /// The service whose error asked for it.
        service: String,
        /// The error, with its `source()` chain.
        error: String,
        /// How the shutdown that followed went.
        report: DrainReport,
    },
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownError::Signals(error) => write!(f, "{error}"),
            ShutdownError::CriticalFailed {
                service, reason, ..
            } => write!(f, "critical service `{service}` failed: {reason}"),
            ShutdownError::IntensityExceeded {
                service,
                max_restarts,
                period,
                ..
            } => write!(
                f,
                "restart intensity exceeded: `{service}` called for a restart beyond {max_restarts} in {period:?}"
            ),
            ShutdownError::TreeTerminated { service, error, .. } => {
                write!(
                    f,
                    "service `{service}` asked to terminate the supervisor: {error}"
                )
            }
        }
    }
}

impl StdError for ShutdownError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // `Display` already says what the IO error says.
        match self {
            ShutdownError::Signals(error) => error.source(),
            ShutdownError::CriticalFailed { .. }
            | ShutdownError::IntensityExceeded { .. }
            | ShutdownError::TreeTerminated { .. } => None,
        }
    }
}

/// Why [`Supervisor::wait_ready`](crate::Supervisor::wait_ready) gave up.
///
/// # Examples
///
/// ```
/// use supervisor_core::{ReadyError, Supervisor, SupervisorConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let supervisor = Supervisor::new(SupervisorConfig::default().without_signal_handler());
/// supervisor.trigger_shutdown();
/// assert_eq!(supervisor.wait_ready().await, Err(ReadyError::ShuttingDown));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadyError {
    /// Shutdown has begun: the supervisor will not be ready again.
    ShuttingDown,
    /// A service failed for good: it will never be ready (remove it, or
    /// spawn it again, to clear it).
    Failed {
        /// The service.
        service: String,
        /// Why it terminated.
        reason: TerminationReason,
    },
}

impl fmt::Display for ReadyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadyError::ShuttingDown => f.write_str("the supervisor is shutting down"),
            ReadyError::Failed { service, reason } => {
                write!(f, "service `{service}` failed for good: {reason}")
            }
        }
    }
}

impl StdError for ReadyError {}

/// Why one run of a nested supervisor's node
/// ([`SupervisorSpec`](crate::SupervisorSpec)) failed: the failure its parent
/// handles like any child's, by the node's policy, the parent's strategy and
/// its restart intensity.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use supervisor_core::{NestedError, ShutdownCause};
///
/// let error = NestedError::Escalated {
///     supervisor: "db".into(),
///     cause: ShutdownCause::IntensityExceeded {
///         service: "db/pool".into(),
///         max_restarts: 3,
///         period: Duration::from_secs(5),
///     },
/// };
/// assert_eq!(
///     error.to_string(),
///     "supervisor `db` escalated: restart intensity exceeded: `db/pool` called for a restart beyond 3 in 5s"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NestedError {
    /// The child supervisor shut itself down: its restart intensity tripped
    /// ([`ShutdownCause::IntensityExceeded`]), one of its critical services
    /// failed for good ([`ShutdownCause::CriticalFailed`]), or one of its
    /// services asked to terminate the tree
    /// ([`ShutdownCause::TreeTerminated`]; the node's run then fails with
    /// this error inside a [`TerminateTree`](crate::TerminateTree), so that
    /// the parent terminates too, unless its config
    /// [ignores](crate::SupervisorConfig::ignore_terminate_tree) it). OTP's
    /// escalation.
    Escalated {
        /// The node's path.
        supervisor: String,
        /// Why the child supervisor shut down.
        cause: ShutdownCause,
    },
    /// The spec's factory refused to start the children (a spawn it made
    /// failed, and it returned the error).
    Start {
        /// The node's path.
        supervisor: String,
        /// The error the factory returned.
        source: SpawnError,
    },
    /// The spec's factory panicked.
    Panicked {
        /// The node's path.
        supervisor: String,
        /// The panic's message.
        message: String,
    },
}

impl fmt::Display for NestedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NestedError::Escalated { supervisor, cause } => {
                write!(f, "supervisor `{supervisor}` escalated: {cause}")
            }
            NestedError::Start { supervisor, .. } => {
                write!(f, "supervisor `{supervisor}` could not start its children")
            }
            NestedError::Panicked {
                supervisor,
                message,
            } => write!(
                f,
                "supervisor `{supervisor}`: starting its children panicked: {message}"
            ),
        }
    }
}

impl StdError for NestedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            NestedError::Start { source, .. } => Some(source),
            NestedError::Escalated { .. } | NestedError::Panicked { .. } => None,
        }
    }
}
