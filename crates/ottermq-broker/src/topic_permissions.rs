//! Topic permissions (RabbitMQ 3.10's `rabbit_auth_backend_internal` topic permissions): per
//! user, vhost and exchange, a write and a read regex over routing keys. They apply to topic
//! exchanges only: basic.publish needs write on the routing key, queue.bind / queue.unbind
//! (and exchange.bind / exchange.unbind with a topic source) read on the binding key. With no
//! entry for the (user, vhost, exchange) everything is allowed.
//!
//! `{username}` and `{vhost}` in a regex stand for the user's name and the vhost, as RabbitMQ
//! expands its variable map; both are fixed by the entry's key, so the expanded regexes are
//! compiled once when the entry is set, not per check. An empty regex means `^$`, as for
//! ordinary permissions; matching is an unanchored search, as `re:run`.

use crate::error::AmqpError;
use crate::permissions::Access;
use regex::Regex;

/// One topic permission entry: the regexes as given, and compiled after expansion.
#[derive(Debug, Clone)]
pub struct TopicPermission {
    pub exchange: String,
    pub write: String,
    pub read: String,
    compiled: [Regex; 2],
}

impl PartialEq for TopicPermission {
    fn eq(&self, o: &Self) -> bool {
        self.exchange == o.exchange && self.write == o.write && self.read == o.read
    }
}

fn compile(re: &str, user: &str, vhost: &str) -> Result<Regex, String> {
    let src = if re.is_empty() { "^$" } else { re };
    let expanded = src.replace("{username}", user).replace("{vhost}", vhost);
    Regex::new(&expanded).map_err(|e| format!("invalid regular expression '{re}': {e}"))
}

impl TopicPermission {
    /// The entry for `user` in `vhost`; the error names the bad regex.
    pub fn new(
        exchange: &str,
        write: &str,
        read: &str,
        user: &str,
        vhost: &str,
    ) -> Result<Self, String> {
        Ok(TopicPermission {
            compiled: [compile(write, user, vhost)?, compile(read, user, vhost)?],
            exchange: exchange.into(),
            write: write.into(),
            read: read.into(),
        })
    }

    /// Whether `access` (write or read) is allowed for `key`.
    pub fn allows(&self, access: Access, key: &[u8]) -> bool {
        let re = match access {
            Access::Write => &self.compiled[0],
            Access::Read => &self.compiled[1],
            Access::Configure => return true,
        };
        std::str::from_utf8(key).is_ok_and(|k| re.is_match(k))
    }
}

/// Checks `access` to routing key `key` on topic exchange `exchange`, with RabbitMQ's refusal:
/// `access to topic 'k' in exchange topic 'x' in vhost '/' refused for user 'u'`.
pub fn check(
    perm: Option<&TopicPermission>,
    access: Access,
    exchange: &[u8],
    key: &[u8],
    vhost: &str,
    user: &str,
) -> Result<(), AmqpError> {
    match perm {
        None => Ok(()),
        Some(p) if p.allows(access, key) => Ok(()),
        Some(_) => Err(AmqpError::access_refused(format!(
            "access to topic '{}' in exchange topic '{}' in vhost '{vhost}' refused for user \
             '{user}'",
            String::from_utf8_lossy(key),
            String::from_utf8_lossy(exchange)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_and_empty_means_nothing() {
        let p = TopicPermission::new("amq.topic", "^{username}\\.", "", "bob", "/").unwrap();
        assert!(p.allows(Access::Write, b"bob.orders"));
        assert!(!p.allows(Access::Write, b"alice.orders"));
        assert!(!p.allows(Access::Read, b"bob.orders"));
        assert!(p.allows(Access::Read, b"") || !p.allows(Access::Read, b"x"));
        let e = check(Some(&p), Access::Write, b"amq.topic", b"a.b", "/", "bob").unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - access to topic 'a.b' in exchange topic 'amq.topic' in vhost '/' \
             refused for user 'bob'"
        );
        assert!(check(None, Access::Write, b"amq.topic", b"x", "/", "bob").is_ok());
        assert!(TopicPermission::new("x", "(", ".*", "u", "/").is_err());
    }
}
