//! The same broker through a second Rust client, amqprs: publish with confirms, consume with
//! manual acks, basic.get, and a channel exception reported to its callback.

use crate::common;
use amqprs::callbacks::{ChannelCallback, DefaultConnectionCallback};
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, Channel,
    ConfirmSelectArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, Nack, Return};
use common::*;
use tokio::sync::mpsc;

type Result<T> = std::result::Result<T, amqprs::error::Error>;

/// Forwards broker-initiated events to the test.
struct Events {
    acks: mpsc::UnboundedSender<(u64, bool)>,
    closes: mpsc::UnboundedSender<u16>,
}

#[async_trait::async_trait]
impl ChannelCallback for Events {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> Result<()> {
        let _ = self.closes.send(close.reply_code());
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<()> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.acks.send((ack.delivery_tag(), ack.mutiple()));
    }
    async fn publish_nack(&mut self, _: &Channel, _: Nack) {}
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

async fn open(b: &TestBroker) -> Connection {
    let args =
        OpenConnectionArguments::new(&b.addr.ip().to_string(), b.addr.port(), "guest", "guest");
    let conn = within("amqprs connect", Connection::open(&args))
        .await
        .expect("connect");
    within(
        "callback",
        conn.register_callback(DefaultConnectionCallback),
    )
    .await
    .expect("callback");
    conn
}

#[tokio::test]
async fn amqprs_confirms_consume_ack_and_get() {
    let b = broker().await;
    let conn = open(&b).await;
    let ch = within("channel", conn.open_channel(None))
        .await
        .expect("channel");
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let (closes_tx, _closes) = mpsc::unbounded_channel();
    within(
        "cb",
        ch.register_callback(Events {
            acks: acks_tx,
            closes: closes_tx,
        }),
    )
    .await
    .expect("cb");
    within(
        "confirm",
        ch.confirm_select(ConfirmSelectArguments::default()),
    )
    .await
    .expect("confirm");
    let (q, _, _) = within(
        "declare",
        ch.queue_declare(QueueDeclareArguments::new("").exclusive(true).finish()),
    )
    .await
    .expect("declare")
    .expect("declare-ok");
    let n = 200u64;
    for i in 0..n {
        let args = BasicPublishArguments::new("", &q);
        within(
            "publish",
            ch.basic_publish(BasicProperties::default(), i.to_string().into_bytes(), args),
        )
        .await
        .expect("publish");
    }
    // Every publish is confirmed: the highest acked tag reaches n.
    let mut highest = 0;
    while highest < n {
        let (tag, _multiple) = within("ack", acks.recv()).await.expect("ack channel");
        assert!(tag > highest, "acks go forward");
        highest = tag;
    }

    let m = within("get", ch.basic_get(BasicGetArguments::new(&q)))
        .await
        .expect("get")
        .expect("message");
    assert_eq!(m.2, b"0");
    assert_eq!(m.0.message_count(), (n - 1) as u32);
    within(
        "ack",
        ch.basic_ack(BasicAckArguments::new(m.0.delivery_tag(), false)),
    )
    .await
    .expect("ack");

    let (_tag, mut rx) = within(
        "consume",
        ch.basic_consume_rx(BasicConsumeArguments::new(&q, "")),
    )
    .await
    .expect("consume");
    for i in 1..n {
        let msg = within("delivery", rx.recv()).await.expect("delivery");
        assert_eq!(msg.content.expect("content"), i.to_string().into_bytes());
        let tag = msg.deliver.expect("deliver").delivery_tag();
        within("ack", ch.basic_ack(BasicAckArguments::new(tag, false)))
            .await
            .expect("ack");
    }
    within("close", conn.close()).await.expect("close");
    b.stop().await;
}

#[tokio::test]
async fn amqprs_channel_exception_reaches_callback() {
    let b = broker().await;
    let conn = open(&b).await;
    let ch = within("channel", conn.open_channel(None))
        .await
        .expect("channel");
    let (acks_tx, _acks) = mpsc::unbounded_channel();
    let (closes_tx, mut closes) = mpsc::unbounded_channel();
    within(
        "cb",
        ch.register_callback(Events {
            acks: acks_tx,
            closes: closes_tx,
        }),
    )
    .await
    .expect("cb");
    let missing = unique("missing");
    let r = within(
        "passive",
        ch.queue_declare(QueueDeclareArguments::new(&missing).passive(true).finish()),
    )
    .await;
    assert!(r.is_err(), "passive declare of a missing queue succeeded");
    let code = within("close callback", closes.recv())
        .await
        .expect("close");
    assert_eq!(code, 404);
    // The connection is still usable.
    let ch2 = within("channel", conn.open_channel(None))
        .await
        .expect("channel");
    within(
        "declare",
        ch2.queue_declare(QueueDeclareArguments::new("").exclusive(true).finish()),
    )
    .await
    .expect("declare");
    b.stop().await;
}
