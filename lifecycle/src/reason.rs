//! [`TerminationReason`]: why a service reached [`ServicePhase::Terminated`](crate::ServicePhase::Terminated).

use core::fmt;
use core::time::Duration;

/// Why a service reached [`ServicePhase::Terminated`](crate::ServicePhase::Terminated).
///
/// [`Display`](fmt::Display) gives a human sentence (lowercase, no trailing
/// period); [`kind`](Self::kind) gives a stable `snake_case` label for metrics.
///
/// | variant                 | `kind()`                 | `is_failure()` |
/// |-------------------------|--------------------------|----------------|
/// | [`Completed`]           | `"completed"`            | `false`        |
/// | [`Cancelled`]           | `"cancelled"`            | `false`        |
/// | [`Unrecoverable`]       | `"unrecoverable"`        | `true`         |
/// | [`CircuitBreakerOpen`]  | `"circuit_breaker_open"` | `true`         |
/// | [`Panicked`]            | `"panicked"`             | `true`         |
/// | [`ShutdownTimeout`]     | `"shutdown_timeout"`     | `true`         |
/// | [`Stopped`]             | `"stopped"`              | `false`        |
/// | [`StopTimeout`]         | `"stop_timeout"`         | `true`         |
/// | [`DependencyStopped`]   | `"dependency_stopped"`   | `false`        |
/// | [`DoNotRestart`]        | `"do_not_restart"`       | `true`         |
/// | [`TerminateTree`]       | `"terminate_tree"`       | `true`         |
///
/// [`Completed`]: TerminationReason::Completed
/// [`Stopped`]: TerminationReason::Stopped
/// [`StopTimeout`]: TerminationReason::StopTimeout
/// [`DependencyStopped`]: TerminationReason::DependencyStopped
/// [`Cancelled`]: TerminationReason::Cancelled
/// [`Unrecoverable`]: TerminationReason::Unrecoverable
/// [`CircuitBreakerOpen`]: TerminationReason::CircuitBreakerOpen
/// [`Panicked`]: TerminationReason::Panicked
/// [`ShutdownTimeout`]: TerminationReason::ShutdownTimeout
/// [`DoNotRestart`]: TerminationReason::DoNotRestart
/// [`TerminateTree`]: TerminationReason::TerminateTree
///
/// # Examples
///
/// ```
/// use supervisor_lifecycle::TerminationReason;
///
/// let reason = TerminationReason::CircuitBreakerOpen { failures: 6, max_retries: 5 };
/// assert_eq!(reason.kind(), "circuit_breaker_open");
/// assert!(reason.is_failure());
/// assert_eq!(
///     reason.to_string(),
///     "circuit breaker open after 6 failures (max retries 5)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum TerminationReason {
    /// The run returned `Ok` and the restart policy does not restart it.
    Completed,
    /// Shutdown (cancellation) was observed.
    Cancelled,
    /// The run failed and the restart policy does not restart it; holds the
    /// error message.
    Unrecoverable(String),
    /// The run kept failing and the backoff gave up.
    CircuitBreakerOpen {
        /// Consecutive failures counted when the breaker opened.
        failures: u32,
        /// The retry budget that was exceeded.
        max_retries: u32,
    },
    /// The run panicked and the restart policy does not restart it; holds the
    /// panic message.
    Panicked(String),
    /// The run was still going when the shutdown drain timeout expired, so it
    /// was aborted.
    ShutdownTimeout {
        /// The drain timeout that expired.
        timeout: Duration,
    },
    /// The host stopped (or removed) the service, and its run returned within
    /// its stop timeout.
    Stopped,
    /// The host stopped (or removed) the service, and its run was still going
    /// at its stop timeout, so it was aborted.
    StopTimeout {
        /// The stop timeout that expired.
        timeout: Duration,
    },
    /// A service it depends on stopped for good, so it was stopped too.
    DependencyStopped {
        /// The dependency's name.
        dependency: String,
    },
    /// The run failed with an error that asked not to be restarted, so it
    /// was not, whatever the restart policy; holds the error message.
    DoNotRestart(String),
    /// The run failed with an error that asked to terminate the whole
    /// supervisor, so it was not restarted and the supervisor shut down;
    /// holds the error message.
    TerminateTree(String),
}

