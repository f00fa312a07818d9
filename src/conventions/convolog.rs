//! convolog's own small convention, for facts no framework names. All optional. Any span may
//! carry them, as attributes or as attributes of a span event (so feedback can be recorded
//! after the fact with `span.add_event`); session-wide ones may also sit on the resource.
//! Every key is documented in the README.

use super::{indexed_documents, text, DocumentField, Grounding, GroundingStage, Role, SpanFacts};
use crate::model::Span;

pub const SESSION_ID: &str = "convolog.session.id";
pub const CHANNEL: &str = "convolog.channel";
pub const DIRECTION: &str = "convolog.direction";
pub const HANDOFF_TARGET: &str = "convolog.handoff.target";
pub const SPEAKER: &str = "convolog.message.speaker";
pub const MESSAGE_TEXT: &str = "convolog.message.text";
pub const SPOKEN_TEXT: &str = "convolog.spoken_text";
pub const OUTCOME: &str = "convolog.outcome";
pub const CALL_STATUS: &str = "convolog.call.status";
pub const ENDED_REASON: &str = "convolog.call.ended_reason";
pub const SESSION_ENDED: &str = "convolog.session.ended";
pub const INTENT: &str = "convolog.intent";
pub const FLOW: &str = "convolog.flow";
pub const NODE: &str = "convolog.node";
pub const CAMPAIGN: &str = "convolog.campaign";
pub const CONTACT: &str = "convolog.contact";
pub const USER_ID: &str = "convolog.user.id";
pub const FEEDBACK: &str = "convolog.feedback";
pub const CONFIDENCE: &str = "convolog.confidence";
pub const SENTIMENT: &str = "convolog.sentiment";
pub const TOPIC: &str = "convolog.topic";
pub const SUMMARY: &str = "convolog.summary";
pub const EXTRACTED_DATA: &str = "convolog.extracted_data";
pub const RECORDING_URL: &str = "convolog.recording_url";
pub const COST_USD: &str = "convolog.cost.usd";
pub const TRANSCRIPT_CONFIDENCE: &str = "convolog.transcript.confidence";
pub const FALLBACK: &str = "convolog.fallback";
pub const BUDGET_EXCEEDED: &str = "convolog.budget.exceeded";
pub const VERIFICATION_REQUIRED: &str = "convolog.verification.required";
/// `convolog.citations.<N>.id|title|url|score|content`: the documents an answer cites.
pub const CITATIONS: &str = "convolog.citations.";
pub const ANSWER_CONFIDENCE: &str = "convolog.answer.confidence";

/// Every key of the convention, for the documentation test.
#[cfg(test)]
pub const KEYS: &[&str] = &[
    SESSION_ID,
    CHANNEL,
    DIRECTION,
    HANDOFF_TARGET,
    SPEAKER,
    MESSAGE_TEXT,
    SPOKEN_TEXT,
    OUTCOME,
    CALL_STATUS,
    ENDED_REASON,
    SESSION_ENDED,
    INTENT,
    FLOW,
    NODE,
    CAMPAIGN,
    CONTACT,
    USER_ID,
    FEEDBACK,
    CONFIDENCE,
    SENTIMENT,
    TOPIC,
    SUMMARY,
    EXTRACTED_DATA,
    RECORDING_URL,
    COST_USD,
    TRANSCRIPT_CONFIDENCE,
    FALLBACK,
    BUDGET_EXCEEDED,
    VERIFICATION_REQUIRED,
    "convolog.citations.<N>.id",
    "convolog.citations.<N>.title",
    "convolog.citations.<N>.url",
    "convolog.citations.<N>.score",
    "convolog.citations.<N>.content",
    ANSWER_CONFIDENCE,
];

