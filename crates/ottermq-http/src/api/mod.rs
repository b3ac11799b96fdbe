//! The management API's read endpoints, in RabbitMQ's JSON shape for the fields they share, so
//! tools written for RabbitMQ's management API can read OtterMQ.

pub mod access;
pub mod admin;
mod args_hash;
mod body;
pub mod definitions;
mod json;
pub mod metrics;
pub mod objects;
pub mod paging;
pub mod publish;
pub mod queue_actions;
pub mod topic_permissions;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::Json;
use json::{binding_json, channel_json, connection_json, exchange_json, queue_json};
use serde_json::{json, Value};

/// `GET /api/whoami`: the authenticated user (the UI's login check), as RabbitMQ answers it.
pub async fn whoami(axum::Extension(u): axum::Extension<crate::auth::AuthUser>) -> Json<Value> {
    Json(json!({"name": u.name, "tags": u.tags.join(",")}))
}

/// RabbitMQ's management URLs name the default exchange `amq.default` (its real name is empty).
pub(crate) fn exchange_lookup_name(name: &str) -> &str {
    if name == "amq.default" {
        ""
    } else {
        name
    }
}

use crate::auth::AuthUser;
use access::{sees_user, sees_vhost, vhost_for as vhost};
use axum::Extension;

pub async fn overview(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> Json<Value> {
    let mut vhosts = s.broker.vhosts();
    vhosts.retain(|v| sees_vhost(&s, &me, &v.name));
    let (mut ready, mut unacked, mut consumers, mut queues, mut exchanges) =
        (0u64, 0u64, 0u64, 0usize, 0usize);
    for v in &vhosts {
        for q in v.queues() {
            let c = q.counts();
            ready += c.ready;
            unacked += c.unacked;
            consumers += c.consumers as u64;
        }
        queues += v.queue_count();
        exchanges += v.exchange_count();
    }
    let conns = s.broker.connections();
    let channels: usize = conns.iter().map(|c| c.channels.lock().len()).sum();
    let t = ottermq_broker::sampler::message_totals(&s.broker);
    let stats = {
        use ottermq_metrics::{MetricId, ObjectKey};
        let store = s.broker.metrics.read();
        json::message_stats(
            &store,
            &ObjectKey::Broker,
            &[
                ("publish", t.published, MetricId::Published),
                ("deliver_get", t.deliver_get(), MetricId::Delivered),
                ("ack", t.acked, MetricId::Acked),
                ("redeliver", t.redelivered, MetricId::Redelivered),
                ("confirm", t.confirmed, MetricId::Confirmed),
                ("return_unroutable", t.returned, MetricId::Returned),
            ],
        )
    };
    Json(json!({
        "message_stats": stats,
        "product_name": "OtterMQ",
        "product_version": env!("CARGO_PKG_VERSION"),
        "management_version": env!("CARGO_PKG_VERSION"),
        "cluster_name": "ottermq",
        "node": "ottermq@localhost",
        "queue_totals": {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked},
        "object_totals": {
            "connections": conns.len(), "channels": channels, "exchanges": exchanges,
            "queues": queues, "consumers": consumers,
        },
        "listeners": s.readiness.amqp_addr.get().map(|a| vec![json!({"protocol": "amqp", "port": a.port(), "ip_address": a.ip().to_string()})]).unwrap_or_default(),
    }))
}

pub async fn vhosts(State(s): State<AppState>, Extension(me): Extension<AuthUser>) -> Json<Value> {
    let list: Vec<Value> = s
        .broker
        .vhosts()
        .iter()
        .filter(|v| sees_vhost(&s, &me, &v.name))
        .map(|v| {
            let (mut ready, mut unacked) = (0, 0);
            for q in v.queues() {
                let c = q.counts();
                ready += c.ready;
                unacked += c.unacked;
            }
            json!({"name": &*v.name, "messages": ready + unacked, "messages_ready": ready,
                   "messages_unacknowledged": unacked, "tracing": false})
        })
        .collect();
    Json(Value::Array(list))
}

pub async fn queues(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Query(lq): Query<paging::ListQuery>,
) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    {
        let store = s.broker.metrics.read();
        for v in s.broker.vhosts() {
            if !sees_vhost(&s, &me, &v.name) {
                continue;
            }
            out.extend(v.queues().iter().map(|q| queue_json(q, &store)));
        }
    }
    Ok(Json(paging::apply(out, &lq)?))
}

