//! Management actions on queues, in RabbitMQ's management API shape: purge
//! (`DELETE /api/queues/{vhost}/{name}/contents`), delete (`DELETE /api/queues/{vhost}/{name}`
//! with `if-unused` / `if-empty`) and get (`POST /api/queues/{vhost}/{name}/get`). They act on
//! the broker's real queues, and gets count in the message totals like basic.get does.

use super::body::{parse_json, payload_json};
use super::vhost;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Extension;
use axum::Json;
use ottermq_broker::permissions::{self, Access, Resource};
use ottermq_broker::queue::Queue;
use ottermq_broker::vhost::VHost;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The HTTP user's AMQP permission on the queue, as queue.purge / queue.delete check it
/// (refusal: 401 `not_authorised`, as RabbitMQ's management answers an AMQP 403).
fn authorize(s: &AppState, me: &AuthUser, v: &VHost, access: Access, name: &str) -> ApiResult<()> {
    let perm = s.broker.users.permission(&v.name, &me.name);
    permissions::check(
        perm.as_deref(),
        access,
        Resource::Queue,
        name.as_bytes(),
        &v.name,
        &me.name,
    )
    .map_err(super::objects::amqp_error)
}

fn find_queue(
    s: &AppState,
    me: &AuthUser,
    vh: &str,
    name: &str,
) -> ApiResult<(Arc<VHost>, Arc<Queue>)> {
    let v = vhost(s, me, vh)?;
    let q = v
        .queue(name.as_bytes())
        .ok_or_else(|| ApiError::not_found(format!("queue '{name}' not found in vhost '{vh}'")))?;
    Ok((v, q))
}

/// `DELETE /api/queues/{vhost}/{name}/contents`: drops every ready message (like queue.purge,
/// unacknowledged messages stay with their consumers). 204 on success.
pub async fn purge(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (v, q) = find_queue(&s, &me, &vh, &name)?;
    authorize(&s, &me, &v, Access::Read, &name)?;
    q.purge();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
}

fn flag(v: &Option<String>, name: &str) -> ApiResult<bool> {
    match v.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not '{other}'"
        ))),
    }
}

/// `DELETE /api/queues/{vhost}/{name}`: removes the queue, its bindings and its consumers
/// (told with basic.cancel). `if-unused=true` refuses while it has consumers,
/// `if-empty=true` while it holds ready messages (400, as RabbitMQ answers).
pub async fn delete(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
    Query(params): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let if_unused = flag(&params.if_unused, "if-unused")?;
    let if_empty = flag(&params.if_empty, "if-empty")?;
    let (v, q) = find_queue(&s, &me, &vh, &name)?;
    authorize(&s, &me, &v, Access::Configure, &name)?;
    let c = q.counts();
    if if_unused && c.consumers > 0 {
        return Err(ApiError::bad_request(format!(
            "queue '{name}' in vhost '{vh}' in use"
        )));
    }
    if if_empty && c.ready > 0 {
        return Err(ApiError::bad_request(format!(
            "queue '{name}' in vhost '{vh}' not empty"
        )));
    }
    v.delete_queue_and_cancel(&q);
    Ok(StatusCode::NO_CONTENT)
}

/// Fields RabbitMQ's UI also sends (`vhost`, `name`, `requeue`) are ignored, as RabbitMQ does.
#[derive(Deserialize)]
pub struct GetRequest {
    count: u32,
    ackmode: String,
    #[serde(default = "default_encoding")]
    encoding: String,
    truncate: Option<usize>,
}

fn default_encoding() -> String {
    "auto".into()
}

/// The largest `count` one request may take (a UI or script asking for millions would hold
/// them all in one response).
const MAX_GET: u32 = 10_000;

/// `POST /api/queues/{vhost}/{name}/get`: takes up to `count` messages from the head of the
/// queue. `ack_requeue_true` / `reject_requeue_true` put them back afterwards (marked
/// redelivered, at their original positions); `ack_requeue_false` acknowledges them and
/// `reject_requeue_false` rejects them (both remove them; rejected ones are dead-lettered,
/// reason `rejected`, when the queue has a dead-letter exchange).
pub async fn get(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: GetRequest = parse_json(&body)?;
    let (requeue, ack) = match req.ackmode.as_str() {
        "ack_requeue_true" => (true, true),
        "reject_requeue_true" => (true, false),
        "ack_requeue_false" => (false, true),
        "reject_requeue_false" => (false, false),
        other => {
            return Err(ApiError::bad_request(format!(
                "ackmode must be ack_requeue_true, ack_requeue_false, reject_requeue_true or \
                 reject_requeue_false, not '{other}'"
            )))
        }
    };
    let base64 = match req.encoding.as_str() {
        "auto" => false,
        "base64" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "encoding must be auto or base64, not '{other}'"
            )))
        }
    };
    if req.count == 0 || req.count > MAX_GET {
        return Err(ApiError::bad_request(format!(
            "count must be between 1 and {MAX_GET}"
        )));
    }
    let (v, q) = find_queue(&s, &me, &vh, &name)?;
    // RabbitMQ runs basic.get as the HTTP user: read permission on the queue.
    authorize(&s, &me, &v, Access::Read, &name)?;

    let mut taken = Vec::new();
    let mut out = Vec::new();
    while (taken.len() as u32) < req.count {
        // Taken as unacknowledged, then requeued or settled below: the queue's own counters
        // (delivered, requeued, acked, rejected) move exactly as for a basic.get.
        let Some((qm, remaining)) = q.get(false) else {
            break;
        };
        out.push(message_json(
            &vh,
            &name,
            &qm,
            remaining,
            base64,
            req.truncate,
        ));
        taken.push(qm);
    }
    let n = taken.len() as u64;
    {
        let mut t = s.broker.stats.retired.lock();
        t.get += n;
        if n == 0 {
            t.get_empty += 1;
        }
        if requeue {
            t.requeued += n;
        } else if ack {
            t.acked += n;
        } else {
            t.rejected += n;
        }
    }
    if requeue {
        q.requeue(taken);
    } else {
        // Gone for good (rejected ones dead-lettered when the queue has a DLX, as RabbitMQ's
        // basic.reject does): persistent messages are settled in the message log too, so they
        // do not come back after a restart.
        for qm in taken {
            q.discard(qm, ack);
        }
        q.settled(n, ack);
    }
    Ok(Json(Value::Array(out)))
}

fn message_json(
    vh: &str,
    queue: &str,
    qm: &ottermq_broker::message::QueuedMessage,
    remaining: u32,
    base64: bool,
    truncate: Option<usize>,
) -> Value {
    let m = &qm.message;
    let full = m.body.len();
    let body = match truncate {
        Some(t) if t < full => &m.body[..t],
        _ => &m.body[..],
    };
    let (payload, encoding) = payload_json(body, base64);
    let props = m
        .properties
        .decode()
        .map(|p| super::body::properties_json(&p))
        .unwrap_or_else(|_| json!({}));
    json!({
        "payload_bytes": full,
        "redelivered": qm.redelivered,
        "exchange": m.exchange.to_string(),
        "routing_key": m.routing_key.to_string(),
        "message_count": remaining,
        "properties": props,
        "payload": payload,
        "payload_encoding": encoding,
        "vhost": vh,
        "queue": queue,
    })
}
