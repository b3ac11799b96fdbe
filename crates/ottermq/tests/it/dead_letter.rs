//! Dead-lettering, message TTL, queue expiry and length limits, as RabbitMQ 3.10 does them:
//! the exact `x-death` history (checked over a raw socket, in wire order and with wire types),
//! `x-first-death-*`, cycle detection, TTL 0, reject-publish nacks, refused arguments, and that
//! nothing dropped or expired comes back after a restart.

use crate::common;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use ottermq_protocol as p;
use std::time::{SystemTime, UNIX_EPOCH};

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

fn int(v: i64) -> AMQPValue {
    AMQPValue::LongLongInt(v)
}

async fn declare(ch: &Channel, q: &str, a: FieldTable) {
    within(
        "declare",
        ch.queue_declare(q.into(), QueueDeclareOptions::default(), a),
    )
    .await
    .expect("queue.declare");
}

async fn declare_durable(ch: &Channel, q: &str, a: FieldTable) {
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    within("declare", ch.queue_declare(q.into(), opts, a))
        .await
        .expect("queue.declare");
}

/// A fanout exchange bound to `queue`, as a dead-letter target.
async fn fanout_to(ch: &Channel, x: &str, queues: &[&str]) {
    within(
        "exchange",
        ch.exchange_declare(
            x.into(),
            ExchangeKind::Fanout,
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    for q in queues {
        within(
            "bind",
            ch.queue_bind(
                (*q).into(),
                x.into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("bind");
    }
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    within(
        "publish",
        ch.basic_publish(exchange.into(), key.into(), Default::default(), body, props),
    )
    .await
    .expect("publish");
}

async fn count(ch: &Channel, q: &str) -> u32 {
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        "passive",
        ch.queue_declare(q.into(), opts, FieldTable::default()),
    )
    .await
    .expect("passive declare")
    .message_count()
}

/// Waits (up to the generous common timeout) until `q` holds `n` ready messages.
async fn wait_count(ch: &Channel, q: &str, n: u32) {
    within("queue reaches count", async {
        loop {
            if count(ch, q).await == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A raw client with channel 1 open: for exact wire order and types, and for channel errors
/// caused by a publish (lapin reports those racily).
async fn raw(addr: std::net::SocketAddr) -> Raw {
    let mut r = Raw::handshake(addr, 0).await;
    r.send(1, &p::Method::ChannelOpen).await;
    let (_, m) = r.method().await.expect("open-ok");
    assert!(matches!(m, p::Method::ChannelOpenOk), "{m:?}");
    r
}

/// basic.get over the raw client: (get-ok, decoded properties, body).
async fn raw_get(r: &mut Raw, q: &str) -> Option<(p::BasicGetOk, p::BasicProperties, Vec<u8>)> {
    r.send(
        1,
        &p::Method::BasicGet(p::BasicGet {
            queue: q.into(),
            no_ack: true,
        }),
    )
    .await;
    let ok = match r.method().await.expect("get reply") {
        (_, p::Method::BasicGetOk(ok)) => ok,
        (_, p::Method::BasicGetEmpty) => return None,
        (_, m) => panic!("unexpected {m:?}"),
    };
    let Some(p::Frame::Header {
        body_size,
        properties,
        ..
    }) = r.frame().await
    else {
        panic!("expected a content header")
    };
    let mut body = Vec::new();
    while (body.len() as u64) < body_size {
        match r.frame().await {
            Some(p::Frame::Body { payload, .. }) => body.extend_from_slice(&payload),
            f => panic!("expected a body frame, got {f:?}"),
        }
    }
    Some((ok, properties.decode().expect("properties"), body))
}

fn lstr(v: &str) -> p::FieldValue {
    p::FieldValue::LongStr(v.into())
}

/// Checks one `x-death` entry field by field, in order, with wire types; `time` within a
/// window around the test's own clock.
fn assert_death(v: &p::FieldValue, expect: &[(&str, p::FieldValue)], time_from: u64, time_to: u64) {
    let p::FieldValue::Table(t) = v else {
        panic!("x-death entry is not a table: {v:?}")
    };
    let keys: Vec<String> = t.iter().map(|(k, _)| k.to_string()).collect();
    let want: Vec<&str> = expect.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, want, "x-death entry fields (in order)");
    for (k, want) in expect {
        let got = t.get(k).unwrap();
        if *k == "time" {
            let p::FieldValue::Timestamp(secs) = got else {
                panic!("time is not a timestamp: {got:?}")
            };
            assert!(
                (time_from..=time_to).contains(secs),
                "time {secs} not in {time_from}..={time_to}"
            );
        } else {
            assert_eq!(got, want, "x-death field {k}");
        }
    }
}

const ANY_TIME: p::FieldValue = p::FieldValue::Void;

#[tokio::test]
async fn rejected_message_gets_exact_x_death_and_first_death_headers() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, dlq, dlx) = (unique("src"), unique("dlq"), unique("dlx"));
    declare(&ch, &dlq, FieldTable::default()).await;
    fanout_to(&ch, &dlx, &[&dlq]).await;
    declare(&ch, &q, args(&[("x-dead-letter-exchange", s(&dlx))])).await;
    let mut h = FieldTable::default();
    h.insert("app".into(), s("kept"));
    h.insert("CC".into(), AMQPValue::FieldArray(vec![s("cc-key")].into()));
    let props = BasicProperties::default()
        .with_expiration("60000".into())
        .with_message_id("m1".into())
        .with_headers(h);
    let t0 = now_secs();
    publish(&ch, "", &q, b"body", props).await;
    let m = get(&ch, &q).await.expect("message");
    within(
        "reject",
        ch.basic_reject(
            m.delivery.delivery_tag,
            BasicRejectOptions { requeue: false },
        ),
    )
    .await
    .expect("reject");
    wait_count(&ch, &dlq, 1).await;
    assert_eq!(count(&ch, &q).await, 0);

    let mut r = raw(b.addr).await;
    let (ok, props, body) = raw_get(&mut r, &dlq).await.expect("dead-lettered message");
    let t1 = now_secs();
    assert_eq!(body, b"body");
    assert_eq!(ok.exchange.to_string(), dlx, "delivered from the DLX");
    assert_eq!(ok.routing_key.to_string(), q, "original routing key kept");
    assert_eq!(props.expiration, None, "expiration removed");
    assert_eq!(
        props.message_id.as_ref().map(|m| m.to_string()),
        Some("m1".into())
    );
    let h = props.headers.expect("headers");
    let keys: Vec<String> = h.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(
        keys,
        [
            "CC",
            "app",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason"
        ],
        "headers sorted by key, as RabbitMQ 3.10 sends them"
    );
    assert_eq!(h.get("app"), Some(&lstr("kept")));
    assert_eq!(h.get("x-first-death-reason"), Some(&lstr("rejected")));
    assert_eq!(h.get("x-first-death-queue"), Some(&lstr(&q)));
    assert_eq!(h.get("x-first-death-exchange"), Some(&lstr("")));
    let Some(p::FieldValue::Array(deaths)) = h.get("x-death") else {
        panic!("x-death missing or not an array: {h:?}")
    };
    assert_eq!(deaths.len(), 1);
    assert_death(
        &deaths[0],
        &[
            ("count", p::FieldValue::I64(1)),
            ("reason", lstr("rejected")),
            ("queue", lstr(&q)),
            ("time", ANY_TIME),
            ("exchange", lstr("")),
            (
                "routing-keys",
                p::FieldValue::Array(vec![lstr(&q), lstr("cc-key")]),
            ),
            ("original-expiration", lstr("60000")),
        ],
        t0,
        t1,
    );
    b.stop().await;
}

#[tokio::test]
async fn repeated_deaths_update_the_entry_in_place_and_move_it_first() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q1, q2) = (unique("ping"), unique("pong"));
    // q1 dead-letters to q2 and q2 back to q1, through the default exchange.
    declare(
        &ch,
        &q1,
        args(&[
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s(&q2)),
        ]),
    )
    .await;
    declare(
        &ch,
        &q2,
        args(&[
            ("x-dead-letter-exchange", s("")),
            ("x-dead-letter-routing-key", s(&q1)),
        ]),
    )
    .await;
    let t0 = now_secs();
    publish(&ch, "", &q1, b"x", BasicProperties::default()).await;
    // Rejected three times: q1, q2, q1. A rejection cycle is not dropped.
    for from in [&q1, &q2, &q1] {
        let m = within("get", async {
            loop {
                if let Some(m) = get(&ch, from).await {
                    return m;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        within(
            "reject",
            ch.basic_reject(
                m.delivery.delivery_tag,
                BasicRejectOptions { requeue: false },
            ),
        )
        .await
        .expect("reject");
    }
    wait_count(&ch, &q2, 1).await;
    let mut r = raw(b.addr).await;
    let (ok, props, _) = raw_get(&mut r, &q2).await.expect("message");
    let t1 = now_secs();
    assert_eq!(ok.routing_key.to_string(), q2, "x-dead-letter-routing-key");
    let h = props.headers.expect("headers");
    assert_eq!(h.get("x-first-death-queue"), Some(&lstr(&q1)));
    assert_eq!(h.get("x-first-death-reason"), Some(&lstr("rejected")));
    let Some(p::FieldValue::Array(deaths)) = h.get("x-death") else {
        panic!("x-death: {h:?}")
    };
    assert_eq!(deaths.len(), 2, "{deaths:?}");
    // The q1 entry, updated: count 2, moved to the front, keys sorted as RabbitMQ writes it.
    assert_death(
        &deaths[0],
        &[
            ("count", p::FieldValue::I64(2)),
            ("exchange", lstr("")),
            ("queue", lstr(&q1)),
            ("reason", lstr("rejected")),
            ("routing-keys", p::FieldValue::Array(vec![lstr(&q1)])),
            ("time", ANY_TIME),
        ],
        t0,
        t1,
    );
    // The q2 entry, written when the message already had a history: sorted too.
    assert_death(
        &deaths[1],
        &[
            ("count", p::FieldValue::I64(1)),
            ("exchange", lstr("")),
            ("queue", lstr(&q2)),
            ("reason", lstr("rejected")),
            ("routing-keys", p::FieldValue::Array(vec![lstr(&q2)])),
            ("time", ANY_TIME),
        ],
        t0,
        t1,
    );
    b.stop().await;
}

#[tokio::test]
async fn queue_ttl_expires_idle_queue_into_dlx() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, dlq, dlx) = (unique("ttl"), unique("dlq"), unique("dlx"));
    declare(&ch, &dlq, FieldTable::default()).await;
    fanout_to(&ch, &dlx, &[&dlq]).await;
    declare(
        &ch,
        &q,
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(50)),
            ("x-dead-letter-exchange", s(&dlx)),
        ]),
    )
    .await;
    for i in 0..3u8 {
        publish(&ch, "", &q, &[b'0' + i], BasicProperties::default()).await;
    }
    // Nobody consumes or reads q: the expiry timer must expire it.
    wait_count(&ch, &dlq, 3).await;
    assert_eq!(count(&ch, &q).await, 0);
    let mut r = raw(b.addr).await;
    for i in 0..3u8 {
        let (_, props, body) = raw_get(&mut r, &dlq).await.expect("expired message");
        assert_eq!(body, vec![b'0' + i], "order kept");
        let h = props.headers.expect("headers");
        assert_eq!(h.get("x-first-death-reason"), Some(&lstr("expired")));
        let Some(p::FieldValue::Array(d)) = h.get("x-death") else {
            panic!()
        };
        let p::FieldValue::Table(t) = &d[0] else {
            panic!()
        };
        assert_eq!(t.get("reason"), Some(&lstr("expired")));
        assert_eq!(
            t.get("original-expiration"),
            None,
            "queue TTL is not per-message"
        );
    }
    b.stop().await;
}

