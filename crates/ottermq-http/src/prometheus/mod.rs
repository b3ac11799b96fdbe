//! `GET /metrics` and `GET /metrics/per-object`: the Prometheus endpoint.
//!
//! Rendered at scrape time from the same objects the metrics core samples (channel, queue and
//! exchange counters, their log-linear histograms, the broker's lifecycle counters and the
//! retired totals of closed channels and deleted objects), so there is one source of truth and
//! nothing extra on the publish/deliver path. Open, as RabbitMQ's prometheus plugin is.
//!
//! Cardinality is bounded: `/metrics` always has the aggregated families and adds per-queue and
//! per-exchange families for at most `prometheus_per_object_limit` queues and exchanges (first
//! by vhost, then name, so the exported set is stable between scrapes); `/metrics/per-object`
//! has every object.

pub mod encode;

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use encode::{Encoder, Format, Kind};
use ottermq_broker::queue::{Queue, QueueCounts};
use ottermq_broker::stats::{AuthProtocol, QueueEventTotals};
use ottermq_broker::stats::{ExchangeTotals, MessageTotals, RetiredHistograms};
use ottermq_broker::Broker;
use ottermq_metrics::histogram::{LATENCY_BOUNDS_US, SIZE_BOUNDS_BYTES};
use ottermq_metrics::{HistogramSnapshot, ProcessStats};
use std::sync::Arc;

/// µs → s for latency histograms.
const US: f64 = 1e-6;

/// `GET /metrics`: aggregated families plus bounded per-object ones.
pub async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let limit = s.broker.config.prometheus_per_object_limit;
    respond(s.broker, &headers, limit).await
}

/// `GET /metrics/per-object`: every queue and exchange, unbounded (opt-in, as in RabbitMQ).
pub async fn metrics_per_object(State(s): State<AppState>, headers: HeaderMap) -> Response {
    respond(s.broker, &headers, usize::MAX).await
}

async fn respond(broker: Arc<Broker>, headers: &HeaderMap, limit: usize) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // Reading thousands of queues is CPU work: keep it off the async workers.
    match tokio::task::spawn_blocking(move || render(&broker, format, limit)).await {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(e) => crate::error::ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal_error",
            reason: format!("rendering metrics failed: {e}"),
        }
        .into_response(),
    }
}

/// What one queue contributes, read once per scrape.
struct QueueRow {
    vhost: Arc<str>,
    name: String,
    queue: Arc<Queue>,
    counts: QueueCounts,
    oldest_age: f64,
    time_in_queue: HistogramSnapshot,
}

/// What one exchange contributes.
struct ExchangeRow {
    vhost: Arc<str>,
    name: String,
    kind: &'static str,
    totals: ExchangeTotals,
}

/// Channel-side totals and merged histograms, retired ones included.
struct ChannelSide {
    totals: MessageTotals,
    hists: RetiredHistograms,
    channels: u64,
}

fn channel_side(broker: &Broker) -> ChannelSide {
    // Same lock order as a closing channel: retired totals, then retired histograms, then the
    // connection's channel map, so a closing channel is counted exactly once.
    let retired = broker.stats.retired.lock();
    let retired_h = broker.stats.retired_histograms.lock();
    let mut totals = *retired;
    let mut hists = retired_h.clone();
    let mut channels = 0;
    for c in broker.connections() {
        for ch in c.channels.lock().values() {
            channels += 1;
            totals.add_channel(&ch.stats);
            hists.ack_latency.merge(&ch.stats.ack_latency.snapshot());
            hists
                .confirm_latency
                .merge(&ch.stats.confirm_latency.snapshot());
            hists
                .route_latency
                .merge(&ch.stats.route_latency.snapshot());
            hists.body_size.merge(&ch.stats.body_size.snapshot());
        }
    }
    ChannelSide {
        totals,
        hists,
        channels,
    }
}

