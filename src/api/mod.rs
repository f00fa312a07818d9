//! The read side: the conversation list, one session's summary and transcript, labels and
//! flags, and `/healthz`, `/readyz`, `/metrics`. Handlers parse and answer; SQL is in store.

mod error;
pub mod export;
pub mod insights;
pub mod logs;
mod openapi;
mod pages;
pub mod sessions;
mod timeline;
pub mod transcript;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::RawQuery;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

pub use error::ApiError;
use error::{
    ErrorBody, QueryErrors, SessionErrors, NOT_ADMIN, NOT_ALLOWED, NO_KEY, NO_SESSION, UNAVAILABLE,
};
use openapi::{ExportQuery, FilterQuery, GapsQuery, LabelPath, LogsQuery, PageQuery, SessionQuery};

use crate::query::{self, Params};
use crate::store::{Change, LogQuery, SessionPage, Store};
use crate::telemetry::Metrics;
use crate::tenants::{key_map, Scope, Tenants};

#[derive(Clone)]
pub struct ApiState {
    /// Each tenant's store, found by the caller's key.
    pub tenants: Arc<Tenants<Store>>,
    pub metrics: Arc<Metrics>,
    /// False while the server starts (the schema is being applied): reads answer 503.
    pub ready: Arc<AtomicBool>,
    /// `/metrics` and `/readyz` answer without a key.
    pub public_status: bool,
}

impl ApiState {
    /// One tenant and no keys: loopback clients only (also what in-process callers get).
    pub fn single(store: Store, metrics: Arc<Metrics>) -> ApiState {
        ApiState {
            tenants: Arc::new(Tenants::new(vec![store], key_map(vec![vec![]]))),
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
            public_status: false,
        }
    }
}

/// The store of the caller's tenant, for a key with the read (or admin) scope.
pub struct Reader(pub Store);

/// The store of the caller's tenant, for a key with the admin scope.
pub struct Admin(pub Store);

/// A caller allowed to see the service's status (`/metrics`, `/readyz`): anyone when
/// `http.public_status` is on, else a caller who may read.
pub struct StatusReader;

fn tenant_store(parts: &Parts, state: &ApiState, wanted: Scope) -> Result<Store, ApiError> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::Starting);
    }
    caller_store(parts, state, wanted)
}

fn caller_store(parts: &Parts, state: &ApiState, wanted: Scope) -> Result<Store, ApiError> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    state
        .tenants
        .authorize_http(&parts.headers, &parts.uri, peer, wanted)
        .cloned()
        .map_err(ApiError::from)
}

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        tenant_store(parts, state, Scope::Read).map(Reader)
    }
}

impl FromRequestParts<ApiState> for StatusReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        if !state.public_status {
            caller_store(parts, state, Scope::Read)?;
        }
        Ok(StatusReader)
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        tenant_store(parts, state, Scope::Admin).map(Admin)
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/sessions", get(pages::list_page))
        .route("/sessions/{id}", get(pages::session_page))
        .route("/sessions/{id}/captions.vtt", get(pages::captions))
        .route("/sessions/{id}/annotations", post(pages::annotate_page))
        .route("/sessions/{id}/share", post(pages::share_page))
        .route("/pages/key", post(pages::key_page))
        .route("/pages/export", get(pages::export_page))
        .route("/pages/pages.js", get(pages::script))
        .route(
            "/v1/sessions",
            get(list_sessions).delete(delete_all_sessions),
        )
        .route("/v1/export", get(export_sessions))
        .route("/v1/sessions/{id}", get(get_summary).delete(delete_session))
        .route("/v1/sessions/{id}/transcript", get(get_transcript))
        .route("/v1/sessions/{id}/timeline", get(get_timeline))
        .route("/v1/sessions/{id}/logs", get(get_logs))
        .route(
            "/v1/sessions/{id}/labels/{label}",
            put(add_label).delete(remove_label),
        )
        .route("/v1/sessions/{id}/flag", put(flag).delete(unflag))
        .route("/v1/insights/gaps", get(knowledge_gaps))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::map_response(no_sniffing))
        .with_state(state)
}

