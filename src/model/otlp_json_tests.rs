//! Conformance of the OTLP/JSON decoder: every shape the proto3 JSON mapping allows gives
//! the same converted spans as the equivalent protobuf built with the official types.

use opentelemetry_proto::tonic::collector::trace::v1 as collector;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::resource::v1 as resource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use prost::Message;

use super::*;
use crate::model::otlp::{convert, Converted, SpanLimits};

const NOW: u64 = 1_700_000_100_000_000_000;
const START: u64 = 1_700_000_000_000_000_000;
const END: u64 = 1_700_000_000_500_000_000;
const TRACE_HEX: &str = "0102030405060708090a0b0c0d0e0f10";
const SPAN_HEX: &str = "1112131415161718";

fn trace_id() -> Vec<u8> {
    (1..=16).collect()
}

fn span_id() -> Vec<u8> {
    (0x11..=0x18).collect()
}

/// What both encodings must agree on.
fn rows(converted: Converted) -> (Vec<crate::model::Span>, Vec<String>, Vec<String>) {
    (converted.spans, converted.rejected, converted.repaired)
}

fn via_json(body: &str) -> (Vec<crate::model::Span>, Vec<String>, Vec<String>) {
    let decoded = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert!(
        decoded.rejected.is_empty(),
        "{:?}\n{body}",
        decoded.rejected
    );
    rows(convert(decoded.request, &SpanLimits::default(), NOW))
}

fn via_protobuf(
    request: collector::ExportTraceServiceRequest,
) -> (Vec<crate::model::Span>, Vec<String>, Vec<String>) {
    let decoded =
        crate::model::otlp::ExportTraceServiceRequest::decode(request.encode_to_vec().as_slice())
            .expect("the official encoding decodes");
    rows(convert(decoded, &SpanLimits::default(), NOW))
}

/// One span in one scope in one resource, as JSON.
fn json_request(span: &str) -> String {
    format!(r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}"#)
}

