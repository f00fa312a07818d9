//! The sessions summary against a real ClickHouse: counts, labels, flags and span filters.

mod common;

use common::session_fixtures::*;
use common::*;
use serde_json::Value;

#[tokio::test]
async fn summary_labels_flags_and_span_filters() {
    let t = TestApp::start("summary").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;
    let specs = pipecat_conversation("pc-1", 1);
    t.send_grpc(&specs, anchor(), 100).await;
    t.transcript_when("pc-1", |v| v["turns"].as_array().map(Vec::len) == Some(3))
        .await;

    let (status, summary) = get_json(&t, "/v1/sessions/pc-1").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["session_id"], "pc-1");
    assert_eq!(summary["turn_count"], 3);
    assert_eq!(summary["channel"], "voice");
    assert_eq!(summary["trace_ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(summary["latency_ms"]["voice_to_voice"]["count"], 3);
    assert_eq!(summary["latency_ms"]["voice_to_voice"]["p50"], 1100.0);
    assert_eq!(summary["latency_ms"]["voice_to_voice"]["max"], 1400.0);
    assert_eq!(summary["latency_ms"]["llm_ttft"]["p95"], 500.0);
    assert_eq!(summary["tool_error_count"], 1);
    assert_eq!(summary["flagged"], false);
    assert_eq!(
        summary["links"]["transcript"],
        "/v1/sessions/pc-1/transcript"
    );
    assert_eq!(t.status_of("/v1/sessions/nope").await, 404);
    assert_eq!(t.status_of("/v1/sessions/gone").await, 404);
    assert_eq!(t.status_of("/v1/sessions/pc-1?format=x").await, 400);

    // Span names come from the stored spans.
    assert_eq!(id_set(&t, "span_name=llm_tool_call").await, set(&["pc-1"]));
    assert_eq!(id_set(&t, "span_name=nothing,tts").await, set(&["pc-1"]));
    assert_eq!(id_set(&t, "span_name=nothing").await, set(&[]));

    // Labels and flags.
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str| client.request(method, t.api_url(path));
    for (session, label) in [
        ("s1", "vip"),
        ("s1", "follow-up"),
        ("s2", "vip"),
        ("s3", "bug"),
    ] {
        let r = call(
            reqwest::Method::PUT,
            &format!("/v1/sessions/{session}/labels/{label}"),
        )
        .send()
        .await
        .expect("label");
        assert_eq!(r.status(), 200);
    }
    let r = call(reqwest::Method::DELETE, "/v1/sessions/s3/labels/bug")
        .send()
        .await
        .expect("unlabel");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["labels"], serde_json::json!([]));
    let r = call(reqwest::Method::PUT, "/v1/sessions/s4/flag")
        .body(r#"{"reason": "agent was rude"}"#)
        .send()
        .await
        .expect("flag");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["flagged"], true);
    assert_eq!(body["flag_reason"], "agent was rude");
    let r = call(reqwest::Method::PUT, "/v1/sessions/s5/flag")
        .send()
        .await
        .expect("flag");
    assert_eq!(r.status(), 200);
    let r = call(reqwest::Method::DELETE, "/v1/sessions/s5/flag")
        .send()
        .await
        .expect("unflag");
    assert_eq!(r.json::<Value>().await.expect("json")["flagged"], false);

    assert_eq!(id_set(&t, "label=vip").await, set(&["s1", "s2"]));
    assert_eq!(id_set(&t, "label=bug,follow-up").await, set(&["s1"]));
    assert_eq!(id_set(&t, "flagged=true").await, set(&["s4"]));
    assert_eq!(
        id_set(&t, "flagged=false&channel=voice").await,
        set(&["s1", "s2", "s5", "pc-1"])
    );
    let (_, body) = get_json(&t, "/v1/sessions?session=s1").await;
    assert_eq!(
        body["sessions"][0]["labels"],
        serde_json::json!(["follow-up", "vip"])
    );
    let (_, summary) = get_json(&t, "/v1/sessions/s4").await;
    assert_eq!(summary["flagged"], true);
    assert_eq!(summary["flag_reason"], "agent was rude");

    // Bad labels and unknown sessions.
    let r = call(reqwest::Method::PUT, "/v1/sessions/s1/labels/a,b")
        .send()
        .await
        .expect("bad");
    assert_eq!(r.status(), 400);
    let r = call(reqwest::Method::PUT, "/v1/sessions/nope/labels/x")
        .send()
        .await
        .expect("404");
    assert_eq!(r.status(), 404);
    let r = call(reqwest::Method::PUT, "/v1/sessions/s1/flag")
        .body("{not json")
        .send()
        .await
        .expect("bad body");
    assert_eq!(r.status(), 400);
    t.stop().await;
}

#[tokio::test]
async fn a_session_carries_a_bounded_number_of_labels() {
    let t = TestApp::start("labelcap").await;
    t.send_grpc(&pipecat_conversation("lc-1", 1), anchor(), 100)
        .await;
    t.transcript_when("lc-1", |_| true).await;
    let client = reqwest::Client::new();
    let put = |label: String| {
        let request = client.put(t.api_url(&format!("/v1/sessions/lc-1/labels/{label}")));
        async move { request.send().await.expect("answered").status().as_u16() }
    };
    let max = convolog::api::MAX_LABELS_PER_SESSION;
    for n in 0..max {
        assert_eq!(put(format!("l{n}")).await, 200);
    }
    assert_eq!(put("one-too-many".into()).await, 400);
    assert_eq!(
        put("l0".into()).await,
        200,
        "an existing label may be set again"
    );
    let (_, summary) = get_json(&t, "/v1/sessions/lc-1").await;
    assert_eq!(summary["labels"].as_array().map(Vec::len), Some(max));
    t.stop().await;
}
