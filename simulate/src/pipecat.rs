//! Pipecat 1.x tracing: one trace per conversation,
//! `conversation` -> `turn` -> {`stt`, `llm`, `llm_tool_call`, `tts`}.
//! `conversation.id` sits on `conversation` and `turn` only.

use opentelemetry::KeyValue;
use serde_json::json;

use super::corpus::SYSTEM_PROMPT;
use super::debug_log::Step;
use super::grounding;
use super::plan::PlannedSpan;
use super::script::{Script, Stage};
use super::voice;

/// Pipecat's turn tracker tracer, which owns `conversation` and `turn`.
const TURN_SCOPE: &str = "pipecat.turn";
/// Pipecat's service tracer.
const SCOPE: &str = "pipecat";

const LLM_PROVIDER: &str = "openai";
const LLM_MODEL: &str = "gpt-4o-mini";
const VOICE_ID: &str = "79a125e8-cd45-4c13-8a67-188112f4dd22";

pub(crate) fn build(script: &Script, session_id: &str) -> (Vec<KeyValue>, Vec<PlannedSpan>) {
    let timeline = voice::layout(script);
    let mut root = PlannedSpan::new("conversation", TURN_SCOPE, 0.0, timeline.end)
        .attr("conversation.id", session_id.to_string())
        .attr("conversation.type", "voice")
        .attr("convolog.channel", "voice")
        .attr("convolog.direction", script.direction.as_str());

    // The LLM context grows turn by turn, as Pipecat's context aggregator does.
    let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
    let count = script.turns.len();
    for (i, (turn, t)) in script.turns.iter().zip(&timeline.turns).enumerate() {
        let tm = &turn.timing;
        let mut span = PlannedSpan::new("turn", TURN_SCOPE, t.user_start, t.turn_end)
            .attr("turn.number", i as i64 + 1)
            .attr("turn.type", "conversation")
            .attr("conversation.id", session_id.to_string())
            .attr("turn.duration_seconds", t.turn_end - t.user_start)
            .attr("turn.was_interrupted", turn.interrupted)
            .attr("turn.ended_by_conversation_end", i + 1 == count);
        if !turn.unanswered && !turn.user.is_empty() {
            span = span.attr("turn.user_bot_latency_seconds", t.bot_start - t.user_end);
        }

        // Pipecat moves the STT span's start back to the VAD speech start.
        if !turn.user.is_empty() {
            span = span.child(
                PlannedSpan::new("stt", SCOPE, t.user_start, t.stt_final)
                    .attr("gen_ai.operation.name", "stt")
                    .attr("gen_ai.provider.name", "deepgram")
                    .attr("gen_ai.request.model", "nova-3")
                    .attr("transcript", turn.user.clone())
                    .attr("is_final", true)
                    .attr("language", "en")
                    .attr("vad_enabled", true)
                    .attr("metrics.ttfb", tm.stt_ttfb)
                    .attr("metrics.audio_seconds", t.user_end - t.user_start)
                    .attr("convolog.transcript.confidence", turn.confidence)
                    .fail_with(turn.failure_at(Stage::Stt))
                    .logged(turn, Step::Transcribe),
            );
            messages.push(json!({"role": "user", "content": turn.user}));
        }

        if let Some(g) = turn.grounding.as_ref().filter(|g| !g.documents.is_empty()) {
            // The application searches its help center between the transcript and the LLM.
            let llm_start = t.tool_round.map_or(t.reply.start, |r| r.start);
            let start = t.stt_final.min(llm_start);
            span = span.child(grounding::openinference_retriever(
                g, &turn.user, start, llm_start,
            ));
        }

        if let (Some(round), Some((tool_start, tool_end)), Some(call), Some(usage)) =
            (t.tool_round, t.tool, &turn.tool, turn.tool_usage)
        {
            // The tool round produces no text, so there is no `output`.
            span = span.child(
                llm_span(round.start, round.end, &messages)
                    .attr("gen_ai.usage.input_tokens", usage.input_tokens)
                    .attr("gen_ai.usage.output_tokens", usage.output_tokens)
                    .attr("metrics.ttfb", round.first_token - round.start),
            );
            messages.push(json!({
                "role": "assistant",
                "tool_calls": [{
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }],
            }));
            let mut tool = PlannedSpan::new("llm_tool_call", SCOPE, tool_start, tool_end)
                .attr("tool.function_name", call.name)
                .attr("tool.call_id", call.call_id.clone())
                .attr("tool.arguments", call.arguments.clone())
                .attr("tool.result", call.result.clone())
                .attr(
                    "tool.result_status",
                    if call.failed { "error" } else { "success" },
                );
            if call.failed {
                tool = tool.failed(
                    "ToolError",
                    &format!("{} failed: {}", call.name, call.result),
                );
            }
            span = span.child(tool.logged(turn, Step::CallTool));
            messages.push(
                json!({"role": "tool", "tool_call_id": call.call_id, "content": call.result}),
            );
        }

        // Children end no later than their turn, which ends at a barge-in.
        let mut reply = llm_span(t.reply.start, t.reply.end.min(t.turn_end), &messages)
            .attr("gen_ai.usage.input_tokens", turn.reply_usage.input_tokens)
            .attr("gen_ai.usage.output_tokens", turn.reply_usage.output_tokens)
            .fail_with(turn.failure_at(Stage::Llm))
            .logged(turn, Step::Reply);
        if turn.unanswered {
            // No token arrived: no output, no speech.
            root = root.child(span.child(reply));
            continue;
        }
        reply = reply
            .attr("output", turn.agent.clone())
            .attr("metrics.ttfb", t.reply.first_token - t.reply.start);
        span = span.child(reply);
        messages.push(json!({"role": "assistant", "content": turn.agent}));

        span = span.child(
            PlannedSpan::new("tts", SCOPE, t.tts_start, t.tts_end.min(t.turn_end))
                .attr("gen_ai.operation.name", "tts")
                .attr("gen_ai.provider.name", "cartesia")
                .attr("gen_ai.request.model", "sonic-2")
                .attr("voice_id", VOICE_ID)
                .attr("text", turn.agent.clone())
                .attr(
                    "metrics.character_count",
                    i64::try_from(turn.agent.chars().count()).unwrap_or(i64::MAX),
                )
                .attr("metrics.ttfb", tm.tts_ttfb)
                .attr("tts.interrupted", turn.interrupted)
                .fail_with(turn.failure_at(Stage::Tts))
                .logged(turn, Step::Speak),
        );
        if let Some(g) = &turn.grounding {
            span = grounding::rate(span, g);
        }
        root = root.child(span);
    }

    if let (Some((start, end)), Some(handoff)) = (timeline.handoff, &script.handoff) {
        root = root.child(
            PlannedSpan::new("handoff", SCOPE, start, end)
                .attr("convolog.handoff.target", "human")
                .attr("convolog.handoff.reason", handoff.reason.as_str()),
        );
    }

    let resource = vec![KeyValue::new("service.name", "support-voice-agent")];
    (resource, vec![root])
}

fn llm_span(start: f64, end: f64, messages: &[serde_json::Value]) -> PlannedSpan {
    PlannedSpan::new("llm", SCOPE, start, end)
        .attr("gen_ai.operation.name", "chat")
        .attr("gen_ai.provider.name", LLM_PROVIDER)
        .attr("gen_ai.request.model", LLM_MODEL)
        .attr("input", serde_json::Value::from(messages).to_string())
}
