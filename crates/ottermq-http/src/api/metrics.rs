//! `/api/metrics/...`: OtterMQ's own time series from the metrics core (see docs/API.md).

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use ottermq_broker::sampler::{body_size_totals, message_totals, now_ms, queue_event_totals};
use ottermq_broker::stats::AuthProtocol;
use ottermq_metrics::{MetricId, ObjectKey, SeriesStore};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

#[derive(Deserialize)]
pub struct RangeQuery {
    duration: Option<String>,
    top: Option<usize>,
}

/// Parses `90s`, `5m`, `2h` (or plain seconds) up to the coarse tier's span.
fn parse_duration(s: Option<&str>, max: Duration) -> ApiResult<Duration> {
    let Some(s) = s else {
        return Ok(Duration::from_secs(300).min(max));
    };
    let bad = || ApiError::bad_request(format!("bad duration '{s}': use e.g. 60s, 5m, 2h"));
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    let d = Duration::from_secs(secs);
    if d > max {
        return Err(ApiError::bad_request(format!(
            "duration '{s}' is longer than the retained history ({}s)",
            max.as_secs()
        )));
    }
    Ok(d)
}

/// The metric names the API accepts: RabbitMQ-style short names plus the core's own names.
fn metric_by_name(name: &str) -> Option<MetricId> {
    Some(match name {
        "publish" => MetricId::Published,
        "deliver" | "deliver_get" => MetricId::Delivered,
        "ack" => MetricId::Acked,
        "nack" => MetricId::Nacked,
        "reject" => MetricId::Rejected,
        "redeliver" => MetricId::Redelivered,
        "return" => MetricId::Returned,
        "confirm" => MetricId::Confirmed,
        "ready" => MetricId::MessagesReady,
        "unacked" => MetricId::MessagesUnacked,
        "memory" => MetricId::MemoryRss,
        other => return other.parse().ok(),
    })
}

fn points_json(points: Vec<(i64, f64)>) -> Value {
    Value::Array(points.into_iter().map(|(t, v)| json!([t, v])).collect())
}

fn latest(store: &SeriesStore, key: &ObjectKey, id: MetricId) -> Value {
    store
        .latest(key, id)
        .map(|(_, v)| json!(v))
        .unwrap_or(Value::Null)
}

fn percentiles(store: &SeriesStore, ids: [MetricId; 3]) -> Value {
    let k = ObjectKey::Broker;
    json!({"p50": latest(store, &k, ids[0]), "p95": latest(store, &k, ids[1]), "p99": latest(store, &k, ids[2])})
}

fn max_duration(s: &AppState) -> Duration {
    s.broker.metrics.config.coarse_span()
}

