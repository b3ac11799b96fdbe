//! Fixed-size time series: ring buffers in two resolutions (tiers).
//!
//! Every series holds a *fine* ring (default: a point every 5 s for 10 minutes) and a *coarse*
//! ring (default: a point every 60 s for 2 hours). Memory is fixed when the series is created:
//! `(fine_len + coarse_len) × 4` bytes of samples plus a small header, whatever the uptime.
//!
//! # Time
//!
//! No timestamp is stored per point. The sampler's first tick fixes an *epoch*; tick `t` of the
//! fine tier is at `epoch + t × fine_interval`, coarse point `c` aggregates fine ticks
//! `c × r .. (c + 1) × r` (`r = coarse_interval / fine_interval`) and is stamped with the start
//! of that period, `epoch + c × coarse_interval`. A ring only remembers the tick of its newest
//! point; the others follow from their distance to it. Ticks the sampler missed are stored as
//! gaps (NaN) and left out of query results.
//!
//! # Why `f32` samples
//!
//! Samples are rates and gauges shown on charts. `f32` has a 24-bit mantissa: integers up to
//! 16,777,216 are exact and larger values are off by less than 1e-7 relative — invisible on a
//! chart — while halving the memory of every series compared with `f64` (960 instead of
//! 1,920 bytes per series with the default tiers, which matters with tens of thousands of
//! queues × several metrics). Values go in and come out as `f64`.

use std::time::Duration;

/// How the resolution tiers are laid out; shared by every series of a [`crate::SeriesStore`].
///
/// Exists so operators can trade history length against memory: each series costs
/// `(fine_len + coarse_len) × 4` bytes of samples (see [`crate::SeriesStore::memory_per_series`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierConfig {
    /// Time between fine points; also the sampler's tick interval. Default 5 s.
    pub fine_interval: Duration,
    /// Number of fine points kept. Default 120 (10 minutes at 5 s).
    pub fine_len: usize,
    /// Time between coarse points; a whole multiple of `fine_interval`. Default 60 s.
    pub coarse_interval: Duration,
    /// Number of coarse points kept. Default 120 (2 hours at 60 s).
    pub coarse_len: usize,
}

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            fine_interval: Duration::from_secs(5),
            fine_len: 120,
            coarse_interval: Duration::from_secs(60),
            coarse_len: 120,
        }
    }
}

/// Why a [`TierConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TierConfigError {
    /// An interval is shorter than a millisecond or not a whole number of milliseconds.
    #[error("tier intervals must be whole, non-zero milliseconds")]
    BadInterval,
    /// A tier holds no points.
    #[error("tier lengths must be at least 1")]
    ZeroLength,
    /// The coarse interval is not a whole multiple of the fine interval.
    #[error("coarse interval {coarse:?} is not a multiple of fine interval {fine:?}")]
    NotMultiple {
        /// The fine interval given.
        fine: Duration,
        /// The coarse interval given.
        coarse: Duration,
    },
    /// The fine tier is too short to hold one coarse period, from which coarse points are
    /// computed.
    #[error("fine tier holds {fine_len} points but one coarse period needs {needed}")]
    FineTooShort {
        /// The fine length given.
        fine_len: usize,
        /// Fine points per coarse point.
        needed: u64,
    },
}

impl TierConfig {
    /// Checks the invariants the series rely on: whole-millisecond non-zero intervals, the
    /// coarse one a multiple of the fine one, non-zero lengths, and a fine tier at least one
    /// coarse period long.
    pub fn validate(&self) -> Result<(), TierConfigError> {
        let whole_ms =
            |d: Duration| d.as_millis() > 0 && d.subsec_millis() * 1_000_000 == d.subsec_nanos();
        if !whole_ms(self.fine_interval) || !whole_ms(self.coarse_interval) {
            return Err(TierConfigError::BadInterval);
        }
        if self.fine_len == 0 || self.coarse_len == 0 {
            return Err(TierConfigError::ZeroLength);
        }
        let (fine, coarse) = (
            self.fine_interval.as_millis(),
            self.coarse_interval.as_millis(),
        );
        if coarse % fine != 0 {
            return Err(TierConfigError::NotMultiple {
                fine: self.fine_interval,
                coarse: self.coarse_interval,
            });
        }
        let needed = (coarse / fine) as u64;
        if (self.fine_len as u64) < needed {
            return Err(TierConfigError::FineTooShort {
                fine_len: self.fine_len,
                needed,
            });
        }
        Ok(())
    }

    /// History covered by the fine tier (default 10 minutes).
    pub fn fine_span(&self) -> Duration {
        self.fine_interval * self.fine_len as u32
    }

    /// History covered by the coarse tier (default 2 hours).
    pub fn coarse_span(&self) -> Duration {
        self.coarse_interval * self.coarse_len as u32
    }

    /// Sample bytes per series, `(fine_len + coarse_len) × 4`; the bulk of a series' cost.
    pub fn sample_bytes(&self) -> usize {
        (self.fine_len + self.coarse_len) * std::mem::size_of::<f32>()
    }
}

