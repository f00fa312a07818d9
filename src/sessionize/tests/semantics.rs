//! The state, outcome and detected issues of a session, table-driven.

use super::*;

#[test]
fn states() {
    let answered = [t("hi", "hello")];
    let cases: Vec<(&str, Vec<Span>, &str)> = vec![
        (
            "no turn yet",
            vec![span("conversation")
                .id(1)
                .attr("conversation.id", "c")
                .attr("conversation.type", "voice")
                .build()]
            .into_iter()
            .filter(|_| false)
            .chain([span("stt")
                .id(3)
                .attr("gen_ai.operation.name", "stt")
                .build()])
            .collect(),
            "OPEN",
        ),
        (
            "user spoke, no reply yet",
            voice(vec![t("hi", "")], false, &[]),
            "ACTIVE",
        ),
        (
            "agent replied",
            voice(answered.to_vec(), false, &[]),
            "AWAITING_USER",
        ),
        (
            "tool running",
            voice(
                vec![T {
                    tool: Some(("lookup", true)),
                    ..t("hi", "")
                }],
                false,
                &[],
            ),
            "PROCESSING",
        ),
        (
            "handed to a human",
            voice(
                answered.to_vec(),
                false,
                &[("convolog.handoff.target", "human")],
            ),
            "WITH_AGENT",
        ),
        (
            "conversation over",
            voice(answered.to_vec(), true, &[]),
            "RESOLVED",
        ),
        (
            "chat says it ended",
            voice(
                answered.to_vec(),
                false,
                &[("convolog.session.ended", "true")],
            ),
            "RESOLVED",
        ),
    ];
    for (name, spans, want) in cases {
        assert_eq!(semantics_of(&spans).0.derived_state, want, "{name}");
    }
}

#[test]
fn outcomes() {
    let ok = t("hi", "hello");
    let cases: Vec<(&str, Vec<Span>, &str)> = vec![
        ("answered", voice(vec![ok.clone()], true, &[]), "Success"),
        (
            "explicit wins",
            voice(
                vec![ok.clone()],
                true,
                &[("convolog.outcome", "verification_required")],
            ),
            "Verification Required",
        ),
        (
            "tool failed, never retried",
            voice(
                vec![T {
                    tool: Some(("lookup", false)),
                    ..ok.clone()
                }],
                true,
                &[],
            ),
            "Skill Error",
        ),
        (
            "tool failed, then worked",
            voice(
                vec![
                    T {
                        tool: Some(("lookup", false)),
                        ..ok.clone()
                    },
                    T {
                        tool: Some(("lookup", true)),
                        ..ok.clone()
                    },
                ],
                true,
                &[],
            ),
            "Success",
        ),
        (
            "retired tool",
            voice(
                vec![T {
                    tool: Some(("gone", false)),
                    ..ok.clone()
                }],
                true,
                &[],
            ),
            "Skill Retired",
        ),
        (
            "handoff after a tool",
            voice(
                vec![T {
                    tool: Some(("lookup", true)),
                    ..ok.clone()
                }],
                true,
                &[("convolog.handoff.target", "human")],
            ),
            "Handoff",
        ),
        (
            "handoff straight away",
            voice(
                vec![ok.clone()],
                true,
                &[("convolog.handoff.target", "human")],
            ),
            "To Agent",
        ),
        (
            "rate limited",
            voice(
                vec![T {
                    llm_error: Some("rate_limit_exceeded"),
                    ..ok.clone()
                }],
                true,
                &[],
            ),
            "Rate Limited",
        ),
        (
            "budget",
            voice(
                vec![ok.clone()],
                true,
                &[("convolog.budget.exceeded", "true")],
            ),
            "Budget Exceeded",
        ),
        (
            "busy",
            voice(
                vec![T {
                    llm_error: Some("session_busy"),
                    ..ok.clone()
                }],
                true,
                &[],
            ),
            "Session Busy",
        ),
        (
            "verification",
            voice(
                vec![ok.clone()],
                true,
                &[("convolog.verification.required", "true")],
            ),
            "Verification Required",
        ),
        (
            "stage failed mid-flow",
            voice(
                vec![
                    T {
                        llm_error: Some("server_error"),
                        ..ok.clone()
                    },
                    ok.clone(),
                ],
                true,
                &[],
            ),
            "Partial Flow Failure",
        ),
        (
            "dispatched, nobody came",
            voice(vec![], true, &[]),
            "Dispatch Orphaned",
        ),
        (
            "never answered",
            voice(vec![t("hello?", "")], true, &[]),
            "None",
        ),
    ];
    for (name, spans, want) in cases {
        assert_eq!(semantics_of(&spans).0.ended_outcome, want, "{name}");
    }
}