/// The expiry timer is armed for the head's deadline: a message with `expiration` 200 that
/// nobody reads is dead-lettered at about 200 ms, not at the next tick of a sweep. The upper
/// bound is generous (a loaded 2-core machine); the lower one is exact.
#[tokio::test]
async fn expiration_dead_letters_at_the_deadline() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, dlq, dlx) = (unique("deadline"), unique("dlq"), unique("dlx"));
    declare(&ch, &dlq, FieldTable::default()).await;
    fanout_to(&ch, &dlx, &[&dlq]).await;
    declare(&ch, &q, args(&[("x-dead-letter-exchange", s(&dlx))])).await;
    let mut dead = consume_no_ack(&ch, &dlq, "dl").await;
    let sent = std::time::Instant::now();
    let props = BasicProperties::default().with_expiration("200".into());
    publish(&ch, "", &q, b"late", props).await;
    let d = within("dead-lettered", dead.next())
        .await
        .expect("delivery")
        .expect("ok");
    let took = sent.elapsed();
    assert_eq!(d.data, b"late");
    assert!(
        took >= std::time::Duration::from_millis(200),
        "early: {took:?}"
    );
    assert!(
        took < std::time::Duration::from_millis(600),
        "late: {took:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn per_message_expiration_and_ttl_zero() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, dlq, dlx) = (unique("msgttl"), unique("dlq"), unique("dlx"));
    declare(&ch, &dlq, FieldTable::default()).await;
    fanout_to(&ch, &dlx, &[&dlq]).await;
    declare(&ch, &q, args(&[("x-dead-letter-exchange", s(&dlx))])).await;
    publish(
        &ch,
        "",
        &q,
        b"short",
        BasicProperties::default().with_expiration("30".into()),
    )
    .await;
    wait_count(&ch, &dlq, 1).await;
    let mut r = raw(b.addr).await;
    let (_, props, _) = raw_get(&mut r, &dlq).await.expect("expired");
    assert_eq!(props.expiration, None);
    let h = props.headers.expect("headers");
    let Some(p::FieldValue::Array(d)) = h.get("x-death") else {
        panic!()
    };
    let p::FieldValue::Table(t) = &d[0] else {
        panic!()
    };
    assert_eq!(t.get("reason"), Some(&lstr("expired")));
    assert_eq!(t.get("original-expiration"), Some(&lstr("30")));

    // TTL 0: with no consumer it expires at once; with a waiting consumer it is delivered.
    let q0 = unique("ttl0");
    declare(
        &ch,
        &q0,
        args(&[
            ("x-message-ttl", AMQPValue::LongInt(0)),
            ("x-dead-letter-exchange", s(&dlx)),
        ]),
    )
    .await;
    publish(&ch, "", &q0, b"nobody", BasicProperties::default()).await;
    wait_count(&ch, &dlq, 1).await;
    assert_eq!(count(&ch, &q0).await, 0);
    let mut cons = consume_no_ack(&ch, &q0, "").await;
    publish(&ch, "", &q0, b"waiting", BasicProperties::default()).await;
    let d = within("delivery", cons.next())
        .await
        .expect("stream")
        .expect("delivery");
    assert_eq!(d.data, b"waiting");
    assert_eq!(
        count(&ch, &dlq).await,
        1,
        "the delivered one was not dead-lettered"
    );
    b.stop().await;
}

