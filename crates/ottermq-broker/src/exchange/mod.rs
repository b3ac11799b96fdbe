//! Exchanges: named routing tables. One file per exchange type's matching rules
//! (`topic.rs`, `headers.rs`); direct and fanout are a map and a list.

pub mod headers;
pub mod topic;

use crate::queue::Queue;
use crate::RouteTargets;
use ottermq_protocol::{FieldTable, RawProperties, ShortStr};
use parking_lot::RwLock;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use topic::TopicTrie;

/// The four AMQP exchange types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"direct" => ExchangeKind::Direct,
            b"fanout" => ExchangeKind::Fanout,
            b"topic" => ExchangeKind::Topic,
            b"headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Where a binding sends messages: a queue, or another exchange (exchange-to-exchange binding).
#[derive(Clone, Debug)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Destination {
    pub fn name(&self) -> &ShortStr {
        match self {
            Destination::Queue(q) => &q.name,
            Destination::Exchange(e) => &e.name,
        }
    }
    pub fn is_queue(&self) -> bool {
        matches!(self, Destination::Queue(_))
    }
}

/// One binding: source exchange -> destination, with the key and arguments it was made with.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

#[derive(Debug)]
enum Table {
    Direct(HashMap<ShortStr, Vec<Binding>>),
    Fanout(Vec<Binding>),
    Topic(TopicTrie<Binding>),
    Headers(Vec<Binding>),
}

/// An exchange. Its bindings sit behind its own lock, so publishers to different exchanges
/// never contend, and publishers to the same exchange share a read lock.
#[derive(Debug)]
pub struct Exchange {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// `alternate-exchange` argument: where unroutable messages go.
    pub alternate: Option<ShortStr>,
    table: RwLock<Table>,
    deleted: AtomicBool,
    pub stats: crate::stats::ExchangeStats,
}

impl Exchange {
    pub fn new(
        name: ShortStr,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        let alternate = arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str_bytes())
            .and_then(|b| ShortStr::from_bytes(bytes::Bytes::copy_from_slice(b)).ok());
        let table = match kind {
            ExchangeKind::Direct => Table::Direct(HashMap::new()),
            ExchangeKind::Fanout => Table::Fanout(Vec::new()),
            ExchangeKind::Topic => Table::Topic(TopicTrie::default()),
            ExchangeKind::Headers => Table::Headers(Vec::new()),
        };
        Exchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            table: RwLock::new(table),
            deleted: AtomicBool::new(false),
            stats: Default::default(),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// Adds a binding; false when an identical one already exists (binding is idempotent).
    pub fn bind(&self, b: Binding) -> bool {
        let mut t = self.table.write();
        match &mut *t {
            Table::Direct(m) => {
                let v = m.entry(b.routing_key.clone()).or_default();
                if v.contains(&b) {
                    return false;
                }
                v.push(b);
                true
            }
            Table::Fanout(v) | Table::Headers(v) => {
                if v.contains(&b) {
                    return false;
                }
                v.push(b);
                true
            }
            Table::Topic(trie) => {
                let key = b.routing_key.clone();
                trie.insert(key.as_bytes(), b)
            }
        }
    }

    /// Removes a binding; false when there was none like it.
    pub fn unbind(&self, b: &Binding) -> bool {
        let mut t = self.table.write();
        match &mut *t {
            Table::Direct(m) => {
                let Some(v) = m.get_mut(b.routing_key.as_bytes()) else {
                    return false;
                };
                let Some(pos) = v.iter().position(|x| x == b) else {
                    return false;
                };
                v.remove(pos);
                if v.is_empty() {
                    m.remove(b.routing_key.as_bytes());
                }
                true
            }
            Table::Fanout(v) | Table::Headers(v) => {
                let Some(pos) = v.iter().position(|x| x == b) else {
                    return false;
                };
                v.remove(pos);
                true
            }
            Table::Topic(trie) => trie.remove(b.routing_key.as_bytes(), b),
        }
    }

    /// Drops every binding to `dest` (the destination is being deleted). Returns how many went.
    pub fn unbind_destination(&self, dest: &Destination) -> usize {
        let mut removed = 0;
        let mut t = self.table.write();
        let mut keep = |b: &Binding| {
            let k = b.destination != *dest;
            if !k {
                removed += 1;
            }
            k
        };
        match &mut *t {
            Table::Direct(m) => {
                m.retain(|_, v| {
                    v.retain(&mut keep);
                    !v.is_empty()
                });
            }
            Table::Fanout(v) | Table::Headers(v) => v.retain(&mut keep),
            Table::Topic(trie) => trie.retain(&mut keep),
        }
        removed
    }

    pub fn has_bindings(&self) -> bool {
        match &*self.table.read() {
            Table::Direct(m) => !m.is_empty(),
            Table::Fanout(v) | Table::Headers(v) => !v.is_empty(),
            Table::Topic(trie) => !trie.is_empty(),
        }
    }

    /// Every binding, for the management API and for `if-unused`.
    pub fn bindings(&self) -> Vec<Binding> {
        let mut out = Vec::new();
        match &*self.table.read() {
            Table::Direct(m) => m.values().for_each(|v| out.extend(v.iter().cloned())),
            Table::Fanout(v) | Table::Headers(v) => out.extend(v.iter().cloned()),
            Table::Topic(trie) => trie.for_each(&mut |b: &Binding| out.push(b.clone())),
        }
        out
    }

    /// Collects the destinations matching a message into `out`, following exchange-to-exchange
    /// bindings (each exchange visited once, so binding loops terminate).
    pub fn route(
        &self,
        routing_key: &[u8],
        props: &RawProperties,
        headers: &mut LazyHeaders,
        out: &mut RouteTargets,
    ) {
        let mut next: SmallVec<[Arc<Exchange>; 4]> = SmallVec::new();
        {
            let t = self.table.read();
            let mut push = |b: &Binding| match &b.destination {
                Destination::Queue(q) => out.push_queue(q),
                Destination::Exchange(e) => {
                    if !next.iter().any(|x| Arc::ptr_eq(x, e)) {
                        next.push(e.clone())
                    }
                }
            };
            match &*t {
                Table::Direct(m) => {
                    if let Some(v) = m.get(routing_key) {
                        v.iter().for_each(&mut push);
                    }
                }
                Table::Fanout(v) => v.iter().for_each(&mut push),
                Table::Topic(trie) => trie.matches(routing_key, &mut push),
                Table::Headers(v) => {
                    let h = headers.get(props);
                    for b in v {
                        if headers::headers_match(&b.arguments, h) {
                            push(b);
                        }
                    }
                }
            }
        }
        for e in next {
            if out.visit_exchange(&e) && !e.is_deleted() {
                e.route(routing_key, props, headers, out);
            }
        }
    }
}

/// A message's headers table, decoded at most once and only if a headers exchange asks.
#[derive(Default)]
pub struct LazyHeaders {
    decoded: Option<Option<ottermq_protocol::FieldTable>>,
}

impl LazyHeaders {
    pub fn get(&mut self, props: &RawProperties) -> Option<&FieldTable> {
        self.decoded.get_or_insert_with(|| props.headers()).as_ref()
    }
}
