//! Per-second rates from successive readings of a monotonic counter.

/// Turns successive readings of a [`crate::Counter`] into per-second rates.
///
/// Exists because the hot path only counts; rates (messages/s, bytes/s) are computed once per
/// tick by the sampler, from the difference between two readings over the time between them.
///
/// - The first reading has nothing to compare with: no rate.
/// - A reading smaller than the previous one means the counter restarted at zero (its object
///   was deleted and recreated under the same key). As Prometheus' `rate()` does, the new value
///   is taken as the increase since the previous reading; that undercounts what the old
///   object counted after the previous reading, which is unknowable.
/// - A reading at the same or an earlier time than the previous one (clock step) gives no
///   rate and does not replace the previous reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateTracker {
    last: Option<(u64, i64)>,
}

impl RateTracker {
    /// A tracker that has seen no reading.
    pub const fn new() -> Self {
        Self { last: None }
    }

    /// Feeds the counter's value read at `now_ms` (Unix milliseconds) and returns the
    /// per-second rate since the previous reading, if there is one.
    pub fn update(&mut self, value: u64, now_ms: i64) -> Option<f64> {
        let Some((prev, prev_ms)) = self.last else {
            self.last = Some((value, now_ms));
            return None;
        };
        if now_ms <= prev_ms {
            return None;
        }
        self.last = Some((value, now_ms));
        let delta = if value >= prev { value - prev } else { value };
        Some(delta as f64 * 1000.0 / (now_ms - prev_ms) as f64)
    }

    /// The last accepted reading as `(value, unix_ms)`.
    pub fn last(&self) -> Option<(u64, i64)> {
        self.last
    }

    /// Forgets the previous reading, so the next one starts afresh (no rate).
    pub fn reset(&mut self) {
        self.last = None;
    }
}
