//! The part of a channel that queues touch when they deliver: delivery-tag allocation, the
//! unacknowledged list and prefetch credit.
//!
//! Tag allocation, recording the unacked entry and encoding the deliver frames happen under one
//! per-channel lock, so tags reach the client in increasing order whichever queue delivered
//! them (a `multiple` ack relies on that).

use crate::connection::outbound::Outbound;
use crate::error::{AmqpError, AmqpResult};
use crate::message::QueuedMessage;
use crate::queue::consumer::Consumer;
use crate::queue::Queue;
use ottermq_protocol::{encode_basic_deliver, encode_basic_get_ok, encode_content};
use ottermq_tracing::{DeliverySpan, Settlement};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A delivered message waiting for its ack.
#[derive(Debug)]
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    /// None for basic.get deliveries.
    pub consumer: Option<Arc<Consumer>>,
    pub message: QueuedMessage,
    pub delivered_at: Instant,
    /// The open deliver span of a traced message, ended when it is settled.
    pub trace: Option<Box<DeliverySpan>>,
}

#[derive(Debug)]
struct DeliveryState {
    next_tag: u64,
    /// Ascending by tag (tags are allocated in order and appended).
    unacked: VecDeque<Unacked>,
}

#[derive(Debug)]
pub struct ChannelShared {
    pub id: u16,
    pub conn_id: u64,
    /// The connection's peer (the deliver spans' `network.peer.*`).
    pub peer: SocketAddr,
    pub out: Arc<Outbound>,
    /// The client understands server-sent basic.cancel (capability consumer_cancel_notify).
    pub cancel_notify: bool,
    state: Mutex<DeliveryState>,
    closed: AtomicBool,
    flow_active: AtomicBool,
    /// basic.qos global=true: a limit shared by every consumer on the channel (0 = none).
    global_prefetch: AtomicU32,
    global_unacked: AtomicU32,
    /// Consumers of this channel, so a drained outbound buffer or freed credit can resume them.
    pub consumers: Mutex<Vec<(Arc<Queue>, Arc<Consumer>)>>,
    pub stats: crate::stats::ChannelStats,
}

impl ChannelShared {
    pub fn new(
        id: u16,
        conn_id: u64,
        peer: SocketAddr,
        out: Arc<Outbound>,
        cancel_notify: bool,
    ) -> Self {
        ChannelShared {
            id,
            conn_id,
            peer,
            out,
            cancel_notify,
            state: Mutex::new(DeliveryState {
                next_tag: 1,
                unacked: VecDeque::new(),
            }),
            closed: AtomicBool::new(false),
            flow_active: AtomicBool::new(true),
            global_prefetch: AtomicU32::new(0),
            global_unacked: AtomicU32::new(0),
            consumers: Mutex::new(Vec::new()),
            stats: Default::default(),
        }
    }

    pub fn can_deliver(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
            && self.flow_active.load(Ordering::Relaxed)
            && !self.out.is_congested()
    }

    pub fn has_global_credit(&self) -> bool {
        let limit = self.global_prefetch.load(Ordering::Relaxed);
        limit == 0 || self.global_unacked.load(Ordering::Relaxed) < limit
    }

    pub fn has_global_prefetch(&self) -> bool {
        self.global_prefetch.load(Ordering::Relaxed) != 0
    }

    pub fn set_global_prefetch(&self, n: u32) {
        self.global_prefetch.store(n, Ordering::Relaxed);
    }

    pub fn set_flow(&self, active: bool) {
        self.flow_active.store(active, Ordering::Relaxed);
    }

    pub fn unacked_count(&self) -> usize {
        self.state.lock().unacked.len()
    }

