//! OTLP/JSON trace and log requests decoded into the same messages the protobuf path decodes
//! ([`super::otlp`]), so both encodings share one conversion and one validation.
//!
//! The proto3 JSON mapping lets an encoder omit empty lists, empty messages and default
//! values, write 64-bit integers as strings or numbers, enums as names or numbers, and lets a
//! parser accept the original field name as well as the lowerCamelCase one. Real exporters use
//! all of it (LiveKit sends `{"arrayValue":{}}` for an empty list), so this decoder accepts
//! every such shape and ignores unknown fields. OTLP's one exception to the mapping is kept:
//! trace and span ids are hex (base64, the plain mapping, is accepted too).
//!
//! A value of the wrong type inside a span (a number where its name belongs, an id that is
//! neither hex nor base64) rejects that span, with the path of the offending field, as the
//! conversion rejects a span with a bad id; the other spans are kept. In a resource or a scope
//! it rejects the spans under it. A body that is not JSON, or whose lists of resources, scopes
//! and spans cannot be read as lists of objects, is refused whole.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use serde_json::{Map, Value};

use super::log::{ExportLogsServiceRequest, ResourceLogs, ScopeLogs, WireLogRecord};
use super::otlp::{
    self, any_value, AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope,
    KeyValue, KeyValueList, Resource, ResourceSpans, ScopeSpans, WireEvent, WireLink, WireSpan,
    WireStatus,
};

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
    #[error("{path}: {problem}")]
    Shape { path: String, problem: String },
}

/// A request as far as it could be read: the spans that could not be are left out of
/// `request` and described in `rejected`, one line each, like the spans the conversion rejects.
#[derive(Debug)]
pub struct Decoded {
    pub request: ExportTraceServiceRequest,
    pub rejected: Vec<String>,
}

pub fn decode(body: &[u8]) -> Result<Decoded, JsonError> {
    let root: Value = serde_json::from_slice(body)?;
    let at = At::ROOT;
    let root = object(&root, &at)?;
    let mut rejected = Vec::new();
    let resource_spans = list(
        root,
        ["resourceSpans", "resource_spans"],
        &at,
        |value, at| resource_spans(value, at, &mut rejected),
    )?;
    Ok(Decoded {
        request: ExportTraceServiceRequest { resource_spans },
        rejected,
    })
}

fn resource_spans(
    value: &Value,
    at: &At,
    rejected: &mut Vec<String>,
) -> Result<ResourceSpans, JsonError> {
    let obj = object(value, at)?;
    let mut scope_spans = list(obj, ["scopeSpans", "scope_spans"], at, |value, at| {
        scope_spans(value, at, rejected)
    })?;
    let resource = message(obj, ["resource", "resource"], at, resource).unwrap_or_else(|err| {
        let spans = scope_spans.iter_mut().flat_map(|s| s.spans.drain(..));
        reject_all(spans, &err, rejected);
        None
    });
    Ok(ResourceSpans {
        resource,
        scope_spans,
    })
}

fn scope_spans(
    value: &Value,
    at: &At,
    rejected: &mut Vec<String>,
) -> Result<ScopeSpans, JsonError> {
    let obj = object(value, at)?;
    let mut spans = Vec::new();
    list(obj, ["spans", "spans"], at, |value, at| {
        match span(value, at) {
            Ok(wire) => spans.push(wire),
            Err(err) => rejected.push(format!("{}: {err}", label(value))),
        }
        Ok(())
    })?;
    let scope = message(obj, ["scope", "scope"], at, scope).unwrap_or_else(|err| {
        reject_all(spans.drain(..), &err, rejected);
        None
    });
    Ok(ScopeSpans { scope, spans })
}

/// Rejects spans that were read but sit under a resource or scope that could not be.
fn reject_all(spans: impl Iterator<Item = WireSpan>, err: &JsonError, rejected: &mut Vec<String>) {
    for wire in spans {
        let name = otlp::shown(&String::from_utf8_lossy(&wire.name));
        rejected.push(format!("'{name}': {err}"));
    }
}

/// How a span that could not be read is named to the client: by its name if that is a string.
fn label(value: &Value) -> String {
    match value.get("name").and_then(Value::as_str) {
        Some(name) => format!("'{}'", otlp::shown(name)),
        None => "a span".to_owned(),
    }
}

fn resource(obj: &Map<String, Value>, at: &At) -> Result<Resource, JsonError> {
    Ok(Resource {
        attributes: list(obj, ["attributes", "attributes"], at, key_value)?,
    })
}

fn scope(obj: &Map<String, Value>, at: &At) -> Result<InstrumentationScope, JsonError> {
    Ok(InstrumentationScope {
        name: string(obj, ["name", "name"], at)?,
        version: string(obj, ["version", "version"], at)?,
    })
}

