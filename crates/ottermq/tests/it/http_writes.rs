//! The management API's definition writes over real HTTP, each checked against what an AMQP
//! client then sees: users, vhosts, permissions, PUT queue / exchange, DELETE exchange,
//! POST / DELETE bindings; their error cases (400 bad bodies and inequivalent redeclares, 404
//! unknown vhost / object, 401 for non-administrators); and users / permissions surviving a
//! restart.

use crate::common;
use common::*;
use serde_json::{json, Value};

struct Api {
    base: String,
    user: String,
    pass: String,
    client: reqwest::Client,
}

struct Reply {
    status: u16,
    body: Value,
    location: Option<String>,
}

impl Api {
    fn new(server: &ottermq::RunningServer, user: &str, pass: &str) -> Api {
        Api {
            base: format!("http://{}", server.http_addr.expect("http listener")),
            user: user.into(),
            pass: pass.into(),
            client: reqwest::Client::new(),
        }
    }
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.pass));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = within(path, req.send()).await.expect("request");
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = r.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            body,
            location,
        }
    }
    async fn get(&self, path: &str) -> Reply {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(reqwest::Method::PUT, path, Some(&body.to_string()))
            .await
    }
    async fn put_raw(&self, path: &str, body: &str) -> Reply {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(reqwest::Method::POST, path, Some(&body.to_string()))
            .await
    }
    async fn delete(&self, path: &str) -> Reply {
        self.call(reqwest::Method::DELETE, path, None).await
    }
}

#[track_caller]
fn expect(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.body);
}

#[track_caller]
fn expect_error(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.body["error"].is_string(), "not a JSON error: {}", r.body);
    assert!(r.body["reason"].is_string(), "not a JSON error: {}", r.body);
}

async fn amqp_open(
    server: &ottermq::RunningServer,
    user: &str,
    pass: &str,
    vhost: &str,
) -> Result<lapin::Connection, lapin::Error> {
    let url = format!(
        "amqp://{user}:{pass}@{}/{}",
        server.amqp_addr,
        vhost.replace('/', "%2f")
    );
    within(
        "connect",
        lapin::Connection::connect(&url, lapin::ConnectionProperties::default()),
    )
    .await
}

