//! The OtterMQ server: wires the broker, its listeners and (as they land) the metrics core, the
//! management HTTP server and tracing, and shuts them down cleanly.

pub mod config;

use config::Settings;
use ottermq_broker::server::AmqpListener;
use ottermq_broker::Broker;
use ottermq_http::state::{AppState, Readiness};
use ottermq_tracing::TracingHandle;
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
    readiness: Arc<Readiness>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    tracing: Option<Arc<TracingHandle>>,
}

/// Binds the listeners and starts serving; sets up tracing when `settings.tracing.enabled`.
pub async fn start(settings: Settings) -> anyhow::Result<RunningServer> {
    let tracing = ottermq_tracing::init(&settings.tracing)?.map(Arc::new);
    start_with_tracing(settings, tracing).await
}

/// The same with a tracer provider the caller already built (the binary builds it first so
/// its `tracing-opentelemetry` log layer shares it). The server flushes it on shutdown.
pub async fn start_with_tracing(
    settings: Settings,
    tracing: Option<Arc<TracingHandle>>,
) -> anyhow::Result<RunningServer> {
    let mut broker_config = settings.broker.clone();
    broker_config.tracer = tracing.as_ref().map(|t| t.tracer.clone());
    if settings.tracing.enabled {
        let t = &settings.tracing;
        tracing::info!(endpoint = ?t.endpoint, protocol = ?t.protocol, ratio = t.sample_ratio,
            start_untraced = t.start_untraced, "tracing on");
    }
    let broker = Broker::new(broker_config);
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
    let readiness = Arc::new(Readiness::default());
    readiness.amqp_addr.set(amqp_addr).ok();
    let mut tasks = vec![amqp_task];
    let mut http_addr = None;
    if let Some(addr) = settings.http_addr {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        http_addr = Some(bound);
        let state = AppState {
            broker: broker.clone(),
            readiness: readiness.clone(),
        };
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = ottermq_http::serve(listener, state, shutdown).await {
                tracing::error!(error = %e, "management HTTP server failed");
            }
        }));
        tracing::info!(http_addr = %bound, "management HTTP listener ready");
    }
    if settings.metrics_enabled {
        let b = broker.clone();
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(ottermq_broker::sampler::run(b, async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
    }
    // Nothing to recover from disk yet: ready as soon as the listeners accept.
    readiness.set_ready(true);
    Ok(RunningServer {
        amqp_addr,
        http_addr,
        broker,
        readiness,
        stop,
        tasks,
        tracing,
    })
}

impl RunningServer {
    /// Stops accepting, closes every connection with CONNECTION_FORCED and waits for them.
    pub async fn shutdown(self) {
        // Not ready from the first moment of shutdown, so load balancers stop sending traffic.
        self.readiness.set_ready(false);
        self.broker.shutdown(Duration::from_secs(5)).await;
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(t) = self.tracing {
            // Flushing blocks until the exporter is done; off the async threads.
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
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
