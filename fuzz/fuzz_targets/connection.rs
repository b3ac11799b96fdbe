//! Arbitrary bytes after a valid handshake, fed to the broker's connection state machine
//! in-process (`serve_transport` over a `tokio::io::duplex` pipe, no sockets) on a fresh
//! in-memory broker per input. What must hold: no panic on any task (libFuzzer's panic hook
//! aborts), the connection ends once the client's side is closed (no hang: time is paused, so
//! the heartbeat and close timeouts pass at once when everything waits), everything the broker
//! wrote is whole, well-formed frames, and the connection is deregistered afterwards.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
// The capped allocator (ottermq_fuzz's lib.rs).
use ottermq_broker::{Broker, BrokerConfig};
use ottermq_fuzz as _;
use ottermq_protocol::{
    decode_frame, encode_method, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable,
    FieldValue, LongStr, Method, ShortStr, PROTOCOL_HEADER,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(run(data));
});

async fn run(data: &[u8]) {
    let broker = Broker::new(BrokerConfig::default());
    let (client, server) = tokio::io::duplex(1 << 20);
    let (srd, swr) = tokio::io::split(server);
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let serve = tokio::spawn(ottermq_broker::connection::serve_transport(
        broker.clone(),
        Box::new(srd),
        Box::new(swr),
        peer,
        None,
    ));
    let (mut crd, mut cwr) = tokio::io::split(client);
    let drain = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = crd.read_to_end(&mut out).await;
        out
    });
    let _ = cwr.write_all(&handshake()).await;
    let _ = cwr.write_all(data).await;
    let _ = cwr.shutdown().await;
    // Virtual time: heartbeats are off, the close handshake waits 3 s and the writer 5 s.
    match tokio::time::timeout(Duration::from_secs(600), serve).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        Err(_) => panic!("connection did not end after the client closed its side"),
    }
    drop(cwr);
    let out = match tokio::time::timeout(Duration::from_secs(60), drain).await {
        Ok(Ok(out)) => out,
        other => panic!("reading the broker's output failed: {other:?}"),
    };
    let mut buf = BytesMut::from(&out[..]);
    loop {
        match decode_frame(&mut buf, 0) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("broker wrote a malformed frame: {e:?}"),
        }
    }
    assert!(buf.is_empty(), "broker output ends in a partial frame");
    assert!(
        broker.connections().is_empty(),
        "connection not deregistered"
    );
}

/// Protocol header, start-ok (PLAIN guest/guest with the usual capabilities), tune-ok
/// (frame_max 131072, heartbeat off) and connection.open of "/", written at once.
fn handshake() -> Vec<u8> {
    let mut caps = FieldTable::new();
    for c in [
        "publisher_confirms",
        "consumer_cancel_notify",
        "connection.blocked",
        "basic.nack",
    ] {
        caps.insert(c, FieldValue::Bool(true));
    }
    let mut props = FieldTable::new();
    props.insert("capabilities", FieldValue::Table(caps));
    props.insert(
        "product",
        FieldValue::LongStr(LongStr::from("ottermq-fuzz")),
    );
    let mut out = BytesMut::new();
    out.extend_from_slice(PROTOCOL_HEADER);
    encode_method(
        &mut out,
        0,
        &Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: props,
            mechanism: ShortStr::from_static("PLAIN"),
            response: LongStr::from(b"\0guest\0guest".to_vec()),
            locale: ShortStr::from_static("en_US"),
        }),
    );
    encode_method(
        &mut out,
        0,
        &Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        }),
    );
    encode_method(
        &mut out,
        0,
        &Method::ConnectionOpen(ConnectionOpen {
            virtual_host: ShortStr::from_static("/"),
        }),
    );
    out.to_vec()
}
