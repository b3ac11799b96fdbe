//! `--poll-loop`: every producer and consumer of a paced run on one OS thread, which sends
//! each message at its due time and otherwise sleeps in `ppoll` on the consumers' sockets.
//! The connections are opened and set up on the async runtime, then handed over.
//!
//! Why: at a low, paced rate (S5) every message finds the tool asleep, so what wakes it is in
//! every latency it reports, for any broker. On tokio the sends come from a millisecond timer
//! wheel (two messages every 2 ms at 1,000 msg/s, the second waiting behind the first), and
//! re-arming a sleep costs an eventfd write and an extra epoll_wait. A thread per connection
//! with blocking calls was worse at the tail (OtterMQ p99 0.74 and 0.69 ms against 0.50 and
//! 0.41 on tokio's current-thread runtime, same rounds): its producer and consumer threads
//! can sleep on different vCPUs, and on this VM a round trip
//! whose wake-ups cross vCPUs took 245 us at the median against 47 us on one vCPU
//! (`scripts/vcpu_pingpong.c`, docs/BENCHMARKS.md). One thread woken straight by `ppoll`'s
//! nanosecond timeout or by the socket avoids both.
//! Confirms are not read here, and an unpaced run does not sleep, so both are refused.

use crate::wire::{encode_publishes, Deliveries};
use crate::{publish_properties, Opts, Stats};
use bytes::BytesMut;
use ottermq_protocol::*;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes made room for per read.
const READ_CHUNK: usize = 64 * 1024;
/// The loop looks at the stop flag at least this often.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// A write the broker has not taken in this long fails the run (a broker that blocks
/// publishers would otherwise hold the tool past its end).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A producer's connection, handed over after setup.
pub struct Producer {
    pub sock: TcpStream,
    pub frame_max: u32,
    pub routing_key: String,
}

/// A consumer's connection after basic.consume-ok, with what it had already read.
pub struct Consumer {
    pub sock: TcpStream,
    pub buf: BytesMut,
    pub index: usize,
}

/// Runs until stopped (or every producer reached `--count`); returns the consumers'
/// latencies in microseconds.
pub fn run(
    producers: Vec<Producer>,
    mut consumers: Vec<Consumer>,
    o: &Opts,
    epoch: Instant,
    stats: &Stats,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<u32>> {
    anyhow::ensure!(o.rate > 0, "--poll-loop needs --rate");
    for p in &producers {
        p.sock.set_nonblocking(false)?;
        p.sock.set_write_timeout(Some(WRITE_TIMEOUT))?;
    }
    for c in &consumers {
        c.sock.set_nonblocking(true)?;
    }
    let props = publish_properties(o);
    let publishes: Vec<Method> = producers
        .iter()
        .map(|p| {
            Method::BasicPublish(BasicPublish {
                exchange: ShortStr::from(o.exchange.as_str()),
                routing_key: ShortStr::from(p.routing_key.as_str()),
                mandatory: false,
                immediate: false,
            })
        })
        .collect();
    let mut sent = vec![0u64; producers.len()];
    let mut deliveries: Vec<Deliveries> = consumers
        .iter()
        .map(|_| Deliveries::new(o.manual_ack, o.multi_ack))
        .collect();
    let mut out = BytesMut::with_capacity(o.batch * (o.size + 64));
    let mut body = vec![0u8; o.size];
    let mut scratch = vec![0u8; READ_CHUNK];
    let started = Instant::now();
    // Message k of each producer is due k / rate seconds after the start.
    let due_at = |k: u64| {
        started + Duration::from_nanos((k as u128 * 1_000_000_000 / o.rate as u128) as u64)
    };
    while !stop.load(Ordering::Relaxed) {
        // Send what is due; a late loop catches up in batches.
        let now = Instant::now();
        let mut next = now + MAX_WAIT;
        let mut finished = o.count > 0;
        for (i, p) in producers.iter().enumerate() {
            let limit = if o.count > 0 { o.count } else { u64::MAX };
            if sent[i] < limit && due_at(sent[i]) <= now {
                let due = (now.duration_since(started).as_nanos() * o.rate as u128 / 1_000_000_000)
                    as u64
                    + 1;
                let n = due.min(limit).saturating_sub(sent[i]).min(o.batch as u64);
                out.clear();
                encode_publishes(
                    &mut out,
                    n,
                    epoch,
                    &mut body,
                    &publishes[i],
                    &props,
                    p.frame_max,
                );
                (&p.sock).write_all(&out)?;
                sent[i] += n;
                stats.sent.fetch_add(n, Ordering::Relaxed);
            }
            if sent[i] < limit {
                finished = false;
                next = next.min(due_at(sent[i]));
            }
        }
        // Sleep until the next send is due or a consumer's socket has bytes.
        let wait = next.saturating_duration_since(Instant::now());
        let timeout = Timespec::try_from(wait)?;
        let mut fds: Vec<PollFd> = consumers
            .iter()
            .map(|c| PollFd::new(&c.sock, PollFlags::IN))
            .collect();
        poll(&mut fds, Some(&timeout))?;
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        for (c, d) in consumers
            .iter_mut()
            .zip(deliveries.iter_mut())
            .zip(ready)
            .filter_map(|(cd, r)| r.then_some(cd))
        {
            read_available(c, &mut scratch)?;
            let got = d.drain(&mut c.buf, epoch)?;
            if got > 0 {
                stats.received.fetch_add(got, Ordering::Relaxed);
                stats.per_consumer[c.index].fetch_add(got, Ordering::Relaxed);
            }
            if !d.acks.is_empty() {
                (&c.sock).write_all(&d.acks)?;
                d.acks.clear();
            }
        }
        if finished && consumers.is_empty() {
            break;
        }
    }
    Ok(deliveries.into_iter().flat_map(|d| d.latencies).collect())
}

/// Reads what the socket holds without blocking, through `scratch` (so only the bytes read
/// are copied into the frame buffer); a closed connection is an error.
fn read_available(c: &mut Consumer, scratch: &mut [u8]) -> anyhow::Result<()> {
    loop {
        match (&c.sock).read(scratch) {
            Ok(0) => anyhow::bail!("connection closed by broker"),
            Ok(n) => {
                c.buf.extend_from_slice(&scratch[..n]);
                if n < scratch.len() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
