//! convolog's own health, served at `/metrics` in the Prometheus text format, and log setup.
//! Each [`Metrics`] has its own registry (no process-wide recorder), so several apps in one
//! process (the integration tests) count separately.

use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Bucket bounds of every `*_seconds` histogram: from a fast insert to a sessionizer far behind.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Bucket bounds of the batch size, up to twice the default `batch_max_spans`.
const BATCH_SPANS_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2000.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0,
];

pub struct Metrics {
    handle: PrometheusHandle,
    pub grpc_spans_accepted: Counter,
    pub grpc_spans_refused: Counter,
    pub http_spans_accepted: Counter,
    pub http_spans_refused: Counter,
    pub spans_rejected_invalid: Counter,
    pub grpc_log_records_accepted: Counter,
    pub grpc_log_records_refused: Counter,
    pub http_log_records_accepted: Counter,
    pub http_log_records_refused: Counter,
    pub log_records_rejected_invalid: Counter,
    pub requests_overloaded: Counter,
    pub grpc_request_duration: Histogram,
    pub http_request_duration: Histogram,
    pub pending_spans: Gauge,
    pub pending_bytes: Gauge,
    pub batches_written: Counter,
    pub batch_spans_written: Counter,
    pub batch_failures: Counter,
    pub insert_duration: Histogram,
    pub insert_batch_spans: Histogram,
    pub sessionize_passes: Counter,
    pub sessionize_failures: Counter,
    pub sessionize_skipped_traces: Counter,
    pub sessionize_pass_duration: Histogram,
    pub sessionize_lag: Histogram,
    pub sessionize_last_lag: Gauge,
    pub sessionize_pending_bytes: Gauge,
    pub sessionize_oldest_pending: Gauge,
    pub sessions_derived: Counter,
    pub sessions_unchanged: Counter,
    pub session_cache_bytes: Gauge,
    pub session_cache_sessions: Gauge,
    pub session_cache_evictions: Counter,
    pub session_cache_misses: Counter,
}

/// Names, help texts and labels in one place; the README lists the same metrics.
struct Registry(PrometheusRecorder);

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

