//! What only the LLM context records. Pipecat traces no span for a function call: the call
//! and its result appear in the `input` of the next `llm` span. And on a barge-in Pipecat
//! trims its context to what was played, so the next `input` holds the interrupted reply as
//! heard. Every later `input` repeats the whole history, so a call is known by its id once.

use std::collections::{HashMap, HashSet};

use super::Node;
use crate::conventions::{ContextMessage, RequestedCall, Role};
use crate::model::conversation::{unix_seconds, ToolCallRow};

/// LLM calls whose context is known, in start order (the order of `nodes`).
fn llm_calls_with_context(nodes: &[Node]) -> Vec<usize> {
    (0..nodes.len())
        .filter(|&i| nodes[i].facts.role == Role::Llm && nodes[i].facts.context.is_some())
        .collect()
}

fn context<'a>(node: &'a Node) -> &'a [ContextMessage] {
    node.facts.context.as_deref().unwrap_or_default()
}

/// A call found in a context: who asked for it, and where its result was first seen.
struct Found {
    call: RequestedCall,
    requested_by: usize,
    first_seen_in: usize,
    answered: Option<Answer>,
}

struct Answer {
    seen_in: usize,
    result: String,
    error: Option<String>,
}

/// Tool calls recorded only in LLM contexts, each with the turn number of the LLM call that
/// asked for it (`turn_of_node`). Calls that a span already traces (same call id) are left
/// to that span. Timing: from the end of the asking LLM call to the start of the first one
/// that was given the result.
pub fn tool_calls(
    nodes: &[Node],
    turn_of_node: &[u32],
    session_id: &str,
    revision: u64,
) -> Vec<ToolCallRow> {
    let traced: HashSet<&str> = nodes
        .iter()
        .filter(|n| n.facts.role == Role::Tool)
        .filter_map(|n| n.facts.tool.as_ref()?.call_id.as_deref())
        .collect();
    let llm = llm_calls_with_context(nodes);
    let mut found: Vec<Found> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for (position, &i) in llm.iter().enumerate() {
        for message in context(&nodes[i]) {
            match message {
                ContextMessage::Assistant { tool_calls, .. } => {
                    for call in tool_calls {
                        let key = call_key(call);
                        if traced.contains(call.id.as_str()) || by_id.contains_key(&key) {
                            continue;
                        }
                        by_id.insert(key, found.len());
                        found.push(Found {
                            call: call.clone(),
                            // The LLM call just before the first context that records
                            // the call asked for it (possibly while also saying something).
                            requested_by: position
                                .checked_sub(1)
                                .map_or(i, |previous| llm[previous]),
                            first_seen_in: i,
                            answered: None,
                        });
                    }
                }
                ContextMessage::ToolResult {
                    call_id,
                    result: Some(result),
                    error,
                } => {
                    let Some(&index) = by_id.get(call_id) else {
                        continue;
                    };
                    let entry = &mut found[index];
                    if entry.answered.is_none() {
                        entry.answered = Some(Answer {
                            seen_in: i,
                            result: result.clone(),
                            error: error.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    found
        .into_iter()
        .map(|found| {
            let asking = nodes[found.requested_by].span;
            let start = if found.requested_by == found.first_seen_in {
                asking.start_unix_nano
            } else {
                asking.end_unix_nano
            };
            let end = nodes[found
                .answered
                .as_ref()
                .map_or(found.first_seen_in, |a| a.seen_in)]
            .span
            .start_unix_nano;
            let turn_number = match turn_of_node[found.requested_by] {
                0 => turn_of_node[found.first_seen_in],
                turn => turn,
            };
            let (result, error) = found
                .answered
                .map(|a| (a.result, a.error))
                .unwrap_or_default();
            ToolCallRow {
                session_id: session_id.to_owned(),
                revision,
                call_index: 0,
                turn_number,
                start_time: unix_seconds(start),
                start_time_unix_nano: start,
                duration_ms: end.saturating_sub(start) as f64 / 1e6,
                name: found.call.name,
                call_id: found.call.id,
                arguments: found.call.arguments,
                result,
                is_error: u8::from(error.is_some()),
                error_message: error.unwrap_or_default(),
                trace_id: asking.trace_id.to_hex(),
                span_id: asking.span_id.to_hex(),
            }
        })
        .collect()
}

/// A call is known by its id; a call without one by what it asked.
fn call_key(call: &RequestedCall) -> String {
    if call.id.is_empty() {
        format!("{}\u{0}{}", call.name, call.arguments)
    } else {
        call.id.clone()
    }
}

/// What was played of a turn's interrupted reply, from the context of the next LLM call:
/// the assistant messages that follow the reply's own context, up to the next user message.
/// None when there is no later LLM call (the call ended), the history was rewritten (fewer
/// messages than before) or the played text is the whole reply.
pub fn spoken_part(nodes: &[Node], members: &[usize]) -> Option<String> {
    let reply = members.iter().copied().rev().find(|&i| {
        nodes[i].facts.role == Role::Llm
            && nodes[i].facts.agent_text.is_some()
            && nodes[i].facts.context.is_some()
    })?;
    let generated = nodes[reply].facts.agent_text.as_deref().unwrap_or_default();
    let asked_with = context(&nodes[reply]).len();
    let reply_end = nodes[reply].span.end_unix_nano;
    let next = llm_calls_with_context(nodes)
        .into_iter()
        .find(|&i| i != reply && nodes[i].span.start_unix_nano >= reply_end)?;
    let played: Vec<&str> = context(&nodes[next])
        .get(asked_with..)?
        .iter()
        .take_while(|m| !matches!(m, ContextMessage::User))
        .filter_map(|m| match m {
            ContextMessage::Assistant { text, .. } if !text.trim().is_empty() => Some(text.trim()),
            _ => None,
        })
        .collect();
    let played = played.join(" ");
    (!played.is_empty() && played != generated.trim()).then_some(played)
}
