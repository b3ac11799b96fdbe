//! Exchanges, queues and bindings: declare rules and reply codes, the four exchange types,
//! exchange-to-exchange bindings and alternate exchanges.

use crate::common;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};

async fn channel(url: &str) -> (lapin::Connection, Channel) {
    let c = lapin_connect(url).await;
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    (c, ch)
}

async fn temp_queue(ch: &Channel) -> ShortString {
    let opts = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    within(
        "declare",
        ch.queue_declare("".into(), opts, FieldTable::default()),
    )
    .await
    .expect("declare")
    .name()
    .clone()
}

async fn publish(ch: &Channel, ex: &str, rk: &str, body: &[u8], props: BasicProperties) {
    within(
        "publish",
        ch.basic_publish(ex.into(), rk.into(), Default::default(), body, props),
    )
    .await
    .expect("publish");
}

/// Drains a queue with basic.get (auto-ack), returning the bodies as strings.
async fn bodies(ch: &Channel, q: &ShortString) -> Vec<String> {
    let mut out = Vec::new();
    // Publishing is asynchronous; a round trip on the channel orders us after it.
    let _ = within(
        "sync",
        ch.queue_declare(
            q.clone(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    loop {
        let opts = BasicGetOptions { no_ack: true };
        match within("get", ch.basic_get(q.clone(), opts))
            .await
            .expect("get")
        {
            Some(m) => out.push(String::from_utf8_lossy(&m.delivery.data).into_owned()),
            None => return out,
        }
    }
}

fn ex_opts(auto_delete: bool) -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        auto_delete,
        ..Default::default()
    }
}

#[tokio::test]
async fn exchange_declare_rules() {
    let b = broker().await;
    let (c, ch) = channel(&b.url).await;
    let name = unique("ex");
    within(
        "declare",
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            ex_opts(false),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    // Equivalent redeclare is fine; passive finds it.
    within(
        "redeclare",
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            ex_opts(false),
            FieldTable::default(),
        ),
    )
    .await
    .expect("redeclare");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        "passive",
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        ),
    )
    .await
    .expect("passive");
    // Different type: 406.
    let r = within(
        "redeclare fanout",
        ch.exchange_declare(
            name.as_str().into(),
            ExchangeKind::Fanout,
            ex_opts(false),
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 406);

    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    let r = within(
        "passive missing",
        ch.exchange_declare(
            unique("missing").as_str().into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 404);
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    let r = within(
        "amq. prefix",
        ch.exchange_declare(
            unique("amq.mine").as_str().into(),
            ExchangeKind::Direct,
            ex_opts(false),
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 403);
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    let r = within(
        "bad type",
        ch.exchange_declare(
            unique("x").as_str().into(),
            ExchangeKind::Custom("nonsense".into()),
            ex_opts(false),
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 503);
    // A 503 is a connection error: the connection is gone.
    assert!(!c.status().connected());

    let (_c, ch) = channel(&b.url).await;
    for predefined in [
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "amq.match",
    ] {
        let kind = match predefined {
            "amq.direct" => ExchangeKind::Direct,
            "amq.fanout" => ExchangeKind::Fanout,
            "amq.topic" => ExchangeKind::Topic,
            _ => ExchangeKind::Headers,
        };
        within(
            "predefined",
            ch.exchange_declare(predefined.into(), kind, passive, FieldTable::default()),
        )
        .await
        .expect(predefined);
    }
    within(
        "delete",
        ch.exchange_delete(name.as_str().into(), Default::default()),
    )
    .await
    .expect("delete");
    b.stop().await;
}

#[tokio::test]
async fn exchange_delete_if_unused_and_internal_publish() {
    let b = broker().await;
    let (c, ch) = channel(&b.url).await;
    let ex = unique("ex");
    within(
        "declare",
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Fanout,
            ex_opts(false),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let q = temp_queue(&ch).await;
    within(
        "bind",
        ch.queue_bind(
            q.clone(),
            ex.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    let r = within(
        "delete if unused",
        ch.exchange_delete(
            ex.as_str().into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        ),
    )
    .await;
    assert_code(r, 406);

    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    within(
        "delete",
        ch.exchange_delete(ex.as_str().into(), Default::default()),
    )
    .await
    .expect("delete");
    // Deleting again (it is gone) still succeeds, as in RabbitMQ.
    within(
        "delete again",
        ch.exchange_delete(ex.as_str().into(), Default::default()),
    )
    .await
    .expect("delete again");

    let internal = unique("internal");
    let opts = ExchangeDeclareOptions {
        internal: true,
        auto_delete: true,
        ..Default::default()
    };
    within(
        "declare internal",
        ch.exchange_declare(
            internal.as_str().into(),
            ExchangeKind::Fanout,
            opts,
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    // Publishing to it closes the channel with 403 naming basic.publish. Checked over a raw
    // socket: with lapin the channel.close can beat the next call, which then reports
    // InvalidChannelState instead of the code.
    let mut r = Raw::handshake(b.addr, 0).await;
    r.send(1, &ottermq_protocol::Method::ChannelOpen).await;
    assert!(matches!(
        r.method().await,
        Some((1, ottermq_protocol::Method::ChannelOpenOk))
    ));
    r.publish(1, &internal, "", b"x").await;
    assert_eq!(r.expect_channel_close(1).await, (403, 60, 40));
    b.stop().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let b = broker().await;
    let (_c, ch) = channel(&b.url).await;
    let ex = unique("ad");
    within(
        "declare",
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Direct,
            ex_opts(true),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let q = temp_queue(&ch).await;
    within(
        "bind",
        ch.queue_bind(
            q.clone(),
            ex.as_str().into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    within(
        "unbind",
        ch.queue_unbind(
            q.clone(),
            ex.as_str().into(),
            "k".into(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("unbind");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let r = within(
        "passive",
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 404);
    b.stop().await;
}

#[tokio::test]
async fn topic_routing_follows_rabbitmq_rules() {
    let b = broker().await;
    let (_c, ch) = channel(&b.url).await;
    let ex = unique("topic");
    within(
        "declare",
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Topic,
            ex_opts(true),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let patterns = ["a.*.c", "a.#", "#", "*", "a.#.c", "#.c", "", "a..c", "*.*"];
    let mut queues = Vec::new();
    for p in patterns {
        let q = temp_queue(&ch).await;
        within(
            "bind",
            ch.queue_bind(
                q.clone(),
                ex.as_str().into(),
                p.into(),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("bind");
        queues.push(q);
    }
    for key in ["a.b.c", "", "a", "a.c", "a..c", "x.y.c"] {
        publish(&ch, &ex, key, key.as_bytes(), Default::default()).await;
    }
    let expect: [&[&str]; 9] = [
        &["a.b.c", "a..c"],                          // a.*.c
        &["a.b.c", "a", "a.c", "a..c"],              // a.#
        &["a.b.c", "", "a", "a.c", "a..c", "x.y.c"], // #
        &["a"],                                      // *
        &["a.b.c", "a.c", "a..c"],                   // a.#.c
        &["a.b.c", "a.c", "a..c", "x.y.c"],          // #.c
        &[""],                                       // ""
        &["a..c"],                                   // a..c
        &["a.c"],                                    // *.*
    ];
    for (i, q) in queues.iter().enumerate() {
        assert_eq!(bodies(&ch, q).await, expect[i], "pattern {:?}", patterns[i]);
    }
    b.stop().await;
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

#[tokio::test]
async fn headers_exchange_all_any_and_with_x() {
    let b = broker().await;
    let (_c, ch) = channel(&b.url).await;
    let ex = unique("hdr");
    within(
        "declare",
        ch.exchange_declare(
            ex.as_str().into(),
            ExchangeKind::Headers,
            ex_opts(true),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let bindings = [
        table(&[("x-match", s("all")), ("a", s("1")), ("b", s("2"))]),
        table(&[("x-match", s("any")), ("a", s("1")), ("b", s("9"))]),
        table(&[("x-match", s("all")), ("x-k", s("v"))]),
        table(&[("x-match", s("all-with-x")), ("x-k", s("v"))]),
        table(&[("x-match", s("any-with-x")), ("x-k", s("v")), ("z", s("0"))]),
        table(&[("c", AMQPValue::Void)]),
    ];
    let mut queues = Vec::new();
    for args in bindings {
        let q = temp_queue(&ch).await;
        within(
            "bind",
            ch.queue_bind(
                q.clone(),
                ex.as_str().into(),
                "".into(),
                Default::default(),
                args,
            ),
        )
        .await
        .expect("bind");
        queues.push(q);
    }
    let msgs = [
        ("m1", table(&[("a", s("1")), ("b", s("2"))])),
        ("m2", table(&[("a", s("1"))])),
        ("m3", table(&[("x-k", s("v"))])),
        ("m4", table(&[("c", AMQPValue::LongInt(5))])),
    ];
    for (body, headers) in msgs {
        publish(
            &ch,
            &ex,
            "",
            body.as_bytes(),
            BasicProperties::default().with_headers(headers),
        )
        .await;
    }
    let expect: [&[&str]; 6] = [
        &["m1"],
        &["m1", "m2"],
        &["m1", "m2", "m3", "m4"], // plain `all` ignores x- keys: no keys left, matches all
        &["m3"],
        &["m3"],
        &["m4"],
    ];
    for (i, q) in queues.iter().enumerate() {
        assert_eq!(bodies(&ch, q).await, expect[i], "binding {i}");
    }
    b.stop().await;
}

#[tokio::test]
async fn exchange_to_exchange_bindings_and_loops() {
    let b = broker().await;
    let (_c, ch) = channel(&b.url).await;
    let (e1, e2) = (unique("e1"), unique("e2"));
    for e in [&e1, &e2] {
        within(
            "declare",
            ch.exchange_declare(
                e.as_str().into(),
                ExchangeKind::Fanout,
                ex_opts(false),
                FieldTable::default(),
            ),
        )
        .await
        .expect("declare");
    }
    within(
        "e2e",
        ch.exchange_bind(
            e2.as_str().into(),
            e1.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    within(
        "loop",
        ch.exchange_bind(
            e1.as_str().into(),
            e2.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    let q = temp_queue(&ch).await;
    within(
        "bind q",
        ch.queue_bind(
            q.clone(),
            e2.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    within(
        "bind q twice",
        ch.queue_bind(
            q.clone(),
            e1.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    publish(&ch, &e1, "", b"once", Default::default()).await;
    assert_eq!(bodies(&ch, &q).await, vec!["once"]);
    within(
        "unbind e2e",
        ch.exchange_unbind(
            e2.as_str().into(),
            e1.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("unbind");
    for e in [&e1, &e2] {
        within(
            "delete",
            ch.exchange_delete(e.as_str().into(), Default::default()),
        )
        .await
        .expect("delete");
    }
    b.stop().await;
}

#[tokio::test]
async fn alternate_exchange_catches_unroutable() {
    let b = broker().await;
    let (_c, ch) = channel(&b.url).await;
    let (ae, main) = (unique("ae"), unique("main"));
    within(
        "ae",
        ch.exchange_declare(
            ae.as_str().into(),
            ExchangeKind::Fanout,
            ex_opts(false),
            FieldTable::default(),
        ),
    )
    .await
    .expect("ae");
    let args = table(&[("alternate-exchange", s(&ae))]);
    within(
        "main",
        ch.exchange_declare(
            main.as_str().into(),
            ExchangeKind::Direct,
            ex_opts(false),
            args,
        ),
    )
    .await
    .expect("main");
    let (routed, caught) = (temp_queue(&ch).await, temp_queue(&ch).await);
    within(
        "bind",
        ch.queue_bind(
            routed.clone(),
            main.as_str().into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    within(
        "bind ae",
        ch.queue_bind(
            caught.clone(),
            ae.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    publish(&ch, &main, "k", b"routed", Default::default()).await;
    publish(&ch, &main, "other", b"caught", Default::default()).await;
    assert_eq!(bodies(&ch, &routed).await, vec!["routed"]);
    assert_eq!(bodies(&ch, &caught).await, vec!["caught"]);
    for e in [&main, &ae] {
        within(
            "delete",
            ch.exchange_delete(e.as_str().into(), Default::default()),
        )
        .await
        .expect("delete");
    }
    b.stop().await;
}

#[tokio::test]
async fn queue_declare_rules_and_counts() {
    let b = broker().await;
    let (c, ch) = channel(&b.url).await;
    let q = temp_queue(&ch).await;
    assert!(q.as_str().starts_with("amq.gen-"), "{q}");
    for i in 0..3 {
        publish(
            &ch,
            "",
            q.as_str(),
            format!("{i}").as_bytes(),
            Default::default(),
        )
        .await;
    }
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    // RabbitMQ counts asynchronously; poll briefly until the three publishes are in.
    let mut d = within(
        "passive",
        ch.queue_declare(q.clone(), passive, FieldTable::default()),
    )
    .await
    .expect("passive");
    for _ in 0..50 {
        if d.message_count() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        d = within(
            "passive",
            ch.queue_declare(q.clone(), passive, FieldTable::default()),
        )
        .await
        .expect("passive");
    }
    assert_eq!(d.message_count(), 3);
    assert_eq!(d.consumer_count(), 0);

    let r = within(
        "passive missing",
        ch.queue_declare(
            unique("missing").as_str().into(),
            passive,
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 404);
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    let r = within(
        "amq. queue",
        ch.queue_declare(
            unique("amq.q").as_str().into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 403);
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    let name = unique("durable");
    let dur = QueueDeclareOptions {
        durable: true,
        auto_delete: true,
        ..Default::default()
    };
    within(
        "declare",
        ch.queue_declare(name.as_str().into(), dur, FieldTable::default()),
    )
    .await
    .expect("declare");
    let not_dur = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    let r = within(
        "inequivalent",
        ch.queue_declare(name.as_str().into(), not_dur, FieldTable::default()),
    )
    .await;
    assert_code(r, 406);
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    within(
        "delete",
        ch.queue_delete(name.as_str().into(), Default::default()),
    )
    .await
    .expect("delete");
    b.stop().await;
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection_and_goes_with_it() {
    let b = broker().await;
    let (c1, ch1) = channel(&b.url).await;
    let q = temp_queue(&ch1).await;
    let (_c2, ch2) = channel(&b.url).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let r = within(
        "other connection",
        ch2.queue_declare(q.clone(), passive, FieldTable::default()),
    )
    .await;
    assert_code(r, 405);
    within("close", c1.close(200, "bye".into()))
        .await
        .expect("close");
    let (_c3, ch3) = channel(&b.url).await;
    // Give the broker a moment to tear the connection down.
    let mut gone = false;
    for _ in 0..50 {
        let ch = within("channel", _c3.create_channel())
            .await
            .expect("channel");
        if ch
            .queue_declare(q.clone(), passive, FieldTable::default())
            .await
            .is_err()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "exclusive queue outlived its connection");
    drop(ch3);
    b.stop().await;
}

#[tokio::test]
async fn bind_unbind_purge_and_delete_conditions() {
    let b = broker().await;
    let (c, ch) = channel(&b.url).await;
    let q = temp_queue(&ch).await;
    let r = within(
        "bind missing exchange",
        ch.queue_bind(
            q.clone(),
            unique("nope").as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 404);
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    within(
        "bind",
        ch.queue_bind(
            q.clone(),
            "amq.direct".into(),
            "k".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");
    publish(&ch, "amq.direct", "k", b"1", Default::default()).await;
    publish(&ch, "amq.direct", "k", b"2", Default::default()).await;
    within(
        "unbind",
        ch.queue_unbind(
            q.clone(),
            "amq.direct".into(),
            "k".into(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("unbind");
    publish(&ch, "amq.direct", "k", b"3", Default::default()).await;
    let purged = within("purge", ch.queue_purge(q.clone(), Default::default()))
        .await
        .expect("purge");
    assert_eq!(purged, 2);

    publish(&ch, "", q.as_str(), b"x", Default::default()).await;
    let r = within(
        "delete if empty",
        ch.queue_delete(
            q.clone(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        ),
    )
    .await;
    assert_code(r, 406);
    let ch = within("channel", c.create_channel())
        .await
        .expect("channel");
    let _consumer = within(
        "consume",
        ch.basic_consume(
            q.clone(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("consume");
    let ch2 = within("channel", c.create_channel())
        .await
        .expect("channel");
    let r = within(
        "delete if unused",
        ch2.queue_delete(
            q.clone(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        ),
    )
    .await;
    assert_code(r, 406);
    let ch3 = within("channel", c.create_channel())
        .await
        .expect("channel");
    let n = within("delete", ch3.queue_delete(q.clone(), Default::default()))
        .await
        .expect("delete");
    assert_eq!(n, 0, "the message went to the consumer");
    b.stop().await;
}
