//! The arithmetic of the delays: the saturating exponential `d(n)` and the jitter draws.
//!
//! # Invariants
//!
//! 1. Nothing here panics or overflows, for any input (valid config or not).
//! 2. Every delay is computed in integer nanoseconds (`u64`); a valid config has
//!    `max ≤ MAX_DELAY` (about 4.3·10¹⁸ ns), so every delay fits.
//! 3. `exponential_nanos` is non-decreasing in the attempt and lies in `[base, max]`
//!    when `0 < base ≤ max`; it is `0` when `base` is `0`.

use core::time::Duration;

use crate::{Jitter, SplitMix64};

/// `2⁶⁴`: every finite value at or above it saturates a `u64`.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

/// The nanoseconds of `duration`, saturated to `u64::MAX`.
pub(crate) fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `min(max, max(base, base · multiplierⁿ))` in nanoseconds, rounded down to
/// within one nanosecond; `0` when `base` is `0`.
///
/// `multiplierⁿ` is computed with double-double arithmetic (about 106 bits), so
/// the relative error stays far below 10⁻¹⁵ even for `n` near `u32::MAX`, which
/// keeps the sequence non-decreasing. A multiplier that is NaN or below `1`
/// (only possible in an invalid config) is treated as `1`.
pub(crate) fn exponential_nanos(base: u64, max: u64, multiplier: f64, attempt: u32) -> u64 {
    if base == 0 {
        return 0;
    }
    let multiplier = if multiplier >= 1.0 { multiplier } else { 1.0 };
    let scaled = match power(multiplier, attempt) {
        Some(power) => DoubleDouble::from_u64(base).mul(power).to_u64_saturating(),
        None => u64::MAX,
    };
    scaled.max(base).min(max)
}

/// The delay for `attempt` under `jitter`, in nanoseconds, drawing from `rng`.
///
/// `previous` is the last delay handed out by a [`Jitter::Decorrelated`]
/// schedule (the base before the first one); the other kinds ignore it.
pub(crate) fn jittered_nanos(
    jitter: Jitter,
    base: u64,
    max: u64,
    exponential: u64,
    previous: u64,
    rng: &mut SplitMix64,
) -> u64 {
    match jitter {
        Jitter::None => exponential,
        Jitter::Equal => {
            rng.next_in_range(exponential.saturating_sub(exponential / 2), exponential)
        }
        Jitter::Full => rng.next_in_range(exponential.min(1), exponential),
        Jitter::Decorrelated => rng.next_in_range(base, max.min(previous.saturating_mul(3))),
    }
}

/// `multiplierⁿ` for `multiplier ≥ 1`, or `None` when it certainly exceeds `2⁶⁴`
/// (then any delay with a base of at least 1 ns saturates at the max).
///
/// Exponentiation by squaring, at most 32 rounds. A squaring only happens on a
/// value at most `2⁶⁴`, so every operand stays at or below `2¹²⁸`, far from
/// the range where the Dekker split overflows. A product above `2⁶⁴` is returned
/// as is: it saturates when converted.
fn power(multiplier: f64, attempt: u32) -> Option<DoubleDouble> {
    let mut remaining = attempt;
    let mut result = DoubleDouble::ONE;
    let mut square = DoubleDouble::from_f64(multiplier);
    for _ in 0..u32::BITS {
        if remaining == 0 {
            break;
        }
        if square.hi > TWO_POW_64 {
            // A bit of `remaining` is set, so `result ≥ 1` will be multiplied by
            // at least `square`.
            return None;
        }
        if remaining & 1 == 1 {
            // `result` is `multiplier` raised to the bits of `attempt` below this
            // one, so it is below `square ≤ 2⁶⁴` and the product below `2¹²⁸`.
            result = result.mul(square);
        }
        remaining >>= 1;
        square = square.mul(square);
    }
    Some(result)
}

/// An unevaluated sum `hi + lo` with `|lo| ≤ ulp(hi) / 2`: about 106 bits of
/// precision from plain `f64` operations (Dekker, 1971), with no fused multiply-add
/// (not available in `core`).
#[derive(Clone, Copy)]
struct DoubleDouble {
    hi: f64,
    lo: f64,
}

impl DoubleDouble {
    const ONE: Self = Self { hi: 1.0, lo: 0.0 };

