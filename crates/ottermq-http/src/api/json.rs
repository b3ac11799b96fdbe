//! Broker objects as RabbitMQ-shaped JSON.

use ottermq_broker::channel::shared::ChannelShared;
use ottermq_broker::connection::ConnectionHandle;
use ottermq_broker::exchange::{Binding, Destination, Exchange};
use ottermq_broker::queue::Queue;
use ottermq_metrics::{MetricId, ObjectKey, SeriesStore};
use ottermq_protocol::{FieldTable, FieldValue, ShortStr};
use serde_json::{json, Map, Value};

/// RabbitMQ's `message_stats` entries: a count since start and `<name>_details.rate`, the rate
/// over the sampler's last interval (0 before the first sample).
pub fn message_stats(
    store: &SeriesStore,
    key: &ObjectKey,
    items: &[(&str, u64, MetricId)],
) -> Value {
    let mut m = Map::new();
    for (name, count, id) in items {
        let rate = store.latest(key, *id).map(|(_, v)| v).unwrap_or(0.0);
        m.insert((*name).to_string(), json!(count));
        m.insert(format!("{name}_details"), json!({ "rate": rate }));
    }
    Value::Object(m)
}

pub fn table_json(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t.iter() {
        m.insert(k.to_string(), value_json(v));
    }
    Value::Object(m)
}

fn value_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => json!(b),
        FieldValue::F32(x) => json!(x),
        FieldValue::F64(x) => json!(x),
        FieldValue::Decimal { scale, value } => json!(*value as f64 / 10f64.powi(*scale as i32)),
        FieldValue::LongStr(s) => json!(s.to_string_lossy()),
        FieldValue::ShortStr(s) => json!(s.to_string_lossy()),
        FieldValue::Bytes(b) => json!(String::from_utf8_lossy(b)),
        FieldValue::Array(a) => Value::Array(a.iter().map(value_json).collect()),
        FieldValue::Timestamp(t) => json!(t),
        FieldValue::Table(t) => table_json(t),
        FieldValue::Void => Value::Null,
        FieldValue::U64(x) => json!(x),
        other => json!(other.as_i64()),
    }
}

pub fn queue_json(q: &Queue, store: &SeriesStore) -> Value {
    let c = q.counts();
    let s = &q.stats;
    let key = ObjectKey::queue(q.vhost.clone(), q.name.to_string_lossy().as_ref());
    let stats = message_stats(
        store,
        &key,
        &[
            ("publish", s.enqueued.get(), MetricId::Published),
            ("deliver_get", s.delivered.get(), MetricId::Delivered),
            ("ack", s.acked.get(), MetricId::Acked),
            ("redeliver", s.redelivered.get(), MetricId::Redelivered),
        ],
    );
    json!({
        "message_stats": stats,
        "name": q.name.to_string(),
        "vhost": &*q.vhost,
        "durable": q.options.durable,
        "auto_delete": q.options.auto_delete,
        "exclusive": q.options.exclusive,
        "arguments": table_json(&q.options.arguments),
        "type": q.kind.as_str(),
        "state": "running",
        "node": "ottermq@localhost",
        "messages": c.ready + c.unacked,
        "messages_ready": c.ready,
        "messages_unacknowledged": c.unacked,
        "message_bytes_ready": c.ready_bytes,
        "message_bytes_ram": c.ram_bytes,
        "messages_paged_out": c.paged,
        "message_bytes_paged_out": c.ready_bytes - c.ram_bytes.min(c.ready_bytes),
        // Messages dropped because they could not be read back from disk (lazy paging).
        "messages_page_in_failed": c.page_in_failed,
        "consumers": c.consumers,
        "oldest_message_age_seconds": q.oldest_ready_age().map(|d| d.as_secs_f64()),
    })
}

pub fn exchange_json(vhost: &str, e: &Exchange, store: &SeriesStore) -> Value {
    let key = ObjectKey::exchange(vhost, e.name.to_string_lossy().as_ref());
    let stats = message_stats(
        store,
        &key,
        &[
            ("publish_in", e.stats.publish_in.get(), MetricId::Published),
            ("publish_out", e.stats.publish_out.get(), MetricId::Routed),
        ],
    );
    json!({
        "message_stats": stats,
        "name": e.name.to_string(),
        "vhost": vhost,
        "type": e.kind.as_str(),
        "durable": e.durable,
        "auto_delete": e.auto_delete,
        "internal": e.internal,
        "arguments": table_json(&e.arguments),
    })
}

pub fn binding_json(vhost: &str, source: &ShortStr, b: &Binding) -> Value {
    let (dest_type, dest) = match &b.destination {
        Destination::Queue(q) => ("queue", q.name.to_string()),
        Destination::Exchange(e) => ("exchange", e.name.to_string()),
    };
    json!({
        "source": source.to_string(),
        "vhost": vhost,
        "destination": dest,
        "destination_type": dest_type,
        "routing_key": b.routing_key.to_string(),
        "arguments": table_json(&b.arguments),
        "properties_key": super::objects::properties_key(&b.routing_key.to_string(), &b.arguments),
    })
}

/// RabbitMQ names a connection "peer -> local".
pub fn connection_name(c: &ConnectionHandle) -> String {
    match c.local {
        Some(local) => format!("{} -> {}", c.peer, local),
        None => c.peer.to_string(),
    }
}

/// Message counts since the channel opened (RabbitMQ's channel `message_stats` counts). Rates
/// per channel are not sampled; the UI derives them from two readings.
fn channel_counts(ch: &ChannelShared) -> [u64; 4] {
    let s = &ch.stats;
    [
        s.published.get(),
        s.delivered.get() + s.delivered_no_ack.get() + s.get.get(),
        s.acked.get(),
        s.confirmed.get(),
    ]
}

fn counts_json(c: [u64; 4]) -> Value {
    json!({"publish": c[0], "deliver_get": c[1], "ack": c[2], "confirm": c[3]})
}

pub fn connection_json(c: &ConnectionHandle) -> Value {
    let info = c.info.lock().clone();
    let mut counts = [0u64; 4];
    for ch in c.channels.lock().values() {
        for (sum, n) in counts.iter_mut().zip(channel_counts(ch)) {
            *sum += n;
        }
    }
    let connected_at = c
        .connected_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({
        "name": connection_name(c),
        "vhost": info.vhost,
        "user": info.user,
        "state": "running",
        "protocol": "AMQP 0-9-1",
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "host": c.local.map(|l| l.ip().to_string()),
        "port": c.local.map(|l| l.port()),
        "channels": c.channels.lock().len(),
        "send_pend": c.out.pending_bytes(),
        "frame_max": info.frame_max,
        "channel_max": info.channel_max,
        "timeout": info.heartbeat,
        "connected_at": connected_at,
        "client_properties": table_json(&info.client_properties),
        "message_stats": counts_json(counts),
    })
}

pub fn channel_details(c: &ConnectionHandle, number: u16) -> Value {
    json!({
        "name": format!("{} ({number})", connection_name(c)),
        "number": number,
        "connection_name": connection_name(c),
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
    })
}

pub fn channel_json(c: &ConnectionHandle, ch: &ChannelShared) -> Value {
    let info = c.info.lock().clone();
    json!({
        "name": format!("{} ({})", connection_name(c), ch.id),
        "number": ch.id,
        "connection_details": channel_details(c, ch.id),
        "vhost": info.vhost,
        "user": info.user,
        "state": "running",
        "consumer_count": ch.consumers.lock().len(),
        "messages_unacknowledged": ch.unacked_count(),
        "message_stats": counts_json(channel_counts(ch)),
    })
}
