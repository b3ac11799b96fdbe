//! `ottermq-perf`: drives producers and consumers against any AMQP 0-9-1 broker and reports
//! send / receive rates and end-to-end latency (each body carries its send time).

mod client;
mod poll_loop;
mod procstat;
mod sink;
mod wire;

use anyhow::Context;
use bytes::BytesMut;
use clap::Parser;
use client::Conn;
use ottermq_protocol::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use wire::{encode_publishes, Deliveries};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "ottermq-perf",
    about = "AMQP 0-9-1 load generator (PerfTest-like)"
)]
struct Opts {
    /// Broker URI: amqp://user:pass@host:port/vhost
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    #[arg(long, short = 'x', default_value_t = 1)]
    producers: usize,
    #[arg(long, short = 'y', default_value_t = 1)]
    consumers: usize,
    /// Message body size in bytes (at least 8: the send timestamp)
    #[arg(long, short = 's', default_value_t = 16)]
    size: usize,
    /// Run time in seconds
    #[arg(long, short = 'z', default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value = "ottermq-perf")]
    queue: String,
    /// Consumers ack manually (default: autoack)
    #[arg(long)]
    manual_ack: bool,
    /// basic.qos prefetch for manual-ack consumers
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// With --manual-ack: ack every N messages with multiple=true
    #[arg(long, default_value_t = 1)]
    multi_ack: u64,
    /// Publisher confirms with at most N unconfirmed messages per producer (0: off)
    #[arg(long, default_value_t = 0)]
    confirm: u64,
    /// delivery-mode 2 and a durable queue
    #[arg(long)]
    persistent: bool,
    /// Messages per producer (0: no limit): each stops after this many (once they are confirmed,
    /// with --confirm), and the run ends early once all are sent and received, so runs
    /// against two brokers move the same number of messages
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Messages per second per producer (0: as fast as possible)
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Publishes encoded per socket write
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Print only the final JSON line
    #[arg(long)]
    quiet: bool,
    /// Leave the queue (and what is in it) when done, instead of deleting it
    #[arg(long)]
    keep_queue: bool,
    /// Exchange the producers publish to, declared by the control connection ("": the default
    /// exchange, routing by queue name)
    #[arg(long, default_value = "")]
    exchange: String,
    /// Type of --exchange (direct, fanout, topic, headers)
    #[arg(long, default_value = "direct")]
    exchange_type: String,
    /// Number of queues: above 1 they are <queue>-0 .. <queue>-(N-1), each bound to --exchange
    /// with its name as binding key; consumer i consumes queue i mod N, producer i publishes
    /// with the routing key of queue i mod N
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// Run every connection on one thread (a current-thread runtime): a message read by the
    /// consumer is handled on the thread that was woken for it, with no hand-off to another
    /// worker, which lowers the tool's own latency at low rates (S5); not for throughput runs
    #[arg(long)]
    single_thread: bool,
    /// Run every producer and consumer on one OS thread that sends each message at its due
    /// time and otherwise sleeps in ppoll on the consumers' sockets (see poll_loop.rs): no
    /// async reactor between the clock, the socket and the timestamps, the lowest latency the
    /// tool can report at a paced rate (S5). Needs --rate; no --confirm
    #[arg(long)]
    poll_loop: bool,
    /// Broker process id: its CPU share and resident memory go into the report
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Run as a sink on this address instead (see sink.rs): answers the handshake and setup,
    /// discards publishes, so a run against it measures the load generator's own ceiling
    #[arg(long, value_name = "ADDR")]
    sink: Option<String>,
}

impl Opts {
    fn queue_names(&self) -> Vec<String> {
        if self.queues <= 1 {
            vec![self.queue.clone()]
        } else {
            (0..self.queues)
                .map(|i| format!("{}-{i}", self.queue))
                .collect()
        }
    }
}

struct Target {
    addr: String,
    user: String,
    pass: String,
    vhost: String,
}

