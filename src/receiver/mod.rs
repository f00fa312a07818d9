//! OTLP trace receivers. gRPC and HTTP only decode and hand over to [`Ingest::export`], the
//! one ingest path: convert, wait for room under the pending-span cap, enqueue, and answer
//! once the spans are stored in ClickHouse.

pub mod grpc;
pub mod http;
mod refusal;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use prost::Message;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::clock::now_unix_nano;
use crate::config;
use crate::model::otlp::{self, ExportTraceServiceRequest, SpanLimits};
use crate::model::otlp_json;
use crate::model::Span;
use crate::pipeline::{Batch, NotStored};
use crate::telemetry::{GaugeHold, Metrics, Timer};
use crate::tenants::AuthError;

pub use refusal::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid request: {0}")]
    BadPayload(String),
    #[error("{0}")]
    UnsupportedContentType(String),
    #[error("request body over the limit of {0} bytes after decompression")]
    TooLarge(usize),
    #[error("too many spans pending, retry later")]
    Overloaded,
    #[error("storage unavailable, retry later")]
    StoreUnavailable,
    #[error("storage refused the data")]
    StoreRejected,
    #[error("shutting down, retry later")]
    ShuttingDown,
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
}

/// Returned to the client as `partial_success`.
#[derive(Debug, Default, PartialEq)]
pub struct ExportOutcome {
    pub rejected_spans: i64,
    pub error_message: String,
}

impl ExportOutcome {
    /// OTLP leaves `partial_success` unset when everything was accepted as sent.
    pub fn partial_success(self) -> Option<ExportTracePartialSuccess> {
        (self.rejected_spans > 0 || !self.error_message.is_empty()).then_some(
            ExportTracePartialSuccess {
                rejected_spans: self.rejected_spans,
                error_message: self.error_message,
            },
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Clone)]
pub struct Ingest {
    queue: mpsc::Sender<Batch>,
    room: Arc<Semaphore>,
    max_pending_spans: usize,
    queue_wait: Duration,
    limits: Arc<SpanLimits>,
    pub max_request_bytes: usize,
    metrics: Arc<Metrics>,
}

impl Ingest {
    pub fn new(config: &config::Ingest, metrics: Arc<Metrics>) -> (Ingest, mpsc::Receiver<Batch>) {
        // The semaphore bounds memory; the channel only needs to hold what fits under it.
        let (queue, receiver) = mpsc::channel(1024);
        let limits = SpanLimits {
            max_attribute_value_bytes: config.max_attribute_value_bytes,
            max_attributes: config.max_attributes_per_span,
            max_events: config.max_events_per_span,
            ..SpanLimits::default()
        };
        let ingest = Ingest {
            queue,
            room: Arc::new(Semaphore::new(config.max_pending_spans)),
            max_pending_spans: config.max_pending_spans,
            queue_wait: config.queue_wait(),
            limits: Arc::new(limits),
            max_request_bytes: config.max_request_bytes,
            metrics,
        };
        (ingest, receiver)
    }

    /// Decodes an OTLP protobuf body (gRPC message or HTTP body) and stores its spans.
    pub async fn export_protobuf(
        &self,
        body: bytes::Bytes,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        let body_bytes = body.len();
        self.export(protocol, body_bytes, move || {
            ExportTraceServiceRequest::decode(body)
                .map_err(|e| ExportError::BadPayload(format!("malformed OTLP protobuf: {e}")))
        })
        .await
    }

    /// Decodes an OTLP/JSON body into the same messages as protobuf and stores its spans.
    pub async fn export_json(
        &self,
        body: bytes::Bytes,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        let body_bytes = body.len();
        self.export(protocol, body_bytes, move || {
            otlp_json::decode(&body)
                .map_err(|e| ExportError::BadPayload(format!("malformed OTLP/JSON: {e}")))
        })
        .await
    }

    async fn export(
        &self,
        protocol: Protocol,
        body_bytes: usize,
        decode: impl FnOnce() -> Result<ExportTraceServiceRequest, ExportError> + Send + 'static,
    ) -> Result<ExportOutcome, ExportError> {
        let _timer = Timer::start(match protocol {
            Protocol::Grpc => &self.metrics.grpc_request_duration,
            Protocol::Http => &self.metrics.http_request_duration,
        });
        let _pending = GaugeHold::add(&self.metrics.pending_bytes, body_bytes as f64);
        // Decoding and validation are CPU work proportional to the body: keep them off the reactor.
        let limits = Arc::clone(&self.limits);
        let converted = tokio::task::spawn_blocking(move || {
            Ok::<_, ExportError>(otlp::convert(decode()?, &limits, now_unix_nano()))
        })
        .await
        .map_err(|_| ExportError::ShuttingDown)??;
        self.store(converted, protocol).await
    }

    async fn store(
        &self,
        converted: otlp::Converted,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        let outcome = ExportOutcome {
            rejected_spans: i64::try_from(converted.rejected.len()).unwrap_or(i64::MAX),
            error_message: converted.message(),
        };
        self.metrics
            .spans_rejected_invalid
            .increment(converted.rejected.len() as u64);
        let spans = converted.spans;
        if spans.is_empty() {
            return Ok(outcome);
        }
        let count = spans.len();
        let result = self.enqueue_and_wait(spans).await;
        let (accepted, refused) = match protocol {
            Protocol::Grpc => (
                &self.metrics.grpc_spans_accepted,
                &self.metrics.grpc_spans_refused,
            ),
            Protocol::Http => (
                &self.metrics.http_spans_accepted,
                &self.metrics.http_spans_refused,
            ),
        };
        if result.is_ok() { accepted } else { refused }.increment(count as u64);
        result.map(|_| outcome)
    }

    async fn enqueue_and_wait(&self, spans: Vec<Span>) -> Result<(), ExportError> {
        if spans.len() > self.max_pending_spans {
            return Err(ExportError::BadPayload(format!(
                "{} spans in one request, more than ingest.max_pending_spans ({}); send smaller batches",
                spans.len(),
                self.max_pending_spans
            )));
        }
        let wanted = u32::try_from(spans.len()).unwrap_or(u32::MAX);
        let permit = match tokio::time::timeout(
            self.queue_wait,
            Arc::clone(&self.room).acquire_many_owned(wanted),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(ExportError::ShuttingDown),
            Err(_elapsed) => {
                self.metrics.requests_overloaded.increment(1);
                return Err(ExportError::Overloaded);
            }
        };
        let (ack, stored) = oneshot::channel();
        self.queue
            .send(Batch { spans, ack, permit })
            .await
            .map_err(|_| ExportError::ShuttingDown)?;
        match stored.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(NotStored::Unavailable)) => Err(ExportError::StoreUnavailable),
            Ok(Err(NotStored::Rejected)) => Err(ExportError::StoreRejected),
            Err(_dropped) => Err(ExportError::ShuttingDown),
        }
    }

    /// Spans waiting for their insert, for the gauge.
    pub fn pending_spans(&self) -> usize {
        self.max_pending_spans
            .saturating_sub(self.room.available_permits())
    }
}
