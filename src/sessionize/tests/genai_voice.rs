//! GenAI-convention voice calls with no per-turn span: one `invoke_agent` holds the whole call,
//! with `speech_to_text`, `chat`, `execute_tool` and `text_to_speech` spans under it (the shape
//! the OpenTelemetry JS SDK gives an app that follows the conventions).

use serde_json::{json, Value};

use super::semantics_of;
use crate::conventions::fixtures::{span, SpanBuilder};
use crate::model::conversation::DerivedSession;
use crate::model::Span;
use crate::sessionize::{sessionize, Rules};

fn text(role: &str, content: &str) -> Value {
    json!({"role": role, "parts": [{"type": "text", "content": content}]})
}

fn messages(list: &[Value]) -> String {
    Value::Array(list.to_vec()).to_string()
}

fn child(name: &str, operation: &str, id: u8, at: (u64, u64)) -> SpanBuilder {
    span(name)
        .scope("voice-agent")
        .id(id)
        .parent(1)
        .at(at.0, at.1)
        .attr("gen_ai.operation.name", operation)
        .attr("gen_ai.conversation.id", "call-1")
}

fn stt(id: u8, at: (u64, u64), transcript: &str) -> Span {
    child("speech_to_text whisper-1", "speech_to_text", id, at)
        .attr("gen_ai.request.model", "whisper-1")
        .attr(
            "gen_ai.output.messages",
            &messages(&[text("user", transcript)]),
        )
        .build()
}

fn chat(id: u8, at: (u64, u64), input: &[Value], output: Value) -> SpanBuilder {
    child("chat gpt-4o-mini", "chat", id, at)
        .attr("gen_ai.request.model", "gpt-4o-mini")
        .attr("gen_ai.input.messages", &messages(input))
        .attr("gen_ai.output.messages", &messages(&[output]))
}

fn tts(id: u8, at: (u64, u64), said: &str) -> SpanBuilder {
    child("text_to_speech tts-1", "text_to_speech", id, at)
        .attr("gen_ai.request.model", "tts-1")
        .attr("gen_ai.speech.voice", "alloy")
        .attr(
            "gen_ai.input.messages",
            &messages(&[text("assistant", said)]),
        )
}

const ASK_WEATHER: &str = "What's the weather in Paris?";
const WEATHER: &str = "It is 18 degrees and sunny in Paris.";
const ASK_UMBRELLA: &str = "Do I need an umbrella?";
const UMBRELLA: &str = "No, no rain is expected today.";
const THANKS: &str = "Great, thanks!";
const BYE: &str = "You're welcome, goodbye!";

/// Three turns; the first calls a tool (two `chat` spans), the last one's speech fails.
fn call() -> Vec<Span> {
    let system = text("system", "You are a voice assistant.");
    let asks = json!({"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1",
        "name": "get_weather", "arguments": {"city": "Paris"}}]});
    let answers = json!({"role": "tool", "parts": [{"type": "tool_call_response",
        "id": "call_1", "response": "18C sunny"}]});
    let turn_one = [system.clone(), text("user", ASK_WEATHER)];
    let after_tool = [turn_one.to_vec(), vec![asks.clone(), answers.clone()]].concat();
    let turn_two = [
        after_tool.clone(),
        vec![text("assistant", WEATHER), text("user", ASK_UMBRELLA)],
    ]
    .concat();
    let turn_three = [
        turn_two.clone(),
        vec![text("assistant", UMBRELLA), text("user", THANKS)],
    ]
    .concat();
    vec![
        span("invoke_agent voice-agent")
            .scope("voice-agent")
            .id(1)
            .at(0, 16_000)
            .attr("gen_ai.operation.name", "invoke_agent")
            .attr("gen_ai.agent.name", "voice-agent")
            .attr("gen_ai.conversation.id", "call-1")
            .build(),
        stt(2, (0, 1_500), ASK_WEATHER),
        chat(3, (1_600, 2_200), &turn_one, asks).build(),
        child(
            "execute_tool get_weather",
            "execute_tool",
            4,
            (2_200, 2_500),
        )
        .attr("gen_ai.tool.name", "get_weather")
        .attr("gen_ai.tool.call.id", "call_1")
        .attr("gen_ai.tool.call.result", "18C sunny")
        .build(),
        chat(5, (2_500, 3_100), &after_tool, text("assistant", WEATHER)).build(),
        tts(6, (3_100, 4_500), WEATHER).build(),
        stt(7, (6_000, 7_200), ASK_UMBRELLA),
        chat(8, (7_300, 7_900), &turn_two, text("assistant", UMBRELLA)).build(),
        tts(9, (7_900, 9_000), UMBRELLA).build(),
        stt(10, (11_000, 12_000), THANKS),
        chat(11, (12_100, 12_600), &turn_three, text("assistant", BYE)).build(),
        tts(12, (12_600, 13_000), BYE)
            .attr("error.type", "TimeoutError")
            .error("synthesis timed out")
            .build(),
    ]
}

