//! Client connections: a reader task (this module's `serve`) that turns bytes into frames and
//! frames into method calls on channels, and a writer task (`writer.rs`) that owns the socket's
//! write half and flushes the shared outbound buffer with one write per wake-up.
//!
//! - `handshake.rs`: protocol header, start / start-ok, tune / tune-ok, open.
//! - `outbound.rs`: the outbound buffer shared by every producer of frames for this client.

mod handshake;
pub mod outbound;
mod writer;

use crate::broker::Broker;
use crate::channel::shared::ChannelShared;
use crate::channel::{Channel, ChannelPhase, ConnCtx};
use crate::error::AmqpError;
use bytes::BytesMut;
use ottermq_protocol::{
    decode_frame, encode_method, ConnectionClose, FieldTable, Frame, Method, ShortStr,
};
use outbound::Outbound;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncReadExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The read half of a client's transport: a TCP socket's own half, or one side of a TLS
/// stream. Boxed, so the reader is one type whatever the transport (one dynamic call per read
/// of up to 64 KiB, not per frame).
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The write half, owned by the writer task.
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;
use tokio::sync::Notify;

/// Facts about an open connection, for the management API and for shutdown.
#[derive(Debug, Default, Clone)]
pub struct ConnectionInfo {
    pub user: String,
    pub vhost: String,
    pub client_properties: FieldTable,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
}

/// The shared face of a connection: what other tasks may look at or ask of it.
#[derive(Debug)]
pub struct ConnectionHandle {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
    pub out: Arc<Outbound>,
    pub connected_at: SystemTime,
    pub info: Mutex<ConnectionInfo>,
    pub channels: Mutex<FxHashMap<u16, Arc<ChannelShared>>>,
    kill: Notify,
    kill_reason: Mutex<Option<String>>,
    /// Negotiated heartbeat in seconds (0 = off); the writer reads it to send heartbeats.
    heartbeat: AtomicU32,
}

impl ConnectionHandle {
    /// Asks the connection to close with CONNECTION_FORCED (shutdown, management API).
    pub fn force_close(&self, reason: &str) {
        *self.kill_reason.lock() = Some(reason.to_string());
        self.kill.notify_one();
    }

    /// Consumers on this connection may take messages again (its outbound buffer drained).
    fn resume_consumers(&self) {
        let channels: SmallVec<[Arc<ChannelShared>; 8]> =
            self.channels.lock().values().cloned().collect();
        for ch in channels {
            ch.resume();
        }
    }
}

/// How a connection's main loop ended.
enum Ending {
    /// Socket closed, heartbeat missed, or the handshake failed: nothing more to say.
    Gone,
    /// Closed by either side with the close handshake done or abandoned.
    Closed,
}

/// Serves one client connection until it closes.
pub async fn serve(broker: Arc<Broker>, socket: TcpStream, peer: SocketAddr) {
    let _ = socket.set_nodelay(true);
    let local = socket.local_addr().ok();
    let (rd, wr) = socket.into_split();
    serve_transport(broker, Box::new(rd), Box::new(wr), peer, local).await
}

/// Serves one client over any transport (plain TCP or TLS) until it closes.
pub async fn serve_transport(
    broker: Arc<Broker>,
    rd: ReadHalf,
    wr: WriteHalf,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) {
    let deadline = broker.config.handshake_timeout;
    serve_transport_within(broker, rd, wr, peer, local, deadline).await
}

