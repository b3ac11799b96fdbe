//! A consumer: a subscription of one channel to one queue, with its own prefetch credit.

use crate::channel::shared::ChannelShared;
use ottermq_protocol::ShortStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// What the queue needs to know to hand a message to a subscriber.
#[derive(Debug)]
pub struct Consumer {
    pub tag: ShortStr,
    pub channel: Arc<ChannelShared>,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false at consume time); 0 means unlimited.
    pub prefetch: u32,
    /// `x-priority` consume argument: higher goes first while it has credit.
    pub priority: i32,
    /// Messages delivered to this consumer and not yet settled.
    pub unacked: AtomicU32,
    cancelled: AtomicBool,
}

impl Consumer {
    pub fn new(
        tag: ShortStr,
        channel: Arc<ChannelShared>,
        no_ack: bool,
        exclusive: bool,
        prefetch: u32,
        priority: i32,
    ) -> Self {
        Consumer {
            tag,
            channel,
            no_ack,
            exclusive,
            prefetch,
            priority,
            unacked: AtomicU32::new(0),
            cancelled: AtomicBool::new(false),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// Whether one more message may go to this consumer now: not cancelled, channel open and
    /// flowing, its connection's outbound buffer not congested, and prefetch credit left.
    pub fn has_credit(&self) -> bool {
        if self.is_cancelled() || !self.channel.can_deliver() {
            return false;
        }
        if self.no_ack {
            return true;
        }
        (self.prefetch == 0 || self.unacked.load(Ordering::Relaxed) < self.prefetch)
            && self.channel.has_global_credit()
    }

    /// A delivery to this consumer was settled (acked, rejected or requeued).
    pub(crate) fn settled(&self, n: u32) {
        // Saturating: a settle after the count was reset by cancellation must not wrap.
        let _ = self
            .unacked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
}