impl Registry {
    fn key(name: &'static str, protocol: Option<&'static str>) -> Key {
        let labels: Vec<Label> = protocol
            .map(|p| Label::new("protocol", p))
            .into_iter()
            .collect();
        Key::from_parts(name, labels)
    }
    fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        protocol: Option<&'static str>,
    ) -> Counter {
        self.0
            .describe_counter(KeyName::from_const_str(name), None, help.into());
        self.0
            .register_counter(&Self::key(name, protocol), &METADATA)
    }
    fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.0
            .describe_gauge(KeyName::from_const_str(name), None, help.into());
        self.0.register_gauge(&Self::key(name, None), &METADATA)
    }
    fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        protocol: Option<&'static str>,
    ) -> Histogram {
        self.0
            .describe_histogram(KeyName::from_const_str(name), None, help.into());
        self.0
            .register_histogram(&Self::key(name, protocol), &METADATA)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("convolog_insert_batch_spans".into()),
                    BATCH_SPANS_BUCKETS,
                )
            });
        // Only an empty bucket list is refused, and both lists are constants.
        let recorder = builder
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let r = Registry(recorder);

        let accepted = (
            "convolog_spans_accepted_total",
            "Spans stored and acknowledged, by protocol.",
        );
        let refused = (
            "convolog_spans_refused_total",
            "Spans answered with an error the client retries (overload, ClickHouse down), by protocol.",
        );
        let logs_accepted = (
            "convolog_log_records_accepted_total",
            "Log records stored and acknowledged, by protocol.",
        );
        let logs_refused = (
            "convolog_log_records_refused_total",
            "Log records answered with an error at their insert (ClickHouse down or refusing), by protocol.",
        );
        let request = (
            "convolog_request_duration_seconds",
            "Export requests from receipt to answer (decoding, waiting for room, storing), by protocol.",
        );
        Metrics {
            grpc_spans_accepted: r.counter(accepted.0, accepted.1, Some("grpc")),
            grpc_spans_refused: r.counter(refused.0, refused.1, Some("grpc")),
            http_spans_accepted: r.counter(accepted.0, accepted.1, Some("http")),
            http_spans_refused: r.counter(refused.0, refused.1, Some("http")),
            grpc_request_duration: r.histogram(request.0, request.1, Some("grpc")),
            http_request_duration: r.histogram(request.0, request.1, Some("http")),
            spans_rejected_invalid: r.counter(
                "convolog_spans_rejected_invalid_total",
                "Spans rejected as invalid (reported in partial_success).",
                None,
            ),
            grpc_log_records_accepted: r.counter(logs_accepted.0, logs_accepted.1, Some("grpc")),
            grpc_log_records_refused: r.counter(logs_refused.0, logs_refused.1, Some("grpc")),
            http_log_records_accepted: r.counter(logs_accepted.0, logs_accepted.1, Some("http")),
            http_log_records_refused: r.counter(logs_refused.0, logs_refused.1, Some("http")),
            log_records_rejected_invalid: r.counter(
                "convolog_log_records_rejected_invalid_total",
                "Log records rejected as invalid (reported in partial_success).",
                None,
            ),
            requests_overloaded: r.counter(
                "convolog_requests_overloaded_total",
                "Requests refused because ingest.max_pending_spans was reached.",
                None,
            ),
            pending_spans: r.gauge(
                "convolog_pending_spans",
                "Spans received and not yet stored.",
            ),
            pending_bytes: r.gauge(
                "convolog_pending_bytes",
                "Bytes (OTLP protobuf, decompressed) of export requests received and not yet answered.",
            ),
            batches_written: r.counter(
                "convolog_batches_written_total",
                "Span batches inserted into ClickHouse.",
                None,
            ),
            batch_spans_written: r.counter(
                "convolog_batch_spans_written_total",
                "Spans in inserted batches.",
                None,
            ),
            batch_failures: r.counter(
                "convolog_batch_failures_total",
                "Span batches whose insert failed (their clients are told to retry).",
                None,
            ),
            insert_duration: r.histogram(
                "convolog_insert_duration_seconds",
                "Time to insert one span batch into ClickHouse, failed inserts included.",
                None,
            ),
            insert_batch_spans: r.histogram(
                "convolog_insert_batch_spans",
                "Spans per inserted batch.",
                None,
            ),
            sessionize_passes: r.counter(
                "convolog_sessionize_passes_total",
                "Sessionizer passes.",
                None,
            ),
            sessionize_failures: r.counter(
                "convolog_sessionize_failures_total",
                "Sessionizer passes that failed and will be retried.",
                None,
            ),
            sessionize_skipped_traces: r.counter(
                "convolog_sessionize_skipped_traces_total",
                "Traces left underived because ClickHouse refuses every pass that includes them.",
                None,
            ),
            sessionize_pass_duration: r.histogram(
                "convolog_sessionize_pass_duration_seconds",
                "Time of one sessionizer pass (read spans, derive, write), failed passes included.",
                None,
            ),
            sessionize_lag: r.histogram(
                "convolog_sessionize_lag_seconds",
                "From the storing of the newest span in a pass to its sessions being written.",
                None,
            ),
            sessions_derived: r.counter(
                "convolog_sessions_derived_total",
                "Sessions (re)derived and written.",
                None,
            ),
            sessionize_last_lag: r.gauge(
                "convolog_sessionize_last_lag_seconds",
                "The last pass's lag: from the storing of its newest span to its sessions being written.",
            ),
            sessionize_pending_bytes: r.gauge(
                "convolog_sessionize_pending_bytes",
                "Spans (bytes in memory) stored and handed to the sessionizer, not yet derived.",
            ),
            sessionize_oldest_pending: r.gauge(
                "convolog_sessionize_oldest_pending_timestamp_seconds",
                "When the oldest span stored and not yet derived was stored (unix seconds); 0 when none waits.",
            ),
            sessions_unchanged: r.counter(
                "convolog_sessions_unchanged_total",
                "Sessions derived again with the same rows as last written, so not written.",
                None,
            ),
            session_cache_bytes: r.gauge(
                "convolog_session_cache_bytes",
                "Spans of recent conversations kept in memory (bytes; bound: sessionize.cache_max_bytes per tenant).",
            ),
            session_cache_sessions: r.gauge(
                "convolog_session_cache_sessions",
                "Sessions kept in memory with all their spans.",
            ),
            session_cache_evictions: r.counter(
                "convolog_session_cache_evictions_total",
                "Sessions forgotten to stay under sessionize.cache_max_bytes.",
                None,
            ),
            session_cache_misses: r.counter(
                "convolog_session_cache_misses_total",
                "Sessions and traces read back from ClickHouse because they were not in memory (an old conversation resuming, a restart, a rebuild, an eviction).",
                None,
            ),
            handle,
        }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The current value of one series as rendered, e.g.
    /// `convolog_spans_accepted_total{protocol="grpc"}`; None if it is not there.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.render().lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Drains histogram samples into their buckets; call now and then (the app does every
    /// second) so memory stays flat between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Counts a sessionizer pass and times it until the returned guard is dropped.
    pub fn sessionize_pass(&self) -> Timer {
        self.sessionize_passes.increment(1);
        Timer::start(&self.sessionize_pass_duration)
    }
}

