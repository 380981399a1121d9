//! [`BackoffConfig`], its [`Jitter`] and its [`CircuitBreaker`]: what a backoff does, validated.

use core::time::Duration;

use crate::math::{exponential_nanos, saturating_nanos};
use crate::{BackoffIter, InvalidBackoff, MAX_BREAKER_RETRIES, MAX_DELAY};

/// How a backoff grows, how it is randomised, when it gives up and when it forgets.
///
/// Built with [`new`](Self::new) (or [`Default`], or [`zero`](Self::zero)) and the
/// `with_*` methods, read with getters, checked by [`validate`](Self::validate).
/// Building never fails; a config is validated when it is used, by
/// [`iter`](Self::iter) and [`BackoffState::new`](crate::BackoffState::new), so a
/// state can never hold an invalid config.
///
/// # The exponential
///
/// For the attempt `n` (0-based: the first failure gets `n = 0`), the un-jittered
/// delay is `d(n) = min(max, base · multiplierⁿ)`, given by
/// [`delay_for_attempt`](Self::delay_for_attempt). It saturates at `max` for
/// every `n` up to `u32::MAX` and never overflows. A zero `base` makes every
/// delay zero, whatever `max`, the multiplier and the [`Jitter`].
///
/// # Defaults
///
/// | setting | default | gRPC connection backoff | Kubernetes `CrashLoopBackOff` |
/// |---|---|---|---|
/// | base | 1 s | 1 s | 10 s |
/// | multiplier | 2.0 | 1.6 | 2.0 |
/// | max | 60 s | 120 s | 5 min |
/// | jitter | [`Jitter::Equal`] (delay in `[d/2, d]`) | ±20 % | none |
/// | give up | after 10 retries within 10 min of running | never | never |
/// | forget the failures | after a run of 10 min | on success | after 10 min of running |
///
/// * **base 1 s**: most crashes of a supervised service are transient (a
///   dependency restarting, a connection reset); like gRPC, the first retry comes
///   quickly. Kubernetes' 10 s also covers image pulls and node pressure, which a
///   process supervisor does not have.
/// * **multiplier 2**: as Kubernetes; reaches the cap in six doublings, so a
///   crash loop quiets down within a couple of minutes (gRPC's 1.6 is tuned for
///   many clients reconnecting to one server).
/// * **max 60 s**: the longest a recovered dependency waits for the service to
///   come back. Half of gRPC's 120 s and a fifth of Kubernetes' 5 min: a
///   supervisor is usually watched by something that prefers a fast recovery.
/// * **[`Jitter::Equal`]**: like gRPC's ±20 % it spreads services that failed
///   together, so they do not restart in lockstep; unlike it, it never exceeds
///   the cap and never waits less than half the delay.
/// * **circuit breaker: 10 retries in a 10 min window**: neither gRPC nor
///   Kubernetes gives up, but a supervisor should report a service that cannot
///   stay up instead of retrying forever. The window counts running time only
///   (see [`BackoffState`](crate::BackoffState)), so an instantly failing service
///   trips after 11 failures whatever the cap.
/// * **cooldown 10 min**: as Kubernetes, a run of 10 minutes proves the service
///   healthy again, and its next crash backs off from `base`.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::{BackoffConfig, Jitter};
///
/// let config = BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(30))
///     .with_multiplier(1.5)
///     .with_jitter(Jitter::Full)
///     .with_circuit_breaker(5, Duration::from_secs(60))
///     .with_cooldown(Duration::from_secs(300));
/// assert_eq!(config.validate(), Ok(()));
/// assert_eq!(config.delay_for_attempt(1), Duration::from_millis(150));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[must_use]
pub struct BackoffConfig {
    base: Duration,
    max: Duration,
    multiplier: f64,
    jitter: Jitter,
    circuit_breaker: Option<CircuitBreaker>,
    cooldown: Duration,
}

impl Default for BackoffConfig {
    /// Base 1 s, max 60 s, multiplier 2, [`Jitter::Equal`], a circuit breaker of
    /// 10 retries in a 10 min window, and a cooldown of 10 min: see
    /// [the table](BackoffConfig#defaults) for why.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, Jitter};
    ///
    /// let config = BackoffConfig::default();
    /// assert_eq!(config.base(), Duration::from_secs(1));
    /// assert_eq!(config.max(), Duration::from_secs(60));
    /// assert_eq!(config.multiplier(), 2.0);
    /// assert_eq!(config.jitter(), Jitter::Equal);
    /// let breaker = config.circuit_breaker().unwrap();
    /// assert_eq!(breaker.max_retries(), 10);
    /// assert_eq!(breaker.window(), Duration::from_secs(600));
    /// assert_eq!(config.cooldown(), Duration::from_secs(600));
    /// ```
    fn default() -> Self {
        Self::new(Self::DEFAULT_BASE, Self::DEFAULT_MAX)
    }
}

