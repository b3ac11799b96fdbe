//! Resource limits, each exceeded by a real client: node and per-user connection limits
//! (530 NOT_ALLOWED at connection.open), the per-vhost queue limit (406 on queue.declare) and
//! the per-address failed-login limit (403 even with the right password). A well-behaved
//! connection opened first keeps working throughout.

mod common;
use common::*;
use ottermq::config::Settings;
use ottermq_broker::UserConfig;

async fn start(f: impl FnOnce(&mut Settings)) -> (ottermq::RunningServer, String) {
    let server = ottermq::testing::start_test_broker_with(f).await;
    let addr = server.amqp_addr;
    (server, addr.to_string())
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
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, addr) = start(|s| s.broker.max_connections = 2).await;
    let url = format!("amqp://guest:guest@{addr}/%2f");
    let witness = connect(&url).await.expect("first");
    let second = connect(&url).await.expect("second");
    match connect(&url).await {
        Ok(_) => panic!("third connection admitted over a limit of 2"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }
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
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, addr) = start(|s| {
        s.broker.max_connections_per_user = 1;
        s.broker.users.push(UserConfig {
            name: "app".into(),
            password: "pw".into(),
            tags: vec![],
        });
    })
    .await;
    let guest = format!("amqp://guest:guest@{addr}/%2f");
    let witness = connect(&guest).await.expect("guest");
    match connect(&guest).await {
        Ok(_) => panic!("second guest connection admitted over a per-user limit of 1"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }
    let app = connect(&format!("amqp://app:pw@{addr}/%2f"))
        .await
        .expect("another user is not limited by guest's connections");
    witness_round_trip(&witness, "user-limit-witness").await;
    drop(app);
    server.shutdown().await;
}

#[tokio::test]
async fn vhost_queue_limit_is_precondition_failed() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, addr) = start(|s| s.broker.max_queues_per_vhost = 3).await;
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
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, addr) = start(|s| s.broker.auth_failures_per_minute = 3).await;
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
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, addr) = start(|s| s.broker.max_message_size = 1024).await;
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
    witness_round_trip(&w, "size-witness").await;
    server.shutdown().await;
}

#[tokio::test]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, addr) = start(|s| {
        s.broker.handshake_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let w = witness(&addr).await;
    let started = std::time::Instant::now();
    // Says nothing at all; then one that stops after the protocol header.
    let mut silent = Raw::connect(server.amqp_addr).await;
    let mut half = Raw::connect(server.amqp_addr).await;
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
    witness_round_trip(&w, "handshake-witness").await;
    server.shutdown().await;
}

#[tokio::test]
async fn field_tables_nested_too_deep_close_the_connection_with_501() {
    use ottermq_protocol::*;
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, addr) = start(|_| {}).await;
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
    witness_round_trip(&w, "depth-witness").await;
    server.shutdown().await;
}
