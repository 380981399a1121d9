//! The delay sequence shared by [`BackoffIter`] and [`BackoffState`](crate::BackoffState).

use core::iter::FusedIterator;
use core::time::Duration;

use crate::math::{exponential_nanos, jittered_nanos, saturating_nanos};
use crate::{BackoffConfig, Jitter, SplitMix64};

/// The delays of a validated config: the attempt counter, the generator and the
/// previous delay (for [`Jitter::Decorrelated`]).
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    base: u64,
    max: u64,
    multiplier: f64,
    jitter: Jitter,
    rng: SplitMix64,
    attempt: u32,
    previous: u64,
    /// Whether the exponential has reached `max`: it never decreases, so
    /// every later attempt until a reset is `max` too, without computing it.
    saturated: bool,
}

impl Schedule {
    pub(crate) fn new(config: &BackoffConfig, seed: u64) -> Self {
        let base = saturating_nanos(config.base());
        Self {
            base,
            max: saturating_nanos(config.max()),
            multiplier: config.multiplier(),
            jitter: config.jitter(),
            rng: SplitMix64::new(seed),
            attempt: 0,
            previous: base,
            saturated: false,
        }
    }

    /// The number of delays handed out since the start or the last reset.
    pub(crate) const fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay of the current attempt; moves to the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exponential = self.exponential();
        let delay = jittered_nanos(
            self.jitter,
            self.base,
            self.max,
            exponential,
            self.previous,
            &mut self.rng,
        );
        self.previous = delay;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_nanos(delay)
    }

    /// Back to the first attempt; the generator goes on (draws stay fresh).
    pub(crate) const fn reset(&mut self) {
        self.attempt = 0;
        self.previous = self.base;
        self.saturated = false;
    }

    /// `min(max, base · multiplier^attempt)` in nanoseconds, the un-jittered
    /// delay of the current attempt. Two shortcuts give the same value as
    /// [`exponential_nanos`]: once saturated it stays `max`, and the default
    /// multiplier of 2 is an exact shift.
    fn exponential(&mut self) -> u64 {
        if self.saturated {
            return self.max;
        }
        #[expect(
            clippy::float_cmp,
            reason = "2.0 is exact; any other value takes the general path"
        )]
        let doubling = self.multiplier == 2.0;
        let exponential = if self.base == 0 {
            0
        } else if doubling {
            // 2^attempt, then base · 2^attempt; either overflowing means
            // far past any valid `max`.
            match 1_u64
                .checked_shl(self.attempt)
                .and_then(|factor| self.base.checked_mul(factor))
            {
                Some(product) => product.min(self.max),
                None => self.max,
            }
        } else {
            exponential_nanos(self.base, self.max, self.multiplier, self.attempt)
        };
        self.saturated = exponential >= self.max;
        exponential
    }
}

/// The delays of a [`BackoffConfig`] as an [`Iterator`], for plain retry loops.
///
/// Made by [`BackoffConfig::iter`]. Infinite unless bounded with
/// [`with_max_attempts`](Self::with_max_attempts); after `u32::MAX` delays it
/// keeps handing out delays of the last attempt. It ignores the circuit breaker
/// and the cooldown, which need time: use [`BackoffState`](crate::BackoffState)
/// for those.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::BackoffConfig;
///
/// fn connect(tries: &mut u32) -> Result<(), &'static str> {
///     *tries += 1;
///     if *tries < 3 { Err("refused") } else { Ok(()) }
/// }
///
/// let config = BackoffConfig::new(Duration::from_millis(10), Duration::from_secs(1));
/// let mut tries = 0;
/// let mut slept = Duration::ZERO;
/// let mut delays = config.iter(42)?.with_max_attempts(5);
/// let result = loop {
///     match connect(&mut tries) {
///         Ok(()) => break Ok(()),
///         Err(error) => match delays.next() {
///             Some(delay) => slept += delay, // sleep(delay).await in real code
///             None => break Err(error),
///         },
///     }
/// };
/// assert_eq!(result, Ok(()));
/// assert_eq!(tries, 3);
/// assert!(slept <= Duration::from_millis(10 + 20));
/// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct BackoffIter {
    schedule: Schedule,
    max_attempts: Option<u32>,
}

impl BackoffIter {
    pub(crate) fn new(config: &BackoffConfig, seed: u64) -> Self {
        Self {
            schedule: Schedule::new(config, seed),
            max_attempts: None,
        }
    }

    /// Stops after `max_attempts` delays in total (counting those already
    /// yielded).
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let delays = BackoffConfig::default().iter(1)?.with_max_attempts(3);
    /// assert_eq!(delays.size_hint(), (3, Some(3)));
    /// assert_eq!(delays.count(), 3);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    pub const fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// How many delays this iterator has yielded (saturating at `u32::MAX`); the
    /// 0-based attempt of the next one.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_backoff::BackoffConfig;
    ///
    /// let mut delays = BackoffConfig::default().iter(1)?;
    /// assert_eq!(delays.attempt(), 0);
    /// let _ = delays.next();
    /// assert_eq!(delays.attempt(), 1);
    /// # Ok::<(), supervisor_backoff::InvalidBackoff>(())
    /// ```
    #[must_use]
    pub const fn attempt(&self) -> u32 {
        self.schedule.attempt()
    }

    fn remaining(&self) -> Option<u32> {
        self.max_attempts
            .map(|max_attempts| max_attempts.saturating_sub(self.schedule.attempt()))
    }
}

impl Iterator for BackoffIter {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        match self.remaining() {
            Some(0) => None,
            _ => Some(self.schedule.next_delay()),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.remaining() {
            Some(remaining) => {
                let remaining = usize::try_from(remaining).unwrap_or(usize::MAX);
                (remaining, Some(remaining))
            }
            None => (usize::MAX, None),
        }
    }
}

impl FusedIterator for BackoffIter {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_DELAY;

    /// The doubling shortcut on its own, at attempts a sequence never reaches
    /// before it saturates: an overflowing product is `max`, never wrapped.
    #[test]
    fn doubling_saturates_instead_of_wrapping() {
        let base = Duration::from_nanos(1_099_511_627_776); // 2^40 ns
        let config = BackoffConfig::new(base, MAX_DELAY).with_jitter(Jitter::None);
        let max = saturating_nanos(MAX_DELAY);
        for (attempt, expected) in [
            (0, 1_099_511_627_776),
            (3, 8_796_093_022_208),
            (22, max), // 2^62 > MAX_DELAY: capped
            (24, max), // 2^64: the product overflows
            (30, max), // 2^70: the product overflows
            (64, max), // 2^64 itself overflows
            (u32::MAX, max),
        ] {
            let mut schedule = Schedule::new(&config, 0);
            schedule.attempt = attempt;
            assert_eq!(schedule.exponential(), expected, "attempt {attempt}");
        }
    }
}