/// Records the time from its start to its drop into a histogram, so an early return or an
/// error is timed too.
pub struct Timer {
    histogram: Histogram,
    started: Instant,
}

impl Timer {
    pub fn start(histogram: &Histogram) -> Timer {
        Timer {
            histogram: histogram.clone(),
            started: Instant::now(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.record(self.started.elapsed());
    }
}

/// Adds to a gauge until dropped: what is pending while a request is in flight.
pub struct GaugeHold {
    gauge: Gauge,
    amount: f64,
}

impl GaugeHold {
    pub fn add(gauge: &Gauge, amount: f64) -> GaugeHold {
        gauge.increment(amount);
        GaugeHold {
            gauge: gauge.clone(),
            amount,
        }
    }
}

impl Drop for GaugeHold {
    fn drop(&mut self) {
        self.gauge.decrement(self.amount);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_with_buckets() {
        let metrics = Metrics::new();
        metrics.grpc_spans_accepted.increment(3);
        metrics.pending_spans.set(7.0);
        metrics
            .insert_duration
            .record(std::time::Duration::from_millis(30));
        metrics.insert_batch_spans.record(200.0);
        drop(Timer::start(&metrics.http_request_duration));
        {
            let _held = GaugeHold::add(&metrics.pending_bytes, 512.0);
            assert_eq!(metrics.value("convolog_pending_bytes"), Some(512.0));
        }
        metrics.run_upkeep();
        let text = metrics.render();
        assert_eq!(
            metrics.value("convolog_spans_accepted_total{protocol=\"grpc\"}"),
            Some(3.0)
        );
        assert_eq!(
            metrics.value("convolog_spans_accepted_total{protocol=\"http\"}"),
            Some(0.0)
        );
        assert_eq!(metrics.value("convolog_pending_spans"), Some(7.0));
        assert_eq!(metrics.value("convolog_pending_bytes"), Some(0.0));
        assert_eq!(
            metrics.value("convolog_insert_duration_seconds_bucket{le=\"0.05\"}"),
            Some(1.0)
        );
        assert_eq!(
            metrics.value("convolog_insert_duration_seconds_bucket{le=\"0.025\"}"),
            Some(0.0)
        );
        assert_eq!(
            metrics.value("convolog_insert_batch_spans_bucket{le=\"500\"}"),
            Some(1.0)
        );
        assert_eq!(
            metrics.value("convolog_request_duration_seconds_count{protocol=\"http\"}"),
            Some(1.0)
        );
        assert!(
            text.contains("# TYPE convolog_spans_accepted_total counter"),
            "{text}"
        );
    }

    #[test]
    fn each_metrics_counts_for_itself() {
        let (one, two) = (Metrics::new(), Metrics::new());
        one.requests_overloaded.increment(2);
        assert_eq!(one.value("convolog_requests_overloaded_total"), Some(2.0));
        assert_eq!(two.value("convolog_requests_overloaded_total"), Some(0.0));
    }
}
