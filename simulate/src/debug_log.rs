//! The agent's debug log lines: what it writes at each step of a turn, and at which
//! severity. This is the one place that decides them; a framework shape only says which
//! of its spans runs which step (`span.logged(turn, Step::CallTool)`), and the emitter
//! writes each line inside that span.
//!
//! Lines follow from the script alone (no randomness), so turning logs off leaves every
//! conversation the same.

use std::time::Duration;

use opentelemetry::logs::Severity;

use super::plan::{PlannedLog, PlannedSpan};
use super::script::{Stage, Turn};

/// A step of a turn that logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Speech to text of the user's line.
    Transcribe,
    /// The tool the LLM asked for.
    CallTool,
    /// The LLM call that produces the reply.
    Reply,
    /// Text to speech of the reply.
    Speak,
}

/// Waits above these (seconds to the first result, or the whole tool call) log a warning.
const SLOW_STT: f64 = 0.8;
const SLOW_LLM: f64 = 2.0;
const SLOW_TOOL: f64 = 1.0;
const SLOW_TTS: f64 = 0.8;
/// A transcript less sure than this is logged as a warning.
const LOW_CONFIDENCE: f64 = 0.6;

/// Where in its span a line is written.
#[derive(Debug, Clone, Copy)]
enum When {
    Start,
    Middle,
    End,
}

/// A millisecond inside the span's edges, so a line is never at a neighbouring step's time.
const INSET: Duration = Duration::from_millis(1);

impl When {
    fn within(self, start: Duration, end: Duration) -> Duration {
        let at = match self {
            When::Start => start + INSET,
            When::Middle => start + (end.saturating_sub(start)) / 2,
            When::End => end.saturating_sub(INSET),
        };
        at.clamp(start, end.max(start))
    }
}

impl PlannedSpan {
    /// Adds the lines the agent logs while this span runs `step` of `turn`.
    pub(crate) fn logged(mut self, turn: &Turn, step: Step) -> Self {
        let (start, end) = (self.start, self.end);
        self.logs.extend(
            lines(turn, step)
                .into_iter()
                .map(|(when, severity, body)| PlannedLog {
                    at: when.within(start, end),
                    severity,
                    body,
                }),
        );
        self
    }
}

fn ms(seconds: f64) -> u64 {
    Duration::try_from_secs_f64(seconds)
        .unwrap_or_default()
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// INFO for what a step did, WARN when it was slow or unsure, ERROR when it failed.
fn lines(turn: &Turn, step: Step) -> Vec<(When, Severity, String)> {
    use Severity::{Error, Info, Warn};
    let tm = &turn.timing;
    let failure = |stage| {
        turn.failure_at(stage).map(|f| {
            (
                When::Middle,
                Error,
                format!("{}: {}", f.exception, f.message),
            )
        })
    };
    // "slow transcription: first result after 1200 ms"
    let slow = |wait: f64, limit: f64, when: When, what: &str| {
        (wait > limit).then(|| (when, Warn, format!("slow {what} after {} ms", ms(wait))))
    };
    let mut lines = Vec::new();
    match step {
        Step::Transcribe => {
            let words = turn.user.split_whitespace().count();
            lines.push((
                When::End,
                Info,
                format!(
                    "final transcript: {words} words, confidence {:.2}",
                    turn.confidence
                ),
            ));
            lines.extend(slow(
                tm.stt_ttfb,
                SLOW_STT,
                When::Middle,
                "transcription: first result",
            ));
            if turn.confidence < LOW_CONFIDENCE {
                lines.push((
                    When::End,
                    Warn,
                    "low transcript confidence, the reply may miss the point".to_string(),
                ));
            }
            lines.extend(failure(Stage::Stt));
        }
        Step::CallTool => {
            if let Some(call) = &turn.tool {
                let name = call.name;
                let took = ms(tm.tool);
                lines.push((
                    When::Start,
                    Info,
                    format!("calling tool {name} with {}", call.arguments),
                ));
                lines.push(if call.failed {
                    (
                        When::End,
                        Error,
                        format!("tool {name} failed after {took} ms: {}", call.result),
                    )
                } else if tm.tool > SLOW_TOOL {
                    (
                        When::End,
                        Warn,
                        format!("slow tool: {name} answered after {took} ms"),
                    )
                } else {
                    (
                        When::End,
                        Info,
                        format!("tool {name} answered in {took} ms"),
                    )
                });
            }
        }
        Step::Reply => {
            lines.push((
                When::Start,
                Info,
                format!(
                    "LLM request with {} prompt tokens",
                    turn.reply_usage.input_tokens
                ),
            ));
            // An unanswered reply never got its first token.
            if !turn.unanswered {
                lines.extend(slow(
                    turn.reply_ttft(),
                    SLOW_LLM,
                    When::End,
                    "LLM: first token",
                ));
            }
            lines.extend(failure(Stage::Llm));
        }
        Step::Speak => {
            let characters = turn.agent.chars().count();
            lines.push((
                When::Start,
                Info,
                format!("synthesizing {characters} characters"),
            ));
            lines.extend(slow(
                tm.tts_ttfb,
                SLOW_TTS,
                When::Middle,
                "speech synthesis: first audio",
            ));
            lines.extend(failure(Stage::Tts));
        }
    }
    lines
}
