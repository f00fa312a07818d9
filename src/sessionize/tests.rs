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
