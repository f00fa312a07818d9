//! What is said and how long things take, independent of any framework's span layout.
//!
//! All randomness is drawn here, so the shape builders are plain functions of a
//! [`Script`] and the same seed gives the same conversation in every shape.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_distr::StandardNormal;

use super::corpus::{self, Exchange, Scenario};

/// Knobs for the conversation generator; validated by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    pub min_turns: u32,
    pub max_turns: u32,
    /// Probability that the user barges in on a reply (never the last one).
    pub interrupt_rate: f64,
    /// Probability that a tool call fails.
    pub tool_error_rate: f64,
    /// Probability that the conversation ends with a transfer to a human.
    pub handoff_rate: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            min_turns: 3,
            max_turns: 8,
            interrupt_rate: 0.15,
            tool_error_rate: 0.15,
            handoff_rate: 0.10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub direction: Direction,
    /// Seconds from the start of the session to the user's first words.
    pub connect: f64,
    /// Seconds from the last reply to the end of the session.
    pub hangup: f64,
    pub turns: Vec<Turn>,
    pub handoff: Option<Handoff>,
}

#[derive(Debug, Clone)]
pub(crate) struct Handoff {
    pub reason: HandoffReason,
    pub duration: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandoffReason {
    CustomerRequest,
    ToolFailure,
    OutOfScope,
}

impl HandoffReason {
    /// Value of `convolog.handoff.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            HandoffReason::CustomerRequest => "customer_request",
            HandoffReason::ToolFailure => "tool_failure",
            HandoffReason::OutOfScope => "out_of_scope",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Turn {
    pub user: String,
    /// The full reply the LLM produced.
    pub agent: String,
    pub tool: Option<ToolCall>,
    /// The user barged in while this reply was being spoken.
    pub interrupted: bool,
    /// Token usage of the LLM round that asked for the tool, if any.
    pub tool_usage: Option<Usage>,
    /// Token usage of the LLM round that produced `agent`.
    pub reply_usage: Usage,
    pub timing: Timing,
}

#[derive(Debug, Clone)]
pub(crate) struct ToolCall {
    pub name: &'static str,
    pub call_id: String,
    pub arguments: String,
    /// JSON result, or the error payload when `failed`.
    pub result: String,
    pub failed: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Sampled latencies and rates for one turn, in seconds (or per second).
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    pub user_words_per_sec: f64,
    pub stt_ttfb: f64,
    pub endpointing: f64,
    pub eou_inference: f64,
    pub llm_ttft: f64,
    pub tool_llm_ttft: f64,
    /// Time the tool-calling round streams its arguments after the first token.
    pub tool_call_stream: f64,
    pub tool: f64,
    pub token_interval: f64,
    /// Text buffered before the first sentence goes to TTS.
    pub tts_lead: f64,
    pub tts_ttfb: f64,
    pub bot_chars_per_sec: f64,
    /// Share of the reply spoken before the user barged in.
    pub barge_in_fraction: f64,
    /// Time from the user starting to talk over the agent to the agent going quiet.
    pub interruption_detect: f64,
    /// Silence between the end of the reply and the user's next words.
    pub gap: f64,
    /// Chat only: reading the reply and typing the next message.
    pub think: f64,
}

/// Samples from `lo..=hi`, lognormal around the geometric middle: most values
/// cluster in the middle with a longer right tail, like real service latencies.
/// Clamped so the documented range holds.
pub(crate) fn lognormal(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    let median = (lo * hi).sqrt();
    // About 95% of samples fall inside the range before clamping.
    let sigma = (hi / lo).ln() / 4.0;
    let z: f64 = rng.sample(StandardNormal);
    (median * (sigma * z).exp()).clamp(lo, hi)
}

fn ttft(rng: &mut impl Rng) -> f64 {
    // A few percent of LLM calls hit a cold or overloaded backend.
    if rng.random_bool(0.07) {
        rng.random_range(2.0..4.0)
    } else {
        lognormal(rng, 0.3, 1.2)
    }
}

fn sample_timing(rng: &mut impl Rng) -> Timing {
    Timing {
        user_words_per_sec: rng.random_range(2.2..3.4),
        stt_ttfb: lognormal(rng, 0.15, 0.4),
        endpointing: lognormal(rng, 0.2, 0.6),
        eou_inference: rng.random_range(0.015..0.03),
        llm_ttft: ttft(rng),
        tool_llm_ttft: ttft(rng),
        tool_call_stream: rng.random_range(0.1..0.35),
        tool: lognormal(rng, 0.1, 1.5),
        token_interval: rng.random_range(0.01..0.02),
        tts_lead: rng.random_range(0.05..0.15),
        tts_ttfb: lognormal(rng, 0.15, 0.4),
        bot_chars_per_sec: rng.random_range(13.0..17.0),
        barge_in_fraction: rng.random_range(0.25..0.7),
        interruption_detect: lognormal(rng, 0.15, 0.45),
        gap: lognormal(rng, 0.4, 3.0),
        think: lognormal(rng, 4.0, 40.0),
    }
}

/// Rough token count: about four characters per token for English text.
pub(crate) fn tokens(text: &str) -> i64 {
    i64::try_from(text.len().div_ceil(4)).unwrap_or(i64::MAX)
}

/// Per-conversation values substituted into the corpus lines.
struct Fill {
    order: String,
    amount: String,
    name: &'static str,
    date: &'static str,
    time: &'static str,
    address: &'static str,
    topic: &'static str,
}

impl Fill {
    fn new(rng: &mut impl Rng, scenario: &Scenario) -> Self {
        Self {
            order: format!("A{}", rng.random_range(10_000..100_000)),
            amount: format!(
                "${}.{:02}",
                rng.random_range(15..240),
                rng.random_range(0..100)
            ),
            name: pick(rng, corpus::NAMES),
            date: pick(rng, corpus::DATES),
            time: pick(rng, corpus::TIMES),
            address: pick(rng, corpus::ADDRESSES),
            topic: scenario.topic,
        }
    }

