//! A writer for the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text.
//!
//! Exists so `/metrics` can be rendered straight from the broker's atomics into one `String`
//! per scrape, with no registry between them (see docs/DESIGN.md). The two formats differ only
//! in a few places this writer owns: counter family names (OpenMetrics drops `_total` from the
//! family, keeps it on the sample), the info type, and the closing `# EOF`.

use ottermq_metrics::HistogramSnapshot;
use std::fmt::Write;

/// Which text format the scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header, as Prometheus negotiates it.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// A constant `1` carrying labels (`_info` suffix); a gauge in the Prometheus format.
    Info,
}

/// Accumulates one exposition. Families must be written whole, one after another.
pub struct Encoder {
    out: String,
    format: Format,
}

/// Label pairs of one sample.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Encoder {
    pub fn new(format: Format) -> Self {
        Encoder {
            out: String::with_capacity(64 * 1024),
            format,
        }
    }

    /// Starts a family: `# HELP` and `# TYPE`. `name` is the sample name for counters
    /// (ending `_total`) and info metrics (ending `_info`).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let om = self.format == Format::OpenMetrics;
        let (family, ty) = match kind {
            Kind::Counter if om => (name.strip_suffix("_total").unwrap_or(name), "counter"),
            Kind::Counter => (name, "counter"),
            Kind::Gauge => (name, "gauge"),
            Kind::Histogram => (name, "histogram"),
            Kind::Info if om => (name.strip_suffix("_info").unwrap_or(name), "info"),
            Kind::Info => (name, "gauge"),
        };
        let _ = writeln!(self.out, "# HELP {family} {help}");
        let _ = writeln!(self.out, "# TYPE {family} {ty}");
    }

    fn labels(&mut self, labels: Labels<'_>, le: Option<f64>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (k, v) in labels {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_into(&mut self.out, v);
            self.out.push('"');
        }
        if let Some(le) = le {
            if !first {
                self.out.push(',');
            }
            self.out.push_str("le=\"");
            push_float(&mut self.out, le);
            self.out.push('"');
        }
        self.out.push('}');
    }

    /// One sample with an integer value.
    pub fn int(&mut self, name: &str, labels: Labels<'_>, v: u64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {v}");
    }

    /// One sample with a signed integer value (gauges).
    pub fn signed(&mut self, name: &str, labels: Labels<'_>, v: i64) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {v}");
    }

    /// One sample with a float value.
    pub fn float(&mut self, name: &str, labels: Labels<'_>, v: f64) {
        self.out.push_str(name);
        self.labels(labels, None);
        self.out.push(' ');
        push_float(&mut self.out, v);
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram. `bounds` are in the
    /// recorded unit; `scale` converts them (and the sum) to the exposed base unit.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: Labels<'_>,
        snap: &HistogramSnapshot,
        bounds: &[f64],
        scale: f64,
    ) {
        let bucket = format!("{name}_bucket");
        // Dividing by the exact power of ten (1e6 for µs) gives the shortest decimal bound:
        // 100.0 * 1e-6 would print as 0.00009999999999999999 in the `le` label.
        let divisor = if scale < 1.0 {
            (1.0 / scale).round()
        } else {
            1.0
        };
        for (le, count) in snap.prometheus_buckets(bounds) {
            self.out.push_str(&bucket);
            let le = if scale < 1.0 {
                le / divisor
            } else {
                le * scale
            };
            self.labels(labels, Some(le));
            let _ = writeln!(self.out, " {count}");
        }
        self.out.push_str(name);
        self.out.push_str("_sum");
        self.labels(labels, None);
        self.out.push(' ');
        push_float(&mut self.out, snap.sum() as f64 * scale);
        self.out.push('\n');
        self.out.push_str(name);
        self.out.push_str("_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", snap.count());
    }

    /// The finished exposition.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// Label value escaping shared by both formats: backslash, double quote and newline.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Floats as both parsers read them: `+Inf`, `-Inf`, `NaN`, otherwise Rust's shortest
/// round-trip form (never an exponent-less huge string: values here are small).
fn push_float(out: &mut String, v: f64) {
    if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.is_nan() {
        out.push_str("NaN");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ottermq_metrics::Histogram;

    #[test]
    fn counters_differ_between_formats() {
        for (format, family) in [
            (Format::Prometheus, "ottermq_x_total"),
            (Format::OpenMetrics, "ottermq_x"),
        ] {
            let mut e = Encoder::new(format);
            e.family("ottermq_x_total", Kind::Counter, "X.");
            e.int("ottermq_x_total", &[("queue", "a\"b\\c\nd")], 3);
            let text = e.finish();
            assert!(
                text.contains(&format!("# TYPE {family} counter\n")),
                "{text}"
            );
            assert!(text.contains("ottermq_x_total{queue=\"a\\\"b\\\\c\\nd\"} 3\n"));
            assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
        }
    }

    #[test]
    fn histogram_is_cumulative_in_seconds() {
        let h = Histogram::new();
        for v in [50u64, 600, 600, 20_000_000] {
            h.record(v);
        }
        let mut e = Encoder::new(Format::Prometheus);
        e.family("t_seconds", Kind::Histogram, "T.");
        e.histogram("t_seconds", &[], &h.snapshot(), &[100.0, 1_000.0], 1e-6);
        let text = e.finish();
        assert!(
            text.contains("t_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_bucket{le=\"0.001\"} 3\n"));
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("t_seconds_count 4\n"));
        assert!(text.contains("t_seconds_sum 20.00125\n"));
    }

    #[test]
    fn negotiates_openmetrics() {
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
    }
}
