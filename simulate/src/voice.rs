//! Timeline of a voice conversation, shared by the Pipecat and LiveKit shapes.
//!
//! Times are seconds from the start of the session. The layout follows the
//! order of events in a cascaded voice pipeline: user speech, final
//! transcript, end-of-turn decision, LLM (with an optional tool round), TTS,
//! playout, and either silence or a barge-in.

use super::script::Script;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Inference {
    pub start: f64,
    pub first_token: f64,
    pub end: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct VoiceTurn {
    pub user_start: f64,
    pub user_end: f64,
    pub stt_final: f64,
    /// End of turn detected: the agent starts working on a reply.
    pub eot: f64,
    /// The LLM round that asked for a tool, if any.
    pub tool_round: Option<Inference>,
    pub tool: Option<(f64, f64)>,
    /// The LLM round that produced the spoken reply.
    pub reply: Inference,
    pub tts_start: f64,
    /// Synthesis finished (ignoring interruptions; shapes clamp it).
    pub tts_end: f64,
    /// First reply audio reaches the user.
    pub bot_start: f64,
    /// Reply audio stops: finished, or cut off after a barge-in.
    pub bot_stop: f64,
    /// Share of the reply that was spoken.
    pub spoken_fraction: f64,
    /// Pipecat's turn end: the barge-in, the next user speech, or 2.5 s after
    /// the bot stops; the last turn runs until the session ends.
    pub turn_end: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct VoiceTimeline {
    pub turns: Vec<VoiceTurn>,
    pub handoff: Option<(f64, f64)>,
    pub end: f64,
}

/// Pipecat closes a turn this long after the bot stops speaking.
const TURN_END_SILENCE: f64 = 2.5;
/// Scheduling overhead between pipeline stages.
const HOP: f64 = 0.005;

pub(crate) fn layout(script: &Script) -> VoiceTimeline {
    let mut turns: Vec<VoiceTurn> = Vec::with_capacity(script.turns.len());
    let mut user_start = script.connect;
    for (i, turn) in script.turns.iter().enumerate() {
        let tm = &turn.timing;
        // With nothing said (a greeting nobody answers) the agent starts at once.
        let (user_end, stt_final, eot) = if turn.user.is_empty() {
            (user_start, user_start, user_start)
        } else {
            let words = turn.user.split_whitespace().count().max(1) as f64;
            let user_end = user_start + (words / tm.user_words_per_sec).max(0.4);
            // The turn detector waits at least its endpointing delay and never
            // decides before the final transcript has been scored.
            let eot = user_end + tm.endpointing.max(tm.stt_ttfb + tm.eou_inference);
            (user_end, user_end + tm.stt_ttfb, eot)
        };

        let mut cursor = eot + 2.0 * HOP;
        let tool_round = turn.tool.as_ref().map(|_| {
            let first_token = cursor + tm.llm_ttft;
            Inference {
                start: cursor,
                first_token,
                end: first_token + tm.tool_call_stream,
            }
        });
        let tool = tool_round.map(|round| {
            let start = round.end + HOP;
            (start, start + tm.tool)
        });
        let reply_ttft = match tool {
            Some((_, tool_end)) => {
                cursor = tool_end + HOP;
                tm.tool_llm_ttft
            }
            None => tm.llm_ttft,
        };
        let first_token = cursor + reply_ttft;
        // An unanswered turn stops where the first token would have come:
        // the request failed or the caller was gone.
        let reply = Inference {
            start: cursor,
            first_token,
            end: if turn.unanswered {
                first_token
            } else {
                first_token + turn.reply_usage.output_tokens as f64 * tm.token_interval
            },
        };
        if turn.unanswered {
            turns.push(VoiceTurn {
                user_start,
                user_end,
                stt_final,
                eot,
                tool_round,
                tool,
                reply,
                tts_start: reply.end,
                tts_end: reply.end,
                bot_start: reply.end,
                bot_stop: reply.end,
                spoken_fraction: 0.0,
                turn_end: reply.end + script.hangup,
            });
            // Nothing follows an unanswered turn.
            break;
        }

        let tts_start = first_token + tm.tts_lead;
        let bot_start = tts_start + tm.tts_ttfb;
        let speech = (turn.agent.len() as f64 / tm.bot_chars_per_sec).max(0.5);
        // Synthesis runs faster than playout but cannot finish before the text does.
        let tts_end = (bot_start + 0.35 * speech).max(reply.end + 0.05);

        let (bot_stop, barge_in, spoken_fraction, next_user_start) = if turn.interrupted {
            let barge = bot_start + speech * tm.barge_in_fraction;
            (
                barge + tm.interruption_detect,
                Some(barge),
                tm.barge_in_fraction,
                barge,
            )
        } else {
            let stop = bot_start + speech;
            (stop, None, 1.0, stop + tm.gap)
        };
        let last = i + 1 == script.turns.len();
        let turn_end = match barge_in {
            // The caller hung up mid-reply: the call ends when the audio stops.
            Some(_) if last => bot_stop,
            Some(barge) => barge,
            None if last => bot_stop + script.hangup,
            None => (bot_stop + TURN_END_SILENCE).min(next_user_start),
        };

        turns.push(VoiceTurn {
            user_start,
            user_end,
            stt_final,
            eot,
            tool_round,
            tool,
            reply,
            tts_start,
            tts_end,
            bot_start,
            bot_stop,
            spoken_fraction,
            turn_end,
        });
        user_start = next_user_start;
    }

    let (last_stop, last_end) = turns.last().map_or((script.connect, script.connect), |t| {
        (t.bot_stop, t.turn_end)
    });
    // The transfer starts once the agent has said it is transferring.
    let handoff = script.handoff.as_ref().map(|h| {
        let start = last_stop + 0.1;
        (start, start + h.duration)
    });
    let end = handoff.map_or(last_end, |(_, h_end)| last_end.max(h_end)) + 0.05;
    VoiceTimeline {
        turns,
        handoff,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{build, Medium, PlanOptions};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn events_happen_in_pipeline_order() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..300 {
            let script = build(&mut rng, &PlanOptions::default(), Medium::Voice);
            let timeline = layout(&script);
            assert_eq!(timeline.turns.len(), script.turns.len());
            let mut previous_end = 0.0;
            for (i, (turn, t)) in script.turns.iter().zip(&timeline.turns).enumerate() {
                let last = i + 1 == script.turns.len();
                assert!(t.user_start >= previous_end - 1e-9);
                if !turn.user.is_empty() {
                    assert!(t.user_start < t.user_end && t.user_end < t.stt_final);
                    assert!(t.stt_final < t.eot);
                }
                assert!(t.eot < t.reply.start);
                assert!(t.reply.start < t.reply.first_token && t.reply.first_token <= t.reply.end);
                if turn.unanswered {
                    assert!(last, "only the last turn goes unanswered");
                    previous_end = t.turn_end;
                    continue;
                }
                assert!(t.reply.first_token < t.tts_start && t.tts_start < t.bot_start);
                assert!(t.bot_start < t.bot_stop);
                assert!(t.turn_end > t.bot_start);
                let latency = t.bot_start - t.user_end;
                assert!(latency > 0.2 && latency < 12.0, "voice-to-voice {latency}");
                if turn.interrupted && !last {
                    // The user's next words start while the agent is still speaking.
                    let barge = timeline.turns[i + 1].user_start;
                    assert!(t.bot_start < barge && barge < t.bot_stop);
                    assert_eq!(t.turn_end, barge);
                }
                previous_end = t.turn_end;
            }
            assert!(timeline.end >= previous_end);
        }
    }
}