    fn apply(&self, text: &str) -> String {
        text.replace("{order}", &self.order)
            .replace("{amount}", &self.amount)
            .replace("{name}", self.name)
            .replace("{date}", self.date)
            .replace("{time}", self.time)
            .replace("{address}", self.address)
            .replace("{topic}", self.topic)
    }
}

fn pick(rng: &mut impl Rng, items: &[&'static str]) -> &'static str {
    items.choose(rng).copied().unwrap_or_default()
}

/// Random `[A-Za-z0-9]` string, for provider-style ids.
pub(crate) fn alnum(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// Probabilities outside 0..=1 would make the RNG panic; `run` rejects them
/// with a message, this keeps direct callers safe.
fn probability(p: f64) -> f64 {
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

pub(crate) fn build(rng: &mut impl Rng, options: &PlanOptions) -> Script {
    let options = &PlanOptions {
        min_turns: options.min_turns.max(1),
        max_turns: options.max_turns.max(options.min_turns.max(1)),
        interrupt_rate: probability(options.interrupt_rate),
        tool_error_rate: probability(options.tool_error_rate),
        handoff_rate: probability(options.handoff_rate),
    };
    let scenario = &corpus::SCENARIOS[rng.random_range(0..corpus::SCENARIOS.len())];
    let fill = Fill::new(rng, scenario);
    let direction = if rng.random_bool(0.2) {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let n = rng.random_range(options.min_turns..=options.max_turns) as usize;
    let handoff_wanted = rng.random_bool(options.handoff_rate);

    // Opening, then the scenario's story in order, then shuffled filler.
    let mut generic: Vec<&Exchange> = corpus::GENERIC.iter().collect();
    generic.shuffle(rng);
    let opening = match direction {
        Direction::Inbound => &scenario.opening,
        Direction::Outbound => &corpus::OUTBOUND_OPENING,
    };
    let middle = scenario
        .story
        .iter()
        .chain(generic)
        .cycle()
        .take(n.saturating_sub(2));
    let mut turns: Vec<Turn> = Vec::with_capacity(n);
    for exchange in std::iter::once(opening).chain(middle) {
        let turn = make_turn(rng, options, &fill, exchange, context_tokens(&turns));
        turns.push(turn);
    }

    // The closing depends on what happened so far: a failed tool is the usual
    // reason an agent hands over.
    let tool_failed = turns
        .iter()
        .any(|t| t.tool.as_ref().is_some_and(|c| c.failed));
    let handoff = handoff_wanted.then(|| {
        let reason = if tool_failed {
            HandoffReason::ToolFailure
        } else if rng.random_bool(0.6) {
            HandoffReason::CustomerRequest
        } else {
            HandoffReason::OutOfScope
        };
        Handoff {
            reason,
            duration: rng.random_range(0.2..0.8),
        }
    });
    if n >= 2 {
        let closing = match handoff.as_ref().map(|h| h.reason) {
            Some(HandoffReason::CustomerRequest) => &corpus::HANDOFF_ON_REQUEST,
            Some(_) => &corpus::HANDOFF_BY_AGENT,
            None => &corpus::CLOSINGS[rng.random_range(0..corpus::CLOSINGS.len())],
        };
        let turn = make_turn(rng, options, &fill, closing, context_tokens(&turns));
        turns.push(turn);
    }

    // A barge-in needs a next turn for the user's words, so the last reply is
    // never interrupted.
    let last = turns.len().saturating_sub(1);
    for turn in &mut turns[..last] {
        turn.interrupted = rng.random_bool(options.interrupt_rate);
    }

    Script {
        direction,
        connect: rng.random_range(0.6..2.0),
        hangup: rng.random_range(0.3..1.2),
        turns,
        handoff,
    }
}

/// Tokens in the LLM context before the next user message: the system prompt
/// plus everything said so far.
fn context_tokens(turns: &[Turn]) -> i64 {
    turns.last().map_or(tokens(corpus::SYSTEM_PROMPT), |t| {
        t.reply_usage.input_tokens + t.reply_usage.output_tokens
    })
}

fn make_turn(
    rng: &mut impl Rng,
    options: &PlanOptions,
    fill: &Fill,
    exchange: &Exchange,
    history_tokens: i64,
) -> Turn {
    let user = fill.apply(exchange.user);
    let prompt_tokens = history_tokens + tokens(&user) + 4;
    let tool = exchange.tool.as_ref().map(|spec| {
        let failed = rng.random_bool(options.tool_error_rate);
        let result = if failed {
            r#"{"error":"upstream_unavailable","message":"backend did not answer within 1500 ms"}"#
                .to_string()
        } else {
            fill.apply(spec.result)
        };
        ToolCall {
            name: spec.name,
            call_id: format!("call_{}", alnum(rng, 24)),
            arguments: fill.apply(spec.arguments),
            result,
            failed,
        }
    });
    let agent = match (&tool, &exchange.tool) {
        (Some(call), Some(spec)) if call.failed => fill.apply(spec.agent_on_error),
        _ => fill.apply(exchange.agent),
    };
    // A tool round costs one extra inference: the model asks for the call,
    // then answers with the result in its context.
    let tool_usage = tool.as_ref().map(|call| Usage {
        input_tokens: prompt_tokens,
        output_tokens: 12 + tokens(&call.arguments),
    });
    let reply_input = match (&tool_usage, &tool) {
        (Some(usage), Some(call)) => prompt_tokens + usage.output_tokens + tokens(&call.result) + 4,
        _ => prompt_tokens,
    };
    Turn {
        user,
        reply_usage: Usage {
            input_tokens: reply_input,
            output_tokens: tokens(&agent),
        },
        agent,
        tool,
        interrupted: false,
        tool_usage,
        timing: sample_timing(rng),
    }
}

/// The words of `text` a listener heard before `fraction` of it was spoken.
pub(crate) fn spoken_prefix(text: &str, fraction: f64) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    // Truncation is intended: a partly spoken word was not heard.
    let heard = ((words.len() as f64) * fraction.clamp(0.0, 1.0)) as usize;
    words[..heard.max(1).min(words.len())].join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn lognormal_stays_in_range() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..10_000 {
            let x = lognormal(&mut rng, 0.15, 0.4);
            assert!((0.15..=0.4).contains(&x));
        }
    }

    #[test]
    fn turn_count_respects_options() {
        let options = PlanOptions {
            min_turns: 2,
            max_turns: 4,
            ..PlanOptions::default()
        };
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..200 {
            let script = build(&mut rng, &options);
            assert!((2..=4).contains(&script.turns.len()));
            assert!(!script.turns.last().is_some_and(|t| t.interrupted));
        }
    }

    #[test]
    fn placeholders_are_filled() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let script = build(&mut rng, &PlanOptions::default());
            for turn in &script.turns {
                assert!(!turn.user.contains('{'), "{}", turn.user);
                assert!(!turn.agent.contains('{'), "{}", turn.agent);
                if let Some(call) = &turn.tool {
                    let args: serde_json::Value =
                        serde_json::from_str(&call.arguments).expect("arguments are JSON");
                    assert!(!args.to_string().contains("{order}"));
                    serde_json::from_str::<serde_json::Value>(&call.result)
                        .expect("result is JSON");
                }
            }
        }
    }

    #[test]
    fn spoken_prefix_keeps_whole_words() {
        assert_eq!(spoken_prefix("one two three four", 0.5), "one two");
        assert_eq!(spoken_prefix("one two", 0.0), "one");
        assert_eq!(spoken_prefix("one two", 2.0), "one two");
    }
}