#[utoipa::path(get, path = "/healthz", operation_id = "healthz",
    summary = "The process is up.",
    responses((status = 200, description = "ok", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(get, path = "/readyz", operation_id = "readyz",
    summary = "ClickHouse is reachable.",
    responses(
        (status = 200, description = "ready", body = String, content_type = "text/plain"),
        (status = 401, description = NO_KEY, body = ErrorBody),
        (status = 403, description = NOT_ALLOWED, body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ))]
async fn readyz(_: StatusReader, State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::Starting);
    }
    for store in state.tenants.all() {
        store.ping().await?;
    }
    Ok("ready")
}

#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi",
    summary = "This document.",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi::document())
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics",
    summary = "Prometheus metrics (keyed unless http.public_status is set).",
    responses(
        (status = 200, description = "Prometheus text format", body = String,
            content_type = "text/plain"),
        (status = 401, description = NO_KEY, body = ErrorBody),
        (status = 403, description = NOT_ALLOWED, body = ErrorBody),
    ))]
async fn metrics(_: StatusReader, State(state): State<ApiState>) -> impl IntoResponse {
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

#[utoipa::path(get, path = "/v1/sessions/{id}/transcript", operation_id = "getTranscript",
    summary = "The transcript as JSON, plain text, or WebVTT captions timed from the session start.",
    params(("id" = String, Path, description = "Session id."), TranscriptQuery),
    responses(
        (status = 200, description = "The transcript", content(
            (transcript::Transcript = "application/json"),
            (String = "text/plain"),
            (String = "text/vtt"),
        )),
        SessionErrors,
    ))]
async fn get_transcript(
    Reader(store): Reader,
    Path(id): Path<String>,
    query: Result<Query<TranscriptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let format = query.format.as_deref().unwrap_or(transcript::FORMATS[0]);
    if !transcript::FORMATS.contains(&format) {
        return Err(ApiError::bad(
            "format",
            format!(
                "{format:?} is not one of {}",
                transcript::FORMATS.join(", ")
            ),
        ));
    }
    let detail = store
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
        "vtt" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/vtt; charset=utf-8")],
            transcript::render_vtt(&detail),
        )
            .into_response(),
        _ => Json(transcript::Transcript::from_detail(&detail)).into_response(),
    })
}

#[utoipa::path(get, path = "/v1/sessions/{id}/timeline", operation_id = "getTimeline",
    summary = "The audit timeline step by step, and the spans as a waterfall.",
    params(("id" = String, Path, description = "Session id.")),
    responses(
        (status = 200, description = "The timeline", body = timeline::Timeline),
        SessionErrors,
    ))]
async fn get_timeline(
    Reader(store): Reader,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<timeline::Timeline>, ApiError> {
    no_parameters(raw)?;
    let detail = store
        .session_detail(&id)
        .await?
        .ok_or_else(|| no_session(&id))?;
    let (id, revision) = (&detail.session.session_id, detail.session.revision);
    // One span (and log record) more than shown says whether the list is cut.
    let every_log = LogQuery {
        limit: timeline::MAX_LOG_LINES + 1,
        ..LogQuery::default()
    };
    let (events, mut spans, mut logs) = futures::try_join!(
        store.timeline_events(id, revision),
        store.waterfall_spans(&detail.session, timeline::MAX_SPANS + 1),
        store.session_logs(id, revision, &every_log),
    )?;
    let spans_truncated = spans.len() as u64 > timeline::MAX_SPANS;
    spans.truncate(timeline::MAX_SPANS as usize);
    let logs_truncated = logs.len() as u64 > timeline::MAX_LOG_LINES;
    logs.truncate(timeline::MAX_LOG_LINES as usize);
    let parts = timeline::Parts {
        events: &events,
        spans: &spans,
        spans_truncated,
        logs: &logs,
        logs_truncated,
    };
    Ok(Json(timeline::build(&detail, parts)))
}

#[utoipa::path(get, path = "/v1/sessions/{id}/logs", operation_id = "getLogs",
    summary = "The agent's log records during the session (OTLP logs in the session's traces, or naming its key), by time, each with its span and turn; filtered by severity and text, paginated by cursor.",
    params(("id" = String, Path, description = "Session id."), LogsQuery),
    responses(
        (status = 200, description = "The records", body = logs::SessionLogs),
        SessionErrors,
    ))]
