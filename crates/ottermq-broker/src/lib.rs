//! The OtterMQ broker: everything between a client's socket and its messages.
//!
//! - `connection`: handshake, heartbeats, the reader loop and the writer task.
//! - `channel`: per-channel state machines: publish assembly, consumers, acks, confirms, tx.
//! - `vhost`, `exchange`, `queue`: the routing model (exchange types each in their own file).
//! - `message`: the message as the broker holds it (`Bytes` all the way, no copies per queue).
//! - `broker`, `config`, `auth`: users, vhosts, settings and SASL.
//! - `permissions`: users' tags, password hashes and per-vhost permission checks.
//! - `server`: the TCP listener (plain and TLS); `tls`: certificates and rustls set-up.
//! - `server`: the TCP listener.
//! - `trace`: the calls into `ottermq-tracing` (only for traced messages).

pub mod auth;
pub mod broker;
pub mod channel;
pub mod config;
pub mod connection;
pub mod error;
pub mod exchange;
pub mod message;
pub mod permissions;
pub mod queue;
pub mod sampler;
pub mod server;
pub mod stats;
pub mod store;
pub mod tls;
pub mod topic_permissions;
mod trace;
pub mod vhost;

pub use broker::Broker;
pub use config::{BrokerConfig, UserConfig};
pub use error::{AmqpError, AmqpResult};

use exchange::Exchange;
use queue::Queue;
use smallvec::SmallVec;
use std::sync::Arc;

/// The queues a message routes to, de-duplicated, plus the exchanges already visited (so
/// exchange-to-exchange binding loops end). Reused across publishes to avoid allocating.
#[derive(Default, Debug)]
pub struct RouteTargets {
    queues: SmallVec<[Arc<Queue>; 8]>,
    visited: SmallVec<[usize; 4]>,
}

impl RouteTargets {
    pub fn clear(&mut self) {
        self.queues.clear();
        self.visited.clear();
    }

    pub fn push_queue(&mut self, q: &Arc<Queue>) {
        if !self.queues.iter().any(|x| Arc::ptr_eq(x, q)) {
            self.queues.push(q.clone());
        }
    }

    /// Marks an exchange as visited; false if it already was.
    pub fn visit_exchange(&mut self, e: &Arc<Exchange>) -> bool {
        let addr = Arc::as_ptr(e) as usize;
        if self.visited.contains(&addr) {
            return false;
        }
        self.visited.push(addr);
        true
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queues.len()
    }

    pub fn queues(&self) -> &[Arc<Queue>] {
        &self.queues
    }

    /// Empties the list, handing out the queues (the visited set is cleared too).
    pub fn drain(&mut self) -> impl Iterator<Item = Arc<Queue>> + '_ {
        self.visited.clear();
        self.queues.drain(..)
    }
}