fn span(value: &Value, at: &At) -> Result<WireSpan, JsonError> {
    let obj = object(value, at)?;
    Ok(WireSpan {
        trace_id: id(obj, ["traceId", "trace_id"], at)?,
        span_id: id(obj, ["spanId", "span_id"], at)?,
        trace_state: string(obj, ["traceState", "trace_state"], at)?,
        parent_span_id: id(obj, ["parentSpanId", "parent_span_id"], at)?,
        flags: integer(obj, ["flags", "flags"], at)?,
        name: string(obj, ["name", "name"], at)?,
        kind: enumeration(obj, ["kind", "kind"], at, SPAN_KINDS)?,
        start_time_unix_nano: integer(obj, ["startTimeUnixNano", "start_time_unix_nano"], at)?,
        end_time_unix_nano: integer(obj, ["endTimeUnixNano", "end_time_unix_nano"], at)?,
        attributes: list(obj, ["attributes", "attributes"], at, key_value)?,
        dropped_attributes_count: integer(
            obj,
            ["droppedAttributesCount", "dropped_attributes_count"],
            at,
        )?,
        events: list(obj, ["events", "events"], at, event)?,
        dropped_events_count: integer(obj, ["droppedEventsCount", "dropped_events_count"], at)?,
        links: list(obj, ["links", "links"], at, link)?,
        dropped_links_count: integer(obj, ["droppedLinksCount", "dropped_links_count"], at)?,
        status: message(obj, ["status", "status"], at, |obj, at| {
            Ok(WireStatus {
                message: string(obj, ["message", "message"], at)?,
                code: enumeration(obj, ["code", "code"], at, STATUS_CODES)?,
            })
        })?,
    })
}

/// An OTLP/JSON logs request, decoded the same way as traces.
pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest, JsonError> {
    let root: Value = serde_json::from_slice(body)?;
    let at = At::ROOT;
    let root = object(&root, &at)?;
    Ok(ExportLogsServiceRequest {
        resource_logs: list(root, ["resourceLogs", "resource_logs"], &at, resource_logs)?,
    })
}

fn resource_logs(value: &Value, at: &At) -> Result<ResourceLogs, JsonError> {
    let obj = object(value, at)?;
    Ok(ResourceLogs {
        resource: message(obj, ["resource", "resource"], at, resource)?,
        scope_logs: list(obj, ["scopeLogs", "scope_logs"], at, scope_logs)?,
    })
}

fn scope_logs(value: &Value, at: &At) -> Result<ScopeLogs, JsonError> {
    let obj = object(value, at)?;
    Ok(ScopeLogs {
        scope: message(obj, ["scope", "scope"], at, scope)?,
        log_records: list(obj, ["logRecords", "log_records"], at, log_record)?,
    })
}

fn log_record(value: &Value, at: &At) -> Result<WireLogRecord, JsonError> {
    let obj = object(value, at)?;
    Ok(WireLogRecord {
        time_unix_nano: integer(obj, ["timeUnixNano", "time_unix_nano"], at)?,
        observed_time_unix_nano: integer(
            obj,
            ["observedTimeUnixNano", "observed_time_unix_nano"],
            at,
        )?,
        severity_number: enumeration(
            obj,
            ["severityNumber", "severity_number"],
            at,
            SEVERITY_NUMBERS,
        )?,
        severity_text: string(obj, ["severityText", "severity_text"], at)?,
        body: message(obj, ["body", "body"], at, |obj, at| {
            Ok(AnyValue {
                value: any(obj, at)?,
            })
        })?,
        attributes: list(obj, ["attributes", "attributes"], at, key_value)?,
        dropped_attributes_count: integer(
            obj,
            ["droppedAttributesCount", "dropped_attributes_count"],
            at,
        )?,
        flags: integer(obj, ["flags", "flags"], at)?,
        trace_id: id(obj, ["traceId", "trace_id"], at)?,
        span_id: id(obj, ["spanId", "span_id"], at)?,
        event_name: string(obj, ["eventName", "event_name"], at)?,
    })
}

