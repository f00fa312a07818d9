//! Owned domain types: validated ids, spans, log records, and the conversation rows derived from them.

#[cfg(test)]
pub(crate) mod allocations;
pub mod conversation;
pub mod ids;
pub mod log;
pub mod otlp;
pub mod otlp_bound;
pub mod otlp_json;
pub mod span;

pub use ids::{IdError, SpanId, TraceId};
pub use log::LogRecord;
pub use span::{Attributes, Span, SpanEvent, SpanKind, SpanLink, StatusCode};
