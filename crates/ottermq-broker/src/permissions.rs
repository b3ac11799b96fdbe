//! Users, their tags and password hashes, and per-vhost permissions (configure, write, read
//! regular expressions), with RabbitMQ 3.10's semantics:
//!
//! - a permission regex is searched for in the resource name (`re:run` without anchors: users
//!   write `^...$` to anchor); an empty regex means `^$`, matching nothing but the empty name;
//! - the default exchange is checked as `amq.default`;
//! - a user may open a connection to a vhost when it has any permission entry there;
//! - password hashes are `base64(salt ++ H(salt ++ password))` with a 4-byte salt, H SHA-256
//!   (`rabbit_password_hashing_sha256`, the default) or SHA-512, so RabbitMQ's exported
//!   `password_hash` values load and ours load in RabbitMQ.
//!
//! The store is one `RwLock` read per check; checks happen on declares, binds, consume and get
//! (rare), while publishes are cached per channel (see `channel/publish.rs`): the exchange
//! permission in [`PermitCache`], the topic permission in [`TopicPermitCache`].

use crate::error::{AmqpError, AmqpResult};
use crate::store::users::{UserChange, UsersLog};
use crate::topic_permissions::TopicPermission;
use base64::Engine;
use parking_lot::RwLock;
use regex::Regex;
use sha2::{Digest, Sha256, Sha512};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// The three kinds of access RabbitMQ checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        }
    }
}

/// The hashing algorithm of a stored password hash (RabbitMQ's `hashing_algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// RabbitMQ's module name for it, as definitions files carry it.
    pub fn rabbit_name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rabbit_password_hashing_sha256" | "sha256" => Some(HashAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" | "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(password);
                h.finalize().to_vec()
            }
            HashAlgorithm::Sha512 => {
                let mut h = Sha512::new();
                h.update(salt);
                h.update(password);
                h.finalize().to_vec()
            }
        }
    }

    fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }
}

/// A password hash as RabbitMQ stores it: 4 bytes of salt then the digest of salt ++ password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    pub algorithm: HashAlgorithm,
    /// salt ++ digest; empty means the user has no password and cannot log in with one
    /// (RabbitMQ's passwordless users).
    pub bytes: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt (SHA-256, RabbitMQ's default).
    pub fn new(password: &str) -> Self {
        let salt: [u8; 4] = rand::random();
        let algorithm = HashAlgorithm::Sha256;
        let mut bytes = salt.to_vec();
        bytes.extend(algorithm.digest(&salt, password.as_bytes()));
        PasswordHash { algorithm, bytes }
    }

    /// Reads RabbitMQ's base64 `password_hash`; the empty string is a passwordless user.
    pub fn from_base64(algorithm: HashAlgorithm, b64: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        if !bytes.is_empty() && bytes.len() != 4 + algorithm.digest_len() {
            return None;
        }
        Some(PasswordHash { algorithm, bytes })
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    /// Whether `password` hashes to this (constant time in the digest).
    pub fn verify(&self, password: &str) -> bool {
        if self.bytes.len() < 4 {
            return false;
        }
        let (salt, want) = self.bytes.split_at(4);
        let got = self.algorithm.digest(salt, password.as_bytes());
        got.len() == want.len() && got.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    }
}

/// A user as the broker keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub hash: PasswordHash,
    /// Management tags: administrator, monitoring, management, policymaker (or none).
    pub tags: Vec<String>,
}

impl User {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// A user's permissions in one vhost: the three regexes as given and compiled.
#[derive(Debug, Clone)]
pub struct Permission {
    pub configure: String,
    pub write: String,
    pub read: String,
    compiled: [Regex; 3],
}

impl PartialEq for Permission {
    fn eq(&self, o: &Self) -> bool {
        self.configure == o.configure && self.write == o.write && self.read == o.read
    }
}

fn compile(re: &str) -> Result<Regex, String> {
    // RabbitMQ treats the empty regex as "^$" (nothing but the empty name).
    let src = if re.is_empty() { "^$" } else { re };
    Regex::new(src).map_err(|e| format!("invalid regular expression '{re}': {e}"))
}

impl Permission {
    /// Compiles the three regexes; the error names the bad one.
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, String> {
        Ok(Permission {
            compiled: [compile(configure)?, compile(write)?, compile(read)?],
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        })
    }

