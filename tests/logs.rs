//! The logs API against a real ClickHouse: every list filter, sort and pagination, the
//! summary, labels and flags.

mod common;

use std::collections::BTreeSet;

use common::*;
use convolog::model::conversation::{DerivedSession, MessageRow, SessionRow};
use convolog::sessionize::tombstone;
use serde_json::Value;

const S: u64 = 1_000_000_000;

/// What a spreadsheet must show as text: a formula, quotes, a comma, a line break, UTF-8.
const TRICKY_PREVIEW: &str = "=SUM(A1), said \"Grüße\"\nnext line";

/// A session row written straight to the derived tables (no spans behind it).
struct Fixture {
    row: SessionRow,
    messages: Vec<&'static str>,
}

fn session(id: &str, start: u64, f: impl FnOnce(&mut SessionRow)) -> Fixture {
    let mut row = tombstone(id, 10, 0);
    row.deleted = 0;
    row.start_time_unix_nano = start;
    row.start_time = u32::try_from(start / S).expect("fits");
    row.end_time_unix_nano = start + 10 * S;
    row.duration_ms = 10_000.0;
    row.trace_ids = vec![format!("{id}-trace")];
    f(&mut row);
    Fixture {
        row,
        messages: Vec::new(),
    }
}

fn derived(fixture: &Fixture) -> DerivedSession {
    let s = &fixture.row;
    DerivedSession {
        session: s.clone(),
        turns: Vec::new(),
        messages: fixture
            .messages
            .iter()
            .enumerate()
            .map(|(i, text)| MessageRow {
                session_id: s.session_id.clone(),
                revision: s.revision,
                message_index: u32::try_from(i).expect("few"),
                turn_number: 1,
                time: s.start_time,
                time_unix_nano: s.start_time_unix_nano + i as u64 * S,
                speaker: "user".into(),
                text: (*text).into(),
                interrupted: 0,
                spoken_text: None,
                tool_name: String::new(),
                trace_id: String::new(),
                span_id: String::new(),
            })
            .collect(),
        tool_calls: Vec::new(),
        interruptions: Vec::new(),
        issues: Vec::new(),
        timeline_events: Vec::new(),
    }
}

