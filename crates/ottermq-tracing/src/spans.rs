//! The broker's spans, named and attributed after the OpenTelemetry messaging conventions.
//!
//! One traced message gives, in the producer's trace:
//! - `publish <exchange>` (kind consumer, operation `receive`): the broker receiving and
//!   routing the publish, child of the producer's span; records how many queues it reached,
//!   whether it was unroutable or returned, and (in confirm mode) the confirm as an event.
//! - per delivery, child of the publish span: `queue <queue>` (internal) spanning the time the
//!   message waited in that queue, and `deliver <queue>` (kind producer, operation `send`)
//!   from the moment it was handed to the consumer until it was settled; ack / nack / reject
//!   are events on it. Its context is what the consumer receives in `traceparent`.
//!
//! Fan-out to N queues therefore gives one publish span and N queue and deliver spans.

use crate::headers;
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, Span};
use ottermq_protocol::RawProperties;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// RabbitMQ's name for the default exchange in the messaging conventions.
const DEFAULT_EXCHANGE: &str = "amq.default";

/// Starts the broker's spans. The broker holds `Option<Arc<MessageTracer>>`: `None` is
/// tracing off.
pub struct MessageTracer {
    tracer: SdkTracer,
    start_untraced: bool,
}

impl std::fmt::Debug for MessageTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageTracer")
            .field("start_untraced", &self.start_untraced)
            .finish()
    }
}

/// What the broker knows about a publish when its content is complete.
pub struct PublishInfo<'a> {
    pub exchange: &'a [u8],
    pub routing_key: &'a [u8],
    pub properties: &'a RawProperties,
    pub body_size: usize,
    /// The publishing connection's peer.
    pub peer: SocketAddr,
    /// When basic.publish arrived.
    pub started: Instant,
}

/// The open publish span of one message; ended by `end` or `confirmed` (or when dropped).
pub struct PublishSpan {
    span: Span,
}

impl std::fmt::Debug for PublishSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishSpan")
            .field("context", self.span.span_context())
            .finish()
    }
}

/// What a traced message carries through its queues: the context its deliveries continue.
/// Shared by every copy of a fanned-out message.
#[derive(Debug)]
pub struct MessageTrace {
    tracer: Arc<MessageTracer>,
    /// The broker's publish span (or, for a dead-lettered copy, its `dead-letter` span):
    /// parent of every delivery's spans.
    publish: SpanContext,
}

/// One delivery of a traced message.
pub struct DeliveryInfo<'a> {
    pub queue: &'a [u8],
    /// None for basic.get.
    pub consumer_tag: Option<&'a [u8]>,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub enqueued_at: Instant,
    pub exchange: &'a [u8],
    pub routing_key: &'a [u8],
    pub properties: &'a RawProperties,
    pub body_size: usize,
    /// The consuming connection's peer.
    pub peer: SocketAddr,
}

/// The open deliver span; settled by the consumer's ack, nack or reject.
pub struct DeliverySpan {
    span: Span,
}

impl std::fmt::Debug for DeliverySpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliverySpan")
            .field("context", self.span.span_context())
            .finish()
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    Nack {
        requeue: bool,
    },
    Reject {
        requeue: bool,
    },
    /// no-ack consumer or basic.get with no-ack: settled when sent.
    AutoAck,
    /// Given back unsettled: channel closed or basic.recover.
    Returned,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn exchange_name(b: &[u8]) -> String {
    if b.is_empty() {
        DEFAULT_EXCHANGE.to_string()
    } else {
        text(b)
    }
}

fn system_time(at: Instant) -> SystemTime {
    SystemTime::now()
        .checked_sub(at.elapsed())
        .unwrap_or_else(SystemTime::now)
}

