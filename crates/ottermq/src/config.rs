//! Server settings from, in rising precedence: defaults, a TOML file (`--config`), the
//! `OTTERMQ_*` environment and command-line flags.

use anyhow::Context;
use clap::Parser;
use ottermq_broker::{BrokerConfig, UserConfig};
use ottermq_tracing::{Protocol, TracingConfig};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// OtterMQ: an AMQP 0-9-1 message broker with built-in observability.
#[derive(Parser, Debug, Default)]
#[command(name = "ottermq", version)]
pub struct Cli {
    /// AMQP listener port [default: 5672]
    #[arg(long, env = "OTTERMQ_AMQP_PORT")]
    pub amqp_port: Option<u16>,
    /// Management HTTP port: REST API, UI, /metrics, health [default: 15672]
    #[arg(long, env = "OTTERMQ_HTTP_PORT")]
    pub http_port: Option<u16>,
    /// Address both listeners bind to [default: 0.0.0.0]
    #[arg(long, env = "OTTERMQ_BIND")]
    pub bind: Option<IpAddr>,
    /// Directory for durable definitions and persistent messages [default: ./data]
    #[arg(long, env = "OTTERMQ_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// AMQPS (TLS) listener port; used when `tls_cert_file` and `tls_key_file` are set in the
    /// configuration file [default: 5671]
    #[arg(long, env = "OTTERMQ_AMQPS_PORT")]
    pub amqps_port: Option<u16>,
    /// TOML configuration file (users, vhosts, limits); flags and environment override it
    #[arg(long, env = "OTTERMQ_CONFIG")]
    pub config: Option<PathBuf>,
    /// RabbitMQ-format definitions JSON (vhosts, exchanges, queues, bindings) to import at start
    #[arg(long, env = "OTTERMQ_DEFINITIONS")]
    pub definitions: Option<PathBuf>,
    /// OpenTelemetry tracing of messages [default: false]
    #[arg(long, env = "OTTERMQ_TRACING_ENABLED")]
    pub tracing_enabled: Option<bool>,
    /// Ratio of traces the broker starts for messages without a sampled parent [default: 1.0]
    #[arg(long, env = "OTTERMQ_TRACING_SAMPLE_RATIO")]
    pub tracing_sample_ratio: Option<f64>,
    /// Start traces for messages that carry no traceparent [default: false]
    #[arg(long, env = "OTTERMQ_TRACING_START_UNTRACED")]
    pub tracing_start_untraced: Option<bool>,
    /// Most queues (and exchanges) with per-object series on /metrics [default: 1000]
    #[arg(long, env = "OTTERMQ_PROMETHEUS_PER_OBJECT_LIMIT")]
    pub prometheus_per_object_limit: Option<usize>,
}