#[tokio::test]
async fn automatic_cycle_is_dropped_but_other_targets_get_it() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, witness, x) = (unique("cyc"), unique("witness"), unique("cycx"));
    declare(&ch, &witness, FieldTable::default()).await;
    declare(&ch, &q, args(&[("x-dead-letter-exchange", s(&x))])).await;
    // The DLX routes back to q (a cycle with only `expired` in it) and to the witness.
    fanout_to(&ch, &x, &[&q, &witness]).await;
    // A per-message TTL: the dead-lettered copy has none, so a copy let back into q would
    // stay there for good.
    let props = BasicProperties::default().with_expiration("20".into());
    publish(&ch, "", &q, b"c", props).await;
    wait_count(&ch, &witness, 1).await;
    // The copy for q was dropped in the same step the witness got its copy.
    assert_eq!(count(&ch, &q).await, 0);
    b.stop().await;
}

#[tokio::test]
async fn max_length_drop_head_dead_letters_maxlen() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, qb, dlq, dlx) = (
        unique("maxlen"),
        unique("maxbytes"),
        unique("dlq"),
        unique("dlx"),
    );
    declare(&ch, &dlq, FieldTable::default()).await;
    fanout_to(&ch, &dlx, &[&dlq]).await;
    declare(
        &ch,
        &q,
        args(&[
            ("x-max-length", AMQPValue::LongInt(2)),
            ("x-dead-letter-exchange", s(&dlx)),
        ]),
    )
    .await;
    for body in [b"1", b"2", b"3"] {
        publish(&ch, "", &q, body, BasicProperties::default()).await;
    }
    wait_count(&ch, &dlq, 1).await;
    assert_eq!(count(&ch, &q).await, 2);
    assert_eq!(get(&ch, &q).await.expect("2").delivery.data, b"2");
    let m = get(&ch, &dlq).await.expect("dropped head");
    assert_eq!(m.delivery.data, b"1");
    let h = m.delivery.properties.headers().clone().expect("headers");
    assert_eq!(h.inner().get("x-first-death-reason"), Some(&s("maxlen")));
    // Bytes: 10 bytes allowed, three 4-byte bodies keep the last two; no DLX: just dropped.
    declare(&ch, &qb, args(&[("x-max-length-bytes", int(10))])).await;
    for body in [b"aaaa", b"bbbb", b"cccc"] {
        publish(&ch, "", &qb, body, BasicProperties::default()).await;
    }
    wait_count(&ch, &qb, 2).await;
    assert_eq!(get(&ch, &qb).await.expect("b").delivery.data, b"bbbb");
    b.stop().await;
}

