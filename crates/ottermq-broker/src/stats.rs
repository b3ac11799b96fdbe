//! Event counters embedded in broker objects: the hot side of the metrics core.
//!
//! Every counter lives in the object it describes (channel, queue, exchange, broker), so
//! recording an event is one relaxed atomic add on memory the caller already holds: no lock,
//! no look-up, no allocation. Broker-wide totals are sums taken by the sampler over live objects
//! plus what closed channels and deleted queues left behind (`Retired`).

use ottermq_metrics::{Counter, Histogram, HistogramSnapshot};
use parking_lot::Mutex;

/// Per-channel message counters (RabbitMQ's channel `message_stats`).
#[derive(Debug, Default)]
pub struct ChannelStats {
    pub published: Counter,
    pub confirmed: Counter,
    pub returned: Counter,
    pub unroutable: Counter,
    /// Deliveries to consumers that must ack.
    pub delivered: Counter,
    /// Deliveries to no-ack consumers.
    pub delivered_no_ack: Counter,
    pub redelivered: Counter,
    pub get: Counter,
    pub get_empty: Counter,
    pub acked: Counter,
    pub nacked: Counter,
    pub rejected: Counter,
    pub requeued: Counter,
    /// Deliver-to-ack time, µs.
    pub ack_latency: Histogram,
    /// Publish-to-confirm time, µs.
    pub confirm_latency: Histogram,
    /// Publish (method frame received) to routed, µs.
    pub route_latency: Histogram,
    /// Body sizes of published messages, bytes (its sum is the published byte count).
    pub body_size: Histogram,
}

/// Per-queue counters.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub enqueued: Counter,
    pub delivered: Counter,
    pub redelivered: Counter,
    pub acked: Counter,
    pub requeued: Counter,
    /// Settled without requeue by nack or reject (dropped or dead-lettered).
    pub rejected: Counter,
    /// Messages whose TTL ran out (dropped or dead-lettered).
    pub expired: Counter,
    /// Messages republished through the dead-letter exchange, by reason.
    pub dead_lettered_rejected: Counter,
    pub dead_lettered_expired: Counter,
    pub dead_lettered_maxlen: Counter,
    pub dead_lettered_delivery_limit: Counter,
    /// Messages a quorum queue took off for going past `x-delivery-limit` (dropped or
    /// dead-lettered).
    pub delivery_limited: Counter,
    /// Messages lost to a length limit: dropped from the head or refused at publish.
    pub overflow_dropped: Counter,
    /// Enqueue-to-deliver time, µs.
    pub time_in_queue: Histogram,
}

/// Plain totals of the queue counters for expiry, dead-lettering and overflow, for broker-wide
/// sums and for what deleted queues leave behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueEventTotals {
    pub expired: u64,
    pub dead_lettered_rejected: u64,
    pub dead_lettered_expired: u64,
    pub dead_lettered_maxlen: u64,
    pub dead_lettered_delivery_limit: u64,
    pub delivery_limited: u64,
    pub overflow_dropped: u64,
}

impl QueueEventTotals {
    pub fn add_queue(&mut self, s: &QueueStats) {
        self.expired += s.expired.get();
        self.dead_lettered_rejected += s.dead_lettered_rejected.get();
        self.dead_lettered_expired += s.dead_lettered_expired.get();
        self.dead_lettered_maxlen += s.dead_lettered_maxlen.get();
        self.dead_lettered_delivery_limit += s.dead_lettered_delivery_limit.get();
        self.delivery_limited += s.delivery_limited.get();
        self.overflow_dropped += s.overflow_dropped.get();
    }

    pub fn add(&mut self, o: &QueueEventTotals) {
        self.expired += o.expired;
        self.dead_lettered_rejected += o.dead_lettered_rejected;
        self.dead_lettered_expired += o.dead_lettered_expired;
        self.dead_lettered_maxlen += o.dead_lettered_maxlen;
        self.dead_lettered_delivery_limit += o.dead_lettered_delivery_limit;
        self.delivery_limited += o.delivery_limited;
        self.overflow_dropped += o.overflow_dropped;
    }
}

/// Per-exchange counters (RabbitMQ's `publish_in` / `publish_out`).
#[derive(Debug, Default)]
pub struct ExchangeStats {
    pub publish_in: Counter,
    pub publish_out: Counter,
    pub unroutable: Counter,
    /// Body bytes of messages published to this exchange.
    pub publish_in_bytes: Counter,
}

/// Plain totals of exchange counters, for what deleted exchanges leave behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeTotals {
    pub publish_in: u64,
    pub publish_out: u64,
    pub unroutable: u64,
    pub publish_in_bytes: u64,
}

impl ExchangeTotals {
    pub fn add_exchange(&mut self, s: &ExchangeStats) {
        self.publish_in += s.publish_in.get();
        self.publish_out += s.publish_out.get();
        self.unroutable += s.unroutable.get();
        self.publish_in_bytes += s.publish_in_bytes.get();
    }
}

