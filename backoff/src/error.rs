//! The typed error returned when a [`BackoffConfig`](crate::BackoffConfig) is rejected.

use core::fmt;
use core::time::Duration;

use crate::{MAX_BREAKER_RETRIES, MAX_DELAY};

/// Why a [`BackoffConfig`](crate::BackoffConfig) was rejected.
///
/// Returned by [`BackoffConfig::validate`](crate::BackoffConfig::validate),
/// [`BackoffConfig::iter`](crate::BackoffConfig::iter) and
/// [`BackoffState::new`](crate::BackoffState::new). When a config breaks several
/// rules, the first one in the order of this enum's variants is reported.
///
/// The `Display` messages are lowercase and have no trailing period, so they
/// compose with other error messages (`"invalid backoff: {err}"`).
///
/// # Examples
///
/// ```
/// use core::time::Duration;
///
/// use supervisor_backoff::{BackoffConfig, InvalidBackoff};
///
/// let config = BackoffConfig::new(Duration::from_secs(10), Duration::from_secs(1));
/// assert_eq!(
///     config.validate(),
///     Err(InvalidBackoff::BaseExceedsMax {
///         base: Duration::from_secs(10),
///         max: Duration::from_secs(1),
///     })
/// );
/// assert_eq!(
///     config.validate().unwrap_err().to_string(),
///     "base delay 10s exceeds max delay 1s"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidBackoff {
    /// The max delay is above [`MAX_DELAY`], so adding a delay to an instant
    /// could overflow in the caller.
    MaxTooLarge {
        /// The rejected max delay.
        max: Duration,
    },
    /// The base delay is above the max delay.
    BaseExceedsMax {
        /// The rejected base delay.
        base: Duration,
        /// The max delay it was compared with.
        max: Duration,
    },
    /// The multiplier is NaN or infinite.
    MultiplierNotFinite,
    /// The multiplier is below `1.0`, so the delays would shrink.
    MultiplierBelowOne,
    /// The circuit breaker window is zero: no failure would ever be inside it.
    ZeroWindow,
    /// The circuit breaker allows more than [`MAX_BREAKER_RETRIES`] retries, which
    /// would let its memory grow without a useful bound.
    MaxRetriesTooLarge {
        /// The rejected number of retries.
        max_retries: u32,
    },
}

impl fmt::Display for InvalidBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxTooLarge { max } => {
                write!(f, "max delay {max:?} exceeds the limit of {MAX_DELAY:?}")
            }
            Self::BaseExceedsMax { base, max } => {
                write!(f, "base delay {base:?} exceeds max delay {max:?}")
            }
            Self::MultiplierNotFinite => f.write_str("multiplier is not finite"),
            Self::MultiplierBelowOne => f.write_str("multiplier is below 1"),
            Self::ZeroWindow => f.write_str("circuit breaker window is zero"),
            Self::MaxRetriesTooLarge { max_retries } => write!(
                f,
                "circuit breaker max retries {max_retries} exceeds the limit of {MAX_BREAKER_RETRIES}"
            ),
        }
    }
}

// `core::error::Error` is the trait `std::error::Error` re-exports (Rust 1.81), so
// the impl needs no `std` feature and serves `no_std` users too.
impl core::error::Error for InvalidBackoff {}
