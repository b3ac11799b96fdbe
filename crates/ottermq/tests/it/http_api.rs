//! The management HTTP server over real HTTP: health endpoints, basic auth, RabbitMQ-shaped
//! read endpoints and JSON errors.

use crate::common;
use common::*;
use lapin::options::QueueDeclareOptions;
use serde_json::Value;

#[tokio::test]
async fn health_auth_and_read_endpoints() {
    if std::env::var("OTTERMQ_TEST_URL").is_ok() {
        return; // OtterMQ's own HTTP server
    }
    let server = ottermq::testing::start_test_broker().await;
    let http = server.http_addr.expect("http listener");
    let base = format!("http://{http}");
    let client = reqwest::Client::new();

    for path in ["/live", "/ready", "/health"] {
        let r = within(path, client.get(format!("{base}{path}")).send())
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{path}");
    }
    let health: Value = within("health", client.get(format!("{base}/health")).send())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "up");
    assert_eq!(health["checks"]["amqp_listener"]["status"], "up");

    // No credentials, wrong credentials: 401 with a JSON body and no detail.
    let r = within("anon", client.get(format!("{base}/api/overview")).send())
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_authorized");
    let r = within(
        "wrong",
        client
            .get(format!("{base}/api/overview"))
            .basic_auth("guest", Some("nope"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);

    // Objects created over AMQP show up.
    let conn = lapin_connect(&format!("amqp://guest:guest@{}/%2f", server.amqp_addr)).await;
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within(
        "declare",
        ch.queue_declare(
            "http-q".into(),
            QueueDeclareOptions::default(),
            Default::default(),
        ),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        within(
            "publish",
            ch.basic_publish(
                "".into(),
                "http-q".into(),
                Default::default(),
                b"x",
                Default::default(),
            ),
        )
        .await
        .unwrap();
    }
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let client = client.clone();
        async move {
            let r = within(
                "api",
                client.get(url).basic_auth("guest", Some("guest")).send(),
            )
            .await
            .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (st, q) = get("/api/queues/%2F/http-q").await;
    assert_eq!(st, 200);
    assert_eq!(q["name"], "http-q");
    assert_eq!(q["vhost"], "/");
    assert_eq!(q["messages_ready"], 3);
    assert_eq!(q["message_stats"]["publish"], 3);
    assert!(q["message_stats"]["publish_details"]["rate"].is_number());
    let (_, overview) = get("/api/overview").await;
    assert_eq!(overview["object_totals"]["connections"], 1);
    assert_eq!(overview["queue_totals"]["messages_ready"], 3);
    assert_eq!(overview["message_stats"]["publish"], 3);
    let (_, conns) = get("/api/connections").await;
    assert_eq!(conns[0]["user"], "guest");
    assert_eq!(conns[0]["channels"], 1);
    let (_, exchanges) = get("/api/exchanges/%2F").await;
    assert!(exchanges
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "amq.topic" && e["type"] == "topic"));
    let (_, channels) = get("/api/channels").await;
    assert_eq!(channels.as_array().unwrap().len(), 1);
    let (_, vhosts) = get("/api/vhosts").await;
    assert_eq!(vhosts[0]["name"], "/");

    // Unknown objects and endpoints: 404 with a JSON error.
    let (st, err) = get("/api/queues/%2F/missing").await;
    assert_eq!(st, 404);
    assert!(err["reason"].as_str().unwrap().contains("missing"));
    let (st, _) = get("/api/queues/nope").await;
    assert_eq!(st, 404);
    let (st, _) = get("/api/nothing-here").await;
    assert_eq!(st, 404);
    server.shutdown().await;
}
