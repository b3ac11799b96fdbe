//! Field tables on arbitrary bytes: no panic, no unbounded recursion (nesting is limited);
//! decode-encode-decode is stable and `encoded_len` matches what `encode` writes.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
// The capped allocator (ottermq_fuzz's lib.rs).
use ottermq_fuzz as _;
use ottermq_protocol::FieldTable;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = FieldTable::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let first = encode(&t);
    assert_eq!(t.encoded_len(), first.len());
    // Decoding takes the whole input and every value re-encodes at its own size (only bool
    // octets are normalised), so the encoding is as long as the input.
    assert_eq!(first.len(), data.len());
    for (k, v) in t.iter() {
        let _ = (
            k.to_string_lossy(),
            v.as_i64(),
            v.as_bool(),
            v.as_str_bytes(),
        );
        let _ = t.get(&k.to_string_lossy());
    }
    let again =
        FieldTable::decode(Bytes::from(first.clone())).expect("re-encoded table must decode");
    assert_eq!(again.len(), t.len());
    assert_eq!(first, encode(&again), "decode-encode-decode not stable");
});

fn encode(t: &FieldTable) -> Vec<u8> {
    let mut out = BytesMut::new();
    t.encode(&mut out);
    out.to_vec()
}