/// Renders one exposition; `limit` caps the queues and exchanges given per-object series.
pub fn render(broker: &Broker, format: Format, limit: usize) -> String {
    let side = channel_side(broker);
    let mut queues = Vec::new();
    let mut exchanges = Vec::new();
    for v in broker.vhosts() {
        for q in v.queues() {
            let counts = q.counts();
            let oldest_age = q.oldest_ready_age().map_or(0.0, |d| d.as_secs_f64());
            queues.push(QueueRow {
                vhost: v.name.clone(),
                name: q.name.to_string_lossy().into_owned(),
                time_in_queue: q.stats.time_in_queue.snapshot(),
                queue: q,
                counts,
                oldest_age,
            });
        }
        for e in v.exchanges() {
            let mut totals = ExchangeTotals::default();
            totals.add_exchange(&e.stats);
            exchanges.push(ExchangeRow {
                vhost: v.name.clone(),
                name: e.name.to_string_lossy().into_owned(),
                kind: e.kind.as_str(),
                totals,
            });
        }
    }
    let mut ex_totals = *broker.stats.retired_exchanges.lock();
    for e in &exchanges {
        ex_totals.publish_in += e.totals.publish_in;
        ex_totals.publish_out += e.totals.publish_out;
        ex_totals.unroutable += e.totals.unroutable;
        ex_totals.publish_in_bytes += e.totals.publish_in_bytes;
    }
    let mut time_in_queue = side.hists.time_in_queue.clone();
    let (mut ready, mut unacked, mut ready_bytes, mut consumers, mut oldest) = (0, 0, 0, 0, 0f64);
    let (mut ram_bytes, mut paged, mut page_in_failed) = (0, 0, 0);
    for q in &queues {
        time_in_queue.merge(&q.time_in_queue);
        ready += q.counts.ready;
        unacked += q.counts.unacked;
        ready_bytes += q.counts.ready_bytes;
        ram_bytes += q.counts.ram_bytes;
        paged += q.counts.paged;
        page_in_failed += q.counts.page_in_failed;
        consumers += u64::from(q.counts.consumers);
        oldest = oldest.max(q.oldest_age);
    }

    let mut e = Encoder::new(format);
    let t = &side.totals;
    let b = &broker.stats;
    let counters: [(&str, &str, u64); 16] = [
        (
            "ottermq_messages_published_total",
            "Messages published by clients (basic.publish).",
            t.published,
        ),
        (
            "ottermq_messages_routed_total",
            "Published messages routed to at least one queue.",
            ex_totals.publish_out,
        ),
        (
            "ottermq_messages_unroutable_total",
            "Published messages that matched no queue (dropped or returned).",
            t.unroutable,
        ),
        (
            "ottermq_messages_returned_total",
            "Unroutable mandatory messages returned to the publisher (basic.return).",
            t.returned,
        ),
        (
            "ottermq_messages_delivered_total",
            "Messages delivered to consumers (basic.deliver), with or without acks.",
            t.delivered + t.delivered_no_ack,
        ),
        (
            "ottermq_messages_delivered_no_ack_total",
            "Messages delivered to no-ack consumers.",
            t.delivered_no_ack,
        ),
        (
            "ottermq_messages_get_total",
            "Messages fetched with basic.get.",
            t.get,
        ),
        (
            "ottermq_messages_get_empty_total",
            "basic.get calls answered get-empty.",
            t.get_empty,
        ),
        (
            "ottermq_messages_redelivered_total",
            "Deliveries of messages delivered before (redelivered flag set).",
            t.redelivered,
        ),
        (
            "ottermq_messages_acked_total",
            "Messages acknowledged by consumers (basic.ack).",
            t.acked,
        ),
        (
            "ottermq_messages_nacked_total",
            "Messages negatively acknowledged by consumers (basic.nack).",
            t.nacked,
        ),
        (
            "ottermq_messages_rejected_total",
            "Messages rejected by consumers (basic.reject).",
            t.rejected,
        ),
        (
            "ottermq_messages_requeued_total",
            "Messages requeued by nack, reject, recover or a closed channel.",
            t.requeued,
        ),
        (
            "ottermq_messages_confirmed_total",
            "Publisher confirms sent (basic.ack to publishers in confirm mode).",
            t.confirmed,
        ),
        (
            "ottermq_messages_published_bytes_total",
            "Body bytes of messages published.",
            side.hists.body_size.sum(),
        ),
        (
            "ottermq_connections_opened_total",
            "Client connections opened.",
            b.connections_opened.get(),
        ),
    ];
    for (name, help, v) in counters {
        e.family(name, Kind::Counter, help);
        e.int(name, &[], v);
    }
    let mut events = *broker.stats.retired_queue_events.lock();
    for q in &queues {
        events.add_queue(&q.queue.stats);
    }
    event_families(
        &mut e,
        "ottermq_messages",
        &[],
        std::slice::from_ref(&events),
    );
    let lifecycle: [(&str, &str, u64); 9] = [
        (
            "ottermq_connections_closed_total",
            "Client connections closed.",
            b.connections_closed.get(),
        ),
        (
            "ottermq_channels_opened_total",
            "Channels opened.",
            b.channels_opened.get(),
        ),
        (
            "ottermq_channels_closed_total",
            "Channels closed.",
            b.channels_closed.get(),
        ),
        (
            "ottermq_queues_declared_total",
            "Queues created.",
            b.queues_declared.get(),
        ),
        (
            "ottermq_queues_deleted_total",
            "Queues deleted.",
            b.queues_deleted.get(),
        ),
        (
            "ottermq_exchanges_declared_total",
            "Exchanges created.",
            b.exchanges_declared.get(),
        ),
        (
            "ottermq_exchanges_deleted_total",
            "Exchanges deleted.",
            b.exchanges_deleted.get(),
        ),
        (
            "ottermq_consumers_added_total",
            "Consumers started (basic.consume).",
            b.consumers_added.get(),
        ),
        (
            "ottermq_consumers_removed_total",
            "Consumers cancelled or gone with their channel.",
            b.consumers_removed.get(),
        ),
    ];
    for (name, help, v) in lifecycle {
        e.family(name, Kind::Counter, help);
        e.int(name, &[], v);
    }
    let name = "ottermq_auth_attempts_failed_total";
    e.family(
        name,
        Kind::Counter,
        "Refused logins (unknown user, wrong password, guest from afar, or over the per-address limit), by protocol: AMQP or management HTTP basic auth.",
    );
    for p in AuthProtocol::ALL {
        e.int(name, &[("protocol", p.label())], b.auth_failed(p).get());
    }
    let gauges: [(&str, &str, u64); 12] = [
        (
            "ottermq_messages_ready",
            "Messages ready for delivery, over all queues.",
            ready,
        ),
        (
            "ottermq_messages_unacked",
            "Messages delivered and not yet acknowledged, over all queues.",
            unacked,
        ),
        (
            "ottermq_messages_ready_bytes",
            "Body bytes of ready messages, over all queues.",
            ready_bytes,
        ),
        (
            "ottermq_messages_ram_bytes",
            "Body bytes of ready messages held in RAM (not paged out to disk), over all queues.",
            ram_bytes,
        ),
        (
            "ottermq_messages_paged_out",
            "Ready messages whose body is paged out to disk, over all queues.",
            paged,
        ),
        (
            "ottermq_messages_page_in_failed",
            "Messages dropped because they could not be read back from disk, over all live queues.",
            page_in_failed,
        ),
        (
            "ottermq_connections",
            "Open client connections.",
            broker.connections().len() as u64,
        ),
        ("ottermq_channels", "Open channels.", side.channels),
        (
            "ottermq_consumers",
            "Consumers, over all queues.",
            consumers,
        ),
        (
            "ottermq_queues",
            "Queues, over all vhosts.",
            queues.len() as u64,
        ),
        (
            "ottermq_exchanges",
            "Exchanges, over all vhosts (built-in ones included).",
            exchanges.len() as u64,
        ),
        (
            "ottermq_vhosts",
            "Virtual hosts.",
            broker.vhosts().len() as u64,
        ),
    ];
    for (name, help, v) in gauges {
        e.family(name, Kind::Gauge, help);
        e.int(name, &[], v);
    }
    e.family(
        "ottermq_oldest_ready_message_age_seconds",
        Kind::Gauge,
        "Age of the oldest ready message over all queues (0 when none is ready).",
    );
    e.float("ottermq_oldest_ready_message_age_seconds", &[], oldest);

    let hists: [(&str, &str, &HistogramSnapshot, &[f64], f64); 5] = [
        (
            "ottermq_message_body_size_bytes",
            "Body sizes of published messages.",
            &side.hists.body_size,
            SIZE_BOUNDS_BYTES,
            1.0,
        ),
        (
            "ottermq_message_time_in_queue_seconds",
            "Time from enqueue to delivery (or basic.get).",
            &time_in_queue,
            LATENCY_BOUNDS_US,
            US,
        ),
        (
            "ottermq_deliver_to_ack_seconds",
            "Time from delivery to the consumer's ack.",
            &side.hists.ack_latency,
            LATENCY_BOUNDS_US,
            US,
        ),
        (
            "ottermq_publish_to_confirm_seconds",
            "Time from publish to the publisher confirm.",
            &side.hists.confirm_latency,
            LATENCY_BOUNDS_US,
            US,
        ),
        (
            "ottermq_publish_to_route_seconds",
            "Time from the publish method frame to the message being enqueued.",
            &side.hists.route_latency,
            LATENCY_BOUNDS_US,
            US,
        ),
    ];
    for (name, help, snap, bounds, scale) in hists {
        e.family(name, Kind::Histogram, help);
        e.histogram(name, &[], snap, bounds, scale);
    }

    process_families(&mut e, broker);
    per_object(&mut e, queues, exchanges, limit);
    e.finish()
}

