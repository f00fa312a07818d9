//! The pages a person reads: `/sessions` (find conversations) and `/sessions/{id}` (read,
//! replay and annotate one). Server-rendered HTML that reads without JavaScript; one small
//! static script (`/pages/pages.js`) adds playback, seeking and copying. Labels, flags and
//! share links are plain forms. Every value from the store is escaped.

mod access;
mod list;
mod session;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ErrorBody, QueryErrors, UNAVAILABLE};
use super::openapi::{PageQuery, SessionQuery};
use super::timeline::{waterfall, MAX_LOG_LINES, MAX_SPANS};
use super::{annotate, export_answer, list_query, read_page, transcript, ApiError};
use crate::query::Params;
use crate::store::{Change, LogQuery};
use crate::tenants::AuthError;
use access::{forget_key_cookie, key_cookie, now_unix_seconds, PageRequest};

/// The script the pages load: no build step, no framework.
const SCRIPT: &str = include_str!("pages.js");

/// The pages run only their own script, load media only from this server and the
/// recording's origin, post forms only here, and may not be framed.
fn policy(media_origin: Option<&str>) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; \
         media-src 'self'{}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        media_origin.map(|o| format!(" {o}")).unwrap_or_default()
    )
}

/// An HTML answer with the pages' security headers, and the CSRF cookie when it is new.
fn html(
    status: StatusCode,
    body: String,
    media_origin: Option<&str>,
    set_cookies: &[HeaderValue],
) -> Response {
    let mut response = (status, axum::response::Html(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy(media_origin)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    for cookie in set_cookies {
        headers.append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// Where to go after a form: back to a page of ours (never elsewhere).
fn see_other(location: &str, set_cookies: &[HeaderValue]) -> Response {
    let location = if location.starts_with("/sessions") {
        location
    } else {
        "/sessions"
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    for cookie in set_cookies {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// A failure as a page: the key form when a key is wanted, else what went wrong.
fn failure(req: &PageRequest, err: ApiError, back: &str) -> Response {
    let wants_key = matches!(
        err,
        ApiError::Unauthorized(AuthError::MissingKey | AuthError::UnknownKey)
    );
    if wants_key && req.keyed {
        let (csrf, cookie) = req.csrf();
        let unknown = matches!(err, ApiError::Unauthorized(AuthError::UnknownKey));
        return html(
            StatusCode::UNAUTHORIZED,
            session::key_form(&csrf, back, unknown),
            None,
            cookie.as_slice(),
        );
    }
    let message = match &err {
        ApiError::Store(_) => "The store could not answer; try again shortly.".to_owned(),
        other => other.to_string(),
    };
    let status = err.into_response().status();
    html(status, session::problem(&message, back), None, &[])
}

/// The answer, or the failure as a page.
fn answered(req: &PageRequest, answer: Result<Response, ApiError>, back: &str) -> Response {
    answer.unwrap_or_else(|err| failure(req, err, back))
}

/// A posted form's fields.
fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(body).map_err(|e| ApiError::bad("form", e.to_string()))
}

fn session_path(id: &str) -> String {
    format!("/sessions/{}", super::sessions::percent_encode(id))
}

/// Decoded form fields or query pairs; empty fields mean "not given".
fn pairs(raw: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(raw)
        .map_err(|e| ApiError::bad("query string", e.to_string()))?;
    Ok(pairs
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect())
}

fn take(pairs: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = pairs.iter().position(|(n, _)| n == name)?;
    Some(pairs.remove(at).1)
}

#[utoipa::path(get, path = "/sessions", operation_id = "listPage",
    summary = "The conversation list as a page for people: every filter of /v1/sessions in a form (empty values are ignored; `period` = 1h, 24h, 7d or 30d sets `from`), sortable columns, the number of matches, cursor paging, and CSV / JSON Lines export of what is filtered.",
    params(SessionQuery, PageQuery),
    responses(
        (status = 200, description = "HTML page", body = String, content_type = "text/html"),
        QueryErrors,
    ))]
pub async fn list_page(req: PageRequest, RawQuery(raw): RawQuery) -> Response {
    let back = format!("/sessions?{}", raw.as_deref().unwrap_or(""));
    answered(
        &req,
        list_answer(&req, raw.as_deref().unwrap_or("")).await,
        &back,
    )
}

async fn list_answer(req: &PageRequest, raw: &str) -> Result<Response, ApiError> {
    let caller = req.caller()?;
    let page_pairs = pairs(raw.as_bytes())?;
    let api = list::api_pairs(&page_pairs);
    let q = list_query(Params::from_pairs(api.clone())?)?;
    let (page, count, options) = futures::try_join!(
        read_page(&caller.store, &q),
        async { Ok(caller.store.count_sessions(&q.filter).await?) },
        list::options(&caller.store),
    )?;
    let (csrf, cookie) = req.csrf();
    let next = page
        .next
        .map(|after| crate::query::encode_cursor(&q.sort, &after));
    let body = list::render(&list::ListPage {
        rows: &page.rows,
        pairs: &page_pairs,
        api_pairs: &api,
        sort: q.sort,
        limit: q.limit,
        count,
        next_cursor: next.as_deref(),
        options: &options,
        keyed: req.keyed,
        csrf: &csrf,
    });
    Ok(html(StatusCode::OK, body, None, cookie.as_slice()))
}

#[utoipa::path(get, path = "/pages/export", operation_id = "exportPage",
    summary = "The list page's export: the same answer as /v1/export, for a browser that holds its key in the pages' cookie.",
    params(SessionQuery),
    responses(
        (status = 200, description = "CSV, JSON Lines or JSON", body = String, content_type = "text/csv"),
        QueryErrors,
    ))]
pub async fn export_page(req: PageRequest, RawQuery(raw): RawQuery) -> Response {
    let answer = async {
        let caller = req.caller()?;
        let mut page_pairs = pairs(raw.as_deref().unwrap_or("").as_bytes())?;
        let format = take(&mut page_pairs, "format");
        let mut api = list::api_pairs(&page_pairs);
        api.retain(|(n, _)| n != "cursor" && n != "limit");
        api.extend(format.map(|f| ("format".to_owned(), f)));
        export_answer(&caller.store, Params::from_pairs(api)?).await
    };
    answered(&req, answer.await, "/sessions")
}

/// `?share=<token>` of a session page or its captions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareQuery {
    share: Option<String>,
}

fn share_query(raw: Option<&str>) -> Result<ShareQuery, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad("query string", e.to_string()))
}

