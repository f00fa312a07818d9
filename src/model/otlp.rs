//! OTLP trace export requests as they arrive on the wire, and their conversion into [`Span`]s.
//!
//! The messages mirror `opentelemetry.proto.collector.trace.v1` field for field, with one
//! deliberate difference: string fields are decoded as raw bytes. A strict decoder fails the
//! whole request on one invalid UTF-8 string; this one repairs the string (U+FFFD) and keeps
//! every other span of the request.

use std::sync::Arc;

use super::ids::{IdError, SpanId, TraceId};
use super::span::{self, Attributes, Span, SpanEvent, SpanKind, SpanLink, StatusCode};

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<WireSpan>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    #[prost(bytes = "vec", tag = "1")]
    pub name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub version: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub trace_state: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub parent_span_id: Vec<u8>,
    #[prost(fixed32, tag = "16")]
    pub flags: u32,
    #[prost(bytes = "vec", tag = "5")]
    pub name: Vec<u8>,
    #[prost(int32, tag = "6")]
    pub kind: i32,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "10")]
    pub dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<WireEvent>,
    #[prost(uint32, tag = "12")]
    pub dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    pub links: Vec<WireLink>,
    #[prost(uint32, tag = "14")]
    pub dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    pub status: Option<WireStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireEvent {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub name: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireLink {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireStatus {
    #[prost(bytes = "vec", tag = "2")]
    pub message: Vec<u8>,
    #[prost(int32, tag = "3")]
    pub code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<any_value::Value>,
}

pub mod any_value {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(bytes, tag = "1")]
        StringValue(Vec<u8>),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
        #[prost(message, tag = "5")]
        ArrayValue(super::ArrayValue),
        #[prost(message, tag = "6")]
        KvlistValue(super::KeyValueList),
        #[prost(bytes, tag = "7")]
        BytesValue(Vec<u8>),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<KeyValue>,
}

/// Hard limits applied to every span; what is over them is cut and reported, never fatal.
#[derive(Debug, Clone)]
pub struct SpanLimits {
    pub max_attribute_value_bytes: usize,
    /// The values of `context_keys`: LLM contexts, which repeat the whole conversation and
    /// are only readable whole.
    pub max_context_value_bytes: usize,
    pub context_keys: &'static [&'static str],
    /// Span, event and scope names, scope versions, attribute keys and trace states.
    pub max_name_bytes: usize,
    pub max_status_message_bytes: usize,
    /// Per span, per event and per link.
    pub max_attributes: usize,
    pub max_events: usize,
    /// The resource is written with every span of its request: its attributes are held to
    /// fewer, and to a total of keys and values.
    pub max_resource_attributes: usize,
    pub max_resource_bytes: usize,
    /// Timestamps outside [min_unix_nano, now + max_future_nanos] are rejected: they would
    /// land in absurd partitions and break every time window.
    pub min_unix_nano: u64,
    pub max_future_nanos: u64,
    /// The spans of one request start within this span of time of its latest one: ClickHouse
    /// refuses an insert that touches over 100 daily partitions of `spans`, and 99 days touch
    /// at most 100 calendar days in any time zone.
    pub max_request_range_nanos: u64,
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            max_attribute_value_bytes: 64 * 1024,
            max_context_value_bytes: 64 * 1024,
            context_keys: &[],
            max_name_bytes: 1024,
            max_status_message_bytes: 8 * 1024,
            max_attributes: 1024,
            max_events: 1024,
            max_resource_attributes: 128,
            max_resource_bytes: 16 * 1024,
            // 2000-01-01T00:00:00Z
            min_unix_nano: 946_684_800_000_000_000,
            max_future_nanos: 24 * 3600 * 1_000_000_000,
            max_request_range_nanos: 99 * 24 * 3600 * 1_000_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpanRejection {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("start_time_unix_nano {0} is outside the accepted range (year 2000 to one day ahead)")]
    StartOutOfRange(u64),
    #[error("start_time_unix_nano {0} is more than 99 days before the latest span of the request; send spans this far apart in separate requests")]
    OutsideRequestRange(u64),
}

