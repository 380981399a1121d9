//! The reference model of the circuit breaker, written from `BackoffState`'s
//! documentation rather than from its code.

use std::collections::VecDeque;
use std::time::Duration;

/// The circuit breaker as documented: failures are counted in *active time*
/// (time minus every delay handed out, made monotone, so backoff sleeps do
/// not count and a clock going backwards counts as no time), and more than
/// `max_retries` failures inside the window open the circuit.
///
/// The model keeps every failure still inside the window in a plain list and
/// knows nothing of what opening does: its users decide (the `backoff` model
/// answers `CircuitOpen` from then on, the chaos tests expect a termination).
/// Times are [`Duration`]s since any fixed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerModel {
    max_retries: u32,
    window: Duration,
    total_delays: Duration,
    active: Duration,
    failures: VecDeque<Duration>,
}

impl BreakerModel {
    /// A closed breaker allowing `max_retries` failures inside `window` of
    /// active time.
    #[must_use]
    pub fn new(max_retries: u32, window: Duration) -> Self {
        Self {
            max_retries,
            window,
            total_delays: Duration::ZERO,
            active: Duration::ZERO,
            failures: VecDeque::new(),
        }
    }

    /// The number of failures allowed inside the window.
    #[must_use]
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// Records a failure at `now`; whether the failures inside the window,
    /// this one included, are now more than `max_retries`.
    pub fn fail(&mut self, now: Duration) -> bool {
        self.active = self.active.max(now.saturating_sub(self.total_delays));
        let (active, window) = (self.active, self.window);
        self.failures.retain(|&failure| active - failure < window);
        self.failures.push_back(active);
        self.failures_in_window() > self.max_retries
    }

    /// The failures inside the window as of the last failure.
    #[must_use]
    pub fn failures_in_window(&self) -> u32 {
        u32::try_from(self.failures.len()).expect("fewer than 2³² failures")
    }

    /// A delay was handed out: it is not active time.
    pub fn add_delay(&mut self, delay: Duration) {
        self.total_delays = self.total_delays.saturating_add(delay);
    }

    /// Forgets every failure (a reset, or a clean exit); active time goes on.
    pub fn clear(&mut self) {
        self.failures.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn more_than_max_retries_inside_the_window_open() {
        let mut breaker = BreakerModel::new(2, 10 * SEC);
        assert!(!breaker.fail(Duration::ZERO));
        assert!(!breaker.fail(SEC));
        assert!(breaker.fail(2 * SEC));
        assert_eq!(breaker.failures_in_window(), 3);
    }

    #[test]
    fn delays_and_going_backwards_are_not_active_time() {
        let mut breaker = BreakerModel::new(1, 10 * SEC);
        assert!(!breaker.fail(Duration::ZERO));
        breaker.add_delay(4 * SEC);
        // 13 s after the start, 4 s of it asleep: active 9 s, still inside.
        assert!(breaker.fail(13 * SEC));
        breaker.clear();
        assert!(!breaker.fail(SEC));
        // Back at 1 s, active time stays at 9 s: the failure at 9 s is inside.
        assert_eq!(breaker.failures_in_window(), 1);
        assert!(breaker.fail(14 * SEC));
    }
}
