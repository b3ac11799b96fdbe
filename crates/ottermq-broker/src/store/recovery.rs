//! Replaying a vhost's message segments at start, in bounded memory.
//!
//! Publish records add a message, deliver records mark it as delivered once (it comes back
//! `redelivered`), settle records remove it. Return records (quorum queues) give a message's
//! delivery count; a delivery after the last return means it was out to a consumer when the
//! broker stopped. What is left, in id order, is each durable queue's content in publish
//! order. The segments are read twice, oldest first, each through a fixed read buffer
//! ([`record::FileReader`]), so memory does not grow with the data:
//!
//! 1. [`scan`] checks every record and keeps only ids, one bit each: which publishes are good,
//!    which were delivered, which are out to a consumer, which were settled ([`IdSet`]), and
//!    the delivery count of each unsettled returned message. It reports the damage, repairs a
//!    torn tail, and counts each segment's live messages and which older segments it keeps
//!    (`log.rs`), so the log can start before any message is loaded.
//! 2. [`RecoveredLog::messages`] reads the publish records again, one at a time, and hands
//!    each unsettled one to the caller (the broker puts it straight into its queue, which pages
//!    what is past its RAM budget out to its spill file); settled ones are skipped unread
//!    beyond their record.
//!
//! Damage is reported, never fatal: a torn tail of the newest segment (the write a crash
//! interrupted) is cut off with a warning; a record whose checksum fails in the middle of a
//! file is skipped and reported with its file and offset; everything else still loads.

use super::log::{
    segment_of, SegInfo, REC_DELIVER, REC_PUBLISH, REC_PUBLISH_AT, REC_RETURN, REC_SETTLE,
};
use super::record::{self, Fields, Item, Malformed};
use bytes::Bytes;
use ottermq_protocol::{RawProperties, ShortStr};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// The file ends inside a record: the interrupted last write. Truncated.
    TornTail,
    /// A record's checksum does not match (or a length cannot be trusted) with data after it.
    Corrupt,
    /// The checksum matches but the content does not decode.
    Malformed,
}

/// One piece of damage found while recovering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub file: PathBuf,
    pub offset: u64,
    pub kind: IssueKind,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            IssueKind::TornTail => "torn write at the tail, truncated",
            IssueKind::Corrupt => "corrupt record (checksum mismatch), skipped",
            IssueKind::Malformed => "undecodable record, skipped",
        };
        write!(f, "{}: offset {}: {what}", self.file.display(), self.offset)
    }
}

/// A persistent message found on disk.
#[derive(Debug, Clone)]
pub struct RecoveredMessage {
    pub id: u64,
    pub queue: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: RawProperties,
    pub body: Bytes,
    pub delivered: bool,
    /// The delivery count of its last return record (quorum queues; 0 without one).
    pub returned: u32,
    /// A delivery record follows its last return (or it has no return and was delivered):
    /// it was out to a consumer when the broker stopped.
    pub out: bool,
    /// When it was enqueued (ms since the Unix epoch); None for a record of an older version.
    pub enqueued_ms: Option<u64>,
    /// Offset of the body in its segment file (lazy paging reads it back from there).
    pub body_offset: u64,
}

/// The smallest publish record (header, type, id, three empty short strings, empty properties
/// and body; type 1, without the time): a segment of `n` bytes holds at most `n / MIN_PUBLISH`
/// ids, since only publishes take an index.
const MIN_PUBLISH: u64 = (record::HEADER + 1 + 8 + 3 + 4 + 4) as u64;

/// A set of message ids, one bit per id: an id is a segment number and an index counted from
/// 0 in that segment, so each segment has a bitmap as long as its highest index. An id whose
/// segment is not on disk, or whose index that segment's size rules out, is not kept (no
/// record can refer to it), so a damaged record never makes the set large.
#[derive(Debug, Default)]
pub struct IdSet {
    /// Segment → (most words its bitmap may have, the bitmap).
    segs: BTreeMap<u32, (usize, Vec<u64>)>,
}

impl IdSet {
    /// A set that may hold the ids of these segments (number, file size).
    fn for_segments(segs: &[(u32, u64)]) -> Self {
        let segs = segs
            .iter()
            .map(|&(seg, len)| (seg, ((len / MIN_PUBLISH).div_ceil(64) as usize, Vec::new())))
            .collect();
        IdSet { segs }
    }

