//! How an [`ExportError`] is told to OTLP clients, in one table for both protocols: the gRPC
//! status code (also the `code` of an OTLP/HTTP error body), the HTTP status, and, for errors
//! the client should retry, how long to wait. Retryable means retryable on both protocols
//! under the OTLP specification's rules, which the tests below spell out.

use std::time::Duration;

use http::StatusCode;
use tonic::Code;

use super::ExportError;
use crate::tenants::AuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub grpc: Code,
    pub http: StatusCode,
    /// The suggested wait before retrying; None when the same request can never succeed.
    pub retry_after: Option<Duration>,
}

impl ExportError {
    pub fn refusal(&self) -> Refusal {
        let soon = Some(Duration::from_secs(1));
        let (grpc, http, retry_after) = match self {
            ExportError::BadPayload(_) => (Code::InvalidArgument, StatusCode::BAD_REQUEST, None),
            ExportError::TooLarge(_) => {
                (Code::InvalidArgument, StatusCode::PAYLOAD_TOO_LARGE, None)
            }
            ExportError::UnsupportedContentType(_) => (
                Code::InvalidArgument,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
            ),
            // OTLP/gRPC clients retry RESOURCE_EXHAUSTED only with RetryInfo; UNAVAILABLE always.
            ExportError::Overloaded => (Code::Unavailable, StatusCode::TOO_MANY_REQUESTS, soon),
            ExportError::ShuttingDown => (Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE, soon),
            ExportError::StoreUnavailable => (
                Code::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(Duration::from_secs(5)),
            ),
            ExportError::StoreRejected => {
                // Ours to look into, whichever protocol the client used.
                tracing::error!(error = %self, "export failed");
                (Code::Internal, StatusCode::INTERNAL_SERVER_ERROR, None)
            }
            ExportError::Unauthorized(AuthError::MissingKey | AuthError::UnknownKey) => {
                (Code::Unauthenticated, StatusCode::UNAUTHORIZED, None)
            }
            ExportError::Unauthorized(_) => (Code::PermissionDenied, StatusCode::FORBIDDEN, None),
        };
        Refusal {
            grpc,
            http,
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OTLP/gRPC: the codes a client retries. RESOURCE_EXHAUSTED counts only with RetryInfo,
    /// which convolog does not send.
    fn grpc_retries(code: Code) -> bool {
        matches!(
            code,
            Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::OutOfRange
                | Code::Unavailable
                | Code::DataLoss
        )
    }

    /// OTLP/HTTP: the statuses a client retries.
    fn http_retries(status: StatusCode) -> bool {
        matches!(status.as_u16(), 429 | 502 | 503 | 504)
    }

    fn every_error() -> Vec<ExportError> {
        vec![
            ExportError::BadPayload("x".into()),
            ExportError::UnsupportedContentType("x".into()),
            ExportError::TooLarge(1),
            ExportError::Overloaded,
            ExportError::StoreUnavailable,
            ExportError::StoreRejected,
            ExportError::ShuttingDown,
            ExportError::Unauthorized(AuthError::MissingKey),
            ExportError::Unauthorized(AuthError::UnknownKey),
            ExportError::Unauthorized(AuthError::WrongScope(crate::tenants::Scope::Read)),
            ExportError::Unauthorized(AuthError::NotLoopback),
            ExportError::Unauthorized(AuthError::ForeignHost("x".into())),
        ]
    }

    #[test]
    fn both_protocols_agree_on_what_to_retry() {
        for err in every_error() {
            let refusal = err.refusal();
            let retryable = refusal.retry_after.is_some();
            assert_eq!(
                grpc_retries(refusal.grpc),
                retryable,
                "{err:?}: {refusal:?}"
            );
            assert_eq!(
                http_retries(refusal.http),
                retryable,
                "{err:?}: {refusal:?}"
            );
            assert!(refusal.http.is_client_error() || refusal.http.is_server_error());
        }
    }

    #[test]
    fn overload_and_outages_are_retried_and_bad_requests_are_not() {
        for err in [
            ExportError::Overloaded,
            ExportError::StoreUnavailable,
            ExportError::ShuttingDown,
        ] {
            let refusal = err.refusal();
            assert!(
                grpc_retries(refusal.grpc) && http_retries(refusal.http),
                "{err:?}"
            );
        }
        assert_eq!(
            ExportError::Overloaded.refusal().http,
            StatusCode::TOO_MANY_REQUESTS
        );
        let bad = ExportError::BadPayload("x".into()).refusal();
        assert_eq!(bad.http, StatusCode::BAD_REQUEST);
        assert!(!grpc_retries(bad.grpc) && !http_retries(bad.http));
    }
}
