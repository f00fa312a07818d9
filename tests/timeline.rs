//! The timeline and the summary's latency percentiles read what the sessionizer stored: the
//! timeline's steps from the derived tables, the waterfall capped in its query, the
//! percentiles computed by ClickHouse over the stored turns.

mod common;

use common::*;
use convolog::model::conversation::{
    event_kind, DerivedSession, SessionRow, TimelineEventRow, TurnRow,
};
use convolog::sessionize::{percentile, tombstone};
use serde_json::Value;

const S: u64 = 1_000_000_000;

async fn get_json(t: &TestApp, path: &str) -> Value {
    let response = reqwest::get(t.api_url(path)).await.expect("API answers");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("JSON body")
}

fn session_row(id: &str, revision: u64, start: u64) -> SessionRow {
    let mut row = tombstone(id, revision, 0);
    row.deleted = 0;
    row.start_time_unix_nano = start;
    row.start_time = u32::try_from(start / S).expect("fits");
    row.end_time_unix_nano = start + 60 * S;
    row.duration_ms = 60_000.0;
    row
}

fn derived(
    session: SessionRow,
    turns: Vec<TurnRow>,
    events: Vec<TimelineEventRow>,
) -> DerivedSession {
    DerivedSession {
        session,
        turns,
        messages: Vec::new(),
        tool_calls: Vec::new(),
        interruptions: Vec::new(),
        issues: Vec::new(),
        timeline_events: events,
        answers: Vec::new(),
        citations: Vec::new(),
        contact: Default::default(),
    }
}

/// Turns at `revision` whose voice-to-voice and TTFT latencies are these (None: not measured).
fn turns(session: &SessionRow, latencies: &[(Option<f64>, Option<f64>)]) -> Vec<TurnRow> {
    latencies
        .iter()
        .enumerate()
        .map(|(i, (v2v, ttft))| TurnRow {
            session_id: session.session_id.clone(),
            revision: session.revision,
            turn_number: u32::try_from(i + 1).expect("few"),
            start_time: session.start_time,
            start_time_unix_nano: session.start_time_unix_nano + i as u64 * S,
            voice_to_voice_ms: *v2v,
            llm_ttft_ms: *ttft,
            ..TurnRow::default()
        })
        .collect()
}

#[tokio::test]
async fn summary_percentiles_are_nearest_rank_over_the_current_turns() {
    let t = TestApp::start("stage_percentiles").await;
    let t0 = (anchor() / S) * S;
    let v2v = [900.0, 1400.0, 1100.0, 700.0];
    let ttft = [120.0, 80.0, 500.0];
    // An older revision with other values must not count.
    let old = session_row("p-1", 5, t0);
    let old_turns = turns(&old, &[(Some(1.0), Some(1.0))]);
    let current = session_row("p-1", 10, t0);
    let current_turns = turns(
        &current,
        &[
            (Some(v2v[0]), Some(ttft[0])),
            (Some(v2v[1]), None),
            (Some(v2v[2]), Some(ttft[1])),
            (Some(v2v[3]), Some(ttft[2])),
            (None, None),
        ],
    );
    for d in [
        derived(old, old_turns, Vec::new()),
        derived(current, current_turns, Vec::new()),
    ] {
        t.app
            .store
            .write_derived(&[], std::slice::from_ref(&d), &[])
            .await
            .expect("write session");
    }

    let summary = get_json(&t, "/v1/sessions/p-1").await;
    let latency = &summary["latency_ms"];
    for (stage, values) in [("voice_to_voice", &v2v[..]), ("llm_ttft", &ttft[..])] {
        let got = &latency[stage];
        assert_eq!(got["count"], values.len(), "{stage}: {got}");
        for (field, q) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("max", 1.0)] {
            let want = percentile(values, q).expect("values");
            assert_eq!(got[field].as_f64(), Some(want), "{stage} {field}: {got}");
        }
    }
    // Even counts take the lower middle, as the session row's p50 does.
    assert_eq!(latency["voice_to_voice"]["p50"], 900.0);
    assert_eq!(latency["voice_to_voice"]["max"], 1400.0);
    // A stage no turn measured.
    assert_eq!(latency["stt"]["count"], 0);
    assert_eq!(latency["stt"]["p95"], Value::Null);
    t.stop().await;
}

