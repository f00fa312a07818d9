//! Where a session stands and how it went: state, call status, ended reason, outcome,
//! detected issues, cost, and the descriptive fields. Every rule is here and in the README;
//! the parts that depend on the clock (expiry, "In Progress") are finished by ALIAS columns
//! of the `sessions` table (migration 3), so they need no new span to change.

use std::collections::BTreeSet;

use super::ancestry::from_ancestors;
use super::rules::Rules;
use super::Node;
use crate::conventions::{Role, SessionFacts};
use crate::model::conversation::{
    speaker, unix_seconds, IssueRow, MessageRow, SessionRow, ToolCallRow, TurnRow,
};

pub mod state {
    pub const OPEN: &str = "OPEN";
    pub const ACTIVE: &str = "ACTIVE";
    pub const AWAITING_USER: &str = "AWAITING_USER";
    pub const PROCESSING: &str = "PROCESSING";
    pub const WITH_AGENT: &str = "WITH_AGENT";
    pub const RESOLVED: &str = "RESOLVED";
    /// Only ever computed by the `sessions_current` view, from `expires_at`.
    pub const EXPIRED: &str = "EXPIRED";
}

pub const STATES: &[&str] = &[
    state::OPEN,
    state::ACTIVE,
    state::AWAITING_USER,
    state::PROCESSING,
    state::WITH_AGENT,
    state::RESOLVED,
    state::EXPIRED,
];

pub const OUTCOMES: &[&str] = &[
    "In Progress",
    "Success",
    "Skill Error",
    "Skill Retired",
    "Partial Flow Failure",
    "Budget Exceeded",
    "Handoff",
    "Session Busy",
    "Dispatch Orphaned",
    "Rate Limited",
    "To Agent",
    "Verification Required",
    "None",
];

pub const CALL_STATUSES: &[&str] = &[
    "Queued",
    "Ringing",
    "Active",
    "Completed",
    "Failed",
    "Declined",
    "Missed",
];

pub const ENDED_REASONS: &[&str] = &[
    "user_hangup",
    "agent_hangup",
    "transfer",
    "inactivity",
    "max_duration",
    "error",
    "voicemail",
];

pub const DIRECTIONS: &[&str] = &["inbound", "outbound", "web"];

/// Detected-issue tags.
pub mod issue {
    pub const SLOW_TURN: &str = "slow_turn";
    pub const SLOW_STT: &str = "slow_stt";
    pub const SLOW_LLM: &str = "slow_llm";
    pub const SLOW_TTS: &str = "slow_tts";
    pub const TOOL_ERROR: &str = "tool_error";
    pub const STT_ERROR: &str = "stt_error";
    pub const LLM_ERROR: &str = "llm_error";
    pub const TTS_ERROR: &str = "tts_error";
    pub const REPEATED_USER_UTTERANCE: &str = "repeated_user_utterance";
    pub const FREQUENT_INTERRUPTIONS: &str = "frequent_interruptions";
    pub const LONG_SILENCE: &str = "long_silence";
    pub const NO_USER_SPEECH: &str = "no_user_speech";
    pub const AGENT_DID_NOT_ANSWER: &str = "agent_did_not_answer";
    pub const DROPPED_CALL: &str = "dropped_call";
    pub const LOW_TRANSCRIPTION_CONFIDENCE: &str = "low_transcription_confidence";
}

/// A value from a closed list, matched ignoring case, spaces, dashes and underscores, so the
/// snake_case and the display form of a value are the same value. Spans and filters both
/// read closed lists through this.
pub fn closed_value<'a>(value: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let key = |s: &str| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let wanted = key(value);
    allowed.iter().find(|a| key(a) == wanted).copied()
}

pub(crate) struct Inputs<'a> {
    pub nodes: &'a [Node<'a>],
    /// Turn number of each node (0: none).
    pub turn_of_node: &'a [u32],
    pub turns: &'a [TurnRow],
    pub messages: &'a [MessageRow],
    pub tool_calls: &'a [ToolCallRow],
    pub interruption_count: usize,
    pub rules: &'a Rules,
}

