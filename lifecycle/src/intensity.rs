//! [`RestartIntensity`] and [`IntensityWindow`]: how many restarts a group
//! of services may make within a period before it gives up, counted as
//! Erlang/OTP's `supervisor` counts them.
//!
//! # The rule
//!
//! A group is allowed `max_restarts` restarts within any `period`. Each
//! restart is [charged](IntensityWindow::charge) at the time it is decided,
//! before anything starts. The charges kept are those at most `period` old:
//! the bound is inclusive, so a restart exactly `period` ago still counts.
//! If, with the new one, more than `max_restarts` charges are kept, the
//! window trips ([`IntensityExceeded`]): `max_restarts` restarts are
//! tolerated and the next one trips, so `max_restarts = 0` trips on the
//! first restart.
//!
//! This is OTP's `add_restart/1` in `supervisor.erl`, with one departure on
//! purpose: times are exact [`Duration`]s, not whole seconds of
//! `erlang:monotonic_time(second)` (in OTP two restarts 1.9 s apart may fall
//! in the same second or in two).
//!
//! What is charged (a cycle of the whole group is one charge, a retry after
//! a failed start is another, a restart asked for by the host is none) is
//! the caller's decision; this module only counts.
//!
//! # Invariants
//!
//! 1. [`IntensityWindow::charge`] returns `Err` exactly when, counting the
//!    new charge, more than `max_restarts` charges lie within `period` of
//!    `now` (inclusive), over every charge made since the last
//!    [`reset`](IntensityWindow::reset), tripped ones included.
//! 2. The window keeps at most `max_restarts + 1` charges, however many are
//!    made: older ones can never decide a trip again.
//! 3. Nothing here panics or reads a clock. Time never goes back: a `now`
//!    earlier than the latest charge (a caller's clock that went backwards)
//!    is taken as that charge's time, so the charges stay in order.

use core::fmt;
use core::time::Duration;
use std::collections::VecDeque;

/// How many restarts a group may make within a period: OTP's
/// `intensity` and `period` supervisor flags.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use supervisor_lifecycle::RestartIntensity;
///
/// let intensity = RestartIntensity::new(3, Duration::from_secs(10));
/// assert_eq!(intensity.max_restarts(), 3);
/// assert_eq!(intensity.period(), Duration::from_secs(10));
/// assert_eq!(intensity.to_string(), "3 restarts in 10s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RestartIntensity {
    max_restarts: u32,
    period: Duration,
}

impl RestartIntensity {
    /// OTP's default: 1 restart in 5 seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::RestartIntensity;
    ///
    /// assert_eq!(RestartIntensity::OTP_DEFAULT, RestartIntensity::new(1, Duration::from_secs(5)));
    /// ```
    pub const OTP_DEFAULT: RestartIntensity = RestartIntensity::new(1, Duration::from_secs(5));

    /// `max_restarts` tolerated within any `period`; the next one trips.
    /// Every value is valid: `max_restarts = 0` trips on the first restart,
    /// and a zero `period` counts only the restarts made at the same instant.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::RestartIntensity;
    ///
    /// let never = RestartIntensity::new(0, Duration::from_secs(1));
    /// assert_eq!(never.max_restarts(), 0);
    /// ```
    #[must_use]
    pub const fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
        }
    }

    /// How many restarts are tolerated within [`period`](Self::period).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::RestartIntensity;
    ///
    /// assert_eq!(RestartIntensity::OTP_DEFAULT.max_restarts(), 1);
    /// ```
    #[must_use]
    pub const fn max_restarts(self) -> u32 {
        self.max_restarts
    }

    /// The sliding window's length.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::RestartIntensity;
    ///
    /// assert_eq!(RestartIntensity::OTP_DEFAULT.period(), Duration::from_secs(5));
    /// ```
    #[must_use]
    pub const fn period(self) -> Duration {
        self.period
    }
}

impl fmt::Display for RestartIntensity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = restarts_word(self.max_restarts);
        write!(f, "{} {unit} in {:?}", self.max_restarts, self.period)
    }
}

/// The sliding window of one group's restarts: charge each restart before
/// it is made; an `Err` means the group must give up instead.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use supervisor_lifecycle::{IntensityWindow, RestartIntensity};
///
/// let secs = Duration::from_secs;
/// let mut window = IntensityWindow::new(RestartIntensity::new(2, secs(10)));
/// assert!(window.charge(secs(0)).is_ok());
/// assert!(window.charge(secs(4)).is_ok());
/// // A third restart within 10 s of the first trips.
/// let tripped = window.charge(secs(10)).unwrap_err();
/// assert_eq!(tripped.restarts, 3);
/// // Later, the first two have left the window.
/// assert_eq!(window.restarts_in_window(secs(15)), 1);
/// assert!(window.charge(secs(21)).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct IntensityWindow {
    intensity: RestartIntensity,
    /// The latest charges, oldest first; at most `max_restarts + 1`.
    charges: VecDeque<Duration>,
}

impl IntensityWindow {
    /// An empty window for `intensity`. Allocates nothing until the first
    /// charge.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{IntensityWindow, RestartIntensity};
    ///
    /// let window = IntensityWindow::new(RestartIntensity::OTP_DEFAULT);
    /// assert_eq!(window.restarts_in_window(Duration::ZERO), 0);
    /// ```
    #[must_use]
    pub fn new(intensity: RestartIntensity) -> Self {
        Self {
            intensity,
            charges: VecDeque::new(),
        }
    }

