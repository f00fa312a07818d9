//! Pipecat (`pipecat.utils.tracing`): one trace per conversation,
//! `conversation` -> `turn` -> `stt` / `llm` / `tts`; older releases named the stage spans
//! `stt_<Service>`, `llm_<Service>`, `tts_<Service>`.
//!
//! Pipecat 1.x traces no span for a function call, and on a barge-in its `llm.output` and
//! `tts.text` keep the whole generated reply. Both facts are in the context the next `llm`
//! span was given (its `input`), which is read here as [`ContextMessage`]s.

use std::collections::HashMap;

use serde_json::Value;

use super::{flag, seconds, text, ContextMessage, RequestedCall, Role, SpanFacts, ToolFacts};
use crate::model::Span;

/// The tool message Pipecat puts in the context while the function still runs.
const RESULT_PENDING: &str = "IN_PROGRESS";

/// How the results Pipecat writes for a function that raised (`FUNCTION_CALL_ERROR_MESSAGE_
/// TEMPLATE`) or is not registered (`MISSING_FUNCTION_CALL_MESSAGE_TEMPLATE`) end.
const PIPECAT_FAILURES: [&str; 2] = [
    "` failed and returned no result.",
    "` is not currently available.",
];

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
            facts.context = context(span);
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

/// The `input` of an `llm` span: the context as a JSON list of messages, in the format of
/// the LLM's provider (Pipecat logs what its adapter sends): OpenAI-style `tool_calls` and
/// `tool` messages, Anthropic-style `tool_use` and `tool_result` content blocks, or Gemini's
/// `parts` with `function_call` and `function_response`.
/// None when absent or not such a list (for instance cut at the attribute size limit).
fn context(span: &Span) -> Option<Vec<ContextMessage>> {
    let messages: Vec<Value> = serde_json::from_str(span.attributes.get("input")?).ok()?;
    let mut gemini_calls = GeminiCallIds::default();
    Some(
        messages
            .iter()
            .flat_map(|message| match message.get("parts") {
                Some(Value::Array(parts)) => gemini_messages(message, parts, &mut gemini_calls),
                _ => context_messages(message),
            })
            .collect(),
    )
}

fn context_messages(message: &Value) -> Vec<ContextMessage> {
    let content = message.get("content");
    let blocks = |kind: &'static str| {
        content
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(move |block| block.get("type").and_then(Value::as_str) == Some(kind))
    };
    match message.get("role").and_then(Value::as_str) {
        Some("user") => {
            let results: Vec<ContextMessage> = blocks("tool_result")
                .map(|block| {
                    tool_result(
                        string(block, "tool_use_id"),
                        content_text(block.get("content")),
                    )
                })
                .collect();
            if results.is_empty() || blocks("text").next().is_some() {
                results.into_iter().chain([ContextMessage::User]).collect()
            } else {
                results
            }
        }
        Some("assistant") => {
            let openai = message
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(requested_call);
            let anthropic = blocks("tool_use").map(|block| RequestedCall {
                id: string(block, "id"),
                name: string(block, "name"),
                arguments: block.get("input").map(Value::to_string).unwrap_or_default(),
            });
            vec![ContextMessage::Assistant {
                text: content_text(content),
                tool_calls: openai.chain(anthropic).collect(),
            }]
        }
        Some("tool") => vec![tool_result(
            string(message, "tool_call_id"),
            content_text(content),
        )],
        _ => vec![ContextMessage::Other],
    }
}

