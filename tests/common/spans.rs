//! The spans the integration tests send: one builder for a span, one for a Pipecat-shaped
//! conversation made of turns, and the OTLP requests that carry them (official protobuf types).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub fn kv(key: &str, value: impl Into<Val>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(value.into().0),
        }),
        ..Default::default()
    }
}

pub struct Val(any_value::Value);
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val(any_value::Value::StringValue(v.to_owned()))
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val(any_value::Value::StringValue(v))
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val(any_value::Value::DoubleValue(v))
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val(any_value::Value::IntValue(v))
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val(any_value::Value::BoolValue(v))
    }
}

/// Milliseconds since this anchor (a minute ago, so timestamps are current).
pub fn anchor() -> u64 {
    convolog::clock::now_unix_nano() - 60_000_000_000
}

pub fn trace_id(n: u64) -> Vec<u8> {
    let mut id = vec![0xab; 8];
    id.extend_from_slice(&n.to_be_bytes());
    id
}

pub fn span_id(n: u64) -> Vec<u8> {
    (n + 1).to_be_bytes().to_vec()
}

/// One span to send, timed in milliseconds from an anchor given when it is built:
/// `SpanSpec::new(trace, id, name).child_of(parent).at(start, end).attributes(..).error(..)`.
#[derive(Clone)]
pub struct SpanSpec {
    pub trace: u64,
    pub id: u64,
    pub parent: Option<u64>,
    pub name: &'static str,
    pub start_ms: u64,
    pub end_ms: u64,
    pub attributes: Vec<KeyValue>,
    /// The message of an error status; `None` leaves the status unset.
    pub error: Option<&'static str>,
}

impl SpanSpec {
    /// A root span of `trace` at the anchor, without attributes.
    pub fn new(trace: u64, id: u64, name: &'static str) -> SpanSpec {
        SpanSpec {
            trace,
            id,
            parent: None,
            name,
            start_ms: 0,
            end_ms: 0,
            attributes: Vec::new(),
            error: None,
        }
    }

    pub fn child_of(mut self, parent: u64) -> SpanSpec {
        self.parent = Some(parent);
        self
    }

    pub fn at(mut self, start_ms: u64, end_ms: u64) -> SpanSpec {
        self.start_ms = start_ms;
        self.end_ms = end_ms;
        self
    }

    /// Adds `attributes` after those already set.
    pub fn attributes(mut self, attributes: impl IntoIterator<Item = KeyValue>) -> SpanSpec {
        self.attributes.extend(attributes);
        self
    }

    pub fn error(mut self, message: impl Into<Option<&'static str>>) -> SpanSpec {
        self.error = message.into();
        self
    }

    /// The OTLP span, its times counted from `anchor` (Unix nanoseconds).
    pub fn build(&self, anchor: u64) -> Span {
        Span {
            trace_id: trace_id(self.trace),
            span_id: span_id(self.id),
            parent_span_id: self.parent.map(span_id).unwrap_or_default(),
            name: self.name.to_owned(),
            kind: 1,
            start_time_unix_nano: anchor + self.start_ms * 1_000_000,
            end_time_unix_nano: anchor + self.end_ms * 1_000_000,
            attributes: self.attributes.clone(),
            status: self.error.map(|m| Status {
                code: 2,
                message: m.to_owned(),
            }),
            ..Default::default()
        }
    }
}