#[utoipa::path(get, path = "/sessions/{id}", operation_id = "sessionPage",
    summary = "The page a person reads: the recording with the transcript (click a line to play from it), per-turn latencies with their sources and the spans as a waterfall, tool calls, interruptions, labels and flag (editable), share links.",
    params(("id" = String, Path, description = "Session id."),
        ("share" = Option<String>, Query, description = "A signed read-only link's token (keyed mode): the page without a key, until it expires.")),
    responses(
        (status = 200, description = "HTML page", body = String, content_type = "text/html"),
        (status = 401, description = "HTML page asking for a key", body = String, content_type = "text/html"),
        (status = 403, description = "HTML page: a share link that is not valid or has expired", body = String, content_type = "text/html"),
        (status = 404, description = "HTML page saying the session is unknown", body = String,
            content_type = "text/html"),
        (status = 503, description = UNAVAILABLE, body = ErrorBody),
    ))]
pub async fn session_page(
    req: PageRequest,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let back = session_path(&id);
    let answer = async {
        let share = share_query(raw.as_deref())?.share;
        render_session(&req, &id, share.as_deref(), None).await
    };
    answered(&req, answer.await, &back)
}

/// The session page for a caller with a key (editable), or for a share link (read-only);
/// `minted` is a share link just made, shown once.
async fn render_session(
    req: &PageRequest,
    id: &str,
    share: Option<&str>,
    minted: Option<(String, u64)>,
) -> Result<Response, ApiError> {
    let (caller, shared) = match share {
        Some(token) => {
            let (caller, expires) = req.shared(token, id)?;
            (caller, Some((token, expires)))
        }
        None => (req.caller()?.clone(), None),
    };
    let store = &caller.store;
    let Some(detail) = store.session_detail(id).await? else {
        return Ok(html(
            StatusCode::NOT_FOUND,
            session::not_found(id),
            None,
            &[],
        ));
    };
    let (sid, revision) = (&detail.session.session_id, detail.session.revision);
    let every_log = LogQuery {
        limit: MAX_LOG_LINES,
        ..LogQuery::default()
    };
    let (mut rows, logs) = futures::try_join!(
        store.waterfall_spans(&detail.session, MAX_SPANS + 1),
        store.session_logs(sid, revision, &every_log),
    )?;
    let spans_truncated = rows.len() as u64 > MAX_SPANS;
    rows.truncate(MAX_SPANS as usize);
    let spans = waterfall(&rows, detail.session.start_time_unix_nano);
    let (csrf, cookie) = req.csrf();
    let recording = session::Recording::of(&detail.session.recording_url);
    let mode = match shared {
        Some((token, expires)) => session::Mode::Shared { token, expires },
        None => session::Mode::Edit {
            csrf: &csrf,
            can_share: req.keyed,
            minted: minted.as_ref().map(|(t, e)| (t.as_str(), *e)),
        },
    };
    let body = session::render(&session::SessionPage {
        detail: &detail,
        spans: &spans,
        spans_truncated,
        logs: &logs,
        recording: recording.as_ref(),
        mode,
    });
    Ok(html(
        StatusCode::OK,
        body,
        recording.as_ref().and_then(|r| r.origin.as_deref()),
        cookie.as_slice(),
    ))
}

