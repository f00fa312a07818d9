//! What is said and how long things take, independent of any framework's span layout.
//!
//! All randomness is drawn here, so the shape builders are plain functions of a
//! [`Script`] and the same seed gives the same conversation in every shape.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_distr::StandardNormal;

use super::corpus::{self, Article, Exchange, Scenario, Weakness};

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
    /// Probability that a conversation ends abnormally (one of [`ENDINGS`]).
    pub incident_rate: f64,
    /// Probability that an STT, LLM or TTS call fails and is retried within a turn.
    pub stage_error_rate: f64,
    /// Probability that the agent misunderstands a user line, answers with a
    /// fallback, and the user repeats it.
    pub misheard_rate: f64,
    /// Probability that a chat application marks a finished chat as ended.
    pub chat_end_rate: f64,
    /// Probability that a conversation asks one of the planted weak questions.
    pub weak_rate: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            min_turns: 3,
            max_turns: 8,
            interrupt_rate: 0.15,
            tool_error_rate: 0.15,
            handoff_rate: 0.10,
            incident_rate: 0.25,
            stage_error_rate: 0.02,
            misheard_rate: 0.04,
            chat_end_rate: 0.5,
            weak_rate: 0.2,
        }
    }
}

/// Voice call or text chat: decides which endings and signals apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Medium {
    Voice,
    Chat,
}

/// How a conversation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A closing exchange, or a transfer when the script has a handoff.
    Normal,
    /// The LLM provider answers 429 on the last reply; the agent gives up.
    RateLimited,
    /// The agent stops at its turn or cost limit (`convolog.budget.exceeded`).
    BudgetExceeded,
    /// The agent needs an identity check first (`convolog.verification.required`).
    VerificationRequired,
    /// The user leaves before the agent answers the last line.
    Unanswered,
    /// Voice: the caller hangs up while the agent is still speaking.
    HungUp,
    /// Voice: the agent speaks, nobody answers (voicemail or silence).
    NoUserSpeech,
    /// The worker refuses the session with an error: no turns in voice, the
    /// first chat request gets no reply.
    SessionBusy,
    /// Voice: the agent joined, nobody else did; no turns at all.
    Orphaned,
    /// Chat: the last request called a tool and has not replied yet.
    ToolPending,
    /// Chat: the widget was opened, nothing has been typed yet.
    Opened,
}

/// Abnormal endings, their relative weights, and where they can happen.
pub(crate) const ENDINGS: &[(Ending, u32, &[Medium])] = &[
    (Ending::RateLimited, 3, &[Medium::Voice, Medium::Chat]),
    (Ending::BudgetExceeded, 2, &[Medium::Voice, Medium::Chat]),
    (
        Ending::VerificationRequired,
        2,
        &[Medium::Voice, Medium::Chat],
    ),
    (Ending::Unanswered, 3, &[Medium::Voice, Medium::Chat]),
    (Ending::HungUp, 3, &[Medium::Voice]),
    (Ending::NoUserSpeech, 3, &[Medium::Voice]),
    (Ending::SessionBusy, 2, &[Medium::Voice, Medium::Chat]),
    (Ending::Orphaned, 2, &[Medium::Voice]),
    (Ending::ToolPending, 4, &[Medium::Chat]),
    (Ending::Opened, 2, &[Medium::Chat]),
];

/// A failure recorded on a span: status ERROR, an `exception` event, and the
/// attributes instrumentations set alongside.
#[derive(Debug, PartialEq)]
pub(crate) struct Failure {
    pub exception: &'static str,
    pub message: &'static str,
    pub error_type: Option<&'static str>,
    pub http_status: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Stt,
    Llm,
    Tts,
}

