//! Log-linear histograms: lock-free recording on the hot path, windowed and cumulative reads
//! for the sampler.
//!
//! # Bucket layout
//!
//! Values are `u64` (the broker records microseconds for latencies and bytes for sizes).
//! Values `0..64` each get their own bucket (exact). Above that, every power of two
//! `[2^h, 2^(h+1))` is split into [`SUB_BUCKETS`] = 32 equal-width buckets, so a bucket is never
//! wider than 1/32 of its lower bound. The tracked range ends at [`MAX_TRACKED`] = 2^35 - 1
//! (about 9.5 hours in microseconds, or 32 GiB in bytes); larger values are clamped into one
//! overflow bucket whose representative value is the recorded maximum.
//!
//! That is 992 regular buckets + 1 overflow = [`BUCKETS`] = 993 buckets.
//!
//! # Accuracy
//!
//! A percentile is reported as a representative value of the bucket holding the sample of the
//! requested rank: the value that minimises the worst relative error over the bucket (the
//! harmonic mean of its bounds, rounded), capped at the recorded maximum. Its relative error
//! against the exact percentile of the recorded values (the sorted-array value at rank
//! `ceil(q * n)`) is at most [`RELATIVE_ERROR`] = 1/64 ≈ 1.6 % for every value up to
//! [`MAX_TRACKED`], and zero below 64. Values in the overflow bucket report the maximum.
//!
//! # Memory
//!
//! A [`Histogram`] is `993 × 4` bytes of `AtomicU32` counts plus three `u64` words:
//! **4,000 bytes** ([`Histogram::MEMORY_BYTES`]), inline, no heap. Counts are `u32` rather than
//! `u64` to halve that: the hot-side counts are never reset, and the [`HistogramReader`] diffs
//! them with wrapping subtraction into `u64` totals, which is exact as long as fewer than 2^32
//! records land in one bucket between two reads (at the default 5 s interval that would take
//! 850 million records per second into a single bucket).
//!
//! The reader side keeps sparse snapshots (16 bytes per non-empty bucket): a window snapshot
//! and a cumulative one, typically a few hundred bytes to a few KiB for a real latency
//! distribution, at most 993 × 16 bytes each.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Log2 of the number of linear sub-buckets per power of two.
const SUB_BITS: u32 = 5;
/// Linear sub-buckets per power of two (32): sets the precision, see [`RELATIVE_ERROR`].
pub const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Highest power of two with its own buckets: values below 2^(MAX_EXP+1) are tracked.
const MAX_EXP: u32 = 34;
/// The largest value recorded with full precision (2^35 - 1); larger values go to the
/// overflow bucket. Exposed so callers can document their units' ceiling.
pub const MAX_TRACKED: u64 = (1 << (MAX_EXP + 1)) - 1;
/// Values below this get one bucket each.
const EXACT_BELOW: u64 = 2 << SUB_BITS;
/// Buckets for values `0..=MAX_TRACKED`.
const REGULAR_BUCKETS: usize = (MAX_EXP - SUB_BITS + 2) as usize * SUB_BUCKETS;
/// Index of the overflow bucket.
const OVERFLOW: usize = REGULAR_BUCKETS;
/// Total buckets per histogram (993), the regular ones plus the overflow bucket.
pub const BUCKETS: usize = REGULAR_BUCKETS + 1;
/// Worst-case relative error of a percentile estimate for values up to [`MAX_TRACKED`]:
/// 1/64 (≈ 1.6 %). Tests assert it; documentation can quote it.
pub const RELATIVE_ERROR: f64 = 1.0 / 64.0;

/// Default Prometheus bucket bounds for latencies recorded in microseconds (100 µs .. 10 s);
/// divide by 1e6 when exposing them as `le` in seconds.
pub const LATENCY_BOUNDS_US: &[f64] = &[
    100.0,
    250.0,
    500.0,
    1_000.0,
    2_500.0,
    5_000.0,
    10_000.0,
    25_000.0,
    50_000.0,
    100_000.0,
    250_000.0,
    500_000.0,
    1_000_000.0,
    2_500_000.0,
    5_000_000.0,
    10_000_000.0,
];

