//! Durability across a clean restart: durable definitions and persistent messages on durable
//! queues come back (with properties, headers, order and the redelivered flag); transient ones,
//! acked ones and messages of transient queues do not.

use crate::common;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::path::PathBuf;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(tag));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn start(dir: &std::path::Path) -> ottermq::RunningServer {
    let dir = dir.to_path_buf();
    ottermq::testing::start_test_broker_with(move |s| s.data_dir = dir).await
}

async fn open(server: &ottermq::RunningServer) -> (lapin::Connection, Channel) {
    let c = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    (c, ch)
}

fn props(persistent: bool, i: usize) -> BasicProperties {
    let mut h = FieldTable::default();
    h.insert("n".into(), AMQPValue::LongLongInt(i as i64));
    h.insert("tag".into(), AMQPValue::LongString("otter".into()));
    BasicProperties::default()
        .with_delivery_mode(if persistent { 2 } else { 1 })
        .with_content_type("text/plain".into())
        .with_message_id(format!("m{i}").into())
        .with_headers(h)
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str, p: BasicProperties) {
    let confirm = within(
        "publish",
        ch.basic_publish(
            exchange.into(),
            key.into(),
            Default::default(),
            body.as_bytes(),
            p,
        ),
    )
    .await
    .expect("publish");
    assert!(within("confirm", confirm).await.expect("confirm").is_ack());
}

async fn exists_queue(ch_conn: &lapin::Connection, q: &str) -> bool {
    let ch = within("channel", ch_conn.create_channel())
        .await
        .expect("channel");
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        "passive",
        ch.queue_declare(q.into(), opts, FieldTable::default()),
    )
    .await
    .is_ok()
}

async fn exists_exchange(ch_conn: &lapin::Connection, e: &str, kind: ExchangeKind) -> bool {
    let ch = within("channel", ch_conn.create_channel())
        .await
        .expect("channel");
    let opts = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        "passive",
        ch.exchange_declare(e.into(), kind, opts, FieldTable::default()),
    )
    .await
    .is_ok()
}

fn body(m: &lapin::message::BasicGetMessage) -> String {
    String::from_utf8_lossy(&m.delivery.data).into_owned()
}

