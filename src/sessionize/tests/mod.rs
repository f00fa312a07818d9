//! Sessionization on hand-built spans: the span builders here, the tests by subject.

mod fields;
mod genai_voice;
mod grounding;
mod incremental;
mod openinference;
mod pipecat_context;
mod replies;
mod semantics;
mod turns;

use super::semantics::issue;
use super::*;
use crate::conventions::fixtures::{span, T0};
use crate::model::conversation::SessionRow;
use crate::model::Span;

/// A Pipecat conversation: two turns, the second interrupted, one failing tool call.
fn pipecat() -> Vec<Span> {
    vec![
        span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, 9000)
            .attr("conversation.id", "conv-1")
            .attr("conversation.type", "voice")
            .build(),
        span("turn")
            .id(2)
            .parent(1)
            .at(0, 4000)
            .attr("turn.number", "1")
            .attr("conversation.id", "conv-1")
            .attr("turn.user_bot_latency_seconds", "0.8")
            .attr("turn.was_interrupted", "false")
            .build(),
        span("stt")
            .id(3)
            .parent(2)
            .at(0, 1200)
            .attr("gen_ai.operation.name", "stt")
            .attr("gen_ai.provider.name", "deepgram")
            .attr("transcript", "Where is my order?")
            .attr("metrics.ttfb", "0.2")
            .build(),
        span("llm")
            .id(4)
            .parent(2)
            .at(1300, 1900)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o-mini")
            .attr("output", "")
            .attr("metrics.ttfb", "0.4")
            .attr("gen_ai.usage.input_tokens", "100")
            .attr("gen_ai.usage.output_tokens", "5")
            .build(),
        span("llm_tool_call")
            .id(5)
            .parent(2)
            .at(1900, 2100)
            .attr("tool.function_name", "lookup_order")
            .attr("tool.call_id", "c1")
            .attr("tool.result_status", "error")
            .error("timeout")
            .build(),
        span("llm")
            .id(6)
            .parent(2)
            .at(2100, 2600)
            .attr("gen_ai.operation.name", "chat")
            .attr("gen_ai.request.model", "gpt-4o-mini")
            .attr("output", "I could not find it.")
            .attr("gen_ai.usage.input_tokens", "120")
            .attr("gen_ai.usage.output_tokens", "8")
            .build(),
        span("tts")
            .id(7)
            .parent(2)
            .at(2600, 4000)
            .attr("gen_ai.operation.name", "tts")
            .attr("text", "I could not find it.")
            .attr("metrics.ttfb", "0.15")
            .build(),
        span("turn")
            .id(8)
            .parent(1)
            .at(4500, 9000)
            .attr("turn.number", "2")
            .attr("conversation.id", "conv-1")
            .attr("turn.was_interrupted", "true")
            .build(),
        span("stt")
            .id(9)
            .parent(8)
            .at(4500, 5500)
            .attr("gen_ai.operation.name", "stt")
            .attr("transcript", "Can you check again?")
            .attr("metrics.ttfb", "0.25")
            .build(),
        span("llm")
            .id(10)
            .parent(8)
            .at(5600, 6200)
            .attr("gen_ai.operation.name", "chat")
            .attr("output", "Sure. Let me look. It ships tomorrow.")
            .build(),
        span("tts")
            .id(11)
            .parent(8)
            .at(6200, 6800)
            .attr("gen_ai.operation.name", "tts")
            .attr("text", "Sure. Let me look.")
            .attr("tts.interrupted", "false")
            .attr("metrics.ttfb", "0.12")
            .build(),
        span("tts")
            .id(12)
            .parent(8)
            .at(6800, 7300)
            .attr("gen_ai.operation.name", "tts")
            .attr("text", "It ships tomorrow.")
            .attr("tts.interrupted", "true")
            .build(),
    ]
}

fn livekit() -> Vec<Span> {
    let s = |name: &str| {
        span(name)
            .scope("livekit-agents")
            .attr("session.id", "room-7")
    };
    vec![
        s("agent_session")
            .id(1)
            .at(0, 6000)
            .attr("lk.agent_name", "support")
            .build(),
        s("user_turn")
            .id(2)
            .parent(1)
            .at(0, 1500)
            .attr("lk.pii.user_transcript", "I want a refund")
            .attr("lk.transcription_delay", "0.3")
            .attr("lk.end_of_turn_delay", "0.5")
            .build(),
        s("eou_detection")
            .id(3)
            .parent(2)
            .at(1000, 1500)
            .attr("lk.eou.endpointing_delay", "0.45")
            .build(),
        s("agent_turn")
            .id(4)
            .parent(1)
            .at(1500, 4000)
            .attr("lk.pii.user_input", "I want a refund")
            .attr("lk.pii.response.text", "Refund started.")
            .attr("lk.interrupted", "false")
            .attr("lk.e2e_latency", "1.1")
            .build(),
        s("llm_node").id(5).parent(4).at(1500, 2200).build(),
        s("llm_request")
            .id(6)
            .parent(5)
            .at(1500, 2200)
            .attr("lk.response.ttft", "0.35")
            .attr("gen_ai.request.model", "gpt-4o")
            .build(),
        s("function_tool")
            .id(7)
            .parent(4)
            .at(2200, 2500)
            .attr("lk.function_tool.name", "start_refund")
            .attr("lk.function_tool.id", "f1")
            .attr("lk.function_tool.is_error", "false")
            .attr("lk.pii.function_tool.output", "ok")
            .build(),
        s("tts_node").id(8).parent(4).at(2500, 4000).build(),
        s("tts_request")
            .id(9)
            .parent(8)
            .at(2500, 4000)
            .attr("lk.response.ttfb", "0.2")
            .build(),
        s("user_speaking")
            .id(10)
            .parent(1)
            .at(4200, 5000)
            .attr("lk.is_interruption", "false")
            .build(),
        s("agent_turn")
            .id(11)
            .parent(1)
            .at(5000, 6000)
            .attr("lk.pii.response.text", "Anything else?")
            .attr("lk.interrupted", "true")
            .build(),
        s("llm_node")
            .id(13)
            .parent(11)
            .at(5000, 5300)
            .attr(
                "lk.pii.response.text",
                "Anything else? I can also check your order.",
            )
            .build(),
        s("user_speaking")
            .id(12)
            .parent(1)
            .at(5600, 5900)
            .attr("lk.is_interruption", "true")
            .build(),
    ]
}