/// `opentelemetry.proto.logs.v1.SeverityNumber` names, indexed by value.
const SEVERITY_NUMBERS: &[&str] = &[
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

/// `opentelemetry.proto.trace.v1.Span.SpanKind` names, indexed by value.
const SPAN_KINDS: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// `opentelemetry.proto.trace.v1.Status.StatusCode` names, indexed by value.
const STATUS_CODES: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn event(value: &Value, at: &At) -> Result<WireEvent, JsonError> {
    let obj = object(value, at)?;
    Ok(WireEvent {
        time_unix_nano: integer(obj, ["timeUnixNano", "time_unix_nano"], at)?,
        name: string(obj, ["name", "name"], at)?,
        attributes: list(obj, ["attributes", "attributes"], at, key_value)?,
    })
}

fn link(value: &Value, at: &At) -> Result<WireLink, JsonError> {
    let obj = object(value, at)?;
    Ok(WireLink {
        trace_id: id(obj, ["traceId", "trace_id"], at)?,
        span_id: id(obj, ["spanId", "span_id"], at)?,
        attributes: list(obj, ["attributes", "attributes"], at, key_value)?,
    })
}

fn key_value(value: &Value, at: &At) -> Result<KeyValue, JsonError> {
    let obj = object(value, at)?;
    Ok(KeyValue {
        key: string(obj, ["key", "key"], at)?,
        value: message(obj, ["value", "value"], at, |obj, at| {
            Ok(AnyValue {
                value: any(obj, at)?,
            })
        })?,
    })
}

/// The `AnyValue` oneof; an empty object is a value that was not set.
fn any(obj: &Map<String, Value>, at: &At) -> Result<Option<any_value::Value>, JsonError> {
    use any_value::Value as V;
    if let Some((value, at)) = field(obj, ["stringValue", "string_value"], at) {
        return Ok(Some(V::StringValue(text(value, &at)?)));
    }
    if let Some((value, at)) = field(obj, ["boolValue", "bool_value"], at) {
        return Ok(Some(V::BoolValue(boolean(value, &at)?)));
    }
    if field(obj, ["intValue", "int_value"], at).is_some() {
        return Ok(Some(V::IntValue(integer(
            obj,
            ["intValue", "int_value"],
            at,
        )?)));
    }
    if let Some((value, at)) = field(obj, ["doubleValue", "double_value"], at) {
        return Ok(Some(V::DoubleValue(double(value, &at)?)));
    }
    if let Some(array) = message(obj, ["arrayValue", "array_value"], at, |obj, at| {
        Ok(ArrayValue {
            values: list(obj, ["values", "values"], at, |value, at| {
                Ok(AnyValue {
                    value: any(object(value, at)?, at)?,
                })
            })?,
        })
    })? {
        return Ok(Some(V::ArrayValue(array)));
    }
    if let Some(kvlist) = message(obj, ["kvlistValue", "kvlist_value"], at, |obj, at| {
        Ok(KeyValueList {
            values: list(obj, ["values", "values"], at, key_value)?,
        })
    })? {
        return Ok(Some(V::KvlistValue(kvlist)));
    }
    if let Some((value, at)) = field(obj, ["bytesValue", "bytes_value"], at) {
        return Ok(Some(V::BytesValue(base64(value, &at)?)));
    }
    Ok(None)
}

/// Where in the request a value sits, built on the stack and rendered only for an error.
struct At<'a> {
    parent: Option<&'a At<'a>>,
    step: Step<'a>,
}

enum Step<'a> {
    Root,
    Field(&'a str),
    Index(usize),
}

impl<'a> At<'a> {
    const ROOT: At<'static> = At {
        parent: None,
        step: Step::Root,
    };

    fn field(&'a self, name: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            step: Step::Field(name),
        }
    }

    fn index(&'a self, index: usize) -> At<'a> {
        At {
            parent: Some(self),
            step: Step::Index(index),
        }
    }

    fn error(&self, problem: impl Into<String>) -> JsonError {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(here) = at {
            steps.push(&here.step);
            at = here.parent;
        }
        let mut path = String::new();
        for step in steps.into_iter().rev() {
            match step {
                Step::Root => path.push('$'),
                Step::Field(name) => {
                    path.push('.');
                    path.push_str(name);
                }
                Step::Index(index) => path.push_str(&format!("[{index}]")),
            }
        }
        JsonError::Shape {
            path,
            problem: problem.into(),
        }
    }
}

/// A field by its lowerCamelCase JSON name or its original proto name; `null` is absent.
fn field<'v, 'a>(
    obj: &'v Map<String, Value>,
    names: [&'static str; 2],
    at: &'a At<'a>,
) -> Option<(&'v Value, At<'a>)> {
    names.iter().find_map(|name| match obj.get(*name) {
        None | Some(Value::Null) => None,
        Some(value) => Some((value, at.field(name))),
    })
}

fn object<'v>(value: &'v Value, at: &At) -> Result<&'v Map<String, Value>, JsonError> {
    value
        .as_object()
        .ok_or_else(|| at.error(format!("expected an object, found {}", kind(value))))
}

