//! Session semantics through the real receiver and ClickHouse: scripted conversations driven
//! into every state, every outcome and every detected issue, read back from the API (which
//! reads the `sessions_current` view), including expiry with no further spans.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::Value;

struct Scenario {
    id: &'static str,
    turns: Vec<Turn>,
    /// The conversation span arrives (the call is over).
    ended: bool,
    root: Vec<KeyValue>,
    state: &'static str,
    outcome: &'static str,
    issues: &'static [&'static str],
}

/// The scenario as a Pipecat-shaped conversation in `trace`, children before parents.
fn spans(s: &Scenario, trace: u64) -> Vec<SpanSpec> {
    Conversation {
        session: s.id.to_owned(),
        trace,
        turns: s.turns.clone(),
        ended: s.ended,
        root_attributes: s.root.clone(),
        timing: Timing::QUICK,
        order: Order::ChildrenFirst,
        detail: None,
    }
    .spans()
}

fn scenarios() -> Vec<Scenario> {
    let ok = turn("I need to change my booking", "Sure, which day?");
    let bye = turn("Saturday please, thanks", "Done. Goodbye!");
    let tool = |t: &Turn, name, succeeded: bool, message| Turn {
        tool: Some(Tool {
            name,
            call_id: None,
            arguments: None,
            error: (!succeeded).then_some(message),
        }),
        ..t.clone()
    };
    let s = |id, turns, ended, root: Vec<KeyValue>, state, outcome, issues| Scenario {
        id,
        turns,
        ended,
        root,
        state,
        outcome,
        issues,
    };
    vec![
        // States.
        s(
            "st-open",
            vec![],
            false,
            vec![kv("convolog.session.id", "st-open")],
            "OPEN",
            "In Progress",
            &[],
        ),
        s(
            "st-active",
            vec![turn("hello?", "")],
            false,
            vec![],
            "ACTIVE",
            "In Progress",
            &[],
        ),
        s(
            "st-awaiting",
            vec![ok.clone()],
            false,
            vec![],
            "AWAITING_USER",
            "In Progress",
            &[],
        ),
        s(
            "st-processing",
            vec![tool(
                &turn("where is my order", ""),
                "lookup_order",
                true,
                "",
            )],
            false,
            vec![],
            "PROCESSING",
            "In Progress",
            &[],
        ),
        s(
            "st-with-agent",
            vec![ok.clone()],
            false,
            vec![kv("convolog.handoff.target", "human")],
            "WITH_AGENT",
            "To Agent",
            &[],
        ),
        // Outcomes of ended calls.
        s(
            "oc-success",
            vec![ok.clone(), bye.clone()],
            true,
            vec![kv("convolog.intent", "change_booking")],
            "RESOLVED",
            "Success",
            &[],
        ),
        s(
            "oc-explicit",
            vec![ok.clone()],
            true,
            vec![kv("convolog.outcome", "budget_exceeded")],
            "RESOLVED",
            "Budget Exceeded",
            &[],
        ),
        s(
            "oc-skill-error",
            vec![tool(&ok, "lookup_order", false, "timeout"), bye.clone()],
            true,
            vec![],
            "RESOLVED",
            "Skill Error",
            &["tool_error"],
        ),
        s(
            "oc-skill-retired",
            vec![
                tool(&ok, "old_lookup", false, "tool_not_found"),
                bye.clone(),
            ],
            true,
            vec![],
            "RESOLVED",
            "Skill Retired",
            &["tool_error"],
        ),
        s(
            "oc-handoff",
            vec![tool(&ok, "lookup_order", true, "")],
            true,
            vec![kv("convolog.handoff.target", "human")],
            "RESOLVED",
            "Handoff",
            &[],
        ),
        s(
            "oc-to-agent",
            vec![ok.clone()],
            true,
            vec![kv("convolog.handoff.target", "billing-team")],
            "RESOLVED",
            "To Agent",
            &[],
        ),
        s(
            "oc-rate-limited",
            vec![Turn {
                llm_error: Some(("provider_error", 429)),
                ..turn("hello", "")
            }],
            true,
            vec![],
            "RESOLVED",
            "Rate Limited",
            &["llm_error", "agent_did_not_answer", "dropped_call"],
        ),
        s(
            "oc-budget",
            vec![ok.clone()],
            true,
            vec![kv("convolog.budget.exceeded", true)],
            "RESOLVED",
            "Budget Exceeded",
            &[],
        ),
        s(
            "oc-busy",
            vec![Turn {
                llm_error: Some(("session_busy", 503)),
                ..turn("hello", "")
            }],
            true,
            vec![],
            "RESOLVED",
            "Session Busy",
            &["llm_error"],
        ),
        s(
            "oc-orphaned",
            vec![],
            true,
            vec![],
            "RESOLVED",
            "Dispatch Orphaned",
            &["no_user_speech"],
        ),
        s(
            "oc-verification",
            vec![ok.clone()],
            true,
            vec![kv("convolog.verification.required", true)],
            "RESOLVED",
            "Verification Required",
            &[],
        ),
        s(
            "oc-partial-flow",
            vec![
                Turn {
                    llm_error: Some(("server_error", 500)),
                    ..ok.clone()
                },
                bye.clone(),
            ],
            true,
            vec![],
            "RESOLVED",
            "Partial Flow Failure",
            &["llm_error"],
        ),
        s(
            "oc-none",
            vec![ok.clone(), turn("hello? are you there?", "")],
            true,
            vec![],
            "RESOLVED",
            "None",
            &["agent_did_not_answer"],
        ),
        // Detected issues.
        s(
            "is-slow",
            vec![
                Turn {
                    voice_to_voice: 2.6,
                    stt_ttfb: 0.9,
                    llm_ttfb: 1.8,
                    tts_ttfb: 0.9,
                    ..ok.clone()
                },
                bye.clone(),
            ],
            true,
            vec![],
            "RESOLVED",
            "Success",
            &["slow_turn", "slow_stt", "slow_llm", "slow_tts"],
        ),
        s(
            "is-repeat",
            vec![
                turn("cancel my order", "Sorry?"),
                turn("Cancel my order!", "Cancelled."),
                bye.clone(),
            ],
            true,
            vec![],
            "RESOLVED",
            "Success",
            &["repeated_user_utterance"],
        ),
        s(
            "is-interrupted",
            vec![
                Turn {
                    interrupted: true,
                    ..ok.clone()
                },
                Turn {
                    interrupted: true,
                    ..ok.clone()
                },
                Turn {
                    interrupted: true,
                    ..turn("no wait", "ok")
                },
                bye.clone(),
            ],
            true,
            vec![],
            "RESOLVED",
            "Success",
            &["frequent_interruptions"],
        ),
        s(
            "is-silence",
            vec![
                ok.clone(),
                Turn {
                    gap_ms: 20_000,
                    ..bye.clone()
                },
            ],
            true,
            vec![],
            "RESOLVED",
            "Success",
            &["long_silence"],
        ),
        s(
            "is-fallback",
            vec![turn("blorp", "I'm sorry, I didn't understand that.")],
            true,
            vec![],
            "RESOLVED",
            "None",
            &["agent_did_not_answer"],
        ),
        s(
            "is-dropped",
            vec![
                ok.clone(),
                Turn {
                    interrupted: true,
                    ..bye.clone()
                },
            ],
            true,
            vec![],
            "RESOLVED",
            "Success",
            &["dropped_call"],
        ),
        s(
            "is-confidence",
            vec![ok.clone()],
            true,
            vec![kv("convolog.transcript.confidence", 0.3)],
            "RESOLVED",
            "Success",
            &["low_transcription_confidence"],
        ),
        // Plus failing STT and TTS spans, sent apart below.
        s(
            "is-stage-errors",
            vec![ok.clone()],
            true,
            vec![],
            "RESOLVED",
            "Partial Flow Failure",
            &["stt_error", "tts_error"],
        ),
    ]
}

