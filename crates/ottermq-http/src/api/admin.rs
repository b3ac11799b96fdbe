//! Users, vhosts and permissions over the management API, as RabbitMQ 3.10 has them:
//! `GET /api/users`, `GET|PUT|DELETE /api/users/{name}`, `PUT|DELETE /api/vhosts/{name}`,
//! `GET /api/permissions`, `GET|PUT|DELETE /api/permissions/{vhost}/{user}`. All need the
//! administrator tag (401 `not_authorised` "Not administrator user" otherwise, as RabbitMQ).
//! PUT answers 201 when it created, 204 when it updated; DELETE 204, or 404 when absent.

use super::body::parse_json;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ottermq_broker::permissions::{HashAlgorithm, PasswordHash, Permission, User};
use ottermq_broker::store::users::UserChange;
use serde_json::{json, Value};

/// Whether the user has the administrator tag.
pub fn is_admin(user: &AuthUser) -> bool {
    user.tags.iter().any(|t| t == "administrator")
}

/// RabbitMQ's answer to a user without the administrator tag.
pub fn require_admin(user: &AuthUser) -> ApiResult<()> {
    if is_admin(user) {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "not_authorised",
            reason: "Not administrator user".into(),
        })
    }
}

fn created(was_new: bool) -> StatusCode {
    if was_new {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
}

pub(crate) fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.hash.to_base64(),
        "hashing_algorithm": u.hash.algorithm.rabbit_name(),
        "tags": u.tags.join(","),
        "limits": {},
    })
}

pub async fn list_users(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    Ok(Json(Value::Array(
        s.broker.users.users().iter().map(user_json).collect(),
    )))
}

pub async fn get_user(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    let u = s
        .broker
        .users
        .user(&name)
        .ok_or_else(|| ApiError::not_found(format!("user '{name}' not found")))?;
    Ok(Json(user_json(&u)))
}

/// Tags as RabbitMQ takes them: a comma-separated string or a list of strings.
pub fn parse_tags(v: Option<&Value>) -> ApiResult<Vec<String>> {
    let list: Vec<String> = match v {
        None | Some(Value::Null) => return Err(ApiError::bad_request("tags_not_present")),
        Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .map(|t| t.trim().to_string())
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .collect::<ApiResult<_>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "tags must be a comma-separated string or a list",
            ))
        }
    };
    Ok(list.into_iter().filter(|t| !t.is_empty()).collect())
}

/// The user a `PUT /api/users/{name}` body (or a definitions entry) describes: `password` or
/// `password_hash` (+ `hashing_algorithm`, SHA-256 when absent), neither for a passwordless
/// user, and `tags`.
pub fn user_from_json(name: &str, body: &Value) -> ApiResult<User> {
    let o = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let tags = parse_tags(o.get("tags"))?;
    let str_of = |k: &str| match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::bad_request(format!("{k} must be a string"))),
    };
    let hash = match (str_of("password")?, str_of("password_hash")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "both_password_and_password_hash_are_provided",
            ))
        }
        (Some(p), None) => PasswordHash::new(p),
        (None, Some(h)) => {
            let algorithm = match str_of("hashing_algorithm")? {
                None => HashAlgorithm::Sha256,
                Some(a) => HashAlgorithm::parse(a).ok_or_else(|| {
                    ApiError::bad_request(format!("unsupported hashing_algorithm '{a}'"))
                })?,
            };
            PasswordHash::from_base64(algorithm, h).ok_or_else(|| {
                ApiError::bad_request("password_hash is not a base64 salted hash of that algorithm")
            })?
        }
        (None, None) => PasswordHash {
            algorithm: HashAlgorithm::Sha256,
            bytes: Vec::new(),
        },
    };
    Ok(User {
        name: name.to_string(),
        hash,
        tags,
    })
}