    /// Charges one restart decided at `now`. `Err` when it trips: counting
    /// this one, more than `max_restarts` restarts lie within `period` of
    /// `now` (a restart exactly `period` ago included). The charge is kept
    /// either way.
    ///
    /// # Errors
    ///
    /// [`IntensityExceeded`] when the restart must not be made.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{IntensityWindow, RestartIntensity};
    ///
    /// let secs = Duration::from_secs;
    /// let mut window = IntensityWindow::new(RestartIntensity::new(1, secs(5)));
    /// assert!(window.charge(secs(0)).is_ok());
    /// // Exactly 5 s later the first restart still counts: trips.
    /// assert!(window.charge(secs(5)).is_err());
    ///
    /// let mut zero = IntensityWindow::new(RestartIntensity::new(0, secs(5)));
    /// assert!(zero.charge(secs(0)).is_err()); // 0 trips on the first.
    /// ```
    pub fn charge(&mut self, now: Duration) -> Result<(), IntensityExceeded> {
        // Invariant 3.
        let now = self.charges.back().map_or(now, |&latest| now.max(latest));
        self.expire(now);
        // Invariant 2: only the latest `max_restarts + 1` can decide a trip.
        let keep = usize::try_from(self.intensity.max_restarts)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        if self.charges.len() >= keep {
            self.charges.pop_front();
        }
        self.charges.push_back(now);
        let restarts = self.restarts();
        if restarts > self.intensity.max_restarts {
            Err(IntensityExceeded {
                intensity: self.intensity,
                restarts,
                at: now,
            })
        } else {
            Ok(())
        }
    }

    /// How many charges lie within `period` of `now` (inclusive), up to
    /// `max_restarts + 1`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{IntensityWindow, RestartIntensity};
    ///
    /// let secs = Duration::from_secs;
    /// let mut window = IntensityWindow::new(RestartIntensity::new(5, secs(5)));
    /// window.charge(secs(1)).unwrap();
    /// window.charge(secs(2)).unwrap();
    /// assert_eq!(window.restarts_in_window(secs(6)), 2);
    /// assert_eq!(window.restarts_in_window(secs(7)), 1); // Only the one at 2 s.
    /// assert_eq!(window.restarts_in_window(secs(8)), 0);
    /// ```
    #[must_use]
    pub fn restarts_in_window(&self, now: Duration) -> u32 {
        let from = now.saturating_sub(self.intensity.period);
        let within = self.charges.iter().filter(|&&at| at >= from).count();
        u32::try_from(within).unwrap_or(u32::MAX)
    }

    /// The intensity this window enforces.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_lifecycle::{IntensityWindow, RestartIntensity};
    ///
    /// let window = IntensityWindow::new(RestartIntensity::OTP_DEFAULT);
    /// assert_eq!(window.intensity(), RestartIntensity::OTP_DEFAULT);
    /// ```
    #[must_use]
    pub fn intensity(&self) -> RestartIntensity {
        self.intensity
    }

    /// Forgets every charge (a group started afresh).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use supervisor_lifecycle::{IntensityWindow, RestartIntensity};
    ///
    /// let mut window = IntensityWindow::new(RestartIntensity::new(0, Duration::from_secs(5)));
    /// assert!(window.charge(Duration::ZERO).is_err());
    /// window.reset();
    /// assert_eq!(window.restarts_in_window(Duration::ZERO), 0);
    /// ```
    pub fn reset(&mut self) {
        self.charges.clear();
    }

    /// Drops the charges more than `period` before `now`, oldest first.
    fn expire(&mut self, now: Duration) {
        let from = now.saturating_sub(self.intensity.period);
        while self.charges.front().is_some_and(|&at| at < from) {
            self.charges.pop_front();
        }
    }

    /// The charges kept, all within the period after [`expire`](Self::expire).
    fn restarts(&self) -> u32 {
        u32::try_from(self.charges.len()).unwrap_or(u32::MAX)
    }
}

/// A group made more restarts within its period than its
/// [`RestartIntensity`] tolerates: the restart must not be made, and the
/// group gives up.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use supervisor_lifecycle::{IntensityWindow, RestartIntensity};
///
/// let mut window = IntensityWindow::new(RestartIntensity::new(0, Duration::from_secs(5)));
/// let tripped = window.charge(Duration::from_secs(7)).unwrap_err();
/// assert_eq!(tripped.at, Duration::from_secs(7));
/// assert_eq!(tripped.to_string(), "1 restart within 5s exceeds the restart intensity (0 restarts in 5s)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IntensityExceeded {
    /// The intensity that was exceeded.
    pub intensity: RestartIntensity,
    /// The restarts within the period, the refused one included.
    pub restarts: u32,
    /// When the refused restart was charged (never before an earlier
    /// charge: see the module's invariant 3).
    pub at: Duration,
}

impl fmt::Display for IntensityExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = restarts_word(self.restarts);
        write!(
            f,
            "{} {unit} within {:?} exceeds the restart intensity ({})",
            self.restarts, self.intensity.period, self.intensity
        )
    }
}

impl std::error::Error for IntensityExceeded {}

/// "restart" or "restarts", for `count`.
fn restarts_word(count: u32) -> &'static str {
    if count == 1 { "restart" } else { "restarts" }
}
