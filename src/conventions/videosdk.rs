//! VideoSDK agents: human-readable span names (`Agent Session: ...`, `Turn #N`,
//! `...: LLM Processing`); `llm_ttft` is in MILLISECONDS, unlike everyone else.

use super::{millis, Role, SpanFacts};
use crate::model::Span;

pub fn recognises(span: &Span) -> bool {
    role(&span.name).is_some()
}

fn role(name: &str) -> Option<Role> {
    Some(if name.starts_with("Agent Session") {
        Role::Conversation
    } else if name.starts_with("Turn #") {
        Role::Turn
    } else if name == "Turn Interrupted" {
        Role::Interruption
    } else if name.ends_with("Speech to Text Processing") {
        Role::Stt
    } else if name.ends_with("LLM Processing") {
        Role::Llm
    } else if name == "Time to First Token" {
        Role::FirstToken
    } else if name.ends_with("Text to Speech Processing") {
        Role::Tts
    } else {
        return None;
    })
}

pub fn read(span: &Span, facts: &mut SpanFacts) {
    facts.role = role(&span.name).unwrap_or_default();
    facts.llm_ttft = millis(span, "llm_ttft");
    if facts.role == Role::Interruption {
        facts.interrupted = Some("Turn Interrupted");
    }
}
