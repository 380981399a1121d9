//! The un-jittered exponential `d(n) = min(max, base · multiplierⁿ)` and `Jitter::None`.

use std::time::Duration;

use proptest::prelude::*;
use supervisor_backoff::{BackoffConfig, Jitter, MAX_DELAY};

use crate::support::{
    any_duration, assert_close_to_model, attempt, base_and_max, multiplier, seed, valid_config,
};

fn exponential(base: Duration, max: Duration, multiplier: f64) -> BackoffConfig {
    BackoffConfig::new(base, max)
        .with_multiplier(multiplier)
        .with_jitter(Jitter::None)
}

#[test]
fn doubling_is_exact() {
    let config = exponential(Duration::from_nanos(3), MAX_DELAY, 2.0);
    for attempt in 0..=40 {
        assert_eq!(
            config.delay_for_attempt(attempt),
            Duration::from_nanos(3 << attempt)
        );
    }
    // 3 · 2⁶⁰ ns is below MAX_DELAY (about 4.29 · 10¹⁸ ns), 3 · 2⁶¹ ns above.
    assert_eq!(config.delay_for_attempt(60), Duration::from_nanos(3 << 60));
    assert_eq!(config.delay_for_attempt(61), MAX_DELAY);
    assert_eq!(config.delay_for_attempt(u32::MAX), MAX_DELAY);
}

#[test]
fn a_multiplier_of_one_is_constant() {
    let base = Duration::new(12_345, 678_901_234);
    let config = exponential(base, MAX_DELAY, 1.0);
    for attempt in [0, 1, 2, 1_000, 1 << 31, u32::MAX] {
        assert_eq!(config.delay_for_attempt(attempt), base);
    }
}

#[test]
fn the_cap_is_reached_exactly_and_kept() {
    let config = exponential(Duration::from_secs(1), Duration::from_secs(60), 2.0);
    let secs: Vec<u64> = (0..9)
        .map(|attempt| config.delay_for_attempt(attempt).as_secs())
        .collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    // Just below and just at the cap.
    let config = exponential(Duration::from_secs(1), Duration::from_secs(64), 2.0);
    assert_eq!(config.delay_for_attempt(5), Duration::from_secs(32));
    assert_eq!(config.delay_for_attempt(6), Duration::from_secs(64));
    assert_eq!(config.delay_for_attempt(7), Duration::from_secs(64));
}

#[test]
fn fractional_multipliers_round_down_to_the_nanosecond() {
    // 1.5ⁿ · 2ⁿ = 3ⁿ: the exact value is 3ⁿ · base / 2ⁿ.
    let base = 1_u64 << 20;
    let config = exponential(Duration::from_nanos(base), MAX_DELAY, 1.5);
    for attempt in 0..=30_u32 {
        let exact = (u128::from(base) * 3_u128.pow(attempt)) >> attempt;
        assert_eq!(
            config.delay_for_attempt(attempt).as_nanos(),
            exact,
            "attempt {attempt}"
        );
    }
    let config = exponential(Duration::from_nanos(7), MAX_DELAY, 1.5);
    assert_eq!(config.delay_for_attempt(1), Duration::from_nanos(10));
    assert_eq!(config.delay_for_attempt(2), Duration::from_nanos(15));
    assert_eq!(config.delay_for_attempt(3), Duration::from_nanos(23));
}

#[test]
fn multipliers_close_to_one_stay_precise_for_huge_attempts() {
    // A plain `f64` exponentiation by squaring drifts by about n · 2⁻⁵³ here
    // (tens of nanoseconds); the model's `powf` is correctly rounded.
    for multiplier in [
        1.000_000_1,
        1.000_000_01,
        1.0 + 1e-9,
        1.0 + 16.0 * f64::EPSILON,
    ] {
        let config = exponential(Duration::from_nanos(1_000), MAX_DELAY, multiplier);
        for attempt in [1_000, 123_456_789, 200_000_000, 2_000_000_000, u32::MAX] {
            assert_close_to_model(&config, attempt, config.delay_for_attempt(attempt));
        }
    }
}

#[test]
fn a_huge_multiplier_saturates_without_nan() {
    let config = exponential(Duration::from_nanos(1), Duration::from_secs(1), f64::MAX);
    assert_eq!(config.delay_for_attempt(0), Duration::from_nanos(1));
    assert_eq!(config.delay_for_attempt(1), Duration::from_secs(1));
    assert_eq!(config.delay_for_attempt(u32::MAX), Duration::from_secs(1));
    let config = exponential(Duration::from_nanos(1), MAX_DELAY, 4_294_967_296.0);
    assert_eq!(config.delay_for_attempt(1), Duration::from_nanos(1 << 32));
    assert_eq!(config.delay_for_attempt(2), MAX_DELAY);
}

