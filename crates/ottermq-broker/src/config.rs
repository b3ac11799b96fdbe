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
    /// Bytes buffered for one connection's socket above which its deliveries pause.
    pub outbound_high_water: usize,
    /// Sample interval and retention of the metrics core's time series.
    pub metrics: ottermq_metrics::TierConfig,
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
            outbound_high_water: crate::connection::outbound::DEFAULT_HIGH_WATER,
            metrics: ottermq_metrics::TierConfig::default(),
            prometheus_per_object_limit: 1000,
        }
    }
}