#[tokio::test]
async fn reject_publish_nacks_confirms_and_reject_publish_dlx_dead_letters() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (q, qd, dlq, dlx) = (unique("rp"), unique("rpdlx"), unique("dlq"), unique("dlx"));
    declare(&ch, &dlq, FieldTable::default()).await;
    fanout_to(&ch, &dlx, &[&dlq]).await;
    declare(
        &ch,
        &q,
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", s("reject-publish")),
        ]),
    )
    .await;
    declare(
        &ch,
        &qd,
        args(&[
            ("x-max-length", AMQPValue::LongInt(1)),
            ("x-overflow", s("reject-publish-dlx")),
            ("x-dead-letter-exchange", s(&dlx)),
        ]),
    )
    .await;
    // Without confirms the refused message is just lost; the channel stays open.
    publish(&ch, "", &q, b"kept", BasicProperties::default()).await;
    publish(&ch, "", &q, b"lost", BasicProperties::default()).await;
    wait_count(&ch, &q, 1).await;

    let cc = channel(&c).await;
    within("confirm", cc.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let confirm = |queue: String, body: &'static [u8]| {
        let cc = cc.clone();
        async move {
            let pc = within(
                "publish",
                cc.basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    Default::default(),
                    body,
                    BasicProperties::default(),
                ),
            )
            .await
            .expect("publish");
            within("confirmation", pc).await.expect("confirmation")
        }
    };
    assert!(
        confirm(q.clone(), b"again").await.is_nack(),
        "full queue: nack"
    );
    assert!(confirm(qd.clone(), b"first").await.is_ack());
    assert!(confirm(qd.clone(), b"second").await.is_nack());
    assert!(
        confirm(dlq.clone(), b"plain").await.is_ack(),
        "acks go on after a nack"
    );
    assert_eq!(count(&ch, &q).await, 1);
    assert_eq!(get(&ch, &q).await.expect("kept").delivery.data, b"kept");
    assert_eq!(count(&ch, &qd).await, 1);
    wait_count(&ch, &dlq, 2).await;
    let m = get(&ch, &dlq).await.expect("refused, dead-lettered");
    assert_eq!(m.delivery.data, b"second");
    let h = m.delivery.properties.headers().clone().expect("headers");
    assert_eq!(h.inner().get("x-first-death-reason"), Some(&s("maxlen")));
    b.stop().await;
}

