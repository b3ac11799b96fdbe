//! The sampler's registry of time series, keyed by object and metric.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::histogram::HistogramSnapshot;
use crate::rate::RateTracker;
use crate::series::{Aggregation, TierConfig, TierConfigError, TieredSeries, Timeline};

/// The broker object a series describes.
///
/// Exists so that series can be found, listed and dropped per object. Names are `Arc<str>`,
/// shared with the broker's own objects, so building a key clones pointers rather than strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKey {
    /// The whole broker (totals, process stats).
    Broker,
    /// A virtual host.
    Vhost(Arc<str>),
    /// A queue in a virtual host.
    Queue {
        /// The queue's virtual host.
        vhost: Arc<str>,
        /// The queue's name.
        name: Arc<str>,
    },
    /// An exchange in a virtual host.
    Exchange {
        /// The exchange's virtual host.
        vhost: Arc<str>,
        /// The exchange's name ("" for the default exchange).
        name: Arc<str>,
    },
    /// A client connection, by the broker's connection id.
    Connection(u64),
    /// A channel of a connection.
    Channel {
        /// The broker's connection id.
        connection: u64,
        /// The channel number within the connection.
        channel: u16,
    },
}

impl ObjectKey {
    /// Key of a virtual host.
    pub fn vhost(name: impl Into<Arc<str>>) -> Self {
        Self::Vhost(name.into())
    }

    /// Key of a queue.
    pub fn queue(vhost: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self::Queue {
            vhost: vhost.into(),
            name: name.into(),
        }
    }

    /// Key of an exchange.
    pub fn exchange(vhost: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        Self::Exchange {
            vhost: vhost.into(),
            name: name.into(),
        }
    }

    /// Key of a channel.
    pub fn channel(connection: u64, channel: u16) -> Self {
        Self::Channel {
            connection,
            channel,
        }
    }
}

/// Whether a metric is sampled from a [`crate::Counter`] (stored as a per-second rate) or is a
/// level stored as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A monotonic total; the series holds its per-second rate.
    Counter,
    /// A level (gauge, percentile); the series holds the value itself.
    Gauge,
}

