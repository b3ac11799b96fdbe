//! Protocol abuse over a raw socket: each bad input gets RabbitMQ's reply code and closes only
//! the offending connection, while a well-behaved lapin client keeps publishing and consuming.

use crate::common;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use ottermq_protocol::*;

/// A lapin connection that publishes and consumes one message, proving the broker still serves.
struct Witness {
    _conn: lapin::Connection,
    ch: lapin::Channel,
    q: lapin::types::ShortString,
    consumer: lapin::Consumer,
}

impl Witness {
    async fn new(url: &str) -> Witness {
        let conn = lapin_connect(url).await;
        let ch = within("channel", conn.create_channel())
            .await
            .expect("channel");
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        let q = within(
            "declare",
            ch.queue_declare("".into(), opts, FieldTable::default()),
        )
        .await
        .expect("declare")
        .name()
        .clone();
        let consumer = within(
            "consume",
            ch.basic_consume(
                q.clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
        .expect("consume");
        Witness {
            _conn: conn,
            ch,
            q,
            consumer,
        }
    }

    async fn round_trip(&mut self) {
        within(
            "publish",
            self.ch.basic_publish(
                "".into(),
                self.q.clone(),
                Default::default(),
                b"ping",
                Default::default(),
            ),
        )
        .await
        .expect("publish");
        let d = within("delivery", self.consumer.next())
            .await
            .expect("stream")
            .expect("delivery");
        assert_eq!(d.data, b"ping");
    }
}

/// Expects connection.close with `code` (then answers close-ok).
async fn expect_connection_close(r: &mut Raw, code: u16) {
    loop {
        match r.method().await {
            Some((0, Method::ConnectionClose(c))) => {
                assert_eq!(c.reply_code, code, "{c:?}");
                r.send(0, &Method::ConnectionCloseOk).await;
                return;
            }
            Some(_) => continue,
            None => panic!("socket closed without connection.close {code}"),
        }
    }
}

async fn open_channel(r: &mut Raw, id: u16) {
    r.send(id, &Method::ChannelOpen).await;
    let (ch, m) = r.method().await.expect("open-ok");
    assert_eq!(
        (ch, matches!(m, Method::ChannelOpenOk)),
        (id, true),
        "{m:?}"
    );
}

#[tokio::test]
async fn garbage_after_handshake_is_a_frame_error() {
    let b = broker().await;
    let mut w = Witness::new(&b.url).await;
    let mut r = Raw::handshake(b.addr, 0).await;
    r.send_bytes(b"\x42this is not an amqp frame at all......")
        .await;
    expect_connection_close(&mut r, 501).await;
    w.round_trip().await;
    b.stop().await;
}

#[tokio::test]
async fn bad_frame_end_is_a_frame_error() {
    let b = broker().await;
    let mut w = Witness::new(&b.url).await;
    let mut r = Raw::handshake(b.addr, 0).await;
    let mut f = bytes::BytesMut::new();
    encode_method(&mut f, 1, &Method::ChannelOpen);
    let last = f.len() - 1;
    f[last] = 0x00;
    r.send_bytes(&f).await;
    expect_connection_close(&mut r, 501).await;
    w.round_trip().await;
    b.stop().await;
}

#[tokio::test]
async fn oversized_frame_is_a_frame_error() {
    let b = broker().await;
    let mut w = Witness::new(&b.url).await;
    let mut r = Raw::handshake(b.addr, 0).await;
    open_channel(&mut r, 1).await;
    // Declares a 1 MiB body frame; the negotiated frame_max is 128 KiB.
    let mut f = bytes::BytesMut::new();
    f.extend_from_slice(&[FRAME_BODY, 0, 1]);
    f.extend_from_slice(&(1024u32 * 1024).to_be_bytes());
    f.extend_from_slice(&[0u8; 64]);
    r.send_bytes(&f).await;
    expect_connection_close(&mut r, 501).await;
    w.round_trip().await;
    b.stop().await;
}

#[tokio::test]
async fn content_header_without_publish_is_unexpected_frame() {
    let b = broker().await;
    let mut w = Witness::new(&b.url).await;
    let mut r = Raw::handshake(b.addr, 0).await;
    open_channel(&mut r, 1).await;
    let mut f = bytes::BytesMut::new();
    encode_frame(
        &mut f,
        &Frame::Header {
            channel: 1,
            class_id: 60,
            body_size: 3,
            properties: RawProperties::empty(),
        },
    );
    r.send_bytes(&f).await;
    expect_connection_close(&mut r, 505).await;
    w.round_trip().await;
    b.stop().await;
}

#[tokio::test]
async fn second_channel_open_is_a_channel_error() {
    let b = broker().await;
    let mut w = Witness::new(&b.url).await;
    let mut r = Raw::handshake(b.addr, 0).await;
    open_channel(&mut r, 1).await;
    r.send(1, &Method::ChannelOpen).await;
    expect_connection_close(&mut r, 504).await;
    w.round_trip().await;
    b.stop().await;
}

#[tokio::test]
async fn method_on_unopened_channel_is_a_channel_error() {
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 0).await;
    r.send(
        7,
        &Method::QueueDeclare(QueueDeclare {
            queue: "x".into(),
            ..Default::default()
        }),
    )
    .await;
    expect_connection_close(&mut r, 504).await;
    b.stop().await;
}

#[tokio::test]
async fn many_channels_and_channel_close() {
    let b = broker().await;
    let conn = lapin_connect(&b.url).await;
    let mut channels = Vec::new();
    for _ in 0..100 {
        channels.push(
            within("channel", conn.create_channel())
                .await
                .expect("channel"),
        );
    }
    for (i, ch) in channels.iter().enumerate() {
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        within(
            "declare",
            ch.queue_declare("".into(), opts, FieldTable::default()),
        )
        .await
        .expect("declare");
        if i % 2 == 0 {
            within("close", ch.close(200, "bye".into()))
                .await
                .expect("close");
        }
    }
    // The odd ones still work.
    for ch in channels.iter().skip(1).step_by(2) {
        let opts = QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        };
        within(
            "declare",
            ch.queue_declare("".into(), opts, FieldTable::default()),
        )
        .await
        .expect("declare");
    }
    b.stop().await;
}

