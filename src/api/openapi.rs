//! The OpenAPI document, generated from the handlers' annotations and the types they answer
//! with. The query parameters of the list, the export and the list page are built from the
//! filter and sort tables of [`crate::query`], so a new filter is documented by being added.

use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Required};
use utoipa::{IntoParams, Modify, OpenApi};

use super::error::ErrorBody;
use super::export::Format;
use super::{transcript, TranscriptQuery, MAX_LABEL_CHARS};
use crate::query::{
    FilterKind, Sort, DEFAULT_EXAMPLES, DEFAULT_LIMIT, DEFAULT_LOW_CONFIDENCE,
    DEFAULT_USUALLY_CITES, FILTERS, MAX_EXAMPLES, MAX_LIMIT, SORTS,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "convolog API",
        description = "Conversation logs of voice and chat AI agents, built from their OpenTelemetry traces: list and search sessions, read transcripts and timelines, label, flag and export them. Errors are JSON {\"error\": ...}; a 400 names the parameter and says why; a 503 is retryable."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics,
        super::openapi,
        super::list_sessions,
        super::delete_all_sessions,
        super::get_summary,
        super::delete_session,
        super::get_transcript,
        super::get_timeline,
        super::get_logs,
        super::add_label,
        super::remove_label,
        super::flag,
        super::unflag,
        super::export_sessions,
        super::pages::list_page,
        super::pages::session_page,
        super::pages::captions,
        super::pages::annotate_page,
        super::pages::share_page,
        super::pages::key_page,
        super::pages::export_page,
        super::pages::script,
        super::knowledge_gaps,
    ),
    // Named here too since the shared error answers refer to it by name.
    components(schemas(ErrorBody)),
    modifiers(&ApiKeys),
    security(("bearer" = []), ("api_key" = []), ())
)]
struct ApiDoc;

/// The document `GET /openapi.json` serves.
pub fn document() -> Document {
    ApiDoc::openapi()
}

const KEY_DOC: &str =
    "A tenant's key. Not needed when no keys are configured (loopback clients only).";

/// The two ways a caller presents its key (see `tenants::presented_key`).
struct ApiKeys;

impl Modify for ApiKeys {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(format!("{KEY_DOC} As `Authorization: Bearer <key>`.")))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-api-key".to_owned(),
                format!("{KEY_DOC} As `x-api-key: <key>`."),
            ))),
        );
    }
}

/// A query parameter (optional); a path parameter (required).
fn parameter(
    place: ParameterIn,
    name: impl Into<String>,
    description: impl Into<String>,
    schema: Schema,
) -> Parameter {
    let required = if place == ParameterIn::Path {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn query(name: impl Into<String>, description: impl Into<String>, schema: Schema) -> Parameter {
    parameter(ParameterIn::Query, name, description, schema)
}

fn typed(schema_type: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(schema_type)
}

fn text() -> Schema {
    typed(Type::String).into()
}

fn nonempty_text() -> Schema {
    typed(Type::String).min_length(Some(1)).into()
}

/// Comma-separated or repeated: either way a list of strings.
fn list() -> Schema {
    ArrayBuilder::new().items(typed(Type::String)).into()
}

/// A whole number from 1 to `max`.
fn count(max: u32, default: u32) -> Schema {
    typed(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(max))
        .default(Some(json!(default)))
        .into()
}

/// One of a fixed set of words.
fn one_of(values: &[&str], default: &str) -> Schema {
    typed(Type::String)
        .enum_values(Some(values.iter().copied()))
        .default(Some(json!(default)))
        .into()
}

/// The filters (`query::session_filter`) and the sort (`query::sort`) that the list, the
/// export and the list page share.
pub struct SessionQuery;

impl IntoParams for SessionQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut out = filter_params();
        let sorts: Vec<&str> = SORTS.iter().map(|s| s.param).collect();
        let default = Sort::default();
        out.push(query(
            "sort",
            "Sort key (latency = voice_to_voice_p95). Sessions without a value sort last.",
            one_of(&sorts, default.spec.param),
        ));
        out.push(query(
            "order",
            "Sort direction.",
            one_of(
                &["desc", "asc"],
                if default.descending { "desc" } else { "asc" },
            ),
        ));
        out
    }
}

/// The list's filters alone (`query::session_filter`), for reports over the sessions they
/// select.
pub struct FilterQuery;

impl IntoParams for FilterQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        filter_params()
    }
}

/// What the knowledge-gaps report reads beyond the filters (`query::gap_query`).
pub struct GapsQuery;

