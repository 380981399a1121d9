//! [`ServiceLifecycle`]: the state machine of one supervised service.

use core::time::Duration;
use std::sync::Arc;

use crate::{
    FailureCounts, FailureKind, InvalidTransition, NotRunning, ServiceLifecycleSnapshot,
    ServicePhase, TerminationReason,
};

/// The state machine of one supervised service, with its counters and timings.
///
/// The supervisor owns one per service and calls a `transition_to_*` method
/// each time the service changes phase, passing the current time as `now`: a
/// [`Duration`] since an origin of the caller's choosing (the same origin for
/// every call on one lifecycle). The lifecycle never reads a clock.
///
/// Which phase may follow which is decided by
/// [`ServicePhase::can_transition_to`] alone; see the table there.
///
/// # Invariants
///
/// 1. Every phase change goes through the transition table
///    ([`ServicePhase::can_transition_to`]). A rejected transition, or a
///    rejected [`record_failure`](Self::record_failure), returns `Err` and
///    leaves the lifecycle unchanged: it still compares equal to a clone taken
///    before the call.
/// 2. [`Terminated`](ServicePhase::Terminated) is absorbing: once there, every
///    transition is rejected and the termination reason never changes.
/// 3. [`termination_reason`](Self::termination_reason) is `Some` exactly when
///    the phase is `Terminated`.
/// 4. [`current_backoff`](Self::current_backoff) is `Some` exactly when the
///    phase is [`BackingOff`](ServicePhase::BackingOff); it holds the delay
///    given to the latest [`transition_to_backing_off`](Self::transition_to_backing_off).
/// 5. [`start_count`](Self::start_count) is the number of accepted transitions
///    into [`Running`](ServicePhase::Running), and
///    [`restart_count`](Self::restart_count) is `start_count - 1` (0 before the
///    first start).
/// 6. [`failures`](Self::failures) counts, by kind, the accepted
///    [`record_failure`](Self::record_failure) calls plus one
///    [`Timeout`](FailureKind::Timeout) for a termination whose reason
///    [is an abort](TerminationReason::is_abort);
///    [`last_error`](Self::last_error) holds the message of the latest
///    recorded failure; it is never cleared, not even by a later healthy run.
/// 7. [`last_transition_at`](Self::last_transition_at) is the `now` of the
///    latest accepted transition, or of [`new`](Self::new) before any.
/// 8. [`cumulative_running_time`](Self::cumulative_running_time) is the sum of
///    the closed `Running` intervals (`now` when leaving `Running` minus `now`
///    when entering it) plus, while `Running`, the open interval up to the
///    given `now`. Each interval in which time went backwards counts as zero;
///    the sum saturates at [`Duration::MAX`].
/// 9. No method panics, whatever times are passed in: all arithmetic saturates.
/// 10. [`is_ready`](Self::is_ready) is `true` only while `Running`: set by
///     [`mark_ready`](Self::mark_ready), cleared by every transition, so each
///     run starts unready.
/// 11. [`seq`](Self::seq) counts the accepted changes: transitions, recorded
///     failures and readiness (a snapshot and an event stream can be joined
///     on it without a gap or a duplicate).
///
/// # Examples
///
/// A service that fails once, backs off, restarts, and is shut down:
///
/// ```
/// use core::time::Duration;
/// use supervisor_lifecycle::{FailureKind, ServiceLifecycle, ServicePhase, TerminationReason};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secs = Duration::from_secs;
/// let mut lifecycle = ServiceLifecycle::new("market-feed", secs(0));
///
/// lifecycle.transition_to_running(secs(1))?;
/// lifecycle.record_failure(FailureKind::Error, "connection reset")?;
/// lifecycle.transition_to_backing_off(secs(11), secs(2))?;
/// assert_eq!(lifecycle.current_backoff(), Some(secs(2)));
///
/// lifecycle.transition_to_restarting(secs(13))?;
/// lifecycle.transition_to_running(secs(13))?;
/// assert_eq!(lifecycle.restart_count(), 1);
/// assert_eq!(lifecycle.cumulative_running_time(secs(20)), secs(17));
///
/// lifecycle.transition_to_stopping(secs(20))?;
/// lifecycle.transition_to_terminated(secs(21), TerminationReason::Cancelled)?;
/// assert_eq!(lifecycle.phase(), ServicePhase::Terminated);
/// assert_eq!(lifecycle.last_error(), Some("connection reset"));
///
/// // Terminated is absorbing.
/// assert!(lifecycle.transition_to_running(secs(30)).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLifecycle {
    name: Arc<str>,
    phase: ServicePhase,
    start_count: u64,
    failures: FailureCounts,
    /// Out of line, like the reason below: a supervisor keeps one lifecycle
    /// per service, and most services never fail or terminate. Shared, so a
    /// host reports it without copying it.
    last_error: Option<Arc<str>>,
    current_backoff: Option<Duration>,
    termination_reason: Option<Box<TerminationReason>>,
    /// The `now` of the latest accepted transition. While `Running`, this is
    /// when the open running interval began.
    last_transition_at: Duration,
    /// The saturating sum of the closed `Running` intervals.
    closed_running_time: Duration,
    /// Accepted changes so far.
    seq: u64,
    /// The current run said it is ready.
    ready: bool,
}

