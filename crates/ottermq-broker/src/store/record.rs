//! Record framing shared by the message segments and the definitions log.
//!
//! A record is `[len: u32 LE][crc32 of payload: u32 LE][payload: len bytes]`. The payload's
//! first byte is the record type, so a zero-filled tail (a file extended but not written before
//! a power cut) never parses as a record. The reader tells a torn tail (a record cut short at the
//! end of the file) from a corrupt record in the middle (checksum mismatch with more data after
//! it), because the first is an expected crash artefact and the second is damage to report.

use bytes::{BufMut, Bytes, BytesMut};
use std::io::Read;

/// Header bytes before each payload.
pub const HEADER: usize = 8;

/// Appends one framed record whose payload `fill` writes.
pub fn append(out: &mut Vec<u8>, fill: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    fill(out);
    let payload = &out[at + HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What the reader found at one position of a file.
#[derive(Debug)]
pub enum Item {
    /// A good record: its offset in the file and its payload (a slice of the file's buffer).
    Record { offset: u64, payload: Bytes },
    /// A record whose checksum does not match but whose length is plausible and that is
    /// followed by more data: skipped, reported.
    Corrupt { offset: u64, len: u32 },
    /// The file ends inside this record (or in zeros): everything from `offset` is unusable.
    Torn { offset: u64 },
}

/// How the bytes at one position frame: the reading shared by [`Reader`] and [`FileReader`].
enum Frame {
    /// Not a whole record header and length: the rest of the file is unusable.
    Torn,
    /// A header whose payload of `len` bytes fits in the file.
    Payload { len: u32, crc: u32 },
}

/// Reads a header; `remaining` is the number of file bytes from the header on.
fn frame(header: &[u8], remaining: u64) -> Frame {
    if remaining < HEADER as u64 || header.len() < HEADER {
        return Frame::Torn;
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || HEADER as u64 + len as u64 > remaining {
        // Zeros, or a length running past the end: the last write did not finish. (A length
        // corrupted in the middle of a file looks the same; nothing after it can be framed.)
        return Frame::Torn;
    }
    Frame::Payload { len, crc }
}

/// The item a framed payload is: a record, or (checksum mismatch) a torn last record or a
/// corrupt one in the middle.
fn verdict(offset: u64, payload: Bytes, crc: u32, at_end: bool) -> Item {
    if crc32fast::hash(&payload) == crc {
        return Item::Record { offset, payload };
    }
    if at_end {
        Item::Torn { offset }
    } else {
        Item::Corrupt {
            offset,
            len: payload.len() as u32,
        }
    }
}

/// Iterates the records of a whole file held in memory.
pub struct Reader {
    buf: Bytes,
    pos: usize,
    done: bool,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            done: false,
        }
    }
}

impl Iterator for Reader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let offset = self.pos as u64;
        let rest = &self.buf[self.pos..];
        let Frame::Payload { len, crc } = frame(rest, rest.len() as u64) else {
            self.done = true;
            return Some(Item::Torn { offset });
        };
        let end = self.pos + HEADER + len as usize;
        let payload = self.buf.slice(self.pos + HEADER..end);
        self.pos = end;
        let item = verdict(offset, payload, crc, end == self.buf.len());
        self.done = matches!(item, Item::Torn { .. });
        Some(item)
    }
}

/// Bytes a [`FileReader`] reads from the file at once.
pub const READ_BUF: usize = 256 * 1024;

/// Iterates the records of a file read through a fixed buffer of [`READ_BUF`] bytes, so
/// reading a file holds one record at a time, whatever the file's size. Each record's payload
/// is a buffer of its own (nothing else stays in memory with it). Yields the same items as
/// [`Reader`] over the same bytes; an I/O error ends the iteration.
pub struct FileReader<R> {
    r: std::io::BufReader<R>,
    pos: u64,
    len: u64,
    done: bool,
}

impl FileReader<std::fs::File> {
    /// Reads the file at `path` as long as it is now.
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        Ok(Self::new(f, len))
    }
}

impl<R: std::io::Read> FileReader<R> {
    /// Reads `len` bytes of `r`.
    pub fn new(r: R, len: u64) -> Self {
        FileReader {
            r: std::io::BufReader::with_capacity(READ_BUF, r),
            pos: 0,
            len,
            done: false,
        }
    }

