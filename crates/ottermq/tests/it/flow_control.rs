//! Publisher flow control: a publisher that writes as fast as TCP allows, to a queue whose
//! consumer (another connection, manual acks, prefetch 100) is slower, must be held so the
//! queue stays short, and every message still arrives. Without flow control the whole burst
//! lands in the queue at once.

use crate::common;
use bytes::BytesMut;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use ottermq_protocol::{encode_content, encode_method, BasicPublish, Method, RawProperties};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MESSAGES: u64 = 60_000;
/// Flow engages above 8,192 ready messages (queue/flow.rs); a publisher may overshoot by what
/// it had already read, a batch per wait that timed out while the consumer was descheduled.
const MOST_READY: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_publisher_is_held_while_a_slower_consumer_drains_the_queue() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = ottermq::testing::start_test_broker_with(|s| s.http_addr = None).await;
    let url = format!("amqp://guest:guest@{}/%2f", server.amqp_addr);
    let q = unique("flow");

    let consumer_conn = lapin_connect(&url).await;
    let ch = within("channel", consumer_conn.create_channel())
        .await
        .unwrap();
    within(
        "declare",
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default()),
    )
    .await
    .unwrap();
    within("qos", ch.basic_qos(100, Default::default()))
        .await
        .unwrap();
    let mut deliveries = within(
        "consume",
        ch.basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let consume = {
        let received = received.clone();
        tokio::spawn(async move {
            while received.load(Ordering::Relaxed) < MESSAGES {
                let d = within("delivery", deliveries.next())
                    .await
                    .expect("stream ended")
                    .expect("delivery");
                let n = received.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(50) {
                    d.ack(BasicAckOptions { multiple: true })
                        .await
                        .expect("ack");
                }
            }
        })
    };

    // The queue's depth, sampled while the burst goes through.
    let queue = server
        .broker
        .vhost("/")
        .and_then(|v| v.queue(q.as_bytes()))
        .expect("queue");
    let done = Arc::new(AtomicBool::new(false));
    let most_ready = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, most_ready) = (done.clone(), most_ready.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                most_ready.fetch_max(queue.counts().ready, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    // The publisher: raw frames, 500 publishes per socket write, never reading.
    let mut raw = Raw::handshake(server.amqp_addr, 0).await;
    raw.send(1, &Method::ChannelOpen).await;
    let mut batch = BytesMut::new();
    let body = bytes::Bytes::from_static(b"0123456789abcdef");
    for i in 0..MESSAGES {
        encode_method(
            &mut batch,
            1,
            &Method::BasicPublish(BasicPublish {
                exchange: "".into(),
                routing_key: q.as_str().into(),
                mandatory: false,
                immediate: false,
            }),
        );
        encode_content(&mut batch, 1, &RawProperties::empty(), &body, 131_072);
        if (i + 1).is_multiple_of(500) {
            raw.send_bytes(&batch).await;
            batch.clear();
        }
    }
    tokio::time::timeout(Duration::from_secs(60), consume)
        .await
        .expect("every message consumed")
        .expect("consumer task");
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert_eq!(received.load(Ordering::Relaxed), MESSAGES);
    let most = most_ready.load(Ordering::Relaxed);
    assert!(
        most <= MOST_READY,
        "the queue held up to {most} ready messages: the publisher was not held"
    );
    let _ = consumer_conn.close(200, "bye".into()).await;
}
