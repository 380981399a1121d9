//! `BackoffState` as a whole: its delays are the iterator's, and it never panics.

use std::time::Duration;

use proptest::prelude::*;
use supervisor_backoff::{BackoffAction, BackoffConfig, BackoffState, Jitter};

use crate::support::{ModelSchedule, any_duration, seed, valid_config};

proptest! {
    #[test]
    fn the_state_hands_out_the_iterators_delays(
        config in valid_config(),
        seed in seed(),
        times in proptest::collection::vec(any_duration(), 0..60),
    ) {
        // Without a circuit breaker, or with one that cannot open in 60 failures.
        let config = match config.circuit_breaker() {
            Some(breaker) if breaker.max_retries() < 60 => config.without_circuit_breaker(),
            _ => config,
        };
        let mut state = BackoffState::new(config, seed).unwrap();
        let mut iter = config.iter(seed).unwrap();
        for (attempt, &now) in (1..).zip(&times) {
            prop_assert_eq!(state.next_backoff(now), BackoffAction::Retry(iter.next().unwrap()));
            prop_assert_eq!(state.attempt(), attempt);
            prop_assert_eq!(state.attempt(), iter.attempt());
        }
    }

    #[test]
    fn after_a_reset_the_delays_start_over_with_fresh_draws(
        config in valid_config(),
        seed in seed(),
        before in 0..10_usize,
    ) {
        let config = config.without_circuit_breaker();
        let mut state = BackoffState::new(config, seed).unwrap();
        let mut model = ModelSchedule::new(config, seed);
        for _ in 0..before {
            prop_assert_eq!(state.next_backoff(Duration::ZERO), BackoffAction::Retry(model.next_delay()));
        }
        state.reset();
        model.reset();
        prop_assert_eq!(state.attempt(), 0);
        for _ in 0..10 {
            prop_assert_eq!(state.next_backoff(Duration::ZERO), BackoffAction::Retry(model.next_delay()));
        }
    }

    #[test]
    fn constructors_never_panic_and_agree_with_validate(
        base in any_duration(),
        max in any_duration(),
        multiplier in any::<f64>(),
        breaker in proptest::option::of((any::<u32>(), any_duration())),
        seed in any::<u64>(),
    ) {
        let config = BackoffConfig::new(base, max).with_multiplier(multiplier);
        let config = match breaker {
            Some((retries, window)) => config.with_circuit_breaker(retries, window),
            None => config.without_circuit_breaker(),
        };
        let validated = config.validate();
        prop_assert_eq!(BackoffState::new(config, seed).map(|_| ()), validated);
        prop_assert_eq!(config.iter(seed).map(|_| ()), validated);
        if validated.is_ok() {
            let state = BackoffState::new(config, seed).unwrap();
            prop_assert_eq!(state.config(), &config);
        }
    }
}

#[test]
fn a_fresh_state_is_at_attempt_zero_with_a_closed_circuit() {
    let state = BackoffState::new(BackoffConfig::default(), 1).unwrap();
    assert_eq!(state.attempt(), 0);
    assert_eq!(state.failures_in_window(), 0);
    assert!(!state.is_circuit_open());
    assert_eq!(state.config(), &BackoffConfig::default());
}

#[test]
fn the_default_config_backs_off_from_one_second_to_a_minute() {
    let mut state =
        BackoffState::new(BackoffConfig::default().with_jitter(Jitter::None), 1).unwrap();
    let mut now = Duration::ZERO;
    let mut secs = Vec::new();
    // An instantly failing service: ten retries, then the circuit opens.
    let mut opened = false;
    for _ in 0..20 {
        state.record_start(now);
        let _ = state.maybe_reset_on_cooldown(now);
        match state.next_backoff(now) {
            BackoffAction::Retry(delay) => {
                secs.push(delay.as_secs());
                now += delay;
            }
            BackoffAction::CircuitOpen {
                failures,
                max_retries,
            } => {
                assert_eq!((failures, max_retries), (11, 10));
                opened = true;
                break;
            }
        }
    }
    assert!(opened);
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
}
