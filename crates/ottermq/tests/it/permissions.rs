//! Per-vhost permissions enforced on AMQP operations, with RabbitMQ 3.10's reply codes: each
//! refused operation closes its channel with 403 ACCESS_REFUSED naming the method, a vhost
//! without any permission refuses connection.open with 530 NOT_ALLOWED. Publishes are checked
//! over a raw socket (lapin reports a channel closed by a publish racily).

use crate::common;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use ottermq_broker::permissions::{PasswordHash, Permission, User};
use ottermq_broker::store::users::UserChange;
use ottermq_protocol::*;

const USER: &str = "limited";
const PASS: &str = "limited-pw";

fn add_user(server: &ottermq::RunningServer, name: &str, pass: &str) {
    server.broker.users.change(UserChange::PutUser(User {
        name: name.into(),
        hash: PasswordHash::new(pass),
        tags: vec![],
    }));
}

fn grant(server: &ottermq::RunningServer, user: &str, c: &str, w: &str, r: &str) {
    server.broker.users.change(UserChange::SetPermission {
        vhost: "/".into(),
        user: user.into(),
        perm: Permission::new(c, w, r).expect("regexes"),
    });
}

/// A broker with the limited user holding the given configure, write and read regexes on `/`.
async fn limited_broker(c: &str, w: &str, r: &str) -> ottermq::RunningServer {
    let server = ottermq::testing::start_test_broker().await;
    add_user(&server, USER, PASS);
    grant(&server, USER, c, w, r);
    server
}

fn url(server: &ottermq::RunningServer, user: &str, pass: &str) -> String {
    format!("amqp://{user}:{pass}@{}/%2f", server.amqp_addr)
}

/// A raw client through connection.open as `user`; returns the client and what the broker
/// answered to connection.open.
async fn raw_open(
    addr: std::net::SocketAddr,
    user: &str,
    pass: &str,
    vhost: &str,
) -> (Raw, Method) {
    let mut r = Raw::connect(addr).await;
    r.send_bytes(PROTOCOL_HEADER).await;
    let (_, m) = r.method().await.expect("start");
    assert!(matches!(m, Method::ConnectionStart(_)), "got {m:?}");
    r.send(
        0,
        &Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: ottermq_protocol::FieldTable::new(),
            mechanism: "PLAIN".into(),
            response: LongStr::from(format!("\0{user}\0{pass}").as_str()),
            locale: "en_US".into(),
        }),
    )
    .await;
    let (_, m) = r.method().await.expect("tune");
    let Method::ConnectionTune(t) = m else {
        panic!("expected tune, got {m:?}")
    };
    r.send(
        0,
        &Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: t.channel_max,
            frame_max: t.frame_max,
            heartbeat: 0,
        }),
    )
    .await;
    r.send(
        0,
        &Method::ConnectionOpen(ConnectionOpen {
            virtual_host: vhost.into(),
        }),
    )
    .await;
    let (_, m) = r.method().await.expect("answer to open");
    (r, m)
}

/// A plain (non-durable, non-exclusive) queue.declare of `queue`.
fn queue_declare(queue: &str, passive: bool) -> Method {
    Method::QueueDeclare(QueueDeclare {
        queue: queue.into(),
        passive,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: ottermq_protocol::FieldTable::new(),
    })
}

async fn raw_channel(r: &mut Raw, ch: u16) {
    r.send(ch, &Method::ChannelOpen).await;
    match r.method().await {
        Some((c, Method::ChannelOpenOk)) if c == ch => {}
        other => panic!("expected channel.open-ok, got {other:?}"),
    }
}