/// What a request turned into: the spans to store, and for the client, what was rejected
/// or repaired (sent back in `partial_success`).
#[derive(Debug, Default)]
pub struct Converted {
    pub spans: Vec<Span>,
    /// What the spans take in memory, each shared resource and scope counted once.
    pub memory_bytes: usize,
    pub rejected: Vec<String>,
    pub repaired: Vec<String>,
}

impl Converted {
    /// The `partial_success.error_message` text: rejections first, then repairs (a
    /// non-empty message with zero rejected spans is an OTLP warning).
    pub fn message(&self) -> String {
        partial_message("span(s)", &self.rejected, &self.repaired)
    }
}

/// The `partial_success.error_message` text of any signal: rejections first, then repairs,
/// each list cut to its first few.
pub(crate) fn partial_message(noun: &str, rejected: &[String], repaired: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = Vec::new();
    for (label, list) in [("rejected", rejected), ("repaired", repaired)] {
        if list.is_empty() {
            continue;
        }
        let mut text = format!(
            "{} {noun} {label}: {}",
            list.len(),
            list.iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        if list.len() > SHOWN {
            text.push_str(&format!("; and {} more", list.len() - SHOWN));
        }
        parts.push(text);
    }
    parts.join(". ")
}

pub fn convert(
    request: ExportTraceServiceRequest,
    limits: &SpanLimits,
    now_unix_nano: u64,
) -> Converted {
    let mut out = Converted::default();
    let count = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    out.spans.reserve_exact(count);
    let mut shared_bytes = 0;
    for resource_spans in request.resource_spans {
        let mut resource_notes = Vec::new();
        let resource = Arc::new(resource(
            resource_spans.resource,
            limits,
            &mut resource_notes,
        ));
        for scope_spans in resource_spans.scope_spans {
            let mut notes = resource_notes.clone();
            let (scope_name, scope_version) = scope(scope_spans.scope, limits, &mut notes);
            // The resource counts with each scope: the Arc header of the resource twice at most.
            shared_bytes += span::shared_bytes(&resource, &scope_name, &scope_version);
            let shared = Shared {
                resource: Arc::clone(&resource),
                scope_name,
                scope_version,
            };
            // Every span of the scope repeats these notes: keep them few.
            let notes = summary(notes);
            for wire in scope_spans.spans {
                let identity = match Identity::of(&wire, limits, now_unix_nano) {
                    Ok(identity) => identity,
                    Err(why) => {
                        let name = String::from_utf8_lossy(&wire.name);
                        out.rejected.push(format!("'{}': {why}", shown(&name)));
                        continue;
                    }
                };
                let mut span_notes = notes.clone();
                let span = span(
                    wire,
                    identity,
                    &shared,
                    limits,
                    now_unix_nano,
                    &mut span_notes,
                );
                if !span_notes.is_empty() {
                    out.repaired.push(format!(
                        "'{}' {}: {}",
                        shown(&span.name),
                        span.span_id,
                        span_notes.join(", ")
                    ));
                }
                out.spans.push(span);
            }
        }
    }
    if let Some(latest) = out.spans.iter().map(|s| s.start_unix_nano).max() {
        let earliest = latest.saturating_sub(limits.max_request_range_nanos);
        out.spans.retain(|s| {
            let inside = s.start_unix_nano >= earliest;
            if !inside {
                let why = SpanRejection::OutsideRequestRange(s.start_unix_nano);
                out.rejected.push(format!("'{}': {why}", shown(&s.name)));
            }
            inside
        });
    }
    out.memory_bytes = shared_bytes
        + span::heap_bytes(out.spans.capacity() * std::mem::size_of::<Span>())
        + out.spans.iter().map(Span::heap_bytes).sum::<usize>();
    out
}

/// What the spans of one scope share, each holding a reference.
struct Shared {
    resource: Arc<Attributes>,
    scope_name: Arc<str>,
    scope_version: Arc<str>,
}

/// What makes a span itself, checked before anything else of it is converted: a span
/// without valid ids or with an absurd start is rejected.
struct Identity {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    start_unix_nano: u64,
}

impl Identity {
    fn of(wire: &WireSpan, limits: &SpanLimits, now_unix_nano: u64) -> Result<Self, SpanRejection> {
        let trace_id = TraceId::try_from(wire.trace_id.as_slice())?;
        let span_id = SpanId::try_from(wire.span_id.as_slice())?;
        let parent_span_id = if wire.parent_span_id.is_empty() {
            None
        } else {
            Some(
                SpanId::try_from(wire.parent_span_id.as_slice()).map_err(|e| match e {
                    IdError::WrongLength { len, expected, .. } => IdError::WrongLength {
                        what: "parent_span_id",
                        len,
                        expected,
                    },
                    IdError::AllZero { .. } => IdError::AllZero {
                        what: "parent_span_id",
                    },
                    other => other,
                })?,
            )
        };
        let start = wire.start_time_unix_nano;
        if start < limits.min_unix_nano || start > latest_accepted(limits, now_unix_nano) {
            return Err(SpanRejection::StartOutOfRange(start));
        }
        Ok(Identity {
            trace_id,
            span_id,
            parent_span_id,
            start_unix_nano: start,
        })
    }
}

/// The latest time a span may start or end at.
fn latest_accepted(limits: &SpanLimits, now_unix_nano: u64) -> u64 {
    now_unix_nano.saturating_add(limits.max_future_nanos)
}

/// A span of valid identity; what is over the limits is cut and noted.
fn span(
    wire: WireSpan,
    identity: Identity,
    shared: &Shared,
    limits: &SpanLimits,
    now_unix_nano: u64,
    notes: &mut Vec<String>,
) -> Span {
    let Identity {
        trace_id,
        span_id,
        parent_span_id,
        start_unix_nano: start,
    } = identity;
    let latest = latest_accepted(limits, now_unix_nano);
    let mut end = wire.end_time_unix_nano;
    if end < start {
        notes.push("end before start, end set to start".into());
        end = start;
    } else if end > latest {
        notes.push("end too far in the future, end set to start".into());
        end = start;
    }

    let (attrs, dropped_attributes_count) = limited_attributes(
        wire.attributes,
        "attributes",
        wire.dropped_attributes_count,
        limits,
        notes,
    );
    let dropped_events_count = over_limit(
        "events",
        wire.events.len(),
        limits.max_events,
        wire.dropped_events_count,
        notes,
    );
    let events = wire
        .events
        .into_iter()
        .take(limits.max_events)
        .map(|e| SpanEvent {
            time_unix_nano: e.time_unix_nano,
            name: bounded(e.name, limits.max_name_bytes, "event name", notes),
            attributes: limited_attributes(e.attributes, "event attributes", 0, limits, notes).0,
        })
        .collect();
    let mut links = Vec::new();
    for link in wire.links {
        match (
            TraceId::try_from(link.trace_id.as_slice()),
            SpanId::try_from(link.span_id.as_slice()),
        ) {
            (Ok(trace_id), Ok(span_id)) => links.push(SpanLink {
                trace_id,
                span_id,
                attributes: limited_attributes(
                    link.attributes,
                    "link attributes",
                    0,
                    limits,
                    notes,
                )
                .0,
            }),
            _ => notes.push("link with an invalid id dropped".into()),
        }
    }
    let status = wire.status.unwrap_or_default();
    Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: bounded(
            wire.trace_state,
            limits.max_name_bytes,
            "trace_state",
            notes,
        ),
        flags: wire.flags,
        name: bounded(wire.name, limits.max_name_bytes, "name", notes),
        kind: SpanKind::from_otlp(wire.kind),
        start_unix_nano: start,
        end_unix_nano: end,
        status_code: StatusCode::from_otlp(status.code),
        status_message: bounded(
            status.message,
            limits.max_status_message_bytes,
            "status message",
            notes,
        ),
        attributes: attrs,
        resource: Arc::clone(&shared.resource),
        scope_name: Arc::clone(&shared.scope_name),
        scope_version: Arc::clone(&shared.scope_version),
        events,
        links,
        dropped_attributes_count,
        dropped_events_count,
        dropped_links_count: wire.dropped_links_count,
    }
}