    /// Full access (`.*` for all three), what the configured users get on configured vhosts.
    /// Compiled once per process and cloned (a `Regex` clone shares its compiled program):
    /// compiling `.*` three times was most of `Broker::new`'s time (the `connection` fuzz
    /// target builds a broker per input; docs/SECURITY.md).
    pub fn all() -> Self {
        static ALL: std::sync::LazyLock<Permission> = std::sync::LazyLock::new(|| {
            Permission::new(".*", ".*", ".*").unwrap_or_else(|_| unreachable!(".* compiles"))
        });
        ALL.clone()
    }

    /// Whether `access` to a resource called `name` is allowed (unanchored search, as
    /// RabbitMQ's `re:run`).
    pub fn allows(&self, access: Access, name: &[u8]) -> bool {
        let re = &self.compiled[access as usize];
        match std::str::from_utf8(name) {
            Ok(s) => re.is_match(s),
            // Names are UTF-8 on every client we know; a name that is not is refused.
            Err(_) => false,
        }
    }
}

/// The kind of resource in a refusal text, as RabbitMQ's `rabbit_misc:rs/1` writes it.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    Exchange,
    Queue,
}

/// The default exchange's name for permission checks.
pub const DEFAULT_EXCHANGE_ALIAS: &[u8] = b"amq.default";

#[derive(Debug, Default, Clone)]
struct Model {
    users: BTreeMap<String, User>,
    /// (vhost, user) -> permission.
    permissions: BTreeMap<(String, String), Arc<Permission>>,
    /// (vhost, user, exchange) -> topic permission.
    topic: BTreeMap<(String, String, String), Arc<TopicPermission>>,
    /// Users deleted (and not created again): a configured user deleted through the API stays
    /// deleted at the next start, as RabbitMQ's default user does once the database exists.
    deleted: BTreeSet<String>,
}

impl Model {
    fn apply(&mut self, c: UserChange) {
        match c {
            UserChange::PutUser(u) => {
                self.deleted.remove(&u.name);
                self.users.insert(u.name.clone(), u);
            }
            UserChange::DeleteUser(name) => {
                self.users.remove(&name);
                self.permissions.retain(|(_, u), _| *u != name);
                self.topic.retain(|(_, u, _), _| *u != name);
                self.deleted.insert(name);
            }
            UserChange::SetPermission { vhost, user, perm } => {
                self.permissions.insert((vhost, user), Arc::new(perm));
            }
            UserChange::ClearPermission { vhost, user } => {
                self.permissions.remove(&(vhost, user));
            }
            UserChange::DeleteVhost(vhost) => {
                self.permissions.retain(|(v, _), _| *v != vhost);
                self.topic.retain(|(v, _, _), _| *v != vhost);
            }
            UserChange::SetTopicPermission { vhost, user, perm } => {
                let key = (vhost, user, perm.exchange.clone());
                self.topic.insert(key, Arc::new(perm));
            }
            UserChange::ClearTopicPermission {
                vhost,
                user,
                exchange,
            } => self.topic.retain(|(v, u, x), _| {
                !(*v == vhost && *u == user && exchange.as_ref().is_none_or(|e| e == x))
            }),
        }
    }