#[tokio::test]
async fn timeline_steps_come_from_the_stored_events() {
    let t = TestApp::start("timeline_events").await;
    let t0 = (anchor() / S) * S;
    let session = session_row("e-1", 10, t0);
    let turn_rows = turns(&session, &[(Some(900.0), None), (Some(800.0), None)]);
    let event = |index: u32, kind: &str, turn_number: u32, at_s: u64| TimelineEventRow {
        session_id: "e-1".into(),
        revision: 10,
        event_index: index,
        kind: kind.into(),
        turn_number,
        time: u32::try_from((t0 + at_s * S) / S).expect("fits"),
        time_unix_nano: t0 + at_s * S,
        span_name: format!("span-{index}"),
        intent: String::new(),
        flow: String::new(),
        node: String::new(),
        handoff_target: String::new(),
        status_message: String::new(),
        trace_id: String::new(),
        span_id: String::new(),
    };
    let mut intent = event(0, event_kind::INTENT, 0, 0);
    intent.intent = "billing".into();
    let mut handoff = event(1, event_kind::HANDOFF, 2, 1);
    handoff.handoff_target = "human".into();
    let mut error = event(2, event_kind::ERROR, 2, 3);
    error.status_message = "timeout".into();
    t.app
        .store
        .write_derived(
            &[],
            &[derived(session, turn_rows, vec![intent, handoff, error])],
            &[],
        )
        .await
        .expect("write session");

    let timeline = get_json(&t, "/v1/sessions/e-1/timeline").await;
    let steps: Vec<(String, Value, String)> = timeline["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().expect("kind").to_owned(),
                s["turn_number"].clone(),
                s["at"].as_str().expect("at").to_owned(),
            )
        })
        .collect();
    let step = |kind: &str, turn: Value, at: &str| (kind.to_owned(), turn, at.to_owned());
    assert_eq!(
        steps,
        [
            // A turn is listed before an intent stated at the same instant.
            step("turn", 1.into(), "00:00.000"),
            step("intent", Value::Null, "00:00.000"),
            step("turn", 2.into(), "00:01.000"),
            step("handoff", 2.into(), "00:01.000"),
            step("error", 2.into(), "00:03.000"),
        ],
        "{timeline}"
    );
    let by_kind = |kind: &str| {
        timeline["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["kind"] == kind))
            .cloned()
            .expect("step")
    };
    assert_eq!(by_kind("intent")["intent"], "billing");
    assert_eq!(by_kind("handoff")["target"], "human");
    assert_eq!(by_kind("handoff")["span_name"], "span-1");
    assert_eq!(by_kind("error")["message"], "timeout");
    // No spans were stored for this session: the waterfall is empty, not an error.
    assert_eq!(timeline["spans"], Value::Array(Vec::new()));
    assert_eq!(timeline["spans_truncated"], false);
    t.stop().await;
}

#[tokio::test]
async fn waterfall_is_capped_by_its_query() {
    const SHOWN: usize = 5000;
    let t = TestApp::start("waterfall_cap").await;
    let mut specs = vec![SpanSpec::new(1, 1, "conversation")
        .at(0, 60_000)
        .attributes([kv("conversation.id", "big-1")])];
    // More children than the waterfall shows, each starting a millisecond later.
    specs.extend((0..SHOWN as u64 + 2).map(|i| {
        SpanSpec::new(1, 10 + i, "step")
            .child_of(1)
            .at(1 + i, 2 + i)
    }));
    for r in requests(&specs.iter().collect::<Vec<_>>(), anchor(), 1000) {
        t.export_grpc(r).await.expect("export");
    }
    let url = "/v1/sessions/big-1";
    let mut stored = 0;
    for _ in 0..300 {
        if t.status_of(url).await == 200 {
            stored = get_json(&t, url).await["span_count"].as_u64().unwrap_or(0);
            if stored == specs.len() as u64 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored,
        specs.len() as u64,
        "the session never got all its spans"
    );

    let timeline = get_json(&t, "/v1/sessions/big-1/timeline").await;
    let spans = timeline["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), SHOWN);
    assert_eq!(timeline["spans_truncated"], true);
    // The earliest spans are the ones shown, the root first and its children under it.
    assert_eq!(spans[0]["name"], "conversation");
    assert_eq!(spans[0]["depth"], 0);
    assert!(spans[1..]
        .iter()
        .all(|s| s["depth"] == 1 && s["name"] == "step"));
    assert_eq!(spans[SHOWN - 1]["offset_ms"], (SHOWN - 1) as f64);
    t.stop().await;
}
