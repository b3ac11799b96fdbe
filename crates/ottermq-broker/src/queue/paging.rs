//! Lazy paging: once a queue (or one priority level) is past its memory budget, messages
//! appended behind it go whole to a FIFO spill file ([`super::spill`]) and the ready list in
//! RAM holds only the head; RAM for the paged tail is a few offsets and counts. The head is
//! refilled from the tail with one large read when it runs low.
//!
//! - A persistent message on a durable queue already has its body in the vhost's message log:
//!   its spill record keeps the record's location, not a second copy of the body, and the body
//!   is read back from the log when the message is taken off the head. The segment cannot be
//!   reclaimed meanwhile, because the message is unsettled and so counts as live in its segment.
//! - Any other message goes to the spill with its body.
//!
//! Spilling happens when a message is appended behind a full budget (or behind an existing
//! tail, so order holds), reading back when the head runs low; both run under the queue's own
//! lock (never a lock shared by all queues). A queue under its budget never reaches this code:
//! its publish path is one comparison longer, nothing else.

use crate::message::{BodyAt, QueuedMessage};
use crate::store::MessageLog;
use bytes::Bytes;
use parking_lot::Mutex;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default in-memory budget of one queue's ready message bodies (`queue_memory_budget_bytes`).
/// Above what publisher flow control lets a queue with consumers hold in steady state (8,192
/// ready messages, 8 MiB at 1 KiB): at 4 MiB S2 paged every message past the budget out and
/// back in and lost half its rate (docs/BENCHMARKS.md, "Profile and fixes").
pub const DEFAULT_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// Budget of a queue declared with `x-queue-mode: lazy`: only a small head stays in RAM.
pub const LAZY_BUDGET_BYTES: u64 = 64 * 1024;

/// One vhost's pager: where its queues' spill files go and the reader of its message log's
/// segments.
#[derive(Debug)]
pub struct Pager {
    dir: PathBuf,
    log: Option<Arc<MessageLog>>,
    /// The last segment file read, kept open (paged messages are read back in log order).
    segment: Mutex<Option<(u32, Arc<File>)>>,
}

impl Pager {
    /// A pager whose spill files go in `dir` (created on first use) and that reads persistent
    /// bodies from `log`.
    pub fn new(dir: PathBuf, log: Option<Arc<MessageLog>>) -> Self {
        if log.is_some() {
            // A vhost's own directory: a spill file left by a crash between its creation and
            // its unlinking is removed (the shared temp directory is left alone).
            remove_stale_pages(&dir);
        }
        Pager {
            dir,
            log,
            segment: Mutex::new(None),
        }
    }

    /// The directory spill files are created in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the body of a message whose body is in the message log only. On error the
    /// message keeps no body.
    pub fn page_in(&self, qm: &mut QueuedMessage) -> std::io::Result<()> {
        let Some(len) = qm.paged.take() else {
            return Ok(());
        };
        let mut buf = vec![0u8; len as usize];
        match qm.body_at {
            BodyAt::Log {
                seg,
                offset,
                ticket,
            } => self.read_log(seg, offset, ticket, &mut buf)?,
            _ => return Err(std::io::Error::other("paged message without a location")),
        }
        qm.message.body = Bytes::from(buf);
        Ok(())
    }

    fn read_log(&self, seg: u32, offset: u64, ticket: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let Some(log) = &self.log else {
            return Err(std::io::Error::other("no message log"));
        };
        // Normally long on disk; only a message paged out and needed within one fsync waits.
        log.wait_durable(ticket);
        let file = {
            let mut cur = self.segment.lock();
            match &*cur {
                Some((s, f)) if *s == seg => f.clone(),
                _ => {
                    let f = Arc::new(File::open(crate::store::log::segment_path(&log.dir, seg))?);
                    *cur = Some((seg, f.clone()));
                    f
                }
            }
        };
        file.read_exact_at(buf, offset)
    }
}

fn remove_stale_pages(dir: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("pages-") && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The budget a queue's arguments ask for: `x-queue-mode: lazy` keeps only a small head.
pub fn budget(args: &ottermq_protocol::FieldTable, default: u64) -> u64 {
    match args.get("x-queue-mode").and_then(|v| v.as_str_bytes()) {
        Some(b"lazy") => LAZY_BUDGET_BYTES.min(default),
        _ => default,
    }
}
