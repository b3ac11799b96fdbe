//! Health endpoints for orchestrators and load balancers: `/live` (the process answers),
//! `/ready` (listeners accept and storage is recovered; 503 before and during shutdown) and
//! `/health` (JSON with each check and its figures).

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

pub async fn live() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    if s.readiness.is_ready() && !s.broker.is_shutting_down() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready"})),
        )
    }
}

pub async fn health(State(s): State<AppState>) -> impl IntoResponse {
    let ready = s.readiness.is_ready() && !s.broker.is_shutting_down();
    let listener = match s.readiness.amqp_addr.get() {
        Some(addr) => {
            json!({"status": if ready { "up" } else { "down" }, "address": addr.to_string()})
        }
        None => json!({"status": "down"}),
    };
    let connections = s.broker.connections().len();
    let queues: usize = s.broker.vhosts().iter().map(|v| v.queue_count()).sum();
    let status = if ready { "up" } else { "down" };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": s.broker.started_at.elapsed().as_secs(),
            "checks": {
                "amqp_listener": listener,
                "broker": {"status": status, "connections": connections, "queues": queues},
            },
        })),
    )
}
