//! basic.qos, consume, cancel, get, ack, nack, reject and recover.

use super::declare::generated_name;
use super::shared::Unacked;
use super::{Channel, ConnCtx};
use crate::error::{AmqpError, AmqpResult};
use crate::queue::consumer::Consumer;
use crate::queue::{CancelOutcome, Queue};
use ottermq_protocol::{
    BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicGet, BasicQos, Method,
};
use ottermq_tracing::Settlement;
use smallvec::SmallVec;
use std::sync::Arc;

/// What an ack-like method does with the messages it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// basic.nack: back to the queue, or dropped.
    Nack {
        requeue: bool,
    },
    /// basic.reject: back to the queue, or dropped.
    Reject {
        requeue: bool,
    },
}

impl Settle {
    fn requeue(self) -> bool {
        matches!(
            self,
            Settle::Nack { requeue: true } | Settle::Reject { requeue: true }
        )
    }
}

/// A settlement deferred by a transaction until tx.commit.
pub(super) struct DeferredSettle {
    pub entries: Vec<Unacked>,
    pub how: Settle,
}

impl Channel {
    pub(super) fn basic_qos(&mut self, m: BasicQos) -> AmqpResult<()> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!(
                "prefetch_size!=0 ({})",
                m.prefetch_size
            )));
        }
        if m.global {
            self.shared.set_global_prefetch(m.prefetch_count as u32);
        } else {
            self.prefetch_count = m.prefetch_count as u32;
        }
        self.send(&Method::BasicQosOk);
        // A larger limit may free credit right away.
        self.shared.resume();
        Ok(())
    }

    pub(super) fn basic_consume(&mut self, ctx: &mut ConnCtx, m: BasicConsume) -> AmqpResult<()> {
        // The direct reply-to pseudo-queue is no queue: None stands for it. RabbitMQ checks no
        // permission for it either.
        let q = if m.queue.as_bytes() == super::reply_to::PSEUDO_QUEUE {
            None
        } else {
            Some(self.readable_queue(ctx, m.queue)?)
        };
        let tag = if m.consumer_tag.is_empty() {
            generated_name("amq.ctag-")
        } else {
            m.consumer_tag
        };
        if self
            .shared
            .consumers
            .lock()
            .iter()
            .any(|(_, c)| c.tag == tag)
            || self.reply.as_ref().is_some_and(|r| r.tag == tag)
        {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        if q.is_none() {
            let tag = self.reply_consume(&ctx.broker.reply_to, tag, m.no_ack)?;
            if !m.nowait {
                self.send(&Method::BasicConsumeOk(BasicConsumeOk {
                    consumer_tag: tag,
                }));
            }
            return Ok(());
        }
        let q = q.expect("checked above");
        let priority = m
            .arguments
            .get("x-priority")
            .map(|v| {
                v.as_i64().ok_or_else(|| {
                    AmqpError::precondition_failed("invalid arg 'x-priority': not an integer")
                })
            })
            .transpose()?
            .unwrap_or(0)
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        let consumer = Arc::new(Consumer::new(
            tag.clone(),
            self.shared.clone(),
            m.no_ack,
            m.exclusive,
            self.prefetch_count,
            priority,
        ));
        // Registered without delivering, so consume-ok reaches the client before any delivery.
        q.add_consumer(consumer.clone())?;
        self.shared.consumers.lock().push((q.clone(), consumer));
        ctx.broker.stats.consumers_added.inc();
        if !m.nowait {
            self.send(&Method::BasicConsumeOk(BasicConsumeOk {
                consumer_tag: tag,
            }));
        }
        q.drive();
        Ok(())
    }

    pub(super) fn basic_cancel(&mut self, ctx: &mut ConnCtx, m: BasicCancel) -> AmqpResult<()> {
        let found = {
            let mut list = self.shared.consumers.lock();
            list.iter()
                .position(|(_, c)| c.tag == m.consumer_tag)
                .map(|pos| list.remove(pos))
        };
        if let Some((q, c)) = found {
            self.consumer_removed(ctx, &q, &c);
        } else {
            self.reply_cancel(&ctx.broker.reply_to, Some(&m.consumer_tag));
        }
        if !m.nowait {
            self.send(&Method::BasicCancelOk(BasicCancelOk {
                consumer_tag: m.consumer_tag,
            }));
        }
        Ok(())
    }

    /// Takes a consumer off its queue; an auto-delete queue left without consumers goes.
    pub(super) fn consumer_removed(
        &mut self,
        ctx: &mut ConnCtx,
        q: &Arc<Queue>,
        c: &Arc<Consumer>,
    ) {
        match q.remove_consumer(c) {
            CancelOutcome::NotFound => {}
            CancelOutcome::Removed {
                now_unused_auto_delete,
            } => {
                ctx.broker.stats.consumers_removed.inc();
                if now_unused_auto_delete {
                    super::declare::delete_queue(ctx, q);
                } else if q.is_single_active() {
                    // The next consumer in registration order is active now.
                    q.drive();
                }
            }
        }
    }

    pub(super) fn basic_get(&mut self, ctx: &mut ConnCtx, m: BasicGet) -> AmqpResult<()> {
        let q = self.readable_queue(ctx, m.queue)?;
        match q.get(m.no_ack) {
            Some((qm, remaining)) => self.shared.deliver_get(&q, qm, remaining, m.no_ack),
            None => {
                self.shared.stats.get_empty.inc();
                self.send(&Method::BasicGetEmpty)
            }
        }
        Ok(())
    }

    pub(super) fn settle(&mut self, tag: u64, multiple: bool, how: Settle) -> AmqpResult<()> {
        let mut entries = self.shared.take_settled(tag, multiple)?;
        settle_spans(&mut entries, how);
        let stats = &self.shared.stats;
        let n = entries.len() as u64;
        match how {
            Settle::Ack => {
                stats.acked.add(n);
                let now = std::time::Instant::now();
                for u in &entries {
                    stats
                        .ack_latency
                        .record(now.duration_since(u.delivered_at).as_micros() as u64);
                }
            }
            Settle::Nack { .. } => stats.nacked.add(n),
            Settle::Reject { .. } => stats.rejected.add(n),
        }
        if how.requeue() {
            stats.requeued.add(n);
        }
        if let Some(tx) = &mut self.tx {
            tx.settles.push(DeferredSettle { entries, how });
            return Ok(());
        }
        apply_settle(entries, how);
        if self.shared.has_global_prefetch() {
            // Credit shared by the whole channel: every consumer on it may take more now.
            self.shared.resume();
        }
        Ok(())
    }

    /// basic.recover: unacked messages go back to their queues. recover-ok goes out first, so
    /// the client sees it before the redeliveries (RabbitMQ's order).
    pub(super) fn recover(&mut self, requeue: bool, reply: bool) -> AmqpResult<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        if reply {
            self.send(&Method::BasicRecoverOk);
        }
        requeue_all(self.shared.take_all(false));
        Ok(())
    }
}