impl ServiceLifecycle {
    /// A new lifecycle in [`Starting`](ServicePhase::Starting), created at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{ServiceLifecycle, ServicePhase};
    ///
    /// let lifecycle = ServiceLifecycle::new("risk-engine", Duration::from_secs(5));
    /// assert_eq!(lifecycle.name(), "risk-engine");
    /// assert_eq!(lifecycle.phase(), ServicePhase::Starting);
    /// assert_eq!(lifecycle.start_count(), 0);
    /// assert_eq!(lifecycle.last_transition_at(), Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn new(name: impl Into<Arc<str>>, now: Duration) -> Self {
        ServiceLifecycle {
            name: name.into(),
            phase: ServicePhase::Starting,
            start_count: 0,
            failures: FailureCounts::default(),
            last_error: None,
            current_backoff: None,
            termination_reason: None,
            last_transition_at: now,
            closed_running_time: Duration::ZERO,
            seq: 0,
            ready: false,
        }
    }

    /// The service's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service's name, shared: clone it to label events without copying the
    /// string.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use std::sync::Arc;
    /// use supervisor_lifecycle::ServiceLifecycle;
    ///
    /// let name: Arc<str> = Arc::from("feed");
    /// let lifecycle = ServiceLifecycle::new(Arc::clone(&name), Duration::ZERO);
    /// assert!(Arc::ptr_eq(lifecycle.name_arc(), &name));
    /// ```
    #[must_use]
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The current phase.
    #[must_use]
    pub fn phase(&self) -> ServicePhase {
        self.phase
    }

    /// How many times the service entered [`Running`](ServicePhase::Running).
    #[must_use]
    pub fn start_count(&self) -> u64 {
        self.start_count
    }

    /// How many of those starts were restarts: `start_count() - 1`, or 0 before
    /// the first start.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::ServiceLifecycle;
    ///
    /// # fn main() -> Result<(), supervisor_lifecycle::InvalidTransition> {
    /// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    /// assert_eq!(lifecycle.restart_count(), 0);
    /// lifecycle.transition_to_running(Duration::ZERO)?;
    /// assert_eq!((lifecycle.start_count(), lifecycle.restart_count()), (1, 0));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn restart_count(&self) -> u64 {
        self.start_count.saturating_sub(1)
    }

    /// The failures recorded so far, by kind: each accepted
    /// [`record_failure`](Self::record_failure), plus a
    /// [`Timeout`](FailureKind::Timeout) for a termination whose reason
    /// [is an abort](TerminationReason::is_abort).
    #[must_use]
    pub fn failures(&self) -> FailureCounts {
        self.failures
    }

    /// Whether the current run said it is ready; `false` outside `Running`.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The sequence number of the latest accepted change: every change (a
    /// transition, a recorded failure, readiness) increments it by one, from
    /// 0 at creation or from what [`renumber`](Self::renumber) set.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Sets the sequence number of the latest change, for a host that numbers
    /// the changes of many lifecycles on one timeline (a supervisor's event
    /// stream); later changes count on from it.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::ServiceLifecycle;
    ///
    /// # fn main() -> Result<(), supervisor_lifecycle::InvalidTransition> {
    /// let mut lifecycle = ServiceLifecycle::new("db", Duration::ZERO);
    /// lifecycle.renumber(41);
    /// lifecycle.transition_to_running(Duration::ZERO)?;
    /// assert_eq!(lifecycle.seq(), 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn renumber(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Marks the current run ready (systemd's `READY=1`): accepted only while
    /// [`Running`](ServicePhase::Running). Returns whether this changed
    /// anything (`false` if it was ready already, and then [`seq`](Self::seq)
    /// does not move).
    ///
    /// # Errors
    ///
    /// [`NotRunning`] in any other phase; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::ServiceLifecycle;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut lifecycle = ServiceLifecycle::new("db", Duration::ZERO);
    /// assert!(lifecycle.mark_ready().is_err()); // Not running yet.
    /// lifecycle.transition_to_running(Duration::ZERO)?;
    /// assert_eq!(lifecycle.mark_ready()?, true);
    /// assert_eq!(lifecycle.mark_ready()?, false); // Already ready.
    /// assert!(lifecycle.is_ready());
    /// lifecycle.transition_to_backing_off(Duration::from_secs(1), Duration::ZERO)?;
    /// assert!(!lifecycle.is_ready()); // Every transition clears it.
    /// # Ok(())
    /// # }
    /// ```
    pub fn mark_ready(&mut self) -> Result<bool, NotRunning> {
        if self.phase != ServicePhase::Running {
            return Err(NotRunning::new(self.phase));
        }
        if self.ready {
            return Ok(false);
        }
        self.ready = true;
        self.seq = self.seq.saturating_add(1);
        Ok(true)
    }

    /// The message of the latest recorded failure.
    ///
    /// Kept after a later healthy run, so a status page can show what went
    /// wrong last.
    #[must_use]
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// [`last_error`](Self::last_error), shared: a host that reports it (a
    /// supervisor's event stream) clones the pointer, not the message.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{FailureKind, ServiceLifecycle};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    /// lifecycle.transition_to_running(Duration::ZERO)?;
    /// lifecycle.record_failure(FailureKind::Error, "connection reset")?;
    /// assert_eq!(lifecycle.last_error_shared().map(|e| &**e), Some("connection reset"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn last_error_shared(&self) -> Option<&Arc<str>> {
        self.last_error.as_ref()
    }

    /// The restart delay being waited out: `Some` only while
    /// [`BackingOff`](ServicePhase::BackingOff).
    ///
    /// It is cleared when the lifecycle leaves `BackingOff`, including into
    /// [`Restarting`](ServicePhase::Restarting): by then the delay is over.
    #[must_use]
    pub fn current_backoff(&self) -> Option<Duration> {
        self.current_backoff
    }

    /// Why the service terminated: `Some` only while
    /// [`Terminated`](ServicePhase::Terminated).
    #[must_use]
    pub fn termination_reason(&self) -> Option<&TerminationReason> {
        self.termination_reason.as_deref()
    }

    /// The `now` of the latest accepted transition, or of [`new`](Self::new)
    /// before any.
    #[must_use]
    pub fn last_transition_at(&self) -> Duration {
        self.last_transition_at
    }

    /// How long the service has been in its current phase at `now`: zero if
    /// `now` is before [`last_transition_at`](Self::last_transition_at).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::ServiceLifecycle;
    ///
    /// let lifecycle = ServiceLifecycle::new("feed", Duration::from_secs(10));
    /// assert_eq!(lifecycle.time_in_phase(Duration::from_secs(12)), Duration::from_secs(2));
    /// assert_eq!(lifecycle.time_in_phase(Duration::from_secs(3)), Duration::ZERO);
    /// ```
    #[must_use]
    pub fn time_in_phase(&self, now: Duration) -> Duration {
        now.saturating_sub(self.last_transition_at)
    }

    /// Total time spent [`Running`](ServicePhase::Running) up to `now`.
    ///
    /// The closed running intervals plus, while `Running`, the open one up to
    /// `now`. An interval in which time went backwards counts as zero, and the
    /// sum saturates at [`Duration::MAX`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::ServiceLifecycle;
    ///
    /// # fn main() -> Result<(), supervisor_lifecycle::InvalidTransition> {
    /// let secs = Duration::from_secs;
    /// let mut lifecycle = ServiceLifecycle::new("feed", secs(0));
    /// lifecycle.transition_to_running(secs(10))?;
    /// assert_eq!(lifecycle.cumulative_running_time(secs(15)), secs(5));
    /// // A `now` before the run began adds nothing.
    /// assert_eq!(lifecycle.cumulative_running_time(secs(1)), Duration::ZERO);
    /// lifecycle.transition_to_backing_off(secs(20), secs(1))?;
    /// // Closed: later `now`s add nothing.
    /// assert_eq!(lifecycle.cumulative_running_time(secs(99)), secs(10));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn cumulative_running_time(&self, now: Duration) -> Duration {
        match self.phase {
            ServicePhase::Running => self
                .closed_running_time
                .saturating_add(self.time_in_phase(now)),
            _ => self.closed_running_time,
        }
    }

    /// Enter [`Running`](ServicePhase::Running), from
    /// [`Starting`](ServicePhase::Starting) or
    /// [`Restarting`](ServicePhase::Restarting); counts a start.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] from any other phase; nothing changes.
    pub fn transition_to_running(&mut self, now: Duration) -> Result<(), InvalidTransition> {
        self.enter(ServicePhase::Running, now)?;
        self.start_count = self.start_count.saturating_add(1);
        Ok(())
    }

    /// Enter [`BackingOff`](ServicePhase::BackingOff) from
    /// [`Running`](ServicePhase::Running) (the run ended and the restart waits
    /// `delay`) or from [`Stopping`](ServicePhase::Stopping) (the supervisor
    /// stopped the run because it failed, for example by missing a
    /// heartbeat, and the restart waits `delay`).
    ///
    /// Closes the running interval. A failed run is recorded separately, with
    /// [`record_failure`](Self::record_failure) before this call; a run that
    /// ended cleanly and is restarted anyway backs off without one.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] from any other phase; nothing changes.
    pub fn transition_to_backing_off(
        &mut self,
        now: Duration,
        delay: Duration,
    ) -> Result<(), InvalidTransition> {
        self.enter(ServicePhase::BackingOff, now)?;
        self.current_backoff = Some(delay);
        Ok(())
    }

    /// Enter [`Restarting`](ServicePhase::Restarting) from
    /// [`BackingOff`](ServicePhase::BackingOff) (the delay is over) or from
    /// [`Stopping`](ServicePhase::Stopping) (a restart asked for while the
    /// service ran: its run has stopped).
    ///
    /// Clears [`current_backoff`](Self::current_backoff).
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] from any other phase; nothing changes.
    pub fn transition_to_restarting(&mut self, now: Duration) -> Result<(), InvalidTransition> {
        self.enter(ServicePhase::Restarting, now)
    }

    /// Enter [`Stopping`](ServicePhase::Stopping): the service was asked to
    /// stop (shutdown, a stop or restart asked for by the host).
    ///
    /// Allowed from [`Starting`](ServicePhase::Starting),
    /// [`Running`](ServicePhase::Running), [`BackingOff`](ServicePhase::BackingOff)
    /// and [`Restarting`](ServicePhase::Restarting). Closes the running
    /// interval if there is one.
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] from `Stopping` or `Terminated`; nothing changes.
    pub fn transition_to_stopping(&mut self, now: Duration) -> Result<(), InvalidTransition> {
        self.enter(ServicePhase::Stopping, now)
    }

    /// Enter [`Terminated`](ServicePhase::Terminated) for `reason`, from any
    /// other phase.
    ///
    /// Closes the running interval if there is one. A termination whose
    /// reason [is an abort](TerminationReason::is_abort) (a run that did not
    /// stop in time) also counts a [`Timeout`](FailureKind::Timeout) failure,
    /// and the reason's sentence becomes [`last_error`](Self::last_error).
    ///
    /// # Errors
    ///
    /// [`InvalidTransition`] if already `Terminated` (the phase is absorbing);
    /// nothing changes, the first reason is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{ServiceLifecycle, TerminationReason};
    ///
    /// # fn main() -> Result<(), supervisor_lifecycle::InvalidTransition> {
    /// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    /// lifecycle.transition_to_running(Duration::ZERO)?;
    /// lifecycle.transition_to_terminated(Duration::from_secs(3), TerminationReason::Completed)?;
    /// assert!(lifecycle
    ///     .transition_to_terminated(Duration::from_secs(4), TerminationReason::Cancelled)
    ///     .is_err());
    /// assert_eq!(lifecycle.termination_reason(), Some(&TerminationReason::Completed));
    /// # Ok(())
    /// # }
    /// ```
    pub fn transition_to_terminated(
        &mut self,
        now: Duration,
        reason: TerminationReason,
    ) -> Result<(), InvalidTransition> {
        self.enter(ServicePhase::Terminated, now)?;
        if reason.is_abort() {
            self.failures.record(FailureKind::Timeout);
            self.last_error = Some(Arc::from(reason.to_string()));
        }
        self.termination_reason = Some(Box::new(reason));
        Ok(())
    }

    /// Record that the current run failed, how, and with which message.
    ///
    /// A failure belongs to a run, so this is accepted while
    /// [`Running`](ServicePhase::Running), and while
    /// [`Stopping`](ServicePhase::Stopping) (a run asked to stop may still fail
    /// on its way out). Call it before leaving that phase. It counts a failure
    /// of `kind` and replaces [`last_error`](Self::last_error); the phase does
    /// not change.
    ///
    /// # Errors
    ///
    /// [`NotRunning`] in any other phase; nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{FailureKind, ServiceLifecycle};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    /// lifecycle.transition_to_running(Duration::ZERO)?;
    /// lifecycle.record_failure(FailureKind::Panic, "index out of bounds")?;
    /// assert_eq!(lifecycle.failures().panic, 1);
    /// assert_eq!(lifecycle.failures().total(), 1);
    /// assert_eq!(lifecycle.last_error(), Some("index out of bounds"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn record_failure(
        &mut self,
        kind: FailureKind,
        message: impl Into<String>,
    ) -> Result<(), NotRunning> {
        if !matches!(self.phase, ServicePhase::Running | ServicePhase::Stopping) {
            return Err(NotRunning::new(self.phase));
        }
        self.failures.record(kind);
        self.last_error = Some(Arc::from(message.into()));
        self.seq = self.seq.saturating_add(1);
        Ok(())
    }

    /// A plain-data copy of the state, with running time measured up to `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{ServiceLifecycle, ServicePhase};
    ///
    /// # fn main() -> Result<(), supervisor_lifecycle::InvalidTransition> {
    /// let mut lifecycle = ServiceLifecycle::new("feed", Duration::ZERO);
    /// lifecycle.transition_to_running(Duration::from_secs(1))?;
    /// let snapshot = lifecycle.snapshot(Duration::from_secs(4));
    /// assert_eq!(snapshot.service_name, "feed");
    /// assert_eq!(snapshot.phase, ServicePhase::Running);
    /// assert_eq!(snapshot.cumulative_running_time, Duration::from_secs(3));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn snapshot(&self, now: Duration) -> ServiceLifecycleSnapshot {
        ServiceLifecycleSnapshot {
            service_name: self.name.to_string(),
            phase: self.phase,
            start_count: self.start_count,
            failures: self.failures,
            last_error: self.last_error.as_deref().map(str::to_owned),
            termination_reason: self.termination_reason.as_deref().cloned(),
            cumulative_running_time: self.cumulative_running_time(now),
            current_backoff: self.current_backoff,
            last_transition_at: self.last_transition_at,
            ready: self.ready,
            seq: self.seq,
        }
    }

    /// The one path of every phase change: checks the transition table, then
    /// closes the running interval (when leaving `Running`), moves to `to`,
    /// stamps the time and clears the backoff delay. Nothing changes on `Err`.
    fn enter(&mut self, to: ServicePhase, now: Duration) -> Result<(), InvalidTransition> {
        let from = self.phase;
        if !from.can_transition_to(to) {
            return Err(InvalidTransition::new(from, to));
        }
        self.closed_running_time = self.cumulative_running_time(now);
        self.phase = to;
        self.last_transition_at = now;
        self.current_backoff = None;
        self.ready = false;
        self.seq = self.seq.saturating_add(1);
        Ok(())
    }
}