/// Transient stage failures a turn recovers from (Partial Flow Failure).
pub(crate) const STAGE_FAILURES: &[(Stage, Failure)] = &[
    (
        Stage::Stt,
        Failure {
            exception: "WebSocketException",
            message: "deepgram: connection closed (1011), reconnected",
            error_type: None,
            http_status: None,
        },
    ),
    (
        Stage::Llm,
        Failure {
            exception: "APITimeoutError",
            message: "openai: request timed out, retried",
            error_type: None,
            http_status: None,
        },
    ),
    (
        Stage::Tts,
        Failure {
            exception: "TTSError",
            message: "cartesia: audio stream interrupted, resent",
            error_type: None,
            http_status: None,
        },
    ),
];

pub(crate) const RATE_LIMITED: Failure = Failure {
    exception: "RateLimitError",
    message: "Error code: 429 - Rate limit reached for gpt-4o-mini",
    error_type: Some("rate_limit_exceeded"),
    http_status: Some(429),
};

pub(crate) const SESSION_BUSY: Failure = Failure {
    exception: "SessionBusyError",
    message: "agent worker at capacity, session refused",
    error_type: Some("session_busy"),
    http_status: None,
};

/// Result of a tool that no longer exists on the server (Skill Retired).
const TOOL_NOT_FOUND: &str =
    r#"{"error":"tool_not_found","message":"this function has been removed from the server"}"#;
const TOOL_UNAVAILABLE: &str =
    r#"{"error":"upstream_unavailable","message":"backend did not answer within 1500 ms"}"#;

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
    pub medium: Medium,
    pub ending: Ending,
    /// Chat: the application says the chat is over (`convolog.session.ended`).
    pub chat_ended: bool,
    /// LLM spans carry `convolog.cost.usd` computed by the application.
    pub priced: bool,
    /// Session-wide descriptive facts.
    pub facts: Facts,
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
    /// No reply was produced (the user left, the LLM failed, a tool is still running).
    pub unanswered: bool,
    /// A stage call that failed: retried if the turn is answered, fatal if not.
    pub failure: Option<(Stage, &'static Failure)>,
    /// Speech-to-text confidence of the user's line.
    pub confidence: f64,
    /// Token usage of the LLM round that asked for the tool, if any.
    pub tool_usage: Option<Usage>,
    /// Token usage of the LLM round that produced `agent`.
    pub reply_usage: Usage,
    pub timing: Timing,
    /// What the reply stood on; None when there was no reply.
    pub grounding: Option<Grounding>,
}

/// The documents an answer was given, how sure it was, and how the user rated it.
#[derive(Debug, Clone)]
pub(crate) struct Grounding {
    /// Articles with their retrieval scores, best first; empty when the answer cites nothing.
    pub documents: Vec<(&'static Article, f64)>,
    pub confidence: f64,
    pub feedback: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub(crate) struct ToolCall {
    pub name: &'static str,
    pub call_id: String,
    pub arguments: String,
    /// JSON result, or the error payload when `failed`.
    pub result: String,
    pub failed: bool,
    /// The error payload says the tool no longer exists.
    pub retired: bool,
}

/// Descriptive `convolog.*` facts about the whole session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub intent: &'static str,
    pub flow: &'static str,
    /// Where the flow stopped.
    pub node: &'static str,
    pub topic: &'static str,
    pub user_id: String,
    pub contact: String,
    pub campaign: Option<&'static str>,
    pub feedback: Option<&'static str>,
    pub sentiment: &'static str,
    pub summary: String,
    pub extracted_data: String,
    /// Stated by the application when it knows better than the rules.
    pub outcome: Option<&'static str>,
}

impl Script {
    /// `convolog.call.status` and `convolog.call.ended_reason` of a voice call.
    pub fn call_result(&self) -> (&'static str, &'static str) {
        let outbound = self.direction == Direction::Outbound;
        match self.ending {
            Ending::Normal if self.handoff.is_some() => ("Completed", "transfer"),
            Ending::Normal if outbound => ("Completed", "agent_hangup"),
            Ending::Normal
            | Ending::Unanswered
            | Ending::HungUp
            | Ending::ToolPending
            | Ending::Opened => ("Completed", "user_hangup"),
            Ending::BudgetExceeded => ("Completed", "max_duration"),
            Ending::VerificationRequired => ("Completed", "agent_hangup"),
            Ending::RateLimited | Ending::SessionBusy => ("Failed", "error"),
            Ending::NoUserSpeech if outbound => ("Missed", "voicemail"),
            Ending::NoUserSpeech | Ending::Orphaned => ("Missed", "inactivity"),
        }
    }
}

impl Turn {
    /// The failure recorded on this turn's `stage` span, if any.
    pub fn failure_at(&self, stage: Stage) -> Option<&'static Failure> {
        self.failure.filter(|(s, _)| *s == stage).map(|(_, f)| f)
    }