fn issue_tags(transcript: &Value) -> Vec<&str> {
    transcript["detected_issues"]
        .as_array()
        .map(|issues| issues.iter().filter_map(|i| i["issue"].as_str()).collect())
        .unwrap_or_default()
}

async fn read(t: &TestApp, id: &str) -> Value {
    t.transcript_when(id, |_| true).await
}

#[tokio::test]
async fn every_state_outcome_and_detected_issue() {
    let t = TestApp::start("semantics").await;
    let anchor = anchor();
    let all = scenarios();
    for (i, scenario) in all.iter().enumerate() {
        let specs = spans(scenario, 100 + i as u64);
        let ordered: Vec<&SpanSpec> = specs.iter().collect();
        let mut requests = requests(&ordered, anchor, 100);
        if scenario.turns.is_empty() && !scenario.ended {
            // A session with no turn yet: one STT segment still being processed.
            requests = vec![request(
                "agent",
                "pipecat",
                vec![SpanSpec::new(100 + i as u64, 2, "stt")
                    .at(0, 500)
                    .attributes(scenario.root.iter().cloned())
                    .attributes([kv("gen_ai.operation.name", "stt")])
                    .build(anchor)],
            )];
        }
        for r in requests {
            t.export_grpc(r).await.expect("export");
        }
    }
    // The stage-error scenario also carries failing STT and TTS spans.
    let failing = |id, name: &'static str| {
        SpanSpec::new(200, id, name)
            .at(0, 100)
            .attributes([
                kv("gen_ai.operation.name", name),
                kv("conversation.id", "is-stage-errors"),
            ])
            .error("stage down")
    };
    let extra = [failing(2, "stt"), failing(3, "tts")];
    t.export_grpc(request(
        "agent",
        "pipecat",
        extra.iter().map(|s| s.build(anchor)).collect(),
    ))
    .await
    .expect("export");

    let mut seen_states = std::collections::BTreeSet::new();
    let mut seen_outcomes = std::collections::BTreeSet::new();
    let mut seen_issues = std::collections::BTreeSet::new();
    for scenario in &all {
        // Waits until the session says what the scenario expects; panics with what it says otherwise.
        t.transcript_when(scenario.id, |tr| {
            let issues = issue_tags(tr);
            tr["state"] == scenario.state
                && tr["outcome"] == scenario.outcome
                && scenario.issues.iter().all(|want| issues.contains(want))
        })
        .await;
        seen_states.insert(scenario.state);
        seen_outcomes.insert(scenario.outcome);
        seen_issues.extend(scenario.issues.iter().copied());
    }

    // The audit timeline shows the intent and each detected issue at its turn.
    let timeline_of = async |id: &str| get_json(&t, &format!("/v1/sessions/{id}/timeline")).await.1;
    let has_step = |timeline: &Value, kind: &str, field: &str, value: &str| {
        timeline["steps"]
            .as_array()
            .is_some_and(|steps| steps.iter().any(|s| s["kind"] == kind && s[field] == value))
    };
    let timeline = timeline_of("oc-success").await;
    assert!(
        has_step(&timeline, "intent", "intent", "change_booking"),
        "{timeline}"
    );
    let timeline = timeline_of("oc-skill-error").await;
    assert!(
        has_step(&timeline, "issue", "issue", "tool_error"),
        "{timeline}"
    );

    let success = read(&t, "oc-success").await;
    assert_eq!(success["call_status"], "Completed");
    let live = read(&t, "st-awaiting").await;
    assert_eq!(live["call_status"], "Active");
    let handoff = read(&t, "oc-handoff").await;
    assert_eq!(handoff["ended_reason"], "transfer");

    // Every state but EXPIRED (next test), every outcome and every issue tag was reached.
    assert_eq!(seen_states.len(), 6, "{seen_states:?}");
    assert_eq!(seen_outcomes.len(), 13, "{seen_outcomes:?}");
    assert_eq!(seen_issues.len(), 15, "{seen_issues:?}");
    t.stop().await;
}

