//! What agent frameworks put on their spans, read in one place. Each framework has its own
//! module; [`read`] picks the one that recognises a span and returns the facts the
//! sessionizer needs, in framework-neutral terms. The sessionizer never looks at attribute
//! names itself.

mod convolog;
mod genai;
mod livekit;
mod openinference;
mod pipecat;
mod ten;
mod videosdk;

use crate::model::{Attributes, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Framework {
    #[default]
    Unknown,
    Pipecat,
    LiveKit,
    OpenInference,
    GenAi,
    Ten,
    VideoSdk,
}

impl Framework {
    pub fn as_str(&self) -> &'static str {
        match self {
            Framework::Unknown => "unknown",
            Framework::Pipecat => "pipecat",
            Framework::LiveKit => "livekit",
            Framework::OpenInference => "openinference",
            Framework::GenAi => "genai",
            Framework::Ten => "ten",
            Framework::VideoSdk => "videosdk",
        }
    }
}

/// What a span stands for in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// The whole conversation (Pipecat `conversation`, LiveKit `agent_session`).
    Conversation,
    /// A user utterance and the reply to it (Pipecat `turn`).
    Turn,
    /// The user's side of a turn when the framework traces it apart (LiveKit `user_turn`).
    UserTurn,
    /// The agent's reply when the framework traces it apart (LiveKit `agent_turn`, GenAI `invoke_agent`).
    AgentTurn,
    Stt,
    Llm,
    /// A span that ends when the first LLM token arrives.
    FirstToken,
    Tts,
    Tool,
    /// The user speaking (VAD), possibly over the agent.
    UserSpeaking,
    /// The agent's audio playing out.
    AgentSpeaking,
    /// A span whose only meaning is "the agent was interrupted here".
    Interruption,
    Handoff,
    #[default]
    Other,
}

/// A latency a framework measured itself, and the attribute it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reported {
    pub ms: f64,
    pub key: &'static str,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolFacts {
    pub name: Option<String>,
    pub call_id: Option<String>,
    pub arguments: Option<String>,
    pub result: Option<String>,
    pub is_error: bool,
    pub error_message: Option<String>,
}

/// One message of the context an LLM call was given, as far as the transcript needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextMessage {
    User,
    /// The assistant's text (empty when it only asked for tools) and the calls it asked for.
    Assistant {
        text: String,
        tool_calls: Vec<RequestedCall>,
    },
    /// A tool's answer to the call `call_id`; `result` is None while the call still runs.
    ToolResult {
        call_id: String,
        result: Option<String>,
        error: Option<String>,
    },
    Other,
}

/// A tool call the assistant asked for, as its context records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestedCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Everything conventions know about one span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanFacts {
    pub framework: Framework,
    pub role: Role,
    pub user_text: Option<String>,
    pub agent_text: Option<String>,
    /// For an interrupted reply, the part the user actually heard.
    pub spoken_text: Option<String>,
    /// Set when this span says the agent was interrupted: the attribute (or span) that said so.
    pub interrupted: Option<&'static str>,
    pub end_of_utterance: Option<Reported>,
    pub stt: Option<Reported>,
    pub llm_ttft: Option<Reported>,
    pub tts_ttfb: Option<Reported>,
    pub voice_to_voice: Option<Reported>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub voice: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub tool: Option<ToolFacts>,
    pub agent_name: Option<String>,
    pub channel: Option<String>,
    pub direction: Option<String>,
    pub handoff_target: Option<String>,
    /// An explicit transcript line: (speaker, text), e.g. a human agent's message.
    pub message: Option<(String, String)>,
    /// Facts about the whole session that this span states.
    pub session: SessionFacts,
    /// Speech-to-text confidence, 0..1.
    pub transcript_confidence: Option<f64>,
    /// A cost the span states itself, in US dollars; wins over prices times usage.
    pub cost_usd: Option<f64>,
    /// Audio transcribed (STT), for pricing.
    pub audio_seconds: Option<f64>,
    /// Characters synthesized (TTS), for pricing.
    pub characters: Option<u64>,
    /// `error.type`, or the type of a recorded exception.
    pub error_type: Option<String>,
    pub http_status: Option<u16>,
    /// The agent's reply is a fallback ("I could not help").
    pub fallback: bool,
    /// The messages an LLM call was given, when the span records them (Pipecat's `input`).
    pub context: Option<Vec<ContextMessage>>,
    /// An agent turn that continues an earlier generation of the same reply (LiveKit's
    /// answer after a tool call): part of that turn, not a new one.
    pub follows_generation: bool,
    /// The span ends at its start plus the service's processing time, not when its result
    /// arrived (OpenInference's Pipecat spans), so its end marks no moment of the stage.
    pub end_is_estimate: bool,
    /// When the final transcript arrived, where a speech-to-text span's end does not say.
    pub transcript_at_unix_nano: Option<u64>,
    /// Documents this span retrieved, reranked or cites for the answer.
    pub grounding: Option<Grounding>,
    /// How confident the system is in the answer this span gave, 0..1.
    pub answer_confidence: Option<f64>,
}