    fn insert(&mut self, id: u64) {
        let Some((max, bits)) = self.segs.get_mut(&segment_of(id)) else {
            return;
        };
        let index = (id & u32::MAX as u64) as usize;
        let word = index / 64;
        if word >= *max {
            return;
        }
        if word >= bits.len() {
            bits.resize(word + 1, 0);
        }
        bits[word] |= 1 << (index % 64);
    }

    fn remove(&mut self, id: u64) {
        let index = (id & u32::MAX as u64) as usize;
        if let Some(w) = self
            .segs
            .get_mut(&segment_of(id))
            .and_then(|(_, bits)| bits.get_mut(index / 64))
        {
            *w &= !(1 << (index % 64));
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        let index = (id & u32::MAX as u64) as usize;
        self.segs
            .get(&segment_of(id))
            .and_then(|(_, bits)| bits.get(index / 64))
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// Ids of `seg` in `self` and not in `other`.
    fn count_without(&self, seg: u32, other: &IdSet) -> u64 {
        let Some((_, bits)) = self.segs.get(&seg) else {
            return 0;
        };
        let empty = Vec::new();
        let minus = other.segs.get(&seg).map_or(&empty, |(_, b)| b);
        bits.iter()
            .enumerate()
            .map(|(i, w)| (w & !minus.get(i).copied().unwrap_or(0)).count_ones() as u64)
            .sum()
    }

    /// Heap bytes the set holds.
    pub fn heap_bytes(&self) -> usize {
        self.segs
            .values()
            .map(|(_, b)| b.capacity() * 8)
            .sum::<usize>()
            + self.segs.len() * std::mem::size_of::<(u32, (usize, Vec<u64>))>()
    }
}

/// What the first pass found in a vhost's segments: everything but the messages themselves.
#[derive(Debug, Default)]
pub struct RecoveredLog {
    dir: PathBuf,
    /// The segment files, ascending.
    files: Vec<u32>,
    /// Publish records that are intact and decode.
    published: IdSet,
    delivered: IdSet,
    /// Delivered after their last return (or delivered, never returned): out to a consumer
    /// when the broker stopped.
    out: IdSet,
    settled: IdSet,
    /// Delivery count of each unsettled message with a return record (quorum queues only, so
    /// as many as were requeued and not yet settled).
    returned: HashMap<u64, u32>,
    pub(crate) segs: BTreeMap<u32, SegInfo>,
    pub issues: Vec<Issue>,
    /// Bytes read from segment files by the first pass.
    pub bytes_read: u64,
    /// Unsettled messages: what [`Self::messages`] hands over.
    pub live: u64,
}

/// Every message of a vhost's segments collected at once: for tests and for inspecting a copy
/// of a data directory, not for the broker's start (it uses [`scan`] and
/// [`RecoveredLog::messages`], which hold one message at a time).
#[derive(Debug, Default)]
pub struct Replayed {
    /// Unsettled messages, ascending by id (publish order).
    pub messages: Vec<RecoveredMessage>,
    pub issues: Vec<Issue>,
}

fn list_segments(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut segs = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(segs),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u32>().ok())
        {
            segs.push(n);
        }
    }
    segs.sort_unstable();
    Ok(segs)
}

/// Scans then collects every message (see [`Replayed`]). With `repair`, a torn tail of the
/// newest segment is truncated in place; without it the files are left as they are.
pub fn replay(dir: &Path, repair: bool) -> std::io::Result<Replayed> {
    let mut log = scan(dir, repair)?;
    let mut messages = Vec::new();
    log.messages(|m| messages.push(m))?;
    Ok(Replayed {
        messages,
        issues: std::mem::take(&mut log.issues),
    })
}

