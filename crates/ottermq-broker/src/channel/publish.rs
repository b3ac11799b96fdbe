//! basic.publish: assembling the method, content header and body frames into a `Message`,
//! routing it, returning it when mandatory and unroutable, and confirming it; plus
//! transactions, which hold publishes and settlements back until tx.commit.

use super::consume::{apply_settle, DeferredSettle};
use super::{Channel, ConnCtx};
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::Exchange;
use crate::message::Message;
use crate::queue::{Enqueued, Queue};
use crate::store::MessageLog;
use bytes::{Bytes, BytesMut};
use ottermq_protocol::{
    encode_basic_return, encode_content, reply_code, BasicAck, BasicPublish, Method, RawProperties,
    ShortStr,
};
use ottermq_tracing::PublishSpan;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// A publish whose content has not fully arrived yet.
pub(super) struct PendingPublish {
    exchange: ShortStr,
    routing_key: ShortStr,
    mandatory: bool,
    header: Option<(u64, RawProperties)>,
    body: Body,
    /// When basic.publish arrived: the start of publish-to-route and publish-to-confirm.
    started: Instant,
}

enum Body {
    Empty,
    /// The common case: the whole body in one frame, kept as a slice of the read buffer.
    One(Bytes),
    /// A body spread over several frames, copied together once.
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }
}

/// Publisher-confirm bookkeeping: sequence numbers and how far acks have been sent.
#[derive(Debug, Default)]
pub(super) struct Confirms {
    next_seq: u64,
    ready_upto: u64,
    sent_upto: u64,
    /// Arrival of the oldest publish not yet confirmed (publish-to-confirm latency).
    oldest_pending: Option<Instant>,
    /// Publishes (confirm sequence number, log ticket) whose confirm waits for the message
    /// log's fsync, and every publish after them (confirms go out in order); the flag marks
    /// a publish a queue refused (`x-overflow` reject-publish), confirmed with basic.nack.
    waiting: VecDeque<(u64, u64, Instant, bool)>,
    log: Option<Arc<MessageLog>>,
    /// Publish spans of traced messages, ended with a confirm event when their ack goes out.
    /// Empty (never allocated) when nothing is traced.
    traced: Vec<(u64, PublishSpan)>,
}

/// A transaction in progress: publishes and settlements held until commit.
#[derive(Default)]
pub(super) struct Tx {
    publishes: Vec<(Arc<Exchange>, Message, bool)>,
    pub settles: Vec<DeferredSettle>,
    /// The vhost's message log: a commit that put persistent messages into durable queues is
    /// answered once they are on disk, as RabbitMQ does.
    log: Option<Arc<MessageLog>>,
    /// Message log tickets of commits whose commit-ok waits for the log's fsync, in order.
    commits: VecDeque<u64>,
}

impl Channel {
    pub(super) fn basic_publish(&mut self, ctx: &mut ConnCtx, m: BasicPublish) -> AmqpResult<()> {
        if m.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        self.pending = Some(PendingPublish {
            exchange: m.exchange,
            routing_key: m.routing_key,
            mandatory: m.mandatory,
            header: None,
            body: Body::Empty,
            started: ctx.now,
        });
        Ok(())
    }