#[test]
fn a_zero_base_gives_zero_delays() {
    for multiplier in [1.0, 2.0, f64::MAX] {
        let config = exponential(Duration::ZERO, MAX_DELAY, multiplier);
        for attempt in [0, 1, 100, u32::MAX] {
            assert_eq!(config.delay_for_attempt(attempt), Duration::ZERO);
        }
    }
}

#[test]
fn the_largest_config_does_not_overflow() {
    let config = exponential(MAX_DELAY, MAX_DELAY, f64::MAX);
    assert_eq!(config.delay_for_attempt(0), MAX_DELAY);
    assert_eq!(config.delay_for_attempt(u32::MAX), MAX_DELAY);
    let config = exponential(MAX_DELAY - Duration::from_nanos(1), MAX_DELAY, 1.0);
    assert_eq!(
        config.delay_for_attempt(u32::MAX),
        MAX_DELAY - Duration::from_nanos(1)
    );
}

#[test]
fn a_base_that_is_not_an_f64_keeps_its_low_bits() {
    // 2⁶¹ + 1 ns has 62 significant bits: an `f64` computation would lose the 1.
    let base = Duration::from_nanos((1 << 61) + 1);
    assert_eq!(exponential(base, MAX_DELAY, 1.0).delay_for_attempt(5), base);
    let base = Duration::from_nanos((1 << 60) + 1);
    assert_eq!(
        exponential(base, MAX_DELAY, 2.0).delay_for_attempt(1),
        Duration::from_nanos((1 << 61) + 2)
    );
}

/// `⌊base · (p / 2ᵏ)ⁿ⌋` capped at `MAX_DELAY`, exactly, in integers.
fn exact_dyadic(base: u64, p: u128, k: u32, attempt: u32) -> u128 {
    let numerator = u128::from(base) * p.pow(attempt);
    (numerator >> (k * attempt)).min(MAX_DELAY.as_nanos())
}

proptest! {
    #[test]
    fn large_bases_with_dyadic_multipliers_are_within_a_nanosecond(
        base in (1_u64 << 53)..=u64::try_from(MAX_DELAY.as_nanos()).unwrap(),
        (p, k, attempt) in prop_oneof![
            (Just(3_u128), Just(1_u32), 0..=41_u32),
            (Just(5), Just(2), 0..=28_u32),
            (Just(7), Just(2), 0..=23_u32),
            (Just(9), Just(3), 0..=20_u32),
            (Just(1025), Just(10), 0..=6_u32),
        ],
    ) {
        // p / 2ᵏ is an exact `f64`, so the exact delay is a ratio of integers.
        let multiplier = p as f64 / f64::from(1_u32 << k);
        let config = exponential(Duration::from_nanos(base), MAX_DELAY, multiplier);
        let exact = exact_dyadic(base, p, k, attempt);
        let actual = config.delay_for_attempt(attempt).as_nanos();
        prop_assert!(actual.abs_diff(exact) <= 1, "{} instead of {}", actual, exact);
    }

    #[test]
    fn delay_for_attempt_matches_the_model(
        (base, max) in base_and_max(),
        multiplier in multiplier(),
        attempt in attempt(),
    ) {
        let config = exponential(base, max, multiplier);
        let delay = config.delay_for_attempt(attempt);
        assert_close_to_model(&config, attempt, delay);
        prop_assert!(delay <= max);
        if base.is_zero() {
            prop_assert_eq!(delay, Duration::ZERO);
        } else {
            prop_assert!(delay >= base);
        }
        if attempt == 0 {
            prop_assert_eq!(delay, base);
        }
    }

    #[test]
    fn delay_for_attempt_is_non_decreasing(
        (base, max) in base_and_max(),
        multiplier in multiplier(),
        attempt in attempt(),
    ) {
        let config = exponential(base, max, multiplier);
        let next = attempt.saturating_add(1);
        prop_assert!(config.delay_for_attempt(attempt) <= config.delay_for_attempt(next));
    }

    #[test]
    fn no_jitter_hands_out_exactly_the_exponential(config in valid_config(), seed in seed()) {
        let config = config.with_jitter(Jitter::None);
        let delays: Vec<Duration> = config.iter(seed).unwrap().take(70).collect();
        for (attempt, delay) in (0..).zip(&delays) {
            prop_assert_eq!(*delay, config.delay_for_attempt(attempt));
        }
        for pair in delays.windows(2) {
            prop_assert!(pair[0] <= pair[1]);
        }
    }

    #[test]
    fn delay_for_attempt_never_panics_even_when_invalid(
        base in any_duration(),
        max in any_duration(),
        multiplier in any::<f64>(),
        attempt in attempt(),
    ) {
        let config = exponential(base, max, multiplier);
        let delay = config.delay_for_attempt(attempt);
        prop_assert!(delay <= max);
        if base <= max && max <= MAX_DELAY && multiplier >= 1.0 && base > Duration::ZERO {
            prop_assert!(base <= delay);
        }
    }
}
