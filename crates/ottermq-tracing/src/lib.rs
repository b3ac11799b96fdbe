//! OpenTelemetry tracing for OtterMQ.
//!
//! - `config.rs`: what the operator asks for (enabled, ratio, start untraced, endpoint,
//!   protocol), resolved against the standard `OTEL_*` environment variables.
//! - `setup.rs`: the tracer provider: OTLP exporter (gRPC or HTTP), batch export, parent-based
//!   sampler, resource with `service.name`; flushed by `TracingHandle::shutdown`.
//! - `headers.rs`: W3C `traceparent` / `tracestate` read from and written into AMQP header
//!   tables, accepting long strings, short strings and byte arrays.
//! - `spans.rs`: `MessageTracer`, the small interface the broker calls: one publish span per
//!   traced message, a queue-wait span and a deliver span per delivery, settlement events.
//!
//! The broker holds an `Option<Arc<MessageTracer>>`; with tracing off it is `None` and the
//! publish path does that one check and never looks at headers.

pub mod config;
pub mod headers;
#[cfg(feature = "otlp")]
pub mod setup;
pub mod spans;

pub use config::{Protocol, TracingConfig};
#[cfg(feature = "otlp")]
pub use setup::{init, TracingHandle};
pub use spans::{
    DeliveryInfo, DeliverySpan, MessageTrace, MessageTracer, PublishInfo, PublishSpan, Settlement,
};
