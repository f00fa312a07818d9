//! Spans in, conversation rows out. Pure functions, no I/O: the same spans, in any order,
//! always give the same rows, which is what makes re-sent spans harmless and `rebuild` exact.

mod ancestry;
mod context;
pub mod grounding;
mod latency;
pub mod logs;
pub mod rules;
pub mod semantics;
mod timeline;
mod turns;

pub use latency::percentile;
pub use rules::Rules;

use std::collections::{HashMap, HashSet};

use crate::conventions::{self, Framework, Role, SpanFacts};
use crate::model::conversation::{
    speaker, unix_seconds, ContactRow, DerivedSession, InterruptionRow, MessageRow, SessionRow,
    ToolCallRow, TurnRow,
};
use crate::model::{Span, SpanId, TraceId};

/// Longest session key kept as sent. A longer one is replaced by `sha256:` and the hex
/// SHA-256 of the key: ids travel in query text and URLs, and an unbounded one could make
/// every query that names it too large for ClickHouse.
pub const MAX_KEY_BYTES: usize = 256;

/// `key` as stored: itself, or its hash when it is longer than [`MAX_KEY_BYTES`].
pub fn bounded_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    if key.len() <= MAX_KEY_BYTES {
        key.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

/// The session a trace belongs to: the key on the span closest to the root that carries
/// one (ties: earlier start, then span id), else a key on the resource, else none (the
/// caller then uses the trace id). A trace belongs to one session; a session may span many.
/// Keys are [bounded](bounded_key).
pub fn trace_session_key<'a>(trace: impl IntoIterator<Item = &'a Span>) -> Option<String> {
    let trace: Vec<&Span> = trace.into_iter().collect();
    raw_session_key(&trace).map(|key| bounded_key(&key))
}

fn raw_session_key(trace: &[&Span]) -> Option<String> {
    let keyed: Vec<(usize, &str)> = trace
        .iter()
        .enumerate()
        .filter_map(|(i, s)| conventions::session_key(&s.attributes).map(|k| (i, k)))
        .collect();
    if let Some(&(_, first)) = keyed.first() {
        // Most traces carry one key, on one span or on all of them: then which span is
        // closest to the root does not matter, and the ancestry is not walked.
        if keyed.iter().all(|&(_, key)| key == first) {
            return Some(first.to_owned());
        }
        let index: HashMap<SpanId, usize> = trace
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let depths = ancestry::from_ancestors(
            trace.len(),
            |i| trace[i].parent_span_id.and_then(|p| index.get(&p).copied()),
            |_, above| above.map_or(0usize, |d| d + 1),
        );
        return keyed
            .into_iter()
            .map(|(i, key)| (depths[i], trace[i].start_unix_nano, trace[i].span_id, key))
            .min()
            .map(|(_, _, _, key)| key.to_owned());
    }
    trace
        .iter()
        .filter_map(|s| {
            conventions::session_key(&s.resource).map(|key| ((s.start_unix_nano, s.span_id), key))
        })
        .min_by_key(|&(first, _)| first)
        .map(|(_, key)| key.to_owned())
}

/// One span with what conventions say about it and its parent's position.
pub(crate) struct Node<'a> {
    pub span: &'a Span,
    pub facts: &'a SpanFacts,
    pub parent: Option<usize>,
}

/// Derives a whole session from all of its spans. Duplicate spans (same trace and span id)
/// count once.
pub fn sessionize<'a>(
    session_id: &str,
    spans: impl IntoIterator<Item = &'a Span>,
    revision: u64,
    updated_at: u32,
    rules: &Rules,
) -> DerivedSession {
    let unique = unique_in_order(spans.into_iter().collect(), |s| *s);
    let facts: Vec<SpanFacts> = unique.iter().map(|s| conventions::read(s)).collect();
    derive(
        session_id,
        unique.into_iter().zip(&facts).collect(),
        revision,
        updated_at,
        rules,
    )
}

/// [`sessionize`] from spans whose facts were already read (`conventions::read` of each
/// span; the session cache keeps them so a pass does not read every span again).
pub fn sessionize_read<'a>(
    session_id: &str,
    spans: impl IntoIterator<Item = (&'a Span, &'a SpanFacts)>,
    revision: u64,
    updated_at: u32,
    rules: &Rules,
) -> DerivedSession {
    let unique = unique_in_order(spans.into_iter().collect(), |(s, _)| *s);
    derive(session_id, unique, revision, updated_at, rules)
}

/// The spans in the order sessionizing depends on, each (trace, span id) once.
fn unique_in_order<T>(mut spans: Vec<T>, span: impl Fn(&T) -> &Span) -> Vec<T> {
    spans.sort_by_key(|t| {
        let s = span(t);
        (s.start_unix_nano, s.trace_id, s.span_id, s.end_unix_nano)
    });
    let mut seen: HashSet<(TraceId, SpanId)> = HashSet::new();
    spans.retain(|t| {
        let s = span(t);
        seen.insert((s.trace_id, s.span_id))
    });
    spans
}

