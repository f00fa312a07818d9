//! Transcript rendering: JSON for programs, plain text for people, WebVTT for players.

use std::fmt::Write;

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::conversation::{speaker, AnswerRow, CitationRow, MessageRow, TurnRow};
use crate::store::SessionDetail;
use crate::timefmt::{offset, rfc3339};

/// The formats of `GET /v1/sessions/{id}/transcript`; the first is the default.
pub const FORMATS: [&str; 3] = ["json", "text", "vtt"];

#[derive(Debug, Serialize, ToSchema)]
pub struct Transcript {
    pub session_id: String,
    pub start_time: String,
    pub end_time: String,
    pub duration_ms: f64,
    pub framework: String,
    pub service_name: String,
    pub agent_name: String,
    pub channel: String,
    pub direction: String,
    pub environment: String,
    pub handoff_target: String,
    pub trace_ids: Vec<String>,
    pub turn_count: u32,
    pub interruption_count: u32,
    pub tool_call_count: u32,
    pub tool_error_count: u32,
    pub message_count: u32,
    pub state: String,
    pub outcome: String,
    pub call_status: String,
    pub ended_reason: String,
    pub intent: String,
    pub skills: Vec<String>,
    pub flow: String,
    pub node: String,
    pub agents: Vec<String>,
    pub detected_issues: Vec<DetectedIssue>,
    pub cost: Cost,
    pub campaign: String,
    /// Masked unless `rules.mask_contacts` is off.
    pub contact: String,
    /// A stable pseudonym for the end user; the raw user id is not kept.
    pub user_name: String,
    pub feedback: String,
    pub confidence: Option<f64>,
    pub sentiment: String,
    pub topic: String,
    pub summary: String,
    pub extracted_data: String,
    pub recording_url: String,
    pub turns: Vec<Turn>,
    pub messages: Vec<Message>,
    pub tool_calls: Vec<ToolCall>,
    pub interruptions: Vec<Interruption>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetectedIssue {
    pub issue: String,
    /// 0 when the issue concerns the session as a whole.
    pub turn_number: u32,
    pub time: String,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Cost {
    pub total_usd: f64,
    pub llm_usd: f64,
    pub stt_usd: f64,
    pub tts_usd: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    pub ms: f64,
    /// `reported:<attribute>` when the framework measured it, `derived:<how>` otherwise.
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Latencies {
    pub end_of_utterance: Option<Latency>,
    pub stt: Option<Latency>,
    pub llm_ttft: Option<Latency>,
    pub tts_ttfb: Option<Latency>,
    pub tool: Option<Latency>,
    pub voice_to_voice: Option<Latency>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Turn {
    pub turn_number: u32,
    pub start_time: String,
    pub offset: String,
    pub user_text: String,
    pub agent_text: String,
    pub agent_spoken_text: Option<String>,
    pub interrupted: bool,
    pub llm_model: String,
    pub llm_provider: String,
    pub stt_provider: String,
    pub tts_provider: String,
    pub tts_voice: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub tool_call_count: u32,
    pub tool_error_count: u32,
    pub latency_ms: Latencies,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Message {
    pub index: u32,
    pub turn_number: u32,
    pub time: String,
    pub offset: String,
    pub speaker: String,
    pub text: String,
    pub interrupted: bool,
    pub spoken_text: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    /// On the agent's reply that ends a turn: the documents the answer stood on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    /// On the agent's reply that ends a turn: the answer's confidence, 0..1, when stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// On the agent's reply that ends a turn: `up` or `down` when the answer was rated.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub feedback: String,
}

/// A document an answer stood on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Citation {
    pub document_id: String,
    pub title: String,
    pub url: String,
    pub score: Option<f64>,
    /// The start of the document's content.
    pub snippet: String,
    /// `cited` (the answer named it), `reranked` or `retrieved`.
    pub stage: String,
}

impl Citation {
    fn of(c: &CitationRow) -> Citation {
        Citation {
            document_id: c.document_id.clone(),
            title: c.title.clone(),
            url: c.url.clone(),
            score: c.score,
            snippet: c.snippet.clone(),
            stage: c.stage.clone(),
        }
    }

    /// `Opening hours (kb-1, score 0.91) https://kb.example/hours`, leaving out what is unknown.
    pub fn line(c: &CitationRow) -> String {
        let name = [&c.title, &c.document_id, &c.url]
            .into_iter()
            .find(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| c.snippet.chars().take(60).collect());
        let mut about = Vec::new();
        if !c.document_id.is_empty() && c.document_id != name {
            about.push(c.document_id.clone());
        }
        if let Some(score) = c.score {
            about.push(format!("score {score:.2}"));
        }
        let mut line = name.clone();
        if !about.is_empty() {
            line.push_str(&format!(" ({})", about.join(", ")));
        }
        if !c.url.is_empty() && c.url != name {
            line.push_str(&format!(" {}", c.url));
        }
        line
    }
}

/// The message index of each turn's last agent message: the reply that carries the turn's
/// grounding.
fn replies(messages: &[MessageRow]) -> std::collections::HashMap<u32, u32> {
    messages
        .iter()
        .filter(|m| m.speaker == speaker::AGENT && m.turn_number > 0)
        .map(|m| (m.turn_number, m.message_index))
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolCall {
    pub turn_number: u32,
    pub time: String,
    pub name: String,
    pub call_id: String,
    pub arguments: String,
    pub result: String,
    pub is_error: bool,
    pub error_message: String,
    pub duration_ms: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Interruption {
    pub turn_number: u32,
    pub time: String,
    pub offset: String,
    pub agent_text: String,
    pub spoken_text: Option<String>,
    pub signal: String,
}

fn latency(ms: Option<f64>, source: &str) -> Option<Latency> {
    ms.map(|ms| Latency {
        ms,
        source: source.to_owned(),
    })
}

impl Transcript {
    pub fn from_detail(detail: &SessionDetail) -> Transcript {
        let s = &detail.session;
        let start = s.start_time_unix_nano;
        Transcript {
            session_id: s.session_id.clone(),
            start_time: rfc3339(start),
            end_time: rfc3339(s.end_time_unix_nano),
            duration_ms: s.duration_ms,
            framework: s.framework.clone(),
            service_name: s.service_name.clone(),
            agent_name: s.agent_name.clone(),
            channel: s.channel.clone(),
            direction: s.direction.clone(),
            environment: s.environment.clone(),
            handoff_target: s.handoff_target.clone(),
            trace_ids: s.trace_ids.clone(),
            turn_count: s.turn_count,
            interruption_count: s.interruption_count,
            tool_call_count: s.tool_call_count,
            tool_error_count: s.tool_error_count,
            message_count: s.message_count,
            state: detail.view.state.clone(),
            outcome: detail.view.outcome.clone(),
            call_status: detail.view.call_status.clone(),
            ended_reason: detail.view.ended_reason.clone(),
            intent: s.intent.clone(),
            skills: s.skills.clone(),
            flow: s.flow.clone(),
            node: s.node.clone(),
            agents: s.agents.clone(),
            detected_issues: detail
                .issues
                .iter()
                .map(|i| DetectedIssue {
                    issue: i.issue.clone(),
                    turn_number: i.turn_number,
                    time: rfc3339(i.time_unix_nano),
                    detail: i.detail.clone(),
                })
                .collect(),
            cost: Cost {
                total_usd: s.cost_usd,
                llm_usd: s.llm_cost_usd,
                stt_usd: s.stt_cost_usd,
                tts_usd: s.tts_cost_usd,
            },
            campaign: s.campaign.clone(),
            contact: s.contact.clone(),
            user_name: s.user_name.clone(),
            feedback: s.feedback.clone(),
            confidence: s.confidence,
            sentiment: s.sentiment.clone(),
            topic: s.topic.clone(),
            summary: s.summary.clone(),
            extracted_data: s.extracted_data.clone(),
            recording_url: s.recording_url.clone(),
            turns: detail.turns.iter().map(|t| turn(t, start)).collect(),
            messages: {
                let replies = replies(&detail.messages);
                detail
                    .messages
                    .iter()
                    .map(|m| {
                        let mut out = message(m, start);
                        if replies.get(&m.turn_number) == Some(&m.message_index) {
                            if let Some(a) = answer_of(detail, m.turn_number) {
                                out.confidence = a.confidence;
                                out.feedback = a.feedback.clone();
                            }
                            out.citations = citations_of(detail, m.turn_number)
                                .map(Citation::of)
                                .collect();
                        }
                        out
                    })
                    .collect()
            },
            tool_calls: detail
                .tool_calls
                .iter()
                .map(|c| ToolCall {
                    turn_number: c.turn_number,
                    time: rfc3339(c.start_time_unix_nano),
                    name: c.name.clone(),
                    call_id: c.call_id.clone(),
                    arguments: c.arguments.clone(),
                    result: c.result.clone(),
                    is_error: c.is_error == 1,
                    error_message: c.error_message.clone(),
                    duration_ms: c.duration_ms,
                })
                .collect(),
            interruptions: detail
                .interruptions
                .iter()
                .map(|i| Interruption {
                    turn_number: i.turn_number,
                    time: rfc3339(i.time_unix_nano),
                    offset: offset(start, i.time_unix_nano),
                    agent_text: i.agent_text.clone(),
                    spoken_text: i.spoken_text.clone(),
                    signal: i.signal.clone(),
                })
                .collect(),
        }
    }
}

fn turn(t: &TurnRow, session_start: u64) -> Turn {
    Turn {
        turn_number: t.turn_number,
        start_time: rfc3339(t.start_time_unix_nano),
        offset: offset(session_start, t.start_time_unix_nano),
        user_text: t.user_text.clone(),
        agent_text: t.agent_text.clone(),
        agent_spoken_text: t.agent_spoken_text.clone(),
        interrupted: t.interrupted == 1,
        llm_model: t.llm_model.clone(),
        llm_provider: t.llm_provider.clone(),
        stt_provider: t.stt_provider.clone(),
        tts_provider: t.tts_provider.clone(),
        tts_voice: t.tts_voice.clone(),
        input_tokens: t.input_tokens,
        output_tokens: t.output_tokens,
        tool_call_count: t.tool_call_count,
        tool_error_count: t.tool_error_count,
        latency_ms: latencies(t),
    }
}

/// Each stage's latency of a turn, with where it came from.
pub fn latencies(t: &TurnRow) -> Latencies {
    Latencies {
        end_of_utterance: latency(t.end_of_utterance_ms, &t.end_of_utterance_source),
        stt: latency(t.stt_ms, &t.stt_source),
        llm_ttft: latency(t.llm_ttft_ms, &t.llm_ttft_source),
        tts_ttfb: latency(t.tts_ttfb_ms, &t.tts_ttfb_source),
        tool: latency(t.tool_ms, &t.tool_source),
        voice_to_voice: latency(t.voice_to_voice_ms, &t.voice_to_voice_source),
    }
}

fn message(m: &MessageRow, session_start: u64) -> Message {
    Message {
        index: m.message_index,
        turn_number: m.turn_number,
        time: rfc3339(m.time_unix_nano),
        offset: offset(session_start, m.time_unix_nano),
        speaker: m.speaker.clone(),
        text: m.text.clone(),
        interrupted: m.interrupted == 1,
        spoken_text: m.spoken_text.clone(),
        tool_name: m.tool_name.clone(),
        citations: Vec::new(),
        confidence: None,
        feedback: String::new(),
    }
}

pub(super) fn answer_of(detail: &SessionDetail, turn_number: u32) -> Option<&AnswerRow> {
    detail.answers.iter().find(|a| a.turn_number == turn_number)
}

pub(super) fn citations_of(
    detail: &SessionDetail,
    turn_number: u32,
) -> impl Iterator<Item = &CitationRow> {
    detail
        .citations
        .iter()
        .filter(move |c| c.turn_number == turn_number)
}

/// A transcript a person can read in a terminal: a header, then per turn a latency line and
/// the messages with their offset from the session start.
pub fn render_text(detail: &SessionDetail) -> String {
    let s = &detail.session;
    let mut out = String::new();
    let mut header = vec![s.framework.clone(), s.channel.clone()];
    header.retain(|h| !h.is_empty() && h != "unknown");
    let _ = writeln!(
        out,
        "Session {} ({}) started {}, {:.1} s, {} turns, {} interruptions, {} tool calls ({} failed)",
        s.session_id,
        header.join(", "),
        rfc3339(s.start_time_unix_nano),
        s.duration_ms / 1000.0,
        s.turn_count,
        s.interruption_count,
        s.tool_call_count,
        s.tool_error_count
    );
    let status = &detail.view;
    let _ = writeln!(
        out,
        "State: {}, outcome: {}{}{}, cost ${:.4}",
        status.state,
        status.outcome,
        if status.call_status.is_empty() {
            String::new()
        } else {
            format!(", call {}", status.call_status)
        },
        if status.ended_reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", status.ended_reason)
        },
        s.cost_usd
    );
    if !s.handoff_target.is_empty() {
        let _ = writeln!(out, "Handed off to: {}", s.handoff_target);
    }
    if !detail.issues.is_empty() {
        let issues: Vec<String> = detail
            .issues
            .iter()
            .map(|i| {
                if i.turn_number == 0 {
                    i.issue.clone()
                } else {
                    format!("{} (turn {})", i.issue, i.turn_number)
                }
            })
            .collect();
        let _ = writeln!(out, "Detected issues: {}", issues.join(", "));
    }
    let replies = replies(&detail.messages);
    let mut current_turn = None;
    for m in &detail.messages {
        if current_turn != Some(m.turn_number) {
            current_turn = Some(m.turn_number);
            if let Some(t) = detail.turns.iter().find(|t| t.turn_number == m.turn_number) {
                let _ = writeln!(out, "\n-- Turn {}{}", t.turn_number, latency_line(t));
            }
        }
        let who = speaker_name(&m.speaker, &m.tool_name, "");
        let mut line = format!(
            "[{}] {who}: {}",
            offset(s.start_time_unix_nano, m.time_unix_nano),
            m.text
        );
        if m.interrupted == 1 {
            match &m.spoken_text {
                Some(spoken) => line.push_str(&format!("  [interrupted; heard: \"{spoken}\"]")),
                None => line.push_str("  [interrupted]"),
            }
        }
        let _ = writeln!(out, "{line}");
        if replies.get(&m.turn_number) == Some(&m.message_index) {
            grounding_lines(&mut out, detail, m.turn_number);
        }
    }
    out
}

/// Under a turn's reply: its confidence and feedback, then one line per document.
fn grounding_lines(out: &mut String, detail: &SessionDetail, turn_number: u32) {
    let mut about = Vec::new();
    if let Some(answer) = answer_of(detail, turn_number) {
        if let Some(confidence) = answer.confidence {
            about.push(format!("confidence {confidence:.2}"));
        }
        if !answer.feedback.is_empty() {
            about.push(format!("feedback {}", answer.feedback));
        }
    }
    if !about.is_empty() {
        let _ = writeln!(out, "    ({})", about.join(", "));
    }
    for (i, c) in citations_of(detail, turn_number).enumerate() {
        let _ = writeln!(out, "    [{}] {}", i + 1, Citation::line(c));
    }
}

fn latency_line(t: &TurnRow) -> String {
    let parts: Vec<String> = [
        ("voice-to-voice", t.voice_to_voice_ms),
        ("end-of-utterance", t.end_of_utterance_ms),
        ("STT", t.stt_ms),
        ("LLM TTFT", t.llm_ttft_ms),
        ("TTS first audio", t.tts_ttfb_ms),
        ("tools", t.tool_ms),
    ]
    .iter()
    .filter_map(|(label, ms)| ms.map(|ms| format!("{label} {ms:.0} ms")))
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// The name a person sees for a speaker.
pub fn speaker_name(speaker: &str, tool_name: &str, agent_name: &str) -> String {
    match speaker {
        speaker::USER => "User".to_owned(),
        speaker::AGENT if !agent_name.is_empty() => format!("Agent ({agent_name})"),
        speaker::AGENT => "Agent".to_owned(),
        speaker::HUMAN_AGENT => "Human agent".to_owned(),
        speaker::TOOL => format!("Tool {tool_name}"),
        other => other.to_owned(),
    }
}

/// `hh:mm:ss.mmm`, as WebVTT wants it.
fn vtt_time(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000
    )
}

/// Cue text: markup characters escaped, one line.
fn vtt_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
}

/// NOTE blocks end at a blank line and must not contain `-->`.
fn vtt_note(text: &str) -> String {
    text.replace("-->", "->").replace(['\r', '\n'], " ")
}

/// Shortest cue: shorter ones flash by.
const MIN_CUE_MS: u64 = 1000;

/// A WebVTT caption track timed from the session start, so it lines up with a recording of
/// the call: one cue per spoken message with the speaker as its voice; an interrupted reply
/// shows what was actually heard; tool calls are NOTE blocks in their place.
pub fn render_vtt(detail: &SessionDetail) -> String {
    let s = &detail.session;
    let start = s.start_time_unix_nano;
    let since_start = |t: u64| t.saturating_sub(start) / 1_000_000;
    let session_end = since_start(s.end_time_unix_nano);
    let mut out = String::from("WEBVTT\n\n");
    let _ = writeln!(
        out,
        "NOTE session {} started {}\n",
        vtt_note(&s.session_id),
        rfc3339(start)
    );
    let spoken: Vec<&MessageRow> = detail
        .messages
        .iter()
        .filter(|m| m.speaker != speaker::TOOL)
        .collect();
    let mut cue = 0;
    for m in &detail.messages {
        let at = since_start(m.time_unix_nano);
        if m.speaker == speaker::TOOL {
            let _ = writeln!(
                out,
                "NOTE {} {}: {}\n",
                vtt_time(at),
                vtt_note(&speaker_name(&m.speaker, &m.tool_name, "")),
                vtt_note(&m.text)
            );
            continue;
        }
        let next = spoken
            .iter()
            .map(|n| since_start(n.time_unix_nano))
            .find(|t| *t > at)
            .unwrap_or(session_end);
        let end = next.max(at + MIN_CUE_MS);
        let mut text = match (&m.spoken_text, m.interrupted == 1) {
            (Some(heard), true) => vtt_text(heard),
            _ => vtt_text(&m.text),
        };
        if m.interrupted == 1 {
            text.push_str(" [interrupted]");
        }
        cue += 1;
        let _ = writeln!(
            out,
            "{cue}\n{} --> {}\n<v {}>{text}\n",
            vtt_time(at),
            vtt_time(end),
            vtt_text(&speaker_name(&m.speaker, &m.tool_name, &s.agent_name))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtt_escapes_markup_and_keeps_cues_on_one_line() {
        assert_eq!(vtt_text("a < b & c >\nd"), "a &lt; b &amp; c &gt; d");
        assert_eq!(vtt_note("x --> y\n\nz"), "x -> y  z");
        assert_eq!(vtt_time(3_723_004), "01:02:03.004");
    }
}