fn common(
    attrs: &mut Vec<KeyValue>,
    props: &RawProperties,
    routing_key: &[u8],
    body: usize,
    peer: SocketAddr,
) {
    attrs.push(KeyValue::new("messaging.system", "rabbitmq"));
    attrs.push(KeyValue::new(
        "messaging.rabbitmq.destination.routing_key",
        text(routing_key),
    ));
    attrs.push(KeyValue::new("messaging.message.body.size", body as i64));
    if let Some(id) = props.message_id() {
        attrs.push(KeyValue::new("messaging.message.id", text(id)));
    }
    attrs.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
    attrs.push(KeyValue::new("network.peer.port", peer.port() as i64));
}

impl MessageTracer {
    /// `tracer` comes from a provider whose sampler is parent-based; `start_untraced` says
    /// whether a message without trace context may start a trace (the provider's ratio then
    /// decides).
    pub fn new(tracer: SdkTracer, start_untraced: bool) -> Self {
        MessageTracer {
            tracer,
            start_untraced,
        }
    }

    /// Called once per completed publish with tracing on. Returns the publish span and the
    /// context to carry on the message, or None when the message is not traced (no context and
    /// not starting traces, an unsampled parent, or the ratio said no).
    pub fn on_publish(
        self: &Arc<Self>,
        p: &PublishInfo<'_>,
    ) -> Option<(PublishSpan, Arc<MessageTrace>)> {
        let parent = match headers::extract(p.properties) {
            // Parent-based: an unsampled producer is not traced here either, and its headers
            // go to the consumer untouched.
            Some(sc) if !sc.is_sampled() => return None,
            Some(sc) => Context::new().with_remote_span_context(sc),
            None if self.start_untraced => Context::new(),
            None => return None,
        };
        let exchange = exchange_name(p.exchange);
        let mut attrs = Vec::with_capacity(10);
        attrs.push(KeyValue::new("messaging.operation.type", "receive"));
        attrs.push(KeyValue::new("messaging.operation.name", "publish"));
        attrs.push(KeyValue::new(
            "messaging.destination.name",
            exchange.clone(),
        ));
        common(&mut attrs, p.properties, p.routing_key, p.body_size, p.peer);
        let span = self
            .tracer
            .span_builder(Cow::Owned(format!("publish {exchange}")))
            .with_kind(SpanKind::Consumer)
            .with_start_time(system_time(p.started))
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        let sc = span.span_context().clone();
        if !sc.is_sampled() {
            return None;
        }
        let trace = Arc::new(MessageTrace {
            tracer: self.clone(),
            publish: sc,
        });
        Some((PublishSpan { span }, trace))
    }
}

impl PublishSpan {
    /// Records the routing outcome: how many queues got the message, and whether an
    /// unroutable message was returned (mandatory) or dropped.
    pub fn routed(&mut self, queues: usize, mandatory: bool) {
        self.span
            .set_attribute(KeyValue::new("ottermq.routed_queues", queues as i64));
        if queues == 0 {
            self.span
                .set_attribute(KeyValue::new("ottermq.unroutable", true));
            self.span
                .set_attribute(KeyValue::new("ottermq.returned", mandatory));
            if mandatory {
                self.span.add_event("basic.return", Vec::new());
            }
        }
    }

    /// Held in a transaction until tx.commit.
    pub fn held_in_tx(&mut self) {
        self.span.set_attribute(KeyValue::new("ottermq.tx", true));
    }

    /// Ends the span with the publisher confirm (basic.ack with this delivery tag) as an event.
    pub fn confirmed(mut self, delivery_tag: u64) {
        self.span.add_event(
            "confirm",
            vec![KeyValue::new(
                "messaging.rabbitmq.message.delivery_tag",
                delivery_tag as i64,
            )],
        );
        self.span.end();
    }

    pub fn end(mut self) {
        self.span.end();
    }

    pub fn span_context(&self) -> &SpanContext {
        self.span.span_context()
    }
}

impl MessageTrace {
    /// The broker publish span this message's deliveries descend from.
    pub fn span_context(&self) -> &SpanContext {
        &self.publish
    }

