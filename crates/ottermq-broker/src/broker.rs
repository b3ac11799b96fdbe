//! The broker: vhosts, users and the registry of live connections.

use crate::config::BrokerConfig;
use crate::connection::ConnectionHandle;
use crate::error::{AmqpError, AmqpResult};
use crate::stats::BrokerStats;
use crate::vhost::VHost;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    /// Users, tags and per-vhost permissions (stored when the broker has a data directory).
    pub users: crate::permissions::UserStore,
    connections: Mutex<HashMap<u64, Arc<ConnectionHandle>>>,
    auth_failures: Mutex<crate::auth::FailureWindow>,
    next_connection_id: AtomicU64,
    shutting_down: AtomicBool,
    pub started_at: Instant,
    /// Lifecycle counters and the retired totals of closed channels.
    pub stats: Arc<BrokerStats>,
    /// The metrics core's time series, written by the sampler, read by the HTTP API.
    pub metrics: crate::sampler::MetricsHub,
    /// Where durable state lives; None for an in-memory broker (`Broker::new`).
    pub data_dir: Option<PathBuf>,
    /// Memory alarm: true while queued message bytes are above the high watermark.
    alarm: tokio::sync::watch::Sender<bool>,
    /// Direct reply-to consumers of every vhost: a reply may be published in any vhost, as
    /// in RabbitMQ, whose reply names encode the requesting channel, not its vhost.
    pub reply_to: crate::channel::reply_to::Registry,
}

/// What recovery found at start.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub vhosts: usize,
    pub queues: usize,
    pub messages: u64,
    /// Damage found (torn tails truncated, corrupt records skipped), each with file and offset.
    pub issues: Vec<crate::store::recovery::Issue>,
    pub elapsed: std::time::Duration,
}

/// Why a login was refused; the client only ever sees ACCESS_REFUSED.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    UnknownUser,
    BadPassword,
    LoopbackOnly,
    /// The address used up its failed logins (`auth_failures_per_minute`); the password was
    /// not checked.
    Throttled,
    /// The credentials could not be read (an HTTP `Authorization` header that is not valid
    /// Basic: wrong scheme, bad base64, not UTF-8, no colon). Counted like a wrong password,
    /// so malformed requests cannot probe past the limit.
    Malformed,
}

impl LoginError {
    /// The reason written to the broker's log (never to the client).
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::UnknownUser => "user unknown",
            LoginError::BadPassword => "invalid credentials",
            LoginError::LoopbackOnly => "user may only connect via localhost",
            LoginError::Throttled => "too many failed logins from this address",
            LoginError::Malformed => "malformed credentials",
        }
    }
}

pub use crate::stats::AuthProtocol;

impl Broker {
    pub fn new(config: BrokerConfig) -> Arc<Self> {
        let stats = Arc::new(BrokerStats::default());
        let vhosts = config
            .vhosts
            .iter()
            .map(|v| {
                let vh = VHost::new(v, stats.clone());
                vh.set_max_queues(config.max_queues_per_vhost);
                vh.set_page_budget(config.queue_memory_budget_bytes);
                (v.clone(), vh)
            })
            .collect();
        let metrics = crate::sampler::MetricsHub::new(config.metrics);
        let users = crate::permissions::UserStore::in_memory(seed_users(&config));
        let failure_window = config.auth_failure_window;
        Arc::new(Broker {
            config,
            vhosts: RwLock::new(vhosts),
            users,
            connections: Mutex::new(HashMap::new()),
            auth_failures: Mutex::new(crate::auth::FailureWindow::new(failure_window)),
            next_connection_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            started_at: Instant::now(),
            stats,
            metrics,
            data_dir: None,
            alarm: tokio::sync::watch::channel(false).0,
            reply_to: Default::default(),
        })
    }