    /// `2²⁷ + 1`, which splits a 53-bit significand into two 26-bit halves.
    const SPLITTER: f64 = 134_217_729.0;

    const fn from_f64(value: f64) -> Self {
        Self { hi: value, lo: 0.0 }
    }

    /// The exact value of `value` (a `u64` has up to 64 significant bits).
    fn from_u64(value: u64) -> Self {
        let hi = value as f64;
        // `hi` is `value` rounded to 53 bits, at most 2⁶⁴, so the difference is
        // exact in `i128` and small enough (below 2¹¹) to be exact in `f64`.
        let lo = i128::from(value).saturating_sub(hi as i128) as f64;
        Self { hi, lo }
    }

    /// The product, rounded to double-double precision.
    fn mul(self, other: Self) -> Self {
        let (product, error) = two_product(self.hi, other.hi);
        let error = error + (self.hi * other.lo + self.lo * other.hi);
        let hi = product + error;
        let lo = error - (hi - product);
        Self { hi, lo }
    }

    /// The value, within one unit of its floor, saturated to `0..=u64::MAX`.
    ///
    /// The result is a non-decreasing function of the represented value: it is
    /// `trunc(hi) + trunc(lo)`, and `|lo| < 1/2` whenever `hi` has a fraction.
    fn to_u64_saturating(self) -> u64 {
        if self.hi >= TWO_POW_64 {
            return u64::MAX;
        }
        (self.hi as u64).saturating_add_signed(self.lo as i64)
    }
}

/// `a · b` as `product + error` exactly (Dekker's `TwoProduct`).
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let product = a * b;
    let (a_hi, a_lo) = split(a);
    let (b_hi, b_lo) = split(b);
    let error = ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo;
    (product, error)
}

/// `value` as `hi + lo`, each with at most 26 significant bits (Veltkamp's split).
fn split(value: f64) -> (f64, f64) {
    let scaled = DoubleDouble::SPLITTER * value;
    let hi = scaled - (scaled - value);
    (hi, value - hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_is_exact_for_powers_of_two() {
        assert_eq!(exponential_nanos(1_000, u64::MAX, 2.0, 0), 1_000);
        assert_eq!(exponential_nanos(1_000, u64::MAX, 2.0, 10), 1_024_000);
        assert_eq!(exponential_nanos(3, u64::MAX, 2.0, 62), 3 << 62);
        assert_eq!(exponential_nanos(3, u64::MAX, 2.0, 63), u64::MAX);
    }

    #[test]
    fn exponential_keeps_the_low_bits_of_a_large_base() {
        // 2⁶⁰ + 1 is not an `f64`; double-double keeps the last bit.
        let base = (1_u64 << 60) + 1;
        assert_eq!(exponential_nanos(base, u64::MAX, 1.0, 7), base);
        assert_eq!(exponential_nanos(base, u64::MAX, 2.0, 1), (base << 1));
        assert_eq!(
            exponential_nanos(base, u64::MAX, 1.5, 1),
            base + (base >> 1)
        );
    }

    #[test]
    fn huge_multipliers_saturate_instead_of_producing_nan() {
        assert_eq!(exponential_nanos(1, 77, f64::MAX, 0), 1);
        assert_eq!(exponential_nanos(1, 77, f64::MAX, 1), 77);
        assert_eq!(exponential_nanos(1, 77, f64::INFINITY, 1), 77);
        assert_eq!(exponential_nanos(1, 77, TWO_POW_64, 1), 77);
        assert_eq!(exponential_nanos(1, u64::MAX, TWO_POW_64, 1), u64::MAX);
        assert_eq!(exponential_nanos(1, u64::MAX, 4_294_967_296.0, 2), u64::MAX);
        assert_eq!(exponential_nanos(1, u64::MAX, 4_294_967_296.0, 1), 1 << 32);
    }

    #[test]
    fn invalid_multipliers_behave_like_one() {
        assert_eq!(exponential_nanos(5, 100, f64::NAN, 3), 5);
        assert_eq!(exponential_nanos(5, 100, 0.5, 3), 5);
        assert_eq!(exponential_nanos(5, 100, f64::NEG_INFINITY, 3), 5);
    }

    #[test]
    fn saturating_nanos_saturates() {
        assert_eq!(saturating_nanos(Duration::from_nanos(7)), 7);
        assert_eq!(saturating_nanos(Duration::MAX), u64::MAX);
    }
}
