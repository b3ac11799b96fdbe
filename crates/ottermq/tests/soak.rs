//! Soak: 1,000 connections opened and closed, four rounds, while messages flow on another
//! connection. Afterwards the broker's connection registry, channel count and file
//! descriptors are back at their baseline, and no flowing message was lost.

mod common;
use common::*;
use futures_util::StreamExt;
use ottermq_protocol::Method;
use std::time::Duration;

const CONNECTIONS: usize = 1000;
const ROUNDS: usize = 4;

/// Resident set size of this process (the broker runs in it), bytes, after handing free heap
/// pages back to the kernel so that what is left is memory still in use.
fn rss_bytes() -> u64 {
    // SAFETY: malloc_trim takes no pointers and only returns free pages of glibc's heaps to
    // the kernel; it is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaks_nothing_while_messages_flow() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // counts this process's descriptors: the broker must be in-process
    }
    let server = ottermq::testing::start_test_broker().await;
    let addr = server.amqp_addr;
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let conn = lapin_connect(&url).await;
    let pch = within("channel", conn.create_channel()).await.unwrap();
    let cch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        pch.queue_declare("soak".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    let mut consumer = within(
        "consume",
        cch.basic_consume(
            "soak".into(),
            "".into(),
            Default::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    // Settle a moment so the baseline includes the steady connection's descriptors.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let base_fds = open_fds();
    let base_conns = server.broker.connections().len();
    let base_channels =
        server.broker.stats.channels_opened.get() - server.broker.stats.channels_closed.get();

    let publisher = tokio::spawn(async move {
        let mut sent = 0u32;
        for _ in 0..(ROUNDS * 40) {
            for _ in 0..10 {
                pch.basic_publish(
                    "".into(),
                    "soak".into(),
                    Default::default(),
                    &sent.to_be_bytes(),
                    Default::default(),
                )
                .await
                .expect("publish");
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (sent, pch) // kept open: lapin closes a channel whose last handle drops
    });

    let mut rss_after_round = Vec::new();
    for _ in 0..ROUNDS {
        let mut handles = Vec::with_capacity(CONNECTIONS);
        for chunk in 0..(CONNECTIONS / 100) {
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.push(tokio::spawn(async move {
                    let mut r = Raw::handshake(addr, 0).await;
                    r.send(1, &Method::ChannelOpen).await;
                    let _ = r.method().await; // channel.open-ok
                    r
                }));
            }
            for h in batch {
                handles.push(h.await.expect("handshake task"));
            }
            let _ = chunk;
        }
        assert_eq!(
            server.broker.connections().len(),
            base_conns + CONNECTIONS,
            "every churn connection is open at once"
        );
        // Half close politely, half just drop the socket.
        for (i, mut r) in handles.into_iter().enumerate() {
            if i % 2 == 0 {
                r.send(
                    0,
                    &Method::ConnectionClose(ottermq_protocol::ConnectionClose {
                        reply_code: 200,
                        reply_text: "bye".into(),
                        class_id: 0,
                        method_id: 0,
                    }),
                )
                .await;
            }
        }
        let mut settled = false;
        for _ in 0..200 {
            if server.broker.connections().len() == base_conns {
                settled = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            settled,
            "{} connections left after closing the churn",
            server.broker.connections().len()
        );
        rss_after_round.push(rss_bytes());
    }
    // The allocator may keep the first round's peak, but a leak would grow round on round:
    // 1,000 connections leaking even their 64 KiB read buffers would add 64 MB a round.
    eprintln!("RSS after each round (bytes): {rss_after_round:?}");
    let growth = rss_after_round[ROUNDS - 1].saturating_sub(rss_after_round[0]);
    assert!(
        growth < 16 << 20,
        "RSS grew by {growth} bytes between the first and last rounds: {rss_after_round:?}"
    );

    let (sent, _pch) = within("publisher", publisher).await.unwrap();
    let mut got = 0u32;
    while got < sent {
        let d = within("delivery", consumer.next())
            .await
            .expect("stream")
            .expect("delivery");
        assert_eq!(d.data, got.to_be_bytes(), "in order, none lost");
        within("ack", d.ack(Default::default())).await.unwrap();
        got += 1;
    }

    let mut fds = open_fds();
    for _ in 0..100 {
        if fds <= base_fds {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        fds = open_fds();
    }
    assert!(
        fds <= base_fds,
        "file descriptors: {fds} after the churn, {base_fds} before"
    );
    let channels =
        server.broker.stats.channels_opened.get() - server.broker.stats.channels_closed.get();
    assert_eq!(channels, base_channels, "open channels back at baseline");
    assert_eq!(
        server.broker.stats.connections_opened.get() - server.broker.stats.connections_closed.get(),
        base_conns as u64
    );
    server.shutdown().await;
}