    /// A content header frame for this channel.
    pub fn handle_header(
        &mut self,
        ctx: &mut ConnCtx,
        class_id: u16,
        body_size: u64,
        properties: RawProperties,
    ) -> AmqpResult<()> {
        let max = ctx.broker.config.max_message_size;
        let Some(p) = self.pending.as_mut().filter(|p| p.header.is_none()) else {
            return Err(AmqpError::unexpected_frame(
                "expected method frame, got non method frame instead",
            ));
        };
        if class_id != ottermq_protocol::CLASS_BASIC {
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class 60, got one for class {class_id} instead"
            )));
        }
        if body_size > max {
            self.pending = None;
            return Err(AmqpError::precondition_failed(format!(
                "message size {body_size} is larger than configured max size {max}"
            ))
            .on(60, 40));
        }
        p.header = Some((body_size, properties));
        if body_size == 0 {
            return self.complete_publish(ctx);
        }
        Ok(())
    }

    /// A content body frame for this channel.
    pub fn handle_body(&mut self, ctx: &mut ConnCtx, payload: Bytes) -> AmqpResult<()> {
        let Some(p) = self.pending.as_mut() else {
            return Err(AmqpError::unexpected_frame(
                "expected method frame, got non method frame instead",
            ));
        };
        let Some((size, _)) = p.header else {
            return Err(AmqpError::unexpected_frame(
                "expected content header for class 60, got non content header frame instead",
            ));
        };
        let have = p.body.len() as u64 + payload.len() as u64;
        if have > size {
            return Err(AmqpError::frame_error(format!(
                "content body exceeds the declared size {size}"
            )));
        }
        p.body = match std::mem::replace(&mut p.body, Body::Empty) {
            Body::Empty if have == size => Body::One(payload),
            Body::Empty => {
                let mut b = BytesMut::with_capacity(size as usize);
                b.extend_from_slice(&payload);
                Body::Many(b)
            }
            Body::Many(mut b) => {
                b.extend_from_slice(&payload);
                Body::Many(b)
            }
            Body::One(first) => {
                let mut b = BytesMut::with_capacity(size as usize);
                b.extend_from_slice(&first);
                b.extend_from_slice(&payload);
                Body::Many(b)
            }
        };
        if have == size {
            return self.complete_publish(ctx);
        }
        Ok(())
    }

    fn resolve_exchange(&mut self, ctx: &ConnCtx, name: &ShortStr) -> AmqpResult<Arc<Exchange>> {
        if let Some(e) = &self.exchange_cache {
            if e.name == *name && !e.is_deleted() {
                return Ok(e.clone());
            }
        }
        // Checked before the lookup, as RabbitMQ does (no permission: 403 even if missing).
        self.publish_permitted.check_write(ctx, name)?;
        let e = ctx.vhost.get_exchange(name)?;
        self.exchange_cache = Some(e.clone());
        Ok(e)
    }

    fn complete_publish(&mut self, ctx: &mut ConnCtx) -> AmqpResult<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let (_, properties) = p.header.unwrap_or_else(|| (0, RawProperties::empty()));
        let body = match p.body {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        };
        // Refusals name basic.publish (60, 40), as RabbitMQ's do, though they are found only
        // once the content has arrived.
        let exchange = self
            .resolve_exchange(ctx, &p.exchange)
            .map_err(|e| e.on(60, 40))?;
        if exchange.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                exchange.name, ctx.vhost.name
            ))
            .on(60, 40));
        }
        if exchange.kind == crate::exchange::ExchangeKind::Topic {
            self.topic_permitted
                .check_write(
                    &ctx.broker.users,
                    &ctx.vhost.name,
                    &ctx.user,
                    &exchange.name,
                    p.routing_key.as_bytes(),
                )
                .map_err(|e| e.on(60, 40))?;
        }
        if let Some(e) = properties.expiration() {
            if let Err(why) = crate::queue::limits::parse_expiration(e) {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid expiration '{}': {why}",
                    String::from_utf8_lossy(e)
                ))
                .on(60, 40));
            }
        }
        let mut msg = Message {
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties,
            body,
            // The publish method's arrival: no second clock read per message.
            received_at: p.started,
            trace: None,
        };
        self.rewrite_reply_to(&mut msg).map_err(|e| e.on(60, 40))?;
        let body = &msg.body;
        self.shared.stats.published.inc();
        self.shared.stats.body_size.record(body.len() as u64);
        exchange.stats.publish_in.inc();
        exchange.stats.publish_in_bytes.add(body.len() as u64);
        // Tracing off: this one check, no header parsing.
        let mut span = None;
        if let Some(tracer) = &ctx.broker.config.tracer {
            if let Some((s, trace)) = crate::trace::on_publish(tracer, &msg, ctx.conn.peer) {
                msg.trace = Some(trace);
                span = Some(s);
            }
        }
        if let Some(tx) = &mut self.tx {
            if let Some(mut s) = span {
                s.held_in_tx();
                s.end();
            }
            tx.publishes.push((exchange, msg, p.mandatory));
            return Ok(());
        }
        let (routed_at, ticket, queues, refused) =
            self.route_message(ctx, &exchange, msg, p.mandatory);
        let route_us = routed_at.saturating_duration_since(p.started).as_micros() as u64;
        self.shared.stats.route_latency.record(route_us);
        if let Some(s) = &mut span {
            s.routed(queues, p.mandatory);
        }
        if let Some(c) = &mut self.confirms {
            c.next_seq += 1;
            if ticket == 0 && c.waiting.is_empty() && !refused {
                c.ready_upto = c.next_seq;
                c.oldest_pending.get_or_insert(p.started);
            } else {
                c.waiting
                    .push_back((c.next_seq, ticket, p.started, refused));
            }
            if let Some(s) = span.take() {
                c.traced.push((c.next_seq, s));
            }
        }
        if let Some(s) = span {
            s.end();
        }
        Ok(())
    }

    /// Routes one message and enqueues it; unroutable mandatory messages go back with basic.return.
    /// Returns the enqueue time, the message log ticket its confirm waits for (0: none),
    /// how many queues the message went to and whether a queue refused it (length limit).
    fn route_message(
        &mut self,
        ctx: &mut ConnCtx,
        exchange: &Arc<Exchange>,
        msg: Message,
        mandatory: bool,
    ) -> (Instant, u64, usize, bool) {
        // The read that brought the message's last frame: the enqueue time of every copy and the
        // end of publish-to-route (which so measures the wait for the message's frames).
        let now = ctx.now;
        if exchange.name.is_empty() {
            // Default exchange: the routing key names the queue. Cached, so a steady publisher
            // does not take the vhost's queue-map lock per message.
            let cached = self
                .queue_cache
                .as_ref()
                .filter(|q| q.name == msg.routing_key && !q.is_deleted())
                .cloned();
            let q = cached.or_else(|| {
                let q = ctx.vhost.queue(msg.routing_key.as_bytes());
                self.queue_cache = q.clone();
                q
            });
            return match q {
                Some(q) => {
                    exchange.stats.publish_out.inc();
                    let r = q.publish(msg, now);
                    note_flow(ctx, q);
                    (now, r.ticket(), 1, r == Enqueued::Refused)
                }
                None if msg
                    .routing_key
                    .as_bytes()
                    .starts_with(super::reply_to::PREFIX) =>
                {
                    // A direct reply-to reply: counts as routed, as in RabbitMQ, even when its
                    // requester has gone (then it is dropped).
                    exchange.stats.publish_out.inc();
                    ctx.broker.reply_to.deliver(&msg);
                    (now, 0, 1, false)
                }
                None => {
                    self.unroutable(exchange, &msg, mandatory);
                    (now, 0, 0, false)
                }
            };
        }
        let mut ticket = 0;
        let mut refused = false;
        let mut targets = std::mem::take(&mut ctx.route);
        ctx.vhost.route(exchange, &msg, &mut targets);
        let n = targets.len();
        if targets.is_empty() {
            self.unroutable(exchange, &msg, mandatory);
        } else {
            exchange.stats.publish_out.inc();
            let mut msg = Some(msg);
            for (i, q) in targets.drain().enumerate() {
                let m = if i + 1 == n { msg.take() } else { msg.clone() };
                let Some(m) = m else { break };
                let r = q.publish(m, now);
                note_flow(ctx, q);
                refused |= r == Enqueued::Refused;
                ticket = ticket.max(r.ticket());
            }
        }
        ctx.route = targets;
        (now, ticket, n, refused)
    }

    fn unroutable(&self, exchange: &Exchange, msg: &Message, mandatory: bool) {
        exchange.stats.unroutable.inc();
        self.shared.stats.unroutable.inc();
        if mandatory {
            self.shared.stats.returned.inc();
            self.send_return(msg);
        }
    }

    fn send_return(&self, msg: &Message) {
        let id = self.id();
        self.shared.out.write(|b, frame_max| {
            encode_basic_return(
                b,
                id,
                reply_code::NO_ROUTE,
                b"NO_ROUTE",
                msg.exchange.as_bytes(),
                msg.routing_key.as_bytes(),
            );
            encode_content(b, id, &msg.properties, &msg.body, frame_max);
        });
    }

    /// Sends one basic.ack covering every publish confirmed since the last flush. Called once
    /// per batch of frames read, so a pipelining publisher gets `multiple` acks. A publish a
    /// queue refused gets its own basic.nack, after an ack for everything before it.
    pub fn flush_confirms(&mut self) {
        self.flush_commits();
        let Some(c) = &mut self.confirms else { return };
        let shared = &self.shared;
        if !c.waiting.is_empty() {
            let durable = c.log.as_ref().map_or(u64::MAX, |l| l.durable());
            while let Some(&(seq, ticket, started, refused)) = c.waiting.front() {
                if ticket > durable {
                    break;
                }
                c.waiting.pop_front();
                if refused {
                    send_acks(shared, c);
                    c.ready_upto = seq;
                    c.sent_upto = seq;
                    let upto = c.traced.partition_point(|(s, _)| *s <= seq);
                    for (_, s) in c.traced.drain(..upto) {
                        s.end();
                    }
                    let id = shared.id;
                    shared.out.write(|b, _| {
                        ottermq_protocol::encode_method(
                            b,
                            id,
                            &Method::BasicNack(ottermq_protocol::BasicNack {
                                delivery_tag: seq,
                                multiple: false,
                                requeue: false,
                            }),
                        )
                    });
                    continue;
                }
                c.ready_upto = seq;
                c.oldest_pending.get_or_insert(started);
            }
        }
        send_acks(shared, c);
    }

    /// Sends the tx.commit-ok of every commit whose messages are now on disk.
    fn flush_commits(&mut self) {
        let Some(tx) = &mut self.tx else { return };
        let mut ready = 0;
        if !tx.commits.is_empty() {
            let durable = tx.log.as_ref().map_or(u64::MAX, |l| l.durable());
            while tx.commits.front().is_some_and(|&t| t <= durable) {
                tx.commits.pop_front();
                ready += 1;
            }
        }
        for _ in 0..ready {
            self.send(&Method::TxCommitOk);
        }
    }

    /// Whether some confirm or commit-ok waits for the message log to reach the disk.
    pub fn awaiting_durable(&self) -> bool {
        self.confirms
            .as_ref()
            .is_some_and(|c| !c.waiting.is_empty())
            || self.tx.as_ref().is_some_and(|t| !t.commits.is_empty())
    }

    pub(super) fn confirm_select(&mut self, ctx: &ConnCtx, nowait: bool) -> AmqpResult<()> {
        if self.tx.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from tx to confirm mode",
            ));
        }
        self.confirms.get_or_insert_with(|| Confirms {
            log: ctx.vhost.store.as_ref().map(|s| s.log.clone()),
            ..Confirms::default()
        });
        if !nowait {
            self.send(&Method::ConfirmSelectOk);
        }
        Ok(())
    }

    pub(super) fn tx_select(&mut self, ctx: &ConnCtx) -> AmqpResult<()> {
        if self.confirms.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from confirm to tx mode",
            ));
        }
        self.tx.get_or_insert_with(|| Tx {
            log: ctx.vhost.store.as_ref().map(|s| s.log.clone()),
            ..Tx::default()
        });
        self.send(&Method::TxSelectOk);
        Ok(())
    }

    pub(super) fn tx_commit(&mut self, ctx: &mut ConnCtx) -> AmqpResult<()> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(AmqpError::precondition_failed(
                "channel is not transactional",
            ));
        };
        let publishes = std::mem::take(&mut tx.publishes);
        let settles = std::mem::take(&mut tx.settles);
        let mut ticket = 0;
        for (exchange, msg, mandatory) in publishes {
            ticket = ticket.max(self.route_message(ctx, &exchange, msg, mandatory).1);
        }
        for s in settles {
            apply_settle(s.entries, s.how);
        }
        let Some(tx) = self.tx.as_mut() else {
            return Ok(());
        };
        let durable = tx.log.as_ref().map_or(u64::MAX, |l| l.durable());
        if tx.commits.is_empty() && ticket <= durable {
            self.send(&Method::TxCommitOk);
        } else {
            // Answered by flush_commits once the log's fsync covers the ticket; the connection
            // sees awaiting_durable and wakes on the log's durable position.
            tx.commits.push_back(ticket);
        }
        Ok(())
    }

    pub(super) fn tx_rollback(&mut self) -> AmqpResult<()> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(AmqpError::precondition_failed(
                "channel is not transactional",
            ));
        };
        tx.publishes.clear();
        // Settlements are undone: the messages are unacknowledged again, as in RabbitMQ.
        for s in std::mem::take(&mut tx.settles) {
            self.shared.restore(s.entries);
        }
        self.send(&Method::TxRollbackOk);
        Ok(())
    }
}

