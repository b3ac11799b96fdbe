//! Broker settings, with RabbitMQ's defaults where RabbitMQ has one.

use std::time::Duration;

/// A user allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    /// Management tags (administrator, monitoring ...), as RabbitMQ has them.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub users: Vec<UserConfig>,
    pub vhosts: Vec<String>,
    /// Users that may only connect from a loopback address (RabbitMQ: `loopback_users`).
    pub loopback_users: Vec<String>,
    /// Largest frame the broker accepts and offers in connection.tune (RabbitMQ: 131072).
    pub frame_max: u32,
    /// Most channels per connection offered in connection.tune (RabbitMQ: 2047).
    pub channel_max: u16,
    /// Heartbeat interval offered in connection.tune, seconds (RabbitMQ: 60).
    pub heartbeat: u16,
    /// Largest message body accepted (RabbitMQ 3.10: 128 MiB).
    pub max_message_size: u64,
    /// A client that has not finished the handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// Time a management HTTP/1 connection has to send a whole request head, and the longest
    /// a kept-alive one may sit idle waiting for its next request: a client that trickles its
    /// headers or says nothing is closed (slowloris), as the AMQP handshake timeout does.
    pub http_header_timeout: Duration,
    /// Bytes buffered for one connection's socket above which its deliveries pause.
    pub outbound_high_water: usize,
    /// Sample interval and retention of the metrics core's time series.
    pub metrics: ottermq_metrics::TierConfig,
    /// Most open connections on the node; 0 = no limit (RabbitMQ: `connection_max`).
    pub max_connections: u32,
    /// Most open connections per user; 0 = no limit (RabbitMQ: the user's `max-connections`).
    pub max_connections_per_user: u32,
    /// Most queues per vhost; 0 = no limit (RabbitMQ: the vhost's `max-queues`).
    pub max_queues_per_vhost: u32,
    /// Failed logins one peer address may make per minute before its further attempts are
    /// refused without looking at the password; 0 = no limit.
    pub auth_failures_per_minute: u32,
    /// How long a peer's failed-login count lasts from its first failure (a minute: the limit
    /// is per minute; shorter only in tests).
    pub auth_failure_window: Duration,
    /// Size at which a message log segment is closed and the next begun.
    pub segment_bytes: u64,
    /// RAM a queue may use for ready message bodies before further ones are paged out to disk
    /// (lazy paging); `x-queue-mode: lazy` queues use a small head instead.
    pub queue_memory_budget_bytes: u64,
    /// Message bytes held in queues above which publishing connections are blocked
    /// (RabbitMQ's memory high watermark, here counted as queued message bodies); None: off.
    pub memory_high_watermark_bytes: Option<u64>,
    /// Tracing on: starts the broker's spans. None (the default) is tracing off, and the
    /// publish path then never looks at headers.
    pub tracer: Option<std::sync::Arc<ottermq_tracing::MessageTracer>>,
    /// Most queues (and, separately, exchanges) given per-object series on the Prometheus
    /// `/metrics` endpoint, so a broker with 10,000 queues cannot blow up a scrape;
    /// `/metrics/per-object` has them all. 0 turns per-object series off on `/metrics`.
    pub prometheus_per_object_limit: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            users: vec![UserConfig {
                name: "guest".into(),
                password: "guest".into(),
                tags: vec!["administrator".into()],
            }],
            vhosts: vec!["/".into()],
            loopback_users: vec!["guest".into()],
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 128 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            http_header_timeout: Duration::from_secs(30),
            outbound_high_water: crate::connection::outbound::DEFAULT_HIGH_WATER,
            metrics: ottermq_metrics::TierConfig::default(),
            max_connections: 0,
            max_connections_per_user: 0,
            max_queues_per_vhost: 0,
            auth_failures_per_minute: 10,
            auth_failure_window: crate::auth::FailureWindow::WINDOW,
            segment_bytes: crate::store::DEFAULT_SEGMENT_BYTES,
            queue_memory_budget_bytes: crate::queue::paging::DEFAULT_BUDGET_BYTES,
            memory_high_watermark_bytes: None,
            tracer: None,
            prometheus_per_object_limit: 1000,
        }
    }
}
