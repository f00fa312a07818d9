//! OpenInference (Arize). Its Pipecat instrumentation makes each turn its own trace, with
//! `session.id` on the turn span only, so sessions are grouped across traces.

use super::{
    flag, indexed_documents, seconds, text, DocumentField, Grounding, GroundingStage, Role,
    SpanFacts, ToolFacts,
};
use crate::model::Span;

pub fn recognises(span: &Span) -> bool {
    span.attributes.get("openinference.span.kind").is_some()
        || span.scope_name.contains("openinference")
}

/// The stage a span stands for: by its name where the instrumentation names it, then by the
/// service class behind it, since the kind alone is generic (the Pipecat instrumentation
/// labels its TTS spans `LLM`).
fn role(span: &Span) -> Role {
    match span.name.as_str() {
        "pipecat.conversation.turn" => return Role::Turn,
        "pipecat.stt" => return Role::Stt,
        "pipecat.llm" => return Role::Llm,
        "pipecat.tts" => return Role::Tts,
        name if name.starts_with("pipecat.tool.") => return Role::Tool,
        _ => {}
    }
    let service = span
        .attributes
        .get("service.name")
        .unwrap_or("")
        .to_ascii_lowercase();
    if service.ends_with("sttservice") {
        return Role::Stt;
    }
    if service.ends_with("ttsservice") {
        return Role::Tts;
    }
    match span.attributes.get("openinference.span.kind").unwrap_or("") {
        "LLM" => Role::Llm,
        "TOOL" => Role::Tool,
        "AGENT" => Role::AgentTurn,
        _ => Role::Other,
    }
}

pub fn read(span: &Span, facts: &mut SpanFacts) {
    facts.role = role(span);
    facts.grounding = grounding(span);
    // With processing-time metrics a service span ends at start + that time, not when the
    // transcript, the reply or the audio arrived.
    facts.end_is_estimate = matches!(facts.role, Role::Stt | Role::Llm | Role::Tts)
        && span
            .attributes
            .get("service.processing_time_seconds")
            .is_some();
    let ttfb = seconds(span, "service.ttfb_seconds");
    match facts.role {
        Role::Turn => {
            facts.user_text = text(span, &["input.value"]);
            facts.interrupted = flag(span, "conversation.was_interrupted");
            // The turn's output is what the bot said aloud: for an interrupted turn the
            // part heard, while its LLM span holds the whole reply.
            let said = text(span, &["output.value"]);
            if facts.interrupted.is_some() {
                facts.spoken_text = said;
            } else {
                facts.agent_text = said;
            }
            facts.session.ended_reason = text(span, &["conversation.end_reason"]);
            facts.session.user_id = text(span, &["user.id"]);
            facts.voice_to_voice = seconds(span, "conversation.user_to_bot_latency");
        }
        Role::Stt => {
            // The input is what the STT service transcribed (its output is empty); the
            // Pipecat instrumentation leaves a space after each segment it joined.
            facts.user_text = trimmed(text(
                span,
                &["audio.transcript", "output.value", "input.value"],
            ));
            facts.stt = ttfb;
            // Measured from the span start (the user starting to speak).
            facts.transcript_at_unix_nano = seconds(span, "stt.time_to_last_transcription_seconds")
                .map(|r| span.start_unix_nano.saturating_add((r.ms * 1e6) as u64));
        }
        Role::Llm | Role::AgentTurn => {
            facts.user_text = if facts.role == Role::AgentTurn {
                // An agent run's input is what the user asked.
                text(span, &["input.value"])
            } else {
                new_user_message(span)
            };
            facts.agent_text = text(span, &["output.value"]);
            facts.model = text(span, &["llm.model_name"]);
            facts.provider = text(span, &["llm.provider", "llm.system"]);
            facts.input_tokens = span.attributes.u64("llm.token_count.prompt");
            facts.output_tokens = span.attributes.u64("llm.token_count.completion");
            facts.llm_ttft = ttfb;
        }
        Role::Tts => {
            // The Pipecat instrumentation records the spoken text as the output.
            facts.agent_text = trimmed(text(span, &["output.value", "input.value"]));
            facts.tts_ttfb = ttfb;
        }
        Role::Tool => {
            facts.tool = Some(ToolFacts {
                name: text(span, &["tool.name"])
                    .or_else(|| span.name.strip_prefix("pipecat.tool.").map(str::to_owned)),
                call_id: text(span, &["tool_call.id", "tool.call_id"]),
                arguments: text(span, &["tool.parameters", "input.value"]),
                result: text(span, &["output.value"]),
                // The Pipecat instrumentation copies the error of the result frame (the
                // exception a handler raised).
                is_error: span.attributes.get("frame.error.message").is_some(),
                error_message: text(span, &["frame.error.message"]),
            });
        }
        _ => {}
    }
}

