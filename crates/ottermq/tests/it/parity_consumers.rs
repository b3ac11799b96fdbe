//! RabbitMQ 3.10 parity for consumers: single active consumer (`x-single-active-consumer`),
//! direct reply-to (`amq.rabbitmq.reply-to`), and the exclusive / auto-delete rules (exclusive
//! queues locked to their connection and gone with it, auto-delete queues gone with their last
//! consumer, auto-delete exchanges gone with their last binding).

use crate::common;
use common::*;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Consumer, ExchangeKind};
use ottermq_protocol::Method;

async fn confirmed(c: &lapin::Connection) -> Channel {
    let ch = channel(c).await;
    within("confirms", ch.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    ch
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

async fn consume(ch: &Channel, q: &str, tag: &str, no_ack: bool) -> Consumer {
    let opts = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    within(
        "consume",
        ch.basic_consume(q.into(), tag.into(), opts, FieldTable::default()),
    )
    .await
    .expect("consume")
}

async fn passive_exists(c: &lapin::Connection, q: &str) -> Result<u32, lapin::Error> {
    let ch = channel(c).await;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        "passive",
        ch.queue_declare(q.into(), opts, FieldTable::default()),
    )
    .await
    .map(|q| q.consumer_count())
}

// ---------------------------------------------------------------- single active consumer

#[tokio::test]
async fn single_active_consumer_hands_over_in_registration_order() {
    let b = broker().await;
    let pc = lapin_connect(&b.url).await;
    let pubch = confirmed(&pc).await;
    let q = unique("sac");
    within(
        "declare",
        pubch.queue_declare(
            q.as_str().into(),
            Default::default(),
            arg("x-single-active-consumer", AMQPValue::Boolean(true)),
        ),
    )
    .await
    .expect("declare");

    // Three consumers on three connections; the first registered is the active one, even
    // though a later one has a higher x-priority.
    let ca = lapin_connect(&b.url).await;
    let cb = lapin_connect(&b.url).await;
    let cc = lapin_connect(&b.url).await;
    let (cha, chb, chc) = (channel(&ca).await, channel(&cb).await, channel(&cc).await);
    let mut a = consume(&cha, &q, "a", false).await;
    let mut bc = {
        let opts = BasicConsumeOptions::default();
        within(
            "consume b",
            chb.basic_consume(
                q.as_str().into(),
                "b".into(),
                opts,
                arg("x-priority", AMQPValue::LongInt(10)),
            ),
        )
        .await
        .expect("consume")
    };
    let mut cons_c = consume(&chc, &q, "c", false).await;
    for i in 0..3 {
        publish(&pubch, "", &q, &format!("m{i}"), Default::default()).await;
    }
    let a_got: Vec<Delivery> = vec![next(&mut a).await, next(&mut a).await, next(&mut a).await];
    assert_eq!(
        a_got.iter().map(body).collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );
    within("ack", a_got[0].ack(Default::default()))
        .await
        .expect("ack");

    // basic.cancel: b (next registered) becomes active; a's unacked stay with a's channel.
    within("cancel a", cha.basic_cancel("a".into(), Default::default()))
        .await
        .expect("cancel");
    publish(&pubch, "", &q, "m3", Default::default()).await;
    let d3 = next(&mut bc).await;
    assert_eq!(body(&d3), "m3");
    // Closing a's channel requeues its unacked m1, m2: they go to b, redelivered.
    within("close a", cha.close(200, "bye".into()))
        .await
        .expect("close");
    let d1 = next(&mut bc).await;
    let d2 = next(&mut bc).await;
    assert_eq!(
        (body(&d1), d1.redelivered, body(&d2), d2.redelivered),
        ("m1".into(), true, "m2".into(), true)
    );

    // b's connection closes: c becomes active and gets b's three unacked messages.
    within("close b", cb.close(200, "bye".into()))
        .await
        .expect("close");
    let mut c_got = Vec::new();
    for _ in 0..3 {
        let d = next(&mut cons_c).await;
        assert!(d.redelivered);
        c_got.push(body(&d));
    }
    assert_eq!(c_got, ["m1", "m2", "m3"], "back in queue order");
    publish(&pubch, "", &q, "m4", Default::default()).await;
    assert_eq!(body(&next(&mut cons_c).await), "m4");
    // Every message is accounted for, so a and b (gone) and nobody else received anything.
    drop(cc);
    b.stop().await;
}

#[tokio::test]
async fn single_active_consumer_argument_must_be_boolean() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    for bad in [AMQPValue::LongString("true".into()), AMQPValue::LongInt(1)] {
        let ch = channel(&c).await;
        let r = within(
            "bad sac",
            ch.queue_declare(
                unique("badsac").as_str().into(),
                Default::default(),
                arg("x-single-active-consumer", bad),
            ),
        )
        .await;
        assert_code(r, 406);
    }
    b.stop().await;
}

