//! `BackoffConfig`: builder, getters, defaults, validation table and error messages.

use std::time::Duration;

use supervisor_backoff::{BackoffConfig, InvalidBackoff, Jitter, MAX_BREAKER_RETRIES, MAX_DELAY};

const NS: Duration = Duration::from_nanos(1);
const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn defaults_are_the_documented_ones() {
    let config = BackoffConfig::default();
    assert_eq!(config.base(), Duration::from_secs(1));
    assert_eq!(config.max(), Duration::from_secs(60));
    assert_eq!(config.multiplier().to_bits(), 2.0_f64.to_bits());
    assert_eq!(config.jitter(), Jitter::Equal);
    assert_eq!(Jitter::default(), Jitter::Equal);
    let breaker = config.circuit_breaker().unwrap();
    assert_eq!(breaker.max_retries(), 10);
    assert_eq!(breaker.window(), Duration::from_secs(600));
    assert_eq!(config.cooldown(), Duration::from_secs(600));
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(
        BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(60)),
        config
    );
}

#[test]
fn zero_is_valid_and_has_no_delay() {
    let config = BackoffConfig::zero();
    assert_eq!(config.base(), Duration::ZERO);
    assert_eq!(config.max(), Duration::ZERO);
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(
        config.circuit_breaker(),
        BackoffConfig::default().circuit_breaker()
    );
    assert_eq!(config.cooldown(), BackoffConfig::default().cooldown());
}

#[test]
fn builders_set_exactly_their_field() {
    let config = BackoffConfig::new(Duration::from_millis(5), MINUTE)
        .with_multiplier(1.25)
        .with_jitter(Jitter::Decorrelated)
        .with_circuit_breaker(7, Duration::from_secs(9))
        .with_cooldown(Duration::from_secs(11));
    assert_eq!(config.base(), Duration::from_millis(5));
    assert_eq!(config.max(), MINUTE);
    assert_eq!(config.multiplier().to_bits(), 1.25_f64.to_bits());
    assert_eq!(config.jitter(), Jitter::Decorrelated);
    let breaker = config.circuit_breaker().unwrap();
    assert_eq!(
        (breaker.max_retries(), breaker.window()),
        (7, Duration::from_secs(9))
    );
    assert_eq!(config.cooldown(), Duration::from_secs(11));
    assert_eq!(config.without_circuit_breaker().circuit_breaker(), None);
}

