//! Lazy paging: ready messages beyond a queue's memory budget keep only their index entry in
//! RAM; the body lives on disk and is read back when the message reaches the head.
//!
//! - A persistent message on a durable queue already has its body in the vhost's message log:
//!   paging it out only drops the body from RAM and keeps the record's location (no second
//!   write). The segment cannot be reclaimed meanwhile, because the message is unsettled and so
//!   counts as live in its segment.
//! - Any other message goes to the vhost's transient page file: one `pwrite` per message, no
//!   fsync. The file is unlinked as soon as it is opened (nothing to clean up after a crash)
//!   and truncated whenever no paged message is left in it.
//!
//! Paging out happens when a message is appended behind a full budget, paging in when it is
//! taken off the head; both run under the queue's own lock (never a lock shared by all queues:
//! the page file's mutex covers one `pwrite` or `pread`). A page-in is one `pread`, normally
//! served from the page cache because the data was written recently; a cold read blocks this
//! queue (and the worker thread running it) for one disk read. A queue under its budget never
//! reaches this code: its publish-to-deliver path is one comparison longer, nothing else.

use crate::message::{BodyAt, QueuedMessage};
use crate::store::MessageLog;
use bytes::Bytes;
use ottermq_protocol::{RawProperties, ShortStr};
use parking_lot::Mutex;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Default in-memory budget of one queue's ready message bodies (`queue_memory_budget_bytes`).
/// Above what publisher flow control lets a queue with consumers hold in steady state (8,192
/// ready messages, 8 MiB at 1 KiB): at 4 MiB S2 paged every message past the budget out and
/// back in and lost half its rate (docs/BENCHMARKS.md, "Profile and fixes").
pub const DEFAULT_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

/// Budget of a queue declared with `x-queue-mode: lazy`: only a small head stays in RAM.
pub const LAZY_BUDGET_BYTES: u64 = 64 * 1024;

#[derive(Debug, Default)]
struct PageFile {
    file: Option<File>,
    end: u64,
    /// Paged messages whose bodies are in the file; at 0 the file is truncated.
    live: u64,
}

/// One vhost's pager: its transient page file and the reader of its message log's segments.
#[derive(Debug)]
pub struct Pager {
    dir: PathBuf,
    pages: Mutex<PageFile>,
    log: Option<Arc<MessageLog>>,
    /// The last segment file read, kept open (paged messages are read back in log order).
    segment: Mutex<Option<(u32, Arc<File>)>>,
}

impl Pager {
    /// A pager whose page file goes in `dir` (created on first use) and that reads persistent
    /// bodies from `log`.
    pub fn new(dir: PathBuf, log: Option<Arc<MessageLog>>) -> Self {
        if log.is_some() {
            // A vhost's own directory: a page file left by a crash between its creation and
            // its unlinking is removed (the shared temp directory is left alone).
            remove_stale_pages(&dir);
        }
        Pager {
            dir,
            pages: Mutex::new(PageFile::default()),
            log,
            segment: Mutex::new(None),
        }
    }

    /// Moves the body of `qm` (about to be appended to a ready list) to disk. False when it
    /// could not be written: the message then stays in RAM.
    pub fn page_out(&self, qm: &mut QueuedMessage) -> bool {
        let len = qm.message.body.len();
        if len == 0 || u32::try_from(len).is_err() {
            return false;
        }
        if !matches!(qm.body_at, BodyAt::Log { .. }) {
            match self.write_page(&qm.message.body) {
                Ok(offset) => qm.body_at = BodyAt::Page { offset },
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "page file write failed; message kept in memory");
                    return false;
                }
            }
        }
        qm.paged = Some(len as u32);
        qm.message.body = Bytes::new();
        own_parts(&mut qm.message, false);
        true
    }

    /// Reads a paged message's body back. On error the message keeps no body.
    pub fn page_in(&self, qm: &mut QueuedMessage) -> std::io::Result<()> {
        let Some(len) = qm.paged.take() else {
            return Ok(());
        };
        let mut buf = vec![0u8; len as usize];
        let r = match qm.body_at {
            BodyAt::Log {
                seg,
                offset,
                ticket,
            } => self.read_log(seg, offset, ticket, &mut buf),
            BodyAt::Page { offset } => {
                qm.body_at = BodyAt::Nowhere;
                let r = self.read_page(offset, &mut buf);
                self.release_page();
                r
            }
            BodyAt::Nowhere => Err(std::io::Error::other("paged message without a location")),
        };
        r?;
        qm.message.body = Bytes::from(buf);
        Ok(())
    }

    /// A paged message left its queue without being read back (purge, deletion).
    pub fn discard(&self, qm: &QueuedMessage) {
        if qm.paged.is_some() && matches!(qm.body_at, BodyAt::Page { .. }) {
            self.release_page();
        }
    }

    fn write_page(&self, body: &[u8]) -> std::io::Result<u64> {
        let mut p = self.pages.lock();
        if p.file.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            // Unique within the process (in-memory brokers share the temp directory) and
            // created new, so two pagers never share a file.
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("pages-{}-{n}.tmp", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            // Unlinked at once: the file lives as long as the open descriptor, so a crash
            // leaves nothing behind.
            std::fs::remove_file(&path)?;
            p.file = Some(f);
            p.end = 0;
        }
        let offset = p.end;
        if let Some(f) = &p.file {
            f.write_all_at(body, offset)?;
        }
        p.end += body.len() as u64;
        p.live += 1;
        Ok(offset)
    }

    fn read_page(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let p = self.pages.lock();
        match &p.file {
            Some(f) => f.read_exact_at(buf, offset),
            None => Err(std::io::Error::other("page file missing")),
        }
    }

    fn release_page(&self) {
        let mut p = self.pages.lock();
        p.live = p.live.saturating_sub(1);
        if p.live == 0 && p.end > 0 {
            if let Some(f) = &p.file {
                if let Err(e) = f.set_len(0) {
                    tracing::warn!(error = %e, "could not truncate the page file");
                    return;
                }
            }
            p.end = 0;
        }
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

/// Replaces a message's small fields (and with `body`, its body) by copies of their own. They
/// may be slices of a large buffer (a socket read, a segment read at start) that would stay in
/// memory as long as any slice of it does.
pub fn own_parts(m: &mut crate::message::Message, body: bool) {
    m.properties = RawProperties::new(Bytes::copy_from_slice(m.properties.as_bytes()));
    m.exchange = own(&m.exchange);
    m.routing_key = own(&m.routing_key);
    if body {
        m.body = Bytes::copy_from_slice(&m.body);
    }
}

fn own(s: &ShortStr) -> ShortStr {
    ShortStr::from_bytes(Bytes::copy_from_slice(s.as_bytes())).unwrap_or_else(|_| s.clone())
}

/// The budget a queue's arguments ask for: `x-queue-mode: lazy` keeps only a small head.
pub fn budget(args: &ottermq_protocol::FieldTable, default: u64) -> u64 {
    match args.get("x-queue-mode").and_then(|v| v.as_str_bytes()) {
        Some(b"lazy") => LAZY_BUDGET_BYTES.min(default),
        _ => default,
    }
}
