//! SplitMix64: the tiny deterministic generator behind the jitter.

/// The SplitMix64 pseudo-random generator (Steele, Lea and Flood, 2014), seeded
/// by the caller.
///
/// The jitter of this crate draws from it, so the same config, seed and inputs
/// always give the same delays. It is exposed so that tests and simulations can
/// reproduce the draws; it is fast and statistically good, but **not**
/// cryptographically secure, which backoff jitter does not need.
///
/// The output sequence is the one of Vigna's reference `splitmix64.c`: the state
/// advances by `0x9E3779B97F4A7C15` and the output is the state mixed by the
/// MurmurHash3 finalizer variant "Mix13". Every seed, `0` included, is fine.
///
/// # Examples
///
/// ```
/// use supervisor_backoff::SplitMix64;
///
/// let mut rng = SplitMix64::new(1_477_776_061_723_855_037);
/// assert_eq!(rng.next_u64(), 1_985_237_415_132_408_290);
/// assert_eq!(rng.next_u64(), 2_979_275_885_539_914_483);
///
/// let mut a = SplitMix64::new(7);
/// let mut b = a.clone();
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The increment of the state: the odd integer closest to 2⁶⁴ divided by the
    /// golden ratio.
    const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// Creates a generator whose sequence is determined by `seed`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_backoff::SplitMix64;
    ///
    /// assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    /// ```
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Returns the next 64 uniformly distributed bits.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_backoff::SplitMix64;
    ///
    /// let mut rng = SplitMix64::new(u64::MAX);
    /// assert_ne!(rng.next_u64(), rng.next_u64());
    /// ```
    pub const fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a value uniformly distributed in `lo..=hi`, consuming exactly one
    /// output of [`next_u64`](Self::next_u64).
    ///
    /// The draw is `lo + ⌊x · (hi − lo + 1) / 2⁶⁴⌋` with `x` the next output (a
    /// widening multiply, so the range can never be empty and never overflows).
    /// When `hi ≤ lo` the result is `lo`.
    ///
    /// # Examples
    ///
    /// ```
    /// use supervisor_backoff::SplitMix64;
    ///
    /// let mut rng = SplitMix64::new(42);
    /// for _ in 0..100 {
    ///     let x = rng.next_in_range(10, 20);
    ///     assert!((10..=20).contains(&x));
    /// }
    /// assert_eq!(rng.next_in_range(5, 5), 5);
    /// assert_eq!(rng.next_in_range(u64::MAX, 0), u64::MAX);
    /// assert!(rng.next_in_range(0, u64::MAX) <= u64::MAX);
    /// ```
    pub const fn next_in_range(&mut self, lo: u64, hi: u64) -> u64 {
        let x = self.next_u64() as u128;
        let span = hi.saturating_sub(lo) as u128;
        // x < 2⁶⁴ and span + 1 ≤ 2⁶⁴, so the product is below 2¹²⁸ and the
        // shifted value is at most `span`: neither operation can overflow.
        let offset = (x.wrapping_mul(span.wrapping_add(1)) >> 64) as u64;
        lo.saturating_add(offset)
    }
}
