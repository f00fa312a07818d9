//! Turns in which the agent replies more than once: speech before a tool call, then the answer.
//! Each generation is its own reply in the transcript, in time order.

use serde_json::json;

use crate::conventions::fixtures::{span, SpanBuilder, MS, T0};
use crate::model::conversation::{DerivedSession, MessageRow};
use crate::model::Span;
use crate::sessionize::{sessionize, Rules};

const ASK: &str = "What's the weather in Paris?";
const CHECKING: &str = "Let me check the weather for you.";
const ANSWER: &str = "It is 18 degrees and sunny in Paris, perfect for a walk.";
const PLAYED: &str = "It is 18 degrees and sunny";

fn derive(spans: &[Span]) -> DerivedSession {
    sessionize("s", spans, 1, 0, &Rules::default())
}

/// (speaker, text, interrupted, spoken part) of each message, in order.
fn transcript(messages: &[MessageRow]) -> Vec<(&str, &str, u8, Option<&str>)> {
    messages
        .iter()
        .map(|m| {
            (
                m.speaker.as_str(),
                m.text.as_str(),
                m.interrupted,
                m.spoken_text.as_deref(),
            )
        })
        .collect()
}

fn lk(name: &str, id: u8, parent: u8, at: (u64, u64)) -> SpanBuilder {
    span(name)
        .scope("livekit-agents")
        .attr("session.id", "room-1")
        .id(id)
        .parent(parent)
        .at(at.0, at.1)
}

fn livekit_start() -> Vec<Span> {
    vec![
        span("agent_session")
            .scope("livekit-agents")
            .attr("session.id", "room-1")
            .id(1)
            .at(0, 9000)
            .build(),
        lk("user_turn", 2, 1, (0, 1500))
            .attr("lk.pii.user_transcript", ASK)
            .build(),
    ]
}

#[test]
fn livekit_generations_traced_as_agent_turns_are_replies_of_one_turn() {
    // LiveKit Agents (Python): one `agent_turn` per generation; the answer after the tool
    // call names the generation it follows.
    let mut spans = livekit_start();
    spans.extend([
        lk("agent_turn", 3, 1, (1500, 3000))
            .attr("lk.speech_id", "speech_a")
            .attr("lk.generation_id", "speech_a")
            .attr("lk.pii.user_input", ASK)
            .attr("lk.pii.response.text", CHECKING)
            .attr("lk.interrupted", "false")
            .build(),
        lk("llm_node", 4, 3, (1500, 2000))
            .attr("lk.pii.response.text", CHECKING)
            .build(),
        lk("tts_node", 5, 3, (1700, 3000)).build(),
        lk("tts_request", 11, 5, (1700, 3000)).build(),
        lk("function_tool", 6, 3, (2000, 2400))
            .attr("lk.function_tool.name", "get_weather")
            .attr("lk.function_tool.id", "call_1")
            .attr("lk.pii.function_tool.output", "18C sunny")
            .build(),
        lk("agent_turn", 7, 1, (3000, 6000))
            .attr("lk.speech_id", "speech_b")
            .attr("lk.generation_id", "speech_b")
            .attr("lk.parent_generation_id", "speech_a")
            .attr("lk.pii.response.text", PLAYED)
            .attr("lk.interrupted", "true")
            .build(),
        lk("llm_node", 8, 7, (3000, 3500))
            .attr("lk.pii.response.text", ANSWER)
            .build(),
        lk("tts_node", 9, 7, (3200, 6000)).build(),
        lk("tts_request", 12, 9, (3200, 6000)).build(),
        lk("user_speaking", 10, 1, (5000, 5800))
            .attr("lk.is_interruption", "true")
            .build(),
    ]);
    let derived = derive(&spans);
    assert_eq!(derived.turns.len(), 1);
    assert_eq!(
        transcript(&derived.messages),
        [
            ("user", ASK, 0, None),
            ("agent", CHECKING, 0, None),
            ("tool", "18C sunny", 0, None),
            ("agent", ANSWER, 1, Some(PLAYED)),
        ]
    );
    assert_eq!(derived.turns[0].agent_text, format!("{CHECKING} {ANSWER}"));
    assert_eq!(derived.interruptions.len(), 1);
}