fn trimmed(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The user's message when the call's input (`llm.input_messages.N.message.*`, in order)
/// ends with one: a call that continues after a tool result repeats the same user text in
/// `input.value` but brings nothing new.
fn new_user_message(span: &Span) -> Option<String> {
    let last = (0..)
        .take_while(|i| {
            span.attributes
                .get(&format!("llm.input_messages.{i}.message.role"))
                .is_some()
        })
        .last()?;
    let message = |field: &str| format!("llm.input_messages.{last}.message.{field}");
    (span.attributes.get(&message("role")) == Some("user"))
        .then(|| span.attributes.get(&message("content")).map(str::to_owned))
        .flatten()
}

/// The documents of a `RETRIEVER` span (`retrieval.documents.N.document.*`) or what a
/// `RERANKER` span kept (`reranker.output_documents.N.document.*`).
fn grounding(span: &Span) -> Option<Grounding> {
    let (stage, prefix) = match span.attributes.get("openinference.span.kind")? {
        "RETRIEVER" => (GroundingStage::Retrieved, "retrieval.documents."),
        "RERANKER" => (GroundingStage::Reranked, "reranker.output_documents."),
        _ => return None,
    };
    let documents = indexed_documents(span, prefix, |field| match field {
        "document.id" => Some(DocumentField::Id),
        "document.content" => Some(DocumentField::Content),
        "document.score" => Some(DocumentField::Score),
        "document.metadata" => Some(DocumentField::Metadata),
        _ => None,
    });
    (!documents.is_empty()).then_some(Grounding { stage, documents })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::span;
    use super::super::{read, Document, GroundingStage};

    #[test]
    fn retriever_documents_in_index_order_with_metadata() {
        let retriever = span("retrieve")
            .attr("openinference.span.kind", "RETRIEVER")
            .attr("input.value", "opening hours")
            .attr("retrieval.documents.1.document.id", "kb-2")
            .attr("retrieval.documents.1.document.score", "0.42")
            .attr("retrieval.documents.0.document.id", "kb-1")
            .attr("retrieval.documents.0.document.content", "We open at 9.")
            .attr("retrieval.documents.0.document.score", "0.91")
            .attr(
                "retrieval.documents.0.document.metadata",
                r#"{"title":"Opening hours","url":"https://kb.example/hours"}"#,
            )
            .build();
        let grounding = read(&retriever).grounding.expect("documents");
        assert_eq!(grounding.stage, GroundingStage::Retrieved);
        assert_eq!(
            grounding.documents,
            vec![
                Document {
                    id: "kb-1".into(),
                    title: "Opening hours".into(),
                    url: "https://kb.example/hours".into(),
                    content: "We open at 9.".into(),
                    score: Some(0.91),
                },
                Document {
                    id: "kb-2".into(),
                    score: Some(0.42),
                    ..Document::default()
                },
            ]
        );
    }

    #[test]
    fn reranker_output_not_input() {
        let reranker = span("rerank")
            .attr("openinference.span.kind", "RERANKER")
            .attr("reranker.input_documents.0.document.id", "kb-9")
            .attr("reranker.input_documents.1.document.id", "kb-1")
            .attr("reranker.output_documents.0.document.id", "kb-1")
            .attr("reranker.output_documents.0.document.score", "not a number")
            .build();
        let grounding = read(&reranker).grounding.expect("documents");
        assert_eq!(grounding.stage, GroundingStage::Reranked);
        assert_eq!(grounding.documents.len(), 1);
        assert_eq!(grounding.documents[0].id, "kb-1");
        assert_eq!(grounding.documents[0].score, None);
    }

    #[test]
    fn other_kinds_have_no_grounding() {
        let llm = span("llm")
            .attr("openinference.span.kind", "LLM")
            .attr("retrieval.documents.0.document.id", "kb-1")
            .build();
        assert_eq!(read(&llm).grounding, None);
    }
}
