//! Span plans: every span of a conversation with its times and attributes,
//! built by pure functions so they can be checked without an SDK or a network.

use std::time::Duration;

use opentelemetry::logs::Severity;
use opentelemetry::trace::SpanKind;
use opentelemetry::{KeyValue, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::script::{self, Ending, Failure, Medium, PlanOptions, Script, SESSION_BUSY};
use super::{genai, livekit, pipecat, Shape};

/// One conversation, ready to be emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationPlan {
    pub session_id: String,
    /// The concrete shape (never [`Shape::Mixed`]).
    pub shape: Shape,
    /// Resource attributes, `service.name` included.
    pub resource: Vec<KeyValue>,
    /// Roots of the traces; Pipecat and LiveKit have one, GenAI one per turn.
    pub traces: Vec<PlannedSpan>,
}

/// A span with times relative to the start of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedSpan {
    pub name: String,
    /// Instrumentation scope name of the tracer that emits it.
    pub scope: &'static str,
    pub kind: SpanKind,
    pub start: Duration,
    pub end: Duration,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<PlannedEvent>,
    /// Lines the agent logs while the span runs.
    pub logs: Vec<PlannedLog>,
    /// Status ERROR with this description.
    pub error: Option<String>,
    pub children: Vec<PlannedSpan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    pub name: &'static str,
    pub at: Duration,
    pub attributes: Vec<KeyValue>,
}

/// A debug line written inside its span, at `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLog {
    pub at: Duration,
    pub severity: Severity,
    pub body: String,
}

/// Seconds since the conversation started; negative or non-finite values
/// cannot come out of the layouts, but a plan must never panic on them.
pub(crate) fn at(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

impl PlannedSpan {
    pub(crate) fn new(name: impl Into<String>, scope: &'static str, start: f64, end: f64) -> Self {
        Self {
            name: name.into(),
            scope,
            kind: SpanKind::Internal,
            start: at(start),
            end: at(end.max(start)),
            attributes: Vec::new(),
            events: Vec::new(),
            logs: Vec::new(),
            error: None,
            children: Vec::new(),
        }
    }

    pub(crate) fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn attr(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    pub(crate) fn child(mut self, child: PlannedSpan) -> Self {
        self.children.push(child);
        self
    }

    /// Marks the span failed the way the OTel SDKs record an exception:
    /// status ERROR plus an `exception` event at the end of the span.
    pub(crate) fn failed(mut self, exception_type: &'static str, message: &str) -> Self {
        self.record_exception(exception_type, message);
        self
    }

    fn record_exception(&mut self, exception_type: &'static str, message: &str) {
        self.error = Some(message.to_string());
        self.events.push(PlannedEvent {
            name: "exception",
            at: self.end,
            attributes: vec![
                KeyValue::new("exception.type", exception_type),
                KeyValue::new("exception.message", message.to_string()),
            ],
        });
    }

    /// Marks the span failed with `failure`, if there is one.
    pub(crate) fn fail_with(mut self, failure: Option<&Failure>) -> Self {
        if let Some(failure) = failure {
            self.record_failure(failure);
        }
        self
    }

    pub(crate) fn record_failure(&mut self, failure: &Failure) {
        if let Some(error_type) = failure.error_type {
            self.attributes
                .push(KeyValue::new("error.type", error_type));
        }
        if let Some(status) = failure.http_status {
            self.attributes
                .push(KeyValue::new("http.response.status_code", status));
        }
        self.record_exception(failure.exception, failure.message);
    }

    /// Adds an attribute to this span and all its descendants.
    pub(crate) fn stamp_all(&mut self, kv: &KeyValue) {
        self.attributes.push(kv.clone());
        for child in &mut self.children {
            child.stamp_all(kv);
        }
    }

    #[cfg(test)]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// Visits this span and its descendants, parents first, with each span's parent.
    #[cfg(test)]
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a PlannedSpan, Option<&'a PlannedSpan>)) {
        fn go<'a>(
            span: &'a PlannedSpan,
            parent: Option<&'a PlannedSpan>,
            f: &mut impl FnMut(&'a PlannedSpan, Option<&'a PlannedSpan>),
        ) {
            f(span, parent);
            for child in &span.children {
                go(child, Some(span), f);
            }
        }
        go(self, None, f);
    }

    #[cfg(test)]
    pub fn count(&self) -> u64 {
        1 + self.children.iter().map(PlannedSpan::count).sum::<u64>()
    }
}

