//! [`ServiceLifecycleSnapshot`]: a plain-data copy of a lifecycle at one instant.

use core::time::Duration;

use crate::ServicePhase;

/// A plain-data copy of a [`ServiceLifecycle`](crate::ServiceLifecycle), taken
/// with [`ServiceLifecycle::snapshot`](crate::ServiceLifecycle::snapshot) at a
/// given `now`.
///
/// For status pages, metrics exporters and logs. Its fields carry no invariant
/// of their own, so they are public; with the `serde` feature it round-trips
/// through any serde format (durations as serde's `{ secs, nanos }`).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use lifecycle::{ServiceLifecycle, TerminationReason};
///
/// # fn main() -> Result<(), lifecycle::InvalidTransition> {
/// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
/// lifecycle.transition_to_terminated(Duration::ZERO, TerminationReason::Cancelled)?;
/// let snapshot = lifecycle.snapshot(Duration::ZERO);
/// assert_eq!(snapshot.termination_kind.as_deref(), Some("cancelled"));
/// assert_eq!(snapshot.termination_reason.as_deref(), Some("cancelled by shutdown"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ServiceLifecycleSnapshot {
    /// The service's name.
    pub service_name: String,
    /// The phase at the time of the snapshot.
    pub phase: ServicePhase,
    /// Entries into [`Running`](ServicePhase::Running).
    pub start_count: u64,
    /// `start_count - 1`, or 0 before the first start.
    pub restart_count: u64,
    /// Recorded failures.
    pub total_failures: u64,
    /// The message of the latest recorded failure.
    pub last_error: Option<String>,
    /// The termination reason as a human sentence (its `Display`), once
    /// [`Terminated`](ServicePhase::Terminated).
    pub termination_reason: Option<String>,
    /// The termination reason's stable label
    /// ([`TerminationReason::kind`](crate::TerminationReason::kind)), once
    /// `Terminated`.
    pub termination_kind: Option<String>,
    /// Total time spent running, up to the snapshot's `now`.
    pub cumulative_running_time: Duration,
    /// The restart delay being waited out, while
    /// [`BackingOff`](ServicePhase::BackingOff).
    pub current_backoff: Option<Duration>,
    /// The `now` of the latest accepted transition (or of creation).
    pub last_transition_at: Duration,
}
