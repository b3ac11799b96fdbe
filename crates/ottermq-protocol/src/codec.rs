//! Checked big-endian readers and writers shared by the table, method and property codecs.
//! Every read checks the remaining length first, so malformed input yields an error, never a
//! panic, and no length field can make the decoder allocate more than it was given.

use crate::error::ProtocolError;
use crate::table::{FieldTable, LongStr, ShortStr};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Reads fields from a payload. Strings come out as zero-copy slices of it.
pub(crate) struct Decoder {
    buf: Bytes,
    bits: u8,
    bit_pos: u8,
}

impl Decoder {
    pub fn new(buf: Bytes) -> Self {
        Decoder {
            buf,
            bits: 0,
            bit_pos: 8,
        }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn need(&self, n: usize) -> Result<(), ProtocolError> {
        if self.buf.len() < n {
            Err(ProtocolError::syntax(format!(
                "truncated field: need {n} bytes, have {}",
                self.buf.len()
            )))
        } else {
            Ok(())
        }
    }

    pub fn octet(&mut self) -> Result<u8, ProtocolError> {
        self.bit_pos = 8;
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    pub fn u16(&mut self) -> Result<u16, ProtocolError> {
        self.bit_pos = 8;
        self.need(2)?;
        Ok(self.buf.get_u16())
    }
    pub fn u32(&mut self) -> Result<u32, ProtocolError> {
        self.bit_pos = 8;
        self.need(4)?;
        Ok(self.buf.get_u32())
    }
    pub fn u64(&mut self) -> Result<u64, ProtocolError> {
        self.bit_pos = 8;
        self.need(8)?;
        Ok(self.buf.get_u64())
    }
    pub fn bytes(&mut self, n: usize) -> Result<Bytes, ProtocolError> {
        self.bit_pos = 8;
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }
    pub fn shortstr(&mut self) -> Result<ShortStr, ProtocolError> {
        let n = self.octet()? as usize;
        Ok(ShortStr::from_bytes_unchecked(self.bytes(n)?))
    }
    pub fn longstr(&mut self) -> Result<LongStr, ProtocolError> {
        let n = self.u32()? as usize;
        Ok(LongStr::from(self.bytes(n)?))
    }
    pub fn table(&mut self) -> Result<FieldTable, ProtocolError> {
        let n = self.u32()? as usize;
        let body = self.bytes(n)?;
        FieldTable::decode_body(body, 0)
    }
    /// Consecutive bit fields share octets, low bit first, as the spec packs them.
    pub fn bit(&mut self) -> Result<bool, ProtocolError> {
        if self.bit_pos >= 8 {
            self.need(1)?;
            self.bits = self.buf.get_u8();
            self.bit_pos = 0;
        }
        let v = self.bits & (1 << self.bit_pos) != 0;
        self.bit_pos += 1;
        Ok(v)
    }
}

/// Writes fields into a buffer, packing consecutive bits like `Decoder::bit` reads them.
pub(crate) struct Encoder<'a> {
    pub out: &'a mut BytesMut,
    bit_at: Option<(usize, u8)>,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut BytesMut) -> Self {
        Encoder { out, bit_at: None }
    }
    pub fn octet(&mut self, v: u8) {
        self.bit_at = None;
        self.out.put_u8(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.bit_at = None;
        self.out.put_u16(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.bit_at = None;
        self.out.put_u32(v);
    }
    pub fn u64(&mut self, v: u64) {
        self.bit_at = None;
        self.out.put_u64(v);
    }
    pub fn shortstr(&mut self, v: &ShortStr) {
        put_shortstr(self.out, v.as_bytes());
        self.bit_at = None;
    }
    pub fn longstr(&mut self, v: &LongStr) {
        self.u32(v.len() as u32);
        self.out.put_slice(v.as_bytes());
    }
    pub fn table(&mut self, v: &FieldTable) {
        self.bit_at = None;
        v.encode(self.out);
    }
    pub fn bit(&mut self, v: bool) {
        match self.bit_at {
            Some((idx, pos)) if pos < 8 => {
                if v {
                    self.out[idx] |= 1 << pos;
                }
                self.bit_at = Some((idx, pos + 1));
            }
            _ => {
                let idx = self.out.len();
                self.out.put_u8(v as u8);
                self.bit_at = Some((idx, 1));
            }
        }
    }
}

/// A short string from raw bytes; callers guarantee at most 255 bytes (longer is cut).
#[inline]
pub(crate) fn put_shortstr(out: &mut BytesMut, s: &[u8]) {
    let s = &s[..s.len().min(255)];
    out.put_u8(s.len() as u8);
    out.put_slice(s);
}
