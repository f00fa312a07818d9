//! OTLP log export requests as they arrive on the wire, and their conversion into
//! [`LogRecord`]s. Like the trace messages in [`super::otlp`], string fields are decoded as raw
//! bytes so one invalid UTF-8 string is repaired instead of failing the request, and the same
//! limits apply (a record's attributes count as a span's).

use std::sync::Arc;

use super::ids::{IdError, SpanId, TraceId};
use super::otlp::{
    bounded, cut, limited_attributes, partial_message, render, resource, scope, shown, summary,
    AnyValue, InstrumentationScope, KeyValue, Resource, SpanLimits,
};
use super::span::{heap_bytes, shared_bytes, Attributes};

#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<WireLogRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WireLogRecord {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub severity_text: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "7")]
    pub dropped_attributes_count: u32,
    #[prost(fixed32, tag = "8")]
    pub flags: u32,
    #[prost(bytes = "vec", tag = "9")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    pub span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "12")]
    pub event_name: Vec<u8>,
}

/// The lowest severity number of the ERROR range (17..=20); FATAL is 21..=24.
pub const SEVERITY_ERROR: u8 = 17;
/// The highest severity number OTLP defines.
const SEVERITY_MAX: i32 = 24;

/// One log record, validated, with the resource and scope its request shares.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// The record's time; its observed time when the time was not set.
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    /// 1..=24 as OTLP defines them (TRACE, DEBUG, INFO, WARN, ERROR, FATAL, four each);
    /// 0 when neither a number nor a known text was sent.
    pub severity_number: u8,
    pub severity_text: String,
    /// A string body as sent; any other value as JSON.
    pub body: String,
    pub attributes: Attributes,
    pub resource: Arc<Attributes>,
    pub scope_name: Arc<str>,
    pub scope_version: Arc<str>,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub event_name: String,
    pub dropped_attributes_count: u32,
}

impl LogRecord {
    pub fn service_name(&self) -> &str {
        self.resource.get("service.name").unwrap_or("")
    }

    /// What the record takes in memory, its shared resource and scope not counted (as
    /// [`Span::memory_bytes`](super::Span::memory_bytes) counts).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<LogRecord>()
            + heap_bytes(self.severity_text.capacity())
            + heap_bytes(self.body.capacity())
            + heap_bytes(self.event_name.capacity())
            + self.attributes.memory_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogRejection {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("time {0} is outside the accepted range (year 2000 to one day ahead)")]
    TimeOutOfRange(u64),
    #[error("time {0} is more than 99 days before the latest record of the request; send records this far apart in separate requests")]
    OutsideRequestRange(u64),
}

/// What a logs request turned into, as [`super::otlp::Converted`] is for spans.
#[derive(Debug, Default)]
pub struct ConvertedLogs {
    pub records: Vec<LogRecord>,
    /// What the records take in memory, each shared resource and scope counted once.
    pub memory_bytes: usize,
    pub rejected: Vec<String>,
    pub repaired: Vec<String>,
}

impl ConvertedLogs {
    pub fn message(&self) -> String {
        partial_message("log record(s)", &self.rejected, &self.repaired)
    }
}