pub async fn overview(State(s): State<AppState>) -> Json<Value> {
    let totals = message_totals(&s.broker);
    let sizes = body_size_totals(&s.broker);
    let events = queue_event_totals(&s.broker);
    let b = &s.broker.stats;
    let store = s.broker.metrics.read();
    let k = ObjectKey::Broker;
    let mut rates = Map::new();
    for (name, id) in [
        ("publish", MetricId::Published),
        ("deliver", MetricId::Delivered),
        ("ack", MetricId::Acked),
        ("nack", MetricId::Nacked),
        ("reject", MetricId::Rejected),
        ("redeliver", MetricId::Redelivered),
        ("return", MetricId::Returned),
        ("confirm", MetricId::Confirmed),
        ("unroutable", MetricId::Unroutable),
        ("expired", MetricId::Expired),
        ("dead_lettered_rejected", MetricId::DeadLetteredRejected),
        ("dead_lettered_expired", MetricId::DeadLetteredExpired),
        ("dead_lettered_maxlen", MetricId::DeadLetteredMaxlen),
        ("overflow_dropped", MetricId::OverflowDropped),
        (
            "dead_lettered_delivery_limit",
            MetricId::DeadLetteredDeliveryLimit,
        ),
        ("delivery_limited", MetricId::DeliveryLimited),
    ] {
        rates.insert(name.into(), latest(&store, &k, id));
    }
    let mut gauges = Map::new();
    for id in [
        MetricId::MessagesReady,
        MetricId::MessagesUnacked,
        MetricId::MessageBytes,
        MetricId::Consumers,
        MetricId::Connections,
        MetricId::Channels,
        MetricId::Queues,
        MetricId::Exchanges,
        MetricId::MemoryRss,
        MetricId::OpenFds,
    ] {
        gauges.insert(id.name().into(), latest(&store, &k, id));
    }
    Json(json!({
        "timestamp": now_ms(),
        "sample_timestamp": store.latest(&k, MetricId::Queues).map(|(t, _)| t),
        "interval_seconds": s.broker.metrics.config.fine_interval.as_secs_f64(),
        "rates": rates,
        "gauges": gauges,
        "totals": {
            "published": totals.published, "delivered": totals.delivered + totals.delivered_no_ack,
            "get": totals.get, "get_empty": totals.get_empty, "acked": totals.acked, "nacked": totals.nacked,
            "rejected": totals.rejected, "requeued": totals.requeued, "redelivered": totals.redelivered,
            "returned": totals.returned, "unroutable": totals.unroutable, "confirmed": totals.confirmed,
            "published_bytes": sizes.sum(),
            "expired": events.expired, "overflow_dropped": events.overflow_dropped,
            "delivery_limited": events.delivery_limited,
            "dead_lettered": {
                "rejected": events.dead_lettered_rejected, "expired": events.dead_lettered_expired,
                "maxlen": events.dead_lettered_maxlen,
                "delivery_limit": events.dead_lettered_delivery_limit,
            },
        },
        "message_size_bytes": {
            "count": sizes.count(), "sum": sizes.sum(), "mean": sizes.mean(), "max": sizes.max(),
            "p50": sizes.percentile(0.5), "p95": sizes.percentile(0.95), "p99": sizes.percentile(0.99),
        },
        "lifecycle": {
            "connections_opened": b.connections_opened.get(), "connections_closed": b.connections_closed.get(),
            "channels_opened": b.channels_opened.get(), "channels_closed": b.channels_closed.get(),
            "queues_declared": b.queues_declared.get(), "queues_deleted": b.queues_deleted.get(),
            "exchanges_declared": b.exchanges_declared.get(), "exchanges_deleted": b.exchanges_deleted.get(),
            "consumers_added": b.consumers_added.get(), "consumers_removed": b.consumers_removed.get(),
        },
        "auth_failures": {
            "amqp091": b.auth_failed(AuthProtocol::Amqp).get(),
            "http": b.auth_failed(AuthProtocol::Http).get(),
        },
        "latency_us": {
            "time_in_queue": percentiles(&store, [MetricId::LatencyP50, MetricId::LatencyP95, MetricId::LatencyP99]),
            "deliver_to_ack": percentiles(&store, [MetricId::AckLatencyP50, MetricId::AckLatencyP95, MetricId::AckLatencyP99]),
            "publish_to_confirm": percentiles(&store, [MetricId::ConfirmLatencyP50, MetricId::ConfirmLatencyP95, MetricId::ConfirmLatencyP99]),
            "publish_to_route": percentiles(&store, [MetricId::RouteLatencyP50, MetricId::RouteLatencyP95, MetricId::RouteLatencyP99]),
        },
    }))
}

pub async fn timeseries(
    State(s): State<AppState>,
    Path(metric): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let id = metric_by_name(&metric)
        .ok_or_else(|| ApiError::bad_request(format!("unknown metric '{metric}'")))?;
    let d = parse_duration(q.duration.as_deref(), max_duration(&s))?;
    let store = s.broker.metrics.read();
    let points = store
        .points(&ObjectKey::Broker, id, now_ms(), d)
        .unwrap_or_default();
    Ok(Json(json!({
        "metric": id.name(),
        "kind": if id.kind() == ottermq_metrics::MetricKind::Counter { "rate" } else { "gauge" },
        "duration_seconds": d.as_secs(),
        "points": points_json(points),
    })))
}

