//! Owned domain types: validated ids, spans, and the conversation rows derived from them.

pub mod conversation;
pub mod ids;
pub mod otlp;
pub mod otlp_json;
pub mod span;

pub use ids::{IdError, SpanId, TraceId};
pub use span::{Attributes, Span, SpanEvent, SpanKind, SpanLink, StatusCode};
