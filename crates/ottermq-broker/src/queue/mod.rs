//! Queues: the ready list, consumers and their credit, and delivery.
//!
//! A queue's state sits behind its own short-held mutex; publishers push into it from their own
//! connection task and hand the message straight to a consumer with credit when the ready list
//! is empty, so there is no per-queue task and no channel hop on the hot path. Lock order:
//! queue state, then the consumer channel's delivery state, then that connection's outbound
//! buffer. Nothing is awaited while a lock is held.

pub mod consumer;
pub mod dead_letter;
pub mod dispatch;
pub mod flow;
pub mod limits;
pub mod paging;
pub mod priority;
pub mod queue_type;
pub mod spill;
pub mod timer;
pub mod ttl;

use crate::error::{AmqpError, AmqpResult};
use crate::message::{BodyAt, Message, QueuedMessage};
use crate::store::MessageLog;
use consumer::Consumer;
use ottermq_protocol::{FieldTable, ShortStr};
use parking_lot::{Mutex, MutexGuard};
use priority::ReadyList;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// A paged lane's head is refilled from its tail below this many messages (or when empty).
const HEAD_LOW: usize = 1024;

/// Declared properties of a queue; fixed at declaration.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug)]
pub struct Queue {
    pub name: ShortStr,
    pub vhost: Arc<str>,
    pub options: QueueOptions,
    /// Classic or quorum (`x-queue-type`): a quorum queue counts deliveries and keeps every
    /// message on disk.
    pub kind: queue_type::QueueType,
    /// Connection id that declared an exclusive queue.
    pub owner: Option<u64>,
    state: Mutex<QueueState>,
    deleted: AtomicBool,
    pub stats: crate::stats::QueueStats,
    /// The vhost's message log, for a durable queue of a broker with a data directory.
    log: Option<Arc<MessageLog>>,
    /// Dead-letter target, TTL, expiry and length limits from the arguments.
    pub limits: limits::QueueLimits,
    /// The vhost, to route dead-lettered messages (weak: the vhost owns its queues).
    vhost_ref: Weak<crate::vhost::VHost>,
    /// Some message with a deadline was enqueued: the queue arms the expiry timer for its head.
    may_expire: AtomicBool,
    /// Publisher flow control: holds publishers while consumers catch up.
    pub flow: flow::QueueFlow,
}

/// A message recovered from the message log, to be put back in its queue.
#[derive(Debug)]
pub struct Restored {
    pub message: Message,
    pub persist_id: u64,
    /// It had been delivered before the restart.
    pub redelivered: bool,
    /// Its enqueue time, ms since the Unix epoch (None: a record of an older version).
    pub enqueued_ms: Option<u64>,
    /// Where its body is in the log, so it can be paged out without a copy.
    pub body_at: crate::message::BodyAt,
    /// The delivery count its last return record gave (quorum queues).
    pub returned: u32,
    /// It was out to a consumer when the broker stopped.
    pub out: bool,
}

/// What became of a publish to one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Taken; the message log ticket a confirm must wait for (0: none).
    Accepted(u64),
    /// Refused by `x-overflow` reject-publish(-dlx): a confirming publisher gets basic.nack.
    Refused,
}

impl Enqueued {
    pub fn ticket(self) -> u64 {
        match self {
            Enqueued::Accepted(t) => t,
            Enqueued::Refused => 0,
        }
    }
}

#[derive(Debug)]
struct QueueState {
    ready: ReadyList,
    ready_bytes: u64,
    /// Bytes of ready bodies held in RAM (the rest are paged out to disk).
    ram_bytes: u64,
    /// Ready messages in the RAM head whose body is in the message log only (read back when
    /// taken); messages in the paged tails are counted by the ready list.
    paged: u64,
    /// RAM allowed for ready bodies before new ones are paged out (u64::MAX: never).
    budget: u64,
    /// `budget + 1` while no message is paged, 0 while a paged tail exists: the one
    /// comparison `push_ready` makes (`ram_bytes + len >= limit`) sends every message to the
    /// cold path once a tail exists, so it goes behind that tail.
    limit: u64,
    /// Messages lost because their body or spill record could not be read back.
    page_in_failed: u64,
    pager: Option<Arc<paging::Pager>>,
    next_seq: u64,
    unacked: u64,
    consumers: Vec<Arc<Consumer>>,
    /// Round-robin cursor into `consumers`.
    cursor: usize,
    /// An auto-delete queue goes when its last consumer goes, but only once it had one.
    had_consumer: bool,
    /// `x-single-active-consumer`: only the first registered consumer receives.
    single_active: bool,
    /// A consumer took a message since flow last engaged (flow control, see [`flow`]).
    delivered_since_flow: bool,
    /// Connection of the consumer that last took a message.
    last_consumer_conn: u64,
    /// Messages taken off under the lock to be dead-lettered once it is released.
    dead: Vec<(QueuedMessage, dead_letter::Reason)>,
    /// Last consumer change, basic.get or redeclare (`x-expires`).
    last_used: Instant,
    /// The head deadline the expiry timer is armed for (message TTL).
    armed_head: Option<Instant>,
    /// The `x-expires` deadline the expiry timer is armed for.
    armed_expires: Option<Instant>,
}

