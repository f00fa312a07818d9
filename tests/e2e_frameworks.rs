//! End to end with the real frameworks, offline, exporting with the OpenTelemetry SDK to
//! convolog on port 0: a real Pipecat pipeline with scripted STT, LLM and TTS services
//! (tests/e2e/pipecat_conversation.py), traced by Pipecat's own tracing and by OpenInference's
//! instrumentation, and a real LiveKit AgentSession (tests/e2e/livekit_conversation.py) in
//! LiveKit's text mode with a scripted LLM, and in voice mode with a scripted caller (VAD and
//! STT), LLM and TTS, audio played at real time and a barge-in. The transcript read back must
//! match the script: user lines in order, every reply (several in a turn) and the part of it that played, the
//! barge-in, the tool calls with their arguments and results, and each stage latency equal to
//! what the framework reported (within 5 ms) and consistent with the injected delay.
//!
//! The frameworks live in venvs of their own (.venv-pipecat, .venv-livekit, made by
//! scripts/test.sh), apart from .venv-test, so their dependencies cannot disturb the others.

mod common;

use common::*;
use serde_json::Value;

/// How far below its injected delay a reported stage may be: clock rounding, and the few
/// milliseconds by which a framework may start its clock after the delay began (LiveKit
/// reported 78.6 ms for an injected 80 ms speech-to-text once, on a busy machine). There is
/// no bound above: on a busy machine the event loop adds its own waiting, which the
/// framework measures too (speed is for benchmarks, not for these tests).
const CLOCK_ROUNDING_MS: f64 = 5.0;
/// How close convolog's figure must be to the one the framework reported.
const REPORTED_TOLERANCE_MS: f64 = 5.0;

/// The Python of a framework's venv: the variable if set, else the venv scripts/test.sh
/// makes; without either the test is skipped.
fn framework_python(variable: &str, venv: &str) -> String {
    if let Ok(python) = std::env::var(variable) {
        return python;
    }
    let python = format!("{}/{venv}/bin/python", env!("CARGO_MANIFEST_DIR"));
    if std::path::Path::new(&python).exists() {
        return python;
    }
    skip(&format!(
        "{variable} is not set and there is no {venv} (scripts/test.sh makes it)"
    ))
}

