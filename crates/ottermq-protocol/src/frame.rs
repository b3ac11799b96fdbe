//! Frames: splitting a byte stream into frames, and writing frames.
//!
//! `decode_frame` takes one frame off the front of a read buffer and returns its payload as a
//! frozen slice of that buffer, so a body travels from the socket read to the queues without a
//! copy. The hot-path encoders write deliveries from borrowed parts, building no `Method` value.

use crate::codec::put_shortstr;
use crate::error::{ProtocolError, CLASS_BASIC};
use crate::method::Method;
use crate::properties::RawProperties;
use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// The smallest frame_max a peer may negotiate (the spec's frame-min-size).
pub const FRAME_MIN_SIZE: u32 = 4096;
/// Frame header (7 bytes) plus the frame-end octet.
pub const FRAME_OVERHEAD: usize = 8;
/// Most `decode_frame` reserves for a frame still arriving; the buffer grows as bytes come.
const MAX_RESERVE: usize = 1 << 20;

/// Result of looking at the first bytes a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeaderCheck {
    Incomplete,
    Amqp091,
    /// Anything else: answer with `PROTOCOL_HEADER` and close.
    Mismatch,
}

pub fn check_protocol_header(buf: &[u8]) -> ProtocolHeaderCheck {
    let n = buf.len().min(8);
    if buf[..n] != PROTOCOL_HEADER[..n] {
        return ProtocolHeaderCheck::Mismatch;
    }
    if n < 8 {
        ProtocolHeaderCheck::Incomplete
    } else {
        ProtocolHeaderCheck::Amqp091
    }
}

/// One frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Method {
        channel: u16,
        method: Method,
    },
    Header {
        channel: u16,
        class_id: u16,
        body_size: u64,
        properties: RawProperties,
    },
    Body {
        channel: u16,
        payload: Bytes,
    },
    Heartbeat {
        channel: u16,
    },
}

/// Splits one frame off the front of `buf`. `Ok(None)` when more bytes are needed; call again
/// to drain several frames from one read. `max_frame_size` is the negotiated frame_max (the
/// whole frame including its 8 bytes of overhead; 0 = no limit): a larger frame is refused from
/// its header, before its payload is buffered.
pub fn decode_frame(
    buf: &mut BytesMut,
    max_frame_size: u32,
) -> Result<Option<Frame>, ProtocolError> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(ProtocolError::frame(format!("unknown frame type {kind}")));
    }
    if max_frame_size != 0 && size + FRAME_OVERHEAD > max_frame_size as usize {
        return Err(ProtocolError::frame(format!(
            "frame size {} exceeds negotiated frame_max {max_frame_size}",
            size + FRAME_OVERHEAD
        )));
    }
    if buf.len() < size + FRAME_OVERHEAD {
        // Room for the rest of the frame, so it is read in few calls; but never more than
        // MAX_RESERVE ahead of the bytes actually received: without a frame_max (0) the size is
        // the peer's word alone, and a 7-byte header claiming 4 GiB must not allocate 4 GiB
        // (found by the `frame` fuzz target).
        buf.reserve((size + FRAME_OVERHEAD - buf.len()).min(MAX_RESERVE));
        return Ok(None);
    }
    if buf[7 + size] != FRAME_END {
        return Err(ProtocolError::frame(format!(
            "bad frame end marker {:#04x}",
            buf[7 + size]
        )));
    }
    buf.advance(7);
    let payload = buf.split_to(size).freeze();
    buf.advance(1);
    let frame = match kind {
        FRAME_METHOD => Frame::Method {
            channel,
            method: Method::decode(payload)?,
        },
        FRAME_HEADER => decode_header(channel, payload)?,
        FRAME_BODY => Frame::Body { channel, payload },
        _ => {
            if size != 0 {
                return Err(ProtocolError::frame("heartbeat frame with a payload"));
            }
            Frame::Heartbeat { channel }
        }
    };
    Ok(Some(frame))
}

fn decode_header(channel: u16, mut p: Bytes) -> Result<Frame, ProtocolError> {
    if p.len() < 14 {
        return Err(ProtocolError::frame("content header frame too short"));
    }
    let class_id = p.get_u16();
    let weight = p.get_u16();
    let body_size = p.get_u64();
    if weight != 0 {
        return Err(ProtocolError::frame("content header weight must be 0"));
    }
    let properties = RawProperties::new(p);
    properties.validate()?;
    Ok(Frame::Header {
        channel,
        class_id,
        body_size,
        properties,
    })
}

