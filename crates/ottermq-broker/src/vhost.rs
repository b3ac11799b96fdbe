//! A virtual host: its exchanges, queues and the bindings between them.
//!
//! The two name maps are only locked to declare, delete or look a name up; publishers cache
//! the exchange or queue they last used (see `channel::publish`), so steady publishing does not
//! touch these locks.

use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{Binding, Destination, Exchange, ExchangeKind, LazyHeaders};
use crate::message::Message;
use crate::queue::{Queue, QueueOptions};
use crate::store::definitions::{BindingDef, DefChange, ExchangeDef, QueueDef};
use crate::store::VhostStore;
use crate::RouteTargets;
use ottermq_protocol::{FieldTable, ShortStr};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct VHost {
    pub name: Arc<str>,
    stats: Arc<crate::stats::BrokerStats>,
    exchanges: RwLock<HashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<HashMap<ShortStr, Arc<Queue>>>,
    /// Most queues this vhost may hold (0 = no limit), RabbitMQ's `max-queues`.
    max_queues: AtomicU32,
    /// Where durable definitions and persistent messages go; None for an in-memory broker.
    pub store: Option<Arc<VhostStore>>,
    /// Itself, for queues that route dead-lettered messages back through it.
    me: std::sync::Weak<VHost>,
    /// Direct reply-to consumers of this vhost's channels.
    /// Pages ready bodies beyond each queue's memory budget out to disk.
    pager: Arc<crate::queue::paging::Pager>,
    /// Per-queue memory budget for ready bodies (`queue_memory_budget_bytes`).
    page_budget: std::sync::atomic::AtomicU64,
}

/// What an exchange.declare asks for.
#[derive(Debug, Clone)]
pub struct ExchangeSpec {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

impl VHost {
    /// A vhost with the default exchange and the `amq.*` exchanges every RabbitMQ vhost has.
    pub fn new(name: &str, stats: Arc<crate::stats::BrokerStats>) -> Arc<Self> {
        Self::with_store(name, stats, None)
    }

    /// A vhost whose durable objects and persistent messages go to `store`.
    pub fn with_store(
        name: &str,
        stats: Arc<crate::stats::BrokerStats>,
        store: Option<Arc<VhostStore>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self::build(name, stats, store, me.clone()))
    }

