//! basic.*: qos, consume, cancel, get, ack / nack / reject, recover, returns; publisher
//! confirms and transactions.

use crate::common;
use common::*;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Consumer};
use std::time::Duration;

async fn channel(c: &lapin::Connection) -> Channel {
    within("channel", c.create_channel())
        .await
        .expect("channel")
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

async fn publish_n(ch: &Channel, q: &ShortString, n: usize) {
    for i in 0..n {
        within(
            "publish",
            ch.basic_publish(
                "".into(),
                q.clone(),
                Default::default(),
                format!("{i}").as_bytes(),
                Default::default(),
            ),
        )
        .await
        .expect("publish");
    }
}

async fn next(c: &mut Consumer) -> Delivery {
    within("delivery", c.next())
        .await
        .expect("stream ended")
        .expect("delivery error")
}

/// True if nothing arrives on the consumer for a short while.
async fn quiet(c: &mut Consumer) -> bool {
    tokio::time::timeout(Duration::from_millis(300), c.next())
        .await
        .is_err()
}

fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

async fn consume(ch: &Channel, q: &ShortString, no_ack: bool) -> Consumer {
    let opts = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    within(
        "consume",
        ch.basic_consume(q.clone(), "".into(), opts, FieldTable::default()),
    )
    .await
    .expect("consume")
}

#[tokio::test]
async fn prefetch_per_consumer_and_per_channel() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = temp_queue(&ch).await;
    publish_n(&ch, &q, 10).await;
    within("qos", ch.basic_qos(2, BasicQosOptions { global: false }))
        .await
        .expect("qos");
    let mut cons = consume(&ch, &q, false).await;
    assert!(
        cons.tag().as_str().starts_with("amq.ctag-"),
        "{}",
        cons.tag()
    );
    let d1 = next(&mut cons).await;
    let d2 = next(&mut cons).await;
    assert!(
        quiet(&mut cons).await,
        "a third message arrived past prefetch 2"
    );
    within("ack", d1.ack(Default::default()))
        .await
        .expect("ack");
    let d3 = next(&mut cons).await;
    assert_eq!(
        (body(&d1), body(&d2), body(&d3)),
        ("0".into(), "1".into(), "2".into())
    );
    assert!(quiet(&mut cons).await);

    // global=true: one limit shared by two consumers on the channel.
    let ch2 = channel(&c).await;
    let q2 = temp_queue(&ch2).await;
    publish_n(&ch2, &q2, 10).await;
    within("qos", ch2.basic_qos(3, BasicQosOptions { global: true }))
        .await
        .expect("qos");
    let mut a = consume(&ch2, &q2, false).await;
    let mut bcons = consume(&ch2, &q2, false).await;
    let mut got = 0;
    for _ in 0..10 {
        tokio::select! {
            Some(Ok(_)) = a.next() => got += 1,
            Some(Ok(_)) = bcons.next() => got += 1,
            _ = tokio::time::sleep(Duration::from_millis(300)) => break,
        }
    }
    assert_eq!(got, 3, "channel-wide prefetch 3");
    b.stop().await;
}

