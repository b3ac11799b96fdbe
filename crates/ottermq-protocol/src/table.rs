//! AMQP strings and field tables, with every value type RabbitMQ's clients send.
//!
//! Strings are `Bytes`-backed so decoding a method slices the frame instead of copying it.
//! Type tags follow RabbitMQ's reading of the 0-9-1 errata (`s` is a signed 16-bit integer,
//! `x` a byte array), which is what pika, amqplib, lapin and the Java client all emit.

use crate::codec::{put_shortstr, Decoder};
use crate::error::ProtocolError;
use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of tables and arrays accepted; deeper input is refused rather than recursed.
pub const MAX_TABLE_DEPTH: usize = 32;

/// AMQP short string (at most 255 bytes). Not required to be UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ShortStr(Bytes);

impl ShortStr {
    /// From a static string; longer than 255 bytes is cut at 255.
    pub fn from_static(s: &'static str) -> Self {
        let b = s.as_bytes();
        ShortStr(Bytes::from_static(&b[..b.len().min(255)]))
    }

    /// From bytes; an error when longer than 255.
    pub fn from_bytes(b: Bytes) -> Result<Self, ProtocolError> {
        if b.len() > 255 {
            return Err(ProtocolError::syntax("short string longer than 255 bytes"));
        }
        Ok(ShortStr(b))
    }

