use super::*;
use crate::conventions::fixtures::{span, T0};
use crate::model::Span;

/// A Pipecat conversation: two turns, the second interrupted, one failing tool call.
fn pipecat() -> Vec<Span> {
    vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-1")
            .attr("conversation.type", "voice")
            .build(),
        span("turn")
            .id(2)
            .parent(1)
            .at(0, 4000)
            .attr("turn.number", "1")
            .attr("conversation.id", "conv-1")
            .attr("turn.user_bot_latency_seconds", "0.8")
            .attr("turn.was_interrupted", "false")
            .build(),
        span("stt")
            .id(3)
            .parent(2)
            .at(0, 1200)
            .attr("gen_ai.operation.name", "stt")
            .attr("gen_ai.provider.name", "deepgram")
            .attr("transcript", "Where is my order?")
            .attr("metrics.ttfb", "0.2")
            .build(),
        span("llm")
            .id(4)
            .parent(2)
            .at(1300, 1900)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o-mini")
            .attr("output", "")
            .attr("metrics.ttfb", "0.4")
            .attr("gen_ai.usage.input_tokens", "100")
            .attr("gen_ai.usage.output_tokens", "5")
            .build(),
        span("llm_tool_call")
            .id(5)
            .parent(2)
            .at(1900, 2100)
            .attr("tool.function_name", "lookup_order")
            .attr("tool.call_id", "c1")
            .attr("tool.result_status", "error")
            .error("timeout")
            .build(),
        span("llm")
            .id(6)
            .parent(2)
            .at(2100, 2600)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o-mini")
            .attr("output", "I could not find it.")
            .attr("gen_ai.usage.input_tokens", "120")
            .attr("gen_ai.usage.output_tokens", "8")
            .build(),
        span("tts")
            .id(7)
            .parent(2)
            .at(2600, 4000)
            .attr("gen_ai.operation.name", "tts")
            .attr("text", "I could not find it.")
            .attr("metrics.ttfb", "0.15")
            .build(),
        span("turn")
            .id(8)
            .parent(1)
            .at(4500, 9000)
            .attr("turn.number", "2")
            .attr("conversation.id", "conv-1")
            .attr("turn.was_interrupted", "true")
            .build(),
        span("stt")
            .id(9)
            .parent(8)
            .at(4500, 5500)
            .attr("gen_ai.operation.name", "stt")
            .attr("transcript", "Can you check again?")
            .attr("metrics.ttfb", "0.25")
            .build(),
        span("llm")
            .id(10)
            .parent(8)
            .at(5600, 6200)
            .attr("gen_ai.operation.name", "chat")
            .attr("output", "Sure. Let me look. It ships tomorrow.")
            .build(),
        span("tts")
            .id(11)
            .parent(8)
            .at(6200, 6800)
            .attr("gen_ai.operation.name", "tts")
            .attr("text", "Sure. Let me look.")
            .attr("tts.interrupted", "false")
            .attr("metrics.ttfb", "0.12")
            .build(),
        span("tts")
            .id(12)
            .parent(8)
            .at(6800, 7300)
            .attr("gen_ai.operation.name", "tts")
            .attr("text", "It ships tomorrow.")
            .attr("tts.interrupted", "true")
            .build(),
    ]
}

