//! Property tests: every method, field value, property set and frame survives an encode /
//! decode round trip, whatever the chunking of the byte stream; arbitrary bytes never panic.

use bytes::{Bytes, BytesMut};
use ottermq_protocol::*;
use proptest::prelude::*;

fn short() -> impl Strategy<Value = ShortStr> {
    proptest::collection::vec(any::<u8>(), 0..40)
        .prop_map(|v| ShortStr::from_bytes(Bytes::from(v)).unwrap())
}

fn long() -> impl Strategy<Value = LongStr> {
    proptest::collection::vec(any::<u8>(), 0..200).prop_map(LongStr::from)
}

fn value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<u64>().prop_map(FieldValue::U64),
        any::<u32>().prop_map(|b| FieldValue::F32(f32::from_bits(b & 0x7f7f_ffff))),
        any::<u64>().prop_map(|b| FieldValue::F64(f64::from_bits(b & 0x7fef_ffff_ffff_ffff))),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        long().prop_map(FieldValue::LongStr),
        proptest::collection::vec(any::<u8>(), 0..50)
            .prop_map(|v| FieldValue::Bytes(Bytes::from(v))),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(FieldValue::Array),
            proptest::collection::vec((short(), inner), 0..5)
                .prop_map(|v| FieldValue::Table(FieldTable(v))),
        ]
    })
}

fn table() -> impl Strategy<Value = FieldTable> {
    proptest::collection::vec((short(), value()), 0..6).prop_map(FieldTable)
}

fn properties() -> impl Strategy<Value = BasicProperties> {
    (
        (
            proptest::option::of(short()),
            proptest::option::of(short()),
            proptest::option::of(table()),
        ),
        (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(short()),
        ),
        (
            proptest::option::of(short()),
            proptest::option::of(short()),
            proptest::option::of(short()),
        ),
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(short()),
            proptest::option::of(short()),
        ),
        (proptest::option::of(short()), proptest::option::of(short())),
    )
        .prop_map(|(a, b, c, d, e)| BasicProperties {
            content_type: a.0,
            content_encoding: a.1,
            headers: a.2,
            delivery_mode: b.0,
            priority: b.1,
            correlation_id: b.2,
            reply_to: c.0,
            expiration: c.1,
            message_id: c.2,
            timestamp: d.0,
            kind: d.1,
            user_id: d.2,
            app_id: e.0,
            cluster_id: e.1,
        })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        (any::<u8>(), any::<u8>(), table(), long(), long()).prop_map(|(a, b, t, m, l)| {
            Method::ConnectionStart(ConnectionStart {
                version_major: a,
                version_minor: b,
                server_properties: t,
                mechanisms: m,
                locales: l,
            })
        }),
        (table(), short(), long(), short()).prop_map(|(t, m, r, l)| Method::ConnectionStartOk(
            ConnectionStartOk {
                client_properties: t,
                mechanism: m,
                response: r,
                locale: l
            }
        )),
        (any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(c, f, h)| Method::ConnectionTune(
            ConnectionTune {
                channel_max: c,
                frame_max: f,
                heartbeat: h
            }
        )),
        short().prop_map(|v| Method::ConnectionOpen(ConnectionOpen { virtual_host: v })),
        (any::<u16>(), short(), any::<u16>(), any::<u16>()).prop_map(|(c, t, a, b)| {
            Method::ChannelClose(ChannelClose {
                reply_code: c,
                reply_text: t,
                class_id: a,
                method_id: b,
            })
        }),
        any::<bool>().prop_map(|a| Method::ChannelFlow(ChannelFlow { active: a })),
        (short(), short(), any::<[bool; 5]>(), table()).prop_map(|(e, k, b, t)| {
            Method::ExchangeDeclare(ExchangeDeclare {
                exchange: e,
                kind: k,
                passive: b[0],
                durable: b[1],
                auto_delete: b[2],
                internal: b[3],
                nowait: b[4],
                arguments: t,
            })
        }),
        (short(), any::<[bool; 5]>(), table()).prop_map(|(q, b, t)| Method::QueueDeclare(
            QueueDeclare {
                queue: q,
                passive: b[0],
                durable: b[1],
                exclusive: b[2],
                auto_delete: b[3],
                nowait: b[4],
                arguments: t
            }
        )),
        (short(), any::<u32>(), any::<u32>()).prop_map(|(q, m, c)| Method::QueueDeclareOk(
            QueueDeclareOk {
                queue: q,
                message_count: m,
                consumer_count: c
            }
        )),
        (short(), short(), short(), table()).prop_map(|(q, e, r, t)| Method::QueueUnbind(
            QueueUnbind {
                queue: q,
                exchange: e,
                routing_key: r,
                arguments: t
            }
        )),
        (short(), any::<[bool; 3]>()).prop_map(|(q, b)| Method::QueueDelete(QueueDelete {
            queue: q,
            if_unused: b[0],
            if_empty: b[1],
            nowait: b[2]
        })),
        (any::<u32>(), any::<u16>(), any::<bool>()).prop_map(|(s, c, g)| Method::BasicQos(
            BasicQos {
                prefetch_size: s,
                prefetch_count: c,
                global: g
            }
        )),
        (short(), short(), any::<[bool; 4]>(), table()).prop_map(|(q, t, b, a)| {
            Method::BasicConsume(BasicConsume {
                queue: q,
                consumer_tag: t,
                no_local: b[0],
                no_ack: b[1],
                exclusive: b[2],
                nowait: b[3],
                arguments: a,
            })
        }),
        (short(), short(), any::<bool>(), any::<bool>()).prop_map(|(e, r, m, i)| {
            Method::BasicPublish(BasicPublish {
                exchange: e,
                routing_key: r,
                mandatory: m,
                immediate: i,
            })
        }),
        (short(), any::<u64>(), any::<bool>(), short(), short()).prop_map(|(c, t, r, e, k)| {
            Method::BasicDeliver(BasicDeliver {
                consumer_tag: c,
                delivery_tag: t,
                redelivered: r,
                exchange: e,
                routing_key: k,
            })
        }),
        (any::<u64>(), any::<bool>(), any::<bool>()).prop_map(|(t, m, r)| Method::BasicNack(
            BasicNack {
                delivery_tag: t,
                multiple: m,
                requeue: r
            }
        )),
        Just(Method::TxCommit),
        Just(Method::BasicGetEmpty),
        Just(Method::ChannelOpen),
    ]
}

