//! The management API's write endpoints over real HTTP, checked against what an AMQP client
//! sees: purge, delete (if-unused / if-empty), publish through an exchange, get with each
//! ackmode, paging of /api/queues, /api/whoami, the UI's static files, and JSON errors.

use crate::common;
use common::*;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use serde_json::{json, Value};

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .basic_auth("guest", Some("guest"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = within(path, req.send()).await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }
    async fn ready(&self, q: &str) -> u64 {
        let (st, v) = self.get(&format!("/api/queues/%2F/{q}")).await;
        assert_eq!(st, 200, "{v}");
        v["messages_ready"].as_u64().unwrap()
    }
}

/// A broker, a guest API client and a guest AMQP channel.
async fn setup() -> (
    ottermq::RunningServer,
    Api,
    lapin::Connection,
    lapin::Channel,
) {
    let server = ottermq::testing::start_test_broker().await;
    let api = Api {
        base: format!("http://{}", server.http_addr.expect("http listener")),
        client: reqwest::Client::new(),
    };
    let conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = channel(&conn).await;
    (server, api, conn, ch)
}

fn assert_json_error(st: u16, v: &Value, want: u16) {
    assert_eq!(st, want, "{v}");
    assert!(v["error"].is_string(), "not a JSON error: {v}");
    assert!(v["reason"].is_string(), "not a JSON error: {v}");
}

fn publish_body(key: &str, payload: &str) -> Value {
    json!({"properties": {}, "routing_key": key, "payload": payload, "payload_encoding": "string"})
}