#[utoipa::path(get, path = "/sessions/{id}/captions.vtt", operation_id = "sessionCaptions",
    summary = "The transcript as WebVTT (as /v1/sessions/{id}/transcript?format=vtt) for the session page's player; also with a share link's token.",
    params(("id" = String, Path, description = "Session id."),
        ("share" = Option<String>, Query, description = "A signed read-only link's token.")),
    responses(
        (status = 200, description = "WebVTT", body = String, content_type = "text/vtt"),
        (status = 401, description = "HTML page asking for a key", body = String, content_type = "text/html"),
        (status = 404, description = "No such session", body = String, content_type = "text/html"),
    ))]
pub async fn captions(
    req: PageRequest,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let answer = async {
        let store = match share_query(raw.as_deref())?.share {
            Some(token) => req.shared(&token, &id)?.0.store,
            None => req.caller()?.store.clone(),
        };
        let detail = store
            .session_detail(&id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))?;
        Ok::<_, ApiError>(
            (
                [(header::CONTENT_TYPE, "text/vtt; charset=utf-8")],
                transcript::render_vtt(&detail),
            )
                .into_response(),
        )
    };
    answered(&req, answer.await, "/sessions")
}

/// A label or flag form on the session page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnotateForm {
    csrf: String,
    action: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    reason: String,
}

#[utoipa::path(post, path = "/sessions/{id}/annotations", operation_id = "annotatePage",
    summary = "The session page's label and flag forms (fields csrf, action = add_label | remove_label | flag | unflag, label, reason): the same checks and scope as the label and flag API; answers with a redirect back to the page.",
    params(("id" = String, Path, description = "Session id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Done: back to the session page."),
        (status = 400, description = "HTML page saying what was wrong", body = String, content_type = "text/html"),
        (status = 401, description = "HTML page asking for a key", body = String, content_type = "text/html"),
        (status = 403, description = "HTML page: no CSRF token, or sent from another site", body = String, content_type = "text/html"),
    ))]