#[tokio::test]
async fn bad_arguments_and_expirations_are_refused_with_406() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    for a in [
        args(&[("x-message-ttl", AMQPValue::LongInt(-1))]),
        args(&[("x-message-ttl", s("100"))]),
        args(&[("x-message-ttl", int(315_360_000_001))]),
        args(&[("x-expires", AMQPValue::LongInt(0))]),
        args(&[("x-max-length", AMQPValue::LongInt(-5))]),
        args(&[("x-max-length-bytes", s("big"))]),
        args(&[("x-overflow", s("drop-tail"))]),
        args(&[("x-dead-letter-exchange", AMQPValue::LongInt(1))]),
        args(&[("x-dead-letter-routing-key", s("rk"))]),
    ] {
        let ch = channel(&c).await;
        let r = within(
            "declare",
            ch.queue_declare(unique("bad").as_str().into(), Default::default(), a.clone()),
        )
        .await;
        assert_code(r, 406);
    }
    // A bad per-message expiration closes the publishing channel: 406 on basic.publish.
    for bad in ["abc", "-1", "10ms", ""] {
        let mut r = raw(b.addr).await;
        let mut f = bytes::BytesMut::new();
        p::encode_method(
            &mut f,
            1,
            &p::Method::BasicPublish(p::BasicPublish {
                exchange: "".into(),
                routing_key: "nowhere".into(),
                mandatory: false,
                immediate: false,
            }),
        );
        let props = p::BasicProperties {
            expiration: Some(bad.into()),
            ..Default::default()
        };
        p::encode_content(
            &mut f,
            1,
            &props.to_raw(),
            &bytes::Bytes::from_static(b"x"),
            131_072,
        );
        r.send_bytes(&f).await;
        assert_eq!(
            r.expect_channel_close(1).await,
            (406, 60, 40),
            "expiration {bad:?}"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn x_expires_deletes_only_unused_queues() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let (used, unused) = (unique("used"), unique("unused"));
    let a = args(&[("x-expires", AMQPValue::LongInt(100))]);
    // Declared first, with a consumer: must outlive the unused one.
    declare(&ch, &used, a.clone()).await;
    let _cons = within(
        "consume",
        ch.basic_consume(
            used.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("consume");
    declare(&ch, &unused, a).await;
    within("unused queue deleted", async {
        loop {
            // Probed with queue.bind: a (passive) declare would renew the lease, as in
            // RabbitMQ.
            let probe = channel(&c).await;
            let r = probe
                .queue_bind(
                    unused.as_str().into(),
                    "amq.direct".into(),
                    "probe".into(),
                    Default::default(),
                    FieldTable::default(),
                )
                .await;
            match r {
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                Err(e) => {
                    assert_eq!(reply_code(&e), Some(404), "{e:?}");
                    return;
                }
            }
        }
    })
    .await;
    // Still there: it has a consumer.
    count(&ch, &used).await;
    b.stop().await;
}

#[tokio::test]
async fn restart_does_not_resurrect_expired_dropped_or_dead_lettered_messages() {
    let dir = std::env::temp_dir().join(unique("dlx-durable"));
    let _ = std::fs::remove_dir_all(&dir);
    let start = |d: std::path::PathBuf| async move {
        ottermq::testing::start_test_broker_with(move |s| s.data_dir = d).await
    };
    let (ttlq, lenq, rejq, dlq, dlx) = ("ttl-q", "len-q", "rej-q", "dl-q", "dl-x");
    let persistent = || BasicProperties::default().with_delivery_mode(2);
    {
        let server = start(dir.clone()).await;
        let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
        let ch = channel(&c).await;
        declare_durable(&ch, dlq, FieldTable::default()).await;
        durable_fanout(&ch, dlx).await;
        within(
            "bind",
            ch.queue_bind(
                dlq.into(),
                dlx.into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("bind");
        let dl = ("x-dead-letter-exchange", s(dlx));
        declare_durable(
            &ch,
            ttlq,
            args(&[("x-message-ttl", AMQPValue::LongInt(30)), dl.clone()]),
        )
        .await;
        declare_durable(&ch, lenq, args(&[("x-max-length", AMQPValue::LongInt(1))])).await;
        declare_durable(&ch, rejq, args(&[dl])).await;
        within("confirm", ch.confirm_select(Default::default()))
            .await
            .expect("confirm");
        for (q, body) in [
            (ttlq, &b"expires"[..]),
            (lenq, b"dropped"),
            (lenq, b"stays"),
            (rejq, b"rejected"),
        ] {
            let pc = within(
                "publish",
                ch.basic_publish("".into(), q.into(), Default::default(), body, persistent()),
            )
            .await
            .expect("publish");
            assert!(within("confirm", pc).await.expect("confirm").is_ack());
        }
        let m = get(&ch, rejq).await.expect("to reject");
        within(
            "reject",
            ch.basic_reject(
                m.delivery.delivery_tag,
                BasicRejectOptions { requeue: false },
            ),
        )
        .await
        .expect("reject");
        wait_count(&ch, dlq, 2).await;
        assert_eq!(count(&ch, ttlq).await, 0);
        assert_eq!(count(&ch, lenq).await, 1);
        assert_eq!(count(&ch, rejq).await, 0);
        drop(c);
        server.shutdown().await;
    }
    let server = start(dir.clone()).await;
    let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = channel(&c).await;
    assert_eq!(count(&ch, ttlq).await, 0, "expired message came back");
    assert_eq!(count(&ch, rejq).await, 0, "rejected message came back");
    assert_eq!(count(&ch, lenq).await, 1, "dropped head came back");
    assert_eq!(get(&ch, lenq).await.expect("stays").delivery.data, b"stays");
    assert_eq!(
        count(&ch, dlq).await,
        2,
        "dead-lettered copies are persistent"
    );
    let mut reasons = Vec::new();
    while let Some(m) = get(&ch, dlq).await {
        let h = m.delivery.properties.headers().clone().expect("headers");
        let Some(AMQPValue::LongString(r)) = h.inner().get("x-first-death-reason").cloned() else {
            panic!("{h:?}")
        };
        reasons.push(r.to_string());
    }
    reasons.sort();
    assert_eq!(reasons, vec!["expired", "rejected"]);
    drop(c);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn http_text(base: &str, path: &str) -> String {
    let r = within(
        path,
        reqwest::Client::new().get(format!("{base}{path}")).send(),
    )
    .await
    .expect("request");
    r.text().await.expect("body")
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == name).then(|| v.parse().ok())?
    })
}

#[tokio::test]
async fn expiry_dead_letter_and_overflow_counters_reach_rest_and_prometheus() {
    let server = ottermq::testing::start_test_broker_with(|s| {
        s.broker.metrics.fine_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let base = format!("http://{}", server.http_addr.expect("http"));
    let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = channel(&c).await;
    let (rej, ttl, full, fulldl, dlq, dlx) =
        ("m-rej", "m-ttl", "m-full", "m-fulldl", "m-dlq", "m-dlx");
    declare(&ch, dlq, FieldTable::default()).await;
    fanout_to(&ch, dlx, &[dlq]).await;
    let dl = ("x-dead-letter-exchange", s(dlx));
    declare(&ch, rej, args(std::slice::from_ref(&dl))).await;
    declare(
        &ch,
        ttl,
        args(&[dl.clone(), ("x-message-ttl", AMQPValue::LongInt(10))]),
    )
    .await;
    declare(&ch, full, args(&[("x-max-length", AMQPValue::LongInt(1))])).await;
    declare(
        &ch,
        fulldl,
        args(&[dl, ("x-max-length", AMQPValue::LongInt(1))]),
    )
    .await;
    for _ in 0..2 {
        publish(&ch, "", rej, b"r", BasicProperties::default()).await;
    }
    for _ in 0..3 {
        publish(&ch, "", ttl, b"t", BasicProperties::default()).await;
        publish(&ch, "", full, b"f", BasicProperties::default()).await;
    }
    for _ in 0..2 {
        publish(&ch, "", fulldl, b"d", BasicProperties::default()).await;
    }
    wait_count(&ch, rej, 2).await;
    for _ in 0..2 {
        let m = get(&ch, rej).await.expect("message");
        within(
            "nack",
            ch.basic_nack(
                m.delivery.delivery_tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: false,
                },
            ),
        )
        .await
        .expect("nack");
    }
    // 2 rejected + 3 expired + 1 maxlen dead-lettered.
    wait_count(&ch, dlq, 6).await;

    let ov = http_json_ok(&base, "/api/metrics/overview").await;
    let t = &ov["totals"];
    assert_eq!(t["expired"], 3, "{t}");
    assert_eq!(t["overflow_dropped"], 3, "{t}");
    assert_eq!(t["dead_lettered"]["rejected"], 2, "{t}");
    assert_eq!(t["dead_lettered"]["expired"], 3, "{t}");
    assert_eq!(t["dead_lettered"]["maxlen"], 1, "{t}");
    let qm = http_json_ok(&base, &format!("/api/metrics/queues/%2f/{rej}")).await;
    assert_eq!(qm["totals"]["dead_lettered"]["rejected"], 2, "{qm}");
    let qm = http_json_ok(&base, &format!("/api/metrics/queues/%2f/{full}")).await;
    assert_eq!(qm["totals"]["overflow_dropped"], 2, "{qm}");
    assert_eq!(
        qm["totals"]["dead_lettered"]["maxlen"], 0,
        "no DLX: dropped only"
    );
    // The sampler gives the queue its series once it has such events.
    within("expired series", async {
        loop {
            let qm = http_json_ok(&base, &format!("/api/metrics/queues/%2f/{ttl}")).await;
            if qm["series"]["expired"].is_array()
                && qm["series"]["dead_lettered_expired"].is_array()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let ts = http_json_ok(&base, "/api/metrics/timeseries/dead_lettered_rejected").await;
    assert_eq!(ts["kind"], "rate");

    let text = http_text(&base, "/metrics").await;
    for (name, v) in [
        ("ottermq_messages_expired_total", 3.0),
        ("ottermq_messages_overflow_dropped_total", 3.0),
        ("ottermq_messages_dead_lettered_total{reason=\"rejected\"}", 2.0),
        ("ottermq_messages_dead_lettered_total{reason=\"expired\"}", 3.0),
        ("ottermq_messages_dead_lettered_total{reason=\"maxlen\"}", 1.0),
        (
            "ottermq_queue_messages_dead_lettered_total{vhost=\"/\",queue=\"m-rej\",reason=\"rejected\"}",
            2.0,
        ),
        ("ottermq_queue_messages_expired_total{vhost=\"/\",queue=\"m-ttl\"}", 3.0),
        (
            "ottermq_queue_messages_overflow_dropped_total{vhost=\"/\",queue=\"m-full\"}",
            2.0,
        ),
        (
            "ottermq_queue_messages_dead_lettered_total{vhost=\"/\",queue=\"m-fulldl\",reason=\"maxlen\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, name), Some(v), "{name}");
    }
    drop(c);
    server.shutdown().await;
}
