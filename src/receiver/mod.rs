//! OTLP receivers for traces and logs. gRPC and HTTP only decode and hand over to
//! [`Ingest::export`], the one ingest path of both [`Signal`]s: wait for room under the
//! pending-bytes cap (for what the request can take, read from its bytes), convert, wait for room under the pending-span
//! cap (and for what the spans or records take once converted), store (spans through the
//! writer, log records in one insert), and answer once they are stored in ClickHouse.

pub mod grpc;
pub mod http;
mod refusal;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::clock::now_unix_nano;
use crate::config;
use crate::model::log::{self, ConvertedLogs, ExportLogsServiceRequest};
use crate::model::otlp::{self, ExportTraceServiceRequest, SpanLimits};
use crate::model::otlp_bound;
use crate::model::otlp_json;
use crate::model::Span;
use crate::pipeline::{Arrivals, Batch, Incoming, NotStored};
use crate::store::Store;
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

/// Returned to the client as `partial_success` (spans or log records, as the signal is).
#[derive(Debug, Default, PartialEq)]
pub struct ExportOutcome {
    pub rejected: i64,
    pub error_message: String,
}

impl ExportOutcome {
    fn new(rejected: usize, error_message: String) -> ExportOutcome {
        ExportOutcome {
            rejected: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message,
        }
    }

    /// OTLP leaves `partial_success` unset when everything was accepted as sent.
    fn is_partial(&self) -> bool {
        self.rejected > 0 || !self.error_message.is_empty()
    }

    pub fn partial_success(self) -> Option<ExportTracePartialSuccess> {
        self.is_partial().then_some(ExportTracePartialSuccess {
            rejected_spans: self.rejected,
            error_message: self.error_message,
        })
    }

    pub fn logs_partial_success(self) -> Option<ExportLogsPartialSuccess> {
        self.is_partial().then_some(ExportLogsPartialSuccess {
            rejected_log_records: self.rejected,
            error_message: self.error_message,
        })
    }
}

/// What differs between the OTLP signals the receivers take (traces, logs): the gRPC
/// service, the HTTP path, the answer, and which export the body goes to. Everything else,
/// keys and tenants, limits, decompression and the refusal table, is shared.
pub trait Signal: Send + Sync + 'static {
    /// The gRPC service name.
    const SERVICE: &'static str;
    /// The gRPC method path.
    const EXPORT_PATH: &'static str;
    /// The OTLP/HTTP path.
    const HTTP_PATH: &'static str;
    type Request: prost::Message + Default + Send + 'static;
    /// What a request turns into, to store.
    type Converted: Send + 'static;
    type Response: prost::Message + serde::Serialize + Default + Send + 'static;

    /// At most what a protobuf request of these bytes takes decoded and converted.
    fn memory_bound(body: &[u8]) -> Result<usize, otlp_bound::Malformed>;

    /// The request, and the items the decoder could not read (rejected like invalid ones).
    fn decode_json(body: &[u8]) -> Result<(Self::Request, Vec<String>), otlp_json::JsonError>;

    /// Validates and converts a request, `unreadable` items counted as rejected; with what
    /// the result takes in memory.
    fn convert(
        request: Self::Request,
        unreadable: Vec<String>,
        limits: &SpanLimits,
        now: u64,
    ) -> (Self::Converted, usize);

    /// Stores what a request turned into, holding `bytes_permit` until it is stored.
    fn store(
        ingest: &Ingest,
        converted: Self::Converted,
        bytes_permit: OwnedSemaphorePermit,
        protocol: Protocol,
    ) -> impl std::future::Future<Output = Result<ExportOutcome, ExportError>> + Send;

    fn response(outcome: ExportOutcome) -> Self::Response;
}

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

pub struct Traces;