    fn changes(&self) -> Vec<UserChange> {
        let mut out: Vec<UserChange> = self
            .users
            .values()
            .cloned()
            .map(UserChange::PutUser)
            .collect();
        for ((vhost, user), perm) in &self.permissions {
            out.push(UserChange::SetPermission {
                vhost: vhost.clone(),
                user: user.clone(),
                perm: (**perm).clone(),
            });
        }
        for ((vhost, user, _), perm) in &self.topic {
            out.push(UserChange::SetTopicPermission {
                vhost: vhost.clone(),
                user: user.clone(),
                perm: (**perm).clone(),
            });
        }
        out.extend(self.deleted.iter().cloned().map(UserChange::DeleteUser));
        out
    }
}

/// Users and permissions, stored in `users.log` when the broker has a data directory.
#[derive(Debug)]
pub struct UserStore {
    model: RwLock<Model>,
    log: Option<UsersLog>,
    /// Orders changes: held while one is recorded and applied, so the log's order is the
    /// model's, without holding the model's lock (which every check reads) during the fsync.
    writer: parking_lot::Mutex<()>,
    /// Some topic permission exists (lets publishes skip the look-up while none does).
    any_topic: std::sync::atomic::AtomicBool,
    /// Bumped by every change that can alter a topic permission (set, clear, user or vhost
    /// deleted), so channels' [`TopicPermitCache`]s see it with one relaxed load per publish.
    topic_generation: std::sync::atomic::AtomicU64,
}

impl UserStore {
    /// An in-memory store holding `seed`.
    pub fn in_memory(seed: impl IntoIterator<Item = UserChange>) -> Self {
        let mut model = Model::default();
        for c in seed {
            model.apply(c);
        }
        UserStore {
            model: RwLock::new(model),
            log: None,
            writer: Default::default(),
            any_topic: Default::default(),
            topic_generation: Default::default(),
        }
        .with_topic_flag()
    }

    /// Opens the store under `data_dir`. On first start (no log yet) `seed` fills it; later
    /// starts apply only those seed users (with their permissions) that the store does not
    /// know, so a password changed through the API is kept.
    pub fn open(
        data_dir: &Path,
        seed: Vec<UserChange>,
        issues: &mut Vec<crate::store::recovery::Issue>,
    ) -> std::io::Result<Self> {
        let (recovered, fresh) = UsersLog::replay(data_dir, issues)?;
        let mut model = Model::default();
        for c in recovered {
            model.apply(c);
        }
        // A configured user is added when the log does not know it: neither present (its
        // password may have been changed through the API) nor deleted through the API.
        let known: BTreeSet<String> = model
            .users
            .keys()
            .chain(model.deleted.iter())
            .cloned()
            .collect();
        for c in seed {
            let take = fresh
                || match &c {
                    UserChange::PutUser(u) => !known.contains(&u.name),
                    UserChange::SetPermission { user, .. } => !known.contains(user),
                    _ => false,
                };
            if take {
                model.apply(c);
            }
        }
        let log = UsersLog::rewrite(data_dir, &model.changes())?;
        Ok(UserStore {
            model: RwLock::new(model),
            log: Some(log),
            writer: Default::default(),
            any_topic: Default::default(),
            topic_generation: Default::default(),
        }
        .with_topic_flag())
    }