/// What a series measures. A small closed vocabulary so series are addressed without strings
/// on the sampler side, and so each metric's kind, coarse aggregation and API name are defined
/// in one place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricId {
    /// Messages published (into an exchange, a queue, on a channel, broker-wide). Rate.
    Published,
    /// Messages routed by an exchange to at least one queue. Rate.
    Routed,
    /// Messages that matched no queue (returned or dropped). Rate.
    Unroutable,
    /// Messages delivered to consumers or fetched with basic.get. Rate.
    Delivered,
    /// Messages acknowledged by consumers. Rate.
    Acked,
    /// Messages delivered again after a requeue. Rate.
    Redelivered,
    /// Messages rejected or nacked by consumers. Rate.
    Rejected,
    /// Publisher confirms sent. Rate.
    Confirmed,
    /// Bytes received from clients. Rate.
    BytesIn,
    /// Bytes sent to clients. Rate.
    BytesOut,
    /// Messages waiting in a queue. Gauge.
    MessagesReady,
    /// Messages delivered and not yet acknowledged. Gauge.
    MessagesUnacked,
    /// Bytes of message bodies held by a queue. Gauge.
    MessageBytes,
    /// Consumers attached. Gauge.
    Consumers,
    /// Open connections. Gauge.
    Connections,
    /// Open channels. Gauge.
    Channels,
    /// Queues declared. Gauge.
    Queues,
    /// Resident memory of the broker process, bytes. Gauge.
    MemoryRss,
    /// Open file descriptors of the broker process. Gauge.
    OpenFds,
    /// Median latency over the last interval, µs. Coarse tier keeps the maximum.
    LatencyP50,
    /// 95th percentile latency over the last interval, µs. Coarse tier keeps the maximum.
    LatencyP95,
    /// 99th percentile latency over the last interval, µs. Coarse tier keeps the maximum.
    LatencyP99,
    /// Messages returned to publishers (mandatory, unroutable). Rate.
    Returned,
    /// Messages nacked by consumers (basic.nack). Rate.
    Nacked,
    /// Exchanges declared. Gauge.
    Exchanges,
    /// Deliver-to-ack time percentiles, µs (consumer processing time).
    AckLatencyP50,
    /// Deliver-to-ack time, 95th percentile, µs.
    AckLatencyP95,
    /// Deliver-to-ack time, 99th percentile, µs.
    AckLatencyP99,
    /// Publish-to-confirm time percentiles, µs.
    ConfirmLatencyP50,
    /// Publish-to-confirm time, 95th percentile, µs.
    ConfirmLatencyP95,
    /// Publish-to-confirm time, 99th percentile, µs.
    ConfirmLatencyP99,
    /// Publish-to-route time percentiles, µs.
    RouteLatencyP50,
    /// Publish-to-route time, 95th percentile, µs.
    RouteLatencyP95,
    /// Publish-to-route time, 99th percentile, µs.
    RouteLatencyP99,
    /// Messages whose TTL ran out (dropped or dead-lettered). Rate.
    Expired,
    /// Messages dead-lettered after basic.reject / basic.nack without requeue. Rate.
    DeadLetteredRejected,
    /// Messages dead-lettered because their TTL ran out. Rate.
    DeadLetteredExpired,
    /// Messages dead-lettered by a length limit (drop-head or reject-publish-dlx). Rate.
    DeadLetteredMaxlen,
    /// Messages lost to a length limit: dropped from the head or refused at publish. Rate.
    OverflowDropped,
    /// Messages dead-lettered for going past a quorum queue's `x-delivery-limit`. Rate.
    DeadLetteredDeliveryLimit,
    /// Messages taken off a quorum queue past its `x-delivery-limit` (dropped or
    /// dead-lettered). Rate.
    DeliveryLimited,
}

impl MetricId {
    /// Every metric, in declaration order (for listings and name parsing).
    pub const ALL: [MetricId; 41] = [
        MetricId::Published,
        MetricId::Routed,
        MetricId::Unroutable,
        MetricId::Delivered,
        MetricId::Acked,
        MetricId::Redelivered,
        MetricId::Rejected,
        MetricId::Confirmed,
        MetricId::BytesIn,
        MetricId::BytesOut,
        MetricId::MessagesReady,
        MetricId::MessagesUnacked,
        MetricId::MessageBytes,
        MetricId::Consumers,
        MetricId::Connections,
        MetricId::Channels,
        MetricId::Queues,
        MetricId::MemoryRss,
        MetricId::OpenFds,
        MetricId::LatencyP50,
        MetricId::LatencyP95,
        MetricId::LatencyP99,
        MetricId::Returned,
        MetricId::Nacked,
        MetricId::Exchanges,
        MetricId::AckLatencyP50,
        MetricId::AckLatencyP95,
        MetricId::AckLatencyP99,
        MetricId::ConfirmLatencyP50,
        MetricId::ConfirmLatencyP95,
        MetricId::ConfirmLatencyP99,
        MetricId::RouteLatencyP50,
        MetricId::RouteLatencyP95,
        MetricId::RouteLatencyP99,
        MetricId::Expired,
        MetricId::DeadLetteredRejected,
        MetricId::DeadLetteredExpired,
        MetricId::DeadLetteredMaxlen,
        MetricId::OverflowDropped,
        MetricId::DeadLetteredDeliveryLimit,
        MetricId::DeliveryLimited,
    ];

