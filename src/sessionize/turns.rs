//! Which spans make up which turn, and what each turn says.
//!
//! A turn is anchored on a span that frameworks emit once per exchange: Pipecat's `turn`,
//! LiveKit's `agent_turn`, a GenAI `invoke_agent`; with none of those, each top-level LLM call
//! (a plain chat app). Every other span joins the turn of its nearest anchor ancestor. Spans
//! that frameworks trace as siblings of the anchor are placed by time: the user's side
//! (`user_turn`, speech before the reply) joins the next anchor, everything else the
//! latest anchor that started before it.

use std::collections::{HashMap, HashSet};

use super::ancestry::from_ancestors;
use super::latency::{measure, Measured};
use super::Node;
use crate::conventions::{GroundingStage, Reported, Role, SpanFacts, ToolFacts};
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
    let opens_turn = |n: &Node| is_anchor_role(n.facts.role) && !n.facts.follows_generation;
    // Whether a span or one above it has a role, for every span at once.
    let covered_by = |has_role: &dyn Fn(Role) -> bool| -> Vec<bool> {
        from_ancestors(
            nodes.len(),
            |i| nodes[i].parent,
            |i, above| has_role(nodes[i].facts.role) || above.copied().unwrap_or(false),
        )
    };
    let under_anchor_role = covered_by(&is_anchor_role);
    let under_llm = covered_by(&|role| role == Role::Llm);
    let below = |covered: &[bool], i: usize| nodes[i].parent.is_some_and(|p| covered[p]);
    let mut anchors: Vec<usize> = (0..nodes.len())
        .filter(|&i| opens_turn(&nodes[i]) && !below(&under_anchor_role, i))
        .collect();
    let top_level_llm = |i: usize| nodes[i].facts.role == Role::Llm && !below(&under_llm, i);
    if anchors.is_empty() {
        let openers = user_speech(nodes, 0..nodes.len(), &top_level_llm);
        anchors = if openers.is_empty() {
            (0..nodes.len()).filter(|&i| top_level_llm(i)).collect()
        } else {
            openers
        };
    } else {
        // The GenAI conventions require no per-turn span: one `invoke_agent` may hold a whole
        // call. An agent turn in which the user spoke more than once is split where they did.
        // Anchors are outermost, so a span lies inside at most one of them.
        let anchor_set: HashSet<usize> = anchors.iter().copied().collect();
        let inside_anchor = from_ancestors(
            nodes.len(),
            |i| nodes[i].parent,
            |i, above: Option<&Option<usize>>| {
                if anchor_set.contains(&i) {
                    Some(i)
                } else {
                    above.copied().flatten()
                }
            },
        );
        let mut inside: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, anchor) in inside_anchor.iter().enumerate() {
            if let Some(a) = *anchor {
                if a != i {
                    inside.entry(a).or_default().push(i);
                }
            }
        }
        anchors = anchors
            .into_iter()
            .flat_map(|a| {
                let openers = if nodes[a].facts.role == Role::AgentTurn {
                    let spans = inside.remove(&a).unwrap_or_default();
                    user_speech(nodes, spans.into_iter(), &top_level_llm)
                } else {
                    Vec::new()
                };
                if openers.len() > 1 {
                    openers
                } else {
                    vec![a]
                }
            })
            .collect();
        anchors.sort_by_key(|&i| (nodes[i].span.start_unix_nano, i));
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

    let turn_of_anchor: HashMap<usize, usize> = anchors
        .iter()
        .enumerate()
        .map(|(turn, &a)| (a, turn))
        .collect();
    let above = from_ancestors(
        nodes.len(),
        |i| nodes[i].parent,
        |i, parent: Option<&Above>| Above {
            turn: turn_of_anchor
                .get(&i)
                .copied()
                .or(parent.and_then(|p| p.turn)),
            user_turn: parent
                .and_then(|p| p.user_turn)
                .or((nodes[i].facts.role == Role::UserTurn).then_some(i)),
        },
    );
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); anchors.len()];
    let mut outside = Vec::new();
    for i in 0..nodes.len() {
        let turn = if containers.contains(&i) || anchors.is_empty() {
            None
        } else {
            Some(turn_of(nodes, &anchors, &above, i))
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

/// Where the user started speaking, among `candidates`, in start order: speech-to-text
/// spans with a transcript; with none, top-level LLM calls whose input ends with a new user
/// message.
fn user_speech(
    nodes: &[Node],
    candidates: impl Iterator<Item = usize>,
    top_level_llm: &dyn Fn(usize) -> bool,
) -> Vec<usize> {
    let candidates: Vec<usize> = candidates.collect();
    let stt: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| nodes[i].facts.role == Role::Stt && nodes[i].facts.user_text.is_some())
        .collect();
    let mut openers = if stt.is_empty() {
        candidates
            .into_iter()
            .filter(|&i| top_level_llm(i) && nodes[i].facts.user_text.is_some())
            .collect()
    } else {
        stt
    };
    openers.sort_by_key(|&i| (nodes[i].span.start_unix_nano, i));
    openers
}

/// What a span's ancestors (itself included) say about its turn.
struct Above {
    /// The turn of the nearest anchor.
    turn: Option<usize>,
    /// The outermost `user_turn` span.
    user_turn: Option<usize>,
}

/// The turn of the nearest anchor above (or at) a span; else, by time, the next turn for the
/// user's side (judged by its outermost user-side span) and the latest one started for the rest.
fn turn_of(nodes: &[Node], anchors: &[usize], above: &[Above], i: usize) -> usize {
    if let Some(turn) = above[i].turn {
        return turn;
    }
    let user_side = nodes[i]
        .parent
        .and_then(|p| above[p].user_turn)
        .or(is_user_side(nodes[i].facts).then_some(i));
    let start = nodes[user_side.unwrap_or(i)].span.start_unix_nano;
    // Anchors are in start order, as nodes are.
    if user_side.is_some() {
        let next = anchors.partition_point(|&a| nodes[a].span.start_unix_nano < start);
        if next < anchors.len() {
            return next;
        }
    }
    anchors
        .partition_point(|&a| nodes[a].span.start_unix_nano <= start)
        .saturating_sub(1)
}

/// Spans that happen before the reply they lead to: the user's side, and the search for
/// what to answer with.
fn is_user_side(facts: &SpanFacts) -> bool {
    match facts.role {
        Role::UserTurn | Role::Stt => true,
        Role::UserSpeaking => facts.interrupted.is_none(),
        Role::Other => facts
            .grounding
            .as_ref()
            .is_some_and(|g| g.stage != GroundingStage::Cited),
        _ => false,
    }
}

pub struct Signal<'a> {
    pub time_unix_nano: u64,
    pub source: &'static str,
    pub span: &'a Span,
}