fn process_families(e: &mut Encoder, broker: &Broker) {
    let p = ProcessStats::read();
    let uptime = broker.started_at.elapsed().as_secs_f64();
    if let Some(rss) = p.rss_bytes {
        e.family(
            "ottermq_process_resident_memory_bytes",
            Kind::Gauge,
            "Resident set size of the broker process.",
        );
        e.int("ottermq_process_resident_memory_bytes", &[], rss);
    }
    if let Some(fds) = p.open_fds {
        e.family(
            "ottermq_process_open_fds",
            Kind::Gauge,
            "Open file descriptors (sockets included).",
        );
        e.int("ottermq_process_open_fds", &[], fds);
    }
    if let Some(max) = p.max_fds {
        e.family(
            "ottermq_process_max_fds",
            Kind::Gauge,
            "Soft limit on open file descriptors.",
        );
        e.int("ottermq_process_max_fds", &[], max);
    }
    e.family(
        "ottermq_uptime_seconds",
        Kind::Gauge,
        "Time since the broker started.",
    );
    e.float("ottermq_uptime_seconds", &[], uptime);
    let start = ottermq_broker::sampler::now_ms() as f64 / 1000.0 - uptime;
    e.family(
        "ottermq_process_start_time_seconds",
        Kind::Gauge,
        "Start time of the broker since the Unix epoch.",
    );
    e.float("ottermq_process_start_time_seconds", &[], start);
    e.family(
        "ottermq_build_info",
        Kind::Info,
        "Version of the running broker (value is always 1).",
    );
    e.int(
        "ottermq_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("product", "OtterMQ"),
        ],
        1,
    );
}