/// How close a list of documents is to what an answer stood on; a later stage wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroundingStage {
    /// What a search returned (OpenInference `RETRIEVER`, GenAI `retrieval`).
    Retrieved,
    /// What a reranker kept, in its order (OpenInference `RERANKER` output).
    Reranked,
    /// What the answer says it cites (`convolog.citations.*`).
    Cited,
}

impl GroundingStage {
    pub fn as_str(&self) -> &'static str {
        match self {
            GroundingStage::Retrieved => "retrieved",
            GroundingStage::Reranked => "reranked",
            GroundingStage::Cited => "cited",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Grounding {
    pub stage: GroundingStage,
    pub documents: Vec<Document>,
}

/// One document an answer stood on; empty strings where the span does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub url: String,
    pub content: String,
    pub score: Option<f64>,
}

impl Document {
    /// Title and URL from a document's metadata (a JSON object, as OpenInference records
    /// it), where the document does not state them itself.
    fn fill_from_metadata(&mut self, metadata: &serde_json::Value) {
        let first = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| metadata.get(*k).and_then(|v| v.as_str()))
                .map(str::to_owned)
        };
        if self.title.is_empty() {
            self.title = first(&["title", "name", "file_name"]).unwrap_or_default();
        }
        if self.url.is_empty() {
            self.url = first(&["url", "uri", "link", "source_url", "source"]).unwrap_or_default();
        }
    }

    fn is_empty(&self) -> bool {
        self.id.is_empty()
            && self.title.is_empty()
            && self.url.is_empty()
            && self.content.is_empty()
    }
}

/// The documents of flattened, indexed attributes: `{prefix}{N}.{field}` (OpenInference's
/// `retrieval.documents.0.document.id`, convolog's `convolog.citations.0.id`), in index
/// order. `field` maps the part after the index to what it fills.
fn indexed_documents(
    span: &Span,
    prefix: &str,
    field: fn(&str) -> Option<DocumentField>,
) -> Vec<Document> {
    let mut by_index: std::collections::BTreeMap<u32, Document> = Default::default();
    for (key, value) in span.attributes.iter() {
        let Some((index, rest)) = key
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once('.'))
        else {
            continue;
        };
        let (Ok(index), Some(field)) = (index.parse::<u32>(), field(rest)) else {
            continue;
        };
        let document = by_index.entry(index).or_default();
        match field {
            DocumentField::Id => document.id = value.to_owned(),
            DocumentField::Title => document.title = value.to_owned(),
            DocumentField::Url => document.url = value.to_owned(),
            DocumentField::Content => document.content = value.to_owned(),
            DocumentField::Score => {
                document.score = value.trim().parse::<f64>().ok().filter(|s| s.is_finite())
            }
            DocumentField::Metadata => {
                if let Ok(metadata) = serde_json::from_str::<serde_json::Value>(value) {
                    document.fill_from_metadata(&metadata);
                }
            }
        }
    }
    by_index.into_values().filter(|d| !d.is_empty()).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocumentField {
    Id,
    Title,
    Url,
    Content,
    Score,
    Metadata,
}

