//! Queue arguments that bound what a queue holds: dead-letter target, message TTL, queue
//! expiry and length limits, parsed once at declaration and checked as RabbitMQ 3.10 checks
//! them (`rabbit_amqqueue:declare_args/0`).

use crate::error::{AmqpError, AmqpResult};
use ottermq_protocol::{FieldTable, FieldValue, ShortStr};

/// Longest TTL or expiry RabbitMQ accepts: ten years in milliseconds.
pub const MAX_EXPIRY_MS: i64 = 315_360_000_000;

/// What happens to a publish that would take the queue over `x-max-length(-bytes)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Accept it and drop (or dead-letter, reason `maxlen`) the oldest ready messages.
    #[default]
    DropHead,
    /// Refuse it: basic.nack to a confirming publisher.
    RejectPublish,
    /// Refuse it and dead-letter it with reason `maxlen`.
    RejectPublishDlx,
}

/// The parsed behaviour-changing arguments of one queue.
#[derive(Debug, Clone, Default)]
pub struct QueueLimits {
    /// `x-dead-letter-exchange` (may be "", the default exchange).
    pub dlx: Option<ShortStr>,
    /// `x-dead-letter-routing-key`: replaces the message's routing keys when dead-lettered.
    pub dlrk: Option<ShortStr>,
    /// `x-message-ttl`, ms.
    pub message_ttl: Option<u64>,
    /// `x-expires`, ms: delete the queue after this long unused.
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_bytes: Option<u64>,
    pub overflow: Overflow,
    /// A quorum queue's `x-delivery-limit`: returns past it dead-letter the message.
    pub delivery_limit: Option<i64>,
}

pub(crate) fn int_arg(v: &FieldValue) -> Result<i64, String> {
    match v {
        FieldValue::I8(_)
        | FieldValue::U8(_)
        | FieldValue::I16(_)
        | FieldValue::U16(_)
        | FieldValue::I32(_)
        | FieldValue::U32(_)
        | FieldValue::I64(_)
        | FieldValue::U64(_) => v.as_i64().ok_or_else(|| "{value_too_large,..}".to_string()),
        other => Err(format!(
            "\"expected integer, got {}\"",
            erlang_type_name(other)
        )),
    }
}

/// The type name RabbitMQ prints for a field value in its refusal texts.
pub(crate) fn erlang_type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) | FieldValue::U64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) | FieldValue::ShortStr(_) => "longstr",
        FieldValue::Bytes(_) => "binary",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
    }
}

fn check_expiry(n: i64) -> Result<u64, String> {
    if n < 0 {
        Err(format!("{{value_negative,{n}}}"))
    } else if n > MAX_EXPIRY_MS {
        Err(format!("{{value_too_large,{n}}}"))
    } else {
        Ok(n as u64)
    }
}

fn non_neg(v: &FieldValue) -> Result<u64, String> {
    let n = int_arg(v)?;
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    Ok(n as u64)
}

fn string_arg(v: &FieldValue) -> Result<ShortStr, String> {
    match v {
        FieldValue::LongStr(s) => ShortStr::from_bytes(s.clone().into_bytes())
            .map_err(|_| "{unacceptable_type,longstr}".to_string()),
        FieldValue::ShortStr(s) => Ok(s.clone()),
        other => Err(format!("{{unacceptable_type,{}}}", erlang_type_name(other))),
    }
}