pub async fn annotate_page(req: PageRequest, Path(id): Path<String>, body: Bytes) -> Response {
    let back = session_path(&id);
    let answer = async {
        let form: AnnotateForm = form(&body)?;
        req.check_write(&form.csrf)?;
        let store = &req.caller()?.store;
        let change = match form.action.as_str() {
            "add_label" => Change::AddLabel(form.label),
            "remove_label" => Change::RemoveLabel(form.label),
            "flag" => Change::Flag {
                reason: form.reason.trim().to_owned(),
            },
            "unflag" => Change::Unflag,
            other => {
                return Err(ApiError::bad(
                    "action",
                    format!("{other:?} is not add_label, remove_label, flag or unflag"),
                ))
            }
        };
        let _now = annotate(store, &id, change).await?;
        Ok(see_other(&format!("{back}#marks"), &[]))
    };
    answered(&req, answer.await, &back)
}

/// The share form: how long the read-only link lasts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareForm {
    csrf: String,
    days: u64,
}

/// Share links last at most this long.
const MAX_SHARE_DAYS: u64 = 30;

#[utoipa::path(post, path = "/sessions/{id}/share", operation_id = "sharePage",
    summary = "Make a signed read-only link to this session page (fields csrf, days = 1 to 30); only with keys configured. Answers with the session page showing the link.",
    params(("id" = String, Path, description = "Session id.")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "HTML page with the link", body = String, content_type = "text/html"),
        (status = 400, description = "HTML page saying what was wrong", body = String, content_type = "text/html"),
        (status = 403, description = "HTML page: no CSRF token, or sent from another site", body = String, content_type = "text/html"),
    ))]
pub async fn share_page(req: PageRequest, Path(id): Path<String>, body: Bytes) -> Response {
    let back = session_path(&id);
    let answer = async {
        let form: ShareForm = form(&body)?;
        req.check_write(&form.csrf)?;
        if !(1..=MAX_SHARE_DAYS).contains(&form.days) {
            return Err(ApiError::bad(
                "days",
                format!("must be 1 to {MAX_SHARE_DAYS}"),
            ));
        }
        let caller = req.caller()?;
        let expires = now_unix_seconds() + form.days * 86_400;
        let token = req.share_token(caller, &id, expires).ok_or_else(|| {
            ApiError::bad(
                "share",
                "signed links need API keys; without keys, the page's own link is the one to share",
            )
        })?;
        render_session(&req, &id, None, Some((token, expires))).await
    };
    answered(&req, answer.await, &back)
}

/// The key form: a key to keep for the pages, or `forget` to drop it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyForm {
    csrf: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    forget: Option<String>,
}

#[utoipa::path(post, path = "/pages/key", operation_id = "keyPage",
    summary = "The pages' key form (fields csrf, key, next; or forget): checks the key may read and keeps it in an HttpOnly, SameSite=Strict cookie for the pages, then goes back to `next`.",
    request_body(content = String, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Kept (or forgotten): back to the page."),
        (status = 401, description = "HTML page: the key is unknown or may not read", body = String, content_type = "text/html"),
        (status = 403, description = "HTML page: no CSRF token, or sent from another site", body = String, content_type = "text/html"),
    ))]
pub async fn key_page(req: PageRequest, body: Bytes) -> Response {
    let answer = async {
        let form: KeyForm = form(&body)?;
        req.check_write(&form.csrf)?;
        if form.forget.is_some() {
            return Ok(see_other("/sessions", &[forget_key_cookie()]));
        }
        req.with_key(&form.key)?;
        let cookie = key_cookie(&form.key)
            .ok_or_else(|| ApiError::bad("key", "not a key this server could have issued"))?;
        Ok(see_other(&form.next, &[cookie]))
    };
    answered(&req, answer.await, "/sessions")
}

#[utoipa::path(get, path = "/pages/pages.js", operation_id = "pagesScript",
    summary = "The pages' script: playback, seeking and copying on the session page.",
    responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}
