//! Histogram accuracy, window/cumulative semantics, merging and Prometheus buckets.

use ottermq_metrics::histogram::{MAX_TRACKED, RELATIVE_ERROR};
use ottermq_metrics::{Histogram, HistogramReader, HistogramSnapshot};
use proptest::prelude::*;

const QUANTILES: [f64; 7] = [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999];

/// The exact percentile with the documented definition: the sorted value at rank ceil(q·n).
fn exact(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len() as u64;
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    sorted[(rank - 1) as usize]
}

fn rel_err(est: u64, truth: u64) -> f64 {
    if truth == 0 {
        est as f64
    } else {
        (est as f64 - truth as f64).abs() / truth as f64
    }
}

fn snapshot_of(values: &[u64]) -> HistogramSnapshot {
    let h = Histogram::new();
    for &v in values {
        h.record(v);
    }
    h.snapshot()
}

fn assert_percentiles(values: &mut [u64], label: &str) {
    let snap = snapshot_of(values);
    values.sort_unstable();
    let mut worst = 0f64;
    for q in QUANTILES {
        let (est, truth) = (snap.percentile(q), exact(values, q));
        let err = rel_err(est, truth);
        assert!(
            err <= RELATIVE_ERROR,
            "{label}: q={q} estimate {est} exact {truth} error {err:.4}"
        );
        worst = worst.max(err);
    }
    eprintln!("{label}: worst relative error over {QUANTILES:?} = {worst:.5}");
    assert_eq!(
        snap.percentile(1.0),
        *values.last().unwrap(),
        "{label}: p100 is the max"
    );
}

/// splitmix64: a small deterministic generator so the tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[test]
fn uniform_percentiles_within_documented_error() {
    let mut values: Vec<u64> = (1..=100_000).collect();
    assert_percentiles(&mut values, "uniform 1..=100000");
}

#[test]
fn lognormal_percentiles_within_documented_error() {
    // Latency-like: median 1 ms in µs, long right tail.
    let mut rng = Rng(42);
    let mut values: Vec<u64> = (0..200_000)
        .map(|_| (1_000f64.ln() + 1.2 * rng.normal()).exp().round() as u64)
        .collect();
    assert_percentiles(&mut values, "log-normal");
}

#[test]
fn mean_sum_count_max() {
    let snap = snapshot_of(&[10, 20, 30, 1_000_000]);
    assert_eq!(snap.count(), 4);
    assert_eq!(snap.sum(), 1_000_060);
    assert_eq!(snap.max(), 1_000_000);
    assert_eq!(snap.mean(), 250_015.0);
    let empty = HistogramSnapshot::new();
    assert!(empty.is_empty());
    assert_eq!((empty.count(), empty.sum(), empty.max()), (0, 0, 0));
    assert_eq!(empty.mean(), 0.0);
    assert_eq!(empty.percentile(0.5), 0);
}

#[test]
fn record_n_counts_n_times() {
    let h = Histogram::new();
    h.record_n(500, 3);
    h.record_n(7, 0);
    let snap = h.snapshot();
    assert_eq!((snap.count(), snap.sum()), (3, 1500));
    assert!(rel_err(snap.percentile(0.5), 500) <= RELATIVE_ERROR);
    assert_eq!(snap.percentile(1.0), 500);
}

#[test]
fn quantile_arguments_are_clamped() {
    let snap = snapshot_of(&[1, 2, 3, 4]);
    assert_eq!(snap.percentile(-1.0), 1);
    assert_eq!(snap.percentile(f64::NAN), 1);
    assert_eq!(snap.percentile(2.0), 4);
    assert_eq!(snap.percentile(0.5), 2);
}

#[test]
fn window_versus_cumulative() {
    let h = Histogram::new();
    let mut reader = HistogramReader::new();
    for v in [100, 200, 300] {
        h.record(v);
    }
    let w = reader.tick(&h);
    assert_eq!((w.count(), w.sum(), w.max()), (3, 600, 300));

    for v in [5_000, 6_000] {
        h.record(v);
    }
    let w = reader.tick(&h).clone();
    assert_eq!((w.count(), w.sum(), w.max()), (2, 11_000, 6_000));
    assert!(
        w.percentile(0.0) >= 4_900,
        "the window holds only the second batch"
    );
    assert_eq!(reader.window(), &w);

    let c = reader.cumulative();
    assert_eq!((c.count(), c.sum(), c.max()), (5, 11_600, 6_000));
    assert_eq!(c.percentile(0.0), 100);

    // A quiet interval: empty window, cumulative unchanged.
    let w = reader.tick(&h);
    assert!(w.is_empty());
    assert_eq!(w.max(), 0);
    assert_eq!(reader.cumulative().count(), 5);
    assert_eq!(reader.cumulative().max(), 6_000);
    assert!(reader.memory_bytes() > 0);
}

#[test]
fn window_max_is_per_window() {
    let h = Histogram::new();
    let mut reader = HistogramReader::new();
    h.record(1_000_000);
    assert_eq!(reader.tick(&h).max(), 1_000_000);
    h.record(10);
    assert_eq!(reader.tick(&h).max(), 10);
    assert_eq!(reader.cumulative().max(), 1_000_000);
}

#[test]
fn reader_restarts_when_handed_a_recreated_histogram() {
    let mut reader = HistogramReader::new();
    let old = Histogram::new();
    for _ in 0..10 {
        old.record(50);
    }
    reader.tick(&old);
    let new = Histogram::new();
    new.record(70);
    let w = reader.tick(&new);
    assert_eq!((w.count(), w.sum()), (1, 70));
    assert_eq!(reader.cumulative().count(), 1);
}