    /// A broker whose durable state lives in `data_dir`: stored vhosts, their durable
    /// definitions and persistent messages are recovered before it returns.
    pub fn open(
        config: BrokerConfig,
        data_dir: &Path,
    ) -> std::io::Result<(Arc<Self>, RecoveryReport)> {
        let started = Instant::now();
        std::fs::create_dir_all(data_dir)?;
        let mut names = config.vhosts.clone();
        for n in crate::store::stored_vhosts(data_dir)? {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let stats = Arc::new(BrokerStats::default());
        let mut report = RecoveryReport::default();
        let mut vhosts = HashMap::new();
        for name in names {
            let v = recover_vhost(&config, data_dir, &name, &stats, &mut report)?;
            vhosts.insert(name, v);
        }
        report.vhosts = vhosts.len();
        let metrics = crate::sampler::MetricsHub::new(config.metrics);
        let users =
            crate::permissions::UserStore::open(data_dir, seed_users(&config), &mut report.issues)?;
        report.elapsed = started.elapsed();
        let failure_window = config.auth_failure_window;
        Ok((
            Arc::new(Broker {
                config,
                vhosts: RwLock::new(vhosts),
                users,
                connections: Mutex::new(HashMap::new()),
                auth_failures: Mutex::new(crate::auth::FailureWindow::new(failure_window)),
                next_connection_id: AtomicU64::new(1),
                shutting_down: AtomicBool::new(false),
                started_at: Instant::now(),
                stats,
                metrics,
                data_dir: Some(data_dir.to_path_buf()),
                alarm: tokio::sync::watch::channel(false).0,
                reply_to: Default::default(),
            }),
            report,
        ))
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    /// Adds a vhost (stored, when the broker has a data directory).
    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        if let Some(v) = self.vhost(name) {
            return v;
        }
        let store = self.data_dir.as_ref().and_then(|dir| {
            let mut issues = Vec::new();
            match crate::store::open_vhost(dir, name, self.config.segment_bytes, &mut issues) {
                Ok(o) => Some(o.store),
                Err(e) => {
                    tracing::error!(vhost = name, error = %e, "could not create the vhost's store; it will not be durable");
                    None
                }
            }
        });
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                let vh = VHost::with_store(name, self.stats.clone(), store);
                vh.set_max_queues(self.config.max_queues_per_vhost);
                vh.set_page_budget(self.config.queue_memory_budget_bytes);
                vh
            })
            .clone()
    }

    /// Checks a user's password and where it may connect from.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<crate::permissions::User, LoginError> {
        let user = self.users.user(username).ok_or(LoginError::UnknownUser)?;
        if !user.hash.verify(password) {
            return Err(LoginError::BadPassword);
        }
        if self.config.loopback_users.iter().any(|u| u == username) && !peer.is_loopback() {
            return Err(LoginError::LoopbackOnly);
        }
        Ok(user)
    }

    /// Removes a vhost: its connections are closed (320 CONNECTION_FORCED, as RabbitMQ does),
    /// its queues and exchanges dropped, its permissions cleared and its directory removed.
    /// False when there was no such vhost.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let Some(v) = self.vhosts.write().remove(name) else {
            return false;
        };
        for c in self.connections() {
            if c.info.lock().vhost == name {
                c.force_close(&format!("vhost '{name}' is deleted"));
            }
        }
        for q in v.queues() {
            v.delete_queue_and_cancel(&q);
        }
        self.users
            .change(crate::store::users::UserChange::DeleteVhost(
                name.to_string(),
            ));
        if let (Some(dir), Some(store)) = (&self.data_dir, &v.store) {
            store.log.close();
            let vdir = crate::store::vhost_dir(dir, name);
            if let Err(e) = std::fs::remove_dir_all(&vdir) {
                tracing::error!(vhost = name, error = %e, "could not remove a deleted vhost's directory");
            }
        }
        true
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

    /// A login over AMQP or HTTP basic auth, the one path both take so that both share the
    /// per-address limit and the failure counter: refused without checking the password once
    /// `peer` has used up `auth_failures_per_minute`; every refusal is counted in
    /// `stats.auth_failures` and logged with its reason (the caller tells the client nothing).
    pub fn authenticate(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
        protocol: AuthProtocol,
    ) -> Result<crate::permissions::User, LoginError> {
        self.count_login(username, peer, protocol, || {
            self.login(username, password, peer)
        })
    }

    /// Refuses credentials that could not even be read (`LoginError::Malformed`), counted,
    /// limited and logged as [`Broker::authenticate`] does a wrong password.
    pub fn refuse_malformed(&self, peer: IpAddr, protocol: AuthProtocol) -> LoginError {
        self.count_login("", peer, protocol, || Err(LoginError::Malformed))
            .err()
            .unwrap_or(LoginError::Malformed)
    }

    fn count_login(
        &self,
        username: &str,
        peer: IpAddr,
        protocol: AuthProtocol,
        check: impl FnOnce() -> Result<crate::permissions::User, LoginError>,
    ) -> Result<crate::permissions::User, LoginError> {
        let limit = self.config.auth_failures_per_minute;
        let result = if limit != 0 && self.auth_failures.lock().count(peer, Instant::now()) >= limit
        {
            Err(LoginError::Throttled)
        } else {
            check()
        };
        if let Err(why) = &result {
            self.stats.auth_failed(protocol).inc();
            if limit != 0 && *why != LoginError::Throttled {
                self.auth_failures.lock().record(peer, Instant::now());
            }
            tracing::warn!(
                %peer,
                protocol = protocol.label(),
                user = %username,
                reason = why.reason(),
                "login refused"
            );
        }
        result
    }

    pub(crate) fn deregister(&self, id: u64) {
        if self.connections.lock().remove(&id).is_some() {
            self.stats.connections_closed.inc();
        }
    }

    pub fn connections(&self) -> Vec<Arc<ConnectionHandle>> {
        self.connections.lock().values().cloned().collect()
    }

    /// Follows the memory alarm (publishing connections stop being read while it is on).
    pub fn memory_alarm(&self) -> tokio::sync::watch::Receiver<bool> {
        self.alarm.subscribe()
    }

    /// Bytes of ready message bodies held in RAM by all queues (paged-out ones not counted:
    /// the high watermark guards memory).
    pub fn queued_bytes(&self) -> u64 {
        self.vhosts()
            .iter()
            .flat_map(|v| v.queues())
            .map(|q| q.counts().ram_bytes)
            .sum()
    }

    /// Raises and clears the memory alarm against the high watermark, checking every 20 ms
    /// (off the hot path: no shared counter is touched per message). Ends when `stop` does.
    pub async fn watch_memory(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        let Some(limit) = self.config.memory_high_watermark_bytes else {
            return;
        };
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            let used = self.queued_bytes();
            let on = used > limit;
            if *self.alarm.borrow() != on {
                if on {
                    tracing::warn!(
                        used,
                        limit,
                        "memory high watermark reached, blocking publishers"
                    );
                } else {
                    tracing::info!(
                        used,
                        limit,
                        "memory below the high watermark, unblocking publishers"
                    );
                }
                self.alarm.send_replace(on);
            }
        }
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
        // Last: what the closing connections settled is written before the logs stop.
        let logs: Vec<_> = self
            .vhosts()
            .iter()
            .filter_map(|v| v.store.as_ref().map(|s| s.log.clone()))
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for l in logs {
                l.close();
            }
        })
        .await;
    }
}

