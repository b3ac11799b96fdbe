//! Quorum queues (`x-queue-type: quorum`) as RabbitMQ 3.10 shows them to a client on one node:
//! the declare rules and their PRECONDITION_FAILED texts, `x-delivery-count` on redeliveries
//! (and on every basic.get-ok), `x-delivery-limit` dead-lettering with reason
//! `delivery_limit`, its metrics, and every message kept across a restart whatever its
//! delivery mode; and redeclare equivalence as 3.10 checks it. Each expectation was first
//! checked against RabbitMQ 3.10 with pika (`scripts/probe_quorum.py`).

use crate::common;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use ottermq_protocol as p;

/// An in-process broker for one test, with its AMQP URL and management base URL.
async fn start() -> (ottermq::RunningServer, String, String) {
    let server = ottermq::testing::start_test_broker().await;
    let url = format!("amqp://guest:guest@{}/%2f", server.amqp_addr);
    let http = format!("http://{}", server.http_addr.expect("http listener"));
    (server, url, http)
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut list = vec![("x-queue-type", s("quorum"))];
    list.extend(extra.iter().cloned());
    args(&list)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Declares on a fresh channel and returns the refusal's code and text (None: accepted).
async fn try_declare(
    c: &lapin::Connection,
    q: &str,
    opts: QueueDeclareOptions,
    a: FieldTable,
) -> Option<(u16, String)> {
    let ch = channel(c).await;
    match within("declare", ch.queue_declare(q.into(), opts, a)).await {
        Ok(_) => None,
        Err(e) => match e.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => {
                Some((amqp.get_id(), amqp.get_message().to_string()))
            }
            other => panic!("declare failed without a reply code: {other:?}"),
        },
    }
}

async fn publish(ch: &Channel, q: &str, body: &[u8], props: BasicProperties) {
    within(
        "publish",
        ch.basic_publish("".into(), q.into(), Default::default(), body, props),
    )
    .await
    .expect("publish");
}

fn delivery_count(props: &BasicProperties) -> Option<AMQPValue> {
    props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned())
}

async fn nack_requeue(ch: &Channel, tag: u64) {
    within(
        "nack",
        ch.basic_nack(
            tag,
            BasicNackOptions {
                requeue: true,
                multiple: false,
            },
        ),
    )
    .await
    .expect("nack");
}

