//! The paged tail of one FIFO (a queue, or one priority level of a priority queue): whole
//! messages in a file, so a backlog beyond the RAM budget costs RAM for a few offsets and
//! counts, not a `QueuedMessage` per message (RabbitMQ's lazy queues keep paged messages as
//! counts too).
//!
//! Appends go to a write buffer flushed to the file when it passes [`WRITE_BUF`] (or when the
//! reader reaches it); reads take one large `pread` of up to the caller's read-ahead and parse
//! every whole record in it. The records read share that one buffer (`Bytes` slices), so a
//! page-in allocates per batch, not per message.
//!
//! Record (little endian): `u32 payload length`, `u32 CRC-32 of the payload`, payload =
//! `u64 seq`, `u64 persist_id`, `i64 enqueue time` and `i64 expiry` (ns from the spill's base
//! instant; expiry `i64::MIN` = none), `u8 flags` (1 redelivered, 2 body in the message log,
//! 4 delivery count follows, 8 trace context follows), with flag 4 `u32 delivery count`, with
//! flag 8 `u16 len + trace context` (`MessageTrace::to_bytes`), `u8 len + exchange`, `u8 len +
//! routing key`, `u32 len + properties`, `u32 body length`, then the body, or for a persistent
//! message already in the log `u32 segment, u64 offset, u64 ticket` (no second copy of the
//! body).
//!
//! The file is unlinked as soon as it is created (nothing is left after a crash: persistent
//! messages come back from the message log). Disk use is bounded: the spill is dropped (file
//! closed, space freed) when its last message leaves, and while a tail lives on, the consumed
//! prefix is punched out of the file ([`PUNCH_EVERY`]) so only the unread part takes space.

use crate::message::{BodyAt, Message, QueuedMessage};
use bytes::{Bytes, BytesMut};
use ottermq_protocol::{RawProperties, ShortStr};
use ottermq_tracing::{MessageTrace, MessageTracer};
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Appends are buffered up to this many bytes before one `pwrite`.
pub const WRITE_BUF: usize = 64 * 1024;
/// A consumed prefix this long is given back to the file system (punch hole).
const PUNCH_EVERY: u64 = 64 * 1024 * 1024;
const HEADER: usize = 8;
const FLAG_REDELIVERED: u8 = 1;
const FLAG_IN_LOG: u8 = 2;
/// A quorum queue message with a delivery count recovered from the log (a requeued one goes
/// back to the RAM head, but recovery may page a returned message).
const FLAG_COUNTED: u8 = 4;
/// A traced message: its span context follows, so its deliver span still has its parent.
const FLAG_TRACED: u8 = 8;

/// The messages of one paged tail, oldest first.
#[derive(Debug)]
pub struct Spill {
    file: Option<File>,
    /// Records appended but not yet written; they follow `file_end`.
    wbuf: Vec<u8>,
    /// Bytes written to the file.
    file_end: u64,
    /// Offset of the next record to read (beyond `file_end`: inside `wbuf`).
    read_off: u64,
    /// File bytes before this offset are punched out already.
    punched: u64,
    count: u64,
    /// Body bytes of the records (what `message_bytes_paged_out` reports).
    bytes: u64,
    /// Times are kept as ns from here.
    base: Instant,
    /// The tracer of the traced messages recorded (one per broker), to rebuild their trace
    /// context when they are read back.
    tracer: Option<Arc<MessageTracer>>,
    /// Messages behind the records, in RAM: a write failed (see [`Spill::push`]).
    held: VecDeque<QueuedMessage>,
    /// Body bytes of `held`.
    held_bytes: u64,
}

/// What one read brought back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub messages: u64,
    /// Body bytes of those messages.
    pub bytes: u64,
}

impl Spill {
    pub fn new() -> Self {
        Spill {
            file: None,
            wbuf: Vec::new(),
            file_end: 0,
            read_off: 0,
            punched: 0,
            count: 0,
            bytes: 0,
            base: Instant::now(),
            tracer: None,
            held: VecDeque::new(),
            held_bytes: 0,
        }
    }

