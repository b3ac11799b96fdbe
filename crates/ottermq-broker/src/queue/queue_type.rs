//! `x-queue-type`: classic queues and quorum queues, as a single RabbitMQ 3.10 node has them.
//!
//! OtterMQ runs on one node, so a quorum queue is not replicated; what it keeps of RabbitMQ's
//! quorum queues is what applications see of them: the declare rules (durable, not exclusive,
//! not auto-delete, no priorities or lazy mode), every message kept on disk whatever its
//! delivery mode, and the poison-message handling: a delivery count per message, sent to
//! consumers as the `x-delivery-count` header, and `x-delivery-limit`, past which a returned
//! message is dead-lettered with reason `delivery_limit` (or dropped without a dead-letter
//! exchange). Streams are not built: `x-queue-type: stream` is refused rather than silently
//! turned into a classic queue.
//!
//! The argument sets below were checked against RabbitMQ 3.10 (`rabbitmq-server` 3.10 from
//! Debian, declares with pika): an argument some queue type knows but the declared type does
//! not is refused with `invalid arg 'K' for queue 'Q' in vhost 'V' of queue type
//! rabbit_T_queue`; an argument no type knows is accepted and ignored.

use crate::error::{AmqpError, AmqpResult};
use crate::queue::QueueOptions;
use ottermq_protocol::{FieldTable, FieldValue, RawProperties, ShortStr};

/// Which kind of queue a declare asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

impl QueueType {
    /// The name the management API shows in a queue's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }

    fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
        }
    }

    fn knows(self, key: &[u8]) -> bool {
        match self {
            QueueType::Classic => CLASSIC_ARGS.contains(&key),
            QueueType::Quorum => QUORUM_ARGS.contains(&key),
        }
    }

    /// The type of an already accepted queue (recovered definitions): anything but a valid
    /// `quorum` is classic.
    pub fn of(args: &FieldTable) -> QueueType {
        match args.get("x-queue-type").and_then(|v| v.as_str_bytes()) {
            Some(b"quorum") => QueueType::Quorum,
            _ => QueueType::Classic,
        }
    }
}

/// Arguments RabbitMQ 3.10's classic queues take.
const CLASSIC_ARGS: &[&[u8]] = &[
    b"x-expires",
    b"x-message-ttl",
    b"x-dead-letter-exchange",
    b"x-dead-letter-routing-key",
    b"x-max-length",
    b"x-max-length-bytes",
    b"x-max-priority",
    b"x-overflow",
    b"x-queue-mode",
    b"x-single-active-consumer",
    b"x-queue-type",
    b"x-queue-master-locator",
    b"x-queue-version",
];

/// Arguments RabbitMQ 3.10's quorum queues take.
const QUORUM_ARGS: &[&[u8]] = &[
    b"x-expires",
    b"x-message-ttl",
    b"x-dead-letter-exchange",
    b"x-dead-letter-routing-key",
    b"x-max-length",
    b"x-max-length-bytes",
    b"x-max-in-memory-length",
    b"x-max-in-memory-bytes",
    b"x-overflow",
    b"x-single-active-consumer",
    b"x-queue-type",
    b"x-quorum-initial-group-size",
    b"x-delivery-limit",
    b"x-dead-letter-strategy",
    b"x-queue-leader-locator",
];

/// Arguments only RabbitMQ's streams take (refused on both types above).
const STREAM_ARGS: &[&[u8]] = &[
    b"x-max-age",
    b"x-stream-max-segment-size-bytes",
    b"x-initial-cluster-size",
    b"x-queue-leader-locator",
];

fn known_to_some_type(key: &[u8]) -> bool {
    CLASSIC_ARGS.contains(&key) || QUORUM_ARGS.contains(&key) || STREAM_ARGS.contains(&key)
}

/// The arguments a redeclare must repeat with the same value, in RabbitMQ 3.10's order
/// (`rabbit_amqqueue:declare_args/0`, then the type-specific ones). Any other argument may
/// differ: RabbitMQ compares only the ones it knows.
const EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
    "x-queue-master-locator",
    "x-delivery-limit",
    "x-dead-letter-strategy",
];