/// Maps tick indexes to wall-clock milliseconds and back for one store.
///
/// Exists so that no timestamp is stored per point: a tick index, the epoch and the interval
/// give the time. Wall-clock readings are rounded to the nearest tick, so a sampler whose
/// wake-ups jitter by less than half an interval still lands on consecutive ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeline {
    epoch_ms: i64,
    fine_ms: u64,
    ratio: u64,
}

impl Timeline {
    /// A timeline whose tick 0 is at `epoch_ms` (Unix milliseconds), with the intervals of
    /// `config` (assumed valid; zero intervals are treated as 1 ms / ratio 1).
    pub fn new(config: &TierConfig, epoch_ms: i64) -> Self {
        let fine_ms = (config.fine_interval.as_millis() as u64).max(1);
        let coarse_ms = config.coarse_interval.as_millis() as u64;
        Self {
            epoch_ms,
            fine_ms,
            ratio: (coarse_ms / fine_ms).max(1),
        }
    }

    /// The epoch: Unix milliseconds of fine tick 0.
    pub fn epoch_ms(&self) -> i64 {
        self.epoch_ms
    }

    /// Fine interval in milliseconds.
    pub fn fine_ms(&self) -> u64 {
        self.fine_ms
    }

    /// Fine ticks per coarse point.
    pub fn ratio(&self) -> u64 {
        self.ratio
    }

    /// The fine tick nearest to `now_ms` (0 for times before the epoch).
    pub fn fine_tick(&self, now_ms: i64) -> u64 {
        let since = now_ms.saturating_sub(self.epoch_ms);
        if since <= 0 {
            return 0;
        }
        (since as u64 + self.fine_ms / 2) / self.fine_ms
    }

    /// Unix milliseconds of fine tick `tick`.
    pub fn fine_time(&self, tick: u64) -> i64 {
        self.epoch_ms
            .saturating_add((tick.saturating_mul(self.fine_ms)).min(i64::MAX as u64) as i64)
    }

    /// The coarse point a fine tick contributes to.
    pub fn coarse_tick(&self, fine_tick: u64) -> u64 {
        fine_tick / self.ratio
    }

    /// Unix milliseconds of coarse point `tick` (the start of the period it aggregates).
    pub fn coarse_time(&self, tick: u64) -> i64 {
        self.fine_time(tick.saturating_mul(self.ratio))
    }
}

/// A fixed-capacity ring of samples indexed by tick.
///
/// Exists so a series' memory is fixed at creation: once full, each new point overwrites the
/// oldest. Only the newest tick is stored; point `k` places before the newest is at tick
/// `newest - k`. Skipped ticks are filled with NaN gaps so that invariant holds.
#[derive(Clone, Debug)]
pub struct Ring {
    buf: Box<[f32]>,
    /// Slot of the newest point (meaningless while empty).
    head: usize,
    /// Number of slots written, up to the capacity.
    len: usize,
    /// Tick of the newest point (meaningless while empty).
    newest: u64,
}

impl Ring {
    /// An empty ring of `capacity` points (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![f32::NAN; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
            newest: 0,
        }
    }

    /// Maximum number of points kept.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Number of points (including gaps) currently held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first point.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True once the ring has dropped a point to make room: it no longer holds the start of
    /// the series.
    pub fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    /// Tick of the newest point.
    pub fn newest_tick(&self) -> Option<u64> {
        (self.len > 0).then_some(self.newest)
    }

    /// Tick of the oldest point still held.
    pub fn oldest_tick(&self) -> Option<u64> {
        (self.len > 0).then(|| self.newest - (self.len as u64 - 1))
    }

    /// Stores `value` at `tick`. A newer tick advances the ring (skipped ticks become NaN gaps,
    /// the oldest points drop once full); the newest or a retained older tick is overwritten in
    /// place. Returns false, storing nothing, for a tick older than anything retained.
    pub fn record(&mut self, tick: u64, value: f64) -> bool {
        let value = value as f32;
        let cap = self.buf.len();
        if self.len == 0 {
            self.head = 0;
            self.buf[0] = value;
            self.len = 1;
            self.newest = tick;
            return true;
        }
        if tick <= self.newest {
            let back = self.newest - tick;
            if back >= self.len as u64 {
                return false;
            }
            let slot = (self.head + cap - back as usize) % cap;
            self.buf[slot] = value;
            return true;
        }
        let gap = (tick - self.newest - 1).min(cap as u64) as usize;
        for _ in 0..gap {
            self.push(f32::NAN);
        }
        self.push(value);
        self.newest = tick;
        true
    }

    fn push(&mut self, value: f32) {
        self.head = (self.head + 1) % self.buf.len();
        self.buf[self.head] = value;
        self.len = (self.len + 1).min(self.buf.len());
    }

    /// The sample at `tick`, if retained (NaN for a gap).
    pub fn get(&self, tick: u64) -> Option<f64> {
        if self.len == 0 || tick > self.newest {
            return None;
        }
        let back = self.newest - tick;
        if back >= self.len as u64 {
            return None;
        }
        let cap = self.buf.len();
        Some(f64::from(self.buf[(self.head + cap - back as usize) % cap]))
    }

    /// `(tick, sample)` pairs, oldest first, gaps included as NaN.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, f64)> + '_ {
        let cap = self.buf.len();
        (0..self.len).rev().map(move |back| {
            let slot = (self.head + cap - back) % cap;
            (self.newest - back as u64, f64::from(self.buf[slot]))
        })
    }
}