    /// The stable snake_case name used by the REST API (`published`, `messages_ready`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MetricId::Published => "published",
            MetricId::Routed => "routed",
            MetricId::Unroutable => "unroutable",
            MetricId::Delivered => "delivered",
            MetricId::Acked => "acked",
            MetricId::Redelivered => "redelivered",
            MetricId::Rejected => "rejected",
            MetricId::Confirmed => "confirmed",
            MetricId::BytesIn => "bytes_in",
            MetricId::BytesOut => "bytes_out",
            MetricId::MessagesReady => "messages_ready",
            MetricId::MessagesUnacked => "messages_unacked",
            MetricId::MessageBytes => "message_bytes",
            MetricId::Consumers => "consumers",
            MetricId::Connections => "connections",
            MetricId::Channels => "channels",
            MetricId::Queues => "queues",
            MetricId::MemoryRss => "memory_rss_bytes",
            MetricId::OpenFds => "open_fds",
            MetricId::LatencyP50 => "latency_p50_us",
            MetricId::LatencyP95 => "latency_p95_us",
            MetricId::LatencyP99 => "latency_p99_us",
            MetricId::Returned => "returned",
            MetricId::Nacked => "nacked",
            MetricId::Exchanges => "exchanges",
            MetricId::AckLatencyP50 => "ack_latency_p50_us",
            MetricId::AckLatencyP95 => "ack_latency_p95_us",
            MetricId::AckLatencyP99 => "ack_latency_p99_us",
            MetricId::ConfirmLatencyP50 => "confirm_latency_p50_us",
            MetricId::ConfirmLatencyP95 => "confirm_latency_p95_us",
            MetricId::ConfirmLatencyP99 => "confirm_latency_p99_us",
            MetricId::RouteLatencyP50 => "route_latency_p50_us",
            MetricId::RouteLatencyP95 => "route_latency_p95_us",
            MetricId::RouteLatencyP99 => "route_latency_p99_us",
            MetricId::Expired => "expired",
            MetricId::DeadLetteredRejected => "dead_lettered_rejected",
            MetricId::DeadLetteredExpired => "dead_lettered_expired",
            MetricId::DeadLetteredMaxlen => "dead_lettered_maxlen",
            MetricId::OverflowDropped => "overflow_dropped",
            MetricId::DeadLetteredDeliveryLimit => "dead_lettered_delivery_limit",
            MetricId::DeliveryLimited => "delivery_limited",
        }
    }

    /// Whether the series holds a rate of a counter or the sampled value itself.
    pub fn kind(self) -> MetricKind {
        match self {
            MetricId::Published
            | MetricId::Routed
            | MetricId::Unroutable
            | MetricId::Delivered
            | MetricId::Acked
            | MetricId::Redelivered
            | MetricId::Rejected
            | MetricId::Confirmed
            | MetricId::Returned
            | MetricId::Nacked
            | MetricId::Expired
            | MetricId::DeadLetteredRejected
            | MetricId::DeadLetteredExpired
            | MetricId::DeadLetteredMaxlen
            | MetricId::OverflowDropped
            | MetricId::DeadLetteredDeliveryLimit
            | MetricId::DeliveryLimited
            | MetricId::BytesIn
            | MetricId::BytesOut => MetricKind::Counter,
            _ => MetricKind::Gauge,
        }
    }

    /// How the coarse tier summarises this metric: mean for rates, last value for gauges,
    /// maximum for latency percentiles.
    pub fn aggregation(self) -> Aggregation {
        match self {
            MetricId::LatencyP50
            | MetricId::LatencyP95
            | MetricId::LatencyP99
            | MetricId::AckLatencyP50
            | MetricId::AckLatencyP95
            | MetricId::AckLatencyP99
            | MetricId::ConfirmLatencyP50
            | MetricId::ConfirmLatencyP95
            | MetricId::ConfirmLatencyP99
            | MetricId::RouteLatencyP50
            | MetricId::RouteLatencyP95
            | MetricId::RouteLatencyP99 => Aggregation::Max,
            m if m.kind() == MetricKind::Counter => Aggregation::Mean,
            _ => Aggregation::Last,
        }
    }
}

impl fmt::Display for MetricId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric name that [`MetricId::from_str`] does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}")]
pub struct UnknownMetric(pub String);

impl FromStr for MetricId {
    type Err = UnknownMetric;