    /// The tracer this context belongs to (needed to rebuild it with [`Self::from_bytes`]).
    pub fn tracer(&self) -> &Arc<MessageTracer> {
        &self.tracer
    }

    /// Appends the span context in a compact form (16 bytes trace id, 8 span id, 1 flags,
    /// 1 remote, then the `tracestate` header), so a message paged out to a spill file keeps
    /// its place in the trace. Only meaningful within this process ([`Self::from_bytes`]
    /// needs the tracer).
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        let sc = &self.publish;
        out.extend_from_slice(&sc.trace_id().to_bytes());
        out.extend_from_slice(&sc.span_id().to_bytes());
        out.push(sc.trace_flags().to_u8());
        out.push(sc.is_remote() as u8);
        out.extend_from_slice(sc.trace_state().header().as_bytes());
    }

    /// The context [`Self::to_bytes`] wrote, attached to `tracer`; None when `b` is not such
    /// bytes.
    pub fn from_bytes(tracer: &Arc<MessageTracer>, b: &[u8]) -> Option<Arc<MessageTrace>> {
        use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
        let trace_id = TraceId::from_bytes(b.get(..16)?.try_into().ok()?);
        let span_id = SpanId::from_bytes(b.get(16..24)?.try_into().ok()?);
        let flags = TraceFlags::new(*b.get(24)?);
        let remote = *b.get(25)? != 0;
        let state = std::str::from_utf8(b.get(26..)?).ok()?;
        let state = if state.is_empty() {
            TraceState::NONE
        } else {
            state.parse().ok()?
        };
        Some(Arc::new(MessageTrace {
            tracer: tracer.clone(),
            publish: SpanContext::new(trace_id, span_id, flags, remote, state),
        }))
    }

    /// The trace of a dead-lettered copy: a finished `dead-letter <queue>` span, child of the
    /// span this message descends from, says why it died (reason, queue, dead-letter exchange),
    /// and the copy's deliveries descend from it. So in Jaeger the dead-letter queue's delivery
    /// sits in the producer's trace under the reason it got there.
    pub fn dead_lettered(&self, reason: &str, queue: &[u8], dlx: &[u8]) -> Arc<MessageTrace> {
        let tracer = &self.tracer.tracer;
        let parent = Context::new().with_remote_span_context(self.publish.clone());
        let queue = text(queue);
        let mut span = tracer
            .span_builder(Cow::Owned(format!("dead-letter {queue}")))
            .with_kind(SpanKind::Internal)
            .with_attributes(vec![
                KeyValue::new("messaging.system", "rabbitmq"),
                KeyValue::new("messaging.destination.name", queue),
                KeyValue::new("ottermq.dead_letter.reason", reason.to_string()),
                KeyValue::new("ottermq.dead_letter.exchange", exchange_name(dlx)),
            ])
            .start_with_context(tracer, &parent);
        let context = span.span_context().clone();
        span.end();
        Arc::new(MessageTrace {
            tracer: self.tracer.clone(),
            publish: context,
        })
    }

    /// Records the wait in the queue (a finished `queue <name>` span from enqueue to now) and
    /// opens the deliver span whose context goes to the consumer.
    pub fn start_delivery(&self, d: &DeliveryInfo<'_>) -> DeliverySpan {
        let tracer = &self.tracer.tracer;
        let parent = Context::new().with_remote_span_context(self.publish.clone());
        let queue = text(d.queue);
        let waited = d.enqueued_at.elapsed();
        let mut wait = tracer
            .span_builder(Cow::Owned(format!("queue {queue}")))
            .with_kind(SpanKind::Internal)
            .with_start_time(system_time(d.enqueued_at))
            .with_attributes(vec![
                KeyValue::new("messaging.system", "rabbitmq"),
                KeyValue::new("messaging.destination.name", queue.clone()),
                KeyValue::new("ottermq.queue.wait_us", waited.as_micros() as i64),
            ])
            .start_with_context(tracer, &parent);
        wait.end();
        let mut attrs = Vec::with_capacity(14);
        attrs.push(KeyValue::new("messaging.operation.type", "send"));
        attrs.push(KeyValue::new(
            "messaging.operation.name",
            if d.consumer_tag.is_some() {
                "deliver"
            } else {
                "get"
            },
        ));
        attrs.push(KeyValue::new("messaging.destination.name", queue.clone()));
        attrs.push(KeyValue::new("ottermq.exchange", exchange_name(d.exchange)));
        common(&mut attrs, d.properties, d.routing_key, d.body_size, d.peer);
        attrs.push(KeyValue::new(
            "messaging.rabbitmq.message.delivery_tag",
            d.delivery_tag as i64,
        ));
        if let Some(tag) = d.consumer_tag {
            attrs.push(KeyValue::new("ottermq.consumer_tag", text(tag)));
        }
        attrs.push(KeyValue::new("ottermq.redelivered", d.redelivered));
        attrs.push(KeyValue::new(
            "ottermq.queue.wait_us",
            waited.as_micros() as i64,
        ));
        let span = tracer
            .span_builder(Cow::Owned(format!("deliver {queue}")))
            .with_kind(SpanKind::Producer)
            .with_attributes(attrs)
            .start_with_context(tracer, &parent);
        DeliverySpan { span }
    }
}