#[tokio::test]
async fn vhost_without_permissions_refuses_connection_open_with_530() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // sets users up through the in-process broker
    }
    let server = ottermq::testing::start_test_broker().await;
    add_user(&server, USER, PASS);
    // lapin sees the connection refused with NOT_ALLOWED.
    match lapin::Connection::connect(
        &url(&server, USER, PASS),
        lapin::ConnectionProperties::default(),
    )
    .await
    {
        Ok(_) => panic!("connection.open without permissions succeeded"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }
    // On the wire: connection.close 530 naming connection.open, RabbitMQ's text.
    let (mut r, m) = raw_open(server.amqp_addr, USER, PASS, "/").await;
    let Method::ConnectionClose(c) = m else {
        panic!("expected connection.close, got {m:?}")
    };
    assert_eq!((c.reply_code, c.class_id, c.method_id), (530, 10, 40));
    assert_eq!(
        c.reply_text.to_string(),
        "NOT_ALLOWED - access to vhost '/' refused for user 'limited'"
    );
    r.send(0, &Method::ConnectionCloseOk).await;
    // Any permission entry at all (even one matching nothing) opens the vhost, as in RabbitMQ.
    grant(&server, USER, "", "", "");
    let (_, m) = raw_open(server.amqp_addr, USER, PASS, "/").await;
    assert!(matches!(m, Method::ConnectionOpenOk), "got {m:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn each_operation_is_checked_against_its_permission() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    // configure: cfg-* and all-*; write: w-* and all-*; read: r-* and all-*.
    let server = limited_broker("^(cfg|all)-", "^(w|all)-", "^(r|all)-").await;
    // Objects made by guest (full permissions) for the limited user to act on.
    let admin = lapin_connect(&url(&server, "guest", "guest")).await;
    let ach = within("guest channel", admin.create_channel())
        .await
        .unwrap();
    for q in ["cfg-q", "all-q", "w-q", "r-q"] {
        within(
            "declare",
            ach.queue_declare(
                q.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
    }
    for x in ["cfg-x", "all-x", "r-x", "w-x", "other-x"] {
        within(
            "declare",
            ach.exchange_declare(
                x.into(),
                lapin::ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
    }

    let conn = lapin_connect(&url(&server, USER, PASS)).await;
    let chan = || async { within("channel", conn.create_channel()).await.unwrap() };
    let fanout = lapin::ExchangeKind::Fanout;
    let xd = ExchangeDeclareOptions::default();
    let t = FieldTable::default;

    // exchange.declare: configure on the exchange.
    let r = within(
        "x declare",
        chan()
            .await
            .exchange_declare("other-x".into(), fanout.clone(), xd, t()),
    )
    .await;
    match &r {
        Err(e) => assert!(
            format!("{e:?}").contains(
                "configure access to exchange 'other-x' in vhost '/' refused for user 'limited'"
            ),
            "{e:?}"
        ),
        Ok(_) => panic!("declare of other-x allowed"),
    }
    assert_code(r, 403);
    within(
        "allowed x declare",
        chan()
            .await
            .exchange_declare("cfg-new-x".into(), fanout.clone(), xd, t()),
    )
    .await
    .expect("configure on cfg-* allows declare");
    // Passive declares check nothing in 3.10.
    within(
        "passive",
        chan().await.exchange_declare(
            "other-x".into(),
            fanout.clone(),
            ExchangeDeclareOptions {
                passive: true,
                ..xd
            },
            t(),
        ),
    )
    .await
    .expect("passive declare needs no permission");

    // exchange.delete: configure.
    assert_code(
        within(
            "x delete",
            chan()
                .await
                .exchange_delete("w-x".into(), ExchangeDeleteOptions::default()),
        )
        .await,
        403,
    );

    // queue.declare / queue.delete: configure; queue.purge: read.
    let qd = QueueDeclareOptions::default();
    assert_code(
        within(
            "q declare",
            chan().await.queue_declare("w-q".into(), qd, t()),
        )
        .await,
        403,
    );
    within(
        "allowed q declare",
        chan().await.queue_declare("cfg-q".into(), qd, t()),
    )
    .await
    .expect("configure on cfg-q");
    assert_code(
        within(
            "q delete",
            chan()
                .await
                .queue_delete("r-q".into(), QueueDeleteOptions::default()),
        )
        .await,
        403,
    );
    assert_code(
        within(
            "q purge",
            chan()
                .await
                .queue_purge("cfg-q".into(), QueuePurgeOptions::default()),
        )
        .await,
        403,
    );
    within(
        "allowed purge",
        chan()
            .await
            .queue_purge("r-q".into(), QueuePurgeOptions::default()),
    )
    .await
    .expect("read on r-q allows purge");

    // queue.bind: write on the queue and read on the exchange.
    let qb = QueueBindOptions::default();
    assert_code(
        within(
            "bind, no write on queue",
            chan()
                .await
                .queue_bind("r-q".into(), "r-x".into(), "".into(), qb, t()),
        )
        .await,
        403,
    );
    assert_code(
        within(
            "bind, no read on exchange",
            chan()
                .await
                .queue_bind("w-q".into(), "w-x".into(), "".into(), qb, t()),
        )
        .await,
        403,
    );
    within(
        "allowed bind",
        chan()
            .await
            .queue_bind("w-q".into(), "r-x".into(), "".into(), qb, t()),
    )
    .await
    .expect("write on w-q and read on r-x allow the bind");
    // queue.unbind is the same check.
    assert_code(
        within(
            "unbind",
            chan()
                .await
                .queue_unbind("r-q".into(), "r-x".into(), "".into(), t()),
        )
        .await,
        403,
    );

    // exchange.bind: write on the destination, read on the source.
    let eb = ExchangeBindOptions::default();
    assert_code(
        within(
            "x bind",
            chan()
                .await
                .exchange_bind("r-x".into(), "r-x".into(), "".into(), eb, t()),
        )
        .await,
        403,
    );
    within(
        "allowed x bind",
        chan()
            .await
            .exchange_bind("w-x".into(), "r-x".into(), "".into(), eb, t()),
    )
    .await
    .expect("write on w-x, read on r-x");

    // basic.consume and basic.get: read on the queue.
    assert_code(
        within(
            "consume",
            chan().await.basic_consume(
                "w-q".into(),
                "c".into(),
                BasicConsumeOptions::default(),
                t(),
            ),
        )
        .await,
        403,
    );
    assert_code(
        within(
            "get",
            chan()
                .await
                .basic_get("cfg-q".into(), BasicGetOptions::default()),
        )
        .await,
        403,
    );
    within(
        "allowed get",
        chan()
            .await
            .basic_get("all-q".into(), BasicGetOptions::default()),
    )
    .await
    .expect("read on all-q");

    // Missing objects: the permission is checked first, as in RabbitMQ (403, not 404).
    assert_code(
        within(
            "delete missing",
            chan()
                .await
                .queue_delete("nope-q".into(), QueueDeleteOptions::default()),
        )
        .await,
        403,
    );

    // basic.publish over a raw socket: write on the exchange, the default one as amq.default.
    let (mut r, m) = raw_open(server.amqp_addr, USER, PASS, "/").await;
    assert!(matches!(m, Method::ConnectionOpenOk), "got {m:?}");
    raw_channel(&mut r, 1).await;
    r.publish(1, "", "all-q", b"to the default exchange").await;
    assert_eq!(r.expect_channel_close(1).await, (403, 60, 40));
    raw_channel(&mut r, 2).await;
    r.publish(2, "r-x", "", b"no write on r-x").await;
    assert_eq!(r.expect_channel_close(2).await, (403, 60, 40));
    // Not even a missing exchange is looked up without write permission.
    raw_channel(&mut r, 3).await;
    r.publish(3, "nope-x", "", b"x").await;
    assert_eq!(r.expect_channel_close(3).await, (403, 60, 40));
    // With write permission a missing exchange is the usual 404.
    raw_channel(&mut r, 4).await;
    r.publish(4, "w-missing", "", b"x").await;
    assert_eq!(r.expect_channel_close(4).await, (404, 60, 40));

    // An allowed publish is routed: all-x fans out to all-q.
    within(
        "bind all",
        ach.queue_bind("all-q".into(), "all-x".into(), "".into(), qb, t()),
    )
    .await
    .unwrap();
    raw_channel(&mut r, 5).await;
    r.publish(5, "all-x", "", b"allowed").await;
    // A round trip on the same channel proves the publish did not close it.
    r.send(5, &queue_declare("all-q", true)).await;
    match r.method().await {
        Some((5, Method::QueueDeclareOk(ok))) => assert_eq!(ok.message_count, 1),
        other => panic!("expected declare-ok with the message, got {other:?}"),
    }
    server.shutdown().await;
}

/// basic.qos and its qos-ok on `ch`: everything sent before on it has been processed.
async fn qos_round_trip(r: &mut Raw, ch: u16) {
    r.send(
        ch,
        &Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count: 1,
            global: false,
        }),
    )
    .await;
    match r.method().await {
        Some((c, Method::BasicQosOk)) if c == ch => {}
        other => panic!("expected qos-ok on channel {ch}, got {other:?}"),
    }
}

#[tokio::test]
async fn publish_checks_are_cached_per_channel() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = limited_broker(".*", ".*", ".*").await;
    let (mut r, m) = raw_open(server.amqp_addr, USER, PASS, "/").await;
    assert!(matches!(m, Method::ConnectionOpenOk), "got {m:?}");
    raw_channel(&mut r, 1).await;
    r.publish(1, "amq.fanout", "", b"first").await;
    qos_round_trip(&mut r, 1).await;
    // Write revoked: the channel that already published keeps its cached grant (as a
    // RabbitMQ channel keeps its permission cache); a new channel is refused.
    grant(&server, USER, ".*", "^$", ".*");
    r.publish(1, "amq.fanout", "", b"second").await;
    raw_channel(&mut r, 2).await;
    r.publish(2, "amq.fanout", "", b"third").await;
    assert_eq!(r.expect_channel_close(2).await, (403, 60, 40));
    // Channel 1 is still open: it answers a method.
    qos_round_trip(&mut r, 1).await;
    server.shutdown().await;
}

/// Topic permissions (set over the management API): publish to a topic exchange needs write
/// on the routing key, queue.bind / queue.unbind read on the binding key, `{username}` is
/// expanded; other exchange types and other exchanges are not affected; 403 as RabbitMQ.
#[tokio::test]
async fn topic_permissions_check_routing_and_binding_keys() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = limited_broker(".*", ".*", ".*").await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http_addr.expect("http"));
    let path = format!("/api/topic-permissions/%2F/{USER}");
    let put = http
        .put(format!("{base}{path}"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"exchange": "amq.topic",
            "write": "^{username}\\.", "read": "^public\\."}))
        .send();
    assert_eq!(within("put", put).await.expect("put").status(), 201);
    let listed = http_json_ok(&base, "/api/topic-permissions").await;
    assert_eq!(listed[0]["exchange"], "amq.topic", "{listed}");

    let (mut r, m) = raw_open(server.amqp_addr, USER, PASS, "/").await;
    assert!(matches!(m, Method::ConnectionOpenOk), "got {m:?}");
    raw_channel(&mut r, 1).await;
    r.publish(1, "amq.topic", "limited.orders", b"ok").await;
    r.publish(1, "amq.fanout", "anything", b"ok").await;
    qos_round_trip(&mut r, 1).await;
    r.publish(1, "amq.topic", "other.orders", b"no").await;
    assert_eq!(r.expect_channel_close(1).await, (403, 60, 40));

    let bind = |key: &str| {
        Method::QueueBind(QueueBind {
            queue: "tp-q".into(),
            exchange: "amq.topic".into(),
            routing_key: key.into(),
            nowait: false,
            arguments: ottermq_protocol::FieldTable::new(),
        })
    };
    raw_channel(&mut r, 2).await;
    r.send(2, &queue_declare("tp-q", false)).await;
    assert!(matches!(
        r.method().await,
        Some((2, Method::QueueDeclareOk(_)))
    ));
    r.send(2, &bind("public.news")).await;
    assert!(matches!(r.method().await, Some((2, Method::QueueBindOk))));
    r.send(2, &bind("secret.news")).await;
    assert_eq!(r.expect_channel_close(2).await, (403, 50, 20));

    // Deleted: everything is allowed again.
    let del = http
        .delete(format!("{base}{path}"))
        .basic_auth("guest", Some("guest"))
        .send();
    assert_eq!(within("delete", del).await.expect("delete").status(), 204);
    raw_channel(&mut r, 3).await;
    r.publish(3, "amq.topic", "other.orders", b"now ok").await;
    r.send(3, &bind("secret.news")).await;
    assert!(matches!(r.method().await, Some((3, Method::QueueBindOk))));
    server.shutdown().await;
}