fn derive(
    session_id: &str,
    unique: Vec<(&Span, &SpanFacts)>,
    revision: u64,
    updated_at: u32,
    rules: &Rules,
) -> DerivedSession {
    let positions: HashMap<(TraceId, SpanId), usize> = unique
        .iter()
        .enumerate()
        .map(|(i, (s, _))| ((s.trace_id, s.span_id), i))
        .collect();
    let nodes: Vec<Node> = unique
        .iter()
        .map(|&(span, facts)| Node {
            span,
            facts,
            parent: span
                .parent_span_id
                .and_then(|p| positions.get(&(span.trace_id, p)).copied()),
        })
        .collect();

    let turn_members = turns::assign(&nodes);
    let mut turn_of_node = vec![0u32; nodes.len()];
    for (position, (_, members)) in turn_members.turns.iter().enumerate() {
        let turn_number = u32::try_from(position + 1).unwrap_or(u32::MAX);
        for &member in members {
            turn_of_node[member] = turn_number;
        }
    }
    let mut context_calls: HashMap<u32, Vec<ToolCallRow>> = HashMap::new();
    for call in context::tool_calls(&nodes, &turn_of_node, session_id, revision) {
        context_calls
            .entry(call.turn_number)
            .or_default()
            .push(call);
    }
    let mut turn_rows = Vec::new();
    let mut messages = Vec::new();
    let mut tool_calls = Vec::new();
    let mut interruptions = Vec::new();
    for (position, (anchor, members)) in turn_members.turns.iter().enumerate() {
        let turn_number = u32::try_from(position + 1).unwrap_or(u32::MAX);
        let mut turn = turns::Turn::new(&nodes, *anchor, members);
        if turn.interruption_signal().is_some() {
            turn.played_per_context = context::spoken_part(&nodes, members);
        }
        let mut calls = turn.tool_calls(session_id, revision, turn_number);
        calls.extend(context_calls.remove(&turn_number).unwrap_or_default());
        calls.sort_by_key(|c| c.start_time_unix_nano);
        let row = turn.row(session_id, revision, turn_number, &calls);
        messages.extend(turn.messages(session_id, revision, turn_number, &row, &calls));
        if let Some(signal) = turn.interruption_signal() {
            interruptions.push(InterruptionRow {
                session_id: session_id.to_owned(),
                revision,
                interruption_index: 0,
                turn_number,
                time: unix_seconds(signal.time_unix_nano),
                time_unix_nano: signal.time_unix_nano,
                agent_text: row.agent_text.clone(),
                spoken_text: row.agent_spoken_text.clone(),
                signal: signal.source.to_owned(),
                trace_id: signal.span.trace_id.to_hex(),
                span_id: signal.span.span_id.to_hex(),
            });
        }
        tool_calls.extend(calls);
        turn_rows.push(row);
    }
    // Calls asked for outside any turn.
    tool_calls.extend(context_calls.into_values().flatten());
    // Messages outside any turn, e.g. a human agent writing after a handoff.
    for &i in &turn_members.outside {
        if let Some((who, text)) = &nodes[i].facts.message {
            messages.push(turns::explicit_message(
                session_id,
                revision,
                0,
                nodes[i].span,
                who,
                text,
            ));
        }
    }
    messages.sort_by_key(|m| (m.time_unix_nano, speaker_order(&m.speaker)));
    for (i, m) in messages.iter_mut().enumerate() {
        m.message_index = u32::try_from(i).unwrap_or(u32::MAX);
    }
    for (i, t) in tool_calls.iter_mut().enumerate() {
        t.call_index = u32::try_from(i).unwrap_or(u32::MAX);
    }
    for (i, r) in interruptions.iter_mut().enumerate() {
        r.interruption_index = u32::try_from(i).unwrap_or(u32::MAX);
    }

    let mut session = session_row(
        session_id,
        revision,
        updated_at,
        &nodes,
        &turn_rows,
        &messages,
        &tool_calls,
        &interruptions,
    );
    let issues = semantics::apply(
        &mut session,
        &semantics::Inputs {
            nodes: &nodes,
            turn_of_node: &turn_of_node,
            turns: &turn_rows,
            messages: &messages,
            tool_calls: &tool_calls,
            interruption_count: interruptions.len(),
            rules,
        },
    );
    let timeline_events = timeline::events(session_id, revision, &nodes, &turn_rows, &tool_calls);
    let turn_spans: Vec<(&TurnRow, &[usize])> = turn_rows
        .iter()
        .zip(&turn_members.turns)
        .map(|(row, (_, members))| (row, members.as_slice()))
        .collect();
    let agent = [&session.agent_name, &session.service_name]
        .into_iter()
        .find(|a| !a.is_empty())
        .map_or("", |a| a.as_str());
    let (answers, citations) = grounding::answers(&nodes, &turn_spans, agent);
    let contact = ContactRow {
        session_id: session_id.to_owned(),
        revision,
        time: session.start_time,
        contact_pseudonym: semantics::contact_pseudonym(&nodes, rules),
    };
    DerivedSession {
        session,
        turns: turn_rows,
        messages,
        tool_calls,
        interruptions,
        issues,
        timeline_events,
        answers,
        citations,
        contact,
    }
}

