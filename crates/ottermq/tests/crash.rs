//! Crash safety: a real broker process is killed with SIGKILL at a random moment while a client
//! publishes persistent messages with confirms, several rounds in a row on one data directory.
//! After every restart each confirmed message is present exactly once, nothing acked comes
//! back, and messages that had been delivered (unacked) come back with `redelivered` set.

mod common;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROUNDS: usize = 5;
const QUEUE: &str = "crash-test";

/// The broker child; killed when dropped so a failing test leaves nothing behind.
struct Broker {
    child: Child,
    port: u16,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn(dir: &Path, round: usize) -> Broker {
    let port = free_port();
    let http = free_port();
    let log = std::fs::File::create(dir.with_extension(format!("log{round}"))).expect("log file");
    let child = Command::new(broker_binary())
        .args(["--bind", "127.0.0.1", "--amqp-port", &port.to_string()])
        .args(["--http-port", &http.to_string(), "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn broker");
    let b = Broker { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "broker did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b
}

/// A pseudo-random number from the clock (no extra dependency for the test).
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(7);
    nanos.wrapping_mul(6364136223846793005) % n.max(1)
}

#[derive(Default)]
struct Ledger {
    next_id: u64,
    confirmed: HashSet<u64>,
    /// Acks followed by a confirm (so on disk before the kill).
    acked: HashSet<u64>,
    /// Delivered and left unacked, followed by a confirm: must come back redelivered.
    delivered: HashSet<u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_sigkill() {
    let dir = std::env::temp_dir().join(unique("ottermq-crash"));
    let mut ledger = Ledger::default();
    let mut total_confirmed = 0usize;
    for round in 0..=ROUNDS {
        let broker = spawn(&dir, round).await;
        let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port);
        let conn = lapin_connect(&url).await;
        let ch = within("channel", conn.create_channel()).await.expect("ch");
        let opts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let q = within(
            "declare",
            ch.queue_declare(QUEUE.into(), opts, FieldTable::default()),
        )
        .await
        .expect("declare");
        let n = q.message_count() as usize;

        // Verify: read everything, check it against the ledger.
        let mut seen: HashMap<u64, (usize, bool, u64)> = HashMap::new();
        if n > 0 {
            let mut consumer = within(
                "consume",
                ch.basic_consume(
                    QUEUE.into(),
                    "v".into(),
                    Default::default(),
                    FieldTable::default(),
                ),
            )
            .await
            .expect("consume");
            for _ in 0..n {
                let d = within("delivery", consumer.next())
                    .await
                    .expect("stream ended")
                    .expect("delivery");
                let id: u64 = std::str::from_utf8(&d.data)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .expect("numeric body");
                let e = seen.entry(id).or_insert((0, d.redelivered, d.delivery_tag));
                e.0 += 1;
            }
        }
        for id in &ledger.confirmed {
            if ledger.acked.contains(id) {
                continue;
            }
            let count = seen.get(id).map_or(0, |e| e.0);
            assert_eq!(
                count, 1,
                "round {round}: confirmed message {id} present {count} times"
            );
        }
        for (id, (count, redelivered, _)) in &seen {
            assert!(*id < ledger.next_id, "round {round}: unknown message {id}");
            assert!(
                !ledger.acked.contains(id),
                "round {round}: acked message {id} came back"
            );
            assert_eq!(*count, 1, "round {round}: message {id} duplicated");
            if ledger.delivered.contains(id) {
                assert!(
                    *redelivered,
                    "round {round}: delivered message {id} lost redelivered"
                );
            }
        }
        if round == ROUNDS {
            break;
        }
        // Ack the even ones, leave the odd ones delivered and unacked.
        let mut acked_now = Vec::new();
        let mut delivered_now = Vec::new();
        for (id, (_, _, tag)) in &seen {
            if id % 2 == 0 {
                within("ack", ch.basic_ack(*tag, Default::default()))
                    .await
                    .expect("ack");
                acked_now.push(*id);
            } else {
                delivered_now.push(*id);
            }
        }

        // Publish with confirms (200 in flight) until the broker is killed.
        let pch = within("channel", conn.create_channel()).await.expect("ch");
        within("confirm", pch.confirm_select(Default::default()))
            .await
            .expect("confirm.select");
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let window = Arc::new(tokio::sync::Semaphore::new(200));
        let start_id = ledger.next_id;
        let publisher = {
            let confirmed = confirmed.clone();
            let pch = pch.clone();
            tokio::spawn(async move {
                let mut id = start_id;
                let props = BasicProperties::default().with_delivery_mode(2);
                let body = |id: u64| id.to_string().into_bytes();
                loop {
                    let Ok(permit) = window.clone().acquire_owned().await else {
                        return id;
                    };
                    let r = pch
                        .basic_publish(
                            "".into(),
                            QUEUE.into(),
                            Default::default(),
                            &body(id),
                            props.clone(),
                        )
                        .await;
                    let Ok(confirm) = r else { return id + 1 };
                    let confirmed = confirmed.clone();
                    let this = id;
                    tokio::spawn(async move {
                        if let Ok(c) = confirm.await {
                            if c.is_ack() {
                                confirmed.lock().expect("lock").push(this);
                            }
                        }
                        drop(permit);
                    });
                    id += 1;
                }
            })
        };
        let delay = 300 + random_below(1200);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(broker); // SIGKILL
        let published_upto = within("publisher ends", publisher)
            .await
            .expect("publisher task");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let confirmed = std::mem::take(&mut *confirmed.lock().expect("lock"));
        assert!(
            !confirmed.is_empty(),
            "round {round}: nothing confirmed in {delay} ms"
        );
        total_confirmed += confirmed.len();
        // A confirm arrived after the acks: they were written before it, so they are on disk.
        ledger.acked.extend(acked_now);
        ledger.delivered.extend(delivered_now);
        ledger.confirmed.extend(confirmed);
        ledger.next_id = published_upto;
    }
    eprintln!(
        "{ROUNDS} kills, {total_confirmed} confirmed, {} acked",
        ledger.acked.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    for round in 0..=ROUNDS {
        let _ = std::fs::remove_file(dir.with_extension(format!("log{round}")));
    }
}

/// Transactions: tx.commit-ok for persistent messages in a durable queue comes only once they
/// are on disk (as in RabbitMQ), so every batch whose commit-ok arrived before a SIGKILL is
/// there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transactions_survive_sigkill() {
    const BATCH: u64 = 20;
    let dir = std::env::temp_dir().join(unique("ottermq-crash-tx"));
    let mut committed: Vec<u64> = Vec::new();
    let mut next_id = 0u64;
    for round in 0..=3 {
        let broker = spawn(&dir, round).await;
        let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port);
        let conn = lapin_connect(&url).await;
        let ch = within("channel", conn.create_channel()).await.expect("ch");
        let opts = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let q = within(
            "declare",
            ch.queue_declare("crash-tx".into(), opts, FieldTable::default()),
        )
        .await
        .expect("declare");
        // Everything committed so far. (A commit cut short by the kill may leave part of its
        // batch: the log does not write a transaction atomically; see docs/DURABILITY.md.)
        let mut present = HashSet::new();
        for _ in 0..q.message_count() {
            let m = within(
                "get",
                ch.basic_get("crash-tx".into(), BasicGetOptions { no_ack: true }),
            )
            .await
            .expect("get")
            .expect("a message");
            let id: u64 = std::str::from_utf8(&m.delivery.data)
                .ok()
                .and_then(|s| s.parse().ok())
                .expect("numeric body");
            present.insert(id);
        }
        for id in &committed {
            assert!(
                present.contains(id),
                "round {round}: committed message {id} lost"
            );
        }
        for id in &present {
            assert!(*id < next_id, "round {round}: unknown message {id}");
        }
        if round == 3 {
            break;
        }
        committed.clear(); // the gets above took them

        let pch = within("channel", conn.create_channel()).await.expect("ch");
        within("tx.select", pch.tx_select())
            .await
            .expect("tx.select");
        let start_id = next_id;
        let done = Arc::new(Mutex::new(Vec::new()));
        let publisher = {
            let done = done.clone();
            tokio::spawn(async move {
                let props = BasicProperties::default().with_delivery_mode(2);
                let mut id = start_id;
                loop {
                    for i in id..id + BATCH {
                        let r = pch
                            .basic_publish(
                                "".into(),
                                "crash-tx".into(),
                                Default::default(),
                                i.to_string().as_bytes(),
                                props.clone(),
                            )
                            .await;
                        if r.is_err() {
                            return id + BATCH;
                        }
                    }
                    if pch.tx_commit().await.is_err() {
                        return id + BATCH;
                    }
                    done.lock().expect("lock").extend(id..id + BATCH);
                    id += BATCH;
                }
            })
        };
        let delay = 200 + random_below(800);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        drop(broker); // SIGKILL
        next_id = within("publisher ends", publisher).await.expect("task");
        committed = std::mem::take(&mut *done.lock().expect("lock"));
        assert!(!committed.is_empty(), "round {round}: nothing committed");
    }
    let _ = std::fs::remove_dir_all(&dir);
    for round in 0..=3 {
        let _ = std::fs::remove_file(dir.with_extension(format!("log{round}")));
    }
}
