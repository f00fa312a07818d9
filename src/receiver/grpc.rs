//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export`, one service per [`Signal`] on
//! the same port.
//!
//! Served through tonic with a codec that hands over the raw message bytes, so decoding is
//! the same lossy decoder the HTTP receiver uses (a strict decoder would fail a whole request
//! on one invalid UTF-8 string).

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};

use std::marker::PhantomData;
use std::sync::Arc;

use super::{Encoding, ExportError, Ingest, Logs, Protocol, Signal, Traces};
use crate::tenants::{presented_key, Scope, Tenants};

impl From<ExportError> for Status {
    fn from(err: ExportError) -> Status {
        Status::new(err.refusal().grpc, err.to_string())
    }
}

/// The gRPC service of one signal.
pub struct OtlpService<S> {
    tenants: Arc<Tenants<Ingest>>,
    max_request_bytes: usize,
    signal: PhantomData<fn() -> S>,
}

pub type TraceService = OtlpService<Traces>;
pub type LogsService = OtlpService<Logs>;

impl<S> Clone for OtlpService<S> {
    fn clone(&self) -> Self {
        OtlpService {
            tenants: Arc::clone(&self.tenants),
            max_request_bytes: self.max_request_bytes,
            signal: PhantomData,
        }
    }
}

impl<S: Signal> OtlpService<S> {
    pub fn new(tenants: Arc<Tenants<Ingest>>, max_request_bytes: usize) -> Self {
        OtlpService {
            tenants,
            max_request_bytes,
            signal: PhantomData,
        }
    }
}

impl<S: Signal> NamedService for OtlpService<S> {
    const NAME: &'static str = S::SERVICE;
}

struct Export<S>(Ingest, PhantomData<fn() -> S>);

impl<S: Signal> UnaryService<Bytes> for Export<S> {
    type Response = S::Response;
    type Future = BoxFuture<'static, Result<Response<Self::Response>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let outcome = ingest
                .export::<S>(request.into_inner(), Encoding::Protobuf, Protocol::Grpc)
                .await?;
            Ok(Response::new(S::response(outcome)))
        })
    }
}

impl<S: Signal, B> tower::Service<http::Request<B>> for OtlpService<S>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let tenants = Arc::clone(&self.tenants);
        let limit = self.max_request_bytes;
        Box::pin(async move {
            if request.uri().path() != S::EXPORT_PATH {
                return Ok(
                    Status::unimplemented(format!("no method {}", request.uri().path()))
                        .into_http(),
                );
            }
            let peer = request
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|info| info.remote_addr());
            let key = presented_key(request.headers());
            let ingest = match tenants.authorize(key, peer, Scope::Ingest) {
                Ok(ingest) => ingest.clone(),
                Err(err) => return Ok(Status::from(ExportError::from(err)).into_http()),
            };
            let mut grpc = Grpc::new(RawCodec::<S::Response>(PhantomData))
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            let response = grpc.unary(Export::<S>(ingest, PhantomData), request).await;
            Ok(refuse_oversized_for_good(response, limit))
        })
    }
}

/// tonic answers a message over the size limit with OUT_OF_RANGE (or RESOURCE_EXHAUSTED when
/// it grew while inflating). OTLP clients retry OUT_OF_RANGE, and the same request will never
/// fit, so it becomes INVALID_ARGUMENT. Export itself never answers either code.
fn refuse_oversized_for_good(
    response: http::Response<tonic::body::Body>,
    limit: usize,
) -> http::Response<tonic::body::Body> {
    match Status::from_header_map(response.headers()) {
        Some(status) if matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted) => {
            Status::from(ExportError::TooLarge(limit)).into_http()
        }
        _ => response,
    }
}

/// Decodes to the message bytes as they are; encodes responses (`M`) with prost.
struct RawCodec<M>(PhantomData<fn() -> M>);

impl<M: prost::Message + Send + 'static> Codec for RawCodec<M> {
    type Encode = M;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<M>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> ResponseEncoder<M> {
        ResponseEncoder(PhantomData)
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

struct ResponseEncoder<M>(PhantomData<fn() -> M>);

impl<M: prost::Message> Encoder for ResponseEncoder<M> {
    type Item = M;
    type Error = Status;

    fn encode(&mut self, item: M, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding response: {e}")))
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
