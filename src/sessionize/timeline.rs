//! The audit timeline's steps that single spans state: each change of the intent, flow or
//! node, each handoff, and each failed span that is not a tool call. Derived here, with the
//! rest of the session, so the timeline only reads them.

use std::collections::HashSet;

use super::Node;
use crate::model::conversation::{
    event_kind, unix_seconds, TimelineEventRow, ToolCallRow, TurnRow,
};
use crate::model::Span;

/// The events in span start order (ties: span id, then trace id); each span gives its intent
/// change, then its handoff, then its failure.
pub(super) fn events(
    session_id: &str,
    revision: u64,
    nodes: &[Node],
    turns: &[TurnRow],
    tool_calls: &[ToolCallRow],
) -> Vec<TimelineEventRow> {
    let tool_spans: HashSet<&str> = tool_calls.iter().map(|c| c.span_id.as_str()).collect();
    // The turn under way at `time`: the last one started by then.
    let turn_at = |time: u64| {
        turns
            .iter()
            .rev()
            .find(|t| t.start_time_unix_nano <= time)
            .map_or(0, |t| t.turn_number)
    };
    let event = |span: &Span, kind: &str, time_unix_nano: u64| TimelineEventRow {
        session_id: session_id.to_owned(),
        revision,
        event_index: 0,
        kind: kind.to_owned(),
        turn_number: turn_at(span.start_unix_nano),
        time: unix_seconds(time_unix_nano),
        time_unix_nano,
        span_name: span.name.clone(),
        intent: String::new(),
        flow: String::new(),
        node: String::new(),
        handoff_target: String::new(),
        status_message: String::new(),
        trace_id: span.trace_id.to_hex(),
        span_id: span.span_id.to_hex(),
    };

    let mut by_start: Vec<&Node> = nodes.iter().collect();
    by_start.sort_by_key(|n| (n.span.start_unix_nano, n.span.span_id, n.span.trace_id));
    let mut out = Vec::new();
    let mut last_stated: Option<(String, String, String)> = None;
    for node in by_start {
        let (span, stated) = (node.span, &node.facts.session);
        if stated.intent.is_some() || stated.flow.is_some() || stated.node.is_some() {
            let now = (
                stated.intent.clone().unwrap_or_default(),
                stated.flow.clone().unwrap_or_default(),
                stated.node.clone().unwrap_or_default(),
            );
            if last_stated.as_ref() != Some(&now) {
                let mut row = event(span, event_kind::INTENT, span.start_unix_nano);
                (row.intent, row.flow, row.node) = now.clone();
                out.push(row);
                last_stated = Some(now);
            }
        }
        if let Some(target) = &node.facts.handoff_target {
            let mut row = event(span, event_kind::HANDOFF, span.start_unix_nano);
            row.handoff_target = target.clone();
            out.push(row);
        }
        if span.is_error() && !tool_spans.contains(span.span_id.to_hex().as_str()) {
            let mut row = event(span, event_kind::ERROR, span.end_unix_nano);
            row.status_message = span.status_message.clone();
            out.push(row);
        }
    }
    for (i, row) in out.iter_mut().enumerate() {
        row.event_index = u32::try_from(i).unwrap_or(u32::MAX);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::conventions::fixtures::span;
    use crate::model::conversation::event_kind;
    use crate::sessionize::{sessionize, Rules};

    #[test]
    fn intent_changes_handoffs_and_failed_spans_in_start_order() {
        let spans = [
            span("root").id(1).at(0, 100).build(),
            span("route")
                .id(2)
                .parent(1)
                .at(10, 20)
                .attr("convolog.intent", "billing")
                .build(),
            // The same intent again is no change.
            span("route")
                .id(3)
                .parent(1)
                .at(30, 40)
                .attr("convolog.intent", "billing")
                .build(),
            span("route")
                .id(4)
                .parent(1)
                .at(50, 60)
                .attr("convolog.intent", "billing")
                .attr("convolog.flow", "refund")
                .build(),
            span("transfer")
                .id(5)
                .parent(1)
                .at(70, 75)
                .attr("convolog.handoff.target", "human")
                .build(),
            span("db")
                .id(6)
                .parent(1)
                .at(80, 90)
                .error("timeout")
                .build(),
        ];
        let events = sessionize("s", &spans, 7, 0, &Rules::default()).timeline_events;
        let got: Vec<(u32, &str, &str, &str, &str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e.event_index,
                    e.kind.as_str(),
                    e.intent.as_str(),
                    e.flow.as_str(),
                    e.handoff_target.as_str(),
                    e.status_message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0, event_kind::INTENT, "billing", "", "", ""),
                (1, event_kind::INTENT, "billing", "refund", "", ""),
                (2, event_kind::HANDOFF, "", "", "human", ""),
                (3, event_kind::ERROR, "", "", "", "timeout"),
            ]
        );
        // A failed span is placed at its end; the others at their start. No turn here.
        let error = &events[3];
        assert_eq!(error.time_unix_nano, spans[5].end_unix_nano);
        assert_eq!((error.turn_number, error.revision), (0, 7));
        assert_eq!(events[2].span_name, "transfer");
    }
}
