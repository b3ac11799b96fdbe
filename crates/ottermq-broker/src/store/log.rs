//! The message log of one vhost: persistent messages of its durable queues, their first
//! deliveries and their settlements, appended to numbered segment files.
//!
//! Publishers, consumers and ackers encode their records into the pending batch under one short
//! lock (a memcpy, never I/O); the group-commit thread (`commit.rs`) writes the batch with one
//! `write` per segment and one `fdatasync`, then publishes how far the log is durable. Every
//! append returns a ticket; a publisher confirm waits until the durable position reaches it.
//!
//! Reclaiming space: each segment counts its live (unsettled) messages. An ack written into
//! segment S for a message of an older segment T makes S a keeper of T: deleting S while T
//! exists would resurrect that message at recovery. So a segment goes once it is not the one
//! being written, has no live messages, and every segment it holds acks for is gone.

use super::record::{self, put_long, put_short};
use crate::message::Message;
use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

pub const REC_PUBLISH: u8 = 1;
pub const REC_SETTLE: u8 = 2;
pub const REC_DELIVER: u8 = 3;
/// A publish with its enqueue time (wall clock), so a TTL resumes after a restart. Type 1 is
/// still read (written by older versions): its TTL starts again at recovery.
pub const REC_PUBLISH_AT: u8 = 4;
/// A quorum queue message went back to its queue (a requeue, or the implicit return at
/// recovery of one that was out to a consumer), with its new delivery count.
pub const REC_RETURN: u8 = 5;

/// Milliseconds since the Unix epoch (the enqueue time a publish record keeps).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Segment number in the high half, index in the low half: an id names its segment.
pub fn segment_of(id: u64) -> u32 {
    (id >> 32) as u32
}

#[derive(Debug, Default)]
pub(crate) struct SegInfo {
    pub live: u64,
    /// Older segments this one holds settle records for.
    pub keeps: SmallVec<[u32; 4]>,
}

#[derive(Debug)]
pub(crate) struct Pending {
    /// Encoded records per segment, in append order.
    pub chunks: Vec<(u32, Vec<u8>)>,
    /// Records appended so far (the last ticket handed out).
    pub appended: u64,
    pub to_delete: Vec<u32>,
    pub shutdown: bool,
    cur_seg: u32,
    cur_bytes: u64,
    cur_index: u32,
    segs: BTreeMap<u32, SegInfo>,
}

/// One vhost's message log.
#[derive(Debug)]
pub struct MessageLog {
    pub dir: PathBuf,
    pub(crate) pending: Mutex<Pending>,
    pub(crate) wake: Condvar,
    /// Signalled after each fsync (page-ins waiting for a record to be on disk).
    pub(crate) synced: Condvar,
    pub(crate) durable_tx: watch::Sender<u64>,
    segment_max: u64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub fn segment_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join(format!("{seg:08}.seg"))
}

impl MessageLog {
    /// Starts the log after recovery: `segs` are the surviving segments with their live counts,
    /// new records go to a fresh segment after the last one.
    pub(crate) fn start(
        dir: PathBuf,
        segs: BTreeMap<u32, SegInfo>,
        segment_max: u64,
    ) -> std::io::Result<Arc<Self>> {
        let cur = segs.keys().next_back().map_or(1, |s| s + 1);
        let mut segs = segs;
        segs.insert(cur, SegInfo::default());
        let (durable_tx, _) = watch::channel(0);
        let log = Arc::new(MessageLog {
            dir,
            pending: Mutex::new(Pending {
                chunks: Vec::new(),
                appended: 0,
                to_delete: Vec::new(),
                shutdown: false,
                cur_seg: cur,
                cur_bytes: 0,
                cur_index: 0,
                segs,
            }),
            wake: Condvar::new(),
            synced: Condvar::new(),
            durable_tx,
            segment_max: segment_max.max(4096),
            writer: Mutex::new(None),
        });
        {
            let mut p = log.pending.lock();
            p.sweep();
        }
        let l = log.clone();
        let h = std::thread::Builder::new()
            .name("ottermq-store".into())
            .spawn(move || super::commit::run(l))?;
        *log.writer.lock() = Some(h);
        Ok(log)
    }

