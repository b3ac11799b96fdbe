//! Writes the seed corpora for the fuzz targets in `fuzz/` from frames this crate encodes: the
//! methods, content headers and tables real clients send. Run from the repository root:
//! `cargo run -p ottermq-protocol --example fuzz_seeds -- fuzz/corpus`.

use bytes::{Bytes, BytesMut};
use ottermq_protocol::*;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let dir = Path::new(&dir);
    let methods = methods();
    let props = properties();
    let tables = tables();
    for (name, m) in &methods {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        write(dir, "method", name, &b)?;
    }
    for (name, p) in &props {
        write(dir, "properties", name, p.as_bytes())?;
    }
    for (name, t) in &tables {
        let mut b = BytesMut::new();
        t.encode(&mut b);
        write(dir, "table", name, &b)?;
    }
    // Frame streams: a selector octet (the frame_max the target reads with) then frames.
    for (i, (name, m)) in methods.iter().enumerate() {
        let mut b = BytesMut::from(&[i as u8][..]);
        encode_method(&mut b, (i % 3) as u16, m);
        write(dir, "frame", name, &b)?;
    }
    for (i, (name, p)) in props.iter().enumerate() {
        let mut b = BytesMut::from(&[i as u8][..]);
        encode_method(&mut b, 1, &publish("", "q"));
        encode_content(&mut b, 1, p, &[b'x'; 300], [0, 4096, 131_072, 9][i % 4]);
        encode_heartbeat(&mut b);
        write(dir, "frame", &format!("content-{name}"), &b)?;
    }
    // Connection sessions (what follows the handshake the target performs).
    for (name, frames) in sessions() {
        let mut b = BytesMut::new();
        for (ch, f) in frames {
            match f {
                Step::M(m) => encode_method(&mut b, ch, &m),
                Step::Content(p, body) => encode_content(&mut b, ch, &p, &body, 131_072),
                Step::Heartbeat => encode_heartbeat(&mut b),
            }
        }
        write(dir, "connection", name, &b)?;
    }
    Ok(())
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(format!("seed-{name}")), bytes)
}

fn s(v: &'static str) -> ShortStr {
    ShortStr::from_static(v)
}

fn args() -> FieldTable {
    let mut t = FieldTable::new();
    t.insert("x-message-ttl", FieldValue::I32(60_000));
    t.insert("x-max-length", FieldValue::I64(10));
    t.insert("x-queue-type", FieldValue::LongStr("classic".into()));
    t.insert("x-max-priority", FieldValue::U8(5));
    t
}

fn publish(exchange: &'static str, rk: &'static str) -> Method {
    Method::BasicPublish(BasicPublish {
        exchange: s(exchange),
        routing_key: s(rk),
        mandatory: true,
        immediate: false,
    })
}

fn methods() -> Vec<(&'static str, Method)> {
    let mut caps = FieldTable::new();
    caps.insert("publisher_confirms", FieldValue::Bool(true));
    let mut client = FieldTable::new();
    client.insert("capabilities", FieldValue::Table(caps));
    client.insert("product", FieldValue::LongStr("lapin".into()));
    vec![
        (
            "start-ok",
            Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: client,
                mechanism: s("PLAIN"),
                response: LongStr::from(b"\0guest\0guest".to_vec()),
                locale: s("en_US"),
            }),
        ),
        (
            "tune-ok",
            Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: 2047,
                frame_max: 131_072,
                heartbeat: 60,
            }),
        ),
        (
            "open",
            Method::ConnectionOpen(ConnectionOpen {
                virtual_host: s("/"),
            }),
        ),
        ("channel-open", Method::ChannelOpen),
        (
            "exchange-declare",
            Method::ExchangeDeclare(ExchangeDeclare {
                exchange: s("ex"),
                kind: s("topic"),
                passive: false,
                durable: true,
                auto_delete: false,
                internal: false,
                nowait: false,
                arguments: FieldTable::new(),
            }),
        ),
        (
            "queue-declare",
            Method::QueueDeclare(QueueDeclare {
                queue: s("q"),
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: args(),
            }),
        ),
        (
            "queue-bind",
            Method::QueueBind(QueueBind {
                queue: s("q"),
                exchange: s("ex"),
                routing_key: s("a.*.#"),
                nowait: false,
                arguments: FieldTable::new(),
            }),
        ),
        (
            "basic-qos",
            Method::BasicQos(BasicQos {
                prefetch_size: 0,
                prefetch_count: 10,
                global: false,
            }),
        ),
        (
            "basic-consume",
            Method::BasicConsume(BasicConsume {
                queue: s("q"),
                consumer_tag: s("c1"),
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::new(),
            }),
        ),
        ("basic-publish", publish("ex", "a.b.c")),
        (
            "basic-ack",
            Method::BasicAck(BasicAck {
                delivery_tag: 1,
                multiple: true,
            }),
        ),
        (
            "basic-nack",
            Method::BasicNack(BasicNack {
                delivery_tag: 2,
                multiple: false,
                requeue: true,
            }),
        ),
        (
            "basic-get",
            Method::BasicGet(BasicGet {
                queue: s("q"),
                no_ack: true,
            }),
        ),
        (
            "basic-cancel",
            Method::BasicCancel(BasicCancel {
                consumer_tag: s("c1"),
                nowait: false,
            }),
        ),
        (
            "confirm-select",
            Method::ConfirmSelect(ConfirmSelect { nowait: false }),
        ),
        ("tx-select", Method::TxSelect),
        (
            "channel-close",
            Method::ChannelClose(ChannelClose {
                reply_code: 200,
                reply_text: s("bye"),
                class_id: 0,
                method_id: 0,
            }),
        ),
        (
            "connection-close",
            Method::ConnectionClose(ConnectionClose {
                reply_code: 200,
                reply_text: s("bye"),
                class_id: 0,
                method_id: 0,
            }),
        ),
    ]
}