/// The configuration file's shape. Every field is optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub amqp_port: Option<u16>,
    pub http_port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub data_dir: Option<PathBuf>,
    pub heartbeat: Option<u16>,
    pub frame_max: Option<u32>,
    pub channel_max: Option<u16>,
    pub max_message_size: Option<u64>,
    pub handshake_timeout_secs: Option<u64>,
    /// Time a management HTTP/1 client has to send a request head, and the longest a
    /// kept-alive connection may wait idle for its next request (default 30 s).
    pub http_header_timeout_secs: Option<u64>,
    /// Queued message bytes above which publishers are blocked (connection.blocked); unset: off.
    pub vm_memory_high_watermark_bytes: Option<u64>,
    /// Size at which a message log segment is closed (default 64 MiB).
    pub segment_bytes: Option<u64>,
    /// RAM one queue may use for ready bodies before further ones are paged to disk (64 MiB).
    pub queue_memory_budget_bytes: Option<u64>,
    /// Users that may only connect from loopback; defaults to ["guest"].
    pub loopback_users: Option<Vec<String>>,
    /// TLS: PEM certificate chain and key; with both set, AMQPS listens on `amqps_port`.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// CA for client certificates; with `tls_fail_if_no_peer_cert` they are required.
    pub tls_ca_file: Option<PathBuf>,
    pub tls_fail_if_no_peer_cert: Option<bool>,
    pub amqps_port: Option<u16>,
    /// Serve the management port (API, UI, /metrics) over HTTPS with the same certificate.
    pub management_tls: Option<bool>,
    /// Most connections on the node, per user, and queues per vhost (0 = no limit).
    pub max_connections: Option<u32>,
    pub max_connections_per_user: Option<u32>,
    pub max_queues_per_vhost: Option<u32>,
    /// Failed logins per peer address per minute before it is refused outright (default 10).
    pub auth_failures_per_minute: Option<u32>,
    /// The metrics core's sampler (default on).
    pub metrics_enabled: Option<bool>,
    /// Fine tier: sample interval (default 5) and number of samples kept (default 120).
    pub metrics_interval_secs: Option<u64>,
    pub metrics_fine_samples: Option<usize>,
    /// Coarse tier: interval (default 60, a multiple of the fine one) and samples (default 120).
    pub metrics_coarse_interval_secs: Option<u64>,
    pub metrics_coarse_samples: Option<usize>,
    /// OpenTelemetry tracing (default off); the `OTEL_*` variables refine it.
    pub tracing_enabled: Option<bool>,
    pub tracing_sample_ratio: Option<f64>,
    pub tracing_start_untraced: Option<bool>,
    /// OTLP endpoint, e.g. "http://127.0.0.1:4317" (OTEL_EXPORTER_OTLP_ENDPOINT wins).
    pub tracing_endpoint: Option<String>,
    /// "grpc" (default) or "http/protobuf" (OTEL_EXPORTER_OTLP_PROTOCOL wins).
    pub tracing_protocol: Option<String>,
    /// Most queues (and exchanges) with per-object series on `/metrics` (default 1000).
    pub prometheus_per_object_limit: Option<usize>,
    #[serde(default)]
    pub vhosts: Vec<String>,
    #[serde(default)]
    pub users: Vec<FileUser>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileUser {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub amqp_addr: SocketAddr,
    /// None: no management listener.
    pub http_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub broker: BrokerConfig,
    /// Whether the sampler runs (counters are always kept; they cost an atomic add).
    pub metrics_enabled: bool,
    /// The AMQPS listener and the certificates it (and HTTPS, if `management_tls`) uses.
    pub amqps_addr: Option<SocketAddr>,
    pub tls: Option<ottermq_broker::tls::TlsSettings>,
    pub management_tls: bool,
    /// Definitions file imported after recovery, before the listeners accept.
    pub definitions: Option<PathBuf>,
    /// OpenTelemetry tracing, with the `OTEL_*` variables already applied.
    pub tracing: TracingConfig,
}

impl Default for Settings {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Settings {
            amqp_addr: SocketAddr::new(any, 5672),
            http_addr: Some(SocketAddr::new(any, 15672)),
            data_dir: PathBuf::from("data"),
            broker: BrokerConfig::default(),
            metrics_enabled: true,
            amqps_addr: None,
            tls: None,
            management_tls: false,
            definitions: None,
            tracing: TracingConfig::default(),
        }
    }
}

