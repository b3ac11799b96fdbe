//! What every handler can reach.

use ottermq_broker::Broker;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Shared handler state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub readiness: Arc<Readiness>,
}

/// Whether the broker should receive traffic: set once the listeners accept and storage is
/// recovered, cleared when shutdown begins. `/ready` reports it.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    /// The AMQP listener's address, once bound (the health check probes it).
    pub amqp_addr: OnceLock<SocketAddr>,
}

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
