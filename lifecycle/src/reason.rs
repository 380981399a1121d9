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
///
/// [`Completed`]: TerminationReason::Completed
/// [`Cancelled`]: TerminationReason::Cancelled
/// [`Unrecoverable`]: TerminationReason::Unrecoverable
/// [`CircuitBreakerOpen`]: TerminationReason::CircuitBreakerOpen
/// [`Panicked`]: TerminationReason::Panicked
/// [`ShutdownTimeout`]: TerminationReason::ShutdownTimeout
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
}

impl TerminationReason {
    /// A stable `snake_case` label for the variant, fit for a metric label value.
    ///
    /// One of `"completed"`, `"cancelled"`, `"unrecoverable"`,
    /// `"circuit_breaker_open"`, `"panicked"`, `"shutdown_timeout"`.
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
        }
    }

    /// Whether the service ended because something went wrong.
    ///
    /// `false` for [`Completed`](Self::Completed) and
    /// [`Cancelled`](Self::Cancelled), `true` for every other reason
    /// (including [`ShutdownTimeout`](Self::ShutdownTimeout): the service did
    /// not stop when asked).
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
            TerminationReason::Completed | TerminationReason::Cancelled => false,
            TerminationReason::Unrecoverable(_)
            | TerminationReason::CircuitBreakerOpen { .. }
            | TerminationReason::Panicked(_)
            | TerminationReason::ShutdownTimeout { .. } => true,
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
        }
    }
}