#[tokio::test]
async fn sessions_expire_without_new_spans() {
    let t = TestApp::start_with("expiry", |c| {
        c.rules.inactivity_timeout_seconds.insert("voice".into(), 3);
    })
    .await;
    let scenario = Scenario {
        id: "quiet-caller",
        turns: vec![turn("I'll think about it", "Take your time.")],
        ended: false,
        root: vec![],
        state: "AWAITING_USER",
        outcome: "In Progress",
        issues: &[],
    };
    let specs = spans(&scenario, 7);
    // Spans from a minute ago: the last activity is already past the 3 s timeout, so the
    // session is expired as soon as it is derived.
    t.send_grpc(&specs, anchor(), 100).await;
    let expired = read(&t, "quiet-caller").await;
    assert_eq!(expired["state"], "EXPIRED");
    assert_eq!(expired["ended_reason"], "inactivity");
    assert_eq!(expired["outcome"], "Success");
    assert_eq!(expired["call_status"], "Completed");

    // A fresh conversation is not expired yet, and expires while nothing arrives.
    let fresh = Scenario {
        id: "fresh-caller",
        ..scenario
    };
    // This one's last span ends now.
    let now = convolog::clock::now_unix_nano() - 4_000_000_000;
    for r in requests(&spans(&fresh, 8).iter().collect::<Vec<_>>(), now, 100) {
        t.export_grpc(r).await.expect("export");
    }
    let before = read(&t, "fresh-caller").await;
    assert_eq!(before["state"], "AWAITING_USER");
    assert_eq!(before["outcome"], "In Progress");
    let spans_before = t.count("SELECT count() FROM spans").await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let after = read(&t, "fresh-caller").await;
    assert_eq!(after["state"], "EXPIRED", "{after}");
    assert_eq!(
        t.count("SELECT count() FROM spans").await,
        spans_before,
        "no span arrived meanwhile"
    );
    t.stop().await;
}
