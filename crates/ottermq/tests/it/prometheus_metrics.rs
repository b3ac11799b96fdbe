//! `/metrics` end to end: exact counters and histograms after a known workload, both text
//! formats, and bounded cardinality when there are more queues than the per-object limit.

use crate::common;
use common::*;
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};

async fn scrape(base: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = within(path, req.send()).await.expect("request");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.text().await.expect("body"))
}

/// Sample lines as (name with labels, value).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Distinct `queue` label values in the text.
fn queue_labels(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = &l[l.find("queue=\"")? + 7..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

/// Every family has HELP and TYPE before its samples, and each family's samples are together.
fn assert_well_formed(text: &str) {
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut seen_done = BTreeSet::new();
    let mut current = String::new();
    for l in text.lines() {
        if let Some(r) = l.strip_prefix("# HELP ") {
            helped.insert(r.split(' ').next().unwrap().to_string());
        } else if let Some(r) = l.strip_prefix("# TYPE ") {
            let fam = r.split(' ').next().unwrap().to_string();
            assert!(helped.contains(&fam), "TYPE without HELP: {fam}");
            assert!(typed.insert(fam.clone()), "family twice: {fam}");
            if !current.is_empty() {
                seen_done.insert(std::mem::take(&mut current));
            }
            current = fam;
        } else if !l.starts_with('#') && !l.is_empty() {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("ottermq_"), "unprefixed: {l}");
            assert!(
                name.starts_with(current.as_str()),
                "sample {name} outside its family {current}"
            );
        }
    }
}

#[tokio::test]
async fn counters_histograms_and_formats() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // OtterMQ's own endpoint
    }
    let server = ottermq::testing::start_test_broker().await;
    let base = format!("http://{}", server.http_addr.expect("http"));
    let conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare("prom-q".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .unwrap();
    let n = 200u64;
    let body = [7u8; 300];
    for _ in 0..n {
        within(
            "publish",
            ch.basic_publish(
                "".into(),
                "prom-q".into(),
                Default::default(),
                &body,
                Default::default(),
            ),
        )
        .await
        .unwrap();
    }
    within("confirms", ch.wait_for_confirms()).await.unwrap();
    let (st, _, text) = scrape(&base, "/metrics", None).await;
    assert_eq!(st, 200);
    let s = samples(&text);
    assert_eq!(
        s["ottermq_queue_messages_ready{vhost=\"/\",queue=\"prom-q\"}"],
        n as f64
    );
    assert!(
        s["ottermq_queue_oldest_ready_message_age_seconds{vhost=\"/\",queue=\"prom-q\"}"] > 0.0
    );

    let mut consumer = within(
        "consume",
        ch.basic_consume(
            "prom-q".into(),
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
    // Acks are asynchronous: wait until the broker has counted them all.
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&base, "/metrics", None).await.2;
        if samples(&text)["ottermq_messages_acked_total"] >= n as f64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_well_formed(&text);
    let s = samples(&text);
    let nf = n as f64;
    assert_eq!(s["ottermq_messages_published_total"], nf);
    assert_eq!(s["ottermq_messages_routed_total"], nf);
    assert_eq!(s["ottermq_messages_confirmed_total"], nf);
    assert_eq!(s["ottermq_messages_delivered_total"], nf);
    assert_eq!(s["ottermq_messages_acked_total"], nf);
    assert_eq!(s["ottermq_messages_ready"], 0.0);
    assert_eq!(s["ottermq_messages_published_bytes_total"], nf * 300.0);
    assert_eq!(s["ottermq_message_body_size_bytes_count"], nf);
    assert_eq!(s["ottermq_message_body_size_bytes_sum"], nf * 300.0);
    assert_eq!(s["ottermq_message_body_size_bytes_bucket{le=\"256\"}"], 0.0);
    assert_eq!(s["ottermq_message_body_size_bytes_bucket{le=\"1024\"}"], nf);
    assert_eq!(s["ottermq_message_body_size_bytes_bucket{le=\"+Inf\"}"], nf);
    assert_eq!(s["ottermq_message_time_in_queue_seconds_count"], nf);
    assert_eq!(s["ottermq_deliver_to_ack_seconds_count"], nf);
    assert_eq!(s["ottermq_publish_to_confirm_seconds_count"], nf);
    assert_eq!(
        s["ottermq_queue_time_in_queue_seconds_count{vhost=\"/\",queue=\"prom-q\"}"],
        nf
    );
    assert_eq!(
        s["ottermq_exchange_messages_published_bytes_total{vhost=\"/\",exchange=\"\",type=\"direct\"}"],
        nf * 300.0
    );
    assert_eq!(s["ottermq_connections"], 1.0);
    assert_eq!(s["ottermq_consumers"], 1.0);
    assert!(s["ottermq_process_resident_memory_bytes"] > 1e6);
    // Buckets are cumulative.
    let mut last = 0.0;
    for l in text
        .lines()
        .filter(|l| l.starts_with("ottermq_deliver_to_ack_seconds_bucket"))
    {
        let v: f64 = l.rsplit_once(' ').unwrap().1.parse().unwrap();
        assert!(v >= last, "{l}");
        last = v;
    }
    assert_eq!(last, nf);

    // Counters survive the channel closing (retired totals and histograms).
    within("close", ch.close(200, "bye".into())).await.unwrap();
    let s = samples(&scrape(&base, "/metrics", None).await.2);
    assert_eq!(s["ottermq_messages_published_total"], nf);
    assert_eq!(s["ottermq_deliver_to_ack_seconds_count"], nf);
    assert_eq!(s["ottermq_message_body_size_bytes_sum"], nf * 300.0);

    // OpenMetrics when asked for it.
    let (st, ct, om) = scrape(
        &base,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert_eq!(st, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE ottermq_messages_published counter\n"));
    assert!(om.contains("ottermq_messages_published_total 200\n"));
    assert!(om.contains("# TYPE ottermq_build info\n"));
    let (_, ct, _) = scrape(&base, "/metrics", None).await;
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    conn.close(200, "bye".into()).await.ok();
    server.shutdown().await;
}

#[tokio::test]
async fn per_object_series_are_bounded() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let limit = 10;
    let server = ottermq::testing::start_test_broker_with(|s| {
        s.broker.prometheus_per_object_limit = limit;
    })
    .await;
    let base = format!("http://{}", server.http_addr.expect("http"));
    let conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = within("channel", conn.create_channel()).await.unwrap();
    for i in 0..50 {
        within(
            "declare",
            ch.queue_declare(
                format!("card-{i:02}").as_str().into(),
                Default::default(),
                Default::default(),
            ),
        )
        .await
        .unwrap();
    }
    let (st, _, text) = scrape(&base, "/metrics", None).await;
    assert_eq!(st, 200);
    let names = queue_labels(&text);
    assert_eq!(names.len(), limit, "{names:?}");
    // The stable choice: first by vhost and name.
    assert_eq!(names.iter().next().map(String::as_str), Some("card-00"));
    let s = samples(&text);
    assert_eq!(s["ottermq_queues"], 50.0);
    assert_eq!(
        s["ottermq_prometheus_per_object_omitted{object=\"queue\"}"],
        40.0
    );
    // Aggregates still cover every queue; the exchange series are bounded too.
    let exchanges = text
        .lines()
        .filter(|l| l.starts_with("ottermq_exchange_messages_published_total{"))
        .count();
    assert!(exchanges <= limit);
    // The per-object endpoint has them all, and a second scrape picks the same queues.
    let (_, _, all) = scrape(&base, "/metrics/per-object", None).await;
    assert_eq!(queue_labels(&all).len(), 50);
    assert_well_formed(&all);
    let again = queue_labels(&scrape(&base, "/metrics", None).await.2);
    assert_eq!(again, names);
    // Lines per scrape grow with the limit, not with the queue count.
    let bounded_lines = text.lines().count();
    let all_lines = all.lines().count();
    assert!(
        bounded_lines < all_lines / 2,
        "{bounded_lines} vs {all_lines}"
    );
    conn.close(200, "bye".into()).await.ok();
    server.shutdown().await;
}