/// A fanout dead-letter exchange bound to a durable queue: returns (queue, exchange).
async fn dead_letter_target(ch: &Channel) -> (String, String) {
    let (dlq, dlx) = (unique("dlq"), unique("dlx"));
    within(
        "dlx",
        ch.exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange");
    within(
        "dlq",
        ch.queue_declare(dlq.as_str().into(), durable(), FieldTable::default()),
    )
    .await
    .expect("dlq");
    within(
        "bind",
        ch.queue_bind(
            dlq.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    (dlq, dlx)
}

#[tokio::test]
async fn declare_rules_follow_rabbitmq_3_10() {
    let (_server, url, http) = start().await;
    let c = lapin_connect(&url).await;
    let with = |durable, auto_delete, exclusive| QueueDeclareOptions {
        durable,
        auto_delete,
        exclusive,
        ..Default::default()
    };
    let int = AMQPValue::LongInt;
    // (queue, options, arguments, RabbitMQ 3.10's refusal with {q} for the queue name)
    let refused: Vec<(&str, QueueDeclareOptions, FieldTable, &str)> = vec![
        ("qq-nd", with(false, false, false), quorum(&[]),
         "invalid property 'non-durable' for queue '{q}' in vhost '/'"),
        ("qq-ad", with(true, true, false), quorum(&[]),
         "invalid property 'auto-delete' for queue '{q}' in vhost '/'"),
        ("qq-ex", with(true, false, true), quorum(&[]),
         "invalid property 'exclusive-owner' for queue '{q}' in vhost '/'"),
        ("qq-pri", durable(), quorum(&[("x-max-priority", int(5))]),
         "invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue"),
        ("qq-lazy", durable(), quorum(&[("x-queue-mode", s("lazy"))]),
         "invalid arg 'x-queue-mode' for queue '{q}' in vhost '/' of queue type rabbit_quorum_queue"),
        ("cq-dl", durable(), args(&[("x-delivery-limit", int(1))]),
         "invalid arg 'x-delivery-limit' for queue '{q}' in vhost '/' of queue type rabbit_classic_queue"),
        ("qq-bogus", durable(), args(&[("x-queue-type", s("bogus"))]),
         "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue type 'bogus'\""),
        // Streams are not built: refused, not turned into a classic queue.
        ("qq-stream", durable(), args(&[("x-queue-type", s("stream"))]),
         "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue type 'stream'\""),
        ("qq-int", durable(), args(&[("x-queue-type", int(5))]),
         "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': {unacceptable_type,signedint}"),
    ];
    for (name, opts, a, why) in refused {
        let q = unique(name);
        let want = format!("PRECONDITION_FAILED - {}", why.replace("{q}", &q));
        assert_eq!(
            try_declare(&c, &q, opts, a).await,
            Some((406, want)),
            "{name}"
        );
    }
    // Accepted as RabbitMQ accepts them: message TTL, single active consumer, an argument no
    // queue type knows; and a quorum queue redeclared the same way.
    let q = unique("qq-ok");
    let a = quorum(&[
        ("x-message-ttl", int(60000)),
        ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ("x-foo", int(1)),
    ]);
    assert_eq!(try_declare(&c, &q, durable(), a.clone()).await, None);
    assert_eq!(try_declare(&c, &q, durable(), a).await, None);
    let (code, _) = try_declare(&c, &q, durable(), FieldTable::default())
        .await
        .expect("redeclare without x-queue-type is refused");
    assert_eq!(code, 406);
    let body = http_json_ok(&http, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(body["type"], "quorum");
}

/// With `x-delivery-limit` 2 a message is delivered three times (x-delivery-count 0, 1, 2 on
/// basic.get), then dead-lettered with reason `delivery_limit`; the dead-lettered copy has
/// the x-death RabbitMQ writes and no x-delivery-count.
#[tokio::test]
async fn delivery_limit_dead_letters_after_the_limit() {
    let (server, url, http) = start().await;
    let c = lapin_connect(&url).await;
    let ch = channel(&c).await;
    let q = unique("qq-dl");
    let (dlq, dlx) = dead_letter_target(&ch).await;
    let a = quorum(&[
        ("x-delivery-limit", AMQPValue::LongInt(2)),
        ("x-dead-letter-exchange", s(&dlx)),
    ]);
    within("qq", ch.queue_declare(q.as_str().into(), durable(), a))
        .await
        .expect("quorum queue");
    let mut h = FieldTable::default();
    h.insert("a".into(), AMQPValue::LongLongInt(1));
    publish(&ch, &q, b"m1", BasicProperties::default().with_headers(h)).await;
    for want in 0..3i64 {
        let m = get(&ch, &q).await.expect("delivery within the limit");
        assert_eq!(m.delivery.redelivered, want > 0);
        assert_eq!(
            delivery_count(&m.delivery.properties),
            Some(AMQPValue::LongLongInt(want)),
            "x-delivery-count on basic.get-ok"
        );
        nack_requeue(&ch, m.delivery.delivery_tag).await;
    }
    assert!(
        get(&ch, &q).await.is_none(),
        "dead-lettered after the third return"
    );

    let mut r = Raw::handshake(server.amqp_addr, 0).await;
    r.send(1, &p::Method::ChannelOpen).await;
    r.method().await.expect("open-ok");
    let (props, body) = within("dead-lettered copy", async {
        loop {
            r.send(
                1,
                &p::Method::BasicGet(p::BasicGet {
                    queue: dlq.as_str().into(),
                    no_ack: true,
                }),
            )
            .await;
            match r.method().await.expect("get reply") {
                (_, p::Method::BasicGetOk(_)) => break,
                (_, p::Method::BasicGetEmpty) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                (_, m) => panic!("unexpected {m:?}"),
            }
        }
        let Some(p::Frame::Header { properties, .. }) = r.frame().await else {
            panic!("content header")
        };
        let Some(p::Frame::Body { payload, .. }) = r.frame().await else {
            panic!("body")
        };
        (properties.decode().expect("properties"), payload)
    })
    .await;
    assert_eq!(&body[..], b"m1");
    let h = props.headers.expect("headers");
    let keys: Vec<String> = h.iter().map(|(k, _)| k.to_string()).collect();
    assert!(
        !keys.iter().any(|k| k == "x-delivery-count"),
        "no x-delivery-count on the dead-lettered copy: {keys:?}"
    );
    assert_eq!(h.get("a"), Some(&p::FieldValue::I64(1)));
    assert_eq!(
        h.get("x-first-death-reason"),
        Some(&p::FieldValue::LongStr("delivery_limit".into()))
    );
    assert_eq!(
        h.get("x-first-death-queue"),
        Some(&p::FieldValue::LongStr(q.as_str().into()))
    );
    let Some(p::FieldValue::Array(deaths)) = h.get("x-death") else {
        panic!("x-death: {h:?}")
    };
    let p::FieldValue::Table(d) = &deaths[0] else {
        panic!("x-death entry")
    };
    let fields: Vec<String> = d.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        fields,
        [
            "count",
            "reason",
            "queue",
            "time",
            "exchange",
            "routing-keys"
        ]
    );
    assert_eq!(d.get("count"), Some(&p::FieldValue::I64(1)));
    assert_eq!(
        d.get("reason"),
        Some(&p::FieldValue::LongStr("delivery_limit".into()))
    );

    // Counted by reason in /metrics and in the queue's totals.
    let text = http_get(&http, "/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("ottermq_messages_dead_lettered_total{reason=\"delivery_limit\"} 1")),
        "dead_lettered_total by reason delivery_limit:\n{}",
        text.lines()
            .filter(|l| l.contains("dead_lettered"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let qm = http_json_ok(&http, &format!("/api/metrics/queues/%2F/{q}")).await;
    assert_eq!(qm["totals"]["delivery_limited"], 1, "{qm}");
    assert_eq!(qm["totals"]["dead_lettered"]["delivery_limit"], 1, "{qm}");
}

/// Consumers see no x-delivery-count on the first delivery, then 1, 2 ... ; a channel closed
/// with the message unacknowledged counts as a return too; without a dead-letter exchange a
/// message past the limit is dropped; a negative limit drops at the first return.
#[tokio::test]
async fn delivery_count_on_consume_channel_close_and_drop() {
    let (_server, url, http) = start().await;
    let c = lapin_connect(&url).await;
    let ch = channel(&c).await;
    let q = unique("qq-cons");
    within(
        "qq",
        ch.queue_declare(
            q.as_str().into(),
            durable(),
            quorum(&[("x-delivery-limit", AMQPValue::LongInt(2))]),
        ),
    )
    .await
    .expect("quorum queue");
    publish(&ch, &q, b"c", BasicProperties::default()).await;
    // Taken on another channel, which closes without acking: a return.
    let other = channel(&c).await;
    let m = get(&other, &q).await.expect("first delivery");
    assert_eq!(
        delivery_count(&m.delivery.properties),
        Some(AMQPValue::LongLongInt(0))
    );
    within("close", other.close(200, "bye".into()))
        .await
        .expect("close");
    within("qos", ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .expect("qos");
    let mut consumer = within(
        "consume",
        ch.basic_consume(
            q.as_str().into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("consume");
    let d = next(&mut consumer).await;
    assert!(d.redelivered);
    assert_eq!(
        delivery_count(&d.properties),
        Some(AMQPValue::LongLongInt(1)),
        "count after the channel close"
    );
    nack_requeue(&ch, d.delivery_tag).await;
    let d = next(&mut consumer).await;
    assert_eq!(
        delivery_count(&d.properties),
        Some(AMQPValue::LongLongInt(2))
    );
    nack_requeue(&ch, d.delivery_tag).await;
    // Third return: past the limit of 2, no dead-letter exchange, so dropped.
    let more = tokio::time::timeout(std::time::Duration::from_millis(300), consumer.next()).await;
    assert!(more.is_err(), "nothing more delivered: {more:?}");
    let qm = http_json_ok(&http, &format!("/api/metrics/queues/%2F/{q}")).await;
    assert_eq!(qm["totals"]["delivery_limited"], 1, "{qm}");
    assert_eq!(qm["totals"]["dead_lettered"]["delivery_limit"], 0, "{qm}");

    // A fresh message on a consumer: its first delivery carries no header.
    publish(&ch, &q, b"d", BasicProperties::default()).await;
    let d = next(&mut consumer).await;
    assert!(!d.redelivered);
    assert_eq!(
        delivery_count(&d.properties),
        None,
        "first consume delivery: no x-delivery-count"
    );
    within(
        "ack",
        ch.basic_ack(d.delivery_tag, BasicAckOptions::default()),
    )
    .await
    .expect("ack");

    let q2 = unique("qq-neg");
    within(
        "qq",
        ch.queue_declare(
            q2.as_str().into(),
            durable(),
            quorum(&[("x-delivery-limit", AMQPValue::LongInt(-1))]),
        ),
    )
    .await
    .expect("quorum queue");
    publish(&ch, &q2, b"n", BasicProperties::default()).await;
    let m = get(&ch, &q2).await.expect("first delivery");
    nack_requeue(&ch, m.delivery.delivery_tag).await;
    assert!(
        get(&ch, &q2).await.is_none(),
        "a negative limit drops at the first return"
    );
}

/// A quorum queue keeps transient (delivery mode 1) messages across a restart too.
#[tokio::test]
async fn quorum_queue_keeps_transient_messages_across_restart() {
    let dir = std::env::temp_dir().join(unique("ottermq-qq-restart"));
    let start =
        |d: std::path::PathBuf| ottermq::testing::start_test_broker_with(move |s| s.data_dir = d);
    let server = start(dir.clone()).await;
    let url = format!("amqp://guest:guest@{}/%2f", server.amqp_addr);
    let c = lapin_connect(&url).await;
    let ch = channel(&c).await;
    within(
        "confirm",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm");
    within(
        "qq",
        ch.queue_declare("qq-keep".into(), durable(), quorum(&[])),
    )
    .await
    .expect("qq");
    within(
        "cq",
        ch.queue_declare("cq-keep".into(), durable(), FieldTable::default()),
    )
    .await
    .expect("cq");
    for q in ["qq-keep", "cq-keep"] {
        let confirm = within(
            "publish",
            ch.basic_publish(
                "".into(),
                q.into(),
                Default::default(),
                b"t",
                BasicProperties::default().with_delivery_mode(1),
            ),
        )
        .await
        .expect("publish");
        within("confirm", confirm).await.expect("confirmed");
    }
    drop(c);
    server.shutdown().await;
    let server = start(dir.clone()).await;
    let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = channel(&c).await;
    let m = get(&ch, "qq-keep")
        .await
        .expect("the transient message on the quorum queue came back");
    assert_eq!(m.delivery.data, b"t");
    assert!(
        get(&ch, "cq-keep").await.is_none(),
        "a classic queue drops transient messages at restart"
    );
    drop(c);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Takes the next message with an ack pending and checks its body and `x-delivery-count`
/// (as basic.get-ok carries it).
async fn expect_next(ch: &Channel, q: &str, body: &[u8], count: i64) -> u64 {
    let m = get(ch, q).await.expect("a message");
    assert_eq!(
        (&m.delivery.data[..], delivery_count(&m.delivery.properties)),
        (body, Some(AMQPValue::LongLongInt(count))),
        "body and x-delivery-count"
    );
    assert_eq!(m.delivery.redelivered, count > 0);
    m.delivery.delivery_tag
}

/// Waits until everything logged so far is on disk: a confirmed persistent publish is
/// synced with every record written before it (group commit keeps the log's order).
async fn sync_log(ch: &Channel) {
    let confirm = within(
        "publish",
        ch.basic_publish(
            "".into(),
            "sync-marker".into(),
            Default::default(),
            b"s",
            BasicProperties::default().with_delivery_mode(2),
        ),
    )
    .await
    .expect("publish");
    within("confirm", confirm).await.expect("confirmed");
}

/// A broker on `dir` and a channel in confirm mode on it.
async fn start_on(dir: &std::path::Path) -> (ottermq::RunningServer, lapin::Connection, Channel) {
    let d = dir.to_path_buf();
    let server = ottermq::testing::start_test_broker_with(move |s| s.data_dir = d).await;
    let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = channel(&c).await;
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    (server, c, ch)
}

/// RabbitMQ's quorum queue keeps delivery counts in its Raft log, and returns a message that
/// was out to a consumer when the node stopped (the dead consumer's `DOWN`, applied after the
/// restart), counting that return. So the count goes on after a restart, after a crash (a copy
/// of the data directory taken while a message is unacknowledged is a `kill -9` image), and
/// `x-delivery-limit` 3 dead-letters at the fourth return, even when that return is the one
/// recovery makes.
#[tokio::test]
async fn delivery_count_survives_restart_and_crash() {
    let base = std::env::temp_dir().join(unique("ottermq-qq-count"));
    let (dir, crash1, crash2) = (base.join("a"), base.join("b"), base.join("c"));
    let (server, _c, ch) = start_on(&dir).await;
    durable_fanout(&ch, "qq-count-dlx").await;
    for q in ["qq-count-dlq", "sync-marker"] {
        within(
            "queue",
            ch.queue_declare(q.into(), durable(), FieldTable::default()),
        )
        .await
        .expect("queue");
    }
    within(
        "bind",
        ch.queue_bind(
            "qq-count-dlq".into(),
            "qq-count-dlx".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    let q = "qq-count";
    let a = quorum(&[
        ("x-delivery-limit", AMQPValue::LongInt(3)),
        ("x-dead-letter-exchange", s("qq-count-dlx")),
    ]);
    within("qq", ch.queue_declare(q.into(), durable(), a))
        .await
        .expect("quorum queue");
    for body in [b"m1", b"m2"] {
        publish(&ch, q, body, BasicProperties::default()).await;
    }
    // m1 returned twice, then out to us; m2 returned once.
    for want in 0..2 {
        nack_requeue(&ch, expect_next(&ch, q, b"m1", want).await).await;
    }
    expect_next(&ch, q, b"m1", 2).await;
    nack_requeue(&ch, expect_next(&ch, q, b"m2", 0).await).await;
    sync_log(&ch).await;
    copy_dir(&dir, &crash1);
    // A clean stop returns m1 through its closing channel: count 3.
    server.shutdown().await;

    let (server, _c, ch) = start_on(&dir).await;
    expect_next(&ch, q, b"m1", 3).await;
    expect_next(&ch, q, b"m2", 1).await;
    server.shutdown().await;

    // The crash image: m1 was out, so recovery returns it (count 3) and logs that return.
    let (server, _c, ch) = start_on(&crash1).await;
    expect_next(&ch, q, b"m1", 3).await;
    nack_requeue(&ch, expect_next(&ch, q, b"m2", 1).await).await;
    sync_log(&ch).await;
    copy_dir(&crash1, &crash2);
    server.shutdown().await;

    // Crashed again with m1 out after three returns: the return recovery makes is its fourth,
    // past the limit, so it is dead-lettered at start; m2 goes on at 2.
    let (server, _c, ch) = start_on(&crash2).await;
    expect_next(&ch, q, b"m2", 2).await;
    assert!(get(&ch, q).await.is_none(), "m1 left the quorum queue");
    let dead = get(&ch, "qq-count-dlq")
        .await
        .expect("m1 dead-lettered at recovery");
    assert_eq!(dead.delivery.data, b"m1");
    let h = dead.delivery.properties.headers().clone().expect("headers");
    assert_eq!(
        h.inner().get("x-first-death-reason"),
        Some(&s("delivery_limit"))
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&base);
}

/// A redeclare must repeat the arguments RabbitMQ knows, compared by value (an integer sent
/// at another width is the same), with 3.10's texts; arguments it does not know may differ.
#[tokio::test]
async fn redeclare_compares_known_arguments_by_value() {
    let (_server, url, _http) = start().await;
    let c = lapin_connect(&url).await;
    let q = unique("eq");
    let first = args(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-foo", AMQPValue::LongInt(1)),
    ]);
    assert_eq!(try_declare(&c, &q, durable(), first).await, None);
    let same = args(&[
        ("x-max-length", AMQPValue::LongLongInt(1)),
        ("x-foo", AMQPValue::LongInt(2)),
    ]);
    assert_eq!(
        try_declare(&c, &q, durable(), same).await,
        None,
        "same value at another width, unknown argument changed"
    );
    let ineq = |why: &str| {
        Some((
            406u16,
            format!("PRECONDITION_FAILED - inequivalent arg {why}").replace("{q}", &q),
        ))
    };
    assert_eq!(
        try_declare(
            &c,
            &q,
            durable(),
            args(&[("x-max-length", AMQPValue::LongInt(2))])
        )
        .await,
        ineq("'x-max-length' for queue '{q}' in vhost '/': received '2' but current is '1'")
    );
    assert_eq!(
        try_declare(&c, &q, durable(), FieldTable::default()).await,
        ineq("'x-max-length' for queue '{q}' in vhost '/': received none but current is the value '1' of type 'signedint'")
    );
    assert_eq!(
        try_declare(&c, &q, durable(), args(&[("x-max-length", AMQPValue::LongInt(1)), ("x-queue-type", s("quorum"))])).await,
        ineq("'x-queue-type' for queue '{q}' in vhost '/': received the value 'quorum' of type 'longstr' but current is none")
    );
}

/// `x-overflow: reject-publish-dlx` is not a quorum queue strategy in 3.10: the declare is
/// accepted (with a warning in its log) and the queue drops from the head instead, so a
/// publish past `x-max-length` is confirmed and the oldest message is dead-lettered with
/// reason `maxlen` (a classic queue would nack the new one, `dead_letter` tests).
#[tokio::test]
async fn reject_publish_dlx_on_a_quorum_queue_drops_the_head() {
    let (server, url, _) = start().await;
    let c = lapin_connect(&url).await;
    let ch = channel(&c).await;
    let q = unique("qq-rpdlx");
    let (dlq, dlx) = dead_letter_target(&ch).await;
    let a = quorum(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", s("reject-publish-dlx")),
        ("x-dead-letter-exchange", s(&dlx)),
    ]);
    within("qq", ch.queue_declare(q.as_str().into(), durable(), a))
        .await
        .expect("accepted, as in 3.10");
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    for body in [b"first".as_slice(), b"second"] {
        let pc = within(
            "publish",
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                Default::default(),
                body,
                BasicProperties::default(),
            ),
        )
        .await
        .expect("publish");
        let confirm = within("confirmation", pc).await.expect("confirmation");
        assert!(confirm.is_ack(), "drop-head confirms every publish");
    }
    let kept = get(&ch, &q).await.expect("the newest stays");
    assert_eq!(kept.delivery.data, b"second");
    let mut dead = None;
    for _ in 0..50 {
        dead = get(&ch, &dlq).await;
        if dead.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dead = dead.expect("the head was dead-lettered");
    assert_eq!(dead.delivery.data, b"first");
    let h = dead.delivery.properties.headers().clone().expect("headers");
    assert_eq!(h.inner().get("x-first-death-reason"), Some(&s("maxlen")));
    server.shutdown().await;
}