fn properties() -> Vec<(&'static str, RawProperties)> {
    let mut headers = FieldTable::new();
    headers.insert("traceparent", FieldValue::LongStr("00-0af7-b7ad-01".into()));
    headers.insert("n", FieldValue::I32(7));
    let full = BasicProperties {
        content_type: Some(s("application/json")),
        content_encoding: Some(s("gzip")),
        headers: Some(headers),
        delivery_mode: Some(2),
        priority: Some(3),
        correlation_id: Some(s("corr")),
        reply_to: Some(s("amq.rabbitmq.reply-to")),
        expiration: Some(s("60000")),
        message_id: Some(s("m1")),
        timestamp: Some(1_700_000_000),
        kind: Some(s("t")),
        user_id: Some(s("guest")),
        app_id: Some(s("app")),
        cluster_id: Some(s("c")),
    };
    let persistent = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    vec![
        ("empty", RawProperties::empty()),
        ("persistent", persistent.to_raw()),
        ("full", full.to_raw()),
    ]
}

fn tables() -> Vec<(&'static str, FieldTable)> {
    let mut nested = FieldTable::new();
    nested.insert("inner", FieldValue::Table(args()));
    nested.insert(
        "list",
        FieldValue::Array(vec![
            FieldValue::Bool(true),
            FieldValue::I8(-1),
            FieldValue::U16(9),
            FieldValue::U32(9),
            FieldValue::U64(9),
            FieldValue::F32(1.5),
            FieldValue::F64(2.5),
            FieldValue::Decimal {
                scale: 2,
                value: 314,
            },
            FieldValue::Bytes(Bytes::from_static(b"raw")),
            FieldValue::Timestamp(1),
            FieldValue::Void,
            FieldValue::I16(-3),
        ]),
    );
    vec![
        ("empty", FieldTable::new()),
        ("args", args()),
        ("nested", nested),
    ]
}

enum Step {
    M(Method),
    Content(RawProperties, Vec<u8>),
    Heartbeat,
}

fn sessions() -> Vec<(&'static str, Vec<(u16, Step)>)> {
    let m = methods();
    let get = |n: &str| {
        m.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.clone())
            .expect("seed method")
    };
    let props = properties();
    let persistent = props[1].1.clone();
    let full = props[2].1.clone();
    vec![
        (
            "publish-consume-ack",
            vec![
                (1, Step::M(get("channel-open"))),
                (1, Step::M(get("queue-declare"))),
                (1, Step::M(get("basic-qos"))),
                (1, Step::M(get("basic-consume"))),
                (1, Step::M(publish("", "q"))),
                (1, Step::Content(full, b"hello".to_vec())),
                (1, Step::M(get("basic-ack"))),
                (0, Step::Heartbeat),
                (1, Step::M(get("basic-cancel"))),
                (1, Step::M(get("channel-close"))),
                (0, Step::M(get("connection-close"))),
            ],
        ),
        (
            "topic-confirm",
            vec![
                (1, Step::M(get("channel-open"))),
                (1, Step::M(get("confirm-select"))),
                (1, Step::M(get("exchange-declare"))),
                (1, Step::M(get("queue-declare"))),
                (1, Step::M(get("queue-bind"))),
                (1, Step::M(get("basic-publish"))),
                (1, Step::Content(persistent, vec![7; 1000])),
                (1, Step::M(get("basic-get"))),
                (1, Step::M(get("basic-nack"))),
            ],
        ),
        (
            "tx",
            vec![
                (2, Step::M(get("channel-open"))),
                (2, Step::M(get("tx-select"))),
                (2, Step::M(get("queue-declare"))),
                (2, Step::M(publish("", "q"))),
                (2, Step::Content(RawProperties::empty(), Vec::new())),
                (2, Step::M(Method::TxCommit)),
                (2, Step::M(get("basic-get"))),
                (2, Step::M(Method::TxRollback)),
            ],
        ),
    ]
}
