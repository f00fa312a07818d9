//! OpenInference's Pipecat instrumentation: one trace per turn, service spans that end at
//! start + processing time, and a TTS span labelled `openinference.span.kind = LLM`.

use crate::conventions::fixtures::{span, SpanBuilder};
use crate::model::conversation::{DerivedSession, TurnRow};
use crate::model::Span;
use crate::sessionize::{sessionize, Rules};

fn derive(spans: &[Span]) -> DerivedSession {
    sessionize("s", spans, 1, 0, &Rules::default())
}

fn service(name: &str, kind: &str, class: &str, id: u8, at: (u64, u64)) -> SpanBuilder {
    span(name)
        .scope("openinference.instrumentation.pipecat")
        .trace(7)
        .id(id)
        .parent(1)
        .at(at.0, at.1)
        .attr("openinference.span.kind", kind)
        .attr("service.name", class)
}

/// One turn as the instrumentation writes it: the user speaks from 0 to 1.1 s, the final
/// transcript arrives at 1.4 s, the LLM starts at 1.45 s and the first audio plays at 2.6 s.
/// Every service span ends at its start plus the service's processing time.
fn turn(stt_extra: &[(&str, &str)], llm_ttfb: &str) -> Vec<Span> {
    let mut stt = service("pipecat.stt", "LLM", "DeepgramSTTService", 2, (0, 40))
        .attr("input.value", "Book a table for two.")
        .attr("service.ttfb_seconds", "0.3")
        .attr("service.processing_time_seconds", "0.04");
    for (key, value) in stt_extra {
        stt = stt.attr(key, value);
    }
    vec![
        span("pipecat.conversation.turn")
            .scope("openinference.instrumentation.pipecat")
            .trace(7)
            .id(1)
            .at(0, 5000)
            .attr("openinference.span.kind", "CHAIN")
            .attr("session.id", "conv-9")
            .attr("conversation.turn_number", "1")
            .attr("conversation.user_to_bot_latency", "1.5")
            .attr("input.value", "Book a table for two.")
            .attr("output.value", "Done, see you at eight.")
            .build(),
        stt.build(),
        service("pipecat.llm", "LLM", "OpenAILLMService", 3, (1450, 2050))
            .attr("llm.model_name", "gpt-4o-mini")
            .attr("output.value", "Done, see you at eight.")
            .attr("service.ttfb_seconds", llm_ttfb)
            .attr("service.processing_time_seconds", "0.6")
            .build(),
        service("pipecat.tts", "LLM", "CartesiaTTSService", 4, (2400, 2700))
            .attr("output.value", "Done, see you at eight.")
            .attr("service.ttfb_seconds", "0.2")
            .attr("service.processing_time_seconds", "0.3")
            .build(),
    ]
}

fn only_turn(spans: &[Span]) -> TurnRow {
    let derived = derive(spans);
    assert_eq!(derived.turns.len(), 1);
    derived.turns[0].clone()
}

#[test]
fn the_tts_span_labelled_llm_is_the_tts_stage_with_its_reported_first_byte() {
    let t = only_turn(&turn(&[], "0.45"));
    assert_eq!(t.agent_text, "Done, see you at eight.");
    assert_eq!(t.llm_model, "gpt-4o-mini");
    assert_eq!(
        (t.tts_ttfb_ms, t.tts_ttfb_source.as_str()),
        (Some(200.0), "reported:service.ttfb_seconds")
    );
    assert_eq!(t.llm_ttft_ms, Some(450.0));
    assert_eq!(t.stt_ms, Some(300.0));
    assert_eq!(t.voice_to_voice_ms, Some(1500.0));
}

#[test]
fn end_of_utterance_comes_from_the_reported_transcript_time_not_the_span_end() {
    // Speech ends at 1.4 s (last transcript) - 0.3 s (STT delay) = 1.1 s; the LLM starts at
    // 1.45 s.
    let t = only_turn(&turn(
        &[("stt.time_to_last_transcription_seconds", "1.4")],
        "0.45",
    ));
    let eou = t.end_of_utterance_ms.expect("derived");
    assert!((eou - 350.0).abs() < 1e-6, "{eou}");
    assert_eq!(t.end_of_utterance_source, "derived:speech_end_to_llm_start");
    // Without it, the span end (start + processing time) marks nothing: no value, rather than
    // a stage longer than the whole turn.
    let t = only_turn(&turn(&[], "0.45"));
    assert_eq!(t.end_of_utterance_ms, None);
}

