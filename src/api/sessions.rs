//! JSON views of the conversation list and of one session's summary.

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::conversation::{SessionView, TurnRow};
use crate::store::{Annotations, SessionDetail};
use crate::timefmt::rfc3339;

/// Where to read more about a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    pub summary: String,
    pub transcript: String,
    pub timeline: String,
    /// The page a person reads.
    pub page: String,
}

impl Links {
    pub fn of(session_id: &str) -> Links {
        let id = percent_encode(session_id);
        Links {
            summary: format!("/v1/sessions/{id}"),
            transcript: format!("/v1/sessions/{id}/transcript"),
            timeline: format!("/v1/sessions/{id}/timeline"),
            page: format!("/sessions/{id}"),
        }
    }
}

/// A path segment: everything but unreserved characters percent-encoded.
pub fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LatencySummary {
    pub voice_to_voice_p50_ms: Option<f64>,
    pub voice_to_voice_p95_ms: Option<f64>,
    pub llm_ttft_p50_ms: Option<f64>,
}

/// The reason of a flag, for a flagged session that was given one.
fn flag_reason(flagged: u8, reason: String) -> Option<String> {
    (flagged == 1 && !reason.is_empty()).then_some(reason)
}

/// One session as the API's JSON shows it: a row of the list and of a JSON export
/// ([`SessionJson::of`]) and, with what only the summary reads, `GET /v1/sessions/{id}`
/// ([`SessionJson::summary`]).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionJson {
    pub session_id: String,
    /// Summary only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_ids: Option<Vec<String>>,
    pub start_time: String,
    pub end_time: String,
    pub duration_ms: f64,
    /// The first thing the user said.
    pub preview: String,
    pub channel: String,
    pub direction: String,
    pub environment: String,
    pub framework: String,
    pub service_name: String,
    pub agent_name: String,
    pub handoff_target: String,
    pub turn_count: u32,
    pub message_count: u32,
    pub interruption_count: u32,
    pub tool_call_count: u32,
    pub tool_error_count: u32,
    /// Summary only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_count: Option<u32>,
    pub error_span_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub models: Vec<String>,
    /// The session's latency figures; the summary has `latency_ms` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySummary>,
    /// Per stage, over the session's turns (summary only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<StageLatencies>,
    // Where a session stands and how it went (README, "Session semantics").
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
    /// Masked unless `rules.mask_contacts` is off.
    pub contact: String,
    /// The end user's stable pseudonym.
    pub user_name: String,
    pub confidence: Option<f64>,
    /// Each detected issue with the turn it points at (0: the whole session); summary only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<IssueItem>>,
    pub labels: Vec<String>,
    pub flagged: bool,
    pub flag_reason: Option<String>,
    pub links: Links,
}

impl SessionJson {
    /// A row of the list and of an export.
    pub fn of(r: SessionView) -> SessionJson {
        SessionJson {
            links: Links::of(&r.session_id),
            trace_ids: None,
            start_time: rfc3339(r.start_time_unix_nano),
            end_time: rfc3339(r.end_time_unix_nano),
            duration_ms: r.duration_ms,
            preview: r.preview,
            channel: r.channel,
            direction: r.direction,
            environment: r.environment,
            framework: r.framework,
            service_name: r.service_name,
            agent_name: r.agent_name,
            handoff_target: r.handoff_target,
            turn_count: r.turn_count,
            message_count: r.message_count,
            interruption_count: r.interruption_count,
            tool_call_count: r.tool_call_count,
            tool_error_count: r.tool_error_count,
            span_count: None,
            error_span_count: r.error_span_count,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            models: r.models,
            latency: Some(LatencySummary {
                voice_to_voice_p50_ms: r.voice_to_voice_p50_ms,
                voice_to_voice_p95_ms: r.voice_to_voice_p95_ms,
                llm_ttft_p50_ms: r.llm_ttft_p50_ms,
            }),
            latency_ms: None,
            state: r.state,
            outcome: r.outcome,
            call_status: r.call_status,
            ended_reason: r.ended_reason,
            intent: r.intent,
            skills: r.skills,
            flow: r.flow,
            node: r.node,
            detected_issues: r.detected_issues,
            cost_usd: r.cost_usd,
            feedback: r.feedback,
            sentiment: r.sentiment,
            topic: r.topic,
            campaign: r.campaign,
            contact: r.contact,
            user_name: r.user_name,
            confidence: r.confidence,
            issues: None,
            labels: r.labels,
            flagged: r.flagged == 1,
            flag_reason: flag_reason(r.flagged, r.flag_reason),
            session_id: r.session_id,
        }
    }