pub fn convert(
    request: ExportLogsServiceRequest,
    limits: &SpanLimits,
    now_unix_nano: u64,
) -> ConvertedLogs {
    let mut out = ConvertedLogs::default();
    for resource_logs in request.resource_logs {
        let mut resource_notes = Vec::new();
        let resource = Arc::new(resource(
            resource_logs.resource,
            limits,
            &mut resource_notes,
        ));
        for scope_logs in resource_logs.scope_logs {
            let mut notes = resource_notes.clone();
            let (scope_name, scope_version) = scope(scope_logs.scope, limits, &mut notes);
            out.memory_bytes += shared_bytes(&resource, &scope_name, &scope_version);
            let notes = summary(notes);
            for (index, wire) in scope_logs.log_records.into_iter().enumerate() {
                let label = format!("record {index} of scope '{}'", shown(&scope_name));
                let mut record_notes = notes.clone();
                let shared = Shared {
                    resource: &resource,
                    scope_name: &scope_name,
                    scope_version: &scope_version,
                };
                match record(wire, shared, limits, now_unix_nano, &mut record_notes) {
                    Ok(record) => {
                        if !record_notes.is_empty() {
                            out.repaired
                                .push(format!("{label}: {}", record_notes.join(", ")));
                        }
                        out.memory_bytes += record.memory_bytes();
                        out.records.push(record);
                    }
                    Err(why) => out.rejected.push(format!("{label}: {why}")),
                }
            }
        }
    }
    // One request touches at most 100 monthly partitions of `logs` (ClickHouse refuses more
    // in one insert); the spans' 99 days keep well inside that.
    if let Some(latest) = out.records.iter().map(|r| r.time_unix_nano).max() {
        let earliest = latest.saturating_sub(limits.max_request_range_nanos);
        let (kept, outside): (Vec<LogRecord>, Vec<LogRecord>) = std::mem::take(&mut out.records)
            .into_iter()
            .partition(|r| r.time_unix_nano >= earliest);
        for record in outside {
            out.memory_bytes -= record.memory_bytes();
            let why = LogRejection::OutsideRequestRange(record.time_unix_nano);
            out.rejected
                .push(format!("record '{}': {why}", shown(&record.body)));
        }
        out.records = kept;
    }
    out
}

/// What the records of one scope share.
#[derive(Clone, Copy)]
struct Shared<'a> {
    resource: &'a Arc<Attributes>,
    scope_name: &'a Arc<str>,
    scope_version: &'a Arc<str>,
}

fn record(
    wire: WireLogRecord,
    shared: Shared<'_>,
    limits: &SpanLimits,
    now_unix_nano: u64,
    notes: &mut Vec<String>,
) -> Result<LogRecord, LogRejection> {
    let trace_id = optional_id(&wire.trace_id, TraceId::try_from)?;
    let span_id = optional_id(&wire.span_id, SpanId::try_from)?;
    let time = match (wire.time_unix_nano, wire.observed_time_unix_nano) {
        (0, 0) => {
            notes.push("no time, the time received used".into());
            now_unix_nano
        }
        (0, observed) => observed,
        (time, _) => time,
    };
    let latest = now_unix_nano.saturating_add(limits.max_future_nanos);
    if time < limits.min_unix_nano || time > latest {
        return Err(LogRejection::TimeOutOfRange(time));
    }
    let severity_text = bounded(
        wire.severity_text,
        limits.max_name_bytes,
        "severity text",
        notes,
    );
    let (attributes, dropped_attributes_count) = limited_attributes(
        wire.attributes,
        "attributes",
        wire.dropped_attributes_count,
        limits,
        notes,
    );
    let mut body = wire.body.map(|b| render(b, notes)).unwrap_or_default();
    cut(&mut body, limits.max_attribute_value_bytes, "body", notes);
    Ok(LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: wire.observed_time_unix_nano,
        severity_number: severity(wire.severity_number, &severity_text),
        severity_text,
        body,
        attributes,
        resource: Arc::clone(shared.resource),
        scope_name: Arc::clone(shared.scope_name),
        scope_version: Arc::clone(shared.scope_version),
        trace_id,
        span_id,
        event_name: bounded(wire.event_name, limits.max_name_bytes, "event name", notes),
        dropped_attributes_count,
    })
}

/// An id that may be absent (empty), else must be valid.
fn optional_id<'a, T>(
    bytes: &'a [u8],
    parse: impl FnOnce(&'a [u8]) -> Result<T, IdError>,
) -> Result<Option<T>, IdError> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        parse(bytes).map(Some)
    }
}