impl QueueState {
    fn new(ready: ReadyList, single_active: bool) -> Self {
        QueueState {
            ready,
            ready_bytes: 0,
            ram_bytes: 0,
            paged: 0,
            budget: u64::MAX,
            limit: u64::MAX,
            page_in_failed: 0,
            pager: None,
            next_seq: 0,
            unacked: 0,
            consumers: Vec::new(),
            cursor: 0,
            had_consumer: false,
            single_active,
            delivered_since_flow: false,
            last_consumer_conn: 0,
            dead: Vec::new(),
            last_used: Instant::now(),
            armed_head: None,
            armed_expires: None,
        }
    }
}

/// Counts reported by queue.declare-ok and the management API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u32,
    pub ready_bytes: u64,
    /// Bytes of ready bodies in RAM (`ready_bytes` minus what is paged out).
    pub ram_bytes: u64,
    /// Ready messages whose body is paged out to disk.
    pub paged: u64,
    /// Messages lost because they could not be read back from disk (since the queue started).
    pub page_in_failed: u64,
}

/// What happened to a consumer's removal; the caller deletes an auto-delete queue when told.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    NotFound,
    Removed { now_unused_auto_delete: bool },
}

/// Checks every queue argument RabbitMQ 3.10 checks at queue.declare (TTL, expiry,
/// dead-lettering, length limits and overflow, then priority and single active consumer, then
/// what the queue type allows), with its PRECONDITION_FAILED texts. The one check behind
/// queue.declare, the management API's `PUT /api/queues` and definitions import (all go
/// through `VHost::declare_queue`).
pub fn check_declare_args(options: &QueueOptions, queue: &ShortStr, vhost: &str) -> AmqpResult<()> {
    let args = &options.arguments;
    limits::QueueLimits::parse(args, queue, vhost)?;
    dispatch::check_args(args, &queue.to_string_lossy(), vhost)?;
    queue_type::check(options, queue, vhost).map(|_| ())
}

impl Queue {
    /// A queue with the behaviour its arguments ask for (`x-max-priority`,
    /// `x-single-active-consumer`); the arguments were checked by [`check_declare_args`].
    pub fn new(name: ShortStr, vhost: Arc<str>, options: QueueOptions, owner: Option<u64>) -> Self {
        let mut limits = limits::QueueLimits::lenient(&options.arguments);
        let kind = queue_type::QueueType::of(&options.arguments);
        if kind == queue_type::QueueType::Quorum
            && limits.overflow == limits::Overflow::RejectPublishDlx
        {
            // RabbitMQ 3.10 accepts the declare but does not support it on a quorum queue: it
            // logs this and uses its default, drop-head (rabbit_quorum_queue:overflow/3).
            tracing::warn!(queue = %name, vhost = %vhost, "invalid overflow strategy reject-publish-dlx for a quorum queue; using drop-head");
            limits.overflow = limits::Overflow::DropHead;
        }
        let max = priority::max_priority(&options.arguments, &name.to_string_lossy(), &vhost)
            .ok()
            .flatten();
        let state = QueueState::new(
            ReadyList::new(max),
            dispatch::single_active(&options.arguments),
        );
        Queue {
            kind,
            limits,
            vhost_ref: Weak::new(),
            may_expire: AtomicBool::new(false),
            name,
            vhost,
            options,
            owner,
            state: Mutex::new(state),
            deleted: AtomicBool::new(false),
            stats: Default::default(),
            log: None,
            flow: Default::default(),
        }
    }

    /// Makes the queue keep its persistent messages in `log`.
    pub fn with_log(mut self, log: Option<Arc<MessageLog>>) -> Self {
        self.log = log;
        self
    }

    /// Makes the queue page ready bodies beyond `budget` bytes out to disk through `pager`
    /// (`x-queue-mode: lazy` lowers the budget to a small head).
    pub fn with_paging(mut self, pager: Arc<paging::Pager>, budget: u64) -> Self {
        let st = self.state.get_mut();
        st.budget = paging::budget(&self.options.arguments, budget);
        st.limit = st.budget.saturating_add(1);
        st.pager = Some(pager);
        self
    }

    /// Lets the queue route dead-lettered messages through `vhost`.
    pub fn with_vhost(mut self, vhost: Weak<crate::vhost::VHost>) -> Self {
        self.vhost_ref = vhost;
        self
    }

    /// Releases the lock, then dead-letters what was taken off under it.
    fn release(&self, mut st: MutexGuard<'_, QueueState>) {
        if st.dead.is_empty() {
            return;
        }
        let dead = std::mem::take(&mut st.dead);
        drop(st);
        self.dead_letter_all(dead);
    }

