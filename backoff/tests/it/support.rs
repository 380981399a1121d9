//! Reference models and proptest strategies shared by the behaviour tests.
//!
//! The models are written independently of the crate's internals: the
//! exponential in `f64` with `powf`, the generator from the published
//! SplitMix64 algorithm, the circuit breaker as a plain list of the failures
//! in its window (`tests::BreakerModel`, shared with the chaos tests of the
//! supervisor).

use std::time::Duration;

use proptest::prelude::*;
use supervisor_backoff::{BackoffAction, BackoffConfig, Jitter, MAX_BREAKER_RETRIES, MAX_DELAY};
use tests::BreakerModel;

/// Nanoseconds of a duration known to be at most `MAX_DELAY`.
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).expect("at most MAX_DELAY")
}

/// `min(max, base · multiplierⁿ)` in `f64`, the textbook formula.
pub(crate) fn model_exponential(config: &BackoffConfig, attempt: u32) -> f64 {
    let base = nanos(config.base()) as f64;
    let max = nanos(config.max()) as f64;
    if base == 0.0 {
        return 0.0;
    }
    let value = base * config.multiplier().powf(f64::from(attempt));
    if value.is_nan() { max } else { value.min(max) }
}

/// Asserts that `actual` is the model's exponential up to rounding: 2 ns plus a
/// relative 10⁻¹² (the model itself has an error of a few units in the last
/// place of an `f64`).
pub(crate) fn assert_close_to_model(config: &BackoffConfig, attempt: u32, actual: Duration) {
    let model = model_exponential(config, attempt);
    let actual = nanos(actual) as f64;
    let tolerance = 2.0 + model * 1e-12;
    assert!(
        (actual - model).abs() <= tolerance,
        "attempt {attempt} of {config:?}: got {actual} ns, model {model} ns"
    );
}

/// SplitMix64, written from Vigna's `splitmix64.c`.
#[derive(Debug, Clone)]
pub(crate) struct ModelRng(u64);

impl ModelRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The documented draw: `lo + ⌊x · (hi − lo + 1) / 2⁶⁴⌋`, `lo` when `hi ≤ lo`.
    pub(crate) fn in_range(&mut self, lo: u64, hi: u64) -> u64 {
        let x = u128::from(self.next_u64());
        if hi <= lo {
            return lo;
        }
        let count = u128::from(hi - lo) + 1;
        lo + u64::try_from((x * count) >> 64).expect("below 2^64")
    }
}

/// The delays of a config, from the documented definitions of the jitter kinds.
///
/// The un-jittered `d(n)` is taken from `delay_for_attempt`, which `delay.rs`
/// checks against [`model_exponential`].
#[derive(Debug, Clone)]
pub(crate) struct ModelSchedule {
    config: BackoffConfig,
    rng: ModelRng,
    pub(crate) attempt: u32,
    previous: u64,
}

impl ModelSchedule {
    pub(crate) fn new(config: BackoffConfig, seed: u64) -> Self {
        Self {
            config,
            rng: ModelRng::new(seed),
            attempt: 0,
            previous: nanos(config.base()),
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = nanos(self.config.base());
        let max = nanos(self.config.max());
        let d = nanos(self.config.delay_for_attempt(self.attempt));
        let delay = match self.config.jitter() {
            Jitter::None => d,
            Jitter::Equal => self.rng.in_range(d.div_ceil(2), d),
            Jitter::Full if d == 0 => {
                self.rng.next_u64();
                0
            }
            Jitter::Full => self.rng.in_range(1, d),
            Jitter::Decorrelated => {
                let hi = u64::try_from((u128::from(self.previous) * 3).min(u128::from(max)))
                    .expect("at most max");
                self.rng.in_range(base, hi)
            }
            other => panic!("unknown jitter {other:?}"),
        };
        self.previous = delay;
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_nanos(delay)
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
        self.previous = nanos(self.config.base());
    }
}

/// A `BackoffState` as the documentation describes it.
#[derive(Debug, Clone)]
pub(crate) struct ModelState {
    config: BackoffConfig,
    pub(crate) schedule: ModelSchedule,
    run_started: Option<Duration>,
    breaker: Option<BreakerModel>,
    /// The `failures` of the `CircuitOpen` that opened the circuit.
    pub(crate) open: Option<u32>,
}

impl ModelState {
    pub(crate) fn new(config: BackoffConfig, seed: u64) -> Self {
        Self {
            config,
            schedule: ModelSchedule::new(config, seed),
            run_started: None,
            breaker: config
                .circuit_breaker()
                .map(|breaker| BreakerModel::new(breaker.max_retries(), breaker.window())),
            open: None,
        }
    }

