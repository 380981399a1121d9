//! The `serde` feature: configs round-trip through JSON and fill in defaults.

use std::time::Duration;

use supervisor_backoff::{BackoffConfig, Jitter};

#[test]
fn a_config_round_trips() {
    let config = BackoffConfig::new(Duration::from_millis(250), Duration::from_secs(90))
        .with_multiplier(1.5)
        .with_jitter(Jitter::Decorrelated)
        .with_circuit_breaker(4, Duration::from_secs(120))
        .with_cooldown(Duration::from_secs(30));
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<BackoffConfig>(&json).unwrap(),
        config
    );
    let no_breaker = config.without_circuit_breaker();
    let json = serde_json::to_string(&no_breaker).unwrap();
    assert_eq!(
        serde_json::from_str::<BackoffConfig>(&json).unwrap(),
        no_breaker
    );
}

#[test]
fn missing_fields_take_their_defaults() {
    let config: BackoffConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, BackoffConfig::default());
    let config: BackoffConfig =
        serde_json::from_str(r#"{"jitter": "full", "max": {"secs": 5, "nanos": 0}}"#).unwrap();
    assert_eq!(
        config,
        BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(5))
            .with_jitter(Jitter::Full)
    );
}

#[test]
fn jitter_names_are_snake_case() {
    for (jitter, name) in [
        (Jitter::None, "\"none\""),
        (Jitter::Equal, "\"equal\""),
        (Jitter::Full, "\"full\""),
        (Jitter::Decorrelated, "\"decorrelated\""),
    ] {
        assert_eq!(serde_json::to_string(&jitter).unwrap(), name);
        assert_eq!(serde_json::from_str::<Jitter>(name).unwrap(), jitter);
    }
}

#[test]
fn unknown_fields_are_rejected_and_invalid_values_caught_by_validate() {
    assert!(serde_json::from_str::<BackoffConfig>(r#"{"bsae": {"secs": 1, "nanos": 0}}"#).is_err());
    let config: BackoffConfig = serde_json::from_str(r#"{"multiplier": 0.5}"#).unwrap();
    assert_eq!(
        config.validate(),
        Err(supervisor_backoff::InvalidBackoff::MultiplierBelowOne)
    );
    let config: BackoffConfig = serde_json::from_str(r#"{"circuit_breaker": null}"#).unwrap();
    assert_eq!(config.circuit_breaker(), None);
}
