//! TEN framework (tracing branch): `agent_session` -> `user_turn` -> `llm_node` -> `tool_call`,
//! with `asr_node` and `tts_node`; keys under `ten.*`.

use super::{flag, text, Role, SpanFacts, ToolFacts};
use crate::model::Span;

pub fn recognises(span: &Span) -> bool {
    span.attributes.iter().any(|(k, _)| k.starts_with("ten."))
}

pub fn read(span: &Span, facts: &mut SpanFacts) {
    facts.role = match span.name.as_str() {
        "agent_session" => Role::Conversation,
        "user_turn" => Role::Turn,
        "asr_node" => Role::Stt,
        "llm_node" => Role::Llm,
        "tts_node" => Role::Tts,
        "tool_call" => Role::Tool,
        _ => Role::Other,
    };
    facts.interrupted = flag(span, "ten.interrupted");
    match facts.role {
        Role::Stt => facts.user_text = text(span, &["ten.asr.text"]),
        Role::Tool => {
            facts.tool = Some(ToolFacts {
                name: text(span, &["ten.tool.name"]),
                call_id: None,
                arguments: text(span, &["ten.tool.arguments"]),
                result: text(span, &["ten.tool.output"]),
                is_error: span.attributes.bool("ten.tool.is_error").unwrap_or(false),
                error_message: None,
            })
        }
        _ => {}
    }
}