    pub(crate) fn record_start(&mut self, now: Duration) {
        self.run_started = Some(now);
    }

    /// Failures inside the window as of the last failure.
    pub(crate) fn failures_in_window(&self) -> u32 {
        self.breaker
            .as_ref()
            .map_or(0, BreakerModel::failures_in_window)
    }

    pub(crate) fn next_backoff(&mut self, now: Duration) -> BackoffAction {
        if let Some(breaker) = &mut self.breaker {
            let max_retries = breaker.max_retries();
            if let Some(failures) = self.open {
                return BackoffAction::CircuitOpen {
                    failures,
                    max_retries,
                };
            }
            if breaker.fail(now) {
                let failures = breaker.failures_in_window();
                self.open = Some(failures);
                return BackoffAction::CircuitOpen {
                    failures,
                    max_retries,
                };
            }
        }
        let delay = self.schedule.next_delay();
        if let Some(breaker) = &mut self.breaker {
            breaker.add_delay(delay);
        }
        BackoffAction::Retry(delay)
    }

    pub(crate) fn reset(&mut self) {
        self.schedule.reset();
        if let Some(breaker) = &mut self.breaker {
            breaker.clear();
        }
        self.open = None;
    }

    pub(crate) fn maybe_reset_on_cooldown(&mut self, now: Duration) -> bool {
        match self.run_started {
            Some(start) if now.saturating_sub(start) >= self.config.cooldown() => {
                self.schedule.reset();
                true
            }
            _ => false,
        }
    }
}

/// Durations up to `max`, with the edges `0`, `1 ns` and `max` often.
pub(crate) fn duration_up_to(max: Duration) -> impl Strategy<Value = Duration> {
    let max_nanos = max.as_nanos();
    prop_oneof![
        1 => Just(Duration::ZERO),
        1 => Just(Duration::from_nanos(1).min(max)),
        1 => Just(max),
        1 => (0..=max_nanos.min(u128::from(u64::MAX)))
            .prop_map(|n| Duration::from_nanos(u64::try_from(n).expect("fits"))),
        2 => (0..=max_nanos.min(10_000_000_000))
            .prop_map(|n| Duration::from_nanos(u64::try_from(n).expect("fits"))),
        2 => (0..=max.as_secs().min(100)).prop_map(Duration::from_secs),
    ]
}

/// Any duration at all, `Duration::MAX` included.
pub(crate) fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
        1 => Just(MAX_DELAY),
        3 => (any::<u64>(), 0..1_000_000_000_u32).prop_map(|(s, n)| Duration::new(s, n)),
        3 => (0..1_000_000_000_000_u64).prop_map(Duration::from_nanos),
    ]
}

/// Valid multipliers: the edges and the whole range up to 10⁶.
pub(crate) fn multiplier() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(1.0),
        1 => Just(1.000_000_1),
        1 => Just(1.0 + f64::EPSILON),
        1 => Just(1.5),
        1 => Just(2.0),
        1 => Just(1e6),
        1 => Just(f64::MAX),
        3 => 1.0..=2.0_f64,
        2 => 1.0..=1e6_f64,
    ]
}

/// Every jitter kind.
pub(crate) fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        Just(Jitter::Equal),
        Just(Jitter::Full),
        Just(Jitter::Decorrelated),
    ]
}