/// Default Prometheus bucket bounds for message sizes in bytes (64 B .. 16 MiB).
pub const SIZE_BOUNDS_BYTES: &[f64] = &[
    64.0,
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

/// Source of [`Histogram`] identities, so a reader notices when it is handed a different
/// (e.g. recreated) histogram. Starts at 1: 0 means "no source yet".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The bucket a value falls into.
#[inline]
fn bucket_index(v: u64) -> usize {
    if v < EXACT_BELOW {
        return v as usize;
    }
    let h = 63 - v.leading_zeros();
    if h > MAX_EXP {
        return OVERFLOW;
    }
    let shift = h - SUB_BITS;
    ((shift as usize) << SUB_BITS) + (v >> shift) as usize
}

/// The smallest and largest value (inclusive) a bucket holds.
fn bucket_range(i: usize) -> (u64, u64) {
    if i < EXACT_BELOW as usize {
        return (i as u64, i as u64);
    }
    if i >= OVERFLOW {
        return (MAX_TRACKED + 1, u64::MAX);
    }
    let shift = (i >> SUB_BITS) as u32 - 1;
    let m = ((i & (SUB_BUCKETS - 1)) + SUB_BUCKETS) as u64;
    (m << shift, ((m + 1) << shift) - 1)
}

/// The value reported for a bucket: the one minimising the worst relative error over the
/// bucket, `2·lo·hi / (lo + hi)`, rounded. The overflow bucket reports `u64::MAX`, which the
/// caller caps at the recorded maximum.
fn representative(i: usize) -> u64 {
    let (lo, hi) = bucket_range(i);
    if lo == hi || i >= OVERFLOW {
        return hi;
    }
    let (lo, hi) = (u128::from(lo), u128::from(hi));
    let s = lo + hi;
    ((2 * lo * hi + s / 2) / s) as u64
}

/// A latency or size distribution recorded lock-free from any number of threads.
///
/// Exists so the broker can embed one per queue (and per broker) and record every event with
/// two relaxed atomic adds and one relaxed load (three atomics the first time a window's
/// maximum grows): no lock, no allocation. It is only written here; reading goes through a
/// [`HistogramReader`] owned by the sampler, which turns the ever-growing counts into a
/// last-window snapshot and a cumulative one.
///
/// Fixed size: [`Histogram::MEMORY_BYTES`] (4,000 bytes), inline.
#[derive(Debug)]
pub struct Histogram {
    /// Distinguishes this histogram from any other, for [`HistogramReader`].
    id: u64,
    /// Sum of recorded values (wrapping), for Prometheus `_sum` and the mean.
    sum: AtomicU64,
    /// Largest value recorded since the reader's last tick (the reader swaps it to 0).
    window_max: AtomicU64,
    /// Per-bucket counts since creation, wrapping at 2^32 (see the module docs).
    counts: [AtomicU32; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// Bytes one histogram occupies (993 `u32` counts + id, sum, max), so capacity planning
    /// and documentation can quote it.
    pub const MEMORY_BYTES: usize = std::mem::size_of::<Histogram>();

    /// An empty histogram with a fresh identity.
    pub fn new() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sum: AtomicU64::new(0),
            window_max: AtomicU64::new(0),
            counts: [const { AtomicU32::new(0) }; BUCKETS],
        }
    }

    /// Records one value (a latency in µs, a size in bytes).
    #[inline]
    pub fn record(&self, v: u64) {
        self.record_n(v, 1);
    }

    /// Records the same value `n` times (e.g. a batch of messages of one size). `n` is capped
    /// at `u32::MAX` per call, consistently for the count and the sum.
    #[inline]
    pub fn record_n(&self, v: u64, n: u64) {
        if cfg!(feature = "record-off") {
            return;
        }
        let n = n.min(u64::from(u32::MAX));
        if n == 0 {
            return;
        }
        self.counts[bucket_index(v)].fetch_add(n as u32, Ordering::Relaxed);
        self.sum.fetch_add(v.wrapping_mul(n), Ordering::Relaxed);
        // The load makes the common case (not a new maximum) a plain read instead of a CAS loop.
        if v > self.window_max.load(Ordering::Relaxed) {
            self.window_max.fetch_max(v, Ordering::Relaxed);
        }
    }

    /// Everything recorded since creation, without disturbing any reader. Meant for tests and
    /// one-off inspection: counts are exact until a bucket passes 2^32 records, and if a
    /// [`HistogramReader`] is also reading, the maximum is only known to bucket precision.
    /// The sampler reads through [`HistogramReader`]; the Prometheus endpoint uses this at
    /// scrape time (cumulative counts are what Prometheus wants, and the maximum is unused).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut snap = HistogramSnapshot::default();
        for (i, c) in self.counts.iter().enumerate() {
            let c = u64::from(c.load(Ordering::Relaxed));
            if c != 0 {
                snap.buckets.push((i as u16, c));
                snap.count += c;
            }
        }
        snap.sum = self.sum.load(Ordering::Relaxed);
        snap.max = snap.fix_max(self.window_max.load(Ordering::Relaxed));
        snap
    }
}

