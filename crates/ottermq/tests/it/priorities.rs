//! Priority queues (`x-max-priority`, the `priority` property) and consumer priorities
//! (`x-priority`), with RabbitMQ 3.10's semantics: highest priority first, FIFO within a
//! priority, priorities above the maximum treated as the maximum; basic.get, requeue and a
//! restart keep that order; the highest-priority consumer with credit gets the message,
//! round-robin among equals.

use crate::common;
use common::*;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};

async fn declare(ch: &Channel, name: &str, opts: QueueDeclareOptions, a: FieldTable) {
    within("declare", ch.queue_declare(name.into(), opts, a))
        .await
        .expect("declare");
}

/// Publishes with confirms so every message is enqueued when this returns.
async fn publish(ch: &Channel, q: &str, body: &str, priority: Option<u8>, persistent: bool) {
    let mut p = BasicProperties::default();
    if let Some(pr) = priority {
        p = p.with_priority(pr);
    }
    if persistent {
        p = p.with_delivery_mode(2);
    }
    let confirm = within(
        "publish",
        ch.basic_publish("".into(), q.into(), Default::default(), body.as_bytes(), p),
    )
    .await
    .expect("publish");
    assert!(within("confirm", confirm).await.expect("confirm").is_ack());
}

async fn get(ch: &Channel, q: &str, no_ack: bool) -> Option<lapin::message::BasicGetMessage> {
    within("get", ch.basic_get(q.into(), BasicGetOptions { no_ack }))
        .await
        .expect("get")
}

async fn drain_get(ch: &Channel, q: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, q, true).await {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

async fn consume(ch: &Channel, q: &str, tag: &str, no_ack: bool, a: FieldTable) -> Consumer {
    let opts = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    within("consume", ch.basic_consume(q.into(), tag.into(), opts, a))
        .await
        .expect("consume")
}

/// Priorities of the test messages, in publish order; the body is "<name>".
const MESSAGES: [(&str, Option<u8>); 8] = [
    ("none-a", None),
    ("p1", Some(1)),
    ("p5-a", Some(5)),
    ("p10-a", Some(10)),
    ("p200", Some(200)), // above the maximum: treated as 10
    ("p3", Some(3)),
    ("p5-b", Some(5)),
    ("none-b", Some(0)),
];
const EXPECTED: [&str; 8] = [
    "p10-a", "p200", "p5-a", "p5-b", "p3", "p1", "none-a", "none-b",
];

async fn publish_all(ch: &Channel, q: &str, persistent: bool) {
    for (b, p) in MESSAGES {
        publish(ch, q, b, p, persistent).await;
    }
}

#[tokio::test]
async fn priority_queue_orders_get_consume_and_requeue() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    within("confirms", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let q = unique("pq");
    let excl = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    declare(
        &ch,
        &q,
        excl,
        arg("x-max-priority", AMQPValue::ShortShortUInt(10)),
    )
    .await;

    // basic.get: highest first, FIFO within a priority, 200 clamped to 10.
    publish_all(&ch, &q, false).await;
    assert_eq!(drain_get(&ch, &q).await, EXPECTED);

    // Requeued messages go back to their place in their priority.
    publish_all(&ch, &q, false).await;
    let first = get(&ch, &q, false).await.expect("first");
    let second = get(&ch, &q, false).await.expect("second");
    assert_eq!(
        (body(&first.delivery), body(&second.delivery)),
        ("p10-a".into(), "p200".into())
    );
    assert!(!first.delivery.redelivered);
    // Nack the second, then the first: each goes back to where it was.
    within(
        "nack",
        second.delivery.nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        }),
    )
    .await
    .expect("nack");
    within(
        "reject",
        first.delivery.reject(BasicRejectOptions { requeue: true }),
    )
    .await
    .expect("reject");
    let again = get(&ch, &q, true).await.expect("again");
    assert_eq!(body(&again.delivery), "p10-a");
    assert!(again.delivery.redelivered);
    assert_eq!(again.message_count, 7);
    let rest = drain_get(&ch, &q).await;
    assert_eq!(rest, EXPECTED[1..]);

    // A consumer that arrives after the messages gets them in priority order.
    publish_all(&ch, &q, false).await;
    let cch = channel(&c).await;
    let mut cons = consume(&cch, &q, "", true, FieldTable::default()).await;
    let mut got = Vec::new();
    for _ in 0..EXPECTED.len() {
        got.push(body(&next(&mut cons).await));
    }
    assert_eq!(got, EXPECTED);

    // An equivalent redeclare succeeds; another maximum is inequivalent (406).
    declare(
        &ch,
        &q,
        excl,
        arg("x-max-priority", AMQPValue::ShortShortUInt(10)),
    )
    .await;
    let r = within(
        "inequivalent",
        ch.queue_declare(
            q.as_str().into(),
            excl,
            arg("x-max-priority", AMQPValue::ShortShortUInt(9)),
        ),
    )
    .await;
    assert_code(r, 406);
    b.stop().await;
}

