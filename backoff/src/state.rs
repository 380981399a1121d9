//! [`BackoffState`]: the restart state of one supervised service, driven by caller-supplied time.

use alloc::collections::VecDeque;
use core::time::Duration;

use crate::schedule::Schedule;
use crate::{BackoffConfig, InvalidBackoff};

/// What to do after a failure, as decided by [`BackoffState::next_backoff`].
///
/// # Examples
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::{BackoffAction, BackoffConfig, BackoffState, Jitter};
///
/// let config = BackoffConfig::default()
///     .with_jitter(Jitter::None)
///     .with_circuit_breaker(0, Duration::from_secs(60));
/// let mut state = BackoffState::new(config, 0)?;
/// match state.next_backoff(Duration::ZERO) {
///     BackoffAction::Retry(delay) => println!("restarting in {delay:?}"),
///     BackoffAction::CircuitOpen { failures, max_retries } => {
///         assert_eq!((failures, max_retries), (1, 0));
///     }
/// }
/// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum BackoffAction {
    /// Sleep for this long, then restart.
    Retry(Duration),
    /// Too many failures within the circuit breaker window: give up.
    CircuitOpen {
        /// The failures inside the window when the circuit opened:
        /// `max_retries + 1`.
        failures: u32,
        /// The configured number of retries allowed within the window.
        max_retries: u32,
    },
}

/// The restart state of one supervised service: which attempt it is at, and
/// whether it should give up.
///
/// Time is an input: every method that needs it takes `now`, a [`Duration`]
/// since an origin of the caller's choosing (for example
/// `tokio::time::Instant::now() - origin`). No clock is read, and time going
/// backwards is harmless. Randomness comes from the seed given to
/// [`new`](Self::new): the same config, seed and calls give the same actions.
///
/// The supervisor loop calls [`record_start`](Self::record_start) when a run
/// begins; when it ends, [`maybe_reset_on_cooldown`](Self::maybe_reset_on_cooldown)
/// and then, for a failure, [`next_backoff`](Self::next_backoff), and sleeps
/// for the returned delay or gives up. [`reset`](Self::reset) forgets everything,
/// for example after a clean exit.
///
/// # Delays
///
/// The `n`-th [`Retry`](BackoffAction::Retry) since the last reset (0-based)
/// carries the delay of attempt `n` of the config's [`Jitter`](crate::Jitter),
/// drawn afresh; without resets the sequence is the one of
/// [`BackoffConfig::iter`] with the same seed.
///
/// # Circuit breaker
///
/// With [`BackoffConfig::with_circuit_breaker`]`(max_retries, window)`:
///
/// 1. **Active time.** The window slides over *active time*: the caller's time
///    minus the sum of every delay this state handed out in a
///    [`Retry`](BackoffAction::Retry), made monotone. At each failure,
///    `active = max(previous active, now − total_delays)` (saturating at zero),
///    so the state's own backoff sleeps never count, and time going backwards
///    counts as no time passing.
/// 2. **Inside the window.** A failure at active time `t` is inside the window
///    at active time `a` if and only if `a − t < window`.
/// 3. **Opening.** A failure opens the circuit when the failures inside the
///    window, itself included, number more than `max_retries`: at most
///    `max_retries` retries happen within any window. The failure that opens it
///    gets [`CircuitOpen`](BackoffAction::CircuitOpen) with
///    `failures = max_retries + 1`, and so does every later failure, with no
///    change to the state, until [`reset`](Self::reset). With `max_retries = 0`
///    the first failure opens it.
/// 4. **No escape by backing off.** Because backoff sleeps do not advance active
///    time, a service that fails as soon as it starts trips after
///    `max_retries + 1` failures, whatever the delays and the cap. (A breaker
///    counting wall-clock time, like systemd's `StartLimitBurst` within
///    `StartLimitIntervalSec`, never trips once the delays exceed about
///    `window / max_retries`.)
/// 5. **Bounded memory.** Only the failures inside the window are kept, at most
///    `max_retries + 1` of them, however many failures happen.
///
/// Without a circuit breaker, every failure gets a
/// [`Retry`](BackoffAction::Retry).
///
/// # Examples
///
/// A service that crashes as soon as it starts, then once after a long run:
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::{BackoffAction, BackoffConfig, BackoffState, Jitter};
///
/// let config = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(60))
///     .with_jitter(Jitter::None)
///     .with_circuit_breaker(3, Duration::from_secs(600))
///     .with_cooldown(Duration::from_secs(600));
/// let mut state = BackoffState::new(config, 42)?;
/// let mut now = Duration::ZERO; // time since an origin of the caller's choosing
///
/// // Three instant crashes: 1 s, 2 s, 4 s.
/// for expected in [1, 2, 4] {
///     state.record_start(now);
///     assert!(!state.maybe_reset_on_cooldown(now));
///     match state.next_backoff(now) {
///         BackoffAction::Retry(delay) => {
///             assert_eq!(delay, Duration::from_secs(expected));
///             now += delay; // sleep
///         }
///         BackoffAction::CircuitOpen { .. } => unreachable!("3 retries are allowed"),
///     }
/// }
///
/// // A run of an hour: the crash that ends it backs off from the base again.
/// state.record_start(now);
/// now += Duration::from_secs(3600);
/// assert!(state.maybe_reset_on_cooldown(now));
/// assert_eq!(state.next_backoff(now), BackoffAction::Retry(Duration::from_secs(1)));
/// now += Duration::from_secs(1);
///
/// // The three instant crashes left the window during the long run: that crash
/// // was the first of a new window, two more get a retry, the fourth gives up.
/// for _ in 0..2 {
///     state.record_start(now);
///     let BackoffAction::Retry(delay) = state.next_backoff(now) else { unreachable!() };
///     now += delay;
/// }
/// assert_eq!(
///     state.next_backoff(now),
///     BackoffAction::CircuitOpen { failures: 4, max_retries: 3 }
/// );
/// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackoffState {
    config: BackoffConfig,
    schedule: Schedule,
    /// When the current (or last) run began, if any did.
    run_started: Option<Duration>,
    /// The sum of the delays handed out, saturating.
    total_delays: Duration,
    /// The active time of the last failure (monotone).
    active_now: Duration,
    /// The active times of the failures inside the window, oldest first; at most
    /// `max_retries + 1` of them.
    failures: VecDeque<Duration>,
    /// Whether the circuit breaker has opened since the last reset.
    open: bool,
}

