//! Channels: one state machine per channel number, owned by the connection's reader task.
//!
//! - `shared.rs`: what queues touch when delivering (tags, unacked list, credit).
//! - `publish.rs`: basic.publish + content assembly, routing, returns, confirms, transactions.
//! - `consume.rs`: qos, consume, cancel, get, ack / nack / reject, recover.
//! - `declare.rs`: exchange and queue declare, delete, bind, unbind, purge.

mod consume;
mod declare;
mod publish;
pub mod reply_to;
pub mod shared;

pub(crate) use declare::delete_queue;

use crate::broker::Broker;
use crate::connection::ConnectionHandle;
use crate::error::{AmqpError, AmqpResult};
use crate::queue::Queue;
use crate::vhost::VHost;
use crate::RouteTargets;
use ottermq_protocol::{encode_method, Method, ShortStr};
use publish::{Confirms, PendingPublish, Tx};
use shared::ChannelShared;
use std::sync::Arc;

/// What every channel of a connection shares: the broker, the vhost and per-connection state.
pub struct ConnCtx {
    pub broker: Arc<Broker>,
    pub vhost: Arc<VHost>,
    /// The authenticated user, whose permissions in `vhost` every operation is checked against.
    pub user: Arc<str>,
    pub conn: Arc<ConnectionHandle>,
    /// Reused routing buffer (no allocation per publish).
    pub route: RouteTargets,
    /// Exclusive queues this connection declared; deleted when it closes.
    pub exclusive_queues: Vec<Arc<Queue>>,
    /// The client said it understands server-sent basic.cancel.
    pub cancel_notify: bool,
    /// The client said it understands connection.blocked / connection.unblocked.
    pub blocked_notify: bool,
    /// A queue this connection published to holds its publishers (flow control): the
    /// connection waits for it before reading more.
    pub flow_wait: Option<Arc<Queue>>,
    /// When the connection's last socket read returned. Every message of one read takes it as
    /// its arrival and enqueue time: one clock read per read instead of several per message
    /// (clock reads were a tenth of the broker's CPU in S1; docs/BENCHMARKS.md).
    pub now: std::time::Instant,
}

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPhase {
    Open,
    /// The broker sent channel.close and waits for close-ok; other frames are dropped.
    Closing,
}

pub struct Channel {
    pub shared: Arc<ChannelShared>,
    pub phase: ChannelPhase,
    pending: Option<PendingPublish>,
    /// basic.qos global=false: the prefetch new consumers get.
    prefetch_count: u32,
    confirms: Option<Confirms>,
    tx: Option<Tx>,
    /// The queue most recently declared here: the empty queue name refers to it.
    last_queue: Option<ShortStr>,
    /// Last exchange published to, so steady publishing skips the vhost's name map.
    exchange_cache: Option<Arc<crate::exchange::Exchange>>,
    /// Exchanges this channel was allowed to publish to (RabbitMQ caches its checks per
    /// channel too), so a publish costs no regex match.
    publish_permitted: crate::permissions::PermitCache,
    /// Topic permissions this channel looked up, so a publish to a topic exchange reads no
    /// lock (emptied when a topic permission changes).
    topic_permitted: crate::permissions::TopicPermitCache,
    /// Last queue the default exchange routed to, for the same reason.
    queue_cache: Option<Arc<Queue>>,
    /// Resources already given back (close, error, connection end): done once.
    released: bool,
    /// The direct reply-to consumer of this channel, if it has one.
    reply: Option<reply_to::ReplyConsumer>,
}

impl Channel {
    pub fn new(shared: Arc<ChannelShared>) -> Self {
        Channel {
            shared,
            phase: ChannelPhase::Open,
            pending: None,
            prefetch_count: 0,
            confirms: None,
            tx: None,
            last_queue: None,
            exchange_cache: None,
            publish_permitted: Default::default(),
            topic_permitted: Default::default(),
            queue_cache: None,
            released: false,
            reply: None,
        }
    }

    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// Sends a method on this channel.
    pub fn send(&self, m: &Method) {
        let id = self.shared.id;
        self.shared.out.write(|b, _| encode_method(b, id, m));
    }