fn parse_uri(uri: &str) -> anyhow::Result<Target> {
    let rest = uri
        .strip_prefix("amqp://")
        .context("URI must start with amqp://")?;
    let (creds, hostpart) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
    let (addr, vhost) = hostpart.split_once('/').unwrap_or((hostpart, "%2f"));
    let vhost = if vhost.is_empty() {
        "/".to_string()
    } else {
        vhost.replace("%2f", "/").replace("%2F", "/")
    };
    Ok(Target {
        addr: addr.to_string(),
        user: user.to_string(),
        pass: pass.to_string(),
        vhost,
    })
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    confirmed: AtomicU64,
    received: AtomicU64,
    /// Deliveries per consumer, in consumer order.
    per_consumer: Vec<AtomicU64>,
}

fn main() -> anyhow::Result<()> {
    let o = Opts::parse();
    let mut rt = if o.single_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    rt.enable_all().build()?.block_on(run(o))
}

async fn run(o: Opts) -> anyhow::Result<()> {
    if let Some(addr) = &o.sink {
        return sink::run(addr).await;
    }
    anyhow::ensure!(o.size >= 8, "--size must be at least 8 (the timestamp)");
    anyhow::ensure!(o.queues >= 1, "--queues must be at least 1");
    anyhow::ensure!(
        !o.poll_loop || (o.confirm == 0 && o.rate > 0),
        "--poll-loop needs --rate and does not read confirms (no --confirm)"
    );
    let t = Arc::new(parse_uri(&o.uri)?);
    let epoch = Instant::now();
    let stats = Arc::new(Stats {
        per_consumer: (0..o.consumers).map(|_| AtomicU64::new(0)).collect(),
        ..Stats::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let names = o.queue_names();

    // Set up the exchange and queues from a control connection.
    let mut ctl = Conn::open(&t.addr, &t.user, &t.pass, &t.vhost).await?;
    if !o.exchange.is_empty() {
        ctl.send(
            1,
            &Method::ExchangeDeclare(ExchangeDeclare {
                exchange: o.exchange.as_str().into(),
                kind: o.exchange_type.as_str().into(),
                durable: o.persistent,
                ..Default::default()
            }),
        )
        .await?;
        let Method::ExchangeDeclareOk = ctl.method().await? else {
            anyhow::bail!("exchange.declare failed")
        };
    }
    for name in &names {
        ctl.send(
            1,
            &Method::QueueDeclare(QueueDeclare {
                queue: name.as_str().into(),
                durable: o.persistent,
                ..Default::default()
            }),
        )
        .await?;
        let Method::QueueDeclareOk(_) = ctl.method().await? else {
            anyhow::bail!("queue.declare failed")
        };
        ctl.send(
            1,
            &Method::QueuePurge(QueuePurge {
                queue: name.as_str().into(),
                nowait: false,
            }),
        )
        .await?;
        ctl.method().await?;
        if !o.exchange.is_empty() {
            ctl.send(
                1,
                &Method::QueueBind(QueueBind {
                    queue: name.as_str().into(),
                    exchange: o.exchange.as_str().into(),
                    routing_key: name.as_str().into(),
                    ..Default::default()
                }),
            )
            .await?;
            let Method::QueueBindOk = ctl.method().await? else {
                anyhow::bail!("queue.bind failed")
            };
        }
    }

    let mut consumers = Vec::new();
    // Producers start together once every connection is open, so the counts cover the same
    // interval as the rates (opening 1,000 connections takes a while).
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    // With --poll-loop one task below holds every connection instead.
    let (async_consumers, async_producers) = if o.poll_loop {
        (0, 0)
    } else {
        (o.consumers, o.producers)
    };
    for i in 0..async_consumers {
        let conn = Conn::open(&t.addr, &t.user, &t.pass, &t.vhost).await?;
        consumers.push(tokio::spawn(consume(
            conn,
            o.clone(),
            names[i % names.len()].clone(),
            i,
            epoch,
            stats.clone(),
            stop.clone(),
        )));
    }
    let mut producers = Vec::new();
    for i in 0..async_producers {
        let conn = Conn::open(&t.addr, &t.user, &t.pass, &t.vhost).await?;
        producers.push(tokio::spawn(produce(
            conn,
            o.clone(),
            names[i % names.len()].clone(),
            go_rx.clone(),
            epoch,
            stats.clone(),
            stop.clone(),
        )));
    }

    if o.poll_loop {
        consumers.push(spawn_poll_loop(&t, &o, &names, go_rx.clone(), epoch, &stats, &stop).await?);
    }

    let ticks = procstat::clock_ticks();
    let broker_pid = o.broker_pid.map(|p| p.to_string());
    let broker_start = broker_pid.as_deref().and_then(procstat::sample);
    let self_start = procstat::sample("self");
    let machine_start = procstat::machine();
    let mut broker_rss_max = broker_start.map_or(0, |s| s.rss_kib);
    let start = Instant::now();
    let _ = go_tx.send(true);
    let (mut last_sent, mut last_recv) = (0, 0);
    // With --count the run ends within 10 ms of the last message being settled.
    let done = || {
        let total = o.count * o.producers as u64;
        let settled = if o.confirm > 0 {
            stats.confirmed.load(Ordering::Relaxed)
        } else {
            stats.sent.load(Ordering::Relaxed)
        };
        o.count > 0
            && settled >= total
            && (o.consumers == 0 || stats.received.load(Ordering::Relaxed) >= total)
    };
    for sec in 1..=o.duration {
        let tick = start + Duration::from_secs(sec);
        while o.count > 0 && Instant::now() + Duration::from_millis(10) < tick && !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if done() {
            break;
        }
        tokio::time::sleep_until(tick.into()).await;
        if let Some(s) = broker_pid.as_deref().and_then(procstat::sample) {
            broker_rss_max = broker_rss_max.max(s.rss_kib);
        }
        let (s, r) = (
            stats.sent.load(Ordering::Relaxed),
            stats.received.load(Ordering::Relaxed),
        );
        if !o.quiet {
            eprintln!(
                "time {sec}s, sent {} msg/s, received {} msg/s",
                s - last_sent,
                r - last_recv
            );
        }
        (last_sent, last_recv) = (s, r);
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let sent = stats.sent.load(Ordering::Relaxed);
    let received = stats.received.load(Ordering::Relaxed);
    let per_consumer: Vec<u64> = stats
        .per_consumer
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let broker_end = broker_pid.as_deref().and_then(procstat::sample);
    let self_end = procstat::sample("self");
    let steal = match (machine_start, procstat::machine()) {
        (Some(a), Some(b)) => serde_json::json!(procstat::steal_percent(a, b)),
        _ => serde_json::Value::Null,
    };
    let broker = match (broker_start, broker_end) {
        (Some(a), Some(b)) => serde_json::json!({
            "pid": o.broker_pid,
            "cpu_percent": procstat::cpu_percent(a, b, ticks, elapsed),
            "rss_kib_end": b.rss_kib,
            "rss_kib_max": broker_rss_max.max(b.rss_kib),
        }),
        _ => serde_json::Value::Null,
    };
    let perf_cpu = match (self_start, self_end) {
        (Some(a), Some(b)) => serde_json::json!(procstat::cpu_percent(a, b, ticks, elapsed)),
        _ => serde_json::Value::Null,
    };
    for p in producers {
        p.abort();
    }
    let mut latencies = Vec::new();
    for c in consumers {
        // Consumers see the stop flag within one read timeout and hand back their samples.
        if let Ok(Ok(Ok(mut l))) = tokio::time::timeout(Duration::from_secs(5), c).await {
            latencies.append(&mut l);
        }
    }
    latencies.sort_unstable();
    let pct = |q: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i] as u64
    };
    let report = serde_json::json!({
        "uri_host": t.addr,
        "producers": o.producers, "consumers": o.consumers, "size": o.size,
        "manual_ack": o.manual_ack, "confirm": o.confirm, "persistent": o.persistent, "rate": o.rate, "count": o.count, "poll_loop": o.poll_loop, "single_thread": o.single_thread,
        "exchange": o.exchange, "exchange_type": o.exchange_type, "queues": names.len(),
        "seconds": elapsed,
        "sent": sent, "received": received,
        "confirmed": stats.confirmed.load(Ordering::Relaxed),
        "send_rate": sent as f64 / elapsed, "receive_rate": received as f64 / elapsed,
        "received_per_consumer": {
            "min": per_consumer.iter().min().copied().unwrap_or(0),
            "max": per_consumer.iter().max().copied().unwrap_or(0),
            "idle": per_consumer.iter().filter(|n| **n == 0).count(),
        },
        "broker": broker,
        "perf_cpu_percent": perf_cpu, "steal_percent": steal,
        "latency_us": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0), "samples": latencies.len()},
    });
    println!("{report}");
    if o.keep_queue {
        return Ok(());
    }
    for name in &names {
        ctl.send(
            1,
            &Method::QueueDelete(QueueDelete {
                queue: name.as_str().into(),
                ..Default::default()
            }),
        )
        .await?;
        ctl.method().await?;
    }
    if !o.exchange.is_empty() {
        ctl.send(
            1,
            &Method::ExchangeDelete(ExchangeDelete {
                exchange: o.exchange.as_str().into(),
                ..Default::default()
            }),
        )
        .await?;
        ctl.method().await?;
    }
    Ok(())
}

