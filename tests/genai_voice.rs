//! A voice call traced with the GenAI conventions only, as the OpenTelemetry JS SDK exports it
//! (OTLP/JSON, numeric kinds and status codes, integer attributes as numbers): one
//! `invoke_agent` span for the whole call with `speech_to_text`, `chat`, `execute_tool` and
//! `text_to_speech` under it, and no per-turn span.

mod common;

use common::*;
use serde_json::{json, Value};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SESSION: &str = "genai-voice-1";
const UTTERANCES: [&str; 3] = [
    "What's the weather in Paris?",
    "Do I need an umbrella?",
    "Great, thanks!",
];
const REPLIES: [&str; 3] = [
    "It is 18 degrees and sunny in Paris.",
    "No, no rain is expected today.",
    "You're welcome, goodbye!",
];

fn string(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn text(role: &str, content: &str) -> Value {
    json!({"role": role, "parts": [{"type": "text", "content": content}]})
}

fn messages(list: &[Value]) -> String {
    Value::Array(list.to_vec()).to_string()
}

struct Call {
    anchor: u64,
    spans: Vec<Value>,
}

impl Call {
    fn span(
        &mut self,
        id: u8,
        name: &str,
        at: (u64, u64),
        mut attributes: Vec<Value>,
    ) -> &mut Value {
        attributes.push(string("gen_ai.conversation.id", SESSION));
        let mut span = json!({
            "traceId": TRACE,
            "spanId": format!("{id:016x}"),
            "name": name,
            "kind": 1,
            "startTimeUnixNano": (self.anchor + at.0 * 1_000_000).to_string(),
            "endTimeUnixNano": (self.anchor + at.1 * 1_000_000).to_string(),
            "attributes": attributes,
            "status": {"code": 0},
        });
        if id != 1 {
            span["parentSpanId"] = json!(format!("{:016x}", 1));
        }
        self.spans.push(span);
        self.spans.last_mut().expect("just pushed")
    }

    fn operation(
        &mut self,
        id: u8,
        operation: &str,
        model: &str,
        at: (u64, u64),
        mut attributes: Vec<Value>,
    ) -> &mut Value {
        attributes.push(string("gen_ai.operation.name", operation));
        attributes.push(string("gen_ai.request.model", model));
        attributes.push(string("gen_ai.provider.name", "openai"));
        self.span(id, &format!("{operation} {model}"), at, attributes)
    }
}

/// Three turns 5 s apart; the first calls a tool, the last one's speech synthesis fails.
fn call(anchor: u64) -> Value {
    let mut call = Call {
        anchor,
        spans: Vec::new(),
    };
    call.span(
        1,
        "invoke_agent voice-agent",
        (0, 15_000),
        vec![
            string("gen_ai.operation.name", "invoke_agent"),
            string("gen_ai.agent.name", "voice-agent"),
        ],
    );
    let asks = json!({"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1",
        "name": "get_weather", "arguments": {"city": "Paris"}}]});
    let answers = json!({"role": "tool", "parts": [{"type": "tool_call_response",
        "id": "call_1", "response": "18C sunny"}]});
    let mut history = vec![text("system", "You are a voice assistant.")];
    for (n, (said, reply)) in UTTERANCES.iter().zip(REPLIES).enumerate() {
        let at = n as u64 * 5000;
        let id = 10 * (n as u8 + 1);
        call.operation(
            id,
            "speech_to_text",
            "whisper-1",
            (at, at + 1200),
            vec![string(
                "gen_ai.output.messages",
                &messages(&[text("user", said)]),
            )],
        );
        history.push(text("user", said));
        if n == 0 {
            call.operation(
                id + 1,
                "chat",
                "gpt-4o-mini",
                (at + 1300, at + 1800),
                vec![
                    string("gen_ai.input.messages", &messages(&history)),
                    string(
                        "gen_ai.output.messages",
                        &messages(std::slice::from_ref(&asks)),
                    ),
                    json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": 120}}),
                ],
            );
            call.span(
                id + 2,
                "execute_tool get_weather",
                (at + 1800, at + 2100),
                vec![
                    string("gen_ai.operation.name", "execute_tool"),
                    string("gen_ai.tool.name", "get_weather"),
                    string("gen_ai.tool.call.id", "call_1"),
                    string("gen_ai.tool.call.arguments", "{\"city\":\"Paris\"}"),
                    string("gen_ai.tool.call.result", "18C sunny"),
                ],
            );
            history.push(asks.clone());
            history.push(answers.clone());
        }
        call.operation(
            id + 3,
            "chat",
            "gpt-4o-mini",
            (at + 2100, at + 2600),
            vec![
                string("gen_ai.input.messages", &messages(&history)),
                string("gen_ai.output.messages", &messages(&[text("assistant", reply)])),
                json!({"key": "gen_ai.response.time_to_first_chunk", "value": {"doubleValue": 0.3}}),
            ],
        );
        history.push(text("assistant", reply));
        let tts = call.operation(
            id + 4,
            "text_to_speech",
            "tts-1",
            (at + 2600, at + 3800),
            vec![
                string(
                    "gen_ai.input.messages",
                    &messages(&[text("assistant", reply)]),
                ),
                string("gen_ai.speech.voice", "alloy"),
            ],
        );
        if n == 2 {
            tts["status"] = json!({"code": 2, "message": "synthesis timed out"});
            tts["attributes"]
                .as_array_mut()
                .expect("attributes")
                .push(string("error.type", "TimeoutError"));
        }
    }
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            string("service.name", "voice-agent"),
            string("telemetry.sdk.language", "nodejs"),
            string("telemetry.sdk.name", "opentelemetry"),
        ]},
        "scopeSpans": [{"scope": {"name": "voice-agent", "version": "1.0.0"}, "spans": call.spans}]
    }]})
}

#[tokio::test]
async fn genai_voice_call_without_turn_spans_keeps_its_turns() {
    let t = TestApp::start("genai_voice").await;
    let body = call(anchor()).to_string().into_bytes();
    let response = t.export_http(body, "application/json", None).await;
    assert_eq!(response.status(), 200);

    let transcript = t
        .transcript_when(SESSION, |t| t["turns"].as_array().map(Vec::len) == Some(3))
        .await;
    assert_eq!(transcript["channel"], "voice", "{transcript}");
    let turns = transcript["turns"].as_array().expect("turns");
    for (n, turn) in turns.iter().enumerate() {
        assert_eq!(turn["user_text"], UTTERANCES[n], "{turn}");
        assert_eq!(turn["agent_text"], REPLIES[n], "{turn}");
        assert_eq!(turn["stt_provider"], "openai");
        assert_eq!(turn["tts_voice"], "alloy");
    }
    let users: Vec<&str> = transcript["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["speaker"] == "user")
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(users, UTTERANCES);
    assert_eq!(transcript["tool_calls"][0]["name"], "get_weather");
    assert_eq!(transcript["tool_calls"][0]["turn_number"], 1);
    let issues: Vec<(&str, u64)> = transcript["detected_issues"]
        .as_array()
        .expect("issues")
        .iter()
        .filter_map(|i| Some((i["issue"].as_str()?, i["turn_number"].as_u64()?)))
        .collect();
    assert!(issues.contains(&("tts_error", 3)), "{issues:?}");
    t.stop().await;
}
