//! Sessions written straight to the derived tables (no spans behind them) for the logs API
//! tests, and the list queries those tests read them back with.

use std::collections::BTreeSet;

use convolog::model::conversation::{DerivedSession, MessageRow, SessionRow};
use convolog::sessionize::tombstone;

use super::{get_json, TestApp};

pub const S: u64 = 1_000_000_000;

/// What a spreadsheet must show as text: a formula, quotes, a comma, a line break, UTF-8.
pub const TRICKY_PREVIEW: &str = "=SUM(A1), said \"Grüße\"\nnext line";

/// A session row written straight to the derived tables (no spans behind it).
pub struct Fixture {
    pub row: SessionRow,
    pub messages: Vec<&'static str>,
}

pub fn session(id: &str, start: u64, f: impl FnOnce(&mut SessionRow)) -> Fixture {
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

pub fn derived(fixture: &Fixture) -> DerivedSession {
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
        answers: Vec::new(),
        citations: Vec::new(),
        contact: Default::default(),
    }
}

/// Six sessions that differ in every filtered column, and one deleted.
pub fn fixtures(t0: u64) -> Vec<Fixture> {
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

pub async fn ids(t: &TestApp, query: &str) -> Vec<String> {
    let (status, body) = get_json(t, &format!("/v1/sessions?{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session_id"].as_str().expect("id").to_owned())
        .collect()
}

pub async fn id_set(t: &TestApp, query: &str) -> BTreeSet<String> {
    ids(t, query).await.into_iter().collect()
}

pub fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Second-aligned instant as the API takes it.
pub fn instant(unix_nano: u64) -> String {
    let text = convolog::timefmt::rfc3339(unix_nano);
    text.replace(".000Z", "Z")
}

pub async fn load_fixtures(t: &TestApp, t0: u64) {
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
