//! W3C trace context over AMQP header tables.
//!
//! Client libraries disagree on the field type: pika and amqplib send `traceparent` as a long
//! string, some lapin and Java users as a byte array, a few as a short string. Reading accepts
//! all three; writing always uses a long string, which every client decodes as text.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use ottermq_protocol::{FieldTable, FieldValue, LongStr, RawProperties};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

struct TableExtractor<'a>(&'a FieldTable);

impl Extractor for TableExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let v = self.0.get(key)?.as_str_bytes()?;
        std::str::from_utf8(v).ok().map(str::trim)
    }

    fn keys(&self) -> Vec<&str> {
        self.0 .0.iter().filter_map(|(k, _)| k.to_str()).collect()
    }
}

struct TableInjector<'a>(&'a mut FieldTable);

impl Injector for TableInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key, FieldValue::LongStr(LongStr::from(value)));
    }
}

/// The remote parent a message's headers carry, if any valid one. Decodes the headers table
/// (an allocation), so it is called only with tracing on.
pub fn extract(properties: &RawProperties) -> Option<SpanContext> {
    if !properties.has_headers() {
        return None;
    }
    let table = properties.headers()?;
    extract_from_table(&table)
}

/// `extract` over an already decoded table.
pub fn extract_from_table(table: &FieldTable) -> Option<SpanContext> {
    table.get(TRACEPARENT)?;
    let cx = TraceContextPropagator::new().extract(&TableExtractor(table));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The properties with `traceparent` (and `tracestate`) set to `span`'s context, every other
/// property and header kept. None when the properties do not decode (they were validated when
/// the message arrived, so this does not happen; the caller then sends them unchanged).
pub fn inject(properties: &RawProperties, span: &SpanContext) -> Option<RawProperties> {
    let mut p = properties.decode().ok()?;
    let headers = p.headers.get_or_insert_with(FieldTable::new);
    // A stale tracestate from the producer must not outlive the context it belonged to.
    headers.remove(TRACESTATE);
    let cx = Context::new().with_remote_span_context(span.clone());
    TraceContextPropagator::new().inject_context(&cx, &mut TableInjector(headers));
    Some(p.to_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
    use ottermq_protocol::{BasicProperties, ShortStr};

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn props(v: FieldValue) -> RawProperties {
        let mut t = FieldTable::new();
        t.insert("x-other", FieldValue::I32(7));
        t.insert(TRACEPARENT, v);
        t.insert(TRACESTATE, FieldValue::LongStr(LongStr::from("k=v")));
        BasicProperties {
            headers: Some(t),
            message_id: Some(ShortStr::from("m1")),
            ..Default::default()
        }
        .to_raw()
    }

    #[test]
    fn extracts_long_string_short_string_and_bytes() {
        for v in [
            FieldValue::LongStr(LongStr::from(TP)),
            FieldValue::ShortStr(ShortStr::from(TP)),
            FieldValue::Bytes(Bytes::from_static(TP.as_bytes())),
        ] {
            let sc = extract(&props(v)).expect("context");
            assert_eq!(
                sc.trace_id(),
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
            );
            assert_eq!(sc.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
            assert!(sc.is_sampled());
            assert!(sc.is_remote());
            assert_eq!(sc.trace_state().get("k"), Some("v"));
        }
    }

    #[test]
    fn missing_or_garbage_gives_none() {
        assert!(extract(&RawProperties::empty()).is_none());
        assert!(extract(&props(FieldValue::LongStr(LongStr::from("nonsense")))).is_none());
        assert!(extract(&props(FieldValue::I32(3))).is_none());
        let all_zero = "00-00000000000000000000000000000000-0000000000000000-01";
        assert!(extract(&props(FieldValue::LongStr(LongStr::from(all_zero)))).is_none());
    }

    #[test]
    fn inject_replaces_traceparent_and_keeps_the_rest() {
        let raw = props(FieldValue::Bytes(Bytes::from_static(TP.as_bytes())));
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("1111111111111111").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_key_value([("k", "w")]).unwrap(),
        );
        let out = inject(&raw, &sc).unwrap().decode().unwrap();
        let h = out.headers.unwrap();
        assert_eq!(
            h.get(TRACEPARENT).and_then(|v| v.as_str_bytes()),
            Some(&b"00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"[..])
        );
        assert_eq!(
            h.get(TRACESTATE).and_then(|v| v.as_str_bytes()),
            Some(&b"k=w"[..])
        );
        assert_eq!(h.get("x-other").and_then(|v| v.as_i64()), Some(7));
        assert_eq!(out.message_id, Some(ShortStr::from("m1")));
        // No headers at all: a table is created.
        let plain = inject(&RawProperties::empty(), &sc)
            .unwrap()
            .decode()
            .unwrap();
        assert!(plain.headers.unwrap().get(TRACEPARENT).is_some());
    }
}
