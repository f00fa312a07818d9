//! LiveKit Agents (`livekit.agents.telemetry`). Turns are traced as siblings: `user_turn`,
//! then `agent_turn` with the LLM / TTS / tool stages below it. 1.7 moved personal data under
//! `lk.pii.*`; both generations of names are read. Booleans arrive as strings.

use super::{flag, seconds, text, Role, SpanFacts, ToolFacts};
use crate::model::Span;

const SPANS: &[(&str, Role)] = &[
    ("agent_session", Role::Conversation),
    ("user_turn", Role::UserTurn),
    ("agent_turn", Role::AgentTurn),
    ("user_speaking", Role::UserSpeaking),
    ("agent_speaking", Role::AgentSpeaking),
    // The stage span carries the generated text and TTFT; the request span the usage.
    ("llm_node", Role::Llm),
    ("llm_request", Role::Llm),
    ("tts_request", Role::Tts),
    ("function_tool", Role::Tool),
    // A realtime (speech-to-speech) model's generation under its `agent_turn`; its usage
    // lands on a `realtime_metrics` child when the generation span had already ended.
    ("realtime_inference", Role::Llm),
    ("realtime_metrics", Role::Llm),
];

const RESPONSE_TEXT: [&str; 2] = ["lk.pii.response.text", "lk.response.text"];

pub fn recognises(span: &Span) -> bool {
    span.scope_name.contains("livekit") || span.attributes.iter().any(|(k, _)| k.starts_with("lk."))
}

pub fn read(span: &Span, facts: &mut SpanFacts) {
    facts.role = SPANS
        .iter()
        .find(|(name, _)| *name == span.name)
        .map(|(_, role)| *role)
        .unwrap_or_default();
    // Measurements can sit on the stage, the request or the attempt span; any of them counts.
    facts.end_of_utterance = seconds(span, "lk.end_of_turn_delay")
        .or_else(|| seconds(span, "lk.end_of_utterance_delay"))
        .or_else(|| seconds(span, "lk.eou.endpointing_delay"))
        .or_else(|| committed_wait(span));
    facts.stt = seconds(span, "lk.transcription_delay");
    facts.llm_ttft = seconds(span, "lk.response.ttft");
    facts.tts_ttfb = seconds(span, "lk.response.ttfb");
    facts.voice_to_voice = seconds(span, "lk.e2e_latency");
    facts.agent_name = text(span, &["lk.agent_name"]);
    match facts.role {
        Role::UserTurn => {
            facts.user_text = text(span, &["lk.pii.user_transcript", "lk.user_transcript"]);
            // LiveKit writes 0.0 when the STT plugin gives no confidence (the default of
            // its `SpeechData`), so exactly 0 means "not given", not "no confidence".
            facts.transcript_confidence = span
                .attributes
                .f64("lk.transcript_confidence")
                .filter(|confidence| *confidence != 0.0);
        }
        Role::AgentTurn => {
            facts.user_text = text(span, &["lk.pii.user_input", "lk.user_input"]);
            facts.interrupted = flag(span, "lk.interrupted");
            facts.follows_generation = span.attributes.get("lk.parent_generation_id").is_some();
            // On the turn, the response text is what actually played: for an interrupted
            // reply that is the part heard, and the generated text is on `llm_node`.
            let played = text(span, &RESPONSE_TEXT);
            if facts.interrupted.is_some() {
                facts.spoken_text = played;
            } else {
                facts.agent_text = played;
            }
        }
        Role::Llm => {
            facts.agent_text = text(span, &RESPONSE_TEXT);
        }
        Role::UserSpeaking => {
            facts.interrupted = flag(span, "lk.is_interruption");
        }
        Role::Tts => {
            facts.agent_text = text(span, &["lk.pii.input_text", "lk.input_text"]);
        }
        Role::Tool => {
            facts.tool = Some(ToolFacts {
                name: text(span, &["lk.function_tool.name"]),
                call_id: text(span, &["lk.function_tool.id"]),
                arguments: text(
                    span,
                    &[
                        "lk.pii.function_tool.arguments",
                        "lk.function_tool.arguments",
                    ],
                ),
                result: text(
                    span,
                    &["lk.pii.function_tool.output", "lk.function_tool.output"],
                ),
                is_error: span
                    .attributes
                    .bool("lk.function_tool.is_error")
                    .unwrap_or(false),
                error_message: None,
            });
        }
        _ => {}
    }
}

/// An `eou_wait` span runs from the end of the user's speech to the turn decision; only a
/// wait that ended in a committed turn (not `user_resumed` or `dropped`) is that turn's
/// end-of-utterance time.
fn committed_wait(span: &Span) -> Option<super::Reported> {
    (span.name == "eou_wait" && span.attributes.get("lk.eou.outcome") == Some("committed"))
        .then(|| seconds(span, "lk.eou.wait_duration"))
        .flatten()
}

#[cfg(test)]
mod tests {
    use crate::conventions::fixtures::span;
    use crate::conventions::read;

    fn confidence(value: &str) -> Option<f64> {
        read(
            &span("user_turn")
                .attr("lk.user_transcript", "hi")
                .attr("lk.transcript_confidence", value)
                .build(),
        )
        .transcript_confidence
    }

    #[test]
    fn a_committed_eou_wait_is_the_end_of_utterance() {
        let wait = |outcome: &str| {
            read(
                &span("eou_wait")
                    .attr("lk.eou.outcome", outcome)
                    .attr("lk.eou.wait_duration", "0.42")
                    .build(),
            )
            .end_of_utterance
        };
        assert_eq!(
            wait("committed"),
            Some(crate::conventions::Reported {
                ms: 420.0,
                key: "lk.eou.wait_duration"
            })
        );
        assert_eq!(wait("user_resumed"), None);
        assert_eq!(wait("dropped"), None);
    }

    #[test]
    fn a_realtime_generation_is_the_llm_stage() {
        use crate::conventions::Role;
        let inference = read(
            &span("realtime_inference")
                .attr("lk.speech_id", "speech_1")
                .attr("gen_ai.operation.name", "generate_content")
                .attr("gen_ai.request.model", "gpt-realtime")
                .attr("gen_ai.usage.input_tokens", "120")
                .attr("gen_ai.usage.audio.input_tokens", "100")
                .attr("gen_ai.response.time_to_first_chunk", "0.31")
                .build(),
        );
        assert_eq!(inference.role, Role::Llm);
        assert_eq!(inference.model.as_deref(), Some("gpt-realtime"));
        assert_eq!(inference.input_tokens, Some(120));
        assert_eq!(inference.llm_ttft.map(|r| r.ms), Some(310.0));
        let metrics = read(&span("realtime_metrics").attr("lk.speech_id", "s").build());
        assert_eq!(metrics.role, Role::Llm);
    }

    #[test]
    fn a_transcript_confidence_of_zero_is_unknown() {
        assert_eq!(confidence("0.0"), None);
        assert_eq!(confidence("0"), None);
        assert_eq!(confidence("0.01"), Some(0.01));
        assert_eq!(confidence("0.93"), Some(0.93));
    }
}
