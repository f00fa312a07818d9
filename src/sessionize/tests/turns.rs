//! Spans into turns, texts and latencies, whatever the framework, the arrival order or the
//! shape of the trace.

use super::*;

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
fn livekit_stt_provider_and_model_come_from_the_user_turn() {
    let mut spans = livekit();
    let user_turn = spans
        .iter_mut()
        .find(|s| s.name == "user_turn")
        .expect("a user turn");
    for (key, value) in [
        ("gen_ai.provider.name", "deepgram"),
        ("gen_ai.request.model", "nova-3"),
    ] {
        user_turn
            .attributes
            .0
            .push((key.to_owned(), value.to_owned()));
    }
    let d = derive(&spans);
    assert_eq!(d.turns[0].stt_provider, "deepgram");
    assert_eq!(d.turns[0].stt_model, "nova-3");
    // The LLM's provider stays the LLM's.
    assert_ne!(d.turns[0].llm_provider, "deepgram");
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
    // Resources that disagree: the earliest span's.
    let two_resources = vec![
        span("late")
            .id(1)
            .resource("room_id", "RM_late")
            .at(5, 6)
            .build(),
        span("early")
            .id(2)
            .resource("room_id", "RM_early")
            .at(3, 9)
            .build(),
        span("bare").id(3).at(1, 2).build(),
    ];
    assert_eq!(
        trace_session_key(&two_resources).as_deref(),
        Some("RM_early")
    );
    assert_eq!(trace_session_key(&[span("x").build()]), None);
}

#[test]
fn overlong_session_keys_are_hashed() {
    let limit = "k".repeat(crate::sessionize::MAX_KEY_BYTES);
    let keyed = |key: &str| vec![span("root").attr("session.id", key).build()];
    assert_eq!(trace_session_key(&keyed(&limit)), Some(limit.clone()));
    let long = format!("{limit}k");
    let hashed = trace_session_key(&keyed(&long)).expect("a key");
    assert!(
        hashed.starts_with("sha256:") && hashed.len() == 7 + 64,
        "{hashed}"
    );
    assert_eq!(trace_session_key(&keyed(&long)), Some(hashed.clone()));
    assert_ne!(trace_session_key(&keyed(&format!("{long}k"))), Some(hashed));
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

/// Every step that looks at a span's ancestors must not walk the chain once per span: this
/// chain took minutes that way (its timing is in `benches/pipeline.rs`).
#[test]
fn a_40000_span_chain_derives() {
    let id = |n: u64| crate::model::SpanId::from(n.to_be_bytes());
    let mut spans = vec![span("turn").attr("turn.number", "1").build()];
    spans[0].span_id = id(1);
    for n in 2..=40_000u64 {
        // Keyed and failed: the session key, turn and failed stage all look up the chain.
        let mut s = span("step")
            .attr("conversation.id", &format!("conv-{n}"))
            .error("boom")
            .at(n, n + 1)
            .build();
        s.span_id = id(n);
        s.parent_span_id = Some(id(n - 1));
        spans.push(s);
    }
    spans[1].attributes = [("gen_ai.operation.name", "chat")].into_iter().collect();
    assert_eq!(trace_session_key(&spans).as_deref(), Some("conv-3"));
    let d = derive(&spans);
    assert_eq!((d.session.span_count, d.turns.len()), (40_000, 1));
    assert_eq!(
        d.issues
            .iter()
            .filter(|i| i.issue == issue::LLM_ERROR)
            .count(),
        1
    );
}

#[test]
fn unknown_spans_are_counted_and_empty_sessions_are_tombstones() {
    let d = derive(&[span("db.query").build()]);
    assert_eq!((d.session.span_count, d.turns.len()), (1, 0));
    assert_eq!(tombstone("gone", 9, 0).deleted, 1);
}