impl QueueLimits {
    /// Parses and checks the arguments of a queue.declare; a bad value is the 406 RabbitMQ
    /// gives: `invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}`.
    pub fn parse(args: &FieldTable, queue: &ShortStr, vhost: &str) -> AmqpResult<Self> {
        let mut l = QueueLimits::default();
        let fail = |key: &str, why: String| {
            AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': {why}"
            ))
        };
        // RabbitMQ checks the arguments in this order, so the first refusal is the same.
        if let Some(v) = args.get("x-expires") {
            let n = int_arg(v).map_err(|e| fail("x-expires", e))?;
            if n == 0 {
                return Err(fail("x-expires", "{value_zero,0}".into()));
            }
            l.expires = Some(check_expiry(n).map_err(|e| fail("x-expires", e))?);
        }
        if let Some(v) = args.get("x-message-ttl") {
            let n = int_arg(v).map_err(|e| fail("x-message-ttl", e))?;
            l.message_ttl = Some(check_expiry(n).map_err(|e| fail("x-message-ttl", e))?);
        }
        if let Some(v) = args.get("x-dead-letter-exchange") {
            l.dlx = Some(string_arg(v).map_err(|e| fail("x-dead-letter-exchange", e))?);
        }
        if let Some(v) = args.get("x-dead-letter-routing-key") {
            let rk = string_arg(v).map_err(|e| fail("x-dead-letter-routing-key", e))?;
            if l.dlx.is_none() {
                return Err(fail(
                    "x-dead-letter-routing-key",
                    "routing_key_but_no_dlx_defined".into(),
                ));
            }
            l.dlrk = Some(rk);
        }
        if let Some(v) = args.get("x-max-length") {
            l.max_length = Some(non_neg(v).map_err(|e| fail("x-max-length", e))?);
        }
        if let Some(v) = args.get("x-max-length-bytes") {
            l.max_bytes = Some(non_neg(v).map_err(|e| fail("x-max-length-bytes", e))?);
        }
        if let Some(v) = args.get("x-overflow") {
            l.overflow = match v.as_str_bytes() {
                Some(b"drop-head") => Overflow::DropHead,
                Some(b"reject-publish") => Overflow::RejectPublish,
                Some(b"reject-publish-dlx") => Overflow::RejectPublishDlx,
                Some(_) if matches!(v, FieldValue::LongStr(_) | FieldValue::ShortStr(_)) => {
                    return Err(fail("x-overflow", "invalid_overflow".into()))
                }
                _ => {
                    return Err(fail(
                        "x-overflow",
                        format!("{{unacceptable_type,{}}}", erlang_type_name(v)),
                    ))
                }
            };
        }
        Ok(l)
    }

    /// The same parse for arguments already accepted once (recovered definitions): a value
    /// that no longer parses is ignored rather than refusing the queue.
    pub fn lenient(args: &FieldTable) -> Self {
        let mut l = QueueLimits::default();
        let name = ShortStr::from_static("");
        for key in [
            "x-expires",
            "x-message-ttl",
            "x-dead-letter-exchange",
            "x-dead-letter-routing-key",
            "x-max-length",
            "x-max-length-bytes",
            "x-overflow",
        ] {
            let Some(v) = args.get(key) else { continue };
            let mut one = FieldTable::new();
            if key == "x-dead-letter-routing-key" {
                one.insert("x-dead-letter-exchange", FieldValue::LongStr("".into()));
            }
            one.insert(key, v.clone());
            if let Ok(p) = Self::parse(&one, &name, "") {
                match key {
                    "x-expires" => l.expires = p.expires,
                    "x-message-ttl" => l.message_ttl = p.message_ttl,
                    "x-dead-letter-exchange" => l.dlx = p.dlx,
                    "x-dead-letter-routing-key" => l.dlrk = p.dlrk,
                    "x-max-length" => l.max_length = p.max_length,
                    "x-max-length-bytes" => l.max_bytes = p.max_bytes,
                    _ => l.overflow = p.overflow,
                }
            }
        }
        if l.dlx.is_none() {
            l.dlrk = None;
        }
        if super::queue_type::QueueType::of(args) == super::queue_type::QueueType::Quorum {
            l.delivery_limit = super::queue_type::delivery_limit(args);
        }
        l
    }

    /// Whether a length limit applies at all (most queues: no, one branch on publish).
    pub fn has_length_limit(&self) -> bool {
        self.max_length.is_some() || self.max_bytes.is_some()
    }

    /// RabbitMQ's `over_max_length`: the ready list is above a limit.
    pub fn over(&self, len: u64, bytes: u64) -> bool {
        self.max_length.is_some_and(|m| len > m) || self.max_bytes.is_some_and(|m| bytes > m)
    }

    /// RabbitMQ's `will_overflow`: one more message of `size` bytes would go above a limit.
    pub fn would_overflow(&self, len: u64, bytes: u64, size: u64) -> bool {
        self.over(len + 1, bytes + size)
    }
}

/// Parses a per-message `expiration` property as RabbitMQ does (`string:to_integer` with
/// nothing left over, then the 0..=10 years check). Returns the TTL in ms, or the reason text
/// for the 406 `invalid expiration '<value>': <reason>`.
pub fn parse_expiration(raw: &[u8]) -> Result<u64, String> {
    let (neg, digits) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let n_digits = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n_digits == 0 {
        return Err("no_integer".into());
    }
    if n_digits < digits.len() {
        let rest = String::from_utf8_lossy(&digits[n_digits..]);
        return Err(format!("{{leftover_string,\"{rest}\"}}"));
    }
    let mut n: i64 = 0;
    for b in &digits[..n_digits] {
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        n = -n;
    }
    check_expiry(n)
}

/// The TTL of a message already accepted (its `expiration` was checked at publish); None when
/// it has none or it does not parse.
pub fn message_ttl(raw: Option<&[u8]>) -> Option<u64> {
    raw.and_then(|r| parse_expiration(r).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_parsing_follows_rabbitmq() {
        assert_eq!(parse_expiration(b"1000"), Ok(1000));
        assert_eq!(parse_expiration(b"0"), Ok(0));
        assert_eq!(parse_expiration(b"+5"), Ok(5));
        assert_eq!(parse_expiration(b"-1"), Err("{value_negative,-1}".into()));
        assert_eq!(parse_expiration(b"abc"), Err("no_integer".into()));
        assert_eq!(parse_expiration(b""), Err("no_integer".into()));
        assert_eq!(
            parse_expiration(b"10x"),
            Err("{leftover_string,\"x\"}".into())
        );
        assert!(parse_expiration(b"315360000001").is_err());
    }

    #[test]
    fn limits() {
        let mut t = FieldTable::new();
        t.insert("x-max-length", FieldValue::I32(2));
        let l = QueueLimits::parse(&t, &ShortStr::from("q"), "/").unwrap();
        assert!(!l.over(2, 0));
        assert!(l.over(3, 0));
        assert!(l.would_overflow(2, 0, 1));
        let mut t = FieldTable::new();
        t.insert("x-message-ttl", FieldValue::I32(-1));
        let e = QueueLimits::parse(&t, &ShortStr::from("q"), "/").unwrap_err();
        assert_eq!(e.code, 406);
    }
}
