//! Replaying a vhost's message segments at start.
//!
//! Segments are read oldest first. Publish records add a message, deliver records mark it as
//! delivered once (it comes back `redelivered`), settle records remove it. Return records
//! (quorum queues) give a message's delivery count; a delivery after the last return means it
//! was out to a consumer when the broker stopped. What is left, in id
//! order, is each durable queue's content in publish order. Damage is reported, never fatal:
//! a torn tail of the newest segment (the write a crash interrupted) is cut off with a warning;
//! a record whose checksum fails in the middle of a file is skipped and reported with its file
//! and offset; everything else still loads.

use super::log::{
    segment_of, SegInfo, REC_DELIVER, REC_PUBLISH, REC_PUBLISH_AT, REC_RETURN, REC_SETTLE,
};
use super::record::{self, Fields, Item, Malformed};
use bytes::Bytes;
use ottermq_protocol::{RawProperties, ShortStr};
use std::collections::BTreeMap;
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

/// What a vhost's segments hold.
#[derive(Debug, Default)]
pub struct RecoveredLog {
    /// Unsettled messages, ascending by id (publish order).
    pub messages: Vec<RecoveredMessage>,
    pub(crate) segs: BTreeMap<u32, SegInfo>,
    pub issues: Vec<Issue>,
    /// Bytes read from segment files.
    pub bytes_read: u64,
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

/// Reads every segment under `dir`. With `repair`, a torn tail of the newest segment is
/// truncated in place; without it (inspecting a copy) the files are left as they are.
pub fn replay(dir: &Path, repair: bool) -> std::io::Result<RecoveredLog> {
    let mut out = RecoveredLog::default();
    let segs = list_segments(dir)?;
    let mut live: BTreeMap<u64, RecoveredMessage> = BTreeMap::new();
    for (i, &seg) in segs.iter().enumerate() {
        let path = super::log::segment_path(dir, seg);
        let data = std::fs::read(&path)?;
        out.bytes_read += data.len() as u64;
        let newest = i + 1 == segs.len();
        let info = out.segs.entry(seg).or_default();
        for item in record::Reader::new(Bytes::from(data)) {
            match item {
                Item::Record { offset, payload } => {
                    if apply(&mut live, info, seg, offset, payload).is_err() {
                        out.issues.push(Issue {
                            file: path.clone(),
                            offset,
                            kind: IssueKind::Malformed,
                        });
                    }
                }
                Item::Corrupt { offset, .. } => {
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
    for m in live.values() {
        if let Some(s) = out.segs.get_mut(&segment_of(m.id)) {
            s.live += 1;
        }
    }
    out.messages = live.into_values().collect();
    Ok(out)
}

fn short(f: &mut Fields) -> Result<ShortStr, Malformed> {
    ShortStr::from_bytes(f.short()?).map_err(|_| Malformed)
}

/// A record in segment `seg` about message `id`: `seg` may not be deleted before `id`'s own.
fn keep(info: &mut SegInfo, seg: u32, id: u64) {
    let target = segment_of(id);
    if target != seg && !info.keeps.contains(&target) {
        info.keeps.push(target);
    }
}

fn apply(
    live: &mut BTreeMap<u64, RecoveredMessage>,
    info: &mut SegInfo,
    seg: u32,
    offset: u64,
    payload: Bytes,
) -> Result<(), Malformed> {
    let payload_len = payload.len();
    let mut f = Fields::new(payload);
    match f.u8()? {
        kind @ (REC_PUBLISH | REC_PUBLISH_AT) => {
            let id = f.u64()?;
            let enqueued_ms = if kind == REC_PUBLISH_AT {
                Some(f.u64()?)
            } else {
                None
            };
            let mut m = RecoveredMessage {
                enqueued_ms,
                id,
                queue: short(&mut f)?,
                exchange: short(&mut f)?,
                routing_key: short(&mut f)?,
                properties: RawProperties::new(f.long()?),
                body: f.long()?,
                delivered: false,
                returned: 0,
                out: false,
                body_offset: 0,
            };
            // The body is the payload's last field.
            m.body_offset = offset + record::HEADER as u64 + (payload_len - m.body.len()) as u64;
            if m.properties.validate().is_err() {
                return Err(Malformed);
            }
            live.insert(id, m);
        }
        REC_DELIVER => {
            let id = f.u64()?;
            if let Some(m) = live.get_mut(&id) {
                m.delivered = true;
                m.out = true;
            }
            keep(info, seg, id);
        }
        REC_RETURN => {
            let id = f.u64()?;
            let count = f.u32()?;
            if let Some(m) = live.get_mut(&id) {
                m.returned = count;
                m.out = false;
            }
            keep(info, seg, id);
        }
        REC_SETTLE => {
            let id = f.u64()?;
            live.remove(&id);
            keep(info, seg, id);
        }
        _ => return Err(Malformed),
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(Malformed)
    }
}
