//! Hand-built spans for unit tests of conventions and sessionization.

use std::sync::Arc;

use crate::model::{Attributes, Span, SpanId, SpanKind, StatusCode, TraceId};

pub const T0: u64 = 1_700_000_000_000_000_000;
pub const MS: u64 = 1_000_000;

pub struct SpanBuilder(Span);

pub fn span(name: &str) -> SpanBuilder {
    SpanBuilder(Span {
        trace_id: TraceId::from([1; 16]),
        span_id: SpanId::from([1; 8]),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 0,
        name: name.to_owned(),
        kind: SpanKind::Internal,
        start_unix_nano: T0,
        end_unix_nano: T0 + MS,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        attributes: Attributes::default(),
        resource: Default::default(),
        scope_name: "".into(),
        scope_version: "".into(),
        events: Vec::new(),
        links: Vec::new(),
        dropped_attributes_count: 0,
        dropped_events_count: 0,
        dropped_links_count: 0,
    })
}

impl SpanBuilder {
    pub fn attr(mut self, key: &str, value: &str) -> Self {
        self.0.attributes.0.push((key.to_owned(), value.to_owned()));
        self
    }
    pub fn resource(mut self, key: &str, value: &str) -> Self {
        Arc::make_mut(&mut self.0.resource)
            .0
            .push((key.to_owned(), value.to_owned()));
        self
    }
    pub fn scope(mut self, name: &str) -> Self {
        self.0.scope_name = name.into();
        self
    }
    pub fn trace(mut self, n: u8) -> Self {
        self.0.trace_id = TraceId::from([n; 16]);
        self
    }
    /// Span ids are small numbers in tests; 0 is not a valid id, so ids start at 1.
    pub fn id(mut self, n: u8) -> Self {
        self.0.span_id = SpanId::from([0, 0, 0, 0, 0, 0, 0, n]);
        self
    }
    pub fn parent(mut self, n: u8) -> Self {
        self.0.parent_span_id = Some(SpanId::from([0, 0, 0, 0, 0, 0, 0, n]));
        self
    }
    /// Start and end in milliseconds after T0.
    pub fn at(mut self, start_ms: u64, end_ms: u64) -> Self {
        self.0.start_unix_nano = T0 + start_ms * MS;
        self.0.end_unix_nano = T0 + end_ms * MS;
        self
    }
    pub fn error(mut self, message: &str) -> Self {
        self.0.status_code = StatusCode::Error;
        self.0.status_message = message.to_owned();
        self
    }
    pub fn build(self) -> Span {
        self.0
    }
}
