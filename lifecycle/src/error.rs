//! The typed errors of the crate: [`InvalidTransition`] and [`NotRunning`].

use core::fmt;

use crate::ServicePhase;

/// A phase change the transition table does not allow.
///
/// Returned by every `transition_to_*` method of
/// [`ServiceLifecycle`](crate::ServiceLifecycle); the lifecycle is left
/// exactly as it was.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use supervisor_lifecycle::{ServiceLifecycle, ServicePhase};
///
/// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
/// let error = lifecycle.transition_to_restarting(Duration::from_secs(1)).unwrap_err();
/// assert_eq!(error.from(), ServicePhase::Starting);
/// assert_eq!(error.to(), ServicePhase::Restarting);
/// assert_eq!(
///     error.to_string(),
///     "invalid lifecycle transition from starting to restarting"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    from: ServicePhase,
    to: ServicePhase,
}

impl InvalidTransition {
    /// The error for the rejected move `from` → `to`.
    pub(crate) const fn new(from: ServicePhase, to: ServicePhase) -> Self {
        InvalidTransition { from, to }
    }

    /// The phase the lifecycle was (and still is) in.
    #[must_use]
    pub const fn from(&self) -> ServicePhase {
        self.from
    }

    /// The phase that was requested.
    #[must_use]
    pub const fn to(&self) -> ServicePhase {
        self.to
    }
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid lifecycle transition from {} to {}",
            self.from, self.to
        )
    }
}

impl std::error::Error for InvalidTransition {}

/// A failure was recorded while the service had no run:
/// not [`Running`](ServicePhase::Running) nor [`Stopping`](ServicePhase::Stopping).
///
/// Returned by [`ServiceLifecycle::record_failure`](crate::ServiceLifecycle::record_failure):
/// a failure belongs to a run. The lifecycle is left exactly as it was.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use supervisor_lifecycle::{FailureKind, ServiceLifecycle, ServicePhase};
///
/// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
/// let error = lifecycle.record_failure(FailureKind::Error, "connection reset").unwrap_err();
/// assert_eq!(error.phase(), ServicePhase::Starting);
/// assert_eq!(
///     error.to_string(),
///     "cannot record a failure while the service is starting (only while running or stopping)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRunning {
    phase: ServicePhase,
}

impl NotRunning {
    /// The error for a failure recorded in `phase`.
    pub(crate) const fn new(phase: ServicePhase) -> Self {
        NotRunning { phase }
    }

    /// The phase the lifecycle was (and still is) in.
    #[must_use]
    pub const fn phase(&self) -> ServicePhase {
        self.phase
    }
}

impl fmt::Display for NotRunning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot record a failure while the service is {} (only while running or stopping)",
            self.phase
        )
    }
}

impl std::error::Error for NotRunning {}
