//! A published message as the broker holds it.
//!
//! Every part is a `Bytes` slice of what the client sent, so putting one message in ten queues
//! clones ten sets of reference counts, never the body. Properties stay in their wire form and
//! are written back verbatim on delivery; only the few fields routing needs are read from them.

use bytes::Bytes;
use ottermq_protocol::{RawProperties, ShortStr};
use std::sync::Arc;
use std::time::Instant;

/// One message: what basic.publish and its content frames carried.
#[derive(Clone, Debug)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: RawProperties,
    pub body: Bytes,
    /// When its basic.publish arrived; publish-to-route and publish-to-confirm start here.
    pub received_at: Instant,
    /// The broker publish span's context when the message is traced; None (one null pointer,
    /// nothing allocated) when it is not. Shared by every queue's copy; a future dead-letter
    /// path re-publishes the message with it, so the dead-lettered delivery stays in the trace.
    pub trace: Option<Arc<ottermq_tracing::MessageTrace>>,
}

impl Message {
    /// delivery-mode 2 asks for the message to be written to disk on a durable queue.
    pub fn is_persistent(&self) -> bool {
        self.properties.delivery_mode() == Some(2)
    }

    pub fn body_size(&self) -> usize {
        self.body.len()
    }
}

/// A message sitting in a queue, with the queue's bookkeeping.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    /// Position in the queue's publish order; requeued messages go back to where this says.
    pub seq: u64,
    pub message: Message,
    /// Set once the message has been delivered and came back (nack, reject, recover, channel close).
    pub redelivered: bool,
    pub enqueued_at: Instant,
    /// Its id in the vhost's message log when it was written to disk (persistent message on a
    /// durable queue); 0 when it lives in memory only.
    pub persist_id: u64,
    /// When its TTL runs out (queue `x-message-ttl` or its own `expiration`); None for most.
    pub expires_at: Option<Instant>,
    /// Where a copy of its body is on disk (the message log; lazy paging reads it back there).
    pub body_at: BodyAt,
    /// Some(body length) while the body is in the message log only (`body` is then empty): a
    /// persistent message read back from a paged tail, until it is taken off the head.
    pub paged: Option<u32>,
    /// Times a quorum queue had it back from a consumer (nack or reject with requeue, channel
    /// closed, or out to a consumer when the broker stopped): sent as `x-delivery-count`,
    /// checked against `x-delivery-limit`, kept in the message log. Always 0 in classic queues.
    pub delivery_count: u32,
}

impl QueuedMessage {
    /// Its body's size, whether the body is in RAM or paged out.
    #[inline]
    pub fn body_len(&self) -> u64 {
        match self.paged {
            None => self.message.body.len() as u64,
            Some(n) => n as u64,
        }
    }
}

/// Where a message's body can be read back from disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyAt {
    /// Only in RAM.
    #[default]
    Nowhere,
    /// In its publish record in the vhost's message log: segment, offset of the body in the
    /// file, and the log ticket after which the record is on disk.
    Log { seg: u32, offset: u64, ticket: u64 },
}
