//! `POST /api/exchanges/{vhost}/{name}/publish`: publishes one message through a real
//! exchange, as RabbitMQ's management API does. It is routed like any basic.publish
//! (bindings, alternate exchanges, default exchange by queue name) and counted in the same
//! totals and exchange counters, so it shows in the rates.

use super::body::{parse_json, properties_from_json};
use super::vhost;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use base64::Engine;
use ottermq_broker::message::Message;
use ottermq_broker::RouteTargets;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

#[derive(Deserialize)]
pub struct PublishRequest {
    #[serde(default)]
    properties: Value,
    routing_key: String,
    payload: String,
    payload_encoding: String,
}

pub async fn publish(
    State(s): State<AppState>,
    axum::Extension(me): axum::Extension<crate::auth::AuthUser>,
    Path((vh, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: PublishRequest = parse_json(&body)?;
    let payload = match req.payload_encoding.as_str() {
        "string" => Bytes::from(req.payload.into_bytes()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(req.payload.trim())
            .map(Bytes::from)
            .map_err(|e| ApiError::bad_request(format!("payload is not valid base64: {e}")))?,
        other => {
            return Err(ApiError::bad_request(format!(
                "payload_encoding must be string or base64, not '{other}'"
            )))
        }
    };
    if req.routing_key.len() > 255 {
        return Err(ApiError::bad_request(
            "routing_key is longer than 255 bytes",
        ));
    }
    let props = properties_from_json(&req.properties)?;
    let v = vhost(&s, &me, &vh)?;
    if payload.len() as u64 > s.broker.config.max_message_size {
        return Err(ApiError::bad_request(format!(
            "message size {} is larger than configured max size {}",
            payload.len(),
            s.broker.config.max_message_size
        )));
    }
    let exchange = v
        .exchange(super::exchange_lookup_name(&name).as_bytes())
        .ok_or_else(|| {
            ApiError::not_found(format!("exchange '{name}' not found in vhost '{vh}'"))
        })?;
    if exchange.internal {
        return Err(ApiError::bad_request(format!(
            "cannot publish to internal exchange '{name}' in vhost '{vh}'"
        )));
    }
    let msg = Message {
        exchange: exchange.name.clone(),
        routing_key: req.routing_key.as_str().into(),
        properties: props.to_raw(),
        body: payload,
        received_at: Instant::now(),
        // Management publishes carry no trace context of their own.
        trace: None,
    };
    exchange.stats.publish_in.inc();
    exchange.stats.publish_in_bytes.add(msg.body.len() as u64);
    let mut targets = RouteTargets::default();
    v.route(&exchange, &msg, &mut targets);
    let routed = !targets.is_empty();
    {
        let mut t = s.broker.stats.retired.lock();
        t.published += 1;
        if !routed {
            t.unroutable += 1;
        }
    }
    if routed {
        exchange.stats.publish_out.inc();
        let now = Instant::now();
        for q in targets.drain() {
            q.publish(msg.clone(), now);
        }
    } else {
        exchange.stats.unroutable.inc();
    }
    Ok(Json(json!({ "routed": routed })))
}
