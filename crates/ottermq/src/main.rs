//! `ottermq`: the broker binary.

use clap::Parser;
use ottermq::config::{Cli, Settings};
use std::sync::Arc;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// jemalloc instead of glibc's malloc: under glibc the broker's resident memory kept growing
/// from one burst of connections to the next (64 to 175 MiB over eight S6 runs with nothing
/// left in it), memory glibc holds but does not hand back; jemalloc returns it (52 to 101 MiB
/// over the same runs). mimalloc peaked at 185 MiB. docs/BENCHMARKS.md, "Memory".
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_cli(Cli::parse())?;
    // Built inside the runtime (the gRPC exporter needs it) and before logging, so `tracing`
    // spans of the broker go to the same provider as its message spans.
    let otel = ottermq_tracing::init(&settings.tracing)?.map(Arc::new);
    let otel_layer = otel
        .as_ref()
        .map(|t| tracing_opentelemetry::layer().with_tracer(t.sdk_tracer("ottermq")));
    tracing_subscriber::registry()
        .with(EnvFilter::try_from_env("OTTERMQ_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with(tracing_subscriber::fmt::layer())
        .with(otel_layer)
        .init();
    tracing::info!(data_dir = %settings.data_dir.display(), tracing = settings.tracing.enabled, "starting OtterMQ {}", env!("CARGO_PKG_VERSION"));
    let server = ottermq::start_with_tracing(settings, otel).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: closing connections with CONNECTION_FORCED");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