async fn get_logs(
    Reader(store): Reader,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<logs::SessionLogs>, ApiError> {
    let mut p = Params::parse(raw.as_deref())?;
    let query = logs::parse_query(&mut p)?;
    p.finish()?;
    let detail = store
        .session_detail(&id)
        .await?
        .ok_or_else(|| no_session(&id))?;
    let lines = store
        .session_logs(&id, detail.session.revision, &query)
        .await?;
    let full_page = lines.len() as u64 == query.limit;
    Ok(Json(logs::build(&detail, &lines, full_page)))
}

#[utoipa::path(get, path = "/v1/insights/gaps", operation_id = "knowledgeGaps",
    summary = "Knowledge gaps: user questions whose answers had low confidence, a thumbs-down, or no citation from an agent that normally cites, grouped by normalised question text, the most often weak first; over the sessions the list's filters select.",
    params(FilterQuery, GapsQuery),
    responses(
        (status = 200, description = "The weakest-answered questions", body = insights::GapList),
        QueryErrors,
    ))]
async fn knowledge_gaps(
    Reader(store): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<insights::GapList>, ApiError> {
    let mut p = Params::parse(raw.as_deref())?;
    let filter = query::session_filter(&mut p, now_unix_seconds())?;
    let gaps = query::gap_query(&mut p)?;
    p.finish()?;
    let found = store.knowledge_gaps(&filter, &gaps).await?;
    Ok(Json(insights::GapList::of(found, &gaps)))
}

fn now_unix_seconds() -> u64 {
    crate::clock::now_unix_nano() / 1_000_000_000
}

/// The list's parameters, checked: filters, sort, cursor, limit.
struct ListQuery {
    filter: query::SessionFilter,
    sort: query::Sort,
    after: Option<query::After>,
    limit: u32,
}

fn list_query(mut p: Params) -> Result<ListQuery, ApiError> {
    let filter = query::session_filter(&mut p, now_unix_seconds())?;
    let sort = query::sort(&mut p)?;
    let after = query::cursor(&mut p, &sort)?;
    let limit = query::limit(&mut p)?;
    p.finish()?;
    Ok(ListQuery {
        filter,
        sort,
        after,
        limit,
    })
}

/// Reads one page of the list.
async fn read_page(store: &Store, q: &ListQuery) -> Result<SessionPage, ApiError> {
    Ok(store
        .list_sessions(&q.filter, &q.sort, q.after.as_ref(), q.limit)
        .await?)
}

#[utoipa::path(get, path = "/v1/sessions", operation_id = "listSessions",
    summary = "The conversation list: filters combine (AND; values of one filter OR), sorted, paginated by cursor.",
    params(SessionQuery, PageQuery),
    responses(
        (status = 200, description = "A page of sessions", body = sessions::SessionList),
        QueryErrors,
    ))]