impl IntoParams for GapsQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let share = |default: f64| -> Schema {
            typed(Type::Number)
                .minimum(Some(0.0))
                .maximum(Some(1.0))
                .default(Some(json!(default)))
                .into()
        };
        vec![
            query(
                "low_confidence",
                "An answer whose confidence is below this is weak.",
                share(DEFAULT_LOW_CONFIDENCE),
            ),
            query(
                "usually_cites",
                "An answer without citations is weak when its agent cites in at least this share of its answers.",
                share(DEFAULT_USUALLY_CITES),
            ),
            query(
                "limit",
                "Questions shown, the most often weak first.",
                count(MAX_LIMIT, DEFAULT_LIMIT),
            ),
            query(
                "examples",
                "Newest weak answers shown per question.",
                count(MAX_EXAMPLES, DEFAULT_EXAMPLES),
            ),
        ]
    }
}

fn filter_params() -> Vec<Parameter> {
    let mut out = vec![
            query(
                "from",
                "Sessions that started at or after: an RFC 3339 instant (2026-11-01T08:00:00Z), a date (2026-11-01) or a duration ago (90s, 30m, 24h, 7d).",
                text(),
            ),
            query("to", "Sessions that started before (same forms as from).", text()),
            query(
                "q",
                "Free text: some transcript message of the session contains it, ignoring case; or it is the full phone number or email address of the session's contact (matched by its keyed pseudonym).",
                nonempty_text(),
            ),
            query(
                "span_name",
                "A span with one of these names belongs to the session (comma-separated or repeated).",
                list(),
            ),
            query(
                "label",
                "The session carries one of these labels (comma-separated or repeated).",
                list(),
            ),
            query(
                "flagged",
                "Only flagged (true) or unflagged (false) sessions.",
                typed(Type::Boolean).into(),
            ),
        ];
    for spec in FILTERS {
        let doc = spec.doc;
        match spec.kind {
            FilterKind::EqualsAny => out.push(query(
                spec.param,
                format!("Equals any of these values (comma-separated or repeated): {doc}."),
                list(),
            )),
            FilterKind::HasAny => out.push(query(
                spec.param,
                format!("Holds any of these values (comma-separated or repeated): {doc}."),
                list(),
            )),
            FilterKind::Range => {
                for (suffix, bound) in [("min", "At least"), ("max", "At most")] {
                    out.push(query(
                        format!("{}_{suffix}", spec.param),
                        format!("{bound} this: {doc}. Sessions without a value do not match."),
                        typed(Type::Number).into(),
                    ));
                }
            }
            FilterKind::NonZero => out.push(query(
                spec.param,
                format!("true: {doc}; false: not."),
                typed(Type::Boolean).into(),
            )),
            FilterKind::Contains | FilterKind::Contact => out.push(query(
                spec.param,
                format!("Contains this text: {doc}, ignoring case."),
                nonempty_text(),
            )),
        }
    }
    out
}

/// A page of the list (`query::limit`, `query::cursor`).
pub struct PageQuery;

impl IntoParams for PageQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query("limit", "Rows per page.", count(MAX_LIMIT, DEFAULT_LIMIT)),
            query(
                "cursor",
                "next_cursor of the previous page; only valid with the same sort and order.",
                text(),
            ),
        ]
    }
}

/// What only the export reads: its format.
pub struct ExportQuery;

impl IntoParams for ExportQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query(
                "format",
                "csv (default), jsonl or json.",
                one_of(&Format::NAMES, Format::NAMES[0]),
            ),
            query(
                "bom",
                "Start a CSV with a UTF-8 byte order mark.",
                typed(Type::Boolean).default(Some(json!(false))).into(),
            ),
        ]
    }
}

/// The path of the label routes; `valid_label` is what checks the label.
/// The parameters of a session's log records.
pub struct LogsQuery;

impl IntoParams for LogsQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = vec![
            query(
                "severity",
                "Records at or above this severity: trace, debug, info, warn, error, fatal (any case), or a severity number 1 to 24.",
                text(),
            ),
            query(
                "q",
                "Records whose body contains this text, ignoring case.",
                text(),
            ),
        ];
        params.extend(PageQuery::into_params(|| None).into_iter().map(|mut p| {
            if p.name == "cursor" {
                p.description =
                    Some("next_cursor of the previous page, with the same filters.".into());
            }
            p
        }));
        params
    }
}

pub struct LabelPath;

impl IntoParams for LabelPath {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let label = typed(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_LABEL_CHARS));
        vec![
            parameter(ParameterIn::Path, "id", "Session id.", text()),
            parameter(
                ParameterIn::Path,
                "label",
                format!(
                    "A label: 1 to {MAX_LABEL_CHARS} characters, no commas or control characters."
                ),
                label.into(),
            ),
        ]
    }
}

impl IntoParams for TranscriptQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query(
            "format",
            "json (default), text, or vtt.",
            one_of(&transcript::FORMATS, transcript::FORMATS[0]),
        )]
    }
}
