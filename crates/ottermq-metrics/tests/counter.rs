//! Counters, gauges and histograms stay exact under concurrent recording.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use ottermq_metrics::{Counter, Gauge, Histogram, HistogramReader};

const THREADS: u64 = 4;
const PER_THREAD: u64 = 250_000;

#[test]
fn counter_exact_under_concurrent_increments() {
    let c = Counter::new();
    thread::scope(|s| {
        for t in 0..THREADS {
            let c = &c;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    if (i + t) % 2 == 0 {
                        c.inc();
                    } else {
                        c.add(3);
                    }
                }
            });
        }
    });
    assert_eq!(c.get(), THREADS * PER_THREAD / 2 * 4);
}

#[test]
fn gauge_balances_under_concurrent_inc_dec() {
    let g = Gauge::new();
    g.set(100);
    thread::scope(|s| {
        for t in 0..THREADS {
            let g = &g;
            s.spawn(move || {
                for _ in 0..PER_THREAD {
                    if t % 2 == 0 {
                        g.inc();
                        g.add(5);
                    } else {
                        g.dec();
                        g.sub(5);
                    }
                }
            });
        }
    });
    assert_eq!(g.get(), 100);
    g.set(-7);
    assert_eq!(g.get(), -7);
}

#[test]
fn histogram_counts_exact_under_concurrent_records_and_reads() {
    let h = Arc::new(Histogram::new());
    let done = Arc::new(AtomicBool::new(false));
    // The sampler ticks while writers record: every record must land in exactly one window.
    let sampler = {
        let (h, done) = (h.clone(), done.clone());
        thread::spawn(move || {
            let mut reader = HistogramReader::new();
            let mut windows = 0u64;
            while !done.load(Ordering::Acquire) {
                windows += reader.tick(&h).count();
            }
            windows += reader.tick(&h).count();
            (windows, reader)
        })
    };
    thread::scope(|s| {
        for t in 0..THREADS {
            let h = &h;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    h.record((i * 7 + t) % 5_000_000);
                }
            });
        }
    });
    done.store(true, Ordering::Release);
    let (windows, reader) = sampler.join().unwrap();
    let total = THREADS * PER_THREAD;
    assert_eq!(windows, total);
    assert_eq!(reader.cumulative().count(), total);
    assert_eq!(h.snapshot().count(), total);
    let expected_sum: u64 = (0..THREADS)
        .flat_map(|t| (0..PER_THREAD).map(move |i| (i * 7 + t) % 5_000_000))
        .sum();
    assert_eq!(reader.cumulative().sum(), expected_sum);
    // A maximum racing with a tick may only be known to bucket precision.
    let true_max = (0..THREADS)
        .flat_map(|t| (0..PER_THREAD).map(move |i| (i * 7 + t) % 5_000_000))
        .max()
        .unwrap();
    let max = reader.cumulative().max();
    assert!(max <= true_max && max as f64 >= true_max as f64 * (1.0 - 1.0 / 32.0));
}
