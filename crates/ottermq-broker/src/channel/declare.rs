//! exchange.* and queue.* methods: declaring, deleting and binding, with RabbitMQ's checks
//! and reply texts.

use super::{Channel, ConnCtx};
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{Binding, Destination, ExchangeKind};
use crate::permissions::{Access, Resource};
use crate::queue::{Queue, QueueOptions};
use crate::vhost::ExchangeSpec;
use ottermq_protocol::{
    ExchangeBind, ExchangeDeclare, ExchangeDelete, ExchangeUnbind, Method, QueueBind, QueueDeclare,
    QueueDeclareOk, QueueDelete, QueueDeleteOk, QueuePurge, QueuePurgeOk, QueueUnbind, ShortStr,
};
use std::sync::Arc;

/// A random server-generated name: `prefix` + 22 characters of URL-safe base64, as RabbitMQ
/// makes `amq.gen-…` queue names and `amq.ctag-…` consumer tags.
pub(crate) fn generated_name(prefix: &str) -> ShortStr {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(prefix.len() + 22);
    s.push_str(prefix);
    for _ in 0..22 {
        s.push(ALPHABET[rand::random_range(0..64usize)] as char);
    }
    ShortStr::from(s)
}

fn reserved_prefix(kind: &str, name: &ShortStr) -> AmqpError {
    AmqpError::access_refused(format!(
        "{kind} name '{name}' contains reserved prefix 'amq.*'"
    ))
}

impl Channel {
    pub(super) fn exchange_declare(
        &mut self,
        ctx: &mut ConnCtx,
        m: ExchangeDeclare,
    ) -> AmqpResult<()> {
        if m.passive {
            if m.exchange.is_empty() {
                // The default exchange always exists.
            } else {
                ctx.vhost.get_exchange(&m.exchange)?;
            }
        } else {
            let kind = ExchangeKind::parse(m.kind.as_bytes()).ok_or_else(|| {
                AmqpError::command_invalid(format!("unknown exchange type '{}'", m.kind))
            })?;
            if m.exchange.is_empty() {
                return Err(AmqpError::access_refused(
                    "operation not permitted on the default exchange",
                ));
            }
            ctx.authorize(Access::Configure, Resource::Exchange, m.exchange.as_bytes())?;
            if ctx.vhost.exchange(m.exchange.as_bytes()).is_none() {
                if let Some(ae) = m.arguments.get("alternate-exchange") {
                    if let Some(ae) = ae.as_str_bytes() {
                        ctx.authorize(Access::Read, Resource::Exchange, m.exchange.as_bytes())?;
                        ctx.authorize(Access::Write, Resource::Exchange, ae)?;
                    }
                }
            }
            if m.exchange.as_bytes().starts_with(b"amq.") {
                // Re-declaring a predefined exchange equivalently is allowed, as in RabbitMQ.
                match ctx.vhost.exchange(m.exchange.as_bytes()) {
                    Some(_) => {}
                    None => return Err(reserved_prefix("exchange", &m.exchange)),
                }
            }
            ctx.vhost.declare_exchange(ExchangeSpec {
                name: m.exchange,
                kind,
                durable: m.durable,
                auto_delete: m.auto_delete,
                internal: m.internal,
                arguments: m.arguments,
            })?;
        }
        if !m.nowait {
            self.send(&Method::ExchangeDeclareOk);
        }
        Ok(())
    }

