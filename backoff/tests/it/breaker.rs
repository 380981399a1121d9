//! The circuit breaker and the cooldown of `BackoffState`, against `ModelState`.

use std::time::Duration;

use proptest::prelude::*;
use supervisor_backoff::{
    BackoffAction, BackoffConfig, BackoffState, Jitter, MAX_BREAKER_RETRIES, MAX_DELAY,
};

use crate::support::{Event, ModelState, events, scaled_config, seed, valid_config};

const SEC: Duration = Duration::from_secs(1);

fn state(config: BackoffConfig) -> BackoffState {
    BackoffState::new(config, 0).unwrap()
}

fn retry(state: &mut BackoffState, now: Duration) -> Duration {
    match state.next_backoff(now) {
        BackoffAction::Retry(delay) => delay,
        open => panic!("expected a retry at {now:?}, got {open:?}"),
    }
}

/// Runs `events` on a state and on the model, comparing every answer.
fn check_against_model(
    config: BackoffConfig,
    seed: u64,
    events: &[Event],
) -> Result<(), TestCaseError> {
    let mut state = BackoffState::new(config, seed).unwrap();
    let mut model = ModelState::new(config, seed);
    let max_kept = config
        .circuit_breaker()
        .map_or(0, |breaker| breaker.max_retries() + 1);
    let mut now = Duration::ZERO;
    for (step, event) in events.iter().enumerate() {
        match *event {
            Event::Start => {
                state.record_start(now);
                model.record_start(now);
            }
            Event::Fail { sleep } => {
                let action = state.next_backoff(now);
                prop_assert_eq!(
                    action,
                    model.next_backoff(now),
                    "step {} at {:?}",
                    step,
                    now
                );
                if let (BackoffAction::Retry(delay), true) = (action, sleep) {
                    now = now.saturating_add(delay);
                }
            }
            Event::Cooldown => {
                prop_assert_eq!(
                    state.maybe_reset_on_cooldown(now),
                    model.maybe_reset_on_cooldown(now),
                    "step {} at {:?}",
                    step,
                    now
                );
            }
            Event::Reset => {
                state.reset();
                model.reset();
            }
            Event::Advance(duration) => now = now.saturating_add(duration),
            Event::Jump(to) => now = to,
        }
        prop_assert_eq!(state.attempt(), model.schedule.attempt, "step {}", step);
        prop_assert_eq!(
            state.failures_in_window(),
            model.failures_in_window(),
            "step {}",
            step
        );
        prop_assert!(state.failures_in_window() <= max_kept);
        prop_assert_eq!(
            state.is_circuit_open(),
            model.open.is_some(),
            "step {}",
            step
        );
    }
    Ok(())
}

#[test]
fn an_instantly_failing_service_trips_whatever_the_cap() {
    // systemd's trap: with a cap above window / retries, a wall-clock window
    // never holds more than a few failures. Active time does not count sleeps.
    let config = BackoffConfig::new(Duration::from_secs(3600), Duration::from_secs(3600))
        .with_circuit_breaker(3, Duration::from_secs(60));
    let mut state = state(config);
    let mut now = Duration::ZERO;
    for _ in 0..3 {
        now += retry(&mut state, now);
    }
    assert_eq!(
        state.next_backoff(now),
        BackoffAction::CircuitOpen {
            failures: 4,
            max_retries: 3
        }
    );
}

#[test]
fn max_retries_zero_opens_on_the_first_failure() {
    let config = BackoffConfig::default().with_circuit_breaker(0, SEC);
    let mut state = state(config);
    assert_eq!(
        state.next_backoff(Duration::ZERO),
        BackoffAction::CircuitOpen {
            failures: 1,
            max_retries: 0
        }
    );
    assert_eq!(state.attempt(), 0);
    assert!(state.is_circuit_open());
}

#[test]
fn max_retries_failures_are_allowed_and_one_more_opens() {
    let config = BackoffConfig::default()
        .with_jitter(Jitter::None)
        .with_circuit_breaker(2, Duration::from_secs(10));
    let mut state = state(config);
    assert_eq!(retry(&mut state, Duration::ZERO), SEC);
    assert_eq!(state.failures_in_window(), 1);
    assert_eq!(retry(&mut state, SEC), 2 * SEC);
    assert_eq!(state.failures_in_window(), 2);
    assert!(!state.is_circuit_open());
    assert_eq!(
        state.next_backoff(3 * SEC),
        BackoffAction::CircuitOpen {
            failures: 3,
            max_retries: 2
        }
    );
    assert_eq!(state.failures_in_window(), 3);
    // Open stays open, whatever the time, with no change.
    for now in [Duration::ZERO, 3 * SEC, Duration::MAX] {
        assert_eq!(
            state.next_backoff(now),
            BackoffAction::CircuitOpen {
                failures: 3,
                max_retries: 2
            }
        );
        assert_eq!(state.failures_in_window(), 3);
        assert_eq!(state.attempt(), 2);
    }
    // Until reset.
    state.reset();
    assert!(!state.is_circuit_open());
    assert_eq!(state.failures_in_window(), 0);
    assert_eq!(state.attempt(), 0);
    assert_eq!(retry(&mut state, Duration::MAX), SEC);
    assert_eq!(state.failures_in_window(), 1);
}

