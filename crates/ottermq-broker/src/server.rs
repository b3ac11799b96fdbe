//! The AMQP listener: accepts TCP connections and serves each on its own task.

use crate::broker::Broker;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A bound listener; `run` accepts until `shutdown` resolves.
pub struct AmqpListener {
    listener: TcpListener,
    broker: Arc<Broker>,
}

impl AmqpListener {
    pub async fn bind(addr: SocketAddr, broker: Arc<Broker>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(AmqpListener { listener, broker })
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
                        tokio::spawn(crate::connection::serve(broker, socket, peer));
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