#[tokio::test]
async fn users_vhosts_and_permissions() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // OtterMQ's own HTTP server
    }
    let server = ottermq::testing::start_test_broker().await;
    let api = Api::new(&server, "guest", "guest");

    // Users: create (201), update (204), read, list.
    let r = api
        .put(
            "/api/users/alice",
            json!({"password": "s3cret", "tags": "management"}),
        )
        .await;
    expect(&r, 201);
    expect(
        &api.put(
            "/api/users/alice",
            json!({"password": "s3cret", "tags": ["monitoring", "management"]}),
        )
        .await,
        204,
    );
    let u = api.get("/api/users/alice").await;
    expect(&u, 200);
    assert_eq!(u.body["name"], "alice");
    assert_eq!(u.body["tags"], "monitoring,management");
    assert_eq!(
        u.body["hashing_algorithm"],
        "rabbit_password_hashing_sha256"
    );
    let hash = u.body["password_hash"].as_str().expect("hash").to_string();
    assert!(!hash.contains("s3cret"));
    let list = api.get("/api/users").await;
    expect(&list, 200);
    let names: Vec<&str> = list
        .body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&"guest"),
        "{names:?}"
    );

    // A RabbitMQ-format password_hash (salt 908e2b21 + sha256(salt ++ "guest"), computed with
    // Python's hashlib) logs in with that password.
    expect(
        &api.put(
            "/api/users/hashed",
            json!({"password_hash": "kI4rIVshA/sDT+L+ElYhgBMbiqM30ZGIhCB6KwYdGaW20+nx",
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}),
        )
        .await,
        201,
    );
    expect(
        &api.put(
            "/api/permissions/%2F/hashed",
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .await,
        201,
    );
    amqp_open(&server, "hashed", "guest", "/")
        .await
        .expect("login with the imported hash");

    // Bad user bodies.
    expect_error(&api.put_raw("/api/users/bob", "{not json").await, 400);
    expect_error(
        &api.put("/api/users/bob", json!({"password": "x"})).await,
        400,
    ); // no tags
    expect_error(
        &api.put(
            "/api/users/bob",
            json!({"password": "x", "password_hash": "y", "tags": ""}),
        )
        .await,
        400,
    );
    expect_error(
        &api.put(
            "/api/users/bob",
            json!({"password_hash": "not base64!", "tags": ""}),
        )
        .await,
        400,
    );
    expect_error(&api.get("/api/users/nobody").await, 404);
    expect_error(&api.delete("/api/users/nobody").await, 404);

    // No permissions yet: alice cannot open "/" (530).
    match amqp_open(&server, "alice", "s3cret", "/").await {
        Ok(_) => panic!("alice opened / without permissions"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }

    // Vhosts: create (201), again (204); the creator gets full permissions in it.
    expect(&api.put("/api/vhosts/app", json!({})).await, 201);
    expect(&api.put("/api/vhosts/app", json!({})).await, 204);
    let vs = api.get("/api/vhosts").await;
    assert!(vs
        .body
        .as_array()
        .expect("array")
        .iter()
        .any(|v| v["name"] == "app"));
    let p = api.get("/api/permissions/app/guest").await;
    expect(&p, 200);
    assert_eq!(p.body["configure"], ".*");

    // Permissions: bad bodies, unknown vhost or user, then a grant alice can use.
    let perm = json!({"configure": "^a-", "write": ".*", "read": ".*"});
    expect_error(
        &api.put("/api/permissions/nowhere/alice", perm.clone())
            .await,
        404,
    );
    expect_error(
        &api.put("/api/permissions/app/nobody", perm.clone()).await,
        404,
    );
    expect_error(
        &api.put("/api/permissions/app/alice", json!({"configure": ".*"}))
            .await,
        400,
    );
    expect_error(
        &api.put(
            "/api/permissions/app/alice",
            json!({"configure": "(", "write": "", "read": ""}),
        )
        .await,
        400,
    );
    expect(
        &api.put("/api/permissions/app/alice", perm.clone()).await,
        201,
    );
    expect(
        &api.put("/api/permissions/app/alice", perm.clone()).await,
        204,
    );
    let all = api.get("/api/permissions").await;
    expect(&all, 200);
    assert!(all
        .body
        .as_array()
        .expect("array")
        .iter()
        .any(|p| p["user"] == "alice" && p["vhost"] == "app" && p["configure"] == "^a-"));
    let conn = amqp_open(&server, "alice", "s3cret", "app")
        .await
        .expect("alice opens app");
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare a-q",
        ch.queue_declare("a-q".into(), Default::default(), Default::default()),
    )
    .await
    .expect("configure on a-* allowed");
    assert_code(
        within(
            "declare b-q",
            ch.queue_declare("b-q".into(), Default::default(), Default::default()),
        )
        .await,
        403,
    );
    let _ = conn.close(200, "bye".into()).await;

    // Non-administrators: 401 with RabbitMQ's JSON error on every write.
    let alice = Api::new(&server, "alice", "s3cret");
    for r in [
        alice.get("/api/users").await,
        alice
            .put("/api/users/eve", json!({"password": "x", "tags": ""}))
            .await,
        alice.put("/api/vhosts/eve", json!({})).await,
        alice.put("/api/permissions/app/alice", perm.clone()).await,
        alice.put("/api/queues/app/b-q2", json!({})).await,
    ] {
        expect_error(&r, 401);
        assert_eq!(r.body["error"], "not_authorised");
    }
    // A user without any management tag may not use the API at all (RabbitMQ's 401).
    expect(
        &api.put("/api/users/notag", json!({"password": "pw", "tags": ""}))
            .await,
        201,
    );
    let notag = Api::new(&server, "notag", "pw");
    let r = notag.get("/api/overview").await;
    expect_error(&r, 401);
    assert_eq!(r.body["reason"], "Not management user");
    // As in RabbitMQ, a management user declares in a vhost it has permissions in, under its
    // AMQP permissions (configure "^a-": a-q2 yes, b-q2 refused above).
    expect(&alice.put("/api/queues/app/a-q2", json!({})).await, 201);
    expect(&alice.get("/api/overview").await, 200);
    let wrong = Api::new(&server, "alice", "wrong");
    expect_error(&wrong.get("/api/users").await, 401);

    // Clearing the permission closes the vhost for new connections.
    expect(&api.delete("/api/permissions/app/alice").await, 204);
    expect_error(&api.delete("/api/permissions/app/alice").await, 404);
    match amqp_open(&server, "alice", "s3cret", "app").await {
        Ok(_) => panic!("alice opened app after her permission was cleared"),
        Err(e) => assert_eq!(reply_code(&e), Some(530), "{e:?}"),
    }

    // Deleting a vhost closes its connections and removes it; then 404.
    let g = amqp_open(&server, "guest", "guest", "app")
        .await
        .expect("guest opens app");
    expect(&api.delete("/api/vhosts/app").await, 204);
    within("forced close", async {
        while g.status().connected() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    expect_error(&api.delete("/api/vhosts/app").await, 404);
    expect_error(&api.get("/api/queues/app").await, 404);
    assert!(api
        .get("/api/permissions")
        .await
        .body
        .as_array()
        .expect("array")
        .iter()
        .all(|p| p["vhost"] != "app"));

    // Deleting a user: it can no longer log in.
    expect(&api.delete("/api/users/hashed").await, 204);
    assert!(amqp_open(&server, "hashed", "guest", "/").await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn queues_exchanges_and_bindings() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = ottermq::testing::start_test_broker().await;
    let api = Api::new(&server, "guest", "guest");

    // Queues: create 201, equivalent again 204, different 400, unknown vhost 404, bad body 400.
    let q = json!({"durable": true, "auto_delete": false, "arguments": {"x-max-length": 10}});
    expect(&api.put("/api/queues/%2F/hq", q.clone()).await, 201);
    expect(&api.put("/api/queues/%2F/hq", q.clone()).await, 204);
    expect_error(
        &api.put(
            "/api/queues/%2F/hq",
            json!({"durable": false, "arguments": {"x-max-length": 10}}),
        )
        .await,
        400,
    );
    expect_error(&api.put("/api/queues/nowhere/hq", q.clone()).await, 404);
    expect_error(&api.put_raw("/api/queues/%2F/hq2", "[1,2]").await, 400);
    expect_error(
        &api.put("/api/queues/%2F/hq2", json!({"durable": "maybe"}))
            .await,
        400,
    );
    expect_error(&api.put("/api/queues/%2F/amq.q", json!({})).await, 401);
    let got = api.get("/api/queues/%2F/hq").await;
    expect(&got, 200);
    assert_eq!(got.body["durable"], true);
    assert_eq!(got.body["arguments"]["x-max-length"], 10);

    // Exchanges: type required, unknown type 400, create 201 / 204 / inequivalent 400.
    expect_error(
        &api.put("/api/exchanges/%2F/hx", json!({"durable": true}))
            .await,
        400,
    );
    expect_error(
        &api.put("/api/exchanges/%2F/hx", json!({"type": "nonsense"}))
            .await,
        400,
    );
    let x = json!({"type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {}});
    expect(&api.put("/api/exchanges/%2F/hx", x.clone()).await, 201);
    expect(&api.put("/api/exchanges/%2F/hx", x.clone()).await, 204);
    expect_error(
        &api.put("/api/exchanges/%2F/hx", json!({"type": "fanout"}))
            .await,
        400,
    );
    expect_error(&api.put("/api/exchanges/nowhere/hx", x.clone()).await, 404);
    expect_error(
        &api.put("/api/exchanges/%2F/amq.default", x.clone()).await,
        401,
    );
    let e = api.get("/api/exchanges/%2F/hx").await;
    expect(&e, 200);
    assert_eq!(e.body["type"], "topic");

    // Bindings: 201 with a Location that deletes it; missing ends 404.
    let r = api
        .post(
            "/api/bindings/%2F/e/hx/q/hq",
            json!({"routing_key": "a.*", "arguments": {}}),
        )
        .await;
    expect(&r, 201);
    // RabbitMQ's form: relative to the request, the properties key quoted once more.
    let rel = r.location.clone().expect("Location header");
    assert_eq!(rel, "hq/a.%252A");
    let loc = format!("/api/bindings/%2F/e/hx/q/{rel}");
    expect_error(
        &api.post("/api/bindings/%2F/e/nope/q/hq", json!({})).await,
        404,
    );
    expect_error(
        &api.post("/api/bindings/%2F/e/hx/q/nope", json!({})).await,
        404,
    );
    expect_error(
        &api.post("/api/bindings/nowhere/e/hx/q/hq", json!({})).await,
        404,
    );
    expect_error(
        &api.post("/api/bindings/%2F/e/hx/q/hq", json!({"routing_key": 5}))
            .await,
        400,
    );
    let listed = api.get("/api/bindings").await;
    let b = listed
        .body
        .as_array()
        .expect("array")
        .iter()
        .find(|b| b["source"] == "hx")
        .cloned()
        .expect("binding listed");
    assert_eq!(b["properties_key"], "a.%2A");

    // The binding routes: an AMQP publish to hx with a matching key lands in hq.
    let conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .unwrap();
    let c = within(
        "publish",
        ch.basic_publish(
            "hx".into(),
            "a.b".into(),
            Default::default(),
            b"hi",
            Default::default(),
        ),
    )
    .await
    .unwrap();
    within("confirm", c).await.unwrap();
    let got = within(
        "get",
        ch.basic_get(
            "hq".into(),
            lapin::options::BasicGetOptions { no_ack: true },
        ),
    )
    .await
    .unwrap();
    assert_eq!(got.expect("routed message").delivery.data, b"hi");

    // A second binding with arguments has its own key; deleting by the first key leaves it.
    let r2 = api
        .post(
            "/api/bindings/%2F/e/hx/q/hq",
            json!({"routing_key": "a.*", "arguments": {"k": "v"}}),
        )
        .await;
    expect(&r2, 201);
    let loc2 = format!(
        "/api/bindings/%2F/e/hx/q/{}",
        r2.location.clone().expect("Location")
    );
    assert_ne!(loc2, loc);
    expect(&api.delete(&loc).await, 204);
    expect_error(&api.delete(&loc).await, 404);
    expect(&api.delete(&loc2).await, 204);
    let c = within(
        "publish",
        ch.basic_publish(
            "hx".into(),
            "a.b".into(),
            Default::default(),
            b"gone",
            Default::default(),
        ),
    )
    .await
    .unwrap();
    within("confirm", c).await.unwrap();
    assert!(within(
        "get",
        ch.basic_get(
            "hq".into(),
            lapin::options::BasicGetOptions { no_ack: true }
        )
    )
    .await
    .unwrap()
    .is_none());
    // The empty routing key's properties key is "~".
    let r3 = api.post("/api/bindings/%2F/e/hx/q/hq", json!({})).await;
    expect(&r3, 201);
    assert_eq!(r3.location.clone().expect("Location"), "hq/~");
    expect(&api.delete("/api/bindings/%2F/e/hx/q/hq/~").await, 204);
    // With arguments the key carries RabbitMQ's phash2 of them (value computed with erl:
    // base64url(<<(erlang:phash2([{<<"x-match">>, longstr, <<"all">>}], 1 bsl 32)):32>>)).
    let r4 = api
        .post(
            "/api/bindings/%2F/e/hx/q/hq",
            json!({"arguments": {"x-match": "all"}}),
        )
        .await;
    expect(&r4, 201);
    assert_eq!(r4.location.clone().expect("Location"), "hq/~3ujGfg");
    let listed = api.get("/api/bindings").await;
    let keys: Vec<&serde_json::Value> = listed
        .body
        .as_array()
        .expect("array")
        .iter()
        .filter(|b| b["source"] == "hx")
        .map(|b| &b["properties_key"])
        .collect();
    assert_eq!(keys, vec!["~3ujGfg"]);
    expect(
        &api.delete("/api/bindings/%2F/e/hx/q/hq/~3ujGfg").await,
        204,
    );
    expect_error(
        &api.delete("/api/bindings/%2F/e/hx/q/hq/~3ujGfg").await,
        404,
    );

    // Exchange delete: 204, then 404; system exchanges refused; if-unused honoured.
    expect(
        &api.put("/api/exchanges/%2F/hx2", json!({"type": "direct"}))
            .await,
        201,
    );
    expect(
        &api.post("/api/bindings/%2F/e/hx2/q/hq", json!({"routing_key": "k"}))
            .await,
        201,
    );
    expect_error(
        &api.delete("/api/exchanges/%2F/hx2?if-unused=true").await,
        400,
    );
    expect(&api.delete("/api/exchanges/%2F/hx2").await, 204);
    expect_error(&api.delete("/api/exchanges/%2F/hx2").await, 404);
    expect_error(&api.delete("/api/exchanges/%2F/amq.direct").await, 401);
    expect_error(&api.delete("/api/exchanges/nowhere/hx").await, 404);
    // passive declare over AMQP sees it gone
    let ch2 = within("channel", conn.create_channel()).await.unwrap();
    assert_code(
        within(
            "passive",
            ch2.exchange_declare(
                "hx2".into(),
                lapin::ExchangeKind::Direct,
                lapin::options::ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            ),
        )
        .await,
        404,
    );

    // Queue delete: 204, then 404.
    expect(&api.delete("/api/queues/%2F/hq").await, 204);
    expect_error(&api.delete("/api/queues/%2F/hq").await, 404);

    // A user with the administrator tag but no configure permission on the name: 401.
    expect(
        &api.put(
            "/api/users/ops",
            json!({"password": "pw", "tags": "administrator"}),
        )
        .await,
        201,
    );
    expect(
        &api.put(
            "/api/permissions/%2F/ops",
            json!({"configure": "^ops-", "write": ".*", "read": ".*"}),
        )
        .await,
        201,
    );
    let ops = Api::new(&server, "ops", "pw");
    expect(&ops.put("/api/queues/%2F/ops-q", json!({})).await, 201);
    let r = ops.put("/api/queues/%2F/other-q", json!({})).await;
    expect_error(&r, 401);
    assert!(
        r.body["reason"]
            .as_str()
            .unwrap_or("")
            .contains("configure access to queue 'other-q'"),
        "{}",
        r.body
    );
    server.shutdown().await;
}

#[tokio::test]
async fn users_and_permissions_survive_a_restart() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let dir = std::env::temp_dir().join(unique("ottermq-users"));
    // Every start has the configured user `erin`; deleted through the API, it stays deleted.
    let start = |dir: &std::path::Path| {
        let d = dir.to_path_buf();
        ottermq::testing::start_test_broker_with(move |s| {
            s.data_dir = d;
            s.broker.users.push(ottermq_broker::UserConfig {
                name: "erin".into(),
                password: "pw".into(),
                tags: vec![],
            });
        })
    };
    let server = start(&dir).await;
    let api = Api::new(&server, "guest", "guest");
    expect(&api.get("/api/users/erin").await, 200);
    expect(&api.delete("/api/users/erin").await, 204);
    expect(
        &api.put(
            "/api/users/carol",
            json!({"password": "pw1", "tags": "monitoring"}),
        )
        .await,
        201,
    );
    expect(&api.put("/api/vhosts/cv", json!({})).await, 201);
    expect(
        &api.put(
            "/api/permissions/cv/carol",
            json!({"configure": "^c-", "write": ".*", "read": ".*"}),
        )
        .await,
        201,
    );
    let topic = json!({"exchange": "amq.topic", "write": "^{username}\\.", "read": ""});
    expect(
        &api.put("/api/topic-permissions/cv/carol", topic).await,
        201,
    );
    expect(
        &api.put("/api/users/dave", json!({"password": "pw", "tags": ""}))
            .await,
        201,
    );
    expect(&api.delete("/api/users/dave").await, 204);
    // guest's password changed through the API is kept over the configured one.
    expect(
        &api.put(
            "/api/users/guest",
            json!({"password": "changed", "tags": "administrator"}),
        )
        .await,
        204,
    );
    server.shutdown().await;
    // No plain password on disk.
    let log = std::fs::read(dir.join("users.log")).expect("users.log");
    assert!(
        !log.windows(3).any(|w| w == b"pw1"),
        "a password in plain text on disk"
    );

    let server = start(&dir).await;
    let api = Api::new(&server, "guest", "changed");
    expect_error(&api.get("/api/users/erin").await, 404);
    let u = api.get("/api/users/carol").await;
    expect(&u, 200);
    assert_eq!(u.body["tags"], "monitoring");
    expect_error(&api.get("/api/users/dave").await, 404);
    let p = api.get("/api/permissions/cv/carol").await;
    expect(&p, 200);
    assert_eq!(p.body["configure"], "^c-");
    let t = api.get("/api/topic-permissions/cv/carol").await;
    expect(&t, 200);
    assert_eq!(
        t.body,
        json!([{"user": "carol", "vhost": "cv", "exchange": "amq.topic",
                "write": "^{username}\\.", "read": ""}])
    );
    let conn = amqp_open(&server, "carol", "pw1", "cv")
        .await
        .expect("carol logs in after restart");
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare("c-q".into(), Default::default(), Default::default()),
    )
    .await
    .expect("allowed");
    assert_code(
        within(
            "declare",
            ch.queue_declare("d-q".into(), Default::default(), Default::default()),
        )
        .await,
        403,
    );
    // Definitions export carries the users (hashes) and permissions.
    let defs = api.get("/api/definitions").await;
    expect(&defs, 200);
    assert!(defs.body["users"]
        .as_array()
        .expect("users")
        .iter()
        .any(|u| u["name"] == "carol" && u["password_hash"].is_string()));
    assert!(defs.body["permissions"]
        .as_array()
        .expect("perms")
        .iter()
        .any(|p| p["user"] == "carol" && p["vhost"] == "cv"));
    assert!(
        Api::new(&server, "guest", "guest")
            .get("/api/users")
            .await
            .status
            == 401
    );
    server.shutdown().await;
    // A third start reads the log the second one rewrote (compacted): still deleted.
    let server = start(&dir).await;
    let api = Api::new(&server, "guest", "changed");
    expect_error(&api.get("/api/users/erin").await, 404);
    expect(&api.get("/api/users/carol").await, 200);
    server.shutdown().await;

    // The export imports into a fresh broker: carol logs in there with the same password.
    let file = dir.with_extension("defs.json");
    std::fs::write(&file, defs.body.to_string()).expect("write");
    let fresh = std::env::temp_dir().join(unique("ottermq-users2"));
    let (f, d) = (file.clone(), fresh.clone());
    let server = ottermq::testing::start_test_broker_with(move |s| {
        s.data_dir = d;
        s.definitions = Some(f);
    })
    .await;
    amqp_open(&server, "carol", "pw1", "cv")
        .await
        .expect("carol logs in on the imported broker");
    server.shutdown().await;
    for p in [&dir, &fresh] {
        let _ = std::fs::remove_dir_all(p);
    }
    let _ = std::fs::remove_file(&file);
}

/// PUT /api/queues checks arguments with queue.declare's own code: a bad value is 400 with
/// RabbitMQ's refusal text and creates nothing; a dead-letter exchange needs write on it.
#[tokio::test]
async fn put_queue_validates_arguments_as_queue_declare_does() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = ottermq::testing::start_test_broker().await;
    let api = Api::new(&server, "guest", "guest");
    let bad = [
        (json!({"x-max-priority": 300}), "x-max-priority"),
        (json!({"x-max-priority": "5"}), "x-max-priority"),
        (json!({"x-message-ttl": "abc"}), "x-message-ttl"),
        (json!({"x-message-ttl": -1}), "x-message-ttl"),
        (json!({"x-expires": 0}), "x-expires"),
        (json!({"x-overflow": "drop-tail"}), "x-overflow"),
        (json!({"x-max-length": -2}), "x-max-length"),
        (
            json!({"x-single-active-consumer": "yes"}),
            "x-single-active-consumer",
        ),
    ];
    for (args, key) in bad {
        let r = api
            .put("/api/queues/%2F/argq", json!({ "arguments": args }))
            .await;
        expect_error(&r, 400);
        let reason = r.body["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!(
                "invalid arg '{key}' for queue 'argq' in vhost '/'"
            )),
            "{reason}"
        );
        expect_error(&api.get("/api/queues/%2F/argq").await, 404);
    }
    let good = json!({"arguments": {"x-max-priority": 10, "x-message-ttl": 1000,
        "x-overflow": "reject-publish", "x-max-length": 5}});
    expect(&api.put("/api/queues/%2F/argq", good).await, 201);

    // An administrator without write on the dead-letter exchange may not name it.
    let user = json!({"password": "pw", "tags": "administrator"});
    expect(&api.put("/api/users/dlxadm", user).await, 201);
    let perm = json!({"configure": ".*", "write": "^own-.*", "read": ".*"});
    expect(&api.put("/api/permissions/%2F/dlxadm", perm).await, 201);
    let adm = Api::new(&server, "dlxadm", "pw");
    let with_dlx = |x: &str| json!({"arguments": {"x-dead-letter-exchange": x}});
    let r = adm.put("/api/queues/%2F/dlq1", with_dlx("other-dlx")).await;
    expect_error(&r, 401);
    assert!(
        r.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("write access to exchange 'other-dlx'"),
        "{}",
        r.body
    );
    expect(
        &adm.put("/api/queues/%2F/dlq1", with_dlx("own-dlx")).await,
        201,
    );
    server.shutdown().await;
}