/// Fills the semantic fields of `row` and returns the detected issues.
pub(crate) fn apply(row: &mut SessionRow, input: &Inputs) -> Vec<IssueRow> {
    let facts = latest_session_facts(input.nodes);
    let voice = row.channel == "voice";
    let handed_off = !row.handoff_target.is_empty()
        || input
            .messages
            .iter()
            .any(|m| m.speaker == speaker::HUMAN_AGENT);
    let explicit_call_status = facts
        .call_status
        .as_deref()
        .and_then(|s| closed_value(s, CALL_STATUSES));
    let explicit_ended_reason = facts
        .ended_reason
        .as_deref()
        .and_then(|s| closed_value(s, ENDED_REASONS));
    let ended = facts.ended
        || explicit_ended_reason.is_some()
        || matches!(explicit_call_status, Some("Completed" | "Failed" | "Declined" | "Missed"))
        // Frameworks export the conversation span when the conversation is over.
        || input.nodes.iter().any(|n| n.facts.role == Role::Conversation);
    let last_activity = input
        .nodes
        .iter()
        .map(|n| n.span.end_unix_nano)
        .max()
        .unwrap_or(row.end_time_unix_nano);

    row.derived_state = derive_state(ended, handed_off, input).to_owned();
    row.ended = u8::from(ended);
    row.last_activity_unix_nano = last_activity;
    let timeout = input.rules.inactivity_timeout_seconds(&row.channel);
    row.expires_at =
        unix_seconds(last_activity).saturating_add(u32::try_from(timeout).unwrap_or(u32::MAX));
    // A direction outside the closed list is dropped, like any other unknown closed value.
    row.direction = closed_value(&row.direction, DIRECTIONS)
        .unwrap_or_default()
        .to_owned();
    if row.direction.is_empty() && row.channel == "web_chat" {
        row.direction = "web".to_owned();
    }

    let user_messages = input
        .messages
        .iter()
        .filter(|m| m.speaker == speaker::USER)
        .count();
    row.user_message_count = u32::try_from(user_messages).unwrap_or(u32::MAX);
    let error_before_end = last_error_end(input.nodes).is_some_and(|at| {
        (row.end_time_unix_nano.saturating_sub(at) as f64) / 1e6
            <= input.rules.issues.dropped_after_error_ms
    });
    row.derived_call_status = if !voice {
        String::new()
    } else if let Some(explicit) = explicit_call_status {
        explicit.to_owned()
    } else if !ended {
        "Active".to_owned()
    } else if input.turns.is_empty() && input.nodes.iter().any(|n| n.span.is_error()) {
        "Failed".to_owned()
    } else if user_messages == 0 {
        "Missed".to_owned()
    } else {
        "Completed".to_owned()
    };
    row.derived_ended_reason = match explicit_ended_reason {
        Some(reason) => reason.to_owned(),
        None if handed_off => "transfer".to_owned(),
        None if ended && error_before_end => "error".to_owned(),
        None => String::new(),
    };

    apply_cost(row, input);
    let explicit_outcome = facts
        .outcome
        .as_deref()
        .and_then(|o| closed_value(o, OUTCOMES));
    row.outcome_explicit = u8::from(explicit_outcome.is_some());
    row.ended_outcome = explicit_outcome
        .unwrap_or_else(|| classify(row, handed_off, input, &facts))
        .to_owned();

    row.intent = facts.intent.clone().unwrap_or_default();
    row.flow = facts.flow.clone().unwrap_or_default();
    row.node = facts.node.clone().unwrap_or_default();
    row.skills = input
        .tool_calls
        .iter()
        .map(|c| c.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    row.agents = input
        .nodes
        .iter()
        .filter_map(|n| n.facts.agent_name.clone())
        .chain(std::iter::once(row.handoff_target.clone()))
        .filter(|a| !a.is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    row.campaign = facts.campaign.clone().unwrap_or_default();
    row.contact = facts
        .contact
        .as_deref()
        .map(|c| {
            if input.rules.mask_contacts {
                mask(c)
            } else {
                c.to_owned()
            }
        })
        .unwrap_or_default();
    if let Some(user) = facts.user_id.as_deref().filter(|u| !u.is_empty()) {
        let hash = fnv1a(user);
        row.user_hash = format!("{hash:016x}");
        row.user_name = pseudonym(hash);
    }
    row.feedback = facts
        .feedback
        .as_deref()
        .map(normalize_feedback)
        .unwrap_or_default()
        .to_owned();
    row.confidence = facts.confidence;
    row.sentiment = facts.sentiment.clone().unwrap_or_default();
    row.topic = facts.topic.clone().unwrap_or_default();
    row.summary = facts.summary.clone().unwrap_or_default();
    row.extracted_data = facts.extracted_data.clone().unwrap_or_default();
    row.recording_url = facts.recording_url.clone().unwrap_or_default();

    let issues = detect_issues(row, ended, voice, input);
    row.detected_issues = issues
        .iter()
        .map(|i| i.issue.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    issues
}

/// The keyed pseudonym of the session's contact, when it states one that normalises.
pub(crate) fn contact_pseudonym(nodes: &[Node], rules: &Rules) -> String {
    latest_session_facts(nodes)
        .contact
        .as_deref()
        .and_then(crate::contact::normalize)
        .map(|c| crate::contact::pseudonym(&rules.contact_key, &c))
        .unwrap_or_default()
}

/// Session facts: for each field, the value of the latest span (by end time) that states it.
fn latest_session_facts(nodes: &[Node]) -> SessionFacts {
    let mut by_end: Vec<&Node> = nodes.iter().collect();
    by_end.sort_by_key(|n| (n.span.end_unix_nano, n.span.span_id));
    let mut out = SessionFacts::default();
    for node in by_end {
        let f = &node.facts.session;
        macro_rules! latest {
            ($($field:ident),*) => { $( if f.$field.is_some() { out.$field = f.$field.clone(); } )* };
        }
        latest!(
            outcome,
            call_status,
            ended_reason,
            intent,
            flow,
            node,
            campaign,
            contact,
            user_id,
            feedback,
            confidence,
            sentiment,
            topic,
            summary,
            extracted_data,
            recording_url
        );
        out.ended |= f.ended;
        out.budget_exceeded |= f.budget_exceeded;
        out.verification_required |= f.verification_required;
    }
    out
}

fn derive_state(ended: bool, handed_off: bool, input: &Inputs) -> &'static str {
    if ended {
        return state::RESOLVED;
    }
    if handed_off {
        return state::WITH_AGENT;
    }
    let Some(last) = input.turns.last() else {
        return state::OPEN;
    };
    if !last.agent_text.is_empty() {
        return state::AWAITING_USER;
    }
    let tool_running = input
        .tool_calls
        .iter()
        .any(|c| c.turn_number == last.turn_number);
    if tool_running {
        state::PROCESSING
    } else {
        state::ACTIVE
    }
}

fn contains_any(text: &str, needles: &[&str]) -> bool {
    let lower = text.to_ascii_lowercase();
    needles.iter().any(|n| lower.contains(n))
}

/// The outcome of an ended session, first rule that matches wins (README, "Outcome").
fn classify(
    row: &SessionRow,
    handed_off: bool,
    input: &Inputs,
    facts: &SessionFacts,
) -> &'static str {
    let errors: Vec<&str> = input
        .nodes
        .iter()
        .filter_map(|n| n.facts.error_type.as_deref())
        .collect();
    let rate_limited = input.nodes.iter().any(|n| n.facts.http_status == Some(429))
        || errors.iter().any(|e| {
            contains_any(
                e,
                &[
                    "rate_limit",
                    "ratelimit",
                    "rate limit",
                    "too_many_requests",
                    "429",
                ],
            )
        });
    if rate_limited {
        return "Rate Limited";
    }
    let budget = &input.rules.budget;
    let over_budget = facts.budget_exceeded
        || errors
            .iter()
            .any(|e| contains_any(e, &["budget", "quota", "max_turns"]))
        || (budget.max_tokens > 0 && row.input_tokens + row.output_tokens > budget.max_tokens)
        || (budget.max_cost_usd > 0.0 && row.cost_usd > budget.max_cost_usd)
        || (budget.max_turns > 0 && row.turn_count > budget.max_turns);
    if over_budget {
        return "Budget Exceeded";
    }
    if errors.iter().any(|e| contains_any(e, &["busy"])) {
        return "Session Busy";
    }
    if facts.verification_required {
        return "Verification Required";
    }
    if handed_off {
        let handoff_at = input
            .nodes
            .iter()
            .filter(|n| n.facts.handoff_target.is_some())
            // The end: a span that carries the handoff may be the whole conversation.
            .map(|n| n.span.end_unix_nano)
            .min()
            .unwrap_or(u64::MAX);
        let skill_first = input
            .tool_calls
            .iter()
            .any(|c| c.start_time_unix_nano <= handoff_at);
        return if skill_first { "Handoff" } else { "To Agent" };
    }
    let retired = input.tool_calls.iter().any(|c| {
        c.is_error == 1
            && contains_any(
                &c.error_message,
                &[
                    "not_found",
                    "not found",
                    "retired",
                    "deprecated",
                    "unknown_tool",
                ],
            )
    });
    if retired {
        return "Skill Retired";
    }
    // A failed call counts unless a later call of the same tool succeeded.
    let unrecovered = input.tool_calls.iter().any(|failed| {
        failed.is_error == 1
            && !input.tool_calls.iter().any(|c| {
                c.name == failed.name
                    && c.is_error == 0
                    && c.start_time_unix_nano > failed.start_time_unix_nano
            })
    });
    if unrecovered {
        return "Skill Error";
    }
    if !failed_stages(input.nodes).is_empty() {
        return "Partial Flow Failure";
    }
    if input.turns.is_empty() && row.user_message_count == 0 {
        return "Dispatch Orphaned";
    }
    // Success needs a conversation: the user spoke, and the last turn got a real reply.
    let answered = input
        .turns
        .last()
        .is_some_and(|t| !t.agent_text.is_empty() && !is_fallback(&t.agent_text, input.rules));
    if answered && row.user_message_count > 0 {
        "Success"
    } else {
        "None"
    }
}

/// The stage (STT, LLM or TTS) each span works for: its own role, else the stage of the
/// nearest stage span above it, since frameworks record failures on attempt spans below the
/// stage (LiveKit's `llm_request_run`, `tts_request_run`). A tool call is not part of a stage.
fn stages(nodes: &[Node]) -> Vec<Option<Role>> {
    from_ancestors(
        nodes.len(),
        |i| nodes[i].parent,
        |i, above| match nodes[i].facts.role {
            Role::Stt | Role::Llm | Role::Tts => Some(nodes[i].facts.role),
            Role::FirstToken => Some(Role::Llm),
            Role::Tool => None,
            _ => above.copied().flatten(),
        },
    )
}

/// Failed stage spans, each failure once: a failed span whose parent failed in the same
/// stage is the same failure seen twice.
fn failed_stages(nodes: &[Node]) -> Vec<(usize, Role)> {
    let stages = stages(nodes);
    (0..nodes.len())
        .filter_map(|i| {
            if !nodes[i].span.is_error() {
                return None;
            }
            let stage = stages[i]?;
            let parent_failed = nodes[i]
                .parent
                .is_some_and(|p| nodes[p].span.is_error() && stages[p] == Some(stage));
            (!parent_failed).then_some((i, stage))
        })
        .collect()
}

fn is_fallback(text: &str, rules: &Rules) -> bool {
    let lower = text.trim().to_lowercase();
    rules
        .issues
        .fallback_phrases
        .iter()
        .any(|p| lower.starts_with(&p.to_lowercase()))
}

fn last_error_end(nodes: &[Node]) -> Option<u64> {
    nodes
        .iter()
        .filter(|n| n.span.is_error())
        .map(|n| n.span.end_unix_nano)
        .max()
}

fn apply_cost(row: &mut SessionRow, input: &Inputs) {
    let pricing = &input.rules.pricing;
    let (mut llm, mut stt, mut tts, mut other) = (0.0, 0.0, 0.0, 0.0);
    for node in input.nodes {
        let f = &node.facts;
        let names = [
            f.model.as_deref().unwrap_or(""),
            f.provider.as_deref().unwrap_or(""),
        ];
        let (slot, computed) = match f.role {
            Role::Llm => (
                &mut llm,
                Rules::price(&pricing.llm, &names[..1]).map(|p| {
                    f.input_tokens.unwrap_or(0) as f64 * p.input_per_million_tokens / 1e6
                        + f.output_tokens.unwrap_or(0) as f64 * p.output_per_million_tokens / 1e6
                }),
            ),
            Role::Stt => (
                &mut stt,
                Rules::price(&pricing.stt, &names).map(|p| {
                    let seconds = f
                        .audio_seconds
                        .unwrap_or(node.span.duration_nanos() as f64 / 1e9);
                    seconds / 60.0 * p.per_audio_minute
                }),
            ),
            Role::Tts => (
                &mut tts,
                Rules::price(
                    &pricing.tts,
                    &[f.voice.as_deref().unwrap_or(""), names[0], names[1]],
                )
                .map(|p| {
                    let characters = f.characters.unwrap_or_else(|| {
                        f.agent_text
                            .as_deref()
                            .map_or(0, |t| t.chars().count() as u64)
                    });
                    characters as f64 * p.per_million_characters / 1e6
                }),
            ),
            _ => (&mut other, None),
        };
        // A cost the span states itself wins over the price table.
        *slot += f.cost_usd.or(computed).unwrap_or(0.0);
    }
    row.llm_cost_usd = llm;
    row.stt_cost_usd = stt;
    row.tts_cost_usd = tts;
    row.cost_usd = llm + stt + tts + other;
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Same words, or nearly (Jaccard >= 0.8 over at least three words). Takes each text's
/// [`words`]: a turn is compared with the one before it and the one after.
fn repeats(a: &[String], b: &[String]) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
    let (common, all) = (a.intersection(&b).count(), a.union(&b).count());
    a.len() >= 3 && b.len() >= 3 && common as f64 / all as f64 >= 0.8
}

fn detect_issues(row: &SessionRow, ended: bool, voice: bool, input: &Inputs) -> Vec<IssueRow> {
    let t = &input.rules.issues;
    let mut issues: Vec<(&'static str, u32, u64, String)> = Vec::new();
    for turn in input.turns {
        let (n, at) = (turn.turn_number, turn.start_time_unix_nano);
        let over = |value: Option<f64>, limit: f64| value.filter(|v| *v > limit);
        if let Some(ms) = over(turn.voice_to_voice_ms, t.slow_turn_ms) {
            issues.push((
                issue::SLOW_TURN,
                n,
                at,
                format!("voice-to-voice {ms:.0} ms > {:.0} ms", t.slow_turn_ms),
            ));
        }
        for (tag, value, limit, label) in [
            (issue::SLOW_STT, turn.stt_ms, t.slow_stt_ms, "STT"),
            (
                issue::SLOW_LLM,
                turn.llm_ttft_ms,
                t.slow_llm_ttft_ms,
                "LLM time to first token",
            ),
            (
                issue::SLOW_TTS,
                turn.tts_ttfb_ms,
                t.slow_tts_ms,
                "TTS time to first audio",
            ),
        ] {
            if let Some(ms) = over(value, limit) {
                issues.push((tag, n, at, format!("{label} {ms:.0} ms > {limit:.0} ms")));
            }
        }
        let is_last = input.turns.last().map(|l| l.turn_number) == Some(n);
        let unanswered =
            !turn.user_text.is_empty() && turn.agent_text.is_empty() && (ended || !is_last);
        if unanswered || (!turn.agent_text.is_empty() && is_fallback(&turn.agent_text, input.rules))
        {
            issues.push((
                issue::AGENT_DID_NOT_ANSWER,
                n,
                at,
                if unanswered {
                    "no reply".into()
                } else {
                    "fallback reply".into()
                },
            ));
        }
    }
    for pair in input.turns.windows(2) {
        let silence_ms = pair[1]
            .start_time_unix_nano
            .saturating_sub(pair[0].end_time_unix_nano) as f64
            / 1e6;
        if voice && silence_ms > t.long_silence_ms {
            issues.push((
                issue::LONG_SILENCE,
                pair[1].turn_number,
                pair[0].end_time_unix_nano,
                format!("{silence_ms:.0} ms of silence"),
            ));
        }
    }
    let user_turns: Vec<(&TurnRow, Vec<String>)> = input
        .turns
        .iter()
        .filter(|t| !t.user_text.is_empty())
        .map(|t| (t, words(&t.user_text)))
        .collect();
    for pair in user_turns.windows(2) {
        let ((_, previous), (turn, current)) = (&pair[0], &pair[1]);
        if repeats(previous, current) {
            issues.push((
                issue::REPEATED_USER_UTTERANCE,
                turn.turn_number,
                turn.start_time_unix_nano,
                turn.user_text.clone(),
            ));
        }
    }
    for call in input.tool_calls.iter().filter(|c| c.is_error == 1) {
        issues.push((
            issue::TOOL_ERROR,
            call.turn_number,
            call.start_time_unix_nano,
            format!("{}: {}", call.name, call.error_message),
        ));
    }
    for (i, stage) in failed_stages(input.nodes) {
        let node = &input.nodes[i];
        let tag = match stage {
            Role::Stt => issue::STT_ERROR,
            Role::Tts => issue::TTS_ERROR,
            _ => issue::LLM_ERROR,
        };
        let turn = input.turn_of_node.get(i).copied().unwrap_or(0);
        issues.push((
            tag,
            turn,
            node.span.start_unix_nano,
            node.span.status_message.clone(),
        ));
    }
    for (i, node) in input.nodes.iter().enumerate() {
        let turn = input.turn_of_node.get(i).copied().unwrap_or(0);
        if let Some(confidence) = node
            .facts
            .transcript_confidence
            .filter(|c| *c < t.low_confidence)
        {
            issues.push((
                issue::LOW_TRANSCRIPTION_CONFIDENCE,
                turn,
                node.span.start_unix_nano,
                format!("confidence {confidence:.2}"),
            ));
        }
    }
    if input.interruption_count >= t.frequent_interruptions as usize && t.frequent_interruptions > 0
    {
        let nth = input
            .turns
            .iter()
            .filter(|t| t.interrupted == 1)
            .nth(t.frequent_interruptions as usize - 1);
        if let Some(turn) = nth {
            issues.push((
                issue::FREQUENT_INTERRUPTIONS,
                turn.turn_number,
                turn.start_time_unix_nano,
                format!("{} interruptions", input.interruption_count),
            ));
        }
    }
    if voice && ended {
        if row.user_message_count == 0 {
            issues.push((
                issue::NO_USER_SPEECH,
                0,
                row.start_time_unix_nano,
                String::new(),
            ));
        }
        let cut_off = input.turns.last().is_some_and(|t| t.interrupted == 1);
        let error_end = last_error_end(input.nodes).filter(|at| {
            (row.end_time_unix_nano.saturating_sub(*at) as f64) / 1e6 <= t.dropped_after_error_ms
        });
        if cut_off || error_end.is_some() {
            let turn = input.turns.last().map_or(0, |t| t.turn_number);
            let why = if cut_off {
                "ended during an agent reply"
            } else {
                "ended right after an error"
            };
            issues.push((
                issue::DROPPED_CALL,
                turn,
                row.end_time_unix_nano,
                why.to_owned(),
            ));
        }
    }
    issues.sort_by(|a, b| (a.1, a.2, a.0).cmp(&(b.1, b.2, b.0)));
    issues
        .into_iter()
        .enumerate()
        .map(|(i, (tag, turn_number, at, detail))| IssueRow {
            session_id: row.session_id.clone(),
            revision: row.revision,
            issue_index: u32::try_from(i).unwrap_or(u32::MAX),
            issue: tag.to_owned(),
            turn_number,
            time: unix_seconds(at),
            time_unix_nano: at,
            detail,
        })
        .collect()
}

pub(crate) fn normalize_feedback(value: &str) -> &'static str {
    match value.trim().to_ascii_lowercase().as_str() {
        "up" | "thumbs_up" | "thumbsup" | "positive" | "good" | "1" | "+1" | "true" => "up",
        "down" | "thumbs_down" | "thumbsdown" | "negative" | "bad" | "0" | "-1" | "false" => "down",
        _ => "",
    }
}

/// All but the last four characters replaced, so a number can be recognised but not read.
fn mask(contact: &str) -> String {
    let chars: Vec<char> = contact.chars().collect();
    let keep = chars.len().min(4);
    let hidden = chars.len() - keep;
    "*".repeat(hidden) + &chars[hidden..].iter().collect::<String>()
}

/// FNV-1a: stable across releases and platforms, which a display name must be.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pseudonym(hash: u64) -> String {
    const ADJECTIVES: [&str; 16] = [
        "Amber", "Brisk", "Calm", "Deft", "Eager", "Fond", "Gentle", "Hardy", "Jolly", "Keen",
        "Lively", "Merry", "Noble", "Quiet", "Swift", "Witty",
    ];
    const ANIMALS: [&str; 16] = [
        "Otter", "Heron", "Badger", "Lynx", "Falcon", "Marten", "Puffin", "Fox", "Wren", "Bison",
        "Gecko", "Koala", "Moose", "Raven", "Seal", "Tapir",
    ];
    let pick = |shift: u32| ((hash >> shift) % 16) as usize;
    format!(
        "{} {} {:02}",
        ADJECTIVES[pick(0)],
        ANIMALS[pick(8)],
        (hash >> 16) % 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_lists_are_matched_loosely() {
        assert_eq!(closed_value("skill_error", OUTCOMES), Some("Skill Error"));
        assert_eq!(closed_value("RATE-LIMITED", OUTCOMES), Some("Rate Limited"));
        assert_eq!(closed_value("great", OUTCOMES), None);
        assert_eq!(
            closed_value("user hangup", ENDED_REASONS),
            Some("user_hangup")
        );
    }

    #[test]
    fn repeated_utterances() {
        let repeats = |a: &str, b: &str| repeats(&words(a), &words(b));
        assert!(repeats("Where is my order?", "where is my order"));
        assert!(repeats(
            "I want to cancel my booking now",
            "I want to cancel my booking"
        ));
        assert!(!repeats("yes", "no"));
        assert!(!repeats("book a table", "cancel the table"));
    }

    #[test]
    fn privacy_helpers() {
        assert_eq!(mask("+15551234567"), "********4567");
        assert_eq!(mask("42"), "42");
        assert_eq!(pseudonym(fnv1a("user-1")), pseudonym(fnv1a("user-1")));
        assert_ne!(fnv1a("user-1"), fnv1a("user-2"));
        assert_eq!(normalize_feedback("Thumbs_Up"), "up");
    }
}