/// A request's resource attributes, each cut like any attribute, held to
/// `max_resource_attributes` and then to `max_resource_bytes` of keys and values.
pub(crate) fn resource(
    resource: Option<Resource>,
    limits: &SpanLimits,
    notes: &mut Vec<String>,
) -> Attributes {
    let Some(resource) = resource else {
        return Attributes::default();
    };
    let list = resource.attributes;
    let max = limits.max_resource_attributes;
    over_limit("resource attributes", list.len(), max, 0, notes);
    let mut kept = attributes(list.into_iter().take(max), limits, notes);
    let mut total = 0usize;
    let within = kept
        .0
        .iter()
        .take_while(|(key, value)| {
            total += key.len() + value.len();
            total <= limits.max_resource_bytes
        })
        .count();
    if within < kept.0.len() {
        notes.push(format!(
            "{} resource attributes past the limit of {} bytes dropped",
            kept.0.len() - within,
            limits.max_resource_bytes
        ));
        kept.0.truncate(within);
        kept.0.shrink_to_fit();
    }
    kept
}

/// An instrumentation scope's name and version, cut to the name limit.
pub(crate) fn scope(
    scope: Option<InstrumentationScope>,
    limits: &SpanLimits,
    notes: &mut Vec<String>,
) -> (Arc<str>, Arc<str>) {
    scope
        .map(|s| {
            let name = bounded(s.name, limits.max_name_bytes, "scope name", notes);
            let version = bounded(s.version, limits.max_name_bytes, "scope version", notes);
            (name.into(), version.into())
        })
        .unwrap_or_else(|| ("".into(), "".into()))
}