    /// Messages in the tail: records, and messages held in RAM behind them.
    pub fn len(&self) -> u64 {
        self.count + self.held.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Body bytes of the messages in the tail (records and held).
    pub fn body_bytes(&self) -> u64 {
        self.bytes + self.held_bytes
    }

    /// The messages held in RAM behind the records after a failed write, and their bytes.
    pub fn held(&self) -> Batch {
        Batch {
            messages: self.held.len() as u64,
            bytes: self.held_bytes,
        }
    }

    /// Appends `qm` at the tail, with its trace context if it is traced.
    ///
    /// A failed write (the spill file cannot be created or written: disk full, I/O error) must
    /// not put the message ahead of the records already in the tail, nor lose it. So it is
    /// held in RAM behind them, and so is every later message until the records are all read:
    /// the order stays the publish order, at the cost of RAM while the disk fails. Once the
    /// records are read through, the held messages come next (in order) and writing is tried
    /// again with the next message after them. The error of the write that failed is returned
    /// (for the caller to log once); the message is in the tail either way.
    pub fn push(&mut self, qm: QueuedMessage, dir: &Path) -> std::io::Result<()> {
        if !self.held.is_empty() {
            self.hold(qm);
            return Ok(());
        }
        let r = self.write_record(&qm, dir);
        if r.is_err() {
            self.hold(qm);
        }
        r
    }

    fn hold(&mut self, qm: QueuedMessage) {
        self.held_bytes += qm.body_len();
        self.held.push_back(qm);
    }

    /// Encodes `qm` as a record into the write buffer, flushing it once full. On error the
    /// tail is as it was.
    fn write_record(&mut self, qm: &QueuedMessage, dir: &Path) -> std::io::Result<()> {
        let m = &qm.message;
        let in_log = match (qm.paged, qm.body_at) {
            (_, BodyAt::Log { .. }) if qm.persist_id != 0 => true,
            (Some(_), _) => return Err(std::io::Error::other("paged body without a location")),
            _ => false,
        };
        let body_len = qm.body_len();
        let body_len32 =
            u32::try_from(body_len).map_err(|_| std::io::Error::other("body too large"))?;
        let start = self.wbuf.len();
        let w = &mut self.wbuf;
        w.extend_from_slice(&[0u8; HEADER]);
        w.extend_from_slice(&qm.seq.to_le_bytes());
        w.extend_from_slice(&qm.persist_id.to_le_bytes());
        w.extend_from_slice(&ns_from(self.base, qm.enqueued_at).to_le_bytes());
        let exp = qm.expires_at.map_or(i64::MIN, |t| ns_from(self.base, t));
        w.extend_from_slice(&exp.to_le_bytes());
        let mut flags = 0;
        if qm.redelivered {
            flags |= FLAG_REDELIVERED;
        }
        if in_log {
            flags |= FLAG_IN_LOG;
        }
        if qm.delivery_count > 0 {
            flags |= FLAG_COUNTED;
        }
        if m.trace.is_some() {
            flags |= FLAG_TRACED;
        }
        let flags_at = w.len();
        w.push(flags);
        if qm.delivery_count > 0 {
            w.extend_from_slice(&qm.delivery_count.to_le_bytes());
        }
        if let Some(t) = &m.trace {
            let at = w.len();
            w.extend_from_slice(&[0, 0]);
            t.to_bytes(w);
            let n = u16::try_from(w.len() - at - 2).unwrap_or(0);
            if n == 0 {
                // Not representable (a tracestate beyond 64 KiB): kept without its trace.
                w.truncate(at);
                w[flags_at] &= !FLAG_TRACED;
            } else {
                w[at..at + 2].copy_from_slice(&n.to_le_bytes());
                if self.tracer.is_none() {
                    self.tracer = Some(t.tracer().clone());
                }
            }
        }
        w.push(m.exchange.len() as u8);
        w.extend_from_slice(m.exchange.as_bytes());
        w.push(m.routing_key.len() as u8);
        w.extend_from_slice(m.routing_key.as_bytes());
        let props = m.properties.as_bytes();
        w.extend_from_slice(&(props.len() as u32).to_le_bytes());
        w.extend_from_slice(props);
        w.extend_from_slice(&body_len32.to_le_bytes());
        match qm.body_at {
            BodyAt::Log {
                seg,
                offset,
                ticket,
            } if in_log => {
                w.extend_from_slice(&seg.to_le_bytes());
                w.extend_from_slice(&offset.to_le_bytes());
                w.extend_from_slice(&ticket.to_le_bytes());
            }
            _ => w.extend_from_slice(&m.body),
        }
        let payload_len = (w.len() - start - HEADER) as u32;
        let crc = crc32fast::hash(&w[start + HEADER..]);
        w[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
        w[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.count += 1;
        self.bytes += body_len;
        if self.wbuf.len() >= WRITE_BUF {
            if let Err(e) = self.flush(dir) {
                // Not counted: `push` holds the message and the records stay as they were.
                self.wbuf.truncate(start);
                self.count -= 1;
                self.bytes -= body_len;
                return Err(e);
            }
        }
        Ok(())
    }

    fn flush(&mut self, dir: &Path) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(create_unlinked(dir)?);
        }
        if let Some(f) = &self.file {
            f.write_all_at(&self.wbuf, self.file_end)?;
        }
        self.file_end += self.wbuf.len() as u64;
        self.wbuf.clear();
        Ok(())
    }

    /// Reads the oldest records, about `read_ahead` bytes of them (at least one), handing each
    /// message to `out`. An error (I/O, short read, damaged record) leaves the tail unusable:
    /// the caller drops it and counts what it held.
    pub fn pop_batch(
        &mut self,
        read_ahead: usize,
        mut out: impl FnMut(QueuedMessage),
    ) -> std::io::Result<Batch> {
        let mut batch = Batch::default();
        if self.count == 0 {
            // Only messages held after a failed write are left: they come next.
            while let Some(qm) = self.held.pop_front() {
                self.held_bytes -= qm.body_len();
                batch.messages += 1;
                batch.bytes += qm.body_len();
                out(qm);
                if batch.bytes >= read_ahead as u64 {
                    break;
                }
            }
            return Ok(batch);
        }
        let chunk = self.read_chunk(read_ahead)?;
        let now = Instant::now();
        let mut pos = 0usize;
        while pos + HEADER <= chunk.len() && self.count > 0 {
            let len = u32::from_le_bytes(word(&chunk, pos)) as usize;
            let crc = u32::from_le_bytes(word(&chunk, pos + 4));
            let end = pos + HEADER + len;
            if end > chunk.len() {
                break;
            }
            let payload = chunk.slice(pos + HEADER..end);
            if crc32fast::hash(&payload) != crc {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "spill record checksum mismatch",
                ));
            }
            let qm = self.decode(payload, now).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "damaged spill record")
            })?;
            pos = end;
            self.count -= 1;
            self.bytes -= qm.body_len();
            batch.messages += 1;
            batch.bytes += qm.body_len();
            out(qm);
        }
        if batch.messages == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "spill record cut short",
            ));
        }
        self.read_off += pos as u64;
        self.consumed();
        Ok(batch)
    }

    /// When the oldest message of the tail was enqueued, read from its record (the 8 bytes of
    /// its enqueue time, from the write buffer or with one small `pread`), without taking it.
    pub fn oldest_enqueued(&self) -> std::io::Result<Option<Instant>> {
        if self.count == 0 {
            return Ok(self.held.front().map(|m| m.enqueued_at));
        }
        // Header, seq and persist id come first; records never straddle file and buffer.
        const AT: usize = HEADER + 16;
        let mut enq = [0u8; 8];
        if self.read_off >= self.file_end {
            let from = (self.read_off - self.file_end) as usize + AT;
            let b = self.wbuf.get(from..from + 8).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "spill record cut short")
            })?;
            enq.copy_from_slice(b);
        } else {
            let Some(f) = &self.file else {
                return Err(std::io::Error::other("spill file missing"));
            };
            f.read_exact_at(&mut enq, self.read_off + AT as u64)?;
        }
        let ns = i64::from_le_bytes(enq);
        Ok(Some(instant_at(self.base, ns, Instant::now())))
    }

    /// One read at the read offset: from the file, or from the write buffer once the reader
    /// has caught up with what was written. Records never straddle the two.
    fn read_chunk(&mut self, read_ahead: usize) -> std::io::Result<Bytes> {
        if self.read_off >= self.file_end {
            let from = (self.read_off - self.file_end) as usize;
            let avail = self.wbuf.len().saturating_sub(from);
            let n = self
                .first_len(&self.wbuf[from..], avail)
                .max(read_ahead.min(avail));
            return Ok(Bytes::copy_from_slice(
                &self.wbuf[from..from + n.min(avail)],
            ));
        }
        let Some(f) = &self.file else {
            return Err(std::io::Error::other("spill file missing"));
        };
        let avail = (self.file_end - self.read_off) as usize;
        let mut n = read_ahead.min(avail).max(HEADER.min(avail));
        let mut buf = BytesMut::zeroed(n);
        f.read_exact_at(&mut buf, self.read_off)?;
        // A record longer than the read-ahead: read it whole.
        let first = self.first_len(&buf, n);
        if first > n {
            n = first.min(avail);
            buf = BytesMut::zeroed(n);
            f.read_exact_at(&mut buf, self.read_off)?;
        }
        Ok(buf.freeze())
    }

    /// Length of the first record in `b` (header included), or `avail` when unreadable.
    fn first_len(&self, b: &[u8], avail: usize) -> usize {
        if b.len() < HEADER {
            return avail;
        }
        HEADER + u32::from_le_bytes(word(b, 0)) as usize
    }

    /// After a read: empties the file once every record was read, punches out a long consumed
    /// prefix otherwise.
    fn consumed(&mut self) {
        if self.count == 0 {
            self.reset_records();
            return;
        }
        let done = self.read_off.min(self.file_end) & !4095;
        if done >= self.punched + PUNCH_EVERY {
            if let Some(f) = &self.file {
                let r = rustix::fs::fallocate(
                    f,
                    rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
                    self.punched,
                    done - self.punched,
                );
                if let Err(e) = r {
                    tracing::debug!(error = %e, "could not punch the consumed part of a spill file");
                }
            }
            self.punched = done;
        }
    }

    /// Forgets every record after a failed read (their place cannot be found any more) and
    /// returns what they held; messages held in RAM behind them stay, and come next.
    pub fn drop_records(&mut self) -> Batch {
        let lost = Batch {
            messages: self.count,
            bytes: self.bytes,
        };
        self.reset_records();
        lost
    }

    /// Forgets every record (all read, or lost): the file is closed and so freed.
    fn reset_records(&mut self) {
        self.file = None;
        self.wbuf = Vec::new();
        self.file_end = 0;
        self.read_off = 0;
        self.punched = 0;
        self.count = 0;
        self.bytes = 0;
    }

    fn decode(&self, p: Bytes, now: Instant) -> Option<QueuedMessage> {
        let mut r = Reader { b: &p, pos: 0 };
        let seq = r.u64()?;
        let persist_id = r.u64()?;
        let enq = r.u64()? as i64;
        let exp = r.u64()? as i64;
        let flags = r.u8()?;
        let delivery_count = if flags & FLAG_COUNTED != 0 {
            r.u32()?
        } else {
            0
        };
        let trace = if flags & FLAG_TRACED != 0 {
            let n = r.u16()? as usize;
            let b = r.take(n)?;
            self.tracer
                .as_ref()
                .and_then(|t| MessageTrace::from_bytes(t, &p[b]))
        } else {
            None
        };
        let n = r.u8()? as usize;
        let ex = r.take(n)?;
        let n = r.u8()? as usize;
        let rk = r.take(n)?;
        let plen = r.u32()? as usize;
        let props = r.take(plen)?;
        let body_len = r.u32()?;
        let enqueued_at = instant_at(self.base, enq, now);
        let (body, body_at, paged) = if flags & FLAG_IN_LOG != 0 {
            let seg = r.u32()?;
            let offset = r.u64()?;
            let ticket = r.u64()?;
            (
                Bytes::new(),
                BodyAt::Log {
                    seg,
                    offset,
                    ticket,
                },
                Some(body_len),
            )
        } else {
            let b = r.take(body_len as usize)?;
            (p.slice(b), BodyAt::Nowhere, None)
        };
        if r.pos != p.len() {
            return None;
        }
        Some(QueuedMessage {
            seq,
            message: Message {
                exchange: ShortStr::from_bytes(p.slice(ex)).ok()?,
                routing_key: ShortStr::from_bytes(p.slice(rk)).ok()?,
                properties: RawProperties::new(p.slice(props)),
                body,
                received_at: enqueued_at,
                trace,
            },
            redelivered: flags & FLAG_REDELIVERED != 0,
            enqueued_at,
            persist_id,
            expires_at: (exp != i64::MIN).then(|| instant_at(self.base, exp, now)),
            body_at,
            paged,
            delivery_count,
        })
    }

    /// Test hook: the file behind the tail (flushed first), to damage it.
    #[cfg(test)]
    pub(crate) fn file_for_test(&mut self, dir: &Path) -> &File {
        self.flush(dir).expect("flush");
        self.file.as_ref().expect("file")
    }
}