    /// Parses the name given by [`MetricId::name`] (for API query parameters).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MetricId::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMetric(s.to_owned()))
    }
}

/// One series of an object: its data and, for counters, the previous reading.
#[derive(Clone, Debug)]
struct MetricSeries {
    metric: MetricId,
    rate: RateTracker,
    data: TieredSeries,
}

/// The series of one object.
#[derive(Clone, Debug, Default)]
struct ObjectSeries {
    /// The sampling round in which the object was last recorded.
    seen: u64,
    metrics: Vec<MetricSeries>,
}

/// Every time series of the broker, owned by the sampler task.
///
/// Exists so the one sampler can, once per tick, read every object's counters and gauges and
/// push one value per series, and so the REST API can query history by object and metric. The
/// sampler calls [`begin_tick`](Self::begin_tick), then [`object`](Self::object) (or the
/// `record*` shortcuts) for every live object, then [`prune_unseen`](Self::prune_unseen) to drop
/// the series of objects that went away. Series are created on first sight with fixed-size
/// rings; allocation happens only then, off the hot path.
///
/// Not internally synchronised: share it with readers behind a lock (the sampler holds the
/// write lock for the duration of a tick: about 0.5 ms for 10,000 series, see `benches/record.rs`).
#[derive(Debug)]
pub struct SeriesStore {
    config: TierConfig,
    timeline: Option<Timeline>,
    now_ms: i64,
    tick: u64,
    round: u64,
    series_count: usize,
    objects: HashMap<ObjectKey, ObjectSeries>,
}

impl Default for SeriesStore {
    fn default() -> Self {
        Self::with_valid_config(TierConfig::default())
    }
}

impl SeriesStore {
    /// A store whose series use the tiers of `config`.
    pub fn new(config: TierConfig) -> Result<Self, TierConfigError> {
        config.validate()?;
        Ok(Self::with_valid_config(config))
    }

    fn with_valid_config(config: TierConfig) -> Self {
        Self {
            config,
            timeline: None,
            now_ms: 0,
            tick: 0,
            round: 0,
            series_count: 0,
            objects: HashMap::new(),
        }
    }

    /// The tier layout.
    pub fn config(&self) -> &TierConfig {
        &self.config
    }

    /// The tick/time mapping, fixed by the first [`begin_tick`](Self::begin_tick).
    pub fn timeline(&self) -> Option<&Timeline> {
        self.timeline.as_ref()
    }

    /// Starts a sampling round at wall-clock `now_ms` (Unix milliseconds) and returns its fine
    /// tick. The first call fixes the epoch; later calls round to the nearest tick, so jitter
    /// under half an interval is absorbed. Rates are over the ticks' times (see
    /// [`ObjectRecorder::counter`]), so a rate series adds up to its counter's increase.
    pub fn begin_tick(&mut self, now_ms: i64) -> u64 {
        let timeline = *self
            .timeline
            .get_or_insert_with(|| Timeline::new(&self.config, now_ms));
        self.now_ms = now_ms;
        self.tick = timeline.fine_tick(now_ms);
        self.round += 1;
        self.tick
    }

    /// Wall-clock time of the current round.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Fine tick of the current round.
    pub fn current_tick(&self) -> u64 {
        self.tick
    }

