//! End to end: the real OpenTelemetry JS SDK sends a voice call traced with the GenAI
//! conventions only (tests/e2e-js/send_call.mjs: one `invoke_agent` for the whole call, no
//! per-turn span) over OTLP/HTTP to convolog on port 0; the session read back over the API has
//! the script's turns, each user utterance once, the voice channel and the failed speech.
//! Needs Node and the packages of tests/e2e-js (`npm ci` there; scripts/test.sh runs it).

mod common;

use common::*;
use serde_json::Value;

const SCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e-js");

async fn send(endpoint: &str, session_id: &str) -> Value {
    if !std::path::Path::new(SCRIPT_DIR)
        .join("node_modules")
        .exists()
    {
        skip("tests/e2e-js has no node_modules (run `npm ci` there)");
    }
    let output = tokio::process::Command::new("node")
        .current_dir(SCRIPT_DIR)
        .args([
            "send_call.mjs",
            "--endpoint",
            endpoint,
            "--session-id",
            session_id,
        ])
        .output()
        .await
        .unwrap_or_else(|e| skip(&format!("node does not run: {e}")));
    assert!(
        output.status.success(),
        "sender failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the sender prints its script as JSON")
}

#[tokio::test]
async fn js_sdk_genai_voice_call_keeps_its_turns() {
    let t = TestApp::start("e2e_js").await;
    let session_id = "e2e-js-genai";
    let script = send(&format!("http://{}", t.app.http_addr), session_id).await;
    let expected = script["turns"].as_array().expect("script turns");

    let transcript = t
        .transcript_when(session_id, |tr| {
            tr["turns"].as_array().map(Vec::len) == Some(expected.len())
        })
        .await;
    assert_eq!(transcript["channel"], "voice", "{transcript}");
    let turns = transcript["turns"].as_array().expect("turns");
    for (turn, want) in turns.iter().zip(expected) {
        assert_eq!(turn["user_text"], want["user"], "{turn}");
        assert_eq!(turn["agent_text"], want["agent"], "{turn}");
        assert_eq!(turn["tts_voice"], "alloy");
    }
    let users: Vec<&Value> = transcript["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["speaker"] == "user")
        .map(|m| &m["text"])
        .collect();
    let said: Vec<&Value> = expected.iter().map(|t| &t["user"]).collect();
    assert_eq!(users, said);
    assert_eq!(transcript["tool_calls"][0]["name"], "get_weather");
    assert_eq!(transcript["tool_calls"][0]["turn_number"], 1);
    let failed_speech = transcript["detected_issues"]
        .as_array()
        .expect("issues")
        .iter()
        .any(|i| i["issue"] == "tts_error" && i["turn_number"] == 3);
    assert!(failed_speech, "{}", transcript["detected_issues"]);
    t.stop().await;
}