/// The first pass: checks every record of every segment under `dir` and keeps their ids (see
/// the module documentation). With `repair`, a torn tail of the newest segment is truncated in
/// place; without it (inspecting a copy) the files are left as they are.
pub fn scan(dir: &Path, repair: bool) -> std::io::Result<RecoveredLog> {
    let files = list_segments(dir)?;
    let mut sizes = Vec::with_capacity(files.len());
    for &seg in &files {
        let len = std::fs::metadata(super::log::segment_path(dir, seg))?.len();
        sizes.push((seg, len));
    }
    let mut out = RecoveredLog {
        dir: dir.to_path_buf(),
        published: IdSet::for_segments(&sizes),
        delivered: IdSet::for_segments(&sizes),
        out: IdSet::for_segments(&sizes),
        settled: IdSet::for_segments(&sizes),
        ..Default::default()
    };
    for (i, &seg) in files.iter().enumerate() {
        let path = super::log::segment_path(dir, seg);
        let newest = i + 1 == files.len();
        let mut reader = record::FileReader::open(&path)?;
        out.segs.entry(seg).or_default();
        for item in &mut reader {
            match item? {
                Item::Record { offset, payload } => {
                    out.bytes_read += (record::HEADER + payload.len()) as u64;
                    if out.note(seg, offset, payload).is_err() {
                        out.issues.push(Issue {
                            file: path.clone(),
                            offset,
                            kind: IssueKind::Malformed,
                        });
                    }
                }
                Item::Corrupt { offset, len } => {
                    out.bytes_read += record::HEADER as u64 + len as u64;
                    tracing::error!(file = %path.display(), offset, "corrupt record in message segment, skipped");
                    out.issues.push(Issue {
                        file: path.clone(),
                        offset,
                        kind: IssueKind::Corrupt,
                    });
                }
                Item::Torn { offset } if newest => {
                    tracing::warn!(file = %path.display(), offset, "torn write at the end of the newest segment, truncating");
                    out.issues.push(Issue {
                        file: path.clone(),
                        offset,
                        kind: IssueKind::TornTail,
                    });
                    if repair {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)?
                            .set_len(offset)?;
                    }
                }
                Item::Torn { offset } => {
                    // Older segments were synced whole before the next began: this is damage.
                    tracing::error!(file = %path.display(), offset, "unreadable data in message segment from this offset");
                    out.issues.push(Issue {
                        file: path.clone(),
                        offset,
                        kind: IssueKind::Corrupt,
                    });
                }
            }
        }
    }
    for &seg in &files {
        let live = out.published.count_without(seg, &out.settled);
        out.segs.entry(seg).or_default().live += live;
        out.live += live;
    }
    out.files = files;
    Ok(out)
}

fn short(f: &mut Fields) -> Result<ShortStr, Malformed> {
    ShortStr::from_bytes(f.short()?).map_err(|_| Malformed)
}

/// A record in segment `seg` about message `id`: `seg` may not be deleted before `id`'s own.
fn keep(segs: &mut BTreeMap<u32, SegInfo>, seg: u32, id: u64) {
    let target = segment_of(id);
    if let Some(info) = segs.get_mut(&seg) {
        if target != seg && !info.keeps.contains(&target) {
            info.keeps.push(target);
        }
    }
}

/// Decodes a publish record's payload (its type byte already read into `kind`).
fn decode_publish(
    kind: u8,
    f: &mut Fields,
    offset: u64,
    payload_len: usize,
) -> Result<RecoveredMessage, Malformed> {
    let id = f.u64()?;
    let enqueued_ms = if kind == REC_PUBLISH_AT {
        Some(f.u64()?)
    } else {
        None
    };
    let mut m = RecoveredMessage {
        enqueued_ms,
        id,
        queue: short(f)?,
        exchange: short(f)?,
        routing_key: short(f)?,
        properties: RawProperties::new(f.long()?),
        body: f.long()?,
        delivered: false,
        returned: 0,
        out: false,
        body_offset: 0,
    };
    // The body is the payload's last field.
    m.body_offset = offset + record::HEADER as u64 + (payload_len - m.body.len()) as u64;
    if m.properties.validate().is_err() || !f.is_empty() {
        return Err(Malformed);
    }
    Ok(m)
}