pub async fn put_user(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    let v: Value = parse_json(&body)?;
    let user = user_from_json(&name, &v)?;
    let was_new = s.broker.users.user(&name).is_none();
    let broker = s.broker.clone();
    // The change is synced to disk: off the async workers.
    run_blocking(move || broker.users.change(UserChange::PutUser(user))).await?;
    Ok(created(was_new))
}

pub async fn delete_user(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    if s.broker.users.user(&name).is_none() {
        return Err(ApiError::not_found(format!("user '{name}' not found")));
    }
    let broker = s.broker.clone();
    run_blocking(move || broker.users.change(UserChange::DeleteUser(name))).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: "internal_error",
        reason: e.to_string(),
    })
}

/// `PUT /api/vhosts/{name}`: creates the vhost (201; 204 when it exists). As RabbitMQ's
/// management does, the creating user is given full permissions in a new vhost.
pub async fn put_vhost(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    if !body.is_empty() {
        let v: Value = parse_json(&body)?;
        if !v.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
    }
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::bad_request("vhost names are 1 to 255 bytes"));
    }
    if s.broker.vhost(&name).is_some() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let broker = s.broker.clone();
    run_blocking(move || {
        broker.add_vhost(&name);
        if broker.users.permission(&name, &me.name).is_none() {
            broker.users.change(UserChange::SetPermission {
                vhost: name,
                user: me.name,
                perm: Permission::all(),
            });
        }
    })
    .await?;
    Ok(StatusCode::CREATED)
}

pub async fn delete_vhost(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    let broker = s.broker.clone();
    let n = name.clone();
    if !run_blocking(move || broker.delete_vhost(&n)).await? {
        return Err(ApiError::not_found(format!("vhost '{name}' not found")));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn permission_json(vhost: &str, user: &str, p: &Permission) -> Value {
    json!({"user": user, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

pub async fn list_permissions(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    Ok(Json(Value::Array(
        s.broker
            .users
            .permissions()
            .iter()
            .map(|(v, u, p)| permission_json(v, u, p))
            .collect(),
    )))
}

pub(super) fn vhost_and_user(s: &AppState, vhost: &str, user: &str) -> ApiResult<()> {
    super::access::find_vhost(s, vhost)?;
    if s.broker.users.user(user).is_none() {
        return Err(ApiError::not_found(format!("user '{user}' not found")));
    }
    Ok(())
}

pub async fn get_permission(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    require_admin(&me)?;
    vhost_and_user(&s, &vhost, &user)?;
    let p = s.broker.users.permission(&vhost, &user).ok_or_else(|| {
        ApiError::not_found(format!(
            "no permissions for user '{user}' in vhost '{vhost}'"
        ))
    })?;
    Ok(Json(permission_json(&vhost, &user, &p)))
}

/// The permission a body or definitions entry gives: `configure`, `write`, `read`, each a
/// regular expression (400 when one is missing or does not compile).
pub fn permission_from_json(v: &Value) -> ApiResult<Permission> {
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("key_missing: {k}")))
    };
    Permission::new(field("configure")?, field("write")?, field("read")?)
        .map_err(ApiError::bad_request)
}

pub async fn put_permission(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    vhost_and_user(&s, &vhost, &user)?;
    let v: Value = parse_json(&body)?;
    let perm = permission_from_json(&v)?;
    let was_new = s.broker.users.permission(&vhost, &user).is_none();
    let broker = s.broker.clone();
    run_blocking(move || {
        broker
            .users
            .change(UserChange::SetPermission { vhost, user, perm })
    })
    .await?;
    Ok(created(was_new))
}

pub async fn delete_permission(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    require_admin(&me)?;
    vhost_and_user(&s, &vhost, &user)?;
    if s.broker.users.permission(&vhost, &user).is_none() {
        return Err(ApiError::not_found(format!(
            "no permissions for user '{user}' in vhost '{vhost}'"
        )));
    }
    let broker = s.broker.clone();
    run_blocking(move || {
        broker
            .users
            .change(UserChange::ClearPermission { vhost, user })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