    fn build(
        name: &str,
        stats: Arc<crate::stats::BrokerStats>,
        store: Option<Arc<VhostStore>>,
        me: std::sync::Weak<VHost>,
    ) -> Self {
        let v = VHost {
            me,
            name: Arc::from(name),
            stats,
            exchanges: RwLock::new(HashMap::new()),
            queues: RwLock::new(HashMap::new()),
            max_queues: AtomicU32::new(0),
            pager: Arc::new(crate::queue::paging::Pager::new(
                store
                    .as_ref()
                    .map_or_else(std::env::temp_dir, |s| s.dir.clone()),
                store.as_ref().map(|s| s.log.clone()),
            )),
            page_budget: std::sync::atomic::AtomicU64::new(
                crate::queue::paging::DEFAULT_BUDGET_BYTES,
            ),
            store,
        };
        for (n, kind) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            let name = ShortStr::from(n);
            let e = Exchange::new(name.clone(), kind, true, false, false, FieldTable::new());
            v.exchanges.write().insert(name, Arc::new(e));
        }
        v
    }

    /// Sets the queue limit (0 = none); queues already there stay.
    pub fn set_max_queues(&self, n: u32) {
        self.max_queues.store(n, Ordering::Relaxed);
    }

    /// Sets the memory budget of queues declared from now on (and of recovered ones, when set
    /// before recovery restores them).
    pub fn set_page_budget(&self, bytes: u64) {
        self.page_budget.store(bytes, Ordering::Relaxed);
    }

    fn paged(&self, q: Queue) -> Queue {
        q.with_paging(self.pager.clone(), self.page_budget.load(Ordering::Relaxed))
    }

    pub fn exchange(&self, name: &[u8]) -> Option<Arc<Exchange>> {
        self.exchanges.read().get(name).cloned()
    }

    pub fn queue(&self, name: &[u8]) -> Option<Arc<Queue>> {
        self.queues.read().get(name).cloned()
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.read().values().cloned().collect()
    }

    pub fn queue_count(&self) -> usize {
        self.queues.read().len()
    }

    pub fn exchange_count(&self) -> usize {
        self.exchanges.read().len()
    }

    pub fn not_found_exchange(&self, name: &ShortStr) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{}' in vhost '{}'", name, self.name))
    }

    pub fn not_found_queue(&self, name: &ShortStr) -> AmqpError {
        AmqpError::not_found(format!("no queue '{}' in vhost '{}'", name, self.name))
    }

    pub fn get_exchange(&self, name: &ShortStr) -> AmqpResult<Arc<Exchange>> {
        self.exchange(name.as_bytes())
            .ok_or_else(|| self.not_found_exchange(name))
    }

    pub fn get_queue(&self, name: &ShortStr) -> AmqpResult<Arc<Queue>> {
        self.queue(name.as_bytes())
            .ok_or_else(|| self.not_found_queue(name))
    }

    /// Declares an exchange, or checks an existing one is equivalent (RabbitMQ's rules).
    pub fn declare_exchange(&self, spec: ExchangeSpec) -> AmqpResult<Arc<Exchange>> {
        let mut map = self.exchanges.write();
        if let Some(e) = map.get(spec.name.as_bytes()) {
            self.check_equivalent_exchange(e, &spec)?;
            return Ok(e.clone());
        }
        if spec.durable {
            self.persist(|| {
                DefChange::Exchange(ExchangeDef {
                    name: spec.name.clone(),
                    kind: spec.kind,
                    auto_delete: spec.auto_delete,
                    internal: spec.internal,
                    arguments: spec.arguments.clone(),
                })
            });
        }
        let e = Arc::new(Exchange::new(
            spec.name.clone(),
            spec.kind,
            spec.durable,
            spec.auto_delete,
            spec.internal,
            spec.arguments,
        ));
        map.insert(spec.name, e.clone());
        self.stats.exchanges_declared.inc();
        Ok(e)
    }

    fn check_equivalent_exchange(&self, e: &Exchange, spec: &ExchangeSpec) -> AmqpResult<()> {
        let ineq = |arg: &str, got: &str, cur: &str| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for exchange '{}' in vhost '{}': received '{got}' but current is '{cur}'",
                e.name, self.name
            ))
        };
        if e.kind != spec.kind {
            return Err(ineq("type", spec.kind.as_str(), e.kind.as_str()));
        }
        for (arg, got, cur) in [
            ("durable", spec.durable, e.durable),
            ("auto_delete", spec.auto_delete, e.auto_delete),
            ("internal", spec.internal, e.internal),
        ] {
            if got != cur {
                return Err(ineq(arg, &got.to_string(), &cur.to_string()));
            }
        }
        Ok(())
    }

    /// Deletes an exchange and every binding from or to it. `if_unused` refuses while it is
    /// the source of a binding.
    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> AmqpResult<()> {
        let e = {
            let mut map = self.exchanges.write();
            let Some(e) = map.get(name.as_bytes()) else {
                return Ok(());
            };
            if if_unused && e.has_bindings() {
                return Err(AmqpError::precondition_failed(format!(
                    "exchange '{}' in vhost '{}' in use",
                    name, self.name
                )));
            }
            let e = e.clone();
            if e.durable {
                self.persist(|| DefChange::DeleteExchange(e.name.clone()));
            }
            map.remove(name.as_bytes());
            self.stats.exchanges_deleted.inc();
            self.stats.retire_exchange(&e.stats);
            e
        };
        e.mark_deleted();
        let dest = Destination::Exchange(e.clone());
        for other in self.exchanges() {
            if other.unbind_destination(&dest) > 0 {
                self.maybe_auto_delete_exchange(&other);
            }
        }
        Ok(())
    }

    /// Declares a queue, or returns the existing one after checking ownership and equivalence.
    pub fn declare_queue(
        &self,
        name: ShortStr,
        options: QueueOptions,
        conn: u64,
    ) -> AmqpResult<(Arc<Queue>, bool)> {
        crate::queue::check_declare_args(&options, &name, &self.name)?;
        let mut map = self.queues.write();
        if let Some(q) = map.get(name.as_bytes()) {
            q.check_access(conn)?;
            self.check_equivalent_queue(q, &options)?;
            return Ok((q.clone(), false));
        }
        let limit = self.max_queues.load(Ordering::Relaxed);
        if limit != 0 && map.len() >= limit as usize {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({limit}) is reached",
                self.name
            )));
        }
        let owner = options.exclusive.then_some(conn);
        // Exclusive queues end with their connection, so they are never stored.
        let stored = options.durable && !options.exclusive;
        let log = match &self.store {
            Some(s) if stored => {
                s.record(&DefChange::Queue(QueueDef {
                    name: name.clone(),
                    auto_delete: options.auto_delete,
                    arguments: options.arguments.clone(),
                }));
                Some(s.log.clone())
            }
            _ => None,
        };
        let q = Arc::new(
            self.paged(
                Queue::new(name.clone(), self.name.clone(), options, owner)
                    .with_log(log)
                    .with_vhost(self.me.clone()),
            ),
        );
        map.insert(name, q.clone());
        drop(map);
        q.arm_expiry();
        self.stats.queues_declared.inc();
        Ok((q, true))
    }

    fn check_equivalent_queue(&self, q: &Queue, o: &QueueOptions) -> AmqpResult<()> {
        let ineq = |arg: &str, got: String, cur: String| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for queue '{}' in vhost '{}': received '{got}' but current is '{cur}'",
                q.name, self.name
            ))
        };
        if q.options.durable != o.durable {
            return Err(ineq(
                "durable",
                o.durable.to_string(),
                q.options.durable.to_string(),
            ));
        }
        if q.options.auto_delete != o.auto_delete {
            return Err(ineq(
                "auto_delete",
                o.auto_delete.to_string(),
                q.options.auto_delete.to_string(),
            ));
        }
        // The arguments RabbitMQ knows must match (by value, integers of any width alike);
        // others may differ, as in RabbitMQ.
        if let Some((key, text)) =
            crate::queue::queue_type::inequivalent_arg(&q.options.arguments, &o.arguments)
        {
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{key}' for queue '{}' in vhost '{}': {text}",
                q.name, self.name
            )));
        }
        Ok(())
    }

    /// Removes a queue with its bindings and tells its consumers. Returns the messages dropped
    /// and the consumers to notify with basic.cancel.
    pub fn delete_queue(
        &self,
        q: &Arc<Queue>,
    ) -> (u32, Vec<Arc<crate::queue::consumer::Consumer>>) {
        {
            let mut map = self.queues.write();
            if let Some(cur) = map.get(q.name.as_bytes()) {
                if Arc::ptr_eq(cur, q) {
                    if q.options.durable && !q.options.exclusive {
                        self.persist(|| DefChange::DeleteQueue(q.name.clone()));
                    }
                    map.remove(q.name.as_bytes());
                    self.stats.queues_deleted.inc();
                    self.stats.retire_queue(&q.stats);
                }
            }
        }
        let (consumers, n) = q.mark_deleted();
        let dest = Destination::Queue(q.clone());
        for e in self.exchanges() {
            if e.unbind_destination(&dest) > 0 {
                self.maybe_auto_delete_exchange(&e);
            }
        }
        (n, consumers)
    }

    /// Deletes a queue as `delete_queue` does and sends basic.cancel to its consumers whose
    /// clients understand it (consumer_cancel_notify). Used by queue.delete, auto-delete and
    /// the management API's DELETE, so every path tells consumers the same way.
    pub fn delete_queue_and_cancel(&self, q: &Arc<Queue>) -> u32 {
        let (n, consumers) = self.delete_queue(q);
        for c in consumers {
            c.channel
                .consumers
                .lock()
                .retain(|(_, x)| !Arc::ptr_eq(x, &c));
            if c.channel.cancel_notify && !c.channel.is_closed() {
                let id = c.channel.id;
                let tag = c.tag.clone();
                c.channel.out.write(|b, _| {
                    ottermq_protocol::encode_method(
                        b,
                        id,
                        &ottermq_protocol::Method::BasicCancel(ottermq_protocol::BasicCancel {
                            consumer_tag: tag,
                            nowait: true,
                        }),
                    )
                });
            }
        }
        n
    }

    pub fn bind(&self, source: &Arc<Exchange>, b: Binding) -> AmqpResult<()> {
        if source.name.is_empty() {
            return Err(default_exchange_refused());
        }
        if source.kind == ExchangeKind::Headers {
            crate::exchange::headers::validate_binding_args(&b.arguments)
                .map_err(AmqpError::precondition_failed)?;
        }
        let durable = durable_binding(source, &b);
        if source.bind(b) {
            if let Some(d) = durable {
                self.persist(|| DefChange::Bind(d));
            }
        }
        Ok(())
    }

    pub fn unbind(&self, source: &Arc<Exchange>, b: &Binding) -> AmqpResult<()> {
        if source.name.is_empty() {
            return Err(default_exchange_refused());
        }
        if source.unbind(b) {
            if let Some(d) = durable_binding(source, b) {
                self.persist(|| DefChange::Unbind(d));
            }
            self.maybe_auto_delete_exchange(source);
        }
        Ok(())
    }

    /// An auto-delete exchange goes when its last binding (as a source) goes.
    fn maybe_auto_delete_exchange(&self, e: &Arc<Exchange>) {
        if e.auto_delete && !e.has_bindings() && !e.is_deleted() {
            let _ = self.delete_exchange(&e.name, false);
        }
    }

    /// Routes `msg` through `exchange` (and its alternate exchanges when nothing matched).
    pub fn route(&self, exchange: &Arc<Exchange>, msg: &Message, out: &mut RouteTargets) {
        out.clear();
        let mut headers = LazyHeaders::default();
        out.visit_exchange(exchange);
        if exchange.name.is_empty() {
            if let Some(q) = self.queue(msg.routing_key.as_bytes()) {
                out.push_queue(&q);
            }
            return;
        }
        exchange.route(
            msg.routing_key.as_bytes(),
            &msg.properties,
            &mut headers,
            out,
        );
        let mut current = exchange.clone();
        while out.is_empty() {
            let Some(alt_name) = current.alternate.clone() else {
                break;
            };
            let Some(alt) = self.exchange(alt_name.as_bytes()) else {
                break;
            };
            if !out.visit_exchange(&alt) {
                break;
            }
            alt.route(
                msg.routing_key.as_bytes(),
                &msg.properties,
                &mut headers,
                out,
            );
            current = alt;
        }
    }
}

