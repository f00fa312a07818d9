//! What the caller heard and what the agent did, as real exporters send it: a Pipecat
//! conversation in OTLP/JSON with the shapes encoders are allowed to write (empty lists as
//! `{"arrayValue":{}}`, a span without attributes, enums by name, integers as strings),
//! a tool call recorded only in the LLM context, and a barge-in.

mod common;

use common::*;
use serde_json::{json, Value};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PLAYED: &str = "Your order left the warehouse";
const REPLY: &str = "Your order left the warehouse this morning and should arrive on Thursday.";

fn span_id(n: u8) -> String {
    format!("{n:016x}")
}

fn string(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A span as an OTLP/JSON encoder may write it: name-valued kind, string timestamps.
fn span(
    anchor: u64,
    id: u8,
    parent: Option<u8>,
    name: &str,
    (start_ms, end_ms): (u64, u64),
    attributes: Vec<Value>,
) -> Value {
    let mut span = json!({
        "traceId": TRACE,
        "spanId": span_id(id),
        "name": name,
        "kind": "SPAN_KIND_INTERNAL",
        "startTimeUnixNano": (anchor + start_ms * 1_000_000).to_string(),
        "endTimeUnixNano": (anchor + end_ms * 1_000_000).to_string(),
    });
    if let Some(parent) = parent {
        span["parentSpanId"] = json!(span_id(parent));
    }
    if !attributes.is_empty() {
        span["attributes"] = Value::Array(attributes);
    }
    span
}

fn llm(anchor: u64, id: u8, parent: u8, at: (u64, u64), input: &[Value], output: &str) -> Value {
    let mut attributes = vec![
        string("gen_ai.operation.name", "chat"),
        string("input", &Value::Array(input.to_vec()).to_string()),
        json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}}),
        json!({"key": "tools", "value": {"arrayValue": {}}}),
    ];
    if !output.is_empty() {
        attributes.push(string("output", output));
    }
    span(anchor, id, Some(parent), "llm", at, attributes)
}

fn turn(anchor: u64, id: u8, number: &str, at: (u64, u64), interrupted: bool) -> Value {
    span(
        anchor,
        id,
        Some(1),
        "turn",
        at,
        vec![
            string("conversation.id", "fidelity-1"),
            json!({"key": "turn.number", "value": {"intValue": number}}),
            json!({"key": "turn.was_interrupted", "value": {"boolValue": interrupted}}),
        ],
    )
}

fn stt(anchor: u64, id: u8, parent: u8, at: (u64, u64), transcript: &str) -> Value {
    span(
        anchor,
        id,
        Some(parent),
        "stt",
        at,
        vec![
            string("gen_ai.operation.name", "stt"),
            string("transcript", transcript),
        ],
    )
}

fn tts(anchor: u64, id: u8, parent: u8, at: (u64, u64), text: &str) -> Value {
    span(
        anchor,
        id,
        Some(parent),
        "tts",
        at,
        vec![string("gen_ai.operation.name", "tts"), string("text", text)],
    )
}

