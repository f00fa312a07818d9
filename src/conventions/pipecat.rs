//! Pipecat (`pipecat.utils.tracing`): one trace per conversation,
//! `conversation` -> `turn` -> `stt` / `llm` / `tts`; older releases named the stage spans
//! `stt_<Service>`, `llm_<Service>`, `tts_<Service>`.

use super::{flag, seconds, text, Role, SpanFacts, ToolFacts};
use crate::model::Span;

pub fn recognises(span: &Span) -> bool {
    span.scope_name.starts_with("pipecat") || role(span).is_some()
}

fn role(span: &Span) -> Option<Role> {
    let name = span.name.as_str();
    let role = match name {
        "conversation" => Role::Conversation,
        "turn" => Role::Turn,
        "stt" => Role::Stt,
        "llm" | "llm_request" | "llm_response" => Role::Llm,
        "tts" => Role::Tts,
        "llm_tool_call" | "llm_tool_result" => Role::Tool,
        _ if name.starts_with("stt_") => Role::Stt,
        _ if name.starts_with("llm_") && name != "llm_setup" => Role::Llm,
        _ if name.starts_with("tts_") => Role::Tts,
        _ => return None,
    };
    // Bare names like "llm" are common; claim them only with Pipecat's own markers.
    let marked = span.scope_name.starts_with("pipecat")
        || span.attributes.get("metrics.ttfb").is_some()
        || span.attributes.get("gen_ai.operation.name").is_some()
        || span.attributes.get("gen_ai.system").is_some()
        || span.attributes.get("conversation.id").is_some()
        || span.attributes.get("turn.number").is_some()
        || span.attributes.get("tool.function_name").is_some()
        || span.attributes.get("tool.call_id").is_some();
    marked.then_some(role)
}

pub fn read(span: &Span, facts: &mut SpanFacts) {
    facts.role = role(span).unwrap_or_default();
    match facts.role {
        Role::Conversation => facts.channel = text(span, &["conversation.type"]),
        Role::Turn => {
            facts.interrupted = flag(span, "turn.was_interrupted");
            facts.voice_to_voice = seconds(span, "turn.user_bot_latency_seconds");
        }
        Role::Stt => {
            facts.user_text = text(span, &["transcript"]);
            facts.stt = seconds(span, "metrics.ttfb");
            facts.audio_seconds = span.attributes.f64("metrics.audio_seconds");
            facts.session.user_id = text(span, &["user_id"]);
        }
        Role::Llm => {
            facts.user_text = if span.name == "llm_request" {
                text(span, &["transcript"])
            } else {
                None
            };
            facts.agent_text = text(span, &["output"]);
            facts.llm_ttft = seconds(span, "metrics.ttfb");
        }
        Role::Tts => {
            facts.agent_text = text(span, &["text"]);
            facts.voice = text(span, &["voice_id"]);
            facts.interrupted = flag(span, "tts.interrupted");
            facts.tts_ttfb = seconds(span, "metrics.ttfb");
            facts.characters = span.attributes.u64("metrics.character_count");
        }
        Role::Tool => {
            let status = span.attributes.get("tool.result_status").unwrap_or("");
            facts.tool = Some(ToolFacts {
                name: text(span, &["tool.function_name"]),
                call_id: text(span, &["tool.call_id"]),
                arguments: text(span, &["tool.arguments"]),
                result: text(span, &["tool.result"]),
                is_error: matches!(status, "error" | "failed" | "failure"),
                error_message: None,
            });
        }
        _ => {}
    }
}
