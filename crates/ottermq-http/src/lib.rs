//! The management HTTP server: health endpoints (`/live`, `/ready`, `/health`, open) and the
//! management API's read endpoints under `/api` (HTTP basic auth with broker users).
//!
//! - `api/`: RabbitMQ-shaped JSON for overview, vhosts, queues, exchanges, bindings,
//!   connections, channels, consumers.
//! - `ui.rs`: the management UI's static files (from `ui/`), for every other path.
//! - `health.rs`, `auth.rs`, `error.rs` (JSON errors), `state.rs` (what handlers share).

pub mod api;
pub mod auth;
pub mod error;
pub mod health;
pub mod prometheus;
pub mod state;
pub mod ui;

use axum::routing::{get, post};
use axum::Router;
use state::AppState;
use std::net::SocketAddr;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/overview", get(api::overview))
        .route("/vhosts", get(api::vhosts))
        .route(
            "/vhosts/{name}",
            axum::routing::put(api::admin::put_vhost).delete(api::admin::delete_vhost),
        )
        .route("/users", get(api::admin::list_users))
        .route(
            "/users/{name}",
            get(api::admin::get_user)
                .put(api::admin::put_user)
                .delete(api::admin::delete_user),
        )
        .route("/permissions", get(api::admin::list_permissions))
        .route(
            "/permissions/{vhost}/{user}",
            get(api::admin::get_permission)
                .put(api::admin::put_permission)
                .delete(api::admin::delete_permission),
        )
        .route("/topic-permissions", get(api::topic_permissions::list))
        .route(
            "/topic-permissions/{vhost}/{user}",
            get(api::topic_permissions::get)
                .put(api::topic_permissions::put)
                .delete(api::topic_permissions::delete),
        )
        .route(
            "/bindings/{vhost}/e/{exchange}/q/{queue}",
            post(api::objects::post_binding),
        )
        .route(
            "/bindings/{vhost}/e/{exchange}/q/{queue}/{props}",
            axum::routing::delete(api::objects::delete_binding),
        )
        .route("/queues", get(api::queues))
        .route("/queues/{vhost}", get(api::queues_in))
        .route(
            "/queues/{vhost}/{name}",
            get(api::queue)
                .put(api::objects::put_queue)
                .delete(api::queue_actions::delete),
        )
        .route(
            "/queues/{vhost}/{name}/contents",
            axum::routing::delete(api::queue_actions::purge),
        )
        .route("/queues/{vhost}/{name}/get", post(api::queue_actions::get))
        .route(
            "/exchanges/{vhost}/{name}/publish",
            post(api::publish::publish),
        )
        .route("/whoami", get(api::whoami))
        .route("/exchanges", get(api::exchanges))
        .route("/exchanges/{vhost}", get(api::exchanges_in))
        .route(
            "/exchanges/{vhost}/{name}",
            get(api::exchange)
                .put(api::objects::put_exchange)
                .delete(api::objects::delete_exchange),
        )
        .route("/bindings", get(api::bindings))
        .route("/connections", get(api::connections))
        .route("/channels", get(api::channels))
        .route("/consumers", get(api::consumers))
        .route(
            "/definitions",
            get(api::definitions::get_definitions).post(api::definitions::post_definitions),
        )
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
        .method_not_allowed_fallback(|| async { error::ApiError::method_not_allowed() })
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
        .fallback(ui::serve)
        .with_state(state)
}

/// Serves the router over HTTPS on a bound listener until `shutdown` resolves. Each
/// connection's TLS handshake runs on its own task (bounded by the broker's handshake timeout,
/// logged when it expires), then hyper serves
/// HTTP/1.1 or HTTP/2 on it; the peer address reaches handlers as `ConnectInfo`, as on the
/// plain listener, so loopback-only users work the same.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: tokio_rustls::TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    // The broker's handshake timeout (`handshake_timeout_secs`), as on the amqps listener:
    // a client that sends nothing or stalls inside its ClientHello is dropped when it expires.
    let timeout = state.broker.config.handshake_timeout;
    let app = router(state);
    tokio::pin!(shutdown);
    loop {
        let (sock, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "management accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(timeout, tls.accept(sock)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, listener = "management", error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, listener = "management", ?timeout, "TLS handshake timed out");
                    return;
                }
            };
            let svc = tower::ServiceExt::map_request(
                app,
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                },
            );
            let svc = hyper_util::service::TowerToHyperService::new(svc);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
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