impl BackoffConfig {
    /// The default base delay: 1 s.
    pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
    /// The default max delay: 60 s.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(60);
    /// The default multiplier: 2.
    pub const DEFAULT_MULTIPLIER: f64 = 2.0;
    /// The default number of retries the circuit breaker allows in its window: 10.
    pub const DEFAULT_MAX_RETRIES: u32 = 10;
    /// The default circuit breaker window: 10 min (of running time).
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
    /// The default cooldown: 10 min.
    pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(600);

    /// A config growing from `base` to `max`, with the other settings at their
    /// [defaults](BackoffConfig#defaults).
    ///
    /// Never fails: the values are checked by [`validate`](Self::validate) when
    /// the config is used.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let config = BackoffConfig::new(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(config.base(), Duration::from_millis(10));
    /// assert_eq!(config.max(), Duration::from_secs(1));
    /// assert_eq!(config.multiplier(), BackoffConfig::DEFAULT_MULTIPLIER);
    /// ```
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            multiplier: Self::DEFAULT_MULTIPLIER,
            jitter: Jitter::Equal,
            circuit_breaker: Some(CircuitBreaker {
                max_retries: Self::DEFAULT_MAX_RETRIES,
                window: Self::DEFAULT_WINDOW,
            }),
            cooldown: Self::DEFAULT_COOLDOWN,
        }
    }

    /// A config with no delay at all: base and max are zero, so every
    /// [`Retry`](crate::BackoffAction::Retry) is immediate, whatever the jitter.
    ///
    /// Useful to restart immediately in tests and benchmarks. The circuit breaker
    /// and the cooldown keep their defaults, so a crash loop still trips the
    /// breaker (after 11 failures); chain
    /// [`without_circuit_breaker`](Self::without_circuit_breaker) to retry forever.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let config = BackoffConfig::zero().without_circuit_breaker();
    /// let delays: Vec<Duration> = config.iter(0)?.take(3).collect();
    /// assert_eq!(delays, [Duration::ZERO; 3]);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    pub const fn zero() -> Self {
        Self::new(Duration::ZERO, Duration::ZERO)
    }

    /// Sets the factor by which the delay grows after each failure.
    ///
    /// Must be finite and at least `1.0`; `1.0` gives a constant delay of `base`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let config = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(60))
    ///     .with_multiplier(3.0);
    /// assert_eq!(config.delay_for_attempt(2), Duration::from_secs(9));
    /// ```
    pub const fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets how the delays are randomised.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_backoff::{BackoffConfig, Jitter};
    ///
    /// let config = BackoffConfig::default().with_jitter(Jitter::None);
    /// assert_eq!(config.jitter(), Jitter::None);
    /// ```
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Gives up once more than `max_retries` failures happen within `window` of
    /// running time (backoff sleeps excluded); see
    /// [`BackoffState`](crate::BackoffState#circuit-breaker).
    ///
    /// `max_retries` may be `0` (the first failure opens the circuit) and at
    /// most [`MAX_BREAKER_RETRIES`]; `window` must not be zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let config = BackoffConfig::default().with_circuit_breaker(3, Duration::from_secs(30));
    /// let breaker = config.circuit_breaker().unwrap();
    /// assert_eq!(breaker.max_retries(), 3);
    /// assert_eq!(breaker.window(), Duration::from_secs(30));
    /// ```
    pub const fn with_circuit_breaker(mut self, max_retries: u32, window: Duration) -> Self {
        self.circuit_breaker = Some(CircuitBreaker {
            max_retries,
            window,
        });
        self
    }

    /// Never gives up: every failure gets a [`Retry`](crate::BackoffAction::Retry).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// assert_eq!(BackoffConfig::default().without_circuit_breaker().circuit_breaker(), None);
    /// ```
    pub const fn without_circuit_breaker(mut self) -> Self {
        self.circuit_breaker = None;
        self
    }

    /// Sets how long a run must last for its crash to back off from `base` again
    /// (see [`BackoffState::maybe_reset_on_cooldown`](crate::BackoffState::maybe_reset_on_cooldown)).
    ///
    /// Any duration is valid. Zero means every run counts as healthy, so the delay
    /// never grows; [`Duration::MAX`] means never.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let config = BackoffConfig::default().with_cooldown(Duration::from_secs(30));
    /// assert_eq!(config.cooldown(), Duration::from_secs(30));
    /// ```
    pub const fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The delay after the first failure.
    #[must_use]
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The cap of every delay.
    #[must_use]
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The factor by which the delay grows after each failure.
    #[must_use]
    pub const fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// How the delays are randomised.
    #[must_use]
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// When to give up, if ever.
    #[must_use]
    pub const fn circuit_breaker(&self) -> Option<CircuitBreaker> {
        self.circuit_breaker
    }

    /// How long a run must last for the next crash to back off from `base` again.
    #[must_use]
    pub const fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// The first broken rule, in this order:
    ///
    /// 1. [`InvalidBackoff::MaxTooLarge`] if `max` > [`MAX_DELAY`];
    /// 2. [`InvalidBackoff::BaseExceedsMax`] if `base` > `max`;
    /// 3. [`InvalidBackoff::MultiplierNotFinite`] if the multiplier is NaN or ±∞;
    /// 4. [`InvalidBackoff::MultiplierBelowOne`] if it is below `1.0`;
    /// 5. [`InvalidBackoff::ZeroWindow`] if the circuit breaker window is zero;
    /// 6. [`InvalidBackoff::MaxRetriesTooLarge`] if the circuit breaker allows
    ///    more than [`MAX_BREAKER_RETRIES`] retries.
    ///
    /// A zero `base` (with any valid `max`) is valid: every delay is then zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, InvalidBackoff};
    ///
    /// assert_eq!(BackoffConfig::default().validate(), Ok(()));
    /// assert_eq!(BackoffConfig::zero().validate(), Ok(()));
    /// assert_eq!(
    ///     BackoffConfig::default().with_multiplier(f64::NAN).validate(),
    ///     Err(InvalidBackoff::MultiplierNotFinite)
    /// );
    /// assert_eq!(
    ///     BackoffConfig::default().with_circuit_breaker(3, Duration::ZERO).validate(),
    ///     Err(InvalidBackoff::ZeroWindow)
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), InvalidBackoff> {
        if self.max > MAX_DELAY {
            return Err(InvalidBackoff::MaxTooLarge { max: self.max });
        }
        if self.base > self.max {
            return Err(InvalidBackoff::BaseExceedsMax {
                base: self.base,
                max: self.max,
            });
        }
        if !self.multiplier.is_finite() {
            return Err(InvalidBackoff::MultiplierNotFinite);
        }
        if self.multiplier < 1.0 {
            return Err(InvalidBackoff::MultiplierBelowOne);
        }
        if let Some(breaker) = self.circuit_breaker {
            if breaker.window.is_zero() {
                return Err(InvalidBackoff::ZeroWindow);
            }
            if breaker.max_retries > MAX_BREAKER_RETRIES {
                return Err(InvalidBackoff::MaxRetriesTooLarge {
                    max_retries: breaker.max_retries,
                });
            }
        }
        Ok(())
    }

    /// The un-jittered delay of `attempt`: `min(max, base · multiplierᵃᵗᵗᵉᵐᵖᵗ)`.
    ///
    /// `attempt` is 0-based: the first failure gets `base`. Exact to within a
    /// nanosecond (the power is computed with about 106 bits of precision, not
    /// `f64`'s 53), non-decreasing in `attempt`, saturating at `max` for every
    /// `attempt` up to `u32::MAX`, and zero when `base` is zero. It is what
    /// [`Jitter::None`] hands out and what [`Jitter::Equal`] and [`Jitter::Full`]
    /// randomise.
    ///
    /// Never panics, even on an invalid config (whose result is then unspecified
    /// but at most `max`).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let config = BackoffConfig::default();
    /// assert_eq!(config.delay_for_attempt(0), Duration::from_secs(1));
    /// assert_eq!(config.delay_for_attempt(5), Duration::from_secs(32));
    /// assert_eq!(config.delay_for_attempt(6), Duration::from_secs(60));
    /// assert_eq!(config.delay_for_attempt(u32::MAX), Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn delay_for_attempt(&self, attempt: u32) -> Duration {
        Duration::from_nanos(exponential_nanos(
            saturating_nanos(self.base),
            saturating_nanos(self.max),
            self.multiplier,
            attempt,
        ))
    }

    /// The delays of a plain retry loop: `for delay in config.iter(seed)? { … }`.
    ///
    /// The iterator is infinite unless bounded by
    /// [`BackoffIter::with_max_attempts`]. It has no notion of time, so it ignores
    /// the circuit breaker and the cooldown: use
    /// [`BackoffState`](crate::BackoffState) for those. Its delays are the ones a
    /// [`BackoffState`](crate::BackoffState) with the same config and seed hands
    /// out while it is not reset.
    ///
    /// # Errors
    ///
    /// The [`InvalidBackoff`] of [`validate`](Self::validate).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, Jitter};
    ///
    /// let config = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(5))
    ///     .with_jitter(Jitter::None);
    /// let delays: Vec<u64> = config.iter(0)?.take(5).map(|d| d.as_secs()).collect();
    /// assert_eq!(delays, [1, 2, 4, 5, 5]);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    pub fn iter(&self, seed: u64) -> Result<BackoffIter, InvalidBackoff> {
        self.validate()?;
        Ok(BackoffIter::new(self, seed))
    }
}

