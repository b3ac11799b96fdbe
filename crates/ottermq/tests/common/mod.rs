//! Shared helpers for the integration tests: start a broker (or use an external one), connect
//! with lapin, amqprs or a raw socket, and bound every wait so a broken broker fails fast.
#![allow(dead_code)]

pub mod logs;

use bytes::BytesMut;
use lapin::{Connection, ConnectionProperties};
use ottermq_protocol::{decode_frame, encode_method, Frame, Method};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const WAIT: Duration = Duration::from_secs(10);

/// A broker for one test: in-process OtterMQ on an ephemeral port, or the broker named by
/// `OTTERMQ_TEST_URL` (used to check the tests against RabbitMQ).
pub struct TestBroker {
    pub url: String,
    pub addr: SocketAddr,
    server: Option<ottermq::RunningServer>,
}

impl TestBroker {
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
    pub fn is_external(&self) -> bool {
        self.server.is_none()
    }
    pub fn url_with(&self, user: &str, pass: &str, vhost: &str) -> String {
        format!(
            "amqp://{user}:{pass}@{}/{}",
            self.addr,
            vhost.replace('/', "%2f")
        )
    }
}

pub async fn broker() -> TestBroker {
    if let Ok(url) = std::env::var("OTTERMQ_TEST_URL") {
        let hostport = url
            .rsplit('@')
            .next()
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("");
        let addr = tokio::net::lookup_host(hostport)
            .await
            .expect("resolve")
            .next()
            .expect("addr");
        return TestBroker {
            url,
            addr,
            server: None,
        };
    }
    let server = ottermq::testing::start_test_broker().await;
    let addr = server.amqp_addr;
    TestBroker {
        url: format!("amqp://guest:guest@{addr}/%2f"),
        addr,
        server: Some(server),
    }
}

/// Awaits `f` for at most `WAIT`, panicking with `what` on timeout.
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

pub async fn lapin_connect(url: &str) -> Connection {
    within(
        "lapin connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    .expect("lapin connect")
}

/// The AMQP reply code inside a lapin error, if it carries one.
pub fn reply_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// Asserts that `r` failed with AMQP reply code `code`.
pub fn assert_code<T: std::fmt::Debug>(r: Result<T, lapin::Error>, code: u16) {
    match r {
        Ok(v) => panic!("expected error {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(reply_code(&e), Some(code), "unexpected error: {e:?}"),
    }
}

/// A hand-driven AMQP client over a plain socket, for what client libraries refuse to send.
pub struct Raw {
    pub sock: TcpStream,
    pub buf: BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let sock = within("raw connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        Raw {
            sock,
            buf: BytesMut::new(),
        }
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        self.sock.write_all(b).await.expect("write");
    }

    pub async fn send(&mut self, channel: u16, m: &Method) {
        let mut b = BytesMut::new();
        encode_method(&mut b, channel, m);
        self.send_bytes(&b).await;
    }

    /// Next frame, or None when the socket closed.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Ok(Some(f)) = decode_frame(&mut self.buf, 0) {
                return Some(f);
            }
            let n = within("raw read", self.sock.read_buf(&mut self.buf))
                .await
                .ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    /// Next method frame, skipping heartbeats; None when the socket closed.
    pub async fn method(&mut self) -> Option<(u16, Method)> {
        loop {
            match self.frame().await? {
                Frame::Method { channel, method } => return Some((channel, method)),
                _ => continue,
            }
        }
    }

    /// Reads until the socket closes; true if it closed within the wait.
    pub async fn closed(&mut self) -> bool {
        let mut scratch = [0u8; 4096];
        loop {
            match tokio::time::timeout(WAIT, self.sock.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// basic.publish with its content header and body (no properties) on `channel`.
    pub async fn publish(&mut self, channel: u16, exchange: &str, routing_key: &str, body: &[u8]) {
        use ottermq_protocol::*;
        let mut f = BytesMut::new();
        encode_method(
            &mut f,
            channel,
            &Method::BasicPublish(BasicPublish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory: false,
                immediate: false,
            }),
        );
        encode_content(
            &mut f,
            channel,
            &RawProperties::empty(),
            &bytes::Bytes::copy_from_slice(body),
            131_072,
        );
        self.send_bytes(&f).await;
    }

    /// Waits for channel.close on `channel`, answers close-ok, and returns (code, class, method).
    pub async fn expect_channel_close(&mut self, channel: u16) -> (u16, u16, u16) {
        loop {
            match self.method().await {
                Some((ch, Method::ChannelClose(c))) if ch == channel => {
                    self.send(channel, &Method::ChannelCloseOk).await;
                    return (c.reply_code, c.class_id, c.method_id);
                }
                Some(_) => continue,
                None => panic!("socket closed before channel.close"),
            }
        }
    }

    /// Connects, sends the protocol header, reads connection.start and answers start-ok with
    /// `mechanism` and the raw SASL `response`.
    pub async fn start_ok(addr: SocketAddr, mechanism: &str, response: &[u8]) -> Raw {
        use ottermq_protocol::*;
        let mut r = Raw::connect(addr).await;
        r.send_bytes(PROTOCOL_HEADER).await;
        let (_, m) = r.method().await.expect("start");
        assert!(matches!(m, Method::ConnectionStart(_)), "got {m:?}");
        r.send(
            0,
            &Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: FieldTable::new(),
                mechanism: mechanism.into(),
                response: LongStr::from(response.to_vec()),
                locale: "en_US".into(),
            }),
        )
        .await;
        r
    }

    /// Full handshake as guest on vhost `/` with PLAIN and the given heartbeat.
    pub async fn handshake(addr: SocketAddr, heartbeat: u16) -> Raw {
        use ottermq_protocol::*;
        let mut r = Raw::start_ok(addr, "PLAIN", b"\0guest\0guest").await;
        let (_, m) = r.method().await.expect("tune");
        let Method::ConnectionTune(t) = m else {
            panic!("expected tune, got {m:?}")
        };
        r.send(
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: t.channel_max,
                frame_max: t.frame_max,
                heartbeat,
            }),
        )
        .await;
        r.send(
            0,
            &Method::ConnectionOpen(ConnectionOpen {
                virtual_host: "/".into(),
            }),
        )
        .await;
        let (_, m) = r.method().await.expect("open-ok");
        assert!(matches!(m, Method::ConnectionOpenOk), "got {m:?}");
        r
    }
}