#[test]
fn a_stage_longer_than_voice_to_voice_is_dropped_with_its_source_marked() {
    let t = only_turn(&turn(&[], "2.5"));
    assert_eq!(t.llm_ttft_ms, None);
    assert_eq!(t.llm_ttft_source, "dropped:reported:service.ttfb_seconds");
    assert_eq!(t.voice_to_voice_ms, Some(1500.0));
}

#[test]
fn the_service_class_names_the_stage_when_the_span_name_does_not() {
    let spans: Vec<Span> = turn(&[], "0.45")
        .into_iter()
        .map(|mut s| {
            if s.name == "pipecat.tts" {
                s.name = "ElevenLabsTTSService".into();
            }
            s
        })
        .collect();
    let t = only_turn(&spans);
    assert_eq!(t.tts_ttfb_ms, Some(200.0));
    assert_eq!(t.llm_ttft_ms, Some(450.0));
}

/// A turn as the instrumentation writes it after a barge-in, when the transcript went to no
/// STT span: the user text only in the LLM calls' input, a tool that raised, the turn's
/// output the part played, and an empty STT span opened as the next turn began.
fn interrupted_turn_with_a_failed_tool() -> Vec<Span> {
    let asked = |builder: SpanBuilder| {
        builder
            .attr("input.value", "And the forecast for London?")
            .attr("llm.input_messages.0.message.role", "system")
            .attr("llm.input_messages.0.message.content", "Be brief.")
            .attr("llm.input_messages.1.message.role", "user")
            .attr(
                "llm.input_messages.1.message.content",
                "And the forecast for London?",
            )
    };
    vec![
        span("pipecat.conversation.turn")
            .scope("openinference.instrumentation.pipecat")
            .trace(7)
            .id(1)
            .at(0, 5000)
            .attr("openinference.span.kind", "CHAIN")
            .attr("session.id", "conv-9")
            .attr("conversation.turn_number", "2")
            .attr("conversation.was_interrupted", "true")
            .attr("output.value", "Sorry, the forecast service is down.")
            .build(),
        asked(service("pipecat.llm", "LLM", "ScriptedLLM", 2, (100, 300))).build(),
        service("pipecat.tool.get_forecast", "TOOL", "", 3, (310, 311))
            .parent(2)
            .attr("tool.name", "get_forecast")
            .attr("tool.parameters", r#"{"city": "London"}"#)
            .attr(
                "frame.error.message",
                "RuntimeError: forecast service unavailable",
            )
            .attr(
                "output.value",
                "\"The function `get_forecast` failed and returned no result.\"",
            )
            .build(),
        // The call after the tool result repeats the user text in `input.value`.
        asked(service("pipecat.llm", "LLM", "ScriptedLLM", 4, (320, 800)))
            .attr("llm.input_messages.2.message.role", "assistant")
            .attr("llm.input_messages.3.message.role", "tool")
            .attr("llm.input_messages.3.message.content", "failed")
            .attr(
                "output.value",
                "Sorry, the forecast service is down. Try later.",
            )
            .build(),
        service("pipecat.stt", "LLM", "ScriptedSTT", 5, (4990, 4991)).build(),
    ]
}

#[test]
fn a_turn_without_a_transcript_takes_the_user_text_from_the_llm_input_once() {
    let derived = derive(&interrupted_turn_with_a_failed_tool());
    let turn = &derived.turns[0];
    assert_eq!(turn.user_text, "And the forecast for London?");
    // The user spoke before the reply, not when the empty STT span opened.
    let speakers: Vec<&str> = derived
        .messages
        .iter()
        .map(|m| m.speaker.as_str())
        .collect();
    assert_eq!(speakers, ["user", "tool", "agent"]);
}

#[test]
fn an_interrupted_turn_keeps_the_whole_reply_and_the_part_played() {
    let turn = derive(&interrupted_turn_with_a_failed_tool()).turns[0].clone();
    assert_eq!(turn.interrupted, 1);
    assert_eq!(
        turn.agent_text,
        "Sorry, the forecast service is down. Try later."
    );
    assert_eq!(
        turn.agent_spoken_text.as_deref(),
        Some("Sorry, the forecast service is down.")
    );
}

#[test]
fn a_tool_whose_handler_raised_is_a_failed_call() {
    let calls = derive(&interrupted_turn_with_a_failed_tool()).tool_calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].is_error, calls[0].error_message.as_str()),
        (1, "RuntimeError: forecast service unavailable")
    );
}