/// A repeated field; omitted means empty.
fn list<T>(
    obj: &Map<String, Value>,
    names: [&'static str; 2],
    at: &At,
    mut each: impl FnMut(&Value, &At) -> Result<T, JsonError>,
) -> Result<Vec<T>, JsonError> {
    let Some((value, at)) = field(obj, names, at) else {
        return Ok(Vec::new());
    };
    let items = value
        .as_array()
        .ok_or_else(|| at.error(format!("expected a list, found {}", kind(value))))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| each(item, &at.index(index)))
        .collect()
}

/// A message field; omitted means not set.
fn message<T>(
    obj: &Map<String, Value>,
    names: [&'static str; 2],
    at: &At,
    read: impl FnOnce(&Map<String, Value>, &At) -> Result<T, JsonError>,
) -> Result<Option<T>, JsonError> {
    match field(obj, names, at) {
        None => Ok(None),
        Some((value, at)) => read(object(value, &at)?, &at).map(Some),
    }
}

/// A string field as bytes, like the protobuf mirror keeps it; omitted means empty.
fn string(
    obj: &Map<String, Value>,
    names: [&'static str; 2],
    at: &At,
) -> Result<Vec<u8>, JsonError> {
    match field(obj, names, at) {
        None => Ok(Vec::new()),
        Some((value, at)) => text(value, &at),
    }
}

fn text(value: &Value, at: &At) -> Result<Vec<u8>, JsonError> {
    value
        .as_str()
        .map(|s| s.as_bytes().to_vec())
        .ok_or_else(|| at.error(format!("expected a string, found {}", kind(value))))
}

fn boolean(value: &Value, at: &At) -> Result<bool, JsonError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(at.error(format!("expected true or false, found {}", kind(other)))),
    }
}

/// Any integer field: a JSON number or a decimal string (the mapping writes 64-bit integers
/// as strings, and parsers accept both for every width); omitted means zero.
fn integer<T: TryFrom<i128> + Default>(
    obj: &Map<String, Value>,
    names: [&'static str; 2],
    at: &At,
) -> Result<T, JsonError> {
    let Some((value, at)) = field(obj, names, at) else {
        return Ok(T::default());
    };
    let wide = match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().and_then(whole)),
        Value::String(s) => s
            .parse::<i128>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().and_then(whole)),
        _ => None,
    };
    wide.and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| at.error(format!("expected an integer in range, found {value}")))
}

/// An integral float (`1e3`) as an integer; the float-to-int cast saturates, and the caller's
/// range check refuses what saturated.
fn whole(f: f64) -> Option<i128> {
    (f.is_finite() && f.fract() == 0.0).then_some(f as i128)
}

fn double(value: &Value, at: &At) -> Result<f64, JsonError> {
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse::<f64>().ok(),
        },
        _ => None,
    };
    parsed.ok_or_else(|| at.error(format!("expected a number, found {value}")))
}

/// An enum by number or by name. A name this version does not know reads as 0 (unspecified),
/// as an unknown number would, rather than refusing the request.
fn enumeration(
    obj: &Map<String, Value>,
    names: [&'static str; 2],
    at: &At,
    values: &[&str],
) -> Result<i32, JsonError> {
    match field(obj, names, at) {
        Some((Value::String(name), _)) if name.parse::<i32>().is_err() => Ok(values
            .iter()
            .position(|known| known == name)
            .and_then(|index| i32::try_from(index).ok())
            .unwrap_or(0)),
        _ => integer(obj, names, at),
    }
}

/// A trace or span id: hex as OTLP/JSON specifies, or base64 as the plain mapping would.
/// The length is checked per span by the conversion, as for protobuf.
fn id(obj: &Map<String, Value>, names: [&'static str; 2], at: &At) -> Result<Vec<u8>, JsonError> {
    let Some((value, at)) = field(obj, names, at) else {
        return Ok(Vec::new());
    };
    let text = value
        .as_str()
        .ok_or_else(|| at.error(format!("expected a hex string, found {}", kind(value))))?;
    hex::decode(text)
        .ok()
        .or_else(|| decode_base64(text))
        .ok_or_else(|| at.error(format!("{text:?} is neither hex nor base64")))
}

fn base64(value: &Value, at: &At) -> Result<Vec<u8>, JsonError> {
    let text = value
        .as_str()
        .ok_or_else(|| at.error(format!("expected a base64 string, found {}", kind(value))))?;
    decode_base64(text).ok_or_else(|| at.error("invalid base64"))
}

/// Standard or URL-safe alphabet, padded or not: the mapping accepts all four.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [alphabet::STANDARD, alphabet::URL_SAFE]
        .iter()
        .find_map(|alphabet| GeneralPurpose::new(alphabet, config).decode(text).ok())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "otlp_json_tests.rs"]
mod tests;
