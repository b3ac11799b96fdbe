//! Request bodies and message payloads for the management API's write endpoints: JSON parsing
//! with JSON errors, message properties between JSON and AMQP, payload encodings.

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use ottermq_protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// Parses a JSON body; anything malformed is a 400 with serde's message as the reason.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

/// A payload as RabbitMQ returns it: the text when it is UTF-8 and `base64` was not asked for,
/// otherwise base64.
pub fn payload_json(body: &[u8], force_base64: bool) -> (String, &'static str) {
    if !force_base64 {
        if let Ok(s) = std::str::from_utf8(body) {
            return (s.to_string(), "string");
        }
    }
    (
        base64::engine::general_purpose::STANDARD.encode(body),
        "base64",
    )
}

fn short(v: &str, field: &str) -> ApiResult<ShortStr> {
    if v.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "property {field} is longer than 255 bytes"
        )));
    }
    Ok(ShortStr::from(v))
}

fn str_prop(m: &Map<String, Value>, field: &str) -> ApiResult<Option<ShortStr>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => short(s, field).map(Some),
        Some(_) => Err(ApiError::bad_request(format!(
            "property {field} must be a string"
        ))),
    }
}

fn int_prop(m: &Map<String, Value>, field: &str, max: u64) -> ApiResult<Option<u64>> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n <= max).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("property {field} must be an integer 0..={max}"))
        }),
    }
}

fn header_value(v: &Value) -> ApiResult<FieldValue> {
    Ok(match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongStr(s.as_str().into()),
        Value::Array(a) => FieldValue::Array(a.iter().map(header_value).collect::<ApiResult<_>>()?),
        Value::Object(o) => FieldValue::Table(headers_table(o)?),
    })
}

pub(crate) fn headers_table(o: &Map<String, Value>) -> ApiResult<FieldTable> {
    let mut t = FieldTable::default();
    for (k, v) in o {
        t.insert(short(k, "headers")?, header_value(v)?);
    }
    Ok(t)
}

/// RabbitMQ's `properties` object (`delivery_mode`, `headers`, `content_type`, ...) as AMQP
/// basic properties. Unknown keys are a 400, so a typo does not pass silently.
pub fn properties_from_json(v: &Value) -> ApiResult<BasicProperties> {
    let m = match v {
        Value::Null => return Ok(BasicProperties::default()),
        Value::Object(m) => m,
        _ => return Err(ApiError::bad_request("properties must be an object")),
    };
    const KNOWN: [&str; 14] = [
        "content_type",
        "content_encoding",
        "headers",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    ];
    if let Some(k) = m.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!("unknown property '{k}'")));
    }
    let headers = match m.get("headers") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(headers_table(o)?),
        Some(_) => return Err(ApiError::bad_request("property headers must be an object")),
    };
    Ok(BasicProperties {
        content_type: str_prop(m, "content_type")?,
        content_encoding: str_prop(m, "content_encoding")?,
        headers,
        delivery_mode: int_prop(m, "delivery_mode", 2)?.map(|n| n as u8),
        priority: int_prop(m, "priority", 255)?.map(|n| n as u8),
        correlation_id: str_prop(m, "correlation_id")?,
        reply_to: str_prop(m, "reply_to")?,
        expiration: str_prop(m, "expiration")?,
        message_id: str_prop(m, "message_id")?,
        timestamp: int_prop(m, "timestamp", u64::MAX)?,
        kind: str_prop(m, "type")?,
        user_id: str_prop(m, "user_id")?,
        app_id: str_prop(m, "app_id")?,
        cluster_id: str_prop(m, "cluster_id")?,
    })
}

/// Basic properties as RabbitMQ's management API shows them (only the ones set).
pub fn properties_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut s = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            m.insert(k.to_string(), json!(v.to_string()));
        }
    };
    s("content_type", &p.content_type);
    s("content_encoding", &p.content_encoding);
    s("correlation_id", &p.correlation_id);
    s("reply_to", &p.reply_to);
    s("expiration", &p.expiration);
    s("message_id", &p.message_id);
    s("type", &p.kind);
    s("user_id", &p.user_id);
    s("app_id", &p.app_id);
    s("cluster_id", &p.cluster_id);
    if let Some(d) = p.delivery_mode {
        m.insert("delivery_mode".into(), json!(d));
    }
    if let Some(d) = p.priority {
        m.insert("priority".into(), json!(d));
    }
    if let Some(t) = p.timestamp {
        m.insert("timestamp".into(), json!(t));
    }
    if let Some(h) = &p.headers {
        m.insert("headers".into(), super::json::table_json(h));
    }
    Value::Object(m)
}
