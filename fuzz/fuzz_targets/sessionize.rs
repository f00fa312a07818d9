//! Sessionization over arbitrary span sets: names and attributes drawn from what the
//! conventions read (with hostile values), parents that point anywhere (cycles included),
//! times in any order. It must not panic, and the same spans in another order must give the
//! same session.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use convolog::model::{Attributes, Span, SpanEvent, SpanId, SpanKind, StatusCode, TraceId};
use convolog::sessionize::{sessionize, trace_session_key, Rules};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "conversation",
    "turn",
    "stt",
    "llm",
    "tts",
    "llm_tool_call",
    "user_speaking",
    "bot_speaking",
    "agent_turn",
    "user_turn",
    "function_tool",
    "llm_request",
    "chat",
    "execute_tool",
];

const KEYS: &[&str] = &[
    "session.id",
    "conversation.id",
    "convolog.session.id",
    "gen_ai.conversation.id",
    "lk.room_name",
    "conversation.type",
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cost",
    "gen_ai.tool.name",
    "gen_ai.tool.call.arguments",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.response.time_to_first_chunk",
    "turn.number",
    "turn.was_interrupted",
    "turn.user_bot_latency_seconds",
    "transcript",
    "text",
    "metrics.ttfb",
    "metrics.audio_seconds",
    "metrics.character_count",
    "lk.user_transcript",
    "lk.response.text",
    "lk.interrupted",
    "lk.transcript_confidence",
    "lk.function_tool.name",
    "lk.function_tool.is_error",
    "input.value",
    "output.value",
    "openinference.span.kind",
    "llm.token_count.prompt",
    "convolog.channel",
    "convolog.message.speaker",
    "convolog.message.text",
    "convolog.outcome",
    "convolog.cost.usd",
    "convolog.feedback",
    "convolog.confidence",
    "convolog.session.ended",
    "convolog.intent",
    "convolog.handoff.target",
];

const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "1.5",
    "1e306",
    "inf",
    "NaN",
    "18446744073709551615",
    "true",
    "false",
    "voice",
    "chat",
    "user",
    "assistant",
    "tool",
    "stt",
    "llm",
    "tts",
    "[{\"role\":\"user\",\"content\":\"hi\"}]",
    "{\"a\":",
    "Grüße\u{0}\n",
];

fn pick<'a>(u: &mut Unstructured, list: &[&'a str]) -> Result<String> {
    if u.ratio(1, 8)? {
        Ok(u.arbitrary::<String>()?)
    } else {
        Ok((*u.choose(list)?).to_owned())
    }
}

fn attributes(u: &mut Unstructured) -> Result<Attributes> {
    let mut pairs = Vec::new();
    for _ in 0..u.int_in_range(0..=6)? {
        pairs.push((pick(u, KEYS)?, pick(u, VALUES)?));
    }
    Ok(Attributes(pairs))
}

fn spans(u: &mut Unstructured) -> Result<Vec<Span>> {
    let count: u64 = u.int_in_range(0..=24)?;
    let base: u64 = 1_767_225_600_000_000_000;
    let mut out = Vec::new();
    for index in 0..count {
        let start = base + u64::from(u.arbitrary::<u32>()?) * 1_000;
        // Mostly forward, sometimes ending before it starts.
        let end = if u.ratio(1, 16)? {
            start.saturating_sub(u64::from(u.arbitrary::<u16>()?))
        } else {
            start + u64::from(u.arbitrary::<u32>()?) * 1_000
        };
        let parent = if u.ratio(3, 4)? {
            Some(SpanId::from(u.int_in_range(1..=count)?.to_be_bytes()))
        } else {
            None
        };
        let mut events = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            events.push(SpanEvent {
                time_unix_nano: start + u64::from(u.arbitrary::<u16>()?),
                name: pick(u, &["exception", "user_transcription", "bot_text"])?,
                attributes: attributes(u)?,
            });
        }
        out.push(Span {
            trace_id: TraceId::from([*u.choose(&[1u8, 2])?; 16]),
            span_id: SpanId::from((index + 1).to_be_bytes()),
            parent_span_id: parent,
            trace_state: String::new(),
            flags: 0,
            name: pick(u, NAMES)?,
            kind: SpanKind::from_otlp(u.int_in_range(0..=5)?),
            start_unix_nano: start,
            end_unix_nano: end,
            status_code: StatusCode::from_otlp(u.int_in_range(0..=2)?),
            status_message: pick(u, VALUES)?,
            attributes: attributes(u)?,
            resource: attributes(u)?.into(),
            scope_name: pick(u, &["pipecat", "livekit", "openinference", ""])?.into(),
            scope_version: "".into(),
            events,
            links: Vec::new(),
            dropped_attributes_count: 0,
            dropped_events_count: 0,
            dropped_links_count: 0,
        });
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(spans) = spans(&mut u) else {
        return;
    };
    // Built once: the rules are not what is fuzzed.
    static RULES: OnceLock<Rules> = OnceLock::new();
    let rules = RULES.get_or_init(Rules::default);
    let _ = trace_session_key(&spans);
    let derived = sessionize("s", &spans, 1, 0, rules);
    let mut reversed = spans;
    reversed.reverse();
    assert_eq!(
        sessionize("s", &reversed, 1, 0, rules),
        derived,
        "the same spans in another order derive the same session"
    );
});
