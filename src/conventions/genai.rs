//! OpenTelemetry GenAI semantic conventions: `gen_ai.operation.name` says what a span is;
//! model, provider and token usage attributes are shared by every framework that follows
//! them (Pipecat and LiveKit included), so [`read_shared`] runs for every span.

use super::{seconds, text, Document, Grounding, GroundingStage, Role, SpanFacts, ToolFacts};
use crate::model::Span;

const END_REASON: &str = "gen_ai.agent.invocation.end_reason";

pub fn recognises(span: &Span) -> bool {
    span.attributes.get("gen_ai.operation.name").is_some()
}

pub fn read(span: &Span, facts: &mut SpanFacts) {
    facts.role = match span.attributes.get("gen_ai.operation.name").unwrap_or("") {
        "chat" | "generate_content" | "text_completion" => Role::Llm,
        "invoke_agent" => Role::AgentTurn,
        "execute_tool" => Role::Tool,
        "speech_to_text" => Role::Stt,
        "text_to_speech" => Role::Tts,
        _ => Role::Other,
    };
    let input = span.attributes.get("gen_ai.input.messages");
    let output = span.attributes.get("gen_ai.output.messages");
    match facts.role {
        Role::Stt => {
            // The transcript is the call's output, whatever role the exporter gave it.
            facts.user_text = output.and_then(|m| last_text(m, None));
            facts.model = text(span, &["gen_ai.request.model"]);
        }
        Role::Tts => {
            facts.agent_text = input.and_then(|m| last_text(m, None));
            facts.voice = text(span, &["gen_ai.speech.voice"]);
        }
        Role::Llm => {
            // A call that continues a turn (after a tool result) repeats the user's last
            // message in its history; only a call whose input ends with the user speaking
            // brings new user text.
            facts.user_text = input.and_then(new_user_text);
            facts.agent_text = output.and_then(|m| last_text(m, Some("assistant")));
            facts.agent_name = text(span, &["gen_ai.agent.name"]);
        }
        Role::AgentTurn => {
            facts.user_text = input.and_then(|m| last_text(m, Some("user")));
            facts.agent_text = output.and_then(|m| last_text(m, Some("assistant")));
            facts.agent_name = text(span, &["gen_ai.agent.name"]);
            // Why the invocation (one turn) ended: the user barged in, or the session
            // closed under it; `completed` says nothing more.
            match span.attributes.get(END_REASON) {
                Some("interrupted") => facts.interrupted = Some(END_REASON),
                Some("session_closed") => facts.session.ended = true,
                _ => {}
            }
        }
        Role::Tool => {
            facts.tool = Some(ToolFacts {
                name: text(span, &["gen_ai.tool.name"]),
                call_id: text(span, &["gen_ai.tool.call.id"]),
                arguments: text(span, &["gen_ai.tool.call.arguments"]),
                result: text(span, &["gen_ai.tool.call.result"]),
                is_error: span.attributes.get("error.type").is_some(),
                error_message: text(span, &["error.type"]),
            });
        }
        _ => {}
    }
    if span.attributes.get("gen_ai.operation.name") == Some("retrieval") {
        facts.grounding = span
            .attributes
            .get("gen_ai.retrieval.documents")
            .and_then(retrieved_documents);
    }
}

/// `gen_ai.retrieval.documents`: a JSON array of `{"id", "score"}` objects, which may also
/// carry the content (and, from some emitters, a title, URL or metadata object).
fn retrieved_documents(json: &str) -> Option<Grounding> {
    let parsed: serde_json::Value = serde_json::from_str(json).ok()?;
    let string = |v: &serde_json::Value, key: &str| match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let documents: Vec<Document> = parsed
        .as_array()?
        .iter()
        .filter(|d| d.is_object())
        .map(|d| {
            let mut document = Document {
                id: string(d, "id"),
                title: string(d, "title"),
                url: string(d, "url"),
                content: string(d, "content"),
                score: d
                    .get("score")
                    .and_then(|s| s.as_f64())
                    .filter(|s| s.is_finite()),
            };
            if let Some(metadata) = d.get("metadata") {
                document.fill_from_metadata(metadata);
            }
            document
        })
        .filter(|d| !d.is_empty())
        .collect();
    (!documents.is_empty()).then_some(Grounding {
        stage: GroundingStage::Retrieved,
        documents,
    })
}

/// Model, provider, tokens and TTFT, wherever a framework left them unset.
pub fn read_shared(span: &Span, facts: &mut SpanFacts) {
    let attrs = &span.attributes;
    fill(&mut facts.provider, || {
        text(span, &["gen_ai.provider.name", "gen_ai.system"])
    });
    fill(&mut facts.model, || {
        text(span, &["gen_ai.request.model", "gen_ai.response.model"])
    });
    fill(&mut facts.input_tokens, || {
        attrs
            .u64("gen_ai.usage.input_tokens")
            .or_else(|| attrs.u64("gen_ai.usage.prompt_tokens"))
            .or_else(|| tokens_by_modality(span, &INPUT_TOKENS_BY_MODALITY))
    });
    fill(&mut facts.output_tokens, || {
        attrs
            .u64("gen_ai.usage.output_tokens")
            .or_else(|| attrs.u64("gen_ai.usage.completion_tokens"))
            .or_else(|| tokens_by_modality(span, &OUTPUT_TOKENS_BY_MODALITY))
    });
    fill(&mut facts.llm_ttft, || {
        seconds(span, "gen_ai.response.time_to_first_chunk")
    });
    fill(&mut facts.agent_name, || text(span, &["gen_ai.agent.name"]));
    fill(&mut facts.cost_usd, || {
        attrs.f64("gen_ai.usage.cost").filter(|c| *c >= 0.0)
    });
    fill(&mut facts.error_type, || {
        text(span, &["error.type"]).or_else(|| {
            span.events
                .iter()
                .find(|e| e.name == "exception")
                .and_then(|e| {
                    e.attributes
                        .first_of(&["exception.type"])
                        .map(str::to_owned)
                })
        })
    });
    fill(&mut facts.http_status, || {
        ["http.response.status_code", "http.status_code"]
            .iter()
            .find_map(|k| attrs.u64(k))
            .and_then(|c| u16::try_from(c).ok())
    });
    fill(&mut facts.session.user_id, || {
        text(span, &["user.id", "enduser.id"])
    });
}

