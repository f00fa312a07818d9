//! The one conversion from failures to HTTP answers. Server-side details are logged, not sent.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::response::{Response as AnswerDoc, ResponseBuilder};
use utoipa::openapi::{Content, Ref, RefOr};
use utoipa::{IntoResponses, ToSchema};

use crate::query::QueryError;
use crate::store::StoreError;
use crate::tenants::AuthError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    #[schema(example = "invalid parameter limit: \"0\" is not a whole number from 1 to 500")]
    pub error: String,
}

// What each error status means, as the OpenAPI document says it.
const BAD_PARAMETER: &str = "A bad parameter: the message names it and says why.";
pub const NO_SESSION: &str = "No such session (or it was merged into another).";
pub const NO_KEY: &str = "No key, or an unknown key.";
pub const NOT_ADMIN: &str = "The key is not an admin key.";
pub const NOT_ALLOWED: &str = "The key's scope does not allow this; with no keys configured, the \
    client, or the Host it addressed, is not this machine.";
pub const UNAVAILABLE: &str =
    "ClickHouse unavailable, or the server still starting; retry after Retry-After seconds.";

/// The error answers of an operation on one session, for the OpenAPI document.
pub struct SessionErrors;

/// The error answers of the list, the export and the list page, for the OpenAPI document.
pub struct QueryErrors;

fn error_answers(answers: &[(&str, &str)]) -> BTreeMap<String, RefOr<AnswerDoc>> {
    let body = Content::new(Some(Ref::from_schema_name(ErrorBody::name())));
    answers
        .iter()
        .map(|&(status, description)| {
            let answer = ResponseBuilder::new()
                .description(description)
                .content("application/json", body.clone());
            (status.to_owned(), answer.build().into())
        })
        .collect()
}

impl IntoResponses for SessionErrors {
    fn responses() -> BTreeMap<String, RefOr<AnswerDoc>> {
        error_answers(&[
            ("400", BAD_PARAMETER),
            ("401", NO_KEY),
            ("403", NOT_ALLOWED),
            ("404", NO_SESSION),
            ("503", UNAVAILABLE),
        ])
    }
}

impl IntoResponses for QueryErrors {
    fn responses() -> BTreeMap<String, RefOr<AnswerDoc>> {
        error_answers(&[
            ("400", BAD_PARAMETER),
            ("401", NO_KEY),
            ("403", NOT_ALLOWED),
            ("503", UNAVAILABLE),
        ])
    }
}

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
    /// A page write without this browser's CSRF token, or sent from another site.
    #[error("{0}")]
    Forbidden(&'static str),
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
            ApiError::Unauthorized(_) | ApiError::Forbidden(_) => {
                (StatusCode::FORBIDDEN, self.to_string())
            }
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
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