#[tokio::test]
async fn restart_keeps_exactly_the_durable_state() {
    let dir = temp_dir("ottermq-restart");
    let server = start(&dir).await;
    let (c, ch) = open(&server).await;
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let args = FieldTable::default();
    for (name, opts) in [("dx", durable), ("tx", ExchangeDeclareOptions::default())] {
        within(
            "exchange",
            ch.exchange_declare(name.into(), ExchangeKind::Topic, opts, args.clone()),
        )
        .await
        .expect("exchange.declare");
    }
    let dq_opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut qargs = FieldTable::default();
    qargs.insert("x-note".into(), AMQPValue::LongString("kept".into()));
    within(
        "queue",
        ch.queue_declare("dq".into(), dq_opts, qargs.clone()),
    )
    .await
    .expect("dq");
    within(
        "queue",
        ch.queue_declare("dq-gone".into(), dq_opts, args.clone()),
    )
    .await
    .expect("dq-gone");
    within(
        "queue",
        ch.queue_declare("tq".into(), QueueDeclareOptions::default(), args.clone()),
    )
    .await
    .expect("tq");
    for (ex, q, key) in [("dx", "dq", "k.#"), ("dx", "tq", "k.#"), ("tx", "dq", "t")] {
        within(
            "bind",
            ch.queue_bind(
                q.into(),
                ex.into(),
                key.into(),
                Default::default(),
                args.clone(),
            ),
        )
        .await
        .expect("bind");
    }
    // dq gets p0 t0 p1 t1 .. p4 t4 p5 .. p9 (p = persistent, t = transient).
    for i in 0..10 {
        publish(&ch, "dx", "k.a", &format!("p{i}"), props(true, i)).await;
        if i < 5 {
            publish(&ch, "", "dq", &format!("t{i}"), props(false, i)).await;
        }
    }
    publish(&ch, "", "tq", "lost", props(true, 99)).await;
    publish(&ch, "", "dq-gone", "lost", props(true, 98)).await;
    within(
        "delete",
        ch.queue_delete("dq-gone".into(), Default::default()),
    )
    .await
    .expect("delete");
    // Acked: p0 t0 p1. Delivered, unacked at stop: t1 p2.
    for want in ["p0", "t0", "p1"] {
        let m = get(&ch, "dq").await.expect("a message");
        assert_eq!(body(&m), want);
        within("ack", m.delivery.ack(Default::default()))
            .await
            .expect("ack");
    }
    for want in ["t1", "p2"] {
        let m = get(&ch, "dq").await.expect("a message");
        assert_eq!(body(&m), want);
    }
    drop(ch);
    let _ = c.close(200, "bye".into()).await;
    server.shutdown().await;

    let server = start(&dir).await;
    let (c, ch) = open(&server).await;
    assert!(exists_exchange(&c, "dx", ExchangeKind::Topic).await);
    assert!(!exists_exchange(&c, "tx", ExchangeKind::Topic).await);
    assert!(exists_queue(&c, "dq").await);
    assert!(!exists_queue(&c, "tq").await);
    assert!(!exists_queue(&c, "dq-gone").await);
    // Same arguments: an equivalent declare succeeds, a different one would fail.
    within("redeclare", ch.queue_declare("dq".into(), dq_opts, qargs))
        .await
        .expect("equivalent redeclare");
    let mut got = Vec::new();
    while let Some(m) = get(&ch, "dq").await {
        let p = m.delivery.properties.clone();
        let n = body(&m)[1..].parse::<i64>().expect("number");
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(
            p.message_id().as_ref().map(|s| s.as_str().to_string()),
            Some(format!("m{n}"))
        );
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("text/plain")
        );
        let h = p.headers().clone().expect("headers");
        assert_eq!(
            h.inner().get("n"),
            Some(&AMQPValue::LongLongInt(n)),
            "headers kept"
        );
        got.push((body(&m), m.delivery.redelivered));
        within("ack", m.delivery.ack(Default::default()))
            .await
            .expect("ack");
    }
    let want: Vec<(String, bool)> = (2..10).map(|i| (format!("p{i}"), i == 2)).collect();
    assert_eq!(
        got, want,
        "persistent, unacked messages in order, p2 redelivered"
    );
    // The durable binding dx -> dq came back; nothing was routed to a vanished tq.
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    publish(&ch, "dx", "k.b", "after", props(true, 100)).await;
    let m = get(&ch, "dq")
        .await
        .expect("routed through the restored binding");
    assert_eq!(body(&m), "after");
    within("ack", m.delivery.ack(Default::default()))
        .await
        .expect("ack");
    drop(ch);
    let _ = c.close(200, "bye".into()).await;
    server.shutdown().await;

    // Everything was acked: a third start finds dq empty.
    let server = start(&dir).await;
    let (c, ch) = open(&server).await;
    assert!(get(&ch, "dq").await.is_none(), "acked messages stay gone");
    let _ = c.close(200, "bye".into()).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn segments(data_dir: &std::path::Path) -> Vec<PathBuf> {
    let msgs = ottermq_broker::store::vhost_dir(data_dir, "/").join("msgs");
    let mut v: Vec<PathBuf> = std::fs::read_dir(msgs)
        .expect("msgs dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

async fn ready_count(server: &ottermq::RunningServer, q: &str) -> u32 {
    let (c, ch) = open(server).await;
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let n = within(
        "declare",
        ch.queue_declare(q.into(), opts, FieldTable::default()),
    )
    .await
    .expect("declare")
    .message_count();
    let _ = c.close(200, "bye".into()).await;
    n
}

#[tokio::test]
async fn torn_tail_is_truncated_and_corrupt_record_reported() {
    use ottermq_broker::store::record::{Item, Reader, HEADER};
    use ottermq_broker::store::recovery::{replay, IssueKind};
    let dir = temp_dir("ottermq-damage");
    let server = start(&dir).await;
    let (c, ch) = open(&server).await;
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    within(
        "declare",
        ch.queue_declare("rq".into(), opts, FieldTable::default()),
    )
    .await
    .expect("declare");
    for i in 0..20 {
        publish(&ch, "", "rq", &format!("m{i}"), props(true, i)).await;
    }
    let _ = c.close(200, "bye".into()).await;
    server.shutdown().await;
    let segs = segments(&dir);
    assert_eq!(segs.len(), 1, "one segment: {segs:?}");
    let original = std::fs::read(&segs[0]).expect("read segment");

    // A power cut in the middle of a write: half a record at the end.
    let torn = temp_dir("ottermq-torn");
    copy_dir(&dir, &torn);
    let seg = segments(&torn).remove(0);
    let mut data = original.clone();
    data.extend_from_slice(&original[..HEADER + 5]);
    std::fs::write(&seg, &data).expect("write");
    let msgs = seg.parent().expect("parent").to_path_buf();
    let r = replay(&msgs, false).expect("replay");
    assert_eq!(r.messages.len(), 20);
    assert_eq!(r.issues.len(), 1, "{:?}", r.issues);
    assert_eq!(r.issues[0].kind, IssueKind::TornTail);
    assert_eq!(r.issues[0].offset, original.len() as u64);
    let server = start(&torn).await;
    assert_eq!(ready_count(&server, "rq").await, 20);
    server.shutdown().await;
    let repaired = std::fs::read(&seg).expect("read");
    assert_eq!(&repaired[..original.len()], &original[..], "tail cut back");

    // A flipped bit inside the sixth record: reported with file and offset, the rest loads.
    let bad = temp_dir("ottermq-corrupt");
    copy_dir(&dir, &bad);
    let seg = segments(&bad).remove(0);
    let records: Vec<(u64, usize)> = Reader::new(bytes::Bytes::from(original.clone()))
        .filter_map(|i| match i {
            Item::Record { offset, payload } => Some((offset, payload.len())),
            _ => None,
        })
        .collect();
    let (off, len) = records[5];
    let mut data = original.clone();
    data[off as usize + HEADER + len - 1] ^= 0x40;
    std::fs::write(&seg, &data).expect("write");
    let msgs = seg.parent().expect("parent").to_path_buf();
    let r = replay(&msgs, false).expect("replay");
    assert_eq!(r.messages.len(), 19);
    assert_eq!(r.issues.len(), 1, "{:?}", r.issues);
    assert_eq!(r.issues[0].kind, IssueKind::Corrupt);
    assert_eq!(r.issues[0].offset, off);
    assert_eq!(r.issues[0].file, seg);
    assert!(r.issues[0].to_string().contains(&format!("offset {off}")));
    let server = start(&bad).await;
    assert_eq!(ready_count(&server, "rq").await, 19);
    server.shutdown().await;
    for d in [&dir, &torn, &bad] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn definitions_export_import_and_start_option() {
    let dir = temp_dir("ottermq-defs");
    let server = start(&dir).await;
    let http = format!("http://{}", server.http_addr.expect("http"));
    let client = reqwest::Client::new();
    let doc = serde_json::json!({
        "vhosts": [{"name": "/"}, {"name": "imported"}],
        "exchanges": [{"name": "ix", "vhost": "imported", "type": "fanout", "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "queues": [{"name": "iq", "vhost": "imported", "durable": true, "auto_delete": false,
                    "arguments": {"x-max-priority": 5}}],
        "bindings": [{"source": "ix", "vhost": "imported", "destination": "iq",
                      "destination_type": "queue", "routing_key": "", "arguments": {}}],
    });
    let r = client
        .post(format!("{http}/api/definitions"))
        .basic_auth("guest", Some("guest"))
        .json(&doc)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 204);
    let bad = client
        .post(format!("{http}/api/definitions"))
        .basic_auth("guest", Some("guest"))
        .body("{\"queues\": [{\"vhost\": \"nowhere\", \"name\": \"q\"}]}")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status().as_u16(), 400);
    let body: serde_json::Value = bad.json().await.expect("json error");
    assert!(body["reason"].as_str().unwrap_or("").contains("nowhere"));
    server.shutdown().await;

    // Imported objects are durable: after a restart the export lists them.
    let server = start(&dir).await;
    let http = format!("http://{}", server.http_addr.expect("http"));
    let export: serde_json::Value = client
        .get(format!("{http}/api/definitions"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let names = |k: &str| -> Vec<String> {
        export[k]
            .as_array()
            .expect("array")
            .iter()
            .map(|o| {
                format!(
                    "{}:{}",
                    o["vhost"].as_str().unwrap_or(""),
                    o["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert!(names("exchanges").contains(&"imported:ix".to_string()));
    assert!(names("queues").contains(&"imported:iq".to_string()));
    assert_eq!(export["queues"][0]["arguments"]["x-max-priority"], 5);
    assert_eq!(export["bindings"].as_array().map(|a| a.len()), Some(1));
    server.shutdown().await;

    // The export loads into a fresh broker with --definitions.
    let file = dir.with_extension("defs.json");
    std::fs::write(&file, serde_json::to_vec(&export).expect("encode")).expect("write");
    let fresh = temp_dir("ottermq-defs2");
    let f = file.clone();
    let d = fresh.clone();
    let server = ottermq::testing::start_test_broker_with(move |s| {
        s.data_dir = d;
        s.definitions = Some(f);
    })
    .await;
    let v = server.broker.vhost("imported").expect("vhost imported");
    assert!(v.queue(b"iq").is_some());
    assert!(v.exchange(b"ix").is_some_and(|e| e.has_bindings()));
    server.shutdown().await;
    for d in [&dir, &fresh] {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn settled_segments_are_deleted() {
    let dir = temp_dir("ottermq-reclaim");
    let d = dir.clone();
    let server = ottermq::testing::start_test_broker_with(move |s| {
        s.data_dir = d;
        s.broker.segment_bytes = 16 * 1024;
    })
    .await;
    let (c, ch) = open(&server).await;
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    within(
        "declare",
        ch.queue_declare("reclaim".into(), opts, FieldTable::default()),
    )
    .await
    .expect("declare");
    let body = "x".repeat(1024);
    let mut most = 0;
    // Steady state: publish a batch, consume and ack it, again and again (about 2 MiB in all).
    for round in 0..40 {
        for i in 0..50 {
            publish(&ch, "", "reclaim", &body, props(true, round * 50 + i)).await;
        }
        for _ in 0..50 {
            let m = get(&ch, "reclaim").await.expect("message");
            within("ack", m.delivery.ack(Default::default()))
                .await
                .expect("ack");
        }
        // One more confirmed publish and get: the acks before it are written.
        publish(&ch, "", "reclaim", "tick", props(true, 0)).await;
        let m = get(&ch, "reclaim").await.expect("tick");
        within("ack", m.delivery.ack(Default::default()))
            .await
            .expect("ack");
        most = most.max(segments(&dir).len());
    }
    let left = segments(&dir).len();
    assert!(most <= 8, "segments kept piling up: {most}");
    assert!(left <= 8, "{left} segments left for an empty queue");
    let _ = c.close(200, "bye".into()).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn passive_count(server: &ottermq::RunningServer, q: &str) -> u32 {
    let (c, ch) = open(server).await;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let n = within(
        "declare",
        ch.queue_declare(q.into(), opts, FieldTable::default()),
    )
    .await
    .expect("passive declare")
    .message_count();
    let _ = c.close(200, "bye".into()).await;
    n
}

/// A TTL resumes after a restart: time spent before and during the downtime counts. A message
/// whose deadline passed while the broker was down is expired (and dead-lettered) at recovery,
/// one with time left expires at its original deadline, not a full TTL after the restart.
#[tokio::test]
async fn ttl_resumes_after_restart() {
    let dir = temp_dir("ottermq-ttl-restart");
    let server = start(&dir).await;
    let (c, ch) = open(&server).await;
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut dl = FieldTable::default();
    dl.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    dl.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("dlq".into()),
    );
    let mut partial = dl.clone();
    partial.insert("x-message-ttl".into(), AMQPValue::LongInt(6000));
    for (q, args) in [
        ("dlq", FieldTable::default()),
        ("q_partial", partial),
        ("q_past", dl),
    ] {
        within("queue", ch.queue_declare(q.into(), durable, args))
            .await
            .expect("queue.declare");
    }
    publish(&ch, "", "q_partial", "partial", props(true, 0)).await;
    let short = props(true, 1).with_expiration("3000".into());
    publish(&ch, "", "q_past", "past", short).await;
    let _ = c.close(200, "bye".into()).await;
    // 2.5 s used before the stop, 2 s of downtime: 4.5 s of each TTL are gone.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    server.shutdown().await;
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;

    let server = start(&dir).await;
    let (c, ch) = open(&server).await;
    // The 3 s message expired during the downtime: never delivered, dead-lettered.
    assert!(
        get(&ch, "q_past").await.is_none(),
        "expired message delivered"
    );
    let m = get(&ch, "dlq")
        .await
        .expect("expired message dead-lettered");
    assert_eq!(body(&m), "past");
    // The 6 s message has about 1.5 s left, not 6 s.
    assert_eq!(
        passive_count(&server, "q_partial").await,
        1,
        "expired too early"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(4000);
    let m = loop {
        if let Some(m) = get(&ch, "dlq").await {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "TTL started again at the restart instead of resuming"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(body(&m), "partial");
    assert_eq!(passive_count(&server, "q_partial").await, 0);
    let _ = c.close(200, "bye".into()).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