#[test]
fn a_failure_leaves_the_window_exactly_when_its_age_reaches_the_window() {
    let window = Duration::from_secs(10);
    let config = BackoffConfig::zero().with_circuit_breaker(1, window);
    // Age window − 1 ns: still inside, so two failures in the window.
    let mut state = state(config);
    let _ = retry(&mut state, Duration::from_secs(5));
    assert_eq!(
        state.next_backoff(Duration::from_secs(15) - Duration::from_nanos(1)),
        BackoffAction::CircuitOpen {
            failures: 2,
            max_retries: 1
        }
    );
    // Age exactly the window: outside.
    let mut state = self::state(config);
    let _ = retry(&mut state, Duration::from_secs(5));
    let _ = retry(&mut state, Duration::from_secs(15));
    assert_eq!(state.failures_in_window(), 1);
    // And the one at 15 s is inside at 24 s.
    assert_eq!(
        state.next_backoff(Duration::from_secs(24)),
        BackoffAction::CircuitOpen {
            failures: 2,
            max_retries: 1
        }
    );
}

#[test]
fn backoff_sleeps_do_not_count_as_active_time() {
    let config = BackoffConfig::new(Duration::from_secs(4), Duration::from_secs(4))
        .with_jitter(Jitter::None)
        .with_circuit_breaker(1, Duration::from_secs(10));
    let mut state = state(config);
    // Failure at active 0; sleep 4 s; the service runs 9 s: active 9 < 10.
    assert_eq!(retry(&mut state, Duration::ZERO), Duration::from_secs(4));
    assert_eq!(
        state.next_backoff(Duration::from_secs(13)),
        BackoffAction::CircuitOpen {
            failures: 2,
            max_retries: 1
        }
    );
    // The same with a run of 10 s: active 10, the first failure is out.
    let mut state = self::state(config);
    let _ = retry(&mut state, Duration::ZERO);
    assert_eq!(
        retry(&mut state, Duration::from_secs(14)),
        Duration::from_secs(4)
    );
    assert_eq!(state.failures_in_window(), 1);
}

#[test]
fn time_going_backwards_counts_as_no_time() {
    let config = BackoffConfig::zero().with_circuit_breaker(1, Duration::from_secs(10));
    let mut state = state(config);
    let _ = retry(&mut state, Duration::from_secs(100));
    // At 5 s, active time stays at 100 s: the first failure is still inside.
    assert_eq!(
        state.next_backoff(Duration::from_secs(5)),
        BackoffAction::CircuitOpen {
            failures: 2,
            max_retries: 1
        }
    );
    // After going back, time must pass again from the highest point.
    let mut state = self::state(config);
    let _ = retry(&mut state, Duration::from_secs(100));
    let _ = retry(&mut state, Duration::from_secs(110));
    assert_eq!(state.failures_in_window(), 1);
    let mut state = self::state(config);
    let _ = retry(&mut state, Duration::from_secs(100));
    state.reset();
    let _ = retry(&mut state, Duration::ZERO);
    assert_eq!(
        state.next_backoff(Duration::from_secs(109)),
        BackoffAction::CircuitOpen {
            failures: 2,
            max_retries: 1
        }
    );
}

#[test]
fn memory_is_bounded_by_max_retries_plus_one() {
    let config = BackoffConfig::zero().with_circuit_breaker(5, Duration::from_secs(1));
    let mut state = state(config);
    for second in 0..10_000 {
        let _ = retry(&mut state, Duration::from_secs(second));
        assert_eq!(state.failures_in_window(), 1);
    }
    let config = BackoffConfig::zero().with_circuit_breaker(MAX_BREAKER_RETRIES, SEC);
    let mut state = self::state(config);
    for _ in 0..MAX_BREAKER_RETRIES {
        let _ = retry(&mut state, Duration::MAX);
    }
    assert_eq!(
        state.next_backoff(Duration::MAX),
        BackoffAction::CircuitOpen {
            failures: MAX_BREAKER_RETRIES + 1,
            max_retries: MAX_BREAKER_RETRIES
        }
    );
    assert_eq!(state.failures_in_window(), MAX_BREAKER_RETRIES + 1);
}