/// Writes the 7-byte header and returns where the size goes, patched by `end_frame`.
#[inline]
fn begin_frame(out: &mut BytesMut, kind: u8, channel: u16) -> usize {
    out.put_u8(kind);
    out.put_u16(channel);
    let at = out.len();
    out.put_u32(0);
    at
}

#[inline]
fn end_frame(out: &mut BytesMut, at: usize) {
    let size = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&size.to_be_bytes());
    out.put_u8(FRAME_END);
}

pub fn encode_method(out: &mut BytesMut, channel: u16, method: &Method) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    method.encode(out);
    end_frame(out, at);
}

pub fn encode_heartbeat(out: &mut BytesMut) {
    out.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

pub fn encode_frame(out: &mut BytesMut, frame: &Frame) {
    match frame {
        Frame::Method { channel, method } => encode_method(out, *channel, method),
        Frame::Header {
            channel,
            class_id,
            body_size,
            properties,
        } => encode_header(out, *channel, *class_id, *body_size, properties),
        Frame::Body { channel, payload } => {
            let at = begin_frame(out, FRAME_BODY, *channel);
            out.put_slice(payload);
            end_frame(out, at);
        }
        Frame::Heartbeat { channel } => {
            let at = begin_frame(out, FRAME_HEARTBEAT, *channel);
            end_frame(out, at);
        }
    }
}

fn encode_header(
    out: &mut BytesMut,
    channel: u16,
    class_id: u16,
    body_size: u64,
    properties: &RawProperties,
) {
    let at = begin_frame(out, FRAME_HEADER, channel);
    out.put_u16(class_id);
    out.put_u16(0);
    out.put_u64(body_size);
    out.put_slice(properties.as_bytes());
    end_frame(out, at);
}

/// basic.deliver written from borrowed parts.
pub fn encode_basic_deliver(
    out: &mut BytesMut,
    channel: u16,
    consumer_tag: &[u8],
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
) {
    out.reserve(32 + consumer_tag.len() + exchange.len() + routing_key.len());
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.put_u16(CLASS_BASIC);
    out.put_u16(60);
    put_shortstr(out, consumer_tag);
    out.put_u64(delivery_tag);
    out.put_u8(redelivered as u8);
    put_shortstr(out, exchange);
    put_shortstr(out, routing_key);
    end_frame(out, at);
}

/// basic.get-ok written from borrowed parts.
pub fn encode_basic_get_ok(
    out: &mut BytesMut,
    channel: u16,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &[u8],
    routing_key: &[u8],
    message_count: u32,
) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.put_u16(CLASS_BASIC);
    out.put_u16(71);
    out.put_u64(delivery_tag);
    out.put_u8(redelivered as u8);
    put_shortstr(out, exchange);
    put_shortstr(out, routing_key);
    out.put_u32(message_count);
    end_frame(out, at);
}

/// basic.return written from borrowed parts.
pub fn encode_basic_return(
    out: &mut BytesMut,
    channel: u16,
    reply_code: u16,
    reply_text: &[u8],
    exchange: &[u8],
    routing_key: &[u8],
) {
    let at = begin_frame(out, FRAME_METHOD, channel);
    out.put_u16(CLASS_BASIC);
    out.put_u16(50);
    out.put_u16(reply_code);
    put_shortstr(out, reply_text);
    put_shortstr(out, exchange);
    put_shortstr(out, routing_key);
    end_frame(out, at);
}

/// A content header frame and the body split into frames of at most frame_max - 8 payload
/// bytes (frame_max 0: one body frame). An empty body has no body frame.
pub fn encode_content(
    out: &mut BytesMut,
    channel: u16,
    properties: &RawProperties,
    body: &[u8],
    frame_max: u32,
) {
    let chunk = if frame_max == 0 {
        usize::MAX
    } else {
        (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
    };
    let frames = body.len().div_ceil(chunk.min(body.len().max(1)));
    out.reserve(22 + properties.as_bytes().len() + body.len() + frames * FRAME_OVERHEAD);
    encode_header(out, channel, CLASS_BASIC, body.len() as u64, properties);
    for part in body.chunks(chunk) {
        out.put_u8(FRAME_BODY);
        out.put_u16(channel);
        out.put_u32(part.len() as u32);
        out.put_slice(part);
        out.put_u8(FRAME_END);
    }
}