/// Runs a conversation script; returns the script, what the framework reported per turn and
/// what it recorded as heard of each interrupted reply (LiveKit only).
async fn run_conversation(
    python: &str,
    script: &str,
    t: &TestApp,
    args: &[&str],
) -> (Value, Value, Value) {
    let script = format!("{}/tests/e2e/{script}", env!("CARGO_MANIFEST_DIR"));
    let endpoint = format!("http://{}", t.app.http_addr);
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .args(["--endpoint", &endpoint])
        .args(args)
        .output()
        .await
        .expect("the conversation runs");
    assert!(
        output.status.success(),
        "conversation failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut documents = stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("each line is JSON"));
    let script = documents.next().expect("the script");
    let reported = documents.next().expect("the reported figures");
    (
        script,
        reported["reported"].clone(),
        reported["heard"].clone(),
    )
}

fn json_text(text: &Value) -> Value {
    text.as_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// One stage of one turn: convolog's figure is the framework's, and the framework's holds
/// the injected delay.
fn check_stage(
    latency: &Value,
    reported: &Value,
    injected_ms: Option<f64>,
    stage: &str,
    turn: u64,
) {
    let Some(reported) = reported.as_f64() else {
        return;
    };
    let got = &latency[stage];
    let ms = got["ms"].as_f64();
    assert!(
        ms.is_some_and(|ms| (ms - reported).abs() <= REPORTED_TOLERANCE_MS),
        "turn {turn} {stage}: convolog {got}, framework reported {reported} ms"
    );
    assert!(
        got["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("reported:")),
        "turn {turn} {stage}: {got}"
    );
    if let Some(injected) = injected_ms {
        assert!(
            reported >= injected - CLOCK_ROUNDING_MS,
            "turn {turn} {stage}: reported {reported} ms for an injected {injected} ms"
        );
    }
}

/// The turn's tool calls are the script's: names, arguments, results of those that
/// succeeded, and failures (with their message where the script knows it).
fn check_calls(transcript: &Value, n: u64, want: &Value) {
    let got_calls: Vec<&Value> = transcript["tool_calls"]
        .as_array()
        .expect("tool calls")
        .iter()
        .filter(|c| c["turn_number"] == n)
        .collect();
    let want_calls = want["tool_calls"].as_array().expect("script tool calls");
    assert_eq!(got_calls.len(), want_calls.len(), "turn {n} tool calls");
    for (got_call, want_call) in got_calls.iter().zip(want_calls) {
        assert_eq!(got_call["name"], want_call["name"], "turn {n}");
        assert_eq!(
            json_text(&got_call["arguments"]),
            want_call["arguments"],
            "turn {n}"
        );
        assert_eq!(
            got_call["is_error"], want_call["is_error"],
            "turn {n}: {got_call}"
        );
        if let Some(message) = want_call.get("error_message") {
            assert_eq!(got_call["error_message"], *message, "turn {n}: {got_call}");
        }
        if want_call["is_error"] == false {
            // A result the framework records as JSON is compared as JSON; one it records
            // as text (LiveKit writes Python's `str()` of the value) as that text.
            let got_result = if want_call["result"].is_string() {
                got_call["result"].clone()
            } else {
                json_text(&got_call["result"])
            };
            assert_eq!(got_result, want_call["result"], "turn {n}");
        }
    }
}

/// One interruption in the transcript for each turn the script barges in on.
fn check_interruptions(transcript: &Value, turns: &[Value]) {
    let interrupted = turns.iter().filter(|t| t["interrupted"] == true).count();
    assert_eq!(
        transcript["interruptions"].as_array().map(Vec::len),
        Some(interrupted),
        "{}",
        transcript["interruptions"]
    );
}

async fn check_pipecat(tracing: &str) {
    let t = TestApp::start(&format!("frameworks_{tracing}")).await;
    let session_id = format!("pipecat-{tracing}");
    let python = framework_python("CONVOLOG_TEST_PIPECAT_PYTHON", ".venv-pipecat");
    let (script, reported, _) = run_conversation(
        &python,
        "pipecat_conversation.py",
        &t,
        &["--session-id", &session_id, "--tracing", tracing],
    )
    .await;
    let turns = script["turns"].as_array().expect("script turns");
    let calls: usize = turns
        .iter()
        .map(|t| t["tool_calls"].as_array().map_or(0, Vec::len))
        .sum();
    let transcript = t
        .transcript_when(&session_id, |tr| {
            tr["turns"].as_array().map(Vec::len) == Some(turns.len())
                && tr["tool_calls"].as_array().map(Vec::len) == Some(calls)
        })
        .await;
    assert_eq!(transcript["channel"], "voice", "{transcript}");

    for (index, (got, want)) in transcript["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .zip(turns)
        .enumerate()
    {
        let n = index as u64 + 1;
        assert_eq!(got["turn_number"], n);
        assert_eq!(got["user_text"], want["user_text"], "turn {n} user text");
        assert_eq!(got["agent_text"], want["agent_text"], "turn {n} agent text");
        assert_eq!(
            got["interrupted"], want["interrupted"],
            "turn {n} interrupted"
        );
        if want["interrupted"] == true {
            assert_eq!(
                got["agent_spoken_text"], want["spoken_text"],
                "turn {n} part heard"
            );
        }

        let latency = &got["latency_ms"];
        let framework = reported
            .as_array()
            .and_then(|r| r.iter().find(|r| r["turn_number"] == n))
            .unwrap_or_else(|| panic!("the framework traced turn {n}"));
        check_stage(
            latency,
            &framework["stt_ms"],
            script["stt_ms"].as_f64(),
            "stt",
            n,
        );
        check_stage(
            latency,
            &framework["llm_ttft_ms"],
            script["llm_ttft_ms"].as_f64(),
            "llm_ttft",
            n,
        );
        check_stage(
            latency,
            &framework["tts_ttfb_ms"],
            script["tts_ttfb_ms"].as_f64(),
            "tts_ttfb",
            n,
        );
        check_stage(
            latency,
            &framework["voice_to_voice_ms"],
            None,
            "voice_to_voice",
            n,
        );

        check_calls(&transcript, n, want);
    }

    check_interruptions(&transcript, turns);
    // Every line of the script appears in the transcript, in order: the caller's, then the
    // agent's as heard.
    let messages = transcript["messages"].as_array().expect("messages");
    let mut texts = messages
        .iter()
        .filter(|m| m["speaker"] != "tool")
        .map(|m| m["text"].as_str().unwrap_or(""));
    for turn in turns {
        for key in ["user_text", "agent_text"] {
            let want = turn[key].as_str().expect("script text");
            assert!(
                texts.any(|t| t == want),
                "{want:?} missing or out of order in {messages:#?}"
            );
        }
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_pipecat_pipeline_traced_by_pipecat() {
    check_pipecat("pipecat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_pipecat_pipeline_traced_by_openinference() {
    check_pipecat("openinference").await;
}

/// A real LiveKit AgentSession in `mode` (`text` or `voice`): every reply of a turn is its
/// own agent message, in order; in voice mode also the part of the interrupted reply that
/// LiveKit recorded as heard, and each stage latency as LiveKit reported it.
async fn check_livekit(mode: &str) {
    let t = TestApp::start(&format!("frameworks_livekit_{mode}")).await;
    let python = framework_python("CONVOLOG_TEST_LIVEKIT_PYTHON", ".venv-livekit");
    let session_id = format!("livekit-{mode}");
    let (script, reported, heard) = run_conversation(
        &python,
        "livekit_conversation.py",
        &t,
        &["--session-id", &session_id, "--mode", mode],
    )
    .await;
    let turns = script["turns"].as_array().expect("script turns");
    let replies: usize = turns
        .iter()
        .map(|t| t["replies"].as_array().map_or(0, Vec::len))
        .sum();
    let calls: usize = turns
        .iter()
        .map(|t| t["tool_calls"].as_array().map_or(0, Vec::len))
        .sum();
    let transcript = t
        .transcript_when(&session_id, |tr| {
            tr["turns"].as_array().map(Vec::len) == Some(turns.len())
                && tr["tool_calls"].as_array().map(Vec::len) == Some(calls)
                && tr["messages"].as_array().is_some_and(|m| {
                    m.iter().filter(|m| m["speaker"] == "agent").count() == replies
                })
        })
        .await;
    assert_eq!(transcript["framework"], "livekit", "{transcript}");
    if mode == "voice" {
        assert_eq!(transcript["channel"], "voice", "{transcript}");
    }
    let messages = transcript["messages"].as_array().expect("messages");
    let mut heard = heard.as_array().expect("what was heard").iter();
    for (index, (got, want)) in transcript["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .zip(turns)
        .enumerate()
    {
        let n = index as u64 + 1;
        assert_eq!(got["user_text"], want["user_text"], "turn {n} user text");
        // Every reply of the turn is its own agent message, in order (text before a tool
        // call, then the answer).
        let said: Vec<&Value> = messages
            .iter()
            .filter(|m| m["turn_number"] == n && m["speaker"] == "agent")
            .map(|m| &m["text"])
            .collect();
        let want_replies: Vec<&Value> = want["replies"]
            .as_array()
            .expect("replies")
            .iter()
            .collect();
        assert_eq!(said, want_replies, "turn {n} replies");
        assert_eq!(
            got["interrupted"], want["interrupted"],
            "turn {n} interrupted"
        );
        if want["interrupted"] == true {
            // What LiveKit's transcript synchronizer recorded as played when the caller
            // talked over the reply: a start of it, not the whole text.
            let heard = heard.next().expect("LiveKit recorded what was heard");
            let reply = want_replies.last().and_then(|r| r.as_str()).unwrap_or("");
            let part = heard.as_str().unwrap_or("");
            assert!(
                !part.is_empty() && part.len() < reply.len() && reply.starts_with(part),
                "turn {n}: LiveKit recorded {heard} as heard of {reply:?}"
            );
            assert_eq!(got["agent_spoken_text"], *heard, "turn {n} part heard");
            let reply_message = messages
                .iter()
                .rfind(|m| m["turn_number"] == n && m["speaker"] == "agent")
                .expect("the interrupted reply");
            assert_eq!(reply_message["interrupted"], true, "{reply_message}");
            assert_eq!(reply_message["spoken_text"], *heard, "{reply_message}");
        }
        check_calls(&transcript, n, want);
        let framework = &reported[index];
        if let Some(providers) = script["providers"].as_object() {
            for (stage, provider) in providers {
                assert_eq!(
                    got[&format!("{stage}_provider")],
                    *provider,
                    "turn {n} {stage} provider"
                );
            }
        }
        for stage in [
            "end_of_utterance",
            "stt",
            "llm_ttft",
            "tts_ttfb",
            "voice_to_voice",
        ] {
            let key = format!("{stage}_ms");
            assert_eq!(
                framework[&key].is_number(),
                script[&key].is_number(),
                "turn {n}: LiveKit reports {stage} when the script injects it: {framework}"
            );
            check_stage(
                &got["latency_ms"],
                &framework[&key],
                script[&key].as_f64(),
                stage,
                n,
            );
        }
    }
    check_interruptions(&transcript, turns);
    assert!(heard.next().is_none(), "one interrupted reply per barge-in");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_livekit_agent_session_in_text_mode() {
    check_livekit("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_livekit_agent_session_in_voice_mode() {
    check_livekit("voice").await;
}