pub fn read(span: &Span, facts: &mut SpanFacts) {
    // Most spans carry none of these keys: one look over their keys, not a lookup per key.
    if !has_convention_keys(span) {
        return;
    }
    // Span attributes first, then the latest event that has the key, then the resource.
    let lookup = |key: &str| -> Option<String> {
        span.attributes
            .first_of(&[key])
            .or_else(|| {
                span.events
                    .iter()
                    .rev()
                    .find_map(|e| e.attributes.first_of(&[key]))
            })
            .or_else(|| span.resource.first_of(&[key]))
            .map(str::to_owned)
    };
    let flag = |key: &str| {
        lookup(key).is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1"))
    };
    let number = |key: &str| {
        lookup(key)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };

    if let Some(channel) = lookup(CHANNEL) {
        facts.channel = Some(channel);
    }
    if let Some(direction) = lookup(DIRECTION) {
        facts.direction = Some(direction);
    }
    if let Some(target) = text(span, &[HANDOFF_TARGET]) {
        facts.handoff_target = Some(target);
        if facts.role == super::Role::Other {
            facts.role = Role::Handoff;
        }
    }
    if let Some(spoken) = text(span, &[SPOKEN_TEXT]) {
        facts.spoken_text = Some(spoken);
    }
    if let (Some(speaker), Some(message)) = (text(span, &[SPEAKER]), text(span, &[MESSAGE_TEXT])) {
        facts.message = Some((speaker, message));
    }
    if let Some(cost) = number(COST_USD).filter(|c| *c >= 0.0) {
        facts.cost_usd = Some(cost);
    }
    if let Some(confidence) = number(TRANSCRIPT_CONFIDENCE) {
        facts.transcript_confidence = Some(confidence);
    }
    facts.fallback |= flag(FALLBACK);
    // About this answer only: never from the resource.
    if let Some(confidence) = span
        .attributes
        .f64(ANSWER_CONFIDENCE)
        .or_else(|| {
            span.events
                .iter()
                .rev()
                .find_map(|e| e.attributes.f64(ANSWER_CONFIDENCE))
        })
        .filter(|c| c.is_finite())
    {
        facts.answer_confidence = Some(confidence);
    }
    let cited = indexed_documents(span, CITATIONS, |field| match field {
        "id" => Some(DocumentField::Id),
        "title" => Some(DocumentField::Title),
        "url" => Some(DocumentField::Url),
        "score" => Some(DocumentField::Score),
        "content" => Some(DocumentField::Content),
        _ => None,
    });
    if !cited.is_empty() {
        facts.grounding = Some(Grounding {
            stage: GroundingStage::Cited,
            documents: cited,
        });
    }

    let session = &mut facts.session;
    let set = |slot: &mut Option<String>, key: &str| {
        if let Some(value) = lookup(key) {
            *slot = Some(value);
        }
    };
    set(&mut session.outcome, OUTCOME);
    set(&mut session.call_status, CALL_STATUS);
    set(&mut session.ended_reason, ENDED_REASON);
    set(&mut session.intent, INTENT);
    set(&mut session.flow, FLOW);
    set(&mut session.node, NODE);
    set(&mut session.campaign, CAMPAIGN);
    set(&mut session.contact, CONTACT);
    set(&mut session.user_id, USER_ID);
    set(&mut session.feedback, FEEDBACK);
    set(&mut session.sentiment, SENTIMENT);
    set(&mut session.topic, TOPIC);
    set(&mut session.summary, SUMMARY);
    set(&mut session.extracted_data, EXTRACTED_DATA);
    set(&mut session.recording_url, RECORDING_URL);
    if let Some(confidence) = number(CONFIDENCE) {
        session.confidence = Some(confidence);
    }
    session.ended |= flag(SESSION_ENDED);
    session.budget_exceeded |= flag(BUDGET_EXCEEDED);
    session.verification_required |= flag(VERIFICATION_REQUIRED);
}

/// The prefix of every key of the convention.
const PREFIX: &str = "convolog.";

/// Whether any attribute the convention reads (the span's, its events', its resource's) is one
/// of its keys.
fn has_convention_keys(span: &Span) -> bool {
    span.attributes.has_key_starting(PREFIX)
        || span
            .events
            .iter()
            .any(|e| e.attributes.has_key_starting(PREFIX))
        || span.resource.has_key_starting(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::span;
    use super::super::{read, GroundingStage};
    use super::{CITATIONS, KEYS, PREFIX};
    use crate::model::SpanEvent;

    #[test]
    fn every_key_has_the_prefix_looked_for_first() {
        for key in KEYS.iter().chain([&CITATIONS]) {
            assert!(key.starts_with(PREFIX), "{key}");
        }
    }

    #[test]
    fn keys_are_read_from_the_span_its_events_and_its_resource() {
        let on_span = span("turn").attr("convolog.intent", "billing").build();
        let mut on_event = span("turn").build();
        on_event.events.push(SpanEvent {
            time_unix_nano: 1,
            name: "feedback".into(),
            attributes: [("convolog.feedback", "thumbs_up")].into_iter().collect(),
        });
        let on_resource = span("turn").resource("convolog.campaign", "spring").build();
        assert_eq!(read(&on_span).session.intent.as_deref(), Some("billing"));
        assert_eq!(
            read(&on_event).session.feedback.as_deref(),
            Some("thumbs_up")
        );
        assert_eq!(
            read(&on_resource).session.campaign.as_deref(),
            Some("spring")
        );
        let without = read(&span("turn").attr("session.id", "s-1").build());
        assert_eq!(without.session.intent, None);
    }

    #[test]
    fn citations_and_answer_confidence() {
        let reply = span("llm")
            .attr("gen_ai.operation.name", "chat")
            .attr("convolog.citations.0.id", "kb-1")
            .attr("convolog.citations.0.title", "Opening hours")
            .attr("convolog.citations.0.url", "https://kb.example/hours")
            .attr("convolog.citations.0.score", "0.8")
            .attr("convolog.answer.confidence", "0.35")
            .resource("convolog.answer.confidence", "0.99")
            .build();
        let facts = read(&reply);
        assert_eq!(facts.answer_confidence, Some(0.35));
        let grounding = facts.grounding.expect("citations");
        assert_eq!(grounding.stage, GroundingStage::Cited);
        assert_eq!(grounding.documents[0].title, "Opening hours");
        assert_eq!(grounding.documents[0].score, Some(0.8));

        // A confidence on the resource speaks for no answer in particular.
        let plain = span("llm")
            .resource("convolog.answer.confidence", "0.99")
            .build();
        assert_eq!(read(&plain).answer_confidence, None);
    }
}