/// Publishes to amq.topic as the limited user on a fresh channel of `server`: `allowed` goes
/// through (the channel answers basic.qos afterwards), `refused` closes the channel with 403.
async fn expect_topic_enforced(server: &ottermq::RunningServer, allowed: &str, refused: &str) {
    let (mut r, m) = raw_open(server.amqp_addr, USER, PASS, "/").await;
    assert!(matches!(m, Method::ConnectionOpenOk), "got {m:?}");
    raw_channel(&mut r, 1).await;
    r.publish(1, "amq.topic", allowed, b"ok").await;
    qos_round_trip(&mut r, 1).await;
    r.publish(1, "amq.topic", refused, b"no").await;
    assert_eq!(r.expect_channel_close(1).await, (403, 60, 40));
}

/// Topic permissions travel in definitions as RabbitMQ writes them (`topic_permissions`):
/// exported by GET /api/definitions, imported by POST /api/definitions and `--definitions`,
/// and enforced on the importing broker.
#[tokio::test]
async fn topic_permissions_round_trip_through_definitions() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let http = reqwest::Client::new();
    let source = limited_broker(".*", ".*", ".*").await;
    let base = format!("http://{}", source.http_addr.expect("http"));
    let put = http
        .put(format!("{base}/api/topic-permissions/%2F/{USER}"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"exchange": "amq.topic",
            "write": "^{username}\\.", "read": ".*"}))
        .send();
    assert_eq!(within("put", put).await.expect("put").status(), 201);
    let defs = http_json_ok(&base, "/api/definitions").await;
    assert_eq!(
        defs["topic_permissions"],
        serde_json::json!([{"user": USER, "vhost": "/", "exchange": "amq.topic",
            "write": "^{username}\\.", "read": ".*"}]),
        "{defs}"
    );
    source.shutdown().await;

    // POST /api/definitions into a fresh broker.
    let fresh = ottermq::testing::start_test_broker().await;
    let base = format!("http://{}", fresh.http_addr.expect("http"));
    let post = http
        .post(format!("{base}/api/definitions"))
        .basic_auth("guest", Some("guest"))
        .json(&defs)
        .send();
    assert_eq!(within("post", post).await.expect("post").status(), 204);
    let listed = http_json_ok(&base, "/api/topic-permissions").await;
    assert_eq!(listed, defs["topic_permissions"], "{listed}");
    expect_topic_enforced(&fresh, "limited.orders", "other.orders").await;
    // An entry without its regexes is refused, naming it, and nothing of it is set.
    let bad = serde_json::json!({"topic_permissions": [
        {"user": USER, "vhost": "/", "exchange": "amq.other", "write": ".*"}]});
    let post = http
        .post(format!("{base}/api/definitions"))
        .basic_auth("guest", Some("guest"))
        .json(&bad)
        .send();
    let resp = within("post", post).await.expect("post");
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("JSON error");
    assert!(
        body["reason"].as_str().unwrap_or("").contains("amq.other"),
        "{body}"
    );
    assert_eq!(
        http_json_ok(&base, "/api/topic-permissions").await,
        defs["topic_permissions"]
    );
    fresh.shutdown().await;

    // --definitions FILE at start.
    let file = std::env::temp_dir().join(unique("ottermq-topic-defs"));
    std::fs::write(&file, defs.to_string()).expect("write");
    let f = file.clone();
    let started = ottermq::testing::start_test_broker_with(move |s| s.definitions = Some(f)).await;
    expect_topic_enforced(&started, "limited.x", "nobody.x").await;
    started.shutdown().await;
    let _ = std::fs::remove_file(&file);
}

