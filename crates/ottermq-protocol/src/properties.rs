//! Basic content properties: the full decoded form, and the raw wire form the broker keeps.
//!
//! The broker stores a message's properties exactly as received and writes them back verbatim
//! on delivery; routing needs only a few fields (delivery mode, priority, expiration, headers),
//! which `RawProperties` reads by walking the flags without decoding the rest.

use crate::codec::{Decoder, Encoder};
use crate::error::ProtocolError;
use crate::table::{FieldTable, ShortStr};
use bytes::{BufMut, Bytes, BytesMut};

/// Decoded basic properties.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    /// The `type` property.
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
}

/// The wire type of each property, in flag order (bit 15 first).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Short,
    Table,
    Octet,
    Timestamp,
}

const KINDS: [Kind; 14] = [
    Kind::Short,     // content_type
    Kind::Short,     // content_encoding
    Kind::Table,     // headers
    Kind::Octet,     // delivery_mode
    Kind::Octet,     // priority
    Kind::Short,     // correlation_id
    Kind::Short,     // reply_to
    Kind::Short,     // expiration
    Kind::Short,     // message_id
    Kind::Timestamp, // timestamp
    Kind::Short,     // type
    Kind::Short,     // user_id
    Kind::Short,     // app_id
    Kind::Short,     // cluster_id
];

const HEADERS: usize = 2;
const DELIVERY_MODE: usize = 3;
const PRIORITY: usize = 4;
const REPLY_TO: usize = 6;
const EXPIRATION: usize = 7;
const MESSAGE_ID: usize = 8;
const USER_ID: usize = 11;

fn flag(i: usize) -> u16 {
    1 << (15 - i)
}

impl BasicProperties {
    pub fn decode(raw: &Bytes) -> Result<Self, ProtocolError> {
        let mut d = Decoder::new(raw.clone());
        let flags = read_flags(&mut d)?;
        let mut p = BasicProperties::default();
        let has = |i: usize| flags & flag(i) != 0;
        macro_rules! short {
            ($i:expr, $f:ident) => {
                if has($i) {
                    p.$f = Some(d.shortstr()?);
                }
            };
        }
        short!(0, content_type);
        short!(1, content_encoding);
        if has(HEADERS) {
            p.headers = Some(d.table()?);
        }
        if has(DELIVERY_MODE) {
            p.delivery_mode = Some(d.octet()?);
        }
        if has(PRIORITY) {
            p.priority = Some(d.octet()?);
        }
        short!(5, correlation_id);
        short!(6, reply_to);
        short!(7, expiration);
        short!(8, message_id);
        if has(9) {
            p.timestamp = Some(d.u64()?);
        }
        short!(10, kind);
        short!(11, user_id);
        short!(12, app_id);
        short!(13, cluster_id);
        if d.remaining() != 0 {
            return Err(ProtocolError::syntax(
                "trailing bytes after content properties",
            ));
        }
        Ok(p)
    }

    /// Writes property flags and list (the part of a content header after body-size).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut flags = 0u16;
        let present = [
            self.content_type.is_some(),
            self.content_encoding.is_some(),
            self.headers.is_some(),
            self.delivery_mode.is_some(),
            self.priority.is_some(),
            self.correlation_id.is_some(),
            self.reply_to.is_some(),
            self.expiration.is_some(),
            self.message_id.is_some(),
            self.timestamp.is_some(),
            self.kind.is_some(),
            self.user_id.is_some(),
            self.app_id.is_some(),
            self.cluster_id.is_some(),
        ];
        for (i, p) in present.iter().enumerate() {
            if *p {
                flags |= flag(i);
            }
        }
        out.put_u16(flags);
        let mut e = Encoder::new(out);
        let s = |e: &mut Encoder, v: &Option<ShortStr>| {
            if let Some(v) = v {
                e.shortstr(v)
            }
        };
        s(&mut e, &self.content_type);
        s(&mut e, &self.content_encoding);
        if let Some(h) = &self.headers {
            e.table(h);
        }
        if let Some(v) = self.delivery_mode {
            e.octet(v);
        }
        if let Some(v) = self.priority {
            e.octet(v);
        }
        s(&mut e, &self.correlation_id);
        s(&mut e, &self.reply_to);
        s(&mut e, &self.expiration);
        s(&mut e, &self.message_id);
        if let Some(v) = self.timestamp {
            e.u64(v);
        }
        s(&mut e, &self.kind);
        s(&mut e, &self.user_id);
        s(&mut e, &self.app_id);
        s(&mut e, &self.cluster_id);
    }

    pub fn to_raw(&self) -> RawProperties {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        RawProperties(b.freeze())
    }
}

