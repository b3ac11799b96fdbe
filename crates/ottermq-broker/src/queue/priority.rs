//! The ready list: one FIFO for an ordinary queue, one FIFO per priority level for a queue
//! declared with `x-max-priority` (RabbitMQ 3.10's classic priority queue).
//!
//! An ordinary queue keeps exactly the `VecDeque` it always had (one predictable branch per
//! operation). A priority queue keeps `max + 1` deques, created empty (a `VecDeque::new` does
//! not allocate) and a bitmap of the non-empty levels, so taking the head is a few word scans,
//! not a walk over 256 deques, and no message costs an allocation of its own.

use crate::error::{AmqpError, AmqpResult};
use crate::message::QueuedMessage;
use ottermq_protocol::FieldTable;
use std::collections::VecDeque;

/// RabbitMQ's `?MAX_SUPPORTED_PRIORITY`.
pub const MAX_SUPPORTED_PRIORITY: i64 = 255;

/// Reads and checks `x-max-priority` as RabbitMQ does at queue.declare: any integer type,
/// 0..=255, else PRECONDITION_FAILED. `Ok(None)` when absent. A declared 0 leaves the single
/// level 0 (every message clamped to it: plain FIFO), as RabbitMQ 3.10's
/// `lists:seq(0, min(Requested, 255))` does (later versions raise 0 to 1).
pub fn max_priority(args: &FieldTable, queue: &str, vhost: &str) -> AmqpResult<Option<u8>> {
    let Some(v) = args.get("x-max-priority") else {
        return Ok(None);
    };
    let invalid = |why: String| {
        AmqpError::precondition_failed(format!(
            "invalid arg 'x-max-priority' for queue '{queue}' in vhost '{vhost}': {why}"
        ))
    };
    let n = v
        .as_i64()
        .ok_or_else(|| invalid("{unacceptable_type,\"expected integer\"}".into()))?;
    if n < 0 {
        return Err(invalid(format!("{{value_negative,{n}}}")));
    }
    if n > MAX_SUPPORTED_PRIORITY {
        return Err(invalid(format!("{{max_value_exceeded,{n}}}")));
    }
    Ok(Some(n as u8))
}

/// Priority levels of a priority queue, highest served first, FIFO within one level.
#[derive(Debug)]
pub struct Levels {
    /// Index = priority (0..=max).
    levels: Vec<VecDeque<QueuedMessage>>,
    /// Bit p set when `levels[p]` is not empty.
    nonempty: [u64; 4],
    len: usize,
    max: u8,
}

impl Levels {
    fn new(max: u8) -> Self {
        Levels {
            levels: (0..=max as usize).map(|_| VecDeque::new()).collect(),
            nonempty: [0; 4],
            len: 0,
            max,
        }
    }

    /// The message's priority property, clamped to the queue's maximum (absent = 0).
    fn level_of(&self, qm: &QueuedMessage) -> usize {
        qm.message.properties.priority().unwrap_or(0).min(self.max) as usize
    }

    fn mark(&mut self, p: usize) {
        self.nonempty[p / 64] |= 1 << (p % 64);
    }

    fn unmark_if_empty(&mut self, p: usize) {
        if self.levels[p].is_empty() {
            self.nonempty[p / 64] &= !(1 << (p % 64));
        }
    }

    /// Highest non-empty level.
    fn top(&self) -> Option<usize> {
        (0..4)
            .rev()
            .find(|&w| self.nonempty[w] != 0)
            .map(|w| w * 64 + 63 - self.nonempty[w].leading_zeros() as usize)
    }
}

/// The messages a queue holds ready for delivery, in delivery order.
#[derive(Debug)]
pub enum ReadyList {
    Fifo(VecDeque<QueuedMessage>),
    Priority(Box<Levels>),
}

impl Default for ReadyList {
    fn default() -> Self {
        ReadyList::Fifo(VecDeque::new())
    }
}

