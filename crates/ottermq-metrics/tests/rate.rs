//! Rates from counter readings.

use ottermq_metrics::RateTracker;
use proptest::prelude::*;

#[test]
fn exact_rates_for_known_deltas() {
    let mut r = RateTracker::new();
    assert_eq!(r.update(1_000, 0), None, "first reading: no rate");
    assert_eq!(r.update(1_500, 5_000), Some(100.0));
    assert_eq!(r.update(1_500, 10_000), Some(0.0));
    assert_eq!(r.update(1_503, 10_250), Some(12.0));
    assert_eq!(r.last(), Some((1_503, 10_250)));
}

#[test]
fn counter_reset_counts_from_zero() {
    let mut r = RateTracker::new();
    r.update(10_000, 0);
    // The object was recreated: the counter restarted and reached 40.
    assert_eq!(r.update(40, 4_000), Some(10.0));
    assert_eq!(r.update(80, 8_000), Some(10.0));
}

#[test]
fn time_must_advance() {
    let mut r = RateTracker::new();
    r.update(5, 1_000);
    assert_eq!(r.update(9, 1_000), None);
    assert_eq!(r.update(9, 500), None);
    assert_eq!(r.last(), Some((5, 1_000)), "rejected readings are not kept");
    assert_eq!(r.update(25, 3_000), Some(10.0));
    r.reset();
    assert_eq!(r.update(100, 4_000), None);
}

proptest! {
    #[test]
    fn rate_is_delta_over_seconds(
        start in 0u64..1 << 40,
        deltas in prop::collection::vec((0u64..1_000_000, 1i64..100_000), 1..20),
    ) {
        let mut r = RateTracker::new();
        let (mut value, mut now) = (start, 1_700_000_000_000i64);
        r.update(value, now);
        for (d, ms) in deltas {
            value += d;
            now += ms;
            let rate = r.update(value, now).unwrap();
            prop_assert_eq!(rate, d as f64 * 1000.0 / ms as f64);
        }
    }
}
