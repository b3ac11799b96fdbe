//! Message TTL and queue expiry: when a message's time is up, and the sweep that expires the
//! heads of idle queues and deletes unused `x-expires` queues.
//!
//! A message's deadline is fixed when it is enqueued (the smaller of the queue's
//! `x-message-ttl` and its own `expiration`), as RabbitMQ does; like RabbitMQ, only the head
//! of the ready list is checked, so a long-lived head holds back shorter-lived messages behind
//! it. Heads are expired whenever the queue delivers, is read or is published to, and by one
//! broker-wide sweep task (no timer per queue, none per message) for queues nobody touches.

use super::Queue;
use crate::broker::Broker;
use crate::message::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the sweep looks at queues that may hold expiring messages or may expire.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(25);

impl Queue {
    /// The deadline of a message enqueued at `now`; None (no clock arithmetic, no parsing
    /// beyond one flag test) for the common message without TTL on a queue without TTL.
    #[inline]
    pub(super) fn deadline(&self, message: &Message, now: Instant) -> Option<Instant> {
        let per_msg = super::limits::message_ttl(message.properties.expiration());
        let ttl = match (self.limits.message_ttl, per_msg) {
            (None, None) => return None,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
        };
        // Read first: a store per message would keep bouncing the cache line.
        if !self.may_expire.load(Ordering::Relaxed) {
            self.may_expire.store(true, Ordering::Relaxed);
        }
        Some(now + Duration::from_millis(ttl))
    }

    /// Whether the sweep has anything to do for this queue.
    fn needs_sweep(&self) -> bool {
        self.limits.expires.is_some() || self.may_expire.load(Ordering::Relaxed)
    }

    /// Expires the queue's head messages whose time is up (dead-lettering them).
    pub fn expire_now(&self) {
        let mut st = self.state.lock();
        st.expire_head();
        let dead = std::mem::take(&mut st.dead);
        drop(st);
        if !dead.is_empty() {
            self.dead_letter_all(dead);
        }
    }

    /// `x-expires`: unused (no consumers, not read, not redeclared) for at least its value.
    fn unused_for_too_long(&self, now: Instant) -> bool {
        let Some(ms) = self.limits.expires else {
            return false;
        };
        let st = self.state.lock();
        st.consumers.is_empty()
            && now.saturating_duration_since(st.last_used) >= Duration::from_millis(ms)
    }

    /// Restarts the `x-expires` clock (redeclare, basic.get, consumer added or removed).
    pub fn touch(&self) {
        if self.limits.expires.is_some() {
            self.state.lock().last_used = Instant::now();
        }
    }
}

/// One sweep over every queue of every vhost.
pub fn sweep(broker: &Broker) {
    let now = Instant::now();
    for v in broker.vhosts() {
        for q in v.queues() {
            if !q.needs_sweep() {
                continue;
            }
            if q.unused_for_too_long(now) {
                v.delete_queue_and_cancel(&q);
                continue;
            }
            q.expire_now();
        }
    }
}

/// Runs the sweep every `SWEEP_INTERVAL` until `stop` resolves.
pub async fn run(broker: Arc<Broker>, stop: impl std::future::Future<Output = ()>) {
    let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => sweep(&broker),
        }
    }
}
