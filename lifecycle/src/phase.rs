//! [`ServicePhase`]: the phases of a supervised service and the transition table.

use core::fmt;

/// The phase a supervised service is in.
///
/// A service starts in [`Starting`](ServicePhase::Starting) and ends in
/// [`Terminated`](ServicePhase::Terminated). Which phase may follow which is
/// decided in one place, [`ServicePhase::can_transition_to`]:
///
/// ```text
///                    ┌─────────────── restart ────────────────┐
///                    ▼                                        │
///  Starting ──────► Running ──────► BackingOff ──────► Restarting ◄──┐
///     │                │                 │                   │        │
///     └────────────────┴────────┬────────┴───────────────────┘        │
///                               │ from any of these four              │
///                     ┌─────────┴──────────┐                          │
///                     ▼                    ▼                          │
///                 Stopping ──────────► Terminated                     │
///                     ├──────── restart asked for by the host ───────┘
///                     └──────── a hung run stopped ──────► BackingOff
/// ```
///
/// | from \ to      | Starting | Running | BackingOff | Restarting | Stopping | Terminated |
/// |----------------|:--------:|:-------:|:----------:|:----------:|:--------:|:----------:|
/// | **Starting**   |          | ✓       |            |            | ✓        | ✓          |
/// | **Running**    |          |         | ✓          |            | ✓        | ✓          |
/// | **BackingOff** |          |         |            | ✓          | ✓        | ✓          |
/// | **Restarting** |          | ✓       |            |            | ✓        | ✓          |
/// | **Stopping**   |          |         | ✓          | ✓          |          | ✓          |
/// | **Terminated** |          |         |            |            |          |            |
///
/// No phase may follow itself, nothing leads back to `Starting`, and
/// `Terminated` is absorbing. `Stopping → Restarting` is a restart asked for
/// while the service ran: its run is stopped, then it starts again.
/// `Stopping → BackingOff` is a run stopped by its supervisor because it
/// failed (it missed a heartbeat): once it stopped, the restart policy backs
/// off as after any failed run.
///
/// With the `serde` feature a phase serializes as its [`as_str`](Self::as_str)
/// label (`"backing_off"`, …).
///
/// # Examples
///
/// ```
/// use supervisor_lifecycle::ServicePhase;
///
/// assert!(ServicePhase::Running.can_transition_to(ServicePhase::BackingOff));
/// assert!(!ServicePhase::Terminated.can_transition_to(ServicePhase::Running));
/// assert_eq!(ServicePhase::BackingOff.as_str(), "backing_off");
/// assert_eq!(ServicePhase::BackingOff.to_string(), "backing off");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum ServicePhase {
    /// Created, not yet running for the first time.
    Starting,
    /// The service's run is in progress.
    Running,
    /// The last run ended and the supervisor waits out a restart delay.
    BackingOff,
    /// The restart delay is over and the next run is being started.
    Restarting,
    /// Shutdown was requested; the supervisor waits for the run to drain.
    Stopping,
    /// Final phase: the service will not run again.
    Terminated,
}

impl ServicePhase {
    /// Every phase, in lifecycle order.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::ServicePhase;
    ///
    /// let alive = ServicePhase::ALL.iter().filter(|phase| phase.is_alive()).count();
    /// assert_eq!(alive, 5);
    /// ```
    pub const ALL: [ServicePhase; 6] = [
        ServicePhase::Starting,
        ServicePhase::Running,
        ServicePhase::BackingOff,
        ServicePhase::Restarting,
        ServicePhase::Stopping,
        ServicePhase::Terminated,
    ];

    /// The position of `self` in [`ALL`](Self::ALL), for tables indexed by
    /// phase (one gauge per phase, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::ServicePhase;
    ///
    /// for (position, phase) in ServicePhase::ALL.into_iter().enumerate() {
    ///     assert_eq!(phase.index(), position);
    /// }
    /// ```
    #[must_use]
    pub const fn index(self) -> usize {
        match self {
            ServicePhase::Starting => 0,
            ServicePhase::Running => 1,
            ServicePhase::BackingOff => 2,
            ServicePhase::Restarting => 3,
            ServicePhase::Stopping => 4,
            ServicePhase::Terminated => 5,
        }
    }

    /// The transition table: the phases that may directly follow `self`.
    ///
    /// This `match` is the only place that says which transition is legal; see
    /// the table in the [type documentation](ServicePhase).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::ServicePhase;
    ///
    /// assert_eq!(
    ///     ServicePhase::Stopping.successors(),
    ///     &[ServicePhase::BackingOff, ServicePhase::Restarting, ServicePhase::Terminated]
    /// );
    /// assert!(ServicePhase::Terminated.successors().is_empty());
    /// ```
    #[must_use]
    pub const fn successors(self) -> &'static [ServicePhase] {
        use ServicePhase::{BackingOff, Restarting, Running, Starting, Stopping, Terminated};
        match self {
            Starting => &[Running, Stopping, Terminated],
            Running => &[BackingOff, Stopping, Terminated],
            BackingOff => &[Restarting, Stopping, Terminated],
            Restarting => &[Running, Stopping, Terminated],
            Stopping => &[BackingOff, Restarting, Terminated],
            Terminated => &[],
        }
    }

    /// Whether the transition table allows moving from `self` to `to`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::ServicePhase;
    ///
    /// assert!(ServicePhase::Starting.can_transition_to(ServicePhase::Running));
    /// assert!(ServicePhase::Restarting.can_transition_to(ServicePhase::Running));
    /// assert!(!ServicePhase::BackingOff.can_transition_to(ServicePhase::Running));
    /// assert!(!ServicePhase::Running.can_transition_to(ServicePhase::Running));
    /// ```
    #[must_use]
    pub fn can_transition_to(self, to: ServicePhase) -> bool {
        self.successors().contains(&to)
    }

    /// Whether the service may still run: every phase but
    /// [`Terminated`](ServicePhase::Terminated).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::ServicePhase;
    ///
    /// assert!(ServicePhase::Stopping.is_alive());
    /// assert!(!ServicePhase::Terminated.is_alive());
    /// ```
    #[must_use]
    pub const fn is_alive(self) -> bool {
        match self {
            ServicePhase::Terminated => false,
            ServicePhase::Starting
            | ServicePhase::Running
            | ServicePhase::BackingOff
            | ServicePhase::Restarting
            | ServicePhase::Stopping => true,
        }
    }

    /// A stable `snake_case` label, fit for a metric label value.
    ///
    /// One of `"starting"`, `"running"`, `"backing_off"`, `"restarting"`,
    /// `"stopping"`, `"terminated"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::ServicePhase;
    ///
    /// assert_eq!(ServicePhase::Terminated.as_str(), "terminated");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ServicePhase::Starting => "starting",
            ServicePhase::Running => "running",
            ServicePhase::BackingOff => "backing_off",
            ServicePhase::Restarting => "restarting",
            ServicePhase::Stopping => "stopping",
            ServicePhase::Terminated => "terminated",
        }
    }
}

/// Human words: `"starting"`, `"running"`, `"backing off"`, `"restarting"`,
/// `"stopping"`, `"terminated"`.
impl fmt::Display for ServicePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = match self {
            ServicePhase::Starting => "starting",
            ServicePhase::Running => "running",
            ServicePhase::BackingOff => "backing off",
            ServicePhase::Restarting => "restarting",
            ServicePhase::Stopping => "stopping",
            ServicePhase::Terminated => "terminated",
        };
        f.write_str(words)
    }
}
