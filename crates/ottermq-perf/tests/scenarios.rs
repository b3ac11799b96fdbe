//! The scenarios ottermq-perf gained for S4 (fanout to several queues), S6 (many rate-limited
//! connections, broker CPU and memory) and the sink, each run for a second: the binary against
//! an in-process broker on port 0 (or against its own sink), its JSON report checked for
//! non-zero, consistent counts.

use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PERF: &str = env!("CARGO_BIN_EXE_ottermq-perf");

/// Runs the perf binary to completion and parses its final JSON line.
async fn perf(args: &[&str]) -> Value {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(PERF)
            .args(args)
            .arg("--quiet")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ottermq-perf did not finish")
    .expect("ottermq-perf ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ottermq-perf failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("a report line");
    serde_json::from_str(line).expect("report is JSON")
}

/// Runs the perf binary against `server`, with `args` separated by spaces.
async fn perf_on(server: &ottermq::RunningServer, args: &str) -> Value {
    let uri = format!("amqp://guest:guest@{}/%2f", server.amqp_addr);
    let mut all = vec!["--uri", uri.as_str()];
    all.extend(args.split_whitespace());
    perf(&all).await
}

/// Messages ready in a queue of the default vhost, None when there is no such queue.
fn ready(server: &ottermq::RunningServer, queue: &str) -> Option<u64> {
    server
        .broker
        .vhost("/")
        .and_then(|v| v.queue(queue.as_bytes()))
        .map(|q| q.counts().ready)
}

fn n(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_to_ten_queues_delivers_every_message_to_each_consumer() {
    let server = ottermq::testing::start_test_broker().await;
    let r = perf_on(
        &server,
        "-z 1 -x 1 -y 10 -s 256 --rate 2000 --queue s4 --queues 10 --exchange s4-fanout \
         --exchange-type fanout",
    )
    .await;
    let (sent, received) = (n(&r, &["sent"]), n(&r, &["received"]));
    assert!(sent > 0, "{r}");
    assert_eq!(n(&r, &["queues"]), 10);
    // Every consumer has its own queue; each publish reaches all ten, minus what was still in
    // flight when the run stopped.
    assert_eq!(n(&r, &["received_per_consumer", "idle"]), 0, "{r}");
    assert!(received <= sent * 10, "{r}");
    assert!(received >= sent * 10 / 2, "{r}");
    assert!(n(&r, &["received_per_consumer", "max"]) <= sent, "{r}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rate_limited_connections_report_broker_cpu_and_memory() {
    let server = ottermq::testing::start_test_broker().await;
    // The broker runs in this test process, so its pid is ours.
    let pid = std::process::id();
    let r = perf_on(
        &server,
        &format!("-z 2 -x 20 -y 20 --rate 10 -s 64 --queue s6 --queues 20 --broker-pid {pid}"),
    )
    .await;
    let (sent, received) = (n(&r, &["sent"]), n(&r, &["received"]));
    // 20 producers at 10 msg/s for 2 s, started together: about 400.
    assert!((200..=20 * 10 * 3).contains(&sent), "{r}");
    assert!(received > 0 && received <= sent, "{r}");
    assert!(n(&r, &["broker", "rss_kib_max"]) > 0, "{r}");
    assert!(
        r["broker"]["cpu_percent"].as_f64().expect("broker cpu") >= 0.0,
        "{r}"
    );
    assert!(
        r["perf_cpu_percent"].as_f64().expect("perf cpu") > 0.0,
        "{r}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_takes_publishes_and_confirms_them() {
    let mut sink = Command::new(PERF)
        .args(["--sink", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sink started");
    let mut lines = BufReader::new(sink.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("sink printed its address")
        .expect("read")
        .expect("a line");
    let addr: Value = serde_json::from_str(&first).expect("JSON");
    let addr = addr["sink"].as_str().expect("address").to_string();
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let r = perf(&[
        "--uri",
        &uri,
        "-z",
        "1",
        "-x",
        "1",
        "-y",
        "0",
        "--confirm",
        "1000",
    ])
    .await;
    let sent = n(&r, &["sent"]);
    assert!(sent > 0, "{r}");
    assert_eq!(n(&r, &["received"]), 0);
    // Confirms come back per read; all but the last window are in by the end.
    assert!(n(&r, &["confirmed"]) + 1000 >= sent, "{r}");
    let _ = sink.kill().await;
}

/// `--count` makes both brokers of a comparison move the same number of messages: each
/// producer sends exactly that many, all confirmed, the queue holds exactly them, and the run
/// ends once they are confirmed instead of running out its duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_sends_exactly_that_many_and_ends_early() {
    let server = ottermq::testing::start_test_broker().await;
    let r = perf_on(
        &server,
        "-z 30 -x 2 -y 0 --confirm 100 --persistent --count 5000 --keep-queue --queue counted",
    )
    .await;
    assert_eq!(n(&r, &["sent"]), 10_000, "{r}");
    assert_eq!(n(&r, &["confirmed"]), 10_000, "{r}");
    assert!(r["seconds"].as_f64().unwrap_or(99.0) < 29.0, "{r}");
    assert_eq!(ready(&server, "counted"), Some(10_000));
    server.shutdown().await;
}

/// --poll-loop holds every connection on one thread: paced sends reach every consumer, each
/// delivery gives a latency sample, and the manual acks are written (nothing is left in the
/// queues once the consumers' connections close, which would requeue what was unacked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_loop_paces_two_producers_and_acks_for_two_consumers() {
    let server = ottermq::testing::start_test_broker().await;
    let r = perf_on(
        &server,
        "-z 30 -x 2 -y 2 --queues 2 --rate 1000 --count 1500 --manual-ack --multi-ack 10 \
         --keep-queue --queue paced --poll-loop",
    )
    .await;
    assert_eq!(n(&r, &["sent"]), 3_000, "{r}");
    assert_eq!(n(&r, &["received"]), 3_000, "{r}");
    assert_eq!(n(&r, &["received_per_consumer", "min"]), 1_500, "{r}");
    assert_eq!(n(&r, &["latency_us", "samples"]), 3_000, "{r}");
    assert!(n(&r, &["latency_us", "p50"]) > 0, "{r}");
    // 1,500 messages at 1,000 msg/s take at least 1.5 s: the sends were paced.
    let secs = r["seconds"].as_f64().unwrap_or(0.0);
    assert!((1.4..29.0).contains(&secs), "{r}");
    for q in ["paced-0", "paced-1"] {
        assert_eq!(ready(&server, q), Some(0), "{q}: {r}");
    }
    server.shutdown().await;
}

/// --poll-loop only paces: without --rate, or with confirms it does not read, it refuses.
#[tokio::test]
async fn poll_loop_refuses_unpaced_and_confirmed_runs() {
    for extra in [&[][..], &["--rate", "10", "--confirm", "10"][..]] {
        let out = Command::new(PERF)
            .args([
                "--uri",
                "amqp://guest:guest@127.0.0.1:1/%2f",
                "--poll-loop",
                "--quiet",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .output()
            .await
            .expect("ottermq-perf ran");
        assert!(!out.status.success(), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--poll-loop needs --rate"), "{extra:?}: {err}");
    }
}