#[test]
fn without_a_circuit_breaker_every_failure_retries() {
    let config = BackoffConfig::zero().without_circuit_breaker();
    let mut state = state(config);
    for _ in 0..1_000 {
        assert_eq!(retry(&mut state, Duration::ZERO), Duration::ZERO);
        assert_eq!(state.failures_in_window(), 0);
    }
    assert_eq!(state.attempt(), 1_000);
    assert!(!state.is_circuit_open());
}

#[test]
fn cooldown_resets_exactly_at_the_cooldown() {
    let config = BackoffConfig::new(SEC, Duration::from_secs(60))
        .with_jitter(Jitter::None)
        .with_cooldown(Duration::from_secs(30))
        .without_circuit_breaker();
    let mut state = state(config);
    // No run recorded: never resets.
    assert!(!state.maybe_reset_on_cooldown(Duration::MAX));
    assert_eq!(retry(&mut state, Duration::ZERO), SEC);
    assert_eq!(retry(&mut state, Duration::ZERO), 2 * SEC);
    state.record_start(Duration::from_secs(100));
    assert!(!state.maybe_reset_on_cooldown(Duration::from_secs(130) - Duration::from_nanos(1)));
    assert_eq!(state.attempt(), 2);
    // A `now` before the start is a run of zero length.
    assert!(!state.maybe_reset_on_cooldown(Duration::ZERO));
    assert!(state.maybe_reset_on_cooldown(Duration::from_secs(130)));
    assert_eq!(state.attempt(), 0);
    assert_eq!(retry(&mut state, Duration::from_secs(130)), SEC);
    // It stays true for later calls about the same run.
    assert!(state.maybe_reset_on_cooldown(Duration::MAX));
    assert_eq!(state.attempt(), 0);
}

#[test]
fn cooldown_resets_the_decorrelated_previous_delay_but_not_the_breaker() {
    let base = Duration::from_millis(1);
    let config = BackoffConfig::new(base, Duration::from_secs(60))
        .with_jitter(Jitter::Decorrelated)
        .with_cooldown(Duration::ZERO)
        .with_circuit_breaker(3, Duration::from_secs(600));
    let mut state = state(config);
    state.record_start(Duration::ZERO);
    for _ in 0..3 {
        // A zero cooldown resets before every failure: the range stays [b, 3b].
        assert!(state.maybe_reset_on_cooldown(Duration::ZERO));
        let delay = retry(&mut state, Duration::ZERO);
        assert!(base <= delay && delay <= 3 * base, "{delay:?}");
        assert_eq!(state.attempt(), 1);
    }
    assert_eq!(state.failures_in_window(), 3);
    assert!(state.maybe_reset_on_cooldown(Duration::ZERO));
    assert_eq!(
        state.next_backoff(Duration::ZERO),
        BackoffAction::CircuitOpen {
            failures: 4,
            max_retries: 3
        }
    );
}

#[test]
fn reset_keeps_the_recorded_start() {
    let config = BackoffConfig::default().with_cooldown(Duration::from_secs(10));
    let mut state = state(config);
    state.record_start(Duration::from_secs(5));
    state.reset();
    assert!(state.maybe_reset_on_cooldown(Duration::from_secs(15)));
}

proptest! {
    #[test]
    fn the_state_matches_the_model_on_scaled_configs(
        config in scaled_config(),
        seed in seed(),
        events in events(),
    ) {
        check_against_model(config, seed, &events)?;
    }

    #[test]
    fn the_state_matches_the_model_on_any_config(
        config in valid_config(),
        seed in seed(),
        events in events(),
    ) {
        check_against_model(config, seed, &events)?;
    }

    #[test]
    fn every_config_trips_an_instantly_failing_service_after_max_retries_plus_one(
        config in valid_config(),
        seed in seed(),
        start in prop_oneof![Just(Duration::ZERO), Just(MAX_DELAY), Just(Duration::MAX)],
    ) {
        let Some(breaker) = config.circuit_breaker() else {
            return Ok(());
        };
        // Large max_retries take long; a smaller one shows the same.
        let config = config.with_circuit_breaker(breaker.max_retries().min(50), breaker.window());
        let max_retries = breaker.max_retries().min(50);
        let mut state = BackoffState::new(config, seed).unwrap();
        let mut now = start;
        for _ in 0..max_retries {
            state.record_start(now);
            match state.next_backoff(now) {
                BackoffAction::Retry(delay) => {
                    prop_assert!(delay <= config.max());
                    now = now.saturating_add(delay);
                }
                open => prop_assert!(false, "opened early: {:?}", open),
            }
        }
        prop_assert_eq!(
            state.next_backoff(now),
            BackoffAction::CircuitOpen { failures: max_retries + 1, max_retries }
        );
    }
}
