//! HTTP basic authentication against the broker's users, for everything under `/api`.
//! The same loopback restriction applies as for AMQP (guest only from localhost), and failed
//! logins count against the same per-address limit (`auth_failures_per_minute`).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ottermq_broker::broker::AuthProtocol;
use std::net::SocketAddr;

/// Tags that give access to the management API (RabbitMQ: `management` and the tags that
/// include it).
pub const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

/// The authenticated user, available to handlers as a request extension.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub name: String,
    pub tags: Vec<String>,
}

/// A 401 for a script (`X-Requested-With` set, as the UI sends) carries no
/// `WWW-Authenticate`, so the browser shows the UI's own "wrong password" message instead of
/// its login dialog; other clients get the challenge as usual.
pub async fn require_user(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let scripted = req.headers().contains_key("x-requested-with");
    match authenticate(&state, peer, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => {
            let mut resp = e.into_response();
            if scripted {
                resp.headers_mut()
                    .remove(axum::http::header::WWW_AUTHENTICATE);
            }
            resp
        }
    }
}

async fn authenticate(
    state: &AppState,
    peer: SocketAddr,
    mut req: Request,
) -> Result<Request, ApiError> {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    let encoded = header
        .strip_prefix("Basic ")
        .ok_or_else(ApiError::unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::unauthorized())?;
    let text = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
    let (user, pass) = text.split_once(':').ok_or_else(ApiError::unauthorized)?;
    // One answer for every failure, throttled or not: no hint about which part was wrong.
    // `authenticate` counts it with the AMQP failures, against the same per-address limit,
    // and logs the reason.
    let u = state
        .broker
        .authenticate(user, pass, peer.ip(), AuthProtocol::Http)
        .map_err(|_| ApiError::unauthorized())?;
    // RabbitMQ: only users with a management tag may use the management API at all.
    if !u.tags.iter().any(|t| MANAGEMENT_TAGS.contains(&t.as_str())) {
        return Err(ApiError {
            status: axum::http::StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: "Not management user".into(),
        });
    }
    req.extensions_mut().insert(AuthUser {
        name: u.name,
        tags: u.tags,
    });
    Ok(req)
}