pub fn request(service: &str, scope: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.to_owned(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Builds requests of `per_request` spans from specs, in the given order.
pub fn requests(
    specs: &[&SpanSpec],
    anchor: u64,
    per_request: usize,
) -> Vec<ExportTraceServiceRequest> {
    specs
        .chunks(per_request.max(1))
        .map(|chunk| {
            request(
                "voice-agent",
                "pipecat",
                chunk.iter().map(|s| s.build(anchor)).collect(),
            )
        })
        .collect()
}

// ---- a Pipecat-shaped conversation ----

/// One exchange: the user speaks (STT), the LLM answers (maybe calling a tool), the agent
/// speaks the answer (TTS). Latencies in seconds, as Pipecat reports them.
#[derive(Clone)]
pub struct Turn {
    pub user: &'static str,
    /// Empty when the agent did not answer: then no TTS span is sent.
    pub agent: &'static str,
    pub voice_to_voice: f64,
    pub stt_ttfb: f64,
    pub llm_ttfb: f64,
    pub tts_ttfb: f64,
    pub interrupted: bool,
    pub tool: Option<Tool>,
    /// (`error.type`, HTTP status) of a failing LLM call.
    pub llm_error: Option<(&'static str, i64)>,
    /// Silence before the turn, on top of the usual step between turns.
    pub gap_ms: u64,
}

/// A turn that went well, with quick stages.
pub fn turn(user: &'static str, agent: &'static str) -> Turn {
    Turn {
        user,
        agent,
        voice_to_voice: 0.9,
        stt_ttfb: 0.2,
        llm_ttfb: 0.4,
        tts_ttfb: 0.2,
        interrupted: false,
        tool: None,
        llm_error: None,
        gap_ms: 0,
    }
}

/// A tool the LLM called in a turn.
#[derive(Clone)]
pub struct Tool {
    pub name: &'static str,
    pub call_id: Option<&'static str>,
    pub arguments: Option<&'static str>,
    /// The error it failed with; `None` when it succeeded.
    pub error: Option<&'static str>,
}

/// Where each stage runs, in milliseconds from the start of its turn; the turn ends with
/// its TTS stage.
#[derive(Clone, Copy)]
pub struct Timing {
    pub stt: (u64, u64),
    pub llm: (u64, u64),
    pub tool: (u64, u64),
    pub tts: (u64, u64),
}

impl Timing {
    /// 4.5 s turns with pauses between the stages.
    pub const STANDARD: Timing = Timing {
        stt: (0, 1_500),
        llm: (1_600, 2_400),
        tool: (2_400, 2_900),
        tts: (3_000, 4_500),
    };
    /// 4 s turns with a shorter STT and the tool call right after the LLM.
    pub const QUICK: Timing = Timing {
        stt: (0, 1_000),
        llm: (1_100, 1_800),
        tool: (1_800, 2_000),
        tts: (2_000, 4_000),
    };
}

/// Turns start this far apart (plus their own `gap_ms`).
const TURN_STEP_MS: u64 = 5_000;

/// The order spans are listed (and so sent) in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The conversation, then each turn before its stages.
    ParentsFirst,
    /// Each turn's stages before the turn, the conversation last: the order spans end in.
    ChildrenFirst,
}

/// What a fully instrumented Pipecat adds to its stage spans: final transcripts, the STT
/// provider, the LLM model and its token usage, the TTS voice.
#[derive(Clone, Copy)]
pub struct Detail {
    pub stt_provider: &'static str,
    pub llm_model: &'static str,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub tts_voice: &'static str,
}

/// A Pipecat-shaped conversation in one trace: the `conversation` span (id 1), turn `n` as
/// span `10 * n` with its stages as `10 * n + 1..=4` (STT, LLM, tool, TTS).
#[derive(Clone)]
pub struct Conversation {
    pub session: String,
    pub trace: u64,
    pub turns: Vec<Turn>,
    /// The conversation span is sent (the call is over). Without it, `root_attributes` ride
    /// on the first turn.
    pub ended: bool,
    pub root_attributes: Vec<KeyValue>,
    pub timing: Timing,
    pub order: Order,
    pub detail: Option<Detail>,
}

impl Conversation {
    pub fn spans(&self) -> Vec<SpanSpec> {
        let trace = self.trace;
        let conv = || kv("conversation.id", self.session.as_str());
        let op = |o: &'static str| kv("gen_ai.operation.name", o);
        let mut out = Vec::new();
        let mut at = 0u64;
        for (i, t) in self.turns.iter().enumerate() {
            at += t.gap_ms;
            let id = 10 * (i as u64 + 1);
            let stage = |offset: u64, name: &'static str, (start, end): (u64, u64)| {
                SpanSpec::new(trace, id + offset, name)
                    .child_of(id)
                    .at(at + start, at + end)
            };
            let mut turn = SpanSpec::new(trace, id, "turn")
                .child_of(1)
                .at(at, at + self.timing.tts.1)
                .attributes([
                    conv(),
                    kv("turn.number", i as i64 + 1),
                    kv("turn.was_interrupted", t.interrupted),
                    kv("turn.user_bot_latency_seconds", t.voice_to_voice),
                ]);
            if !self.ended && i == 0 {
                turn = turn.attributes(self.root_attributes.iter().cloned());
            }
            let detail = self.detail.iter();
            let mut stages = vec![stage(1, "stt", self.timing.stt)
                .attributes([
                    op("stt"),
                    kv("transcript", t.user),
                    kv("metrics.ttfb", t.stt_ttfb),
                ])
                .attributes(detail.clone().flat_map(|d| {
                    [
                        kv("is_final", true),
                        kv("gen_ai.provider.name", d.stt_provider),
                    ]
                }))];
            let mut llm = stage(2, "llm", self.timing.llm)
                .attributes([
                    op("chat"),
                    kv("output", t.agent),
                    kv("metrics.ttfb", t.llm_ttfb),
                ])
                .attributes(detail.clone().flat_map(|d| {
                    [
                        kv("gen_ai.request.model", d.llm_model),
                        kv("gen_ai.usage.input_tokens", d.input_tokens),
                        kv("gen_ai.usage.output_tokens", d.output_tokens),
                    ]
                }));
            if let Some((kind, status)) = t.llm_error {
                llm = llm
                    .attributes([
                        kv("error.type", kind),
                        kv("http.response.status_code", status),
                    ])
                    .error(kind);
            }
            stages.push(llm);
            if let Some(tool) = &t.tool {
                let status = if tool.error.is_some() {
                    "error"
                } else {
                    "success"
                };
                stages.push(
                    stage(3, "llm_tool_call", self.timing.tool)
                        .attributes([kv("tool.function_name", tool.name)])
                        .attributes(tool.call_id.map(|c| kv("tool.call_id", c)))
                        .attributes(tool.arguments.map(|a| kv("tool.arguments", a)))
                        .attributes([kv("tool.result_status", status)])
                        .error(tool.error),
                );
            }
            if !t.agent.is_empty() {
                stages.push(
                    stage(4, "tts", self.timing.tts)
                        .attributes([
                            op("tts"),
                            kv("text", t.agent),
                            kv("metrics.ttfb", t.tts_ttfb),
                            kv("tts.interrupted", t.interrupted),
                        ])
                        .attributes(detail.map(|d| kv("voice_id", d.tts_voice))),
                );
            }
            match self.order {
                Order::ParentsFirst => {
                    out.push(turn);
                    out.extend(stages);
                }
                Order::ChildrenFirst => {
                    out.extend(stages);
                    out.push(turn);
                }
            }
            at += TURN_STEP_MS;
        }
        if self.ended {
            let root = SpanSpec::new(trace, 1, "conversation")
                .at(0, at.max(1_000))
                .attributes([conv(), kv("conversation.type", "voice")])
                .attributes(self.root_attributes.iter().cloned());
            match self.order {
                Order::ParentsFirst => out.insert(0, root),
                Order::ChildrenFirst => out.push(root),
            }
        }
        out
    }
}

/// An OpenInference-style conversation: each turn is a trace of its own, its root span
/// naming the session (`session.id`) and sent after its children, so each trace first
/// derives as a session of its own and then moves.
pub fn openinference_conversation(session: &str, first_trace: u64) -> Vec<SpanSpec> {
    let oi = |kind: &str| kv("openinference.span.kind", kind.to_owned());
    let mut spans = Vec::new();
    for turn in 0..3u64 {
        let trace = first_trace + turn;
        let start = turn * 3_000;
        let user = format!("{session} question {turn}");
        let agent = format!("{session} answer {turn}");
        spans.push(
            SpanSpec::new(trace, 2, "pipecat.stt")
                .child_of(1)
                .at(start, start + 800)
                .attributes([oi("CHAIN"), kv("output.value", user.as_str())]),
        );
        spans.push(
            SpanSpec::new(trace, 3, "pipecat.llm")
                .child_of(1)
                .at(start + 900, start + 1_500)
                .attributes([
                    oi("LLM"),
                    kv("output.value", agent.as_str()),
                    kv("llm.model_name", "gpt-4o"),
                ]),
        );
        spans.push(
            SpanSpec::new(trace, 1, "pipecat.conversation.turn")
                .at(start, start + 2_000)
                .attributes([
                    oi("CHAIN"),
                    kv("session.id", session),
                    kv("input.value", user.as_str()),
                    kv("output.value", agent.as_str()),
                ]),
        );
    }
    spans
}

/// The Pipecat conversation most tests send, in one trace: 3 turns, the second with a failing
/// tool call, the third interrupted.
pub fn pipecat_conversation(session: &str, trace: u64) -> Vec<SpanSpec> {
    let standard = |user, agent, voice_to_voice| Turn {
        voice_to_voice,
        llm_ttfb: 0.5,
        tts_ttfb: 0.25,
        ..turn(user, agent)
    };
    Conversation {
        session: session.to_owned(),
        trace,
        turns: vec![
            standard(
                "Hello, I need help with my booking.",
                "Sure, what is the booking reference?",
                0.9,
            ),
            Turn {
                tool: Some(Tool {
                    name: "lookup_booking",
                    call_id: Some("call-1"),
                    arguments: Some("{\"ref\":\"BK42\"}"),
                    error: Some("booking service timed out"),
                }),
                ..standard(
                    "It is B K 4 2.",
                    "Booking BK42 is confirmed for Friday.",
                    1.4,
                )
            },
            Turn {
                interrupted: true,
                ..standard(
                    "Can I change it to Saturday?",
                    "Let me check availability for Saturday.",
                    1.1,
                )
            },
        ],
        ended: true,
        root_attributes: Vec::new(),
        timing: Timing::STANDARD,
        order: Order::ParentsFirst,
        detail: Some(Detail {
            stt_provider: "deepgram",
            llm_model: "gpt-4o-mini",
            input_tokens: 200,
            output_tokens: 20,
            tts_voice: "sonic",
        }),
    }
    .spans()
}