fn proto_request(span: trace::Span) -> collector::ExportTraceServiceRequest {
    collector::ExportTraceServiceRequest {
        resource_spans: vec![trace::ResourceSpans {
            scope_spans: vec![trace::ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The fields every case shares, in lowerCamelCase JSON.
fn json_span(extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    json_request(&format!(
        r#"{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"llm",
            "startTimeUnixNano":"{START}","endTimeUnixNano":"{END}"{extra}}}"#
    ))
}

fn proto_span() -> trace::Span {
    trace::Span {
        trace_id: trace_id(),
        span_id: span_id(),
        name: "llm".into(),
        start_time_unix_nano: START,
        end_time_unix_nano: END,
        ..Default::default()
    }
}

fn attribute(key: &str, value: Option<common::any_value::Value>) -> common::KeyValue {
    common::KeyValue {
        key: key.into(),
        value: Some(common::AnyValue { value }),
        ..Default::default()
    }
}

fn with_attributes(attributes: Vec<common::KeyValue>) -> collector::ExportTraceServiceRequest {
    proto_request(trace::Span {
        attributes,
        ..proto_span()
    })
}

fn any(value: common::any_value::Value) -> common::AnyValue {
    common::AnyValue { value: Some(value) }
}

#[test]
fn json_and_protobuf_give_identical_rows() {
    use common::any_value::Value as V;
    let cases: Vec<(&str, String, collector::ExportTraceServiceRequest)> = vec![
        (
            "span without attributes, events, links or status",
            json_span(""),
            proto_request(proto_span()),
        ),
        (
            "original proto field names instead of lowerCamelCase",
            json_request(&format!(
                r#"{{"trace_id":"{TRACE_HEX}","span_id":"{SPAN_HEX}","name":"llm",
                    "start_time_unix_nano":"{START}","end_time_unix_nano":"{END}",
                    "parent_span_id":"{SPAN_HEX}","trace_state":"a=b",
                    "dropped_attributes_count":2,
                    "attributes":[{{"key":"n","value":{{"int_value":"7"}}}},
                                  {{"key":"s","value":{{"string_value":"x"}}}},
                                  {{"key":"l","value":{{"array_value":{{"values":[{{"bool_value":true}}]}}}}}},
                                  {{"key":"m","value":{{"kvlist_value":{{"values":[{{"key":"d","value":{{"double_value":0.5}}}}]}}}}}}]}}"#
            )),
            proto_request(trace::Span {
                parent_span_id: span_id(),
                trace_state: "a=b".into(),
                dropped_attributes_count: 2,
                attributes: vec![
                    attribute("n", Some(V::IntValue(7))),
                    attribute("s", Some(V::StringValue("x".into()))),
                    attribute(
                        "l",
                        Some(V::ArrayValue(common::ArrayValue {
                            values: vec![any(V::BoolValue(true))],
                        })),
                    ),
                    attribute(
                        "m",
                        Some(V::KvlistValue(common::KeyValueList {
                            values: vec![attribute("d", Some(V::DoubleValue(0.5)))],
                        })),
                    ),
                ],
                ..proto_span()
            }),
        ),
        (
            "empty list, empty map, empty value, value left out",
            json_span(
                r#""attributes":[{"key":"lk.provider_tools","value":{"arrayValue":{}}},
                                 {"key":"map","value":{"kvlistValue":{}}},
                                 {"key":"unset","value":{}},
                                 {"key":"absent"},
                                 {"key":"nulls","value":{"arrayValue":{"values":null}}}]"#,
            ),
            with_attributes(vec![
                attribute(
                    "lk.provider_tools",
                    Some(V::ArrayValue(common::ArrayValue::default())),
                ),
                attribute("map", Some(V::KvlistValue(common::KeyValueList::default()))),
                attribute("unset", None),
                common::KeyValue {
                    key: "absent".into(),
                    ..Default::default()
                },
                attribute("nulls", Some(V::ArrayValue(common::ArrayValue::default()))),
            ]),
        ),
        (
            "64-bit integers as strings and as numbers",
            json_request(&format!(
                r#"{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"llm",
                    "startTimeUnixNano":{START},"endTimeUnixNano":"{END}","flags":"257",
                    "attributes":[{{"key":"a","value":{{"intValue":"-9223372036854775808"}}}},
                                  {{"key":"b","value":{{"intValue":42}}}},
                                  {{"key":"c","value":{{"intValue":1e3}}}}]}}"#
            )),
            proto_request(trace::Span {
                flags: 257,
                attributes: vec![
                    attribute("a", Some(V::IntValue(i64::MIN))),
                    attribute("b", Some(V::IntValue(42))),
                    attribute("c", Some(V::IntValue(1000))),
                ],
                ..proto_span()
            }),
        ),
        (
            "enums as names",
            json_span(
                r#""kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR","message":"boom"}"#,
            ),
            proto_request(trace::Span {
                kind: 3,
                status: Some(trace::Status {
                    code: 2,
                    message: "boom".into(),
                }),
                ..proto_span()
            }),
        ),
        (
            "enums as numbers, and as numbers in strings",
            json_span(r#""kind":2,"status":{"code":"1"}"#),
            proto_request(trace::Span {
                kind: 2,
                status: Some(trace::Status {
                    code: 1,
                    message: String::new(),
                }),
                ..proto_span()
            }),
        ),
        (
            "bytes in base64, padded, unpadded and URL-safe",
            json_span(
                r#""attributes":[{"key":"a","value":{"bytesValue":"aGVsbG8="}},
                                 {"key":"b","value":{"bytesValue":"aGVsbG8"}},
                                 {"key":"c","value":{"bytesValue":"-_8="}}]"#,
            ),
            with_attributes(vec![
                attribute("a", Some(V::BytesValue(b"hello".to_vec()))),
                attribute("b", Some(V::BytesValue(b"hello".to_vec()))),
                attribute("c", Some(V::BytesValue(vec![0xfb, 0xff]))),
            ]),
        ),
        (
            "doubles as numbers and as strings",
            json_span(
                r#""attributes":[{"key":"a","value":{"doubleValue":0.25}},
                                 {"key":"b","value":{"doubleValue":"1.5"}},
                                 {"key":"c","value":{"doubleValue":"Infinity"}},
                                 {"key":"d","value":{"doubleValue":3}}]"#,
            ),
            with_attributes(vec![
                attribute("a", Some(V::DoubleValue(0.25))),
                attribute("b", Some(V::DoubleValue(1.5))),
                attribute("c", Some(V::DoubleValue(f64::INFINITY))),
                attribute("d", Some(V::DoubleValue(3.0))),
            ]),
        ),
        (
            "unknown fields ignored at every level",
            format!(
                r#"{{"future":1,"resourceSpans":[{{"schemaUrl":"s","resource":{{"droppedAttributesCount":0,"entityRefs":[]}},
                    "scopeSpans":[{{"scope":{{"name":"pipecat","attributes":[]}},"schemaUrl":"s",
                    "spans":[{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"llm","newField":{{"x":[1]}},
                    "startTimeUnixNano":"{START}","endTimeUnixNano":"{END}",
                    "attributes":[{{"key":"k","value":{{"stringValue":"v"}},"extra":true}}],
                    "status":{{"code":0,"future":"x"}}}}]}}]}}]}}"#
            ),
            collector::ExportTraceServiceRequest {
                resource_spans: vec![trace::ResourceSpans {
                    resource: Some(resource::Resource::default()),
                    scope_spans: vec![trace::ScopeSpans {
                        scope: Some(common::InstrumentationScope {
                            name: "pipecat".into(),
                            ..Default::default()
                        }),
                        spans: vec![trace::Span {
                            attributes: vec![attribute("k", Some(V::StringValue("v".into())))],
                            status: Some(trace::Status::default()),
                            ..proto_span()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
        ),
        (
            "upper-case hex and base64 ids",
            json_request(&format!(
                r#"{{"traceId":"{}","spanId":"ERITFBUWFxg=","name":"llm",
                    "startTimeUnixNano":"{START}","endTimeUnixNano":"{END}"}}"#,
                TRACE_HEX.to_uppercase()
            )),
            proto_request(proto_span()),
        ),
        (
            "resource, scope, events and links",
            format!(
                r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"agent"}}}}]}},
                    "scopeSpans":[{{"scope":{{"name":"livekit-agents","version":"1.8"}},
                    "spans":[{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"llm",
                    "startTimeUnixNano":"{START}","endTimeUnixNano":"{END}",
                    "events":[{{"timeUnixNano":"{START}","name":"interrupted","attributes":[{{"key":"k","value":{{"boolValue":false}}}}]}},{{}}],
                    "droppedEventsCount":1,
                    "links":[{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}"}},{{"traceId":"","spanId":""}}],
                    "droppedLinksCount":"3"}}]}}]}}]}}"#
            ),
            collector::ExportTraceServiceRequest {
                resource_spans: vec![trace::ResourceSpans {
                    resource: Some(resource::Resource {
                        attributes: vec![attribute(
                            "service.name",
                            Some(V::StringValue("agent".into())),
                        )],
                        ..Default::default()
                    }),
                    scope_spans: vec![trace::ScopeSpans {
                        scope: Some(common::InstrumentationScope {
                            name: "livekit-agents".into(),
                            version: "1.8".into(),
                            ..Default::default()
                        }),
                        spans: vec![trace::Span {
                            events: vec![
                                trace::span::Event {
                                    time_unix_nano: START,
                                    name: "interrupted".into(),
                                    attributes: vec![attribute("k", Some(V::BoolValue(false)))],
                                    ..Default::default()
                                },
                                trace::span::Event::default(),
                            ],
                            dropped_events_count: 1,
                            links: vec![
                                trace::span::Link {
                                    trace_id: trace_id(),
                                    span_id: span_id(),
                                    ..Default::default()
                                },
                                trace::span::Link::default(),
                            ],
                            dropped_links_count: 3,
                            ..proto_span()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
        ),
        (
            "empty ids reject that span only",
            json_request(&format!(
                r#"{{"traceId":"","spanId":"{SPAN_HEX}","name":"bad","startTimeUnixNano":"{START}"}},
                   {{"spanId":"{SPAN_HEX}","name":"no trace id","startTimeUnixNano":"{START}"}},
                   {{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"llm",
                     "startTimeUnixNano":"{START}","endTimeUnixNano":"{END}"}}"#
            )),
            collector::ExportTraceServiceRequest {
                resource_spans: vec![trace::ResourceSpans {
                    scope_spans: vec![trace::ScopeSpans {
                        spans: vec![
                            trace::Span {
                                span_id: span_id(),
                                name: "bad".into(),
                                start_time_unix_nano: START,
                                ..Default::default()
                            },
                            trace::Span {
                                span_id: span_id(),
                                name: "no trace id".into(),
                                start_time_unix_nano: START,
                                ..Default::default()
                            },
                            proto_span(),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            },
        ),
        (
            "empty request and empty containers",
            r#"{"resourceSpans":[{},{"scopeSpans":[{},{"spans":[]}]}]}"#.to_string(),
            collector::ExportTraceServiceRequest {
                resource_spans: vec![
                    trace::ResourceSpans::default(),
                    trace::ResourceSpans {
                        scope_spans: vec![trace::ScopeSpans::default(); 2],
                        ..Default::default()
                    },
                ],
            },
        ),
    ];
    for (name, json, protobuf) in cases {
        let from_json = via_json(&json);
        let from_protobuf = via_protobuf(protobuf);
        assert_eq!(from_json, from_protobuf, "case: {name}");
        assert!(
            !from_json.0.is_empty() || name.starts_with("empty request"),
            "case {name} converted no span"
        );
    }
}

#[test]
fn empty_collections_render_as_empty_json() {
    let (spans, rejected, _) = via_json(&json_span(
        r#""attributes":[{"key":"lk.provider_tools","value":{"arrayValue":{}}},
                         {"key":"map","value":{"kvlistValue":{}}},
                         {"key":"unset","value":{}}]"#,
    ));
    assert!(rejected.is_empty());
    let attributes = &spans[0].attributes;
    assert_eq!(attributes.get("lk.provider_tools"), Some("[]"));
    assert_eq!(attributes.get("map"), Some("{}"));
    assert_eq!(attributes.get("unset"), Some(""));
}

#[test]
fn empty_ids_are_rejected_per_span_with_the_reason() {
    let (spans, rejected, _) = via_json(&json_request(&format!(
        r#"{{"traceId":"","spanId":"{SPAN_HEX}","name":"bad","startTimeUnixNano":"{START}"}},
           {{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"llm","startTimeUnixNano":"{START}"}}"#
    )));
    assert_eq!(spans.len(), 1);
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].contains("trace_id"), "{rejected:?}");
}

#[test]
fn unreadable_structure_is_refused_with_its_path() {
    let cases = [
        (r#"{"resourceSpans": ["#, "EOF"),
        ("[]", "$: expected an object, found a list"),
        (
            r#"{"resourceSpans":{}}"#,
            "$.resourceSpans: expected a list, found an object",
        ),
        (
            r#"{"resourceSpans":[5]}"#,
            "$.resourceSpans[0]: expected an object, found a number",
        ),
        (
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":"x"}]}]}"#,
            "$.resourceSpans[0].scopeSpans[0].spans: expected a list, found a string",
        ),
    ];
    for (body, expected) in cases {
        let error = decode(body.as_bytes())
            .map(|_| ())
            .expect_err(body)
            .to_string();
        assert!(error.contains(expected), "{body}\n{error}");
    }
}

#[test]
fn a_span_with_a_wrong_shape_is_rejected_with_its_path_and_the_others_kept() {
    let good = format!(
        r#"{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"good","startTimeUnixNano":"{START}"}}"#
    );
    let bad =
        |fields: &str| format!(r#"{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}",{fields}}}"#);
    let cases = [
        (
            bad(r#""name":"n","attributes":[{"key":"k","value":{"intValue":"x"}}]"#),
            "'n': $.resourceSpans[0].scopeSpans[0].spans[1].attributes[0].value.intValue: expected an integer",
        ),
        (
            bad(r#""attributes":[{"key":"k","value":{"intValue":"9223372036854775808"}}]"#),
            "expected an integer in range",
        ),
        (
            bad(r#""attributes":[{"key":"k","value":{"bytesValue":"%%"}}]"#),
            "bytesValue: invalid base64",
        ),
        (
            bad(r#""attributes":[{"key":"k","value":{"arrayValue":[]}}]"#),
            "arrayValue: expected an object, found a list",
        ),
        (
            bad(r#""name":5"#),
            "a span: $.resourceSpans[0].scopeSpans[0].spans[1].name: expected a string, found a number",
        ),
        (
            r#"{"traceId":"xyz!","spanId":"00","name":"x"}"#.to_owned(),
            r#"'x': $.resourceSpans[0].scopeSpans[0].spans[1].traceId: "xyz!" is neither hex nor base64"#,
        ),
        ("7".to_owned(), "a span: $.resourceSpans[0].scopeSpans[0].spans[1]: expected an object"),
    ];
    for (span, expected) in cases {
        let body = json_request(&format!("{good},{span}"));
        let decoded = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
        let spans = &decoded.request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 1, "{body}");
        assert_eq!(spans[0].name, b"good");
        assert_eq!(decoded.rejected.len(), 1, "{body}");
        assert!(
            decoded.rejected[0].contains(expected),
            "{body}\n{:?}",
            decoded.rejected
        );
    }
}

#[test]
fn a_resource_or_scope_with_a_wrong_shape_rejects_the_spans_under_it() {
    let span = |name: &str| {
        format!(
            r#"{{"traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","name":"{name}","startTimeUnixNano":"{START}"}}"#
        )
    };
    let body = format!(
        r#"{{"resourceSpans":[
            {{"resource":{{"attributes":5}},"scopeSpans":[{{"spans":[{a},{b}]}}]}},
            {{"scopeSpans":[{{"scope":{{"name":[]}},"spans":[{c}]}},{{"spans":[{d}]}}]}}]}}"#,
        a = span("a"),
        b = span("b"),
        c = span("c"),
        d = span("d"),
    );
    let decoded = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
    let (spans, rejected, _) = rows(convert(decoded.request, &SpanLimits::default(), NOW));
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["d"]);
    assert!(rejected.is_empty());
    assert_eq!(
        decoded.rejected,
        [
            "'a': $.resourceSpans[0].resource.attributes: expected a list, found a number",
            "'b': $.resourceSpans[0].resource.attributes: expected a list, found a number",
            "'c': $.resourceSpans[1].scopeSpans[0].scope.name: expected a string, found a list",
        ]
    );
}

#[test]
fn corrupted_json_never_panics() {
    use rand::{Rng, SeedableRng};
    let valid = json_span(
        r#""kind":"SPAN_KIND_CLIENT","attributes":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":"1"},{"kvlistValue":{"values":[{"key":"b","value":{"bytesValue":"aGk="}}]}}]}}}],
           "events":[{"timeUnixNano":"1","name":"e"}],"status":{"code":"STATUS_CODE_ERROR"}"#,
    )
    .into_bytes();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for _ in 0..5000 {
        let mut bytes = valid.clone();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..bytes.len());
            let noise = b"{}[]\":,0-9eE.a\\ ";
            bytes[at] = noise[rng.random_range(0..noise.len())];
        }
        if let Ok(decoded) = decode(&bytes) {
            let _ = convert(decoded.request, &SpanLimits::default(), NOW);
        }
    }
}

#[test]
fn logs_decode_like_their_protobuf() {
    use crate::model::log::{self, ExportLogsServiceRequest};
    use opentelemetry_proto::tonic::collector::logs::v1 as logs_collector;
    use opentelemetry_proto::tonic::logs::v1 as logs;
    let official = logs_collector::ExportLogsServiceRequest {
        resource_logs: vec![logs::ResourceLogs {
            resource: Some(resource::Resource {
                attributes: vec![common::KeyValue {
                    key: "service.name".into(),
                    value: Some(common::AnyValue {
                        value: Some(common::any_value::Value::StringValue("agent".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![logs::ScopeLogs {
                log_records: vec![logs::LogRecord {
                    time_unix_nano: START,
                    observed_time_unix_nano: END,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: Some(common::AnyValue {
                        value: Some(common::any_value::Value::StringValue("tool failed".into())),
                    }),
                    trace_id: trace_id(),
                    span_id: span_id(),
                    event_name: "tool.error".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let limits = SpanLimits::default();
    let via_protobuf = log::convert(
        ExportLogsServiceRequest::decode(official.encode_to_vec().as_slice()).expect("decodes"),
        &limits,
        NOW,
    );
    // What the official types serialize, and the same by hand with the shapes the mapping
    // allows: an enum by name, 64-bit integers as numbers, .proto field names.
    let serialized = serde_json::to_string(&official).expect("serializes");
    let by_hand = format!(
        r#"{{"resource_logs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"agent"}}}}]}},
            "scopeLogs":[{{"logRecords":[{{"timeUnixNano":{START},"observed_time_unix_nano":"{END}",
            "severityNumber":"SEVERITY_NUMBER_ERROR","severityText":"ERROR","body":{{"stringValue":"tool failed"}},
            "traceId":"{TRACE_HEX}","spanId":"{SPAN_HEX}","eventName":"tool.error","attributes":[]}}]}}]}}]}}"#
    );
    for body in [serialized, by_hand] {
        let decoded = decode_logs(body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{body}"));
        let via_json = log::convert(decoded, &limits, NOW);
        assert_eq!(via_json.records, via_protobuf.records, "{body}");
        assert!(via_json.rejected.is_empty() && via_json.repaired.is_empty());
    }
    assert_eq!(via_protobuf.records[0].severity_number, 17);
    let wrong =
        decode_logs(br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":"text"}]}]}]}"#);
    assert!(
        matches!(&wrong, Err(JsonError::Shape { path, .. }) if path == "$.resourceLogs[0].scopeLogs[0].logRecords[0].body"),
        "{wrong:?}"
    );
}
