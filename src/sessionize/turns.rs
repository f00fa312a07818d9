//! Which spans make up which turn, and what each turn says.
//!
//! A turn is anchored on a span that frameworks emit once per exchange: Pipecat's `turn`,
//! LiveKit's `agent_turn`, a GenAI `invoke_agent`; with none of those, each top-level LLM call
//! (a plain chat app). Every other span joins the turn of its nearest anchor ancestor. Spans
//! that frameworks trace as siblings of the anchor are placed by time: the user's side
//! (`user_turn`, speech before the reply) joins the next anchor, everything else the
//! latest anchor that started before it.

use std::collections::HashSet;

use super::latency::{measure, Measured};
use super::Node;
use crate::conventions::{Reported, Role, SpanFacts, ToolFacts};
use crate::model::conversation::{speaker, unix_seconds, MessageRow, ToolCallRow, TurnRow};
use crate::model::Span;

pub struct Assignment {
    /// (anchor node, member nodes in start order, anchor included)
    pub turns: Vec<(usize, Vec<usize>)>,
    /// Nodes in no turn: containers of turns and spans with no turn to join.
    pub outside: Vec<usize>,
}

pub fn assign(nodes: &[Node]) -> Assignment {
    let is_anchor_role = |role: Role| matches!(role, Role::Turn | Role::AgentTurn);
    let has_ancestor = |mut i: usize, pred: &dyn Fn(&Node) -> bool| {
        let mut steps = 0;
        while let Some(p) = nodes[i].parent {
            if pred(&nodes[p]) || steps > nodes.len() {
                return pred(&nodes[p]);
            }
            i = p;
            steps += 1;
        }
        false
    };
    let mut anchors: Vec<usize> = (0..nodes.len())
        .filter(|&i| {
            is_anchor_role(nodes[i].facts.role)
                && !has_ancestor(i, &|n| is_anchor_role(n.facts.role))
        })
        .collect();
    if anchors.is_empty() {
        anchors = (0..nodes.len())
            .filter(|&i| {
                nodes[i].facts.role == Role::Llm && !has_ancestor(i, &|n| n.facts.role == Role::Llm)
            })
            .collect();
    }

    // Containers of anchors (conversation, session, job spans) belong to no turn.
    let mut containers: HashSet<usize> = HashSet::new();
    for &a in &anchors {
        let mut i = a;
        while let Some(p) = nodes[i].parent {
            if !containers.insert(p) {
                break;
            }
            i = p;
        }
    }

    let mut members: Vec<Vec<usize>> = vec![Vec::new(); anchors.len()];
    let mut outside = Vec::new();
    for i in 0..nodes.len() {
        let turn = if containers.contains(&i) || anchors.is_empty() {
            None
        } else {
            Some(turn_of(nodes, &anchors, i))
        };
        match turn {
            Some(t) => members[t].push(i),
            None => outside.push(i),
        }
    }
    Assignment {
        turns: anchors.into_iter().zip(members).collect(),
        outside,
    }
}

fn turn_of(nodes: &[Node], anchors: &[usize], i: usize) -> usize {
    // Nearest anchor ancestor (or self); remember the outermost user-side span on the way.
    let mut current = i;
    let mut user_side = is_user_side(&nodes[i].facts).then_some(i);
    let mut steps = 0;
    loop {
        if let Some(pos) = anchors.iter().position(|&a| a == current) {
            return pos;
        }
        match nodes[current].parent {
            Some(p) if steps <= nodes.len() => {
                current = p;
                if nodes[p].facts.role == Role::UserTurn {
                    user_side = Some(p);
                }
                steps += 1;
            }
            _ => break,
        }
    }
    let start = nodes[user_side.unwrap_or(i)].span.start_unix_nano;
    let started_before = anchors
        .iter()
        .rposition(|&a| nodes[a].span.start_unix_nano <= start);
    if user_side.is_some() {
        if let Some(next) = anchors
            .iter()
            .position(|&a| nodes[a].span.start_unix_nano >= start)
        {
            return next;
        }
    }
    started_before.unwrap_or(0)
}

