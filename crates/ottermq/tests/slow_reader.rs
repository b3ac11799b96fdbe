//! A client that sends but never reads must not make the broker buffer without bound: it
//! publishes mandatory, unroutable messages (every one comes back as basic.return with its
//! body) and reads nothing. The broker stops reading it once its outbound bytes pass twice the
//! high-water mark, so TCP holds the client back; meanwhile another client is served.

mod common;
use bytes::{Bytes, BytesMut};
use common::*;
use ottermq_protocol::{encode_content, encode_method, BasicPublish, Method, RawProperties};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const HIGH_WATER: usize = 1024 * 1024;
const BODY: usize = 64 * 1024;

async fn send_pend_of_largest(base: &str) -> u64 {
    let conns: Value = reqwest::Client::new()
        .get(format!("{base}/api/connections"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    conns
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["send_pend"].as_u64())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_client_that_never_reads_is_flow_controlled_not_buffered() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = ottermq::testing::start_test_broker_with(|s| {
        s.broker.outbound_high_water = HIGH_WATER;
    })
    .await;
    let base = format!("http://{}", server.http_addr.expect("http"));
    let raw = Raw::handshake(server.amqp_addr, 0).await;
    let mut sock = raw.sock;
    sock.write_all(&{
        let mut b = BytesMut::new();
        encode_method(&mut b, 1, &Method::ChannelOpen);
        b
    })
    .await
    .unwrap();

    // One publish (method + header + 64 KiB body), mandatory to an exchange with no bindings.
    let mut frame = BytesMut::new();
    encode_method(
        &mut frame,
        1,
        &Method::BasicPublish(BasicPublish {
            exchange: "amq.direct".into(),
            routing_key: "nowhere".into(),
            mandatory: true,
            immediate: false,
        }),
    );
    encode_content(
        &mut frame,
        1,
        &RawProperties::empty(),
        &Bytes::from(vec![7u8; BODY]),
        131_072,
    );
    let frame = frame.freeze();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_w = sent.clone();
    // Bounded: at most 512 MiB or 6 s of trying.
    let flood = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline && sent_w.load(Ordering::Relaxed) < 512 << 20 {
            match tokio::time::timeout(Duration::from_millis(200), sock.write_all(&frame)).await {
                Ok(Ok(())) => {
                    sent_w.fetch_add(frame.len() as u64, Ordering::Relaxed);
                }
                Ok(Err(_)) => break,
                Err(_) => {} // blocked by TCP flow control: what we want to see
            }
        }
        sock
    });

    // Meanwhile a well-behaved client works normally.
    let conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare("witness".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    let mut max_pend = 0;
    for i in 0..20u32 {
        within(
            "publish",
            ch.basic_publish(
                "".into(),
                "witness".into(),
                Default::default(),
                &i.to_be_bytes(),
                Default::default(),
            ),
        )
        .await
        .unwrap();
        let got = within("get", ch.basic_get("witness".into(), Default::default()))
            .await
            .unwrap();
        if let Some(m) = got {
            assert_eq!(m.delivery.data, i.to_be_bytes());
        }
        max_pend = max_pend.max(send_pend_of_largest(&base).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _sock = flood.await.unwrap();
    let sent = sent.load(Ordering::Relaxed);
    // Pending bytes stay near twice the mark: one read's worth of returns can go past it.
    let bound = (2 * HIGH_WATER + 512 * 1024) as u64;
    assert!(
        max_pend <= bound,
        "broker buffered {max_pend} bytes for a client that reads nothing (bound {bound})"
    );
    // Without flow control the flood would have pushed hundreds of MiB in 6 s; with it the
    // client gets only as far as the socket buffers and the broker's bound allow.
    assert!(
        sent < 64 << 20,
        "the non-reading client could push {sent} bytes"
    );
    server.shutdown().await;
}