impl ReadyList {
    /// A ready list for a queue with `x-max-priority` = `max` (None: an ordinary queue).
    pub fn new(max: Option<u8>) -> Self {
        match max {
            // One level is a FIFO: the plain list does the same work for less.
            None | Some(0) => ReadyList::default(),
            Some(m) => ReadyList::Priority(Box::new(Levels::new(m))),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ReadyList::Fifo(d) => d.len(),
            ReadyList::Priority(l) => l.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a newly published (or recovered) message.
    #[inline]
    pub fn push_back(&mut self, qm: QueuedMessage) {
        match self {
            ReadyList::Fifo(d) => d.push_back(qm),
            ReadyList::Priority(l) => {
                let p = l.level_of(&qm);
                l.levels[p].push_back(qm);
                l.mark(p);
                l.len += 1;
            }
        }
    }

    /// Puts back the message just taken by `pop_front` (no consumer could take it).
    #[inline]
    pub fn push_front(&mut self, qm: QueuedMessage) {
        match self {
            ReadyList::Fifo(d) => d.push_front(qm),
            ReadyList::Priority(l) => {
                let p = l.level_of(&qm);
                l.levels[p].push_front(qm);
                l.mark(p);
                l.len += 1;
            }
        }
    }

    /// The next message to deliver: the oldest of the highest priority present.
    #[inline]
    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        match self {
            ReadyList::Fifo(d) => d.pop_front(),
            ReadyList::Priority(l) => {
                let p = l.top()?;
                let qm = l.levels[p].pop_front();
                l.unmark_if_empty(p);
                l.len -= 1;
                qm
            }
        }
    }

    /// The message `pop_front` would return, left in place (TTL looks at the head). For a
    /// priority queue that is the head of the highest level present.
    #[inline]
    pub fn front(&self) -> Option<&QueuedMessage> {
        match self {
            ReadyList::Fifo(d) => d.front(),
            ReadyList::Priority(l) => l.levels[l.top()?].front(),
        }
    }

    /// Puts a requeued message back at its original position (by publish order) within its
    /// priority level.
    pub fn insert_requeued(&mut self, qm: QueuedMessage) {
        let d = match self {
            ReadyList::Fifo(d) => d,
            ReadyList::Priority(l) => {
                let p = l.level_of(&qm);
                l.mark(p);
                l.len += 1;
                &mut l.levels[p]
            }
        };
        let pos = d.partition_point(|m| m.seq < qm.seq);
        d.insert(pos, qm);
    }

    /// Removes every message, highest priority first.
    pub fn take_all(&mut self) -> Vec<QueuedMessage> {
        match self {
            ReadyList::Fifo(d) => d.drain(..).collect(),
            ReadyList::Priority(l) => {
                let mut out = Vec::with_capacity(l.len);
                for d in l.levels.iter_mut().rev() {
                    out.extend(d.drain(..));
                }
                l.nonempty = [0; 4];
                l.len = 0;
                out
            }
        }
    }

    /// When the oldest ready message was enqueued (any priority).
    pub fn oldest_enqueued(&self) -> Option<std::time::Instant> {
        match self {
            ReadyList::Fifo(d) => d.front().map(|m| m.enqueued_at),
            ReadyList::Priority(l) => l
                .levels
                .iter()
                .filter_map(|d| d.front().map(|m| m.enqueued_at))
                .min(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use ottermq_protocol::{BasicProperties, FieldValue, ShortStr};
    use std::time::Instant;

    fn qm(seq: u64, prio: Option<u8>) -> QueuedMessage {
        let props = BasicProperties {
            priority: prio,
            ..Default::default()
        };
        QueuedMessage {
            seq,
            message: Message {
                exchange: ShortStr::from(""),
                routing_key: ShortStr::from("q"),
                properties: props.to_raw(),
                body: bytes::Bytes::new(),
                received_at: Instant::now(),
                trace: None,
            },
            redelivered: false,
            enqueued_at: Instant::now(),
            persist_id: 0,
            expires_at: None,
            body_at: Default::default(),
            paged: None,
            delivery_count: 0,
        }
    }

    fn order(r: &mut ReadyList) -> Vec<u64> {
        std::iter::from_fn(|| r.pop_front().map(|m| m.seq)).collect()
    }

    #[test]
    fn highest_first_fifo_within_level_clamped() {
        let mut r = ReadyList::new(Some(5));
        for (s, p) in [
            (0, None),
            (1, Some(3)),
            (2, Some(9)),
            (3, Some(3)),
            (4, Some(5)),
        ] {
            r.push_back(qm(s, p));
        }
        assert_eq!(r.len(), 5);
        // 9 is clamped to 5: same level as seq 4, and published before it.
        assert_eq!(order(&mut r), vec![2, 4, 1, 3, 0]);
        assert!(r.is_empty());
    }

    #[test]
    fn requeue_goes_back_to_its_place_in_its_level() {
        let mut r = ReadyList::new(Some(255));
        for s in 0..4 {
            r.push_back(qm(s, Some(if s % 2 == 0 { 200 } else { 1 })));
        }
        let a = r.pop_front().expect("a"); // seq 0 (200)
        let b = r.pop_front().expect("b"); // seq 2 (200)
        assert_eq!((a.seq, b.seq), (0, 2));
        r.insert_requeued(b);
        r.insert_requeued(a);
        assert_eq!(order(&mut r), vec![0, 2, 1, 3]);
    }

    #[test]
    fn max_priority_argument_checks() {
        let mut t = FieldTable::new();
        assert_eq!(max_priority(&t, "q", "/").ok(), Some(None));
        t.insert("x-max-priority", FieldValue::I32(10));
        assert_eq!(max_priority(&t, "q", "/").ok(), Some(Some(10)));
        t.insert("x-max-priority", FieldValue::I32(0));
        assert_eq!(max_priority(&t, "q", "/").ok(), Some(Some(0)));
        for bad in [
            FieldValue::I32(256),
            FieldValue::I32(-1),
            FieldValue::LongStr("5".into()),
        ] {
            t.insert("x-max-priority", bad);
            let e = max_priority(&t, "q", "/").expect_err("refused");
            assert_eq!(e.code, ottermq_protocol::reply_code::PRECONDITION_FAILED);
        }
    }
}