fn derive(spans: &[Span]) -> DerivedSession {
    sessionize("s", spans, 1, 0, &Rules::default())
}

#[test]
fn each_user_utterance_opens_a_turn_with_its_text_once() {
    let derived = derive(&call());
    let texts: Vec<(&str, &str)> = derived
        .turns
        .iter()
        .map(|t| (t.user_text.as_str(), t.agent_text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            (ASK_WEATHER, WEATHER),
            (ASK_UMBRELLA, UMBRELLA),
            (THANKS, BYE)
        ]
    );
    let tools: Vec<(u32, &str)> = derived
        .tool_calls
        .iter()
        .map(|c| (c.turn_number, c.name.as_str()))
        .collect();
    assert_eq!(tools, [(1, "get_weather")]);
    let users: Vec<&str> = derived
        .messages
        .iter()
        .filter(|m| m.speaker == "user")
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(users, [ASK_WEATHER, ASK_UMBRELLA, THANKS]);
}

#[test]
fn speech_spans_are_the_voice_stages() {
    let derived = derive(&call());
    assert_eq!(derived.session.channel, "voice");
    let first = &derived.turns[0];
    assert_eq!(
        (first.stt_model.as_str(), first.tts_voice.as_str()),
        ("whisper-1", "alloy")
    );
    let last = &derived.turns[2];
    assert_eq!(last.error_count, 1);
    let (_, issues) = semantics_of(&call());
    assert!(issues.contains(&"tts_error@3".to_owned()), "{issues:?}");
    assert!(
        !issues.iter().any(|i| i.starts_with("llm_error")),
        "{issues:?}"
    );
}

#[test]
fn without_speech_spans_a_chat_ending_with_the_user_opens_a_turn() {
    // The same call typed: only the chats say where the user spoke.
    let spans: Vec<Span> = call()
        .into_iter()
        .filter(|s| !s.name.starts_with("speech_to_text") && !s.name.starts_with("text_to_speech"))
        .collect();
    let derived = derive(&spans);
    let users: Vec<&str> = derived.turns.iter().map(|t| t.user_text.as_str()).collect();
    assert_eq!(users, [ASK_WEATHER, ASK_UMBRELLA, THANKS]);
    assert_eq!(derived.session.channel, "chat");
}

#[test]
fn one_invoke_agent_per_turn_stays_one_turn() {
    // The conventions' usual shape: the tool call's two chats are one turn.
    let spans: Vec<Span> = call()
        .into_iter()
        .filter(|s| s.start_unix_nano < call()[6].start_unix_nano)
        .collect();
    let derived = derive(&spans);
    assert_eq!(derived.turns.len(), 1);
    assert_eq!(derived.turns[0].user_text, ASK_WEATHER);
    assert_eq!(derived.turns[0].agent_text, WEATHER);
}

/// `invoke_agent` as the per-turn container, as the conventions now describe it: its end
/// reason says whether the user barged in or the session closed under the turn.
#[test]
fn per_turn_invocations_carry_their_end_reason() {
    let invocation = |id: u8, at: (u64, u64), said: &str, reason: &str| {
        span("invoke_agent assistant")
            .scope("voice-agent")
            .id(id)
            .at(at.0, at.1)
            .attr("gen_ai.operation.name", "invoke_agent")
            .attr("gen_ai.conversation.id", "call-2")
            .attr("gen_ai.input.messages", &messages(&[text("user", said)]))
            .attr(
                "gen_ai.output.messages",
                &messages(&[text("assistant", WEATHER)]),
            )
            .attr("gen_ai.agent.invocation.end_reason", reason)
            .build()
    };
    let spans = vec![
        invocation(1, (0, 2000), ASK_WEATHER, "interrupted"),
        invocation(2, (2000, 4000), ASK_UMBRELLA, "completed"),
    ];
    let derived = sessionize("s", &spans, 1, 0, &Rules::default());
    let interrupted: Vec<u8> = derived.turns.iter().map(|t| t.interrupted).collect();
    assert_eq!(interrupted, [1, 0]);
    assert_eq!(derived.interruptions.len(), 1);

    let closed = vec![
        invocation(1, (0, 2000), ASK_WEATHER, "completed"),
        invocation(2, (2000, 4000), ASK_UMBRELLA, "session_closed"),
    ];
    let derived = sessionize("s", &closed, 1, 0, &Rules::default());
    assert_eq!(derived.turns.len(), 2);
    assert!(derived.turns.iter().all(|t| t.interrupted == 0));
    assert_eq!(derived.session.ended, 1);
    let open = sessionize("s", &spans, 1, 0, &Rules::default());
    assert_eq!(open.session.ended, 0, "no turn said the session closed");
}