fn conversation(anchor: u64) -> Value {
    let asked = [
        json!({"role": "system", "content": "You help with orders."}),
        json!({"role": "user", "content": "Where is my order 42?"}),
    ];
    let mut answered = asked.to_vec();
    answered.push(
        json!({"role": "assistant", "tool_calls": [{"id": "call_lookup", "type": "function",
        "function": {"name": "lookup_order", "arguments": "{\"order\": 42}"}}]}),
    );
    answered.push(json!({"role": "tool", "tool_call_id": "call_lookup",
        "content": "{\"status\": \"shipped\", \"eta\": \"Thursday\"}"}));
    let mut after_barge_in = answered.clone();
    after_barge_in.push(json!({"role": "assistant", "content": PLAYED}));
    after_barge_in.push(json!({"role": "user", "content": "Can you text me the tracking link?"}));
    let spans = vec![
        span(
            anchor,
            1,
            None,
            "conversation",
            (0, 12_000),
            vec![
                string("conversation.id", "fidelity-1"),
                string("conversation.type", "voice"),
            ],
        ),
        // A span with no attributes at all, which an encoder may leave out entirely.
        span(anchor, 30, Some(1), "pipeline_setup", (0, 10), vec![]),
        turn(anchor, 2, "1", (0, 6000), true),
        stt(anchor, 3, 2, (0, 900), "Where is my order 42?"),
        llm(anchor, 4, 2, (1000, 1400), &asked, ""),
        llm(anchor, 5, 2, (2100, 2600), &answered, REPLY),
        tts(anchor, 6, 2, (2650, 3300), REPLY),
        turn(anchor, 10, "2", (6500, 12_000), false),
        stt(
            anchor,
            11,
            10,
            (6500, 7300),
            "Can you text me the tracking link?",
        ),
        llm(
            anchor,
            12,
            10,
            (7400, 7900),
            &after_barge_in,
            "Sure, it is on its way.",
        ),
        tts(anchor, 13, 10, (7950, 8500), "Sure, it is on its way."),
    ];
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            string("service.name", "order-bot"),
            {"key": "lk.provider_tools", "value": {"arrayValue": {}}},
            {"key": "empty.map", "value": {"kvlistValue": {}}},
            {"key": "unset", "value": {}}
        ]},
        "scopeSpans": [{"scope": {"name": "pipecat"}, "spans": spans}],
        "schemaUrl": "https://opentelemetry.io/schemas/1.26.0"
    }]})
}

#[tokio::test]
async fn pipecat_tool_call_and_barge_in_over_otlp_json() {
    let t = TestApp::start("fidelity").await;
    let body = conversation(anchor()).to_string().into_bytes();
    let response = t.export_http(body, "application/json", None).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON answer");
    // Nothing rejected or repaired: no partial success to report, so the field is left out.
    assert_eq!(answer, serde_json::json!({}));
    assert_eq!(
        t.count(&format!(
            "SELECT count() FROM spans WHERE trace_id = '{TRACE}'"
        ))
        .await,
        11
    );

    let transcript = t
        .transcript_when("fidelity-1", |t| {
            t["turns"].as_array().map(Vec::len) == Some(2)
                && t["tool_calls"].as_array().map(Vec::len) == Some(1)
        })
        .await;
    let call = &transcript["tool_calls"][0];
    assert_eq!(call["name"], "lookup_order");
    assert_eq!(call["call_id"], "call_lookup");
    assert_eq!(call["arguments"], "{\"order\": 42}");
    assert_eq!(
        call["result"],
        "{\"status\": \"shipped\", \"eta\": \"Thursday\"}"
    );
    assert_eq!(call["is_error"], false);
    assert_eq!(call["turn_number"], 1);
    assert_eq!(call["duration_ms"], 700.0);

    let turns = &transcript["turns"];
    assert_eq!(turns[0]["tool_call_count"], 1);
    assert_eq!(turns[1]["tool_call_count"], 0);
    assert_eq!(turns[0]["interrupted"], true);
    assert_eq!(turns[0]["agent_text"], REPLY);
    assert_eq!(turns[0]["agent_spoken_text"], PLAYED);
    assert_eq!(transcript["interruptions"][0]["spoken_text"], PLAYED);

    let heard: Vec<(&str, &str)> = transcript["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["speaker"].as_str().unwrap_or(""),
                m["spoken_text"]
                    .as_str()
                    .or(m["text"].as_str())
                    .unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        heard,
        [
            ("user", "Where is my order 42?"),
            ("tool", "{\"status\": \"shipped\", \"eta\": \"Thursday\"}"),
            ("agent", PLAYED),
            ("user", "Can you text me the tracking link?"),
            ("agent", "Sure, it is on its way."),
        ]
    );
    t.stop().await;
}