#[tokio::test]
async fn zero_and_wide_integer_maximums_are_accepted() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    within("confirms", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let excl = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    // 0 leaves one level (RabbitMQ 3.10: lists:seq(0, 0)): priorities are all clamped to 0,
    // so the order is plain FIFO.
    let q0 = unique("pq0");
    declare(
        &ch,
        &q0,
        excl,
        arg("x-max-priority", AMQPValue::LongLongInt(0)),
    )
    .await;
    publish(&ch, &q0, "low", None, false).await;
    publish(&ch, &q0, "high", Some(7), false).await;
    assert_eq!(drain_get(&ch, &q0).await, ["low", "high"]);
    // 255 (the most RabbitMQ supports), as a 32-bit integer.
    let q255 = unique("pq255");
    declare(
        &ch,
        &q255,
        excl,
        arg("x-max-priority", AMQPValue::LongInt(255)),
    )
    .await;
    publish(&ch, &q255, "254", Some(254), false).await;
    publish(&ch, &q255, "255", Some(255), false).await;
    publish(&ch, &q255, "0", Some(0), false).await;
    assert_eq!(drain_get(&ch, &q255).await, ["255", "254", "0"]);
    b.stop().await;
}

#[tokio::test]
async fn invalid_max_priority_is_refused_with_precondition_failed() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    for bad in [
        AMQPValue::LongInt(256),
        AMQPValue::LongInt(-1),
        AMQPValue::LongString("10".into()),
        AMQPValue::Boolean(true),
    ] {
        let ch = channel(&c).await;
        let r = within(
            "bad x-max-priority",
            ch.queue_declare(
                unique("badpq").as_str().into(),
                Default::default(),
                arg("x-max-priority", bad.clone()),
            ),
        )
        .await;
        assert_code(r, 406);
    }
    // The connection is still usable and nothing was declared.
    let ch = channel(&c).await;
    within(
        "ok declare",
        ch.queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    b.stop().await;
}

