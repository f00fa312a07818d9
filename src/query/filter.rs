//! Filters: which exist, and parsing them. Each one is over a column (or a fixed expression
//! over columns) of `sessions`; `store` writes the SQL for each kind.

use super::{Params, QueryError};
use crate::sessionize::semantics::{
    closed_value, CALL_STATUSES, DIRECTIONS, ENDED_REASONS, OUTCOMES, STATES,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// `param=a,b` (or the parameter repeated): the column equals any of the values.
    EqualsAny,
    /// `param=a,b`: the array column holds any of the values.
    HasAny,
    /// `param_min=`, `param_max=`: inclusive bounds; a session without a value never matches.
    Range,
    /// `param=true|false`: the column is non-zero (or zero).
    NonZero,
    /// `param=text`: the column contains the text, ignoring case.
    Contains,
    /// `param=text`: the (masked) contact contains the text, ignoring case; or the text is a
    /// full phone number or email address whose keyed pseudonym is the session's.
    Contact,
}

/// One filter on a column (or a fixed expression over columns) of `sessions`.
#[derive(Debug, PartialEq)]
pub struct FilterSpec {
    pub param: &'static str,
    /// SQL over `sessions` columns; a constant of this file, never built from input.
    pub column: &'static str,
    pub kind: FilterKind,
    /// The closed list of values an `EqualsAny` filter takes (empty: any value). A value is
    /// accepted in its snake_case or display form, in any case, and stored values are always
    /// in the canonical form listed here.
    pub allowed: &'static [&'static str],
    pub doc: &'static str,
}

const fn filter(
    param: &'static str,
    column: &'static str,
    kind: FilterKind,
    doc: &'static str,
) -> FilterSpec {
    FilterSpec {
        param,
        column,
        kind,
        allowed: &[],
        doc,
    }
}

/// An `EqualsAny` filter over a column that only holds the `allowed` values.
const fn closed(
    param: &'static str,
    column: &'static str,
    allowed: &'static [&'static str],
    doc: &'static str,
) -> FilterSpec {
    FilterSpec {
        param,
        column,
        kind: EqualsAny,
        allowed,
        doc,
    }
}

use FilterKind::*;

/// Whether the session has an ERROR-or-worse log record (severity number 17 or more): one in
/// a trace the session holds (each trace's session as last resolved), or one naming the
/// session's key whose trace is in no session. Log records are tied to sessions when read,
/// like this, never by the sessionizer, so the answer holds whichever arrived first.
macro_rules! errors_logged {
    () => {
        "(session_id IN (SELECT argMax(session_id, revision) FROM trace_sessions \
         WHERE trace_id IN (SELECT trace_id FROM logs WHERE severity_number >= 17) GROUP BY trace_id) \
         OR session_id IN (SELECT session_key FROM logs WHERE severity_number >= 17 AND session_key != '' \
         AND trace_id NOT IN (SELECT trace_id FROM trace_sessions \
         WHERE trace_id IN (SELECT trace_id FROM logs WHERE severity_number >= 17))))"
    };
}

pub const FILTERS: &[FilterSpec] = &[
    filter(
        "environment",
        "environment",
        EqualsAny,
        "deployment environment",
    ),
    filter(
        "channel",
        "channel",
        EqualsAny,
        "voice, chat, web_chat, whatsapp, sms, ...",
    ),
    closed(
        "direction",
        "direction",
        DIRECTIONS,
        "inbound, outbound, web (any case)",
    ),
    filter("agent", "agent_name", EqualsAny, "agent name"),
    filter(
        "service",
        "service_name",
        EqualsAny,
        "service.name of the agent process",
    ),
    filter(
        "framework",
        "framework",
        EqualsAny,
        "pipecat, livekit, genai, openinference, ten, videosdk",
    ),
    filter(
        "handoff_target",
        "handoff_target",
        EqualsAny,
        "who the conversation was handed to",
    ),
    filter(
        "model",
        "models",
        HasAny,
        "an LLM model used in the session",
    ),
    filter("session", "session_id", Contains, "part of the session id"),
    filter(
        "duration_ms",
        "duration_ms",
        Range,
        "session duration in milliseconds",
    ),
    filter("turns", "turn_count", Range, "number of turns"),
    filter(
        "messages",
        "message_count",
        Range,
        "number of transcript messages",
    ),
    filter(
        "interruptions",
        "interruption_count",
        Range,
        "number of interruptions",
    ),
    filter(
        "tool_errors",
        "tool_error_count",
        Range,
        "number of failed tool calls",
    ),
    filter(
        "voice_to_voice_p50_ms",
        "voice_to_voice_p50_ms",
        Range,
        "median voice-to-voice latency of the session (ms)",
    ),
    filter(
        "voice_to_voice_p95_ms",
        "voice_to_voice_p95_ms",
        Range,
        "95th percentile voice-to-voice latency of the session (ms)",
    ),
    filter(
        "llm_ttft_p50_ms",
        "llm_ttft_p50_ms",
        Range,
        "median LLM time to first token (ms)",
    ),
    filter(
        "has_interruptions",
        "interruption_count",
        NonZero,
        "the user interrupted the agent",
    ),
    filter(
        "has_tool_errors",
        "tool_error_count",
        NonZero,
        "a tool call failed",
    ),
    filter(
        "has_errors",
        "error_span_count",
        NonZero,
        "a span of the session failed",
    ),
    filter(
        "has_errors_logged",
        errors_logged!(),
        NonZero,
        "the agent logged an ERROR-or-worse record (OTLP logs) during the session",
    ),
    filter(
        "has_handoff",
        "length(handoff_target)",
        NonZero,
        "the conversation was handed off",
    ),
    closed(
        "state",
        "state",
        STATES,
        "OPEN, ACTIVE, AWAITING_USER, PROCESSING, WITH_AGENT, RESOLVED, EXPIRED (any case)",
    ),
    closed(
        "outcome",
        "outcome",
        OUTCOMES,
        "In Progress, Success, Skill Error, Handoff, ... (README, Session semantics); \
         display or snake_case form (skill_error), any case",
    ),
    closed(
        "call_status",
        "call_status",
        CALL_STATUSES,
        "Queued, Ringing, Active, Completed, Failed, Declined, Missed (any case)",
    ),
    closed(
        "ended_reason",
        "ended_reason",
        ENDED_REASONS,
        "user_hangup, agent_hangup, transfer, inactivity, max_duration, error, voicemail; \
         snake_case or display form (User Hangup), any case",
    ),
    filter("intent", "intent", EqualsAny, "classified intent"),
    filter("skill", "skills", HasAny, "a skill (tool) invoked"),
    filter("flow", "flow", EqualsAny, "flow name"),
    filter("node", "node", EqualsAny, "current flow node"),
    filter(
        "detected_issue",
        // `error_logged` comes from the log records when read (see `errors_logged!`).
        concat!(
            "if(",
            errors_logged!(),
            ", arrayPushBack(detected_issues, 'error_logged'), detected_issues)"
        ),
        HasAny,
        "a detected-issue tag, e.g. slow_turn, tool_error, error_logged",
    ),
    filter("cost_usd", "cost_usd", Range, "session cost in US dollars"),
    filter("feedback", "feedback", EqualsAny, "up or down"),
    filter("sentiment", "sentiment", EqualsAny, "post-call sentiment"),
    filter("topic", "topic", EqualsAny, "post-call topic"),
    filter("campaign", "campaign", EqualsAny, "outbound campaign"),
    filter(
        "contact",
        "contact",
        Contact,
        "part of the masked contact (e.g. its last digits), or the full phone number or email \
         address, matched by its keyed pseudonym",
    ),
    filter("user", "user_name", EqualsAny, "the end user's pseudonym"),
    filter("confidence", "confidence", Range, "answer confidence, 0..1"),
];