    fn read_item(&mut self) -> std::io::Result<Option<Item>> {
        if self.done || self.pos >= self.len {
            return Ok(None);
        }
        let offset = self.pos;
        let remaining = self.len - self.pos;
        let mut header = [0u8; HEADER];
        let got = (remaining as usize).min(HEADER);
        self.r.read_exact(&mut header[..got])?;
        let Frame::Payload { len, crc } = frame(&header[..got], remaining) else {
            self.done = true;
            return Ok(Some(Item::Torn { offset }));
        };
        let mut payload = BytesMut::zeroed(len as usize);
        self.r.read_exact(&mut payload)?;
        self.pos += HEADER as u64 + len as u64;
        let item = verdict(offset, payload.freeze(), crc, self.pos == self.len);
        self.done = matches!(item, Item::Torn { .. });
        Ok(Some(item))
    }
}

impl<R: std::io::Read> Iterator for FileReader<R> {
    type Item = std::io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.read_item();
        if r.is_err() {
            self.done = true;
        }
        r.transpose()
    }
}

/// Little helpers to write and read payload fields (short strings, long byte strings).
pub fn put_short(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

pub fn put_long(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reads payload fields; every read is bounds-checked, so a bad record is an error, not a panic.
pub struct Fields {
    buf: Bytes,
    pos: usize,
}

/// A payload that passed its checksum yet does not decode (written by a different version).
#[derive(Debug)]
pub struct Malformed;

impl Fields {
    pub fn new(buf: Bytes) -> Self {
        Fields { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<Bytes, Malformed> {
        if self.buf.len() - self.pos < n {
            return Err(Malformed);
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Malformed> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn short(&mut self) -> Result<Bytes, Malformed> {
        let n = self.u8()? as usize;
        self.take(n)
    }

    pub fn long(&mut self) -> Result<Bytes, Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Encodes an AMQP field table for a payload (wire form, with its length prefix).
pub fn put_table(out: &mut Vec<u8>, t: &ottermq_protocol::FieldTable) {
    let mut b = BytesMut::new();
    t.encode(&mut b);
    out.put_slice(&b);
}

impl Fields {
    pub fn table(&mut self) -> Result<ottermq_protocol::FieldTable, Malformed> {
        let rest = &self.buf[self.pos..];
        if rest.len() < 4 {
            return Err(Malformed);
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let b = self.take(4usize.checked_add(n).ok_or(Malformed)?)?;
        ottermq_protocol::FieldTable::decode(b).map_err(|_| Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(records: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for r in records {
            append(&mut v, |o| o.extend_from_slice(r));
        }
        v
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let mut v = file(&[b"\x01abc", b"\x02de"]);
        let full = v.len();
        v.extend_from_slice(&file(&[b"\x01xyz"])[..5]);
        let items: Vec<Item> = Reader::new(Bytes::from(v)).collect();
        assert!(matches!(items[0], Item::Record { offset: 0, .. }));
        assert!(matches!(items[1], Item::Record { .. }));
        assert!(matches!(items[2], Item::Torn { offset } if offset == full as u64));
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn corrupt_middle_is_skipped_zero_tail_is_torn() {
        let mut v = file(&[b"\x01abc", b"\x01def", b"\x01ghi"]);
        v[HEADER + 1] ^= 0xff; // first payload
        v.extend_from_slice(&[0u8; 32]);
        let items: Vec<Item> = Reader::new(Bytes::from(v)).collect();
        assert!(matches!(items[0], Item::Corrupt { offset: 0, len: 4 }));
        assert!(matches!(items[1], Item::Record { .. }));
        assert!(matches!(items[2], Item::Record { .. }));
        assert!(matches!(items[3], Item::Torn { .. }));
    }

    /// The streaming reader yields what the in-memory one does, through buffers smaller and
    /// larger than a record, on good, corrupt, torn and zero-filled files.
    #[test]
    fn file_reader_matches_reader() {
        let big = vec![0x01u8; READ_BUF + 100];
        let mut v = file(&[b"\x01abc", &big, b"\x01def", b"\x02gh"]);
        let second = HEADER + 4;
        let files = [
            v.clone(),
            {
                let mut c = v.clone();
                c[second + HEADER + 7] ^= 1; // the big record
                c
            },
            {
                let mut c = v.clone();
                c.truncate(c.len() - 1); // last record cut short
                c
            },
            {
                v.extend_from_slice(&[0u8; 5]); // zeros shorter than a header
                v
            },
        ];
        for f in files {
            let expected: Vec<String> = Reader::new(Bytes::from(f.clone()))
                .map(|i| format!("{i:?}"))
                .collect();
            let got: Vec<String> = FileReader::new(&f[..], f.len() as u64)
                .map(|i| format!("{:?}", i.expect("read")))
                .collect();
            assert_eq!(got, expected);
        }
    }
}
