//! Declaring and deleting queues, exchanges and bindings over the management API, as
//! RabbitMQ 3.10 does: `PUT /api/queues/{vhost}/{name}`, `PUT|DELETE
//! /api/exchanges/{vhost}/{name}`, `POST /api/bindings/{vhost}/e/{exchange}/q/{queue}` (201 and
//! a `Location`), `DELETE /api/bindings/{vhost}/e/{exchange}/q/{queue}/{props}`.
//!
//! They need access to the vhost (administrator, or a permission entry there: see
//! `access.rs`) and are then checked against the HTTP user's AMQP permissions in the vhost
//! exactly as the AMQP method would be (RabbitMQ runs them as AMQP
//! methods as that user). AMQP refusals map as RabbitMQ's management maps them: 403 → 401
//! `not_authorised`, 404 → 404, anything else (406 inequivalent, ...) → 400 `bad_request`.

use super::body::parse_json;
use super::exchange_lookup_name;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use ottermq_broker::exchange::{Binding, Destination, ExchangeKind};
use ottermq_broker::permissions::{self, Access, Resource};
use ottermq_broker::queue::QueueOptions;
use ottermq_broker::vhost::{ExchangeSpec, VHost};
use ottermq_broker::AmqpError;
use ottermq_protocol::{FieldTable, ShortStr};
use serde_json::{Map, Value};
use std::sync::Arc;

/// An AMQP refusal as RabbitMQ's management answers it.
pub fn amqp_error(e: AmqpError) -> ApiError {
    let (status, error) = match e.code {
        403 => (StatusCode::UNAUTHORIZED, "not_authorised"),
        404 => (StatusCode::NOT_FOUND, "not_found"),
        _ => (StatusCode::BAD_REQUEST, "bad_request"),
    };
    ApiError {
        status,
        error,
        reason: e.text,
    }
}

fn authorize(
    s: &AppState,
    me: &AuthUser,
    v: &VHost,
    access: Access,
    kind: Resource,
    name: &[u8],
) -> ApiResult<()> {
    let perm = s.broker.users.permission(&v.name, &me.name);
    permissions::check(perm.as_deref(), access, kind, name, &v.name, &me.name).map_err(amqp_error)
}

fn object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match parse_json::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

fn bool_of(m: &Map<String, Value>, k: &str, default: bool) -> ApiResult<bool> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        // RabbitMQ's UI sends "true" / "false" strings.
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(ApiError::bad_request(format!("{k} must be a boolean"))),
    }
}

fn short(s: &str, what: &str) -> ApiResult<ShortStr> {
    if s.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "{what} is longer than 255 bytes"
        )));
    }
    Ok(ShortStr::from(s))
}

fn arguments(m: &Map<String, Value>) -> ApiResult<FieldTable> {
    match m.get("arguments") {
        None | Some(Value::Null) => Ok(FieldTable::new()),
        Some(Value::Object(o)) => super::body::headers_table(o),
        Some(_) => Err(ApiError::bad_request("arguments must be an object")),
    }
}

fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// `PUT /api/queues/{vhost}/{name}`: `durable` (default true), `auto_delete`, `arguments`.
/// 201 when created, 204 when an equivalent queue exists, 400 when it differs.
pub async fn put_queue(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let v = super::vhost(&s, &me, &vh)?;
    let m = object(&body)?;
    let qname = short(&name, "queue name")?;
    if name.is_empty() || name.starts_with("amq.") {
        return Err(amqp_error(AmqpError::access_refused(format!(
            "queue name '{name}' contains reserved prefix 'amq.*'"
        ))));
    }
    authorize(
        &s,
        &me,
        &v,
        Access::Configure,
        Resource::Queue,
        name.as_bytes(),
    )?;
    let options = QueueOptions {
        durable: bool_of(&m, "durable", true)?,
        exclusive: false,
        auto_delete: bool_of(&m, "auto_delete", false)?,
        arguments: arguments(&m)?,
    };
    if v.queue(name.as_bytes()).is_none() {
        let perm = s.broker.users.permission(&v.name, &me.name);
        permissions::check_dead_letter(
            perm.as_deref(),
            &options.arguments,
            name.as_bytes(),
            &v.name,
            &me.name,
        )
        .map_err(amqp_error)?;
    }
    let (_, created) = tokio::task::spawn_blocking(move || v.declare_queue(qname, options, 0))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .map_err(amqp_error)?;
    Ok(empty(if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }))
}