/// Session-wide facts a span may carry; the session takes the latest span's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionFacts {
    pub outcome: Option<String>,
    pub call_status: Option<String>,
    pub ended_reason: Option<String>,
    /// The conversation says it is over.
    pub ended: bool,
    pub intent: Option<String>,
    pub flow: Option<String>,
    pub node: Option<String>,
    pub campaign: Option<String>,
    pub contact: Option<String>,
    pub user_id: Option<String>,
    pub feedback: Option<String>,
    pub confidence: Option<f64>,
    pub sentiment: Option<String>,
    pub topic: Option<String>,
    pub summary: Option<String>,
    pub extracted_data: Option<String>,
    pub recording_url: Option<String>,
    pub budget_exceeded: bool,
    pub verification_required: bool,
}

/// A framework, how to recognise its spans, and how to read them.
type Reader = (Framework, fn(&Span) -> bool, fn(&Span, &mut SpanFacts));

/// Reads one span. Framework modules are asked in order; the first that recognises the span
/// sets its role. Facts every framework shares (GenAI usage and model names, convolog.*) fill
/// in whatever the framework module left empty.
pub fn read(span: &Span) -> SpanFacts {
    let mut facts = SpanFacts::default();
    let readers: [Reader; 6] = [
        (
            Framework::OpenInference,
            openinference::recognises,
            openinference::read,
        ),
        (Framework::LiveKit, livekit::recognises, livekit::read),
        (Framework::Ten, ten::recognises, ten::read),
        (Framework::VideoSdk, videosdk::recognises, videosdk::read),
        (Framework::Pipecat, pipecat::recognises, pipecat::read),
        (Framework::GenAi, genai::recognises, genai::read),
    ];
    if let Some((framework, _, read)) = readers.iter().find(|(_, recognises, _)| recognises(span)) {
        facts.framework = *framework;
        read(span, &mut facts);
    }
    genai::read_shared(span, &mut facts);
    convolog::read(span, &mut facts);
    if facts.role == Role::Tool {
        let tool = facts.tool.get_or_insert_with(ToolFacts::default);
        if span.is_error() {
            tool.is_error = true;
            if tool.error_message.is_none() && !span.status_message.is_empty() {
                tool.error_message = Some(span.status_message.clone());
            }
        }
    }
    facts
}

/// Attributes holding the whole context an LLM call was given. They grow with the
/// conversation and are read whole, so the receiver allows them more room than other values.
pub const LLM_CONTEXT_KEYS: &[&str] = &["input", "gen_ai.input.messages", "input.value"];

/// Session key attributes, first found wins. `convolog.session.id` lets anyone override.
pub const SESSION_KEYS: &[&str] = &[
    convolog::SESSION_ID,
    "gen_ai.conversation.id",
    // A realtime (speech-to-speech) connection: one conversation.
    "gen_ai.live_session.id",
    "session.id",
    "conversation.id",
    "room_id",
    "lk.pii.room_name",
    "lk.room_name",
    "ten.session_id",
    "sessionId",
];

/// The session key carried directly by these attributes, if any.
pub fn session_key(attributes: &Attributes) -> Option<&str> {
    attributes.first_of(SESSION_KEYS)
}

// Small readers shared by the framework modules.

fn text(span: &Span, keys: &[&str]) -> Option<String> {
    span.attributes.first_of(keys).map(str::to_owned)
}

fn seconds(span: &Span, key: &'static str) -> Option<Reported> {
    span.attributes
        .f64(key)
        .filter(|v| *v >= 0.0)
        .map(|v| Reported {
            ms: v * 1000.0,
            key,
        })
}

fn millis(span: &Span, key: &'static str) -> Option<Reported> {
    span.attributes
        .f64(key)
        .filter(|v| *v >= 0.0)
        .map(|ms| Reported { ms, key })
}