    /// A recorder for the series of `key` in the current round (one hash look-up for all of
    /// the object's metrics). Marks the object as seen. Before the first
    /// [`begin_tick`](Self::begin_tick) there is no timeline and the recorder does nothing.
    pub fn object(&mut self, key: &ObjectKey) -> ObjectRecorder<'_> {
        let Some(timeline) = self.timeline else {
            return ObjectRecorder {
                object: None,
                config: &self.config,
                timeline: Timeline::new(&self.config, 0),
                tick: 0,
                series_count: &mut self.series_count,
            };
        };
        let object = self.objects.entry(key.clone()).or_default();
        object.seen = self.round;
        ObjectRecorder {
            object: Some(object),
            config: &self.config,
            timeline,
            tick: self.tick,
            series_count: &mut self.series_count,
        }
    }

    /// Records a value as is (gauge, percentile) for `key` in the current round.
    pub fn record(&mut self, key: &ObjectKey, metric: MetricId, value: f64) {
        self.object(key).record(metric, value);
    }

    /// Records a counter's total for `key`; the series gets its per-second rate.
    pub fn record_counter(&mut self, key: &ObjectKey, metric: MetricId, total: u64) {
        self.object(key).counter(metric, total);
    }

    /// Records a gauge's level for `key`.
    pub fn record_gauge(&mut self, key: &ObjectKey, metric: MetricId, value: i64) {
        self.object(key).gauge(metric, value);
    }

    /// Drops every series of `key` (the object was deleted). Returns whether it had any.
    pub fn remove_object(&mut self, key: &ObjectKey) -> bool {
        match self.objects.remove(key) {
            Some(object) => {
                self.series_count -= object.metrics.len();
                true
            }
            None => false,
        }
    }

    /// Keeps only the objects for which `keep` returns true.
    pub fn retain_objects(&mut self, mut keep: impl FnMut(&ObjectKey) -> bool) {
        self.retain_objects_inner(|key, _| keep(key));
    }

    /// Drops the objects not recorded since the last [`begin_tick`](Self::begin_tick): the
    /// sampler records every live object, so what it did not see is gone. Returns how many
    /// objects were dropped.
    pub fn prune_unseen(&mut self) -> usize {
        let before = self.objects.len();
        let round = self.round;
        self.retain_objects_inner(|_, object| object.seen == round);
        before - self.objects.len()
    }

    fn retain_objects_inner(&mut self, mut keep: impl FnMut(&ObjectKey, &ObjectSeries) -> bool) {
        let mut dropped = 0;
        self.objects.retain(|key, object| {
            let kept = keep(key, object);
            if !kept {
                dropped += object.metrics.len();
            }
            kept
        });
        self.series_count -= dropped;
    }

    /// The series of `metric` for `key`, if it exists.
    pub fn series(&self, key: &ObjectKey, metric: MetricId) -> Option<&TieredSeries> {
        self.objects
            .get(key)?
            .metrics
            .iter()
            .find(|s| s.metric == metric)
            .map(|s| &s.data)
    }

    /// History of `metric` for `key` over `duration` up to `now_ms`, as `(unix_ms, value)`
    /// oldest first (see [`TieredSeries::points`] for the tier choice). `None` if there is no
    /// such series.
    pub fn points(
        &self,
        key: &ObjectKey,
        metric: MetricId,
        now_ms: i64,
        duration: Duration,
    ) -> Option<Vec<(i64, f64)>> {
        Some(self.series(key, metric)?.points(now_ms, duration))
    }

    /// The newest value of `metric` for `key` as `(unix_ms, value)`.
    pub fn latest(&self, key: &ObjectKey, metric: MetricId) -> Option<(i64, f64)> {
        self.series(key, metric)?.latest()
    }

    /// Every object with series.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectKey> + '_ {
        self.objects.keys()
    }

    /// The metrics recorded for `key` (empty if unknown).
    pub fn metrics(&self, key: &ObjectKey) -> impl Iterator<Item = MetricId> + '_ {
        self.objects
            .get(key)
            .into_iter()
            .flat_map(|o| o.metrics.iter().map(|s| s.metric))
    }

    /// Number of objects with series.
    pub fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series_count
    }

    /// Bytes one series costs with this store's tiers (see [`series_memory`]).
    pub fn memory_per_series(&self) -> usize {
        series_memory(&self.config)
    }

    /// Estimated bytes held by the whole store: series, per-object entries and the map
    /// (excluding the key strings, which are shared with the broker's objects).
    pub fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(ObjectKey, ObjectSeries)>() + 1;
        let vecs: usize = self
            .objects
            .values()
            .map(|o| o.metrics.capacity() - o.metrics.len())
            .sum::<usize>()
            * std::mem::size_of::<MetricSeries>();
        std::mem::size_of::<Self>()
            + self.objects.capacity() * entry
            + vecs
            + self.series_count * self.memory_per_series()
    }
}