/// Topic permissions are cached per channel, but a change through the API applies to the
/// next publish of a channel that is already open: a replaced regex (no stale grant), an
/// entry added for an exchange the channel had found without one, and a deleted entry.
#[tokio::test]
async fn topic_permission_changes_apply_to_open_channels() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = limited_broker(".*", ".*", ".*").await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http_addr.expect("http"));
    let path = format!("{base}/api/topic-permissions/%2F/{USER}");
    let put = |exchange: &str, write: &str| {
        let req = http
            .put(&path)
            .basic_auth("guest", Some("guest"))
            .json(&serde_json::json!({"exchange": exchange, "write": write, "read": ".*"}))
            .send();
        async move { within("put", req).await.expect("put").status().as_u16() }
    };
    let declare = http
        .put(format!("{base}/api/exchanges/%2F/tp-x"))
        .basic_auth("guest", Some("guest"))
        .json(&serde_json::json!({"type": "topic", "durable": false}))
        .send();
    assert_eq!(within("declare", declare).await.expect("put").status(), 201);
    assert_eq!(put("amq.topic", "^limited\\.").await, 201);
    let (mut r, m) = raw_open(server.amqp_addr, USER, PASS, "/").await;
    assert!(matches!(m, Method::ConnectionOpenOk), "got {m:?}");

    // Channel 1 caches amq.topic's entry and tp-x's absence of one.
    raw_channel(&mut r, 1).await;
    r.publish(1, "amq.topic", "limited.a", b"ok").await;
    r.publish(1, "tp-x", "anything", b"ok").await;
    qos_round_trip(&mut r, 1).await;
    // Replaced: the key granted a moment ago is refused on the same channel.
    assert_eq!(put("amq.topic", "^other\\.").await, 204);
    r.publish(1, "amq.topic", "other.a", b"ok").await;
    qos_round_trip(&mut r, 1).await;
    r.publish(1, "amq.topic", "limited.b", b"stale?").await;
    assert_eq!(r.expect_channel_close(1).await, (403, 60, 40));

    // An entry added for tp-x applies to a channel that had published there without one.
    raw_channel(&mut r, 2).await;
    r.publish(2, "tp-x", "anything", b"ok").await;
    qos_round_trip(&mut r, 2).await;
    assert_eq!(put("tp-x", "^allowed$").await, 201);
    r.publish(2, "tp-x", "allowed", b"ok").await;
    qos_round_trip(&mut r, 2).await;
    r.publish(2, "tp-x", "anything", b"now refused").await;
    assert_eq!(r.expect_channel_close(2).await, (403, 60, 40));

    // Deleted: a key the cached entry refuses goes through on the open channel.
    raw_channel(&mut r, 3).await;
    r.publish(3, "amq.topic", "other.b", b"ok").await;
    qos_round_trip(&mut r, 3).await;
    let del = http.delete(&path).basic_auth("guest", Some("guest")).send();
    assert_eq!(within("delete", del).await.expect("delete").status(), 204);
    r.publish(3, "amq.topic", "limited.c", b"ok").await;
    r.publish(3, "tp-x", "anything", b"ok").await;
    qos_round_trip(&mut r, 3).await;
    server.shutdown().await;
}