/// A read-only picture of a distribution: per-bucket counts, count, sum and maximum.
///
/// Exists so the sampler, the REST API and `/metrics` can compute percentiles, means and
/// Prometheus buckets without touching the hot-side atomics, and so per-queue distributions
/// can be merged into a broker-wide one. Sparse: only non-empty buckets are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// (bucket index, count), sorted by index, counts non-zero.
    buckets: Vec<(u16, u64)>,
    count: u64,
    sum: u64,
    max: u64,
}

impl HistogramSnapshot {
    /// An empty snapshot, the identity of [`merge`](Self::merge) (e.g. to start a broker-wide
    /// aggregate).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of recorded values (Prometheus `_count`).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of recorded values (Prometheus `_sum`), in the recorded unit.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Arithmetic mean of the recorded values, exact up to in-flight races (0.0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.0 ..= 1.0; out-of-range values are clamped, NaN means 0):
    /// the estimate of the sorted-array value at rank `ceil(q · count)` (rank 1 for q = 0),
    /// within [`RELATIVE_ERROR`] of it for values up to [`MAX_TRACKED`]. The top rank (q = 1)
    /// is the recorded maximum itself. Returns 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0u64;
        for &(i, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return representative(usize::from(i)).min(self.max);
            }
        }
        self.max
    }

    /// Adds another distribution into this one (per-queue into broker-wide, window into
    /// cumulative). Counts and sums add, the maximum is the larger one.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.buckets.is_empty() {
            self.buckets.clone_from(&other.buckets);
        } else if !other.buckets.is_empty() {
            self.buckets = merge_sparse(&self.buckets, &other.buckets);
        }
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// A Prometheus histogram over fixed bucket bounds: `(le, cumulative count)` for each bound,
    /// ascending, followed by `(+Inf, count)`. NaN bounds are ignored, duplicates collapsed, and
    /// bounds are in the recorded unit (scale `le` for display, e.g. µs → s).
    ///
    /// Bounds rarely coincide with log-linear bucket edges. Counting is **conservative**: a
    /// log-linear bucket counts towards `le = b` only if its *largest* value is `<= b`, so a
    /// bucket straddling `b` is counted entirely in the next bound up. The reported count is
    /// therefore never more than the true number of values `<= b`, and never less than the
    /// true number of values `<= b · (1 - 1/32)` (a bucket is at most 1/32 of its lower bound
    /// wide). For latency SLOs that errs on the pessimistic side.
    pub fn prometheus_buckets(&self, bounds: &[f64]) -> Vec<(f64, u64)> {
        let mut sorted: Vec<f64> = bounds.iter().copied().filter(|b| !b.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        let mut out = Vec::with_capacity(sorted.len() + 1);
        let mut acc = 0u64;
        let mut next = 0usize;
        for b in sorted {
            if b == f64::INFINITY {
                break;
            }
            while let Some(&(i, c)) = self.buckets.get(next) {
                if bucket_range(usize::from(i)).1 as f64 <= b {
                    acc += c;
                    next += 1;
                } else {
                    break;
                }
            }
            out.push((b, acc));
        }
        out.push((f64::INFINITY, self.count));
        out
    }

    /// The non-empty buckets as `(smallest value, largest value, count)`, ascending; for
    /// heatmaps in the UI and for debugging.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.buckets.iter().map(|&(i, c)| {
            let (lo, hi) = bucket_range(usize::from(i));
            (lo, hi, c)
        })
    }

    /// Heap bytes held by this snapshot (16 per stored bucket), for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(u16, u64)>()
    }

    /// Makes a racily-read maximum consistent with the buckets: it must lie inside the highest
    /// non-empty bucket (a record's bucket and its maximum can land in different windows).
    fn fix_max(&self, raw: u64) -> u64 {
        match self.buckets.last() {
            None => 0,
            Some(&(i, _)) => {
                let (lo, hi) = bucket_range(usize::from(i));
                raw.clamp(lo, hi)
            }
        }
    }
}