/// The severity number as sent, or read from the text when the number is unset (a logger
/// bridged without a number still says "ERROR"). Out-of-range numbers count as unset.
pub fn severity(number: i32, text: &str) -> u8 {
    if (1..=SEVERITY_MAX).contains(&number) {
        return number as u8;
    }
    match text.trim().to_ascii_uppercase().as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" | "INFORMATION" | "NOTICE" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" | "ERR" | "SEVERE" => 17,
        "FATAL" | "CRITICAL" | "CRIT" | "ALERT" | "EMERGENCY" | "PANIC" => 21,
        _ => 0,
    }
}

/// The name of a severity number's range, as OTLP names them.
pub fn severity_name(number: u8) -> &'static str {
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

/// The severity names a filter takes, each with the lowest number of its range.
pub const SEVERITY_NAMES: &[(&str, u8)] = &[
    ("trace", 1),
    ("debug", 5),
    ("info", 9),
    ("warn", 13),
    ("error", 17),
    ("fatal", 21),
];

/// The lowest severity number of a name in [`SEVERITY_NAMES`] (any case), or a number 1..=24.
pub fn severity_floor(text: &str) -> Option<u8> {
    let text = text.trim();
    if let Ok(number) = text.parse::<u8>() {
        return (1..=SEVERITY_MAX as u8).contains(&number).then_some(number);
    }
    let lower = text.to_ascii_lowercase();
    let lower = if lower == "warning" {
        "warn".into()
    } else {
        lower
    };
    SEVERITY_NAMES
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, floor)| *floor)
}

#[cfg(test)]
mod tests {
    use super::super::otlp::any_value::Value;
    use super::*;
    use prost::Message;

