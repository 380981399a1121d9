//! Errors of the supervisor's public API.

use std::error::Error as StdError;
use std::fmt;

use backoff::InvalidBackoff;

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
            | SpawnError::Panicked { .. } => None,
        }
    }
}
