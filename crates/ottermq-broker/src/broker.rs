//! The broker: vhosts, users and the registry of live connections.

use crate::config::{BrokerConfig, UserConfig};
use crate::connection::ConnectionHandle;
use crate::error::{AmqpError, AmqpResult};
use crate::stats::BrokerStats;
use crate::vhost::VHost;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: RwLock<HashMap<String, UserConfig>>,
    connections: Mutex<HashMap<u64, Arc<ConnectionHandle>>>,
    auth_failures: Mutex<crate::auth::FailureWindow>,
    next_connection_id: AtomicU64,
    shutting_down: AtomicBool,
    pub started_at: Instant,
    /// Lifecycle counters and the retired totals of closed channels.
    pub stats: Arc<BrokerStats>,
    /// The metrics core's time series, written by the sampler, read by the HTTP API.
    pub metrics: crate::sampler::MetricsHub,
}

/// Why a login was refused; the client only ever sees ACCESS_REFUSED.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    UnknownUser,
    BadPassword,
    LoopbackOnly,
}

impl Broker {
    pub fn new(config: BrokerConfig) -> Arc<Self> {
        let stats = Arc::new(BrokerStats::default());
        let vhosts = config
            .vhosts
            .iter()
            .map(|v| {
                let vh = VHost::new(v, stats.clone());
                vh.set_max_queues(config.max_queues_per_vhost);
                (v.clone(), Arc::new(vh))
            })
            .collect();
        let metrics = crate::sampler::MetricsHub::new(config.metrics);
        let users = config
            .users
            .iter()
            .map(|u| (u.name.clone(), u.clone()))
            .collect();
        Arc::new(Broker {
            config,
            vhosts: RwLock::new(vhosts),
            users: RwLock::new(users),
            connections: Mutex::new(HashMap::new()),
            auth_failures: Mutex::new(crate::auth::FailureWindow::default()),
            next_connection_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            started_at: Instant::now(),
            stats,
            metrics,
        })
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                let vh = VHost::new(name, self.stats.clone());
                vh.set_max_queues(self.config.max_queues_per_vhost);
                Arc::new(vh)
            })
            .clone()
    }

    /// Checks a user's password and where it may connect from.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<UserConfig, LoginError> {
        let users = self.users.read();
        let user = users.get(username).ok_or(LoginError::UnknownUser)?;
        if !constant_time_eq(user.password.as_bytes(), password.as_bytes()) {
            return Err(LoginError::BadPassword);
        }
        if self.config.loopback_users.iter().any(|u| u == username) && !peer.is_loopback() {
            return Err(LoginError::LoopbackOnly);
        }
        Ok(user.clone())
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Admits an authenticated connection at connection.open, unless the node's or the user's
    /// connection limit is reached (checked and counted under one lock, so concurrent opens
    /// cannot both slip under a limit). The refusal is RabbitMQ's 530 NOT_ALLOWED.
    pub(crate) fn register(&self, c: Arc<ConnectionHandle>, user: &str) -> AmqpResult<()> {
        let mut conns = self.connections.lock();
        let max = self.config.max_connections;
        if max != 0 && conns.len() >= max as usize {
            return Err(AmqpError::not_allowed(format!(
                "connection refused: node connection limit ({max}) is reached"
            )));
        }
        let per_user = self.config.max_connections_per_user;
        if per_user != 0 {
            let n = conns
                .values()
                .filter(|h| h.info.lock().user == user)
                .count();
            if n >= per_user as usize {
                return Err(AmqpError::not_allowed(format!(
                    "connection refused for user '{user}': user connection limit ({per_user}) is reached"
                )));
            }
        }
        self.stats.connections_opened.inc();
        conns.insert(c.id, c);
        Ok(())
    }

    /// Whether `peer` has used up its failed logins for the current minute.
    pub(crate) fn auth_throttled(&self, peer: IpAddr) -> bool {
        let limit = self.config.auth_failures_per_minute;
        limit != 0 && self.auth_failures.lock().count(peer, Instant::now()) >= limit
    }

    /// Counts a failed login from `peer`.
    pub(crate) fn auth_failed(&self, peer: IpAddr) {
        if self.config.auth_failures_per_minute != 0 {
            self.auth_failures.lock().record(peer, Instant::now());
        }
    }

    pub(crate) fn deregister(&self, id: u64) {
        if self.connections.lock().remove(&id).is_some() {
            self.stats.connections_closed.inc();
        }
    }

    pub fn connections(&self) -> Vec<Arc<ConnectionHandle>> {
        self.connections.lock().values().cloned().collect()
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Closes every connection with CONNECTION_FORCED (as RabbitMQ does on shutdown) and waits
    /// up to `grace` for them to go.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.shutting_down.store(true, Ordering::Release);
        for c in self.connections() {
            c.force_close("broker shutdown");
        }
        let deadline = Instant::now() + grace;
        while !self.connections.lock().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn guest_is_loopback_only_other_users_are_not() {
        let mut cfg = BrokerConfig::default();
        cfg.users.push(UserConfig {
            name: "app".into(),
            password: "pw".into(),
            tags: vec![],
        });
        let b = Broker::new(cfg);
        let lan = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            b.login("guest", "guest", lan).unwrap_err(),
            LoginError::LoopbackOnly
        );
        assert!(b.login("guest", "guest", lo).is_ok());
        assert!(b.login("app", "pw", lan).is_ok());
        assert_eq!(
            b.login("app", "nope", lo).unwrap_err(),
            LoginError::BadPassword
        );
        assert_eq!(
            b.login("who", "x", lo).unwrap_err(),
            LoginError::UnknownUser
        );
    }
}