#[test]
fn merge_equals_recording_everything_in_one() {
    let a: Vec<u64> = (0..1000).map(|i| i * 13).collect();
    let b: Vec<u64> = (0..500).map(|i| 40_000 + i * 1_001).collect();
    let mut merged = snapshot_of(&a);
    merged.merge(&snapshot_of(&b));
    let all: Vec<u64> = a.iter().chain(&b).copied().collect();
    assert_eq!(merged, snapshot_of(&all));

    let mut broker = HistogramSnapshot::new();
    broker.merge(&snapshot_of(&a));
    broker.merge(&HistogramSnapshot::new());
    assert_eq!(broker, snapshot_of(&a));
}

#[test]
fn overflow_is_clamped_and_reports_the_max() {
    let big = MAX_TRACKED * 4;
    let snap = snapshot_of(&[1, 2, big]);
    assert_eq!(snap.count(), 3);
    assert_eq!(snap.max(), big);
    assert_eq!(snap.percentile(1.0), big);
    assert_eq!(snap.percentile(0.5), 2);
    let (lo, hi, n) = snap.buckets().last().unwrap();
    assert_eq!((lo, hi, n), (MAX_TRACKED + 1, u64::MAX, 1));
    // Only +Inf counts overflowed values.
    let prom = snap.prometheus_buckets(&[1e12]);
    assert_eq!(prom, vec![(1e12, 2), (f64::INFINITY, 3)]);
}

#[test]
fn prometheus_buckets_are_cumulative_and_conservative() {
    let values: Vec<u64> = (1..=10_000).collect();
    let snap = snapshot_of(&values);
    // Unsorted, duplicated, NaN and infinite bounds are tolerated.
    let prom = snap.prometheus_buckets(&[1_000.0, 100.0, f64::NAN, 100.0, 5_000.0, f64::INFINITY]);
    let les: Vec<f64> = prom.iter().map(|p| p.0).collect();
    assert_eq!(les, vec![100.0, 1_000.0, 5_000.0, f64::INFINITY]);
    // 100 falls inside bucket [100, 101]: conservative, so 100 itself is not counted.
    assert_eq!(prom[0].1, 99);
    assert_eq!(prom[3].1, 10_000);
    // 1000 falls inside bucket [992, 1007]: that bucket is left to the next bound.
    assert_eq!(prom[1].1, 991);
    // 5000 falls inside bucket [4992, 5119].
    assert_eq!(prom[2].1, 4_991);
    for w in prom.windows(2) {
        assert!(w[0].1 <= w[1].1);
    }
    assert_eq!(
        HistogramSnapshot::new().prometheus_buckets(&[1.0]),
        vec![(1.0, 0), (f64::INFINITY, 0)]
    );
}

proptest! {
    #[test]
    fn percentile_error_bounded(
        values in prop::collection::vec(
            prop_oneof![0u64..100, 0u64..100_000, 0u64..=MAX_TRACKED], 1..400),
        q in 0.0f64..=1.0,
    ) {
        let snap = snapshot_of(&values);
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let (est, truth) = (snap.percentile(q), exact(&sorted, q));
        prop_assert!(rel_err(est, truth) <= RELATIVE_ERROR, "q={} est={} truth={}", q, est, truth);
        prop_assert_eq!(snap.count(), values.len() as u64);
        prop_assert_eq!(snap.sum(), values.iter().sum::<u64>());
        prop_assert_eq!(snap.max(), *sorted.last().unwrap());
    }

    #[test]
    fn merge_is_union(
        a in prop::collection::vec(0u64..10_000_000, 0..200),
        b in prop::collection::vec(0u64..10_000_000, 0..200),
    ) {
        let mut merged = snapshot_of(&a);
        merged.merge(&snapshot_of(&b));
        let all: Vec<u64> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(merged, snapshot_of(&all));
    }

    #[test]
    fn prometheus_bounds_bracket_the_truth(
        values in prop::collection::vec(0u64..1_000_000, 1..300),
        bounds in prop::collection::vec(0.0f64..2_000_000.0, 1..10),
    ) {
        let snap = snapshot_of(&values);
        for (le, got) in snap.prometheus_buckets(&bounds) {
            if le.is_infinite() {
                prop_assert_eq!(got, values.len() as u64);
                continue;
            }
            let at_most = values.iter().filter(|&&v| v as f64 <= le).count() as u64;
            let at_least = values.iter().filter(|&&v| (v as f64) <= le * (1.0 - 1.0 / 32.0)).count() as u64;
            prop_assert!(got <= at_most && got >= at_least, "le={} got={} range {}..={}", le, got, at_least, at_most);
        }
    }

    #[test]
    fn windows_partition_the_records(
        batches in prop::collection::vec(prop::collection::vec(0u64..1_000_000_000, 0..50), 1..8),
    ) {
        let h = Histogram::new();
        let mut reader = HistogramReader::new();
        let mut all = Vec::new();
        for batch in &batches {
            for &v in batch {
                h.record(v);
            }
            let w = reader.tick(&h).clone();
            prop_assert_eq!(&w, &snapshot_of(batch));
            all.extend_from_slice(batch);
        }
        prop_assert_eq!(reader.cumulative(), &snapshot_of(&all));
    }
}