/// The properties of every publish: delivery-mode 2 with --persistent, none otherwise.
fn publish_properties(o: &Opts) -> RawProperties {
    if o.persistent {
        BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        }
        .to_raw()
    } else {
        RawProperties::empty()
    }
}

/// Publishes in batches until stopped, honouring the confirm window and the rate limit.
async fn produce(
    mut c: Conn,
    o: Opts,
    routing_key: String,
    mut go: tokio::sync::watch::Receiver<bool>,
    epoch: Instant,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let props = publish_properties(&o);
    let confirmed = Arc::new(AtomicU64::new(0));
    let window = Arc::new(tokio::sync::Notify::new());
    if o.confirm > 0 {
        c.send(1, &Method::ConfirmSelect(ConfirmSelect { nowait: false }))
            .await?;
        c.method().await?;
    }
    let Conn {
        mut rd,
        mut wr,
        buf: rbuf,
        frame_max,
    } = c;
    // Reads confirms (and anything else) so the socket never backs up.
    let reader = {
        let (confirmed, window, stats) = (confirmed.clone(), window.clone(), stats.clone());
        tokio::spawn(async move {
            let mut buf = rbuf;
            loop {
                while let Ok(Some(f)) = decode_frame(&mut buf, 0) {
                    if let Frame::Method {
                        method: Method::BasicAck(a),
                        ..
                    } = f
                    {
                        let prev = confirmed.load(Ordering::Relaxed);
                        let now = if a.multiple {
                            a.delivery_tag
                        } else {
                            prev.max(a.delivery_tag)
                        };
                        if now > prev {
                            confirmed.store(now, Ordering::Relaxed);
                            stats.confirmed.fetch_add(now - prev, Ordering::Relaxed);
                            window.notify_one();
                        }
                    }
                }
                use tokio::io::AsyncReadExt;
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
    };
    let mut out = BytesMut::with_capacity(o.batch * (o.size + 64));
    let mut body = vec![0u8; o.size];
    let mut seq = 0u64;
    let publish = Method::BasicPublish(BasicPublish {
        exchange: ShortStr::from(o.exchange.as_str()),
        routing_key: ShortStr::from(routing_key.as_str()),
        mandatory: false,
        immediate: false,
    });
    if go.wait_for(|go| *go).await.is_err() {
        return Ok(());
    }
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut n = o.batch as u64;
        if o.count > 0 {
            if seq >= o.count {
                break;
            }
            n = n.min(o.count - seq);
        }
        if o.confirm > 0 {
            loop {
                let in_flight = seq - confirmed.load(Ordering::Relaxed);
                if in_flight < o.confirm {
                    n = n.min(o.confirm - in_flight);
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), window.notified()).await;
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
        }
        if o.rate > 0 {
            let due = (started.elapsed().as_secs_f64() * o.rate as f64) as u64;
            if due <= seq {
                tokio::time::sleep(Duration::from_micros(1_000_000 / o.rate.max(1))).await;
                continue;
            }
            n = n.min(due - seq);
        }
        out.clear();
        encode_publishes(&mut out, n, epoch, &mut body, &publish, &props, frame_max);
        wr.write_all(&out).await?;
        seq += n;
        stats.sent.fetch_add(n, Ordering::Relaxed);
    }
    // With --count the confirms still to come are read until the run stops.
    while o.count > 0 && o.confirm > 0 && !stop.load(Ordering::Relaxed) {
        let _ = tokio::time::timeout(Duration::from_millis(100), window.notified()).await;
    }
    reader.abort();
    Ok(())
}

/// Consumes until stopped; returns the end-to-end latencies seen, in microseconds.
async fn consume(
    mut c: Conn,
    o: Opts,
    queue: String,
    index: usize,
    epoch: Instant,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<u32>> {
    start_consuming(&mut c, &o, &queue).await?;
    let mut d = Deliveries::new(o.manual_ack, o.multi_ack);
    while !stop.load(Ordering::Relaxed) {
        let got = d.drain(&mut c.buf, epoch)?;
        if got > 0 {
            stats.received.fetch_add(got, Ordering::Relaxed);
            stats.per_consumer[index].fetch_add(got, Ordering::Relaxed);
        }
        if !d.acks.is_empty() {
            c.wr.write_all(&d.acks).await?;
            d.acks.clear();
        }
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(Duration::from_millis(200), c.rd.read_buf(&mut c.buf)).await {
            Ok(Ok(0)) => anyhow::bail!("connection closed by broker"),
            Ok(Err(e)) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(d.latencies)
}

/// Opens and sets up every connection of a --poll-loop run, then hands them to one blocking
/// thread once the producers may start; the task yields the latencies.
async fn spawn_poll_loop(
    t: &Target,
    o: &Opts,
    names: &[String],
    mut go: tokio::sync::watch::Receiver<bool>,
    epoch: Instant,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Vec<u32>>>> {
    let mut consumers = Vec::new();
    for index in 0..o.consumers {
        let mut c = Conn::open(&t.addr, &t.user, &t.pass, &t.vhost).await?;
        start_consuming(&mut c, o, &names[index % names.len()]).await?;
        let sock = c.rd.reunite(c.wr)?.into_std()?;
        consumers.push(poll_loop::Consumer {
            sock,
            buf: c.buf,
            index,
        });
    }
    let mut producers = Vec::new();
    for i in 0..o.producers {
        let c = Conn::open(&t.addr, &t.user, &t.pass, &t.vhost).await?;
        let frame_max = c.frame_max;
        let sock = c.rd.reunite(c.wr)?.into_std()?;
        let routing_key = names[i % names.len()].clone();
        producers.push(poll_loop::Producer {
            sock,
            frame_max,
            routing_key,
        });
    }
    let (o, stats, stop) = (o.clone(), stats.clone(), stop.clone());
    Ok(tokio::spawn(async move {
        if go.wait_for(|go| *go).await.is_err() {
            return Ok(Vec::new());
        }
        tokio::task::spawn_blocking(move || {
            poll_loop::run(producers, consumers, &o, epoch, &stats, &stop)
        })
        .await?
    }))
}

/// basic.qos (with --manual-ack) and basic.consume on channel 1, waiting for consume-ok.
async fn start_consuming(c: &mut Conn, o: &Opts, queue: &str) -> anyhow::Result<()> {
    if o.manual_ack {
        c.send(
            1,
            &Method::BasicQos(BasicQos {
                prefetch_size: 0,
                prefetch_count: o.prefetch,
                global: false,
            }),
        )
        .await?;
        c.method().await?;
    }
    c.send(
        1,
        &Method::BasicConsume(BasicConsume {
            queue: queue.into(),
            no_ack: !o.manual_ack,
            ..Default::default()
        }),
    )
    .await?;
    let Method::BasicConsumeOk(_) = c.method().await? else {
        anyhow::bail!("basic.consume failed")
    };
    Ok(())
}
