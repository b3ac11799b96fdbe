//! The management HTTP server: health endpoints (`/live`, `/ready`, `/health`, open) and the
//! management API's read endpoints under `/api` (HTTP basic auth with broker users).
//!
//! - `api/`: RabbitMQ-shaped JSON for overview, vhosts, queues, exchanges, bindings,
//!   connections, channels, consumers.
//! - `health.rs`, `auth.rs`, `error.rs` (JSON errors), `state.rs` (what handlers share).

pub mod api;
pub mod auth;
pub mod error;
pub mod health;
pub mod prometheus;
pub mod state;

use axum::routing::get;
use axum::Router;
use state::AppState;
use std::net::SocketAddr;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/overview", get(api::overview))
        .route("/vhosts", get(api::vhosts))
        .route("/queues", get(api::queues))
        .route("/queues/{vhost}", get(api::queues_in))
        .route("/queues/{vhost}/{name}", get(api::queue))
        .route("/exchanges", get(api::exchanges))
        .route("/exchanges/{vhost}", get(api::exchanges_in))
        .route("/exchanges/{vhost}/{name}", get(api::exchange))
        .route("/bindings", get(api::bindings))
        .route("/connections", get(api::connections))
        .route("/channels", get(api::channels))
        .route("/consumers", get(api::consumers))
        .route("/metrics/overview", get(api::metrics::overview))
        .route(
            "/metrics/timeseries/queue-depths",
            get(api::metrics::queue_depths),
        )
        .route(
            "/metrics/timeseries/{metric}",
            get(api::metrics::timeseries),
        )
        .route("/metrics/queues/{vhost}/{name}", get(api::metrics::queue))
        .route(
            "/metrics/exchanges/{vhost}/{name}",
            get(api::metrics::exchange),
        )
        .fallback(|| async { error::ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_user,
        ));
    Router::new()
        .route("/live", get(health::live))
        .route("/ready", get(health::ready))
        .route("/health", get(health::health))
        .route("/metrics", get(prometheus::metrics))
        .route("/metrics/per-object", get(prometheus::metrics_per_object))
        .nest("/api", api)
        .with_state(state)
}

/// Serves the router on a bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