/// [`serve_transport`] with `deadline` left for the AMQP handshake: what a TLS handshake
/// left of the handshake timeout, so TLS and AMQP together get one timeout, not one each.
pub(crate) async fn serve_transport_within(
    broker: Arc<Broker>,
    rd: ReadHalf,
    wr: WriteHalf,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    deadline: Duration,
) {
    let out = Arc::new(Outbound::new(
        broker.config.frame_max,
        broker.config.outbound_high_water,
    ));
    let handle = Arc::new(ConnectionHandle {
        id: broker.next_connection_id(),
        peer,
        local,
        out: out.clone(),
        connected_at: SystemTime::now(),
        info: Mutex::new(ConnectionInfo::default()),
        channels: Mutex::new(FxHashMap::default()),
        kill: Notify::new(),
        kill_reason: Mutex::new(None),
        heartbeat: AtomicU32::new(0),
    });
    let writer = tokio::spawn(writer::run(handle.clone(), wr));
    let mut reader = Reader {
        rd,
        buf: BytesMut::with_capacity(64 * 1024),
        handle: handle.clone(),
    };
    let ctx = match tokio::time::timeout(deadline, handshake::run(&broker, &mut reader)).await {
        Ok(Some(ctx)) => Some(ctx),
        Ok(None) => None,
        Err(_) => {
            tracing::info!(%peer, "handshake timed out");
            None
        }
    };
    if let Some(ctx) = ctx {
        // The handshake registered the connection at connection.open (limits checked there).
        let mut conn = Connection {
            reader,
            ctx,
            channels: FxHashMap::default(),
            closing: false,
            content_channels: SmallVec::new(),
            durable_channels: SmallVec::new(),
            durable_rx: None,
            alarm_rx: broker.memory_alarm(),
            published: false,
            blocked: false,
        };
        conn.durable_rx = conn.ctx.vhost.store.as_ref().map(|s| s.log.subscribe());
        let _ending = conn.run().await;
        conn.cleanup();
        broker.deregister(handle.id);
    }
    out.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// Resolves when the message log's durable position moves (never without a log).
async fn durable_changed(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// The read half and its buffer.
pub(crate) struct Reader {
    rd: ReadHalf,
    buf: BytesMut,
    handle: Arc<ConnectionHandle>,
}

impl Reader {
    /// Reads more bytes; false on end of stream or error.
    async fn fill(&mut self) -> bool {
        if self.buf.capacity() - self.buf.len() < 8 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        matches!(self.rd.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    /// Next whole frame during the handshake.
    async fn frame(&mut self, frame_max: u32) -> Result<Frame, Option<AmqpError>> {
        loop {
            match decode_frame(&mut self.buf, frame_max) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(Some(e.into())),
            }
            if !self.fill().await {
                return Err(None);
            }
        }
    }

    fn send(&self, channel: u16, m: &Method) {
        self.handle.out.write(|b, _| encode_method(b, channel, m));
    }
}

struct Connection {
    reader: Reader,
    ctx: ConnCtx,
    channels: FxHashMap<u16, Channel>,
    /// connection.close sent by the broker; waiting for close-ok.
    closing: bool,
    /// Channels that received content in this batch: their confirms are flushed after it.
    content_channels: SmallVec<[u16; 4]>,
    /// Channels with confirms waiting for the vhost's message log to be fsynced.
    durable_channels: SmallVec<[u16; 4]>,
    /// Durable position of the vhost's message log; changes wake the confirm flush.
    durable_rx: Option<tokio::sync::watch::Receiver<u64>>,
    /// The broker's memory alarm; a connection that has published is not read while it is on.
    alarm_rx: tokio::sync::watch::Receiver<bool>,
    published: bool,
    /// connection.blocked was sent (or the connection is held, for a client without the
    /// capability); connection.unblocked follows when the alarm clears.
    blocked: bool,
}

impl Connection {
    async fn run(&mut self) -> Ending {
        let info = self.reader.handle.info.lock().clone();
        let frame_max = info.frame_max;
        let heartbeat = info.heartbeat as u64;
        // Two missed heartbeat intervals and the peer is considered gone, as in RabbitMQ.
        let silence = if heartbeat > 0 {
            Duration::from_secs(heartbeat * 2)
        } else {
            Duration::from_secs(365 * 24 * 3600)
        };
        let close_wait = Duration::from_secs(3);
        let handle = self.reader.handle.clone();
        let timer = tokio::time::sleep(silence);
        tokio::pin!(timer);
        loop {
            loop {
                match decode_frame(&mut self.reader.buf, frame_max) {
                    Ok(Some(f)) => {
                        if let Some(ending) = self.handle_frame(f) {
                            return ending;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.connection_error(e.into());
                        // Nothing after a framing error can be trusted; stop reading frames.
                        self.reader.buf.clear();
                        return self.await_close_ok(close_wait).await;
                    }
                }
            }
            if let Some(rx) = &mut self.durable_rx {
                // Seen before the durable position is read, so no fsync is missed.
                rx.borrow_and_update();
            }
            if !self.content_channels.is_empty() {
                self.published = true;
            }
            for id in std::mem::take(&mut self.content_channels) {
                if let Some(ch) = self.channels.get_mut(&id) {
                    ch.flush_confirms();
                    if ch.awaiting_durable() && !self.durable_channels.contains(&id) {
                        self.durable_channels.push(id);
                    }
                }
            }
            if !self.durable_channels.is_empty() {
                let channels = &mut self.channels;
                self.durable_channels
                    .retain(|id| match channels.get_mut(id) {
                        Some(ch) => {
                            ch.flush_confirms();
                            ch.awaiting_durable()
                        }
                        None => false,
                    });
            }
            if self.closing {
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + close_wait);
            }
            let alarm = self.published && !self.closing && *self.alarm_rx.borrow_and_update();
            if alarm != self.blocked {
                self.blocked = alarm;
                if self.ctx.blocked_notify {
                    let m = if alarm {
                        Method::ConnectionBlocked(ottermq_protocol::ConnectionBlocked {
                            reason: ShortStr::from_static("low on memory"),
                        })
                    } else {
                        Method::ConnectionUnblocked
                    };
                    self.reader.send(0, &m);
                }
                if !alarm {
                    // Not read while blocked: the silence does not count against the client.
                    timer.as_mut().reset(tokio::time::Instant::now() + silence);
                }
            }
            if let Some(q) = self.ctx.flow_wait.take() {
                // Publisher flow control (queue/flow.rs): bounded, so heartbeats, the kill
                // signal and the alarm are looked at again within FLOW_MAX_WAIT.
                q.flow.wait().await;
            }
            let blocked = self.blocked;
            // A client that does not read what it is sent is not read from either (TCP flow
            // control holds it); the heartbeat timer still runs, so one that never resumes is
            // dropped after two intervals.
            let paused = handle.out.over_read_limit();
            tokio::select! {
                _ = self.alarm_rx.changed(), if self.published => {}
                _ = handle.out.wait_drained(), if paused => {}
                more = self.reader.fill(), if !blocked && !paused => {
                    if !more {
                        return Ending::Gone;
                    }
                    let now = std::time::Instant::now();
                    self.ctx.now = now;
                    if !self.closing {
                        timer.as_mut().reset(tokio::time::Instant::from_std(now) + silence);
                    }
                }
                _ = durable_changed(&mut self.durable_rx), if !self.durable_channels.is_empty() => {}
                _ = &mut timer, if !blocked => {
                    if !self.closing {
                        tracing::info!(peer = %self.reader.handle.peer, "missed heartbeats from client, closing");
                    }
                    return Ending::Gone;
                }
                _ = handle.kill.notified(), if !self.closing => {
                    let reason = handle.kill_reason.lock().clone().unwrap_or_default();
                    let e = AmqpError {
                        code: ottermq_protocol::reply_code::CONNECTION_FORCED,
                        text: format!("CONNECTION_FORCED - {reason}"),
                        class_id: 0,
                        method_id: 0,
                    };
                    self.connection_error(e);
                }
            }
        }
    }

    /// After a framing error: wait briefly for close-ok, reading and discarding bytes.
    async fn await_close_ok(&mut self, wait: Duration) -> Ending {
        let _ = tokio::time::timeout(wait, async {
            loop {
                if !self.reader.fill().await {
                    return;
                }
                while let Ok(Some(f)) = decode_frame(&mut self.reader.buf, 0) {
                    if matches!(
                        f,
                        Frame::Method {
                            channel: 0,
                            method: Method::ConnectionCloseOk
                        }
                    ) {
                        return;
                    }
                }
                self.reader.buf.clear();
            }
        })
        .await;
        Ending::Closed
    }

    /// Sends connection.close with the error and stops serving channels.
    fn connection_error(&mut self, e: AmqpError) {
        if self.closing {
            return;
        }
        tracing::info!(peer = %self.reader.handle.peer, code = e.code, text = %e.text, "closing connection");
        self.release_channels();
        self.reader.send(
            0,
            &Method::ConnectionClose(ConnectionClose {
                reply_code: e.code,
                reply_text: ShortStr::from(e.text.as_str()),
                class_id: e.class_id,
                method_id: e.method_id,
            }),
        );
        self.closing = true;
    }

    fn release_channels(&mut self) {
        let mut channels = std::mem::take(&mut self.channels);
        for ch in channels.values_mut() {
            ch.release(&mut self.ctx);
        }
        self.reader.handle.channels.lock().clear();
    }

    /// Releases everything the connection held: channels, then its exclusive queues.
    fn cleanup(&mut self) {
        self.release_channels();
        for q in std::mem::take(&mut self.ctx.exclusive_queues) {
            crate::channel::delete_queue(&mut self.ctx, &q);
        }
    }

    /// Handles one frame; Some when the connection is finished.
    fn handle_frame(&mut self, f: Frame) -> Option<Ending> {
        if self.closing {
            // After connection.close only close-ok (or a crossing close) matters.
            return match f {
                Frame::Method {
                    channel: 0,
                    method: Method::ConnectionCloseOk | Method::ConnectionClose(_),
                } => Some(Ending::Closed),
                _ => None,
            };
        }
        let r = match f {
            Frame::Heartbeat { .. } => Ok(()),
            Frame::Method { channel: 0, method } => return self.connection_method(method),
            Frame::Method { channel, method } => self.channel_method(channel, method),
            Frame::Header {
                channel,
                class_id,
                body_size,
                properties,
            } => self.with_open_channel(channel, |ch, ctx| {
                ch.handle_header(ctx, class_id, body_size, properties)
            }),
            Frame::Body { channel, payload } => {
                self.with_open_channel(channel, |ch, ctx| ch.handle_body(ctx, payload))
            }
        };
        if let Err(e) = r {
            self.connection_error(e);
        }
        None
    }

    fn connection_method(&mut self, method: Method) -> Option<Ending> {
        match method {
            Method::ConnectionClose(_) => {
                self.release_channels();
                self.reader.send(0, &Method::ConnectionCloseOk);
                Some(Ending::Closed)
            }
            Method::ConnectionCloseOk => Some(Ending::Closed),
            Method::ConnectionUpdateSecret(_) => {
                self.reader.send(0, &Method::ConnectionUpdateSecretOk);
                None
            }
            Method::ConnectionBlocked(_) | Method::ConnectionUnblocked => None,
            other => {
                let e = AmqpError::command_invalid(format!(
                    "unexpected method on channel 0: {}",
                    other.name()
                ))
                .on(other.class_id(), other.method_id());
                self.connection_error(e);
                None
            }
        }
    }

    /// Runs `f` on an open channel. Content for a closing channel is dropped; for an unknown
    /// channel it is a connection error.
    fn with_open_channel(
        &mut self,
        id: u16,
        f: impl FnOnce(&mut Channel, &mut ConnCtx) -> Result<(), AmqpError>,
    ) -> Result<(), AmqpError> {
        let Some(ch) = self.channels.get_mut(&id) else {
            return Err(AmqpError::channel_error(format!(
                "expected 'channel.open' on channel {id}"
            )));
        };
        if ch.phase == ChannelPhase::Closing {
            return Ok(());
        }
        if !self.content_channels.contains(&id) {
            self.content_channels.push(id);
        }
        match f(ch, &mut self.ctx) {
            Ok(()) => Ok(()),
            Err(e) if e.is_connection_error() => Err(e),
            Err(e) => {
                close_channel_with(ch, &mut self.ctx, e);
                Ok(())
            }
        }
    }

    fn channel_method(&mut self, id: u16, method: Method) -> Result<(), AmqpError> {
        let channel_max = self.reader.handle.info.lock().channel_max;
        if channel_max != 0 && id > channel_max {
            return Err(AmqpError::channel_error(format!(
                "channel {id} is above the negotiated channel_max {channel_max}"
            )));
        }
        let Some(ch) = self.channels.get_mut(&id) else {
            return match method {
                Method::ChannelOpen => {
                    let handle = &self.reader.handle;
                    let shared = Arc::new(ChannelShared::new(
                        id,
                        handle.id,
                        handle.peer,
                        handle.out.clone(),
                        self.ctx.cancel_notify,
                    ));
                    handle.channels.lock().insert(id, shared.clone());
                    self.ctx.broker.stats.channels_opened.inc();
                    self.channels.insert(id, Channel::new(shared));
                    self.reader.send(id, &Method::ChannelOpenOk);
                    Ok(())
                }
                other => Err(AmqpError::channel_error("expected 'channel.open'")
                    .on(other.class_id(), other.method_id())),
            };
        };
        if ch.phase == ChannelPhase::Closing {
            match method {
                Method::ChannelCloseOk => {
                    self.remove_channel(id);
                }
                Method::ChannelClose(_) => {
                    self.reader.send(id, &Method::ChannelCloseOk);
                    self.remove_channel(id);
                }
                _ => {}
            }
            return Ok(());
        }
        match method {
            Method::ChannelOpen => {
                Err(AmqpError::channel_error("second 'channel.open' seen").on(20, 10))
            }
            Method::ChannelClose(_) => {
                ch.release(&mut self.ctx);
                self.reader.send(id, &Method::ChannelCloseOk);
                self.remove_channel(id);
                Ok(())
            }
            Method::ChannelCloseOk => Ok(()),
            other => match ch.handle_method(&mut self.ctx, other) {
                Ok(()) => {
                    // A tx.commit whose commit-ok waits for the message log's fsync.
                    if ch.awaiting_durable() && !self.durable_channels.contains(&id) {
                        self.durable_channels.push(id);
                    }
                    Ok(())
                }
                Err(e) if e.is_connection_error() => Err(e),
                Err(e) => {
                    close_channel_with(ch, &mut self.ctx, e);
                    Ok(())
                }
            },
        }
    }

    fn remove_channel(&mut self, id: u16) {
        self.channels.remove(&id);
        self.reader.handle.channels.lock().remove(&id);
    }
}

/// A channel exception: release the channel's resources and send channel.close. Logged at
/// info, as RabbitMQ logs every channel exception, so a refused publish (message too large) or
/// declare (queue limit) shows in the broker's log with its code.
fn close_channel_with(ch: &mut Channel, ctx: &mut ConnCtx, e: AmqpError) {
    tracing::info!(peer = %ctx.conn.peer, channel = ch.id(), code = e.code, text = %e.text, "channel exception");
    ch.release(ctx);
    ch.phase = ChannelPhase::Closing;
    ch.send(&Method::ChannelClose(ottermq_protocol::ChannelClose {
        reply_code: e.code,
        reply_text: ShortStr::from(e.text.as_str()),
        class_id: e.class_id,
        method_id: e.method_id,
    }));
}

impl ConnectionHandle {
    pub(crate) fn set_heartbeat(&self, secs: u16) {
        self.heartbeat.store(secs as u32, Ordering::Relaxed);
    }
    pub(crate) fn heartbeat(&self) -> u32 {
        self.heartbeat.load(Ordering::Relaxed)
    }
}