/// The dropped count after cutting `len` items to `limit`, noting the cut for the client.
pub(crate) fn over_limit(
    what: &str,
    len: usize,
    limit: usize,
    dropped: u32,
    notes: &mut Vec<String>,
) -> u32 {
    if len <= limit {
        return dropped;
    }
    notes.push(format!(
        "{} {what} over the limit of {limit} dropped",
        len - limit
    ));
    dropped.saturating_add(u32::try_from(len - limit).unwrap_or(u32::MAX))
}

/// At most `max_attributes` of `list` (a span's, a resource's, an event's or a link's), with
/// the dropped count after the cut (see [`over_limit`]).
pub(crate) fn limited_attributes(
    list: Vec<KeyValue>,
    what: &str,
    dropped: u32,
    limits: &SpanLimits,
    notes: &mut Vec<String>,
) -> (Attributes, u32) {
    let dropped = over_limit(what, list.len(), limits.max_attributes, dropped, notes);
    let kept = list.into_iter().take(limits.max_attributes);
    (attributes(kept, limits, notes), dropped)
}

fn attributes(
    list: impl Iterator<Item = KeyValue>,
    limits: &SpanLimits,
    notes: &mut Vec<String>,
) -> Attributes {
    Attributes(
        list.map(|kv| {
            let key = bounded(kv.key, limits.max_name_bytes, "attribute key", notes);
            let mut value = kv.value.map(|v| render(v, notes)).unwrap_or_default();
            let limit = if limits.context_keys.contains(&key.as_str()) {
                limits.max_context_value_bytes
            } else {
                limits.max_attribute_value_bytes
            };
            // The note's text only for a value that is cut.
            if value.len() > limit {
                let what = format!("attribute '{}'", shown(&key));
                cut(&mut value, limit, &what, notes);
            }
            (key, value)
        })
        .collect(),
    )
}

/// Wire text cut to `limit` bytes (see [`cut`]).
pub(crate) fn bounded(bytes: Vec<u8>, limit: usize, what: &str, notes: &mut Vec<String>) -> String {
    let mut value = text(bytes, notes);
    cut(&mut value, limit, what, notes);
    value
}

