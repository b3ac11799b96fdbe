//! Hot-path recording cost and sampler tick cost.
//!
//! `cargo bench -p ottermq-metrics --bench record -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use ottermq_metrics::{
    Counter, Gauge, Histogram, HistogramReader, MetricId, ObjectKey, SeriesStore,
};

/// Latency-like values (µs) spread over ~100 buckets, precomputed so the bench measures
/// recording, not value generation.
fn values() -> Vec<u64> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            50 + (x % 1024) * (1 + (x >> 60)) * 7
        })
        .collect()
}

/// Runs `work` on a second thread until the measurement ends, to measure under contention.
fn with_background<T: Sync>(
    shared: &T,
    work: impl Fn(&T, u64) + Send + Sync,
    measure: impl FnOnce(),
) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                work(shared, i);
                i = i.wrapping_add(1);
            }
        });
        measure();
        stop.store(true, Ordering::Relaxed);
    });
}

fn hot_path(c: &mut Criterion) {
    let vals = values();
    let mut g = c.benchmark_group("hot_path");

    let counter = Counter::new();
    g.bench_function("counter_inc/1_thread", |b| {
        b.iter(|| black_box(&counter).inc())
    });
    with_background(
        &counter,
        |c, _| c.inc(),
        || {
            g.bench_function("counter_inc/2_threads_same_counter", |b| {
                b.iter(|| black_box(&counter).inc())
            });
        },
    );

    let hist = Histogram::new();
    let mut i = 0usize;
    g.bench_function("histogram_record/1_thread", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(&hist).record(vals[i]);
        })
    });
    with_background(
        &hist,
        |h, n| h.record(vals[(n as usize * 7) & 1023]),
        || {
            g.bench_function("histogram_record/2_threads_same_histogram", |b| {
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(&hist).record(vals[i]);
                })
            });
        },
    );
    g.finish();
}

fn histogram_reader(c: &mut Criterion) {
    let vals = values();
    let hist = Histogram::new();
    for &v in &vals {
        hist.record(v);
    }
    let mut reader = HistogramReader::new();
    reader.tick(&hist);
    let mut g = c.benchmark_group("histogram_reader_tick");
    g.bench_function("quiet_window", |b| {
        b.iter(|| black_box(reader.tick(&hist).count()))
    });
    g.bench_function("window_of_1024_records", |b| {
        b.iter_batched(
            || {
                for &v in &vals {
                    hist.record(v);
                }
            },
            |()| black_box(reader.tick(&hist).percentile(0.99)),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// What the broker's objects would hold: two counters and two gauges per object.
struct Object {
    key: ObjectKey,
    published: Counter,
    delivered: Counter,
    ready: Gauge,
    consumers: Gauge,
}

fn sampler_tick(c: &mut Criterion) {
    let mut g = c.benchmark_group("sampler_tick");
    for series in [1_000usize, 10_000] {
        let objects: Vec<Object> = (0..series / 4)
            .map(|i| Object {
                key: ObjectKey::queue("/", format!("queue-{i}")),
                published: Counter::new(),
                delivered: Counter::new(),
                ready: Gauge::new(),
                consumers: Gauge::new(),
            })
            .collect();
        let mut store = SeriesStore::default();
        let mut now = 1_700_000_000_000i64;
        let tick = |store: &mut SeriesStore, now: i64| {
            store.begin_tick(now);
            for o in &objects {
                o.published.add(17);
                o.delivered.add(11);
                o.ready.add(6);
                let mut rec = store.object(&o.key);
                rec.counter(MetricId::Published, o.published.get());
                rec.counter(MetricId::Delivered, o.delivered.get());
                rec.gauge(MetricId::MessagesReady, o.ready.get());
                rec.gauge(MetricId::Consumers, o.consumers.get());
            }
            store.prune_unseen()
        };
        // Create every series and fill the rings so the measured ticks wrap them.
        for _ in 0..150 {
            now += 5_000;
            tick(&mut store, now);
        }
        assert_eq!(store.series_count(), series);
        g.bench_with_input(BenchmarkId::from_parameter(series), &series, |b, _| {
            b.iter(|| {
                now += 5_000;
                black_box(tick(&mut store, now))
            })
        });
        eprintln!(
            "{series} series: store ≈ {} KiB ({} B/series)",
            store.memory_bytes() / 1024,
            store.memory_per_series()
        );
    }
    g.finish();
}

criterion_group!(benches, hot_path, histogram_reader, sampler_tick);
criterion_main!(benches);