fn flag(span: &Span, key: &'static str) -> Option<&'static str> {
    span.attributes.bool(key).filter(|b| *b).map(|_| key)
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::span;
    use super::*;

    #[test]
    fn pipecat_stages() {
        let stt = span("stt")
            .attr("gen_ai.operation.name", "stt")
            .attr("transcript", "hi there")
            .attr("metrics.ttfb", "0.25")
            .build();
        let facts = read(&stt);
        assert_eq!(
            (facts.framework, facts.role),
            (Framework::Pipecat, Role::Stt)
        );
        assert_eq!(facts.user_text.as_deref(), Some("hi there"));
        assert_eq!(
            facts.stt,
            Some(Reported {
                ms: 250.0,
                key: "metrics.ttfb"
            })
        );

        let tts = span("tts")
            .scope("pipecat")
            .attr("text", "Hello")
            .attr("tts.interrupted", "true")
            .attr("metrics.ttfb", "0.1")
            .build();
        let facts = read(&tts);
        assert_eq!(facts.role, Role::Tts);
        assert_eq!(facts.interrupted, Some("tts.interrupted"));
        assert_eq!(facts.tts_ttfb.map(|r| r.ms), Some(100.0));

        let old = span("llm_OpenAILLMService")
            .attr("gen_ai.system", "openai")
            .attr("gen_ai.request.model", "gpt-4o")
            .build();
        let facts = read(&old);
        assert_eq!(
            (facts.framework, facts.role),
            (Framework::Pipecat, Role::Llm)
        );
        assert_eq!(facts.provider.as_deref(), Some("openai"));
    }

    #[test]
    fn livekit_string_booleans_and_both_name_generations() {
        let turn = span("agent_turn")
            .attr("lk.interrupted", "true")
            .attr("lk.response.text", "Sure")
            .attr("lk.e2e_latency", "0.9")
            .build();
        let facts = read(&turn);
        assert_eq!(
            (facts.framework, facts.role),
            (Framework::LiveKit, Role::AgentTurn)
        );
        assert_eq!(facts.interrupted, Some("lk.interrupted"));
        // On an interrupted turn the response text is the part that played.
        assert_eq!(facts.spoken_text.as_deref(), Some("Sure"));
        assert_eq!(facts.voice_to_voice.map(|r| r.ms), Some(900.0));

        let new = span("agent_turn")
            .attr("lk.interrupted", "false")
            .attr("lk.pii.response.text", "Sure")
            .build();
        let facts = read(&new);
        assert_eq!(facts.interrupted, None);
        assert_eq!(facts.agent_text.as_deref(), Some("Sure"));

        let tool = span("function_tool")
            .attr("lk.function_tool.name", "lookup")
            .attr("lk.function_tool.is_error", "true")
            .build();
        let facts = read(&tool);
        assert_eq!(facts.role, Role::Tool);
        assert!(facts
            .tool
            .as_ref()
            .is_some_and(|t| t.is_error && t.name.as_deref() == Some("lookup")));
    }

    #[test]
    fn genai_messages() {
        let agent = span("invoke_agent support")
            .attr("gen_ai.operation.name", "invoke_agent")
            .attr("gen_ai.input.messages", r#"[{"role":"system","parts":[{"type":"text","content":"be nice"}]},{"role":"user","parts":[{"type":"text","content":"where is my order"}]}]"#)
            .attr("gen_ai.output.messages", r#"[{"role":"assistant","parts":[{"type":"text","content":"On its way."}]}]"#)
            .build();
        let facts = read(&agent);
        assert_eq!(
            (facts.framework, facts.role),
            (Framework::GenAi, Role::AgentTurn)
        );
        assert_eq!(facts.user_text.as_deref(), Some("where is my order"));
        assert_eq!(facts.agent_text.as_deref(), Some("On its way."));
    }

    #[test]
    fn invoke_agent_end_reasons() {
        let invocation = |reason: &str| {
            read(
                &span("invoke_agent")
                    .attr("gen_ai.operation.name", "invoke_agent")
                    .attr("gen_ai.agent.invocation.end_reason", reason)
                    .build(),
            )
        };
        let interrupted = invocation("interrupted");
        assert_eq!(
            interrupted.interrupted,
            Some("gen_ai.agent.invocation.end_reason")
        );
        assert!(!interrupted.session.ended);
        let closed = invocation("session_closed");
        assert_eq!(closed.interrupted, None);
        assert!(closed.session.ended);
        let completed = invocation("completed");
        assert_eq!(
            (completed.interrupted, completed.session.ended),
            (None, false)
        );
    }

    #[test]
    fn audio_tokens_under_both_spellings_make_the_total_when_it_is_missing() {
        let tokens = |attrs: &[(&str, &str)]| {
            let mut builder = span("chat").attr("gen_ai.operation.name", "chat");
            for (key, value) in attrs {
                builder = builder.attr(key, value);
            }
            let facts = read(&builder.build());
            (facts.input_tokens, facts.output_tokens)
        };
        assert_eq!(
            tokens(&[
                ("gen_ai.usage.text.input_tokens", "20"),
                ("gen_ai.usage.audio.input_tokens", "100"),
                ("gen_ai.usage.audio.output_tokens", "300"),
            ]),
            (Some(120), Some(300))
        );
        assert_eq!(
            tokens(&[
                ("gen_ai.usage.input_text_tokens", "20"),
                ("gen_ai.usage.input_audio_tokens", "100"),
                ("gen_ai.usage.output_audio_tokens", "300"),
            ]),
            (Some(120), Some(300))
        );
        // A total, where given, is the total: the split is part of it.
        assert_eq!(
            tokens(&[
                ("gen_ai.usage.input_tokens", "130"),
                ("gen_ai.usage.audio.input_tokens", "100"),
            ]),
            (Some(130), None)
        );
    }

    #[test]
    fn audio_message_parts_give_their_transcript() {
        let stt = span("speech_to_text")
            .attr("gen_ai.operation.name", "speech_to_text")
            .attr(
                "gen_ai.output.messages",
                r#"[{"role":"user","parts":[{"type":"blob","modality":"audio","content":"","transcript":"Is it open today?"}]}]"#,
            )
            .build();
        assert_eq!(read(&stt).user_text.as_deref(), Some("Is it open today?"));
        let chat = span("chat")
            .attr("gen_ai.operation.name", "chat")
            .attr(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"uri","modality":"audio","uri":"s3://a.wav"},{"type":"text","content":"hello"}]}]"#,
            )
            .build();
        assert_eq!(read(&chat).user_text.as_deref(), Some("hello"));
        let image = span("chat")
            .attr("gen_ai.operation.name", "chat")
            .attr(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"blob","modality":"image","transcript":"no"}]}]"#,
            )
            .build();
        assert_eq!(read(&image).user_text, None);
    }

    #[test]
    fn a_live_session_id_is_a_session_key() {
        let attrs: Attributes = [("gen_ai.live_session.id", "live-1"), ("session.id", "s")]
            .into_iter()
            .collect();
        assert_eq!(session_key(&attrs), Some("live-1"));
    }

    #[test]
    fn every_convolog_key_is_documented() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README exists");
        for key in convolog::KEYS {
            assert!(
                readme.contains(&format!("`{key}`")),
                "{key} is not in the README"
            );
        }
    }

    #[test]
    fn unknown_spans_are_other() {
        let facts = read(&span("db.query").build());
        assert_eq!(
            (facts.framework, facts.role),
            (Framework::Unknown, Role::Other)
        );
    }

    #[test]
    fn session_key_priority() {
        let attrs: Attributes = [("session.id", "s"), ("gen_ai.conversation.id", "g")]
            .into_iter()
            .collect();
        assert_eq!(session_key(&attrs), Some("g"));
        let empty: Attributes = [("session.id", "")].into_iter().collect();
        assert_eq!(session_key(&empty), None);
    }
}
