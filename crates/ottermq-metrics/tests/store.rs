//! The sampler's series store.

use std::time::Duration;

use ottermq_metrics::{
    series_memory, Aggregation, Counter, Gauge, Histogram, HistogramReader, MetricId, MetricKind,
    ObjectKey, SeriesStore, TierConfig,
};

const T0: i64 = 1_700_000_000_000;

#[test]
fn counters_become_rates_and_gauges_stay_levels() {
    let mut store = SeriesStore::default();
    let q = ObjectKey::queue("/", "orders");
    let published = Counter::new();
    let ready = Gauge::new();
    for tick in 0..4i64 {
        store.begin_tick(T0 + tick * 5_000);
        let mut obj = store.object(&q);
        obj.counter(MetricId::Published, published.get());
        obj.gauge(MetricId::MessagesReady, ready.get());
        published.add(50 * (tick as u64 + 1));
        ready.add(3);
    }
    let rates = store
        .points(
            &q,
            MetricId::Published,
            T0 + 15_000,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(
        rates,
        vec![(T0 + 5_000, 10.0), (T0 + 10_000, 20.0), (T0 + 15_000, 30.0)]
    );
    let levels = store
        .points(
            &q,
            MetricId::MessagesReady,
            T0 + 15_000,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(
        levels,
        vec![
            (T0, 0.0),
            (T0 + 5_000, 3.0),
            (T0 + 10_000, 6.0),
            (T0 + 15_000, 9.0)
        ]
    );
    assert_eq!(
        store.latest(&q, MetricId::MessagesReady),
        Some((T0 + 15_000, 9.0))
    );
    assert_eq!(store.series_count(), 2);
    assert_eq!(store.object_count(), 1);
    let mut metrics: Vec<MetricId> = store.metrics(&q).collect();
    metrics.sort();
    assert_eq!(metrics, vec![MetricId::Published, MetricId::MessagesReady]);
    assert_eq!(
        store.series(&q, MetricId::Published).unwrap().aggregation(),
        Aggregation::Mean
    );
    assert!(store
        .points(&q, MetricId::Acked, T0, Duration::from_secs(1))
        .is_none());
}

#[test]
fn shortcuts_and_jittered_ticks() {
    let mut store = SeriesStore::default();
    let b = ObjectKey::Broker;
    assert_eq!(store.begin_tick(T0 + 123), 0);
    store.record_counter(&b, MetricId::BytesIn, 0);
    store.record_gauge(&b, MetricId::Connections, 2);
    // The sampler wakes up 40 ms late: same tick grid, and the rate is over the tick
    // spacing, so the point times 5 s is the increase.
    assert_eq!(store.begin_tick(T0 + 5_163), 1);
    assert_eq!(store.current_tick(), 1);
    assert_eq!(store.now_ms(), T0 + 5_163);
    store.record_counter(&b, MetricId::BytesIn, 5_040);
    store.record(&b, MetricId::MemoryRss, 1e9);
    assert_eq!(
        store.latest(&b, MetricId::BytesIn),
        Some((T0 + 5_123, 1_008.0))
    );
    assert_eq!(
        store.latest(&b, MetricId::MemoryRss),
        Some((T0 + 5_123, 1e9))
    );
    assert_eq!(store.timeline().unwrap().epoch_ms(), T0 + 123);
}

/// Rounds that run late, early, twice on one tick or skip one: the rate series, each point
/// times the time since the previous point, still adds up to the counter's increase.
#[test]
fn a_rate_series_adds_up_to_the_increase_under_jitter() {
    let mut store = SeriesStore::new(TierConfig {
        fine_interval: Duration::from_millis(200),
        fine_len: 100,
        coarse_interval: Duration::from_secs(1),
        coarse_len: 10,
    })
    .unwrap();
    let b = ObjectKey::Broker;
    store.begin_tick(T0);
    store.record_counter(&b, MetricId::Published, 0);
    // (nominal tick, clock offset in ms, counter total): late, early, two rounds that land
    // on tick 3, then tick 4 skipped.
    let rounds = [
        (1, 90, 30),
        (2, -60, 100),
        (3, 60, 180),
        (3, 95, 190),
        (5, 10, 400),
    ];
    for (tick, offset, total) in rounds {
        store.begin_tick(T0 + tick * 200 + offset);
        store.record_counter(&b, MetricId::Published, total);
    }
    let points = store
        .points(&b, MetricId::Published, T0 + 2_000, Duration::from_secs(10))
        .unwrap();
    let mut sum = 0.0;
    for w in points.windows(2) {
        sum += w[1].1 * (w[1].0 - w[0].0) as f64 / 1000.0;
    }
    // The first point's rate covers the 200 ms before it.
    sum += points[0].1 * 0.2;
    assert!((sum - 400.0).abs() < 1e-9, "{sum} from {points:?}");
}

#[test]
fn objects_that_go_away_are_dropped() {
    let mut store = SeriesStore::default();
    let keys = [
        ObjectKey::queue("/", "a"),
        ObjectKey::queue("/", "b"),
        ObjectKey::exchange("/", "amq.direct"),
        ObjectKey::Connection(7),
        ObjectKey::channel(7, 1),
        ObjectKey::vhost("/"),
    ];
    store.begin_tick(T0);
    for k in &keys {
        store.record_gauge(k, MetricId::Consumers, 1);
        store.record_gauge(k, MetricId::Channels, 1);
    }
    assert_eq!((store.object_count(), store.series_count()), (6, 12));

    // Next tick the sampler no longer sees queue b and the channel.
    store.begin_tick(T0 + 5_000);
    for k in keys.iter().filter(|k| **k != keys[1] && **k != keys[4]) {
        store.record_gauge(k, MetricId::Consumers, 1);
    }
    assert_eq!(store.prune_unseen(), 2);
    assert_eq!((store.object_count(), store.series_count()), (4, 8));
    assert!(store.series(&keys[1], MetricId::Consumers).is_none());

    assert!(store.remove_object(&keys[0]));
    assert!(!store.remove_object(&keys[0]));
    store.retain_objects(|k| !matches!(k, ObjectKey::Connection(_)));
    assert_eq!((store.object_count(), store.series_count()), (2, 4));
    let mut left: Vec<&ObjectKey> = store.objects().collect();
    left.sort();
    assert_eq!(left, vec![&keys[5], &keys[2]]);
}

#[test]
fn nothing_is_recorded_before_the_first_tick() {
    let mut store = SeriesStore::default();
    store.record_gauge(&ObjectKey::Broker, MetricId::Queues, 1);
    assert_eq!(store.object_count(), 0);
    assert!(store.timeline().is_none());
}

#[test]
fn latency_percentiles_from_a_histogram_window() {
    let mut store = SeriesStore::default();
    let h = Histogram::new();
    let mut reader = HistogramReader::new();
    let key = ObjectKey::queue("/", "q");
    for v in 1..=100u64 {
        h.record(v * 10);
    }
    store.begin_tick(T0);
    let window = reader.tick(&h);
    store.object(&key).latency(window);
    // A quiet interval leaves a gap rather than a zero.
    store.begin_tick(T0 + 5_000);
    let window = reader.tick(&h);
    store.object(&key).latency(window);
    let p99 = store
        .points(
            &key,
            MetricId::LatencyP99,
            T0 + 5_000,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(p99.len(), 1);
    assert!((p99[0].1 - 990.0).abs() <= 990.0 / 64.0);
    let p50 = store.latest(&key, MetricId::LatencyP50).unwrap().1;
    assert!((p50 - 500.0).abs() <= 500.0 / 64.0, "{p50}");
    assert_eq!(
        store
            .series(&key, MetricId::LatencyP95)
            .unwrap()
            .aggregation(),
        Aggregation::Max
    );
}

#[test]
fn metric_vocabulary() {
    for m in MetricId::ALL {
        assert_eq!(m.name().parse::<MetricId>(), Ok(m));
        assert_eq!(m.to_string(), m.name());
        let expected = match m.kind() {
            MetricKind::Counter => Aggregation::Mean,
            MetricKind::Gauge if m.name().contains("latency") => Aggregation::Max,
            MetricKind::Gauge => Aggregation::Last,
        };
        assert_eq!(m.aggregation(), expected, "{m}");
    }
    assert!("nope".parse::<MetricId>().is_err());
    assert_eq!(MetricId::Published.kind(), MetricKind::Counter);
    assert_eq!(MetricId::MessagesReady.kind(), MetricKind::Gauge);
}

#[test]
fn memory_accounting() {
    let cfg = TierConfig::default();
    let per_series = series_memory(&cfg);
    assert!((960..1_200).contains(&per_series), "{per_series}");
    let mut store = SeriesStore::new(cfg).unwrap();
    assert_eq!(store.memory_per_series(), per_series);
    store.begin_tick(T0);
    for i in 0..100 {
        let mut obj = store.object(&ObjectKey::queue("/", format!("q{i}")));
        obj.counter(MetricId::Published, 0);
        obj.gauge(MetricId::MessagesReady, 0);
    }
    let total = store.memory_bytes();
    assert!(
        total >= 200 * per_series && total < 200 * per_series + 100 * 400,
        "{total}"
    );
    assert!(SeriesStore::new(TierConfig { fine_len: 0, ..cfg }).is_err());
}

#[test]
fn documented_sizes() {
    // The crate docs quote these figures (64-bit targets).
    assert_eq!(series_memory(&TierConfig::default()), 1_104);
    assert_eq!(Histogram::MEMORY_BYTES, 4_000);
    assert_eq!(HistogramReader::new().memory_bytes(), 112);
}
