//! The frame splitter on arbitrary bytes: no panic; every frame it returns re-encodes to bytes
//! that decode to a frame encoding the same again; a content header's body re-splits (via
//! `encode_content`) into frames that reassemble to the same body.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
// The capped allocator (ottermq_fuzz's lib.rs).
use ottermq_fuzz as _;
use ottermq_protocol::{check_protocol_header, decode_frame, encode_content, encode_frame, Frame};

fuzz_target!(|data: &[u8]| {
    let _ = check_protocol_header(data);
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // The negotiated frame_max the stream is read with: unlimited, the minimum, or the default.
    let frame_max = [0u32, 4096, 131_072, 9][sel as usize % 4];
    let mut buf = BytesMut::from(rest);
    let mut last_header = None;
    loop {
        let before = buf.len();
        match decode_frame(&mut buf, frame_max) {
            Ok(Some(frame)) => {
                assert!(buf.len() < before, "a decoded frame consumed no bytes");
                let first = encode(&frame);
                if frame_max != 0 {
                    assert!(
                        first.len() <= frame_max as usize,
                        "accepted a frame over frame_max"
                    );
                }
                let mut again = BytesMut::from(&first[..]);
                let decoded = decode_frame(&mut again, 0)
                    .expect("re-encoded frame must decode")
                    .expect("re-encoded frame must be whole");
                assert!(again.is_empty(), "re-encoded frame left bytes over");
                assert_eq!(first, encode(&decoded), "decode-encode-decode not stable");
                if let Frame::Header { properties, .. } = &frame {
                    last_header = Some(properties.clone());
                }
                if let (Frame::Body { payload, .. }, Some(props)) = (&frame, &last_header) {
                    check_content(props, payload, sel);
                }
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
});

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(&mut out, frame);
    out.to_vec()
}

/// `encode_content` splits the body into frames of at most frame_max; they must reassemble.
fn check_content(props: &ottermq_protocol::RawProperties, body: &[u8], sel: u8) {
    let frame_max = [0u32, 9, 10, 4096][(sel as usize / 4) % 4];
    let mut out = BytesMut::new();
    encode_content(&mut out, 1, props, body, frame_max);
    let mut got = Vec::new();
    let mut header_seen = false;
    while let Some(f) = decode_frame(&mut out, 0).expect("encode_content output must decode") {
        match f {
            Frame::Header { body_size, .. } => {
                assert!(!header_seen);
                header_seen = true;
                assert_eq!(body_size, body.len() as u64);
            }
            Frame::Body { payload, .. } => {
                if frame_max != 0 {
                    assert!(payload.len() + 8 <= (frame_max as usize).max(9));
                }
                assert!(!payload.is_empty(), "empty body frame");
                got.extend_from_slice(&payload);
            }
            other => panic!("unexpected frame from encode_content: {other:?}"),
        }
    }
    assert!(out.is_empty());
    assert!(header_seen);
    assert_eq!(got, body);
}