/// Cumulative distributions of closed channels and deleted queues, so the broker-wide
/// Prometheus histograms never go backwards when an object goes away.
#[derive(Debug, Default, Clone)]
pub struct RetiredHistograms {
    pub ack_latency: HistogramSnapshot,
    pub confirm_latency: HistogramSnapshot,
    pub route_latency: HistogramSnapshot,
    pub body_size: HistogramSnapshot,
    pub time_in_queue: HistogramSnapshot,
}

impl RetiredHistograms {
    /// Adds a channel's histograms (taken when it closes).
    pub fn add_channel(&mut self, s: &ChannelStats) {
        self.ack_latency.merge(&s.ack_latency.snapshot());
        self.confirm_latency.merge(&s.confirm_latency.snapshot());
        self.route_latency.merge(&s.route_latency.snapshot());
        self.body_size.merge(&s.body_size.snapshot());
    }
}

/// Plain totals of the channel counters, for sums and for what closed channels leave behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MessageTotals {
    pub published: u64,
    pub confirmed: u64,
    pub returned: u64,
    pub unroutable: u64,
    pub delivered: u64,
    pub delivered_no_ack: u64,
    pub redelivered: u64,
    pub get: u64,
    pub get_empty: u64,
    pub acked: u64,
    pub nacked: u64,
    pub rejected: u64,
    pub requeued: u64,
}

impl MessageTotals {
    pub fn add_channel(&mut self, s: &ChannelStats) {
        self.published += s.published.get();
        self.confirmed += s.confirmed.get();
        self.returned += s.returned.get();
        self.unroutable += s.unroutable.get();
        self.delivered += s.delivered.get();
        self.delivered_no_ack += s.delivered_no_ack.get();
        self.redelivered += s.redelivered.get();
        self.get += s.get.get();
        self.get_empty += s.get_empty.get();
        self.acked += s.acked.get();
        self.nacked += s.nacked.get();
        self.rejected += s.rejected.get();
        self.requeued += s.requeued.get();
    }

    pub fn add(&mut self, o: &MessageTotals) {
        self.published += o.published;
        self.confirmed += o.confirmed;
        self.returned += o.returned;
        self.unroutable += o.unroutable;
        self.delivered += o.delivered;
        self.delivered_no_ack += o.delivered_no_ack;
        self.redelivered += o.redelivered;
        self.get += o.get;
        self.get_empty += o.get_empty;
        self.acked += o.acked;
        self.nacked += o.nacked;
        self.rejected += o.rejected;
        self.requeued += o.requeued;
    }

    /// Everything handed to consumers: deliveries of both kinds and basic.get.
    pub fn deliver_get(&self) -> u64 {
        self.delivered + self.delivered_no_ack + self.get
    }
}

/// Broker-wide event counters (lifecycle events are rare: shared atomics are fine here).
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub connections_opened: Counter,
    pub connections_closed: Counter,
    pub channels_opened: Counter,
    pub channels_closed: Counter,
    pub queues_declared: Counter,
    pub queues_deleted: Counter,
    pub exchanges_declared: Counter,
    pub exchanges_deleted: Counter,
    pub consumers_added: Counter,
    pub consumers_removed: Counter,
    /// Refused logins (bad user, password or address, or over the per-address limit), by
    /// protocol: index `AuthProtocol as usize`.
    pub auth_failures: [Counter; 2],
    /// Message counts of channels that have closed, so totals never go backwards.
    pub retired: Mutex<MessageTotals>,
    /// Histograms of closed channels and deleted queues. Lock order: `retired`, then this.
    pub retired_histograms: Mutex<RetiredHistograms>,
    /// Counters of deleted exchanges.
    pub retired_exchanges: Mutex<ExchangeTotals>,
    /// Expiry, dead-letter and overflow counters of deleted queues.
    pub retired_queue_events: Mutex<QueueEventTotals>,
}

/// Where a login came in: AMQP (connection.start-ok) or the management API's basic auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthProtocol {
    Amqp = 0,
    Http = 1,
}

impl AuthProtocol {
    pub const ALL: [AuthProtocol; 2] = [AuthProtocol::Amqp, AuthProtocol::Http];

    /// The `protocol` label, as RabbitMQ names them in its auth-attempt metrics.
    pub fn label(self) -> &'static str {
        match self {
            AuthProtocol::Amqp => "amqp091",
            AuthProtocol::Http => "http",
        }
    }
}

impl BrokerStats {
    /// The refused-login counter for `protocol`.
    pub fn auth_failed(&self, protocol: AuthProtocol) -> &Counter {
        &self.auth_failures[protocol as usize]
    }

    /// Folds a closing channel's counters into the retired totals.
    pub fn retire_channel(&self, s: &ChannelStats) {
        self.retired.lock().add_channel(s);
        self.retired_histograms.lock().add_channel(s);
    }

    /// Folds a deleted queue's time-in-queue distribution into the retired histograms.
    pub fn retire_queue(&self, s: &QueueStats) {
        self.retired_queue_events.lock().add_queue(s);
        self.retired_histograms
            .lock()
            .time_in_queue
            .merge(&s.time_in_queue.snapshot());
    }

    /// Folds a deleted exchange's counters into the retired exchange totals.
    pub fn retire_exchange(&self, s: &ExchangeStats) {
        self.retired_exchanges.lock().add_exchange(s);
    }
}
