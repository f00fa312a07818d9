//! OTLP trace receivers. gRPC and HTTP only decode and hand over to [`Ingest::export`], the
//! one ingest path: wait for room under the pending-bytes cap (by the request's size), convert,
//! wait for room under the pending-span cap (and for what the spans take once converted),
//! enqueue, and answer once the spans are stored in ClickHouse.

pub mod grpc;
pub mod http;
mod refusal;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use prost::Message;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

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
    pending_spans: Cap,
    pending_bytes: Cap,
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
            max_name_bytes: SpanLimits::default().max_name_bytes,
            max_attributes: config.max_attributes_per_span,
            max_events: config.max_events_per_span,
            ..SpanLimits::default()
        };
        let ingest = Ingest {
            queue,
            pending_spans: Cap::new(config.max_pending_spans, "max_pending_spans", "spans"),
            pending_bytes: Cap::new(config.max_pending_bytes, "max_pending_bytes", "bytes"),
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
                .map(|request| (request, Vec::new()))
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
                .map(|decoded| (decoded.request, decoded.rejected))
                .map_err(|e| ExportError::BadPayload(format!("malformed OTLP/JSON: {e}")))
        })
        .await
    }

    async fn export(
        &self,
        protocol: Protocol,
        body_bytes: usize,
        // The request, and the spans the decoder could not read (rejected like invalid ones).
        decode: impl FnOnce() -> Result<(ExportTraceServiceRequest, Vec<String>), ExportError>
            + Send
            + 'static,
    ) -> Result<ExportOutcome, ExportError> {
        let _timer = Timer::start(match protocol {
            Protocol::Grpc => &self.metrics.grpc_request_duration,
            Protocol::Http => &self.metrics.http_request_duration,
        });
        let _pending = GaugeHold::add(&self.metrics.pending_bytes, body_bytes as f64);
        // Room for the request as received before decoding it; fitted to what it turns into after.
        let reserved = body_bytes.max(1);
        let mut bytes_permit = self.wait_for_room(&self.pending_bytes, reserved).await?;
        // Decoding and validation are CPU work proportional to the body: keep them off the reactor.
        let limits = Arc::clone(&self.limits);
        let converted = tokio::task::spawn_blocking(move || {
            let (request, unreadable) = decode()?;
            let mut converted = otlp::convert(request, &limits, now_unix_nano());
            converted.rejected.splice(0..0, unreadable);
            Ok::<_, ExportError>(converted)
        })
        .await
        .map_err(|_| ExportError::ShuttingDown)??;
        let needed = converted.memory_bytes.max(1);
        if needed > reserved {
            let more = self
                .wait_for_room(&self.pending_bytes, needed - reserved)
                .await?;
            bytes_permit.merge(more);
        } else {
            drop(bytes_permit.split(reserved - needed));
        }
        self.store(converted, bytes_permit, protocol).await
    }

    async fn store(
        &self,
        converted: otlp::Converted,
        bytes_permit: OwnedSemaphorePermit,
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
        let result = self.enqueue_and_wait(spans, bytes_permit).await;
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

    async fn enqueue_and_wait(
        &self,
        spans: Vec<Span>,
        bytes_permit: OwnedSemaphorePermit,
    ) -> Result<(), ExportError> {
        let permit = self.wait_for_room(&self.pending_spans, spans.len()).await?;
        let (ack, stored) = oneshot::channel();
        self.queue
            .send(Batch {
                spans,
                ack,
                permit,
                bytes_permit,
            })
            .await
            .map_err(|_| ExportError::ShuttingDown)?;
        match stored.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(NotStored::Unavailable)) => Err(ExportError::StoreUnavailable),
            Ok(Err(NotStored::Rejected)) => Err(ExportError::StoreRejected),
            Err(_dropped) => Err(ExportError::ShuttingDown),
        }
    }

    /// Takes `wanted` units of room under a pending cap, waiting up to `queue_wait`. More than
    /// the whole cap can never fit: that request is refused for good, not told to retry.
    async fn wait_for_room(
        &self,
        cap: &Cap,
        wanted: usize,
    ) -> Result<OwnedSemaphorePermit, ExportError> {
        let too_large = || {
            ExportError::BadPayload(format!(
                "the request takes {wanted} {}, more than ingest.{} ({}); send smaller batches",
                cap.unit, cap.setting, cap.max
            ))
        };
        if wanted > cap.max {
            return Err(too_large());
        }
        let wanted = u32::try_from(wanted).map_err(|_| too_large())?;
        let room = Arc::clone(&cap.room).acquire_many_owned(wanted);
        match tokio::time::timeout(self.queue_wait, room).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(ExportError::ShuttingDown),
            Err(_elapsed) => {
                self.metrics.requests_overloaded.increment(1);
                Err(ExportError::Overloaded)
            }
        }
    }

    /// Spans waiting for their insert, for the gauge.
    pub fn pending_spans(&self) -> usize {
        self.pending_spans
            .max
            .saturating_sub(self.pending_spans.room.available_permits())
    }
}

/// A cap on what waits for its insert: each request takes room, given back after its insert.
#[derive(Clone)]
struct Cap {
    room: Arc<Semaphore>,
    max: usize,
    setting: &'static str,
    unit: &'static str,
}

impl Cap {
    fn new(max: usize, setting: &'static str, unit: &'static str) -> Cap {
        Cap {
            room: Arc::new(Semaphore::new(max)),
            max,
            setting,
            unit,
        }
    }
}