proptest! {
    #[test]
    fn methods_round_trip(m in method()) {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        prop_assert_eq!(Method::decode(b.freeze()).unwrap(), m);
    }

    #[test]
    fn tables_round_trip(t in table()) {
        let mut b = BytesMut::new();
        t.encode(&mut b);
        prop_assert_eq!(FieldTable::decode(b.freeze()).unwrap(), t);
    }

    #[test]
    fn properties_round_trip_and_raw_accessors_agree(p in properties()) {
        let raw = p.to_raw();
        let decoded = raw.decode().unwrap();
        prop_assert_eq!(&decoded, &p);
        prop_assert_eq!(raw.delivery_mode(), p.delivery_mode);
        prop_assert_eq!(raw.priority(), p.priority);
        prop_assert_eq!(raw.expiration(), p.expiration.as_ref().map(|s| s.as_bytes()));
        prop_assert_eq!(raw.reply_to(), p.reply_to.as_ref().map(|s| s.as_bytes()));
        prop_assert_eq!(raw.message_id(), p.message_id.as_ref().map(|s| s.as_bytes()));
        prop_assert_eq!(raw.user_id(), p.user_id.as_ref().map(|s| s.as_bytes()));
        prop_assert_eq!(raw.headers(), p.headers.clone());
        prop_assert_eq!(raw.has_headers(), p.headers.is_some());
    }

    #[test]
    fn frame_streams_survive_any_chunking(
        methods in proptest::collection::vec(method(), 1..6),
        body in proptest::collection::vec(any::<u8>(), 0..20_000),
        cuts in proptest::collection::vec(1usize..5000, 1..20),
    ) {
        let mut stream = BytesMut::new();
        let mut expected = Vec::new();
        for (i, m) in methods.iter().enumerate() {
            encode_method(&mut stream, i as u16, m);
            expected.push(Frame::Method { channel: i as u16, method: m.clone() });
        }
        let props = RawProperties::empty();
        encode_content(&mut stream, 3, &props, &body, 4096);
        expected.push(Frame::Header { channel: 3, class_id: 60, body_size: body.len() as u64, properties: props });
        for chunk in body.chunks(4096 - 8) {
            expected.push(Frame::Body { channel: 3, payload: Bytes::copy_from_slice(chunk) });
        }
        encode_heartbeat(&mut stream);
        expected.push(Frame::Heartbeat { channel: 0 });

        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let n = (*cut.next().unwrap()).min(rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(f) = decode_frame(&mut buf, 0).unwrap() {
                got.push(f);
            }
        }
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..10 {
            match decode_frame(&mut buf, 131_072) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    prop_assert!(matches!(e.code, 501..=503), "{:?}", e);
                    break;
                }
            }
        }
        let _ = Method::decode(Bytes::from(data.clone()));
        let _ = FieldTable::decode(Bytes::from(data.clone()));
        let _ = BasicProperties::decode(&Bytes::from(data));
    }

    #[test]
    fn truncated_frames_wait_for_more(m in method(), cut in 0usize..64) {
        let mut full = BytesMut::new();
        encode_method(&mut full, 1, &m);
        let n = cut.min(full.len() - 1);
        let mut part = BytesMut::from(&full[..n]);
        prop_assert_eq!(decode_frame(&mut part, 0).unwrap(), None);
    }
}