    pub(super) fn exchange_delete(
        &mut self,
        ctx: &mut ConnCtx,
        m: ExchangeDelete,
    ) -> AmqpResult<()> {
        if m.exchange.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        if m.exchange.as_bytes().starts_with(b"amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{}' in vhost '{}' not allowed",
                m.exchange, ctx.vhost.name
            )));
        }
        ctx.authorize(Access::Configure, Resource::Exchange, m.exchange.as_bytes())?;
        ctx.vhost.delete_exchange(&m.exchange, m.if_unused)?;
        self.exchange_cache = None;
        if !m.nowait {
            self.send(&Method::ExchangeDeleteOk);
        }
        Ok(())
    }

    pub(super) fn exchange_bind(&mut self, ctx: &mut ConnCtx, m: ExchangeBind) -> AmqpResult<()> {
        let (d, src, key) = (&m.destination, &m.source, &m.routing_key);
        binding_permitted(ctx, Resource::Exchange, d, src, key)?;
        let dest = ctx.vhost.get_exchange(&m.destination)?;
        let src = ctx.vhost.get_exchange(&m.source)?;
        if dest.name.is_empty() {
            return Err(AmqpError::access_refused(
                "operation not permitted on the default exchange",
            ));
        }
        ctx.vhost.bind(
            &src,
            Binding {
                destination: Destination::Exchange(dest),
                routing_key: m.routing_key,
                arguments: m.arguments,
            },
        )?;
        if !m.nowait {
            self.send(&Method::ExchangeBindOk);
        }
        Ok(())
    }

    pub(super) fn exchange_unbind(
        &mut self,
        ctx: &mut ConnCtx,
        m: ExchangeUnbind,
    ) -> AmqpResult<()> {
        let (d, src, key) = (&m.destination, &m.source, &m.routing_key);
        binding_permitted(ctx, Resource::Exchange, d, src, key)?;
        let dest = ctx.vhost.get_exchange(&m.destination)?;
        let src = ctx.vhost.get_exchange(&m.source)?;
        ctx.vhost.unbind(
            &src,
            &Binding {
                destination: Destination::Exchange(dest),
                routing_key: m.routing_key,
                arguments: m.arguments,
            },
        )?;
        if !m.nowait {
            self.send(&Method::ExchangeUnbindOk);
        }
        Ok(())
    }

    /// The queue a method names; the empty name means the last queue declared on this channel.
    pub(super) fn resolve_queue_name(&self, name: ShortStr) -> AmqpResult<ShortStr> {
        if !name.is_empty() {
            return Ok(name);
        }
        self.last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    /// The queue a consume, get or purge names, after RabbitMQ's read-permission check (made
    /// before the look-up, so a missing queue without permission is 403, not 404).
    pub(super) fn readable_queue(&self, ctx: &ConnCtx, name: ShortStr) -> AmqpResult<Arc<Queue>> {
        let name = self.resolve_queue_name(name)?;
        ctx.authorize(Access::Read, Resource::Queue, name.as_bytes())?;
        self.lookup_queue(ctx, name)
    }

    pub(super) fn lookup_queue(&self, ctx: &ConnCtx, name: ShortStr) -> AmqpResult<Arc<Queue>> {
        let name = self.resolve_queue_name(name)?;
        let q = ctx.vhost.get_queue(&name)?;
        q.check_access(ctx.conn.id)?;
        Ok(q)
    }

    pub(super) fn queue_declare(&mut self, ctx: &mut ConnCtx, m: QueueDeclare) -> AmqpResult<()> {
        if m.queue
            .as_bytes()
            .starts_with(super::reply_to::PSEUDO_QUEUE)
        {
            // RabbitMQ answers every declare of these as passive: it exists with its one
            // consumer, or it is not found.
            if !ctx.broker.reply_to.exists(m.queue.as_bytes()) {
                return Err(ctx.vhost.not_found_queue(&m.queue));
            }
            if !m.nowait {
                self.send(&Method::QueueDeclareOk(QueueDeclareOk {
                    queue: m.queue,
                    message_count: 0,
                    consumer_count: 1,
                }));
            }
            return Ok(());
        }
        let q = if m.passive {
            let name = self.resolve_queue_name(m.queue)?;
            let q = ctx.vhost.get_queue(&name)?;
            q.check_access(ctx.conn.id)?;
            q
        } else {
            let name = if m.queue.is_empty() {
                generated_name("amq.gen-")
            } else if m.queue.as_bytes().starts_with(b"amq.") {
                return Err(reserved_prefix("queue", &m.queue));
            } else {
                m.queue
            };
            ctx.authorize(Access::Configure, Resource::Queue, name.as_bytes())?;
            if ctx.vhost.queue(name.as_bytes()).is_none() {
                ctx.authorize_dead_letter(&m.arguments, name.as_bytes())?;
            }
            let options = QueueOptions {
                durable: m.durable,
                exclusive: m.exclusive,
                auto_delete: m.auto_delete,
                arguments: m.arguments,
            };
            let (q, created) = ctx.vhost.declare_queue(name, options, ctx.conn.id)?;
            if created && q.owner.is_some() {
                ctx.exclusive_queues.push(q.clone());
            }
            q
        };
        // A redeclare (passive too) counts as use for `x-expires`.
        q.touch();
        self.last_queue = Some(q.name.clone());
        if !m.nowait {
            let counts = q.counts();
            self.send(&Method::QueueDeclareOk(QueueDeclareOk {
                queue: q.name.clone(),
                message_count: counts.ready.min(u32::MAX as u64) as u32,
                consumer_count: counts.consumers,
            }));
        }
        Ok(())
    }

    pub(super) fn queue_bind(&mut self, ctx: &mut ConnCtx, m: QueueBind) -> AmqpResult<()> {
        let qname = self.resolve_queue_name(m.queue)?;
        binding_permitted(ctx, Resource::Queue, &qname, &m.exchange, &m.routing_key)?;
        let q = self.lookup_queue(ctx, qname)?;
        let e = ctx.vhost.get_exchange(&m.exchange)?;
        // An empty routing key with an empty queue name means "the last queue's name".
        ctx.vhost.bind(
            &e,
            Binding {
                destination: Destination::Queue(q),
                routing_key: m.routing_key,
                arguments: m.arguments,
            },
        )?;
        if !m.nowait {
            self.send(&Method::QueueBindOk);
        }
        Ok(())
    }

    pub(super) fn queue_unbind(&mut self, ctx: &mut ConnCtx, m: QueueUnbind) -> AmqpResult<()> {
        let qname = self.resolve_queue_name(m.queue)?;
        binding_permitted(ctx, Resource::Queue, &qname, &m.exchange, &m.routing_key)?;
        let q = ctx.vhost.get_queue(&qname)?;
        let e = ctx.vhost.get_exchange(&m.exchange)?;
        let locked = q.check_access(ctx.conn.id);
        let b = Binding {
            destination: Destination::Queue(q),
            routing_key: m.routing_key,
            arguments: m.arguments,
        };
        match locked {
            // RabbitMQ 3.10 (`rabbit_binding:remove/3`) answers unbind-ok for a binding that
            // does not exist before it checks exclusive access; only an existing binding to
            // another connection's exclusive queue is RESOURCE_LOCKED. (The default exchange
            // is refused first, by `unbind`.)
            Err(refusal) if !e.name.is_empty() => {
                if e.bindings().contains(&b) {
                    return Err(refusal);
                }
            }
            _ => ctx.vhost.unbind(&e, &b)?,
        }
        self.send(&Method::QueueUnbindOk);
        Ok(())
    }

    pub(super) fn queue_purge(&mut self, ctx: &mut ConnCtx, m: QueuePurge) -> AmqpResult<()> {
        let q = self.readable_queue(ctx, m.queue)?;
        let n = q.purge();
        if !m.nowait {
            self.send(&Method::QueuePurgeOk(QueuePurgeOk { message_count: n }));
        }
        Ok(())
    }

    pub(super) fn queue_delete(&mut self, ctx: &mut ConnCtx, m: QueueDelete) -> AmqpResult<()> {
        let name = self.resolve_queue_name(m.queue)?;
        ctx.authorize(Access::Configure, Resource::Queue, name.as_bytes())?;
        let Some(q) = ctx.vhost.queue(name.as_bytes()) else {
            // Deleting a queue that does not exist succeeds, as in RabbitMQ.
            if !m.nowait {
                self.send(&Method::QueueDeleteOk(QueueDeleteOk { message_count: 0 }));
            }
            return Ok(());
        };
        q.check_access(ctx.conn.id)?;
        let counts = q.counts();
        if m.if_unused && counts.consumers > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{}' in vhost '{}' in use",
                q.name, ctx.vhost.name
            )));
        }
        if m.if_empty && counts.ready > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{}' in vhost '{}' not empty",
                q.name, ctx.vhost.name
            )));
        }
        let n = delete_queue(ctx, &q);
        if !m.nowait {
            self.send(&Method::QueueDeleteOk(QueueDeleteOk { message_count: n }));
        }
        Ok(())
    }
}

/// RabbitMQ's binding checks (bind and unbind alike): write on the destination, read on the
/// source exchange, both before either is looked up; then, when the source is a topic
/// exchange, topic read permission on the binding key (`check_read_permitted_on_topic`).
fn binding_permitted(
    ctx: &ConnCtx,
    kind: Resource,
    destination: &ShortStr,
    source: &ShortStr,
    key: &ShortStr,
) -> AmqpResult<()> {
    ctx.authorize(Access::Write, kind, destination.as_bytes())?;
    ctx.authorize(Access::Read, Resource::Exchange, source.as_bytes())?;
    match ctx.vhost.exchange(source.as_bytes()) {
        Some(x) if x.kind == crate::exchange::ExchangeKind::Topic => {
            ctx.authorize_topic(Access::Read, &x.name, key.as_bytes())
        }
        _ => Ok(()),
    }
}

/// Deletes a queue and tells its consumers with basic.cancel (consumer_cancel_notify).
pub(crate) fn delete_queue(ctx: &mut ConnCtx, q: &Arc<Queue>) -> u32 {
    let n = ctx.vhost.delete_queue_and_cancel(q);
    ctx.exclusive_queues.retain(|x| !Arc::ptr_eq(x, q));
    n
}