/// Restoring stored definitions at start: straight into the maps, without recording them again.
impl VHost {
    pub fn restore_exchange(&self, d: ExchangeDef) {
        let mut map = self.exchanges.write();
        if map.contains_key(d.name.as_bytes()) {
            return;
        }
        let e = Exchange::new(
            d.name.clone(),
            d.kind,
            true,
            d.auto_delete,
            d.internal,
            d.arguments,
        );
        map.insert(d.name, Arc::new(e));
    }

    pub fn restore_queue(&self, d: QueueDef) -> Arc<Queue> {
        let mut map = self.queues.write();
        if let Some(q) = map.get(d.name.as_bytes()) {
            return q.clone();
        }
        let options = QueueOptions {
            durable: true,
            exclusive: false,
            auto_delete: d.auto_delete,
            arguments: d.arguments,
        };
        let log = self.store.as_ref().map(|s| s.log.clone());
        let q = Arc::new(
            self.paged(
                Queue::new(d.name.clone(), self.name.clone(), options, None)
                    .with_log(log)
                    .with_vhost(self.me.clone()),
            ),
        );
        map.insert(d.name, q.clone());
        drop(map);
        q.arm_expiry();
        q
    }

    /// Re-creates a stored binding; false when one of its ends no longer exists.
    pub fn restore_binding(&self, d: BindingDef) -> bool {
        let Some(source) = self.exchange(d.source.as_bytes()) else {
            return false;
        };
        let destination = if d.to_queue {
            match self.queue(d.destination.as_bytes()) {
                Some(q) => Destination::Queue(q),
                None => return false,
            }
        } else {
            match self.exchange(d.destination.as_bytes()) {
                Some(e) => Destination::Exchange(e),
                None => return false,
            }
        };
        source.bind(Binding {
            destination,
            routing_key: d.routing_key,
            arguments: d.arguments,
        });
        true
    }
}

impl VHost {
    /// Appends a definition change to the store (synchronously, with its fsync).
    fn persist(&self, change: impl FnOnce() -> DefChange) {
        if let Some(s) = &self.store {
            s.record(&change());
        }
    }
}

/// A binding is durable when both its ends are (RabbitMQ's rule).
fn durable_binding(source: &Exchange, b: &Binding) -> Option<BindingDef> {
    let (to_queue, durable) = match &b.destination {
        Destination::Queue(q) => (true, q.options.durable && !q.options.exclusive),
        Destination::Exchange(e) => (false, e.durable),
    };
    (source.durable && durable).then(|| BindingDef {
        source: source.name.clone(),
        to_queue,
        destination: b.destination.name().clone(),
        routing_key: b.routing_key.clone(),
        arguments: b.arguments.clone(),
    })
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}