/// The first argument a redeclare (`new`) does not repeat from the queue's own (`cur`), with
/// RabbitMQ 3.10's text for it (`received '2' but current is '1'`, `received none but current
/// is the value '1' of type 'signedint'`). Integers compare by value whatever their width, as
/// RabbitMQ compares by type class.
pub fn inequivalent_arg(cur: &FieldTable, new: &FieldTable) -> Option<(&'static str, String)> {
    for key in EQUIVALENCE_ARGS {
        let text = match (new.get(key), cur.get(key)) {
            (None, None) => continue,
            (Some(n), Some(c)) if same_value(n, c) => continue,
            (Some(n), Some(c)) => format!("received '{}' but current is '{}'", plain(n), plain(c)),
            (None, Some(c)) => format!("received none but current is {}", typed(c)),
            (Some(n), None) => format!("received {} but current is none", typed(n)),
        };
        return Some((key, text));
    }
    None
}

fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.as_str_bytes(), b.as_str_bytes()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn plain(v: &FieldValue) -> String {
    if let Some(n) = v.as_i64() {
        return n.to_string();
    }
    match v {
        FieldValue::Bool(b) => b.to_string(),
        _ => match v.as_str_bytes() {
            Some(s) => String::from_utf8_lossy(s).into_owned(),
            None => format!("{v:?}"),
        },
    }
}

fn typed(v: &FieldValue) -> String {
    format!(
        "the value '{}' of type '{}'",
        plain(v),
        super::limits::erlang_type_name(v)
    )
}

/// Checks `x-queue-type` and what the chosen type allows, with RabbitMQ 3.10's
/// PRECONDITION_FAILED texts. Returns the type.
pub fn check(options: &QueueOptions, queue: &ShortStr, vhost: &str) -> AmqpResult<QueueType> {
    let args = &options.arguments;
    let fail = |why: String| {
        AmqpError::precondition_failed(format!(
            "invalid arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': {why}"
        ))
    };
    let kind = match args.get("x-queue-type") {
        None => QueueType::Classic,
        Some(v @ (FieldValue::LongStr(_) | FieldValue::ShortStr(_))) => {
            match v.as_str_bytes().unwrap_or_default() {
                b"classic" => QueueType::Classic,
                b"quorum" => QueueType::Quorum,
                other => {
                    return Err(fail(format!(
                        "\"unsupported queue type '{}'\"",
                        String::from_utf8_lossy(other)
                    )))
                }
            }
        }
        Some(other) => {
            return Err(fail(format!(
                "{{unacceptable_type,{}}}",
                super::limits::erlang_type_name(other)
            )))
        }
    };
    for (k, _) in args.iter() {
        let key = k.as_bytes();
        if known_to_some_type(key) && !kind.knows(key) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{}' for queue '{queue}' in vhost '{vhost}' of queue type {}",
                k.to_string_lossy(),
                kind.module()
            )));
        }
    }
    if kind == QueueType::Quorum {
        if let Some(v) = args.get("x-dead-letter-strategy") {
            if !matches!(v.as_str_bytes(), Some(b"at-most-once" | b"at-least-once")) {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid arg 'x-dead-letter-strategy' for queue '{queue}' in vhost \
                     '{vhost}': invalid_dlx_strategy"
                )));
            }
        }
        let property = if options.auto_delete {
            Some("auto-delete")
        } else if options.exclusive {
            Some("exclusive-owner")
        } else if !options.durable {
            Some("non-durable")
        } else {
            None
        };
        if let Some(p) = property {
            return Err(AmqpError::precondition_failed(format!(
                "invalid property '{p}' for queue '{queue}' in vhost '{vhost}'"
            )));
        }
    }
    Ok(kind)
}

/// A quorum queue's `x-delivery-limit`: an integer (a negative one dead-letters at the first
/// return, as in RabbitMQ, where the count 1 is already above it); any other value, like no
/// value, means no limit.
pub fn delivery_limit(args: &FieldTable) -> Option<i64> {
    super::limits::int_arg(args.get("x-delivery-limit")?).ok()
}