/// Sends one basic.ack (with `multiple` when it covers several) for every publish confirmed
/// and not yet acknowledged.
fn send_acks(shared: &super::shared::ChannelShared, c: &mut Confirms) {
    if c.ready_upto <= c.sent_upto {
        return;
    }
    let multiple = c.ready_upto - c.sent_upto > 1;
    let tag = c.ready_upto;
    let n = tag - c.sent_upto;
    c.sent_upto = tag;
    shared.stats.confirmed.add(n);
    if let Some(t) = c.oldest_pending.take() {
        shared
            .stats
            .confirm_latency
            .record_n(t.elapsed().as_micros() as u64, n);
    }
    if !c.traced.is_empty() {
        // Only those this ack covers: later ones may still wait for the log's fsync.
        let upto = c.traced.partition_point(|(seq, _)| *seq <= tag);
        for (seq, s) in c.traced.drain(..upto) {
            s.confirmed(seq);
        }
    }
    let id = shared.id;
    let m = Method::BasicAck(BasicAck {
        delivery_tag: tag,
        multiple,
    });
    shared
        .out
        .write(|b, _| ottermq_protocol::encode_method(b, id, &m));
}

/// Remembers a queue that holds this connection's publishers (flow control); the connection
/// waits for it before reading more. An `Arc` clone only while flow is engaged.
fn note_flow(ctx: &mut ConnCtx, q: Arc<Queue>) {
    if ctx.flow_wait.is_none() && q.flow.holds(ctx.conn.id) {
        ctx.flow_wait = Some(q);
    }
}