/// Opens one vhost's store and rebuilds the vhost from it.
fn recover_vhost(
    config: &BrokerConfig,
    data_dir: &Path,
    name: &str,
    stats: &Arc<BrokerStats>,
    report: &mut RecoveryReport,
) -> std::io::Result<Arc<VHost>> {
    let opened =
        crate::store::open_vhost(data_dir, name, config.segment_bytes, &mut report.issues)?;
    let log = opened.store.log.clone();
    let v = VHost::with_store(name, stats.clone(), Some(opened.store));
    v.set_max_queues(config.max_queues_per_vhost);
    v.set_page_budget(config.queue_memory_budget_bytes);
    for e in opened.defs.exchanges {
        v.restore_exchange(e);
    }
    for q in opened.defs.queues {
        v.restore_queue(q);
        report.queues += 1;
    }
    for b in opened.defs.bindings {
        v.restore_binding(b);
    }
    // The second recovery pass: messages arrive one at a time in id order and go straight
    // into their queue, which pages what is past its RAM budget out to its spill file, so
    // memory stays bounded by the budgets, not the data. Consecutive messages for the same
    // queue go in together, at most RESTORE_BATCH at once.
    const RESTORE_BATCH: usize = 256;
    let now = Instant::now();
    let mut current: Option<Arc<crate::queue::Queue>> = None;
    let mut batch = Vec::with_capacity(RESTORE_BATCH);
    opened.recovered.messages(|m| {
        if current.as_ref().is_none_or(|q| q.name != m.queue) {
            if let Some(q) = current.take() {
                q.restore(batch.drain(..));
            }
            current = v.queue(m.queue.as_bytes());
        }
        let Some(q) = &current else {
            // Its queue is gone (deleted while the message was in it): reclaim it.
            log.settle(m.id);
            return;
        };
        report.messages += 1;
        let msg = crate::message::Message {
            exchange: m.exchange,
            routing_key: m.routing_key,
            properties: m.properties,
            body: m.body,
            received_at: now,
            // A recovered message's broker spans ended with the old process; its headers still
            // carry the producer's traceparent for the consumer.
            trace: None,
        };
        batch.push(crate::queue::Restored {
            message: msg,
            persist_id: m.id,
            redelivered: m.delivered,
            enqueued_ms: m.enqueued_ms,
            body_at: crate::message::BodyAt::Log {
                seg: crate::store::log::segment_of(m.id),
                offset: m.body_offset,
                ticket: 0,
            },
            returned: m.returned,
            out: m.out,
        });
        if batch.len() == RESTORE_BATCH {
            q.restore(batch.drain(..));
        }
    })?;
    if let Some(q) = current {
        q.restore(batch.drain(..));
    }
    for q in v.queues() {
        q.flush_dead();
    }
    Ok(v)
}

/// The configured users, hashed, each with full permissions (`.*`) on every configured
/// vhost, as RabbitMQ gives its default user on the default vhost.
fn seed_users(config: &BrokerConfig) -> Vec<crate::store::users::UserChange> {
    use crate::permissions::{PasswordHash, Permission, User};
    use crate::store::users::UserChange;
    let mut out = Vec::new();
    for u in &config.users {
        out.push(UserChange::PutUser(User {
            name: u.name.clone(),
            hash: PasswordHash::new(&u.password),
            tags: u.tags.clone(),
        }));
        for v in &config.vhosts {
            out.push(UserChange::SetPermission {
                vhost: v.clone(),
                user: u.name.clone(),
                perm: Permission::all(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;
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
