//! LiveKit Agents 1.7+ tracing: one trace per session rooted at
//! `agent_session`, with `user_turn`, `user_speaking`, `agent_turn` and
//! `agent_speaking` siblings per turn, and `session.id` on every span (what
//! `set_tracer_provider(tp, metadata={"session.id": room})` does).
//!
//! Attribute placement follows `livekit/agents/voice/generation.py`:
//! `lk.response.ttft` and the generated text on `llm_node`, `lk.response.ttfb`
//! and the input text on `tts_node`, model and usage on the request spans.

use opentelemetry::KeyValue;
use rand::Rng;
use serde_json::json;

use super::debug_log::Step;
use super::grounding;
use super::plan::PlannedSpan;
use super::script::{alnum, spoken_prefix, Failure, Script, Stage, Turn, Usage};
use super::voice::{self, Inference};

const SCOPE: &str = "livekit-agents";
const AGENT_NAME: &str = "support-agent";
const LLM_PROVIDER: &str = "openai";
const LLM_MODEL: &str = "gpt-4o-mini";

/// A LiveKit boolean that is exported as the string "true" / "false".
fn flag(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

pub(crate) fn build(
    rng: &mut impl Rng,
    script: &Script,
    session_id: &str,
) -> (Vec<KeyValue>, Vec<PlannedSpan>) {
    let timeline = voice::layout(script);
    // Self-hosted deployments key sessions by room name.
    let room = session_id.to_string();
    let mut root = PlannedSpan::new("agent_session", SCOPE, 0.0, timeline.end)
        .attr("lk.agent_name", AGENT_NAME)
        .attr("lk.job_id", format!("AJ_{}", alnum(rng, 12)))
        .attr("lk.pii.room_name", room)
        .attr("convolog.channel", "voice")
        .attr("convolog.direction", script.direction.as_str());
    let participant = format!("PA_{}", alnum(rng, 12));

    let mut previous_interrupted = false;
    for (turn, t) in script.turns.iter().zip(&timeline.turns) {
        let tm = &turn.timing;
        // A barge-in shows up as user speech that starts while the agent is
        // still speaking the previous reply.
        if !turn.user.is_empty() {
            root = root
                .child(
                    PlannedSpan::new("user_speaking", SCOPE, t.user_start, t.user_end)
                        .attr("lk.participant_id", participant.clone())
                        .attr("lk.is_interruption", flag(previous_interrupted)),
                )
                .child(
                    PlannedSpan::new("user_turn", SCOPE, t.user_start, t.eot)
                        .attr("lk.pii.user_transcript", turn.user.clone())
                        .attr("lk.transcript_confidence", turn.confidence)
                        .attr("lk.transcription_delay", tm.stt_ttfb)
                        .attr("lk.end_of_turn_delay", t.eot - t.user_end)
                        .logged(turn, Step::Transcribe)
                        .child(
                            PlannedSpan::new(
                                "eou_detection",
                                SCOPE,
                                t.stt_final,
                                t.stt_final + tm.eou_inference,
                            )
                            .attr("lk.eou.probability", rng.random_range(0.6..0.99))
                            .attr("lk.eou.endpointing_delay", tm.endpointing),
                        ),
                );
        }
        previous_interrupted = turn.interrupted;

        let speech_id = format!("speech_{}", alnum(rng, 12).to_lowercase());
        let spoken = spoken_prefix(&turn.agent, t.spoken_fraction);
        let stop = t.bot_stop;
        let mut agent_turn = PlannedSpan::new("agent_turn", SCOPE, t.eot, stop)
            .attr("lk.speech_id", speech_id.clone())
            .attr("lk.generation_id", format!("{speech_id}_0"))
            .attr("lk.pii.user_input", turn.user.clone())
            .attr("lk.interrupted", flag(turn.interrupted));
        if !turn.unanswered {
            agent_turn = agent_turn.attr("lk.pii.response.text", spoken);
            if !turn.user.is_empty() {
                agent_turn = agent_turn.attr("lk.e2e_latency", t.bot_start - t.user_end);
            }
        }

        if let (Some(round), Some((tool_start, tool_end)), Some(call), Some(usage)) =
            (t.tool_round, t.tool, &turn.tool, turn.tool_usage)
        {
            let calls = json!([{
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            }])
            .to_string();
            agent_turn = agent_turn.child(
                llm_node(round, usage, stop, None)
                    .attr("lk.pii.response.text", "")
                    .attr("lk.pii.response.function_calls", calls),
            );
            let mut tool = PlannedSpan::new("function_tool", SCOPE, tool_start, tool_end)
                .attr("lk.function_tool.id", call.call_id.clone())
                .attr("lk.function_tool.name", call.name)
                .attr("lk.pii.function_tool.arguments", call.arguments.clone())
                .attr("lk.pii.function_tool.output", call.result.clone())
                .attr("lk.function_tool.is_error", call.failed);
            if call.failed {
                tool = tool.failed(
                    "ToolError",
                    &format!("{} failed: {}", call.name, call.result),
                );
            }
            agent_turn = agent_turn.child(tool.logged(turn, Step::CallTool));
        }

        let reply = llm_node(t.reply, turn.reply_usage, stop, turn.failure_at(Stage::Llm))
            .logged(turn, Step::Reply);
        if turn.unanswered {
            root = root.child(agent_turn.child(reply));
            continue;
        }
        if let Some(g) = &turn.grounding {
            agent_turn = grounding::rate(grounding::cite(agent_turn, g), g);
        }
        agent_turn = agent_turn
            .child(reply.attr("lk.pii.response.text", turn.agent.clone()))
            .child(tts_node(turn, t.tts_start, t.tts_end.min(stop)).logged(turn, Step::Speak));
        root = root.child(agent_turn);

        root = root.child(
            PlannedSpan::new("agent_speaking", SCOPE, t.bot_start, stop)
                .attr("lk.is_interruption", flag(turn.interrupted)),
        );
    }

    if let (Some((start, end)), Some(handoff)) = (timeline.handoff, &script.handoff) {
        root = root.child(
            PlannedSpan::new("handoff", SCOPE, start, end)
                .attr("convolog.handoff.target", "human")
                .attr("convolog.handoff.reason", handoff.reason.as_str()),
        );
    }

    root.stamp_all(&KeyValue::new("session.id", session_id.to_string()));
    let resource = vec![KeyValue::new("service.name", "livekit-support-agent")];
    (resource, vec![root])
}

/// `llm_node` -> `llm_request` -> `llm_request_run`, ending no later than `limit`.
/// A failure is recorded on the attempt and propagates to the request.
fn llm_node(round: Inference, usage: Usage, limit: f64, failure: Option<&Failure>) -> PlannedSpan {
    let (start, end) = (round.start, round.end.min(limit));
    let ttft = round.first_token - round.start;
    let metrics = json!({
        "type": "llm_metrics",
        "ttft": ttft,
        "duration": end - start,
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
    })
    .to_string();
    PlannedSpan::new("llm_node", SCOPE, start, end)
        .attr("lk.response.ttft", ttft)
        .child(
            PlannedSpan::new("llm_request", SCOPE, start + 0.001, end)
                .attr("gen_ai.operation.name", "chat")
                .attr("gen_ai.provider.name", LLM_PROVIDER)
                .attr("gen_ai.request.model", LLM_MODEL)
                .attr("gen_ai.usage.input_tokens", usage.input_tokens)
                .attr("gen_ai.usage.output_tokens", usage.output_tokens)
                .attr("lk.llm_metrics", metrics)
                .fail_with(failure)
                .child(
                    PlannedSpan::new("llm_request_run", SCOPE, start + 0.002, end)
                        .attr("lk.retry_count", 0_i64)
                        .fail_with(failure),
                ),
        )
}

/// `tts_node` -> `tts_request` -> `tts_request_run`.
fn tts_node(turn: &Turn, start: f64, end: f64) -> PlannedSpan {
    let failure = turn.failure_at(Stage::Tts);
    let ttfb = turn.timing.tts_ttfb;
    let characters = i64::try_from(turn.agent.chars().count()).unwrap_or(i64::MAX);
    let metrics = json!({
        "type": "tts_metrics",
        "ttfb": ttfb,
        "duration": end - start,
        "characters_count": characters,
    })
    .to_string();
    PlannedSpan::new("tts_node", SCOPE, start, end)
        .attr("lk.response.ttfb", ttfb)
        .attr("lk.pii.input_text", turn.agent.clone())
        .child(
            PlannedSpan::new("tts_request", SCOPE, start + 0.001, end)
                .attr("gen_ai.provider.name", "cartesia")
                .attr("gen_ai.request.model", "sonic-2")
                .attr("lk.tts_metrics", metrics)
                .fail_with(failure)
                .child(
                    PlannedSpan::new("tts_request_run", SCOPE, start + 0.002, end)
                        .attr("lk.retry_count", 0_i64)
                        .fail_with(failure),
                ),
        )
}
