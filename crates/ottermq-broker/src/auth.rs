//! SASL mechanisms offered in connection.start: PLAIN and AMQPLAIN.

use ottermq_protocol::{FieldTable, LongStr};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_splits_on_nul() {
        let c = parse_response(b"PLAIN", &LongStr::from("\0guest\0secret")).unwrap();
        assert_eq!(c.username, "guest");
        assert_eq!(c.password, "secret");
        assert!(parse_response(b"PLAIN", &LongStr::from("guest")).is_none());
        assert!(parse_response(b"EXTERNAL", &LongStr::from("\0a\0b")).is_none());
    }
}
