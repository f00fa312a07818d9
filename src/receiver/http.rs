//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs` with `application/x-protobuf` or `application/json`
//! (OTLP/JSON, every shape the proto3 JSON mapping allows: see `model::otlp_json`),
//! optionally gzip.
//! Answers in the request's encoding; errors carry a `google.rpc.Status`.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::Extension;

use super::{Encoding, ExportError, ExportOutcome, Ingest, Logs, Protocol, Signal, Traces};
use crate::tenants::{Scope, Tenants};

fn content_type_of(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

pub fn router(tenants: Arc<Tenants<Ingest>>) -> Router {
    Router::new()
        .route(Traces::HTTP_PATH, post(export::<Traces>))
        .route(Logs::HTTP_PATH, post(export::<Logs>))
        .with_state(tenants)
}

/// The key is checked from the headers before the body is read, so a client without one
/// costs no body buffer.
async fn export<S: Signal>(
    State(tenants): State<Arc<Tenants<Ingest>>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match content_type(&headers) {
        Ok(encoding) => encoding,
        // Answer in protobuf, the OTLP/HTTP default, when the request's encoding is unknown.
        Err(err) => return failure(Encoding::Protobuf, err),
    };
    let peer = peer.map(|p| p.0 .0);
    let ingest = match tenants.authorize_http(&headers, &uri, peer, Scope::Ingest) {
        Ok(ingest) => ingest,
        Err(err) => return failure(encoding, err.into()),
    };
    let body = match read_body(body, ingest.max_request_bytes).await {
        Ok(body) => body,
        Err(err) => return failure(encoding, err),
    };
    match decode_and_export::<S>(ingest, &headers, body, encoding).await {
        Ok(outcome) => success::<S>(encoding, outcome),
        Err(err) => failure(encoding, err),
    }
}

/// The body, up to `limit` bytes on the wire (the decompressed size is checked in `inflate`).
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ExportError> {
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let source = std::error::Error::source(&err);
        if source.is_some_and(|e| e.is::<http_body_util::LengthLimitError>()) {
            ExportError::TooLarge(limit)
        } else {
            ExportError::BadPayload(format!("could not read the request body: {err}"))
        }
    })
}

fn content_type(headers: &HeaderMap) -> Result<Encoding, ExportError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(ExportError::UnsupportedContentType(format!(
            "unsupported Content-Type {value:?}: use application/x-protobuf or application/json"
        ))),
    }
}

async fn decode_and_export<S: Signal>(
    ingest: &Ingest,
    headers: &HeaderMap,
    body: Bytes,
    encoding: Encoding,
) -> Result<ExportOutcome, ExportError> {
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    let limit = ingest.max_request_bytes;
    let gzip = match content_encoding.trim().to_ascii_lowercase().as_str() {
        "gzip" => true,
        "identity" | "" => false,
        other => {
            return Err(ExportError::BadPayload(format!(
                "unsupported Content-Encoding {other:?}: use gzip or none"
            )))
        }
    };
    let raw = if gzip {
        tokio::task::spawn_blocking(move || inflate(&body, limit))
            .await
            .map_err(|_| ExportError::ShuttingDown)??
    } else {
        body
    };
    ingest.export::<S>(raw, encoding, Protocol::Http).await
}

/// Inflates gzip, refusing to grow past `limit` bytes (a small bomb can inflate to gigabytes).
fn inflate(body: &[u8], limit: usize) -> Result<Bytes, ExportError> {
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ExportError::BadPayload(format!("corrupt gzip body: {e}")))?;
    if read > limit {
        return Err(ExportError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

fn success<S: Signal>(encoding: Encoding, outcome: ExportOutcome) -> Response {
    let response = S::response(outcome);
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // The proto3 JSON mapping leaves an unset message out: a full success is `{}`.
        Encoding::Json => match serde_json::to_value(&response) {
            Ok(value) if !value["partialSuccess"].is_null() => {
                serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec())
            }
            _ => b"{}".to_vec(),
        },
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type_of(encoding))],
        body,
    )
        .into_response()
}

fn failure(encoding: Encoding, err: ExportError) -> Response {
    let refusal = err.refusal();
    let rpc = RpcStatus {
        code: refusal.grpc as i32,
        message: err.to_string(),
    };
    let body = match encoding {
        Encoding::Protobuf => rpc.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&rpc).unwrap_or_default(),
    };
    let mut response = (
        refusal.http,
        [(header::CONTENT_TYPE, content_type_of(encoding))],
        body,
    )
        .into_response();
    if let Some(after) = refusal.retry_after {
        if let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}
