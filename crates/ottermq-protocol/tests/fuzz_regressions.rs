//! Inputs the fuzz targets in `fuzz/` found, each kept as a plain test so the fix stays.

use bytes::BytesMut;
use ottermq_protocol::*;

/// `frame` target, oom-59bee57a: a method frame header claiming 0xfeffffcc payload bytes with no
/// frame_max (0, as a reader draining after an error uses) made `decode_frame` reserve ~4 GiB
/// up front. It must wait for the bytes without reserving more than a bounded amount.
#[test]
fn a_huge_declared_frame_size_does_not_reserve_its_size() {
    let mut buf = BytesMut::from(&[FRAME_METHOD, 0, 2, 0xfe, 0xff, 0xff, 0xcc, 0, 0x3c][..]);
    assert_eq!(decode_frame(&mut buf, 0).expect("no error yet"), None);
    assert!(
        buf.capacity() <= 2 << 20,
        "reserved {} bytes for a frame not yet received",
        buf.capacity()
    );
    // With the negotiated frame_max the same header is refused outright.
    assert!(decode_frame(&mut buf, 131_072).is_err());
}

/// A frame that arrives in pieces is still decoded once whole, however small the reservation.
#[test]
fn a_large_frame_arriving_in_pieces_decodes_once_whole() {
    let body = vec![7u8; 3 << 20];
    let mut whole = BytesMut::new();
    encode_frame(
        &mut whole,
        &Frame::Body {
            channel: 1,
            payload: body.clone().into(),
        },
    );
    let mut buf = BytesMut::new();
    for chunk in whole.chunks(100_000) {
        assert!(decode_frame(&mut buf, 0).expect("valid so far").is_none());
        buf.extend_from_slice(chunk);
    }
    match decode_frame(&mut buf, 0).expect("valid") {
        Some(Frame::Body {
            channel: 1,
            payload,
        }) => assert_eq!(&payload[..], &body[..]),
        other => panic!("expected the body frame, got {other:?}"),
    }
    assert!(buf.is_empty());
}
