//! `GET /api/definitions` and `POST /api/definitions`: vhosts, users, permissions, topic
//! permissions, exchanges, queues and bindings in RabbitMQ's definitions JSON, so a RabbitMQ export can be loaded and an OtterMQ
//! export read by RabbitMQ tools. Also used by the server's `--definitions FILE` start option.

use super::json::table_json;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use ottermq_broker::exchange::{Binding, Destination, ExchangeKind};
use ottermq_broker::queue::QueueOptions;
use ottermq_broker::topic_permissions::TopicPermission;
use ottermq_broker::vhost::ExchangeSpec;
use ottermq_broker::Broker;
use ottermq_protocol::{FieldTable, FieldValue, LongStr, ShortStr};
use serde_json::{json, Map, Value};

/// Everything the broker would restore at start (durable objects of every vhost), plus the
/// vhosts, users (with their salted password hashes, never passwords), permissions and topic
/// permissions (RabbitMQ's `topic_permissions`).
pub fn export(broker: &Broker) -> Value {
    let (mut vhosts, mut exchanges, mut queues, mut bindings) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut list = broker.vhosts();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    for v in list {
        vhosts.push(json!({"name": &*v.name}));
        for e in v.exchanges() {
            if !e.durable || e.name.is_empty() || e.name.as_bytes().starts_with(b"amq.") {
                // The built-in exchanges exist in every vhost and are not exported (as RabbitMQ).
            } else {
                exchanges.push(json!({
                    "name": e.name.to_string(), "vhost": &*v.name, "type": e.kind.as_str(),
                    "durable": true, "auto_delete": e.auto_delete, "internal": e.internal,
                    "arguments": table_json(&e.arguments),
                }));
            }
            if !e.durable {
                continue;
            }
            for b in e.bindings() {
                let (kind, dest, durable) = match &b.destination {
                    Destination::Queue(q) => (
                        "queue",
                        q.name.to_string(),
                        q.options.durable && !q.options.exclusive,
                    ),
                    Destination::Exchange(x) => ("exchange", x.name.to_string(), x.durable),
                };
                if durable {
                    bindings.push(json!({
                        "source": e.name.to_string(), "vhost": &*v.name, "destination": dest,
                        "destination_type": kind, "routing_key": b.routing_key.to_string(),
                        "arguments": table_json(&b.arguments),
                    }));
                }
            }
        }
        for q in v.queues() {
            if q.options.durable && !q.options.exclusive {
                queues.push(json!({
                    "name": q.name.to_string(), "vhost": &*v.name, "durable": true,
                    "auto_delete": q.options.auto_delete,
                    "arguments": table_json(&q.options.arguments),
                }));
            }
        }
    }
    json!({
        "rabbit_version": "3.10.0",
        "product_name": "OtterMQ",
        "product_version": env!("CARGO_PKG_VERSION"),
        "users": broker.users.users().iter().map(super::admin::user_json).collect::<Vec<_>>(),
        "vhosts": vhosts,
        "permissions": broker.users.permissions().iter().map(|(v, u, p)| json!({
            "user": u, "vhost": v, "configure": p.configure, "write": p.write, "read": p.read,
        })).collect::<Vec<_>>(),
        "topic_permissions": broker.users.topic_permissions().iter().map(|(v, u, p)| json!({
            "user": u, "vhost": v, "exchange": p.exchange, "write": p.write, "read": p.read,
        })).collect::<Vec<_>>(),
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    })
}

/// How many objects an import declared.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub vhosts: usize,
    pub users: usize,
    pub permissions: usize,
    pub topic_permissions: usize,
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
}

fn str_field<'a>(o: &'a Value, key: &str, what: &str) -> Result<&'a str, String> {
    o.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: missing or non-string field '{key}'"))
}

fn bool_field(o: &Value, key: &str) -> bool {
    o.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn short(s: &str, what: &str) -> Result<ShortStr, String> {
    if s.len() > 255 {
        return Err(format!("{what}: name longer than 255 bytes"));
    }
    Ok(ShortStr::from(s))
}

/// JSON arguments as an AMQP table (strings, integers, floats, booleans, arrays, objects).
fn table(v: Option<&Value>, what: &str) -> Result<FieldTable, String> {
    let mut t = FieldTable::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                t.insert(short(k, what)?, field(v));
            }
        }
        Some(_) => return Err(format!("{what}: 'arguments' must be an object")),
    }
    Ok(t)
}

fn field(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongStr(LongStr::from(s.as_str())),
        Value::Array(a) => FieldValue::Array(a.iter().map(field).collect()),
        Value::Object(m) => {
            let mut t = FieldTable::new();
            for (k, v) in m {
                if k.len() <= 255 {
                    t.insert(ShortStr::from(k.as_str()), field(v));
                }
            }
            FieldValue::Table(t)
        }
    }
}

fn list<'a>(doc: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match doc.get(key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("'{key}' must be an array")),
    }
}