/// Bytes one series costs in a [`SeriesStore`] with tiers `config`: the samples,
/// `(fine_len + coarse_len) × 4` bytes, plus the series header with its rate tracker
/// (144 bytes on 64-bit targets). With the default tiers: 960 + 144 = 1,104 bytes. Objects add
/// one map entry each (see [`SeriesStore::memory_bytes`]); a queue with 8 series thus costs
/// about 9 KiB of history.
pub fn series_memory(config: &TierConfig) -> usize {
    std::mem::size_of::<MetricSeries>() + config.sample_bytes()
}

/// Writes the current round's values for one object; from [`SeriesStore::object`].
///
/// Exists so the sampler pays one hash look-up per object per tick rather than one per
/// metric; finding a metric within the object is a scan of a handful of entries.
#[derive(Debug)]
pub struct ObjectRecorder<'a> {
    object: Option<&'a mut ObjectSeries>,
    config: &'a TierConfig,
    timeline: Timeline,
    tick: u64,
    series_count: &'a mut usize,
}

impl ObjectRecorder<'_> {
    fn series(&mut self, metric: MetricId) -> Option<&mut MetricSeries> {
        let object = self.object.as_deref_mut()?;
        let pos = match object.metrics.iter().position(|s| s.metric == metric) {
            Some(pos) => pos,
            None => {
                object.metrics.push(MetricSeries {
                    metric,
                    rate: RateTracker::new(),
                    data: TieredSeries::new(
                        self.config,
                        self.timeline.epoch_ms(),
                        metric.aggregation(),
                    ),
                });
                *self.series_count += 1;
                object.metrics.len() - 1
            }
        };
        object.metrics.get_mut(pos)
    }

    /// Records `value` as is (gauges, percentiles, anything already a rate).
    pub fn record(&mut self, metric: MetricId, value: f64) {
        let tick = self.tick;
        if let Some(s) = self.series(metric) {
            s.data.record(tick, value);
        }
    }

    /// Records a counter's running total; the series gets the per-second rate since the
    /// previous round (nothing on the first round, see [`RateTracker`]).
    pub fn counter(&mut self, metric: MetricId, total: u64) {
        // The rate is over the time between the ticks the readings were filed under, not the
        // rounds' exact clock: the series is read as one value per tick slot, so a round that
        // runs late (or two that land on one tick) would otherwise make it add up to more or
        // less than the counter's increase. A second reading on the same tick gives no rate,
        // and the next tick's rate covers it.
        let (tick, tick_ms) = (self.tick, self.timeline.fine_time(self.tick));
        if let Some(s) = self.series(metric) {
            if let Some(rate) = s.rate.update(total, tick_ms) {
                s.data.record(tick, rate);
            }
        }
    }

    /// Records a gauge's level.
    pub fn gauge(&mut self, metric: MetricId, value: i64) {
        self.record(metric, value as f64);
    }

    /// Records p50, p95 and p99 of a latency window (from [`crate::HistogramReader::tick`]) as
    /// [`MetricId::LatencyP50`]/`P95`/`P99`. An empty window records nothing: no traffic is a
    /// gap, not a zero latency.
    pub fn latency(&mut self, window: &HistogramSnapshot) {
        self.latency_as(
            window,
            [
                MetricId::LatencyP50,
                MetricId::LatencyP95,
                MetricId::LatencyP99,
            ],
        );
    }

    /// Like [`Self::latency`], into another latency family (ack, confirm, route).
    pub fn latency_as(&mut self, window: &HistogramSnapshot, ids: [MetricId; 3]) {
        if window.is_empty() {
            return;
        }
        for (id, q) in ids.into_iter().zip([0.50, 0.95, 0.99]) {
            self.record(id, window.percentile(q) as f64);
        }
    }
}
