//! Resource limits, each exceeded by a real client or a raw socket: node and per-user
//! connection limits (530 NOT_ALLOWED at connection.open), the per-vhost queue limit (406 on
//! queue.declare), the per-address failed-login limit over AMQP and HTTP (403 / 401 even with
//! the right password), frame size (501), channel_max (504), message size (406), field-table
//! depth (501) and the handshake timeout. Each asserts the reply code and the broker's log line
//! for the refusal (`common::logs`); a well-behaved connection opened first keeps working
//! throughout.

use crate::common;
use common::*;
use logs::Logs;
use ottermq::config::Settings;
use ottermq_broker::UserConfig;

/// This test's log capture and a broker started with `f`'s settings; None against an
/// external broker (`OTTERMQ_TEST_URL`): these tests set its limits and read its log.
async fn start(f: impl FnOnce(&mut Settings)) -> Option<(Logs, ottermq::RunningServer, String)> {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return None;
    }
    let logs = logs::capture();
    let server = ottermq::testing::start_test_broker_with(f).await;
    let addr = server.amqp_addr.to_string();
    Some((logs, server, addr))
}

async fn connect(url: &str) -> Result<lapin::Connection, lapin::Error> {
    within(
        "connect",
        lapin::Connection::connect(url, Default::default()),
    )
    .await
}