#[tokio::test]
async fn durable_priority_queue_restarts_in_priority_order() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // needs to restart the broker it talks to
    }
    let dir = std::env::temp_dir().join(unique("prio-durable"));
    let _ = std::fs::remove_dir_all(&dir);
    let start = |dir: std::path::PathBuf| async move {
        ottermq::testing::start_test_broker_with(move |s| s.data_dir = dir).await
    };
    let q = "durable-pq";
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let server = start(dir.clone()).await;
    {
        let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
        let ch = channel(&c).await;
        within("confirms", ch.confirm_select(Default::default()))
            .await
            .expect("confirm.select");
        declare(
            &ch,
            q,
            durable,
            arg("x-max-priority", AMQPValue::ShortShortUInt(10)),
        )
        .await;
        publish_all(&ch, q, true).await;
        // Take the top one without settling it: it comes back redelivered, still first.
        let m = get(&ch, q, false).await.expect("top");
        assert_eq!(body(&m.delivery), "p10-a");
        let _ = c.close(200, "bye".into()).await;
    }
    server.shutdown().await;

    let server = start(dir.clone()).await;
    let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = channel(&c).await;
    let mut got = Vec::new();
    while let Some(m) = get(&ch, q, true).await {
        got.push((body(&m.delivery), m.delivery.redelivered));
    }
    let want: Vec<(String, bool)> = EXPECTED
        .iter()
        .map(|s| (s.to_string(), *s == "p10-a"))
        .collect();
    assert_eq!(
        got, want,
        "restored in priority order, FIFO within a priority"
    );
    // The queue is still a priority queue after the restart.
    within("confirms", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    publish(&ch, q, "later-low", Some(1), true).await;
    publish(&ch, q, "later-high", Some(9), true).await;
    assert_eq!(drain_get(&ch, q).await, ["later-high", "later-low"]);
    let _ = c.close(200, "bye".into()).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn prio(n: i64) -> FieldTable {
    arg("x-priority", AMQPValue::LongLongInt(n))
}

async fn plain_publish(ch: &Channel, q: &ShortString, body: &str) {
    publish(ch, q.as_str(), body, None, false).await;
}

#[tokio::test]
async fn consumer_priorities_prefer_higher_with_credit_round_robin_among_equals() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let pubch = channel(&c).await;
    within("confirms", pubch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let q: ShortString = unique("cprio").as_str().into();
    declare(
        &pubch,
        q.as_str(),
        Default::default(),
        FieldTable::default(),
    )
    .await;

    // High (10, prefetch 2), two equal mids (5, unlimited), low (0, unlimited) on own channels.
    let hi_ch = channel(&c).await;
    within("qos", hi_ch.basic_qos(2, BasicQosOptions { global: false }))
        .await
        .expect("qos");
    let lo_ch = channel(&c).await;
    let mut lo = consume(&lo_ch, q.as_str(), "lo", false, prio(0)).await;
    let mut hi = consume(&hi_ch, q.as_str(), "hi", false, prio(10)).await;

    // The high consumer takes what its prefetch allows; the rest go to the low one.
    for i in 0..5 {
        plain_publish(&pubch, &q, &format!("m{i}")).await;
    }
    let h: Vec<Delivery> = vec![next(&mut hi).await, next(&mut hi).await];
    assert_eq!(
        h.iter().map(body).collect::<Vec<_>>(),
        ["m0", "m1"],
        "high priority first while it has credit"
    );
    let mut l = Vec::new();
    for _ in 0..3 {
        l.push(body(&next(&mut lo).await));
    }
    assert_eq!(
        l,
        ["m2", "m3", "m4"],
        "low priority only while high is full"
    );

    // One ack frees one credit: the next message goes to the high consumer again.
    within("ack", h[0].ack(Default::default()))
        .await
        .expect("ack");
    // A round trip on the same channel: the ack has been processed when qos-ok comes back.
    within(
        "sync",
        hi_ch.basic_qos(2, BasicQosOptions { global: false }),
    )
    .await
    .expect("qos");
    plain_publish(&pubch, &q, "m5").await;
    assert_eq!(body(&next(&mut hi).await), "m5");

    // Two equal consumers above both: round-robin between them, nothing to the others
    // (each of the six messages is accounted for by the two of them).
    let a_ch = channel(&c).await;
    let b_ch = channel(&c).await;
    let mut ma = consume(&a_ch, q.as_str(), "mid-a", true, prio(50)).await;
    let mut mb = consume(&b_ch, q.as_str(), "mid-b", true, prio(50)).await;
    for i in 0..6 {
        plain_publish(&pubch, &q, &format!("r{i}")).await;
    }
    let mut ga = Vec::new();
    let mut gb = Vec::new();
    for _ in 0..3 {
        ga.push(body(&next(&mut ma).await));
        gb.push(body(&next(&mut mb).await));
    }
    // Which of the two starts depends on the round-robin cursor; they alternate from there.
    let (even, odd) = (["r0", "r2", "r4"], ["r1", "r3", "r5"]);
    assert!(
        (ga == even && gb == odd) || (ga == odd && gb == even),
        "not alternating: {ga:?} / {gb:?}"
    );

    // Cancelling them hands the flow back to the priorities below.
    within(
        "cancel",
        a_ch.basic_cancel("mid-a".into(), Default::default()),
    )
    .await
    .expect("cancel");
    within(
        "cancel",
        b_ch.basic_cancel("mid-b".into(), Default::default()),
    )
    .await
    .expect("cancel");
    plain_publish(&pubch, &q, "after").await;
    assert_eq!(
        body(&next(&mut lo).await),
        "after",
        "high is full again (prefetch 2)"
    );

    // x-priority must be an integer (406 on basic.consume).
    let bad_ch = channel(&c).await;
    let r = within(
        "bad x-priority",
        bad_ch.basic_consume(
            q.clone(),
            "bad".into(),
            Default::default(),
            arg("x-priority", AMQPValue::LongString("high".into())),
        ),
    )
    .await;
    assert_code(r, 406);
    b.stop().await;
}

/// TTL in a priority queue is checked at the head of the highest non-empty level, as
/// RabbitMQ 3.10's `rabbit_priority_queue:dropwhile` walks the levels from the top and stops
/// at the first live head: an expired message in a lower level waits behind a live
/// higher-priority one, and is dead-lettered as soon as it becomes the head.
#[tokio::test]
async fn expiry_is_checked_at_the_head_of_the_highest_level() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, dlq) = (unique("prio-ttl"), unique("prio-ttl-dlq"));
    let opts = QueueDeclareOptions::default();
    declare(&ch, &dlq, opts, FieldTable::default()).await;
    let a = args(&[
        ("x-max-priority", AMQPValue::ShortShortUInt(5)),
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(dlq.as_str().into()),
        ),
    ]);
    declare(&ch, &q, opts, a).await;
    for (body, prio, ttl) in [("live-high", 5, "60000"), ("short-low", 1, "50")] {
        let p = BasicProperties::default()
            .with_priority(prio)
            .with_expiration(ttl.into());
        within(
            "publish",
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                Default::default(),
                body.as_bytes(),
                p,
            ),
        )
        .await
        .expect("publish");
    }
    // Well past the low message's deadline: it is still there, behind the live head.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let n = within(
        "passive",
        ch.queue_declare(q.as_str().into(), passive, FieldTable::default()),
    )
    .await
    .expect("passive")
    .message_count();
    assert_eq!(n, 2);
    let m = get(&ch, &q, true).await.expect("the live head");
    assert_eq!(body(&m.delivery), "live-high");
    // Now the expired one is the head: gone, and dead-lettered.
    assert!(get(&ch, &q, true).await.is_none());
    let dead = within("dead-lettered", async {
        loop {
            if let Some(m) = get(&ch, &dlq, true).await {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(body(&dead.delivery), "short-low");
    b.stop().await;
}