/// Within the same instant, the user speaks before tools run and the agent answers last.
fn speaker_order(who: &str) -> u8 {
    match who {
        speaker::USER => 0,
        speaker::TOOL => 1,
        speaker::AGENT => 2,
        _ => 3,
    }
}

#[allow(clippy::too_many_arguments)]
fn session_row(
    session_id: &str,
    revision: u64,
    updated_at: u32,
    nodes: &[Node],
    turns: &[TurnRow],
    messages: &[MessageRow],
    tool_calls: &[ToolCallRow],
    interruptions: &[InterruptionRow],
) -> SessionRow {
    let start = nodes
        .iter()
        .map(|n| n.span.start_unix_nano)
        .min()
        .unwrap_or(0);
    let end = nodes
        .iter()
        .map(|n| n.span.end_unix_nano)
        .max()
        .unwrap_or(start);
    // Hex of each trace once (not of each span); sorted as the hex is, for equal lengths.
    let unique_traces: std::collections::BTreeSet<TraceId> =
        nodes.iter().map(|n| n.span.trace_id).collect();
    let trace_ids: Vec<String> = unique_traces.iter().map(TraceId::to_hex).collect();
    let first_fact = |get: fn(&SpanFacts) -> Option<&String>| -> String {
        nodes
            .iter()
            .find_map(|n| get(n.facts))
            .cloned()
            .unwrap_or_default()
    };
    let resource_value = |keys: &[&str]| -> String {
        nodes
            .iter()
            .find_map(|n| n.span.resource.first_of(keys))
            .unwrap_or("")
            .to_owned()
    };
    let is_voice = nodes.iter().any(|n| {
        matches!(
            n.facts.role,
            Role::Stt | Role::Tts | Role::UserSpeaking | Role::AgentSpeaking
        )
    });
    let channel = match first_fact(|f| f.channel.as_ref()) {
        explicit if !explicit.is_empty() => explicit,
        _ if is_voice => "voice".to_owned(),
        _ if !turns.is_empty() => "chat".to_owned(),
        _ => String::new(),
    };
    let mut models: Vec<String> = turns
        .iter()
        .map(|t| t.llm_model.clone())
        .filter(|m| !m.is_empty())
        .collect();
    models.sort();
    models.dedup();
    let v2v: Vec<f64> = turns.iter().filter_map(|t| t.voice_to_voice_ms).collect();
    let ttft: Vec<f64> = turns.iter().filter_map(|t| t.llm_ttft_ms).collect();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    SessionRow {
        session_id: session_id.to_owned(),
        revision,
        deleted: 0,
        start_time: unix_seconds(start),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        duration_ms: end.saturating_sub(start) as f64 / 1e6,
        trace_ids,
        framework: framework(nodes).as_str().to_owned(),
        service_name: resource_value(&["service.name"]),
        agent_name: first_fact(|f| f.agent_name.as_ref()),
        environment: resource_value(&["deployment.environment.name", "deployment.environment"]),
        channel,
        direction: first_fact(|f| f.direction.as_ref()),
        handoff_target: first_fact(|f| f.handoff_target.as_ref()),
        preview: messages
            .iter()
            .find(|m| m.speaker == speaker::USER)
            .map(|m| m.text.chars().take(200).collect())
            .unwrap_or_default(),
        turn_count: count(turns.len()),
        message_count: count(messages.len()),
        interruption_count: count(interruptions.len()),
        tool_call_count: count(tool_calls.len()),
        tool_error_count: count(tool_calls.iter().filter(|t| t.is_error == 1).count()),
        span_count: count(nodes.len()),
        error_span_count: count(nodes.iter().filter(|n| n.span.is_error()).count()),
        input_tokens: turns.iter().map(|t| t.input_tokens).sum(),
        output_tokens: turns.iter().map(|t| t.output_tokens).sum(),
        models,
        voice_to_voice_p50_ms: latency::percentile(&v2v, 0.5),
        voice_to_voice_p95_ms: latency::percentile(&v2v, 0.95),
        llm_ttft_p50_ms: latency::percentile(&ttft, 0.5),
        updated_at,
        ..SessionRow::default()
    }
}

/// The framework most of the session's spans come from.
fn framework(nodes: &[Node]) -> Framework {
    let mut counts: HashMap<Framework, usize> = HashMap::new();
    for node in nodes
        .iter()
        .filter(|n| n.facts.framework != Framework::Unknown)
    {
        *counts.entry(node.facts.framework).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(framework, count)| (*count, std::cmp::Reverse(*framework)))
        .map(|(framework, _)| framework)
        .unwrap_or_default()
}

/// A session whose traces all moved to another session: written so readers stop showing it.
pub fn tombstone(session_id: &str, revision: u64, updated_at: u32) -> SessionRow {
    SessionRow {
        session_id: session_id.to_owned(),
        revision,
        deleted: 1,
        updated_at,
        ..SessionRow::default()
    }
}

#[cfg(test)]
mod tests;
