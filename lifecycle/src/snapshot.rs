//! [`ServiceLifecycleSnapshot`]: a plain-data copy of a lifecycle at one instant.

use core::time::Duration;

use crate::{FailureCounts, ServicePhase, TerminationReason};

/// A plain-data copy of a [`ServiceLifecycle`](crate::ServiceLifecycle), taken
/// with [`ServiceLifecycle::snapshot`](crate::ServiceLifecycle::snapshot) at a
/// given `now`.
///
/// For status pages, metrics exporters and logs. Its fields carry no invariant
/// of their own, so they are public; each number is stored once (restarts and
/// the failure total are derived by [`restart_count`](Self::restart_count) and
/// [`FailureCounts::total`]). With the `serde` feature it round-trips through
/// any serde format (durations as serde's `{ secs, nanos }`).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use supervisor_lifecycle::{ServiceLifecycle, TerminationReason};
///
/// # fn main() -> Result<(), supervisor_lifecycle::InvalidTransition> {
/// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
/// lifecycle.transition_to_terminated(Duration::ZERO, TerminationReason::Cancelled)?;
/// let snapshot = lifecycle.snapshot(Duration::ZERO);
/// // Callers match on the reason; its `kind` is the stable label for metrics.
/// assert!(matches!(snapshot.termination_reason, Some(TerminationReason::Cancelled)));
/// let reason = snapshot.termination_reason.unwrap();
/// assert_eq!(reason.kind(), "cancelled");
/// assert_eq!(reason.to_string(), "cancelled by shutdown");
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
    /// Failures by kind.
    pub failures: FailureCounts,
    /// The message of the latest recorded failure.
    pub last_error: Option<String>,
    /// Why the service terminated, once [`Terminated`](ServicePhase::Terminated).
    pub termination_reason: Option<TerminationReason>,
    /// Total time spent running, up to the snapshot's `now`.
    pub cumulative_running_time: Duration,
    /// The restart delay being waited out, while
    /// [`BackingOff`](ServicePhase::BackingOff).
    pub current_backoff: Option<Duration>,
    /// The `now` of the latest accepted transition (or of creation).
    pub last_transition_at: Duration,
    /// Whether the current run said it is ready (only while
    /// [`Running`](ServicePhase::Running)).
    pub ready: bool,
    /// The sequence number of the latest change the snapshot includes (see
    /// [`ServiceLifecycle::seq`](crate::ServiceLifecycle::seq)).
    pub seq: u64,
}

impl ServiceLifecycleSnapshot {
    /// Starts after the first: `start_count - 1`, or 0 before the first start.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::ServiceLifecycle;
    ///
    /// # fn main() -> Result<(), supervisor_lifecycle::InvalidTransition> {
    /// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    /// assert_eq!(lifecycle.snapshot(Duration::ZERO).restart_count(), 0);
    /// lifecycle.transition_to_running(Duration::ZERO)?;
    /// assert_eq!(lifecycle.snapshot(Duration::ZERO).restart_count(), 0);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub const fn restart_count(&self) -> u64 {
        self.start_count.saturating_sub(1)
    }
}
