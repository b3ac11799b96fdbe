//! SASL mechanisms offered in connection.start: PLAIN and AMQPLAIN.

use ottermq_protocol::{FieldTable, LongStr};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Credentials pulled out of a connection.start-ok response.
#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

pub const MECHANISMS: &str = "PLAIN AMQPLAIN";

/// Decodes the response for `mechanism`; None when it is malformed or the mechanism unknown.
pub fn parse_response(mechanism: &[u8], response: &LongStr) -> Option<Credentials> {
    match mechanism {
        b"PLAIN" => parse_plain(response.as_bytes()),
        b"AMQPLAIN" => parse_amqplain(response.as_bytes()),
        _ => None,
    }
}

/// PLAIN: `authzid NUL authcid NUL password`.
fn parse_plain(b: &[u8]) -> Option<Credentials> {
    let mut parts = b.split(|c| *c == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Credentials {
        username: String::from_utf8(user.to_vec()).ok()?,
        password: String::from_utf8(pass.to_vec()).ok()?,
    })
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(b: &[u8]) -> Option<Credentials> {
    let mut framed = Vec::with_capacity(b.len() + 4);
    framed.extend_from_slice(&(b.len() as u32).to_be_bytes());
    framed.extend_from_slice(b);
    let table = FieldTable::decode(framed.into()).ok()?;
    let get = |k: &str| {
        table
            .get(k)
            .and_then(|v| v.as_str_bytes())
            .and_then(|s| String::from_utf8(s.to_vec()).ok())
    };
    Some(Credentials {
        username: get("LOGIN")?,
        password: get("PASSWORD")?,
    })
}

/// Failed logins per peer address over a fixed window (a minute unless configured), so a
/// password-guessing client is cut off after a few tries while other peers are unaffected.
#[derive(Debug)]
pub struct FailureWindow {
    peers: HashMap<IpAddr, (Instant, u32)>,
    window: Duration,
}

impl Default for FailureWindow {
    fn default() -> Self {
        FailureWindow::new(Self::WINDOW)
    }
}

impl FailureWindow {
    /// The window a failure count lasts by default (the limit is per minute).
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// Entries kept before expired ones are swept, so a flood of addresses cannot grow it.
    const SWEEP_AT: usize = 4096;

    /// Counts that last `window` from a peer's first failure in it.
    pub fn new(window: Duration) -> Self {
        FailureWindow {
            peers: HashMap::new(),
            window,
        }
    }

    /// Failures `peer` made in its current window.
    pub fn count(&self, peer: IpAddr, now: Instant) -> u32 {
        match self.peers.get(&peer) {
            Some((start, n)) if now.duration_since(*start) < self.window => *n,
            _ => 0,
        }
    }

    pub fn record(&mut self, peer: IpAddr, now: Instant) {
        let window = self.window;
        if self.peers.len() >= Self::SWEEP_AT {
            self.peers
                .retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let e = self.peers.entry(peer).or_insert((now, 0));
        if now.duration_since(e.0) >= window {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_window_counts_per_peer_and_expires() {
        let mut w = FailureWindow::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            w.record(a, t0);
        }
        assert_eq!(w.count(a, t0), 3);
        assert_eq!(w.count(b, t0), 0);
        let later = t0 + FailureWindow::WINDOW;
        assert_eq!(w.count(a, later), 0);
        w.record(a, later);
        assert_eq!(w.count(a, later), 1);
    }

    #[test]
    fn plain_splits_on_nul() {
        let c = parse_response(b"PLAIN", &LongStr::from("\0guest\0secret")).unwrap();
        assert_eq!(c.username, "guest");
        assert_eq!(c.password, "secret");
        assert!(parse_response(b"PLAIN", &LongStr::from("guest")).is_none());
        assert!(parse_response(b"EXTERNAL", &LongStr::from("\0a\0b")).is_none());
    }
}