/// How a delay is randomised, named after AWS's "Exponential Backoff And Jitter".
///
/// `d` is the un-jittered delay `min(max, base · multiplierⁿ)` of
/// [`BackoffConfig::delay_for_attempt`]. Every kind stays within `[0, max]`, and
/// within `[base, max]` except [`Full`](Self::Full). Each delay is a fresh draw
/// from the seeded [`SplitMix64`](crate::SplitMix64), uniform over whole
/// nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: the delay is `d`, non-decreasing from one attempt to the
    /// next.
    ///
    /// Services that fail together restart together; prefer it in tests.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, Jitter};
    ///
    /// let config = BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(1))
    ///     .with_jitter(Jitter::None);
    /// let millis: Vec<u128> = config.iter(7)?.take(6).map(|d| d.as_millis()).collect();
    /// assert_eq!(millis, [100, 200, 400, 800, 1000, 1000]);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    None,
    /// The default: uniform in `[⌈d/2⌉, d]`.
    ///
    /// Never above the cap, never below half the delay, and still random once
    /// the cap is reached, so services that failed together drift apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, Jitter};
    ///
    /// let config = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(60))
    ///     .with_jitter(Jitter::Equal);
    /// for (attempt, delay) in (0..).zip(config.iter(7)?.take(20)) {
    ///     let d = config.delay_for_attempt(attempt);
    ///     assert!(d / 2 <= delay && delay <= d);
    /// }
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    #[default]
    Equal,
    /// Uniform in `[1 ns, d]` (zero only when `d` is zero).
    ///
    /// The most spread out, so the least contention between many clients, but a
    /// delay can be arbitrarily short: opt-in.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, Jitter};
    ///
    /// let config = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(60))
    ///     .with_jitter(Jitter::Full);
    /// for (attempt, delay) in (0..).zip(config.iter(7)?.take(20)) {
    ///     assert!(Duration::from_nanos(1) <= delay);
    ///     assert!(delay <= config.delay_for_attempt(attempt));
    /// }
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    Full,
    /// Uniform in `[base, min(max, 3 · previous)]`, where `previous` is the last
    /// delay handed out (`base` before the first one and after a reset).
    ///
    /// AWS's "decorrelated jitter", fixed so that it does not collapse onto the
    /// cap: the draw is clamped to the range, not the result to the cap. It
    /// ignores the multiplier, and grows by up to 3× per attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    ///
    /// use supervisor_backoff::{BackoffConfig, Jitter};
    ///
    /// let base = Duration::from_secs(1);
    /// let max = Duration::from_secs(60);
    /// let config = BackoffConfig::new(base, max).with_jitter(Jitter::Decorrelated);
    /// let mut previous = base;
    /// for delay in config.iter(7)?.take(20) {
    ///     assert!(base <= delay && delay <= max.min(previous * 3));
    ///     previous = delay;
    /// }
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    Decorrelated,
}

/// When a [`BackoffState`](crate::BackoffState) gives up: more than
/// [`max_retries`](Self::max_retries) failures within
/// [`window`](Self::window) of running time.
///
/// Set with [`BackoffConfig::with_circuit_breaker`]; see
/// [`BackoffState`](crate::BackoffState#circuit-breaker) for the exact rule.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::BackoffConfig;
///
/// let breaker = BackoffConfig::default().circuit_breaker().unwrap();
/// assert_eq!(breaker.max_retries(), 10);
/// assert_eq!(breaker.window(), Duration::from_secs(600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct CircuitBreaker {
    max_retries: u32,
    window: Duration,
}

impl CircuitBreaker {
    /// How many retries are allowed within any window; one more failure opens
    /// the circuit.
    #[must_use]
    pub const fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// How long a failure counts, in running time (backoff sleeps excluded).
    #[must_use]
    pub const fn window(&self) -> Duration {
        self.window
    }
}
