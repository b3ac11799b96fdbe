//! Connection-level behaviour: handshake, authentication, negotiation, heartbeats, protocol
//! header mismatch.

use crate::common;
use common::*;
use ottermq_protocol::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn plain_login_and_server_capabilities() {
    let b = broker().await;
    let conn = lapin_connect(&b.url).await;
    let mut r = Raw::connect(b.addr).await;
    r.send_bytes(PROTOCOL_HEADER).await;
    let (_, m) = r.method().await.expect("start");
    let Method::ConnectionStart(start) = m else {
        panic!("{m:?}")
    };
    let caps = match start.server_properties.get("capabilities") {
        Some(FieldValue::Table(t)) => t.clone(),
        other => panic!("no capabilities table: {other:?}"),
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(caps.get(cap), Some(&FieldValue::Bool(true)), "{cap}");
    }
    within("close", conn.close(200, "bye".into()))
        .await
        .expect("close");
    b.stop().await;
}

#[tokio::test]
async fn wrong_password_is_access_refused() {
    let logs = logs::capture();
    let b = broker().await;
    let url = b.url_with("guest", "wrong", "/");
    let r = within(
        "connect",
        lapin::Connection::connect(&url, Default::default()),
    )
    .await;
    match r {
        Ok(_) => panic!("login with a wrong password succeeded"),
        Err(e) => assert_eq!(reply_code(&e), Some(403), "{e:?}"),
    }
    if !b.is_external() {
        // The client is told nothing; the log says why.
        logs.line_with(&[
            "login refused",
            "protocol=\"amqp091\"",
            "user=guest",
            "reason=\"invalid credentials\"",
        ])
        .await;
    }
    b.stop().await;
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let b = broker().await;
    let url = b.url_with("guest", "guest", "no-such-vhost");
    match within(
        "connect",
        lapin::Connection::connect(&url, Default::default()),
    )
    .await
    {
        Ok(_) => panic!("opened a vhost that does not exist"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }
    b.stop().await;
}

#[tokio::test]
async fn amqplain_login_works() {
    let b = broker().await;
    let mut r = Raw::connect(b.addr).await;
    r.send_bytes(PROTOCOL_HEADER).await;
    let (_, m) = r.method().await.expect("start");
    let Method::ConnectionStart(start) = m else {
        panic!("{m:?}")
    };
    assert!(start.mechanisms.to_string_lossy().contains("AMQPLAIN"));
    let mut creds = FieldTable::new();
    creds.insert("LOGIN", FieldValue::LongStr("guest".into()));
    creds.insert("PASSWORD", FieldValue::LongStr("guest".into()));
    let mut enc = bytes::BytesMut::new();
    creds.encode(&mut enc);
    let response = LongStr::from(enc[4..].to_vec()); // AMQPLAIN: the table without its length
    r.send(
        0,
        &Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: FieldTable::new(),
            mechanism: "AMQPLAIN".into(),
            response,
            locale: "en_US".into(),
        }),
    )
    .await;
    let (_, m) = r.method().await.expect("tune");
    assert!(matches!(m, Method::ConnectionTune(_)), "{m:?}");
    b.stop().await;
}

#[tokio::test]
async fn negotiated_limits_follow_the_client() {
    let b = broker().await;
    let url = format!("{}?frame_max=8192&channel_max=10&heartbeat=5", b.url);
    let conn = lapin_connect(&url).await;
    let cfg = conn.configuration();
    assert_eq!(cfg.frame_max(), 8192);
    assert_eq!(cfg.channel_max(), 10);
    assert_eq!(cfg.heartbeat(), 5);
    // A body larger than frame_max is split and still arrives whole.
    let ch = within("channel", conn.create_channel())
        .await
        .expect("channel");
    let q = within(
        "declare",
        ch.queue_declare("".into(), Default::default(), Default::default()),
    )
    .await
    .expect("declare");
    let body = vec![7u8; 100_000];
    within(
        "publish",
        ch.basic_publish(
            "".into(),
            q.name().clone(),
            Default::default(),
            &body,
            Default::default(),
        ),
    )
    .await
    .expect("publish");
    let got = within("get", ch.basic_get(q.name().clone(), Default::default()))
        .await
        .expect("get")
        .expect("message");
    assert_eq!(got.delivery.data, body);
    b.stop().await;
}

#[tokio::test]
async fn wrong_protocol_header_gets_ours_and_a_close() {
    let b = broker().await;
    for hello in [&b"AMQP\x00\x00\x08\x00"[..], b"GET / HTTP/1.1\r\n\r\n"] {
        let mut r = Raw::connect(b.addr).await;
        r.send_bytes(hello).await;
        let mut got = Vec::new();
        let mut scratch = [0u8; 64];
        loop {
            use tokio::io::AsyncReadExt;
            match within("read", r.sock.read(&mut scratch)).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&scratch[..n]),
            }
        }
        assert_eq!(got, PROTOCOL_HEADER.to_vec());
    }
    b.stop().await;
}

