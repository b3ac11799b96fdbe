//! The AMQP listener: accepts TCP connections, optionally completes a TLS handshake (amqps),
//! and serves each on its own task.

use crate::broker::Broker;
use crate::tls::TlsAcceptor;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A bound listener; `run` accepts until `shutdown` resolves.
pub struct AmqpListener {
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Option<TlsAcceptor>,
}

impl AmqpListener {
    pub async fn bind(addr: SocketAddr, broker: Arc<Broker>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(AmqpListener {
            listener,
            broker,
            tls: None,
        })
    }

    /// A listener whose clients speak TLS first (amqps).
    pub async fn bind_tls(
        addr: SocketAddr,
        broker: Arc<Broker>,
        tls: TlsAcceptor,
    ) -> std::io::Result<Self> {
        let mut l = Self::bind(addr, broker).await?;
        l.tls = Some(tls);
        Ok(l)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        if self.broker.is_shutting_down() {
                            continue;
                        }
                        let broker = self.broker.clone();
                        match &self.tls {
                            None => {
                                tokio::spawn(crate::connection::serve(broker, socket, peer));
                            }
                            Some(tls) => {
                                tokio::spawn(serve_tls(broker, tls.clone(), socket, peer));
                            }
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
}

/// Completes the TLS handshake and serves the connection over it. The handshake timeout
/// covers the TLS handshake and the AMQP one together, so a client that sends nothing, or a
/// partial ClientHello, is dropped when it expires, as a silent plain-TCP client is.
async fn serve_tls(broker: Arc<Broker>, tls: TlsAcceptor, socket: TcpStream, peer: SocketAddr) {
    let _ = socket.set_nodelay(true);
    let local = socket.local_addr().ok();
    let timeout = broker.config.handshake_timeout;
    let started = tokio::time::Instant::now();
    let stream = match tokio::time::timeout(timeout, tls.accept(socket)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, listener = "amqps", ?timeout, "TLS handshake timed out");
            return;
        }
    };
    let left = timeout.saturating_sub(started.elapsed());
    let (rd, wr) = tokio::io::split(stream);
    crate::connection::serve_transport_within(
        broker,
        Box::new(rd),
        Box::new(wr),
        peer,
        local,
        left,
    )
    .await;
}
