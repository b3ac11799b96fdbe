//! Direct reply-to (RabbitMQ's `amq.rabbitmq.reply-to` pseudo-queue): a requester consumes
//! from `amq.rabbitmq.reply-to` in no-ack mode, publishes a request with
//! `reply_to = amq.rabbitmq.reply-to`, and the broker rewrites that to
//! `amq.rabbitmq.reply-to.<suffix>`; a reply published to the default exchange with that name as
//! routing key goes straight to the requesting channel's consumer, through no queue.
//!
//! The suffix is random per reply consumer and names an entry in the broker's registry (a weak
//! reference to the channel and the consumer tag). The registry spans vhosts: a reply
//! published in another vhost than the request's still reaches the requester, as in RabbitMQ. The registry is only touched when a reply
//! consumer starts or ends, when a request is published and when a reply is routed, never on
//! ordinary publishes: the default exchange looks at it only after no queue of that name exists.

use super::shared::ChannelShared;
use super::Channel;
use crate::error::{AmqpError, AmqpResult};
use crate::message::Message;
use ottermq_protocol::{encode_basic_deliver, encode_content, ShortStr};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// The pseudo-queue a requester consumes from and names in `reply_to`.
pub const PSEUDO_QUEUE: &[u8] = b"amq.rabbitmq.reply-to";
/// What a rewritten `reply_to` starts with; the suffix follows.
pub const PREFIX: &[u8] = b"amq.rabbitmq.reply-to.";

/// The reply consumer of one channel.
#[derive(Debug, Clone)]
pub(super) struct ReplyConsumer {
    pub tag: ShortStr,
    pub suffix: ShortStr,
}

#[derive(Debug)]
struct Target {
    channel: Weak<ChannelShared>,
    tag: ShortStr,
}

/// Reply consumers of all vhosts by suffix.
#[derive(Debug, Default)]
pub struct Registry {
    by_suffix: Mutex<HashMap<ShortStr, Target>>,
}

impl Registry {
    fn insert(&self, suffix: ShortStr, channel: &Arc<ChannelShared>, tag: ShortStr) {
        self.by_suffix.lock().insert(
            suffix,
            Target {
                channel: Arc::downgrade(channel),
                tag,
            },
        );
    }

    fn remove(&self, suffix: &ShortStr) {
        self.by_suffix.lock().remove(suffix.as_bytes());
    }

    /// The open channel and consumer tag a rewritten reply-to name stands for.
    fn target(&self, name: &[u8]) -> Option<(Arc<ChannelShared>, ShortStr)> {
        let suffix = name.strip_prefix(PREFIX)?;
        let map = self.by_suffix.lock();
        let t = map.get(suffix)?;
        let ch = t.channel.upgrade().filter(|c| !c.is_closed())?;
        Some((ch, t.tag.clone()))
    }

    /// Whether `name` is the pseudo-queue or a reply-to name of a live reply consumer
    /// (queue.declare on it succeeds, as in RabbitMQ).
    pub fn exists(&self, name: &[u8]) -> bool {
        name == PSEUDO_QUEUE || self.target(name).is_some()
    }

    /// Delivers a reply published to `msg.routing_key` (which starts with `PREFIX`). A name
    /// whose consumer is gone drops the message, as RabbitMQ does.
    pub fn deliver(&self, msg: &Message) {
        if let Some((ch, tag)) = self.target(msg.routing_key.as_bytes()) {
            ch.deliver_reply(&tag, msg);
        }
    }
}

impl Channel {
    /// basic.consume on the pseudo-queue. Refused in ack mode and when this channel already has
    /// a reply consumer (PRECONDITION_FAILED, RabbitMQ's texts).
    pub(super) fn reply_consume(
        &mut self,
        registry: &Registry,
        tag: ShortStr,
        no_ack: bool,
    ) -> AmqpResult<ShortStr> {
        if !no_ack {
            return Err(AmqpError::precondition_failed(
                "reply consumer cannot acknowledge",
            ));
        }
        if self.reply.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let suffix = super::declare::generated_name("");
        registry.insert(suffix.clone(), &self.shared, tag.clone());
        self.reply = Some(ReplyConsumer {
            tag: tag.clone(),
            suffix,
        });
        Ok(tag)
    }

    /// Ends the reply consumer (basic.cancel of its tag, channel close). True when there was
    /// one with that tag (or any, when `tag` is None).
    pub(super) fn reply_cancel(&mut self, registry: &Registry, tag: Option<&ShortStr>) -> bool {
        match &self.reply {
            Some(r) if tag.is_none_or(|t| *t == r.tag) => {
                registry.remove(&r.suffix);
                self.reply = None;
                true
            }
            _ => false,
        }
    }

    /// A request naming `amq.rabbitmq.reply-to` gets this channel's reply-to name instead, or
    /// is refused when the channel has no reply consumer. Other messages pass untouched (one
    /// flags-word check when `reply_to` is absent).
    pub(super) fn rewrite_reply_to(&self, msg: &mut Message) -> AmqpResult<()> {
        if msg.properties.reply_to() != Some(PSEUDO_QUEUE) {
            return Ok(());
        }
        let Some(r) = &self.reply else {
            return Err(AmqpError::precondition_failed(
                "fast reply consumer does not exist",
            ));
        };
        let mut props = msg.properties.decode().map_err(|e| {
            AmqpError::frame_error(format!("cannot decode content properties: {e}"))
        })?;
        // The suffix is ASCII (URL-safe base64).
        props.reply_to = Some(ShortStr::from(format!(
            "amq.rabbitmq.reply-to.{}",
            r.suffix.to_string_lossy()
        )));
        msg.properties = props.to_raw();
        Ok(())
    }
}

impl ChannelShared {
    /// Sends a reply to this channel's reply consumer: a no-ack basic.deliver with the next
    /// delivery tag (nothing to settle later). A traced reply gets its queue-wait and deliver
    /// spans (queue `amq.rabbitmq.reply-to`), settled as auto-acked, and the deliver span's
    /// `traceparent`, as a queued message does.
    pub fn deliver_reply(&self, tag: &ShortStr, msg: &Message) {
        let sent = self.with_next_tag(|delivery_tag| {
            let (span, traced) = match &msg.trace {
                None => (None, None),
                Some(t) => {
                    let at = crate::trace::Delivered {
                        queue: PSEUDO_QUEUE,
                        consumer_tag: Some(tag.as_bytes()),
                        delivery_tag,
                        redelivered: false,
                        enqueued_at: msg.received_at,
                    };
                    let (s, p) = crate::trace::start_delivery_of(t, self, &at, msg);
                    (Some(s), p)
                }
            };
            let props = traced.as_ref().unwrap_or(&msg.properties);
            self.out.write(|buf, frame_max| {
                encode_basic_deliver(
                    buf,
                    self.id,
                    tag.as_bytes(),
                    delivery_tag,
                    false,
                    msg.exchange.as_bytes(),
                    msg.routing_key.as_bytes(),
                );
                encode_content(buf, self.id, props, &msg.body, frame_max);
            });
            if let Some(s) = span {
                s.settle(ottermq_tracing::Settlement::AutoAck);
            }
        });
        if sent.is_some() {
            self.stats.delivered_no_ack.inc();
        }
    }
}
