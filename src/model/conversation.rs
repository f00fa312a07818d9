//! Conversation rows derived from spans. Each struct is one table's row: the clickhouse crate
//! builds INSERT and SELECT column lists from the field names, so the struct is the only
//! place a column list is written down.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// Who said a transcript message.
pub mod speaker {
    pub const USER: &str = "user";
    pub const AGENT: &str = "agent";
    pub const TOOL: &str = "tool";
    pub const HUMAN_AGENT: &str = "human_agent";
}

#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct SessionRow {
    pub session_id: String,
    pub revision: u64,
    pub deleted: u8,
    pub start_time: u32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub duration_ms: f64,
    pub trace_ids: Vec<String>,
    pub framework: String,
    pub service_name: String,
    pub agent_name: String,
    pub environment: String,
    pub channel: String,
    pub direction: String,
    pub handoff_target: String,
    pub preview: String,
    pub turn_count: u32,
    pub message_count: u32,
    pub interruption_count: u32,
    pub tool_call_count: u32,
    pub tool_error_count: u32,
    pub span_count: u32,
    pub error_span_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub models: Vec<String>,
    pub voice_to_voice_p50_ms: Option<f64>,
    pub voice_to_voice_p95_ms: Option<f64>,
    pub llm_ttft_p50_ms: Option<f64>,
    pub updated_at: u32,
    // Session semantics (migration 3). `derived_*` are as of the last span; ALIAS columns
    // of the table turn them into state / outcome / call_status / ended_reason with the
    // clock (expiry).
    pub derived_state: String,
    pub ended: u8,
    pub last_activity_unix_nano: u64,
    pub expires_at: u32,
    pub ended_outcome: String,
    pub outcome_explicit: u8,
    pub derived_call_status: String,
    pub derived_ended_reason: String,
    pub intent: String,
    pub skills: Vec<String>,
    pub flow: String,
    pub node: String,
    pub agents: Vec<String>,
    pub detected_issues: Vec<String>,
    pub cost_usd: f64,
    pub llm_cost_usd: f64,
    pub stt_cost_usd: f64,
    pub tts_cost_usd: f64,
    pub user_message_count: u32,
    pub campaign: String,
    pub contact: String,
    pub user_name: String,
    pub user_hash: String,
    pub feedback: String,
    pub confidence: Option<f64>,
    pub sentiment: String,
    pub topic: String,
    pub summary: String,
    pub extracted_data: String,
    pub recording_url: String,
}

/// A session as readers see it (the list, the summary, the export, the pages): the columns
/// they show, the ALIAS columns that finish the semantics with the clock (defined in the
/// schema), and the labels and flag readers put on it.
#[derive(Debug, Clone, Default, PartialEq, Row, Serialize, Deserialize)]
pub struct SessionView {
    pub session_id: String,
    pub trace_ids: Vec<String>,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub duration_ms: f64,
    pub framework: String,
    pub service_name: String,
    pub agent_name: String,
    pub environment: String,
    pub channel: String,
    pub direction: String,
    pub handoff_target: String,
    pub preview: String,
    pub turn_count: u32,
    pub message_count: u32,
    pub interruption_count: u32,
    pub tool_call_count: u32,
    pub tool_error_count: u32,
    pub span_count: u32,
    pub error_span_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub models: Vec<String>,
    pub voice_to_voice_p50_ms: Option<f64>,
    pub voice_to_voice_p95_ms: Option<f64>,
    pub llm_ttft_p50_ms: Option<f64>,
    pub state: String,
    pub outcome: String,
    pub call_status: String,
    pub ended_reason: String,
    pub intent: String,
    pub skills: Vec<String>,
    pub flow: String,
    pub node: String,
    pub detected_issues: Vec<String>,
    pub cost_usd: f64,
    pub feedback: String,
    pub sentiment: String,
    pub topic: String,
    pub campaign: String,
    pub contact: String,
    pub user_name: String,
    pub confidence: Option<f64>,
    pub labels: Vec<String>,
    pub flagged: u8,
    pub flag_reason: String,
}