#[test]
fn livekit_generations_under_one_agent_turn_are_replies_too() {
    // LiveKit Agents (JS): one `agent_turn` for the speech, an `llm_node` per generation.
    let mut spans = livekit_start();
    spans.extend([
        lk("agent_turn", 3, 1, (1500, 6000))
            .attr("lk.speech_id", "speech_a")
            .attr("lk.generation_id", "speech_a_2")
            .attr("lk.pii.user_input", ASK)
            .attr("lk.interrupted", "false")
            .build(),
        lk("llm_node", 4, 3, (1500, 2000))
            .attr("lk.pii.response.text", CHECKING)
            .build(),
        lk("function_tool", 5, 3, (2000, 2400))
            .attr("lk.function_tool.name", "get_weather")
            .attr("lk.pii.function_tool.output", "18C sunny")
            .build(),
        lk("llm_node", 6, 3, (2400, 3000))
            .attr("lk.pii.response.text", ANSWER)
            .build(),
        lk("tts_node", 7, 3, (1700, 6000)).build(),
        lk("tts_request", 8, 7, (1700, 2200)).build(),
        lk("tts_request", 9, 7, (2600, 6000)).build(),
    ]);
    let derived = derive(&spans);
    assert_eq!(
        transcript(&derived.messages),
        [
            ("user", ASK, 0, None),
            ("agent", CHECKING, 0, None),
            ("tool", "18C sunny", 0, None),
            ("agent", ANSWER, 0, None),
        ]
    );
}

#[test]
fn pipecat_text_before_and_after_a_tool_call_are_two_replies() {
    let system = json!({"role": "system", "content": "You tell the weather."});
    let user = json!({"role": "user", "content": ASK});
    let asks = json!({"role": "assistant", "content": CHECKING, "tool_calls": [{"id": "call_1",
        "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]});
    let answers = json!({"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"});
    let pc = |name: &str, id: u8, at: (u64, u64)| {
        span(name).scope("pipecat").id(id).parent(2).at(at.0, at.1)
    };
    let spans = vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 8000)
            .attr("conversation.id", "c")
            .attr("conversation.type", "voice")
            .build(),
        span("turn")
            .scope("pipecat.turn")
            .id(2)
            .parent(1)
            .at(0, 7000)
            .attr("conversation.id", "c")
            .attr("turn.number", "1")
            .build(),
        pc("stt", 3, (0, 1200)).attr("transcript", ASK).build(),
        pc("llm", 4, (1300, 1900))
            .attr("gen_ai.operation.name", "chat")
            .attr("input", &json!([system, user]).to_string())
            .attr("output", CHECKING)
            .build(),
        pc("tts", 5, (1500, 2600)).attr("text", CHECKING).build(),
        pc("llm", 6, (2500, 3200))
            .attr("gen_ai.operation.name", "chat")
            .attr("input", &json!([system, user, asks, answers]).to_string())
            .attr("output", ANSWER)
            .build(),
        pc("tts", 7, (3000, 6000)).attr("text", ANSWER).build(),
    ];
    let derived = derive(&spans);
    let agent: Vec<(&str, u64)> = derived
        .messages
        .iter()
        .filter(|m| m.speaker == "agent")
        .map(|m| (m.text.as_str(), (m.time_unix_nano - T0) / MS))
        .collect();
    assert_eq!(agent, [(CHECKING, 1500), (ANSWER, 3000)]);
    let speakers: Vec<&str> = derived
        .messages
        .iter()
        .map(|m| m.speaker.as_str())
        .collect();
    assert_eq!(speakers, ["user", "agent", "tool", "agent"]);
}
