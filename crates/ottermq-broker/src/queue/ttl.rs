//! Message TTL and queue expiry: when a message's time is up, and what the expiry timer does
//! when a queue's head message or the queue itself (`x-expires`) reaches its deadline.
//!
//! A message's deadline is fixed when it is enqueued (the smaller of the queue's
//! `x-message-ttl` and its own `expiration`), as RabbitMQ does; like RabbitMQ, only the head
//! of the ready list is checked, so a long-lived head holds back shorter-lived messages behind
//! it. Heads are expired whenever the queue delivers, is read or is published to, and at the
//! head's deadline by the expiry timer ([`super::timer`]), armed for the head only (no timer
//! per message), so a message nobody reads is dead-lettered at its deadline, not later.

use super::Queue;
use crate::message::Message;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    /// Runs at an armed deadline (see [`super::timer`]): expires the head messages whose time
    /// is up, re-arms for the new head, and deletes the queue when `x-expires` is reached.
    pub(super) fn on_timer(self: &Arc<Self>) {
        let now = Instant::now();
        let mut st = self.state.lock();
        if st.armed_head.is_some_and(|t| t <= now) {
            st.armed_head = None;
        }
        st.expire_head();
        st.arm_head(self);
        let mut unused = false;
        if let Some(ms) = self.limits.expires {
            if st.armed_expires.is_some_and(|t| t <= now) {
                st.armed_expires = None;
            }
            if st.consumers.is_empty() {
                let due = st.last_used + Duration::from_millis(ms);
                if due <= now {
                    unused = true;
                } else {
                    st.arm_expires(self, due);
                }
            }
        }
        self.release(st);
        if unused && !self.is_deleted() {
            if let Some(v) = self.vhost_ref.upgrade() {
                v.delete_queue_and_cancel(self);
            }
        }
    }

    /// `x-expires`: arms the timer for the queue's first possible expiry (declaration).
    pub(crate) fn arm_expiry(self: &Arc<Self>) {
        if let Some(ms) = self.limits.expires {
            let mut st = self.state.lock();
            let due = st.last_used + Duration::from_millis(ms);
            st.arm_expires(self, due);
        }
    }

    /// Restarts the `x-expires` clock (redeclare, basic.get, consumer added or removed). The
    /// deadline already armed fires early, sees the queue was used, and re-arms.
    pub fn touch(&self) {
        if self.limits.expires.is_some() {
            self.state.lock().last_used = Instant::now();
        }
    }
}

impl super::QueueState {
    /// Arms the timer for the head's deadline unless an earlier one is already armed: one
    /// atomic load for a queue that never held a message with a deadline.
    pub(super) fn arm_head(&mut self, queue: &Arc<Queue>) {
        if !queue.may_expire.load(Ordering::Relaxed) {
            return;
        }
        if self.ready.tail_count() > 0 {
            self.refill();
        }
        let Some(at) = self.ready.front().and_then(|m| m.expires_at) else {
            return;
        };
        if self.armed_head.is_some_and(|a| a <= at) {
            return;
        }
        self.armed_head = Some(at);
        super::timer::schedule(at, queue);
    }

    /// Arms the `x-expires` deadline `at` unless one is armed already (it fires no later).
    pub(super) fn arm_expires(&mut self, queue: &Arc<Queue>, at: Instant) {
        if self.armed_expires.is_some() {
            return;
        }
        self.armed_expires = Some(at);
        super::timer::schedule(at, queue);
    }
}
