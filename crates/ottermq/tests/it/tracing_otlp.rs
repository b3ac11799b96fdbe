//! Tracing end to end: lapin producers with known trace ids publish through OtterMQ to lapin
//! consumers; a real OTLP/gRPC receiver (tonic + opentelemetry-proto, decoding the protobuf)
//! collects the broker's spans. Checks the trace id, the chain producer -> publish -> deliver
//! -> consumer, the attributes, the header the consumer gets, and that tracing off changes
//! nothing.

use crate::common;
use common::*;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use ottermq_tracing::{Protocol, TracingConfig};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The OTLP receiver: every exported span with its service name.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Receiver {
    /// Keeps every span of one export request with its resource's service name.
    fn record(&self, req: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((service.clone(), s));
                }
            }
        }
    }
}

impl Receiver {
    /// Every span received so far in trace `t` (hex).
    fn spans_in(&self, t: &str) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .filter(|s| hex(&s.trace_id) == t)
            .collect()
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/HTTP receiver (`POST /v1/traces`, binary protobuf), as the OpenTelemetry Collector,
/// Jaeger and Tempo serve on port 4318: decodes each request body with prost.
async fn start_http_receiver() -> (Receiver, SocketAddr) {
    use axum::http::{header, HeaderMap, StatusCode};
    use prost::Message as _;
    let rx = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = rx.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let ct = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if ct != "application/x-protobuf" {
                    return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                }
                match ExportTraceServiceRequest::decode(body) {
                    Ok(req) => {
                        state.record(req);
                        let resp = ExportTraceServiceResponse {
                            partial_success: None,
                        };
                        (StatusCode::OK, resp.encode_to_vec())
                    }
                    Err(_) => (StatusCode::BAD_REQUEST, Vec::new()),
                }
            }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (rx, addr)
}

async fn start_receiver() -> (Receiver, SocketAddr) {
    let rx = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(rx.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (rx, addr)
}

async fn traced_broker(otlp: SocketAddr, enabled: bool) -> ottermq::RunningServer {
    traced_broker_over(format!("http://{otlp}"), Protocol::Grpc, enabled).await
}

async fn traced_broker_over(
    endpoint: String,
    protocol: Protocol,
    enabled: bool,
) -> ottermq::RunningServer {
    ottermq::testing::start_test_broker_with(|s| {
        s.http_addr = None;
        s.tracing = TracingConfig {
            enabled,
            endpoint: Some(endpoint),
            protocol,
            service_name: "ottermq-test".into(),
            ..TracingConfig::default()
        };
    })
    .await
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn attr_str<'a>(s: &'a Span, key: &str) -> &'a str {
    match attr(s, key) {
        Some(Value::StringValue(v)) => v,
        other => panic!("span {}: attribute {key} is {other:?}", s.name),
    }
}

fn attr_int(s: &Span, key: &str) -> i64 {
    match attr(s, key) {
        Some(Value::IntValue(v)) => *v,
        other => panic!("span {}: attribute {key} is {other:?}", s.name),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn traceparent(trace: &str, span: &str, sampled: bool) -> String {
    format!("00-{trace}-{span}-{}", if sampled { "01" } else { "00" })
}

/// A lapin connection to `server` and a channel in confirm mode on it.
async fn confirming_channel(server: &ottermq::RunningServer) -> (lapin::Connection, Channel) {
    let url = format!("amqp://guest:guest@{}/%2f", server.amqp_addr);
    let conn = lapin_connect(&url).await;
    let ch = within("channel", conn.create_channel()).await.unwrap();
    within("confirm", ch.confirm_select(Default::default()))
        .await
        .unwrap();
    (conn, ch)
}

async fn declare(ch: &Channel, name: &str) {
    declare_with(ch, name, FieldTable::default()).await;
}

/// Declares the exclusive queue `name` with `args`.
async fn declare_with(ch: &Channel, name: &str, args: FieldTable) {
    within(
        "declare",
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            args,
        ),
    )
    .await
    .expect("declare");
}

/// Properties whose `traceparent` names the sampled producer span `producer` of trace `t`.
fn traced_props(t: &str, producer: &str) -> BasicProperties {
    BasicProperties::default().with_headers(headers_with(AMQPValue::LongString(LongString::from(
        traceparent(t, producer, true),
    ))))
}

/// The span called `name` among `spans`.
fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

async fn publish(ch: &Channel, exchange: &str, key: &str, props: BasicProperties) {
    let confirm = within(
        "publish",
        ch.basic_publish(
            exchange.into(),
            key.into(),
            Default::default(),
            b"hello",
            props,
        ),
    )
    .await
    .expect("publish");
    within("confirm", confirm).await.expect("confirm");
}

/// Consumes one message from `q`, acks it, returns its headers.
async fn consume_one(ch: &Channel, q: &str) -> FieldTable {
    let mut c = consume(ch, q).await;
    let d = within("delivery", c.next())
        .await
        .expect("stream ended")
        .expect("delivery");
    within("ack", d.ack(Default::default())).await.expect("ack");
    // Cancelled, so a later consume_one on the same queue is the only consumer there (an
    // abandoned one would take its share of the messages round-robin).
    within(
        "cancel",
        ch.basic_cancel(c.tag().as_str().into(), Default::default()),
    )
    .await
    .expect("cancel");
    d.properties.headers().clone().unwrap_or_default()
}

fn header_str(h: &FieldTable, key: &str) -> Option<String> {
    match h.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ByteArray(b) => Some(String::from_utf8_lossy(b.as_slice()).into_owned()),
        other => panic!("{key} has type {other:?}"),
    }
}

