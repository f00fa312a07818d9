//! convolog's own small convention, for facts no framework names. All optional; any span
//! (or the resource, for the session-wide ones) may carry them. Documented in the README.

use super::{text, Role, SpanFacts};
use crate::model::Span;

pub const SESSION_ID: &str = "convolog.session.id";
pub const CHANNEL: &str = "convolog.channel";
pub const DIRECTION: &str = "convolog.direction";
pub const HANDOFF_TARGET: &str = "convolog.handoff.target";
pub const SPEAKER: &str = "convolog.message.speaker";
pub const MESSAGE_TEXT: &str = "convolog.message.text";
pub const SPOKEN_TEXT: &str = "convolog.spoken_text";

/// Every key of the convention, for the documentation test.
pub const KEYS: &[&str] = &[
    SESSION_ID,
    CHANNEL,
    DIRECTION,
    HANDOFF_TARGET,
    SPEAKER,
    MESSAGE_TEXT,
    SPOKEN_TEXT,
];

pub fn read(span: &Span, facts: &mut SpanFacts) {
    let from_span_or_resource = |key: &str| {
        span.attributes
            .first_of(&[key])
            .or_else(|| span.resource.first_of(&[key]))
            .map(str::to_owned)
    };
    facts.channel = from_span_or_resource(CHANNEL);
    facts.direction = from_span_or_resource(DIRECTION);
    if let Some(target) = text(span, &[HANDOFF_TARGET]) {
        facts.handoff_target = Some(target);
        if facts.role == Role::Other {
            facts.role = Role::Handoff;
        }
    }
    if let Some(spoken) = text(span, &[SPOKEN_TEXT]) {
        facts.spoken_text = Some(spoken);
    }
    if let (Some(speaker), Some(message)) = (text(span, &[SPEAKER]), text(span, &[MESSAGE_TEXT])) {
        facts.message = Some((speaker, message));
    }
}