/// Management access by tag, as RabbitMQ 3.10's rabbit_mgmt_util: management / policymaker
/// users see the vhosts they have permissions in, monitoring users list every vhost and every
/// connection, only administrators manage users, vhosts, permissions and definitions.
#[tokio::test]
async fn management_access_follows_user_tags() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = ottermq::testing::start_test_broker().await;
    let api = Api::new(&server, "guest", "guest");
    expect(&api.put("/api/vhosts/tagvh", json!({})).await, 201);
    expect(&api.put("/api/queues/%2F/tq1", json!({})).await, 201);
    expect(&api.put("/api/queues/tagvh/tq2", json!({})).await, 201);
    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    for (user, tags, vhost) in [
        ("tmgmt", "management", Some("%2F")),
        ("tpol", "policymaker", Some("tagvh")),
        ("tmon", "monitoring", None),
        ("tnone", "", Some("%2F")),
    ] {
        let u = json!({"password": "pw", "tags": tags});
        expect(&api.put(&format!("/api/users/{user}"), u).await, 201);
        if let Some(v) = vhost {
            let path = format!("/api/permissions/{v}/{user}");
            expect(&api.put(&path, all.clone()).await, 201);
        }
    }
    // guest's AMQP connection: only monitors and administrators see another user's.
    let _conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let names = |r: &Reply, field: &str| -> Vec<String> {
        r.body
            .as_array()
            .expect("array")
            .iter()
            .map(|x| x[field].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let denied = |r: &Reply| {
        expect_error(r, 401);
        assert_eq!(
            r.body["reason"],
            "User not authorised to access virtual host"
        );
    };

    let mgmt = Api::new(&server, "tmgmt", "pw");
    let q = mgmt.get("/api/queues").await;
    expect(&q, 200);
    assert!(names(&q, "name").contains(&"tq1".to_string()), "{}", q.body);
    assert!(names(&q, "vhost").iter().all(|v| v == "/"), "{}", q.body);
    assert_eq!(names(&mgmt.get("/api/vhosts").await, "name"), vec!["/"]);
    let x = mgmt.get("/api/exchanges").await;
    assert!(names(&x, "vhost").iter().all(|v| v == "/"), "{}", x.body);
    let b = mgmt.get("/api/bindings").await;
    assert!(names(&b, "vhost").iter().all(|v| v == "/"), "{}", b.body);
    expect(&mgmt.get("/api/queues/%2F/tq1").await, 200);
    denied(&mgmt.get("/api/queues/tagvh").await);
    denied(&mgmt.get("/api/queues/tagvh/tq2").await);
    denied(&mgmt.get("/api/exchanges/tagvh/amq.direct").await);
    denied(&mgmt.put("/api/queues/tagvh/tq3", json!({})).await);
    denied(
        &mgmt
            .post(
                "/api/queues/tagvh/tq2/get",
                json!({"count": 1, "ackmode": "ack_requeue_true"}),
            )
            .await,
    );
    expect_error(&mgmt.get("/api/queues/nowhere").await, 404);
    assert!(names(&mgmt.get("/api/connections").await, "user").is_empty());
    for r in [
        mgmt.get("/api/users").await,
        mgmt.get("/api/permissions").await,
        mgmt.get("/api/definitions").await,
        mgmt.put("/api/vhosts/tmgmt-vh", json!({})).await,
    ] {
        expect_error(&r, 401);
        assert_eq!(r.body["reason"], "Not administrator user");
    }

    let pol = Api::new(&server, "tpol", "pw");
    assert_eq!(names(&pol.get("/api/vhosts").await, "name"), vec!["tagvh"]);
    assert_eq!(names(&pol.get("/api/queues").await, "name"), vec!["tq2"]);
    denied(&pol.get("/api/queues/%2F/tq1").await);
    expect(&pol.put("/api/queues/tagvh/tq3", json!({})).await, 201);

    let mon = Api::new(&server, "tmon", "pw");
    let mut vhosts = names(&mon.get("/api/vhosts").await, "name");
    vhosts.sort();
    assert_eq!(vhosts, vec!["/", "tagvh"]);
    let q = names(&mon.get("/api/queues").await, "name");
    assert!(
        q.contains(&"tq1".to_string()) && q.contains(&"tq2".to_string()),
        "{q:?}"
    );
    assert!(names(&mon.get("/api/connections").await, "user").contains(&"guest".to_string()));
    // Per-vhost URLs still need a permission in that vhost (is_authorized_vhost).
    denied(&mon.get("/api/queues/tagvh/tq2").await);
    expect_error(&mon.get("/api/users").await, 401);

    let r = Api::new(&server, "tnone", "pw").get("/api/queues").await;
    expect_error(&r, 401);
    assert_eq!(r.body["reason"], "Not management user");

    let admin_q = names(&api.get("/api/queues").await, "name");
    assert!(admin_q.contains(&"tq2".to_string()));
    expect(&api.get("/api/queues/tagvh/tq2").await, 200);
    server.shutdown().await;
}