/// A Gemini `Content` (`{"role": "user" | "model", "parts": [...]}`). Pipecat's adapter
/// writes the snake_case names of the google-genai types; the REST API's camelCase is read
/// too. A model message is the assistant's text and `function_call` parts; a user message
/// with `function_response` parts answers them.
fn gemini_messages(
    message: &Value,
    parts: &[Value],
    call_ids: &mut GeminiCallIds,
) -> Vec<ContextMessage> {
    let text = parts
        .iter()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    match message.get("role").and_then(Value::as_str) {
        Some("model" | "assistant") => {
            let tool_calls = parts
                .iter()
                .filter_map(|part| member(part, "function_call", "functionCall"))
                .map(|call| {
                    let name = string(call, "name");
                    RequestedCall {
                        id: call_ids.call(string(call, "id"), &name),
                        arguments: call.get("args").map(Value::to_string).unwrap_or_default(),
                        name,
                    }
                })
                .collect();
            vec![ContextMessage::Assistant { text, tool_calls }]
        }
        Some("user") => {
            let results: Vec<ContextMessage> = parts
                .iter()
                .filter_map(|part| member(part, "function_response", "functionResponse"))
                .map(|response| {
                    let id = call_ids.response(string(response, "id"), &string(response, "name"));
                    tool_result(id, gemini_response_text(response.get("response")))
                })
                .collect();
            if results.is_empty() || !text.is_empty() {
                results.into_iter().chain([ContextMessage::User]).collect()
            } else {
                results
            }
        }
        _ => vec![ContextMessage::Other],
    }
}

fn member<'a>(part: &'a Value, snake: &str, camel: &str) -> Option<&'a Value> {
    part.get(snake).or_else(|| part.get(camel))
}

/// Gemini calls need not carry ids; the context is the whole history in order, so the n-th
/// call of a function and the n-th response from it pair up, and numbering them so gives
/// the same id in every later context.
#[derive(Default)]
struct GeminiCallIds {
    calls: HashMap<String, usize>,
    responses: HashMap<String, usize>,
}

impl GeminiCallIds {
    fn call(&mut self, id: String, name: &str) -> String {
        Self::numbered(&mut self.calls, id, name)
    }

    fn response(&mut self, id: String, name: &str) -> String {
        Self::numbered(&mut self.responses, id, name)
    }

    fn numbered(counts: &mut HashMap<String, usize>, id: String, name: &str) -> String {
        if !id.is_empty() {
            return id;
        }
        let count = counts.entry(name.to_owned()).or_default();
        *count += 1;
        format!("{name}#{count}")
    }
}

/// A function's response: Pipecat wraps a value that is not an object as `{"value": ...}`.
fn gemini_response_text(response: Option<&Value>) -> String {
    match response {
        None | Some(Value::Null) => String::new(),
        Some(Value::Object(object)) if object.len() == 1 => match object.get("value") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => Value::Object(object.clone()).to_string(),
        },
        Some(other) => other.to_string(),
    }
}

fn tool_result(call_id: String, content: String) -> ContextMessage {
    ContextMessage::ToolResult {
        call_id,
        error: result_error(&content),
        result: (content != RESULT_PENDING).then_some(content),
    }
}

/// A message's content: a string, or the texts of its parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

fn requested_call(call: &Value) -> Option<RequestedCall> {
    let function = call.get("function")?;
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    Some(RequestedCall {
        id: string(call, "id"),
        name: string(function, "name"),
        arguments,
    })
}

fn string(object: &Value, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Pipecat stores a function's return value as JSON; handlers report a failure by returning
/// an object with an `error` member (`{"error": "order not found"}`), which Pipecat's own
/// examples do. Its value, when set, is the error message. When a handler raises, or the
/// LLM asks for a function nobody registered, Pipecat answers with a sentence of its own
/// (`"The function `get_forecast` failed and returned no result."`), which is the message.
fn result_error(content: &str) -> Option<String> {
    let value: Value = serde_json::from_str(content).ok()?;
    if let Value::String(text) = &value {
        let failed = text.starts_with("The function `")
            && PIPECAT_FAILURES.iter().any(|end| text.ends_with(end));
        return failed.then(|| text.clone());
    }
    match value.get("error")? {
        Value::Null | Value::Bool(false) => None,
        Value::String(text) if text.is_empty() => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}