/// Six sessions that differ in every filtered column, and one deleted.
fn fixtures(t0: u64) -> Vec<Fixture> {
    let mut s1 = session("s1", t0, |r| {
        r.channel = "voice".into();
        r.direction = "inbound".into();
        r.environment = "prod".into();
        r.agent_name = "booker".into();
        r.service_name = "svc-a".into();
        r.framework = "pipecat".into();
        r.models = vec!["gpt-4o-mini".into()];
        r.duration_ms = 60_000.0;
        r.turn_count = 5;
        r.message_count = 10;
        r.interruption_count = 2;
        r.tool_call_count = 3;
        r.tool_error_count = 1;
        r.error_span_count = 1;
        r.voice_to_voice_p50_ms = Some(900.0);
        r.voice_to_voice_p95_ms = Some(1500.0);
        r.llm_ttft_p50_ms = Some(400.0);
        r.preview = "I want a refund".into();
        r.derived_state = "RESOLVED".into();
        r.ended_outcome = "Success".into();
        r.derived_call_status = "Completed".into();
        r.intent = "refund".into();
        r.skills = vec!["lookup_order".into(), "create_refund".into()];
        r.flow = "support".into();
        r.detected_issues = vec!["slow_turn".into()];
        r.cost_usd = 0.05;
        r.topic = "billing".into();
        r.contact = "********4567".into();
    });
    s1.messages = vec!["I want a REFUND please", "thanks"];
    let s2 = session("s2", t0 + 10 * S, |r| {
        r.channel = "voice".into();
        r.direction = "outbound".into();
        r.environment = "prod".into();
        r.agent_name = "booker".into();
        r.service_name = "svc-a".into();
        r.framework = "livekit".into();
        r.models = vec!["gpt-4o".into()];
        r.duration_ms = 30_000.0;
        r.turn_count = 3;
        r.message_count = 6;
        r.voice_to_voice_p50_ms = Some(700.0);
        r.voice_to_voice_p95_ms = Some(800.0);
        r.llm_ttft_p50_ms = Some(300.0);
        r.handoff_target = "human".into();
        r.derived_state = "WITH_AGENT".into();
        r.ended_outcome = "To Agent".into();
        r.derived_ended_reason = "transfer".into();
        r.skills = vec!["lookup_order".into()];
        r.node = "greeting".into();
        r.feedback = "down".into();
        r.campaign = "spring".into();
    });
    let mut s3 = session("s3", t0 + 20 * S, |r| {
        r.channel = "web_chat".into();
        r.direction = "web".into();
        r.environment = "staging".into();
        r.agent_name = "helper".into();
        r.service_name = "svc-b".into();
        r.framework = "genai".into();
        r.models = vec!["claude".into()];
        r.duration_ms = 5_000.0;
        r.turn_count = 2;
        r.message_count = 4;
        r.preview = TRICKY_PREVIEW.into();
        r.derived_state = "AWAITING_USER".into();
        r.expires_at = u32::MAX;
        r.user_name = "Calm Otter 42".into();
    });
    s3.messages = vec!["Grüße aus München"];
    let s4 = session("s4", t0 + 30 * S, |r| {
        r.channel = "sms".into();
        r.direction = "inbound".into();
        r.environment = "staging".into();
        r.agent_name = "helper".into();
        r.service_name = "svc-b".into();
        r.framework = "genai".into();
        r.models = vec!["gpt-4o-mini".into(), "claude".into()];
        r.duration_ms = 120_000.0;
        r.turn_count = 8;
        r.message_count = 16;
        r.interruption_count = 1;
        r.voice_to_voice_p50_ms = Some(1200.0);
        r.voice_to_voice_p95_ms = Some(2500.0);
        r.llm_ttft_p50_ms = Some(800.0);
        // Past its inactivity deadline: the ALIAS columns make it EXPIRED.
        r.derived_state = "AWAITING_USER".into();
        r.ended_outcome = "Skill Error".into();
        r.derived_call_status = "Active".into();
        r.detected_issues = vec!["slow_turn".into(), "tool_error".into()];
        r.cost_usd = 0.02;
        r.sentiment = "negative".into();
    });
    let s5 = session("s5", t0 + 40 * S, |r| {
        r.channel = "voice".into();
        r.direction = "inbound".into();
        r.environment = "prod".into();
        r.agent_name = "booker".into();
        r.service_name = "svc-a".into();
        r.framework = "pipecat".into();
        r.duration_ms = 45_000.0;
        r.turn_count = 4;
        r.message_count = 8;
        r.voice_to_voice_p50_ms = Some(1000.0);
        r.voice_to_voice_p95_ms = Some(1500.0);
        r.llm_ttft_p50_ms = Some(500.0);
        r.derived_state = "RESOLVED".into();
        r.ended_outcome = "Budget Exceeded".into();
        r.outcome_explicit = 1;
        r.confidence = Some(0.9);
    });
    let mut gone = session("gone", t0 + 50 * S, |r| {
        r.channel = "voice".into();
        r.deleted = 1;
    });
    gone.messages = vec!["refund"];
    vec![s1, s2, s3, s4, s5, gone]
}