/// The value a request gave for one filter.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Any(Vec<String>),
    Range { min: Option<f64>, max: Option<f64> },
    Bool(bool),
    Text(String),
}

/// Which sessions: every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFilter {
    /// Sessions that started at or after this instant.
    pub from_unix_nano: Option<u64>,
    /// Sessions that started before this instant.
    pub to_unix_nano: Option<u64>,
    pub columns: Vec<(&'static FilterSpec, FilterValue)>,
    /// A span with any of these names is part of the session.
    pub span_names: Vec<String>,
    /// Some transcript message contains this text, ignoring case; or it is the full contact
    /// of the session.
    pub text: Option<String>,
    /// Carries any of these labels.
    pub labels: Vec<String>,
    pub flagged: Option<bool>,
}

/// The filter parameters shared by the list, the export and the pages.
pub fn session_filter(p: &mut Params, now_unix_seconds: u64) -> Result<SessionFilter, QueryError> {
    let mut filter = SessionFilter {
        from_unix_nano: p.instant("from", now_unix_seconds)?,
        to_unix_nano: p.instant("to", now_unix_seconds)?,
        span_names: p.many("span_name")?,
        labels: p.many("label")?,
        flagged: p.bool("flagged")?,
        ..Default::default()
    };
    if let (Some(from), Some(to)) = (filter.from_unix_nano, filter.to_unix_nano) {
        if from >= to {
            return Err(QueryError::new("to", "must be later than from"));
        }
    }
    if let Some(q) = p.one("q")? {
        if q.trim().is_empty() {
            return Err(QueryError::new("q", "empty search text"));
        }
        filter.text = Some(q);
    }
    for spec in FILTERS {
        let value = match spec.kind {
            FilterKind::EqualsAny | FilterKind::HasAny => {
                let values = p.many(spec.param)?;
                let values = if spec.allowed.is_empty() {
                    values
                } else {
                    values
                        .iter()
                        .map(|v| canonical(spec, v))
                        .collect::<Result<_, _>>()?
                };
                (!values.is_empty()).then_some(FilterValue::Any(values))
            }
            FilterKind::Range => {
                let min_name = format!("{}_min", spec.param);
                let max_name = format!("{}_max", spec.param);
                let min = p.number(&min_name)?;
                let max = p.number(&max_name)?;
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        return Err(QueryError::new(
                            max_name,
                            format!("{hi} is below {min_name} = {lo}"),
                        ));
                    }
                }
                (min.is_some() || max.is_some()).then_some(FilterValue::Range { min, max })
            }
            FilterKind::NonZero => p.bool(spec.param)?.map(FilterValue::Bool),
            FilterKind::Contains | FilterKind::Contact => match p.one(spec.param)? {
                Some(text) if text.trim().is_empty() => {
                    return Err(QueryError::new(spec.param, "empty text"))
                }
                other => other.map(FilterValue::Text),
            },
        };
        if let Some(value) = value {
            filter.columns.push((spec, value));
        }
    }
    Ok(filter)
}

/// The stored form of a value of a closed filter, or an error naming the allowed values.
fn canonical(spec: &FilterSpec, value: &str) -> Result<String, QueryError> {
    closed_value(value, spec.allowed)
        .map(str::to_owned)
        .ok_or_else(|| {
            QueryError::new(
                spec.param,
                format!(
                    "{value:?} is not one of {} (snake_case or display form, any case)",
                    spec.allowed.join(", ")
                ),
            )
        })
}