#[tokio::test]
async fn no_ack_exclusive_consumer_and_missing_queue() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = temp_queue(&ch).await;
    publish_n(&ch, &q, 3).await;
    let opts = BasicConsumeOptions {
        no_ack: true,
        exclusive: true,
        ..Default::default()
    };
    let mut cons = within(
        "consume",
        ch.basic_consume(q.clone(), "mine".into(), opts, FieldTable::default()),
    )
    .await
    .expect("consume");
    for i in 0..3 {
        assert_eq!(body(&next(&mut cons).await), i.to_string());
    }
    let ch2 = channel(&c).await;
    let r = within(
        "second consumer",
        ch2.basic_consume(
            q.clone(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 403);
    let ch3 = channel(&c).await;
    let r = within(
        "missing",
        ch3.basic_consume(
            unique("nope").as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_code(r, 404);
    // cancel: no more deliveries after cancel-ok
    within("cancel", ch.basic_cancel("mine".into(), Default::default()))
        .await
        .expect("cancel");
    publish_n(&ch, &q, 1).await;
    let (m, _) = {
        let got = within(
            "get",
            ch.basic_get(q.clone(), BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("get");
        (got.is_some(), ())
    };
    assert!(m, "message stayed in the queue after cancel");
    b.stop().await;
}

#[tokio::test]
async fn deleting_a_queue_cancels_its_consumers() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let name = unique("q");
    within(
        "declare",
        ch.queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                auto_delete: false,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("declare");
    let mut cons = consume(&ch, &name.as_str().into(), false).await;
    let other = channel(&c).await;
    within(
        "delete",
        other.queue_delete(name.as_str().into(), Default::default()),
    )
    .await
    .expect("delete");
    // lapin ends the consumer stream when the broker cancels it.
    let end = within("cancel notification", cons.next()).await;
    assert!(end.is_none(), "expected the stream to end, got {end:?}");
    b.stop().await;
}

#[tokio::test]
async fn mandatory_return_immediate_and_missing_exchange() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    let opts = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = within(
        "publish",
        ch.basic_publish(
            "amq.direct".into(),
            unique("nobody").as_str().into(),
            opts,
            b"lost",
            Default::default(),
        ),
    )
    .await
    .expect("publish");
    let conf = within("confirm", confirm).await.expect("confirmation");
    assert!(conf.is_ack(), "unroutable messages are still acked");
    let returned = conf.take_message().expect("a basic.return");
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");

    // Publishing to a missing exchange (404 on the channel) is in raw_frames.rs: with lapin
    // the channel.close can arrive before the next call, which then fails as InvalidChannelState.

    // immediate=true: RabbitMQ closes the connection with 540 NOT_IMPLEMENTED.
    let c2 = lapin_connect(&b.url).await;
    let ch3 = channel(&c2).await;
    let opts = BasicPublishOptions {
        immediate: true,
        ..Default::default()
    };
    let _ = ch3
        .basic_publish("".into(), "x".into(), opts, b"x", Default::default())
        .await;
    let r = within(
        "after immediate",
        ch3.queue_declare("".into(), Default::default(), FieldTable::default()),
    )
    .await;
    assert!(r.is_err());
    for _ in 0..50 {
        if !c2.status().connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !c2.status().connected(),
        "connection survived immediate=true"
    );
    b.stop().await;
}

#[tokio::test]
async fn get_ack_nack_reject_and_requeue_order() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = temp_queue(&ch).await;
    publish_n(&ch, &q, 5).await;
    let mut tags = Vec::new();
    for i in 0..5 {
        let m = within("get", ch.basic_get(q.clone(), Default::default()))
            .await
            .expect("get")
            .expect("message");
        assert_eq!(body(&m.delivery), i.to_string());
        assert!(!m.delivery.redelivered);
        if i == 0 {
            assert_eq!(m.message_count, 4);
        }
        tags.push(m.delivery.delivery_tag);
    }
    assert!(within("empty", ch.basic_get(q.clone(), Default::default()))
        .await
        .expect("get")
        .is_none());
    // ack 1 alone, nack 2..=4 with multiple+requeue, reject 5 with requeue.
    within("ack", ch.basic_ack(tags[0], Default::default()))
        .await
        .expect("ack");
    within(
        "nack",
        ch.basic_nack(
            tags[3],
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        ),
    )
    .await
    .expect("nack");
    within(
        "reject",
        ch.basic_reject(tags[4], BasicRejectOptions { requeue: true }),
    )
    .await
    .expect("reject");
    // Requeued messages come back in their original order, marked redelivered.
    let mut again = Vec::new();
    for _ in 0..4 {
        let m = within("get", ch.basic_get(q.clone(), Default::default()))
            .await
            .expect("get")
            .expect("message");
        assert!(m.delivery.redelivered);
        again.push(body(&m.delivery));
        within(
            "reject drop",
            ch.basic_reject(
                m.delivery.delivery_tag,
                BasicRejectOptions { requeue: false },
            ),
        )
        .await
        .expect("reject");
    }
    assert_eq!(again, vec!["1", "2", "3", "4"]);
    assert!(within("empty", ch.basic_get(q.clone(), Default::default()))
        .await
        .expect("get")
        .is_none());

    // Unknown and double acks (406) are in raw_frames.rs: with lapin the channel.close can
    // arrive before the next call, which then fails as `InvalidChannelState` instead.
    b.stop().await;
}

#[tokio::test]
async fn recover_and_channel_close_requeue_unacked() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = temp_queue(&ch).await;
    publish_n(&ch, &q, 2).await;
    let mut cons = consume(&ch, &q, false).await;
    let d = next(&mut cons).await;
    assert!(!d.redelivered);
    let _ = next(&mut cons).await;
    within(
        "recover",
        ch.basic_recover(BasicRecoverOptions { requeue: true }),
    )
    .await
    .expect("recover");
    let d = next(&mut cons).await;
    assert!(d.redelivered, "recovered message not marked redelivered");
    assert_eq!(body(&d), "0");
    let _ = next(&mut cons).await;
    // Close the channel with both unacked: another channel gets them, redelivered, in order.
    within("close", ch.close(200, "bye".into()))
        .await
        .expect("close");
    let ch2 = channel(&c).await;
    let mut cons2 = consume(&ch2, &q, false).await;
    let a = next(&mut cons2).await;
    let bb = next(&mut cons2).await;
    assert!(a.redelivered && bb.redelivered);
    assert_eq!((body(&a), body(&bb)), ("0".into(), "1".into()));
    b.stop().await;
}

#[tokio::test]
async fn properties_headers_large_bodies_and_order() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = temp_queue(&ch).await;
    let mut headers = FieldTable::default();
    headers.insert("bool".into(), AMQPValue::Boolean(true));
    headers.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    headers.insert("u8".into(), AMQPValue::ShortShortUInt(8));
    headers.insert("i16".into(), AMQPValue::ShortInt(-16));
    headers.insert("u16".into(), AMQPValue::ShortUInt(16));
    headers.insert("i32".into(), AMQPValue::LongInt(-32));
    headers.insert("u32".into(), AMQPValue::LongUInt(32));
    headers.insert("i64".into(), AMQPValue::LongLongInt(-64));
    headers.insert("f32".into(), AMQPValue::Float(1.5));
    headers.insert("f64".into(), AMQPValue::Double(2.25));
    headers.insert("str".into(), AMQPValue::LongString("text".into()));
    headers.insert("bytes".into(), AMQPValue::ByteArray(vec![0u8, 1, 2].into()));
    headers.insert("ts".into(), AMQPValue::Timestamp(1_700_000_000));
    headers.insert("void".into(), AMQPValue::Void);
    let mut inner = FieldTable::default();
    inner.insert("k".into(), AMQPValue::LongString("v".into()));
    headers.insert("table".into(), AMQPValue::FieldTable(inner));
    headers.insert(
        "array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::Boolean(false),
        ])),
    );
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("corr".into())
        .with_reply_to("reply".into())
        .with_expiration("60000".into())
        .with_message_id("id-1".into())
        .with_timestamp(1_700_000_000)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("tests".into());
    within(
        "publish",
        ch.basic_publish(
            "".into(),
            q.clone(),
            Default::default(),
            b"{}",
            props.clone(),
        ),
    )
    .await
    .expect("publish");
    let m = within(
        "get",
        ch.basic_get(q.clone(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("get")
    .expect("message");
    assert_eq!(m.delivery.properties, props);

    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    within(
        "publish",
        ch.basic_publish(
            "".into(),
            q.clone(),
            Default::default(),
            &big,
            Default::default(),
        ),
    )
    .await
    .expect("publish");
    let m = within(
        "get",
        ch.basic_get(q.clone(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("get")
    .expect("message");
    assert_eq!(m.delivery.data, big);

    publish_n(&ch, &q, 1000).await;
    let mut cons = consume(&ch, &q, true).await;
    for i in 0..1000 {
        assert_eq!(body(&next(&mut cons).await), i.to_string());
    }
    b.stop().await;
}

#[tokio::test]
async fn publisher_confirms_ack_every_publish() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = temp_queue(&ch).await;
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .expect("confirm");
    let mut pending = Vec::new();
    for i in 0..500 {
        let p = within(
            "publish",
            ch.basic_publish(
                "".into(),
                q.clone(),
                Default::default(),
                format!("{i}").as_bytes(),
                Default::default(),
            ),
        )
        .await
        .expect("publish");
        pending.push(p);
    }
    for p in pending {
        assert!(within("confirm", p).await.expect("confirm").is_ack());
    }
    within("wait", ch.wait_for_confirms()).await.expect("wait");
    // confirm.select on a transactional channel: 406.
    let ch2 = channel(&c).await;
    within("tx", ch2.tx_select()).await.expect("tx");
    let r = within("confirm on tx", ch2.confirm_select(Default::default())).await;
    assert_code(r, 406);
    b.stop().await;
}

#[tokio::test]
async fn transactions_commit_and_rollback() {
    let b = broker().await;
    let c = lapin_connect(&b.url).await;
    let ch = channel(&c).await;
    let q = temp_queue(&ch).await;
    let reader = channel(&c).await;
    within("tx", ch.tx_select()).await.expect("tx");
    publish_n(&ch, &q, 2).await;
    let d = within(
        "passive",
        reader.queue_declare(
            q.clone(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("passive");
    assert_eq!(d.message_count(), 0, "uncommitted publishes are visible");
    within("commit", ch.tx_commit()).await.expect("commit");
    let d = within(
        "passive",
        reader.queue_declare(
            q.clone(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("passive");
    assert_eq!(d.message_count(), 2);
    publish_n(&ch, &q, 3).await;
    within("rollback", ch.tx_rollback())
        .await
        .expect("rollback");
    within("commit", ch.tx_commit()).await.expect("commit");
    let d = within(
        "passive",
        reader.queue_declare(
            q.clone(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("passive");
    assert_eq!(d.message_count(), 2, "rolled back publishes arrived");

    // Acks inside a transaction take effect at commit.
    let m = within("get", ch.basic_get(q.clone(), Default::default()))
        .await
        .expect("get")
        .expect("message");
    within(
        "ack",
        ch.basic_ack(m.delivery.delivery_tag, Default::default()),
    )
    .await
    .expect("ack");
    within("rollback", ch.tx_rollback())
        .await
        .expect("rollback");
    within(
        "ack again",
        ch.basic_ack(m.delivery.delivery_tag, Default::default()),
    )
    .await
    .expect("ack");
    within("commit", ch.tx_commit()).await.expect("commit");

    // tx.commit without tx.select: 406.
    let ch3 = channel(&c).await;
    let r = within("commit", ch3.tx_commit()).await;
    assert_code(r, 406);
    b.stop().await;
}