impl Signal for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const EXPORT_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const HTTP_PATH: &'static str = "/v1/traces";
    type Request = ExportTraceServiceRequest;
    type Converted = otlp::Converted;
    type Response = ExportTraceServiceResponse;

    fn memory_bound(body: &[u8]) -> Result<usize, otlp_bound::Malformed> {
        otlp_bound::traces(body)
    }

    fn decode_json(
        body: &[u8],
    ) -> Result<(ExportTraceServiceRequest, Vec<String>), otlp_json::JsonError> {
        otlp_json::decode(body).map(|decoded| (decoded.request, decoded.rejected))
    }

    fn convert(
        request: Self::Request,
        unreadable: Vec<String>,
        limits: &SpanLimits,
        now: u64,
    ) -> (otlp::Converted, usize) {
        let mut converted = otlp::convert(request, limits, now);
        converted.rejected.splice(0..0, unreadable);
        let memory = converted.memory_bytes;
        (converted, memory)
    }

    async fn store(
        ingest: &Ingest,
        converted: otlp::Converted,
        bytes_permit: OwnedSemaphorePermit,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        ingest.store(converted, bytes_permit, protocol).await
    }

    fn response(outcome: ExportOutcome) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: outcome.partial_success(),
        }
    }
}

pub struct Logs;

impl Signal for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const EXPORT_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const HTTP_PATH: &'static str = "/v1/logs";
    type Request = ExportLogsServiceRequest;
    type Converted = ConvertedLogs;
    type Response = ExportLogsServiceResponse;

    fn memory_bound(body: &[u8]) -> Result<usize, otlp_bound::Malformed> {
        otlp_bound::logs(body)
    }

    fn decode_json(
        body: &[u8],
    ) -> Result<(ExportLogsServiceRequest, Vec<String>), otlp_json::JsonError> {
        otlp_json::decode_logs(body)
    }

    fn convert(
        request: Self::Request,
        unreadable: Vec<String>,
        limits: &SpanLimits,
        now: u64,
    ) -> (ConvertedLogs, usize) {
        let mut converted = log::convert(request, limits, now);
        converted.rejected.splice(0..0, unreadable);
        let memory = converted.memory_bytes;
        (converted, memory)
    }

    async fn store(
        ingest: &Ingest,
        converted: ConvertedLogs,
        bytes_permit: OwnedSemaphorePermit,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        ingest.store_logs(converted, bytes_permit, protocol).await
    }

    fn response(outcome: ExportOutcome) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: outcome.logs_partial_success(),
        }
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
    arrivals: Arc<Arrivals>,
    pending_spans: Cap,
    pending_bytes: Cap,
    queue_wait: Duration,
    limits: Arc<SpanLimits>,
    pub max_request_bytes: usize,
    metrics: Arc<Metrics>,
    /// Where log records go (spans go through the writer).
    store: Store,
}

impl Ingest {
    pub fn new(config: &config::Ingest, store: Store, metrics: Arc<Metrics>) -> (Ingest, Incoming) {
        // The semaphore bounds memory; the channel only needs to hold what fits under it.
        let (queue, batches) = mpsc::channel(1024);
        let arrivals = Arc::new(Arrivals::default());
        let limits = SpanLimits {
            max_attribute_value_bytes: config.max_attribute_value_bytes,
            max_context_value_bytes: config.max_context_value_bytes,
            context_keys: crate::conventions::LLM_CONTEXT_KEYS,
            max_name_bytes: config.max_name_bytes,
            max_status_message_bytes: config.max_status_message_bytes,
            max_attributes: config.max_attributes_per_span,
            max_events: config.max_events_per_span,
            max_resource_attributes: config.max_resource_attributes,
            max_resource_bytes: config.max_resource_bytes,
            ..SpanLimits::default()
        };
        let ingest = Ingest {
            queue,
            arrivals: Arc::clone(&arrivals),
            pending_spans: Cap::new(
                config.max_pending_spans,
                "max_pending_spans",
                "spans or log records",
            ),
            pending_bytes: Cap::new(config.max_pending_bytes, "max_pending_bytes", "bytes"),
            queue_wait: config.queue_wait(),
            limits: Arc::new(limits),
            max_request_bytes: config.max_request_bytes,
            metrics,
            store,
        };
        (ingest, Incoming { batches, arrivals })
    }

