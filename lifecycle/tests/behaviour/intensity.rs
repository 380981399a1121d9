//! `IntensityWindow` against a reference model that keeps every charge ever
//! made, and the edges of OTP's counting, one by one.

use core::time::Duration;

use proptest::prelude::*;
use supervisor_lifecycle::{IntensityExceeded, IntensityWindow, RestartIntensity};

/// The rule as written: every charge since the last reset, the new one
/// included; trips when more than `max_restarts` lie within `period` of
/// `now`, the bound inclusive. Time never goes back: a `now` before the
/// latest charge is the latest charge's time.
#[derive(Debug, Default)]
struct Model {
    charges: Vec<Duration>,
}

impl Model {
    fn within(&self, intensity: RestartIntensity, now: Duration) -> u32 {
        let within = self
            .charges
            .iter()
            .filter(|&&at| at <= now && now - at <= intensity.period())
            .count();
        u32::try_from(within).unwrap()
    }

    /// The time a charge at `now` is made at.
    fn effective(&self, now: Duration) -> Duration {
        self.charges.last().map_or(now, |&latest| now.max(latest))
    }

    fn charge(&mut self, intensity: RestartIntensity, now: Duration) -> Result<(), u32> {
        let now = self.effective(now);
        self.charges.push(now);
        let within = self.within(intensity, now);
        if within > intensity.max_restarts() {
            Err(within)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Charge after this much time (time goes forward).
    Charge(Duration),
    /// Charge this much *earlier* than the last time (a clock gone back).
    ChargeEarlier(Duration),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    let step = (0u64..3_000).prop_map(Duration::from_millis);
    prop_oneof![
        8 => step.clone().prop_map(Op::Charge),
        1 => step.prop_map(Op::ChargeEarlier),
        1 => Just(Op::Reset),
    ]
}

fn intensity() -> impl Strategy<Value = RestartIntensity> {
    (0u32..6, 0u64..5_000)
        .prop_map(|(max, period)| RestartIntensity::new(max, Duration::from_millis(period)))
}

proptest! {
    #[test]
    fn charges_agree_with_the_model(
        intensity in intensity(),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let mut window = IntensityWindow::new(intensity);
        let mut model = Model::default();
        let mut now = Duration::ZERO;
        for op in ops {
            let at = match op {
                Op::Charge(step) => { now += step; now }
                Op::ChargeEarlier(back) => now.saturating_sub(back),
                Op::Reset => {
                    window.reset();
                    model.charges.clear();
                    prop_assert_eq!(window.restarts_in_window(now), 0);
                    continue;
                }
            };
            let at_effective = model.effective(at);
            let expected = model.charge(intensity, at);
            let actual = window.charge(at);
            match (actual, expected) {
                (Ok(()), Ok(())) => {}
                (Err(IntensityExceeded { intensity: seen, restarts, at: when }), Err(within)) => {
                    prop_assert_eq!(seen, intensity);
                    // The window keeps only what can decide (invariant 2).
                    prop_assert_eq!(restarts, within.min(intensity.max_restarts() + 1));
                    prop_assert_eq!(when, at_effective);
                }
                (actual, expected) => {
                    prop_assert!(false, "at {:?}: window {:?}, model {:?}", at_effective, actual, expected);
                }
            }
            // Invariant 2, and the count agrees up to what is kept.
            let probe = at_effective + intensity.period() / 2;
            prop_assert_eq!(
                window.restarts_in_window(probe),
                model.within(intensity, probe).min(intensity.max_restarts() + 1)
            );
        }
    }
}

const fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[test]
fn zero_trips_on_the_first_restart() {
    let mut window = IntensityWindow::new(RestartIntensity::new(0, secs(5)));
    let tripped = window.charge(secs(100)).unwrap_err();
    assert_eq!(tripped.restarts, 1);
}

#[test]
fn max_restarts_are_tolerated_and_the_next_one_trips() {
    // OTP's `multiple_restarts`: intensity 3 in 1 s; three quick restarts
    // pass, the fourth trips.
    let mut window = IntensityWindow::new(RestartIntensity::new(3, secs(1)));
    for millis in [0, 100, 200] {
        assert!(window.charge(Duration::from_millis(millis)).is_ok());
    }
    assert!(window.charge(Duration::from_millis(300)).is_err());
}

#[test]
fn a_restart_exactly_period_ago_still_counts() {
    let mut window = IntensityWindow::new(RestartIntensity::new(1, secs(5)));
    window.charge(secs(10)).unwrap();
    assert_eq!(window.restarts_in_window(secs(15)), 1);
    assert!(window.charge(secs(15)).is_err());
}

#[test]
fn a_restart_just_beyond_the_period_does_not() {
    let mut window = IntensityWindow::new(RestartIntensity::new(1, secs(5)));
    window.charge(secs(10)).unwrap();
    let later = secs(15) + Duration::from_nanos(1);
    assert_eq!(window.restarts_in_window(later), 0);
    assert!(window.charge(later).is_ok());
}

#[test]
fn the_window_slides() {
    // OTP's `one_for_one`-style pacing: one restart every 3 s under 1 in
    // 5 s trips at the second; one every 6 s never does.
    let mut tight = IntensityWindow::new(RestartIntensity::OTP_DEFAULT);
    assert!(tight.charge(secs(0)).is_ok());
    assert!(tight.charge(secs(3)).is_err());
    let mut paced = IntensityWindow::new(RestartIntensity::OTP_DEFAULT);
    for n in 0..100 {
        assert!(paced.charge(secs(6 * n)).is_ok(), "restart {n}");
    }
}

#[test]
fn tripped_charges_count_too() {
    // A group that keeps trying after a trip (its caller's choice) stays
    // tripped until the window empties.
    let mut window = IntensityWindow::new(RestartIntensity::new(1, secs(5)));
    window.charge(secs(0)).unwrap();
    assert!(window.charge(secs(1)).is_err());
    assert!(window.charge(secs(5)).is_err()); // 1 s and 5 s are within 5 s.
    assert!(window.charge(secs(11)).is_ok());
}

#[test]
fn memory_stays_bounded() {
    let mut window = IntensityWindow::new(RestartIntensity::new(2, secs(3600)));
    for n in 0..10_000 {
        let _ = window.charge(Duration::from_millis(n));
    }
    assert_eq!(window.restarts_in_window(secs(1)), 3);
}

#[test]
fn a_clock_that_goes_back_counts_as_the_latest_charge() {
    let mut window = IntensityWindow::new(RestartIntensity::new(1, secs(5)));
    window.charge(secs(10)).unwrap();
    let tripped = window.charge(secs(2)).unwrap_err();
    assert_eq!(tripped.at, secs(10));
    assert_eq!(window.restarts_in_window(secs(15)), 2);
}