// ---------------------------------------------------------------- direct reply-to

const PSEUDO: &str = "amq.rabbitmq.reply-to";

#[tokio::test]
async fn direct_reply_to_round_trip() {
    let b = broker().await;
    let server_conn = lapin_connect(&b.url).await;
    let client_conn = lapin_connect(&b.url).await;
    let sch = confirmed(&server_conn).await;
    let rpc = unique("rpc");
    within(
        "declare",
        sch.queue_declare(
            rpc.as_str().into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let mut requests = consume(&sch, &rpc, "server", false).await;

    // Passive declare of the pseudo-queue succeeds (one consumer, as RabbitMQ answers).
    assert_eq!(
        passive_exists(&client_conn, PSEUDO).await.expect("passive"),
        1
    );

    let cch = confirmed(&client_conn).await;
    let mut replies = consume(&cch, PSEUDO, "replies", true).await;
    let req = BasicProperties::default()
        .with_reply_to(PSEUDO.into())
        .with_correlation_id("c1".into());
    publish(&cch, "", &rpc, "ping", req).await;

    let r = next(&mut requests).await;
    assert_eq!(body(&r), "ping");
    let reply_to = r
        .properties
        .reply_to()
        .as_ref()
        .map(|s| s.as_str().to_string())
        .expect("reply_to");
    assert!(
        reply_to.starts_with("amq.rabbitmq.reply-to.") && reply_to.len() > PSEUDO.len() + 1,
        "rewritten: {reply_to}"
    );
    // Other properties are kept.
    assert_eq!(
        r.properties.correlation_id().as_ref().map(|s| s.as_str()),
        Some("c1")
    );
    // The rewritten name exists while its consumer does.
    assert_eq!(
        passive_exists(&server_conn, &reply_to)
            .await
            .expect("passive"),
        1
    );
    within("ack", r.ack(Default::default())).await.expect("ack");
    let rp = BasicProperties::default().with_correlation_id("c1".into());
    publish(&sch, "", &reply_to, "pong", rp).await;
    let d = next(&mut replies).await;
    assert_eq!(body(&d), "pong");
    assert_eq!(d.routing_key.as_str(), reply_to);
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|s| s.as_str()),
        Some("c1")
    );

    // A second request and reply on the same channel use the same name.
    publish(
        &cch,
        "",
        &rpc,
        "ping2",
        BasicProperties::default().with_reply_to(PSEUDO.into()),
    )
    .await;
    let r2 = next(&mut requests).await;
    assert_eq!(
        r2.properties.reply_to().as_ref().map(|s| s.as_str()),
        Some(reply_to.as_str())
    );
    publish(&sch, "", &reply_to, "pong2", Default::default()).await;
    assert_eq!(body(&next(&mut replies).await), "pong2");

    // Once the requesting channel is closed the name is gone (404) and a reply to it is
    // dropped, though confirmed (RabbitMQ counts it routed).
    within("close", cch.close(200, "bye".into()))
        .await
        .expect("close");
    assert_code(passive_exists(&server_conn, &reply_to).await, 404);
    publish(&sch, "", &reply_to, "late", Default::default()).await;
    // A made-up suffix is no reply consumer either.
    assert_code(
        passive_exists(&server_conn, "amq.rabbitmq.reply-to.nobody").await,
        404,
    );
    b.stop().await;
}