/// `props` with the `x-delivery-count` header (a long, as RabbitMQ writes it) set to `count`.
/// Only redeliveries from quorum queues (and their basic.get) come here, never the first
/// consume delivery, so the publish-to-deliver path does not decode properties. Properties
/// that do not decode (accepted at publish, so only if corrupted) are sent unchanged.
pub fn with_delivery_count(props: &RawProperties, count: u32) -> RawProperties {
    let Ok(mut p) = props.decode() else {
        return props.clone();
    };
    let mut headers = p.headers.take().unwrap_or_default();
    headers.insert("x-delivery-count", FieldValue::I64(count as i64));
    p.headers = Some(headers);
    p.to_raw()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[(&str, FieldValue)], durable: bool) -> QueueOptions {
        let mut t = FieldTable::new();
        for (k, v) in args {
            t.insert(*k, v.clone());
        }
        QueueOptions {
            durable,
            exclusive: false,
            auto_delete: false,
            arguments: t,
        }
    }

    fn err(o: &QueueOptions) -> String {
        let text = check(o, &ShortStr::from("q"), "/").unwrap_err().text;
        text.trim_start_matches("PRECONDITION_FAILED - ")
            .to_string()
    }

    #[test]
    fn declare_rules_follow_rabbitmq_3_10() {
        let quorum = ("x-queue-type", FieldValue::LongStr("quorum".into()));
        assert_eq!(
            check(
                &opts(std::slice::from_ref(&quorum), true),
                &ShortStr::from("q"),
                "/"
            )
            .unwrap(),
            QueueType::Quorum
        );
        assert_eq!(
            err(&opts(std::slice::from_ref(&quorum), false)),
            "invalid property 'non-durable' for queue 'q' in vhost '/'"
        );
        assert_eq!(
            err(&opts(&[quorum.clone(), ("x-max-priority", FieldValue::I32(5))], true)),
            "invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue"
        );
        assert_eq!(
            err(&opts(&[("x-delivery-limit", FieldValue::I32(1))], true)),
            "invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue"
        );
        assert_eq!(
            err(&opts(&[("x-queue-type", FieldValue::LongStr("bogus".into()))], true)),
            "invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'bogus'\""
        );
        assert_eq!(
            err(&opts(&[("x-queue-type", FieldValue::I32(5))], true)),
            "invalid arg 'x-queue-type' for queue 'q' in vhost '/': {unacceptable_type,signedint}"
        );
        // Unknown to every type: accepted, as RabbitMQ does.
        assert!(check(
            &opts(&[("x-foo", FieldValue::I32(1))], false),
            &ShortStr::from("q"),
            "/"
        )
        .is_ok());
    }

    #[test]
    fn equivalence_compares_known_arguments_by_value() {
        let t = |list: &[(&str, FieldValue)]| opts(list, true).arguments;
        let cur = t(&[
            ("x-max-length", FieldValue::I32(1)),
            ("x-foo", FieldValue::I32(1)),
        ]);
        assert_eq!(
            inequivalent_arg(&cur, &t(&[("x-max-length", FieldValue::I64(1))])),
            None
        );
        assert_eq!(
            inequivalent_arg(&cur, &t(&[("x-max-length", FieldValue::I32(2))])),
            Some(("x-max-length", "received '2' but current is '1'".into()))
        );
        assert_eq!(
            inequivalent_arg(&cur, &t(&[])),
            Some((
                "x-max-length",
                "received none but current is the value '1' of type 'signedint'".into()
            ))
        );
        let q = t(&[("x-queue-type", FieldValue::LongStr("quorum".into()))]);
        assert_eq!(
            inequivalent_arg(&t(&[]), &q),
            Some((
                "x-queue-type",
                "received the value 'quorum' of type 'longstr' but current is none".into()
            ))
        );
    }

    #[test]
    fn delivery_limit_takes_integers_only() {
        let t = opts(&[("x-delivery-limit", FieldValue::I32(-1))], true).arguments;
        assert_eq!(delivery_limit(&t), Some(-1));
        let t = opts(
            &[("x-delivery-limit", FieldValue::LongStr("abc".into()))],
            true,
        )
        .arguments;
        assert_eq!(delivery_limit(&t), None);
    }
}