    const NOW: u64 = 1_700_000_100_000_000_000;

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    fn wire(body: &str) -> WireLogRecord {
        WireLogRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            severity_number: 9,
            severity_text: b"INFO".to_vec(),
            body: Some(AnyValue {
                value: Some(Value::StringValue(body.as_bytes().to_vec())),
            }),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }
    }

    fn request(records: Vec<WireLogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue(b"agent".to_vec()))],
                }),
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: records,
                }],
            }],
        }
    }

    #[test]
    fn decodes_what_the_official_types_encode() {
        use opentelemetry_proto::tonic::collector::logs::v1 as official;
        use opentelemetry_proto::tonic::common::v1 as common;
        use opentelemetry_proto::tonic::logs::v1 as logs;
        let official = official::ExportLogsServiceRequest {
            resource_logs: vec![logs::ResourceLogs {
                scope_logs: vec![logs::ScopeLogs {
                    scope: Some(common::InstrumentationScope {
                        name: "agent.llm".into(),
                        ..Default::default()
                    }),
                    log_records: vec![logs::LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000,
                        observed_time_unix_nano: 1_700_000_000_100_000_000,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(common::AnyValue {
                            value: Some(common::any_value::Value::StringValue(
                                "model timed out".into(),
                            )),
                        }),
                        attributes: vec![common::KeyValue {
                            key: "code.function".into(),
                            value: Some(common::AnyValue {
                                value: Some(common::any_value::Value::StringValue("reply".into())),
                            }),
                            ..Default::default()
                        }],
                        trace_id: vec![3; 16],
                        span_id: vec![4; 8],
                        event_name: "llm.timeout".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let decoded =
            ExportLogsServiceRequest::decode(official.encode_to_vec().as_slice()).expect("decodes");
        let out = convert(decoded, &SpanLimits::default(), NOW);
        assert_eq!(out.rejected, Vec::<String>::new());
        let record = &out.records[0];
        assert_eq!(record.severity_number, SEVERITY_ERROR);
        assert_eq!(record.severity_text, "ERROR");
        assert_eq!(record.body, "model timed out");
        assert_eq!(record.attributes.get("code.function"), Some("reply"));
        assert_eq!(record.trace_id.map(|t| t.to_hex()), Some("03".repeat(16)));
        assert_eq!(record.event_name, "llm.timeout");
        assert_eq!(&*record.scope_name, "agent.llm");
        assert_eq!(record.observed_time_unix_nano, 1_700_000_000_100_000_000);
    }

    #[test]
    fn records_without_trace_are_kept_and_bad_ids_rejected() {
        let mut untraced = wire("no trace");
        untraced.trace_id.clear();
        untraced.span_id.clear();
        let mut short = wire("short");
        short.trace_id = vec![1; 8];
        let mut zero = wire("zero");
        zero.span_id = vec![0; 8];
        let out = convert(
            request(vec![untraced, short, zero, wire("good")]),
            &SpanLimits::default(),
            NOW,
        );
        let bodies: Vec<&str> = out.records.iter().map(|r| r.body.as_str()).collect();
        assert_eq!(bodies, ["no trace", "good"]);
        assert_eq!(out.records[0].trace_id, None);
        assert_eq!(out.rejected.len(), 2);
        let message = out.message();
        assert!(message.starts_with("2 log record(s) rejected"), "{message}");
        assert!(message.contains("trace_id has 8 bytes"), "{message}");
    }

    #[test]
    fn time_falls_back_to_observed_then_to_now_and_absurd_times_are_rejected() {
        let mut observed = wire("observed");
        observed.time_unix_nano = 0;
        observed.observed_time_unix_nano = 1_700_000_000_500_000_000;
        let mut none = wire("none");
        none.time_unix_nano = 0;
        let mut ancient = wire("ancient");
        ancient.time_unix_nano = 5;
        let out = convert(
            request(vec![observed, none, ancient]),
            &SpanLimits::default(),
            NOW,
        );
        let times: Vec<u64> = out.records.iter().map(|r| r.time_unix_nano).collect();
        assert_eq!(times, [1_700_000_000_500_000_000, NOW]);
        assert!(out.message().contains("outside the accepted range"));
        assert!(out.message().contains("no time, the time received used"));
    }

    #[test]
    fn bodies_attributes_and_utf8_are_repaired_like_spans() {
        let mut record = wire("");
        record.body = Some(AnyValue {
            value: Some(Value::KvlistValue(super::super::otlp::KeyValueList {
                values: vec![kv("event", Value::StringValue(b"hangup".to_vec()))],
            })),
        });
        record.severity_text = b"WARN\xff".to_vec();
        record.attributes = (0..5)
            .map(|i| kv(&format!("k{i}"), Value::IntValue(i)))
            .collect();
        let mut long = wire(&"x".repeat(100));
        long.severity_number = 0;
        long.severity_text = b"error".to_vec();
        let limits = SpanLimits {
            max_attributes: 3,
            max_attribute_value_bytes: 50,
            ..SpanLimits::default()
        };
        let out = convert(request(vec![record, long]), &limits, NOW);
        assert_eq!(out.records[0].body, r#"{"event":"hangup"}"#);
        assert_eq!(out.records[0].severity_text, "WARN\u{fffd}");
        assert_eq!(out.records[0].attributes.len(), 3);
        assert_eq!(out.records[0].dropped_attributes_count, 2);
        assert_eq!(out.records[1].body.len(), 50);
        assert_eq!(out.records[1].severity_number, SEVERITY_ERROR);
        let message = out.message();
        assert!(message.contains("2 log record(s) repaired"), "{message}");
        assert!(
            message.contains("body truncated from 100 bytes"),
            "{message}"
        );
    }

    #[test]
    fn severity_from_number_text_or_filter_name() {
        assert_eq!(severity(13, "ERROR"), 13);
        assert_eq!(severity(0, "Warning"), 13);
        assert_eq!(severity(99, "CRITICAL"), 21);
        assert_eq!(severity(0, "loud"), 0);
        assert_eq!(severity_floor("ERROR"), Some(17));
        assert_eq!(severity_floor("warning"), Some(13));
        assert_eq!(severity_floor("20"), Some(20));
        assert_eq!(severity_floor("25"), None);
        assert_eq!(severity_floor("loud"), None);
    }
}
