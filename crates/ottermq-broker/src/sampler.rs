//! The sampler: one task that, every interval, reads every counter, gauge and histogram the
//! broker's objects hold and writes rates, gauges and latency percentiles into the metrics
//! core's time series (`MetricsHub`), for the REST API, the UI and the Prometheus endpoint.

use crate::broker::Broker;
use crate::stats::MessageTotals;
use ottermq_metrics::{
    Histogram, HistogramReader, HistogramSnapshot, MetricId, ObjectKey, ProcessStats, SeriesStore,
    TierConfig,
};
use parking_lot::{RwLock, RwLockReadGuard};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time series of the metrics core, shared between the sampler (writer) and readers.
#[derive(Debug)]
pub struct MetricsHub {
    pub config: TierConfig,
    store: RwLock<SeriesStore>,
}

impl MetricsHub {
    pub fn new(config: TierConfig) -> Self {
        let store = SeriesStore::new(config).unwrap_or_default();
        MetricsHub {
            config: *store.config(),
            store: RwLock::new(store),
        }
    }

    /// Read access to the series (held briefly: the sampler waits for it).
    pub fn read(&self) -> RwLockReadGuard<'_, SeriesStore> {
        self.store.read()
    }
}

/// Which histogram of an object a reader follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Hist {
    TimeInQueue,
    Ack,
    Confirm,
    Route,
}

/// Sampler-private state: one histogram reader per (object, histogram), kept across ticks.
#[derive(Default)]
pub struct Sampler {
    readers: HashMap<(ObjectKey, Hist), (HistogramReader, u64)>,
    tick: u64,
}

/// Broker-wide windows merged from every object's last interval.
#[derive(Default)]
struct Windows {
    time_in_queue: HistogramSnapshot,
    ack: HistogramSnapshot,
    confirm: HistogramSnapshot,
    route: HistogramSnapshot,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Message totals since start: closed channels' counts plus every open channel's.
pub fn message_totals(broker: &Broker) -> MessageTotals {
    let retired = broker.stats.retired.lock();
    let mut t = *retired;
    for c in broker.connections() {
        for ch in c.channels.lock().values() {
            t.add_channel(&ch.stats);
        }
    }
    t
}

/// Expiry, dead-letter and overflow counts over every queue, deleted ones included.
pub fn queue_event_totals(broker: &Broker) -> crate::stats::QueueEventTotals {
    let mut t = *broker.stats.retired_queue_events.lock();
    for v in broker.vhosts() {
        for q in v.queues() {
            t.add_queue(&q.stats);
        }
    }
    t
}

/// Body sizes of every message published since start (closed channels included), bytes.
pub fn body_size_totals(broker: &Broker) -> HistogramSnapshot {
    let _retired = broker.stats.retired.lock();
    let mut h = broker.stats.retired_histograms.lock().body_size.clone();
    for c in broker.connections() {
        for ch in c.channels.lock().values() {
            h.merge(&ch.stats.body_size.snapshot());
        }
    }
    h
}

impl Sampler {
    fn window(&mut self, key: ObjectKey, which: Hist, h: &Histogram) -> HistogramSnapshot {
        let tick = self.tick;
        let entry = self
            .readers
            .entry((key, which))
            .or_insert_with(|| (HistogramReader::new(), tick));
        entry.1 = tick;
        entry.0.tick(h).clone()
    }

