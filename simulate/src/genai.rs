//! A text chat agent instrumented with the OpenTelemetry GenAI semantic
//! conventions: one trace per request, `invoke_agent {agent}` -> `chat {model}`
//! and `execute_tool {tool}`, grouped into a session by `gen_ai.conversation.id`.
//! Chat has no barge-in, so interruption rates do not apply here.

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use serde_json::json;

use super::debug_log::Step;
use super::grounding;
use super::plan::PlannedSpan;
use super::script::{Script, Stage, Usage};

/// A generic application tracer: these spans come from no framework.
const SCOPE: &str = "support-chat-agent";
const AGENT_NAME: &str = "support-agent";
const PROVIDER: &str = "openai";
const MODEL: &str = "gpt-4o-mini";
const HOP: f64 = 0.005;
/// A search of the help center before each answer.
const RETRIEVAL: f64 = 0.04;

pub(crate) fn build(script: &Script, session_id: &str) -> (Vec<KeyValue>, Vec<PlannedSpan>) {
    let mut traces = Vec::with_capacity(script.turns.len());
    let mut start = 0.0;
    let count = script.turns.len();
    for (i, turn) in script.turns.iter().enumerate() {
        let tm = &turn.timing;
        let mut children = Vec::new();
        let mut cursor = start + 2.0 * HOP;
        if let Some(g) = turn.grounding.as_ref().filter(|g| !g.documents.is_empty()) {
            children.push(grounding::genai_retrieval(
                g,
                &turn.user,
                SCOPE,
                cursor,
                cursor + RETRIEVAL,
            ));
            cursor += RETRIEVAL + HOP;
        }

        if let (Some(call), Some(usage)) = (&turn.tool, turn.tool_usage) {
            let end = cursor + tm.llm_ttft + tm.tool_call_stream;
            children.push(chat(cursor, end, tm.llm_ttft, usage, script.priced));
            let tool_start = end + HOP;
            let tool_end = tool_start + tm.tool;
            let mut tool = PlannedSpan::new(
                format!("execute_tool {}", call.name),
                SCOPE,
                tool_start,
                tool_end,
            )
            .attr("gen_ai.operation.name", "execute_tool")
            .attr("gen_ai.tool.name", call.name)
            .attr("gen_ai.tool.type", "function")
            .attr("gen_ai.tool.call.id", call.call_id.clone())
            .attr("gen_ai.tool.call.arguments", call.arguments.clone())
            .attr("gen_ai.tool.call.result", call.result.clone());
            if call.failed {
                let error_type = if call.retired {
                    "tool_not_found"
                } else {
                    "tool_error"
                };
                tool = tool.attr("error.type", error_type).failed(
                    "ToolError",
                    &format!("{} failed: {}", call.name, call.result),
                );
            }
            children.push(tool.logged(turn, Step::CallTool));
            cursor = tool_end + HOP;
        }

        let ttft = turn.reply_ttft();
        let reply_end = cursor + ttft + turn.reply_usage.output_tokens as f64 * tm.token_interval;
        let failure = turn.failure_at(Stage::Llm);
        // An unanswered request has a reply call only if that call failed.
        if !turn.unanswered || failure.is_some() {
            children.push(
                chat(cursor, reply_end, ttft, turn.reply_usage, script.priced)
                    .fail_with(failure)
                    .logged(turn, Step::Reply),
            );
        }
        let mut end = reply_end + HOP;

        if let (true, Some(handoff)) = (i + 1 == count, &script.handoff) {
            let handoff_end = end + handoff.duration;
            children.push(
                PlannedSpan::new("handoff", SCOPE, end, handoff_end)
                    .attr("convolog.handoff.target", "human")
                    .attr("convolog.handoff.reason", handoff.reason.as_str()),
            );
            end = handoff_end + HOP;
        }

        let input = json!([{"role": "user", "parts": [{"type": "text", "content": turn.user}]}]);
        let output = json!([{
            "role": "assistant",
            "parts": [{"type": "text", "content": turn.agent}],
            "finish_reason": "stop",
        }]);
        let mut root = PlannedSpan::new(format!("invoke_agent {AGENT_NAME}"), SCOPE, start, end)
            .attr("gen_ai.operation.name", "invoke_agent")
            .attr("gen_ai.agent.name", AGENT_NAME)
            .attr("gen_ai.provider.name", PROVIDER)
            .attr("gen_ai.request.model", MODEL)
            .attr("gen_ai.conversation.id", session_id.to_string())
            .attr("gen_ai.input.messages", input.to_string());
        if !turn.unanswered {
            root = root.attr("gen_ai.output.messages", output.to_string());
        }
        if let Some(g) = &turn.grounding {
            root = grounding::rate(root, g);
        }
        root.children = children;
        traces.push(root);

        start = end + tm.think;
    }

    if traces.is_empty() {
        // Opening the chat creates the agent; nothing has been asked yet.
        traces.push(
            PlannedSpan::new(format!("create_agent {AGENT_NAME}"), SCOPE, 0.0, 0.05)
                .attr("gen_ai.operation.name", "create_agent")
                .attr("gen_ai.agent.name", AGENT_NAME)
                .attr("gen_ai.conversation.id", session_id.to_string()),
        );
    }

    let resource = vec![
        KeyValue::new("service.name", "support-chat-agent"),
        KeyValue::new("convolog.channel", "web_chat"),
    ];
    (resource, traces)
}

/// gpt-4o-mini list prices, US dollars per token, for applications that state their cost.
const INPUT_PRICE: f64 = 0.15 / 1e6;
const OUTPUT_PRICE: f64 = 0.60 / 1e6;

fn chat(start: f64, end: f64, ttft: f64, usage: Usage, priced: bool) -> PlannedSpan {
    let span = PlannedSpan::new(format!("chat {MODEL}"), SCOPE, start, end)
        .kind(SpanKind::Client)
        .attr("gen_ai.operation.name", "chat")
        .attr("gen_ai.provider.name", PROVIDER)
        .attr("gen_ai.request.model", MODEL)
        .attr("gen_ai.usage.input_tokens", usage.input_tokens)
        .attr("gen_ai.usage.output_tokens", usage.output_tokens)
        .attr("gen_ai.response.time_to_first_chunk", ttft);
    if priced {
        let cost =
            usage.input_tokens as f64 * INPUT_PRICE + usage.output_tokens as f64 * OUTPUT_PRICE;
        span.attr("convolog.cost.usd", cost)
    } else {
        span
    }
}