/// Merges two sorted sparse bucket lists, adding counts of equal indexes.
fn merge_sparse(a: &[(u16, u64)], b: &[(u16, u64)]) -> Vec<(u16, u64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ai, ac) = a[i];
        let (bi, bc) = b[j];
        match ai.cmp(&bi) {
            std::cmp::Ordering::Less => {
                out.push((ai, ac));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push((bi, bc));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((ai, ac + bc));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The sampler's private view of one [`Histogram`].
///
/// Exists so reading never needs a lock or a reset on the hot side: each [`tick`](Self::tick)
/// loads the ever-growing atomic counts, subtracts what it saw last time (kept as the
/// cumulative snapshot) and so produces the last window's distribution, which it then adds
/// to the cumulative one. Owned by the sampler, one per histogram, never shared; pass it the
/// same histogram every tick. If it is handed a different histogram (the object was recreated)
/// it notices by identity and starts over.
///
/// A record racing with a tick is counted in exactly one window; its sum or maximum may land
/// in the neighbouring window.
#[derive(Debug, Default)]
pub struct HistogramReader {
    /// Identity of the histogram read last; 0 before the first tick.
    source: u64,
    /// The histogram's sum at the last tick.
    last_sum: u64,
    window: HistogramSnapshot,
    cumulative: HistogramSnapshot,
}

impl HistogramReader {
    /// A reader that has seen nothing; its first tick reports everything recorded so far.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `hist`: the window becomes what was recorded since the previous tick, and is
    /// added to the cumulative snapshot. Returns the new window. Costs one relaxed load per
    /// bucket (993) plus an allocation when new buckets appear.
    pub fn tick(&mut self, hist: &Histogram) -> &HistogramSnapshot {
        if hist.id != self.source {
            self.source = hist.id;
            self.last_sum = 0;
            self.cumulative = HistogramSnapshot::default();
        }
        let raw_max = hist.window_max.swap(0, Ordering::Relaxed);
        let window = &mut self.window;
        window.buckets.clear();
        window.count = 0;
        let prev = &self.cumulative.buckets;
        let mut p = 0usize;
        for (i, c) in hist.counts.iter().enumerate() {
            let now = c.load(Ordering::Relaxed);
            let before = match prev.get(p) {
                Some(&(pi, pc)) if usize::from(pi) == i => {
                    p += 1;
                    pc as u32 // the hot count is the cumulative one modulo 2^32
                }
                _ => 0,
            };
            let d = now.wrapping_sub(before);
            if d != 0 {
                window.buckets.push((i as u16, u64::from(d)));
                window.count += u64::from(d);
            }
        }
        let sum = hist.sum.load(Ordering::Relaxed);
        window.sum = sum.wrapping_sub(self.last_sum);
        self.last_sum = sum;
        window.max = window.fix_max(raw_max);
        self.cumulative.merge(window);
        &self.window
    }

    /// What was recorded between the last two ticks (the "last interval" figures).
    pub fn window(&self) -> &HistogramSnapshot {
        &self.window
    }

    /// Everything recorded since the reader first saw this histogram (for Prometheus).
    pub fn cumulative(&self) -> &HistogramSnapshot {
        &self.cumulative
    }

    /// Bytes held by this reader, inline and on the heap, for memory accounting.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.window.heap_bytes() + self.cumulative.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants() {
        assert_eq!(BUCKETS, 993);
        assert_eq!(Histogram::MEMORY_BYTES, 4000);
        assert_eq!(bucket_index(MAX_TRACKED), OVERFLOW - 1);
        assert_eq!(bucket_index(MAX_TRACKED + 1), OVERFLOW);
        assert_eq!(bucket_index(u64::MAX), OVERFLOW);
        assert_eq!(bucket_range(OVERFLOW - 1).1, MAX_TRACKED);
    }

    #[test]
    fn buckets_are_contiguous_and_consistent() {
        let mut expected_lo = 0u64;
        for i in 0..OVERFLOW {
            let (lo, hi) = bucket_range(i);
            assert_eq!(lo, expected_lo, "bucket {i}");
            assert!(hi >= lo);
            assert_eq!(bucket_index(lo), i);
            assert_eq!(bucket_index(hi), i);
            let width = hi - lo + 1;
            assert!(
                lo < EXACT_BELOW || width * SUB_BUCKETS as u64 <= lo,
                "bucket {i} too wide"
            );
            let r = representative(i);
            assert!((lo..=hi).contains(&r));
            for v in [lo, hi] {
                if v > 0 {
                    let err = (r as f64 - v as f64).abs() / v as f64;
                    assert!(err <= RELATIVE_ERROR, "bucket {i} value {v} err {err}");
                }
            }
            expected_lo = hi + 1;
        }
        assert_eq!(expected_lo, MAX_TRACKED + 1);
    }

    #[test]
    fn merge_sparse_adds_and_interleaves() {
        let a = [(1u16, 2u64), (5, 1), (9, 4)];
        let b = [(0u16, 1u64), (5, 3), (10, 1)];
        assert_eq!(
            merge_sparse(&a, &b),
            vec![(0, 1), (1, 2), (5, 4), (9, 4), (10, 1)]
        );
    }
}