#[tokio::test]
async fn silent_peer_is_dropped_after_two_heartbeats() {
    let logs = logs::capture();
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 1).await;
    let peer = format!("peer={}", r.sock.local_addr().expect("local address"));
    let start = Instant::now();
    // The broker sends heartbeats while we say nothing ...
    let mut saw_heartbeat = false;
    while let Some(f) = r.frame().await {
        if matches!(f, Frame::Heartbeat { .. }) {
            saw_heartbeat = true;
        }
    }
    // ... and closes the socket once two intervals pass without a frame from us.
    let waited = start.elapsed();
    assert!(saw_heartbeat, "broker sent no heartbeat");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "closed after {waited:?}"
    );
    if !b.is_external() {
        logs.line_with(&["missed heartbeats from client, closing", &peer])
            .await;
    }
    b.stop().await;
}

#[tokio::test]
async fn server_closes_with_connection_forced_on_shutdown() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // needs control over the broker's lifetime
    }
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 0).await;
    b.stop().await;
    let (_, m) = r.method().await.expect("close");
    let Method::ConnectionClose(c) = m else {
        panic!("{m:?}")
    };
    assert_eq!(c.reply_code, 320);
}

#[tokio::test]
async fn client_initiated_close_gets_close_ok() {
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 0).await;
    r.send(
        0,
        &Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: "bye".into(),
            class_id: 0,
            method_id: 0,
        }),
    )
    .await;
    let (_, m) = r.method().await.expect("close-ok");
    assert!(matches!(m, Method::ConnectionCloseOk), "{m:?}");
    b.stop().await;
}

#[tokio::test]
async fn configured_users_and_vhosts() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // configures the broker it starts
    }
    let server = ottermq::testing::start_test_broker_with(|s| {
        s.broker.vhosts.push("app".into());
        s.broker.users.push(ottermq_broker::UserConfig {
            name: "svc".into(),
            password: "s3cret".into(),
            tags: vec![],
        });
    })
    .await;
    let url = format!("amqp://svc:s3cret@{}/app", server.amqp_addr);
    let conn = lapin_connect(&url).await;
    let ch = within("channel", conn.create_channel())
        .await
        .expect("channel");
    within(
        "declare",
        ch.queue_declare("in-app".into(), Default::default(), Default::default()),
    )
    .await
    .expect("declare");
    // The queue lives in vhost "app", not in "/".
    let guest = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let gch = within("channel", guest.create_channel())
        .await
        .expect("channel");
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    assert_code(
        within(
            "passive",
            gch.queue_declare("in-app".into(), passive, Default::default()),
        )
        .await,
        404,
    );
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_method_arguments_are_a_frame_error() {
    let b = broker().await;
    let mut r = Raw::handshake(b.addr, 0).await;
    // queue.declare (50/10) cut off in the middle of its queue name.
    let payload = [0u8, 50, 0, 10, 0, 0, 9, b'a', b'b'];
    let mut f = bytes::BytesMut::new();
    f.extend_from_slice(&[FRAME_METHOD, 0, 1]);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.extend_from_slice(&[FRAME_END]);
    r.send_bytes(&f).await;
    loop {
        match r.method().await {
            Some((0, Method::ConnectionClose(c))) => {
                // RabbitMQ 3.10 answers FRAME_ERROR "cannot decode ..." here, not SYNTAX_ERROR.
                assert_eq!(c.reply_code, 501, "{c:?}");
                assert_eq!((c.class_id, c.method_id), (50, 10));
                break;
            }
            Some(_) => continue,
            None => panic!("closed without connection.close"),
        }
    }
    b.stop().await;
}

#[tokio::test]
async fn malformed_plain_response_is_a_syntax_error() {
    let b = broker().await;
    // PLAIN wants "\0user\0password"; without the NULs it cannot be read at all.
    let mut r = Raw::start_ok(b.addr, "PLAIN", b"guestguest").await;
    match r.method().await {
        Some((0, Method::ConnectionClose(c))) => {
            // RabbitMQ: protocol_error(syntax_error, "response ~tp invalid").
            assert_eq!(c.reply_code, 502, "{c:?}");
            assert_eq!((c.class_id, c.method_id), (10, 11));
        }
        other => panic!("expected connection.close 502, got {other:?}"),
    }
    // A well-formed client is still served.
    let ok = lapin_connect(&b.url).await;
    assert!(ok.status().connected());
    b.stop().await;
}