/// The total of a direction's tokens (`keys`: [`INPUT_TOKENS_BY_MODALITY`] or
/// [`OUTPUT_TOKENS_BY_MODALITY`]) from their split by modality, for spans that give only the
/// split. Speech-to-speech models report text and audio tokens apart, and two spellings are
/// in use: `gen_ai.usage.audio.input_tokens` (the registry's) and
/// `gen_ai.usage.input_audio_tokens`; either is read.
fn tokens_by_modality(span: &Span, keys: &[[&str; 2]; 3]) -> Option<u64> {
    // Most spans report no usage: one look over their keys instead of six lookups.
    if !span.attributes.has_key_starting("gen_ai.usage.") {
        return None;
    }
    let mut counts = keys
        .iter()
        .filter_map(|[registry, other]| {
            span.attributes
                .u64(registry)
                .or_else(|| span.attributes.u64(other))
        })
        .peekable();
    counts.peek().is_some().then(|| counts.sum())
}

/// Per modality (text, audio, image): the registry's key, then the other spelling.
const INPUT_TOKENS_BY_MODALITY: [[&str; 2]; 3] = [
    [
        "gen_ai.usage.text.input_tokens",
        "gen_ai.usage.input_text_tokens",
    ],
    [
        "gen_ai.usage.audio.input_tokens",
        "gen_ai.usage.input_audio_tokens",
    ],
    [
        "gen_ai.usage.image.input_tokens",
        "gen_ai.usage.input_image_tokens",
    ],
];
const OUTPUT_TOKENS_BY_MODALITY: [[&str; 2]; 3] = [
    [
        "gen_ai.usage.text.output_tokens",
        "gen_ai.usage.output_text_tokens",
    ],
    [
        "gen_ai.usage.audio.output_tokens",
        "gen_ai.usage.output_audio_tokens",
    ],
    [
        "gen_ai.usage.image.output_tokens",
        "gen_ai.usage.output_image_tokens",
    ],
];

fn fill<T>(slot: &mut Option<T>, value: impl FnOnce() -> Option<T>) {
    if slot.is_none() {
        *slot = value();
    }
}

/// The text of the last message with `role` (any role when None) in a GenAI messages JSON
/// array (`[{"role": "user", "parts": [{"type": "text", "content": "..."}]}]`); the older
/// `{"role", "content"}` shape is accepted too.
fn last_text(messages: &str, role: Option<&str>) -> Option<String> {
    let parsed: serde_json::Value = serde_json::from_str(messages).ok()?;
    let message =
        parsed.as_array()?.iter().rev().find(|m| {
            role.is_none_or(|role| m.get("role").and_then(|r| r.as_str()) == Some(role))
        })?;
    message_text(message)
}

/// The user's text when the history ends with the user speaking.
fn new_user_text(messages: &str) -> Option<String> {
    let parsed: serde_json::Value = serde_json::from_str(messages).ok()?;
    let last = parsed.as_array()?.last()?;
    (last.get("role").and_then(|r| r.as_str()) == Some("user"))
        .then(|| message_text(last))
        .flatten()
}

/// A text part's content, or the transcript of an audio part (a `blob`, `uri` or `file` part
/// with modality `audio`; its bytes are never on the span, LiveKit adds the transcript).
fn part_text(part: &serde_json::Value) -> Option<&str> {
    let field = |key: &str| part.get(key).and_then(|v| v.as_str());
    match field("type").unwrap_or("text") {
        "text" => field("content"),
        "blob" | "uri" | "file" | "audio" if field("modality").unwrap_or("audio") == "audio" => {
            field("transcript")
        }
        _ => None,
    }
}

fn message_text(message: &serde_json::Value) -> Option<String> {
    if let Some(content) = message.get("content").and_then(|c| c.as_str()) {
        return Some(content.to_owned());
    }
    let text: Vec<&str> = message
        .get("parts")?
        .as_array()?
        .iter()
        .filter_map(part_text)
        .collect();
    (!text.is_empty()).then(|| text.join(" "))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::span;
    use super::super::{read, GroundingStage};

    #[test]
    fn retrieval_documents() {
        let retrieval = span("retrieval kb")
            .attr("gen_ai.operation.name", "retrieval")
            .attr("gen_ai.data_source.id", "kb")
            .attr(
                "gen_ai.retrieval.documents",
                r#"[{"id":"doc_123","score":0.95},{"id":7,"content":"Refunds take 5 days.","metadata":{"title":"Refunds"}},"junk"]"#,
            )
            .build();
        let grounding = read(&retrieval).grounding.expect("documents");
        assert_eq!(grounding.stage, GroundingStage::Retrieved);
        let ids: Vec<&str> = grounding.documents.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["doc_123", "7"]);
        assert_eq!(grounding.documents[0].score, Some(0.95));
        assert_eq!(grounding.documents[1].title, "Refunds");

        let broken = span("retrieval kb")
            .attr("gen_ai.operation.name", "retrieval")
            .attr("gen_ai.retrieval.documents", "not json")
            .build();
        assert_eq!(read(&broken).grounding, None);
    }
}