#[test]
fn validation_table() {
    let ok = BackoffConfig::new(Duration::from_secs(1), MINUTE);
    let cases: Vec<(BackoffConfig, Result<(), InvalidBackoff>)> = vec![
        (ok, Ok(())),
        (BackoffConfig::new(MAX_DELAY, MAX_DELAY), Ok(())),
        (BackoffConfig::new(Duration::ZERO, MAX_DELAY), Ok(())),
        (BackoffConfig::new(MINUTE, MINUTE), Ok(())),
        (
            BackoffConfig::new(Duration::ZERO, MAX_DELAY + NS),
            Err(InvalidBackoff::MaxTooLarge {
                max: MAX_DELAY + NS,
            }),
        ),
        (
            BackoffConfig::new(Duration::MAX, Duration::MAX),
            Err(InvalidBackoff::MaxTooLarge { max: Duration::MAX }),
        ),
        (
            BackoffConfig::new(MINUTE + NS, MINUTE),
            Err(InvalidBackoff::BaseExceedsMax {
                base: MINUTE + NS,
                max: MINUTE,
            }),
        ),
        (
            BackoffConfig::new(NS, Duration::ZERO),
            Err(InvalidBackoff::BaseExceedsMax {
                base: NS,
                max: Duration::ZERO,
            }),
        ),
        (ok.with_multiplier(1.0), Ok(())),
        (ok.with_multiplier(f64::MAX), Ok(())),
        (ok.with_multiplier(1e6), Ok(())),
        (
            ok.with_multiplier(f64::NAN),
            Err(InvalidBackoff::MultiplierNotFinite),
        ),
        (
            ok.with_multiplier(-f64::NAN),
            Err(InvalidBackoff::MultiplierNotFinite),
        ),
        (
            ok.with_multiplier(f64::INFINITY),
            Err(InvalidBackoff::MultiplierNotFinite),
        ),
        (
            ok.with_multiplier(f64::NEG_INFINITY),
            Err(InvalidBackoff::MultiplierNotFinite),
        ),
        (
            ok.with_multiplier(0.5),
            Err(InvalidBackoff::MultiplierBelowOne),
        ),
        (
            ok.with_multiplier(1.0 - f64::EPSILON / 2.0),
            Err(InvalidBackoff::MultiplierBelowOne),
        ),
        (
            ok.with_multiplier(0.0),
            Err(InvalidBackoff::MultiplierBelowOne),
        ),
        (
            ok.with_multiplier(-0.0),
            Err(InvalidBackoff::MultiplierBelowOne),
        ),
        (
            ok.with_multiplier(-2.0),
            Err(InvalidBackoff::MultiplierBelowOne),
        ),
        (
            ok.with_multiplier(f64::MIN),
            Err(InvalidBackoff::MultiplierBelowOne),
        ),
        (ok.with_circuit_breaker(0, NS), Ok(())),
        (ok.with_circuit_breaker(3, Duration::MAX), Ok(())),
        (
            ok.with_circuit_breaker(3, Duration::ZERO),
            Err(InvalidBackoff::ZeroWindow),
        ),
        (ok.with_circuit_breaker(MAX_BREAKER_RETRIES, MINUTE), Ok(())),
        (
            ok.with_circuit_breaker(MAX_BREAKER_RETRIES + 1, MINUTE),
            Err(InvalidBackoff::MaxRetriesTooLarge {
                max_retries: MAX_BREAKER_RETRIES + 1,
            }),
        ),
        (
            ok.with_circuit_breaker(u32::MAX, MINUTE),
            Err(InvalidBackoff::MaxRetriesTooLarge {
                max_retries: u32::MAX,
            }),
        ),
        (
            ok.with_circuit_breaker(3, Duration::ZERO)
                .without_circuit_breaker(),
            Ok(()),
        ),
        (ok.with_cooldown(Duration::ZERO), Ok(())),
        (ok.with_cooldown(Duration::MAX), Ok(())),
        // Several broken rules: the first in the documented order wins.
        (
            BackoffConfig::new(Duration::MAX, MAX_DELAY + NS),
            Err(InvalidBackoff::MaxTooLarge {
                max: MAX_DELAY + NS,
            }),
        ),
        (
            BackoffConfig::new(MINUTE, NS).with_multiplier(f64::NAN),
            Err(InvalidBackoff::BaseExceedsMax {
                base: MINUTE,
                max: NS,
            }),
        ),
        (
            ok.with_multiplier(f64::INFINITY)
                .with_circuit_breaker(1, Duration::ZERO),
            Err(InvalidBackoff::MultiplierNotFinite),
        ),
        (
            ok.with_multiplier(0.5)
                .with_circuit_breaker(1, Duration::ZERO),
            Err(InvalidBackoff::MultiplierBelowOne),
        ),
        (
            ok.with_circuit_breaker(u32::MAX, Duration::ZERO),
            Err(InvalidBackoff::ZeroWindow),
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config.validate(), expected, "{config:?}");
    }
}

#[test]
fn error_messages_are_lowercase_without_a_period() {
    let cases = [
        (
            InvalidBackoff::MaxTooLarge {
                max: Duration::from_secs(5_000_000_000),
            },
            "max delay 5000000000s exceeds the limit of 4294967295s",
        ),
        (
            InvalidBackoff::BaseExceedsMax {
                base: Duration::from_secs(2),
                max: Duration::from_millis(1500),
            },
            "base delay 2s exceeds max delay 1.5s",
        ),
        (
            InvalidBackoff::MultiplierNotFinite,
            "multiplier is not finite",
        ),
        (InvalidBackoff::MultiplierBelowOne, "multiplier is below 1"),
        (InvalidBackoff::ZeroWindow, "circuit breaker window is zero"),
        (
            InvalidBackoff::MaxRetriesTooLarge {
                max_retries: 70_000,
            },
            "circuit breaker max retries 70000 exceeds the limit of 65535",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
        let error: &dyn std::error::Error = &error;
        assert!(error.source().is_none());
    }
}