/// Cuts `value` to `limit` bytes on a character boundary, noting the cut for the client.
pub(crate) fn cut(value: &mut String, limit: usize, what: &str, notes: &mut Vec<String>) {
    if value.len() <= limit {
        return;
    }
    notes.push(format!("{what} truncated from {} bytes", value.len()));
    let mut at = limit;
    while !value.is_char_boundary(at) {
        at -= 1;
    }
    value.truncate(at);
}

/// The start of a name, to quote in a note without copying all of it.
pub(crate) fn shown(name: &str) -> String {
    const SHOWN_CHARS: usize = 64;
    match name.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}...", &name[..at]),
        None => name.to_owned(),
    }
}

/// Notes repeated on every span of a scope: each once, and at most a few.
pub(crate) fn summary(notes: Vec<String>) -> Vec<String> {
    const KEPT: usize = 5;
    let mut distinct: Vec<String> = Vec::new();
    for note in notes {
        if !distinct.contains(&note) {
            distinct.push(note);
        }
    }
    if distinct.len() > KEPT {
        let more = distinct.len() - KEPT;
        distinct.truncate(KEPT);
        distinct.push(format!("{more} more problem(s) with the resource or scope"));
    }
    distinct
}

fn text(bytes: Vec<u8>, notes: &mut Vec<String>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            notes.push("invalid UTF-8 replaced".into());
            String::from_utf8_lossy(err.as_bytes()).into_owned()
        }
    }
}

pub(crate) fn render(value: AnyValue, notes: &mut Vec<String>) -> String {
    use any_value::Value;
    match value.value {
        None => String::new(),
        Some(Value::StringValue(bytes)) => text(bytes, notes),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(other) => json(Some(other), notes).to_string(),
    }
}

