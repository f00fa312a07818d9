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