    /// Sends basic.deliver with the message to `consumer`. Returns the message back when the
    /// channel closed in the meantime.
    // The message goes back by value: boxing it would allocate per delivery on the hot path.
    #[allow(clippy::result_large_err)]
    pub fn deliver(
        &self,
        consumer: &Arc<Consumer>,
        queue: &Arc<Queue>,
        qm: QueuedMessage,
        now: Instant,
    ) -> Result<(), QueuedMessage> {
        let mut st = self.state.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(qm);
        }
        let tag = st.next_tag;
        st.next_tag += 1;
        let m = &qm.message;
        let (span, traced_props) = match &m.trace {
            None => (None, None),
            Some(t) => {
                let (s, p) = crate::trace::start_delivery(
                    t,
                    self,
                    queue,
                    Some(consumer.tag.as_bytes()),
                    tag,
                    &qm,
                );
                (Some(s), p)
            }
        };
        let props = traced_props.as_ref().unwrap_or(&m.properties);
        // Only a quorum queue's redeliveries carry a count; a first delivery sends the
        // properties as published, as RabbitMQ 3.10 does.
        let counted = (qm.delivery_count > 0)
            .then(|| crate::queue::queue_type::with_delivery_count(props, qm.delivery_count));
        let props = counted.as_ref().unwrap_or(props);
        self.out.write(|buf, frame_max| {
            encode_basic_deliver(
                buf,
                self.id,
                consumer.tag.as_bytes(),
                tag,
                qm.redelivered,
                m.exchange.as_bytes(),
                m.routing_key.as_bytes(),
            );
            encode_content(buf, self.id, props, &m.body, frame_max);
        });
        if qm.redelivered {
            self.stats.redelivered.inc();
        }
        if consumer.no_ack {
            self.stats.delivered_no_ack.inc();
            if let Some(s) = span {
                s.settle(Settlement::AutoAck);
            }
        } else {
            self.stats.delivered.inc();
            consumer.unacked.fetch_add(1, Ordering::Relaxed);
            self.global_unacked.fetch_add(1, Ordering::Relaxed);
            st.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                consumer: Some(consumer.clone()),
                message: qm,
                delivered_at: now,
                trace: span.map(Box::new),
            });
        }
        Ok(())
    }

    /// Runs `f` with the next delivery tag under the delivery lock (so tags still reach the
    /// client in order); None when the channel is closed.
    pub fn with_next_tag<R>(&self, f: impl FnOnce(u64) -> R) -> Option<R> {
        let mut st = self.state.lock();
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let tag = st.next_tag;
        st.next_tag += 1;
        Some(f(tag))
    }

    /// Sends basic.get-ok with the message; records it as unacked unless `no_ack`.
    pub fn deliver_get(&self, queue: &Arc<Queue>, qm: QueuedMessage, remaining: u32, no_ack: bool) {
        let mut st = self.state.lock();
        let tag = st.next_tag;
        st.next_tag += 1;
        let m = &qm.message;
        let (span, traced_props) = match &m.trace {
            None => (None, None),
            Some(t) => {
                let (s, p) = crate::trace::start_delivery(t, self, queue, None, tag, &qm);
                (Some(s), p)
            }
        };
        let props = traced_props.as_ref().unwrap_or(&m.properties);
        // RabbitMQ 3.10 adds `x-delivery-count` to every basic.get-ok from a quorum queue,
        // 0 included.
        let counted = (queue.kind == crate::queue::queue_type::QueueType::Quorum)
            .then(|| crate::queue::queue_type::with_delivery_count(props, qm.delivery_count));
        let props = counted.as_ref().unwrap_or(props);
        self.out.write(|buf, frame_max| {
            encode_basic_get_ok(
                buf,
                self.id,
                tag,
                qm.redelivered,
                m.exchange.as_bytes(),
                m.routing_key.as_bytes(),
                remaining,
            );
            encode_content(buf, self.id, props, &m.body, frame_max);
        });
        self.stats.get.inc();
        if qm.redelivered {
            self.stats.redelivered.inc();
        }
        if no_ack {
            if let Some(s) = span {
                s.settle(Settlement::AutoAck);
            }
        } else {
            self.global_unacked.fetch_add(1, Ordering::Relaxed);
            st.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                consumer: None,
                message: qm,
                delivered_at: Instant::now(),
                trace: span.map(Box::new),
            });
        }
    }

    /// Removes the entries an ack / nack / reject names: `tag` alone, or with `multiple` every
    /// entry up to it (tag 0 with multiple means all). An unknown tag is a channel error.
    pub fn take_settled(&self, tag: u64, multiple: bool) -> AmqpResult<Vec<Unacked>> {
        let mut st = self.state.lock();
        let taken: Vec<Unacked> = if multiple && tag == 0 {
            st.unacked.drain(..).collect()
        } else {
            let pos = st
                .unacked
                .binary_search_by_key(&tag, |u| u.tag)
                .map_err(|_| {
                    AmqpError::precondition_failed(format!("unknown delivery tag {tag}"))
                })?;
            if multiple {
                st.unacked.drain(..=pos).collect()
            } else {
                st.unacked.remove(pos).into_iter().collect()
            }
        };
        drop(st);
        self.release_credit(&taken);
        Ok(taken)
    }

    /// Takes every unacked delivery (basic.recover, channel close). When `close` is set the
    /// channel stops accepting deliveries in the same step, so nothing slips in afterwards.
    pub fn take_all(&self, close: bool) -> Vec<Unacked> {
        let mut st = self.state.lock();
        if close {
            self.closed.store(true, Ordering::Release);
        }
        let taken: Vec<Unacked> = st.unacked.drain(..).collect();
        drop(st);
        self.release_credit(&taken);
        taken
    }

    /// Puts settled entries back as unacknowledged (tx.rollback undoing acks).
    pub fn restore(&self, entries: Vec<Unacked>) {
        let mut st = self.state.lock();
        for u in entries {
            self.global_unacked.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = &u.consumer {
                c.unacked.fetch_add(1, Ordering::Relaxed);
            }
            let pos = st.unacked.partition_point(|x| x.tag < u.tag);
            st.unacked.insert(pos, u);
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn release_credit(&self, taken: &[Unacked]) {
        if taken.is_empty() {
            return;
        }
        let _ = self
            .global_unacked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(taken.len() as u32))
            });
        for u in taken {
            if let Some(c) = &u.consumer {
                c.settled(1);
            }
        }
    }

    /// Delivers again to this channel's consumers: called when credit was freed or the
    /// outbound buffer drained.
    pub fn resume(&self) {
        let queues: Vec<Arc<Queue>> = self
            .consumers
            .lock()
            .iter()
            .map(|(q, _)| q.clone())
            .collect();
        for q in queues {
            q.drive();
        }
    }
}