/// How a coarse point summarises the fine points of its period.
///
/// Exists to make the summary explicit per metric: averaging a rate keeps its meaning
/// (messages per second over the minute), a gauge keeps its last level, and a latency
/// percentile keeps its worst value so a spike is not averaged away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// Mean of the fine points (rates).
    Mean,
    /// The newest fine point (gauges).
    Last,
    /// The largest fine point (latency percentiles, peaks).
    Max,
}

/// One metric of one object over time, in a fine and a coarse tier.
///
/// Exists so the sampler can record one value per tick and the API can ask for "the last N
/// minutes" without knowing about tiers: [`points`](Self::points) picks the tier. The coarse
/// point of the current period is updated on every fine tick (from the fine points of that
/// period, per [`Aggregation`]), so the coarse tier never lags behind.
#[derive(Clone, Debug)]
pub struct TieredSeries {
    timeline: Timeline,
    aggregation: Aggregation,
    fine: Ring,
    coarse: Ring,
}

impl TieredSeries {
    /// An empty series with the tiers of `config` (assumed valid, see
    /// [`TierConfig::validate`]) whose tick 0 is at `epoch_ms`.
    pub fn new(config: &TierConfig, epoch_ms: i64, aggregation: Aggregation) -> Self {
        Self {
            timeline: Timeline::new(config, epoch_ms),
            aggregation,
            fine: Ring::new(config.fine_len),
            coarse: Ring::new(config.coarse_len),
        }
    }

    /// Records the value of fine tick `tick` and refreshes the coarse point of its period.
    /// Returns false if the tick is older than the fine tier.
    pub fn record(&mut self, tick: u64, value: f64) -> bool {
        if !self.fine.record(tick, value) {
            return false;
        }
        let coarse_tick = self.timeline.coarse_tick(tick);
        let first = coarse_tick * self.timeline.ratio;
        let last = (first + self.timeline.ratio - 1).min(self.fine.newest);
        let first = first.max(self.fine.oldest_tick().unwrap_or(first));
        let mut samples = (first..=last)
            .filter_map(|t| self.fine.get(t))
            .filter(|v| !v.is_nan());
        let summary = match self.aggregation {
            Aggregation::Mean => {
                let (sum, n) = samples.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
                if n == 0 {
                    f64::NAN
                } else {
                    sum / f64::from(n)
                }
            }
            Aggregation::Last => samples.next_back().unwrap_or(f64::NAN),
            Aggregation::Max => samples.fold(f64::NAN, f64::max),
        };
        self.coarse.record(coarse_tick, summary);
        true
    }

    /// Records `value` at the fine tick nearest to `now_ms`.
    pub fn record_at(&mut self, now_ms: i64, value: f64) -> bool {
        let tick = self.timeline.fine_tick(now_ms);
        self.record(tick, value)
    }

    /// The newest non-gap fine point as `(unix_ms, value)`, for "current value" displays.
    pub fn latest(&self) -> Option<(i64, f64)> {
        self.fine
            .iter()
            .rev()
            .find(|(_, v)| !v.is_nan())
            .map(|(t, v)| (self.timeline.fine_time(t), v))
    }

    /// Points with timestamps in `(now_ms - duration, now_ms]`, oldest first, gaps left out,
    /// as `(unix_ms, value)`.
    ///
    /// Uses the fine tier when it covers the request — `duration` is within the fine span, or
    /// the fine ring has not dropped anything yet, so it holds the whole series — and the
    /// coarse tier otherwise.
    pub fn points(&self, now_ms: i64, duration: Duration) -> Vec<(i64, f64)> {
        let dur_ms = duration.as_millis().min(i64::MAX as u128) as i64;
        let from = now_ms.saturating_sub(dur_ms);
        let fine_span = self
            .timeline
            .fine_ms
            .saturating_mul(self.fine.capacity() as u64);
        let use_fine = (dur_ms as u64) <= fine_span || !self.fine.is_full();
        let (ring, step) = if use_fine {
            (&self.fine, 1)
        } else {
            (&self.coarse, self.timeline.ratio)
        };
        ring.iter()
            .filter(|(_, v)| !v.is_nan())
            .map(|(t, v)| (self.timeline.fine_time(t.saturating_mul(step)), v))
            .filter(|&(ts, _)| ts > from && ts <= now_ms)
            .collect()
    }

    /// The fine tier.
    pub fn fine(&self) -> &Ring {
        &self.fine
    }

    /// The coarse tier.
    pub fn coarse(&self) -> &Ring {
        &self.coarse
    }

    /// The timeline mapping ticks to times.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// How coarse points are computed.
    pub fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    /// Bytes held by this series, inline and on the heap.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.fine.capacity() + self.coarse.capacity()) * std::mem::size_of::<f32>()
    }
}
