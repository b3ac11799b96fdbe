//! The metrics core end to end: counters exact after a known workload, rates that add up to
//! the messages sent, per-queue and per-exchange series, and the API's error cases.

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use std::time::Duration;

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = http_get(base, path).await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

/// Messages a rate series adds up to: each rate times the time since the previous point (on a
/// loaded machine the sampler can skip a 200 ms tick, and a rate then covers both).
fn integrate(points: &[Value]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for p in points {
        let t = p[0].as_f64().unwrap();
        let dt = prev.map_or(0.2, |pt| (t - pt) / 1000.0);
        total += p[1].as_f64().unwrap() * dt;
        prev = Some(t);
    }
    total
}

#[tokio::test]
async fn counters_rates_series_and_errors() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // OtterMQ's own API
    }
    let server = ottermq::testing::start_test_broker_with(|s| {
        s.broker.metrics.fine_interval = Duration::from_millis(200);
        s.broker.metrics.fine_len = 300;
        s.broker.metrics.coarse_interval = Duration::from_secs(1);
        s.broker.metrics.coarse_len = 120;
    })
    .await;
    let base = format!("http://{}", server.http_addr.expect("http"));
    let conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare("metered".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    within(
        "bind",
        ch.queue_bind(
            "metered".into(),
            "amq.direct".into(),
            "m".into(),
            Default::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .unwrap();

    let n = 1000u64;
    for i in 0..n {
        within(
            "publish",
            ch.basic_publish(
                "amq.direct".into(),
                "m".into(),
                Default::default(),
                format!("{i}").as_bytes(),
                Default::default(),
            ),
        )
        .await
        .unwrap();
    }
    within("confirms", ch.wait_for_confirms()).await.unwrap();
    // One unroutable publish and one empty get.
    within(
        "publish",
        ch.basic_publish(
            "amq.direct".into(),
            "nowhere".into(),
            Default::default(),
            b"x",
            Default::default(),
        ),
    )
    .await
    .unwrap();
    within("confirms", ch.wait_for_confirms()).await.unwrap();
    let other = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        other.queue_declare("empty".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    assert!(
        within("get", other.basic_get("empty".into(), Default::default()))
            .await
            .unwrap()
            .is_none()
    );

    // Queue depth is visible before consuming.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (st, depths) = get(
        &base,
        "/api/metrics/timeseries/queue-depths?duration=1m&top=1",
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(depths["queues"][0]["name"], "metered");
    assert_eq!(depths["queues"][0]["messages_ready"], n);

    let mut consumer = within(
        "consume",
        ch.basic_consume(
            "metered".into(),
            "".into(),
            Default::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    for _ in 0..n {
        let d = within("delivery", consumer.next()).await.unwrap().unwrap();
        within("ack", d.ack(Default::default())).await.unwrap();
    }
    // Let the sampler take a few more samples.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let (st, o) = get(&base, "/api/metrics/overview").await;
    assert_eq!(st, 200);
    let t = &o["totals"];
    assert_eq!(t["published"], n + 1);
    // Bodies "0".."999" and "x": 10 + 90*2 + 900*3 + 1 bytes.
    assert_eq!(t["published_bytes"], 2891);
    assert_eq!(o["message_size_bytes"]["count"], n + 1);
    assert_eq!(o["message_size_bytes"]["max"], 3);
    assert_eq!(o["message_size_bytes"]["p50"], 3);
    assert_eq!(t["confirmed"], n + 1);
    assert_eq!(t["delivered"], n);
    assert_eq!(t["acked"], n);
    assert_eq!(t["unroutable"], 1);
    assert_eq!(t["get_empty"], 1);
    let l = &o["lifecycle"];
    assert_eq!(l["connections_opened"], 1);
    assert_eq!(l["channels_opened"], 2);
    assert_eq!(l["queues_declared"], 2);
    assert_eq!(l["consumers_added"], 1);
    assert_eq!(o["gauges"]["connections"].as_f64(), Some(1.0));
    assert_eq!(o["gauges"]["messages_ready"].as_f64(), Some(0.0));
    assert!(o["gauges"]["memory_rss_bytes"].as_f64().unwrap() > 1e6);
    assert!(
        o["latency_us"]["deliver_to_ack"]["p50"].is_number()
            || o["latency_us"]["deliver_to_ack"]["p50"].is_null()
    );

    // The publish-rate series integrates back to the messages published.
    let (st, ts) = get(&base, "/api/metrics/timeseries/publish?duration=1m").await;
    assert_eq!(st, 200);
    let points = ts["points"].as_array().unwrap();
    assert!(points.len() >= 5, "{ts}");
    let integrated = integrate(points);
    assert!(
        (integrated - (n + 1) as f64).abs() <= 0.01 * (n + 1) as f64,
        "rate integrates to {integrated}"
    );
    let (_, acks) = get(&base, "/api/metrics/timeseries/ack?duration=1m").await;
    let acked = integrate(acks["points"].as_array().unwrap());
    assert!(
        (acked - n as f64).abs() <= 0.01 * n as f64,
        "ack rate integrates to {acked}"
    );
    for gauge in [
        "ready",
        "unacked",
        "connections",
        "channels",
        "consumers",
        "queues",
    ] {
        let (st, g) = get(
            &base,
            &format!("/api/metrics/timeseries/{gauge}?duration=30s"),
        )
        .await;
        assert_eq!(st, 200, "{gauge}");
        assert!(!g["points"].as_array().unwrap().is_empty(), "{gauge}");
    }

    let (st, q) = get(&base, "/api/metrics/queues/%2F/metered?duration=1m").await;
    assert_eq!(st, 200);
    assert_eq!(q["totals"]["enqueued"], n);
    assert_eq!(q["totals"]["delivered"], n);
    assert_eq!(q["totals"]["acked"], n);
    assert!(q["series"]["messages_ready"].as_array().unwrap().len() >= 3);
    assert!(q["series"]["latency_p99_us"].as_array().is_some(), "{q}");
    let (st, e) = get(&base, "/api/metrics/exchanges/%2F/amq.direct").await;
    assert_eq!(st, 200);
    assert_eq!(e["totals"]["publish_in"], n + 1);
    assert_eq!(e["totals"]["publish_out"], n);
    assert_eq!(e["totals"]["unroutable"], 1);
    assert_eq!(e["totals"]["publish_in_bytes"], 2891);

    // Errors: JSON with the right status.
    for (path, code) in [
        ("/api/metrics/timeseries/bogus", 400),
        ("/api/metrics/timeseries/publish?duration=abc", 400),
        ("/api/metrics/timeseries/publish?duration=5h", 400),
        ("/api/metrics/queues/%2F/missing", 404),
        ("/api/metrics/queues/novhost/metered", 404),
        ("/api/metrics/exchanges/%2F/missing", 404),
    ] {
        let (st, body) = get(&base, path).await;
        assert_eq!(st, code, "{path}");
        assert!(body["reason"].is_string(), "{path}: {body}");
    }
    server.shutdown().await;
}