    fn with_topic_flag(self) -> Self {
        let any = !self.model.read().topic.is_empty();
        self.any_topic
            .store(any, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Applies a change and, when stored, records it (synced before returning).
    pub fn change(&self, c: UserChange) {
        let _order = self.writer.lock();
        if let Some(log) = &self.log {
            log.record(&c);
        }
        let topic = matches!(
            c,
            UserChange::SetTopicPermission { .. }
                | UserChange::ClearTopicPermission { .. }
                | UserChange::DeleteUser(_)
                | UserChange::DeleteVhost(_)
        );
        let mut m = self.model.write();
        m.apply(c);
        self.any_topic
            .store(!m.topic.is_empty(), std::sync::atomic::Ordering::Relaxed);
        if topic {
            // Under the write lock: a channel that sees the new generation takes the read
            // lock after this one is released, so it reads the new entries.
            self.topic_generation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether any topic permission exists (one relaxed load).
    pub fn any_topic_permission(&self) -> bool {
        self.any_topic.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes whenever a topic permission may have changed (one relaxed load).
    pub fn topic_generation(&self) -> u64 {
        self.topic_generation
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.model.read().users.get(name).cloned()
    }

    pub fn users(&self) -> Vec<User> {
        self.model.read().users.values().cloned().collect()
    }

    pub fn permission(&self, vhost: &str, user: &str) -> Option<Arc<Permission>> {
        self.model
            .read()
            .permissions
            .get(&(vhost.to_string(), user.to_string()))
            .cloned()
    }

    /// The user's topic permission for `exchange` in `vhost`. Costs one relaxed load, no
    /// lock, while no topic permission exists anywhere (the common case, checked per publish
    /// to a topic exchange).
    pub fn topic_permission(
        &self,
        vhost: &str,
        user: &str,
        exchange: &[u8],
    ) -> Option<Arc<TopicPermission>> {
        if !self.any_topic.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let exchange = std::str::from_utf8(exchange).ok()?;
        self.model
            .read()
            .topic
            .get(&(vhost.to_string(), user.to_string(), exchange.to_string()))
            .cloned()
    }

    /// Every (vhost, user, topic permission), ordered by vhost, user, exchange.
    pub fn topic_permissions(&self) -> Vec<(String, String, Arc<TopicPermission>)> {
        self.model
            .read()
            .topic
            .iter()
            .map(|((v, u, _), p)| (v.clone(), u.clone(), p.clone()))
            .collect()
    }

    /// Every (vhost, user, permission), ordered by vhost then user.
    pub fn permissions(&self) -> Vec<(String, String, Arc<Permission>)> {
        self.model
            .read()
            .permissions
            .iter()
            .map(|((v, u), p)| (v.clone(), u.clone(), p.clone()))
            .collect()
    }
}

/// Checks `access` to a resource for a user, with RabbitMQ's refusal text
/// (`configure access to queue 'q' in vhost '/' refused for user 'u'`).
pub fn check(
    perm: Option<&Permission>,
    access: Access,
    kind: Resource,
    name: &[u8],
    vhost: &str,
    user: &str,
) -> Result<(), AmqpError> {
    let name = match kind {
        Resource::Exchange if name.is_empty() => DEFAULT_EXCHANGE_ALIAS,
        _ => name,
    };
    if perm.is_some_and(|p| p.allows(access, name)) {
        return Ok(());
    }
    let kind = match kind {
        Resource::Exchange => "exchange",
        Resource::Queue => "queue",
    };
    Err(AmqpError::access_refused(format!(
        "{} access to {kind} '{}' in vhost '{vhost}' refused for user '{user}'",
        access.as_str(),
        String::from_utf8_lossy(name)
    )))
}

/// The extra checks for declaring a new queue with `x-dead-letter-exchange`, as RabbitMQ 3.10's
/// `rabbit_amqqueue:check_dlxname_arg` asks for: read on the queue (dead-lettering reads it)
/// and write on the dead-letter exchange. Shared by queue.declare and the management API's
/// `PUT /api/queues`; a redeclare of an existing queue is not checked again.
pub fn check_dead_letter(
    perm: Option<&Permission>,
    arguments: &ottermq_protocol::FieldTable,
    queue: &[u8],
    vhost: &str,
    user: &str,
) -> Result<(), AmqpError> {
    let Some(dlx) = arguments
        .get("x-dead-letter-exchange")
        .and_then(|x| x.as_str_bytes())
    else {
        return Ok(());
    };
    check(perm, Access::Read, Resource::Queue, queue, vhost, user)?;
    check(perm, Access::Write, Resource::Exchange, dlx, vhost, user)
}

impl crate::channel::ConnCtx {
    /// Checks the connection's user for `access` to a resource of this vhost (403 on refusal).
    pub(crate) fn authorize(&self, access: Access, kind: Resource, name: &[u8]) -> AmqpResult<()> {
        let perm = self.broker.users.permission(&self.vhost.name, &self.user);
        check(
            perm.as_deref(),
            access,
            kind,
            name,
            &self.vhost.name,
            &self.user,
        )
    }

    /// Topic permission for routing key `key` on topic exchange `exchange` (callers check
    /// the exchange type): nothing to look up while no topic permission exists.
    pub(crate) fn authorize_topic(
        &self,
        access: Access,
        exchange: &ottermq_protocol::ShortStr,
        key: &[u8],
    ) -> AmqpResult<()> {
        let perm =
            self.broker
                .users
                .topic_permission(&self.vhost.name, &self.user, exchange.as_bytes());
        crate::topic_permissions::check(
            perm.as_deref(),
            access,
            exchange.as_bytes(),
            key,
            &self.vhost.name,
            &self.user,
        )
    }

    /// [`check_dead_letter`] for this connection's user.
    pub(crate) fn authorize_dead_letter(
        &self,
        arguments: &ottermq_protocol::FieldTable,
        queue: &[u8],
    ) -> AmqpResult<()> {
        let perm = self.broker.users.permission(&self.vhost.name, &self.user);
        check_dead_letter(
            perm.as_deref(),
            arguments,
            queue,
            &self.vhost.name,
            &self.user,
        )
    }
}

/// Exchange names a channel has been allowed to publish to, most recent first, at most
/// [`PermitCache::SIZE`] (RabbitMQ keeps 12 checks per channel). Only grants are cached.
#[derive(Debug, Default)]
pub struct PermitCache {
    names: Vec<ottermq_protocol::ShortStr>,
}

impl PermitCache {
    pub const SIZE: usize = 12;

    /// Whether `name` was allowed before; otherwise checks it and remembers a grant.
    pub(crate) fn check_write(
        &mut self,
        ctx: &crate::channel::ConnCtx,
        name: &ottermq_protocol::ShortStr,
    ) -> AmqpResult<()> {
        if self.names.iter().any(|n| n == name) {
            return Ok(());
        }
        ctx.authorize(Access::Write, Resource::Exchange, name.as_bytes())?;
        if self.names.len() >= Self::SIZE {
            self.names.pop();
        }
        self.names.insert(0, name.clone());
        Ok(())
    }
}

/// The topic permission entries (or their absence) a channel has looked up, per exchange,
/// most recent first, at most [`TopicPermitCache::SIZE`], so a publish to a topic exchange
/// reads no lock once any topic permission exists: a hit compares the exchange name and runs
/// the cached compiled regex on the routing key, with no allocation. Unlike [`PermitCache`]
/// it is emptied whenever [`UserStore::topic_generation`] moves, so a topic permission set or
/// removed through the API applies to the very next publish of every open channel.
#[derive(Debug, Default)]
pub struct TopicPermitCache {
    generation: u64,
    entries: Vec<(
        ottermq_protocol::ShortStr,
        Option<Arc<crate::topic_permissions::TopicPermission>>,
    )>,
}

impl TopicPermitCache {
    pub const SIZE: usize = 12;

    /// Write permission for routing key `key` on topic exchange `exchange` (callers check the
    /// exchange type), for `user` in `vhost`, with RabbitMQ's 403 on refusal.
    pub fn check_write(
        &mut self,
        users: &UserStore,
        vhost: &str,
        user: &str,
        exchange: &ottermq_protocol::ShortStr,
        key: &[u8],
    ) -> AmqpResult<()> {
        if !users.any_topic_permission() {
            return Ok(());
        }
        // Read before the look-up: a change after it bumps the generation again, so an entry
        // read here is never kept past a newer change.
        let generation = users.topic_generation();
        if generation != self.generation {
            self.entries.clear();
            self.generation = generation;
        }
        let i = match self.entries.iter().position(|(n, _)| n == exchange) {
            Some(i) => i,
            None => {
                let perm = users.topic_permission(vhost, user, exchange.as_bytes());
                if self.entries.len() >= Self::SIZE {
                    self.entries.pop();
                }
                self.entries.insert(0, (exchange.clone(), perm));
                0
            }
        };
        crate::topic_permissions::check(
            self.entries[i].1.as_deref(),
            Access::Write,
            exchange.as_bytes(),
            key,
            vhost,
            user,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_store() -> UserStore {
        let perm = TopicPermission::new("amq.topic", "^u\\.", ".*", "u", "/").expect("regexes");
        UserStore::in_memory([UserChange::SetTopicPermission {
            vhost: "/".into(),
            user: "u".into(),
            perm,
        }])
    }

    #[test]
    fn topic_cache_hits_take_no_lock_and_follow_changes() {
        let store = std::sync::Arc::new(topic_store());
        let x = ottermq_protocol::ShortStr::from("amq.topic");
        let mut cache = TopicPermitCache::default();
        assert!(cache.check_write(&store, "/", "u", &x, b"u.a").is_ok());
        assert_eq!(
            cache
                .check_write(&store, "/", "u", &x, b"v.a")
                .map_err(|e| e.code),
            Err(403)
        );
        // A hit while a writer holds the store's lock: answered from the cache.
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = store.model.write();
        let s = store.clone();
        let x2 = x.clone();
        let t = std::thread::spawn(move || {
            let ok = cache.check_write(&s, "/", "u", &x2, b"u.b").is_ok();
            let _ = tx.send(ok);
            cache
        });
        let hit = rx.recv_timeout(std::time::Duration::from_secs(5));
        drop(writer);
        assert_eq!(hit, Ok(true), "a cache hit waited for the store's lock");
        let mut cache = t.join().expect("thread");
        // Replaced: the next check sees the new regex, not the cached one.
        store.change(UserChange::SetTopicPermission {
            vhost: "/".into(),
            user: "u".into(),
            perm: TopicPermission::new("amq.topic", "^v\\.", ".*", "u", "/").expect("re"),
        });
        assert!(cache.check_write(&store, "/", "u", &x, b"u.a").is_err());
        assert!(cache.check_write(&store, "/", "u", &x, b"v.a").is_ok());
        // Removed: everything is allowed again.
        store.change(UserChange::ClearTopicPermission {
            vhost: "/".into(),
            user: "u".into(),
            exchange: None,
        });
        assert!(cache.check_write(&store, "/", "u", &x, b"u.a").is_ok());
    }

    #[test]
    fn rabbitmq_hash_of_guest_verifies() {
        // RabbitMQ's layout, computed independently (Python hashlib): salt 908e2b21,
        // base64(salt ++ sha256(salt ++ "guest")).
        let h = PasswordHash::from_base64(
            HashAlgorithm::Sha256,
            "kI4rIVshA/sDT+L+ElYhgBMbiqM30ZGIhCB6KwYdGaW20+nx",
        )
        .unwrap();
        assert!(h.verify("guest"));
        assert!(!h.verify("guesT"));
        let ours = PasswordHash::new("pw");
        assert!(ours.verify("pw"));
        let back = PasswordHash::from_base64(HashAlgorithm::Sha256, &ours.to_base64()).unwrap();
        assert_eq!(back, ours);
        assert!(PasswordHash::from_base64(HashAlgorithm::Sha256, "AAAA").is_none());
    }

    #[test]
    fn regexes_are_searched_unanchored_and_empty_means_nothing() {
        let p = Permission::new("^app-", "orders", "").unwrap();
        assert!(p.allows(Access::Configure, b"app-q"));
        assert!(!p.allows(Access::Configure, b"my-app-q"));
        assert!(p.allows(Access::Write, b"my-orders-x"));
        assert!(!p.allows(Access::Read, b"anything"));
        assert!(Permission::new("(", ".*", ".*").is_err());
        let e = check(Some(&p), Access::Write, Resource::Exchange, b"", "/", "u").unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - write access to exchange 'amq.default' in vhost '/' refused for user 'u'"
        );
    }
}
