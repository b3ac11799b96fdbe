//! Dead-lettering: republishing a message that left a queue as rejected, expired, over the
//! length limit or past a quorum queue's delivery limit through the queue's `x-dead-letter-exchange`, with the `x-death` history
//! RabbitMQ 3.10 writes (`rabbit_dead_letter:make_msg/5`) and its cycle detection.
//!
//! Called only without the queue's lock held: the target may be the same queue, or a queue
//! that dead-letters back, and each publish takes its target's lock.

use super::Queue;
use crate::message::{Message, QueuedMessage};
use crate::vhost::VHost;
use crate::RouteTargets;
use ottermq_protocol::{BasicProperties, FieldTable, FieldValue, LongStr, ShortStr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Why a message left its queue, as it appears in `x-death.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// basic.reject or basic.nack with requeue=false.
    Rejected,
    /// Its per-message or per-queue TTL ran out.
    Expired,
    /// Dropped from the head (drop-head) or refused (reject-publish-dlx) by a length limit.
    Maxlen,
    /// Returned to a quorum queue more often than its `x-delivery-limit`.
    DeliveryLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

impl Queue {
    /// Dead-letters (or, without a dead-letter exchange, drops) messages taken off this queue,
    /// and removes them from the message log.
    pub(crate) fn dead_letter_all(&self, msgs: Vec<(QueuedMessage, Reason)>) {
        for (qm, reason) in msgs {
            self.dead_letter_one(qm.message, qm.persist_id, reason);
        }
    }

    /// One message: counted, republished through the DLX when there is one that exists, then
    /// settled in the log (after the copy was appended, so a crash in between duplicates
    /// rather than loses it).
    pub(crate) fn dead_letter_one(&self, message: Message, persist_id: u64, reason: Reason) {
        match reason {
            Reason::Expired => self.stats.expired.inc(),
            Reason::Maxlen => self.stats.overflow_dropped.inc(),
            Reason::DeliveryLimit => self.stats.delivery_limited.inc(),
            Reason::Rejected => {}
        }
        if let Some(dlx) = &self.limits.dlx {
            if let Some(vhost) = self.vhost_ref.upgrade() {
                if let Some(x) = vhost.exchange(dlx.as_bytes()) {
                    if republish(&vhost, &x, self, &message, reason) {
                        match reason {
                            Reason::Rejected => self.stats.dead_lettered_rejected.inc(),
                            Reason::Expired => self.stats.dead_lettered_expired.inc(),
                            Reason::Maxlen => self.stats.dead_lettered_maxlen.inc(),
                            Reason::DeliveryLimit => self.stats.dead_lettered_delivery_limit.inc(),
                        }
                    }
                }
            }
        }
        self.settle_persisted(persist_id);
    }

    /// A message taken as unacknowledged leaves for good: acknowledged, or rejected without
    /// requeue, then dead-lettered (reason `rejected`) when the queue has a dead-letter
    /// exchange, as RabbitMQ does for basic.reject / basic.nack and for the management API's
    /// `reject_requeue_false` get. Settled in the message log either way; the caller counts
    /// it with `settled`.
    pub fn discard(&self, qm: QueuedMessage, acked: bool) {
        if !acked && self.has_dlx() {
            self.dead_letter_one(qm.message, qm.persist_id, Reason::Rejected);
        } else {
            self.settle_persisted(qm.persist_id);
        }
    }

    /// Whether a rejected message goes somewhere rather than being dropped.
    pub fn has_dlx(&self) -> bool {
        self.limits.dlx.is_some()
    }
}

/// Routes the dead-lettered copy and enqueues it. Returns whether it was handed to the DLX
/// (RabbitMQ counts a message as dead-lettered even when the DLX routes it nowhere).
fn republish(
    vhost: &Arc<VHost>,
    x: &Arc<crate::exchange::Exchange>,
    from: &Queue,
    m: &Message,
    reason: Reason,
) -> bool {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (msg, keys, deaths) = make_message(
        m,
        reason,
        from.name.as_bytes(),
        &x.name,
        from.limits.dlrk.as_ref(),
        secs,
    );
    let mut targets = RouteTargets::default();
    let mut queues: Vec<Arc<Queue>> = Vec::new();
    for key in keys {
        let mut keyed = msg.clone();
        keyed.routing_key = key;
        vhost.route(x, &keyed, &mut targets);
        for q in targets.drain() {
            if !queues.iter().any(|o| Arc::ptr_eq(o, &q)) {
                queues.push(q);
            }
        }
    }
    if reason != Reason::Rejected {
        // A fully automatic cycle (no reject in it) would go round forever: drop those.
        queues.retain(|q| !is_cycle(q.name.as_bytes(), &deaths));
    }
    let now = Instant::now();
    for q in queues {
        let _ = q.publish(msg.clone(), now);
    }
    true
}

/// RabbitMQ's `is_cycle`: the target queue already appears in the history and every death up
/// to and including that one was automatic (not `rejected`).
fn is_cycle(queue: &[u8], deaths: &[FieldValue]) -> bool {
    let mut automatic = true;
    for d in deaths {
        let FieldValue::Table(t) = d else {
            // Something a client put there: not a fully automatic cycle.
            automatic = false;
            continue;
        };
        if t.get("reason").and_then(|v| v.as_str_bytes()) == Some(b"rejected") {
            automatic = false;
        }
        if t.get("queue").and_then(|v| v.as_str_bytes()) == Some(queue) {
            return automatic;
        }
    }
    false
}

fn long(s: &[u8]) -> FieldValue {
    FieldValue::LongStr(LongStr::from(s.to_vec()))
}

/// The routing keys of a header (`CC` / `BCC`): the long strings of its array.
fn header_routes(h: &FieldTable, key: &str) -> Vec<ShortStr> {
    match h.get(key) {
        Some(FieldValue::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                FieldValue::LongStr(s) => ShortStr::from_bytes(s.clone().into_bytes()).ok(),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds the dead-lettered copy: `x-death` updated, `x-first-death-*` on the first death,
/// `expiration` moved to `original-expiration`, exchange set to the DLX and the routing keys
/// replaced by `x-dead-letter-routing-key` (dropping `CC`) or kept (publish key, CC, BCC).
/// Returns the message, the keys to route it with and the new `x-death` array.
pub(crate) fn make_message(
    m: &Message,
    reason: Reason,
    queue: &[u8],
    dlx: &ShortStr,
    dlrk: Option<&ShortStr>,
    now_secs: u64,
) -> (Message, Vec<ShortStr>, Vec<FieldValue>) {
    let mut props: BasicProperties = m.properties.decode().unwrap_or_default();
    let mut headers = props.headers.take().unwrap_or_default();
    let cc = header_routes(&headers, "CC");
    let keys = match dlrk {
        Some(rk) => {
            headers.remove("CC");
            vec![rk.clone()]
        }
        None => {
            let mut k = vec![m.routing_key.clone()];
            k.extend(cc.iter().cloned());
            k.extend(header_routes(&headers, "BCC"));
            k
        }
    };
    // BCC keys route but are never seen by consumers.
    headers.remove("BCC");
    let mut rks = vec![long(m.routing_key.as_bytes())];
    rks.extend(cc.iter().map(|k| long(k.as_bytes())));
    let mut info = FieldTable::new();
    info.insert("reason", long(reason.as_str().as_bytes()));
    info.insert("queue", long(queue));
    info.insert("time", FieldValue::Timestamp(now_secs));
    info.insert("exchange", long(m.exchange.as_bytes()));
    info.insert("routing-keys", FieldValue::Array(rks));
    if let Some(e) = props.expiration.take() {
        info.insert("original-expiration", long(e.as_bytes()));
    }
    let deaths = update_x_death(&mut headers, info, reason, queue, m.exchange.as_bytes());
    // RabbitMQ 3.10 sends a dead-lettered message's headers sorted by key (checked with pika:
    // `CC`, `app`, `x-death`, `x-first-death-exchange`, ...), whatever order they came in.
    headers.0.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    props.headers = Some(headers);
    let msg = Message {
        exchange: dlx.clone(),
        routing_key: keys[0].clone(),
        properties: props.to_raw(),
        body: m.body.clone(),
        received_at: m.received_at,
        // The dead-lettered delivery stays in the publisher's trace, under a span saying why.
        trace: m
            .trace
            .as_ref()
            .map(|t| t.dead_lettered(reason.as_str(), queue, dlx.as_bytes())),
    };
    (msg, keys, deaths)
}

/// RabbitMQ's `update_x_death_header`: the first death gets `count` 1 and the
/// `x-first-death-*` headers; a later death for the same queue and reason increments that
/// entry's count and moves it to the front (its other fields stay as first written); any other
/// death is prepended. Updated entries are written with their keys sorted, as RabbitMQ does.
fn update_x_death(
    headers: &mut FieldTable,
    info: FieldTable,
    reason: Reason,
    queue: &[u8],
    exchange: &[u8],
) -> Vec<FieldValue> {
    let with_count = |info: FieldTable| {
        let mut t = FieldTable::new();
        t.insert("count", FieldValue::I64(1));
        t.0.extend(info.0);
        t
    };
    let deaths = match headers.get("x-death") {
        None => {
            headers.insert("x-first-death-reason", long(reason.as_str().as_bytes()));
            headers.insert("x-first-death-queue", long(queue));
            headers.insert("x-first-death-exchange", long(exchange));
            vec![FieldValue::Table(with_count(info))]
        }
        Some(FieldValue::Array(old)) => {
            let matches = |v: &FieldValue| match v {
                FieldValue::Table(t) => {
                    t.get("queue").and_then(|v| v.as_str_bytes()) == Some(queue)
                        && t.get("reason").and_then(|v| v.as_str_bytes())
                            == Some(reason.as_str().as_bytes())
                }
                _ => false,
            };
            let first = old.iter().find(|v| matches(v)).cloned();
            let mut entry = match first {
                Some(FieldValue::Table(mut t)) => {
                    let n = t.get("count").and_then(|c| c.as_i64()).unwrap_or(0);
                    t.insert("count", FieldValue::I64(n + 1));
                    t
                }
                _ => with_count(info),
            };
            entry.0.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let mut v = vec![FieldValue::Table(entry)];
            v.extend(old.iter().filter(|x| !matches(x)).cloned());
            v
        }
        // Not an array (a client re-published it as something else): reset, as RabbitMQ does.
        Some(_) => vec![FieldValue::Table(with_count(info))],
    };
    headers.insert("x-death", FieldValue::Array(deaths.clone()));
    deaths
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(props: BasicProperties) -> Message {
        Message {
            exchange: ShortStr::from("ex"),
            routing_key: ShortStr::from("rk"),
            properties: props.to_raw(),
            body: Bytes::from_static(b"x"),
            received_at: Instant::now(),
            trace: None,
        }
    }

    #[test]
    fn first_and_repeated_deaths() {
        let m = msg(BasicProperties {
            expiration: Some(ShortStr::from("100")),
            ..Default::default()
        });
        let dlx = ShortStr::from("dlx");
        let (d1, keys, deaths) = make_message(&m, Reason::Expired, b"q1", &dlx, None, 7);
        assert_eq!(keys, vec![ShortStr::from("rk")]);
        assert_eq!(deaths.len(), 1);
        let p = d1.properties.decode().unwrap();
        assert!(p.expiration.is_none());
        let h = p.headers.unwrap();
        assert_eq!(
            h.get("x-first-death-queue").unwrap().as_str_bytes(),
            Some(&b"q1"[..])
        );
        // Same queue and reason again: count 2, still one entry.
        let (_, _, deaths) = make_message(&d1, Reason::Expired, b"q1", &dlx, None, 8);
        assert_eq!(deaths.len(), 1);
        let FieldValue::Table(t) = &deaths[0] else {
            panic!()
        };
        assert_eq!(t.get("count"), Some(&FieldValue::I64(2)));
        assert_eq!(t.get("time"), Some(&FieldValue::Timestamp(7)));
        assert!(is_cycle(b"q1", &deaths));
        assert!(!is_cycle(b"q2", &deaths));
    }
}