impl RecoveredLog {
    /// First pass, one record: keeps its id in the set its type says.
    fn note(&mut self, seg: u32, offset: u64, payload: Bytes) -> Result<(), Malformed> {
        let payload_len = payload.len();
        let mut f = Fields::new(payload);
        match f.u8()? {
            kind @ (REC_PUBLISH | REC_PUBLISH_AT) => {
                let m = decode_publish(kind, &mut f, offset, payload_len)?;
                self.published.insert(m.id);
                return Ok(());
            }
            REC_DELIVER => {
                let id = f.u64()?;
                self.delivered.insert(id);
                self.out.insert(id);
                keep(&mut self.segs, seg, id);
            }
            REC_RETURN => {
                let id = f.u64()?;
                let count = f.u32()?;
                if !self.settled.contains(id) {
                    self.returned.insert(id, count);
                }
                self.out.remove(id);
                keep(&mut self.segs, seg, id);
            }
            REC_SETTLE => {
                let id = f.u64()?;
                self.settled.insert(id);
                self.returned.remove(&id);
                keep(&mut self.segs, seg, id);
            }
            _ => return Err(Malformed),
        }
        if f.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// The second pass: reads the segments again and hands every unsettled message to `f`,
    /// oldest first, one at a time (each holds only its own record). Damage was reported by
    /// [`scan`]; here it is skipped silently. Returns how many messages were handed over.
    pub fn messages(&self, mut f: impl FnMut(RecoveredMessage)) -> std::io::Result<u64> {
        let mut n = 0;
        for &seg in &self.files {
            let path = super::log::segment_path(&self.dir, seg);
            let reader = match record::FileReader::open(&path) {
                Ok(r) => r,
                // Reclaimed since the scan: it held no live message.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for item in reader {
                let Item::Record { offset, payload } = item? else {
                    continue;
                };
                let payload_len = payload.len();
                let mut fields = Fields::new(payload);
                let Ok(kind @ (REC_PUBLISH | REC_PUBLISH_AT)) = fields.u8() else {
                    continue;
                };
                let Ok(mut m) = decode_publish(kind, &mut fields, offset, payload_len) else {
                    continue;
                };
                if !self.published.contains(m.id) || self.settled.contains(m.id) {
                    continue;
                }
                m.delivered = self.delivered.contains(m.id);
                m.out = self.out.contains(m.id);
                m.returned = self.returned.get(&m.id).copied().unwrap_or(0);
                n += 1;
                f(m);
            }
        }
        Ok(n)
    }

    /// Heap bytes held between the passes and during the second one: the id sets and one read
    /// buffer, whatever the size of the segments (the message being handed over aside).
    pub fn held_bytes(&self) -> usize {
        self.published.heap_bytes()
            + self.delivered.heap_bytes()
            + self.out.heap_bytes()
            + self.settled.heap_bytes()
            + self.returned.capacity() * 16
            + self.files.capacity() * 4
            + record::READ_BUF
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ottermq-recovery-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn message(i: u64, size: usize) -> Message {
        let mut body = vec![(i % 251) as u8; size.max(8)];
        body[..8].copy_from_slice(&i.to_le_bytes());
        Message {
            exchange: ShortStr::from("ex"),
            routing_key: ShortStr::from("rk"),
            properties: ottermq_protocol::BasicProperties {
                delivery_mode: Some(2),
                ..Default::default()
            }
            .to_raw(),
            body: Bytes::from(body),
            received_at: std::time::Instant::now(),
            trace: None,
        }
    }

    /// Writes `n` messages of `size` bytes through a real log with small segments; every third
    /// is settled, every fifth marked delivered. Returns the segment directory and the ids.
    fn write_log(tag: &str, n: u64, size: usize) -> (PathBuf, PathBuf, Vec<u64>) {
        let root = temp(tag);
        let mut issues = Vec::new();
        let v = crate::store::open_vhost(&root, "/", 256 * 1024, &mut issues).expect("open");
        let mut ids = Vec::new();
        for i in 0..n {
            let (id, _, _) = v.store.log.append_publish(b"q", &message(i, size));
            ids.push(id);
            if i % 5 == 0 {
                v.store.log.mark_delivered(id, false);
            }
        }
        for (i, &id) in ids.iter().enumerate() {
            if i % 3 == 0 {
                v.store.log.settle(id);
            }
        }
        v.store.log.close();
        (root, v.store.dir.join("msgs"), ids)
    }

    /// The two passes give the unsettled messages in publish order with their delivered flag,
    /// and the live counts the log starts from.
    #[test]
    fn two_passes_give_unsettled_messages_in_order() {
        let (root, dir, ids) = write_log("order", 2000, 1000);
        let log = scan(&dir, false).expect("scan");
        assert!(log.issues.is_empty(), "{:?}", log.issues);
        assert!(log.files.len() > 3, "several segments: {:?}", log.files);
        let mut got = Vec::new();
        let n = log
            .messages(|m| got.push((m.id, m.delivered, m.body.clone())))
            .expect("messages");
        let expected: Vec<usize> = (0..ids.len()).filter(|i| i % 3 != 0).collect();
        assert_eq!(n as usize, expected.len());
        assert_eq!(log.live as usize, expected.len());
        for (&i, (id, delivered, body)) in expected.iter().zip(&got) {
            assert_eq!(*id, ids[i]);
            assert_eq!(*delivered, i % 5 == 0, "message {i}");
            assert_eq!(body[..8], (i as u64).to_le_bytes());
        }
        let live: u64 = log.segs.values().map(|s| s.live).sum();
        assert_eq!(live, log.live);
        // Settles written into the newest segment keep the older segments they settle in.
        let last = log.files.last().copied().expect("a segment");
        assert!(!log.segs[&last].keeps.is_empty());
        let _ = std::fs::remove_dir_all(root);
    }

    /// Return records (quorum queues) give the delivery count of the last one, and a delivery
    /// after it means the message was out to a consumer at the stop; a settled message's
    /// return is forgotten.
    #[test]
    fn returns_give_delivery_counts_and_out_flags() {
        let root = temp("returns");
        let mut issues = Vec::new();
        let v = crate::store::open_vhost(&root, "/", 256 * 1024, &mut issues).expect("open");
        let log = &v.store.log;
        let ids: Vec<u64> = (0..4)
            .map(|i| log.append_publish(b"q", &message(i, 16)).0)
            .collect();
        // 0: delivered, returned with count 1, delivered again: out, count 1.
        log.mark_delivered(ids[0], true);
        log.mark_returned(ids[0], 1);
        log.mark_delivered(ids[0], true);
        // 1: delivered and returned twice: ready, count 2.
        log.mark_delivered(ids[1], true);
        log.mark_returned(ids[1], 1);
        log.mark_delivered(ids[1], true);
        log.mark_returned(ids[1], 2);
        // 2: returned then settled: gone.
        log.mark_delivered(ids[2], true);
        log.mark_returned(ids[2], 1);
        log.settle(ids[2]);
        // 3: delivered once: out, count 0.
        log.mark_delivered(ids[3], true);
        log.close();
        let scanned = scan(&v.store.dir.join("msgs"), false).expect("scan");
        assert!(scanned.issues.is_empty(), "{:?}", scanned.issues);
        let mut got = Vec::new();
        scanned
            .messages(|m| got.push((m.id, m.delivered, m.out, m.returned)))
            .expect("messages");
        assert_eq!(
            got,
            vec![
                (ids[0], true, true, 1),
                (ids[1], true, false, 2),
                (ids[3], true, true, 0)
            ]
        );
        assert!(scanned.returned.len() == 2, "{:?}", scanned.returned);
        let _ = std::fs::remove_dir_all(root);
    }

    /// What recovery holds does not grow with the data: the id sets take a few bits per
    /// message and the reader one fixed buffer, so 8 MiB of bodies (or 80, or 800) are
    /// recovered holding a bounded number of bytes besides the one message handed over.
    #[test]
    fn memory_held_is_bounded_by_the_message_count_not_the_data() {
        let n = 1000u64;
        let size = 8 * 1024;
        let (root, dir, _) = write_log("bound", n, size);
        let log = scan(&dir, false).expect("scan");
        let data: u64 = log.bytes_read;
        assert!(data > n * size as u64);
        let mut handed = 0;
        log.messages(|m| {
            assert_eq!(m.body.len(), size);
            handed += 1;
        })
        .expect("messages");
        assert_eq!(handed, n - n.div_ceil(3));
        // Four bitmaps: at most one word per 64 ids of each segment (and a few words of
        // bookkeeping per segment), plus the read buffer.
        let segs = log.files.len();
        let bound = record::READ_BUF + 4 * (n as usize / 64 + segs) * 8 + 4 * segs * 64 + segs * 4;
        assert!(
            log.held_bytes() <= bound,
            "held {} > bound {bound}",
            log.held_bytes()
        );
        assert!(
            (log.held_bytes() as u64) < data / 20,
            "held {} for {data} bytes of data",
            log.held_bytes()
        );
        let _ = std::fs::remove_dir_all(root);
    }

    /// Ids a damaged (yet well-framed) record could name are not kept: unknown segments and
    /// indexes beyond what the segment's size allows.
    #[test]
    fn id_set_ignores_impossible_ids() {
        let mut s = IdSet::for_segments(&[(1, 64 * MIN_PUBLISH), (3, 10 * MIN_PUBLISH)]);
        s.insert((1 << 32) | 5);
        s.insert((1 << 32) | 63);
        s.insert((1 << 32) | 64); // beyond one word
        s.insert((2 << 32) | 1); // no such segment
        s.insert((3 << 32) | u32::MAX as u64);
        assert!(s.contains((1 << 32) | 5) && s.contains((1 << 32) | 63));
        assert!(!s.contains((1 << 32) | 64) && !s.contains((2 << 32) | 1));
        assert!(!s.contains((3 << 32) | u32::MAX as u64));
        assert!(s.heap_bytes() < 256);
        let empty = IdSet::default();
        assert_eq!(s.count_without(1, &empty), 2);
    }
}