pub async fn queues_in(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(vh): Path<String>,
    Query(lq): Query<paging::ListQuery>,
) -> ApiResult<Json<Value>> {
    let v = vhost(&s, &me, &vh)?;
    let out = {
        let store = s.broker.metrics.read();
        v.queues().iter().map(|q| queue_json(q, &store)).collect()
    };
    Ok(Json(paging::apply(out, &lq)?))
}

pub async fn queue(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let v = vhost(&s, &me, &vh)?;
    let q = v
        .queue(name.as_bytes())
        .ok_or_else(|| ApiError::not_found(format!("queue '{name}' not found in vhost '{vh}'")))?;
    let store = s.broker.metrics.read();
    Ok(Json(queue_json(&q, &store)))
}

pub async fn exchanges(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Query(lq): Query<paging::ListQuery>,
) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    {
        let store = s.broker.metrics.read();
        for v in s.broker.vhosts() {
            if !sees_vhost(&s, &me, &v.name) {
                continue;
            }
            out.extend(
                v.exchanges()
                    .iter()
                    .map(|e| exchange_json(&v.name, e, &store)),
            );
        }
    }
    Ok(Json(paging::apply(out, &lq)?))
}

pub async fn exchanges_in(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(vh): Path<String>,
) -> ApiResult<Json<Value>> {
    let v = vhost(&s, &me, &vh)?;
    let store = s.broker.metrics.read();
    Ok(Json(Value::Array(
        v.exchanges()
            .iter()
            .map(|e| exchange_json(&v.name, e, &store))
            .collect(),
    )))
}

pub async fn exchange(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let v = vhost(&s, &me, &vh)?;
    let e = v
        .exchange(exchange_lookup_name(&name).as_bytes())
        .ok_or_else(|| {
            ApiError::not_found(format!("exchange '{name}' not found in vhost '{vh}'"))
        })?;
    let store = s.broker.metrics.read();
    Ok(Json(exchange_json(&v.name, &e, &store)))
}

pub async fn bindings(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> Json<Value> {
    let mut out = Vec::new();
    for v in s.broker.vhosts() {
        if !sees_vhost(&s, &me, &v.name) {
            continue;
        }
        for e in v.exchanges() {
            for b in e.bindings() {
                out.push(binding_json(&v.name, &e.name, &b));
            }
        }
    }
    Json(Value::Array(out))
}

pub async fn connections(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Query(lq): Query<paging::ListQuery>,
) -> ApiResult<Json<Value>> {
    let out = s
        .broker
        .connections()
        .iter()
        .filter(|c| sees_user(&me, &c.info.lock().user))
        .map(|c| connection_json(c))
        .collect();
    Ok(Json(paging::apply(out, &lq)?))
}

pub async fn channels(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> Json<Value> {
    let mut out = Vec::new();
    for c in s.broker.connections() {
        if !sees_user(&me, &c.info.lock().user) {
            continue;
        }
        let chans: Vec<_> = c.channels.lock().values().cloned().collect();
        out.extend(chans.iter().map(|ch| channel_json(&c, ch)));
    }
    Json(Value::Array(out))
}

pub async fn consumers(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> Json<Value> {
    let mut out = Vec::new();
    for c in s.broker.connections() {
        let chans: Vec<_> = c.channels.lock().values().cloned().collect();
        for ch in chans {
            let list: Vec<_> = ch.consumers.lock().clone();
            for (q, cons) in list {
                if !sees_vhost(&s, &me, &q.vhost) {
                    continue;
                }
                out.push(json!({
                    "consumer_tag": cons.tag.to_string(),
                    "queue": {"name": q.name.to_string(), "vhost": &*q.vhost},
                    "channel_details": json::channel_details(&c, ch.id),
                    "ack_required": !cons.no_ack,
                    "exclusive": cons.exclusive,
                    "prefetch_count": cons.prefetch,
                    "priority": cons.priority,
                    "active": true,
                }));
            }
        }
    }
    Json(Value::Array(out))
}