fn livekit() -> Vec<Span> {
    let s = |name: &str| {
        span(name)
            .scope("livekit-agents")
            .attr("session.id", "room-7")
    };
    vec![
        s("agent_session")
            .id(1)
            .at(0, 6000)
            .attr("lk.agent_name", "support")
            .build(),
        s("user_turn")
            .id(2)
            .parent(1)
            .at(0, 1500)
            .attr("lk.pii.user_transcript", "I want a refund")
            .attr("lk.transcription_delay", "0.3")
            .attr("lk.end_of_turn_delay", "0.5")
            .build(),
        s("eou_detection")
            .id(3)
            .parent(2)
            .at(1000, 1500)
            .attr("lk.eou.endpointing_delay", "0.45")
            .build(),
        s("agent_turn")
            .id(4)
            .parent(1)
            .at(1500, 4000)
            .attr("lk.pii.user_input", "I want a refund")
            .attr("lk.pii.response.text", "Refund started.")
            .attr("lk.interrupted", "false")
            .attr("lk.e2e_latency", "1.1")
            .build(),
        s("llm_node").id(5).parent(4).at(1500, 2200).build(),
        s("llm_request")
            .id(6)
            .parent(5)
            .at(1500, 2200)
            .attr("lk.response.ttft", "0.35")
            .attr("gen_ai.request.model", "gpt-4o")
            .build(),
        s("function_tool")
            .id(7)
            .parent(4)
            .at(2200, 2500)
            .attr("lk.function_tool.name", "start_refund")
            .attr("lk.function_tool.id", "f1")
            .attr("lk.function_tool.is_error", "false")
            .attr("lk.pii.function_tool.output", "ok")
            .build(),
        s("tts_node").id(8).parent(4).at(2500, 4000).build(),
        s("tts_request")
            .id(9)
            .parent(8)
            .at(2500, 4000)
            .attr("lk.response.ttfb", "0.2")
            .build(),
        s("user_speaking")
            .id(10)
            .parent(1)
            .at(4200, 5000)
            .attr("lk.is_interruption", "false")
            .build(),
        s("agent_turn")
            .id(11)
            .parent(1)
            .at(5000, 6000)
            .attr("lk.pii.response.text", "Anything else?")
            .attr("lk.interrupted", "true")
            .build(),
        s("llm_node")
            .id(13)
            .parent(11)
            .at(5000, 5300)
            .attr(
                "lk.pii.response.text",
                "Anything else? I can also check your order.",
            )
            .build(),
        s("user_speaking")
            .id(12)
            .parent(1)
            .at(5600, 5900)
            .attr("lk.is_interruption", "true")
            .build(),
    ]
}

fn derive(spans: &[Span]) -> DerivedSession {
    sessionize("s", spans, 1, 0, &Rules::default())
}

#[test]
fn pipecat_turns_texts_latencies() {
    let d = derive(&pipecat());
    assert_eq!(d.turns.len(), 2);
    let t1 = &d.turns[0];
    assert_eq!(t1.user_text, "Where is my order?");
    assert_eq!(t1.agent_text, "I could not find it.");
    assert_eq!(
        (t1.voice_to_voice_ms, t1.voice_to_voice_source.as_str()),
        (Some(800.0), "reported:turn.user_bot_latency_seconds")
    );
    assert_eq!(
        (t1.llm_ttft_ms, t1.llm_ttft_source.as_str()),
        (Some(400.0), "reported:metrics.ttfb")
    );
    assert_eq!(t1.stt_ms, Some(200.0));
    assert_eq!(t1.tts_ttfb_ms, Some(150.0));
    // Speech ended at 1200 - 200 ms; the first LLM call started at 1300.
    assert_eq!(
        (t1.end_of_utterance_ms, t1.end_of_utterance_source.as_str()),
        (Some(300.0), "derived:speech_end_to_llm_start")
    );
    assert_eq!((t1.input_tokens, t1.output_tokens), (220, 13));
    assert_eq!((t1.tool_call_count, t1.tool_error_count), (1, 1));
    assert_eq!(t1.llm_model, "gpt-4o-mini");
    assert_eq!(t1.stt_provider, "deepgram");

    let t2 = &d.turns[1];
    assert_eq!(t2.interrupted, 1);
    assert_eq!(t2.agent_spoken_text.as_deref(), Some("Sure. Let me look."));
    // No reported voice-to-voice: speech end (5500 - 250) to first audio (6200 + 120).
    assert_eq!(
        (t2.voice_to_voice_ms, t2.voice_to_voice_source.as_str()),
        (Some(1070.0), "derived:speech_end_to_agent_audio")
    );

    let speakers: Vec<&str> = d.messages.iter().map(|m| m.speaker.as_str()).collect();
    assert_eq!(speakers, ["user", "tool", "agent", "user", "agent"]);
    assert_eq!(d.messages[1].text, "error: timeout");
    assert_eq!(d.interruptions.len(), 1);
    assert_eq!(d.interruptions[0].time_unix_nano, T0 + 7_300_000_000);
    assert_eq!(d.session.framework, "pipecat");
    assert_eq!(d.session.channel, "voice");
    assert_eq!(d.session.preview, "Where is my order?");
    assert_eq!(
        (
            d.session.turn_count,
            d.session.tool_error_count,
            d.session.interruption_count
        ),
        (2, 1, 1)
    );
}