/// `PUT /api/exchanges/{vhost}/{name}`: `type` (required), `durable` (default true),
/// `auto_delete`, `internal`, `arguments`. 201 / 204 / 400 as for queues.
pub async fn put_exchange(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let v = super::vhost(&s, &me, &vh)?;
    let m = object(&body)?;
    let kind_name = m
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("key_missing: type"))?;
    let kind = ExchangeKind::parse(kind_name.as_bytes())
        .ok_or_else(|| ApiError::bad_request(format!("unknown exchange type '{kind_name}'")))?;
    let lookup = exchange_lookup_name(&name);
    if lookup.is_empty() {
        return Err(amqp_error(AmqpError::access_refused(
            "operation not permitted on the default exchange",
        )));
    }
    let xname = short(lookup, "exchange name")?;
    authorize(
        &s,
        &me,
        &v,
        Access::Configure,
        Resource::Exchange,
        lookup.as_bytes(),
    )?;
    let spec = ExchangeSpec {
        name: xname,
        kind,
        durable: bool_of(&m, "durable", true)?,
        auto_delete: bool_of(&m, "auto_delete", false)?,
        internal: bool_of(&m, "internal", false)?,
        arguments: arguments(&m)?,
    };
    let exists = v.exchange(lookup.as_bytes()).is_some();
    if !exists {
        if lookup.starts_with("amq.") {
            return Err(amqp_error(AmqpError::access_refused(format!(
                "exchange name '{lookup}' contains reserved prefix 'amq.*'"
            ))));
        }
        if let Some(ae) = spec
            .arguments
            .get("alternate-exchange")
            .and_then(|x| x.as_str_bytes())
        {
            authorize(
                &s,
                &me,
                &v,
                Access::Read,
                Resource::Exchange,
                lookup.as_bytes(),
            )?;
            authorize(&s, &me, &v, Access::Write, Resource::Exchange, ae)?;
        }
    }
    tokio::task::spawn_blocking(move || v.declare_exchange(spec))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .map_err(amqp_error)?;
    Ok(empty(if exists {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::CREATED
    }))
}

#[derive(serde::Deserialize)]
pub struct IfUnused {
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
}