fn per_object(
    e: &mut Encoder,
    mut queues: Vec<QueueRow>,
    mut exchanges: Vec<ExchangeRow>,
    limit: usize,
) {
    let (all_queues, all_exchanges) = (queues.len(), exchanges.len());
    queues.sort_unstable_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    queues.truncate(limit);
    exchanges.sort_unstable_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    exchanges.truncate(limit);
    e.family(
        "ottermq_prometheus_per_object_limit",
        Kind::Gauge,
        "Most queues (and exchanges) given per-object series on /metrics (prometheus_per_object_limit).",
    );
    e.int(
        "ottermq_prometheus_per_object_limit",
        &[],
        limit.min(u64::MAX as usize) as u64,
    );
    e.family(
        "ottermq_prometheus_per_object_omitted",
        Kind::Gauge,
        "Objects left out of the per-object series by the limit (see /metrics/per-object).",
    );
    e.int(
        "ottermq_prometheus_per_object_omitted",
        &[("object", "queue")],
        (all_queues - queues.len()) as u64,
    );
    e.int(
        "ottermq_prometheus_per_object_omitted",
        &[("object", "exchange")],
        (all_exchanges - exchanges.len()) as u64,
    );

    type QueueValue = fn(&QueueRow) -> u64;
    let queue_gauges: [(&str, &str, QueueValue); 4] = [
        (
            "ottermq_queue_messages_ready",
            "Messages ready for delivery in the queue.",
            |q| q.counts.ready,
        ),
        (
            "ottermq_queue_messages_unacked",
            "Messages delivered from the queue and not yet acknowledged.",
            |q| q.counts.unacked,
        ),
        (
            "ottermq_queue_messages_ready_bytes",
            "Body bytes of the queue's ready messages.",
            |q| q.counts.ready_bytes,
        ),
        ("ottermq_queue_consumers", "Consumers on the queue.", |q| {
            u64::from(q.counts.consumers)
        }),
    ];
    for (name, help, f) in queue_gauges {
        e.family(name, Kind::Gauge, help);
        for q in &queues {
            e.int(name, &[("vhost", &q.vhost), ("queue", &q.name)], f(q));
        }
    }
    e.family(
        "ottermq_queue_oldest_ready_message_age_seconds",
        Kind::Gauge,
        "Age of the queue's oldest ready message (0 when none is ready).",
    );
    for q in &queues {
        e.float(
            "ottermq_queue_oldest_ready_message_age_seconds",
            &[("vhost", &q.vhost), ("queue", &q.name)],
            q.oldest_age,
        );
    }
    let queue_counters: [(&str, &str, QueueValue); 6] = [
        (
            "ottermq_queue_messages_published_total",
            "Messages enqueued into the queue.",
            |q| q.queue.stats.enqueued.get(),
        ),
        (
            "ottermq_queue_messages_delivered_total",
            "Messages delivered from the queue (deliver and get).",
            |q| q.queue.stats.delivered.get(),
        ),
        (
            "ottermq_queue_messages_redelivered_total",
            "Redeliveries from the queue.",
            |q| q.queue.stats.redelivered.get(),
        ),
        (
            "ottermq_queue_messages_acked_total",
            "Messages from the queue acknowledged by consumers.",
            |q| q.queue.stats.acked.get(),
        ),
        (
            "ottermq_queue_messages_requeued_total",
            "Messages returned to the queue by nack, reject or recover.",
            |q| q.queue.stats.requeued.get(),
        ),
        (
            "ottermq_queue_messages_rejected_total",
            "Messages settled without requeue by nack or reject.",
            |q| q.queue.stats.rejected.get(),
        ),
    ];
    for (name, help, f) in queue_counters {
        e.family(name, Kind::Counter, help);
        for q in &queues {
            e.int(name, &[("vhost", &q.vhost), ("queue", &q.name)], f(q));
        }
    }
    let per_queue: Vec<QueueEventTotals> = queues
        .iter()
        .map(|q| {
            let mut t = QueueEventTotals::default();
            t.add_queue(&q.queue.stats);
            t
        })
        .collect();
    let labels: Vec<[(&str, &str); 2]> = queues
        .iter()
        .map(|q| [("vhost", &*q.vhost), ("queue", q.name.as_str())])
        .collect();
    let labels: Vec<&[(&str, &str)]> = labels.iter().map(|l| &l[..]).collect();
    event_families(e, "ottermq_queue_messages", &labels, &per_queue);
    e.family(
        "ottermq_queue_time_in_queue_seconds",
        Kind::Histogram,
        "Time messages of the queue waited from enqueue to delivery.",
    );
    for q in &queues {
        e.histogram(
            "ottermq_queue_time_in_queue_seconds",
            &[("vhost", &q.vhost), ("queue", &q.name)],
            &q.time_in_queue,
            LATENCY_BOUNDS_US,
            US,
        );
    }

    type ExchangeValue = fn(&ExchangeTotals) -> u64;
    let exchange_counters: [(&str, &str, ExchangeValue); 4] = [
        (
            "ottermq_exchange_messages_published_total",
            "Messages published to the exchange.",
            |t| t.publish_in,
        ),
        (
            "ottermq_exchange_messages_routed_total",
            "Messages the exchange routed to at least one queue.",
            |t| t.publish_out,
        ),
        (
            "ottermq_exchange_messages_unroutable_total",
            "Messages published to the exchange that matched no queue.",
            |t| t.unroutable,
        ),
        (
            "ottermq_exchange_messages_published_bytes_total",
            "Body bytes of messages published to the exchange.",
            |t| t.publish_in_bytes,
        ),
    ];
    for (name, help, f) in exchange_counters {
        e.family(name, Kind::Counter, help);
        for x in &exchanges {
            e.int(
                name,
                &[("vhost", &x.vhost), ("exchange", &x.name), ("type", x.kind)],
                f(&x.totals),
            );
        }
    }
}