impl ConversationPlan {
    #[cfg(test)]
    pub fn span_count(&self) -> u64 {
        self.traces.iter().map(PlannedSpan::count).sum()
    }

    /// From the earliest start to the latest end, so the emitter can anchor
    /// the conversation to end about now.
    pub fn length(&self) -> Duration {
        let start = self
            .traces
            .iter()
            .map(|t| t.start)
            .min()
            .unwrap_or_default();
        let end = self.traces.iter().map(|t| t.end).max().unwrap_or_default();
        end.saturating_sub(start)
    }
}

/// Builds conversation number `seed`'s plan. Same inputs, same plan.
pub fn plan_conversation(
    shape: Shape,
    seed: u64,
    session_id: String,
    options: &PlanOptions,
) -> ConversationPlan {
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = match shape {
        Shape::Mixed => match rng.random_range(0..3) {
            0 => Shape::Pipecat,
            1 => Shape::Livekit,
            _ => Shape::Genai,
        },
        concrete => concrete,
    };
    let medium = match shape {
        Shape::Genai | Shape::Mixed => Medium::Chat,
        Shape::Pipecat | Shape::Livekit => Medium::Voice,
    };
    let script = script::build(&mut rng, options, medium);
    let (resource, mut traces) = match shape {
        Shape::Pipecat => pipecat::build(&script, &session_id),
        Shape::Livekit => livekit::build(&mut rng, &script, &session_id),
        Shape::Genai | Shape::Mixed => genai::build(&script, &session_id),
    };
    // Voice states session facts on the conversation span; chat on the last
    // request, the latest word on the session.
    let carrier = match medium {
        Medium::Voice => traces.first_mut(),
        Medium::Chat => traces.last_mut(),
    };
    if let Some(span) = carrier {
        state_session_facts(span, &script, &session_id);
    }
    let mut resource_attrs = vec![KeyValue::new("deployment.environment.name", "demo")];
    resource_attrs.extend(resource);
    ConversationPlan {
        session_id,
        shape,
        resource: resource_attrs,
        traces,
    }
}

/// The `convolog.*` facts an application states about the whole session.
fn state_session_facts(span: &mut PlannedSpan, script: &Script, session_id: &str) {
    let facts = &script.facts;
    let mut attrs = vec![
        KeyValue::new("convolog.intent", facts.intent),
        KeyValue::new("convolog.flow", facts.flow),
        KeyValue::new("convolog.node", facts.node),
        KeyValue::new("convolog.topic", facts.topic),
        KeyValue::new("convolog.user.id", facts.user_id.clone()),
        KeyValue::new("convolog.sentiment", facts.sentiment),
        KeyValue::new("convolog.summary", facts.summary.clone()),
        KeyValue::new("convolog.extracted_data", facts.extracted_data.clone()),
    ];
    if let Some(campaign) = facts.campaign {
        attrs.push(KeyValue::new("convolog.campaign", campaign));
    }
    if let Some(outcome) = facts.outcome {
        attrs.push(KeyValue::new("convolog.outcome", outcome));
    }
    match script.medium {
        Medium::Voice => {
            let (status, reason) = script.call_result();
            attrs.extend([
                KeyValue::new("convolog.contact", facts.contact.clone()),
                KeyValue::new("convolog.call.status", status),
                KeyValue::new("convolog.call.ended_reason", reason),
                KeyValue::new(
                    "convolog.recording_url",
                    format!("https://recordings.example.com/{session_id}.wav"),
                ),
            ]);
        }
        Medium::Chat if script.chat_ended => {
            attrs.push(KeyValue::new("convolog.session.ended", true));
        }
        Medium::Chat => {}
    }
    match script.ending {
        Ending::BudgetExceeded => attrs.push(KeyValue::new("convolog.budget.exceeded", true)),
        Ending::VerificationRequired => {
            attrs.push(KeyValue::new("convolog.verification.required", true));
        }
        _ => {}
    }
    span.attributes.extend(attrs);
    if let Some(feedback) = facts.feedback {
        // Feedback arrives after the fact, as an event on the session span.
        span.events.push(PlannedEvent {
            name: "convolog.feedback",
            at: span.end,
            attributes: vec![KeyValue::new("convolog.feedback", feedback)],
        });
    }
    if script.ending == Ending::SessionBusy {
        span.record_failure(&SESSION_BUSY);
    }
}

/// Spreads conversation indexes over the seed space so neighbouring
/// conversations do not get correlated RNG streams (splitmix64 finaliser).
pub fn conversation_seed(run_seed: u64, index: u64) -> u64 {
    let mut z = run_seed.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