/// Spans that happen before the reply they lead to.
fn is_user_side(facts: &SpanFacts) -> bool {
    match facts.role {
        Role::UserTurn | Role::Stt => true,
        Role::UserSpeaking => facts.interrupted.is_none(),
        _ => false,
    }
}

pub struct Signal<'a> {
    pub time_unix_nano: u64,
    pub source: &'static str,
    pub span: &'a Span,
}

/// One turn's spans, in start order, with their facts.
pub struct Turn<'a> {
    anchor: &'a Node<'a>,
    members: Vec<&'a Node<'a>>,
    /// The part of an interrupted reply that was played, as a later LLM context records it.
    pub played_per_context: Option<String>,
}

impl<'a> Turn<'a> {
    pub fn new(nodes: &'a [Node<'a>], anchor: usize, members: &[usize]) -> Self {
        Turn {
            anchor: &nodes[anchor],
            members: members.iter().map(|&i| &nodes[i]).collect(),
            played_per_context: None,
        }
    }

    fn with_role(&self, role: Role) -> impl Iterator<Item = &&'a Node<'a>> + '_ {
        self.members.iter().filter(move |n| n.facts.role == role)
    }

    fn first_reported(&self, get: fn(&SpanFacts) -> Option<Reported>) -> Option<Reported> {
        self.members.iter().find_map(|n| get(&n.facts))
    }

    /// Texts of the first role in `roles` that has any, joined in time order.
    fn text_by_roles(&self, roles: &[Role], get: fn(&SpanFacts) -> Option<&String>) -> String {
        for role in roles {
            let texts: Vec<&str> = self
                .with_role(*role)
                .filter_map(|n| get(&n.facts).map(String::as_str))
                .filter(|t| !t.trim().is_empty())
                .collect();
            if !texts.is_empty() {
                return texts.join(" ");
            }
        }
        String::new()
    }

    pub fn user_text(&self) -> String {
        self.text_by_roles(
            &[
                Role::UserTurn,
                Role::Stt,
                Role::Turn,
                Role::AgentTurn,
                Role::Llm,
            ],
            |f| f.user_text.as_ref(),
        )
    }

    /// What the agent meant to say; when only the part heard is known, that part.
    pub fn agent_text(&self) -> String {
        let generated = self
            .text_by_roles(&[Role::AgentTurn, Role::Turn, Role::Llm, Role::Tts], |f| {
                f.agent_text.as_ref()
            });
        if generated.is_empty() {
            self.text_by_roles(&[Role::AgentTurn, Role::Turn], |f| f.spoken_text.as_ref())
        } else {
            generated
        }
    }

    pub fn interruption_signal(&self) -> Option<Signal<'a>> {
        let flagged = self
            .members
            .iter()
            .find(|n| n.facts.interrupted.is_some())?;
        let source = flagged.facts.interrupted.unwrap_or_default();
        // When did it happen: the user starting to speak over the agent, else the cut-off audio.
        let at = self
            .members
            .iter()
            .find(|n| n.facts.role == Role::UserSpeaking && n.facts.interrupted.is_some())
            .or_else(|| {
                self.members
                    .iter()
                    .find(|n| n.facts.role == Role::Interruption)
            })
            .map(|n| (n.span.start_unix_nano, n.span))
            .or_else(|| {
                self.members
                    .iter()
                    .find(|n| n.facts.role == Role::Tts && n.facts.interrupted.is_some())
                    .map(|n| (n.span.end_unix_nano, n.span))
            })
            .unwrap_or((self.anchor.span.end_unix_nano, self.anchor.span));
        Some(Signal {
            time_unix_nano: at.0,
            source,
            span: at.1,
        })
    }

    /// What the user heard of an interrupted reply: stated explicitly, recorded in a later
    /// LLM context, or the TTS segments that finished before the cut. None when not
    /// interrupted or not known.
    fn spoken_text(&self) -> Option<String> {
        self.interruption_signal()?;
        if let Some(explicit) = self
            .members
            .iter()
            .find_map(|n| n.facts.spoken_text.clone())
        {
            return Some(explicit);
        }
        if let Some(played) = &self.played_per_context {
            return Some(played.clone());
        }
        let tts: Vec<&&Node> = self.with_role(Role::Tts).collect();
        if tts.len() < 2 || tts.iter().all(|n| n.facts.interrupted.is_some()) {
            return None;
        }
        let finished: Vec<&str> = tts
            .iter()
            .filter(|n| n.facts.interrupted.is_none())
            .filter_map(|n| n.facts.agent_text.as_deref())
            .collect();
        Some(finished.join(" "))
    }

    fn first_start(&self, role: Role) -> Option<u64> {
        self.with_role(role).map(|n| n.span.start_unix_nano).min()
    }

    /// When the user stopped speaking: voice activity end, else the end of the user turn
    /// less its reported end-of-turn delay, else the transcript time less the STT delay.
    fn user_speech_end(&self, eou: Option<Reported>, stt: Option<Reported>) -> Option<u64> {
        let ms_to_ns = |ms: f64| (ms * 1e6) as u64;
        self.members
            .iter()
            .filter(|n| n.facts.role == Role::UserSpeaking && n.facts.interrupted.is_none())
            .map(|n| n.span.end_unix_nano)
            .max()
            .or_else(|| {
                let user_turn = self.with_role(Role::UserTurn).last()?;
                Some(
                    user_turn
                        .span
                        .end_unix_nano
                        .saturating_sub(ms_to_ns(eou?.ms)),
                )
            })
            .or_else(|| {
                let stt_span = self.with_role(Role::Stt).last()?;
                Some(
                    stt_span
                        .span
                        .end_unix_nano
                        .saturating_sub(ms_to_ns(stt?.ms)),
                )
            })
    }

    fn first_token_time(&self) -> Option<u64> {
        self.with_role(Role::FirstToken)
            .map(|n| n.span.end_unix_nano)
            .min()
            .or_else(|| {
                self.with_role(Role::Llm)
                    .flat_map(|n| n.span.events.iter())
                    .filter(|e| {
                        let name = e.name.to_ascii_lowercase();
                        name.contains("first_token") || name.contains("first token")
                    })
                    .map(|e| e.time_unix_nano)
                    .min()
            })
    }

    pub fn tool_calls(
        &self,
        session_id: &str,
        revision: u64,
        turn_number: u32,
    ) -> Vec<ToolCallRow> {
        // One call may be traced twice (LiveKit `function_tool` and `execute_tool`, Pipecat
        // call and result spans): spans with the same call id are one call.
        let mut calls: Vec<(ToolFacts, &Span, u64)> = Vec::new();
        for node in self.with_role(Role::Tool) {
            let facts = node.facts.tool.clone().unwrap_or_default();
            let same = facts.call_id.as_ref().and_then(|id| {
                calls
                    .iter_mut()
                    .find(|(c, _, _)| c.call_id.as_ref() == Some(id))
            });
            match same {
                Some((call, _, duration)) => {
                    merge(call, facts);
                    *duration = (*duration).max(node.span.duration_nanos());
                }
                None => calls.push((facts, node.span, node.span.duration_nanos())),
            }
        }
        calls
            .into_iter()
            .map(|(call, span, duration)| ToolCallRow {
                session_id: session_id.to_owned(),
                revision,
                call_index: 0,
                turn_number,
                start_time: unix_seconds(span.start_unix_nano),
                start_time_unix_nano: span.start_unix_nano,
                duration_ms: duration as f64 / 1e6,
                name: call.name.unwrap_or_else(|| span.name.clone()),
                call_id: call.call_id.unwrap_or_default(),
                arguments: call.arguments.unwrap_or_default(),
                result: call.result.unwrap_or_default(),
                is_error: u8::from(call.is_error),
                error_message: call.error_message.unwrap_or_default(),
                trace_id: span.trace_id.to_hex(),
                span_id: span.span_id.to_hex(),
            })
            .collect()
    }

    pub fn row(
        &self,
        session_id: &str,
        revision: u64,
        turn_number: u32,
        calls: &[ToolCallRow],
    ) -> TurnRow {
        let eou_reported = self.first_reported(|f| f.end_of_utterance);
        let stt_reported = self.members.iter().rev().find_map(|n| n.facts.stt);
        let speech_end = self.user_speech_end(eou_reported, stt_reported);
        let llm_start = self.first_start(Role::Llm);
        let tts_start = self.first_start(Role::Tts);
        let agent_speaking = self.first_start(Role::AgentSpeaking);
        let tts_ttfb = measure(
            self.first_reported(|f| f.tts_ttfb),
            tts_start.zip(agent_speaking),
            "tts_start_to_agent_speaking",
        );
        let agent_audio_start =
            agent_speaking.or_else(|| Some(tts_start? + (tts_ttfb.ms? * 1e6) as u64));
        let eou = measure(
            eou_reported,
            speech_end.zip(llm_start),
            "speech_end_to_llm_start",
        );
        let stt = measure(stt_reported, None, "");
        let ttft = measure(
            self.first_reported(|f| f.llm_ttft),
            llm_start.zip(self.first_token_time()),
            "llm_start_to_first_token",
        );
        let v2v = measure(
            self.first_reported(|f| f.voice_to_voice),
            speech_end.zip(agent_audio_start),
            "speech_end_to_agent_audio",
        );
        let tool = if calls.is_empty() {
            Measured {
                ms: None,
                source: String::new(),
            }
        } else {
            Measured {
                ms: Some(calls.iter().map(|c| c.duration_ms).sum()),
                source: "spans".into(),
            }
        };
        let first_of = |role: Role, get: fn(&SpanFacts) -> Option<&String>| -> String {
            self.with_role(role)
                .find_map(|n| get(&n.facts))
                .cloned()
                .unwrap_or_default()
        };
        let llm = self.with_role(Role::Llm);
        let (input_tokens, output_tokens) = llm.fold((0, 0), |(i, o), n| {
            (
                i + n.facts.input_tokens.unwrap_or(0),
                o + n.facts.output_tokens.unwrap_or(0),
            )
        });
        let span = self.anchor.span;
        let start = self
            .members
            .iter()
            .map(|n| n.span.start_unix_nano)
            .min()
            .unwrap_or(span.start_unix_nano);
        let end = self
            .members
            .iter()
            .map(|n| n.span.end_unix_nano)
            .max()
            .unwrap_or(span.end_unix_nano);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        TurnRow {
            session_id: session_id.to_owned(),
            revision,
            turn_number,
            trace_id: span.trace_id.to_hex(),
            span_id: span.span_id.to_hex(),
            start_time: unix_seconds(start),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            framework: self.anchor.facts.framework.as_str().to_owned(),
            user_text: self.user_text(),
            agent_text: self.agent_text(),
            agent_spoken_text: self.spoken_text(),
            interrupted: u8::from(self.interruption_signal().is_some()),
            llm_provider: first_of(Role::Llm, |f| f.provider.as_ref()),
            llm_model: first_of(Role::Llm, |f| f.model.as_ref()),
            stt_provider: first_of(Role::Stt, |f| f.provider.as_ref()),
            stt_model: first_of(Role::Stt, |f| f.model.as_ref()),
            tts_provider: first_of(Role::Tts, |f| f.provider.as_ref()),
            tts_voice: first_of(Role::Tts, |f| f.voice.as_ref().or(f.model.as_ref())),
            end_of_utterance_ms: eou.ms,
            end_of_utterance_source: eou.source,
            stt_ms: stt.ms,
            stt_source: stt.source,
            llm_ttft_ms: ttft.ms,
            llm_ttft_source: ttft.source,
            tts_ttfb_ms: tts_ttfb.ms,
            tts_ttfb_source: tts_ttfb.source,
            tool_ms: tool.ms,
            tool_source: tool.source,
            voice_to_voice_ms: v2v.ms,
            voice_to_voice_source: v2v.source,
            input_tokens,
            output_tokens,
            tool_call_count: count(calls.len()),
            tool_error_count: count(calls.iter().filter(|c| c.is_error == 1).count()),
            error_count: count(self.members.iter().filter(|n| n.span.is_error()).count()),
        }
    }

    pub fn messages(
        &self,
        session_id: &str,
        revision: u64,
        turn_number: u32,
        row: &TurnRow,
        calls: &[ToolCallRow],
    ) -> Vec<MessageRow> {
        let base = |time: u64, who: &str, text: &str| MessageRow {
            session_id: session_id.to_owned(),
            revision,
            message_index: 0,
            turn_number,
            time: unix_seconds(time),
            time_unix_nano: time,
            speaker: who.to_owned(),
            text: text.to_owned(),
            interrupted: 0,
            spoken_text: None,
            tool_name: String::new(),
            trace_id: self.anchor.span.trace_id.to_hex(),
            span_id: self.anchor.span.span_id.to_hex(),
        };
        let mut out = Vec::new();
        if !row.user_text.is_empty() {
            let at = [Role::UserTurn, Role::UserSpeaking, Role::Stt]
                .iter()
                .find_map(|r| self.first_start(*r))
                .unwrap_or(row.start_time_unix_nano);
            out.push(base(at, speaker::USER, &row.user_text));
        }
        for call in calls {
            let text = if call.is_error == 1 {
                format!(
                    "error: {}",
                    if call.error_message.is_empty() {
                        &call.result
                    } else {
                        &call.error_message
                    }
                )
            } else {
                call.result.clone()
            };
            let mut message = base(call.start_time_unix_nano, speaker::TOOL, &text);
            message.tool_name = call.name.clone();
            message.span_id = call.span_id.clone();
            out.push(message);
        }
        if !row.agent_text.is_empty() {
            let at = [Role::AgentSpeaking, Role::Tts]
                .iter()
                .find_map(|r| self.first_start(*r))
                .or_else(|| {
                    self.with_role(Role::Llm)
                        .map(|n| n.span.end_unix_nano)
                        .max()
                })
                .unwrap_or(row.start_time_unix_nano);
            let mut message = base(at, speaker::AGENT, &row.agent_text);
            message.interrupted = row.interrupted;
            message.spoken_text = row.agent_spoken_text.clone();
            out.push(message);
        }
        for node in &self.members {
            if let Some((who, text)) = &node.facts.message {
                out.push(explicit_message(
                    session_id,
                    revision,
                    turn_number,
                    node.span,
                    who,
                    text,
                ));
            }
        }
        out
    }
}