fn read_flags(d: &mut Decoder) -> Result<u16, ProtocolError> {
    let flags = d.u16()?;
    let mut more = flags & 1 != 0;
    // Continuation words carry no basic-class properties; skip them.
    while more {
        more = d.u16()? & 1 != 0;
    }
    Ok(flags & !1)
}

/// Property flags and list exactly as received. Cheap to clone (a `Bytes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawProperties(Bytes);

impl Default for RawProperties {
    fn default() -> Self {
        RawProperties::empty()
    }
}

impl RawProperties {
    pub fn new(b: Bytes) -> Self {
        RawProperties(b)
    }

    /// No properties: a zero flags word.
    pub fn empty() -> Self {
        RawProperties(Bytes::from_static(&[0, 0]))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Full structural check; done once when a content header arrives so the cheap accessors
    /// below can trust the layout.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        BasicProperties::decode(&self.0).map(|_| ())
    }

    pub fn decode(&self) -> Result<BasicProperties, ProtocolError> {
        BasicProperties::decode(&self.0)
    }

    /// Byte range of property `index` (value only, without a string's length octet).
    fn locate(&self, index: usize) -> Option<(usize, usize)> {
        let b = &self.0[..];
        if b.len() < 2 {
            return None;
        }
        let flags = u16::from_be_bytes([b[0], b[1]]);
        if flags & flag(index) == 0 {
            return None;
        }
        let mut pos = 2;
        let mut cont = flags & 1 != 0;
        while cont {
            let w = b.get(pos..pos + 2)?;
            cont = w[1] & 1 != 0;
            pos += 2;
        }
        for (i, kind) in KINDS.iter().enumerate().take(index + 1) {
            if flags & flag(i) == 0 {
                continue;
            }
            let (start, end) = match kind {
                Kind::Short => {
                    let n = *b.get(pos)? as usize;
                    (pos + 1, pos + 1 + n)
                }
                Kind::Table => {
                    let n = u32::from_be_bytes(b.get(pos..pos + 4)?.try_into().ok()?) as usize;
                    (pos, pos + 4 + n)
                }
                Kind::Octet => (pos, pos + 1),
                Kind::Timestamp => (pos, pos + 8),
            };
            if end > b.len() {
                return None;
            }
            if i == index {
                return Some((start, end));
            }
            pos = end;
        }
        None
    }

    fn octet(&self, index: usize) -> Option<u8> {
        self.locate(index).map(|(s, _)| self.0[s])
    }

    fn short(&self, index: usize) -> Option<&[u8]> {
        self.locate(index).map(|(s, e)| &self.0[s..e])
    }

    pub fn delivery_mode(&self) -> Option<u8> {
        self.octet(DELIVERY_MODE)
    }
    pub fn priority(&self) -> Option<u8> {
        self.octet(PRIORITY)
    }
    pub fn expiration(&self) -> Option<&[u8]> {
        self.short(EXPIRATION)
    }
    pub fn reply_to(&self) -> Option<&[u8]> {
        self.short(REPLY_TO)
    }
    pub fn message_id(&self) -> Option<&[u8]> {
        self.short(MESSAGE_ID)
    }
    pub fn user_id(&self) -> Option<&[u8]> {
        self.short(USER_ID)
    }
    pub fn has_headers(&self) -> bool {
        self.0.len() >= 2 && u16::from_be_bytes([self.0[0], self.0[1]]) & flag(HEADERS) != 0
    }
    /// Decodes the headers table (allocates); None when absent or malformed.
    pub fn headers(&self) -> Option<FieldTable> {
        let (s, e) = self.locate(HEADERS)?;
        FieldTable::decode(self.0.slice(s..e)).ok()
    }
}