    /// Time to the reply's first token: after a tool round the LLM has the result to read.
    pub fn reply_ttft(&self) -> f64 {
        if self.tool.is_some() {
            self.timing.tool_llm_ttft
        } else {
            self.timing.llm_ttft
        }
    }
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

/// `usual` most of the time, a value from `spike` with probability `p`.
fn spiky(rng: &mut impl Rng, p: f64, usual: f64, spike: std::ops::Range<f64>) -> f64 {
    if rng.random_bool(p) {
        rng.random_range(spike)
    } else {
        usual
    }
}

fn sample_timing(rng: &mut impl Rng) -> Timing {
    let stt_ttfb = lognormal(rng, 0.15, 0.4);
    let tts_ttfb = lognormal(rng, 0.15, 0.4);
    let gap = lognormal(rng, 0.4, 3.0);
    Timing {
        user_words_per_sec: rng.random_range(2.2..3.4),
        // A slow transcription, a cold TTS voice, a caller who puts the phone down.
        stt_ttfb: spiky(rng, 0.03, stt_ttfb, 0.9..1.6),
        endpointing: lognormal(rng, 0.2, 0.6),
        eou_inference: rng.random_range(0.015..0.03),
        llm_ttft: ttft(rng),
        tool_llm_ttft: ttft(rng),
        tool_call_stream: rng.random_range(0.1..0.35),
        tool: lognormal(rng, 0.1, 1.5),
        token_interval: rng.random_range(0.01..0.02),
        tts_lead: rng.random_range(0.05..0.15),
        tts_ttfb: spiky(rng, 0.03, tts_ttfb, 0.9..1.8),
        bot_chars_per_sec: rng.random_range(13.0..17.0),
        barge_in_fraction: rng.random_range(0.25..0.7),
        interruption_detect: lognormal(rng, 0.15, 0.45),
        gap: spiky(rng, 0.02, gap, 18.0..40.0),
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

pub(crate) fn build(rng: &mut impl Rng, options: &PlanOptions, medium: Medium) -> Script {
    let options = &PlanOptions {
        min_turns: options.min_turns.max(1),
        max_turns: options.max_turns.max(options.min_turns.max(1)),
        interrupt_rate: probability(options.interrupt_rate),
        tool_error_rate: probability(options.tool_error_rate),
        handoff_rate: probability(options.handoff_rate),
        incident_rate: probability(options.incident_rate),
        stage_error_rate: probability(options.stage_error_rate),
        misheard_rate: probability(options.misheard_rate),
        chat_end_rate: probability(options.chat_end_rate),
        weak_rate: probability(options.weak_rate),
    };
    let scenario = &corpus::SCENARIOS[rng.random_range(0..corpus::SCENARIOS.len())];
    let fill = Fill::new(rng, scenario);
    let direction = if rng.random_bool(0.2) {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let n = rng.random_range(options.min_turns..=options.max_turns) as usize;
    let mut ending = pick_ending(rng, options.incident_rate, medium);
    // Outbound calls reach a voicemail box more often than incidents happen
    // (15% of them at the default incident rate).
    let voicemail = (0.6 * options.incident_rate).min(1.0);
    if medium == Medium::Voice && direction == Direction::Outbound && rng.random_bool(voicemail) {
        ending = Ending::NoUserSpeech;
    }
    let handoff_wanted = rng.random_bool(options.handoff_rate) && ending == Ending::Normal;
    // Some callers ask for a person straight after the opening.
    let early_handoff = handoff_wanted && n >= 2 && rng.random_bool(0.3);
    // Some callers barge in all the time.
    let interrupt_rate = if rng.random_bool(options.interrupt_rate / 2.0) {
        0.6
    } else {
        options.interrupt_rate
    };

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
        .take(if early_handoff {
            0
        } else {
            n.saturating_sub(2)
        });
    let silent = match direction {
        Direction::Outbound => &corpus::SILENT_OUTBOUND,
        Direction::Inbound => &corpus::SILENT_INBOUND,
    };
    let exchanges: Vec<&Exchange> = match (ending, medium) {
        (Ending::Orphaned | Ending::Opened, _) | (Ending::SessionBusy, Medium::Voice) => Vec::new(),
        (Ending::SessionBusy, Medium::Chat) => vec![opening],
        (Ending::NoUserSpeech, _) => vec![silent],
        _ => std::iter::once(opening).chain(middle).collect(),
    };
    let mut turns: Vec<Turn> = Vec::with_capacity(n + 2);
    for exchange in exchanges {
        // Misheard: the agent answers with a fallback and the user says it again.
        if !exchange.user.is_empty() && rng.random_bool(options.misheard_rate) {
            let misheard = Exchange {
                user: exchange.user,
                agent: corpus::FALLBACK_REPLY,
                tool: None,
            };
            let mut turn = make_turn(rng, options, &fill, &misheard, context_tokens(&turns));
            turn.confidence = rng.random_range(0.3..0.58);
            turns.push(turn);
        }
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
    let closing = match ending {
        Ending::Normal if n >= 2 => Some(match handoff.as_ref().map(|h| h.reason) {
            Some(HandoffReason::CustomerRequest) => &corpus::HANDOFF_ON_REQUEST,
            Some(_) => &corpus::HANDOFF_BY_AGENT,
            None => &corpus::CLOSINGS[rng.random_range(0..corpus::CLOSINGS.len())],
        }),
        Ending::VerificationRequired => Some(&corpus::VERIFICATION_CLOSING),
        Ending::BudgetExceeded => Some(&corpus::BUDGET_CLOSING),
        _ => None,
    };
    if let Some(closing) = closing {
        let turn = make_turn(rng, options, &fill, closing, context_tokens(&turns));
        turns.push(turn);
    }

    if ending == Ending::ToolPending {
        // The chat stops at the last request that called a tool; without one
        // there is nothing to wait on.
        match turns.iter().rposition(|t| t.tool.is_some()) {
            Some(i) => turns.truncate(i + 1),
            None => ending = Ending::Normal,
        }
    }
    let fatal = match ending {
        Ending::RateLimited => Some((Stage::Llm, &RATE_LIMITED)),
        _ => None,
    };
    let unanswered = matches!(
        ending,
        Ending::RateLimited | Ending::Unanswered | Ending::SessionBusy | Ending::ToolPending
    );
    if let (true, Some(last)) = (unanswered, turns.last_mut()) {
        last.unanswered = true;
        last.failure = fatal;
        last.reply_usage.output_tokens = 0;
        if ending != Ending::ToolPending {
            last.tool = None;
            last.tool_usage = None;
        }
    }

    // A barge-in needs a next turn for the user's words, so the last reply is
    // only interrupted by a caller who hangs up; a transient stage failure is
    // kept away from the end so it does not look like what ended the call.
    let count = turns.len();
    for (i, turn) in turns.iter_mut().enumerate() {
        let last = i + 1 == count;
        turn.interrupted = if last {
            ending == Ending::HungUp
        } else {
            rng.random_bool(interrupt_rate)
        };
        if i + 2 < count && rng.random_bool(options.stage_error_rate) {
            let (stage, failure) = match medium {
                Medium::Voice => &STAGE_FAILURES[rng.random_range(0..STAGE_FAILURES.len())],
                Medium::Chat => &STAGE_FAILURES[1],
            };
            turn.failure = Some((*stage, failure));
        }
    }

    let chat_ended = medium == Medium::Chat
        && match ending {
            Ending::RateLimited
            | Ending::SessionBusy
            | Ending::BudgetExceeded
            | Ending::VerificationRequired => true,
            Ending::ToolPending | Ending::Opened => false,
            _ => rng.random_bool(options.chat_end_rate),
        };
    let facts = facts(rng, scenario, &fill, ending, &handoff, &turns, direction);
    ground(rng, options, &mut turns);
    Script {
        medium,
        ending,
        chat_ended,
        priced: rng.random_bool(0.1),
        facts,
        direction,
        connect: rng.random_range(0.6..2.0),
        hangup: rng.random_range(0.3..1.2),
        turns,
        handoff,
    }
}

/// Normal with probability `1 - incident_rate`, else an ending for `medium` by weight.
fn pick_ending(rng: &mut impl Rng, incident_rate: f64, medium: Medium) -> Ending {
    if !rng.random_bool(incident_rate) {
        return Ending::Normal;
    }
    let fitting: Vec<&(Ending, u32, &[Medium])> = ENDINGS
        .iter()
        .filter(|(_, _, media)| media.contains(&medium))
        .collect();
    fitting
        .choose_weighted(rng, |(_, weight, _)| *weight)
        .map_or(Ending::Normal, |(ending, _, _)| *ending)
}

const CAMPAIGNS: &[&str] = &["delivery_followup", "renewal_q4", "appointment_reminders"];

fn facts(
    rng: &mut impl Rng,
    scenario: &Scenario,
    fill: &Fill,
    ending: Ending,
    handoff: &Option<Handoff>,
    turns: &[Turn],
    direction: Direction,
) -> Facts {
    let tool_failed = turns
        .iter()
        .any(|t| t.tool.as_ref().is_some_and(|c| c.failed));
    let went_well = ending == Ending::Normal && handoff.is_none() && !tool_failed;
    let (node, how) = match ending {
        Ending::Normal if handoff.is_some() => ("transfer", "transferred to a human agent"),
        Ending::Normal if tool_failed => ("wrap_up", "a tool failed, follow-up promised"),
        Ending::Normal => ("wrap_up", "resolved"),
        Ending::VerificationRequired => ("verify_identity", "identity check required"),
        Ending::BudgetExceeded => ("wrap_up", "stopped at the conversation limit"),
        Ending::ToolPending => ("lookup", "waiting on a lookup"),
        Ending::NoUserSpeech | Ending::Orphaned => ("greeting", "nobody answered"),
        Ending::Opened => ("greeting", "chat opened, no message yet"),
        Ending::SessionBusy => ("greeting", "session refused, agent busy"),
        Ending::RateLimited => ("collect_details", "agent failed, rate limited"),
        Ending::Unanswered | Ending::HungUp => ("collect_details", "caller left early"),
    };
    let feedback = rng.random_bool(0.3).then(|| {
        let up = if went_well { 0.8 } else { 0.25 };
        if rng.random_bool(up) {
            "up"
        } else {
            "down"
        }
    });
    let sentiment = match (went_well, rng.random_bool(0.6)) {
        (true, true) => "positive",
        (false, true) => "negative",
        _ => "neutral",
    };
    Facts {
        intent: scenario.intent,
        flow: scenario.flow,
        node,
        topic: scenario.topic.trim_start_matches("your "),
        user_id: format!("user-{}", rng.random_range(1000..10_000)),
        contact: format!("+1555{:07}", rng.random_range(0..10_000_000)),
        campaign: (direction == Direction::Outbound).then(|| pick(rng, CAMPAIGNS)),
        feedback,
        sentiment,
        summary: format!("{} for {}: {how}.", scenario.intent, fill.name),
        extracted_data: serde_json::json!({
            "reference": fill.order,
            "name": fill.name,
            "date": fill.date,
        })
        .to_string(),
        outcome: (went_well && rng.random_bool(0.15)).then_some("Success"),
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
        // Some failures are a tool the server no longer has.
        let retired = failed && rng.random_bool(0.25);
        let result = if retired {
            TOOL_NOT_FOUND.to_string()
        } else if failed {
            TOOL_UNAVAILABLE.to_string()
        } else {
            fill.apply(spec.result)
        };
        ToolCall {
            name: spec.name,
            call_id: format!("call_{}", alnum(rng, 24)),
            arguments: fill.apply(spec.arguments),
            result,
            failed,
            retired,
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
        unanswered: false,
        failure: None,
        confidence: rng.random_range(0.82..0.99),
        tool_usage,
        timing: sample_timing(rng),
        grounding: None,
    }
}

/// Plants a weak question in place of a plain middle exchange (with probability
/// `weak_rate`), then grounds every reply: a few articles and a confident answer, except
/// where the reply is a fallback or the question is a planted weak one.
fn ground(rng: &mut impl Rng, options: &PlanOptions, turns: &mut [Turn]) {
    let count = turns.len();
    let plain: Vec<usize> = (1..count.saturating_sub(1))
        .filter(|&i| {
            // Not a misheard line or its repetition, which must stay the same words.
            let misheard = [i - 1, i]
                .iter()
                .any(|&j| turns[j].agent == corpus::FALLBACK_REPLY);
            turns[i].tool.is_none() && !turns[i].unanswered && !misheard
        })
        .collect();
    let mut planted = None;
    if let (Some(&i), true) = (plain.choose(rng), rng.random_bool(options.weak_rate)) {
        let (exchange, weakness) =
            &corpus::WEAK_QUESTIONS[rng.random_range(0..corpus::WEAK_QUESTIONS.len())];
        turns[i].user = exchange.user.to_owned();
        turns[i].agent = exchange.agent.to_owned();
        turns[i].reply_usage.output_tokens = tokens(exchange.agent);
        planted = Some((i, *weakness));
    }
    for (i, turn) in turns.iter_mut().enumerate() {
        if turn.unanswered {
            continue;
        }
        let mut articles: Vec<&'static Article> = corpus::ARTICLES.iter().collect();
        articles.shuffle(rng);
        let mut score = rng.random_range(0.8..0.97);
        let mut documents = Vec::new();
        for article in articles.into_iter().take(rng.random_range(1..=3)) {
            documents.push((article, score));
            score *= rng.random_range(0.75..0.95);
        }
        let weakness = planted.filter(|(at, _)| *at == i).map(|(_, w)| w);
        turn.grounding = Some(match weakness {
            Some(Weakness::LowConfidence) => Grounding {
                documents: documents.into_iter().map(|(a, s)| (a, s * 0.3)).collect(),
                confidence: rng.random_range(0.1..0.3),
                feedback: None,
            },
            Some(Weakness::ThumbsDown) => Grounding {
                documents,
                confidence: rng.random_range(0.7..0.9),
                feedback: Some("down"),
            },
            Some(Weakness::Uncited) => Grounding {
                documents: Vec::new(),
                confidence: rng.random_range(0.6..0.8),
                feedback: None,
            },
            None if turn.agent == corpus::FALLBACK_REPLY => Grounding {
                documents: Vec::new(),
                confidence: rng.random_range(0.2..0.45),
                feedback: None,
            },
            None => Grounding {
                documents,
                confidence: rng.random_range(0.72..0.98),
                feedback: None,
            },
        });
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
            incident_rate: 0.0,
            misheard_rate: 0.0,
            ..PlanOptions::default()
        };
        let mut rng = StdRng::seed_from_u64(2);
        for medium in [Medium::Voice, Medium::Chat] {
            for _ in 0..200 {
                let script = build(&mut rng, &options, medium);
                assert!((2..=4).contains(&script.turns.len()));
                assert!(!script.turns.last().is_some_and(|t| t.interrupted));
                assert!(script.turns.iter().all(|t| !t.unanswered));
            }
        }
    }

    #[test]
    fn every_ending_happens_where_it_fits() {
        let mut rng = StdRng::seed_from_u64(4);
        for medium in [Medium::Voice, Medium::Chat] {
            let mut seen = Vec::new();
            for _ in 0..500 {
                let script = build(&mut rng, &PlanOptions::default(), medium);
                let last = script.turns.last();
                match script.ending {
                    Ending::RateLimited => {
                        let last = last.expect("a turn");
                        assert!(last.unanswered);
                        assert_eq!(last.failure_at(Stage::Llm), Some(&RATE_LIMITED));
                    }
                    Ending::Unanswered | Ending::ToolPending | Ending::SessionBusy
                        if !script.turns.is_empty() =>
                    {
                        assert!(last.expect("a turn").unanswered);
                    }
                    Ending::HungUp => assert!(last.expect("a turn").interrupted),
                    Ending::NoUserSpeech => {
                        assert!(script.turns.iter().all(|t| t.user.is_empty()));
                    }
                    Ending::Orphaned | Ending::SessionBusy | Ending::Opened => {
                        assert!(script.turns.is_empty());
                    }
                    _ => assert!(!last.is_some_and(|t| t.unanswered)),
                }
                // Transient failures never hit the last two turns.
                let n = script.turns.len();
                assert!(script.turns[n.saturating_sub(2)..]
                    .iter()
                    .all(|t| t.failure.is_none() || script.ending == Ending::RateLimited));
                if !seen.contains(&script.ending) {
                    seen.push(script.ending);
                }
            }
            let fitting = ENDINGS
                .iter()
                .filter(|(_, _, media)| media.contains(&medium))
                .count();
            assert_eq!(seen.len(), fitting + 1, "{medium:?}: {seen:?}");
        }
    }

    #[test]
    fn planted_weak_questions_are_answered_as_planted() {
        let options = PlanOptions {
            weak_rate: 1.0,
            misheard_rate: 0.0,
            ..PlanOptions::default()
        };
        let mut rng = StdRng::seed_from_u64(9);
        let mut planted = 0;
        for _ in 0..50 {
            let script = build(&mut rng, &options, Medium::Chat);
            for turn in &script.turns {
                let Some(g) = &turn.grounding else {
                    assert!(turn.unanswered);
                    continue;
                };
                let weakness = corpus::WEAK_QUESTIONS
                    .iter()
                    .find(|(e, _)| e.user == turn.user)
                    .map(|(_, w)| *w);
                match weakness {
                    Some(Weakness::LowConfidence) => assert!(g.confidence < 0.5),
                    Some(Weakness::ThumbsDown) => assert_eq!(g.feedback, Some("down")),
                    Some(Weakness::Uncited) => assert!(g.documents.is_empty()),
                    None => assert!(
                        !g.documents.is_empty() && g.confidence > 0.7 && g.feedback.is_none()
                    ),
                }
                planted += usize::from(weakness.is_some());
            }
        }
        assert!(planted > 30, "{planted}");
    }

    #[test]
    fn misheard_lines_are_repeated_after_a_fallback() {
        let options = PlanOptions {
            misheard_rate: 0.3,
            ..PlanOptions::default()
        };
        let mut rng = StdRng::seed_from_u64(5);
        let mut misheard = 0;
        for _ in 0..100 {
            let script = build(&mut rng, &options, Medium::Voice);
            for pair in script.turns.windows(2) {
                if pair[0].agent == corpus::FALLBACK_REPLY {
                    misheard += 1;
                    assert_eq!(pair[0].user, pair[1].user);
                    assert!(pair[0].confidence < 0.6 && pair[1].confidence > 0.8);
                }
            }
        }
        assert!(misheard > 20);
    }

    #[test]
    fn placeholders_are_filled() {
        let mut rng = StdRng::seed_from_u64(3);
        for i in 0..200 {
            let medium = if i % 2 == 0 {
                Medium::Voice
            } else {
                Medium::Chat
            };
            let script = build(&mut rng, &PlanOptions::default(), medium);
            assert!(!script.facts.summary.contains('{'));
            serde_json::from_str::<serde_json::Value>(&script.facts.extracted_data)
                .expect("extracted data is JSON");
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
