//! JSON views of the conversation list and of one session's summary.

use serde::Serialize;

use crate::store::{Annotations, SessionDetail, SessionListRow, StagePercentiles};
use crate::timefmt::rfc3339;

/// Where to read more about a session.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct LatencySummary {
    pub voice_to_voice_p50_ms: Option<f64>,
    pub voice_to_voice_p95_ms: Option<f64>,
    pub llm_ttft_p50_ms: Option<f64>,
}

/// One row of the list and of an export.
/// Where a session stands and how it went (README, "Session semantics").
#[derive(Debug, Serialize)]
pub struct Semantics {
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
}

impl Semantics {
    fn of_row(r: &SessionListRow) -> Semantics {
        Semantics {
            state: r.state.clone(),
            outcome: r.outcome.clone(),
            call_status: r.call_status.clone(),
            ended_reason: r.ended_reason.clone(),
            intent: r.intent.clone(),
            skills: r.skills.clone(),
            flow: r.flow.clone(),
            node: r.node.clone(),
            detected_issues: r.detected_issues.clone(),
            cost_usd: r.cost_usd,
            feedback: r.feedback.clone(),
            sentiment: r.sentiment.clone(),
            topic: r.topic.clone(),
            campaign: r.campaign.clone(),
            contact: r.contact.clone(),
            user_name: r.user_name.clone(),
            confidence: r.confidence,
        }
    }

    fn of_detail(d: &SessionDetail) -> Semantics {
        let (s, status) = (&d.session, &d.status);
        Semantics {
            state: status.state.clone(),
            outcome: status.outcome.clone(),
            call_status: status.call_status.clone(),
            ended_reason: status.ended_reason.clone(),
            intent: s.intent.clone(),
            skills: s.skills.clone(),
            flow: s.flow.clone(),
            node: s.node.clone(),
            detected_issues: s.detected_issues.clone(),
            cost_usd: s.cost_usd,
            feedback: s.feedback.clone(),
            sentiment: s.sentiment.clone(),
            topic: s.topic.clone(),
            campaign: s.campaign.clone(),
            contact: s.contact.clone(),
            user_name: s.user_name.clone(),
            confidence: s.confidence,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SessionItem {
    pub session_id: String,
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
    pub error_span_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub models: Vec<String>,
    pub latency: LatencySummary,
    #[serde(flatten)]
    pub semantics: Semantics,
    pub labels: Vec<String>,
    pub flagged: bool,
    pub flag_reason: Option<String>,
    pub links: Links,
}

impl From<SessionListRow> for SessionItem {
    fn from(r: SessionListRow) -> SessionItem {
        SessionItem {
            semantics: Semantics::of_row(&r),
            links: Links::of(&r.session_id),
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
            error_span_count: r.error_span_count,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            models: r.models,
            latency: LatencySummary {
                voice_to_voice_p50_ms: r.voice_to_voice_p50_ms,
                voice_to_voice_p95_ms: r.voice_to_voice_p95_ms,
                llm_ttft_p50_ms: r.llm_ttft_p50_ms,
            },
            labels: r.labels,
            flagged: r.flagged == 1,
            flag_reason: (r.flagged == 1 && !r.flag_reason.is_empty()).then_some(r.flag_reason),
            session_id: r.session_id,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionItem>,
    /// Pass as `cursor` (with the same filters and sort) for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Percentiles of one latency stage over a session's turns (nearest rank).
#[derive(Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    /// The stored stage's percentiles; none counted if the store did not return it.
    fn of_stage(stored: &[StagePercentiles], stage: &str) -> Percentiles {
        let found = stored.iter().find(|p| p.stage == stage);
        Percentiles {
            count: found.map_or(0, |p| usize::try_from(p.count).unwrap_or(usize::MAX)),
            p50: found.and_then(|p| p.p50),
            p90: found.and_then(|p| p.p90),
            p95: found.and_then(|p| p.p95),
            max: found.and_then(|p| p.max),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StageLatencies {
    pub voice_to_voice: Percentiles,
    pub end_of_utterance: Percentiles,
    pub stt: Percentiles,
    pub llm_ttft: Percentiles,
    pub tts_ttfb: Percentiles,
    pub tool: Percentiles,
}

impl StageLatencies {
    pub fn of(stored: &[StagePercentiles]) -> StageLatencies {
        let stage = |name: &str| Percentiles::of_stage(stored, name);
        StageLatencies {
            voice_to_voice: stage("voice_to_voice"),
            end_of_utterance: stage("end_of_utterance"),
            stt: stage("stt"),
            llm_ttft: stage("llm_ttft"),
            tts_ttfb: stage("tts_ttfb"),
            tool: stage("tool"),
        }
    }
}

/// `GET /v1/sessions/{id}`.
#[derive(Debug, Serialize)]
pub struct SessionSummary {
    pub session_id: String,
    pub trace_ids: Vec<String>,
    pub start_time: String,
    pub end_time: String,
    pub duration_ms: f64,
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
    pub span_count: u32,
    pub error_span_count: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub models: Vec<String>,
    /// Per stage, over the session's turns.
    pub latency_ms: StageLatencies,
    #[serde(flatten)]
    pub semantics: Semantics,
    /// Each detected issue with the turn it points at (0: the whole session).
    pub issues: Vec<IssueItem>,
    pub labels: Vec<String>,
    pub flagged: bool,
    pub flag_reason: Option<String>,
    pub links: Links,
}

impl SessionSummary {
    pub fn new(
        detail: &SessionDetail,
        latency: &[StagePercentiles],
        annotations: Annotations,
    ) -> SessionSummary {
        let s = &detail.session;
        SessionSummary {
            session_id: s.session_id.clone(),
            trace_ids: s.trace_ids.clone(),
            start_time: rfc3339(s.start_time_unix_nano),
            end_time: rfc3339(s.end_time_unix_nano),
            duration_ms: s.duration_ms,
            preview: s.preview.clone(),
            channel: s.channel.clone(),
            direction: s.direction.clone(),
            environment: s.environment.clone(),
            framework: s.framework.clone(),
            service_name: s.service_name.clone(),
            agent_name: s.agent_name.clone(),
            handoff_target: s.handoff_target.clone(),
            turn_count: s.turn_count,
            message_count: s.message_count,
            interruption_count: s.interruption_count,
            tool_call_count: s.tool_call_count,
            tool_error_count: s.tool_error_count,
            span_count: s.span_count,
            error_span_count: s.error_span_count,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            models: s.models.clone(),
            latency_ms: StageLatencies::of(latency),
            semantics: Semantics::of_detail(detail),
            issues: detail
                .issues
                .iter()
                .map(|i| IssueItem {
                    issue: i.issue.clone(),
                    turn_number: i.turn_number,
                    detail: i.detail.clone(),
                })
                .collect(),
            labels: annotations.labels,
            flagged: annotations.flagged == 1,
            flag_reason: (annotations.flagged == 1 && !annotations.flag_reason.is_empty())
                .then_some(annotations.flag_reason),
            links: Links::of(&s.session_id),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IssueItem {
    pub issue: String,
    pub turn_number: u32,
    pub detail: String,
}

/// What a label or flag change answers: the session's marks now.
#[derive(Debug, Serialize)]
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
            flag_reason: (a.flagged == 1 && !a.flag_reason.is_empty()).then_some(a.flag_reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_escape_ids() {
        assert_eq!(Links::of("a b/c").page, "/sessions/a%20b%2Fc");
    }
}