/// One reply of the agent: a generation, with its own spoken part.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub time_unix_nano: u64,
    pub text: String,
    pub interrupted: bool,
    pub spoken_text: Option<String>,
}

/// One turn's spans, in start order, with their facts.
pub struct Turn<'a> {
    nodes: &'a [Node<'a>],
    anchor: &'a Node<'a>,
    members: Vec<&'a Node<'a>>,
    /// The part of an interrupted reply that was played, as a later LLM context records it.
    pub played_per_context: Option<String>,
}

impl<'a> Turn<'a> {
    pub fn new(nodes: &'a [Node<'a>], anchor: usize, members: &[usize]) -> Self {
        Turn {
            nodes,
            anchor: &nodes[anchor],
            members: members.iter().map(|&i| &nodes[i]).collect(),
            played_per_context: None,
        }
    }

    fn with_role(&self, role: Role) -> impl Iterator<Item = &&'a Node<'a>> + '_ {
        self.members.iter().filter(move |n| n.facts.role == role)
    }

    fn first_reported(&self, get: fn(&SpanFacts) -> Option<Reported>) -> Option<Reported> {
        self.members.iter().find_map(|n| get(n.facts))
    }

    /// Texts of the first role in `roles` that has any, joined in time order.
    fn text_by_roles(&self, roles: &[Role], get: fn(&SpanFacts) -> Option<&String>) -> String {
        for role in roles {
            let texts: Vec<&str> = self
                .with_role(*role)
                .filter_map(|n| get(n.facts).map(String::as_str))
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

    /// The spans that each start one reply of the agent, in time order: LiveKit traces each
    /// generation as its own `agent_turn`; otherwise each top-level LLM call that spoke (text
    /// before a tool call, then the answer). At most one: the turn is one reply.
    fn generations(&self) -> Vec<&'a Node<'a>> {
        let agent_turns: Vec<&'a Node<'a>> = self.with_role(Role::AgentTurn).copied().collect();
        if agent_turns.len() > 1 {
            return agent_turns;
        }
        self.with_role(Role::Llm)
            .filter(|n| n.parent.map(|p| self.nodes[p].facts.role) != Some(Role::Llm))
            .filter(|n| {
                n.facts
                    .agent_text
                    .as_deref()
                    .is_some_and(|t| !t.trim().is_empty())
            })
            .copied()
            .collect()
    }

    /// The agent's replies in time order when there are several; empty when the turn holds
    /// one reply (described by the turn row itself). A generation owns the spans that start
    /// from it up to the next one; the turn's interruption, when no generation states its
    /// own, is the last reply's.
    pub fn replies(&self) -> Vec<Reply> {
        let generations = self.generations();
        if generations.len() < 2 {
            return Vec::new();
        }
        let turn_cut = self.interruption_signal().is_some();
        let mut replies = Vec::new();
        for (i, generation) in generations.iter().enumerate() {
            let from = generation.span.start_unix_nano;
            let until = generations
                .get(i + 1)
                .map_or(u64::MAX, |next| next.span.start_unix_nano);
            let within: Vec<&&Node> = self
                .members
                .iter()
                .filter(|n| (from..until).contains(&n.span.start_unix_nano))
                .collect();
            let llm_text: Vec<&str> = within
                .iter()
                .filter(|n| n.facts.role == Role::Llm)
                .filter_map(|n| n.facts.agent_text.as_deref())
                .filter(|t| !t.trim().is_empty())
                .collect();
            let states_own = generation.facts.role == Role::AgentTurn;
            let text = if llm_text.is_empty() {
                let own = &generation.facts;
                own.agent_text
                    .clone()
                    .or(own.spoken_text.clone())
                    .unwrap_or_default()
            } else {
                llm_text.join(" ")
            };
            let last = i + 1 == generations.len();
            let (interrupted, spoken_text) = if states_own {
                (
                    generation.facts.interrupted.is_some(),
                    generation.facts.spoken_text.clone(),
                )
            } else if last && turn_cut {
                (true, self.spoken_text())
            } else {
                (false, None)
            };
            let audio = within
                .iter()
                .filter(|n| matches!(n.facts.role, Role::Tts | Role::AgentSpeaking))
                .map(|n| n.span.start_unix_nano)
                .min();
            let written = within
                .iter()
                .filter(|n| n.facts.role == Role::Llm)
                .map(|n| n.span.end_unix_nano)
                .min();
            let time_unix_nano = match (audio, written) {
                (Some(a), Some(w)) => a.min(w),
                (a, w) => a.or(w).unwrap_or(from),
            };
            replies.push(Reply {
                time_unix_nano,
                text,
                interrupted,
                spoken_text,
            });
        }
        replies
    }

    /// What the agent meant to say; when only the part heard is known, that part.
    pub fn agent_text(&self) -> String {
        let replies = self.replies();
        if !replies.is_empty() {
            let texts: Vec<&str> = replies
                .iter()
                .map(|r| r.text.as_str())
                .filter(|t| !t.is_empty())
                .collect();
            return texts.join(" ");
        }
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
    /// less its reported end-of-turn delay, else the transcript time less the STT delay
    /// (the transcript time is the STT span's end only where that end marks it).
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
                let transcript_at = stt_span
                    .facts
                    .transcript_at_unix_nano
                    .or((!stt_span.facts.end_is_estimate).then_some(stt_span.span.end_unix_nano))?;
                Some(transcript_at.saturating_sub(ms_to_ns(stt?.ms)))
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
        let [eou, stt, ttft, tts_ttfb] = [eou, stt, ttft, tts_ttfb].map(|m| m.within(v2v.ms));
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
                .find_map(|n| get(n.facts))
                .cloned()
                .unwrap_or_default()
        };
        // LiveKit traces no STT stage: its `user_turn` carries the STT's provider and model.
        let stt_fact = |get: fn(&SpanFacts) -> Option<&String>| -> String {
            let stage = first_of(Role::Stt, get);
            if stage.is_empty() {
                first_of(Role::UserTurn, get)
            } else {
                stage
            }
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
            stt_provider: stt_fact(|f| f.provider.as_ref()),
            stt_model: stt_fact(|f| f.model.as_ref()),
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
            // A speech-to-text span that heard nothing (OpenInference leaves one open as the
            // next turn starts) does not say when the user spoke.
            let heard = self
                .with_role(Role::Stt)
                .filter(|n| n.facts.user_text.is_some())
                .map(|n| n.span.start_unix_nano)
                .min();
            let at = [Role::UserTurn, Role::UserSpeaking]
                .iter()
                .find_map(|r| self.first_start(*r))
                .or(heard)
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
        let replies = self.replies();
        for reply in replies.iter().filter(|r| !r.text.is_empty()) {
            let mut message = base(reply.time_unix_nano, speaker::AGENT, &reply.text);
            message.interrupted = u8::from(reply.interrupted);
            message.spoken_text = reply.spoken_text.clone();
            out.push(message);
        }
        if replies.is_empty() && !row.agent_text.is_empty() {
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