    /// Puts messages recovered from disk at the back of the ready list, in the given order.
    /// A TTL resumes where it stood: the deadline is the enqueue time kept in the log plus the
    /// TTL, so time spent while the broker was down counts; a message already past it is
    /// expired (and dead-lettered) by the first timer firing or read, before any delivery.
    ///
    /// A quorum queue keeps its delivery counts, as RabbitMQ's Raft log does; a message that
    /// was out to a consumer when the broker stopped is returned now (RabbitMQ returns it when
    /// the dead consumer's `DOWN` is applied after the restart): its count goes up by one and
    /// the return is logged. One past `x-delivery-limit` is held for [`Self::flush_dead`].
    pub fn restore(self: &Arc<Self>, messages: impl IntoIterator<Item = Restored>) {
        let mut st = self.state.lock();
        let now = Instant::now();
        let wall = crate::store::log::wall_ms();
        let quorum = self.kind == queue_type::QueueType::Quorum;
        for r in messages {
            let mut delivery_count = 0;
            if quorum {
                delivery_count = r.returned;
                if r.out {
                    delivery_count = delivery_count.saturating_add(1);
                }
            }
            let seq = st.next_seq;
            st.next_seq += 1;
            // Records of older versions keep no enqueue time: their TTL starts again.
            let age = std::time::Duration::from_millis(
                r.enqueued_ms.map_or(0, |ms| wall.saturating_sub(ms)),
            );
            let expires_at = self
                .deadline(&r.message, now)
                .map(|d| d.checked_sub(age).unwrap_or(now));
            // The recovered parts are slices of the message's own record (recovery reads one
            // record at a time), so they keep nothing else in memory; a message that goes to
            // a paged tail keeps nothing at all (its spill record holds the log location).
            let qm = QueuedMessage {
                expires_at,
                seq,
                message: r.message,
                redelivered: r.redelivered,
                enqueued_at: now.checked_sub(age).unwrap_or(now),
                persist_id: r.persist_id,
                body_at: r.body_at,
                paged: None,
                delivery_count,
            };
            if quorum && r.out {
                if self.past_delivery_limit(delivery_count) {
                    st.dead.push((qm, dead_letter::Reason::DeliveryLimit));
                    continue;
                }
                self.mark_returned(qm.persist_id, delivery_count);
            }
            st.push_ready(qm);
        }
        st.arm_head(self);
    }

    /// Dead-letters the messages [`Self::restore`] found past the delivery limit; called once
    /// every queue of the vhost is restored, so their copies go behind the messages the
    /// dead-letter target already held.
    pub fn flush_dead(&self) {
        let st = self.state.lock();
        self.release(st);
    }

    /// A quorum queue's message with this delivery count is dead-lettered (RabbitMQ's
    /// rabbit_fifo: a return past the limit, so limit 2 allows three deliveries).
    fn past_delivery_limit(&self, count: u32) -> bool {
        self.limits
            .delivery_limit
            .is_some_and(|l| i64::from(count) > l)
    }

