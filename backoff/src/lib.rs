//! Pure exponential backoff with jitter, a circuit breaker and a cooldown, for
//! restarting supervised services; time and randomness are inputs.
//!
//! This crate computes *how long* to wait before a retry and *whether* to give
//! up; it never sleeps and never reads a clock. Every time value is a
//! [`Duration`] since an origin the caller chooses, and the
//! jitter comes from a generator seeded by the caller, so the same config, seed
//! and inputs always give the same decisions, and tests need no real time.
//!
//! # Key types
//!
//! * [`BackoffConfig`]: base, max, multiplier, [`Jitter`], [`CircuitBreaker`] and
//!   cooldown, built with `with_*` methods and checked by
//!   [`validate`](BackoffConfig::validate) into an [`InvalidBackoff`].
//! * [`BackoffState`]: the restart state of one service. Fed with
//!   [`record_start`](BackoffState::record_start),
//!   [`maybe_reset_on_cooldown`](BackoffState::maybe_reset_on_cooldown) and
//!   [`next_backoff`](BackoffState::next_backoff), it answers with a
//!   [`BackoffAction`]: retry after a delay, or give up.
//! * [`BackoffIter`]: the delays as an iterator, for plain retry loops with no
//!   circuit breaker ([`BackoffConfig::iter`]).
//! * [`SplitMix64`]: the seeded generator behind the jitter.
//!
//! # Who should depend on it
//!
//! The supervisor runtime, and anything that needs the same retry arithmetic
//! without a runtime: clients reconnecting, simulations, tests. It is `no_std`
//! (it needs `alloc`, for the bounded memory of the circuit breaker) and has no
//! required dependency, so it is cheap to depend on and rarely changes.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `serde` | no | `Serialize` and `Deserialize` for [`BackoffConfig`] (missing fields take their defaults, unknown fields are rejected), [`Jitter`] (`"none"`, `"equal"`, `"full"`, `"decorrelated"`) and [`CircuitBreaker`]. A deserialized config is validated when it is used. |
//!
//! There is no `std` feature: the crate is `no_std` whatever the features, and
//! [`InvalidBackoff`] implements [`core::error::Error`], which is the
//! `std::error::Error` of `std` users.
//!
//! # A retry loop
//!
//! ```
//! use core::time::Duration;
//!
//! use supervisor_backoff::{BackoffConfig, InvalidBackoff, Jitter};
//!
//! /// Fails twice, then succeeds.
//! fn fetch(calls: &mut u32) -> Result<&'static str, &'static str> {
//!     *calls += 1;
//!     if *calls <= 2 { Err("unavailable") } else { Ok("data") }
//! }
//!
//! fn main() -> Result<(), InvalidBackoff> {
//!     let config = BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(10))
//!         .with_jitter(Jitter::None);
//!     let seed = 2024; // for example from the service name or the process id
//!     let mut calls = 0;
//!     let mut waited = Vec::new();
//!     let mut result = fetch(&mut calls);
//!     for delay in config.iter(seed)?.with_max_attempts(5) {
//!         if result.is_ok() {
//!             break;
//!         }
//!         waited.push(delay); // `tokio::time::sleep(delay).await` in real code
//!         result = fetch(&mut calls);
//!     }
//!     assert_eq!(result, Ok("data"));
//!     assert_eq!(waited, [Duration::from_millis(100), Duration::from_millis(200)]);
//!     Ok(())
//! }
//! ```
//!
//! # The jitter kinds
//!
//! With `d = min(max, base · multiplierⁿ)` the un-jittered delay of attempt `n`
//! ([`BackoffConfig::delay_for_attempt`]):
//!
//! ```
//! use core::time::Duration;
//!
//! use supervisor_backoff::{BackoffConfig, Jitter};
//!
//! let base = Duration::from_secs(1);
//! let max = Duration::from_secs(60);
//! let config = |jitter| BackoffConfig::new(base, max).with_jitter(jitter);
//!
//! // None: exactly d, so 1 s, 2 s, 4 s, …, 32 s, then 60 s forever.
//! let none = config(Jitter::None);
//! let delays: Vec<u64> = none.iter(1)?.take(8).map(|d| d.as_secs()).collect();
//! assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
//!
//! // Equal (the default): within [d/2, d], never above the cap.
//! let equal = config(Jitter::Equal);
//! for (n, delay) in (0..).zip(equal.iter(1)?.take(50)) {
//!     let d = equal.delay_for_attempt(n);
//!     assert!(d / 2 <= delay && delay <= d);
//! }
//!
//! // Full: within [1 ns, d].
//! let full = config(Jitter::Full);
//! for (n, delay) in (0..).zip(full.iter(1)?.take(50)) {
//!     assert!(Duration::from_nanos(1) <= delay && delay <= full.delay_for_attempt(n));
//! }
//!
//! // Decorrelated: within [base, min(max, 3 · previous delay)].
//! let decorrelated = config(Jitter::Decorrelated);
//! let mut previous = base;
//! for delay in decorrelated.iter(1)?.take(50) {
//!     assert!(base <= delay && delay <= max.min(previous * 3));
//!     previous = delay;
//! }
//! # Ok::<(), supervisor_backoff::InvalidBackoff>(())
//! ```
//!
//! A supervisor loop with the circuit breaker and the cooldown is shown on
//! [`BackoffState`].
//!
//! # Invariants
//!
//! 1. No function panics, for any input; all arithmetic is checked or saturating.
//! 2. A validated config has `base ≤ max ≤ MAX_DELAY`, so no delay can overflow
//!    when added to an instant.
//! 3. Every delay is at most `max`, and at least `base` except with
//!    [`Jitter::Full`] (at least 1 ns when `base` is not zero).