impl DeliverySpan {
    /// The message's properties with `traceparent` pointing at this delivery, for the wire.
    pub fn inject(&self, properties: &RawProperties) -> Option<RawProperties> {
        headers::inject(properties, self.span.span_context())
    }

    pub fn span_context(&self) -> &SpanContext {
        self.span.span_context()
    }

    /// Ends the span with how the delivery was settled.
    pub fn settle(mut self, how: Settlement) {
        let (name, requeue) = match how {
            Settlement::Ack => ("ack", None),
            Settlement::Nack { requeue } => ("nack", Some(requeue)),
            Settlement::Reject { requeue } => ("reject", Some(requeue)),
            Settlement::AutoAck => ("auto-ack", None),
            Settlement::Returned => ("requeue", Some(true)),
        };
        let attrs = match requeue {
            Some(r) => vec![KeyValue::new("ottermq.requeue", r)],
            None => Vec::new(),
        };
        self.span
            .set_attribute(KeyValue::new("ottermq.settlement", name));
        self.span.add_event(name, attrs);
        self.span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState, TracerProvider as _};

    /// A context with a `tracestate` from the producer comes back equal from its bytes.
    #[test]
    fn trace_context_round_trips_through_bytes() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = Arc::new(MessageTracer::new(provider.tracer("bytes-test"), false));
        let state: TraceState = "vendor=abc,other=1".parse().expect("tracestate");
        let parent = SpanContext::new(
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes([3; 8]),
            TraceFlags::SAMPLED,
            true,
            state,
        );
        let props = headers::inject(&RawProperties::empty(), &parent).expect("headers");
        let (_span, trace) = tracer
            .on_publish(&PublishInfo {
                exchange: b"",
                routing_key: b"q",
                properties: &props,
                body_size: 0,
                peer: SocketAddr::from(([127, 0, 0, 1], 1)),
                started: Instant::now(),
            })
            .expect("traced");
        assert_eq!(trace.span_context().trace_id(), parent.trace_id());
        let mut b = Vec::new();
        trace.to_bytes(&mut b);
        let back = MessageTrace::from_bytes(&tracer, &b).expect("decodes");
        assert_eq!(back.span_context(), trace.span_context());
        assert_eq!(
            back.span_context().trace_state().header(),
            "vendor=abc,other=1"
        );
        assert!(MessageTrace::from_bytes(&tracer, &b[..20]).is_none());
    }
}