    /// Records on disk that a persisted message left this queue for good.
    pub fn settle_persisted(&self, persist_id: u64) {
        if persist_id != 0 {
            if let Some(log) = &self.log {
                log.settle(persist_id);
            }
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub fn counts(&self) -> QueueCounts {
        let st = self.state.lock();
        // Tail messages held in RAM after a failed spill write are in RAM, not paged out.
        let held = st.ready.held();
        QueueCounts {
            ready: st.ready.len() as u64,
            unacked: st.unacked,
            consumers: st.consumers.len() as u32,
            ready_bytes: st.ready_bytes,
            ram_bytes: st.ram_bytes + held.bytes,
            paged: st.paged + st.ready.tail_count() - held.messages,
            page_in_failed: st.page_in_failed,
        }
    }

    /// Whether `conn` may use this queue (exclusive queues belong to one connection).
    pub fn check_access(&self, conn: u64) -> AmqpResult<()> {
        match self.owner {
            Some(owner) if owner != conn => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
                 originally declared on another connection or the exclusive property value does \
                 not match that of the original declaration.",
                self.name, self.vhost
            ))),
            _ => Ok(()),
        }
    }

    /// Appends a published message and delivers what can be delivered.
    /// `now` is the enqueue time (time in queue starts here), read once by the caller for a
    /// whole fan-out. Returns the message log ticket a confirm must wait for (0: none, the
    /// message is not persistent or the queue not durable).
    pub fn publish(self: &Arc<Self>, message: Message, now: Instant) -> Enqueued {
        let mut st = self.state.lock();
        if self.is_deleted() {
            return Enqueued::Accepted(0);
        }
        if self.limits.overflow != limits::Overflow::DropHead
            && self.limits.has_length_limit()
            && self.limits.would_overflow(
                st.ready.len() as u64,
                st.ready_bytes,
                message.body.len() as u64,
            )
        {
            drop(st);
            if self.limits.overflow == limits::Overflow::RejectPublishDlx {
                self.dead_letter_one(message, 0, dead_letter::Reason::Maxlen);
            } else {
                self.stats.overflow_dropped.inc();
            }
            return Enqueued::Refused;
        }
        self.stats.enqueued.inc();
        let seq = st.next_seq;
        st.next_seq += 1;
        // Appended under the queue lock, so log order is queue order (lock order: queue, log).
        let (persist_id, ticket, body_at) = match &self.log {
            // A quorum queue keeps every message on disk, whatever its delivery mode, as
            // RabbitMQ's do.
            Some(log) if message.is_persistent() || self.kind == queue_type::QueueType::Quorum => {
                let (id, ticket, offset) = log.append_publish(self.name.as_bytes(), &message);
                let seg = crate::store::log::segment_of(id);
                (
                    id,
                    ticket,
                    BodyAt::Log {
                        seg,
                        offset,
                        ticket,
                    },
                )
            }
            _ => (0, 0, BodyAt::Nowhere),
        };
        let expires_at = self.deadline(&message, now);
        let qm = QueuedMessage {
            seq,
            message,
            redelivered: false,
            enqueued_at: now,
            persist_id,
            expires_at,
            body_at,
            paged: None,
            delivery_count: 0,
        };
        if st.ready.is_empty() {
            if let Err(qm) = st.deliver_one(self, qm, now) {
                st.push_ready(qm);
                st.after_enqueue(&self.limits);
                st.arm_head(self);
            }
        } else {
            st.push_ready(qm);
            st.drain(self, now);
            st.after_enqueue(&self.limits);
            st.arm_head(self);
            if st.ready.len() > flow::FLOW_HIGH && st.delivered_since_flow {
                st.delivered_since_flow = false;
                self.flow.engage(st.last_consumer_conn);
            }
        }
        self.release(st);
        Enqueued::Accepted(ticket)
    }

    /// Delivers ready messages while some consumer has credit (after an ack, a new consumer,
    /// a qos change, or an outbound buffer that drained).
    pub fn drive(self: &Arc<Self>) {
        let mut st = self.state.lock();
        st.drain(self, Instant::now());
        self.release(st);
    }

    /// Puts delivered messages back at their original positions, marked redelivered.
    pub fn requeue(self: &Arc<Self>, messages: impl IntoIterator<Item = QueuedMessage>) {
        let mut st = self.state.lock();
        for mut qm in messages {
            st.unacked = st.unacked.saturating_sub(1);
            if self.is_deleted() {
                self.stats.requeued.inc();
                self.settle_persisted(qm.persist_id);
                continue;
            }
            if self.kind == queue_type::QueueType::Quorum {
                // RabbitMQ's rabbit_fifo counts every return and dead-letters a message
                // returned more often than the limit (with limit 2: three deliveries).
                qm.delivery_count = qm.delivery_count.saturating_add(1);
                if self.past_delivery_limit(qm.delivery_count) {
                    st.dead.push((qm, dead_letter::Reason::DeliveryLimit));
                    continue;
                }
                // The count survives a restart (RabbitMQ keeps it in the Raft log).
                self.mark_returned(qm.persist_id, qm.delivery_count);
            }
            self.stats.requeued.inc();
            qm.redelivered = true;
            st.ready_bytes += qm.body_len();
            st.ram_bytes += qm.body_len();
            st.ready.insert_requeued(qm);
        }
        st.drain(self, Instant::now());
        st.after_enqueue(&self.limits);
        st.arm_head(self);
        self.release(st);
    }

    /// Forgets `n` delivered messages that were acknowledged (`acked`) or rejected without
    /// requeue by their consumer.
    pub fn settled(&self, n: u64, acked: bool) {
        if acked {
            self.stats.acked.add(n);
        } else {
            self.stats.rejected.add(n);
        }
        let mut st = self.state.lock();
        st.unacked = st.unacked.saturating_sub(n);
    }

    /// basic.get: takes the head message. Returns it with the count left behind.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut st = self.state.lock();
        if self.limits.expires.is_some() {
            st.last_used = Instant::now();
        }
        st.expire_head();
        let Some(qm) = st.pop_ready() else {
            self.release(st);
            return None;
        };
        st.arm_head(self);
        st.relieve_flow(self);
        if !no_ack {
            st.unacked += 1;
        }
        if qm.persist_id != 0 {
            if no_ack {
                self.settle_persisted(qm.persist_id);
            } else {
                self.mark_delivered(qm.persist_id, qm.redelivered, qm.delivery_count);
            }
        }
        self.note_delivery(&qm);
        let remaining = st.ready.len() as u32;
        self.release(st);
        Some((qm, remaining))
    }

    /// Adds a consumer without delivering to it yet (the caller sends consume-ok first, then
    /// calls `drive`). Refuses when an exclusive consumer holds the queue or when an exclusive
    /// one is asked for while others exist.
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) -> AmqpResult<()> {
        let mut st = self.state.lock();
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !st.consumers.is_empty())
        {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name, self.vhost
            )));
        }
        let pos = dispatch::insert_position(&st.consumers, &consumer, st.single_active);
        st.consumers.insert(pos, consumer);
        st.had_consumer = true;
        st.last_used = Instant::now();
        Ok(())
    }

    /// Whether only the first registered consumer receives (`x-single-active-consumer`); when
    /// it goes the next one takes over, so its removal must be followed by `drive`.
    pub fn is_single_active(&self) -> bool {
        self.state.lock().single_active
    }

    pub fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) -> CancelOutcome {
        let mut st = self.state.lock();
        let Some(pos) = st.consumers.iter().position(|c| Arc::ptr_eq(c, consumer)) else {
            return CancelOutcome::NotFound;
        };
        consumer.cancel();
        st.consumers.remove(pos);
        st.last_used = Instant::now();
        if st.cursor > pos {
            st.cursor -= 1;
        }
        if let (Some(ms), true) = (self.limits.expires, st.consumers.is_empty()) {
            let due = st.last_used + std::time::Duration::from_millis(ms);
            st.arm_expires(self, due);
        }
        CancelOutcome::Removed {
            now_unused_auto_delete: self.options.auto_delete
                && st.had_consumer
                && st.consumers.is_empty(),
        }
    }

    /// Removes every ready message (not the unacknowledged ones); returns how many went.
    pub fn purge(&self) -> u32 {
        let mut st = self.state.lock();
        let n = st.ready.len() as u32;
        self.drop_all_ready(&mut st);
        self.flow.release();
        n
    }

    /// Marks the queue deleted and returns its consumers (to be told with basic.cancel) and
    /// the number of ready messages dropped.
    pub(crate) fn mark_deleted(&self) -> (Vec<Arc<Consumer>>, u32) {
        let mut st = self.state.lock();
        self.deleted.store(true, Ordering::Release);
        let n = st.ready.len() as u32;
        self.drop_all_ready(&mut st);
        self.flow.release();
        let consumers = std::mem::take(&mut st.consumers);
        for c in &consumers {
            c.cancel();
        }
        (consumers, n)
    }

    /// Empties the ready list for good (purge, deletion): settled on disk, pages released.
    fn drop_all_ready(&self, st: &mut QueueState) {
        if st.ready.tail_count() > 0 {
            // Read through for the persist ids to settle; a tail that cannot be read leaves
            // its persistent messages unsettled (they come back at restart).
            let lost = st
                .ready
                .drain_tails(st.read_ahead(), |qm| self.settle_persisted(qm.persist_id));
            st.page_in_failed += lost.messages;
        }
        for qm in st.ready.take_all() {
            self.settle_persisted(qm.persist_id);
        }
        st.ready_bytes = 0;
        st.ram_bytes = 0;
        st.paged = 0;
        st.limit = st.budget.saturating_add(1);
    }

    /// Logs a delivery of a persistent message taken with an ack pending: its first, and for
    /// a quorum queue also one after a return, so recovery can tell the message was out.
    fn mark_delivered(&self, persist_id: u64, redelivered: bool, delivery_count: u32) {
        if redelivered && delivery_count == 0 {
            return;
        }
        if let Some(log) = &self.log {
            let quorum = self.kind == queue_type::QueueType::Quorum;
            log.mark_delivered(persist_id, quorum);
        }
    }

    /// Logs a quorum queue message's new delivery count when it goes back to the queue.
    fn mark_returned(&self, persist_id: u64, count: u32) {
        if persist_id == 0 {
            return;
        }
        if let Some(log) = &self.log {
            log.mark_returned(persist_id, count);
        }
    }

    /// Counts a message leaving the ready list for a consumer, with its time in the queue.
    fn note_delivery(&self, qm: &QueuedMessage) {
        self.count_delivery(qm.redelivered, qm.enqueued_at.elapsed());
    }

    fn count_delivery(&self, redelivered: bool, waited: std::time::Duration) {
        self.stats.delivered.inc();
        if redelivered {
            self.stats.redelivered.inc();
        }
        self.stats.time_in_queue.record(waited.as_micros() as u64);
    }

    /// Age of the head message: how long the oldest ready message has waited.
    pub fn oldest_ready_age(&self) -> Option<std::time::Duration> {
        // A lane whose head is empty (emptied by basic.get, or a priority level served last)
        // gives the enqueue time of its tail's oldest record.
        let st = self.state.lock();
        st.ready.oldest_enqueued().map(|t| t.elapsed())
    }
}

