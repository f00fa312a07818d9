//! The audit timeline of one session: what happened, step by step (turns, messages, tool
//! calls with their inputs, outputs, errors and retries, interruptions, handoffs, failed
//! spans), and the session's spans as a waterfall.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::conventions;
use crate::model::conversation::speaker;
use crate::model::{Span, SpanId};
use crate::store::SessionDetail;
use crate::timefmt::{offset, rfc3339};

use super::transcript::{latencies, Latencies};

/// Waterfalls longer than this are cut (the response says so).
pub const MAX_SPANS: usize = 5000;

#[derive(Debug, Serialize)]
pub struct Timeline {
    pub session_id: String,
    pub start_time: String,
    pub duration_ms: f64,
    pub steps: Vec<Step>,
    pub spans: Vec<WaterfallSpan>,
    /// Set when the session had more than MAX_SPANS spans and the waterfall is cut.
    pub spans_truncated: bool,
}

#[derive(Debug, Serialize)]
pub struct Step {
    /// `mm:ss.mmm` from the session start.
    pub at: String,
    pub offset_ms: f64,
    pub turn_number: Option<u32>,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Serialize)]
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
}

#[derive(Debug, Serialize)]
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
}

fn ms_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e6
}

pub fn build(detail: &SessionDetail, spans: &[Span]) -> Timeline {
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
    let tool_spans: HashSet<&str> = detail
        .tool_calls
        .iter()
        .map(|c| c.span_id.as_str())
        .collect();
    let turn_at = |time: u64| {
        detail
            .turns
            .iter()
            .rev()
            .find(|t| t.start_time_unix_nano <= time)
            .map(|t| t.turn_number)
    };
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
    // One pass over the spans in start order: intent changes, handoffs, failed spans.
    let mut last_intent: Option<(String, String, String)> = None;
    let mut by_start: Vec<&Span> = spans.iter().collect();
    by_start.sort_by_key(|s| (s.start_unix_nano, s.span_id));
    for span in by_start {
        let facts = conventions::read(span);
        let stated = &facts.session;
        if stated.intent.is_some() || stated.flow.is_some() || stated.node.is_some() {
            let now = (
                stated.intent.clone().unwrap_or_default(),
                stated.flow.clone().unwrap_or_default(),
                stated.node.clone().unwrap_or_default(),
            );
            if last_intent.as_ref() != Some(&now) {
                steps.push((
                    span.start_unix_nano,
                    0,
                    turn_at(span.start_unix_nano),
                    What::Intent {
                        intent: now.0.clone(),
                        flow: now.1.clone(),
                        node: now.2.clone(),
                    },
                ));
                last_intent = Some(now);
            }
        }
        if let Some(target) = facts.handoff_target {
            steps.push((
                span.start_unix_nano,
                4,
                turn_at(span.start_unix_nano),
                What::Handoff {
                    target,
                    span_name: span.name.clone(),
                },
            ));
        }
        if span.is_error() && !tool_spans.contains(span.span_id.to_hex().as_str()) {
            steps.push((
                span.end_unix_nano,
                5,
                turn_at(span.start_unix_nano),
                What::Error {
                    span_name: span.name.clone(),
                    message: span.status_message.clone(),
                },
            ));
        }
    }
    steps.sort_by_key(|(time, order, _, _)| (*time, *order));
    let (spans, spans_truncated) = waterfall(spans, start);
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
        spans,
        spans_truncated,
    }
}

/// Spans depth-first, children after their parent ordered by start; orphans (parent not
/// stored) are roots. Cycles cannot recurse: each span is placed once.
fn waterfall(spans: &[Span], session_start: u64) -> (Vec<WaterfallSpan>, bool) {
    let ids: HashSet<(_, SpanId)> = spans.iter().map(|s| (s.trace_id, s.span_id)).collect();
    let mut children: HashMap<(_, SpanId), Vec<&Span>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent_span_id {
            Some(parent) if ids.contains(&(span.trace_id, parent)) && parent != span.span_id => {
                children
                    .entry((span.trace_id, parent))
                    .or_default()
                    .push(span)
            }
            _ => roots.push(span),
        }
    }
    let by_start =
        |a: &&Span, b: &&Span| (a.start_unix_nano, a.span_id).cmp(&(b.start_unix_nano, b.span_id));
    roots.sort_by(by_start);
    for list in children.values_mut() {
        list.sort_by(by_start);
    }
    // Roots first; then whatever a parent cycle kept from being reached, as roots too.
    let mut all: Vec<&Span> = spans.iter().collect();
    all.sort_by(by_start);
    let mut out = Vec::new();
    let mut placed = HashSet::new();
    let mut stack: Vec<(&Span, u32)> = Vec::new();
    for start in roots.into_iter().chain(all) {
        stack.push((start, 0));
        while let Some((span, depth)) = stack.pop() {
            if !placed.insert((span.trace_id, span.span_id)) {
                continue;
            }
            if out.len() == MAX_SPANS {
                return (out, true);
            }
            out.push(WaterfallSpan {
                trace_id: span.trace_id.to_hex(),
                span_id: span.span_id.to_hex(),
                parent_span_id: span.parent_span_id.map(|p| p.to_hex()),
                name: span.name.clone(),
                kind: span.kind.as_str().to_owned(),
                service_name: span.service_name().to_owned(),
                depth,
                offset_ms: ms_between(session_start, span.start_unix_nano),
                duration_ms: span.duration_nanos() as f64 / 1e6,
                status: span.status_code.as_str().to_owned(),
                status_message: span.status_message.clone(),
            });
            if let Some(kids) = children.get(&(span.trace_id, span.span_id)) {
                stack.extend(kids.iter().rev().map(|k| (*k, depth.saturating_add(1))));
            }
        }
    }
    (out, false)
}