#[tokio::test]
async fn channel_flow_is_answered() {
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 0).await;
    open_channel(&mut r, 1).await;
    r.send(1, &Method::ChannelFlow(ChannelFlow { active: true }))
        .await;
    let (ch, m) = r.method().await.expect("flow-ok");
    assert_eq!(ch, 1);
    assert_eq!(m, Method::ChannelFlowOk(ChannelFlowOk { active: true }));
    b.stop().await;
}

#[tokio::test]
async fn unknown_and_double_acks_are_precondition_failed() {
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 0).await;
    r.send(1, &Method::ChannelOpen).await;
    assert!(matches!(r.method().await, Some((1, Method::ChannelOpenOk))));
    r.send(
        1,
        &Method::BasicAck(BasicAck {
            delivery_tag: 999,
            multiple: false,
        }),
    )
    .await;
    assert_eq!(r.expect_channel_close(1).await, (406, 60, 80));

    // A message to get and ack twice, published by a client library.
    let q = unique("double-ack");
    let c = lapin_connect(&b.url).await;
    let ch = within("channel", c.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare(q.as_str().into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    within(
        "publish",
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"once",
            Default::default(),
        ),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    r.send(2, &Method::ChannelOpen).await;
    assert!(matches!(r.method().await, Some((2, Method::ChannelOpenOk))));
    let tag = loop {
        r.send(
            2,
            &Method::BasicGet(BasicGet {
                queue: q.as_str().into(),
                no_ack: false,
            }),
        )
        .await;
        match r.method().await {
            Some((2, Method::BasicGetOk(ok))) => break ok.delivery_tag,
            Some((2, Method::BasicGetEmpty)) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            other => panic!("expected get-ok, got {other:?}"),
        }
    };
    for _ in 0..2 {
        r.send(
            2,
            &Method::BasicAck(BasicAck {
                delivery_tag: tag,
                multiple: false,
            }),
        )
        .await;
    }
    assert_eq!(r.expect_channel_close(2).await, (406, 60, 80));
    b.stop().await;
}

#[tokio::test]
async fn publish_to_a_missing_exchange_is_not_found_on_its_channel() {
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 0).await;
    r.send(1, &Method::ChannelOpen).await;
    assert!(matches!(r.method().await, Some((1, Method::ChannelOpenOk))));
    r.publish(1, &unique("nope"), "", b"x").await;
    assert_eq!(r.expect_channel_close(1).await, (404, 60, 40));
    // The connection goes on: another channel works.
    r.send(2, &Method::ChannelOpen).await;
    assert!(matches!(r.method().await, Some((2, Method::ChannelOpenOk))));
    b.stop().await;
}