async fn get_json(t: &TestApp, path: &str) -> (u16, Value) {
    let response = reqwest::get(t.api_url(path)).await.expect("API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn ids(t: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = get_json(t, &format!("/v1/sessions?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session_id"].as_str().expect("id").to_owned())
        .collect()
}

async fn id_set(t: &TestApp, query: &str) -> BTreeSet<String> {
    ids(t, query).await.into_iter().collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Second-aligned instant as the API takes it.
fn instant(unix_nano: u64) -> String {
    let text = convolog::timefmt::rfc3339(unix_nano);
    text.replace(".000Z", "Z")
}

async fn load_fixtures(t: &TestApp, t0: u64) {
    let fixtures = fixtures(t0);
    let sessions: Vec<DerivedSession> = fixtures.iter().map(derived).collect();
    t.app
        .store
        .write_derived(&[], &sessions, &[])
        .await
        .expect("write fixtures");
    // An older revision of s4 mentioned a refund; only the current revision counts.
    let mut old = fixtures
        .into_iter()
        .find(|f| f.row.session_id == "s4")
        .expect("s4");
    old.row.revision = 5;
    old.messages = vec!["where is my refund"];
    let old = derived(&old);
    t.app
        .store
        .write_derived(&[], std::slice::from_ref(&old), &[])
        .await
        .expect("old revision");
}

#[tokio::test]
async fn every_filter_selects_the_right_sessions() {
    let t = TestApp::start("list_filters").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;

    let all = set(&["s1", "s2", "s3", "s4", "s5"]);
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        ("".into(), all.clone()),
        ("environment=prod".into(), set(&["s1", "s2", "s5"])),
        ("channel=voice".into(), set(&["s1", "s2", "s5"])),
        ("channel=web_chat,sms".into(), set(&["s3", "s4"])),
        ("channel=web_chat&channel=sms".into(), set(&["s3", "s4"])),
        ("direction=outbound".into(), set(&["s2"])),
        ("agent=helper".into(), set(&["s3", "s4"])),
        ("service=svc-a".into(), set(&["s1", "s2", "s5"])),
        ("framework=livekit,genai".into(), set(&["s2", "s3", "s4"])),
        ("handoff_target=human".into(), set(&["s2"])),
        ("model=gpt-4o-mini".into(), set(&["s1", "s4"])),
        ("model=claude,gpt-4o".into(), set(&["s2", "s3", "s4"])),
        ("session=S".into(), all.clone()),
        ("session=4".into(), set(&["s4"])),
        ("duration_ms_min=45000".into(), set(&["s1", "s4", "s5"])),
        ("duration_ms_max=30000".into(), set(&["s2", "s3"])),
        (
            "duration_ms_min=30000&duration_ms_max=60000".into(),
            set(&["s1", "s2", "s5"]),
        ),
        ("turns_min=5".into(), set(&["s1", "s4"])),
        ("messages_max=6".into(), set(&["s2", "s3"])),
        ("interruptions_min=2".into(), set(&["s1"])),
        ("tool_errors_min=1".into(), set(&["s1"])),
        (
            "voice_to_voice_p95_ms_min=1000".into(),
            set(&["s1", "s4", "s5"]),
        ),
        ("voice_to_voice_p95_ms_max=1000".into(), set(&["s2"])),
        (
            "voice_to_voice_p50_ms_min=950&voice_to_voice_p50_ms_max=1100".into(),
            set(&["s5"]),
        ),
        ("llm_ttft_p50_ms_min=450".into(), set(&["s4", "s5"])),
        ("has_interruptions=true".into(), set(&["s1", "s4"])),
        ("has_interruptions=false".into(), set(&["s2", "s3", "s5"])),
        ("has_tool_errors=true".into(), set(&["s1"])),
        ("has_errors=1".into(), set(&["s1"])),
        ("has_handoff=true".into(), set(&["s2"])),
        ("state=RESOLVED".into(), set(&["s1", "s5"])),
        ("state=EXPIRED".into(), set(&["s4"])),
        ("state=AWAITING_USER,WITH_AGENT".into(), set(&["s2", "s3"])),
        ("outcome=In%20Progress".into(), set(&["s3"])),
        (
            "outcome=Skill%20Error,Budget%20Exceeded".into(),
            set(&["s4", "s5"]),
        ),
        ("outcome=To%20Agent".into(), set(&["s2"])),
        ("call_status=Completed".into(), set(&["s1", "s4"])),
        ("ended_reason=inactivity".into(), set(&["s4"])),
        ("ended_reason=transfer".into(), set(&["s2"])),
        ("intent=refund".into(), set(&["s1"])),
        ("skill=lookup_order".into(), set(&["s1", "s2"])),
        ("flow=support".into(), set(&["s1"])),
        ("node=greeting".into(), set(&["s2"])),
        ("detected_issue=slow_turn".into(), set(&["s1", "s4"])),
        ("detected_issue=tool_error".into(), set(&["s4"])),
        ("cost_usd_min=0.01".into(), set(&["s1", "s4"])),
        ("cost_usd_max=0.001".into(), set(&["s2", "s3", "s5"])),
        ("feedback=down".into(), set(&["s2"])),
        ("sentiment=negative".into(), set(&["s4"])),
        ("topic=billing".into(), set(&["s1"])),
        ("campaign=spring".into(), set(&["s2"])),
        ("contact=4567".into(), set(&["s1"])),
        ("user=Calm%20Otter%2042".into(), set(&["s3"])),
        ("confidence_min=0.8".into(), set(&["s5"])),
        (
            format!("from={}", instant(t0 + 15 * S)),
            set(&["s3", "s4", "s5"]),
        ),
        (format!("to={}", instant(t0 + 15 * S)), set(&["s1", "s2"])),
        (
            format!("from={}&to={}", instant(t0 + 10 * S), instant(t0 + 30 * S)),
            set(&["s2", "s3"]),
        ),
        ("from=365d".into(), all.clone()),
        ("q=refund".into(), set(&["s1"])),
        ("q=M%C3%9CNCHEN".into(), set(&["s3"])),
        ("q=nothing-like-this".into(), set(&[])),
        (
            "channel=voice&environment=prod&has_interruptions=false".into(),
            set(&["s2", "s5"]),
        ),
        (
            "channel=voice&voice_to_voice_p95_ms_min=1000&q=refund".into(),
            set(&["s1"]),
        ),
    ];
    for (query, expected) in &cases {
        assert_eq!(&id_set(&t, query).await, expected, "query: {query}");
    }

    // Every filter in the table has a case above.
    for spec in convolog::query::FILTERS {
        assert!(
            cases.iter().any(|(q, _)| q.contains(spec.param)),
            "no test for filter {}",
            spec.param
        );
    }

    // Rows carry what the list shows.
    let (_, body) = get_json(&t, "/v1/sessions?session=s1").await;
    let row = &body["sessions"][0];
    assert_eq!(row["preview"], "I want a refund");
    assert_eq!(row["channel"], "voice");
    assert_eq!(row["message_count"], 10);
    assert_eq!(row["duration_ms"], 60_000.0);
    assert_eq!(row["latency"]["voice_to_voice_p95_ms"], 1500.0);
    assert_eq!(row["labels"], serde_json::json!([]));
    assert_eq!(row["flagged"], false);
    assert_eq!(row["links"]["page"], "/sessions/s1");
    assert_eq!(body["next_cursor"], Value::Null);
    t.stop().await;
}

#[tokio::test]
async fn sorts_and_cursor_pagination() {
    let t = TestApp::start("list_sort").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;

    let cases = [
        ("", vec!["s5", "s4", "s3", "s2", "s1"]),
        (
            "sort=start_time&order=asc",
            vec!["s1", "s2", "s3", "s4", "s5"],
        ),
        ("sort=duration", vec!["s4", "s1", "s5", "s2", "s3"]),
        (
            "sort=duration&order=asc",
            vec!["s3", "s2", "s5", "s1", "s4"],
        ),
        // Ties break on the session id; sessions without a value come last either way.
        ("sort=latency", vec!["s4", "s5", "s1", "s2", "s3"]),
        (
            "sort=voice_to_voice_p95&order=asc",
            vec!["s2", "s1", "s5", "s4", "s3"],
        ),
        (
            "sort=voice_to_voice_p50",
            vec!["s4", "s5", "s1", "s2", "s3"],
        ),
        (
            "sort=llm_ttft_p50&order=asc",
            vec!["s2", "s1", "s5", "s4", "s3"],
        ),
        ("sort=turns", vec!["s4", "s1", "s5", "s2", "s3"]),
        ("sort=cost", vec!["s1", "s4", "s5", "s3", "s2"]),
    ];
    for (query, expected) in &cases {
        assert_eq!(&ids(&t, query).await, expected, "query: {query}");
        // The same order page by page, whatever the page size.
        for limit in [1, 2, 3] {
            let mut pages = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = format!("{query}&limit={limit}");
                if let Some(c) = &cursor {
                    q.push_str(&format!("&cursor={c}"));
                }
                let (status, body) = get_json(&t, &format!("/v1/sessions?{q}")).await;
                assert_eq!(status, 200, "{q}: {body}");
                let page = body["sessions"].as_array().expect("sessions");
                assert!(page.len() <= limit);
                pages.extend(
                    page.iter()
                        .map(|s| s["session_id"].as_str().expect("id").to_owned()),
                );
                match body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
                assert!(pages.len() <= 5, "pagination does not end: {pages:?}");
            }
            assert_eq!(&pages, expected, "query: {query}, limit {limit}");
        }
    }
    for spec in convolog::query::SORTS {
        assert!(
            cases
                .iter()
                .any(|(q, _)| q.contains(&format!("sort={}", spec.param)))
                || spec.param == "start_time",
            "no test for sort {}",
            spec.param
        );
    }

    // Bad parameters: 400 naming the parameter.
    let bad = [
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("sort=colour", "sort"),
        ("order=up", "order"),
        ("cursor=abc", "cursor"),
        (
            "voice_to_voice_p95_ms_min=slow",
            "voice_to_voice_p95_ms_min",
        ),
        ("has_interruptions=perhaps", "has_interruptions"),
        ("from=last+tuesday", "from"),
        ("chanel=voice", "chanel"),
        ("limit=1&limit=2", "limit"),
    ];
    for (query, name) in bad {
        let (status, body) = get_json(&t, &format!("/v1/sessions?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"].as_str().expect("error text");
        assert!(message.contains(name), "{query}: {message}");
    }
    // A cursor belongs to its sort.
    let (_, body) = get_json(&t, "/v1/sessions?limit=1").await;
    let cursor = body["next_cursor"].as_str().expect("more pages");
    let (status, body) = get_json(&t, &format!("/v1/sessions?sort=duration&cursor={cursor}")).await;
    assert_eq!(status, 400, "{body}");
    t.stop().await;
}

#[tokio::test]
async fn summary_labels_flags_and_span_filters() {
    let t = TestApp::start("summary").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;
    let specs = pipecat_conversation("pc-1", 1);
    for r in requests(&specs.iter().collect::<Vec<_>>(), anchor(), 100) {
        t.export_grpc(r).await.expect("export");
    }
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

/// The Pipecat conversation, plus a retried tool call and a handoff to a human.
fn conversation_with_retry_and_handoff(session: &str) -> Vec<SpanSpec> {
    let mut specs = pipecat_conversation(session, 1);
    specs.push(span(
        1,
        100,
        Some(20),
        "llm_tool_call",
        7_950,
        8_000,
        vec![
            kv("tool.function_name", "lookup_booking"),
            kv("tool.call_id", "call-2"),
            kv("tool.arguments", "{\"ref\":\"BK42\"}"),
            kv("tool.result", "{\"day\":\"Friday\"}"),
        ],
    ));
    specs.push(span(
        1,
        101,
        Some(30),
        "transfer_call",
        14_000,
        14_500,
        vec![kv("convolog.handoff.target", "human")],
    ));
    specs
}

async fn text_of(t: &TestApp, path: &str) -> (u16, String, String) {
    let response = reqwest::get(t.api_url(path)).await.expect("API answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
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
    for r in requests(&specs.iter().collect::<Vec<_>>(), anchor(), 100) {
        t.export_grpc(r).await.expect("export");
    }
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

/// RFC 4180 records (quoted cells may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = vec![];
    let mut record = vec![];
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => cell.push(c),
        }
    }
    records
}

#[tokio::test]
async fn export_formats_filters_and_command_line() {
    let t = TestApp::start("export").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;

    let response = reqwest::get(
        t.api_url("/v1/export?format=csv&bom=true&channel=voice,web_chat&sort=duration&order=asc"),
    )
    .await
    .expect("export");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"sessions.csv\""
    );
    let text = response.text().await.expect("body");
    let text = text.strip_prefix('\u{feff}').expect("byte order mark");
    let records = parse_csv(text);
    assert_eq!(records[0], convolog::api::export::CSV_COLUMNS);
    let ids: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["s3", "s2", "s5", "s1"]);
    assert!(records.iter().all(|r| r.len() == records[0].len()));
    let column = |name: &str| records[0].iter().position(|c| c == name).expect("column");
    assert_eq!(records[1][column("preview")], format!("'{TRICKY_PREVIEW}"));
    assert_eq!(records[4][column("voice_to_voice_p95_ms")], "1500");
    assert_eq!(records[1][column("voice_to_voice_p95_ms")], "");
    assert_eq!(records[4][column("models")], "gpt-4o-mini");
    assert_eq!(records[4][column("page")], "/sessions/s1");

    let (_, _, jsonl) = text_of(&t, "/v1/export?format=jsonl&environment=staging").await;
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["session_id"].as_str())
        .collect();
    assert_eq!(ids, ["s4", "s3"]);
    assert_eq!(rows[1]["preview"], TRICKY_PREVIEW);

    let (status, content_type, json) = text_of(&t, "/v1/export?format=json&q=refund").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let all: Value = serde_json::from_str(&json).expect("a JSON array");
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["session_id"], "s1");
    let (_, _, empty) = text_of(&t, "/v1/export?format=json&channel=fax").await;
    assert_eq!(
        serde_json::from_str::<Value>(&empty).expect("JSON"),
        serde_json::json!([])
    );

    for (query, name) in [
        ("format=xml", "format"),
        ("chanel=voice", "chanel"),
        ("bom=perhaps", "bom"),
    ] {
        let (status, body) = get_json(&t, &format!("/v1/export?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(name),
            "{body}"
        );
    }

    // The command line writes the same export to a file.
    let dir = std::env::temp_dir().join(format!("convolog-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("voice.jsonl");
    let command = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_convolog"))
            .arg("export")
            .args(args)
            .env("CONVOLOG_CLICKHOUSE_URL", clickhouse_url())
            .env("CONVOLOG_CLICKHOUSE_DATABASE", &t.database)
            .output()
            .expect("convolog runs")
    };
    let out = command(&[
        "--format",
        "jsonl",
        "--filter",
        "channel=voice",
        "--filter",
        "has_interruptions=false",
        "--sort",
        "start_time",
        "--order",
        "asc",
        "--output",
        file.to_str().expect("path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("exported 2 sessions"), "{stderr}");
    let written = std::fs::read_to_string(&file).expect("export file");
    let ids: Vec<String> = written
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["session_id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["s2", "s5"]);
    let out = command(&["--filter", "chanel=voice"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--filter chanel"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command(&["--format", "csv", "--filter", "q=refund"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(parse_csv(&stdout).len(), 2, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
    t.stop().await;
}

#[tokio::test]
async fn old_revisions_neither_show_nor_hide_sessions() {
    let t = TestApp::start("list_churn").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;
    // A session re-derived 450 times: every old revision would top the duration sort and
    // match channel=fax; the current one is short and on voice.
    let mut revisions: Vec<DerivedSession> = (1..=450)
        .map(|revision| {
            let f = session("churn", t0 + 5 * S, |r| {
                r.revision = revision;
                r.duration_ms = 10_000_000.0 + revision as f64;
                r.channel = "fax".into();
            });
            derived(&f)
        })
        .collect();
    let current = session("churn", t0 + 5 * S, |r| {
        r.revision = 451;
        r.duration_ms = 1.0;
        r.channel = "voice".into();
    });
    revisions.push(derived(&current));
    t.app
        .store
        .write_derived(&[], &revisions, &[])
        .await
        .expect("revisions");

    assert_eq!(ids(&t, "sort=duration&limit=2").await, ["s4", "s1"]);
    assert_eq!(
        ids(&t, "sort=duration&order=asc&limit=2").await,
        ["churn", "s3"]
    );
    assert_eq!(id_set(&t, "channel=fax").await, set(&[]));
    assert_eq!(
        id_set(&t, "channel=voice").await,
        set(&["s1", "s2", "s5", "churn"])
    );
    // Page by page, every session once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, body) = get_json(&t, &format!("/v1/sessions?sort=duration&limit=2{cursor}")).await;
        seen.extend(
            body["sessions"]
                .as_array()
                .expect("sessions")
                .iter()
                .map(|s| s["session_id"].as_str().expect("id").to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["s4", "s1", "s5", "s2", "s3", "churn"]);
    t.stop().await;
}