/// The witness: declares, publishes and gets one message, so a broken broker shows here.
async fn witness_round_trip(conn: &lapin::Connection, queue: &str) {
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare(queue.into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    within(
        "publish",
        ch.basic_publish(
            "".into(),
            queue.into(),
            Default::default(),
            b"alive",
            Default::default(),
        ),
    )
    .await
    .unwrap();
    let mut got = None;
    for _ in 0..50 {
        got = within("get", ch.basic_get(queue.into(), Default::default()))
            .await
            .unwrap();
        if got.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(got.expect("witness message").delivery.data, b"alive");
}

#[tokio::test]
async fn node_connection_limit_refuses_with_530_and_frees_on_close() {
    let Some((logs, server, addr)) = start(|s| s.broker.max_connections = 2).await else {
        return;
    };
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let witness = connect(&url).await.expect("first");
    let second = connect(&url).await.expect("second");
    match connect(&url).await {
        Ok(_) => panic!("third connection admitted over a limit of 2"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }
    logs.line_with(&[
        "connection refused",
        "code=530",
        "node connection limit (2) is reached",
    ])
    .await;
    witness_round_trip(&witness, "limit-witness").await;
    within("close", second.close(200, "bye".into()))
        .await
        .unwrap();
    // The freed slot is usable again (the close is processed asynchronously).
    let mut admitted = None;
    for _ in 0..50 {
        if let Ok(c) = connect(&url).await {
            admitted = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        admitted.is_some(),
        "a slot freed by close-ok was not reused"
    );
    witness_round_trip(&witness, "limit-witness").await;
    server.shutdown().await;
}

#[tokio::test]
async fn per_user_connection_limit_refuses_only_that_user() {
    let Some((logs, server, addr)) = start(|s| {
        s.broker.max_connections_per_user = 1;
        s.broker.users.push(UserConfig {
            name: "app".into(),
            password: "pw".into(),
            tags: vec![],
        });
    })
    .await
    else {
        return;
    };
    let guest = format!("amqp://guest:guest@{addr}/%2f");
    let witness = connect(&guest).await.expect("guest");
    match connect(&guest).await {
        Ok(_) => panic!("second guest connection admitted over a per-user limit of 1"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }
    logs.line_with(&[
        "connection refused",
        "code=530",
        "user 'guest': user connection limit (1) is reached",
    ])
    .await;
    let app = connect(&format!("amqp://app:pw@{addr}/%2f"))
        .await
        .expect("another user is not limited by guest's connections");
    witness_round_trip(&witness, "user-limit-witness").await;
    drop(app);
    server.shutdown().await;
}

#[tokio::test]
async fn vhost_queue_limit_is_precondition_failed() {
    let Some((logs, server, addr)) = start(|s| s.broker.max_queues_per_vhost = 3).await else {
        return;
    };
    let conn = connect(&format!("amqp://guest:guest@{addr}/%2f"))
        .await
        .unwrap();
    let ch = within("channel", conn.create_channel()).await.unwrap();
    for q in ["q1", "q2", "q3"] {
        within(
            "declare",
            ch.queue_declare(q.into(), Default::default(), Default::default()),
        )
        .await
        .unwrap();
    }
    // Re-declaring an existing queue is not a new queue.
    within(
        "redeclare",
        ch.queue_declare("q1".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    assert_code(
        within(
            "declare over limit",
            ch.queue_declare("q4".into(), Default::default(), Default::default()),
        )
        .await,
        406,
    );
    logs.line_with(&[
        "channel exception",
        "code=406",
        "queue limit in vhost '/' (3) is reached",
    ])
    .await;
    // Only the channel closed; the connection still works, and a freed slot is usable.
    let ch2 = within("channel", conn.create_channel()).await.unwrap();
    within("delete", ch2.queue_delete("q3".into(), Default::default()))
        .await
        .unwrap();
    within(
        "declare after delete",
        ch2.queue_declare("q4".into(), Default::default(), Default::default()),
    )
    .await
    .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let Some((logs, server, addr)) = start(|s| s.broker.auth_failures_per_minute = 3).await else {
        return;
    };
    let good = format!("amqp://guest:guest@{addr}/%2f");
    let witness = connect(&good).await.expect("witness");
    let bad = format!("amqp://guest:nope@{addr}/%2f");
    for _ in 0..3 {
        match connect(&bad).await {
            Ok(_) => panic!("wrong password accepted"),
            Err(e) => assert_eq!(reply_code(&e), Some(403), "{e:?}"),
        }
    }
    // Used up: even the right password is refused from this address for the rest of the minute.
    match connect(&good).await {
        Ok(_) => panic!("login admitted from a throttled address"),
        Err(e) => assert_eq!(reply_code(&e), Some(403), "{e:?}"),
    }
    logs.line_with(&[
        "login refused",
        "protocol=\"amqp091\"",
        "too many failed logins from this address",
    ])
    .await;
    // Connections already open are not affected.
    witness_round_trip(&witness, "auth-witness").await;
    server.shutdown().await;
}

/// A second, well-behaved client that must be served while another breaks a limit.
async fn witness(addr: &str) -> lapin::Connection {
    connect(&format!("amqp://guest:guest@{addr}/%2f"))
        .await
        .expect("witness")
}

#[tokio::test]
async fn message_over_max_size_is_precondition_failed_on_its_channel() {
    use ottermq_protocol::*;
    let Some((logs, server, addr)) = start(|s| s.broker.max_message_size = 1024).await else {
        return;
    };
    let w = witness(&addr).await;
    let mut r = Raw::handshake(server.amqp_addr, 0).await;
    r.send(1, &Method::ChannelOpen).await;
    assert!(matches!(r.method().await, Some((1, Method::ChannelOpenOk))));
    // The content header announces 2,048 bytes: refused before any body is read.
    r.publish(1, "", "anywhere", &[0u8; 2048]).await;
    match within("channel.close", r.method()).await {
        Some((1, Method::ChannelClose(c))) => assert_eq!(c.reply_code, 406, "{c:?}"),
        other => panic!("expected channel.close 406, got {other:?}"),
    }
    logs.line_with(&[
        "channel exception",
        "code=406",
        "message size 2048 is larger than configured max size 1024",
    ])
    .await;
    witness_round_trip(&w, "size-witness").await;
    server.shutdown().await;
}

#[tokio::test]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    let Some((logs, server, addr)) = start(|s| {
        s.broker.handshake_timeout = std::time::Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let w = witness(&addr).await;
    let started = std::time::Instant::now();
    // Says nothing at all; then one that stops after the protocol header.
    let mut silent = Raw::connect(server.amqp_addr).await;
    let mut half = Raw::connect(server.amqp_addr).await;
    let ports = [&silent, &half].map(|r| format!("peer=127.0.0.1:{}", local_port(r)));
    half.send_bytes(ottermq_protocol::PROTOCOL_HEADER).await;
    assert!(silent.closed().await, "a silent client was not dropped");
    assert!(
        half.closed().await,
        "a client stuck in the handshake was not dropped"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "dropped only after {:?}",
        started.elapsed()
    );
    for p in &ports {
        logs.line_with(&["handshake timed out", p]).await;
    }
    witness_round_trip(&w, "handshake-witness").await;
    server.shutdown().await;
}

#[tokio::test]
async fn field_tables_nested_too_deep_close_the_connection_with_501() {
    use ottermq_protocol::*;
    let Some((logs, server, addr)) = start(|_| {}).await else {
        return;
    };
    let w = witness(&addr).await;
    let mut r = Raw::handshake(server.amqp_addr, 0).await;
    r.send(1, &Method::ChannelOpen).await;
    assert!(matches!(r.method().await, Some((1, Method::ChannelOpenOk))));
    // queue.declare whose arguments nest a table MAX_TABLE_DEPTH + 8 levels deep.
    let mut t = FieldTable::new();
    for _ in 0..(MAX_TABLE_DEPTH + 8) {
        let mut outer = FieldTable::new();
        outer.insert("x", FieldValue::Table(t));
        t = outer;
    }
    r.send(
        1,
        &Method::QueueDeclare(QueueDeclare {
            queue: "deep".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: t,
        }),
    )
    .await;
    loop {
        match within("connection.close", r.method()).await {
            Some((0, Method::ConnectionClose(c))) => {
                assert_eq!(c.reply_code, 501, "{c:?}");
                break;
            }
            Some(_) => continue,
            None => panic!("closed without connection.close"),
        }
    }
    expect_close_logged(&logs, &r, 501, "field table nesting too deep").await;
    witness_round_trip(&w, "depth-witness").await;
    server.shutdown().await;
}

fn local_port(r: &Raw) -> u16 {
    r.sock.local_addr().expect("local address").port()
}

/// The broker's "closing connection" line for the raw client `r`, with its code and text.
async fn expect_close_logged(logs: &Logs, r: &Raw, code: u16, text: &str) {
    let peer = format!("peer=127.0.0.1:{}", local_port(r));
    let code = format!("code={code}");
    logs.line_with(&["closing connection", &peer, &code, text])
        .await;
}

/// Waits for connection.close on channel 0 (skipping anything else) and returns its code.
async fn connection_close_code(r: &mut Raw) -> u16 {
    use ottermq_protocol::Method;
    loop {
        match within("connection.close", r.method()).await {
            Some((0, Method::ConnectionClose(c))) => return c.reply_code,
            Some(_) => continue,
            None => panic!("closed without connection.close"),
        }
    }
}

#[tokio::test]
async fn frame_above_frame_max_is_refused_from_its_header_with_501() {
    let Some((logs, server, addr)) = start(|s| s.broker.frame_max = 16_384).await else {
        return;
    };
    let w = witness(&addr).await;
    let mut r = Raw::handshake(server.amqp_addr, 0).await;
    // (16 KiB: lapin, the witness, asks for at least 8 KiB.) Only the 7-byte header of a
    // method frame one byte over frame_max, and a few payload
    // bytes: the broker must refuse it without waiting for (or buffering) the rest.
    let mut header = vec![ottermq_protocol::FRAME_METHOD, 0, 1];
    header.extend_from_slice(&16_385u32.to_be_bytes());
    header.extend_from_slice(&[0u8; 16]);
    r.send_bytes(&header).await;
    assert_eq!(connection_close_code(&mut r).await, 501);
    // The size the broker reports is the whole frame: payload plus 8 bytes of framing.
    expect_close_logged(
        &logs,
        &r,
        501,
        "frame size 16393 exceeds negotiated frame_max 16384",
    )
    .await;
    witness_round_trip(&w, "frame-witness").await;
    server.shutdown().await;
}

#[tokio::test]
async fn channel_above_channel_max_is_a_channel_error_504() {
    use ottermq_protocol::Method;
    let Some((logs, server, addr)) = start(|s| s.broker.channel_max = 8).await else {
        return;
    };
    let w = witness(&addr).await;
    let mut r = Raw::handshake(server.amqp_addr, 0).await;
    r.send(8, &Method::ChannelOpen).await;
    assert!(matches!(r.method().await, Some((8, Method::ChannelOpenOk))));
    r.send(9, &Method::ChannelOpen).await;
    assert_eq!(connection_close_code(&mut r).await, 504);
    expect_close_logged(
        &logs,
        &r,
        504,
        "channel 9 is above the negotiated channel_max 8",
    )
    .await;
    witness_round_trip(&w, "channel-max-witness").await;
    server.shutdown().await;
}

/// GET /api/overview with basic auth; returns the status and the body.
async fn api_overview(base: &str, user: &str, pass: &str) -> (u16, String) {
    use base64::Engine;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    api_overview_raw(base, "127.0.0.1", format!("Basic {creds}").as_bytes()).await
}

/// A broker allowing 4 failed logins per address (within `window`, when given) with an
/// administrator `ops` / `secret`, for the login-limit tests.
async fn start_with_ops(
    window: Option<std::time::Duration>,
) -> Option<(Logs, ottermq::RunningServer, String)> {
    start(|s| {
        s.broker.auth_failures_per_minute = 4;
        if let Some(w) = window {
            s.broker.auth_failure_window = w;
        }
        s.broker.users.push(UserConfig {
            name: "ops".into(),
            password: "secret".into(),
            tags: vec!["administrator".into()],
        });
    })
    .await
}

/// `ottermq_auth_attempts_failed_total{protocol="..."}` from the unauthenticated `/metrics`.
async fn auth_failures_metric(base: &str, protocol: &str) -> u64 {
    let text = within("GET /metrics", reqwest::get(format!("{base}/metrics")))
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("body");
    let series = format!("ottermq_auth_attempts_failed_total{{protocol=\"{protocol}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .trim()
        .parse()
        .expect("a count")
}

#[tokio::test]
async fn http_basic_auth_failures_share_the_per_address_limit_and_metric() {
    let Some((logs, server, addr)) = start_with_ops(None).await else {
        return;
    };
    let base = format!("http://{}", server.http_addr.expect("http listener"));
    let w = witness(&addr).await;
    assert_eq!(api_overview(&base, "ops", "secret").await.0, 200);
    // Two failures over HTTP (a wrong password, an unknown user: the same answer for both),
    // one over AMQP: they add up in one metric, by protocol, and in one per-address window.
    let wrong = api_overview(&base, "ops", "wrong").await;
    let unknown = api_overview(&base, "nobody", "secret").await;
    assert_eq!(wrong.0, 401);
    assert_eq!(wrong, unknown, "a 401 must not tell which part was wrong");
    let refused: serde_json::Value = serde_json::from_str(&wrong.1).expect("JSON error");
    assert_eq!(refused["error"], "not_authorized", "{refused}");
    match connect(&format!("amqp://ops:wrong@{addr}/%2f")).await {
        Ok(_) => panic!("wrong password accepted"),
        Err(e) => assert_eq!(reply_code(&e), Some(403), "{e:?}"),
    }
    assert_eq!(auth_failures_metric(&base, "http").await, 2);
    assert_eq!(auth_failures_metric(&base, "amqp091").await, 1);
    assert_eq!(api_overview(&base, "ops", "wrong").await.0, 401);
    // Four used up: the right password is refused from this address over HTTP, with the
    // same body as a wrong one, and over AMQP.
    assert_eq!(
        api_overview(&base, "ops", "secret").await,
        wrong,
        "a throttled login must look like any other refused one"
    );
    match connect(&format!("amqp://ops:secret@{addr}/%2f")).await {
        Ok(_) => panic!("login admitted from a throttled address"),
        Err(e) => assert_eq!(reply_code(&e), Some(403), "{e:?}"),
    }
    assert_eq!(auth_failures_metric(&base, "http").await, 4);
    assert_eq!(auth_failures_metric(&base, "amqp091").await, 2);
    logs.line_with(&[
        "login refused",
        "protocol=\"http\"",
        "user=nobody",
        "user unknown",
    ])
    .await;
    logs.line_with(&[
        "login refused",
        "protocol=\"http\"",
        "user=ops",
        "too many failed logins from this address",
    ])
    .await;
    // The connection opened before is still served.
    witness_round_trip(&w, "http-auth-witness").await;
    server.shutdown().await;
}

/// GET /api/overview from source address `from` with the raw `Authorization` value `auth`.
async fn api_overview_raw(base: &str, from: &str, auth: &[u8]) -> (u16, String) {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().expect("address"))
        .build()
        .expect("client");
    let value = reqwest::header::HeaderValue::from_bytes(auth).expect("header value");
    let r = within(
        "GET /api/overview",
        client
            .get(format!("{base}/api/overview"))
            .header(reqwest::header::AUTHORIZATION, value)
            .send(),
    )
    .await
    .expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

#[tokio::test]
async fn malformed_authorization_headers_count_as_failed_logins() {
    use base64::Engine;
    let window = std::time::Duration::from_secs(4);
    let Some((logs, server, addr)) = start_with_ops(Some(window)).await else {
        return;
    };
    let base = format!("http://{}", server.http_addr.expect("http listener"));
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let good = format!("Basic {}", b64(b"ops:secret"));
    let w = witness(&addr).await;
    // A wrong password from another address: the body every refusal must look like.
    let wrong = api_overview_raw(
        &base,
        "127.0.0.3",
        format!("Basic {}", b64(b"ops:x")).as_bytes(),
    )
    .await;
    assert_eq!(wrong.0, 401);
    let started = std::time::Instant::now();
    // Four headers that hold no readable credentials: another scheme, bad base64, no colon,
    // not UTF-8. Each is refused like a wrong password and counted.
    let malformed: [Vec<u8>; 4] = [
        format!("Bearer {}", b64(b"ops:secret")).into_bytes(),
        b"Basic !!!not-base64!!!".to_vec(),
        format!("Basic {}", b64(b"opssecret")).into_bytes(),
        format!("Basic {}", b64(b"\xff\xfe:secret")).into_bytes(),
    ];
    for m in &malformed {
        assert_eq!(
            api_overview_raw(&base, "127.0.0.1", m).await,
            wrong,
            "a malformed header must get a wrong password's 401 ({})",
            String::from_utf8_lossy(m)
        );
    }
    // The limit (4) is used up: the right password is refused from this address, over HTTP
    // and AMQP alike, while another address is served.
    assert_eq!(
        api_overview_raw(&base, "127.0.0.1", good.as_bytes()).await,
        wrong,
        "malformed headers did not count against the limit"
    );
    match connect(&format!("amqp://ops:secret@{addr}/%2f")).await {
        Ok(_) => panic!("AMQP login admitted from a throttled address"),
        Err(e) => assert_eq!(reply_code(&e), Some(403), "{e:?}"),
    }
    assert!(
        started.elapsed() < window,
        "the machine was too slow to check within the window"
    );
    assert_eq!(
        api_overview_raw(&base, "127.0.0.2", good.as_bytes())
            .await
            .0,
        200,
        "another address must not be limited"
    );
    // 1 wrong password + 4 malformed + 1 throttled over HTTP.
    assert_eq!(auth_failures_metric(&base, "http").await, 6);
    logs.line_with(&[
        "login refused",
        "protocol=\"http\"",
        "peer=127.0.0.1",
        "malformed credentials",
    ])
    .await;
    logs.line_with(&[
        "login refused",
        "protocol=\"http\"",
        "peer=127.0.0.1",
        "too many failed logins from this address",
    ])
    .await;
    // Once the window has passed, the address is served again.
    tokio::time::sleep(
        (started + window + std::time::Duration::from_millis(200)) - std::time::Instant::now(),
    )
    .await;
    assert_eq!(
        api_overview_raw(&base, "127.0.0.1", good.as_bytes())
            .await
            .0,
        200
    );
    witness_round_trip(&w, "malformed-auth-witness").await;
    server.shutdown().await;
}

/// A SASL response that cannot be read (PLAIN without its NULs, AMQPLAIN that is not a table)
/// is a 502, as RabbitMQ answers it, and still counts against the address's failed logins.
#[tokio::test]
async fn malformed_sasl_responses_count_as_failed_logins() {
    use ottermq_protocol::*;
    let Some((logs, server, addr)) = start_with_ops(None).await else {
        return;
    };
    let base = format!("http://{}", server.http_addr.expect("http listener"));
    let w = witness(&addr).await;
    let sock: std::net::SocketAddr = addr.parse().expect("address");
    let garbage: [(&str, &[u8]); 4] = [
        ("PLAIN", b"opssecret"),
        ("PLAIN", b"\0ops"),
        ("AMQPLAIN", b"\x05LOGIN"),
        ("AMQPLAIN", b"\xff\xff\xff\xff"),
    ];
    for (mechanism, response) in garbage {
        let mut r = Raw::start_ok(sock, mechanism, response).await;
        match r.method().await {
            Some((0, Method::ConnectionClose(c))) => assert_eq!(c.reply_code, 502, "{c:?}"),
            other => panic!("{mechanism} {response:?}: expected close 502, got {other:?}"),
        }
    }
    // The limit (4) is used up: the right password is refused from this address.
    match connect(&format!("amqp://ops:secret@{addr}/%2f")).await {
        Ok(_) => panic!("login admitted after four unreadable responses"),
        Err(e) => assert_eq!(reply_code(&e), Some(403), "{e:?}"),
    }
    // 4 unreadable + 1 throttled.
    assert_eq!(auth_failures_metric(&base, "amqp091").await, 5);
    logs.line_with(&[
        "login refused",
        "protocol=\"amqp091\"",
        "malformed credentials",
    ])
    .await;
    witness_round_trip(&w, "malformed-sasl-witness").await;
    server.shutdown().await;
}

/// Management clients that trickle a request head, say nothing, or idle on a kept-alive
/// connection are closed after `http_header_timeout` (slowloris), logged, while a
/// well-behaved HTTP client and an AMQP client are served throughout.
#[tokio::test]
async fn slow_http_clients_are_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((logs, server, addr)) =
        start(|s| s.broker.http_header_timeout = std::time::Duration::from_secs(1)).await
    else {
        return;
    };
    let http = server.http_addr.expect("http listener");
    let base = format!("http://{http}");
    let w = witness(&addr).await;
    let silent = Raw::connect(http).await;
    let mut idle = Raw::connect(http).await;
    idle.send_bytes(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut first = [0u8; 12];
    within("response", idle.sock.read_exact(&mut first))
        .await
        .expect("a response on the kept-alive connection");
    assert_eq!(&first, b"HTTP/1.1 200");
    // One header byte every 200 ms: it never completes, yet the connection keeps moving.
    let mut slow = tokio::net::TcpStream::connect(http).await.expect("connect");
    let (mut rd, mut wr) = slow.split();
    let trickle = async {
        wr.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if wr.write_all(b"a").await.is_err() {
                return true;
            }
        }
        false
    };
    let eof = async {
        let mut scratch = [0u8; 256];
        loop {
            match rd.read(&mut scratch).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    };
    let dropped = tokio::select! {
        d = trickle => d,
        d = eof => d,
    };
    assert!(
        dropped,
        "a client trickling its headers for 20 s was not dropped"
    );
    // Meanwhile and after, a real client is served.
    assert_eq!(http_get(&base, "/live").await.status(), 200);
    for (what, mut r) in [("silent", silent), ("idle kept-alive", idle)] {
        assert!(r.closed().await, "the {what} connection was not closed");
    }
    logs.line_with(&["HTTP request header timed out", "peer=127.0.0.1:"])
        .await;
    assert_eq!(http_get(&base, "/live").await.status(), 200);
    witness_round_trip(&w, "slow-http-witness").await;
    server.shutdown().await;
}