    /// The one export path of every signal: takes room for the request under the
    /// pending-bytes cap, decodes and converts it off the reactor, fits the room to what it
    /// turned into, and stores it; answers once it is stored.
    pub async fn export<S: Signal>(
        &self,
        body: bytes::Bytes,
        encoding: Encoding,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        let body_bytes = body.len();
        let _timer = Timer::start(match protocol {
            Protocol::Grpc => &self.metrics.grpc_request_duration,
            Protocol::Http => &self.metrics.http_request_duration,
        });
        let _pending = GaugeHold::add(&self.metrics.pending_bytes, body_bytes as f64);
        // Room for what the request can take decoded and converted, read from its bytes before
        // it is decoded (a JSON body by its length); fitted to what it turned into after.
        let reserved = match encoding {
            Encoding::Protobuf => S::memory_bound(&body)
                .map_err(|e| ExportError::BadPayload(format!("malformed OTLP protobuf: {e}")))?,
            Encoding::Json => body_bytes,
        }
        .max(1);
        let mut bytes_permit = self.wait_for_room(&self.pending_bytes, reserved).await?;
        // On its way to the writer while it is decoded and converted (not while it waits for
        // room: the batch the writer gathers may be what holds it).
        let arriving = self.arrivals.arriving();
        // Decoding and validation are CPU work proportional to the body: keep them off the reactor.
        let limits = Arc::clone(&self.limits);
        let (converted, memory_bytes) = tokio::task::spawn_blocking(move || {
            let (request, unreadable) = match encoding {
                Encoding::Protobuf => S::Request::decode(body)
                    .map(|request| (request, Vec::new()))
                    .map_err(|e| {
                        ExportError::BadPayload(format!("malformed OTLP protobuf: {e}"))
                    })?,
                Encoding::Json => S::decode_json(&body)
                    .map_err(|e| ExportError::BadPayload(format!("malformed OTLP/JSON: {e}")))?,
            };
            Ok::<_, ExportError>(S::convert(request, unreadable, &limits, now_unix_nano()))
        })
        .await
        .map_err(|_| ExportError::ShuttingDown)??;
        let needed = memory_bytes.max(1);
        if needed > reserved {
            let more = self
                .wait_for_room(&self.pending_bytes, needed - reserved)
                .await?;
            bytes_permit.merge(more);
        } else {
            drop(bytes_permit.split(reserved - needed));
        }
        // Converted: from here the request joins the writer's queue at once, or waits for
        // room that only a written batch frees.
        drop(arriving);
        S::store(self, converted, bytes_permit, protocol).await
    }

    async fn store(
        &self,
        converted: otlp::Converted,
        bytes_permit: OwnedSemaphorePermit,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        let outcome = ExportOutcome::new(converted.rejected.len(), converted.message());
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

    /// Stores log records straight from the request: OTLP log exporters already send them in
    /// batches, and nothing downstream waits for them (sessions find their records when read).
    /// They take room under the same pending caps as spans while their insert runs.
    async fn store_logs(
        &self,
        converted: ConvertedLogs,
        bytes_permit: OwnedSemaphorePermit,
        protocol: Protocol,
    ) -> Result<ExportOutcome, ExportError> {
        let outcome = ExportOutcome::new(converted.rejected.len(), converted.message());
        self.metrics
            .log_records_rejected_invalid
            .increment(converted.rejected.len() as u64);
        let records = converted.records;
        if records.is_empty() {
            return Ok(outcome);
        }
        let count = records.len();
        let _permit = self.wait_for_room(&self.pending_spans, count).await?;
        let result = self
            .store
            .insert_logs(&records, now_unix_nano())
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, records = count, "log insert failed");
                if err.is_retryable() {
                    ExportError::StoreUnavailable
                } else {
                    ExportError::StoreRejected
                }
            });
        drop(bytes_permit);
        let (accepted, refused) = match protocol {
            Protocol::Grpc => (
                &self.metrics.grpc_log_records_accepted,
                &self.metrics.grpc_log_records_refused,
            ),
            Protocol::Http => (
                &self.metrics.http_log_records_accepted,
                &self.metrics.http_log_records_refused,
            ),
        };
        if result.is_ok() { accepted } else { refused }.increment(count as u64);
        result.map(|()| outcome)
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
