//! `--sink ADDR`: a stand-in broker that answers the handshake and every setup method the load
//! generator sends (declare, bind, purge, qos, consume, confirm.select) and discards
//! publishes, acknowledging them when confirms are on. Pointed at it, a producer-only run
//! measures the load generator's own ceiling, with no broker work in the way.
//!
//! While a client consumes, the sink also forwards each publish to the latest consumer as a
//! basic.deliver (one task hop and one socket write, no queue, no routing): scenario S5
//! against it gives the latency floor of the load generator, the kernel and the two vCPUs,
//! which any broker's figure includes.

use anyhow::bail;
use bytes::BytesMut;
use ottermq_protocol::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Where forwarded deliveries go: the latest consumer's connection, if any.
type Consumer = Arc<Mutex<Option<mpsc::UnboundedSender<BytesMut>>>>;

/// Binds `addr`, prints `{"sink":"<bound address>"}` (port 0 picks one), then serves until
/// killed.
pub async fn run(addr: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!(
        "{}",
        serde_json::json!({ "sink": listener.local_addr()?.to_string() })
    );
    let consumer: Consumer = Arc::default();
    loop {
        let (sock, _) = listener.accept().await?;
        let consumer = consumer.clone();
        tokio::spawn(async move {
            let _ = serve(sock, consumer).await;
        });
    }
}

