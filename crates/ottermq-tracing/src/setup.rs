//! The tracer provider: OTLP exporter, batch span processor, parent-based sampler.

use crate::config::{Protocol, TracingConfig};
use crate::spans::MessageTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::Duration;

/// The running provider. Keep it for the life of the server; `shutdown` flushes what the batch
/// processor still holds.
pub struct TracingHandle {
    provider: SdkTracerProvider,
    /// What the broker calls for its message spans.
    pub tracer: Arc<MessageTracer>,
}

/// The exporter could not be built (bad endpoint, for instance).
#[derive(Debug, thiserror::Error)]
#[error("tracing setup: {0}")]
pub struct SetupError(String);

/// Builds the provider when `cfg.enabled`; None when tracing is off. Must run inside a tokio
/// runtime: the gRPC exporter's connection task lives there (the batch processor itself runs
/// on its own thread).
pub fn init(cfg: &TracingConfig) -> Result<Option<TracingHandle>, SetupError> {
    if !cfg.enabled {
        return Ok(None);
    }
    cfg.validate().map_err(|e| SetupError(e.0))?;
    let exporter = match cfg.protocol {
        Protocol::Grpc => {
            let mut b = SpanExporter::builder()
                .with_tonic()
                .with_timeout(Duration::from_secs(5));
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e.clone());
            }
            b.build()
        }
        Protocol::HttpProtobuf => {
            let mut b = SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(Duration::from_secs(5));
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e.clone());
            }
            b.build()
        }
    }
    .map_err(|e| SetupError(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            cfg.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("ottermq");
    Ok(Some(TracingHandle {
        tracer: Arc::new(MessageTracer::new(tracer, cfg.start_untraced)),
        provider,
    }))
}

impl TracingHandle {
    /// A tracer on the same provider, for the `tracing-opentelemetry` layer.
    pub fn sdk_tracer(&self, name: &'static str) -> SdkTracer {
        self.provider.tracer(name)
    }

    /// Exports every span still buffered and stops the exporter. Blocks: call it from a
    /// blocking thread (`spawn_blocking`), never from a current-thread runtime's task, or the
    /// gRPC connection task it waits on cannot run.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing spans failed");
        }
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "stopping the span exporter failed");
        }
    }
}