#[test]
fn hot_path_encoders_match_the_generic_ones() {
    let mut a = BytesMut::new();
    let mut b = BytesMut::new();
    encode_basic_deliver(&mut a, 5, b"ctag", 42, true, b"ex", b"rk");
    encode_method(
        &mut b,
        5,
        &Method::BasicDeliver(BasicDeliver {
            consumer_tag: "ctag".into(),
            delivery_tag: 42,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "rk".into(),
        }),
    );
    assert_eq!(a, b);
    a.clear();
    b.clear();
    encode_basic_get_ok(&mut a, 2, 7, false, b"", b"q", 9);
    encode_method(
        &mut b,
        2,
        &Method::BasicGetOk(BasicGetOk {
            delivery_tag: 7,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 9,
        }),
    );
    assert_eq!(a, b);
    a.clear();
    b.clear();
    encode_basic_return(&mut a, 1, 312, b"NO_ROUTE", b"ex", b"k");
    encode_method(
        &mut b,
        1,
        &Method::BasicReturn(BasicReturn {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "ex".into(),
            routing_key: "k".into(),
        }),
    );
    assert_eq!(a, b);
}

#[test]
fn encodings_match_the_spec_bytes() {
    // connection.tune: class 10, method 30, channel_max 2047, frame_max 131072, heartbeat 60.
    let mut b = BytesMut::new();
    encode_method(
        &mut b,
        0,
        &Method::ConnectionTune(ConnectionTune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        }),
    );
    assert_eq!(
        &b[..],
        &[1, 0, 0, 0, 0, 0, 12, 0, 10, 0, 30, 0x07, 0xff, 0, 2, 0, 0, 0, 60, 0xce]
    );
    // basic.publish: ticket 0, exchange "e", routing key "k", mandatory=1 immediate=0 packed in one octet.
    b.clear();
    encode_method(
        &mut b,
        1,
        &Method::BasicPublish(BasicPublish {
            exchange: "e".into(),
            routing_key: "k".into(),
            mandatory: true,
            immediate: false,
        }),
    );
    assert_eq!(
        &b[..],
        &[1, 0, 1, 0, 0, 0, 11, 0, 60, 0, 40, 0, 0, 1, b'e', 1, b'k', 1, 0xce]
    );
    // queue.declare bits: passive durable exclusive auto_delete nowait -> 0b10110 for durable+auto_delete+nowait
    b.clear();
    Method::QueueDeclare(QueueDeclare {
        queue: "q".into(),
        durable: true,
        auto_delete: true,
        nowait: true,
        ..Default::default()
    })
    .encode(&mut b);
    assert_eq!(&b[..], &[0, 50, 0, 10, 0, 0, 1, b'q', 0b11010, 0, 0, 0, 0]);
}

#[test]
fn oversized_frame_refused_from_its_header() {
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0x10, 0, 0][..]);
    let e = decode_frame(&mut buf, 131_072).unwrap_err();
    assert_eq!(e.code, 501);
}

#[test]
fn deep_nesting_refused() {
    let mut v = FieldValue::Void;
    for _ in 0..(MAX_TABLE_DEPTH + 5) {
        v = FieldValue::Array(vec![v]);
    }
    let mut t = FieldTable::new();
    t.insert("deep", v);
    let mut b = BytesMut::new();
    t.encode(&mut b);
    assert_eq!(FieldTable::decode(b.freeze()).unwrap_err().code, 502);
}

#[test]
fn content_is_split_at_frame_max() {
    let mut b = BytesMut::new();
    encode_content(&mut b, 1, &RawProperties::empty(), &[9u8; 10_000], 4096);
    let mut frames = Vec::new();
    while let Some(f) = decode_frame(&mut b, 4096).unwrap() {
        frames.push(f);
    }
    assert_eq!(frames.len(), 1 + 3);
    let sizes: Vec<usize> = frames[1..]
        .iter()
        .map(|f| match f {
            Frame::Body { payload, .. } => payload.len(),
            _ => 0,
        })
        .collect();
    assert_eq!(sizes, vec![4088, 4088, 1824]);
}