pub fn explicit_message(
    session_id: &str,
    revision: u64,
    turn_number: u32,
    span: &Span,
    who: &str,
    text: &str,
) -> MessageRow {
    MessageRow {
        session_id: session_id.to_owned(),
        revision,
        message_index: 0,
        turn_number,
        time: unix_seconds(span.start_unix_nano),
        time_unix_nano: span.start_unix_nano,
        speaker: normalize_speaker(who).to_owned(),
        text: text.to_owned(),
        interrupted: 0,
        spoken_text: None,
        tool_name: String::new(),
        trace_id: span.trace_id.to_hex(),
        span_id: span.span_id.to_hex(),
    }
}

fn normalize_speaker(who: &str) -> &str {
    match who.to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
        "user" | "customer" | "caller" => speaker::USER,
        "agent" | "assistant" | "bot" => speaker::AGENT,
        "tool" => speaker::TOOL,
        "human" | "human_agent" | "operator" => speaker::HUMAN_AGENT,
        _ => "other",
    }
}

fn merge(into: &mut ToolFacts, from: ToolFacts) {
    into.name = into.name.take().or(from.name);
    into.arguments = into.arguments.take().or(from.arguments);
    into.result = into.result.take().or(from.result);
    into.error_message = into.error_message.take().or(from.error_message);
    into.is_error |= from.is_error;
}