impl TerminationReason {
    /// A stable `snake_case` label for the variant, fit for a metric label value.
    ///
    /// One of `"completed"`, `"cancelled"`, `"unrecoverable"`,
    /// `"circuit_breaker_open"`, `"panicked"`, `"shutdown_timeout"`,
    /// `"stopped"`, `"stop_timeout"`, `"dependency_stopped"`,
    /// `"do_not_restart"`, `"terminate_tree"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::TerminationReason;
    ///
    /// assert_eq!(TerminationReason::Panicked("boom".into()).kind(), "panicked");
    /// ```
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            TerminationReason::Completed => "completed",
            TerminationReason::Cancelled => "cancelled",
            TerminationReason::Unrecoverable(_) => "unrecoverable",
            TerminationReason::CircuitBreakerOpen { .. } => "circuit_breaker_open",
            TerminationReason::Panicked(_) => "panicked",
            TerminationReason::ShutdownTimeout { .. } => "shutdown_timeout",
            TerminationReason::Stopped => "stopped",
            TerminationReason::StopTimeout { .. } => "stop_timeout",
            TerminationReason::DependencyStopped { .. } => "dependency_stopped",
            TerminationReason::DoNotRestart(_) => "do_not_restart",
            TerminationReason::TerminateTree(_) => "terminate_tree",
        }
    }

    /// Whether the run was aborted: still going at a stop or shutdown
    /// timeout, and dropped. Such a termination also counts as a
    /// [`Timeout`](crate::FailureKind::Timeout) failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::TerminationReason;
    ///
    /// assert!(TerminationReason::StopTimeout { timeout: Duration::ZERO }.is_abort());
    /// assert!(!TerminationReason::Stopped.is_abort());
    /// ```
    #[must_use]
    pub fn is_abort(&self) -> bool {
        matches!(
            self,
            TerminationReason::ShutdownTimeout { .. } | TerminationReason::StopTimeout { .. }
        )
    }

    /// Whether the service ended because something went wrong.
    ///
    /// `false` for [`Completed`](Self::Completed),
    /// [`Cancelled`](Self::Cancelled), [`Stopped`](Self::Stopped) and
    /// [`DependencyStopped`](Self::DependencyStopped), `true` for every other
    /// reason (including the timeouts: the service did not stop when asked).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::TerminationReason;
    ///
    /// assert!(!TerminationReason::Cancelled.is_failure());
    /// assert!(TerminationReason::Unrecoverable("disk full".into()).is_failure());
    /// ```
    #[must_use]
    pub fn is_failure(&self) -> bool {
        match self {
            TerminationReason::Completed
            | TerminationReason::Cancelled
            | TerminationReason::Stopped
            | TerminationReason::DependencyStopped { .. } => false,
            TerminationReason::Unrecoverable(_)
            | TerminationReason::CircuitBreakerOpen { .. }
            | TerminationReason::Panicked(_)
            | TerminationReason::ShutdownTimeout { .. }
            | TerminationReason::StopTimeout { .. }
            | TerminationReason::DoNotRestart(_)
            | TerminationReason::TerminateTree(_) => true,
        }
    }
}

/// A human sentence, lowercase, without a trailing period.
///
/// | variant                                              | sentence                                              |
/// |------------------------------------------------------|-------------------------------------------------------|
/// | `Completed`                                          | `completed successfully`                              |
/// | `Cancelled`                                          | `cancelled by shutdown`                               |
/// | `Unrecoverable(msg)`                                 | `unrecoverable error: {msg}`                          |
/// | `CircuitBreakerOpen { failures, max_retries }`       | `circuit breaker open after {failures} failures (max retries {max_retries})` |
/// | `Panicked(msg)`                                      | `panicked: {msg}`                                     |
/// | `ShutdownTimeout { timeout }`                        | `aborted after the shutdown timeout of {timeout:?}`   |
/// | `Stopped`                                            | `stopped`                                             |
/// | `StopTimeout { timeout }`                            | `aborted after the stop timeout of {timeout:?}`       |
/// | `DependencyStopped { dependency }`                   | `stopped because its dependency {dependency} stopped` |
/// | `DoNotRestart(msg)`                                  | `gave up, asked not to be restarted: {msg}`           |
/// | `TerminateTree(msg)`                                 | `asked to terminate the supervisor: {msg}`            |
impl fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TerminationReason::Completed => f.write_str("completed successfully"),
            TerminationReason::Cancelled => f.write_str("cancelled by shutdown"),
            TerminationReason::Unrecoverable(message) => {
                write!(f, "unrecoverable error: {message}")
            }
            TerminationReason::CircuitBreakerOpen {
                failures,
                max_retries,
            } => write!(
                f,
                "circuit breaker open after {failures} failures (max retries {max_retries})"
            ),
            TerminationReason::Panicked(message) => write!(f, "panicked: {message}"),
            TerminationReason::ShutdownTimeout { timeout } => {
                write!(f, "aborted after the shutdown timeout of {timeout:?}")
            }
            TerminationReason::Stopped => f.write_str("stopped"),
            TerminationReason::StopTimeout { timeout } => {
                write!(f, "aborted after the stop timeout of {timeout:?}")
            }
            TerminationReason::DependencyStopped { dependency } => {
                write!(f, "stopped because its dependency {dependency} stopped")
            }
            TerminationReason::DoNotRestart(message) => {
                write!(f, "gave up, asked not to be restarted: {message}")
            }
            TerminationReason::TerminateTree(message) => {
                write!(f, "asked to terminate the supervisor: {message}")
            }
        }
    }
}