impl BackoffState {
    /// A fresh state: attempt 0, circuit closed, no run started.
    ///
    /// # Errors
    ///
    /// The [`InvalidBackoff`] of [`BackoffConfig::validate`].
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, BackoffState, InvalidBackoff};
    ///
    /// let state = BackoffState::new(BackoffConfig::default(), 7)?;
    /// assert_eq!(state.attempt(), 0);
    ///
    /// let too_long = BackoffConfig::new(Duration::ZERO, Duration::MAX);
    /// assert_eq!(
    ///     BackoffState::new(too_long, 7).unwrap_err(),
    ///     InvalidBackoff::MaxTooLarge { max: Duration::MAX }
    /// );
    /// # Ok::<(), InvalidBackoff>(())
    /// ```
    pub fn new(config: BackoffConfig, seed: u64) -> Result<Self, InvalidBackoff> {
        config.validate()?;
        Ok(Self {
            schedule: Schedule::new(&config, seed),
            config,
            run_started: None,
            total_delays: Duration::ZERO,
            active_now: Duration::ZERO,
            failures: VecDeque::new(),
            open: false,
        })
    }

    /// The config, which is valid.
    pub const fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Records that a run began at `now`, for
    /// [`maybe_reset_on_cooldown`](Self::maybe_reset_on_cooldown).
    pub const fn record_start(&mut self, now: Duration) {
        self.run_started = Some(now);
    }

    /// Records a failure at `now` and decides what to do.
    ///
    /// If the failure opens the circuit breaker (or it is already open), returns
    /// [`CircuitOpen`](BackoffAction::CircuitOpen) and leaves the attempt
    /// unchanged; otherwise returns [`Retry`](BackoffAction::Retry) with the
    /// delay of the current [`attempt`](Self::attempt), and moves to the next
    /// one. See [the circuit breaker rule](Self#circuit-breaker).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffAction, BackoffConfig, BackoffState, Jitter};
    ///
    /// let config = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(60))
    ///     .with_jitter(Jitter::None)
    ///     .with_circuit_breaker(1, Duration::from_secs(10));
    /// let mut state = BackoffState::new(config, 0)?;
    /// assert_eq!(state.next_backoff(Duration::ZERO), BackoffAction::Retry(Duration::from_secs(1)));
    /// assert_eq!(state.attempt(), 1);
    /// // 1 s later, after the 1 s sleep: no active time has passed.
    /// assert_eq!(
    ///     state.next_backoff(Duration::from_secs(1)),
    ///     BackoffAction::CircuitOpen { failures: 2, max_retries: 1 }
    /// );
    /// assert_eq!(state.attempt(), 1);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    pub fn next_backoff(&mut self, now: Duration) -> BackoffAction {
        if let Some(breaker) = self.config.circuit_breaker() {
            if !self.open {
                self.record_failure(now, breaker.window());
            }
            let failures = self.failures_in_window();
            if failures > breaker.max_retries() {
                self.open = true;
                return BackoffAction::CircuitOpen {
                    failures,
                    max_retries: breaker.max_retries(),
                };
            }
        }
        let delay = self.schedule.next_delay();
        self.total_delays = self.total_delays.saturating_add(delay);
        BackoffAction::Retry(delay)
    }

    /// The number of [`Retry`](BackoffAction::Retry) delays handed out since the
    /// last reset (saturating at `u32::MAX`): the 0-based attempt of the next one.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, BackoffState};
    ///
    /// let mut state = BackoffState::new(BackoffConfig::default(), 0)?;
    /// let _ = state.next_backoff(Duration::ZERO);
    /// assert_eq!(state.attempt(), 1);
    /// state.reset();
    /// assert_eq!(state.attempt(), 0);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    #[must_use]
    pub const fn attempt(&self) -> u32 {
        self.schedule.attempt()
    }

    /// The failures the circuit breaker counts: those inside the window as of the
    /// last failure (at most `max_retries + 1`), and `0` without a circuit breaker.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, BackoffState};
    ///
    /// let config = BackoffConfig::default().with_circuit_breaker(5, Duration::from_secs(10));
    /// let mut state = BackoffState::new(config, 0)?;
    /// let _ = state.next_backoff(Duration::ZERO);
    /// assert_eq!(state.failures_in_window(), 1);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    #[must_use]
    pub fn failures_in_window(&self) -> u32 {
        u32::try_from(self.failures.len()).unwrap_or(u32::MAX)
    }

    /// Whether the circuit breaker is open: every failure gives up until
    /// [`reset`](Self::reset).
    #[must_use]
    pub const fn is_circuit_open(&self) -> bool {
        self.open
    }

    /// Forgets every failure: attempt 0, circuit closed and emptied.
    ///
    /// The generator goes on, so the delays after a reset are fresh draws. The
    /// start of the current run and the active-time clock are kept.
    pub fn reset(&mut self) {
        self.schedule.reset();
        self.failures.clear();
        self.open = false;
    }

    /// Starts backing off from the base again if the last run was long enough.
    ///
    /// Returns `true`, and resets the [`attempt`](Self::attempt) to 0 (and the
    /// previous delay of [`Jitter::Decorrelated`](crate::Jitter::Decorrelated)
    /// to the base), if and only if a run was recorded with
    /// [`record_start`](Self::record_start) and
    /// `now − start ≥ cooldown` (with `now − start` saturating at zero, so a
    /// `now` before the start is a run of zero length). Call it when a run ends,
    /// before [`next_backoff`](Self::next_backoff): a crash after a long run
    /// then backs off from the base again.
    ///
    /// It does not touch the circuit breaker, which forgets failures only as they
    /// leave its window (or on [`reset`](Self::reset)).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, BackoffState};
    ///
    /// let config = BackoffConfig::default().with_cooldown(Duration::from_secs(60));
    /// let mut state = BackoffState::new(config, 0)?;
    /// assert!(!state.maybe_reset_on_cooldown(Duration::from_secs(99)));
    /// state.record_start(Duration::from_secs(100));
    /// assert!(!state.maybe_reset_on_cooldown(Duration::from_secs(159)));
    /// assert!(state.maybe_reset_on_cooldown(Duration::from_secs(160)));
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    pub fn maybe_reset_on_cooldown(&mut self, now: Duration) -> bool {
        let Some(start) = self.run_started else {
            return false;
        };
        if now.saturating_sub(start) < self.config.cooldown() {
            return false;
        }
        self.schedule.reset();
        true
    }

    /// Adds a failure at `now` to the window, dropping those that left it.
    fn record_failure(&mut self, now: Duration, window: Duration) {
        self.active_now = self.active_now.max(now.saturating_sub(self.total_delays));
        while let Some(&oldest) = self.failures.front() {
            if self.active_now.saturating_sub(oldest) < window {
                break;
            }
            self.failures.pop_front();
        }
        self.failures.push_back(self.active_now);
    }
}