#[test]
fn livekit_sibling_turns() {
    let d = derive(&livekit());
    assert_eq!(d.turns.len(), 2);
    let t1 = &d.turns[0];
    assert_eq!(t1.user_text, "I want a refund");
    assert_eq!(t1.agent_text, "Refund started.");
    assert_eq!(t1.stt_ms, Some(300.0));
    assert_eq!(
        (t1.end_of_utterance_ms, t1.end_of_utterance_source.as_str()),
        (Some(500.0), "reported:lk.end_of_turn_delay")
    );
    assert_eq!(t1.llm_ttft_ms, Some(350.0));
    assert_eq!(t1.tts_ttfb_ms, Some(200.0));
    assert_eq!(t1.voice_to_voice_ms, Some(1100.0));
    assert_eq!(t1.tool_call_count, 1);
    let t2 = &d.turns[1];
    assert_eq!(t2.interrupted, 1);
    assert_eq!(t2.agent_text, "Anything else? I can also check your order.");
    assert_eq!(t2.agent_spoken_text.as_deref(), Some("Anything else?"));
    assert_eq!(d.interruptions[0].time_unix_nano, T0 + 5_600_000_000);
    assert_eq!(d.interruptions[0].signal, "lk.interrupted");
    assert_eq!(d.session.agent_name, "support");
    assert_eq!(d.session.framework, "livekit");
}

#[test]
fn any_arrival_order_and_duplicates_give_the_same_rows() {
    for spans in [pipecat(), livekit()] {
        let expected = derive(&spans);
        let mut shuffled = spans.clone();
        shuffled.reverse();
        shuffled.extend(spans.iter().take(4).cloned());
        shuffled.rotate_left(3);
        assert_eq!(derive(&shuffled), expected);
    }
}

#[test]
fn genai_chat_one_trace_per_turn() {
    let turn = |trace: u8, start: u64, user: &str, reply: &str| {
        vec![
            span("invoke_agent support").trace(trace).id(1).at(start, start + 900)
                .attr("gen_ai.operation.name", "invoke_agent")
                .attr("gen_ai.conversation.id", "chat-1")
                .attr("gen_ai.input.messages", &format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"{user}"}}]}}]"#))
                .attr("gen_ai.output.messages", &format!(r#"[{{"role":"assistant","parts":[{{"type":"text","content":"{reply}"}}]}}]"#))
                .build(),
            span("chat gpt-4o").trace(trace).id(2).parent(1).at(start + 100, start + 800)
                .attr("gen_ai.operation.name", "chat").attr("gen_ai.response.time_to_first_chunk", "0.3").build(),
        ]
    };
    let spans: Vec<Span> = [turn(2, 5000, "second", "b"), turn(1, 0, "first", "a")].concat();
    let d = derive(&spans);
    assert_eq!(
        d.turns
            .iter()
            .map(|t| t.user_text.as_str())
            .collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert_eq!(d.turns[0].llm_ttft_ms, Some(300.0));
    assert_eq!(d.session.trace_ids.len(), 2);
    assert_eq!(d.session.channel, "chat");
}

#[test]
fn session_key_from_root_most_span_or_resource() {
    let trace = vec![
        span("child")
            .id(2)
            .parent(1)
            .attr("session.id", "deep")
            .build(),
        span("root").id(1).attr("conversation.id", "top").build(),
    ];
    assert_eq!(trace_session_key(&trace).as_deref(), Some("top"));
    let resource_only = vec![span("x").resource("room_id", "RM_1").build()];
    assert_eq!(trace_session_key(&resource_only).as_deref(), Some("RM_1"));
    assert_eq!(trace_session_key(&[span("x").build()]), None);
}

