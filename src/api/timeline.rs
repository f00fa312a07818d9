//! The audit timeline of one session: what happened, step by step (turns, messages, tool
//! calls with their inputs, outputs, errors and retries, interruptions, handoffs, failed
//! spans, the agent's log lines), and the session's spans as a waterfall. Every step but the
//! log lines is a row the sessionizer stored; log lines are the session's log records, each
//! at its time and in the turn it falls in. The waterfall is the first spans by start, as
//! many as the store was asked for.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::conversation::{event_kind, speaker, TimelineEventRow};
use crate::sessionize::logs::{turn_at, turn_spans};
use crate::store::{LogLine, SessionDetail, WaterfallRow};
use crate::timefmt::{offset, rfc3339};

use super::logs::severity_label;
use super::transcript::{latencies, Latencies};

/// Waterfalls longer than this are cut (the response says so).
pub const MAX_SPANS: u64 = 5000;
/// Log lines past this many are left out (the response says so; `/logs` pages through all).
pub const MAX_LOG_LINES: u64 = 5000;

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub session_id: String,
    pub start_time: String,
    pub duration_ms: f64,
    pub steps: Vec<Step>,
    pub spans: Vec<WaterfallSpan>,
    /// Set when the session had more than MAX_SPANS spans and the waterfall is cut.
    pub spans_truncated: bool,
    /// Set when the session had more than MAX_LOG_LINES log records and the later ones are
    /// not among the steps.
    pub logs_truncated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Step {
    /// `mm:ss.mmm` from the session start.
    pub at: String,
    pub offset_ms: f64,
    pub turn_number: Option<u32>,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    Turn {
        interrupted: bool,
        llm_model: String,
        latency_ms: Latencies,
    },
    Message {
        speaker: String,
        text: String,
        interrupted: bool,
        spoken_text: Option<String>,
    },
    ToolCall {
        name: String,
        call_id: String,
        arguments: String,
        result: String,
        is_error: bool,
        error_message: String,
        duration_ms: f64,
        /// 1 for the first call of this tool in the turn, 2 for its first retry, ...
        attempt: u32,
        /// Another call of the same tool in the same turn failed before this one.
        retry: bool,
    },
    Interruption {
        agent_text: String,
        spoken_text: Option<String>,
        signal: String,
    },
    Handoff {
        target: String,
        span_name: String,
    },
    /// An intent, flow or node a span stated (each change once).
    Intent {
        intent: String,
        flow: String,
        node: String,
    },
    /// A detected issue, at the turn it points to.
    Issue {
        issue: String,
        detail: String,
    },
    Error {
        span_name: String,
        message: String,
    },
    /// A log record the agent wrote, in the span it was written in.
    Log {
        severity_number: u8,
        severity: String,
        body: String,
        event_name: String,
        trace_id: String,
        span_id: String,
        span_name: String,
    },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WaterfallSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub service_name: String,
    /// Nesting under its ancestors within the session (0 = a root).
    pub depth: u32,
    pub offset_ms: f64,
    pub duration_ms: f64,
    pub status: String,
    pub status_message: String,
    /// The span's attributes, as stored.
    pub attributes: BTreeMap<String, String>,
    pub events: Vec<SpanEvent>,
}

/// An event recorded on a span.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpanEvent {
    pub name: String,
    pub offset_ms: f64,
    /// Its attributes as a JSON object, as stored.
    pub attributes: String,
}

fn ms_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e6
}

/// What the timeline is built from besides the session's own rows.
pub struct Parts<'a> {
    pub events: &'a [TimelineEventRow],
    pub spans: &'a [WaterfallRow],
    pub spans_truncated: bool,
    pub logs: &'a [LogLine],
    pub logs_truncated: bool,
}

