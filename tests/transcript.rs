//! Transcript formats and the audit timeline of one conversation sent as spans.

mod common;

use common::*;
use serde_json::Value;

/// The Pipecat conversation, plus a retried tool call and a handoff to a human.
fn conversation_with_retry_and_handoff(session: &str) -> Vec<SpanSpec> {
    let mut specs = pipecat_conversation(session, 1);
    specs.push(
        SpanSpec::new(1, 100, "llm_tool_call")
            .child_of(20)
            .at(7_950, 8_000)
            .attributes([
                kv("tool.function_name", "lookup_booking"),
                kv("tool.call_id", "call-2"),
                kv("tool.arguments", "{\"ref\":\"BK42\"}"),
                kv("tool.result", "{\"day\":\"Friday\"}"),
            ]),
    );
    specs.push(
        SpanSpec::new(1, 101, "transfer_call")
            .child_of(30)
            .at(14_000, 14_500)
            .attributes([kv("convolog.handoff.target", "human")]),
    );
    specs
}

/// `hh:mm:ss.mmm` to milliseconds.
fn vtt_ms(text: &str) -> u64 {
    let parts: Vec<&str> = text.trim().split([':', '.']).collect();
    assert_eq!(parts.len(), 4, "{text}");
    let n: Vec<u64> = parts.iter().map(|p| p.parse().expect("number")).collect();
    ((n[0] * 60 + n[1]) * 60 + n[2]) * 1000 + n[3]
}

#[tokio::test]
async fn webvtt_transcript_and_audit_timeline() {
    let t = TestApp::start("timeline").await;
    let specs = conversation_with_retry_and_handoff("tl-1");
    t.send_grpc(&specs, anchor(), 100).await;
    t.transcript_when("tl-1", |v| {
        v["turns"].as_array().map(Vec::len) == Some(3)
            && v["tool_calls"].as_array().map(Vec::len) == Some(2)
            && v["handoff_target"] == "human"
    })
    .await;

    let (status, content_type, vtt) = text_of(&t, "/v1/sessions/tl-1/transcript?format=vtt").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/vtt; charset=utf-8");
    assert!(vtt.starts_with("WEBVTT\n\n"), "{vtt}");
    assert!(
        vtt.contains("00:00:00.000 --> 00:00:03.000\n<v User>Hello, I need help with my booking."),
        "{vtt}"
    );
    assert!(
        vtt.contains("<v Agent>Booking BK42 is confirmed for Friday."),
        "{vtt}"
    );
    assert!(vtt.contains("[interrupted]"), "{vtt}");
    assert!(
        vtt.contains("NOTE 00:00:07.400 Tool lookup_booking: error: booking service timed out"),
        "{vtt}"
    );
    // Cues in order, each with a positive length; blocks separated by blank lines.
    let mut last_start = 0;
    let mut cues = 0;
    for line in vtt.lines().filter(|l| l.contains(" --> ")) {
        let (a, b) = line.split_once(" --> ").expect("cue timing");
        let (start, end) = (vtt_ms(a), vtt_ms(b));
        assert!(end > start && start >= last_start, "{line}");
        last_start = start;
        cues += 1;
    }
    assert_eq!(cues, 6, "{vtt}");
    assert!(!vtt.contains("\n\n\n"), "{vtt}");

    let (status, timeline) = get_json(&t, "/v1/sessions/tl-1/timeline").await;
    assert_eq!(status, 200, "{timeline}");
    let steps = timeline["steps"].as_array().expect("steps");
    let kinds =
        |kind: &str| -> Vec<&Value> { steps.iter().filter(|s| s["kind"] == kind).collect() };
    assert_eq!(kinds("turn").len(), 3);
    assert_eq!(kinds("message").len(), 6);
    let calls = kinds("tool_call");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["is_error"], true);
    assert_eq!(calls[0]["arguments"], "{\"ref\":\"BK42\"}");
    assert_eq!(calls[0]["error_message"], "booking service timed out");
    assert_eq!(
        (calls[0]["attempt"].clone(), calls[0]["retry"].clone()),
        (1.into(), false.into())
    );
    assert_eq!(
        (calls[1]["attempt"].clone(), calls[1]["retry"].clone()),
        (2.into(), true.into())
    );
    assert_eq!(calls[1]["result"], "{\"day\":\"Friday\"}");
    assert_eq!(kinds("interruption").len(), 1);
    let handoffs = kinds("handoff");
    assert_eq!(handoffs.len(), 1);
    assert_eq!(handoffs[0]["target"], "human");
    assert_eq!(handoffs[0]["turn_number"], 3);
    assert_eq!(handoffs[0]["at"], "00:14.000");
    // The failed tool span is not listed twice.
    assert_eq!(kinds("error").len(), 0);
    let offsets: Vec<f64> = steps
        .iter()
        .map(|s| s["offset_ms"].as_f64().expect("offset"))
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert_eq!(steps[0]["kind"], "turn");
    assert!(steps[0]["latency_ms"]["voice_to_voice"]["ms"].is_number());

    let spans = timeline["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), specs.len());
    assert_eq!(spans[0]["name"], "conversation");
    assert_eq!(spans[0]["depth"], 0);
    assert_eq!(spans[1]["name"], "turn");
    assert_eq!(spans[1]["depth"], 1);
    assert_eq!(spans[2]["name"], "stt");
    assert_eq!(spans[2]["depth"], 2);
    assert_eq!(spans[2]["duration_ms"], 1500.0);
    assert!(spans.iter().any(|s| s["status"] == "ERROR"));
    assert_eq!(timeline["spans_truncated"], false);

    assert_eq!(t.status_of("/v1/sessions/nope/timeline").await, 404);
    assert_eq!(t.status_of("/v1/sessions/tl-1/timeline?x=1").await, 400);
    t.stop().await;
}