#[test]
fn parent_cycles_do_not_hang() {
    let spans = vec![
        span("turn")
            .id(1)
            .parent(2)
            .attr("turn.number", "1")
            .build(),
        span("stt")
            .id(2)
            .parent(1)
            .attr("gen_ai.operation.name", "stt")
            .build(),
    ];
    let _ = derive(&spans);
    let _ = trace_session_key(&spans);
}

#[test]
fn unknown_spans_are_counted_and_empty_sessions_are_tombstones() {
    let d = derive(&[span("db.query").build()]);
    assert_eq!((d.session.span_count, d.turns.len()), (1, 0));
    assert_eq!(tombstone("gone", 9, 0).deleted, 1);
}

// ---- session semantics, table-driven ----

use super::semantics::issue;
use crate::model::conversation::SessionRow;

/// One turn of a scripted Pipecat voice conversation, 5 s apart.
#[derive(Clone, Default)]
struct T {
    user: &'static str,
    agent: &'static str,
    v2v: f64,
    stt: f64,
    interrupted: bool,
    tool: Option<(&'static str, bool)>,
    llm_error: Option<&'static str>,
}

fn t(user: &'static str, agent: &'static str) -> T {
    T {
        user,
        agent,
        v2v: 0.9,
        stt: 0.2,
        ..T::default()
    }
}

/// Builds a Pipecat conversation; `ended` adds the `conversation` span (exported at the end),
/// `root` attributes go on it (or on the first turn when not ended).
fn voice(turns: Vec<T>, ended: bool, root: &[(&str, &str)]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut id = 10u8;
    for (i, turn) in turns.iter().enumerate() {
        let at = i as u64 * 5000;
        let turn_id = id;
        let mut turn_span = span("turn")
            .id(turn_id)
            .parent(1)
            .at(at, at + 4000)
            .attr("conversation.id", "c")
            .attr("turn.user_bot_latency_seconds", &turn.v2v.to_string())
            .attr(
                "turn.was_interrupted",
                if turn.interrupted { "true" } else { "false" },
            );
        if !ended && i == 0 {
            for (k, v) in root {
                turn_span = turn_span.attr(k, v);
            }
        }
        spans.push(turn_span.build());
        spans.push(
            span("stt")
                .id(id + 1)
                .parent(turn_id)
                .at(at, at + 1000)
                .attr("gen_ai.operation.name", "stt")
                .attr("transcript", turn.user)
                .attr("metrics.ttfb", &turn.stt.to_string())
                .build(),
        );
        let mut llm = span("llm")
            .id(id + 2)
            .parent(turn_id)
            .at(at + 1100, at + 1800)
            .attr("gen_ai.operation.name", "chat")
            .attr("output", turn.agent);
        if let Some(kind) = turn.llm_error {
            llm = llm.attr("error.type", kind).error(kind);
        }
        spans.push(llm.build());
        if let Some((name, ok)) = turn.tool {
            let mut tool = span("llm_tool_call")
                .id(id + 3)
                .parent(turn_id)
                .at(at + 1800, at + 2000)
                .attr("tool.function_name", name)
                .attr("tool.result_status", if ok { "success" } else { "error" });
            if !ok {
                // "gone" stands for a skill that no longer exists.
                tool = tool.error(if name == "gone" {
                    "tool_not_found"
                } else {
                    "timeout"
                });
            }
            spans.push(tool.build());
        }
        if !turn.agent.is_empty() {
            spans.push(
                span("tts")
                    .id(id + 4)
                    .parent(turn_id)
                    .at(at + 2000, at + 4000)
                    .attr("gen_ai.operation.name", "tts")
                    .attr("text", turn.agent)
                    .attr(
                        "tts.interrupted",
                        if turn.interrupted { "true" } else { "false" },
                    )
                    .build(),
            );
        }
        id += 5;
    }
    if ended {
        let end = turns.len() as u64 * 5000;
        let mut root_span = span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, end.max(1000))
            .attr("conversation.id", "c")
            .attr("conversation.type", "voice");
        for (k, v) in root {
            root_span = root_span.attr(k, v);
        }
        spans.push(root_span.build());
    }
    spans
}