impl QueueState {
    /// Appends at the tail; past the memory budget (or behind a paged tail) the whole message
    /// goes to its lane's paged tail (lazy paging).
    #[inline]
    fn push_ready(&mut self, qm: QueuedMessage) {
        let len = qm.body_len();
        self.ready_bytes += len;
        if self.ram_bytes + len >= self.limit {
            self.push_cold(qm, len);
        } else {
            self.ram_bytes += len;
            self.ready.push_back(qm);
        }
    }

    /// Whether a message appended now would go to a paged tail.
    fn goes_to_tail(&self, m: &Message) -> bool {
        self.pager.is_some()
            && (self.ram_bytes + m.body.len() as u64 > self.budget
                || self.ready.lane_has_tail(self.ready.lane_of(m)))
    }

    #[cold]
    fn push_cold(&mut self, qm: QueuedMessage, len: u64) {
        if self.goes_to_tail(&qm.message) {
            let lane = self.ready.lane_of(&qm.message);
            let Some(pager) = self.pager.clone() else {
                return;
            };
            if let Err(e) = self.ready.spill_back(lane, qm, pager.dir()) {
                // The message is still behind the lane's paged tail, held in RAM with every
                // later one until the tail is read through (`Spill::push`): FIFO order holds
                // and nothing is lost; logged once per failure, not per message.
                tracing::warn!(error = %e, "spill file write failed; this lane's new messages are held in memory behind its paged tail");
            }
            self.limit = 0;
            return;
        }
        if qm.paged.is_some() {
            self.paged += 1;
        } else {
            self.ram_bytes += len;
        }
        self.ready.push_back(qm);
    }