fn derive(spans: &[Span]) -> DerivedSession {
    sessionize("s", spans, 1, 0, &Rules::default())
}

/// One turn of a scripted Pipecat voice conversation, 5 s apart.
#[derive(Clone, Default)]
struct T {
    user: &'static str,
    agent: &'static str,
    v2v: f64,
    stt: f64,
    interrupted: bool,
    tool: Option<(&'static str, bool)>,
    llm_error: Option<&'static str>,
}

fn t(user: &'static str, agent: &'static str) -> T {
    T {
        user,
        agent,
        v2v: 0.9,
        stt: 0.2,
        ..T::default()
    }
}

/// Builds a Pipecat conversation; `ended` adds the `conversation` span (exported at the end),
/// `root` attributes go on it (or on the first turn when not ended).
fn voice(turns: Vec<T>, ended: bool, root: &[(&str, &str)]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut id = 10u8;
    for (i, turn) in turns.iter().enumerate() {
        let at = i as u64 * 5000;
        let turn_id = id;
        let mut turn_span = span("turn")
            .id(turn_id)
            .parent(1)
            .at(at, at + 4000)
            .attr("conversation.id", "c")
            .attr("turn.user_bot_latency_seconds", &turn.v2v.to_string())
            .attr(
                "turn.was_interrupted",
                if turn.interrupted { "true" } else { "false" },
            );
        if !ended && i == 0 {
            for (k, v) in root {
                turn_span = turn_span.attr(k, v);
            }
        }
        spans.push(turn_span.build());
        spans.push(
            span("stt")
                .id(id + 1)
                .parent(turn_id)
                .at(at, at + 1000)
                .attr("gen_ai.operation.name", "stt")
                .attr("transcript", turn.user)
                .attr("metrics.ttfb", &turn.stt.to_string())
                .build(),
        );
        let mut llm = span("llm")
            .id(id + 2)
            .parent(turn_id)
            .at(at + 1100, at + 1800)
            .attr("gen_ai.operation.name", "chat")
            .attr("output", turn.agent);
        if let Some(kind) = turn.llm_error {
            llm = llm.attr("error.type", kind).error(kind);
        }
        spans.push(llm.build());
        if let Some((name, ok)) = turn.tool {
            let mut tool = span("llm_tool_call")
                .id(id + 3)
                .parent(turn_id)
                .at(at + 1800, at + 2000)
                .attr("tool.function_name", name)
                .attr("tool.result_status", if ok { "success" } else { "error" });
            if !ok {
                // "gone" stands for a skill that no longer exists.
                tool = tool.error(if name == "gone" {
                    "tool_not_found"
                } else {
                    "timeout"
                });
            }
            spans.push(tool.build());
        }
        if !turn.agent.is_empty() {
            spans.push(
                span("tts")
                    .id(id + 4)
                    .parent(turn_id)
                    .at(at + 2000, at + 4000)
                    .attr("gen_ai.operation.name", "tts")
                    .attr("text", turn.agent)
                    .attr(
                        "tts.interrupted",
                        if turn.interrupted { "true" } else { "false" },
                    )
                    .build(),
            );
        }
        id += 5;
    }
    if ended {
        let end = turns.len() as u64 * 5000;
        let mut root_span = span("conversation")
            .scope("pipecat.turn")
            .id(1)
            .at(0, end.max(1000))
            .attr("conversation.id", "c")
            .attr("conversation.type", "voice");
        for (k, v) in root {
            root_span = root_span.attr(k, v);
        }
        spans.push(root_span.build());
    }
    spans
}

fn semantics_of(spans: &[Span]) -> (SessionRow, Vec<String>) {
    let d = derive(spans);
    let issues = d
        .issues
        .iter()
        .map(|i| format!("{}@{}", i.issue, i.turn_number))
        .collect();
    (d.session, issues)
}
