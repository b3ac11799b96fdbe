//! The management HTTP server: health endpoints (`/live`, `/ready`, `/health`, open) and the
//! management API's read endpoints under `/api` (HTTP basic auth with broker users).
//!
//! - `api/`: RabbitMQ-shaped JSON for overview, vhosts, queues, exchanges, bindings,
//!   connections, channels, consumers.
//! - `ui.rs`: the management UI's static files (from `ui/`), for every other path.
//! - `health.rs`, `auth.rs`, `error.rs` (JSON errors), `state.rs` (what handlers share).
//! - `serve.rs`: the accept loops, with the request-header timeout `axum::serve` lacks.

pub mod api;
pub mod auth;
pub mod error;
pub mod health;
pub mod prometheus;
mod serve;
pub mod state;
pub mod ui;

use axum::routing::{get, post};
use axum::Router;
pub use serve::{serve, serve_tls};
use state::AppState;

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