    /// Bytes read from a paged tail at once: a quarter of the budget, within 16..256 KiB.
    fn read_ahead(&self) -> usize {
        (self.budget / 4).clamp(16 * 1024, 256 * 1024) as usize
    }

    /// Refills the head of the lane served next from its paged tail when that head runs low
    /// (empty, or under [`HEAD_LOW`] messages with RAM under half the budget).
    #[cold]
    fn refill(&mut self) {
        loop {
            let Some(lane) = self.ready.next_lane() else {
                return;
            };
            if !self.ready.lane_has_tail(lane) {
                return;
            }
            let head = self.ready.lane_head_len(lane);
            if head >= HEAD_LOW || (head > 0 && self.ram_bytes >= self.budget / 2) {
                return;
            }
            let r = self.ready.refill(lane, self.read_ahead());
            self.ram_bytes += r.resident_bytes;
            self.paged += r.in_log;
            if self.ready.tail_count() == 0 {
                self.limit = self.budget.saturating_add(1);
            }
            let Some((e, lost)) = r.lost else {
                return;
            };
            // Persistent messages among them stay unsettled in the log: back at restart.
            tracing::error!(error = %e, lost = lost.messages, "could not read a paged tail back; its messages are dropped");
            self.page_in_failed += lost.messages;
            self.ready_bytes -= lost.bytes;
            if head > 0 || r.resident + r.in_log > 0 {
                return;
            }
        }
    }

    /// Takes the head, reading its body back from disk when it was paged out.
    #[inline]
    fn pop_ready(&mut self) -> Option<QueuedMessage> {
        loop {
            if self.ready.tail_count() > 0 {
                self.refill();
            }
            let mut qm = self.ready.pop_front()?;
            self.ready_bytes -= qm.body_len();
            if qm.paged.is_none() {
                self.ram_bytes -= qm.message.body.len() as u64;
                return Some(qm);
            }
            self.paged -= 1;
            if self.page_in(&mut qm) {
                return Some(qm);
            }
        }
    }

    #[cold]
    fn page_in(&mut self, qm: &mut QueuedMessage) -> bool {
        let Some(p) = &self.pager else { return false };
        match p.page_in(qm) {
            Ok(()) => true,
            Err(e) => {
                // Not settled: a persistent message is still in the log and comes back at
                // restart; counted in the queue's `page_in_failed`.
                tracing::error!(error = %e, "could not read a paged-out message back; dropped");
                self.page_in_failed += 1;
                false
            }
        }
    }

    /// Takes expired messages off the head, to be dead-lettered after the lock is released.
    fn expire_head(&mut self) {
        loop {
            // A paged message's expiry is checked once it reaches the head.
            if self.ready.tail_count() > 0 {
                self.refill();
            }
            let Some(t) = self.ready.front().and_then(|m| m.expires_at) else {
                break;
            };
            if t > Instant::now() {
                break;
            }
            if let Some(qm) = self.pop_ready() {
                self.dead.push((qm, dead_letter::Reason::Expired));
            }
        }
    }

    /// After messages went into the ready list: expire the head, then drop-head while over a
    /// length limit.
    fn after_enqueue(&mut self, limits: &limits::QueueLimits) {
        self.expire_head();
        if limits.overflow == limits::Overflow::DropHead && limits.has_length_limit() {
            while limits.over(self.ready.len() as u64, self.ready_bytes) {
                let Some(qm) = self.pop_ready() else { break };
                self.dead.push((qm, dead_letter::Reason::Maxlen));
            }
        }
    }

    /// Delivers while consumers have credit; `now` is the delivery time of all of them.
    fn drain(&mut self, queue: &Arc<Queue>, now: Instant) {
        loop {
            self.expire_head();
            let Some(qm) = self.pop_ready() else { break };
            if let Err(qm) = self.deliver_one(queue, qm, now) {
                self.ready_bytes += qm.body_len();
                self.ram_bytes += qm.body_len();
                self.ready.push_front(qm);
                break;
            }
        }
        self.arm_head(queue);
        self.relieve_flow(queue);
    }