#![no_std]
#![warn(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::panic,
    clippy::expect_used,
    clippy::indexing_slicing
)]

extern crate alloc;

mod config;
mod error;
mod math;
mod rng;
mod schedule;
mod state;

use core::time::Duration;

pub use crate::config::{BackoffConfig, CircuitBreaker, Jitter};
pub use crate::error::InvalidBackoff;
pub use crate::rng::SplitMix64;
pub use crate::schedule::BackoffIter;
pub use crate::state::{BackoffAction, BackoffState};

/// The largest accepted max delay: `u32::MAX` seconds (about 136 years).
///
/// Configs with a larger max are rejected with [`InvalidBackoff::MaxTooLarge`],
/// so adding any delay to an instant can never overflow in a caller, and every
/// delay fits in a `u64` of nanoseconds.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::{BackoffConfig, MAX_DELAY};
///
/// assert_eq!(MAX_DELAY, Duration::from_secs(u64::from(u32::MAX)));
/// assert!(BackoffConfig::new(MAX_DELAY, MAX_DELAY).validate().is_ok());
/// ```
pub const MAX_DELAY: Duration = Duration::from_secs(u32::MAX as u64);

/// The largest accepted [`CircuitBreaker::max_retries`]: 65 535.
///
/// The circuit breaker remembers up to `max_retries + 1` failures; this bound
/// keeps that memory under about a megabyte per service. Configs above it are
/// rejected with [`InvalidBackoff::MaxRetriesTooLarge`]; to never give up, use
/// [`BackoffConfig::without_circuit_breaker`].
///
/// # Examples
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::{BackoffConfig, InvalidBackoff, MAX_BREAKER_RETRIES};
///
/// let window = Duration::from_secs(60);
/// let config = BackoffConfig::default().with_circuit_breaker(MAX_BREAKER_RETRIES, window);
/// assert_eq!(config.validate(), Ok(()));
/// let config = config.with_circuit_breaker(MAX_BREAKER_RETRIES + 1, window);
/// assert_eq!(
///     config.validate(),
///     Err(InvalidBackoff::MaxRetriesTooLarge { max_retries: MAX_BREAKER_RETRIES + 1 })
/// );
/// ```
pub const MAX_BREAKER_RETRIES: u32 = 65_535;

// The README's example is a doctest too, so that it stays true to the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
