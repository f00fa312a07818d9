//! The read side: `GET /v1/sessions/{id}/transcript`, `/healthz`, `/readyz`, `/metrics`.

mod error;
mod transcript;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub use error::ApiError;

use crate::store::Store;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/sessions/{id}/transcript", get(get_transcript))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

async fn readyz(State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    Ok("ready")
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TranscriptQuery {
    format: Option<String>,
}

async fn get_transcript(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: Result<Query<TranscriptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadParameter {
        name: "query",
        why: e.body_text(),
    })?;
    let format = query.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "text") {
        return Err(ApiError::BadParameter {
            name: "format",
            why: format!("{format:?} is not one of json, text"),
        });
    }
    let detail = state
        .store
        .session_detail(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))?;
    Ok(match format {
        "text" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            transcript::render_text(&detail),
        )
            .into_response(),
        _ => Json(transcript::Transcript::from_detail(&detail)).into_response(),
    })
}