fn semantics_of(spans: &[Span]) -> (SessionRow, Vec<String>) {
    let d = derive(spans);
    let issues = d
        .issues
        .iter()
        .map(|i| format!("{}@{}", i.issue, i.turn_number))
        .collect();
    (d.session, issues)
}

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
fn call_status_ended_reason_and_descriptive_fields() {
    let spans = voice(
        vec![t("hi", "hello")],
        true,
        &[
            ("convolog.call.ended_reason", "User Hangup"),
            ("convolog.contact", "+15551234567"),
            ("convolog.user.id", "user-42"),
            ("convolog.intent", "order_status"),
            ("convolog.feedback", "thumbs_down"),
            ("convolog.direction", "inbound"),
        ],
    );
    let (row, _) = semantics_of(&spans);
    assert_eq!(row.derived_call_status, "Completed");
    assert_eq!(row.derived_ended_reason, "user_hangup");
    assert_eq!(row.contact, "********4567");
    assert!(
        !row.user_name.is_empty() && !row.user_name.contains("42"),
        "{}",
        row.user_name
    );
    assert_eq!(
        (
            row.intent.as_str(),
            row.feedback.as_str(),
            row.direction.as_str()
        ),
        ("order_status", "down", "inbound")
    );
    let missed = semantics_of(&voice(vec![], true, &[])).0;
    assert_eq!(missed.derived_call_status, "Missed");
    let live = semantics_of(&voice(vec![t("hi", "hello")], false, &[])).0;
    assert_eq!(live.derived_call_status, "Active");
}

#[test]
fn cost_from_prices_unless_stated() {
    let mut rules = Rules::default();
    rules.pricing.llm.insert(
        "gpt-4o".into(),
        super::rules::LlmPrice {
            input_per_million_tokens: 2.0,
            output_per_million_tokens: 8.0,
        },
    );
    rules.pricing.tts.insert(
        "sonic".into(),
        super::rules::TtsPrice {
            per_million_characters: 100.0,
        },
    );
    let spans = vec![
        span("llm")
            .id(2)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o-2024-08-06")
            .attr("gen_ai.usage.input_tokens", "1000")
            .attr("gen_ai.usage.output_tokens", "100")
            .build(),
        span("llm")
            .id(3)
            .at(10, 20)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o")
            .attr("gen_ai.usage.input_tokens", "1000")
            .attr("convolog.cost.usd", "0.5")
            .build(),
        span("tts")
            .id(4)
            .at(20, 30)
            .attr("gen_ai.operation.name", "tts")
            .attr("voice_id", "sonic")
            .attr("text", "0123456789")
            .build(),
    ];
    let row = sessionize("s", &spans, 1, 0, &rules).session;
    let expected_llm = 1000.0 * 2.0 / 1e6 + 100.0 * 8.0 / 1e6 + 0.5;
    assert!(
        (row.llm_cost_usd - expected_llm).abs() < 1e-12,
        "{}",
        row.llm_cost_usd
    );
    assert!((row.tts_cost_usd - 10.0 * 100.0 / 1e6).abs() < 1e-12);
    assert!((row.cost_usd - row.llm_cost_usd - row.tts_cost_usd).abs() < 1e-12);
}

#[test]
fn expiry_deadline_follows_the_channel_timeout() {
    let mut rules = Rules::default();
    rules.inactivity_timeout_seconds.insert("voice".into(), 60);
    let spans = voice(vec![t("hi", "hello")], false, &[]);
    let row = sessionize("s", &spans, 1, 0, &rules).session;
    assert_eq!(
        row.expires_at,
        unix_seconds(row.last_activity_unix_nano) + 60
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