/// `<prefix>_expired_total`, `<prefix>_dead_lettered_total{reason}`,
/// `<prefix>_overflow_dropped_total` and `<prefix>_delivery_limited_total`: one row per label set (none for the broker-wide ones).
fn event_families(
    e: &mut Encoder,
    prefix: &str,
    labels: &[&[(&str, &str)]],
    rows: &[QueueEventTotals],
) {
    let label_of = |i: usize| -> &[(&str, &str)] { labels.get(i).copied().unwrap_or(&[]) };
    let expired = format!("{prefix}_expired_total");
    e.family(
        &expired,
        Kind::Counter,
        "Messages whose TTL ran out (dropped or dead-lettered).",
    );
    for (i, t) in rows.iter().enumerate() {
        e.int(&expired, label_of(i), t.expired);
    }
    let dead = format!("{prefix}_dead_lettered_total");
    e.family(
        &dead,
        Kind::Counter,
        "Messages republished through a dead-letter exchange, by reason (rejected, expired, maxlen, delivery_limit).",
    );
    for (i, t) in rows.iter().enumerate() {
        for (reason, n) in [
            ("rejected", t.dead_lettered_rejected),
            ("expired", t.dead_lettered_expired),
            ("maxlen", t.dead_lettered_maxlen),
            ("delivery_limit", t.dead_lettered_delivery_limit),
        ] {
            let mut l: Vec<(&str, &str)> = label_of(i).to_vec();
            l.push(("reason", reason));
            e.int(&dead, &l, n);
        }
    }
    let dropped = format!("{prefix}_overflow_dropped_total");
    e.family(
        &dropped,
        Kind::Counter,
        "Messages lost to a length limit: dropped from the head (drop-head) or refused at publish (reject-publish, reject-publish-dlx).",
    );
    for (i, t) in rows.iter().enumerate() {
        e.int(&dropped, label_of(i), t.overflow_dropped);
    }
    let limited = format!("{prefix}_delivery_limited_total");
    e.family(
        &limited,
        Kind::Counter,
        "Messages a quorum queue took off for going past its x-delivery-limit (dropped or dead-lettered).",
    );
    for (i, t) in rows.iter().enumerate() {
        e.int(&limited, label_of(i), t.delivery_limited);
    }
}
