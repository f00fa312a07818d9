//! The read side: the conversation list, one session's summary and transcript, labels and
//! flags, and `/healthz`, `/readyz`, `/metrics`. Handlers parse and answer; SQL is in store.

mod error;
pub mod export;
mod page;
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
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

pub use error::ApiError;

use crate::query::{self, Params};
use crate::store::{Change, SessionPage, Store};
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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/sessions", get(list_page))
        .route("/sessions/{id}", get(session_page))
        .route(
            "/v1/sessions",
            get(list_sessions).delete(delete_all_sessions),
        )
        .route("/v1/export", get(export_sessions))
        .route("/v1/sessions/{id}", get(get_summary).delete(delete_session))
        .route("/v1/sessions/{id}/transcript", get(get_transcript))
        .route("/v1/sessions/{id}/timeline", get(get_timeline))
        .route(
            "/v1/sessions/{id}/labels/{label}",
            put(add_label).delete(remove_label),
        )
        .route("/v1/sessions/{id}/flag", put(flag).delete(unflag))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::map_response(no_sniffing))
        .with_state(state)
}

async fn readyz(_: StatusReader, State(state): State<ApiState>) -> Result<&'static str, ApiError> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(ApiError::Starting);
    }
    for store in state.tenants.all() {
        store.ping().await?;
    }
    Ok("ready")
}

/// The OpenAPI document, written by hand next to the routes; a test keeps the two in step.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

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

async fn get_transcript(
    Reader(store): Reader,
    Path(id): Path<String>,
    query: Result<Query<TranscriptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let format = query.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "text" | "vtt") {
        return Err(ApiError::bad(
            "format",
            format!("{format:?} is not one of json, text, vtt"),
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
    // One span more than shown says whether the waterfall is cut.
    let (events, mut spans) = futures::try_join!(
        store.timeline_events(id, revision),
        store.waterfall_spans(id, revision, timeline::MAX_SPANS + 1),
    )?;
    let truncated = spans.len() as u64 > timeline::MAX_SPANS;
    spans.truncate(timeline::MAX_SPANS as usize);
    Ok(Json(timeline::build(&detail, &events, &spans, truncated)))
}

fn now_unix_seconds() -> u64 {
    crate::clock::now_unix_nano() / 1_000_000_000
}

/// Parses the list's parameters (filters, sort, cursor, limit) and reads that page.
async fn read_page(store: &Store, mut p: Params) -> Result<(SessionPage, query::Sort), ApiError> {
    let filter = query::session_filter(&mut p, now_unix_seconds())?;
    let sort = query::sort(&mut p)?;
    let after = query::cursor(&mut p, &sort)?;
    let limit = query::limit(&mut p)?;
    p.finish()?;
    let page = store
        .list_sessions(&filter, &sort, after.as_ref(), limit)
        .await?;
    Ok((page, sort))
}

async fn list_sessions(
    Reader(store): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<sessions::SessionList>, ApiError> {
    let (page, sort) = read_page(&store, Params::parse(raw.as_deref())?).await?;
    Ok(Json(sessions::SessionList {
        next_cursor: page.next.map(|a| query::encode_cursor(&sort, &a)),
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
    let latency = store
        .stage_percentiles(&id, detail.session.revision)
        .await?;
    Ok(Json(sessions::SessionJson::summary(&detail, &latency)))
}

/// Labels are short words people filter by: no commas (the list takes `label=a,b`).
fn valid_label(label: &str) -> Result<String, ApiError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 64 {
        return Err(ApiError::bad("label", "must be 1 to 64 characters"));
    }
    if label.chars().any(|c| c.is_control() || c == ',') {
        return Err(ApiError::bad(
            "label",
            "must not contain commas or control characters",
        ));
    }
    Ok(label.to_owned())
}

async fn annotate(
    store: &Store,
    id: &str,
    change: Change,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    if !store.session_exists(id).await? {
        return Err(no_session(id));
    }
    store.annotate(id, change).await?;
    let now = store.annotations(id).await?;
    Ok(Json(sessions::AnnotationsView::new(id, now)))
}

/// `DELETE /v1/sessions/{id}` (admin): gone from the API, exports and dashboards for good.
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
async fn delete_all_sessions(Admin(store): Admin) -> Result<StatusCode, ApiError> {
    store.delete_everything().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Labels one session may carry: enough for any triage scheme, and a bound on what a key
/// that may only read can add.
pub const MAX_LABELS_PER_SESSION: usize = 50;

async fn add_label(
    Reader(store): Reader,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    let label = valid_label(&label)?;
    let labels = store.annotations(&id).await?.labels;
    if labels.len() >= MAX_LABELS_PER_SESSION && !labels.contains(&label) {
        return Err(ApiError::bad(
            "label",
            format!("a session carries at most {MAX_LABELS_PER_SESSION} labels"),
        ));
    }
    annotate(&store, &id, Change::AddLabel(label)).await
}

async fn remove_label(
    Reader(store): Reader,
    Path((id, label)): Path<(String, String)>,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    let label = valid_label(&label)?;
    annotate(&store, &id, Change::RemoveLabel(label)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlagBody {
    #[serde(default)]
    reason: String,
}

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
    if reason.chars().count() > 1000 {
        return Err(ApiError::bad("reason", "longer than 1000 characters"));
    }
    annotate(&store, &id, Change::Flag { reason }).await
}

async fn unflag(
    Reader(store): Reader,
    Path(id): Path<String>,
) -> Result<Json<sessions::AnnotationsView>, ApiError> {
    annotate(&store, &id, Change::Unflag).await
}

async fn export_sessions(
    Reader(store): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(raw.as_deref())?;
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

async fn session_page(Reader(store): Reader, Path(id): Path<String>) -> Result<Response, ApiError> {
    let Some(detail) = store.session_detail(&id).await? else {
        return Ok(html(StatusCode::NOT_FOUND, page::not_found(&id)));
    };
    Ok(html(StatusCode::OK, page::render(&detail)))
}

#[cfg(test)]
mod openapi_tests;

/// The pages run no script, load nothing from elsewhere and may not be framed.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        axum::response::Html(body),
    )
        .into_response()
}

/// Every answer is what its Content-Type says: browsers must not guess.
async fn no_sniffing(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

async fn list_page(Reader(store): Reader, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    // Empty form fields arrive as `name=`: they mean "no filter".
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad("query string", e.to_string()))?;
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let form = page::ListForm {
        q: value("q"),
        channel: value("channel"),
        environment: value("environment"),
        from: value("from"),
        label: value("label"),
        sort: value("sort"),
        order: value("order"),
    };
    let (page, sort) = read_page(&store, Params::from_pairs(pairs.clone())?).await?;
    let next_query = page.next.map(|next| {
        let mut next_pairs: Vec<(String, String)> =
            pairs.into_iter().filter(|(n, _)| n != "cursor").collect();
        next_pairs.push(("cursor".into(), query::encode_cursor(&sort, &next)));
        serde_urlencoded::to_string(&next_pairs).unwrap_or_default()
    });
    Ok(html(
        StatusCode::OK,
        page::render_list(&page.rows, &form, next_query.as_deref()),
    ))
}
