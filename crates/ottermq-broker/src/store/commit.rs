//! Group commit: the one thread that writes a vhost's message log.
//!
//! It takes everything appended since its last round, writes it (one `write` per segment it
//! touches, normally one), calls `fdatasync` once, and only then publishes the new durable
//! position, which releases the publisher confirms waiting on it. While it syncs, new records
//! pile up in the pending batch, so under load one fsync covers many messages and confirmed
//! throughput is bounded by the disk's bandwidth, not its sync latency.

use super::log::{segment_path, MessageLog};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Writer loop; returns once shut down with nothing left to write.
pub(crate) fn run(log: Arc<MessageLog>) {
    let mut file: Option<(u32, File)> = None;
    loop {
        let (chunks, upto, deletes, shutdown) = {
            let mut p = log.pending.lock();
            while p.chunks.is_empty() && p.to_delete.is_empty() && !p.shutdown {
                log.wake.wait(&mut p);
            }
            (
                std::mem::take(&mut p.chunks),
                p.appended,
                std::mem::take(&mut p.to_delete),
                p.shutdown,
            )
        };
        // A write that fails (disk full, I/O error) is retried: confirms stay withheld
        // rather than being sent for data that is not on disk.
        let mut attempt = 0u32;
        let mut starts = Vec::new();
        while let Err(e) = write_batch(&log, &mut file, &chunks, &mut starts) {
            attempt += 1;
            // Cut back what this round appended, so the retry does not leave half a record.
            for (seg, len) in starts.drain(..) {
                if let Ok(f) = OpenOptions::new()
                    .write(true)
                    .open(segment_path(&log.dir, seg))
                {
                    let _ = f.set_len(len);
                }
            }
            if attempt == 1 || attempt.is_multiple_of(60) {
                tracing::error!(dir = %log.dir.display(), error = %e, "message store write failed; retrying");
            }
            file = None;
            std::thread::sleep(Duration::from_millis(500));
        }
        log.durable_tx.send_replace(upto);
        log.synced.notify_all();
        for seg in deletes {
            if file.as_ref().is_some_and(|(s, _)| *s == seg) {
                file = None;
            }
            let path = segment_path(&log.dir, seg);
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove settled segment");
                }
            }
        }
        if shutdown {
            let p = log.pending.lock();
            if p.chunks.is_empty() && p.to_delete.is_empty() {
                return;
            }
        }
    }
}

/// Appends each chunk to its segment file and makes it durable. Chunks that went to an earlier
/// segment (a rotation inside the batch) are synced before that file is let go; a new file's
/// directory entry is synced too, so the segment is found after a crash.
fn write_batch(
    log: &MessageLog,
    file: &mut Option<(u32, File)>,
    chunks: &[(u32, Vec<u8>)],
    starts: &mut Vec<(u32, u64)>,
) -> std::io::Result<()> {
    starts.clear();
    for (seg, data) in chunks {
        if file.as_ref().is_none_or(|(s, _)| s != seg) {
            if let Some((_, f)) = file.take() {
                f.sync_data()?;
            }
            let path = segment_path(&log.dir, *seg);
            let created = !path.exists();
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            if created {
                File::open(&log.dir)?.sync_all()?;
            }
            *file = Some((*seg, f));
        }
        if !starts.iter().any(|(s, _)| s == seg) {
            if let Some((_, f)) = file.as_ref() {
                starts.push((*seg, f.metadata()?.len()));
            }
        }
        if let Some((_, f)) = file.as_mut() {
            f.write_all(data)?;
        }
    }
    if let Some((_, f)) = file.as_ref() {
        if !chunks.is_empty() {
            f.sync_data()?;
        }
    }
    Ok(())
}
