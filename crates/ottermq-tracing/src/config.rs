//! Tracing settings and how the standard `OTEL_*` variables override them.

use std::env;

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (default port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (default port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl Protocol {
    /// Parses the values `OTEL_EXPORTER_OTLP_PROTOCOL` allows (`grpc`, `http/protobuf`).
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" | "http" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }
}

/// What the operator configured; `resolve_env` folds in the `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// Off by default: no provider, no exporter, no header parsing.
    pub enabled: bool,
    /// Ratio of traces the broker starts itself (messages without a sampled parent context).
    /// A message whose parent is sampled is always traced; one whose parent is not, never.
    pub sample_ratio: f64,
    /// Start a trace for a message that carries no `traceparent` (subject to `sample_ratio`).
    /// Off by default: only messages whose producer traces them are followed.
    pub start_untraced: bool,
    /// OTLP endpoint; None leaves it to `OTEL_EXPORTER_OTLP_ENDPOINT` or the exporter default.
    pub endpoint: Option<String>,
    pub protocol: Protocol,
    /// `service.name` of the broker's spans (`OTEL_SERVICE_NAME` wins when set).
    pub service_name: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            enabled: false,
            sample_ratio: 1.0,
            start_untraced: false,
            endpoint: None,
            protocol: Protocol::Grpc,
            service_name: "ottermq".into(),
        }
    }
}

/// A bad value in the tracing settings or in an `OTEL_*` variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl TracingConfig {
    /// Applies `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` and the sampler pair
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`. The standard variables win over the
    /// file, as every OpenTelemetry SDK lets them.
    pub fn resolve_env(mut self) -> Result<Self, ConfigError> {
        self.apply(|k| env::var(k).ok().filter(|v| !v.is_empty()))?;
        Ok(self)
    }

    /// The same with a caller-supplied variable lookup (tests).
    pub fn apply(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("OTEL_SERVICE_NAME") {
            self.service_name = v;
        }
        if let Some(v) =
            var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            self.protocol = Protocol::parse(&v).ok_or_else(|| {
                ConfigError(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL={v}: expected grpc or http/protobuf"
                ))
            })?;
        }
        if let Some(v) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.endpoint = Some(v);
        } else if let Some(v) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            // The generic variable is a base URL: HTTP appends the signal path.
            self.endpoint = Some(match self.protocol {
                Protocol::Grpc => v,
                Protocol::HttpProtobuf => format!("{}/v1/traces", v.trim_end_matches('/')),
            });
        }
        let arg = var("OTEL_TRACES_SAMPLER_ARG");
        let ratio = |arg: &Option<String>| -> Result<Option<f64>, ConfigError> {
            match arg {
                None => Ok(None),
                Some(a) => match a.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(Some(r)),
                    _ => Err(ConfigError(format!(
                        "OTEL_TRACES_SAMPLER_ARG={a}: expected a ratio between 0 and 1"
                    ))),
                },
            }
        };
        if let Some(s) = var("OTEL_TRACES_SAMPLER") {
            // The broker's sampler is always parent-based (a sampled producer is always
            // followed); the variable picks the ratio for the traces the broker starts.
            match s.trim() {
                "always_on" | "parentbased_always_on" => self.sample_ratio = 1.0,
                "always_off" | "parentbased_always_off" => self.sample_ratio = 0.0,
                "traceidratio" | "parentbased_traceidratio" => {
                    self.sample_ratio = ratio(&arg)?.unwrap_or(1.0)
                }
                other => {
                    return Err(ConfigError(format!(
                        "OTEL_TRACES_SAMPLER={other}: expected always_on, always_off, \
                         traceidratio or their parentbased_ forms"
                    )))
                }
            }
        }
        self.validate()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError(format!(
                "tracing_sample_ratio {} is not between 0 and 1",
                self.sample_ratio
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut c = TracingConfig::default();
        c.apply(|k| m.get(k).cloned())?;
        Ok(c)
    }

    #[test]
    fn standard_variables_override() {
        let c = with(&[
            ("OTEL_SERVICE_NAME", "mq"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert_eq!(c.service_name, "mq");
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(c.sample_ratio, 0.25);
        let g = with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")]).unwrap();
        assert_eq!(g.endpoint.as_deref(), Some("http://127.0.0.1:4317"));
        assert_eq!(g.protocol, Protocol::Grpc);
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(with(&[("OTEL_TRACES_SAMPLER", "sometimes")]).is_err());
        assert!(with(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2")
        ])
        .is_err());
        assert!(with(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")]).is_err());
        assert_eq!(
            with(&[("OTEL_TRACES_SAMPLER", "always_off")])
                .unwrap()
                .sample_ratio,
            0.0
        );
    }
}
