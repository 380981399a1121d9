//! [`FailureKind`] and [`FailureCounts`]: how runs of a service failed.

use core::fmt;

/// How a run of a service failed.
///
/// # Examples
///
/// ```
/// use supervisor_lifecycle::FailureKind;
///
/// assert_eq!(FailureKind::Panic.as_str(), "panic");
/// assert_eq!(FailureKind::Timeout.to_string(), "timeout");
/// assert_eq!(FailureKind::Hung.as_str(), "hung");
/// assert_eq!(FailureKind::ALL.len(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum FailureKind {
    /// The run returned `Err`.
    Error,
    /// The run panicked (while being created, polled, dropped, or while its
    /// error was formatted).
    Panic,
    /// The run was still going at a deadline and was aborted (for example at
    /// the shutdown timeout).
    Timeout,
    /// The run missed a heartbeat it was required to send (a watchdog, like
    /// systemd's `WatchdogSec`): it was asked to stop for it, and dropped if
    /// it did not stop in time.
    Hung,
}

impl FailureKind {
    /// Every kind, in a fixed order (for exporters that pre-create one series
    /// per kind).
    pub const ALL: [FailureKind; 4] = [
        FailureKind::Error,
        FailureKind::Panic,
        FailureKind::Timeout,
        FailureKind::Hung,
    ];

    /// A stable lowercase label, for metrics and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
            FailureKind::Hung => "hung",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The failures of one service, by kind. The one place a service's failure
/// numbers live; [`total`](Self::total) is derived, never stored.
///
/// Counters saturate at `u64::MAX`.
///
/// # Examples
///
/// ```
/// use supervisor_lifecycle::{FailureCounts, FailureKind};
///
/// let mut failures = FailureCounts::default();
/// failures.record(FailureKind::Error);
/// failures.record(FailureKind::Error);
/// failures.record(FailureKind::Timeout);
/// failures.record(FailureKind::Hung);
/// assert_eq!(failures.get(FailureKind::Error), 2);
/// assert_eq!(failures.hung, 1);
/// assert_eq!(failures.total(), 4);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FailureCounts {
    /// Runs that returned `Err`.
    pub error: u64,
    /// Runs that panicked.
    pub panic: u64,
    /// Runs aborted at a deadline.
    pub timeout: u64,
    /// Runs that missed a required heartbeat.
    #[cfg_attr(feature = "serde", serde(default))]
    pub hung: u64,
}

impl FailureCounts {
    /// Counts one failure of `kind`.
    pub fn record(&mut self, kind: FailureKind) {
        let counter = self.counter(kind);
        *counter = counter.saturating_add(1);
    }

    /// The failures of one kind.
    #[must_use]
    pub const fn get(&self, kind: FailureKind) -> u64 {
        match kind {
            FailureKind::Error => self.error,
            FailureKind::Panic => self.panic,
            FailureKind::Timeout => self.timeout,
            FailureKind::Hung => self.hung,
        }
    }

    /// Failures of every kind (saturating).
    #[must_use]
    pub const fn total(&self) -> u64 {
        self.error
            .saturating_add(self.panic)
            .saturating_add(self.timeout)
            .saturating_add(self.hung)
    }

    fn counter(&mut self, kind: FailureKind) -> &mut u64 {
        match kind {
            FailureKind::Error => &mut self.error,
            FailureKind::Panic => &mut self.panic,
            FailureKind::Timeout => &mut self.timeout,
            FailureKind::Hung => &mut self.hung,
        }
    }
}