    /// `GET /v1/sessions/{id}`, with the per-stage latency percentiles over its turns.
    pub fn summary(detail: &SessionDetail) -> SessionJson {
        let view = &detail.view;
        SessionJson {
            trace_ids: Some(view.trace_ids.clone()),
            span_count: Some(view.span_count),
            latency: None,
            latency_ms: Some(StageLatencies::of(&detail.turns)),
            issues: Some(
                detail
                    .issues
                    .iter()
                    .map(|i| IssueItem {
                        issue: i.issue.clone(),
                        turn_number: i.turn_number,
                        detail: i.detail.clone(),
                    })
                    .collect(),
            ),
            ..SessionJson::of(view.clone())
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionJson>,
    /// Pass as `cursor` (with the same filters and sort) for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Percentiles of one latency stage over a session's turns (nearest rank).
#[derive(Debug, Serialize, PartialEq, ToSchema)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    /// Nearest-rank percentiles of one stage over the turns that measured it: the same
    /// definition as the session row's percentiles ([`crate::sessionize::percentile`]).
    fn of_stage(turns: &[TurnRow], stage: fn(&TurnRow) -> Option<f64>) -> Percentiles {
        let values: Vec<f64> = turns.iter().filter_map(stage).collect();
        let at = |q| crate::sessionize::percentile(&values, q);
        Percentiles {
            count: values.len(),
            p50: at(0.5),
            p90: at(0.9),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StageLatencies {
    pub voice_to_voice: Percentiles,
    pub end_of_utterance: Percentiles,
    pub stt: Percentiles,
    pub llm_ttft: Percentiles,
    pub tts_ttfb: Percentiles,
    pub tool: Percentiles,
}

impl StageLatencies {
    pub fn of(turns: &[TurnRow]) -> StageLatencies {
        let stage = |value| Percentiles::of_stage(turns, value);
        StageLatencies {
            voice_to_voice: stage(|t| t.voice_to_voice_ms),
            end_of_utterance: stage(|t| t.end_of_utterance_ms),
            stt: stage(|t| t.stt_ms),
            llm_ttft: stage(|t| t.llm_ttft_ms),
            tts_ttfb: stage(|t| t.tts_ttfb_ms),
            tool: stage(|t| t.tool_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssueItem {
    pub issue: String,
    pub turn_number: u32,
    pub detail: String,
}

/// What a label or flag change answers: the session's marks now.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Annotations)]
pub struct AnnotationsView {
    pub session_id: String,
    pub labels: Vec<String>,
    pub flagged: bool,
    pub flag_reason: Option<String>,
}

impl AnnotationsView {
    pub fn new(session_id: &str, a: Annotations) -> AnnotationsView {
        AnnotationsView {
            session_id: session_id.to_owned(),
            labels: a.labels,
            flagged: a.flagged == 1,
            flag_reason: flag_reason(a.flagged, a.flag_reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_and_the_summary_show_their_own_fields() {
        let view = SessionView {
            session_id: "s1".into(),
            trace_ids: vec!["t1".into()],
            span_count: 4,
            ..Default::default()
        };
        let keys = |json: SessionJson| match serde_json::to_value(json) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect::<Vec<_>>(),
            other => panic!("not an object: {other:?}"),
        };
        let row = keys(SessionJson::of(view.clone()));
        let detail = SessionDetail {
            session: Default::default(),
            view,
            issues: vec![],
            turns: vec![],
            messages: vec![],
            tool_calls: vec![],
            interruptions: vec![],
            answers: vec![],
            citations: vec![],
        };
        let summary = keys(SessionJson::summary(&detail));
        let only_summary = ["trace_ids", "span_count", "latency_ms", "issues"];
        for key in only_summary {
            assert!(summary.iter().any(|k| k == key), "{key}");
            assert!(!row.iter().any(|k| k == key), "{key}");
        }
        assert!(row.iter().any(|k| k == "latency"));
        assert!(!summary.iter().any(|k| k == "latency"));
        assert_eq!(row.len() + only_summary.len() - 1, summary.len());
    }

    #[test]
    fn links_escape_ids() {
        assert_eq!(Links::of("a b/c").page, "/sessions/a%20b%2Fc");
    }
}