/// Declares what a definitions document lists: vhosts, then exchanges, queues, bindings (so
/// bindings find their ends). Existing equivalent objects are left alone; an inequivalent one or
/// a binding to a missing object fails the import at that point with a message naming it.
/// Users (`password_hash` + `hashing_algorithm`, or `password`) replace users of the same
/// name; permissions and topic permissions need their user and vhost.
pub fn import(broker: &Broker, doc: &Value) -> Result<Imported, String> {
    use ottermq_broker::store::users::UserChange;
    let doc = doc.as_object().ok_or("definitions must be a JSON object")?;
    let mut n = Imported::default();
    for v in list(doc, "vhosts")? {
        broker.add_vhost(str_field(v, "name", "vhost")?);
        n.vhosts += 1;
    }
    for u in list(doc, "users")? {
        let name = str_field(u, "name", "user")?;
        let user = super::admin::user_from_json(name, u)
            .map_err(|e| format!("user '{name}': {}", e.reason))?;
        broker.users.change(UserChange::PutUser(user));
        n.users += 1;
    }
    for p in list(doc, "permissions")? {
        let user = str_field(p, "user", "permission")?;
        let vhost = str_field(p, "vhost", "permission")?;
        let what = format!("permission of user '{user}' in vhost '{vhost}'");
        if broker.vhost(vhost).is_none() {
            return Err(format!("{what}: vhost '{vhost}' does not exist"));
        }
        if broker.users.user(user).is_none() {
            return Err(format!("{what}: user '{user}' does not exist"));
        }
        let perm =
            super::admin::permission_from_json(p).map_err(|e| format!("{what}: {}", e.reason))?;
        broker.users.change(UserChange::SetPermission {
            vhost: vhost.into(),
            user: user.into(),
            perm,
        });
        n.permissions += 1;
    }
    for p in list(doc, "topic_permissions")? {
        let user = str_field(p, "user", "topic permission")?;
        let vhost = str_field(p, "vhost", "topic permission")?;
        let exchange = str_field(p, "exchange", "topic permission")?;
        let what = format!(
            "topic permission of user '{user}' in vhost '{vhost}' for exchange '{exchange}'"
        );
        if broker.vhost(vhost).is_none() {
            return Err(format!("{what}: vhost '{vhost}' does not exist"));
        }
        if broker.users.user(user).is_none() {
            return Err(format!("{what}: user '{user}' does not exist"));
        }
        // RabbitMQ's export always has both regexes; a missing one is an error, not "allow".
        let write = str_field(p, "write", &what)?;
        let read = str_field(p, "read", &what)?;
        let perm = TopicPermission::new(exchange, write, read, user, vhost)
            .map_err(|e| format!("{what}: {e}"))?;
        broker.users.change(UserChange::SetTopicPermission {
            vhost: vhost.into(),
            user: user.into(),
            perm,
        });
        n.topic_permissions += 1;
    }
    let vhost = |o: &Value, what: &str| {
        let name = o.get("vhost").and_then(Value::as_str).unwrap_or("/");
        broker
            .vhost(name)
            .ok_or_else(|| format!("{what}: vhost '{name}' does not exist"))
    };
    for e in list(doc, "exchanges")? {
        let name = str_field(e, "name", "exchange")?;
        let what = format!("exchange '{name}'");
        let v = vhost(e, &what)?;
        let kind_name = e.get("type").and_then(Value::as_str).unwrap_or("direct");
        let kind = ExchangeKind::parse(kind_name.as_bytes())
            .ok_or_else(|| format!("{what}: unknown exchange type '{kind_name}'"))?;
        v.declare_exchange(ExchangeSpec {
            name: short(name, &what)?,
            kind,
            durable: e.get("durable").and_then(Value::as_bool).unwrap_or(true),
            auto_delete: bool_field(e, "auto_delete"),
            internal: bool_field(e, "internal"),
            arguments: table(e.get("arguments"), &what)?,
        })
        .map_err(|err| format!("{what}: {}", err.text))?;
        n.exchanges += 1;
    }
    for q in list(doc, "queues")? {
        let name = str_field(q, "name", "queue")?;
        let what = format!("queue '{name}'");
        let v = vhost(q, &what)?;
        let options = QueueOptions {
            durable: q.get("durable").and_then(Value::as_bool).unwrap_or(true),
            exclusive: false,
            auto_delete: bool_field(q, "auto_delete"),
            arguments: table(q.get("arguments"), &what)?,
        };
        v.declare_queue(short(name, &what)?, options, 0)
            .map_err(|err| format!("{what}: {}", err.text))?;
        n.queues += 1;
    }
    for b in list(doc, "bindings")? {
        let source = str_field(b, "source", "binding")?;
        let dest = str_field(b, "destination", "binding")?;
        let what = format!("binding '{source}' -> '{dest}'");
        let v = vhost(b, &what)?;
        let src = v
            .exchange(source.as_bytes())
            .ok_or_else(|| format!("{what}: no source exchange"))?;
        let destination = match b.get("destination_type").and_then(Value::as_str) {
            Some("exchange") => Destination::Exchange(
                v.exchange(dest.as_bytes())
                    .ok_or_else(|| format!("{what}: no destination exchange"))?,
            ),
            Some("queue") | None => Destination::Queue(
                v.queue(dest.as_bytes())
                    .ok_or_else(|| format!("{what}: no destination queue"))?,
            ),
            Some(other) => return Err(format!("{what}: unknown destination_type '{other}'")),
        };
        let routing_key = b.get("routing_key").and_then(Value::as_str).unwrap_or("");
        v.bind(
            &src,
            Binding {
                destination,
                routing_key: short(routing_key, &what)?,
                arguments: table(b.get("arguments"), &what)?,
            },
        )
        .map_err(|err| format!("{what}: {}", err.text))?;
        n.bindings += 1;
    }
    Ok(n)
}

use super::admin::require_admin;

pub async fn get_definitions(
    State(s): State<AppState>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult<Json<Value>> {
    require_admin(&user)?;
    Ok(Json(export(&s.broker)))
}

pub async fn post_definitions(
    State(s): State<AppState>,
    Extension(user): Extension<AuthUser>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    require_admin(&user)?;
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let broker = s.broker.clone();
    // Declaring durable objects syncs each to disk: off the async workers.
    tokio::task::spawn_blocking(move || import(&broker, &doc))
        .await
        .map_err(|e| ApiError::bad_request(format!("import failed: {e}")))?
        .map_err(ApiError::bad_request)?;
    Ok(StatusCode::NO_CONTENT)
}
