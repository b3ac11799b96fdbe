//! A connection's outbound byte buffer, shared by everything that writes to that client.
//!
//! Producers (the connection's own reader task answering methods, and publisher tasks
//! delivering to this connection's consumers) encode frames straight into one `BytesMut` under a
//! short lock. The writer task takes the whole buffer at once and writes it with one syscall, so
//! frames coalesce under load and nothing is allocated per frame. The buffer is bounded in
//! effect: above the high-water mark consumers on this connection stop receiving until the
//! writer drains it (a slow reader slows its own deliveries, not the broker). Above twice the
//! mark the connection's reader stops reading the socket too, so a client that sends but never
//! reads (publishing mandatory messages that come back, pipelining gets) is held by TCP flow
//! control instead of growing the broker's memory.

use bytes::BytesMut;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Above this many buffered bytes, deliveries to the connection pause.
pub const DEFAULT_HIGH_WATER: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Outbound {
    buf: Mutex<BytesMut>,
    wake: Notify,
    closing: AtomicBool,
    congested: AtomicBool,
    frame_max: AtomicU32,
    high_water: usize,
    /// Bytes the writer has taken and not yet finished writing.
    in_flight: AtomicUsize,
    /// Signalled after each socket write, for a reader paused by `over_read_limit`.
    drained: Notify,
}

impl Outbound {
    pub fn new(frame_max: u32, high_water: usize) -> Self {
        Outbound {
            buf: Mutex::new(BytesMut::with_capacity(64 * 1024)),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            congested: AtomicBool::new(false),
            frame_max: AtomicU32::new(frame_max),
            high_water,
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }

    /// Encodes frames into the buffer and wakes the writer if it may be asleep.
    #[inline]
    pub fn write<R>(&self, f: impl FnOnce(&mut BytesMut, u32) -> R) -> R {
        let mut b = self.buf.lock();
        let was_empty = b.is_empty();
        let r = f(&mut b, self.frame_max.load(Ordering::Relaxed));
        if b.len() > self.high_water {
            self.congested.store(true, Ordering::Relaxed);
        }
        drop(b);
        // A non-empty buffer already has a wake-up pending since it last was taken.
        if was_empty {
            self.wake.notify_one();
        }
        r
    }

    pub fn frame_max(&self) -> u32 {
        self.frame_max.load(Ordering::Relaxed)
    }

    pub fn set_frame_max(&self, v: u32) {
        self.frame_max.store(v, Ordering::Relaxed);
    }

    pub fn is_congested(&self) -> bool {
        self.congested.load(Ordering::Relaxed)
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Asks the writer to flush what is buffered, then shut the socket down.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Writer side: waits until there is something to write (or closing).
    pub async fn wait(&self) {
        self.wake.notified().await
    }

    /// Writer side: takes everything buffered, leaving the spare capacity behind for reuse.
    /// The bytes count as in flight until `written`.
    pub fn take(&self) -> BytesMut {
        let data = self.buf.lock().split();
        self.in_flight.store(data.len(), Ordering::Relaxed);
        data
    }

    /// Writer side: the bytes from the last `take` are on the socket.
    pub fn written(&self) {
        self.in_flight.store(0, Ordering::Relaxed);
        self.drained.notify_one();
    }

    /// Bytes waiting to reach the client: buffered plus being written (RabbitMQ's `send_pend`).
    pub fn pending_bytes(&self) -> usize {
        self.buf.lock().len() + self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the reader should stop reading this client's socket until the writer catches up.
    pub fn over_read_limit(&self) -> bool {
        self.pending_bytes() > self.high_water.saturating_mul(2)
    }

    /// Reader side: waits for the next socket write to finish.
    pub async fn wait_drained(&self) {
        self.drained.notified().await
    }

    /// Writer side: called after a write; true when the buffer fell back under half the
    /// high-water mark and the connection had been congested, so consumers must be resumed.
    pub fn relieved(&self) -> bool {
        if !self.congested.load(Ordering::Relaxed) {
            return false;
        }
        let len = self.buf.lock().len();
        if len <= self.high_water / 2 {
            self.congested.store(false, Ordering::Relaxed);
            return true;
        }
        false
    }
}
