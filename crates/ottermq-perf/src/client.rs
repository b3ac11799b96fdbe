//! A minimal AMQP client over a plain socket, driven by OtterMQ's own protocol crate, with
//! batched writes: the load generator must not be the bottleneck (client libraries write a
//! frame at a time and allocate per message).

use anyhow::{bail, Context};
use bytes::BytesMut;
use ottermq_protocol::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub struct Conn {
    pub rd: OwnedReadHalf,
    pub wr: OwnedWriteHalf,
    pub buf: BytesMut,
    pub frame_max: u32,
}

impl Conn {
    /// Connects and completes the handshake (PLAIN, heartbeats off).
    pub async fn open(addr: &str, user: &str, pass: &str, vhost: &str) -> anyhow::Result<Conn> {
        let sock = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        sock.set_nodelay(true)?;
        let (rd, wr) = sock.into_split();
        let mut c = Conn {
            rd,
            wr,
            buf: BytesMut::with_capacity(1 << 20),
            frame_max: 131_072,
        };
        c.wr.write_all(PROTOCOL_HEADER).await?;
        let Method::ConnectionStart(_) = c.method().await? else {
            bail!("expected connection.start")
        };
        c.send(
            0,
            &Method::ConnectionStartOk(ConnectionStartOk {
                client_properties: FieldTable::new(),
                mechanism: "PLAIN".into(),
                response: LongStr::from(format!("\0{user}\0{pass}")),
                locale: "en_US".into(),
            }),
        )
        .await?;
        let Method::ConnectionTune(t) = c.method().await? else {
            bail!("expected connection.tune")
        };
        c.frame_max = if t.frame_max == 0 {
            131_072
        } else {
            t.frame_max
        };
        c.send(
            0,
            &Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: t.channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            }),
        )
        .await?;
        c.send(
            0,
            &Method::ConnectionOpen(ConnectionOpen {
                virtual_host: vhost.into(),
            }),
        )
        .await?;
        let Method::ConnectionOpenOk = c.method().await? else {
            bail!("expected connection.open-ok")
        };
        c.send(1, &Method::ChannelOpen).await?;
        let Method::ChannelOpenOk = c.method().await? else {
            bail!("expected channel.open-ok")
        };
        Ok(c)
    }

    pub async fn send(&mut self, channel: u16, m: &Method) -> anyhow::Result<()> {
        let mut b = BytesMut::new();
        encode_method(&mut b, channel, m);
        self.wr.write_all(&b).await?;
        Ok(())
    }

    pub async fn frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(f) = decode_frame(&mut self.buf, 0)? {
                return Ok(f);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed by broker");
            }
        }
    }

    /// Next method frame; a connection.close or channel.close is an error.
    pub async fn method(&mut self) -> anyhow::Result<Method> {
        loop {
            if let Frame::Method { method, .. } = self.frame().await? {
                match method {
                    Method::ConnectionClose(c) => {
                        bail!("connection closed: {} {}", c.reply_code, c.reply_text)
                    }
                    Method::ChannelClose(c) => {
                        bail!("channel closed: {} {}", c.reply_code, c.reply_text)
                    }
                    m => return Ok(m),
                }
            }
        }
    }
}
