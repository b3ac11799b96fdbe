//! Durability: durable definitions and persistent messages on disk.
//!
//! Layout under the data directory: `vhosts/<hex of the vhost name>/definitions.log` (that
//! vhost's durable exchanges, queues and bindings) and `.../msgs/NNNNNNNN.seg` (its message
//! log). One log per vhost, so vhosts never share a lock or an fsync.
//!
//! - `record.rs`: framing with length and CRC-32, torn-tail and corruption detection.
//! - `log.rs`: the segment log, appends, tickets, segment accounting and reclamation.
//! - `commit.rs`: the group-commit thread (one write + one fdatasync per batch).
//! - `definitions.rs`: the definitions log.
//! - `recovery.rs`: replaying segments at start (two streaming passes) and the damage report.
//! - `users.rs`: users and permissions (`users.log` at the top of the data directory).

pub mod commit;
pub mod definitions;
pub mod log;
pub mod record;
pub mod recovery;
pub mod users;

use definitions::{DefChange, DefinitionsLog, VhostDefs};
pub use log::MessageLog;
use recovery::{Issue, RecoveredLog};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default size at which a segment is closed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// The durable side of one vhost.
#[derive(Debug)]
pub struct VhostStore {
    pub dir: PathBuf,
    pub defs: DefinitionsLog,
    pub log: Arc<MessageLog>,
}

impl VhostStore {
    pub fn record(&self, c: &DefChange) {
        self.defs.record(c);
    }
}

/// What opening a vhost's store found, before the log starts writing.
pub struct OpenedVhost {
    pub store: Arc<VhostStore>,
    pub defs: VhostDefs,
    pub recovered: RecoveredLog,
}

/// The directory of a vhost: its name hex-encoded, so any name is a safe file name.
pub fn vhost_dir(data_dir: &Path, name: &str) -> PathBuf {
    let mut hex = String::with_capacity(name.len() * 2 + 1);
    hex.push('v');
    for b in name.as_bytes() {
        hex.push_str(&format!("{b:02x}"));
    }
    data_dir.join("vhosts").join(hex)
}

/// The vhosts that have a directory under `data_dir`.
pub fn stored_vhosts(data_dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(data_dir.join("vhosts")) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let name = entry?.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix('v')) else {
            continue;
        };
        let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        if let Some(name) = bytes.and_then(|b| String::from_utf8(b).ok()) {
            if hex.len() % 2 == 0 {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Opens (creating if needed) a vhost's store: replays definitions, scans the message segments
/// (the first recovery pass: ids only), then starts the message log's writer. The messages
/// are read afterwards, one at a time, by `recovered.messages`.
pub fn open_vhost(
    data_dir: &Path,
    name: &str,
    segment_bytes: u64,
    issues: &mut Vec<Issue>,
) -> std::io::Result<OpenedVhost> {
    let dir = vhost_dir(data_dir, name);
    let msgs = dir.join("msgs");
    std::fs::create_dir_all(&msgs)?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    let (defs_log, defs) = DefinitionsLog::open(&dir, issues)?;
    let mut recovered = recovery::scan(&msgs, true)?;
    issues.append(&mut recovered.issues);
    let segs = std::mem::take(&mut recovered.segs);
    let log = MessageLog::start(msgs, segs, segment_bytes)?;
    Ok(OpenedVhost {
        store: Arc::new(VhostStore {
            dir,
            defs: defs_log,
            log,
        }),
        defs,
        recovered,
    })
}