    /// Releases held publishers once the ready list is short again.
    fn relieve_flow(&self, queue: &Queue) {
        if self.ready.len() <= flow::FLOW_LOW && queue.flow.is_engaged() {
            queue.flow.release();
        }
    }

    /// Hands one message to the next consumer with credit among the highest-priority ones.
    // By value, not boxed: a box would be a heap allocation per message on the hot path.
    #[allow(clippy::result_large_err)]
    fn deliver_one(
        &mut self,
        queue: &Arc<Queue>,
        qm: QueuedMessage,
        now: Instant,
    ) -> Result<(), QueuedMessage> {
        let n = self.consumers.len();
        let Some(idx) = dispatch::pick(&self.consumers, self.cursor, self.single_active) else {
            return Err(qm);
        };
        let consumer = &self.consumers[idx];
        let (redelivered, waited) = (
            qm.redelivered,
            now.saturating_duration_since(qm.enqueued_at),
        );
        let (persist_id, delivery_count) = (qm.persist_id, qm.delivery_count);
        // Fails only when the channel closed since `has_credit`; its close removes the consumer.
        consumer.channel.deliver(consumer, queue, qm, now)?;
        if persist_id != 0 {
            if consumer.no_ack {
                queue.settle_persisted(persist_id);
            } else {
                queue.mark_delivered(persist_id, redelivered, delivery_count);
            }
        }
        queue.count_delivery(redelivered, waited);
        if !consumer.no_ack {
            self.unacked += 1;
        }
        self.delivered_since_flow = true;
        self.last_consumer_conn = consumer.channel.conn_id;
        self.cursor = (idx + 1) % n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ottermq_protocol::RawProperties;

    fn queue(budget: u64, dir: &std::path::Path) -> Arc<Queue> {
        let opts = QueueOptions {
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::new(),
        };
        let pager = Arc::new(paging::Pager::new(dir.to_path_buf(), None));
        Arc::new(Queue::new(ShortStr::from("q"), "/".into(), opts, None).with_paging(pager, budget))
    }

    fn message(i: u64) -> Message {
        let mut body = vec![7u8; 200];
        body[..8].copy_from_slice(&i.to_le_bytes());
        Message {
            exchange: ShortStr::from(""),
            routing_key: ShortStr::from("q"),
            properties: RawProperties::empty(),
            body: Bytes::from(body),
            received_at: Instant::now(),
            trace: None,
        }
    }

    /// Past the budget messages go to the paged tail, counted there; they come back in order.
    #[test]
    fn paged_tail_counts_and_order() {
        let dir = std::env::temp_dir().join(format!("ottermq-q-page-{}", std::process::id()));
        let q = queue(10 * 200, &dir);
        let n = 3000u64;
        for i in 0..n {
            q.publish(message(i), Instant::now());
        }
        let c = q.counts();
        assert_eq!(c.ready, n);
        assert_eq!(c.ready_bytes, n * 200);
        assert_eq!(c.ram_bytes, 10 * 200);
        assert_eq!(c.paged, n - 10);
        for i in 0..n {
            let (m, left) = q.get(true).expect("a message");
            assert_eq!(m.message.body[..8], i.to_le_bytes(), "message {i}");
            assert_eq!(u64::from(left), n - i - 1);
            let c = q.counts();
            assert!(c.ram_bytes <= c.ready_bytes, "{c:?}");
        }
        let c = q.counts();
        assert_eq!((c.ready, c.ready_bytes, c.ram_bytes, c.paged), (0, 0, 0, 0));
        // Empty again: the next message stays in RAM.
        q.publish(message(0), Instant::now());
        assert_eq!(q.counts().paged, 0);
    }

    /// A spill file cut short: the messages that cannot be read back are dropped and counted
    /// in `page_in_failed`, and the counts stay consistent.
    #[test]
    fn failed_page_in_is_counted() {
        let dir = std::env::temp_dir().join(format!("ottermq-q-fail-{}", std::process::id()));
        let q = queue(10 * 200, &dir);
        let n = 2000u64;
        for i in 0..n {
            q.publish(message(i), Instant::now());
        }
        q.state.lock().ready.truncate_tails_for_test(&dir, 0);
        let mut got = 0;
        while q.get(true).is_some() {
            got += 1;
        }
        let c = q.counts();
        assert_eq!(got, 10, "only the RAM head comes back");
        assert_eq!(c.page_in_failed, n - 10);
        assert_eq!((c.ready, c.ready_bytes, c.ram_bytes, c.paged), (0, 0, 0, 0));
    }

    /// A persistent message whose spill record cannot be read back is dropped from the queue
    /// but not settled in the message log: it comes back at the next start.
    #[test]
    fn failed_page_in_leaves_persistent_messages_in_the_log() {
        let dir = std::env::temp_dir().join(format!("ottermq-q-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut issues = Vec::new();
        let v = crate::store::open_vhost(&dir, "/", 64 << 20, &mut issues).expect("open");
        let log = v.store.log.clone();
        let pager = Arc::new(paging::Pager::new(v.store.dir.clone(), Some(log.clone())));
        let opts = QueueOptions {
            durable: true,
            exclusive: false,
            auto_delete: false,
            arguments: FieldTable::new(),
        };
        let q = Arc::new(
            Queue::new(ShortStr::from("q"), "/".into(), opts, None)
                .with_log(Some(log.clone()))
                .with_paging(pager, 10 * 200),
        );
        let props = ottermq_protocol::BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        }
        .to_raw();
        let n = 500u64;
        for i in 0..n {
            let mut m = message(i);
            m.properties = props.clone();
            q.publish(m, Instant::now());
        }
        assert_eq!(q.counts().paged, n - 10);
        q.state
            .lock()
            .ready
            .truncate_tails_for_test(&v.store.dir, 0);
        let mut got = 0;
        while q.get(true).is_some() {
            got += 1;
        }
        assert_eq!(got, 10);
        assert_eq!(q.counts().page_in_failed, n - 10);
        log.close();
        let r = crate::store::recovery::replay(&v.store.dir.join("msgs"), false).expect("replay");
        assert_eq!(
            r.messages.len() as u64,
            n - 10,
            "the lost ones are still unsettled"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The spill file cannot be created while a paged backlog is in its write buffer: the
    /// message whose write failed and every later one are held in RAM behind that backlog, so
    /// messages come back in publish order and none is lost; paging works again afterwards.
    #[test]
    fn failed_spill_write_keeps_fifo_order() {
        let blocker =
            std::env::temp_dir().join(format!("ottermq-q-nospill-{}", std::process::id()));
        std::fs::write(&blocker, b"a file, so no directory can be made under it").expect("file");
        let q = queue(10 * 200, &blocker.join("pages"));
        let n = 3000u64;
        for i in 0..n {
            q.publish(message(i), Instant::now());
        }
        let c = q.counts();
        assert_eq!((c.ready, c.ready_bytes), (n, n * 200));
        let buffered = (spill::WRITE_BUF / 200) as u64;
        assert!(c.paged < buffered, "only the write buffer is paged: {c:?}");
        assert!(
            c.ram_bytes > (n - buffered) * 200,
            "the rest is held in RAM: {c:?}"
        );
        for i in 0..n {
            let (m, _) = q.get(true).expect("a message");
            assert_eq!(m.message.body[..8], i.to_le_bytes(), "message {i}");
        }
        let c = q.counts();
        assert_eq!((c.ready, c.ready_bytes, c.ram_bytes, c.paged), (0, 0, 0, 0));
        assert_eq!(c.page_in_failed, 0);
        // The disk is back: the next backlog is paged again.
        std::fs::remove_file(&blocker).expect("remove");
        for i in 0..n {
            q.publish(message(i), Instant::now());
        }
        assert_eq!(q.counts().paged, n - 10);
        for i in 0..n {
            let (m, _) = q.get(true).expect("a message");
            assert_eq!(m.message.body[..8], i.to_le_bytes(), "message {i}");
        }
        let _ = std::fs::remove_dir_all(&blocker);
    }

    /// Paged messages' TTL is checked when they reach the head: once all are past their
    /// deadline nothing is delivered and the counts go to zero, tail included; drop-head with
    /// `x-max-length` takes from the head while the rest is paged.
    #[test]
    fn ttl_and_max_length_reach_the_paged_tail() {
        let dir = std::env::temp_dir().join(format!("ottermq-q-ttl-{}", std::process::id()));
        let mut args = FieldTable::new();
        args.insert("x-message-ttl", ottermq_protocol::FieldValue::I32(1));
        let opts = QueueOptions {
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: args,
        };
        let pager = Arc::new(paging::Pager::new(dir.clone(), None));
        let q = Arc::new(
            Queue::new(ShortStr::from("q"), "/".into(), opts, None).with_paging(pager, 10 * 200),
        );
        for i in 0..3000 {
            q.publish(message(i), Instant::now());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(q.get(true).is_none(), "every message expired");
        let c = q.counts();
        assert_eq!((c.ready, c.ready_bytes, c.ram_bytes, c.paged), (0, 0, 0, 0));
        assert_eq!(q.stats.expired.get(), 3000);

        let mut args = FieldTable::new();
        args.insert("x-max-length", ottermq_protocol::FieldValue::I32(100));
        let opts = QueueOptions {
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: args,
        };
        let pager = Arc::new(paging::Pager::new(dir, None));
        let q = Arc::new(
            Queue::new(ShortStr::from("m"), "/".into(), opts, None).with_paging(pager, 10 * 200),
        );
        for i in 0..3000 {
            q.publish(message(i), Instant::now());
        }
        assert_eq!(q.counts().ready, 100);
        for i in 2900..3000u64 {
            let (m, _) = q.get(true).expect("a message");
            assert_eq!(m.message.body[..8], i.to_le_bytes());
        }
        assert!(q.get(true).is_none());
    }
}