/// A reply may be published in another vhost than the request's: RabbitMQ's reply names
/// stand for the requesting channel, not for a vhost.
#[tokio::test]
async fn direct_reply_to_reply_from_another_vhost() {
    let server = ottermq::testing::start_test_broker().await;
    server.broker.add_vhost("replies-elsewhere");
    server
        .broker
        .users
        .change(ottermq_broker::store::users::UserChange::SetPermission {
            vhost: "replies-elsewhere".into(),
            user: "guest".into(),
            perm: ottermq_broker::permissions::Permission::all(),
        });
    let client_conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let other_conn = lapin_connect(&format!(
        "amqp://guest:guest@{}/replies-elsewhere",
        server.amqp_addr
    ))
    .await;
    let cch = confirmed(&client_conn).await;
    let mut replies = consume(&cch, PSEUDO, "replies", true).await;
    let rpc = unique("rpc");
    within(
        "declare",
        cch.queue_declare(
            rpc.as_str().into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    publish(
        &cch,
        "",
        &rpc,
        "ping",
        BasicProperties::default().with_reply_to(PSEUDO.into()),
    )
    .await;
    let req = within(
        "get",
        cch.basic_get(rpc.as_str().into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("get")
    .expect("request");
    let reply_to = req
        .delivery
        .properties
        .reply_to()
        .as_ref()
        .map(|s| s.as_str().to_string())
        .expect("reply_to");
    let och = confirmed(&other_conn).await;
    publish(&och, "", &reply_to, "pong", Default::default()).await;
    let d = next(&mut replies).await;
    assert_eq!(body(&d), "pong");
    assert_eq!(d.routing_key.as_str(), reply_to);
    server.shutdown().await;
}

#[tokio::test]
async fn direct_reply_to_refusals() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    // Consuming in ack mode: PRECONDITION_FAILED.
    let ch = channel(&c).await;
    let opts = BasicConsumeOptions {
        no_ack: false,
        ..Default::default()
    };
    let r = within(
        "ack-mode reply consumer",
        ch.basic_consume(PSEUDO.into(), "r".into(), opts, FieldTable::default()),
    )
    .await;
    assert_code(r, 406);
    // A second reply consumer on one channel: PRECONDITION_FAILED.
    let ch = channel(&c).await;
    let _first = consume(&ch, PSEUDO, "r1", true).await;
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let r = within(
        "second reply consumer",
        ch.basic_consume(PSEUDO.into(), "r2".into(), opts, FieldTable::default()),
    )
    .await;
    assert_code(r, 406);
    // Cancel ends it: a new one may start on that channel.
    let ch = channel(&c).await;
    let _r = consume(&ch, PSEUDO, "once", true).await;
    within("cancel", ch.basic_cancel("once".into(), Default::default()))
        .await
        .expect("cancel-ok");
    let _again = consume(&ch, PSEUDO, "twice", true).await;

    // Publishing with reply_to = amq.rabbitmq.reply-to without a reply consumer closes the
    // channel with 406 on basic.publish; checked over a raw socket (lapin races it).
    let mut raw = Raw::handshake(b.addr, 0).await;
    raw.send(1, &Method::ChannelOpen).await;
    assert!(matches!(
        raw.method().await,
        Some((1, Method::ChannelOpenOk))
    ));
    let props = ottermq_protocol::BasicProperties {
        reply_to: Some(PSEUDO.into()),
        ..Default::default()
    };
    let mut f = bytes::BytesMut::new();
    ottermq_protocol::encode_method(
        &mut f,
        1,
        &Method::BasicPublish(ottermq_protocol::BasicPublish {
            exchange: "".into(),
            routing_key: "anything".into(),
            mandatory: false,
            immediate: false,
        }),
    );
    ottermq_protocol::encode_content(
        &mut f,
        1,
        &props.to_raw(),
        &bytes::Bytes::from_static(b"req"),
        131_072,
    );
    raw.send_bytes(&f).await;
    assert_eq!(raw.expect_channel_close(1).await, (406, 60, 40));
    b.stop().await;
}

// ---------------------------------------------------------------- exclusive / auto-delete

#[tokio::test]
async fn exclusive_queue_refuses_other_connections_with_resource_locked() {
    let b = broker().await;
    let owner = lapin_connect(&b.url).await;
    let och = channel(&owner).await;
    let excl = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    // Named by the client: redeclaring an amq.gen-* name is refused for its prefix (403) before
    // exclusivity is looked at, in RabbitMQ too.
    let q = unique("excl");
    within(
        "declare",
        och.queue_declare(q.as_str().into(), excl, FieldTable::default()),
    )
    .await
    .expect("declare");
    // The owner may use it.
    let _own = consume(&och, &q, "own", true).await;
    within(
        "owner binds",
        och.queue_bind(
            q.as_str().into(),
            "amq.direct".into(),
            "owned".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("bind");

    let other = lapin_connect(&b.url).await;
    let qn = || q.as_str().into();
    // declare (passive and not), consume, get, purge, delete, bind: each 405 on its channel.
    let ch = channel(&other).await;
    assert_code(
        within(
            "declare",
            ch.queue_declare(qn(), excl, FieldTable::default()),
        )
        .await,
        405,
    );
    let ch = channel(&other).await;
    assert_code(
        within(
            "declare plain",
            ch.queue_declare(qn(), Default::default(), FieldTable::default()),
        )
        .await,
        405,
    );
    let ch = channel(&other).await;
    assert_code(
        within(
            "consume",
            ch.basic_consume(qn(), "".into(), Default::default(), FieldTable::default()),
        )
        .await,
        405,
    );
    let ch = channel(&other).await;
    assert_code(
        within("get", ch.basic_get(qn(), BasicGetOptions { no_ack: true })).await,
        405,
    );
    let ch = channel(&other).await;
    assert_code(
        within("purge", ch.queue_purge(qn(), Default::default())).await,
        405,
    );
    let ch = channel(&other).await;
    assert_code(
        within("delete", ch.queue_delete(qn(), Default::default())).await,
        405,
    );
    let ch = channel(&other).await;
    assert_code(
        within(
            "bind",
            ch.queue_bind(
                qn(),
                "amq.direct".into(),
                "k".into(),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await,
        405,
    );
    // unbind of an existing binding (RabbitMQ answers unbind-ok for a binding that does not
    // exist before looking at the queue's owner).
    let ch = channel(&other).await;
    assert_code(
        within(
            "unbind",
            ch.queue_unbind(
                qn(),
                "amq.direct".into(),
                "owned".into(),
                FieldTable::default(),
            ),
        )
        .await,
        405,
    );
    // ... while unbinding a binding that does not exist is unbind-ok, owner or not.
    let ch = channel(&other).await;
    within(
        "unbind missing",
        ch.queue_unbind(
            qn(),
            "amq.direct".into(),
            "never-bound".into(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("unbind-ok for a missing binding on a locked queue");
    // Still there for its owner, with its binding.
    assert!(passive_exists(&owner, &q).await.is_ok());
    // It goes with its connection. lapin's close can report InvalidChannelState when a
    // channel it dropped (passive_exists) is still closing; the broker is not involved.
    let _ = within("close", owner.close(200, "bye".into())).await;
    within("exclusive queue goes with its connection", async {
        loop {
            // Still there (Ok, or 405 while the owner is going, RabbitMQ's case) until 404.
            match passive_exists(&other, &q).await {
                Err(e) if reply_code(&e) == Some(404) => break,
                Err(e) => assert_eq!(reply_code(&e), Some(405), "{e:?}"),
                Ok(_) => {}
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_goes_at_last_consumer_cancel() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = unique("ad");
    let ad = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    within(
        "declare",
        ch.queue_declare(q.as_str().into(), ad, FieldTable::default()),
    )
    .await
    .expect("declare");
    // Never consumed: it stays.
    assert_eq!(passive_exists(&c, &q).await.expect("exists"), 0);
    let _c1 = consume(&ch, &q, "c1", true).await;
    let _c2 = consume(&ch, &q, "c2", true).await;
    within(
        "cancel c1",
        ch.basic_cancel("c1".into(), Default::default()),
    )
    .await
    .expect("cancel");
    assert_eq!(passive_exists(&c, &q).await.expect("still one consumer"), 1);
    within(
        "cancel c2",
        ch.basic_cancel("c2".into(), Default::default()),
    )
    .await
    .expect("cancel");
    assert_code(passive_exists(&c, &q).await, 404);

    // The last consumer's channel closing deletes it too.
    let q2 = unique("ad2");
    within(
        "declare",
        ch.queue_declare(q2.as_str().into(), ad, FieldTable::default()),
    )
    .await
    .expect("declare");
    let ch2 = channel(&c).await;
    let _c3 = consume(&ch2, &q2, "c3", true).await;
    within("close", ch2.close(200, "bye".into()))
        .await
        .expect("close");
    assert_code(passive_exists(&c, &q2).await, 404);
    b.stop().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_last_binding() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let x = unique("adx");
    let opts = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    within(
        "declare x",
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            opts,
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let q = within(
        "declare q",
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
    .expect("declare")
    .name()
    .clone();
    for k in ["a", "b"] {
        within(
            "bind",
            ch.queue_bind(
                q.clone(),
                x.as_str().into(),
                k.into(),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("bind");
    }
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        "unbind a",
        ch.queue_unbind(
            q.clone(),
            x.as_str().into(),
            "a".into(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("unbind");
    within(
        "still there",
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        ),
    )
    .await
    .expect("one binding left");
    // Deleting the bound queue removes the last binding: the exchange goes.
    within("delete q", ch.queue_delete(q.clone(), Default::default()))
        .await
        .expect("delete");
    let r = within(
        "gone",
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 404);
    b.stop().await;
}