impl Settings {
    /// Resolves flags, environment, file and defaults.
    pub fn from_cli(cli: Cli) -> anyhow::Result<Settings> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let mut s = Settings::default();
        let bind = cli.bind.or(file.bind).unwrap_or(s.amqp_addr.ip());
        s.amqp_addr = SocketAddr::new(bind, cli.amqp_port.or(file.amqp_port).unwrap_or(5672));
        s.http_addr = Some(SocketAddr::new(
            bind,
            cli.http_port.or(file.http_port).unwrap_or(15672),
        ));
        s.data_dir = cli.data_dir.or(file.data_dir).unwrap_or(s.data_dir);
        match (&file.tls_cert_file, &file.tls_key_file) {
            (Some(cert), Some(key)) => {
                s.tls = Some(ottermq_broker::tls::TlsSettings {
                    cert_file: cert.clone(),
                    key_file: key.clone(),
                    ca_file: file.tls_ca_file.clone(),
                    fail_if_no_peer_cert: file.tls_fail_if_no_peer_cert.unwrap_or(false),
                });
                let port = cli.amqps_port.or(file.amqps_port).unwrap_or(5671);
                s.amqps_addr = Some(SocketAddr::new(bind, port));
                s.management_tls = file.management_tls.unwrap_or(false);
            }
            (None, None) => {
                anyhow::ensure!(
                    file.management_tls != Some(true),
                    "management_tls needs tls_cert_file and tls_key_file"
                );
            }
            _ => anyhow::bail!("tls_cert_file and tls_key_file must be set together"),
        }
        s.definitions = cli.definitions;
        let b = &mut s.broker;
        if let Some(v) = file.heartbeat {
            b.heartbeat = v;
        }
        if let Some(v) = file.frame_max {
            anyhow::ensure!(v >= 4096, "frame_max must be at least 4096");
            b.frame_max = v;
        }
        if let Some(v) = file.channel_max {
            b.channel_max = v;
        }
        if let Some(v) = file.max_message_size {
            b.max_message_size = v;
        }
        if let Some(v) = file.vm_memory_high_watermark_bytes {
            b.memory_high_watermark_bytes = Some(v);
        }
        if let Some(v) = file.segment_bytes {
            b.segment_bytes = v;
        }
        if let Some(v) = file.queue_memory_budget_bytes {
            b.queue_memory_budget_bytes = v;
        }
        if let Some(v) = file.handshake_timeout_secs {
            b.handshake_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = file.http_header_timeout_secs {
            b.http_header_timeout = std::time::Duration::from_secs(v);
        }
        if let Some(v) = file.max_connections {
            b.max_connections = v;
        }
        if let Some(v) = file.max_connections_per_user {
            b.max_connections_per_user = v;
        }
        if let Some(v) = file.max_queues_per_vhost {
            b.max_queues_per_vhost = v;
        }
        if let Some(v) = file.auth_failures_per_minute {
            b.auth_failures_per_minute = v;
        }
        if let Some(v) = file.metrics_enabled {
            s.metrics_enabled = v;
        }
        let m = &mut b.metrics;
        if let Some(v) = file.metrics_interval_secs {
            m.fine_interval = std::time::Duration::from_secs(v);
        }
        if let Some(v) = file.metrics_fine_samples {
            m.fine_len = v;
        }
        if let Some(v) = file.metrics_coarse_interval_secs {
            m.coarse_interval = std::time::Duration::from_secs(v);
        }
        if let Some(v) = file.metrics_coarse_samples {
            m.coarse_len = v;
        }
        m.validate()
            .map_err(|e| anyhow::anyhow!("metrics settings: {e}"))?;
        let t = &mut s.tracing;
        if let Some(v) = cli.tracing_enabled.or(file.tracing_enabled) {
            t.enabled = v;
        }
        if let Some(v) = cli.tracing_sample_ratio.or(file.tracing_sample_ratio) {
            t.sample_ratio = v;
        }
        if let Some(v) = cli.tracing_start_untraced.or(file.tracing_start_untraced) {
            t.start_untraced = v;
        }
        if let Some(v) = file.tracing_endpoint {
            t.endpoint = Some(v);
        }
        if let Some(v) = file.tracing_protocol {
            t.protocol = Protocol::parse(&v).ok_or_else(|| {
                anyhow::anyhow!("tracing_protocol {v:?}: expected \"grpc\" or \"http/protobuf\"")
            })?;
        }
        s.tracing = std::mem::take(&mut s.tracing)
            .resolve_env()
            .map_err(|e| anyhow::anyhow!("tracing settings: {e}"))?;
        let b = &mut s.broker;
        if let Some(v) = cli
            .prometheus_per_object_limit
            .or(file.prometheus_per_object_limit)
        {
            b.prometheus_per_object_limit = v;
        }
        if let Some(v) = file.loopback_users {
            b.loopback_users = v;
        }
        for v in file.vhosts {
            if !b.vhosts.contains(&v) {
                b.vhosts.push(v);
            }
        }
        for u in file.users {
            b.users.retain(|x| x.name != u.name);
            b.users.push(UserConfig {
                name: u.name,
                password: u.password,
                tags: u.tags,
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let dir = std::env::temp_dir().join(format!("ottermq-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "amqp_port = 6000\nhttp_port = 6001\nvhosts = [\"app\"]\n[[users]]\nname = \"app\"\npassword = \"pw\"\n",
        )
        .unwrap();
        let cli = Cli {
            amqp_port: Some(7000),
            config: Some(path),
            ..Default::default()
        };
        let s = Settings::from_cli(cli).unwrap();
        assert_eq!(s.amqp_addr.port(), 7000);
        assert_eq!(s.http_addr.unwrap().port(), 6001);
        assert!(s.broker.vhosts.contains(&"app".to_string()));
        assert!(s
            .broker
            .users
            .iter()
            .any(|u| u.name == "app" && u.password == "pw"));
        assert!(s.broker.users.iter().any(|u| u.name == "guest"));
        let d = Settings::from_cli(Cli::default()).unwrap();
        assert_eq!(d.amqp_addr.port(), 5672);
        assert_eq!(d.http_addr.unwrap().port(), 15672);
    }
}
