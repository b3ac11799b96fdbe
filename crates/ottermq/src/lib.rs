//! The OtterMQ server: wires the broker, its listeners and (as they land) the metrics core, the
//! management HTTP server and tracing, and shuts them down cleanly.

pub mod config;

use anyhow::Context;
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
    /// The AMQPS listener, when TLS is configured.
    pub amqps_addr: Option<SocketAddr>,
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
    // TLS set-up errors (unreadable files, a key that does not match) stop the start before
    // anything listens.
    let tls = match &settings.tls {
        Some(t) => Some(ottermq_broker::tls::acceptor(t)?),
        None => None,
    };
    let (broker, report) = {
        let config = broker_config;
        let dir = settings.data_dir.clone();
        tokio::task::spawn_blocking(move || Broker::open(config, &dir))
            .await?
            .with_context(|| format!("recovering from {}", settings.data_dir.display()))?
    };
    for issue in &report.issues {
        tracing::warn!(%issue, "recovery found damage");
    }
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        vhosts = report.vhosts,
        queues = report.queues,
        messages = report.messages,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "recovered durable state"
    );
    if let Some(path) = &settings.definitions {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: serde_json::Value =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        let b = broker.clone();
        let n =
            tokio::task::spawn_blocking(move || ottermq_http::api::definitions::import(&b, &doc))
                .await?
                .map_err(|e| anyhow::anyhow!("importing {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), ?n, "imported definitions");
    }
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
    let mut tasks = vec![amqp_task];
    let mut amqps_addr = None;
    if let (Some(addr), Some(tls)) = (settings.amqps_addr, tls) {
        let listener = AmqpListener::bind_tls(addr, broker.clone(), tls).await?;
        let bound = listener.local_addr()?;
        amqps_addr = Some(bound);
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            listener
                .run(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        }));
        tracing::info!(amqps_addr = %bound, "AMQPS listener ready");
    }
    let readiness = Arc::new(Readiness::default());
    readiness.amqp_addr.set(amqp_addr).ok();
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
        let https = match (&settings.tls, settings.management_tls) {
            (Some(t), true) => Some(tokio_rustls::TlsAcceptor::from(
                ottermq_broker::tls::server_config(t, &[b"h2", b"http/1.1"])?,
            )),
            _ => None,
        };
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let served = match https {
                Some(tls) => ottermq_http::serve_tls(listener, state, tls, shutdown).await,
                None => ottermq_http::serve(listener, state, shutdown).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "management HTTP server failed");
            }
        }));
        tracing::info!(http_addr = %bound, "management HTTP listener ready");
    }
    {
        let b = broker.clone();
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(b.watch_memory(async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
    }
    if settings.metrics_enabled {
        let b = broker.clone();
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(ottermq_broker::sampler::run(b, async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
    }
    // Recovery finished before the listeners were bound: ready as soon as they accept.
    readiness.set_ready(true);
    Ok(RunningServer {
        amqp_addr,
        amqps_addr,
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
