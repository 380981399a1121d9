//! The jitter kinds: exact draws from the model, documented bounds, freshness, determinism.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use supervisor_backoff::{BackoffConfig, Jitter, MAX_DELAY, SplitMix64};

use crate::support::{ModelRng, ModelSchedule, jitter, nanos, seed, valid_config};

const NS: Duration = Duration::from_nanos(1);

fn delays(config: BackoffConfig, seed: u64, count: usize) -> Vec<Duration> {
    config.iter(seed).unwrap().take(count).collect()
}

#[test]
fn splitmix64_matches_the_reference_implementation() {
    // The first outputs of Vigna's splitmix64.c for this seed, as published
    // with the test suite of `rand_xoshiro`.
    let mut rng = SplitMix64::new(1_477_776_061_723_855_037);
    let expected = [
        1_985_237_415_132_408_290,
        2_979_275_885_539_914_483,
        13_511_426_838_097_143_398,
        8_488_337_342_461_049_707,
        15_141_737_807_933_549_159,
    ];
    for value in expected {
        assert_eq!(rng.next_u64(), value);
    }
    assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
}

#[test]
fn next_in_range_covers_the_edges() {
    let mut rng = SplitMix64::new(3);
    let mut model = ModelRng::new(3);
    for (lo, hi) in [
        (0, 0),
        (0, 1),
        (5, 5),
        (9, 3),
        (0, u64::MAX),
        (u64::MAX, u64::MAX),
        (u64::MAX - 1, u64::MAX),
        (1, 1 << 62),
    ] {
        for _ in 0..64 {
            let value = rng.next_in_range(lo, hi);
            assert_eq!(value, model.in_range(lo, hi), "{lo}..={hi}");
            assert!(value >= lo && (value <= hi || hi < lo && value == lo));
        }
    }
}

#[test]
fn next_in_range_reaches_both_ends_of_a_small_range() {
    let mut rng = SplitMix64::new(11);
    let seen: BTreeSet<u64> = (0..400).map(|_| rng.next_in_range(10, 13)).collect();
    assert_eq!(seen, BTreeSet::from([10, 11, 12, 13]));
}

#[test]
fn equal_jitter_varies_at_the_cap_within_half_and_full() {
    let max = Duration::from_secs(60);
    let config = BackoffConfig::new(max, max).with_jitter(Jitter::Equal);
    let sequence = delays(config, 5, 200);
    let distinct: BTreeSet<Duration> = sequence.iter().copied().collect();
    assert!(distinct.len() > 190, "{} distinct delays", distinct.len());
    for delay in sequence {
        assert!(max / 2 <= delay && delay <= max, "{delay:?}");
    }
}

#[test]
fn equal_jitter_rounds_the_half_up() {
    // d = 3 ns: the delay is 2 or 3 ns, never 1.
    let config = BackoffConfig::new(3 * NS, 3 * NS).with_jitter(Jitter::Equal);
    let seen: BTreeSet<Duration> = delays(config, 9, 200).into_iter().collect();
    assert_eq!(seen, BTreeSet::from([2 * NS, 3 * NS]));
    // d = 1 ns: always 1 ns.
    let config = BackoffConfig::new(NS, NS).with_jitter(Jitter::Equal);
    assert!(delays(config, 9, 50).iter().all(|&delay| delay == NS));
}

#[test]
fn full_jitter_is_never_zero_and_reaches_the_delay() {
    let config = BackoffConfig::new(2 * NS, 2 * NS).with_jitter(Jitter::Full);
    let seen: BTreeSet<Duration> = delays(config, 9, 200).into_iter().collect();
    assert_eq!(seen, BTreeSet::from([NS, 2 * NS]));
    let max = Duration::from_secs(60);
    let config = BackoffConfig::new(max, max).with_jitter(Jitter::Full);
    let distinct: BTreeSet<Duration> = delays(config, 5, 200).into_iter().collect();
    assert!(distinct.len() > 190);
}

#[test]
fn decorrelated_jitter_grows_at_most_threefold_and_does_not_stick_to_the_cap() {
    let base = Duration::from_secs(1);
    let max = Duration::from_secs(60);
    let config = BackoffConfig::new(base, max).with_jitter(Jitter::Decorrelated);
    let sequence = delays(config, 5, 500);
    let mut previous = base;
    for &delay in &sequence {
        assert!(base <= delay && delay <= max.min(previous * 3), "{delay:?}");
        previous = delay;
    }
    let at_cap = sequence.iter().filter(|&&delay| delay == max).count();
    assert!(at_cap < 5, "{at_cap} delays at the cap");
    let distinct: BTreeSet<Duration> = sequence.into_iter().collect();
    assert!(distinct.len() > 490);
    // From 1 ns, the first range is [1, 3] ns.
    let config = BackoffConfig::new(NS, MAX_DELAY).with_jitter(Jitter::Decorrelated);
    let first: BTreeSet<Duration> = (0..200).map(|seed| delays(config, seed, 1)[0]).collect();
    assert_eq!(first, BTreeSet::from([NS, 2 * NS, 3 * NS]));
}

