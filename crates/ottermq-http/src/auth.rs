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
    // No header at all is not a login attempt (a browser's first request, answered with the
    // challenge) and is not counted; a header that is there but does not hold readable Basic
    // credentials is counted as a failed login, like a wrong password, so malformed headers
    // cannot probe past the per-address limit. Every refusal gets the same 401 body.
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(ApiError::unauthorized)?;
    let Some((user, pass)) = basic_credentials(header.as_bytes()) else {
        state.broker.refuse_malformed(peer.ip(), AuthProtocol::Http);
        return Err(ApiError::unauthorized());
    };
    // `authenticate` counts a failure with the AMQP ones, against the same per-address
    // limit, and logs the reason (never told to the client).
    let u = state
        .broker
        .authenticate(&user, &pass, peer.ip(), AuthProtocol::Http)
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

/// The user and password of a `Basic` Authorization header value (RFC 7617: the scheme is
/// case-insensitive, the credentials base64 of `user:password` in UTF-8); None when it is not
/// one.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::basic_credentials;

    #[test]
    fn basic_credentials_read_only_well_formed_headers() {
        // "guest:guest"
        assert_eq!(
            basic_credentials(b"Basic Z3Vlc3Q6Z3Vlc3Q="),
            Some(("guest".into(), "guest".into()))
        );
        assert!(basic_credentials(b"basic Z3Vlc3Q6Z3Vlc3Q=").is_some());
        assert_eq!(basic_credentials(b"Bearer Z3Vlc3Q6Z3Vlc3Q="), None);
        assert_eq!(basic_credentials(b"Basic !!!not-base64"), None);
        // "guestguest": no colon.
        assert_eq!(basic_credentials(b"Basic Z3Vlc3RndWVzdA=="), None);
        // 0xff 0xfe ':' 'x': not UTF-8.
        assert_eq!(basic_credentials(b"Basic //46eA=="), None);
        assert_eq!(basic_credentials(b"Basic"), None);
        assert_eq!(basic_credentials(&[0x42, 0xff]), None);
    }
}