    /// Receives the durable position (records fsynced so far) as it advances.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable_tx.subscribe()
    }

    /// Records up to this ticket are on disk.
    pub fn durable(&self) -> u64 {
        *self.durable_tx.borrow()
    }

    /// Appends a persistent message for `queue`; returns its id, the ticket to wait for and
    /// the offset of its body in the segment file (where a paged-out body is read back).
    pub fn append_publish(&self, queue: &[u8], m: &Message) -> (u64, u64, u64) {
        let mut p = self.pending.lock();
        let id = p.next_id();
        let at = wall_ms();
        // Record header, type, id, time, three short strings, properties, body length.
        let body_offset = p.cur_bytes
            + (record::HEADER + 1 + 8 + 8 + 3 + 4 + 4) as u64
            + (queue.len() + m.exchange.as_bytes().len() + m.routing_key.as_bytes().len()) as u64
            + m.properties.as_bytes().len() as u64;
        let ticket = p.write(|o| {
            o.push(REC_PUBLISH_AT);
            o.extend_from_slice(&id.to_le_bytes());
            o.extend_from_slice(&at.to_le_bytes());
            put_short(o, queue);
            put_short(o, m.exchange.as_bytes());
            put_short(o, m.routing_key.as_bytes());
            put_long(o, m.properties.as_bytes());
            put_long(o, &m.body);
        });
        if let Some(s) = p.segs.get_mut(&segment_of(id)) {
            s.live += 1;
        }
        self.maybe_rotate(&mut p);
        drop(p);
        self.wake.notify_one();
        (id, ticket, body_offset)
    }

    /// Blocks until the record with `ticket` is on disk (or the log is shut down). Only a
    /// page-in of a message paged out less than one fsync ago waits here.
    pub fn wait_durable(&self, ticket: u64) {
        if self.durable() >= ticket {
            return;
        }
        let mut p = self.pending.lock();
        while self.durable() < ticket && !p.shutdown {
            // Timed: a notification sent between the check and the wait is not lost for long.
            self.synced
                .wait_for(&mut p, std::time::Duration::from_millis(5));
        }
    }

    /// Records a delivery of a message: the first one, so it comes back `redelivered` after a
    /// restart, and for a quorum queue every one after a return, so recovery knows it was out
    /// to a consumer when the broker stopped. With `keep` the record's segment is kept as long
    /// as the message's own (a quorum queue's delivery count must not be lost).
    pub fn mark_delivered(&self, id: u64, keep: bool) {
        let mut p = self.pending.lock();
        p.write(|o| {
            o.push(REC_DELIVER);
            o.extend_from_slice(&id.to_le_bytes());
        });
        if keep {
            p.keep(id);
        }
        drop(p);
        self.wake.notify_one();
    }

    /// Records that a quorum queue message went back to its queue with delivery count
    /// `count`. The record's segment is kept while the message's own exists.
    pub fn mark_returned(&self, id: u64, count: u32) {
        let mut p = self.pending.lock();
        p.write(|o| {
            o.push(REC_RETURN);
            o.extend_from_slice(&id.to_le_bytes());
            o.extend_from_slice(&count.to_le_bytes());
        });
        p.keep(id);
        drop(p);
        self.wake.notify_one();
    }

    /// Records that a message left its queue for good (acked, rejected, purged, deleted).
    pub fn settle(&self, id: u64) {
        let mut p = self.pending.lock();
        p.write(|o| {
            o.push(REC_SETTLE);
            o.extend_from_slice(&id.to_le_bytes());
        });
        p.forget(id);
        self.maybe_rotate(&mut p);
        drop(p);
        self.wake.notify_one();
    }

    fn maybe_rotate(&self, p: &mut Pending) {
        if p.cur_bytes >= self.segment_max {
            p.cur_seg += 1;
            p.cur_bytes = 0;
            p.cur_index = 0;
            let seg = p.cur_seg;
            p.segs.insert(seg, SegInfo::default());
            p.sweep();
        }
    }

    /// Live messages and number of segments (for tests and the management API).
    pub fn segment_count(&self) -> usize {
        self.pending.lock().segs.len()
    }

    /// Writes what is pending, stops the writer thread and waits for it.
    pub fn close(&self) {
        self.pending.lock().shutdown = true;
        self.wake.notify_one();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }
}

impl Pending {
    fn next_id(&mut self) -> u64 {
        let id = ((self.cur_seg as u64) << 32) | self.cur_index as u64;
        self.cur_index += 1;
        id
    }

    fn write(&mut self, fill: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let seg = self.cur_seg;
        if self.chunks.last().is_none_or(|(s, _)| *s != seg) {
            self.chunks.push((seg, Vec::with_capacity(64 * 1024)));
        }
        let Some((_, buf)) = self.chunks.last_mut() else {
            unreachable!("a chunk was just pushed")
        };
        let before = buf.len();
        record::append(buf, fill);
        self.cur_bytes += (buf.len() - before) as u64;
        self.appended += 1;
        self.appended
    }

    /// A message of segment `segment_of(id)` is settled; the current segment now keeps it.
    pub(crate) fn forget(&mut self, id: u64) {
        let target = segment_of(id);
        let cur = self.cur_seg;
        let mut emptied = false;
        if let Some(s) = self.segs.get_mut(&target) {
            s.live = s.live.saturating_sub(1);
            emptied = s.live == 0;
        }
        self.keep(id);
        if emptied && target != cur {
            self.sweep();
        }
    }

    /// A record about a message of segment `segment_of(id)` was written: the current segment
    /// may not go before that one.
    pub(crate) fn keep(&mut self, id: u64) {
        let target = segment_of(id);
        if target != self.cur_seg {
            if let Some(s) = self.segs.get_mut(&self.cur_seg) {
                if !s.keeps.contains(&target) {
                    s.keeps.push(target);
                }
            }
        }
    }

    /// Deletes every segment that holds nothing needed (ascending, so a chain frees at once).
    fn sweep(&mut self) {
        let cur = self.cur_seg;
        let ids: SmallVec<[u32; 16]> = self.segs.keys().copied().collect();
        for id in ids {
            if id == cur {
                continue;
            }
            let free = match self.segs.get(&id) {
                Some(s) => s.live == 0 && s.keeps.iter().all(|t| !self.segs.contains_key(t)),
                None => false,
            };
            if free {
                self.segs.remove(&id);
                self.to_delete.push(id);
            }
        }
    }
}
