//! OpenInference (Arize). Its Pipecat instrumentation makes each turn its own trace, with
//! `session.id` on the turn span only, so sessions are grouped across traces.

use super::{flag, seconds, text, Role, SpanFacts, ToolFacts};
use crate::model::Span;

pub fn recognises(span: &Span) -> bool {
    span.attributes.get("openinference.span.kind").is_some()
        || span.scope_name.contains("openinference")
}

pub fn read(span: &Span, facts: &mut SpanFacts) {
    let kind = span.attributes.get("openinference.span.kind").unwrap_or("");
    facts.role = match (span.name.as_str(), kind) {
        ("pipecat.conversation.turn", _) => Role::Turn,
        ("pipecat.stt", _) => Role::Stt,
        ("pipecat.llm", _) | (_, "LLM") => Role::Llm,
        ("pipecat.tts", _) => Role::Tts,
        (name, _) if name.starts_with("pipecat.tool.") => Role::Tool,
        (_, "TOOL") => Role::Tool,
        (_, "AGENT") => Role::AgentTurn,
        _ => Role::Other,
    };
    let ttfb = seconds(span, "service.ttfb_seconds");
    match facts.role {
        Role::Turn => {
            facts.user_text = text(span, &["input.value"]);
            facts.agent_text = text(span, &["output.value"]);
            facts.interrupted = flag(span, "conversation.was_interrupted");
            facts.session.ended_reason = text(span, &["conversation.end_reason"]);
            facts.session.user_id = text(span, &["user.id"]);
            facts.voice_to_voice = seconds(span, "conversation.user_to_bot_latency");
        }
        Role::Stt => {
            facts.user_text = text(span, &["audio.transcript", "output.value"]);
            facts.stt = ttfb;
        }
        Role::Llm | Role::AgentTurn => {
            facts.agent_text = text(span, &["output.value"]);
            facts.model = text(span, &["llm.model_name"]);
            facts.provider = text(span, &["llm.provider", "llm.system"]);
            facts.input_tokens = span.attributes.u64("llm.token_count.prompt");
            facts.output_tokens = span.attributes.u64("llm.token_count.completion");
            facts.llm_ttft = ttfb;
        }
        Role::Tts => {
            facts.agent_text = text(span, &["input.value"]);
            facts.tts_ttfb = ttfb;
        }
        Role::Tool => {
            facts.tool = Some(ToolFacts {
                name: text(span, &["tool.name"])
                    .or_else(|| span.name.strip_prefix("pipecat.tool.").map(str::to_owned)),
                call_id: text(span, &["tool_call.id", "tool.call_id"]),
                arguments: text(span, &["tool.parameters", "input.value"]),
                result: text(span, &["output.value"]),
                is_error: false,
                error_message: None,
            });
        }
        _ => {}
    }
}