    /// One sampling pass at `now_ms`.
    pub fn sample(&mut self, broker: &Broker, now_ms: i64) {
        self.tick += 1;
        let mut w = Windows::default();

        // Channels: message totals (under the retire lock, so a closing channel is counted
        // exactly once) and their latency windows.
        let mut channels = 0i64;
        let connections = broker.connections();
        let totals = {
            let retired = broker.stats.retired.lock();
            let mut t = *retired;
            for c in &connections {
                let list: Vec<_> = c.channels.lock().values().cloned().collect();
                for ch in list {
                    channels += 1;
                    t.add_channel(&ch.stats);
                    let key = ObjectKey::channel(c.id, ch.id);
                    w.ack
                        .merge(&self.window(key.clone(), Hist::Ack, &ch.stats.ack_latency));
                    w.confirm.merge(&self.window(
                        key.clone(),
                        Hist::Confirm,
                        &ch.stats.confirm_latency,
                    ));
                    w.route
                        .merge(&self.window(key, Hist::Route, &ch.stats.route_latency));
                }
            }
            t
        };

        let mut store = broker.metrics.store.write();
        store.begin_tick(now_ms);
        let (mut ready, mut unacked, mut bytes, mut consumers, mut queues, mut exchanges) =
            (0, 0, 0, 0, 0, 0);
        let mut events = *broker.stats.retired_queue_events.lock();
        for v in broker.vhosts() {
            for q in v.queues() {
                let c = q.counts();
                ready += c.ready as i64;
                unacked += c.unacked as i64;
                bytes += c.ready_bytes as i64;
                consumers += c.consumers as i64;
                queues += 1;
                let key = ObjectKey::queue(v.name.clone(), q.name.to_string_lossy().as_ref());
                let tiq = self.window(key.clone(), Hist::TimeInQueue, &q.stats.time_in_queue);
                w.time_in_queue.merge(&tiq);
                let mut o = store.object(&key);
                o.counter(MetricId::Published, q.stats.enqueued.get());
                o.counter(MetricId::Delivered, q.stats.delivered.get());
                o.counter(MetricId::Acked, q.stats.acked.get());
                o.counter(MetricId::Redelivered, q.stats.redelivered.get());
                o.counter(MetricId::Rejected, q.stats.rejected.get());
                let mut ev = crate::stats::QueueEventTotals::default();
                ev.add_queue(&q.stats);
                events.add(&ev);
                // Only queues that ever expired, dead-lettered or dropped carry these series:
                // five more series on every queue would cost memory for nothing.
                if ev != crate::stats::QueueEventTotals::default() {
                    event_counters(&mut o, &ev);
                }
                o.gauge(MetricId::MessagesReady, c.ready as i64);
                o.gauge(MetricId::MessagesUnacked, c.unacked as i64);
                o.gauge(MetricId::MessageBytes, c.ready_bytes as i64);
                o.gauge(MetricId::Consumers, c.consumers as i64);
                o.latency(&tiq);
            }
            for e in v.exchanges() {
                exchanges += 1;
                let key = ObjectKey::exchange(v.name.clone(), e.name.to_string_lossy().as_ref());
                let mut o = store.object(&key);
                o.counter(MetricId::Published, e.stats.publish_in.get());
                o.counter(MetricId::Routed, e.stats.publish_out.get());
                o.counter(MetricId::Unroutable, e.stats.unroutable.get());
            }
        }

        let process = ProcessStats::read();
        let mut o = store.object(&ObjectKey::Broker);
        o.counter(MetricId::Published, totals.published);
        o.counter(MetricId::Delivered, totals.deliver_get());
        o.counter(MetricId::Acked, totals.acked);
        o.counter(MetricId::Nacked, totals.nacked);
        o.counter(MetricId::Rejected, totals.rejected);
        o.counter(MetricId::Redelivered, totals.redelivered);
        o.counter(MetricId::Returned, totals.returned);
        o.counter(MetricId::Confirmed, totals.confirmed);
        o.counter(MetricId::Unroutable, totals.unroutable);
        event_counters(&mut o, &events);
        o.gauge(MetricId::MessagesReady, ready);
        o.gauge(MetricId::MessagesUnacked, unacked);
        o.gauge(MetricId::MessageBytes, bytes);
        o.gauge(MetricId::Consumers, consumers);
        o.gauge(MetricId::Connections, connections.len() as i64);
        o.gauge(MetricId::Channels, channels);
        o.gauge(MetricId::Queues, queues);
        o.gauge(MetricId::Exchanges, exchanges);
        if let Some(rss) = process.rss_bytes {
            o.gauge(MetricId::MemoryRss, rss as i64);
        }
        if let Some(fds) = process.open_fds {
            o.gauge(MetricId::OpenFds, fds as i64);
        }
        o.latency(&w.time_in_queue);
        o.latency_as(
            &w.ack,
            [
                MetricId::AckLatencyP50,
                MetricId::AckLatencyP95,
                MetricId::AckLatencyP99,
            ],
        );
        o.latency_as(
            &w.confirm,
            [
                MetricId::ConfirmLatencyP50,
                MetricId::ConfirmLatencyP95,
                MetricId::ConfirmLatencyP99,
            ],
        );
        o.latency_as(
            &w.route,
            [
                MetricId::RouteLatencyP50,
                MetricId::RouteLatencyP95,
                MetricId::RouteLatencyP99,
            ],
        );
        store.prune_unseen();
        drop(store);
        let tick = self.tick;
        self.readers.retain(|_, (_, seen)| *seen == tick);
    }
}

/// Records the expiry, dead-letter and overflow counters of a queue or of the broker.
fn event_counters(o: &mut ottermq_metrics::ObjectRecorder<'_>, t: &crate::stats::QueueEventTotals) {
    o.counter(MetricId::Expired, t.expired);
    o.counter(MetricId::DeadLetteredRejected, t.dead_lettered_rejected);
    o.counter(MetricId::DeadLetteredExpired, t.dead_lettered_expired);
    o.counter(MetricId::DeadLetteredMaxlen, t.dead_lettered_maxlen);
    o.counter(MetricId::OverflowDropped, t.overflow_dropped);
    o.counter(
        MetricId::DeadLetteredDeliveryLimit,
        t.dead_lettered_delivery_limit,
    );
    o.counter(MetricId::DeliveryLimited, t.delivery_limited);
}

/// Runs the sampler every fine interval until `stop` resolves.
pub async fn run(broker: Arc<Broker>, stop: impl std::future::Future<Output = ()>) {
    let interval = broker
        .metrics
        .config
        .fine_interval
        .max(Duration::from_millis(10));
    let mut sampler = Sampler::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => sampler.sample(&broker, now_ms()),
        }
    }
}