pub async fn queue_depths(
    State(s): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let d = parse_duration(q.duration.as_deref(), max_duration(&s))?;
    let top = q.top.unwrap_or(10).clamp(1, 1000);
    let mut depths: Vec<(String, String, u64)> = Vec::new();
    for v in s.broker.vhosts() {
        for queue in v.queues() {
            depths.push((
                v.name.to_string(),
                queue.name.to_string(),
                queue.counts().ready,
            ));
        }
    }
    depths.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
    depths.truncate(top);
    let store = s.broker.metrics.read();
    let now = now_ms();
    let queues: Vec<Value> = depths
        .into_iter()
        .map(|(vhost, name, ready)| {
            let key = ObjectKey::queue(vhost.as_str(), name.as_str());
            let points = store.points(&key, MetricId::MessagesReady, now, d).unwrap_or_default();
            json!({"vhost": vhost, "name": name, "messages_ready": ready, "points": points_json(points)})
        })
        .collect();
    Ok(Json(
        json!({"duration_seconds": d.as_secs(), "queues": queues}),
    ))
}

fn object_series(store: &SeriesStore, key: &ObjectKey, d: Duration) -> Value {
    let now = now_ms();
    let mut m = Map::new();
    for id in store.metrics(key).collect::<Vec<_>>() {
        m.insert(
            id.name().into(),
            points_json(store.points(key, id, now, d).unwrap_or_default()),
        );
    }
    Value::Object(m)
}

pub async fn queue(
    State(s): State<AppState>,
    axum::Extension(me): axum::Extension<crate::auth::AuthUser>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let d = parse_duration(q.duration.as_deref(), max_duration(&s))?;
    let v = super::vhost(&s, &me, &vhost)?;
    let queue = v.queue(name.as_bytes()).ok_or_else(|| {
        ApiError::not_found(format!("queue '{name}' not found in vhost '{vhost}'"))
    })?;
    let c = queue.counts();
    let st = &queue.stats;
    let store = s.broker.metrics.read();
    let key = ObjectKey::queue(vhost.as_str(), name.as_str());
    Ok(Json(json!({
        "vhost": vhost, "name": name, "duration_seconds": d.as_secs(),
        "current": {
            "messages_ready": c.ready, "messages_unacked": c.unacked, "message_bytes": c.ready_bytes,
            "consumers": c.consumers,
            "oldest_message_age_seconds": queue.oldest_ready_age().map(|a| a.as_secs_f64()),
        },
        "totals": {
            "enqueued": st.enqueued.get(), "delivered": st.delivered.get(), "acked": st.acked.get(),
            "redelivered": st.redelivered.get(), "requeued": st.requeued.get(), "rejected": st.rejected.get(),
            "expired": st.expired.get(), "overflow_dropped": st.overflow_dropped.get(),
            "delivery_limited": st.delivery_limited.get(),
            "dead_lettered": {
                "rejected": st.dead_lettered_rejected.get(), "expired": st.dead_lettered_expired.get(),
                "maxlen": st.dead_lettered_maxlen.get(),
                "delivery_limit": st.dead_lettered_delivery_limit.get(),
            },
        },
        "series": object_series(&store, &key, d),
    })))
}

pub async fn exchange(
    State(s): State<AppState>,
    axum::Extension(me): axum::Extension<crate::auth::AuthUser>,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let d = parse_duration(q.duration.as_deref(), max_duration(&s))?;
    let v = super::vhost(&s, &me, &vhost)?;
    let e = v
        .exchange(super::exchange_lookup_name(&name).as_bytes())
        .ok_or_else(|| {
            ApiError::not_found(format!("exchange '{name}' not found in vhost '{vhost}'"))
        })?;
    let store = s.broker.metrics.read();
    let key = ObjectKey::exchange(vhost.as_str(), name.as_str());
    Ok(Json(json!({
        "vhost": vhost, "name": name, "type": e.kind.as_str(), "duration_seconds": d.as_secs(),
        "totals": {
            "publish_in": e.stats.publish_in.get(), "publish_out": e.stats.publish_out.get(),
            "unroutable": e.stats.unroutable.get(), "publish_in_bytes": e.stats.publish_in_bytes.get(),
        },
        "series": object_series(&store, &key, d),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let max = Duration::from_secs(7200);
        assert_eq!(
            parse_duration(Some("5m"), max).unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_duration(Some("90"), max).unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(parse_duration(Some("2h"), max).unwrap(), max);
        assert_eq!(parse_duration(None, max).unwrap(), Duration::from_secs(300));
        for bad in ["", "0s", "5x", "m", "3h", "-1m", "99999999999999999999h"] {
            assert!(parse_duration(Some(bad), max).is_err(), "{bad}");
        }
    }
}