#[test]
fn decorrelated_jitter_ignores_the_multiplier() {
    let config = BackoffConfig::new(Duration::from_secs(1), Duration::from_secs(60))
        .with_jitter(Jitter::Decorrelated);
    assert_eq!(
        delays(config, 77, 30),
        delays(config.with_multiplier(7.5), 77, 30)
    );
}

#[test]
fn zero_delays_stay_zero_for_every_jitter() {
    for jitter in [
        Jitter::None,
        Jitter::Equal,
        Jitter::Full,
        Jitter::Decorrelated,
    ] {
        for config in [
            BackoffConfig::zero(),
            BackoffConfig::new(Duration::ZERO, Duration::from_secs(60)),
        ] {
            let config = config.with_jitter(jitter);
            assert!(delays(config, 1, 20).iter().all(|delay| delay.is_zero()));
        }
    }
}

#[test]
fn different_seeds_give_different_sequences() {
    let config = BackoffConfig::default();
    let sequences: BTreeSet<Vec<Duration>> = (0..100).map(|seed| delays(config, seed, 8)).collect();
    assert_eq!(sequences.len(), 100);
}

proptest! {
    #[test]
    fn delays_match_the_model_exactly(config in valid_config(), seed in seed()) {
        let mut model = ModelSchedule::new(config, seed);
        for delay in config.iter(seed).unwrap().take(70) {
            prop_assert_eq!(delay, model.next_delay());
        }
    }

    #[test]
    fn delays_respect_the_documented_bounds(config in valid_config(), seed in seed()) {
        let base = config.base();
        let max = config.max();
        let mut previous = base;
        for (attempt, delay) in (0..).zip(config.iter(seed).unwrap().take(70)) {
            let d = config.delay_for_attempt(attempt);
            prop_assert!(delay <= max && delay <= MAX_DELAY);
            if base.is_zero() {
                prop_assert_eq!(delay, Duration::ZERO);
                continue;
            }
            match config.jitter() {
                Jitter::None => prop_assert_eq!(delay, d),
                Jitter::Equal => prop_assert!(d - d / 2 <= delay && delay <= d),
                Jitter::Full => prop_assert!(NS <= delay && delay <= d),
                Jitter::Decorrelated => {
                    prop_assert!(base <= delay && delay <= max.min(previous.saturating_mul(3)));
                }
                other => prop_assert!(false, "unknown jitter {:?}", other),
            }
            previous = delay;
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays(config in valid_config(), seed in seed()) {
        prop_assert_eq!(delays(config, seed, 40), delays(config, seed, 40));
    }

    #[test]
    fn another_seed_gives_other_delays_at_the_cap(
        jitter in jitter(),
        seed in seed(),
        max_secs in 1..=MAX_DELAY.as_secs(),
    ) {
        let max = Duration::from_secs(max_secs);
        let config = BackoffConfig::new(max / 2, max).with_jitter(jitter);
        let other = seed.wrapping_add(1);
        if jitter == Jitter::None {
            prop_assert_eq!(delays(config, seed, 16), delays(config, other, 16));
        } else {
            prop_assert_ne!(delays(config, seed, 16), delays(config, other, 16));
        }
    }

    #[test]
    fn draws_are_fresh_at_the_cap(jitter in jitter(), seed in seed(), max_secs in 1..=3600_u64) {
        let max = Duration::from_secs(max_secs);
        let config = BackoffConfig::new(max / 4, max).with_jitter(jitter);
        let distinct: BTreeSet<Duration> = delays(config, seed, 64).into_iter().skip(8).collect();
        if jitter == Jitter::None {
            prop_assert_eq!(distinct.len(), 1);
        } else {
            prop_assert!(distinct.len() > 50);
        }
        prop_assert!(distinct.iter().all(|&delay| delay <= max && nanos(delay) > 0));
    }

    #[test]
    fn iterators_are_bounded_and_fused(
        config in valid_config(),
        seed in seed(),
        max_attempts in 0..20_u32,
        taken in 0..25_usize,
    ) {
        let mut iter = config.iter(seed).unwrap();
        prop_assert_eq!(iter.size_hint(), (usize::MAX, None));
        for _ in 0..taken {
            prop_assert!(iter.next().is_some());
        }
        let yielded = u32::try_from(taken).unwrap();
        prop_assert_eq!(iter.attempt(), yielded);
        let mut iter = iter.with_max_attempts(max_attempts);
        let remaining = max_attempts.saturating_sub(yielded) as usize;
        prop_assert_eq!(iter.size_hint(), (remaining, Some(remaining)));
        // `take` keeps a broken bound from looping forever.
        let rest: Vec<Duration> = iter.by_ref().take(remaining + 5).collect();
        prop_assert_eq!(rest.len(), remaining);
        prop_assert_eq!(iter.size_hint(), (0, Some(0)));
        prop_assert_eq!(iter.next(), None);
        prop_assert_eq!(iter.next(), None);
        // The bound does not change the delays.
        let unbounded: Vec<Duration> = config.iter(seed).unwrap().skip(taken).take(remaining).collect();
        prop_assert_eq!(rest, unbounded);
    }
}