async fn list_sessions(
    Reader(store): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<sessions::SessionList>, ApiError> {
    let q = list_query(Params::parse(raw.as_deref())?)?;
    let page = read_page(&store, &q).await?;
    Ok(Json(sessions::SessionList {
        next_cursor: page.next.map(|a| query::encode_cursor(&q.sort, &a)),
        sessions: page
            .rows
            .into_iter()
            .map(sessions::SessionJson::of)
            .collect(),
    }))
}

fn no_session(id: &str) -> ApiError {
    ApiError::NotFound(format!("no session {id:?}"))
}

fn no_parameters(raw: Option<String>) -> Result<(), ApiError> {
    Ok(Params::parse(raw.as_deref())?.finish()?)
}

#[utoipa::path(get, path = "/v1/sessions/{id}", operation_id = "getSession",
    summary = "One session's summary: times, ids, channel, counts, per-stage latency percentiles, labels, flag.",
    params(("id" = String, Path, description = "Session id.")),
    responses(
        (status = 200, description = "The summary", body = sessions::SessionJson),
        SessionErrors,
    ))]
async fn get_summary(
    Reader(store): Reader,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<sessions::SessionJson>, ApiError> {
    no_parameters(raw)?;
    let detail = store
        .session_detail(&id)
        .await?
        .ok_or_else(|| no_session(&id))?;
    Ok(Json(sessions::SessionJson::summary(&detail)))
}

const MAX_LABEL_CHARS: usize = 64;

/// Labels are short words people filter by: no commas (the list takes `label=a,b`).
fn valid_label(label: &str) -> Result<String, ApiError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
        return Err(ApiError::bad(
            "label",
            format!("must be 1 to {MAX_LABEL_CHARS} characters"),
        ));
    }
    if label.chars().any(|c| c.is_control() || c == ',') {
        return Err(ApiError::bad(
            "label",
            "must not contain commas or control characters",
        ));
    }
    Ok(label.to_owned())
}

/// One change to a session's labels or flag, checked the same way for the API and the
/// pages: label syntax, the label limit, the reason's length, the session existing.
async fn annotate(
    store: &Store,
    id: &str,
    change: Change,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    let change = match change {
        Change::AddLabel(label) => {
            let label = valid_label(&label)?;
            let labels = store.annotations(id).await?.labels;
            if labels.len() >= MAX_LABELS_PER_SESSION && !labels.contains(&label) {
                return Err(ApiError::bad(
                    "label",
                    format!("a session carries at most {MAX_LABELS_PER_SESSION} labels"),
                ));
            }
            Change::AddLabel(label)
        }
        Change::RemoveLabel(label) => Change::RemoveLabel(valid_label(&label)?),
        Change::Flag { reason } if reason.chars().count() > MAX_REASON_CHARS => {
            return Err(ApiError::bad(
                "reason",
                format!("longer than {MAX_REASON_CHARS} characters"),
            ))
        }
        other => other,
    };
    if !store.session_exists(id).await? {
        return Err(no_session(id));
    }
    store.annotate(id, change).await?;
    let now = store.annotations(id).await?;
    Ok(Json(sessions::AnnotationsView::new(id, now)))
}

const MAX_REASON_CHARS: usize = 1000;

/// `DELETE /v1/sessions/{id}` (admin): gone from the API, exports and dashboards for good.
#[utoipa::path(delete, path = "/v1/sessions/{id}", operation_id = "deleteSession",
    summary = "Delete one session permanently: gone from the API, exports and dashboards, and its spans removed so no rebuild brings it back (admin key).",
    description = "",
    params(("id" = String, Path, description = "Session id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = NO_KEY, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 404, description = "No such session in the caller's tenant.", body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ))]
async fn delete_session(
    Admin(store): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if store.delete_session(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_session(&id))
    }
}

/// `DELETE /v1/sessions` (admin): every conversation of the caller's tenant.
#[utoipa::path(delete, path = "/v1/sessions", operation_id = "deleteAllSessions",
    summary = "Delete every conversation of the caller's tenant, permanently (admin key).",
    description = "",
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = NO_KEY, body = ErrorBody),
        (status = 403, description = NOT_ADMIN, body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ))]