    /// True while a publish waits for its content header or body frames.
    pub fn expecting_content(&self) -> bool {
        self.pending.is_some()
    }

    /// Handles one method frame addressed to this (open) channel.
    pub fn handle_method(&mut self, ctx: &mut ConnCtx, method: Method) -> AmqpResult<()> {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        if self.pending.is_some() {
            return Err(AmqpError::unexpected_frame(
                "expected content header for class 60, got non content header frame instead",
            )
            .on(class_id, method_id));
        }
        let r = match method {
            Method::ChannelFlow(f) => {
                self.shared.set_flow(f.active);
                self.send(&Method::ChannelFlowOk(ottermq_protocol::ChannelFlowOk {
                    active: f.active,
                }));
                if f.active {
                    self.shared.resume();
                }
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::ExchangeDeclare(m) => self.exchange_declare(ctx, m),
            Method::ExchangeDelete(m) => self.exchange_delete(ctx, m),
            Method::ExchangeBind(m) => self.exchange_bind(ctx, m),
            Method::ExchangeUnbind(m) => self.exchange_unbind(ctx, m),
            Method::QueueDeclare(m) => self.queue_declare(ctx, m),
            Method::QueueBind(m) => self.queue_bind(ctx, m),
            Method::QueueUnbind(m) => self.queue_unbind(ctx, m),
            Method::QueuePurge(m) => self.queue_purge(ctx, m),
            Method::QueueDelete(m) => self.queue_delete(ctx, m),
            Method::BasicQos(m) => self.basic_qos(m),
            Method::BasicConsume(m) => self.basic_consume(ctx, m),
            Method::BasicCancel(m) => self.basic_cancel(ctx, m),
            Method::BasicPublish(m) => self.basic_publish(ctx, m),
            Method::BasicGet(m) => self.basic_get(ctx, m),
            Method::BasicAck(m) => self.settle(m.delivery_tag, m.multiple, consume::Settle::Ack),
            Method::BasicNack(m) => self.settle(
                m.delivery_tag,
                m.multiple,
                consume::Settle::Nack { requeue: m.requeue },
            ),
            Method::BasicReject(m) => self.settle(
                m.delivery_tag,
                false,
                consume::Settle::Reject { requeue: m.requeue },
            ),
            Method::BasicRecover(m) => self.recover(m.requeue, true),
            Method::BasicRecoverAsync(m) => self.recover(m.requeue, false),
            Method::ConfirmSelect(m) => self.confirm_select(ctx, m.nowait),
            Method::TxSelect => self.tx_select(ctx),
            Method::TxCommit => self.tx_commit(ctx),
            Method::TxRollback => self.tx_rollback(),
            other => Err(AmqpError::command_invalid(format!(
                "method {} is not allowed on a channel",
                other.name()
            ))),
        };
        r.map_err(|e| e.on(class_id, method_id))
    }

    /// Releases everything the channel holds: its consumers are cancelled, its unacked
    /// messages go back to their queues, a pending transaction is dropped.
    pub fn release(&mut self, ctx: &mut ConnCtx) {
        if self.released {
            return;
        }
        self.released = true;
        self.pending = None;
        self.tx = None;
        let unacked = self.shared.take_all(true);
        self.reply_cancel(&ctx.broker.reply_to, None);
        {
            // Counted into the retired totals and dropped from the registry in one step under
            // the retire lock, so the sampler sees this channel's counts exactly once.
            let mut retired = ctx.broker.stats.retired.lock();
            retired.add_channel(&self.shared.stats);
            ctx.broker
                .stats
                .retired_histograms
                .lock()
                .add_channel(&self.shared.stats);
            ctx.conn.channels.lock().remove(&self.shared.id);
        }
        ctx.broker.stats.channels_closed.inc();
        consume::requeue_all(unacked);
        let consumers = std::mem::take(&mut *self.shared.consumers.lock());
        for (q, c) in consumers {
            self.consumer_removed(ctx, &q, &c);
        }
    }
}
