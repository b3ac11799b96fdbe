//! Monotonic counters and gauges: the primitives the broker bumps on every event.
//!
//! Both are a single relaxed atomic embedded in the object they describe (queue, exchange,
//! connection, channel, broker), so recording is one `lock xadd` on memory the caller already
//! holds: no lock, no map look-up, no allocation. Relaxed ordering is enough because nobody
//! synchronises other memory through a metric; the sampler only needs each value to be
//! eventually visible, and every increment is counted exactly once.
//!
//! Neither type pads itself to a cache line: a queue holds a dozen of them and padding would
//! cost 64 bytes each. Counters written by different threads at high rates may therefore share
//! a line; the owner can group them by writer (e.g. publisher-side vs consumer-side) if that
//! ever shows up in a profile.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonic event counter (messages published, bytes received, ...).
///
/// Exists so the hot path can count with one relaxed atomic add. It never goes down; the
/// sampler turns successive readings into rates with [`crate::RateTracker`], which also copes
/// with the counter restarting at zero when its object is recreated. Wraps at `u64::MAX`
/// (centuries at any plausible rate).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero. `const` so counters can live in statics and be built in const
    /// contexts without a constructor call on the hot path.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Counts one event.
    #[inline]
    pub fn inc(&self) {
        #[cfg(not(feature = "record-off"))]
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` events at once (e.g. the bytes of a frame, or a batch of acks).
    #[inline]
    pub fn add(&self, n: u64) {
        #[cfg(not(feature = "record-off"))]
        self.0.fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "record-off")]
        let _ = n;
    }

    /// The total so far; read by the sampler and by `/metrics` (a Prometheus counter).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (messages ready, consumers, open channels, ...).
///
/// Exists so the hot path can maintain a level with one relaxed atomic, which the sampler reads
/// once per tick. Signed so that a transiently unbalanced `inc`/`dec` pair racing across
/// threads shows up as a small negative number instead of wrapping to 2^64.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero; `const` for the same reason as [`Counter::new`].
    pub const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    /// Adds one (a message enqueued, a consumer attached).
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one (a message dequeued, a consumer detached).
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds `n` (e.g. the bytes of an enqueued message).
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` (e.g. the bytes of a dequeued message).
    #[inline]
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// Overwrites the level, for values that are computed rather than maintained
    /// incrementally (e.g. a queue length after a purge).
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current level; read by the sampler and by `/metrics` (a Prometheus gauge).
    #[inline]
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}
