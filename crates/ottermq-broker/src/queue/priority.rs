//! The ready list: one FIFO for an ordinary queue, one FIFO per priority level for a queue
//! declared with `x-max-priority` (RabbitMQ 3.10's classic priority queue).
//!
//! An ordinary queue keeps exactly the `VecDeque` it always had (one predictable branch per
//! operation). A priority queue keeps `max + 1` deques, created empty (a `VecDeque::new` does
//! not allocate) and a bitmap of the non-empty levels, so taking the head is a few word scans,
//! not a walk over 256 deques, and no message costs an allocation of its own.

use super::spill::{Batch, Spill};
use crate::error::{AmqpError, AmqpResult};
use crate::message::{Message, QueuedMessage};
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
    /// Index = priority (0..=max): the in-RAM heads.
    levels: Vec<VecDeque<QueuedMessage>>,
    /// The paged tail of each level (lazy paging), created when first needed.
    tails: Vec<Option<Box<Spill>>>,
    /// Bit p set when level p holds a message (in its head or its tail).
    nonempty: [u64; 4],
    /// Messages in the heads.
    len: usize,
    max: u8,
}

impl Levels {
    fn new(max: u8) -> Self {
        Levels {
            levels: (0..=max as usize).map(|_| VecDeque::new()).collect(),
            tails: (0..=max as usize).map(|_| None).collect(),
            nonempty: [0; 4],
            len: 0,
            max,
        }
    }

    /// The message's priority property, clamped to the queue's maximum (absent = 0).
    fn level_of(&self, m: &Message) -> usize {
        m.properties.priority().unwrap_or(0).min(self.max) as usize
    }

    fn mark(&mut self, p: usize) {
        self.nonempty[p / 64] |= 1 << (p % 64);
    }

