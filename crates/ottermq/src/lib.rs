//! The OtterMQ server: wires the broker, its listeners and (as they land) the metrics core, the
//! management HTTP server and tracing, and shuts them down cleanly.

pub mod config;

use config::Settings;
use ottermq_broker::server::AmqpListener;
use ottermq_broker::Broker;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A started server. Dropping it does not stop it; call `shutdown`.
pub struct RunningServer {
    pub amqp_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds the listeners and starts serving.
pub async fn start(settings: Settings) -> anyhow::Result<RunningServer> {
    let broker = Broker::new(settings.broker.clone());
    let listener = AmqpListener::bind(settings.amqp_addr, broker.clone()).await?;
    let amqp_addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let mut rx = stop_rx.clone();
    let amqp_task = tokio::spawn(async move {
        listener
            .run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%amqp_addr, "AMQP listener ready");
    Ok(RunningServer {
        amqp_addr,
        http_addr: None,
        broker,
        stop,
        tasks: vec![amqp_task],
    })
}

impl RunningServer {
    /// Stops accepting, closes every connection with CONNECTION_FORCED and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.broker.shutdown(Duration::from_secs(5)).await;
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Helpers for tests: a broker on 127.0.0.1 with ephemeral ports.
pub mod testing {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// Starts a broker on 127.0.0.1 port 0 (AMQP and HTTP) with a fresh temporary data dir.
    pub async fn start_test_broker() -> RunningServer {
        start_test_broker_with(|_| {}).await
    }

    /// Same, after letting the caller adjust the settings.
    pub async fn start_test_broker_with(f: impl FnOnce(&mut Settings)) -> RunningServer {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut s = Settings {
            amqp_addr: SocketAddr::new(lo, 0),
            http_addr: Some(SocketAddr::new(lo, 0)),
            data_dir: unique_temp_dir(),
            ..Settings::default()
        };
        f(&mut s);
        match start(s).await {
            Ok(server) => server,
            Err(e) => panic!("test broker failed to start: {e:#}"),
        }
    }

    fn unique_temp_dir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!("ottermq-test-{}-{n}", std::process::id()))
    }
}