/// Attempts from 0 to `u32::MAX`, small ones and the edges often.
pub(crate) fn attempt() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => 0..64_u32,
        1 => Just(u32::MAX),
        1 => Just(u32::MAX - 1),
        2 => any::<u32>(),
    ]
}

/// Seeds, with `0` and `u64::MAX` often.
pub(crate) fn seed() -> impl Strategy<Value = u64> {
    prop_oneof![1 => Just(0), 1 => Just(u64::MAX), 4 => any::<u64>()]
}

/// `(base, max)` with `base ≤ max ≤ MAX_DELAY`.
pub(crate) fn base_and_max() -> impl Strategy<Value = (Duration, Duration)> {
    duration_up_to(MAX_DELAY).prop_flat_map(|max| (duration_up_to(max), Just(max)))
}

/// Every valid config (with or without a circuit breaker).
pub(crate) fn valid_config() -> impl Strategy<Value = BackoffConfig> {
    (
        base_and_max(),
        multiplier(),
        jitter(),
        proptest::option::of((0..=MAX_BREAKER_RETRIES, any_duration())),
        any_duration(),
    )
        .prop_map(|((base, max), multiplier, jitter, breaker, cooldown)| {
            let config = BackoffConfig::new(base, max)
                .with_multiplier(multiplier)
                .with_jitter(jitter)
                .with_cooldown(cooldown);
            match breaker {
                Some((retries, window)) => {
                    config.with_circuit_breaker(retries, window.max(Duration::from_nanos(1)))
                }
                None => config.without_circuit_breaker(),
            }
        })
}

/// Configs of human scale for event sequences: delays, windows and cooldowns in
/// whole seconds up to a minute, so that boundaries are hit exactly, with a
/// circuit breaker most of the time.
pub(crate) fn scaled_config() -> impl Strategy<Value = BackoffConfig> {
    (
        (0..=10_u64, 0..=60_u64),
        prop_oneof![Just(1.0), Just(1.5), Just(2.0), 1.0..=3.0_f64],
        jitter(),
        proptest::option::weighted(0.9, (0..=6_u32, 1..=60_u64)),
        0..=60_u64,
    )
        .prop_map(|((base, extra), multiplier, jitter, breaker, cooldown)| {
            let config =
                BackoffConfig::new(Duration::from_secs(base), Duration::from_secs(base + extra))
                    .with_multiplier(multiplier)
                    .with_jitter(jitter)
                    .with_cooldown(Duration::from_secs(cooldown));
            match breaker {
                Some((retries, window)) => {
                    config.with_circuit_breaker(retries, Duration::from_secs(window))
                }
                None => config.without_circuit_breaker(),
            }
        })
}

/// One call (or passage of time) in the life of a supervised service.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// `record_start(now)`.
    Start,
    /// `next_backoff(now)`, then, if `sleep`, `now += delay` on a retry.
    Fail { sleep: bool },
    /// `maybe_reset_on_cooldown(now)`.
    Cooldown,
    /// `reset()`.
    Reset,
    /// `now += duration` (a run, or idle time), saturating.
    Advance(Duration),
    /// `now = duration`: a jump anywhere, backwards included.
    Jump(Duration),
}

/// Event sequences in whole seconds, mostly shaped like a supervisor loop.
pub(crate) fn events() -> impl Strategy<Value = Vec<Event>> {
    let event = prop_oneof![
        4 => Just(Event::Start),
        6 => prop_oneof![4 => Just(true), 1 => Just(false)].prop_map(|sleep| Event::Fail { sleep }),
        3 => Just(Event::Cooldown),
        1 => Just(Event::Reset),
        6 => (0..=70_u64).prop_map(|s| Event::Advance(Duration::from_secs(s))),
        1 => any_duration().prop_map(Event::Jump),
        1 => (0..=600_u64).prop_map(|s| Event::Jump(Duration::from_secs(s))),
    ];
    proptest::collection::vec(event, 0..80)
}