/// A detected issue, pointing at the turn where it happened (0: the session as a whole).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct IssueRow {
    pub session_id: String,
    pub revision: u64,
    pub issue_index: u32,
    pub issue: String,
    pub turn_number: u32,
    pub time: u32,
    pub time_unix_nano: u64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TraceSessionRow {
    pub trace_id: String,
    pub session_id: String,
    pub revision: u64,
    /// The newest span stamp (`ingested_at_unix_nano`) of the trace the pass derived from.
    pub derived_through: u64,
    /// How many of the trace's spans the pass derived from.
    pub derived_spans: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct TurnRow {
    pub session_id: String,
    pub revision: u64,
    pub turn_number: u32,
    pub trace_id: String,
    pub span_id: String,
    pub start_time: u32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub framework: String,
    pub user_text: String,
    pub agent_text: String,
    pub agent_spoken_text: Option<String>,
    pub interrupted: u8,
    pub llm_provider: String,
    pub llm_model: String,
    pub stt_provider: String,
    pub stt_model: String,
    pub tts_provider: String,
    pub tts_voice: String,
    pub end_of_utterance_ms: Option<f64>,
    pub end_of_utterance_source: String,
    pub stt_ms: Option<f64>,
    pub stt_source: String,
    pub llm_ttft_ms: Option<f64>,
    pub llm_ttft_source: String,
    pub tts_ttfb_ms: Option<f64>,
    pub tts_ttfb_source: String,
    pub tool_ms: Option<f64>,
    pub tool_source: String,
    pub voice_to_voice_ms: Option<f64>,
    pub voice_to_voice_source: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub tool_call_count: u32,
    pub tool_error_count: u32,
    pub error_count: u32,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct MessageRow {
    pub session_id: String,
    pub revision: u64,
    pub message_index: u32,
    pub turn_number: u32,
    pub time: u32,
    pub time_unix_nano: u64,
    pub speaker: String,
    pub text: String,
    pub interrupted: u8,
    pub spoken_text: Option<String>,
    pub tool_name: String,
    pub trace_id: String,
    pub span_id: String,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct ToolCallRow {
    pub session_id: String,
    pub revision: u64,
    pub call_index: u32,
    pub turn_number: u32,
    pub start_time: u32,
    pub start_time_unix_nano: u64,
    pub duration_ms: f64,
    pub name: String,
    pub call_id: String,
    pub arguments: String,
    pub result: String,
    pub is_error: u8,
    pub error_message: String,
    pub trace_id: String,
    pub span_id: String,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct InterruptionRow {
    pub session_id: String,
    pub revision: u64,
    pub interruption_index: u32,
    pub turn_number: u32,
    pub time: u32,
    pub time_unix_nano: u64,
    pub agent_text: String,
    pub spoken_text: Option<String>,
    pub signal: String,
    pub trace_id: String,
    pub span_id: String,
}

/// What a timeline event is.
pub mod event_kind {
    /// The intent, flow or node a span stated changed.
    pub const INTENT: &str = "intent";
    pub const HANDOFF: &str = "handoff";
    /// A failed span that is not a tool call (those show as failed tool calls).
    pub const ERROR: &str = "error";
}

/// A step of the audit timeline read from one span: an intent change, a handoff or a failed
/// span. Only the fields of its kind are set.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct TimelineEventRow {
    pub session_id: String,
    pub revision: u64,
    pub event_index: u32,
    pub kind: String,
    /// The turn under way when the span started; 0 before the first turn.
    pub turn_number: u32,
    pub time: u32,
    /// The span's start; its end for a failed span.
    pub time_unix_nano: u64,
    pub span_name: String,
    pub intent: String,
    pub flow: String,
    pub node: String,
    pub handoff_target: String,
    pub status_message: String,
    pub trace_id: String,
    pub span_id: String,
}

/// One answer of the agent (a turn with a reply) and what it stood on: the question, the
/// answer's confidence and feedback, and how many documents it cites (listed in
/// [`CitationRow`]s of the same turn).
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct AnswerRow {
    pub session_id: String,
    pub revision: u64,
    pub turn_number: u32,
    pub time: u32,
    pub time_unix_nano: u64,
    /// Who answered: the session's agent name, else its service name.
    pub agent: String,
    pub question: String,
    /// The question lower-cased with punctuation and extra spaces removed, for grouping.
    pub question_key: String,
    pub answer: String,
    pub confidence: Option<f64>,
    /// `up`, `down` or empty.
    pub feedback: String,
    pub citation_count: u32,
    pub trace_id: String,
    pub span_id: String,
}

/// A document an answer stood on.
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct CitationRow {
    pub session_id: String,
    pub revision: u64,
    pub citation_index: u32,
    pub turn_number: u32,
    pub time: u32,
    /// `cited`, `reranked` or `retrieved`: how the convention named these documents.
    pub stage: String,
    pub document_id: String,
    pub title: String,
    pub url: String,
    pub score: Option<f64>,
    /// The start of the document's content.
    pub snippet: String,
    pub trace_id: String,
    pub span_id: String,
}

/// The keyed pseudonym of a session's contact (empty when it has none), which a search by
/// the full contact matches; the contact itself is not stored.
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct ContactRow {
    pub session_id: String,
    pub revision: u64,
    pub time: u32,
    pub contact_pseudonym: String,
}

/// Everything one session derives to, written together at one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedSession {
    pub session: SessionRow,
    pub turns: Vec<TurnRow>,
    pub messages: Vec<MessageRow>,
    pub tool_calls: Vec<ToolCallRow>,
    pub interruptions: Vec<InterruptionRow>,
    pub issues: Vec<IssueRow>,
    pub timeline_events: Vec<TimelineEventRow>,
    pub answers: Vec<AnswerRow>,
    pub citations: Vec<CitationRow>,
    pub contact: ContactRow,
}

/// Seconds since the epoch, for `DateTime` columns (saturating: ClickHouse's DateTime ends in 2106).
pub fn unix_seconds(unix_nano: u64) -> u32 {
    u32::try_from(unix_nano / 1_000_000_000).unwrap_or(u32::MAX)
}