/// One client: the server side of the handshake, then one reply per setup method.
async fn serve(mut sock: TcpStream, consumer: Consumer) -> anyhow::Result<()> {
    sock.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(1 << 20);
    while buf.len() < PROTOCOL_HEADER.len() {
        if sock.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
    if buf[..8] != PROTOCOL_HEADER[..] {
        sock.write_all(PROTOCOL_HEADER).await?;
        return Ok(());
    }
    let _ = buf.split_to(8);
    let mut caps = FieldTable::new();
    caps.insert("publisher_confirms", FieldValue::Bool(true));
    let mut props = FieldTable::new();
    props.insert("capabilities", FieldValue::Table(caps));
    props.insert("product", FieldValue::LongStr("ottermq-perf sink".into()));
    let mut out = BytesMut::new();
    encode_method(
        &mut out,
        0,
        &Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: props,
            mechanisms: "PLAIN".into(),
            locales: "en_US".into(),
        }),
    );
    // Publish sequence numbers per channel with confirms on: (channel, next, acked).
    let mut confirms: Vec<(u16, u64, u64)> = Vec::new();
    // Set once this connection consumes: forwarded deliveries arrive here.
    let mut deliveries: Option<mpsc::UnboundedReceiver<BytesMut>> = None;
    // The publish being received (exchange, routing key, properties), to forward.
    let mut publishing: Option<(ShortStr, ShortStr, Option<RawProperties>)> = None;
    let mut tag = 0u64;
    loop {
        if !out.is_empty() {
            sock.write_all(&out).await?;
            out.clear();
        }
        let read = match &mut deliveries {
            None => sock.read_buf(&mut buf).await?,
            Some(rx) => tokio::select! {
                n = sock.read_buf(&mut buf) => n?,
                d = rx.recv() => {
                    if let Some(d) = d {
                        out.extend_from_slice(&d);
                    }
                    continue;
                }
            },
        };
        if read == 0 {
            return Ok(());
        }
        while let Some(frame) = decode_frame(&mut buf, 0)? {
            let (channel, method) = match frame {
                Frame::Method { channel, method } => (channel, method),
                Frame::Header { properties, .. } => {
                    if let Some(p) = &mut publishing {
                        p.2 = Some(properties);
                    }
                    continue;
                }
                Frame::Body { payload, .. } => {
                    if let Some((x, rk, Some(props))) = publishing.take() {
                        forward(&consumer, &mut tag, &x, &rk, &props, &payload);
                    }
                    continue;
                }
                _ => continue,
            };
            let reply = match method {
                Method::BasicPublish(p) => {
                    if let Some(c) = confirms.iter_mut().find(|c| c.0 == channel) {
                        c.1 += 1;
                    }
                    publishing = Some((p.exchange, p.routing_key, None));
                    continue;
                }
                Method::ConnectionStartOk(_) => Method::ConnectionTune(ConnectionTune {
                    channel_max: 2047,
                    frame_max: 131_072,
                    heartbeat: 0,
                }),
                Method::ConnectionTuneOk(_) => continue,
                Method::ConnectionOpen(_) => Method::ConnectionOpenOk,
                Method::ConnectionClose(_) => {
                    encode_method(&mut out, 0, &Method::ConnectionCloseOk);
                    sock.write_all(&out).await?;
                    return Ok(());
                }
                Method::ChannelOpen => Method::ChannelOpenOk,
                Method::ChannelClose(_) => Method::ChannelCloseOk,
                Method::ExchangeDeclare(m) if !m.nowait => Method::ExchangeDeclareOk,
                Method::ExchangeDelete(m) if !m.nowait => Method::ExchangeDeleteOk,
                Method::QueueDeclare(m) if !m.nowait => Method::QueueDeclareOk(QueueDeclareOk {
                    queue: if m.queue.is_empty() {
                        "sink-queue".into()
                    } else {
                        m.queue
                    },
                    message_count: 0,
                    consumer_count: 0,
                }),
                Method::QueueBind(m) if !m.nowait => Method::QueueBindOk,
                Method::QueuePurge(m) if !m.nowait => {
                    Method::QueuePurgeOk(QueuePurgeOk { message_count: 0 })
                }
                Method::QueueDelete(m) if !m.nowait => {
                    Method::QueueDeleteOk(QueueDeleteOk { message_count: 0 })
                }
                Method::BasicQos(_) => Method::BasicQosOk,
                Method::BasicConsume(m) if !m.nowait => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    if let Ok(mut c) = consumer.lock() {
                        *c = Some(tx);
                    }
                    deliveries = Some(rx);
                    Method::BasicConsumeOk(BasicConsumeOk {
                        consumer_tag: if m.consumer_tag.is_empty() {
                            "sink-consumer".into()
                        } else {
                            m.consumer_tag
                        },
                    })
                }
                Method::ConfirmSelect(m) => {
                    if !confirms.iter().any(|c| c.0 == channel) {
                        confirms.push((channel, 0, 0));
                    }
                    if m.nowait {
                        continue;
                    }
                    Method::ConfirmSelectOk
                }
                Method::ConnectionStart(_) => bail!("a client sent connection.start"),
                _ => continue,
            };
            encode_method(&mut out, channel, &reply);
        }
        // One multiple-ack per channel per read covers everything published so far.
        for c in confirms.iter_mut().filter(|c| c.1 > c.2) {
            c.2 = c.1;
            encode_method(
                &mut out,
                c.0,
                &Method::BasicAck(BasicAck {
                    delivery_tag: c.1,
                    multiple: true,
                }),
            );
        }
    }
}

/// Sends one publish to the latest consumer as basic.deliver on channel 1 (dropped when
/// nobody consumes, as in the ceiling run).
fn forward(
    consumer: &Consumer,
    tag: &mut u64,
    exchange: &ShortStr,
    routing_key: &ShortStr,
    props: &RawProperties,
    body: &[u8],
) {
    let Ok(c) = consumer.lock() else { return };
    let Some(tx) = c.as_ref() else { return };
    *tag += 1;
    let mut d = BytesMut::with_capacity(body.len() + 128);
    encode_basic_deliver(
        &mut d,
        1,
        b"sink-consumer",
        *tag,
        false,
        exchange.as_bytes(),
        routing_key.as_bytes(),
    );
    encode_content(&mut d, 1, props, body, 131_072);
    let _ = tx.send(d);
}