async fn delete_all_sessions(Admin(store): Admin) -> Result<StatusCode, ApiError> {
    store.delete_everything().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Labels one session may carry: enough for any triage scheme, and a bound on what a key
/// that may only read can add.
pub const MAX_LABELS_PER_SESSION: usize = 50;

#[utoipa::path(put, path = "/v1/sessions/{id}/labels/{label}", operation_id = "addLabel",
    summary = "Add a label (idempotent).",
    params(LabelPath),
    responses(
        (status = 200, description = "The session's labels and flag now", body = sessions::AnnotationsView),
        SessionErrors,
    ))]
async fn add_label(
    Reader(store): Reader,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    annotate(&store, &id, Change::AddLabel(label)).await
}

#[utoipa::path(delete, path = "/v1/sessions/{id}/labels/{label}", operation_id = "removeLabel",
    summary = "Remove a label (idempotent).",
    params(LabelPath),
    responses(
        (status = 200, description = "The session's labels and flag now", body = sessions::AnnotationsView),
        SessionErrors,
    ))]
async fn remove_label(
    Reader(store): Reader,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    annotate(&store, &id, Change::RemoveLabel(label)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FlagBody {
    /// Why the session is flagged.
    #[serde(default)]
    #[schema(max_length = 1000)]
    reason: String,
}

#[utoipa::path(put, path = "/v1/sessions/{id}/flag", operation_id = "flagSession",
    summary = "Flag the session, optionally saying why.",
    params(("id" = String, Path, description = "Session id.")),
    request_body(content = Option<FlagBody>, description = "Optional: an empty body flags without a reason."),
    responses(
        (status = 200, description = "The session's labels and flag now", body = sessions::AnnotationsView),
        SessionErrors,
    ))]
async fn flag(
    Reader(store): Reader,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<FlagBody>(&body)
            .map_err(|e| ApiError::bad("body", format!("expected {{\"reason\": \"...\"}}: {e}")))?
            .reason
    };
    annotate(&store, &id, Change::Flag { reason }).await
}

#[utoipa::path(delete, path = "/v1/sessions/{id}/flag", operation_id = "unflagSession",
    summary = "Unflag the session.",
    params(("id" = String, Path, description = "Session id.")),
    responses(
        (status = 200, description = "The session's labels and flag now", body = sessions::AnnotationsView),
        (status = 404, description = NO_SESSION, body = ErrorBody),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ))]
async fn unflag(
    Reader(store): Reader,
    Path(id): Path<String>,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    annotate(&store, &id, Change::Unflag).await
}

#[utoipa::path(get, path = "/v1/export", operation_id = "exportSessions",
    summary = "Every session matching the list's filters, streamed as CSV, JSON Lines or a JSON array.",
    params(SessionQuery, ExportQuery),
    responses(
        (status = 200, description = export::response_description(), content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (Vec<sessions::SessionJson> = "application/json"),
        )),
        QueryErrors,
    ))]
async fn export_sessions(
    Reader(store): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    export_answer(&store, Params::parse(raw.as_deref())?).await
}

/// The export of the sessions `p` filters, in the format it names: for the API and the pages.
async fn export_answer(store: &Store, mut p: Params) -> Result<Response, ApiError> {
    let filter = query::session_filter(&mut p, now_unix_seconds())?;
    let sort = query::sort(&mut p)?;
    let bom = p.bool("bom")?.unwrap_or(false);
    let format = export::Format::parse(p.one("format")?.as_deref().unwrap_or("csv"), bom)?;
    p.finish()?;
    let mut stream = store.stream_sessions(&filter, &sort)?;
    // The first row is read before answering, so a store that is down gets a 503, not a
    // 200 with an empty body.
    let first = stream.next().await?;
    let disposition = format!("attachment; filename=\"sessions.{}\"", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        export::body(first, stream, format),
    )
        .into_response())
}

#[cfg(test)]
mod openapi_tests;

/// Every answer is what its Content-Type says: browsers must not guess.
async fn no_sniffing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}
