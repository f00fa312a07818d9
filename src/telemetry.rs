//! convolog's own health: counters and gauges served at `/metrics` (Prometheus text), and log
//! setup. Plain atomics: a handful of numbers do not need a metrics framework.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub grpc_spans_accepted: AtomicU64,
    pub grpc_spans_refused: AtomicU64,
    pub http_spans_accepted: AtomicU64,
    pub http_spans_refused: AtomicU64,
    pub spans_rejected_invalid: AtomicU64,
    pub requests_overloaded: AtomicU64,
    pub batches_written: AtomicU64,
    pub batch_spans_written: AtomicU64,
    pub batch_failures: AtomicU64,
    pub insert_micros_total: AtomicU64,
    pub pending_spans: AtomicU64,
    pub sessionize_passes: AtomicU64,
    pub sessionize_failures: AtomicU64,
    pub sessionize_skipped_traces: AtomicU64,
    pub sessions_derived: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 15] = [
            (
                "convolog_spans_accepted_total{protocol=\"grpc\"}",
                "counter",
                "Spans stored, by protocol.",
                &self.grpc_spans_accepted,
            ),
            (
                "convolog_spans_accepted_total{protocol=\"http\"}",
                "",
                "",
                &self.http_spans_accepted,
            ),
            (
                "convolog_spans_refused_total{protocol=\"grpc\"}",
                "counter",
                "Spans answered with an error the client retries.",
                &self.grpc_spans_refused,
            ),
            (
                "convolog_spans_refused_total{protocol=\"http\"}",
                "",
                "",
                &self.http_spans_refused,
            ),
            (
                "convolog_spans_rejected_invalid_total",
                "counter",
                "Spans rejected as invalid (partial_success).",
                &self.spans_rejected_invalid,
            ),
            (
                "convolog_requests_overloaded_total",
                "counter",
                "Requests refused because the pending-span limit was reached.",
                &self.requests_overloaded,
            ),
            (
                "convolog_batches_written_total",
                "counter",
                "Span batches inserted into ClickHouse.",
                &self.batches_written,
            ),
            (
                "convolog_batch_spans_written_total",
                "counter",
                "Spans in inserted batches.",
                &self.batch_spans_written,
            ),
            (
                "convolog_batch_failures_total",
                "counter",
                "Span batches whose insert failed.",
                &self.batch_failures,
            ),
            (
                "convolog_insert_seconds_total",
                "counter",
                "Time spent inserting span batches.",
                &self.insert_micros_total,
            ),
            (
                "convolog_pending_spans",
                "gauge",
                "Spans received and not yet stored.",
                &self.pending_spans,
            ),
            (
                "convolog_sessionize_passes_total",
                "counter",
                "Sessionizer passes.",
                &self.sessionize_passes,
            ),
            (
                "convolog_sessionize_failures_total",
                "counter",
                "Sessionizer passes that failed and will be retried.",
                &self.sessionize_failures,
            ),
            (
                "convolog_sessionize_skipped_traces_total",
                "counter",
                "Traces left underived because ClickHouse refuses every pass that includes them.",
                &self.sessionize_skipped_traces,
            ),
            (
                "convolog_sessions_derived_total",
                "counter",
                "Sessions (re)derived.",
                &self.sessions_derived,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let base = name.split('{').next().unwrap_or(name);
            if !kind.is_empty() {
                let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} {kind}");
            }
            let value = value.load(Ordering::Relaxed);
            if base == "convolog_insert_seconds_total" {
                let _ = writeln!(out, "{name} {}", value as f64 / 1e6);
            } else {
                let _ = writeln!(out, "{name} {value}");
            }
        }
        out
    }
}

/// Logs to stderr, as text or JSON; `RUST_LOG` overrides the configured filter.
pub fn init_logging(format: &str, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests start several apps in one process) keeps the first subscriber.
    drop(result);
}
