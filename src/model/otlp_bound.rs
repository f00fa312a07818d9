//! What an OTLP protobuf request can take in memory once decoded and converted, read from its
//! bytes before it is decoded: decoding turns a few bytes on the wire into a whole struct (an
//! empty span is 2 bytes on the wire and a few hundred in memory), so the size of a request
//! as received says little about what it takes. The bound walks the wire format with the
//! shape of the messages and counts every message decoding would make, every byte string it
//! would copy, and what conversion adds (a span, a rendered value, a JSON text).

use std::mem::size_of;

use super::log::{ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs, WireLogRecord};
use super::otlp::{
    AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, KeyValueList,
    Resource, ResourceSpans, ScopeSpans, WireEvent, WireLink, WireSpan, WireStatus,
};
use super::span::{heap_bytes, Span, SpanEvent, SpanLink};

/// A message type: what one of it takes decoded and converted, and which of its fields are
/// messages.
struct Shape {
    /// In its parent (an optional or oneof field) or in a list (a repeated field).
    decoded: usize,
    /// What conversion makes of one.
    converted: usize,
    fields: &'static [Field],
}

struct Field {
    number: u64,
    shape: &'static Shape,
    /// Repeated: decoded into a list grown by doubling, up to twice what it holds. Otherwise
    /// the message sits inside its parent, counted there.
    repeated: bool,
    /// Rendered as JSON text when converted (arrays and maps in attribute values): each wire
    /// byte may become up to 6 (a control character escaped as `\u0000`).
    rendered_as_json: bool,
}

const fn field(number: u64, shape: &'static Shape, repeated: bool) -> Field {
    Field {
        number,
        shape,
        repeated,
        rendered_as_json: false,
    }
}

const fn json(number: u64, shape: &'static Shape) -> Field {
    Field {
        number,
        shape,
        repeated: false,
        rendered_as_json: true,
    }
}

/// A value rendered to text: a number, a boolean or a hex string, in its own allocation.
const RENDERED_SCALAR: usize = 48;
const JSON_EXPANSION: usize = 6;

static ANY_VALUE: Shape = Shape {
    decoded: size_of::<AnyValue>(),
    converted: RENDERED_SCALAR,
    fields: &[json(5, &ARRAY_VALUE), json(6, &KEY_VALUE_LIST)],
};
static ARRAY_VALUE: Shape = Shape {
    decoded: size_of::<ArrayValue>(),
    converted: 0,
    fields: &[field(1, &ANY_VALUE, true)],
};
static KEY_VALUE_LIST: Shape = Shape {
    decoded: size_of::<KeyValueList>(),
    converted: 0,
    fields: &[field(1, &KEY_VALUE, true)],
};
static KEY_VALUE: Shape = Shape {
    decoded: size_of::<KeyValue>(),
    converted: size_of::<(String, String)>(),
    fields: &[field(2, &ANY_VALUE, false)],
};
static RESOURCE: Shape = Shape {
    decoded: size_of::<Resource>(),
    // Its Arc, and the scope name's and version's.
    converted: 3 * 32 + size_of::<super::Attributes>(),
    fields: &[field(1, &KEY_VALUE, true)],
};
static SCOPE: Shape = Shape {
    decoded: size_of::<InstrumentationScope>(),
    converted: 0,
    fields: &[],
};
static STATUS: Shape = Shape {
    decoded: size_of::<WireStatus>(),
    converted: 0,
    fields: &[],
};
static EVENT: Shape = Shape {
    decoded: size_of::<WireEvent>(),
    converted: size_of::<SpanEvent>(),
    fields: &[field(3, &KEY_VALUE, true)],
};
static LINK: Shape = Shape {
    decoded: size_of::<WireLink>(),
    converted: size_of::<SpanLink>(),
    fields: &[field(4, &KEY_VALUE, true)],
};
static SPAN: Shape = Shape {
    decoded: size_of::<WireSpan>(),
    converted: size_of::<Span>(),
    fields: &[
        field(9, &KEY_VALUE, true),
        field(11, &EVENT, true),
        field(13, &LINK, true),
        field(15, &STATUS, false),
    ],
};
static SCOPE_SPANS: Shape = Shape {
    decoded: size_of::<ScopeSpans>(),
    converted: 0,
    fields: &[field(1, &SCOPE, false), field(2, &SPAN, true)],
};
static RESOURCE_SPANS: Shape = Shape {
    decoded: size_of::<ResourceSpans>(),
    converted: 0,
    fields: &[field(1, &RESOURCE, false), field(2, &SCOPE_SPANS, true)],
};
static TRACES_REQUEST: Shape = Shape {
    decoded: size_of::<ExportTraceServiceRequest>(),
    converted: 0,
    fields: &[field(1, &RESOURCE_SPANS, true)],
};
static LOG_RECORD: Shape = Shape {
    decoded: size_of::<WireLogRecord>(),
    converted: size_of::<LogRecord>(),
    fields: &[field(5, &ANY_VALUE, false), field(6, &KEY_VALUE, true)],
};
static SCOPE_LOGS: Shape = Shape {
    decoded: size_of::<ScopeLogs>(),
    converted: 0,
    fields: &[field(1, &SCOPE, false), field(2, &LOG_RECORD, true)],
};
static RESOURCE_LOGS: Shape = Shape {
    decoded: size_of::<ResourceLogs>(),
    converted: 0,
    fields: &[field(1, &RESOURCE, false), field(2, &SCOPE_LOGS, true)],
};
static LOGS_REQUEST: Shape = Shape {
    decoded: size_of::<ExportLogsServiceRequest>(),
    converted: 0,
    fields: &[field(1, &RESOURCE_LOGS, true)],
};