fn json(value: Option<any_value::Value>, notes: &mut Vec<String>) -> serde_json::Value {
    use any_value::Value;
    use serde_json::Value as J;
    match value {
        None => J::Null,
        Some(Value::StringValue(bytes)) => J::String(text(bytes, notes)),
        Some(Value::BoolValue(b)) => J::Bool(b),
        Some(Value::IntValue(i)) => J::from(i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(d)
            .map(J::Number)
            .unwrap_or(J::Null),
        Some(Value::BytesValue(bytes)) => J::String(hex::encode(bytes)),
        Some(Value::ArrayValue(array)) => J::Array(
            array
                .values
                .into_iter()
                .map(|v| json(v.value, notes))
                .collect(),
        ),
        Some(Value::KvlistValue(list)) => J::Object(
            list.values
                .into_iter()
                .map(|kv| {
                    (
                        text(kv.key, notes),
                        json(kv.value.and_then(|v| v.value), notes),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    pub(crate) fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn wire_span(name: &str) -> WireSpan {
        WireSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.as_bytes().to_vec(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_001_000_000_000,
            ..Default::default()
        }
    }

    fn request(spans: Vec<WireSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue(b"agent".to_vec()),
                    )],
                }),
                scope_spans: vec![ScopeSpans { scope: None, spans }],
            }],
        }
    }

    const NOW: u64 = 1_700_000_100_000_000_000;

    #[test]
    fn the_memory_estimate_is_what_the_allocator_holds() {
        let body = crate::model::allocations::pipecat_like_request(400).encode_to_vec();
        let (converted, held) = crate::model::allocations::measure(|| {
            let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("decodes");
            convert(request, &SpanLimits::default(), NOW)
        });
        assert_eq!((converted.spans.len(), converted.rejected.len()), (400, 0));
        let estimate = converted.memory_bytes;
        assert!(
            estimate >= held * 95 / 100 && estimate <= held * 105 / 100,
            "estimated {estimate} bytes, the allocator holds {held}"
        );
    }

    #[test]
    fn names_keys_and_status_messages_are_cut_like_values() {
        let mut wire = wire_span(&"n".repeat(5000));
        wire.status = Some(WireStatus {
            message: vec![b'm'; 100 * 1024],
            code: 2,
        });
        wire.attributes
            .push(kv(&"k".repeat(3000), any_value::Value::BoolValue(true)));
        let out = convert(request(vec![wire]), &SpanLimits::default(), NOW);
        let span = &out.spans[0];
        assert_eq!(span.name.len(), 1024);
        assert_eq!(span.status_message.len(), 8 * 1024);
        assert_eq!(span.attributes.0[0].0.len(), 1024);
        let message = out.message();
        assert!(
            message.contains("name truncated from 5000 bytes"),
            "{message}"
        );
        assert!(message.len() < 1024, "names are quoted short: {message}");
    }

    #[test]
    fn one_request_covers_at_most_99_days() {
        const DAY: u64 = 86_400 * 1_000_000_000;
        let latest = wire_span("latest");
        let mut edge = wire_span("edge");
        edge.start_time_unix_nano -= 99 * DAY;
        let mut older = wire_span("older");
        older.start_time_unix_nano -= 99 * DAY + 1;
        let out = convert(
            request(vec![older, latest, edge]),
            &SpanLimits::default(),
            NOW,
        );
        let names: Vec<&str> = out.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["latest", "edge"]);
        assert_eq!(out.rejected.len(), 1);
        assert!(
            out.message().contains("'older'") && out.message().contains("more than 99 days"),
            "{}",
            out.message()
        );
    }

    #[test]
    fn decodes_what_the_official_types_encode() {
        use opentelemetry_proto::tonic::collector::trace::v1 as official;
        use opentelemetry_proto::tonic::common::v1 as common;
        use opentelemetry_proto::tonic::trace::v1 as trace;
        let official = official::ExportTraceServiceRequest {
            resource_spans: vec![trace::ResourceSpans {
                scope_spans: vec![trace::ScopeSpans {
                    spans: vec![trace::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "llm".into(),
                        kind: 3,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_000_500_000_000,
                        attributes: vec![common::KeyValue {
                            key: "metrics.ttfb".into(),
                            value: Some(common::AnyValue {
                                value: Some(common::any_value::Value::DoubleValue(0.25)),
                            }),
                            ..Default::default()
                        }],
                        status: Some(trace::Status {
                            code: 2,
                            message: "boom".into(),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let decoded = ExportTraceServiceRequest::decode(official.encode_to_vec().as_slice())
            .expect("decodes");
        let converted = convert(decoded, &SpanLimits::default(), NOW);
        let span = &converted.spans[0];
        assert_eq!(span.name, "llm");
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(span.status_code, StatusCode::Error);
        assert_eq!(span.status_message, "boom");
        assert_eq!(span.attributes.f64("metrics.ttfb"), Some(0.25));
    }

    #[test]
    fn bad_span_is_rejected_and_the_rest_kept() {
        let mut bad = wire_span("bad");
        bad.trace_id = vec![1; 8];
        let mut zero = wire_span("zero");
        zero.span_id = vec![0; 8];
        let mut ancient = wire_span("ancient");
        ancient.start_time_unix_nano = 5;
        let converted = convert(
            request(vec![bad, wire_span("good"), zero, ancient]),
            &SpanLimits::default(),
            NOW,
        );
        assert_eq!(converted.spans.len(), 1);
        assert_eq!(converted.spans[0].name, "good");
        assert_eq!(converted.rejected.len(), 3);
        assert!(
            converted.rejected[0].contains("trace_id has 8 bytes, expected 16"),
            "{:?}",
            converted.rejected
        );
        assert!(converted.message().starts_with("3 span(s) rejected"));
    }

    #[test]
    fn repairs_invalid_utf8_huge_values_and_reversed_times() {
        let mut span = wire_span("stt");
        span.name = b"st\xfft".to_vec();
        span.end_time_unix_nano = span.start_time_unix_nano - 1;
        span.attributes = vec![
            kv(
                "transcript",
                any_value::Value::StringValue("é".repeat(100).into_bytes()),
            ),
            kv("is_final", any_value::Value::BoolValue(true)),
        ];
        let limits = SpanLimits {
            max_attribute_value_bytes: 51,
            ..SpanLimits::default()
        };
        let converted = convert(request(vec![span]), &limits, NOW);
        let span = &converted.spans[0];
        assert_eq!(span.name, "st\u{fffd}t");
        assert_eq!(span.end_unix_nano, span.start_unix_nano);
        assert_eq!(span.attributes.get("transcript").map(str::len), Some(50));
        assert_eq!(span.attributes.bool("is_final"), Some(true));
        assert_eq!(span.resource.get("service.name"), Some("agent"));
        assert_eq!(converted.repaired.len(), 1);
        assert!(converted.message().contains("invalid UTF-8 replaced"));
    }

    #[test]
    fn llm_contexts_have_their_own_limit() {
        let mut span = wire_span("llm");
        let long = |n| any_value::Value::StringValue(vec![b'x'; n]);
        span.attributes = vec![kv("input", long(200)), kv("output", long(200))];
        let limits = SpanLimits {
            max_attribute_value_bytes: 100,
            max_context_value_bytes: 300,
            context_keys: &["input"],
            ..SpanLimits::default()
        };
        let converted = convert(request(vec![span]), &limits, NOW);
        let span = &converted.spans[0];
        assert_eq!(span.attributes.get("input").map(str::len), Some(200));
        assert_eq!(span.attributes.get("output").map(str::len), Some(100));
        assert!(converted
            .message()
            .contains("attribute 'output' truncated from 200 bytes"));
    }

    #[test]
    fn attributes_and_events_over_the_limit_are_cut_and_counted() {
        let mut span = wire_span("llm");
        span.attributes = (0..5)
            .map(|i| kv(&format!("k{i}"), any_value::Value::IntValue(i)))
            .collect();
        let four = || {
            (0..4)
                .map(|i| kv(&format!("k{i}"), any_value::Value::IntValue(i)))
                .collect::<Vec<_>>()
        };
        span.events = (0..4).map(|_| WireEvent::default()).collect();
        span.events[0].attributes = four();
        span.links = vec![WireLink {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: four(),
        }];
        span.dropped_attributes_count = 1;
        let limits = SpanLimits {
            max_attributes: 3,
            max_events: 2,
            ..SpanLimits::default()
        };
        let converted = convert(request(vec![span]), &limits, NOW);
        let span = &converted.spans[0];
        assert_eq!(
            (span.attributes.len(), span.dropped_attributes_count),
            (3, 3)
        );
        assert_eq!((span.events.len(), span.dropped_events_count), (2, 2));
        assert_eq!(span.events[0].attributes.len(), 3);
        assert_eq!(span.links[0].attributes.len(), 3);
        let message = converted.message();
        for note in [
            "2 attributes over the limit of 3 dropped",
            "1 event attributes over the limit of 3 dropped",
            "1 link attributes over the limit of 3 dropped",
        ] {
            assert!(message.contains(note), "{message}");
        }
    }

    #[test]
    fn corrupted_requests_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut span = wire_span("llm");
        span.attributes = vec![kv("k", any_value::Value::StringValue(b"value".to_vec()))];
        span.events = vec![WireEvent {
            name: b"e".to_vec(),
            ..Default::default()
        }];
        let valid = request(vec![span.clone(), span]).encode_to_vec();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..5000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            bytes.truncate(rng.random_range(0..=bytes.len()));
            if let Ok(decoded) = ExportTraceServiceRequest::decode(bytes.as_slice()) {
                let _ = convert(decoded, &SpanLimits::default(), NOW);
            }
        }
    }

    #[test]
    fn renders_structured_values_as_json() {
        let mut span = wire_span("llm");
        span.attributes = vec![kv(
            "tags",
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![
                    AnyValue {
                        value: Some(any_value::Value::IntValue(3)),
                    },
                    AnyValue {
                        value: Some(any_value::Value::StringValue(b"x".to_vec())),
                    },
                ],
            }),
        )];
        let converted = convert(request(vec![span]), &SpanLimits::default(), NOW);
        assert_eq!(
            converted.spans[0].attributes.get("tags"),
            Some(r#"[3,"x"]"#)
        );
    }
}