#[test]
fn detected_issues_point_at_their_turn() {
    let ok = t("hi", "hello");
    let cases: Vec<(&str, Vec<Span>, &str)> = vec![
        (
            "slow turn",
            voice(
                vec![
                    ok.clone(),
                    T {
                        v2v: 2.5,
                        ..ok.clone()
                    },
                ],
                true,
                &[],
            ),
            "slow_turn@2",
        ),
        (
            "slow stt",
            voice(
                vec![T {
                    stt: 0.9,
                    ..ok.clone()
                }],
                true,
                &[],
            ),
            "slow_stt@1",
        ),
        (
            "tool error",
            voice(
                vec![
                    ok.clone(),
                    T {
                        tool: Some(("lookup", false)),
                        ..ok.clone()
                    },
                ],
                true,
                &[],
            ),
            "tool_error@2",
        ),
        (
            "llm error",
            voice(
                vec![T {
                    llm_error: Some("server_error"),
                    ..ok.clone()
                }],
                true,
                &[],
            ),
            "llm_error@1",
        ),
        (
            "user repeats",
            voice(
                vec![
                    t("where is my order", "sorry?"),
                    t("Where is my order?", "It ships today."),
                ],
                true,
                &[],
            ),
            "repeated_user_utterance@2",
        ),
        (
            "interrupted thrice",
            voice(
                vec![
                    T {
                        interrupted: true,
                        ..ok.clone()
                    },
                    T {
                        interrupted: true,
                        ..ok.clone()
                    },
                    T {
                        interrupted: true,
                        ..ok.clone()
                    },
                    ok.clone(),
                ],
                true,
                &[],
            ),
            "frequent_interruptions@3",
        ),
        (
            "no user speech",
            voice(vec![], true, &[]),
            "no_user_speech@0",
        ),
        (
            "fallback reply",
            voice(
                vec![t("blorp", "I'm sorry, I didn't understand that.")],
                true,
                &[],
            ),
            "agent_did_not_answer@1",
        ),
        (
            "unanswered",
            voice(vec![t("hello?", "")], true, &[]),
            "agent_did_not_answer@1",
        ),
        (
            "dropped mid-reply",
            voice(
                vec![
                    ok.clone(),
                    T {
                        interrupted: true,
                        ..ok.clone()
                    },
                ],
                true,
                &[],
            ),
            "dropped_call@2",
        ),
    ];
    for (name, spans, want) in cases {
        let (_, issues) = semantics_of(&spans);
        assert!(issues.iter().any(|i| i == want), "{name}: {issues:?}");
    }
    let (row, issues) = semantics_of(&voice(
        vec![ok.clone(), t("thanks, bye", "Goodbye!")],
        true,
        &[],
    ));
    assert!(issues.is_empty(), "a clean call has no issues: {issues:?}");
    assert!(row.detected_issues.is_empty());
}

#[test]
fn long_silence_and_low_confidence() {
    let mut spans = voice(vec![t("hi", "hello"), t("still there", "yes")], true, &[]);
    // Push the second turn 20 s later.
    for s in spans
        .iter_mut()
        .filter(|s| s.start_unix_nano >= T0 + 5_000_000_000 && s.name != "conversation")
    {
        s.start_unix_nano += 20_000_000_000;
        s.end_unix_nano += 20_000_000_000;
    }
    spans.push(
        span("user_turn")
            .scope("livekit-agents")
            .id(200)
            .at(0, 900)
            .attr("lk.transcript_confidence", "0.4")
            .build(),
    );
    let (_, issues) = semantics_of(&spans);
    assert!(issues.iter().any(|i| i == "long_silence@2"), "{issues:?}");
    assert!(
        issues
            .iter()
            .any(|i| i.starts_with(issue::LOW_TRANSCRIPTION_CONFIDENCE)),
        "{issues:?}"
    );
}

#[test]
fn a_greeting_nobody_answered_is_not_a_success() {
    let (row, _) = semantics_of(&voice(
        vec![t("", "Hello, this is Acme calling.")],
        true,
        &[],
    ));
    assert_eq!(row.ended_outcome, "None");
    assert_eq!(row.derived_call_status, "Missed");
}

#[test]
fn failures_on_attempt_spans_count_once_for_their_stage() {
    let s = |name: &str| {
        span(name)
            .scope("livekit-agents")
            .attr("session.id", "room")
    };
    let spans = vec![
        s("agent_session").id(1).at(0, 9000).build(),
        s("user_turn")
            .id(2)
            .parent(1)
            .at(0, 1000)
            .attr("lk.pii.user_transcript", "hi")
            .build(),
        s("agent_turn")
            .id(3)
            .parent(1)
            .at(1000, 4000)
            .attr("lk.pii.response.text", "hello")
            .build(),
        s("llm_node").id(4).parent(3).at(1000, 2000).build(),
        s("llm_request")
            .id(5)
            .parent(4)
            .at(1000, 2000)
            .error("provider error")
            .build(),
        s("llm_request_run")
            .id(6)
            .parent(5)
            .at(1000, 1500)
            .error("provider error")
            .build(),
        s("user_turn")
            .id(7)
            .parent(1)
            .at(5000, 6000)
            .attr("lk.pii.user_transcript", "are you there")
            .build(),
        s("agent_turn")
            .id(8)
            .parent(1)
            .at(6000, 8000)
            .attr("lk.pii.response.text", "yes")
            .build(),
    ];
    let (row, issues) = semantics_of(&spans);
    assert_eq!(
        issues.iter().filter(|i| i.starts_with("llm_error")).count(),
        1,
        "{issues:?}"
    );
    assert_eq!(row.ended_outcome, "Partial Flow Failure");
}
