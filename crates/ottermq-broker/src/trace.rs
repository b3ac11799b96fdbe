//! Where the broker meets `ottermq-tracing`: building the span inputs from broker types.
//!
//! With tracing off, `BrokerConfig::tracer` is None and a message's `trace` is None; the
//! callers check those Options and never come here, so nothing in this module runs per
//! message and no header is parsed.

use crate::channel::shared::ChannelShared;
use crate::message::{Message, QueuedMessage};
use crate::queue::Queue;
use ottermq_protocol::RawProperties;
use ottermq_tracing::{
    DeliveryInfo, DeliverySpan, MessageTrace, MessageTracer, PublishInfo, PublishSpan,
};
use std::net::SocketAddr;
use std::sync::Arc;

/// Reads the message's trace context and opens its publish span, if it is to be traced.
pub(crate) fn on_publish(
    tracer: &Arc<MessageTracer>,
    msg: &Message,
    peer: SocketAddr,
) -> Option<(PublishSpan, Arc<MessageTrace>)> {
    tracer.on_publish(&PublishInfo {
        exchange: msg.exchange.as_bytes(),
        routing_key: msg.routing_key.as_bytes(),
        properties: &msg.properties,
        body_size: msg.body.len(),
        peer,
        started: msg.received_at,
    })
}

/// Opens the queue-wait and deliver spans of one delivery of a traced message and returns the
/// properties to send, whose `traceparent` names the deliver span.
pub(crate) fn start_delivery(
    trace: &MessageTrace,
    channel: &ChannelShared,
    queue: &Queue,
    consumer_tag: Option<&[u8]>,
    delivery_tag: u64,
    qm: &QueuedMessage,
) -> (DeliverySpan, Option<RawProperties>) {
    let at = Delivered {
        queue: queue.name.as_bytes(),
        consumer_tag,
        delivery_tag,
        redelivered: qm.redelivered,
        enqueued_at: qm.enqueued_at,
    };
    start_delivery_of(trace, channel, &at, &qm.message)
}

/// Where and how a traced message is delivered: a queue's, or direct reply-to's pseudo-queue.
pub(crate) struct Delivered<'a> {
    pub queue: &'a [u8],
    pub consumer_tag: Option<&'a [u8]>,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub enqueued_at: std::time::Instant,
}

/// [`start_delivery`] for a message that did not come out of a queue (direct reply-to: it goes
/// straight from the replier's publish to the requester, so its queue wait is the routing).
pub(crate) fn start_delivery_of(
    trace: &MessageTrace,
    channel: &ChannelShared,
    at: &Delivered<'_>,
    m: &Message,
) -> (DeliverySpan, Option<RawProperties>) {
    let span = trace.start_delivery(&DeliveryInfo {
        queue: at.queue,
        consumer_tag: at.consumer_tag,
        delivery_tag: at.delivery_tag,
        redelivered: at.redelivered,
        enqueued_at: at.enqueued_at,
        exchange: m.exchange.as_bytes(),
        routing_key: m.routing_key.as_bytes(),
        properties: &m.properties,
        body_size: m.body.len(),
        peer: channel.peer,
    });
    let props = span.inject(&m.properties);
    (span, props)
}
