//! The memory high watermark: publishing with no consumer into a broker with a small watermark
//! gets `connection.blocked`, queued bytes stop growing while blocked, and consuming brings
//! `connection.unblocked`.

mod common;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WATERMARK: u64 = 1 << 20;

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_are_blocked_above_the_watermark_and_unblocked_after() {
    let server = ottermq::testing::start_test_broker_with(|s| {
        s.broker.memory_high_watermark_bytes = Some(WATERMARK);
    })
    .await;
    let url = format!("amqp://guest:guest@{}/%2f", server.amqp_addr);
    let publisher = lapin_connect(&url).await;
    let ch = within("channel", publisher.create_channel())
        .await
        .expect("ch");
    within(
        "declare",
        ch.queue_declare("wm".into(), Default::default(), FieldTable::default()),
    )
    .await
    .expect("declare");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let task = {
        let (stop, sent, ch) = (stop.clone(), sent.clone(), ch.clone());
        tokio::spawn(async move {
            let body = vec![b'm'; 1024];
            while !stop.load(Ordering::Relaxed) {
                let r = ch
                    .basic_publish(
                        "".into(),
                        "wm".into(),
                        Default::default(),
                        &body,
                        Default::default(),
                    )
                    .await;
                if r.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    until("connection.blocked", || publisher.status().blocked()).await;
    let broker = server.broker.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = broker.queued_bytes();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        broker.queued_bytes(),
        held,
        "nothing more is taken in while blocked"
    );
    assert!(
        held > WATERMARK,
        "blocked only above the watermark ({held})"
    );
    assert!(
        held < WATERMARK * 5,
        "overshoot bounded: {held} bytes queued"
    );

    // A consumer on another connection drains the queue; the publisher is let go.
    let consumer = lapin_connect(&url).await;
    let cch = within("channel", consumer.create_channel())
        .await
        .expect("ch");
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut deliveries = within(
        "consume",
        cch.basic_consume("wm".into(), "".into(), opts, FieldTable::default()),
    )
    .await
    .expect("consume");
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = deliveries.next().await {} });
    until("connection.unblocked", || !publisher.status().blocked()).await;
    let before = sent.load(Ordering::Relaxed);
    until("publishing resumes", || {
        sent.load(Ordering::Relaxed) > before + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let _ = within("publisher stops", task).await;
    drain.abort();
    server.shutdown().await;
}