#[tokio::test]
async fn write_endpoints_act_on_real_queues() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // OtterMQ's own HTTP server
    }
    let (server, api, conn, ch) = setup().await;
    for q in ["act-q", "act-bound"] {
        within(
            "declare",
            ch.queue_declare(q.into(), QueueDeclareOptions::default(), Default::default()),
        )
        .await
        .unwrap();
    }
    within(
        "bind",
        ch.queue_bind(
            "act-bound".into(),
            "amq.topic".into(),
            "orders.*".into(),
            QueueBindOptions::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();

    // whoami
    let (st, me) = api.get("/api/whoami").await;
    assert_eq!(st, 200);
    assert_eq!(me["name"], "guest");

    // Publish through the default exchange (amq.default) and a topic exchange.
    for i in 0..5 {
        let (st, r) = api
            .post(
                "/api/exchanges/%2F/amq.default/publish",
                publish_body("act-q", &format!("m{i}")),
            )
            .await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["routed"], true);
    }
    assert_eq!(api.ready("act-q").await, 5);
    let (st, r) = api
        .post(
            "/api/exchanges/%2F/amq.topic/publish",
            json!({"properties": {"delivery_mode": 2, "headers": {"k": "v"}, "content_type": "text/plain"},
                   "routing_key": "orders.new", "payload": "aGVsbG8=", "payload_encoding": "base64"}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["routed"], true);
    let (_, r) = api
        .post(
            "/api/exchanges/%2F/amq.topic/publish",
            publish_body("nothing.matches.this", "x"),
        )
        .await;
    assert_eq!(r["routed"], false);
    let (_, x) = api.get("/api/exchanges/%2F/amq.topic").await;
    assert_eq!(x["message_stats"]["publish_in"], 2);
    assert_eq!(x["message_stats"]["publish_out"], 1);
    let (_, ov) = api.get("/api/overview").await;
    assert_eq!(
        ov["message_stats"]["publish"], 7,
        "HTTP publishes count: {ov}"
    );

    // Get with requeue: the messages stay, marked redelivered, in order.
    let (st, got) = api
        .post(
            "/api/queues/%2F/act-q/get",
            json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000}),
        )
        .await;
    assert_eq!(st, 200, "{got}");
    let got = got.as_array().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["payload"], "m0");
    assert_eq!(got[0]["payload_encoding"], "string");
    assert_eq!(got[0]["redelivered"], false);
    assert_eq!(got[0]["message_count"], 4);
    assert_eq!(got[1]["payload"], "m1");
    assert_eq!(api.ready("act-q").await, 5);
    let (_, again) = api
        .post(
            "/api/queues/%2F/act-q/get",
            json!({"count": 1, "ackmode": "reject_requeue_true", "encoding": "base64"}),
        )
        .await;
    assert_eq!(again[0]["redelivered"], true);
    assert_eq!(again[0]["payload"], "bTA="); // "m0" in base64
    assert_eq!(again[0]["payload_encoding"], "base64");

    // Properties come back from a get.
    let (_, b) = api
        .post(
            "/api/queues/%2F/act-bound/get",
            json!({"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto", "truncate": 2}),
        )
        .await;
    assert_eq!(b.as_array().unwrap().len(), 1);
    assert_eq!(b[0]["payload"], "he");
    assert_eq!(b[0]["payload_bytes"], 5);
    assert_eq!(b[0]["properties"]["delivery_mode"], 2);
    assert_eq!(b[0]["properties"]["headers"]["k"], "v");
    assert_eq!(b[0]["routing_key"], "orders.new");
    assert_eq!(api.ready("act-bound").await, 0, "ack_requeue_false removes");

    // Get without requeue removes; an empty queue answers [].
    let (_, taken) = api
        .post(
            "/api/queues/%2F/act-q/get",
            json!({"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"}),
        )
        .await;
    assert_eq!(taken.as_array().unwrap().len(), 1);
    assert_eq!(api.ready("act-q").await, 4);
    let (_, none) = api
        .post(
            "/api/queues/%2F/act-bound/get",
            json!({"count": 3, "ackmode": "ack_requeue_false"}),
        )
        .await;
    assert_eq!(none, json!([]));

    // Purge really purges: an AMQP passive declare sees 0.
    let (st, _) = api.delete("/api/queues/%2F/act-q/contents").await;
    assert_eq!(st, 204);
    let q = within(
        "passive",
        ch.queue_declare(
            "act-q".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(q.message_count(), 0);

    // Delete: if-empty refuses with messages, if-unused refuses with a consumer.
    api.post(
        "/api/exchanges/%2F/amq.default/publish",
        publish_body("act-q", "x"),
    )
    .await;
    let (st, v) = api.delete("/api/queues/%2F/act-q?if-empty=true").await;
    assert_json_error(st, &v, 400);
    let consumer_ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "consume",
        consumer_ch.basic_consume(
            "act-bound".into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    let (st, v) = api.delete("/api/queues/%2F/act-bound?if-unused=true").await;
    assert_json_error(st, &v, 400);
    let (st, _) = api.delete("/api/queues/%2F/act-bound").await;
    assert_eq!(st, 204);
    let (st, _) = api.get("/api/queues/%2F/act-bound").await;
    assert_eq!(st, 404);
    let (_, bindings) = api.get("/api/bindings").await;
    assert!(
        !bindings
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["destination"] == "act-bound"),
        "bindings go with the queue"
    );
    let (st, _) = api.delete("/api/queues/%2F/act-q").await;
    assert_eq!(st, 204);
    let r = ch
        .queue_declare(
            "act-q".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    assert_code(r, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn write_endpoint_errors_are_json() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, api, _conn, ch) = setup().await;
    within(
        "declare",
        ch.queue_declare(
            "err-q".into(),
            QueueDeclareOptions::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();

    // Unknown objects: 404.
    let (st, v) = api.delete("/api/queues/%2F/nope/contents").await;
    assert_json_error(st, &v, 404);
    let (st, v) = api.delete("/api/queues/%2F/nope").await;
    assert_json_error(st, &v, 404);
    let (st, v) = api
        .post(
            "/api/queues/%2F/nope/get",
            json!({"count": 1, "ackmode": "ack_requeue_true"}),
        )
        .await;
    assert_json_error(st, &v, 404);
    let (st, v) = api
        .post("/api/exchanges/%2F/nope/publish", publish_body("k", "x"))
        .await;
    assert_json_error(st, &v, 404);
    let (st, v) = api
        .post(
            "/api/exchanges/novhost/amq.direct/publish",
            publish_body("k", "x"),
        )
        .await;
    assert_json_error(st, &v, 404);

    // Bad bodies: 400.
    let bad_gets = [
        json!({"count": 1}),
        json!({"count": 1, "ackmode": "sometimes"}),
        json!({"count": 0, "ackmode": "ack_requeue_true"}),
        json!({"count": "one", "ackmode": "ack_requeue_true"}),
        json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "rot13"}),
    ];
    for b in bad_gets {
        let (st, v) = api.post("/api/queues/%2F/err-q/get", b.clone()).await;
        assert_json_error(st, &v, 400);
    }
    let bad_publishes = [
        json!({"routing_key": "k", "payload": "x"}),
        json!({"routing_key": "k", "payload": "x", "payload_encoding": "hex"}),
        json!({"routing_key": "k", "payload": "!!!", "payload_encoding": "base64"}),
        json!({"properties": {"delivery_mode": 9}, "routing_key": "k", "payload": "x", "payload_encoding": "string"}),
        json!({"properties": {"colour": "red"}, "routing_key": "k", "payload": "x", "payload_encoding": "string"}),
        json!({"properties": [], "routing_key": "k", "payload": "x", "payload_encoding": "string"}),
        json!({"routing_key": "k".repeat(300), "payload": "x", "payload_encoding": "string"}),
    ];
    for b in bad_publishes {
        let (st, v) = api
            .post("/api/exchanges/%2F/amq.direct/publish", b.clone())
            .await;
        assert_json_error(st, &v, 400);
    }
    // Not JSON at all.
    let r = api
        .client
        .post(format!("{}/api/exchanges/%2F/amq.direct/publish", api.base))
        .basic_auth("guest", Some("guest"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["reason"].as_str().unwrap().contains("bad request body"));
    let (st, v) = api.delete("/api/queues/%2F/err-q?if-empty=maybe").await;
    assert_json_error(st, &v, 400);
    // Wrong method: 405 with JSON.
    let (st, v) = api
        .call(reqwest::Method::PUT, "/api/queues/%2F/err-q/contents", None)
        .await;
    assert_json_error(st, &v, 405);
    // Writes need credentials too.
    let r = api
        .client
        .delete(format!("{}/api/queues/%2F/err-q/contents", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (st, v) = api.get("/api/whoami").await;
    assert_eq!((st, v["name"].as_str()), (200, Some("guest")));
    server.shutdown().await;
}

#[tokio::test]
async fn queue_list_paging_sorting_and_filtering() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, api, _conn, ch) = setup().await;
    for i in 0..25 {
        within(
            "declare",
            ch.queue_declare(
                format!("page-{i:02}").as_str().into(),
                QueueDeclareOptions::default(),
                Default::default(),
            ),
        )
        .await
        .unwrap();
    }
    for _ in 0..3 {
        api.post(
            "/api/exchanges/%2F/amq.default/publish",
            publish_body("page-07", "x"),
        )
        .await;
    }
    let (st, plain) = api.get("/api/queues").await;
    assert_eq!(st, 200);
    assert_eq!(
        plain.as_array().unwrap().len(),
        25,
        "no page: a plain array"
    );

    let (_, p) = api.get("/api/queues?page=2&page_size=10&sort=name").await;
    assert_eq!(p["page"], 2);
    assert_eq!(p["page_count"], 3);
    assert_eq!(p["total_count"], 25);
    assert_eq!(p["filtered_count"], 25);
    assert_eq!(p["item_count"], 10);
    assert_eq!(p["items"][0]["name"], "page-10");

    let (_, p) = api
        .get("/api/queues/%2F?page=1&page_size=5&sort=messages_ready&sort_reverse=true")
        .await;
    assert_eq!(p["items"][0]["name"], "page-07");

    let (_, p) = api.get("/api/queues?page=1&name=PAGE-1").await;
    assert_eq!(p["filtered_count"], 10, "case-insensitive substring: {p}");
    let (_, p) = api
        .get("/api/queues?page=1&name=%5Epage-2%5B0-2%5D%24&use_regex=true")
        .await;
    assert_eq!(p["filtered_count"], 3);

    for bad in [
        "/api/queues?page=0",
        "/api/queues?page=x",
        "/api/queues?page=9&page_size=10",
        "/api/queues?page=1&page_size=100000",
        "/api/queues?page=1&name=(&use_regex=true",
    ] {
        let (st, v) = api.get(bad).await;
        assert_json_error(st, &v, 400);
    }

    // The UI's files come from the same server, with their content types; the API keeps
    // its JSON 404s.
    for (path, ty) in [
        ("/", "text/html"),
        ("/js/app.js", "text/javascript"),
        ("/vendor/uPlot.iife.min.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let r = api
            .client
            .get(format!("{}{path}", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(ty), "{path}: {ct}");
    }
    let (st, v) = api.get("/api/not-an-endpoint").await;
    assert_json_error(st, &v, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn scripted_401_has_no_browser_challenge() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let server = ottermq::testing::start_test_broker().await;
    let base = format!("http://{}", server.http_addr.expect("http listener"));
    let client = reqwest::Client::new();
    let plain = client
        .get(format!("{base}/api/whoami"))
        .basic_auth("guest", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert!(plain.headers().contains_key("www-authenticate"));
    let scripted = client
        .get(format!("{base}/api/whoami"))
        .basic_auth("guest", Some("wrong"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), 401);
    assert!(!scripted.headers().contains_key("www-authenticate"));
    let v: Value = scripted.json().await.unwrap();
    assert_eq!(v["error"], "not_authorized");
    server.shutdown().await;
}

/// `reject_requeue_false` rejects as basic.reject does: with a dead-letter exchange the
/// messages are dead-lettered (x-death reason `rejected`), `ack_requeue_false` drops them.
#[tokio::test]
async fn get_reject_requeue_false_dead_letters() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return;
    }
    let (server, api, _conn, ch) = setup().await;
    let mut dl_args = lapin::types::FieldTable::default();
    dl_args.insert(
        "x-dead-letter-exchange".into(),
        lapin::types::AMQPValue::LongString("".into()),
    );
    dl_args.insert(
        "x-dead-letter-routing-key".into(),
        lapin::types::AMQPValue::LongString("rj-dlq".into()),
    );
    for (q, args) in [("rj-dlq", Default::default()), ("rj-q", dl_args)] {
        within(
            "declare",
            ch.queue_declare(q.into(), QueueDeclareOptions::default(), args),
        )
        .await
        .unwrap();
    }
    for i in 0..3 {
        let (st, r) = api
            .post(
                "/api/exchanges/%2F/amq.default/publish",
                publish_body("rj-q", &format!("r{i}")),
            )
            .await;
        assert_eq!(st, 200, "{r}");
    }
    let get = |n: u32, mode: &str| json!({"count": n, "ackmode": mode, "encoding": "auto"});
    let (st, taken) = api
        .post("/api/queues/%2F/rj-q/get", get(2, "reject_requeue_false"))
        .await;
    assert_eq!(st, 200, "{taken}");
    assert_eq!(taken.as_array().map(Vec::len), Some(2));
    let (_, _) = api
        .post("/api/queues/%2F/rj-q/get", get(1, "ack_requeue_false"))
        .await;
    assert_eq!(api.ready("rj-q").await, 0);
    assert_eq!(
        api.ready("rj-dlq").await,
        2,
        "rejected ones dead-lettered, acked one not"
    );
    let (_, dead) = api
        .post("/api/queues/%2F/rj-dlq/get", get(2, "ack_requeue_false"))
        .await;
    for (i, m) in dead.as_array().expect("array").iter().enumerate() {
        assert_eq!(m["payload"], format!("r{i}"));
        let death = &m["properties"]["headers"]["x-death"][0];
        assert_eq!(death["reason"], "rejected", "{m}");
        assert_eq!(death["queue"], "rj-q", "{m}");
        assert_eq!(
            m["properties"]["headers"]["x-first-death-reason"],
            "rejected"
        );
    }
    server.shutdown().await;
}
