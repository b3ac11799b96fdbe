//! `ottermq`: the broker binary.

use clap::Parser;
use ottermq::config::{Cli, Settings};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("OTTERMQ_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let settings = Settings::from_cli(Cli::parse())?;
    tracing::info!(data_dir = %settings.data_dir.display(), "starting OtterMQ {}", env!("CARGO_PKG_VERSION"));
    let server = ottermq::start(settings).await?;
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
