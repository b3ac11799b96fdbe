//! Method decoding on arbitrary payloads: no panic; a decoded method encodes to bytes that
//! decode to a method encoding to the same bytes (reserved fields and bit padding normalised
//! by the first encode, so the comparison is on the second).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
// The capped allocator (ottermq_fuzz's lib.rs).
use ottermq_fuzz as _;
use ottermq_protocol::{encode_method, Method};

fuzz_target!(|data: &[u8]| {
    let Ok(method) = Method::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let _ = (method.name(), method.has_content());
    let first = encode(&method);
    assert_eq!(
        (method.class_id(), method.method_id()),
        (
            u16::from_be_bytes([first[0], first[1]]),
            u16::from_be_bytes([first[2], first[3]])
        )
    );
    let again = Method::decode(Bytes::from(first.clone())).expect("re-encoded method must decode");
    assert_eq!(first, encode(&again), "decode-encode-decode not stable");
    // As a whole frame too.
    let mut framed = BytesMut::new();
    encode_method(&mut framed, 7, &method);
    let f = ottermq_protocol::decode_frame(&mut framed, 0)
        .expect("framed method must decode")
        .expect("framed method must be whole");
    assert!(framed.is_empty());
    assert!(matches!(
        f,
        ottermq_protocol::Frame::Method { channel: 7, .. }
    ));
});

fn encode(m: &Method) -> Vec<u8> {
    let mut out = BytesMut::new();
    m.encode(&mut out);
    out.to_vec()
}