impl Default for Spill {
    fn default() -> Self {
        Self::new()
    }
}

fn word(b: &[u8], at: usize) -> [u8; 4] {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<std::ops::Range<usize>> {
        let end = self.pos.checked_add(n)?;
        if end > self.b.len() {
            return None;
        }
        let r = self.pos..end;
        self.pos = end;
        Some(r)
    }
    fn u8(&mut self) -> Option<u8> {
        let r = self.take(1)?;
        Some(self.b[r.start])
    }
    fn u16(&mut self) -> Option<u16> {
        let r = self.take(2)?;
        Some(u16::from_le_bytes(self.b[r].try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        let r = self.take(4)?;
        Some(u32::from_le_bytes(self.b[r].try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        let r = self.take(8)?;
        Some(u64::from_le_bytes(self.b[r].try_into().ok()?))
    }
}

/// `t` as signed ns from `base`.
fn ns_from(base: Instant, t: Instant) -> i64 {
    match t.checked_duration_since(base) {
        Some(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        None => -(base.duration_since(t).as_nanos().min(i64::MAX as u128) as i64),
    }
}

/// The instant `ns` from `base` (`now` when it cannot be represented).
fn instant_at(base: Instant, ns: i64, now: Instant) -> Instant {
    if ns >= 0 {
        base.checked_add(Duration::from_nanos(ns as u64))
    } else {
        base.checked_sub(Duration::from_nanos(ns.unsigned_abs()))
    }
    .unwrap_or(now)
}

fn create_unlinked(dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    // Unique within the process (in-memory brokers share the temp directory) and created new,
    // so two spills never share a file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("pages-{}-{n}.tmp", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Unlinked at once: the file lives as long as the open descriptor.
    std::fs::remove_file(&path)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qm(seq: u64, body: &[u8]) -> QueuedMessage {
        let now = Instant::now();
        QueuedMessage {
            seq,
            message: Message {
                exchange: ShortStr::from("ex"),
                routing_key: ShortStr::from("rk"),
                properties: RawProperties::empty(),
                body: Bytes::copy_from_slice(body),
                received_at: now,
                trace: None,
            },
            redelivered: seq % 2 == 1,
            enqueued_at: now,
            persist_id: 0,
            expires_at: seq.is_multiple_of(3).then(|| now + Duration::from_secs(5)),
            body_at: BodyAt::Nowhere,
            paged: None,
            delivery_count: (seq % 4) as u32,
        }
    }

    fn dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ottermq-spill-test-{}", std::process::id()))
    }

    fn body(i: u64) -> Vec<u8> {
        let mut b = vec![(i % 251) as u8; 100 + (i as usize % 300)];
        b[..8].copy_from_slice(&i.to_le_bytes());
        b
    }

    #[test]
    fn round_trip_in_order_through_file_and_buffer() {
        let d = dir();
        let mut s = Spill::new();
        let n = 5000u64;
        let originals: Vec<_> = (0..n).map(|i| qm(i, &body(i))).collect();
        for q in &originals {
            s.push(q.clone(), &d).expect("push");
        }
        assert_eq!(s.len(), n);
        let mut got = Vec::new();
        while !s.is_empty() {
            let b = s.pop_batch(16 * 1024, |m| got.push(m)).expect("read");
            assert!(b.messages > 0);
        }
        assert_eq!(got.len() as u64, n);
        for (a, b) in originals.iter().zip(&got) {
            assert_eq!(a.seq, b.seq);
            assert_eq!(a.message.body, b.message.body);
            assert_eq!(a.redelivered, b.redelivered);
            assert_eq!(a.delivery_count, b.delivery_count);
            assert_eq!(a.expires_at, b.expires_at);
            assert_eq!(a.enqueued_at, b.enqueued_at);
            assert_eq!(a.message.routing_key, b.message.routing_key);
        }
        assert_eq!(s.body_bytes(), 0);
        assert!(s.file.is_none(), "file closed once empty");
    }

    #[test]
    fn log_location_kept_instead_of_body() {
        let d = dir();
        let mut s = Spill::new();
        let mut m = qm(7, b"");
        m.persist_id = 42;
        m.body_at = BodyAt::Log {
            seg: 3,
            offset: 99,
            ticket: 5,
        };
        m.paged = Some(1000);
        s.push(m.clone(), &d).expect("push");
        assert_eq!(s.body_bytes(), 1000);
        let mut got = None;
        s.pop_batch(1024, |m| got = Some(m)).expect("read");
        let g = got.expect("one");
        assert_eq!(g.persist_id, 42);
        assert_eq!(g.paged, Some(1000));
        assert_eq!(g.body_at, m.body_at);
    }

    /// A traced message read back from the spill (from the write buffer and from the file)
    /// carries the same trace context; an untraced one next to it stays untraced.
    #[test]
    fn trace_context_is_kept_through_the_spill() {
        use opentelemetry::trace::TracerProvider as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = Arc::new(MessageTracer::new(provider.tracer("spill-test"), true));
        let props = RawProperties::empty();
        let (_span, trace) = tracer
            .on_publish(&ottermq_tracing::PublishInfo {
                exchange: b"ex",
                routing_key: b"rk",
                properties: &props,
                body_size: 100,
                peer: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
                started: Instant::now(),
            })
            .expect("traced");
        let d = dir();
        let mut s = Spill::new();
        let n = 2000u64;
        for i in 0..n {
            let mut m = qm(i, &body(i));
            if i % 2 == 0 {
                m.message.trace = Some(trace.clone());
            }
            s.push(m.clone(), &d).expect("push");
        }
        let mut got = Vec::new();
        while !s.is_empty() {
            s.pop_batch(16 * 1024, |m| got.push(m)).expect("read");
        }
        assert_eq!(got.len() as u64, n);
        for m in &got {
            match &m.message.trace {
                Some(t) => {
                    assert_eq!(m.seq % 2, 0);
                    assert_eq!(t.span_context(), trace.span_context());
                }
                None => assert_eq!(m.seq % 2, 1, "message {} lost its trace", m.seq),
            }
            // A delivery count and a trace context in one record (seq 2 mod 4) both come back.
            assert_eq!(m.delivery_count, (m.seq % 4) as u32);
            assert_eq!(m.message.body, body(m.seq));
        }
    }

    #[test]
    fn truncated_or_damaged_file_is_an_error() {
        let d = dir();
        for damage in [true, false] {
            let mut s = Spill::new();
            for i in 0..2000 {
                s.push(qm(i, &body(i)), &d).expect("push");
            }
            let f = s.file_for_test(&d);
            if damage {
                f.write_all_at(b"XXXX", 100).expect("damage");
            } else {
                f.set_len(50).expect("truncate");
            }
            let r = s.pop_batch(64 * 1024, |_| {});
            assert!(r.is_err(), "damage={damage}: {r:?}");
        }
    }
}