    pub(crate) fn from_bytes_unchecked(b: Bytes) -> Self {
        ShortStr(b)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

fn truncate_utf8(s: &str) -> &str {
    if s.len() <= 255 {
        return s;
    }
    let mut end = 255;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        ShortStr(Bytes::copy_from_slice(truncate_utf8(s).as_bytes()))
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        if s.len() <= 255 {
            ShortStr(Bytes::from(s))
        } else {
            ShortStr::from(s.as_str())
        }
    }
}

impl std::borrow::Borrow<[u8]> for ShortStr {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// AMQP long string (32-bit length): opaque bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct LongStr(Bytes);

impl LongStr {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<&str> for LongStr {
    fn from(s: &str) -> Self {
        LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}
impl From<String> for LongStr {
    fn from(s: String) -> Self {
        LongStr(Bytes::from(s))
    }
}
impl From<Bytes> for LongStr {
    fn from(b: Bytes) -> Self {
        LongStr(b)
    }
}
impl From<Vec<u8>> for LongStr {
    fn from(b: Vec<u8>) -> Self {
        LongStr(Bytes::from(b))
    }
}

impl fmt::Debug for LongStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

/// One field-table value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    Decimal {
        scale: u8,
        value: u32,
    },
    LongStr(LongStr),
    /// Never produced by decoding (tag `s` is a 16-bit integer); encoded as a long string.
    ShortStr(ShortStr),
    Bytes(Bytes),
    Array(Vec<FieldValue>),
    Timestamp(u64),
    Table(FieldTable),
    Void,
}

impl FieldValue {
    /// The bytes of a string-like value (long string, short string, byte array).
    pub fn as_str_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(s) => Some(s.as_bytes()),
            FieldValue::ShortStr(s) => Some(s.as_bytes()),
            FieldValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Any integer value widened to i64 (u64 above i64::MAX gives None).
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(v) => v as i64,
            FieldValue::U8(v) => v as i64,
            FieldValue::I16(v) => v as i64,
            FieldValue::U16(v) => v as i64,
            FieldValue::I32(v) => v as i64,
            FieldValue::U32(v) => v as i64,
            FieldValue::I64(v) => v,
            FieldValue::U64(v) => return i64::try_from(v).ok(),
            _ => return None,
        })
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn decode(d: &mut Decoder, depth: usize) -> Result<FieldValue, ProtocolError> {
        let tag = d.octet()?;
        Ok(match tag {
            b't' => FieldValue::Bool(d.octet()? != 0),
            b'b' => FieldValue::I8(d.octet()? as i8),
            b'B' => FieldValue::U8(d.octet()?),
            b's' => FieldValue::I16(d.u16()? as i16),
            b'u' => FieldValue::U16(d.u16()?),
            b'I' => FieldValue::I32(d.u32()? as i32),
            b'i' => FieldValue::U32(d.u32()?),
            b'l' => FieldValue::I64(d.u64()? as i64),
            b'L' => FieldValue::U64(d.u64()?),
            b'f' => FieldValue::F32(f32::from_bits(d.u32()?)),
            b'd' => FieldValue::F64(f64::from_bits(d.u64()?)),
            b'D' => FieldValue::Decimal {
                scale: d.octet()?,
                value: d.u32()?,
            },
            b'S' => FieldValue::LongStr(d.longstr()?),
            b'x' => {
                let n = d.u32()? as usize;
                FieldValue::Bytes(d.bytes(n)?)
            }
            b'T' => FieldValue::Timestamp(d.u64()?),
            b'V' => FieldValue::Void,
            b'F' => {
                let n = d.u32()? as usize;
                FieldValue::Table(FieldTable::decode_body(d.bytes(n)?, depth + 1)?)
            }
            b'A' => {
                if depth + 1 > MAX_TABLE_DEPTH {
                    return Err(ProtocolError::syntax("field table nesting too deep"));
                }
                let n = d.u32()? as usize;
                let mut inner = Decoder::new(d.bytes(n)?);
                let mut items = Vec::new();
                while inner.remaining() > 0 {
                    items.push(FieldValue::decode(&mut inner, depth + 1)?);
                }
                FieldValue::Array(items)
            }
            other => {
                return Err(ProtocolError::syntax(format!(
                    "unknown field table value type '{}'",
                    other.escape_ascii()
                )))
            }
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        match self {
            FieldValue::Bool(v) => {
                out.put_u8(b't');
                out.put_u8(*v as u8);
            }
            FieldValue::I8(v) => {
                out.put_u8(b'b');
                out.put_i8(*v);
            }
            FieldValue::U8(v) => {
                out.put_u8(b'B');
                out.put_u8(*v);
            }
            FieldValue::I16(v) => {
                out.put_u8(b's');
                out.put_i16(*v);
            }
            FieldValue::U16(v) => {
                out.put_u8(b'u');
                out.put_u16(*v);
            }
            FieldValue::I32(v) => {
                out.put_u8(b'I');
                out.put_i32(*v);
            }
            FieldValue::U32(v) => {
                out.put_u8(b'i');
                out.put_u32(*v);
            }
            FieldValue::I64(v) => {
                out.put_u8(b'l');
                out.put_i64(*v);
            }
            FieldValue::U64(v) => {
                out.put_u8(b'L');
                out.put_u64(*v);
            }
            FieldValue::F32(v) => {
                out.put_u8(b'f');
                out.put_u32(v.to_bits());
            }
            FieldValue::F64(v) => {
                out.put_u8(b'd');
                out.put_u64(v.to_bits());
            }
            FieldValue::Decimal { scale, value } => {
                out.put_u8(b'D');
                out.put_u8(*scale);
                out.put_u32(*value);
            }
            FieldValue::LongStr(s) => {
                out.put_u8(b'S');
                out.put_u32(s.len() as u32);
                out.put_slice(s.as_bytes());
            }
            FieldValue::ShortStr(s) => {
                out.put_u8(b'S');
                out.put_u32(s.len() as u32);
                out.put_slice(s.as_bytes());
            }
            FieldValue::Bytes(b) => {
                out.put_u8(b'x');
                out.put_u32(b.len() as u32);
                out.put_slice(b);
            }
            FieldValue::Timestamp(v) => {
                out.put_u8(b'T');
                out.put_u64(*v);
            }
            FieldValue::Void => out.put_u8(b'V'),
            FieldValue::Table(t) => {
                out.put_u8(b'F');
                t.encode(out);
            }
            FieldValue::Array(items) => {
                out.put_u8(b'A');
                let at = out.len();
                out.put_u32(0);
                for v in items {
                    v.encode(out);
                }
                patch_len(out, at);
            }
        }
    }
}

fn patch_len(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// A field table, in the order it was received (RabbitMQ keeps order too). Lookups are
/// linear: tables are small, and a Vec costs one allocation where a map costs many.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing entry in place.
    pub fn insert(&mut self, key: impl Into<ShortStr>, v: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let pos = self
            .0
            .iter()
            .position(|(k, _)| k.as_bytes() == key.as_bytes())?;
        Some(self.0.remove(pos).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ShortStr, FieldValue)> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encoded size including the 4-byte length prefix.
    pub fn encoded_len(&self) -> usize {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.len()
    }

    /// Writes the table with its 4-byte length prefix.
    pub fn encode(&self, out: &mut BytesMut) {
        let at = out.len();
        out.put_u32(0);
        for (k, v) in &self.0 {
            put_shortstr(out, k.as_bytes());
            v.encode(out);
        }
        patch_len(out, at);
    }

    /// Decodes a table given with its 4-byte length prefix (AMQPLAIN responses, tests).
    pub fn decode(buf: Bytes) -> Result<FieldTable, ProtocolError> {
        let mut d = Decoder::new(buf);
        let t = d.table()?;
        if d.remaining() != 0 {
            return Err(ProtocolError::syntax("trailing bytes after field table"));
        }
        Ok(t)
    }

    /// Decodes the entries of a table whose length prefix was already read.
    pub(crate) fn decode_body(body: Bytes, depth: usize) -> Result<FieldTable, ProtocolError> {
        if depth > MAX_TABLE_DEPTH {
            return Err(ProtocolError::syntax("field table nesting too deep"));
        }
        let mut d = Decoder::new(body);
        let mut entries = Vec::new();
        while d.remaining() > 0 {
            let k = d.shortstr()?;
            let v = FieldValue::decode(&mut d, depth)?;
            entries.push((k, v));
        }
        Ok(FieldTable(entries))
    }
}