/// Ends the deliver spans of traced deliveries with how they were settled (an ack, nack or
/// reject event), when the consumer's method arrives.
fn settle_spans(entries: &mut [Unacked], how: Settle) {
    for u in entries.iter_mut() {
        if let Some(span) = u.trace.take() {
            span.settle(match how {
                Settle::Ack => Settlement::Ack,
                Settle::Nack { requeue } => Settlement::Nack { requeue },
                Settle::Reject { requeue } => Settlement::Reject { requeue },
            });
        }
    }
}

/// Applies an ack / nack / reject to the queues the messages came from, then lets those queues
/// deliver again (credit was freed).
pub(super) fn apply_settle(entries: Vec<Unacked>, how: Settle) {
    if how.requeue() {
        requeue_all(entries);
        return;
    }
    let acked = how == Settle::Ack;
    {
        {
            let mut touched: SmallVec<[Arc<Queue>; 4]> = SmallVec::new();
            let mut run: Option<(Arc<Queue>, u64)> = None;
            for u in entries {
                u.queue.discard(u.message, acked);
                match &mut run {
                    Some((q, n)) if Arc::ptr_eq(q, &u.queue) => *n += 1,
                    _ => {
                        if let Some((q, n)) = run.take() {
                            q.settled(n, acked);
                            remember(&mut touched, q);
                        }
                        run = Some((u.queue, 1));
                    }
                }
            }
            if let Some((q, n)) = run {
                q.settled(n, acked);
                remember(&mut touched, q);
            }
            for q in touched {
                q.drive();
            }
        }
    }
}

fn remember(touched: &mut SmallVec<[Arc<Queue>; 4]>, q: Arc<Queue>) {
    if !touched.iter().any(|x| Arc::ptr_eq(x, &q)) {
        touched.push(q);
    }
}

/// Returns unacked deliveries to their queues (each queue gets its messages in one go, and
/// puts them back at their original positions).
pub(crate) fn requeue_all(entries: Vec<Unacked>) {
    let mut groups: SmallVec<[(Arc<Queue>, Vec<crate::message::QueuedMessage>); 4]> =
        SmallVec::new();
    for u in entries {
        if let Some(span) = u.trace {
            span.settle(Settlement::Returned);
        }
        match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.message),
            None => groups.push((u.queue, vec![u.message])),
        }
    }
    for (q, msgs) in groups {
        q.requeue(msgs);
    }
}
