//! Rings, tiers, timestamps and aggregation.

use std::collections::BTreeMap;
use std::time::Duration;

use ottermq_metrics::{Aggregation, Ring, TierConfig, TierConfigError, TieredSeries, Timeline};
use proptest::prelude::*;

const EPOCH: i64 = 1_700_000_000_000;

fn small_config() -> TierConfig {
    TierConfig {
        fine_interval: Duration::from_secs(5),
        fine_len: 6,
        coarse_interval: Duration::from_secs(15),
        coarse_len: 4,
    }
}

#[test]
fn defaults_are_5s_for_10min_and_60s_for_2h() {
    let c = TierConfig::default();
    assert_eq!(c.fine_interval, Duration::from_secs(5));
    assert_eq!(c.fine_len, 120);
    assert_eq!(c.coarse_interval, Duration::from_secs(60));
    assert_eq!(c.coarse_len, 120);
    assert_eq!(c.fine_span(), Duration::from_secs(600));
    assert_eq!(c.coarse_span(), Duration::from_secs(7200));
    assert_eq!(c.sample_bytes(), 960);
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn invalid_configs_are_rejected() {
    let base = TierConfig::default();
    let bad = |f: fn(&mut TierConfig)| {
        let mut c = base;
        f(&mut c);
        c.validate()
    };
    assert_eq!(
        bad(|c| c.fine_interval = Duration::ZERO),
        Err(TierConfigError::BadInterval)
    );
    assert_eq!(
        bad(|c| c.fine_interval = Duration::from_micros(1500)),
        Err(TierConfigError::BadInterval)
    );
    assert_eq!(bad(|c| c.coarse_len = 0), Err(TierConfigError::ZeroLength));
    assert!(matches!(
        bad(|c| c.coarse_interval = Duration::from_secs(62)),
        Err(TierConfigError::NotMultiple { .. })
    ));
    assert_eq!(
        bad(|c| c.fine_len = 11),
        Err(TierConfigError::FineTooShort {
            fine_len: 11,
            needed: 12
        })
    );
}

#[test]
fn ring_wraparound_drops_oldest_and_keeps_ticks() {
    let mut r = Ring::new(4);
    assert!(r.is_empty());
    assert_eq!(r.newest_tick(), None);
    for t in 10..20u64 {
        assert!(r.record(t, t as f64 * 1.5));
    }
    assert!(r.is_full());
    assert_eq!(r.len(), 4);
    assert_eq!(r.oldest_tick(), Some(16));
    assert_eq!(r.newest_tick(), Some(19));
    let got: Vec<(u64, f64)> = r.iter().collect();
    assert_eq!(got, vec![(16, 24.0), (17, 25.5), (18, 27.0), (19, 28.5)]);
    assert_eq!(r.get(15), None);
    assert_eq!(r.get(17), Some(25.5));
    assert_eq!(r.get(20), None);
}

#[test]
fn ring_gaps_overwrites_and_stale_ticks() {
    let mut r = Ring::new(5);
    r.record(0, 1.0);
    r.record(3, 4.0); // ticks 1 and 2 missed
    let got: Vec<(u64, f64)> = r.iter().collect();
    assert_eq!(got.len(), 4);
    assert!(got[1].1.is_nan() && got[2].1.is_nan());
    assert_eq!((got[0], got[3]), ((0, 1.0), (3, 4.0)));
    assert!(r.record(3, 5.0), "same tick overwrites");
    assert!(r.record(1, 2.0), "a retained older tick is filled in");
    assert_eq!(r.get(3), Some(5.0));
    assert_eq!(r.get(1), Some(2.0));
    r.record(100, 9.0); // a gap longer than the ring
    assert_eq!(r.oldest_tick(), Some(96));
    assert!(!r.record(3, 1.0), "too old");
    assert_eq!(r.iter().filter(|(_, v)| !v.is_nan()).count(), 1);
}

#[test]
fn ring_of_capacity_zero_holds_one() {
    let mut r = Ring::new(0);
    assert_eq!(r.capacity(), 1);
    r.record(1, 1.0);
    r.record(2, 2.0);
    assert_eq!(r.iter().collect::<Vec<_>>(), vec![(2, 2.0)]);
}

#[test]
fn timeline_rounds_jitter_to_the_nearest_tick() {
    let tl = Timeline::new(&TierConfig::default(), EPOCH);
    assert_eq!(tl.fine_tick(EPOCH), 0);
    assert_eq!(tl.fine_tick(EPOCH - 10_000), 0);
    assert_eq!(tl.fine_tick(EPOCH + 4_990), 1);
    assert_eq!(tl.fine_tick(EPOCH + 5_000), 1);
    assert_eq!(tl.fine_tick(EPOCH + 7_499), 1);
    assert_eq!(tl.fine_tick(EPOCH + 10_020), 2);
    assert_eq!(tl.fine_time(3), EPOCH + 15_000);
    assert_eq!(tl.coarse_tick(25), 2);
    assert_eq!(tl.coarse_time(2), EPOCH + 120_000);
    assert_eq!(
        (tl.epoch_ms(), tl.fine_ms(), tl.ratio()),
        (EPOCH, 5_000, 12)
    );
}

#[test]
fn fine_points_have_implicit_timestamps_after_wrap() {
    let cfg = small_config();
    let mut s = TieredSeries::new(&cfg, EPOCH, Aggregation::Mean);
    for t in 0..10u64 {
        s.record(t, t as f64);
    }
    // Fine keeps ticks 4..=9; ask for the last 30 s at tick 9.
    let now = EPOCH + 45_000;
    let pts = s.points(now, Duration::from_secs(30));
    let expected: Vec<(i64, f64)> = (4..10).map(|t| (EPOCH + t * 5_000, t as f64)).collect();
    assert_eq!(pts, expected);
    // A narrower window, and one ending in the past.
    assert_eq!(
        s.points(now, Duration::from_secs(10)),
        expected[4..].to_vec()
    );
    assert_eq!(
        s.points(EPOCH + 30_000, Duration::from_secs(10)),
        vec![(EPOCH + 25_000, 5.0), (EPOCH + 30_000, 6.0)]
    );
    assert_eq!(s.latest(), Some((EPOCH + 45_000, 9.0)));
}

#[test]
fn coarse_aggregation_mean_last_max() {
    let cfg = small_config(); // 3 fine ticks per coarse point
    let values = [1.0, 5.0, 3.0, 10.0, 2.0, 6.0, 7.0];
    let run = |agg| {
        let mut s = TieredSeries::new(&cfg, EPOCH, agg);
        for (t, v) in values.iter().enumerate() {
            s.record(t as u64, *v);
        }
        s.coarse().iter().collect::<Vec<_>>()
    };
    assert_eq!(run(Aggregation::Mean), vec![(0, 3.0), (1, 6.0), (2, 7.0)]);
    assert_eq!(run(Aggregation::Last), vec![(0, 3.0), (1, 6.0), (2, 7.0)]);
    assert_eq!(run(Aggregation::Max), vec![(0, 5.0), (1, 10.0), (2, 7.0)]);
    // The current coarse period is refreshed on each fine tick, so it never lags.
    let mut s = TieredSeries::new(&cfg, EPOCH, Aggregation::Mean);
    s.record(0, 4.0);
    assert_eq!(s.coarse().get(0), Some(4.0));
    s.record(1, 8.0);
    assert_eq!(s.coarse().get(0), Some(6.0));
    // Gaps are ignored by the aggregate.
    s.record(3, 1.0);
    s.record(5, 3.0);
    assert_eq!(s.coarse().get(1), Some(2.0));
}

#[test]
fn tier_selection() {
    let cfg = small_config(); // fine: 6 × 5 s = 30 s; coarse: 4 × 15 s = 60 s
    let mut s = TieredSeries::new(&cfg, EPOCH, Aggregation::Mean);
    for t in 0..4u64 {
        s.record(t, 1.0);
    }
    let now = EPOCH + 15_000;
    // The fine ring still holds the whole series: fine even for a long duration.
    assert_eq!(s.points(now, Duration::from_secs(3600)).len(), 4);
    for t in 4..12u64 {
        s.record(t, t as f64);
    }
    let now = EPOCH + 55_000; // tick 11
                              // Within the fine span: fine points, 5 s apart.
    let fine = s.points(now, Duration::from_secs(30));
    assert_eq!(fine.len(), 6);
    assert!(fine.windows(2).all(|w| w[1].0 - w[0].0 == 5_000));
    // Beyond it (and the fine ring has wrapped): coarse points, 15 s apart, stamped at the
    // start of their period.
    let coarse = s.points(now, Duration::from_secs(60));
    assert_eq!(
        coarse,
        vec![
            (EPOCH, 1.0),
            (EPOCH + 15_000, f64::from((10.0f64 / 3.0) as f32)),
            (EPOCH + 30_000, 7.0),
            (EPOCH + 45_000, 10.0),
        ]
    );
    assert_eq!(
        s.points(now, Duration::from_secs(31)).len(),
        2,
        "31 s needs the coarse tier"
    );
}

#[test]
fn record_at_uses_the_nearest_tick() {
    let mut s = TieredSeries::new(&TierConfig::default(), EPOCH, Aggregation::Last);
    s.record_at(EPOCH + 20, 1.0);
    s.record_at(EPOCH + 5_030, 2.0);
    s.record_at(EPOCH + 9_990, 3.0);
    assert_eq!(
        s.points(EPOCH + 10_000, Duration::from_secs(60)),
        vec![(EPOCH, 1.0), (EPOCH + 5_000, 2.0), (EPOCH + 10_000, 3.0)]
    );
    assert!(s.memory_bytes() >= 960);
    assert_eq!(s.aggregation(), Aggregation::Last);
}

proptest! {
    /// The ring behaves like a map of the last `capacity` ticks (gaps as NaN).
    #[test]
    fn ring_matches_model(
        cap in 1usize..12,
        ops in prop::collection::vec((0u64..6, -1000.0f32..1000.0), 1..80),
    ) {
        let mut ring = Ring::new(cap);
        let mut model: BTreeMap<u64, f64> = BTreeMap::new();
        let mut tick = 0u64;
        for (step, value) in ops {
            tick += step;
            let value = f64::from(value);
            ring.record(tick, value);
            model.insert(tick, value);
            let newest = *model.keys().next_back().unwrap();
            let oldest = newest.saturating_sub(cap as u64 - 1).max(*model.keys().next().unwrap());
            let got: Vec<(u64, f64)> = ring.iter().collect();
            let want: Vec<(u64, Option<f64>)> =
                (oldest..=newest).map(|t| (t, model.get(&t).copied())).collect();
            prop_assert_eq!(got.len(), want.len());
            for ((gt, gv), (wt, wv)) in got.iter().zip(&want) {
                prop_assert_eq!(gt, wt);
                match wv {
                    Some(v) => prop_assert_eq!(gv, v),
                    None => prop_assert!(gv.is_nan()),
                }
            }
        }
    }

    /// Query results are in range, ordered, and equal to the recorded values.
    #[test]
    fn points_are_ordered_and_in_range(
        n in 1u64..400,
        now_tick in 0u64..450,
        dur_s in 1u64..20_000,
    ) {
        let cfg = TierConfig::default();
        let mut s = TieredSeries::new(&cfg, EPOCH, Aggregation::Last);
        for t in 0..n {
            s.record(t, t as f64);
        }
        let now = EPOCH + now_tick as i64 * 5_000;
        let pts = s.points(now, Duration::from_secs(dur_s));
        for w in pts.windows(2) {
            prop_assert!(w[0].0 < w[1].0);
        }
        for &(ts, v) in &pts {
            prop_assert!(ts > now - dur_s as i64 * 1_000 && ts <= now);
            prop_assert!(ts >= EPOCH);
            // Fine points carry their own tick; coarse (Last) points the last tick of the period.
            let tick = ((ts - EPOCH) / 5_000) as u64;
            prop_assert!(v as u64 >= tick && (v as u64) < tick + 12);
        }
    }
}
