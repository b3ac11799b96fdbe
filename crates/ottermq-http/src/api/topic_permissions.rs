//! Topic permissions over the management API, as RabbitMQ 3.10 has them:
//! `GET /api/topic-permissions`, `GET|PUT|DELETE /api/topic-permissions/{vhost}/{user}`.
//! PUT takes `exchange`, `write` and `read` (regexes over routing keys; `{username}` and
//! `{vhost}` are expanded) and answers 201 when it created the exchange's entry, 204 when it
//! replaced it; DELETE removes them all, or one with `?exchange=`. Administrators only; stored
//! with the other permissions (`users.log`), enforced by the broker (`topic_permissions.rs`).

use super::admin::{require_admin, run_blocking, vhost_and_user};
use super::body::parse_json;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ottermq_broker::store::users::UserChange;
use ottermq_broker::topic_permissions::TopicPermission;
use serde::Deserialize;
use serde_json::{json, Value};

fn entry_json(vhost: &str, user: &str, p: &TopicPermission) -> Value {
    json!({"user": user, "vhost": vhost, "exchange": p.exchange, "write": p.write, "read": p.read})
}

/// The entries whose (vhost, user) `keep` accepts, as JSON.
fn entries(s: &AppState, keep: impl Fn(&str, &str) -> bool) -> Vec<Value> {
    s.broker
        .users
        .topic_permissions()
        .iter()
        .filter(|(v, u, _)| keep(v, u))
        .map(|(v, u, p)| entry_json(v, u, p))
        .collect()
}

fn entries_of(s: &AppState, vhost: &str, user: &str) -> Vec<Value> {
    entries(s, |v, u| v == vhost && u == user)
}

pub async fn list(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    Ok(Json(Value::Array(entries(&s, |_, _| true))))
}

fn none_found(vhost: &str, user: &str) -> ApiError {
    ApiError::not_found(format!(
        "no topic permissions for user '{user}' in vhost '{vhost}'"
    ))
}

pub async fn get(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    vhost_and_user(&s, &vhost, &user)?;
    let list = entries_of(&s, &vhost, &user);
    if list.is_empty() {
        return Err(none_found(&vhost, &user));
    }
    Ok(Json(Value::Array(list)))
}

pub async fn put(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    vhost_and_user(&s, &vhost, &user)?;
    let v: Value = parse_json(&body)?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("key_missing: {k}")))
    };
    let perm = TopicPermission::new(
        field("exchange")?,
        field("write")?,
        field("read")?,
        &user,
        &vhost,
    )
    .map_err(ApiError::bad_request)?;
    let was_new = s
        .broker
        .users
        .topic_permission(&vhost, &user, perm.exchange.as_bytes())
        .is_none();
    let broker = s.broker.clone();
    run_blocking(move || {
        broker
            .users
            .change(UserChange::SetTopicPermission { vhost, user, perm })
    })
    .await?;
    Ok(if was_new {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    exchange: Option<String>,
}

pub async fn delete(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vhost, user)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    vhost_and_user(&s, &vhost, &user)?;
    let found = match &q.exchange {
        Some(x) => s
            .broker
            .users
            .topic_permission(&vhost, &user, x.as_bytes())
            .is_some(),
        None => !entries_of(&s, &vhost, &user).is_empty(),
    };
    if !found {
        return Err(none_found(&vhost, &user));
    }
    let broker = s.broker.clone();
    run_blocking(move || {
        broker.users.change(UserChange::ClearTopicPermission {
            vhost,
            user,
            exchange: q.exchange,
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
