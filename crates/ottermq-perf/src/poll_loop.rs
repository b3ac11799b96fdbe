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
/// latencies in microseconds. The caller has checked that `--rate` is set.
pub fn run(
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    o: &Opts,
    epoch: Instant,
    stats: &Stats,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<u32>> {
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
    // The sockets apart from the rest, so the poll set is built once and borrows them while
    // each consumer's buffer and deliveries change.
    let (socks, mut readers): (Vec<TcpStream>, Vec<(BytesMut, usize, Deliveries)>) = consumers
        .into_iter()
        .map(|c| {
            let d = Deliveries::new(o.manual_ack, o.multi_ack);
            (c.sock, (c.buf, c.index, d))
        })
        .unzip();
    let mut fds: Vec<PollFd> = socks
        .iter()
        .map(|s| PollFd::new(s, PollFlags::IN))
        .collect();
    let limit = if o.count > 0 { o.count } else { u64::MAX };
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
        poll(&mut fds, Some(&timeout))?;
        for ((sock, fd), (buf, index, d)) in socks.iter().zip(&fds).zip(&mut readers) {
            if fd.revents().is_empty() {
                continue;
            }
            read_available(sock, buf, &mut scratch)?;
            let got = d.drain(buf, epoch)?;
            if got > 0 {
                stats.received.fetch_add(got, Ordering::Relaxed);
                stats.per_consumer[*index].fetch_add(got, Ordering::Relaxed);
            }
            if !d.acks.is_empty() {
                (&*sock).write_all(&d.acks)?;
                d.acks.clear();
            }
        }
        if finished && socks.is_empty() {
            break;
        }
    }
    Ok(readers
        .into_iter()
        .flat_map(|(_, _, d)| d.latencies)
        .collect())
}

/// Reads what the socket holds without blocking, through `scratch` (so only the bytes read
/// are copied into the frame buffer); a closed connection is an error.
fn read_available(sock: &TcpStream, buf: &mut BytesMut, scratch: &mut [u8]) -> anyhow::Result<()> {
    loop {
        match (&*sock).read(scratch) {
            Ok(0) => anyhow::bail!("connection closed by broker"),
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                if n < scratch.len() {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