/// GET `{base}{path}` on the management port as guest; fails the test if no answer comes.
pub async fn http_get(base: &str, path: &str) -> reqwest::Response {
    within(
        path,
        reqwest::Client::new()
            .get(format!("{base}{path}"))
            .basic_auth("guest", Some("guest"))
            .send(),
    )
    .await
    .expect("request")
}

/// GET that must answer 200 with a JSON body.
pub async fn http_json_ok(base: &str, path: &str) -> serde_json::Value {
    let r = http_get(base, path).await;
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.expect("json body")
}

/// A new lapin channel on `c`.
pub async fn channel(c: &lapin::Connection) -> lapin::Channel {
    within("channel", c.create_channel())
        .await
        .expect("channel")
}

/// A field table of the given (key, value) pairs, for queue and consumer arguments.
pub fn args(list: &[(&str, lapin::types::AMQPValue)]) -> lapin::types::FieldTable {
    let mut t = lapin::types::FieldTable::default();
    for (k, v) in list {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// A field table with one argument.
pub fn arg(key: &str, v: lapin::types::AMQPValue) -> lapin::types::FieldTable {
    args(&[(key, v)])
}

/// The next delivery of a lapin consumer, within the common timeout.
pub async fn next(c: &mut lapin::Consumer) -> lapin::message::Delivery {
    use futures_util::StreamExt;
    within("delivery", c.next())
        .await
        .expect("stream ended")
        .expect("delivery error")
}

/// A delivery's body as text.
pub fn body(d: &lapin::message::Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

/// A lapin consumer on `q` with manual acks and a tag the broker picks.
pub async fn consume(ch: &lapin::Channel, q: &str) -> lapin::Consumer {
    within(
        "consume",
        ch.basic_consume(q.into(), "".into(), Default::default(), Default::default()),
    )
    .await
    .expect("consume")
}

/// A no-ack lapin consumer on `q`.
pub async fn consume_no_ack(ch: &lapin::Channel, q: &str, tag: &str) -> lapin::Consumer {
    let opts = lapin::options::BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    within(
        "consume",
        ch.basic_consume(q.into(), tag.into(), opts, Default::default()),
    )
    .await
    .expect("consume")
}

/// A port free at the time of asking, for a broker started as a child process.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The broker binary child-process tests run: `OTTERMQ_BIN` (the test command sets it) or the
/// one cargo built for this test run.
pub fn broker_binary() -> std::path::PathBuf {
    std::env::var_os("OTTERMQ_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_ottermq")))
}

/// basic.get with manual ack (the message stays unacked until settled); None when empty.
pub async fn get(ch: &lapin::Channel, q: &str) -> Option<lapin::message::BasicGetMessage> {
    within(
        "get",
        ch.basic_get(q.into(), lapin::options::BasicGetOptions { no_ack: false }),
    )
    .await
    .expect("get")
}

/// Copies a data directory (of a running broker: after a confirmed publish, the copy is what
/// a `kill -9` at that moment would leave).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Declares a durable fanout exchange.
pub async fn durable_fanout(ch: &lapin::Channel, name: &str) {
    within(
        "exchange",
        ch.exchange_declare(
            name.into(),
            lapin::ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        ),
    )
    .await
    .expect("exchange");
}