/// The wire is not protobuf of the expected shape; decoding it would fail too.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("malformed protobuf at byte {0}")]
pub struct Malformed(usize);

/// At most what an `ExportTraceServiceRequest` of these bytes takes decoded, plus what its
/// spans take converted, allocator overhead included.
pub fn traces(body: &[u8]) -> Result<usize, Malformed> {
    bound(body, &TRACES_REQUEST)
}

/// The same for an `ExportLogsServiceRequest`.
pub fn logs(body: &[u8]) -> Result<usize, Malformed> {
    bound(body, &LOGS_REQUEST)
}

fn bound(body: &[u8], shape: &'static Shape) -> Result<usize, Malformed> {
    let mut total = Total::default();
    walk(body, 0, shape, &mut total)?;
    Ok(total.bytes)
}

#[derive(Default)]
struct Total {
    bytes: usize,
}

impl Total {
    fn add(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

/// Counts the fields of one message (`bytes`, starting at `offset` in the body).
fn walk(bytes: &[u8], offset: usize, shape: &Shape, total: &mut Total) -> Result<(), Malformed> {
    let mut at = 0;
    let malformed = |at: usize| Malformed(offset + at);
    while at < bytes.len() {
        let key = varint(bytes, &mut at).ok_or_else(|| malformed(at))?;
        let (number, wire_type) = (key >> 3, key & 7);
        let skip = match wire_type {
            0 => {
                varint(bytes, &mut at).ok_or_else(|| malformed(at))?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = varint(bytes, &mut at).ok_or_else(|| malformed(at))?;
                let len = usize::try_from(len).map_err(|_| malformed(at))?;
                let end = at.checked_add(len).filter(|&end| end <= bytes.len());
                let end = end.ok_or_else(|| malformed(at))?;
                match shape.fields.iter().find(|f| f.number == number) {
                    Some(field) => {
                        let child = field.shape;
                        total.add(child.converted);
                        if field.repeated {
                            // In a list grown by doubling; the list's own allocation.
                            total.add(2 * child.decoded + crate::model::span::ALLOCATION_OVERHEAD);
                        }
                        if field.rendered_as_json {
                            total.add(heap_bytes(JSON_EXPANSION * len));
                        }
                        walk(&bytes[at..end], offset + at, child, total)?;
                    }
                    // A string or byte string: copied as it is.
                    None => total.add(heap_bytes(len)),
                }
                end - at
            }
            _ => return Err(malformed(at)),
        };
        at = at
            .checked_add(skip)
            .filter(|&next| next <= bytes.len())
            .ok_or_else(|| malformed(at))?;
    }
    Ok(())
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::model::allocations::{measure, pipecat_like_request};
    use crate::model::otlp::{self, SpanLimits};
    use crate::model::otlp::{AnyValue, KeyValue, Resource};

    #[test]
    fn the_bound_holds_what_decoding_and_converting_take() {
        let body = pipecat_like_request(400).encode_to_vec();
        let bound = traces(&body).expect("well formed");
        // Both alive at once, as while the last span of a request is converted.
        let (_both, held) = measure(|| {
            let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("decodes");
            let copy = request.clone();
            (
                copy,
                otlp::convert(request, &SpanLimits::default(), u64::MAX / 2),
            )
        });
        assert!(bound >= held, "bound {bound} below {held} held");
        assert!(bound <= 3 * held, "bound {bound} far above {held} held");
    }

    #[test]
    fn empty_spans_count_for_what_they_decode_into() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![WireSpan::default(); 10_000],
                }],
            }],
        };
        let body = request.encode_to_vec();
        assert!(body.len() < 30_000, "{}", body.len());
        let bound = traces(&body).expect("well formed");
        assert!(
            bound >= 10_000 * (size_of::<WireSpan>() + size_of::<Span>()),
            "{bound}"
        );
    }

    /// 400 spans under one resource and scope, as a client sends them.
    fn request(resource: Vec<KeyValue>, scope_name: Vec<u8>) -> ExportTraceServiceRequest {
        let mut request = pipecat_like_request(400);
        let resource_spans = &mut request.resource_spans[0];
        resource_spans.resource = Some(Resource {
            attributes: resource,
        });
        if let Some(scope) = &mut resource_spans.scope_spans[0].scope {
            scope.name = scope_name;
        }
        request
    }

    fn accounted(request: ExportTraceServiceRequest) -> (usize, otlp::Converted) {
        let body = request.encode_to_vec();
        let bound = traces(&body).expect("well formed");
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("decodes");
        (
            bound,
            otlp::convert(request, &SpanLimits::default(), u64::MAX / 2),
        )
    }

    #[test]
    fn a_huge_scope_name_is_counted_once_and_cut() {
        let (plain_bound, plain) = accounted(request(Vec::new(), b"pipecat".to_vec()));
        let (bound, converted) = accounted(request(Vec::new(), vec![b's'; 512 * 1024]));
        assert_eq!(converted.spans.len(), 400);
        assert_eq!(&*converted.spans[0].scope_name, "s".repeat(1024));
        assert!(converted
            .message()
            .contains("scope name truncated from 524288 bytes"));
        // Before decoding: the name once, not once per span.
        let extra = bound - plain_bound;
        assert!((510 * 1024..520 * 1024).contains(&extra), "{extra}");
        // Converted: the cut name once.
        let extra = converted.memory_bytes - plain.memory_bytes;
        assert!(extra < 2 * 1024, "{extra}");
    }

    #[test]
    fn a_resource_of_ten_thousand_attributes_is_held_to_the_limits() {
        let (plain_bound, plain) = accounted(request(Vec::new(), b"pipecat".to_vec()));
        let attributes: Vec<KeyValue> = (0..10_000)
            .map(|i| KeyValue {
                key: format!("resource.attribute.{i}").into_bytes(),
                value: Some(AnyValue {
                    value: Some(otlp::any_value::Value::StringValue(vec![b'v'; 200])),
                }),
            })
            .collect();
        let (bound, converted) = accounted(request(attributes, b"pipecat".to_vec()));
        let limits = SpanLimits::default();
        let resource = &converted.spans[0].resource;
        assert!(resource.len() <= limits.max_resource_attributes);
        let size: usize = resource.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size <= limits.max_resource_bytes, "{size}");
        let message = converted.message();
        assert!(
            message.contains("9872 resource attributes over the limit of 128 dropped"),
            "{message}"
        );
        assert!(
            message.contains("past the limit of 16384 bytes dropped"),
            "{message}"
        );
        // Converted: one resource within its limits, shared by the 400 spans.
        let extra = converted.memory_bytes - plain.memory_bytes;
        assert!(extra < 2 * limits.max_resource_bytes, "{extra}");
        // Before decoding: every attribute as decoded, once (not once per span: 800 MB).
        let extra = bound - plain_bound;
        assert!(extra < 10_000 * 1024, "{extra}");
    }

    #[test]
    fn malformed_bytes_are_refused_before_decoding() {
        // A length running past the end, and a wire type protobuf does not have.
        assert!(traces(&[0x0a, 0x05, 0x01]).is_err());
        assert!(traces(&[0x0f]).is_err());
        assert!(ExportTraceServiceRequest::decode(&[0x0a, 0x05, 0x01][..]).is_err());
        assert_eq!(traces(&[]), Ok(0));
    }
}