pub fn build(detail: &SessionDetail, parts: Parts<'_>) -> Timeline {
    let Parts {
        events,
        spans,
        spans_truncated,
        logs,
        logs_truncated,
    } = parts;
    let s = &detail.session;
    let start = s.start_time_unix_nano;
    // (time, order within the same instant, step)
    let mut steps: Vec<(u64, u8, Option<u32>, What)> = Vec::new();
    for t in &detail.turns {
        steps.push((
            t.start_time_unix_nano,
            0,
            Some(t.turn_number),
            What::Turn {
                interrupted: t.interrupted == 1,
                llm_model: t.llm_model.clone(),
                latency_ms: latencies(t),
            },
        ));
    }
    for m in detail
        .messages
        .iter()
        .filter(|m| m.speaker != speaker::TOOL)
    {
        steps.push((
            m.time_unix_nano,
            1,
            Some(m.turn_number),
            What::Message {
                speaker: m.speaker.clone(),
                text: m.text.clone(),
                interrupted: m.interrupted == 1,
                spoken_text: m.spoken_text.clone(),
            },
        ));
    }
    let mut attempts: HashMap<(u32, &str), (u32, bool)> = HashMap::new();
    for c in &detail.tool_calls {
        let seen = attempts
            .entry((c.turn_number, c.name.as_str()))
            .or_default();
        seen.0 += 1;
        let retry = seen.1;
        seen.1 |= c.is_error == 1;
        steps.push((
            c.start_time_unix_nano,
            2,
            Some(c.turn_number),
            What::ToolCall {
                name: c.name.clone(),
                call_id: c.call_id.clone(),
                arguments: c.arguments.clone(),
                result: c.result.clone(),
                is_error: c.is_error == 1,
                error_message: c.error_message.clone(),
                duration_ms: c.duration_ms,
                attempt: seen.0,
                retry,
            },
        ));
    }
    for i in &detail.interruptions {
        steps.push((
            i.time_unix_nano,
            3,
            Some(i.turn_number),
            What::Interruption {
                agent_text: i.agent_text.clone(),
                spoken_text: i.spoken_text.clone(),
                signal: i.signal.clone(),
            },
        ));
    }
    for issue in &detail.issues {
        steps.push((
            issue.time_unix_nano,
            6,
            (issue.turn_number > 0).then_some(issue.turn_number),
            What::Issue {
                issue: issue.issue.clone(),
                detail: issue.detail.clone(),
            },
        ));
    }
    for e in events {
        let (order, what) = match e.kind.as_str() {
            event_kind::INTENT => (
                0,
                What::Intent {
                    intent: e.intent.clone(),
                    flow: e.flow.clone(),
                    node: e.node.clone(),
                },
            ),
            event_kind::HANDOFF => (
                4,
                What::Handoff {
                    target: e.handoff_target.clone(),
                    span_name: e.span_name.clone(),
                },
            ),
            _ => (
                5,
                What::Error {
                    span_name: e.span_name.clone(),
                    message: e.status_message.clone(),
                },
            ),
        };
        steps.push((
            e.time_unix_nano,
            order,
            (e.turn_number > 0).then_some(e.turn_number),
            what,
        ));
    }
    let turns = turn_spans(&detail.turns);
    for line in logs {
        steps.push((
            line.time_unix_nano,
            7,
            turn_at(&turns, line.time_unix_nano),
            What::Log {
                severity_number: line.severity_number,
                severity: severity_label(line),
                body: line.body.clone(),
                event_name: line.event_name.clone(),
                trace_id: line.trace_id.clone(),
                span_id: line.span_id.clone(),
                span_name: line.span_name.clone(),
            },
        ));
    }
    steps.sort_by_key(|(time, order, _, _)| (*time, *order));
    Timeline {
        session_id: s.session_id.clone(),
        start_time: rfc3339(start),
        duration_ms: s.duration_ms,
        steps: steps
            .into_iter()
            .map(|(time, _, turn_number, what)| Step {
                at: offset(start, time),
                offset_ms: ms_between(start, time),
                turn_number,
                what,
            })
            .collect(),
        spans: waterfall(spans, start),
        spans_truncated,
        logs_truncated,
    }
}

/// Spans depth-first, children after their parent ordered by start; orphans (parent not
/// among these spans) are roots. Cycles cannot recurse: each span is placed once.
pub(super) fn waterfall(spans: &[WaterfallRow], session_start: u64) -> Vec<WaterfallSpan> {
    fn key(s: &WaterfallRow) -> (&str, &str) {
        (&s.trace_id, &s.span_id)
    }
    let ids: HashSet<(&str, &str)> = spans.iter().map(key).collect();
    let mut children: HashMap<(&str, &str), Vec<&WaterfallRow>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        let parent = (span.trace_id.as_str(), span.parent_span_id.as_str());
        if !span.parent_span_id.is_empty()
            && ids.contains(&parent)
            && span.parent_span_id != span.span_id
        {
            children.entry(parent).or_default().push(span);
        } else {
            roots.push(span);
        }
    }
    // The store returns them by start (ties: span id, then trace id), and so they stay.
    // Roots first; then whatever a parent cycle kept from being reached, as roots too.
    let mut out = Vec::new();
    let mut placed = HashSet::new();
    let mut stack: Vec<(&WaterfallRow, u32)> = Vec::new();
    for start in roots.into_iter().chain(spans) {
        stack.push((start, 0));
        while let Some((span, depth)) = stack.pop() {
            if !placed.insert(key(span)) {
                continue;
            }
            out.push(WaterfallSpan {
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: (!span.parent_span_id.is_empty())
                    .then(|| span.parent_span_id.clone()),
                name: span.name.clone(),
                kind: span.kind.clone(),
                service_name: span.service_name.clone(),
                depth,
                offset_ms: ms_between(session_start, span.start_time_unix_nano),
                duration_ms: span.duration_ns as f64 / 1e6,
                status: span.status_code.clone(),
                status_message: span.status_message.clone(),
                attributes: span
                    .attribute_keys
                    .iter()
                    .cloned()
                    .zip(span.attribute_values.iter().cloned())
                    .collect(),
                events: span
                    .event_names
                    .iter()
                    .zip(&span.event_times_unix_nano)
                    .zip(&span.event_attributes)
                    .map(|((name, time), attributes)| SpanEvent {
                        name: name.clone(),
                        offset_ms: ms_between(session_start, *time),
                        attributes: attributes.clone(),
                    })
                    .collect(),
            });
            if let Some(kids) = children.get(&key(span)) {
                stack.extend(kids.iter().rev().map(|k| (*k, depth.saturating_add(1))));
            }
        }
    }
    out
}
