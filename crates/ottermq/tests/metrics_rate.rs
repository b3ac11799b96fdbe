//! The metrics core against a known workload: a publisher paced at a fixed rate, the counters
//! exact afterwards and every sampled rate that lies wholly inside the paced period within 1 %
//! of the pace.

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const RATE: u64 = 500; // messages per second
const SECONDS: u64 = 10;
const INTERVAL: Duration = Duration::from_secs(2);

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Rates of the samples whose whole interval lies in `[start_ms, end_ms]`.
fn rates_inside(series: &Value, start_ms: i64, end_ms: i64) -> Vec<f64> {
    let step = INTERVAL.as_millis() as i64;
    series["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| {
            let t = p[0].as_i64()?;
            (t - step >= start_ms && t <= end_ms).then(|| p[1].as_f64())?
        })
        .collect()
}

#[tokio::test]
async fn paced_publisher_gives_exact_counters_and_rates_within_one_percent() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // OtterMQ's own API
    }
    let server = ottermq::testing::start_test_broker_with(|s| {
        s.broker.metrics.fine_interval = INTERVAL;
        s.broker.metrics.fine_len = 60;
        s.broker.metrics.coarse_interval = Duration::from_secs(60);
        s.broker.metrics.coarse_len = 10;
    })
    .await;
    let base = format!("http://{}", server.http_addr.expect("http"));
    let url = format!("amqp://guest:guest@{}/%2f", server.amqp_addr);
    let conn = lapin_connect(&url).await;
    let pub_ch = within("channel", conn.create_channel()).await.unwrap();
    let sub_ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        pub_ch.queue_declare("paced".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    let mut consumer = within(
        "consume",
        sub_ch.basic_consume(
            "paced".into(),
            "".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        ),
    )
    .await
    .unwrap();
    let n = RATE * SECONDS;
    let received = tokio::spawn(async move {
        let mut got = 0u64;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
                Ok(Some(Ok(_))) => got += 1,
                _ => break,
            }
        }
        got
    });

    // Message i leaves at start + i / RATE: an absolute schedule, so a late wake-up catches up
    // instead of drifting, and any window holds RATE x its length, give or take its edges.
    let start_ms = unix_ms();
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs(1) / RATE as u32;
    for i in 0..n {
        tokio::time::sleep_until(start + period * i as u32).await;
        within(
            "publish",
            pub_ch.basic_publish(
                "".into(),
                "paced".into(),
                Default::default(),
                b"sixteen-byte-msg",
                Default::default(),
            ),
        )
        .await
        .unwrap();
    }
    let end_ms = unix_ms();
    assert_eq!(received.await.unwrap(), n, "every message delivered");
    // Two more samples so the last paced interval is in the series.
    tokio::time::sleep(INTERVAL * 2).await;

    let o = http_json_ok(&base, "/api/metrics/overview").await;
    assert_eq!(o["totals"]["published"], n);
    assert_eq!(o["totals"]["delivered"], n, "{o}");
    let q = http_json_ok(&base, "/api/metrics/queues/%2F/paced?duration=1m").await;
    assert_eq!(q["totals"]["enqueued"], n);
    assert_eq!(q["totals"]["delivered"], n);

    for metric in ["publish", "deliver"] {
        let series = http_json_ok(
            &base,
            &format!("/api/metrics/timeseries/{metric}?duration=1m"),
        )
        .await;
        let rates = rates_inside(&series, start_ms, end_ms);
        assert!(
            rates.len() >= 3,
            "{metric}: want 3+ samples inside the paced period, got {rates:?} from {series}"
        );
        for r in &rates {
            let err = (r - RATE as f64).abs() / RATE as f64;
            assert!(
                err <= 0.01,
                "{metric}: rate {r} is {:.2} % off {RATE}/s (samples {rates:?})",
                err * 100.0
            );
        }
    }
    server.shutdown().await;
}
