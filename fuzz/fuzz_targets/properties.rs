//! Content properties on arbitrary bytes: no panic; the structural check (`validate`) and the
//! full decode agree; on valid input the cheap raw accessors the broker routes by give the same
//! values as the full decode; decode-encode-decode is stable.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
// The capped allocator (ottermq_fuzz's lib.rs).
use ottermq_fuzz as _;
use ottermq_protocol::{BasicProperties, FieldTable, RawProperties};

fuzz_target!(|data: &[u8]| {
    let raw = RawProperties::new(Bytes::copy_from_slice(data));
    // The accessors must not panic on unvalidated input either.
    let _ = (
        raw.delivery_mode(),
        raw.priority(),
        raw.expiration(),
        raw.headers(),
    );
    let _ = (
        raw.reply_to(),
        raw.message_id(),
        raw.user_id(),
        raw.has_headers(),
    );
    let decoded = BasicProperties::decode(&Bytes::copy_from_slice(data));
    assert_eq!(raw.validate().is_ok(), decoded.is_ok());
    let Ok(p) = decoded else {
        return;
    };
    assert_eq!(raw.delivery_mode(), p.delivery_mode);
    assert_eq!(raw.priority(), p.priority);
    let b = |s: &Option<ottermq_protocol::ShortStr>| s.as_ref().map(|s| s.as_bytes().to_vec());
    assert_eq!(raw.expiration().map(<[u8]>::to_vec), b(&p.expiration));
    assert_eq!(raw.reply_to().map(<[u8]>::to_vec), b(&p.reply_to));
    assert_eq!(raw.message_id().map(<[u8]>::to_vec), b(&p.message_id));
    assert_eq!(raw.user_id().map(<[u8]>::to_vec), b(&p.user_id));
    assert_eq!(raw.has_headers(), p.headers.is_some());
    assert_eq!(
        raw.headers().as_ref().map(table_bytes),
        p.headers.as_ref().map(table_bytes)
    );
    let first = p.to_raw();
    let again = first.decode().expect("re-encoded properties must decode");
    assert_eq!(first, again.to_raw(), "decode-encode-decode not stable");
});

fn table_bytes(t: &FieldTable) -> Vec<u8> {
    let mut out = BytesMut::new();
    t.encode(&mut out);
    out.to_vec()
}
