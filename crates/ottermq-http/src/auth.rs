//! HTTP basic authentication against the broker's users, for everything under `/api`.
//! The same loopback restriction applies as for AMQP (guest only from localhost).

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use std::net::SocketAddr;

/// The authenticated user, available to handlers as a request extension.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub name: String,
    pub tags: Vec<String>,
}

pub async fn require_user(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
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
    // One answer for every failure: no hint about which part was wrong.
    let u = state
        .broker
        .login(user, pass, peer.ip())
        .map_err(|_| ApiError::unauthorized())?;
    req.extensions_mut().insert(AuthUser {
        name: u.name,
        tags: u.tags,
    });
    Ok(next.run(req).await)
}