    fn unmark_if_empty(&mut self, p: usize) {
        if self.levels[p].is_empty() && self.tails[p].as_ref().is_none_or(|t| t.is_empty()) {
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

#[derive(Debug)]
enum Heads {
    Fifo(VecDeque<QueuedMessage>, Option<Box<Spill>>),
    Priority(Box<Levels>),
}

/// The messages a queue holds ready for delivery, in delivery order: in-RAM heads, and behind
/// them (lazy paging) paged tails, one per FIFO ("lane": the queue, or one priority level).
#[derive(Debug)]
pub struct ReadyList {
    heads: Heads,
    /// Messages in all paged tails, and their body bytes.
    tail_count: u64,
    tail_bytes: u64,
}

impl Default for ReadyList {
    fn default() -> Self {
        ReadyList {
            heads: Heads::Fifo(VecDeque::new(), None),
            tail_count: 0,
            tail_bytes: 0,
        }
    }
}

/// What a refill moved from a paged tail into its head, and what it lost.
#[derive(Debug, Default)]
pub struct Refill {
    /// Messages moved whose body is now in RAM, and those bytes.
    pub resident: u64,
    pub resident_bytes: u64,
    /// Messages moved whose body stays in the message log until they are taken.
    pub in_log: u64,
    pub in_log_bytes: u64,
    /// The tail could not be read: the messages and body bytes dropped with it.
    pub lost: Option<(std::io::Error, Batch)>,
}

impl ReadyList {
    /// A ready list for a queue with `x-max-priority` = `max` (None: an ordinary queue).
    pub fn new(max: Option<u8>) -> Self {
        match max {
            // One level is a FIFO: the plain list does the same work for less.
            None | Some(0) => ReadyList::default(),
            Some(m) => ReadyList {
                heads: Heads::Priority(Box::new(Levels::new(m))),
                ..Default::default()
            },
        }
    }

    /// Every ready message, paged or not.
    #[inline]
    pub fn len(&self) -> usize {
        self.head_len() + self.tail_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages in the in-RAM heads.
    #[inline]
    pub fn head_len(&self) -> usize {
        match &self.heads {
            Heads::Fifo(d, _) => d.len(),
            Heads::Priority(l) => l.len,
        }
    }

    /// Messages in the paged tails.
    #[inline]
    pub fn tail_count(&self) -> u64 {
        self.tail_count
    }

    /// Body bytes of the messages in the paged tails.
    pub fn tail_bytes(&self) -> u64 {
        self.tail_bytes
    }

    /// The lane (0, or the priority level) a message belongs to.
    #[inline]
    pub fn lane_of(&self, m: &Message) -> usize {
        match &self.heads {
            Heads::Fifo(..) => 0,
            Heads::Priority(l) => l.level_of(m),
        }
    }

    fn tail_mut(&mut self, lane: usize) -> &mut Option<Box<Spill>> {
        match &mut self.heads {
            Heads::Fifo(_, t) => t,
            Heads::Priority(l) => &mut l.tails[lane],
        }
    }

    /// Whether `lane` has a paged tail (a message for it must go behind that tail).
    pub fn lane_has_tail(&self, lane: usize) -> bool {
        let t = match &self.heads {
            Heads::Fifo(_, t) => t,
            Heads::Priority(l) => &l.tails[lane],
        };
        t.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// Messages in `lane`'s head.
    pub fn lane_head_len(&self, lane: usize) -> usize {
        match &self.heads {
            Heads::Fifo(d, _) => d.len(),
            Heads::Priority(l) => l.levels[lane].len(),
        }
    }

    /// The lane the next message comes from (highest non-empty priority).
    pub fn next_lane(&self) -> Option<usize> {
        match &self.heads {
            Heads::Fifo(..) => (!self.is_empty()).then_some(0),
            Heads::Priority(l) => l.top(),
        }
    }

    /// Appends `qm` to `lane`'s paged tail (spill files go in `dir`). It is in the tail even
    /// when the error of a failed write is returned: held in RAM behind the records, in order
    /// ([`Spill::push`]).
    pub fn spill_back(
        &mut self,
        lane: usize,
        qm: QueuedMessage,
        dir: &std::path::Path,
    ) -> std::io::Result<()> {
        let len = qm.body_len();
        let t = self.tail_mut(lane).get_or_insert_with(Default::default);
        let r = t.push(qm, dir);
        self.tail_count += 1;
        self.tail_bytes += len;
        if let Heads::Priority(l) = &mut self.heads {
            l.mark(lane);
        }
        r
    }

    /// Messages of the tails held in RAM after a failed spill write, and their bytes.
    pub fn held(&self) -> Batch {
        let mut b = Batch::default();
        let mut add = |t: &Option<Box<Spill>>| {
            if let Some(h) = t.as_ref().map(|t| t.held()) {
                b.messages += h.messages;
                b.bytes += h.bytes;
            }
        };
        match &self.heads {
            Heads::Fifo(_, t) => add(t),
            Heads::Priority(l) => l.tails.iter().for_each(add),
        }
        b
    }

    /// Moves about `read_ahead` bytes of `lane`'s oldest paged messages to the back of its
    /// head. A tail that cannot be read is dropped whole (reported in `lost`).
    pub fn refill(&mut self, lane: usize, read_ahead: usize) -> Refill {
        let mut out = Refill::default();
        let (head, tail) = match &mut self.heads {
            Heads::Fifo(d, t) => (d, t),
            Heads::Priority(l) => {
                let Levels { levels, tails, .. } = &mut **l;
                (&mut levels[lane], &mut tails[lane])
            }
        };
        let Some(t) = tail.as_mut() else {
            return out;
        };
        let r = t.pop_batch(read_ahead, |qm| {
            if qm.paged.is_some() {
                out.in_log += 1;
                out.in_log_bytes += qm.body_len();
            } else {
                out.resident += 1;
                out.resident_bytes += qm.body_len();
            }
            head.push_back(qm);
        });
        let moved = out.resident + out.in_log;
        let moved_bytes = out.resident_bytes + out.in_log_bytes;
        if let Err(e) = r {
            out.lost = Some((e, t.drop_records()));
        }
        if t.is_empty() {
            // Fully read (or lost): the file is closed, and so freed, with it.
            *tail = None;
        }
        let lost = out.lost.as_ref().map_or(Batch::default(), |l| l.1);
        self.tail_count -= moved + lost.messages;
        self.tail_bytes -= moved_bytes + lost.bytes;
        if let Heads::Priority(l) = &mut self.heads {
            l.len += moved as usize;
            l.unmark_if_empty(lane);
        }
        out
    }

    /// Appends a newly published (or recovered) message to the RAM head of its lane.
    #[inline]
    pub fn push_back(&mut self, qm: QueuedMessage) {
        match &mut self.heads {
            Heads::Fifo(d, _) => d.push_back(qm),
            Heads::Priority(l) => {
                let p = l.level_of(&qm.message);
                l.levels[p].push_back(qm);
                l.mark(p);
                l.len += 1;
            }
        }
    }

    /// Puts back the message just taken by `pop_front` (no consumer could take it).
    #[inline]
    pub fn push_front(&mut self, qm: QueuedMessage) {
        match &mut self.heads {
            Heads::Fifo(d, _) => d.push_front(qm),
            Heads::Priority(l) => {
                let p = l.level_of(&qm.message);
                l.levels[p].push_front(qm);
                l.mark(p);
                l.len += 1;
            }
        }
    }

    /// The next message to deliver: the oldest of the highest priority present. None when
    /// that lane's head is empty (its tail must be refilled first).
    #[inline]
    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        match &mut self.heads {
            Heads::Fifo(d, _) => d.pop_front(),
            Heads::Priority(l) => {
                let p = l.top()?;
                let qm = l.levels[p].pop_front()?;
                l.unmark_if_empty(p);
                l.len -= 1;
                Some(qm)
            }
        }
    }

    /// The message `pop_front` would return, left in place (TTL looks at the head). For a
    /// priority queue that is the head of the highest level present.
    #[inline]
    pub fn front(&self) -> Option<&QueuedMessage> {
        match &self.heads {
            Heads::Fifo(d, _) => d.front(),
            Heads::Priority(l) => l.levels[l.top()?].front(),
        }
    }

    /// Puts a requeued message back at its original position (by publish order) within its
    /// priority level. Its seq is below every paged message's, so it belongs in the head.
    pub fn insert_requeued(&mut self, qm: QueuedMessage) {
        let d = match &mut self.heads {
            Heads::Fifo(d, _) => d,
            Heads::Priority(l) => {
                let p = l.level_of(&qm.message);
                l.mark(p);
                l.len += 1;
                &mut l.levels[p]
            }
        };
        let pos = d.partition_point(|m| m.seq < qm.seq);
        d.insert(pos, qm);
    }

    /// Reads every paged tail through (purge, deletion), handing each message to `f`; the
    /// tails are gone afterwards. Returns what could not be read.
    pub fn drain_tails(&mut self, read_ahead: usize, mut f: impl FnMut(QueuedMessage)) -> Batch {
        let mut lost = Batch::default();
        let tails: Vec<&mut Option<Box<Spill>>> = match &mut self.heads {
            Heads::Fifo(_, t) => vec![t],
            Heads::Priority(l) => l.tails.iter_mut().collect(),
        };
        for slot in tails {
            if let Some(t) = slot.as_mut() {
                while !t.is_empty() {
                    if let Err(e) = t.pop_batch(read_ahead, &mut f) {
                        tracing::error!(error = %e, "could not read a paged tail back");
                        let l = t.drop_records();
                        lost.messages += l.messages;
                        lost.bytes += l.bytes;
                    }
                }
            }
            *slot = None;
        }
        self.tail_count = 0;
        self.tail_bytes = 0;
        lost
    }

    /// Removes every message of the heads, highest priority first (tails: `drain_tails`).
    pub fn take_all(&mut self) -> Vec<QueuedMessage> {
        match &mut self.heads {
            Heads::Fifo(d, _) => d.drain(..).collect(),
            Heads::Priority(l) => {
                let mut out = Vec::with_capacity(l.len);
                for d in l.levels.iter_mut().rev() {
                    out.extend(d.drain(..));
                }
                l.len = 0;
                for p in 0..=l.max as usize {
                    l.unmark_if_empty(p);
                }
                out
            }
        }
    }

    /// Test hook: truncates every paged tail's file to `len` bytes.
    #[cfg(test)]
    pub(crate) fn truncate_tails_for_test(&mut self, dir: &std::path::Path, len: u64) {
        let tails: Vec<&mut Option<Box<Spill>>> = match &mut self.heads {
            Heads::Fifo(_, t) => vec![t],
            Heads::Priority(l) => l.tails.iter_mut().collect(),
        };
        for t in tails.into_iter().flatten() {
            t.file_for_test(dir).set_len(len).expect("truncate");
        }
    }

    /// When the oldest ready message was enqueued (any priority). A lane's head is older
    /// than its tail, so each lane gives its head's front or, when its head is empty, the
    /// oldest record of its tail (read from disk: a level served last can hold its messages
    /// only there).
    pub fn oldest_enqueued(&self) -> Option<std::time::Instant> {
        let lane = |head: &VecDeque<QueuedMessage>, tail: &Option<Box<Spill>>| {
            head.front().map(|m| m.enqueued_at).or_else(|| {
                let t = tail.as_ref()?;
                t.oldest_enqueued()
                    .inspect_err(|e| tracing::debug!(error = %e, "could not read a paged tail's oldest record"))
                    .ok()
                    .flatten()
            })
        };
        match &self.heads {
            Heads::Fifo(d, t) => lane(d, t),
            Heads::Priority(l) => l
                .levels
                .iter()
                .zip(&l.tails)
                .filter_map(|(d, t)| lane(d, t))
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

    /// A level whose messages are all in its paged tail still counts for the oldest age.
    #[test]
    fn oldest_enqueued_sees_a_level_held_only_on_disk() {
        let dir = std::env::temp_dir().join(format!("ottermq-prio-oldest-{}", std::process::id()));
        let mut r = ReadyList::new(Some(5));
        let old = Instant::now() - std::time::Duration::from_secs(60);
        for s in 0..3 {
            let mut m = qm(s, Some(1));
            m.enqueued_at = old + std::time::Duration::from_secs(s);
            r.spill_back(1, m, &dir).expect("spill");
        }
        r.push_back(qm(10, Some(5)));
        assert_eq!(r.lane_head_len(1), 0);
        assert_eq!(r.tail_count(), 3);
        let got = r.oldest_enqueued().expect("an age");
        let err = got.max(old) - got.min(old);
        assert!(
            err < std::time::Duration::from_micros(1),
            "{got:?} vs {old:?}"
        );
        // The same for the file part: more than a write buffer of records.
        let mut r = ReadyList::new(None);
        for s in 0..2000 {
            let mut m = qm(s, None);
            m.message.body = bytes::Bytes::from(vec![1u8; 100]);
            m.enqueued_at = old + std::time::Duration::from_millis(s);
            r.spill_back(0, m, &dir).expect("spill");
        }
        r.refill(0, 16 * 1024);
        let mut taken = 0;
        while r.pop_front().is_some() {
            taken += 1;
        }
        assert!(taken > 0 && r.tail_count() > 0, "{taken} taken");
        let next = r.oldest_enqueued().expect("an age");
        let want = old + std::time::Duration::from_millis(taken);
        let err = next.max(want) - next.min(want);
        assert!(
            err < std::time::Duration::from_micros(1),
            "{next:?} vs {want:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
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