/// `DELETE /api/exchanges/{vhost}/{name}` (`if-unused=true` refuses while it has bindings
/// from it): 204, 404 when missing.
pub async fn delete_exchange(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, name)): Path<(String, String)>,
    Query(q): Query<IfUnused>,
) -> ApiResult<StatusCode> {
    let v = super::vhost(&s, &me, &vh)?;
    let if_unused = match q.if_unused.as_deref() {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "if-unused must be true or false, not '{o}'"
            )))
        }
    };
    let lookup = exchange_lookup_name(&name);
    if lookup.is_empty() {
        return Err(amqp_error(AmqpError::access_refused(
            "operation not permitted on the default exchange",
        )));
    }
    if lookup.starts_with("amq.") {
        return Err(amqp_error(AmqpError::access_refused(format!(
            "deletion of system exchange '{lookup}' in vhost '{vh}' not allowed"
        ))));
    }
    authorize(
        &s,
        &me,
        &v,
        Access::Configure,
        Resource::Exchange,
        lookup.as_bytes(),
    )?;
    if v.exchange(lookup.as_bytes()).is_none() {
        return Err(ApiError::not_found(format!(
            "exchange '{name}' not found in vhost '{vh}'"
        )));
    }
    let xname = short(lookup, "exchange name")?;
    tokio::task::spawn_blocking(move || v.delete_exchange(&xname, if_unused))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .map_err(amqp_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// RabbitMQ's `quote_plus`: alphanumerics and `-_.` kept, space as `+`, the rest `%XX`
/// (so `~`, the separator, is always escaped).
fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A URL path segment as RabbitMQ's management plugin quotes one (`rabbit_mgmt_format:url`,
/// `quote_plus`: `~` is safe there), except that a space is `%20`, not `+`: a path segment's
/// `+` is not decoded to a space (by RabbitMQ's server either), so `+` would name another
/// object.
fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `to` relative to `from`, as RabbitMQ's `rabbit_web_dispatch_util:relativise/2` makes a
/// `Location`: the common leading segments are dropped, keeping the last segment of `from`
/// when `to` continues below it, and one `..` per further segment of `from` otherwise.
fn relativise(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let mut i = 0;
    while i < from.len() && i < to.len() && from[i] == to[i] {
        if i + 1 == from.len() {
            return to[i..].join("/");
        }
        i += 1;
    }
    let mut out = vec![".."; (from.len() - i).saturating_sub(1)];
    out.extend_from_slice(&to[i..]);
    out.join("/")
}

/// A binding's `properties_key`, as RabbitMQ 3.10 builds it (`pack_binding_props`): `~` for
/// the empty key without arguments, the quoted key, or the quoted key, `~` and the arguments'
/// `phash2` in base64url (see [`super::args_hash`]).
pub fn properties_key(routing_key: &str, args: &FieldTable) -> String {
    if args.is_empty() {
        if routing_key.is_empty() {
            return "~".into();
        }
        return quote_plus(routing_key);
    }
    format!(
        "{}~{}",
        quote_plus(routing_key),
        super::args_hash::args_hash(args)
    )
}

/// The decoded form of a properties key (what the router hands us from the path).
fn decoded(key: &str) -> String {
    let b = key.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&key[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn binding_ends(
    s: &AppState,
    me: &AuthUser,
    vh: &str,
    exchange: &str,
    queue: &str,
) -> ApiResult<(
    Arc<VHost>,
    Arc<ottermq_broker::exchange::Exchange>,
    Arc<ottermq_broker::queue::Queue>,
)> {
    let v = super::vhost(s, me, vh)?;
    let ex = exchange_lookup_name(exchange);
    // RabbitMQ's binding checks: write on the queue, read on the exchange, then lookups.
    authorize(s, me, &v, Access::Write, Resource::Queue, queue.as_bytes())?;
    authorize(s, me, &v, Access::Read, Resource::Exchange, ex.as_bytes())?;
    if ex.is_empty() {
        return Err(amqp_error(AmqpError::access_refused(
            "operation not permitted on the default exchange",
        )));
    }
    let e = v.exchange(ex.as_bytes()).ok_or_else(|| {
        ApiError::not_found(format!("exchange '{exchange}' not found in vhost '{vh}'"))
    })?;
    let q = v
        .queue(queue.as_bytes())
        .ok_or_else(|| ApiError::not_found(format!("queue '{queue}' not found in vhost '{vh}'")))?;
    Ok((v, e, q))
}

/// `POST /api/bindings/{vhost}/e/{exchange}/q/{queue}`: `routing_key` (default empty),
/// `arguments`. 201 with a `Location` of the new binding, as RabbitMQ 3.10 writes it: relative
/// to the request's path (`{queue}/{props}` for the usual request) and with the properties key
/// quoted once more (`a.%2A` is `a.%252A`), so it resolves to the binding's URL.
pub async fn post_binding(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    OriginalUri(uri): OriginalUri,
    Path((vh, exchange, queue)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let m = object(&body)?;
    let (v, e, q) = binding_ends(&s, &me, &vh, &exchange, &queue)?;
    let routing_key = match m.get("routing_key") {
        None | Some(Value::Null) => "",
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err(ApiError::bad_request("routing_key must be a string")),
    };
    let args = arguments(&m)?;
    let props = properties_key(routing_key, &args);
    let binding = Binding {
        destination: Destination::Queue(q),
        routing_key: short(routing_key, "routing_key")?,
        arguments: args,
    };
    tokio::task::spawn_blocking(move || v.bind(&e, binding))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .map_err(amqp_error)?;
    let to = format!(
        "/api/bindings/{}/e/{}/q/{}/{}",
        url_segment(&vh),
        url_segment(&exchange),
        url_segment(&queue),
        url_segment(&props),
    );
    let location = relativise(uri.path(), &to);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// `DELETE /api/bindings/{vhost}/e/{exchange}/q/{queue}/{props}`: 204, 404 when no binding
/// between them has that properties key.
pub async fn delete_binding(
    State(s): State<AppState>,
    Extension(me): Extension<AuthUser>,
    Path((vh, exchange, queue, props)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let (v, e, q) = binding_ends(&s, &me, &vh, &exchange, &queue)?;
    let found = e.bindings().into_iter().find(|b| {
        matches!(&b.destination, Destination::Queue(x) if Arc::ptr_eq(x, &q)) && {
            let k = properties_key(&b.routing_key.to_string(), &b.arguments);
            k == props || decoded(&k) == props
        }
    });
    let Some(b) = found else {
        return Err(ApiError::not_found(format!(
            "binding '{props}' from exchange '{exchange}' to queue '{queue}' not found in vhost '{vh}'"
        )));
    };
    tokio::task::spawn_blocking(move || v.unbind(&e, &b))
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .map_err(amqp_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod location_tests {
    use super::*;

    /// The Locations RabbitMQ 3.10 gives (worked through `relativise/2` and `url/2`).
    #[test]
    fn binding_locations_follow_rabbitmq() {
        let to = |props: &str| format!("/api/bindings/%2F/e/hx/q/hq/{}", url_segment(props));
        assert_eq!(
            relativise("/api/bindings/%2F/e/hx/q/hq", &to("a.%2A")),
            "hq/a.%252A"
        );
        assert_eq!(relativise("/api/bindings/%2F/e/hx/q/hq", &to("~")), "hq/~");
        assert_eq!(
            relativise("/api/bindings/%2F/e/hx/q/hq/", &to("k~3ujGfg")),
            "hq/k~3ujGfg"
        );
        // A request spelled differently (lower-case escape) shares a shorter prefix.
        assert_eq!(
            relativise("/api/bindings/%2f/e/hx/q/hq", &to("~")),
            "../../../../%2F/e/hx/q/hq/~"
        );
        assert_eq!(url_segment("my q/x"), "my%20q%2Fx");
    }
}
