//! End to end: the Python OpenTelemetry SDK sends a scripted conversation, in Pipecat shape
//! and in LiveKit shape, over gRPC and over HTTP, to convolog running on port 0; the session
//! read back over the API must match the script. The script (tests/e2e/send_conversation.py)
//! prints what it sent as JSON before sending. With `--logs` the agent also writes log lines
//! through Python's `logging` and the SDK's LoggingHandler inside its STT, LLM and tool spans;
//! each must land at its step. A retrieval-augmented chat in the OpenInference
//! conventions (tests/e2e/send_rag_answer.py) must show its cited documents with their scores.

mod common;

use common::*;
use serde_json::Value;

/// Runs a sender script of tests/e2e/ with `args` and returns the JSON it prints. The app runs
/// on this test's runtime, so the sender must not block it.
async fn run_sender(script: &str, args: &[&str]) -> Value {
    let script = format!("{}/tests/e2e/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .await
        .expect("the Python sender runs");
    assert!(
        output.status.success(),
        "sender failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the sender prints its script as JSON")
}

async fn send(
    shape: &str,
    protocol: &str,
    endpoint: &str,
    session_id: &str,
    extra: &[&str],
) -> Value {
    let mut args = vec![
        "--shape",
        shape,
        "--protocol",
        protocol,
        "--endpoint",
        endpoint,
        "--session-id",
        session_id,
    ];
    args.extend_from_slice(extra);
    run_sender("send_conversation.py", &args).await
}

fn close(actual: &Value, expected: &Value, what: &str) {
    let (a, e) = (actual.as_f64(), expected.as_f64());
    match (a, e) {
        (Some(a), Some(e)) => assert!((a - e).abs() < 0.01, "{what}: {a} != {e}"),
        _ => panic!("{what}: got {actual}, expected {expected}"),
    }
}

async fn check(t: &TestApp, shape: &str, protocol: &str) {
    let session_id = format!("e2e-{shape}-{protocol}");
    let endpoint = match protocol {
        "grpc" => t.grpc_url(),
        _ => format!("http://{}", t.app.http_addr),
    };
    let script = send(shape, protocol, &endpoint, &session_id, &[]).await;
    let expected_turns = script["turns"].as_array().expect("script turns");
    let expected_calls: usize = expected_turns
        .iter()
        .map(|t| t["tool_calls"].as_array().map_or(0, Vec::len))
        .sum();
    let transcript = t
        .transcript_when(&session_id, |tr| {
            tr["turns"].as_array().map(Vec::len) == Some(expected_turns.len())
                && tr["tool_calls"].as_array().map(Vec::len) == Some(expected_calls)
        })
        .await;
    assert_eq!(transcript["framework"], shape, "{transcript}");
    assert_eq!(transcript["channel"], "voice");

    for (got, want) in transcript["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .zip(expected_turns)
    {
        let n = &want["turn_number"];
        assert_eq!(got["turn_number"], *n);
        assert_eq!(got["user_text"], want["user_text"], "turn {n} user text");
        assert_eq!(got["agent_text"], want["agent_text"], "turn {n} agent text");
        assert_eq!(
            got["interrupted"], want["interrupted"],
            "turn {n} interrupted"
        );
        if !want["agent_spoken_text"].is_null() {
            assert_eq!(
                got["agent_spoken_text"], want["agent_spoken_text"],
                "turn {n} part heard"
            );
        }
        let latency = &got["latency_ms"];
        close(
            &latency["voice_to_voice"]["ms"],
            &want["voice_to_voice_ms"],
            &format!("turn {n} voice-to-voice"),
        );
        close(
            &latency["llm_ttft"]["ms"],
            &want["llm_ttft_ms"],
            &format!("turn {n} LLM TTFT"),
        );
        close(
            &latency["tts_ttfb"]["ms"],
            &want["tts_ttfb_ms"],
            &format!("turn {n} TTS first audio"),
        );
        close(
            &latency["stt"]["ms"],
            &want["stt_ms"],
            &format!("turn {n} STT"),
        );
        assert!(latency["voice_to_voice"]["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("reported:")));

        let turn_calls: Vec<&Value> = transcript["tool_calls"]
            .as_array()
            .expect("tool calls")
            .iter()
            .filter(|c| c["turn_number"] == *n)
            .collect();
        let want_calls = want["tool_calls"].as_array().expect("script tool calls");
        assert_eq!(turn_calls.len(), want_calls.len(), "turn {n} tool calls");
        for (got_call, want_call) in turn_calls.iter().zip(want_calls) {
            assert_eq!(got_call["name"], want_call["name"]);
            assert_eq!(got_call["is_error"], want_call["is_error"]);
        }
    }

    let interrupted = expected_turns
        .iter()
        .filter(|t| t["interrupted"] == true)
        .count();
    assert_eq!(
        transcript["interruptions"].as_array().map(Vec::len),
        Some(interrupted)
    );
    // Every line of the script appears in the transcript, in order.
    let messages = transcript["messages"].as_array().expect("messages");
    let mut texts = messages
        .iter()
        .filter(|m| m["speaker"] != "tool")
        .map(|m| m["text"].as_str().unwrap_or(""));
    for turn in expected_turns {
        for key in ["user_text", "agent_text"] {
            let want = turn[key].as_str().expect("script text");
            assert!(
                texts.any(|t| t == want),
                "{want:?} missing or out of order in {messages:?}"
            );
        }
    }
}

#[tokio::test]
async fn python_sdk_pipecat_and_livekit_over_grpc_and_http() {
    let t = TestApp::start("e2e").await;
    for shape in ["pipecat", "livekit"] {
        for protocol in ["grpc", "http"] {
            check(&t, shape, protocol).await;
        }
    }
    assert_eq!(t.count("SELECT count() FROM sessions_current").await, 4);
    t.stop().await;
}

/// The log lines of a Pipecat run over `protocol`: each at its step in the timeline (its span,
/// its turn, after the turn starts), under its turn on the page; gone once the session is deleted.
async fn check_logs(t: &TestApp, protocol: &str) {
    let session_id = format!("e2e-logs-{protocol}");
    let endpoint = match protocol {
        "grpc" => t.grpc_url(),
        _ => format!("http://{}", t.app.http_addr),
    };
    let script = send("pipecat", protocol, &endpoint, &session_id, &["--logs"]).await;
    let expected = script["logs"].as_array().expect("script logs");
    let turns = script["turns"].as_array().expect("script turns").len();
    t.transcript_when(&session_id, |tr| {
        tr["turns"].as_array().map(Vec::len) == Some(turns)
    })
    .await;
    let mut timeline = Value::Null;
    let complete = wait_until(async || {
        let (status, body) = get_json(t, &format!("/v1/sessions/{session_id}/timeline")).await;
        timeline = body;
        let lines = timeline["steps"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["kind"] == "log").count());
        status == 200 && lines == expected.len()
    })
    .await;
    assert!(
        complete,
        "{protocol}: not every log line arrived: {timeline}"
    );
    let steps = timeline["steps"].as_array().expect("steps");
    let lines: Vec<&Value> = steps.iter().filter(|s| s["kind"] == "log").collect();
    for want in expected {
        let got = lines
            .iter()
            .find(|l| l["body"] == want["body"] && l["turn_number"] == want["turn_number"])
            .unwrap_or_else(|| panic!("{protocol}: {want} not at its turn in {lines:?}"));
        assert_eq!(got["span_name"], want["span_name"], "{protocol}: {want}");
        assert_eq!(got["severity"], want["severity"], "{protocol}: {want}");
        // Inside its turn: after the turn's own step, and after the span it was written in began.
        let at = steps
            .iter()
            .position(|s| std::ptr::eq(s, *got))
            .expect("a step");
        let turn_step = steps
            .iter()
            .position(|s| s["kind"] == "turn" && s["turn_number"] == want["turn_number"])
            .expect("the turn step");
        assert!(turn_step < at, "{protocol}: {want} before its turn");
        let span = timeline["spans"]
            .as_array()
            .and_then(|spans| spans.iter().find(|s| s["span_id"] == got["span_id"]))
            .unwrap_or_else(|| panic!("{protocol}: the span of {want} is in the waterfall"));
        assert_eq!(span["name"], want["span_name"]);
        let (line_ms, span_ms) = (got["offset_ms"].as_f64(), span["offset_ms"].as_f64());
        assert!(
            line_ms >= span_ms,
            "{protocol}: {want} before its span starts"
        );
    }
    let failed_tool = expected
        .iter()
        .find(|l| l["severity"] == "ERROR")
        .expect("the script logs an error");
    assert!(
        steps.iter().any(|s| s["issue"] == "error_logged"
            && s["turn_number"] == failed_tool["turn_number"]),
        "{protocol}: error_logged at the failing turn"
    );
    let (status, _, page) = text_of(t, &format!("/sessions/{session_id}")).await;
    assert_eq!(status, 200);
    let turn = page
        .split(&format!("id=\"turn-{}\"", failed_tool["turn_number"]))
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("the turn on the page");
    assert!(turn.contains("<details class=\"logs failed\">"), "{turn}");
    let body = failed_tool["body"].as_str().expect("text");
    assert!(
        turn.contains(&page_escape(body)),
        "{protocol}: {body} under its turn"
    );

    let deleted = reqwest::Client::new()
        .delete(t.api_url(&format!("/v1/sessions/{session_id}")))
        .send()
        .await
        .expect("answered")
        .status();
    assert_eq!(deleted, 204);
    let gone = wait_until(async || {
        t.count(&format!(
            "SELECT count() FROM logs WHERE service_name = 'e2e-pipecat-bot' AND positionCaseInsensitiveUTF8(body, '{}') > 0",
            body.replace('\'', "")
        ))
        .await
            == 0
    })
    .await;
    assert!(gone, "{protocol}: the log lines outlive their session");
}

fn page_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[tokio::test]
async fn python_sdk_logging_handler_lines_land_at_their_steps_over_grpc_and_http() {
    let t = TestApp::start("e2e_logs").await;
    for protocol in ["grpc", "http"] {
        check_logs(&t, protocol).await;
    }
    t.stop().await;
}

#[tokio::test]
async fn python_sdk_openinference_retrieval_shows_citations_with_scores() {
    let t = TestApp::start("e2e_rag").await;
    let session_id = "e2e-rag";
    let endpoint = format!("http://{}", t.app.http_addr);
    let script = run_sender(
        "send_rag_answer.py",
        &[
            "--protocol",
            "http",
            "--endpoint",
            &endpoint,
            "--session-id",
            session_id,
        ],
    )
    .await;
    let expected_turns = script["turns"].as_array().expect("script turns");
    let transcript = t
        .transcript_when(session_id, |tr| {
            tr["turns"].as_array().map(Vec::len) == Some(expected_turns.len())
                && tr["messages"].as_array().is_some_and(|m| {
                    m.iter().filter(|m| m["citations"].is_array()).count() == expected_turns.len()
                })
        })
        .await;
    assert_eq!(transcript["framework"], "openinference", "{transcript}");
    let messages = transcript["messages"].as_array().expect("messages");
    for want in expected_turns {
        let n = &want["turn_number"];
        let reply = messages
            .iter()
            .find(|m| m["turn_number"] == *n && m["speaker"] == "agent")
            .expect("the agent's reply");
        assert_eq!(reply["text"], want["answer"], "turn {n}");
        close(&reply["confidence"], &want["confidence"], "confidence");
        let citations = reply["citations"].as_array().expect("citations");
        let cited = want["citations"].as_array().expect("expected citations");
        assert_eq!(citations.len(), cited.len(), "turn {n}: {reply}");
        for (got, want_doc) in citations.iter().zip(cited) {
            assert_eq!(got["document_id"], want_doc["document_id"], "turn {n}");
            assert_eq!(got["title"], want_doc["title"], "turn {n}");
            assert_eq!(got["url"], want_doc["url"], "turn {n}");
            assert_eq!(got["stage"], want["stage"], "turn {n}");
            close(&got["score"], &want_doc["score"], "score");
            assert!(!got["snippet"].as_str().unwrap_or_default().is_empty());
        }
    }
    // The text transcript lists them under the reply, with their scores.
    let (status, _, text) = text_of(
        &t,
        &format!("/v1/sessions/{session_id}/transcript?format=text"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.contains("    (confidence 0.86)"), "{text}");
    assert!(
        text.contains("[1] Opening hours (kb-hours, score 0.97) https://help.example.com/hours"),
        "{text}"
    );
    assert!(
        text.contains("[2] Holiday closures (kb-holidays, score 0.55)"),
        "{text}"
    );
    t.stop().await;
}
