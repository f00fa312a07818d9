//! The one conversion from failures to HTTP answers. Server-side details are logged, not sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::query::QueryError;
use crate::store::StoreError;
use crate::tenants::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("invalid parameter {name}: {why}")]
    BadParameter { name: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("starting: the schema is not applied yet, retry later")]
    Starting,
}

impl ApiError {
    /// A 400 naming the parameter and saying what is wrong with it.
    pub fn bad(name: impl Into<String>, why: impl Into<String>) -> ApiError {
        ApiError::BadParameter {
            name: name.into(),
            why: why.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> ApiError {
        ApiError::BadParameter {
            name: err.name,
            why: err.why,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, self.to_string()),
            ApiError::BadParameter { .. } => (StatusCode::BAD_REQUEST, self.to_string()),
            ApiError::Unauthorized(AuthError::MissingKey | AuthError::UnknownKey) => {
                (StatusCode::UNAUTHORIZED, self.to_string())
            }
            ApiError::Unauthorized(_) => (StatusCode::FORBIDDEN, self.to_string()),
            ApiError::Starting => (StatusCode::SERVICE_UNAVAILABLE, self.to_string()),
            ApiError::Store(err) if err.is_retryable() => {
                tracing::warn!(error = %err, "storage unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable, retry later".to_owned(),
                )
            }
            ApiError::Store(err) => {
                tracing::error!(error = %err, "storage error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