fn headers_with(tp: AMQPValue) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert("traceparent".into(), tp);
    h.insert("x-app".into(), AMQPValue::LongInt(42));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_the_message_from_producer_to_consumer() {
    let (rx, otlp) = start_receiver().await;
    let server = traced_broker(otlp, true).await;
    let (conn, ch) = confirming_channel(&server).await;

    // 1. Direct to a queue, traceparent as a long string (pika, amqplib).
    let t1 = "4bf92f3577b34da6a3ce929d0e0e4736";
    let producer1 = "00f067aa0ba902b7";
    let q1 = unique("trace-q1");
    declare(&ch, &q1).await;
    let props = BasicProperties::default()
        .with_message_id("msg-1".into())
        .with_headers(headers_with(AMQPValue::LongString(LongString::from(
            traceparent(t1, producer1, true),
        ))));
    publish(&ch, "", &q1, props).await;
    let got1 = consume_one(&ch, &q1).await;

    // 2. Fanout to two queues, traceparent as a byte array (some lapin / Java users).
    let t2 = "0af7651916cd43dd8448eb211c80319c";
    let producer2 = "b7ad6b7169203331";
    let ex = unique("trace-fan");
    within(
        "exchange",
        ch.exchange_declare(
            ex.as_str().into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .unwrap();
    let (qa, qb) = (unique("trace-fa"), unique("trace-fb"));
    for q in [&qa, &qb] {
        declare(&ch, q).await;
        within(
            "bind",
            ch.queue_bind(
                q.as_str().into(),
                ex.as_str().into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .unwrap();
    }
    let props = BasicProperties::default().with_headers(headers_with(AMQPValue::ByteArray(
        ByteArray::from(traceparent(t2, producer2, true).into_bytes()),
    )));
    publish(&ch, &ex, "rk", props).await;
    let got_a = consume_one(&ch, &qa).await;
    let got_b = consume_one(&ch, &qb).await;

    // 3. No trace context, and 4. an unsampled parent: not traced, headers as sent.
    let q3 = unique("trace-q3");
    declare(&ch, &q3).await;
    let mut plain = FieldTable::default();
    plain.insert("x-app".into(), AMQPValue::LongInt(1));
    publish(
        &ch,
        "",
        &q3,
        BasicProperties::default().with_headers(plain.clone()),
    )
    .await;
    let got3 = consume_one(&ch, &q3).await;
    assert_eq!(got3, plain, "untraced message: headers unchanged");
    let t4 = "11111111111111111111111111111111";
    let unsampled = headers_with(AMQPValue::LongString(LongString::from(traceparent(
        t4,
        "2222222222222222",
        false,
    ))));
    publish(
        &ch,
        "",
        &q3,
        BasicProperties::default().with_headers(unsampled.clone()),
    )
    .await;
    let got4 = consume_one(&ch, &q3).await;
    assert_eq!(got4, unsampled, "unsampled parent: headers unchanged");

    let _ = conn.close(200, "bye".into()).await;
    // Shutdown flushes the batch processor.
    server.shutdown().await;
    let spans = rx.spans.lock().unwrap().clone();
    assert!(spans.iter().all(|(svc, _)| svc == "ottermq-test"));
    let spans: Vec<Span> = spans.into_iter().map(|(_, s)| s).collect();
    assert!(
        spans
            .iter()
            .all(|s| hex(&s.trace_id) == t1 || hex(&s.trace_id) == t2),
        "only the two sampled producers' traces: {:?}",
        spans
            .iter()
            .map(|s| (&s.name, hex(&s.trace_id)))
            .collect::<Vec<_>>()
    );

    // Trace 1: producer -> publish -> deliver -> consumer.
    let in1: Vec<&Span> = spans.iter().filter(|s| hex(&s.trace_id) == t1).collect();
    let publish1 = in1
        .iter()
        .find(|s| s.name == "publish amq.default")
        .expect("publish span");
    assert_eq!(hex(&publish1.parent_span_id), producer1);
    assert_eq!(attr_str(publish1, "messaging.system"), "rabbitmq");
    assert_eq!(
        attr_str(publish1, "messaging.destination.name"),
        "amq.default"
    );
    assert_eq!(
        attr_str(publish1, "messaging.rabbitmq.destination.routing_key"),
        q1
    );
    assert_eq!(attr_str(publish1, "messaging.operation.type"), "receive");
    assert_eq!(attr_str(publish1, "messaging.message.id"), "msg-1");
    assert_eq!(attr_int(publish1, "messaging.message.body.size"), 5);
    assert_eq!(attr_str(publish1, "network.peer.address"), "127.0.0.1");
    assert!(attr_int(publish1, "network.peer.port") > 0);
    assert_eq!(attr_int(publish1, "ottermq.routed_queues"), 1);
    assert!(
        publish1.events.iter().any(|e| e.name == "confirm"),
        "publisher confirm recorded"
    );
    let deliver1 = in1
        .iter()
        .find(|s| s.name == format!("deliver {q1}"))
        .expect("deliver span");
    assert_eq!(deliver1.parent_span_id, publish1.span_id);
    assert_eq!(attr_str(deliver1, "messaging.destination.name"), q1);
    assert_eq!(attr_str(deliver1, "messaging.operation.type"), "send");
    assert_eq!(
        attr_int(deliver1, "messaging.rabbitmq.message.delivery_tag"),
        1
    );
    assert!(attr_str(deliver1, "ottermq.consumer_tag").starts_with("amq.ctag"));
    assert!(matches!(
        attr(deliver1, "ottermq.redelivered"),
        Some(Value::BoolValue(false))
    ));
    assert!(deliver1.events.iter().any(|e| e.name == "ack"));
    let wait1 = in1
        .iter()
        .find(|s| s.name == format!("queue {q1}"))
        .expect("queue wait span");
    assert_eq!(wait1.parent_span_id, publish1.span_id);
    assert!(wait1.end_time_unix_nano >= wait1.start_time_unix_nano);
    // The consumer's header names the deliver span: its span continues the chain.
    assert_eq!(
        header_str(&got1, "traceparent").as_deref(),
        Some(traceparent(t1, &hex(&deliver1.span_id), true).as_str())
    );
    assert_eq!(got1.inner().get("x-app"), Some(&AMQPValue::LongInt(42)));

    // Trace 2: one routing span, one wait and one deliver span per queue.
    let in2: Vec<&Span> = spans.iter().filter(|s| hex(&s.trace_id) == t2).collect();
    let pubs: Vec<_> = in2
        .iter()
        .filter(|s| s.name.starts_with("publish "))
        .collect();
    assert_eq!(pubs.len(), 1, "one publish span for the fanout");
    let publish2 = pubs[0];
    assert_eq!(hex(&publish2.parent_span_id), producer2);
    assert_eq!(attr_str(publish2, "messaging.destination.name"), ex);
    assert_eq!(attr_int(publish2, "ottermq.routed_queues"), 2);
    for (q, got) in [(&qa, &got_a), (&qb, &got_b)] {
        let d: Vec<_> = in2
            .iter()
            .filter(|s| s.name == format!("deliver {q}"))
            .collect();
        assert_eq!(d.len(), 1, "one deliver span for {q}");
        assert_eq!(d[0].parent_span_id, publish2.span_id);
        assert_eq!(
            header_str(got, "traceparent").as_deref(),
            Some(traceparent(t2, &hex(&d[0].span_id), true).as_str())
        );
        assert!(in2.iter().any(|s| s.name == format!("queue {q}")));
    }
    assert_eq!(in2.len(), 5, "publish + 2 x (queue, deliver)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_off_exports_nothing_and_keeps_headers() {
    let (rx, otlp) = start_receiver().await;
    let server = traced_broker(otlp, false).await;
    let (conn, ch) = confirming_channel(&server).await;
    let q = unique("untraced");
    declare(&ch, &q).await;
    let sent = headers_with(AMQPValue::LongString(LongString::from(traceparent(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        true,
    ))));
    publish(
        &ch,
        "",
        &q,
        BasicProperties::default().with_headers(sent.clone()),
    )
    .await;
    let got = consume_one(&ch, &q).await;
    assert_eq!(got, sent, "headers delivered unchanged");
    let _ = conn.close(200, "bye".into()).await;
    server.shutdown().await;
    // Give a (wrongly) running exporter time to send anything it had.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(rx.spans.lock().unwrap().is_empty(), "no span exported");
}

/// The same chain exported over OTLP/HTTP with binary protobuf (`http/protobuf`, the protocol
/// Tempo and the Collector's port 4318 take) instead of gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_export_over_http_protobuf() {
    let (rx, otlp) = start_http_receiver().await;
    let server = traced_broker_over(
        format!("http://{otlp}/v1/traces"),
        Protocol::HttpProtobuf,
        true,
    )
    .await;
    let (conn, ch) = confirming_channel(&server).await;
    let trace = "5b8efff798038103d269b633813fc60c";
    let producer = "eee19b7ec3c1b174";
    let q = unique("trace-http");
    declare(&ch, &q).await;
    let props = BasicProperties::default().with_headers(headers_with(AMQPValue::LongString(
        LongString::from(traceparent(trace, producer, true)),
    )));
    publish(&ch, "", &q, props).await;
    let got = consume_one(&ch, &q).await;
    let _ = conn.close(200, "bye".into()).await;
    server.shutdown().await;
    let spans: Vec<Span> = rx
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(svc, s)| {
            assert_eq!(svc, "ottermq-test");
            s.clone()
        })
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), 3, "publish, queue wait, deliver: {names:?}");
    assert!(spans.iter().all(|s| hex(&s.trace_id) == trace));
    let publish = spans
        .iter()
        .find(|s| s.name == "publish amq.default")
        .expect("publish span");
    assert_eq!(hex(&publish.parent_span_id), producer);
    let deliver = spans
        .iter()
        .find(|s| s.name == format!("deliver {q}"))
        .expect("deliver span");
    assert_eq!(deliver.parent_span_id, publish.span_id);
    assert_eq!(
        header_str(&got, "traceparent").as_deref(),
        Some(traceparent(trace, &hex(&deliver.span_id), true).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_lettered_message_stays_in_its_trace() {
    let (rx, otlp) = start_receiver().await;
    let server = traced_broker(otlp, true).await;
    let (conn, ch) = confirming_channel(&server).await;
    let (q, dlq) = (unique("trace-src"), unique("trace-dlq"));
    declare(&ch, &dlq).await;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(dlq.as_str().into()),
    );
    declare_with(&ch, &q, args).await;
    let t = "5bf92f3577b34da6a3ce929d0e0e4737";
    let producer = "10f067aa0ba902b8";
    publish(&ch, "", &q, traced_props(t, producer)).await;
    // Rejected without requeue: dead-lettered into dlq.
    let mut c = consume(&ch, &q).await;
    let d = within("delivery", c.next())
        .await
        .expect("stream ended")
        .expect("delivery");
    within("reject", d.reject(BasicRejectOptions { requeue: false }))
        .await
        .expect("reject");
    let got = consume_one(&ch, &dlq).await;
    assert!(got.inner().contains_key("x-death"), "{got:?}");

    let _ = conn.close(200, "bye".into()).await;
    server.shutdown().await;
    let spans = rx.spans_in(t);
    let publish = named(&spans, "publish amq.default");
    assert_eq!(hex(&publish.parent_span_id), producer);
    let first = named(&spans, &format!("deliver {q}"));
    assert!(first.events.iter().any(|e| e.name == "reject"), "{first:?}");
    let second = named(&spans, &format!("deliver {dlq}"));
    let death = named(&spans, &format!("dead-letter {q}"));
    assert_eq!(death.parent_span_id, publish.span_id);
    assert_eq!(attr_str(death, "ottermq.dead_letter.reason"), "rejected");
    assert_eq!(attr_str(death, "messaging.destination.name"), q);
    assert_eq!(
        attr_str(death, "ottermq.dead_letter.exchange"),
        "amq.default"
    );
    assert_eq!(
        second.parent_span_id, death.span_id,
        "the dead-letter queue's delivery descends from why the message died"
    );
    assert!(second.events.iter().any(|e| e.name == "ack"));
    assert_eq!(
        header_str(&got, "traceparent").as_deref(),
        Some(traceparent(t, &hex(&second.span_id), true).as_str()),
        "the dead-letter consumer continues the same trace"
    );
}

/// A traced direct reply-to reply gets the spans a queued message gets: publish, a queue wait
/// and a deliver span on `amq.rabbitmq.reply-to` (auto-acked), and the requester's header
/// names the deliver span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reply_to_replies_are_traced() {
    let (rx, otlp) = start_receiver().await;
    let server = traced_broker(otlp, true).await;
    let (conn, ch) = confirming_channel(&server).await;
    let requester = within("channel", conn.create_channel()).await.unwrap();
    let mut replies = within(
        "consume reply-to",
        requester.basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("consume reply-to");
    let q = unique("trace-rpc");
    declare(&ch, &q).await;
    let req = within(
        "request",
        requester.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"ping",
            BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
        ),
    )
    .await
    .expect("request");
    drop(req);
    let d = within("request delivery", async {
        let mut c = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        c.next().await.expect("stream ended").expect("delivery")
    })
    .await;
    let reply_to = d.properties.reply_to().clone().expect("rewritten reply_to");
    let t = "6bf92f3577b34da6a3ce929d0e0e4738";
    let replier = "20f067aa0ba902b9";
    let props = BasicProperties::default().with_headers(headers_with(AMQPValue::LongString(
        LongString::from(traceparent(t, replier, true)),
    )));
    publish(&ch, "", reply_to.as_str(), props).await;
    let got = within("reply", replies.next())
        .await
        .expect("stream ended")
        .expect("reply");
    assert_eq!(got.data, b"hello");
    let headers = got.properties.headers().clone().unwrap_or_default();

    let _ = conn.close(200, "bye".into()).await;
    server.shutdown().await;
    let spans = rx.spans_in(t);
    let publish = spans
        .iter()
        .find(|s| s.name == "publish amq.default")
        .expect("publish span of the reply");
    assert_eq!(hex(&publish.parent_span_id), replier);
    assert_eq!(attr_int(publish, "ottermq.routed_queues"), 1);
    let deliver = spans
        .iter()
        .find(|s| s.name == "deliver amq.rabbitmq.reply-to")
        .expect("deliver span of the reply");
    assert_eq!(deliver.parent_span_id, publish.span_id);
    assert!(
        deliver.events.iter().any(|e| e.name == "auto-ack"),
        "{:?}",
        deliver.events
    );
    assert!(spans
        .iter()
        .any(|s| s.name == "queue amq.rabbitmq.reply-to" && s.parent_span_id == publish.span_id));
    assert_eq!(
        header_str(&headers, "traceparent").as_deref(),
        Some(traceparent(t, &hex(&deliver.span_id), true).as_str()),
        "the requester continues the replier's trace"
    );
}

/// A traced message paged out to the spill file (a lazy queue, behind 100 KiB of untraced
/// messages) keeps its place in the trace: its delivery has queue and deliver spans under the
/// broker's publish span, and the consumer gets the deliver span in `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_message_stays_in_its_trace() {
    let (rx, otlp) = start_receiver().await;
    let server = traced_broker(otlp, true).await;
    let (conn, ch) = confirming_channel(&server).await;
    let q = unique("trace-paged");
    let mut args = FieldTable::default();
    args.insert("x-queue-mode".into(), AMQPValue::LongString("lazy".into()));
    declare_with(&ch, &q, args).await;
    let filler = vec![7u8; 1024];
    let mut confirms = Vec::new();
    for _ in 0..100 {
        let c = within(
            "publish",
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                Default::default(),
                &filler,
                BasicProperties::default(),
            ),
        )
        .await
        .expect("publish");
        confirms.push(c);
    }
    for c in confirms {
        within("confirm", c).await.expect("confirm");
    }
    let t = "4bf92f3577b34da6a3ce929d0e0e4736";
    publish(&ch, "", &q, traced_props(t, "00f067aa0ba902b7")).await;
    let mut c = consume(&ch, &q).await;
    let mut last = FieldTable::default();
    for _ in 0..101 {
        let d = within("delivery", c.next())
            .await
            .expect("stream ended")
            .expect("delivery");
        within("ack", d.ack(Default::default())).await.expect("ack");
        last = d.properties.headers().clone().unwrap_or_default();
    }
    let _ = conn.close(200, "bye".into()).await;
    server.shutdown().await;
    let spans = rx.spans_in(t);
    let publish = named(&spans, "publish amq.default");
    let deliver = named(&spans, &format!("deliver {q}"));
    assert_eq!(deliver.parent_span_id, publish.span_id);
    assert!(spans.iter().any(|s| s.name == format!("queue {q}")));
    assert_eq!(
        header_str(&last, "traceparent").as_deref(),
        Some(traceparent(t, &hex(&deliver.span_id), true).as_str()),
        "the consumer continues the trace"
    );
}
