//! The bad-input catalogue: every kind of bad or odd export request the receivers know, each
//! with the answer it gets and the spans (or log records) stored from it. Where a request
//! carries valid spans next to the bad one, those valid spans are stored. All cases run
//! against one app, each in its own trace. The logs path (`LogsService/Export`,
//! `POST /v1/logs`) shares the traces' checks, and its cases expect the same answers.

mod common;

use std::io::Write;

use common::*;
use convolog::config::{KeyConfig, TenantConfig};
use convolog::tenants::{hash_key, Scope};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A small request limit, so the oversized body stays small too.
const MAX_REQUEST_BYTES: usize = 256 * 1024;
const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1024;

/// How a request travels.
enum Sent {
    Grpc(ExportTraceServiceRequest),
    Http {
        body: Vec<u8>,
        content_type: &'static str,
        content_encoding: Option<&'static str>,
    },
    LogsGrpc(ExportLogsServiceRequest),
    /// A body for `POST /v1/logs`.
    LogsHttp {
        body: Vec<u8>,
        content_type: &'static str,
        content_encoding: Option<&'static str>,
    },
}

/// What the receiver answers.
enum Answer {
    /// Accepted, with `partial_success` listing `rejected` spans and a message containing
    /// `message` (both zero and "" mean no `partial_success` at all).
    Accepted {
        rejected: i64,
        message: &'static str,
    },
    GrpcError(tonic::Code, &'static str),
    HttpError(u16, &'static str),
}

struct Case {
    name: &'static str,
    sent: Sent,
    answer: Answer,
    /// `SELECT count() ...` queries and the count each must reach.
    stored: Vec<(String, u64)>,
}

fn cases(anchor: u64) -> Vec<Case> {
    let ok = |t, id, name| SpanSpec::new(t, id, name).at(0, 10).build(anchor);
    let with = |t, id, name, change: &dyn Fn(&mut Span)| {
        let mut span = ok(t, id, name);
        change(&mut span);
        span
    };
    let ns = 1_000_000_000u64;
    let day = 24 * 3600 * ns;
    vec![
        Case {
            name: "empty trace id",
            sent: grpc(vec![ok(1, 1, "good"), with(1, 2, "bad", &|s| s.trace_id.clear())]),
            answer: rejected(1, "trace_id is empty"),
            stored: vec![named(1, "good", 1), in_trace(1, 1)],
        },
        Case {
            name: "trace id of the wrong length",
            sent: grpc(vec![ok(2, 1, "good"), with(2, 2, "bad", &|s| s.trace_id.truncate(8))]),
            answer: rejected(1, "trace_id has 8 bytes, expected 16"),
            stored: vec![named(2, "good", 1), in_trace(2, 1)],
        },
        Case {
            name: "all-zero trace id",
            sent: grpc(vec![ok(3, 1, "good"), with(3, 2, "bad", &|s| s.trace_id = vec![0; 16])]),
            answer: rejected(1, "trace_id"),
            stored: vec![named(3, "good", 1), count_where(&format!("trace_id = '{}'", "0".repeat(32)), 0)],
        },
        Case {
            name: "empty span id",
            sent: grpc(vec![ok(4, 1, "good"), with(4, 2, "bad", &|s| s.span_id.clear())]),
            answer: rejected(1, "span_id is empty"),
            stored: vec![named(4, "good", 1), in_trace(4, 1)],
        },
        Case {
            name: "span id of the wrong length",
            sent: grpc(vec![ok(5, 1, "good"), with(5, 2, "bad", &|s| s.span_id = vec![7; 16])]),
            answer: rejected(1, "span_id has 16 bytes, expected 8"),
            stored: vec![named(5, "good", 1), in_trace(5, 1)],
        },
        Case {
            name: "all-zero span id",
            sent: grpc(vec![ok(6, 1, "good"), with(6, 2, "bad", &|s| s.span_id = vec![0; 8])]),
            answer: rejected(1, "span_id"),
            stored: vec![named(6, "good", 1), in_trace(6, 1)],
        },
        Case {
            name: "parent id of the wrong length",
            sent: grpc(vec![
                ok(7, 1, "good"),
                with(7, 2, "bad", &|s| s.parent_span_id = vec![1; 4]),
            ]),
            answer: rejected(1, "parent_span_id has 4 bytes, expected 8"),
            stored: vec![named(7, "good", 1), in_trace(7, 1)],
        },
        Case {
            name: "end before start (repaired)",
            sent: grpc(vec![
                ok(8, 1, "good"),
                with(8, 2, "reversed", &|s| {
                    s.end_time_unix_nano = s.start_time_unix_nano - 5
                }),
            ]),
            answer: repaired("end before start, end set to start"),
            stored: vec![
                named(8, "good", 1),
                kept(8, "reversed", "duration_ns = 0"),
            ],
        },
        Case {
            name: "start before 2000",
            sent: grpc(vec![
                ok(9, 1, "good"),
                with(9, 2, "ancient", &|s| s.start_time_unix_nano = 1_000),
            ]),
            answer: rejected(1, "outside the accepted range"),
            stored: vec![named(9, "good", 1), in_trace(9, 1)],
        },
        Case {
            name: "start over a day ahead",
            sent: grpc(vec![
                ok(10, 1, "good"),
                with(10, 2, "future", &|s| {
                    s.start_time_unix_nano = anchor + 2 * day;
                    s.end_time_unix_nano = anchor + 2 * day + ns;
                }),
            ]),
            answer: rejected(1, "outside the accepted range"),
            stored: vec![named(10, "good", 1), in_trace(10, 1)],
        },
        Case {
            name: "spans over 99 days apart in one request",
            sent: grpc(vec![
                ok(11, 1, "good"),
                with(11, 2, "old", &|s| {
                    s.start_time_unix_nano = anchor - 120 * day;
                    s.end_time_unix_nano = anchor - 120 * day + ns;
                }),
            ]),
            answer: rejected(1, "more than 99 days before the latest span"),
            stored: vec![named(11, "good", 1), in_trace(11, 1)],
        },
        Case {
            name: "invalid UTF-8 in a span name (repaired)",
            sent: http_protobuf(corrupt(
                request("agent", "pipecat", vec![ok(12, 1, "good"), ok(12, 2, "QQQQ")]),
                b"QQQQ",
            )),
            answer: repaired("invalid UTF-8 replaced"),
            stored: vec![named(12, "good", 1), named(12, "Q\u{fffd}\u{fffd}Q", 1)],
        },
        Case {
            name: "invalid UTF-8 in an attribute value (repaired)",
            sent: http_protobuf(corrupt(
                request(
                    "agent",
                    "pipecat",
                    vec![
                        ok(13, 1, "good"),
                        SpanSpec::new(13, 2, "odd")
                            .at(0, 10)
                            .attributes([kv("transcript", "WWWW")])
                            .build(anchor),
                    ],
                ),
                b"WWWW",
            )),
            answer: repaired("invalid UTF-8 replaced"),
            stored: vec![
                named(13, "good", 1),
                count_where(
                    &format!(
                        "{} AND attributes.value[indexOf(attributes.key, 'transcript')] = 'W\u{fffd}\u{fffd}W'",
                        trace(13)
                    ),
                    1,
                ),
            ],
        },
        Case {
            name: "oversized attribute value (cut)",
            sent: grpc(vec![
                ok(14, 1, "good"),
                SpanSpec::new(14, 2, "long")
                    .at(0, 10)
                    .attributes([kv("transcript", "é".repeat(MAX_ATTRIBUTE_VALUE_BYTES))])
                    .build(anchor),
            ]),
            answer: repaired("attribute 'transcript' truncated from 2048 bytes"),
            stored: vec![
                named(14, "good", 1),
                count_where(
                    &format!(
                        "{} AND length(attributes.value[indexOf(attributes.key, 'transcript')]) = {MAX_ATTRIBUTE_VALUE_BYTES}",
                        trace(14)
                    ),
                    1,
                ),
            ],
        },
        Case {
            name: "too many attributes (cut)",
            sent: grpc(vec![
                ok(15, 1, "good"),
                SpanSpec::new(15, 2, "crowded")
                    .at(0, 10)
                    .attributes((0..1030i64).map(|i| kv(&format!("k{i}"), i)))
                    .build(anchor),
            ]),
            answer: repaired("6 attributes over the limit of 1024 dropped"),
            stored: vec![
                named(15, "good", 1),
                count_where(
                    &format!(
                        "{} AND length(attributes.key) = 1024 AND dropped_attributes_count = 6",
                        trace(15)
                    ),
                    1,
                ),
            ],
        },
        Case {
            name: "too many events (cut)",
            sent: grpc(vec![
                ok(16, 1, "good"),
                with(16, 2, "chatty", &|s| {
                    s.events = (0..1030)
                        .map(|_| Event {
                            time_unix_nano: anchor,
                            name: "e".into(),
                            ..Default::default()
                        })
                        .collect()
                }),
            ]),
            answer: repaired("6 events over the limit of 1024 dropped"),
            stored: vec![
                named(16, "good", 1),
                count_where(
                    &format!(
                        "{} AND length(events.name) = 1024 AND dropped_events_count = 6",
                        trace(16)
                    ),
                    1,
                ),
            ],
        },
        Case {
            name: "huge scope name (cut)",
            sent: Sent::Grpc(with_scope(
                request("agent", "pipecat", vec![ok(17, 1, "a"), ok(17, 2, "b")]),
                "s".repeat(10_000),
            )),
            answer: repaired("scope name truncated from 10000 bytes"),
            stored: vec![count_where(
                &format!("{} AND length(scope_name) = 1024", trace(17)),
                2,
            )],
        },
        Case {
            name: "many resource attributes (cut)",
            sent: Sent::Grpc(with_resource(
                request("agent", "pipecat", vec![ok(18, 1, "a"), ok(18, 2, "b")]),
                (0..1100i64).map(|i| kv(&format!("r{i}"), i)).collect(),
            )),
            answer: repaired("972 resource attributes over the limit of 128 dropped"),
            stored: vec![count_where(
                &format!("{} AND length(resource_attributes.key) = 128", trace(18)),
                2,
            )],
        },
        Case {
            name: "NaN, infinite and huge numeric attributes",
            sent: grpc(vec![SpanSpec::new(19, 1, "numbers")
                .at(0, 10)
                .attributes([
                    kv("nan", f64::NAN),
                    kv("inf", f64::INFINITY),
                    kv("huge", f64::MAX),
                    kv("big", i64::MIN),
                ])
                .build(anchor)]),
            answer: accepted(),
            stored: vec![count_where(
                &format!(
                    "{} AND attributes.value[indexOf(attributes.key, 'nan')] = 'NaN' AND attributes.value[indexOf(attributes.key, 'inf')] = 'inf' AND attributes.value[indexOf(attributes.key, 'big')] = '{}'",
                    trace(19),
                    i64::MIN
                ),
                1,
            )],
        },
        Case {
            name: "session key over 256 bytes (hashed)",
            sent: grpc(vec![SpanSpec::new(20, 1, "conversation")
                .at(0, 10)
                .attributes([kv("conversation.id", long_session_key())])
                .build(anchor)]),
            answer: accepted(),
            stored: vec![
                in_trace(20, 1),
                (
                    format!(
                        "SELECT count() FROM sessions WHERE session_id = '{}'",
                        convolog::sessionize::bounded_key(&long_session_key())
                    ),
                    1,
                ),
            ],
        },
        Case {
            name: "duplicate spans (stored once in counts)",
            sent: grpc(vec![ok(21, 1, "twice"), ok(21, 1, "twice")]),
            answer: accepted(),
            stored: vec![(
                format!("SELECT uniqExact(span_id) FROM spans WHERE {}", trace(21)),
                1,
            )],
        },
        Case {
            name: "empty request",
            sent: Sent::Grpc(ExportTraceServiceRequest::default()),
            answer: accepted(),
            stored: vec![],
        },
        Case {
            name: "empty HTTP protobuf body",
            sent: http_protobuf(Vec::new()),
            answer: accepted(),
            stored: vec![],
        },
        Case {
            name: "resources without spans",
            sent: Sent::Grpc(request("agent-without-spans", "pipecat", vec![])),
            answer: accepted(),
            stored: vec![count_where("service_name = 'agent-without-spans'", 0)],
        },
        Case {
            name: "malformed protobuf",
            sent: http_protobuf(vec![0xff, 0x01, 0x02, 0x03]),
            answer: Answer::HttpError(400, "malformed OTLP protobuf"),
            stored: vec![],
        },
        Case {
            name: "truncated protobuf",
            sent: http_protobuf({
                let body = request("agent", "pipecat", vec![ok(26, 1, "cut")]).encode_to_vec();
                body[..body.len() - 7].to_vec()
            }),
            answer: Answer::HttpError(400, "malformed OTLP protobuf"),
            stored: vec![in_trace(26, 0)],
        },
        Case {
            name: "malformed JSON",
            sent: http_json(b"{\"resourceSpans\": [".to_vec()),
            answer: Answer::HttpError(400, "malformed OTLP/JSON"),
            stored: vec![],
        },
        Case {
            name: "JSON with a wrong value type (span rejected)",
            sent: http_json(json_request(
                anchor,
                &[
                    json_span(28, 1, "\"good\"", "[]"),
                    json_span(28, 2, "5", "[]"),
                ],
            )),
            answer: rejected(
                1,
                "a span: $.resourceSpans[0].scopeSpans[0].spans[1].name: expected a string, found a number",
            ),
            stored: vec![named(28, "good", 1), in_trace(28, 1)],
        },
        Case {
            name: "JSON shapes the mapping allows",
            sent: http_json(json_request(
                anchor,
                &[json_span(
                    29,
                    1,
                    "\"shapes\"",
                    r#"[{"key":"list","value":{"arrayValue":{}}},
                        {"key":"map","value":{"kvlistValue":{}}},
                        {"key":"empty","value":{}},
                        {"key":"count","value":{"intValue":"42"}}]"#,
                )
                .replace("\"kind\":1", "\"kind\":\"SPAN_KIND_CLIENT\"")],
            )),
            answer: accepted(),
            stored: vec![count_where(
                &format!(
                    "{} AND kind = 'CLIENT' AND attributes.value[indexOf(attributes.key, 'count')] = '42'",
                    trace(29)
                ),
                1,
            )],
        },
        Case {
            name: "unsupported Content-Type",
            sent: Sent::Http {
                body: request("agent", "pipecat", vec![ok(30, 1, "plain")]).encode_to_vec(),
                content_type: "text/plain",
                content_encoding: None,
            },
            answer: Answer::HttpError(415, "unsupported Content-Type"),
            stored: vec![in_trace(30, 0)],
        },
        Case {
            name: "unsupported Content-Encoding",
            sent: Sent::Http {
                body: request("agent", "pipecat", vec![ok(31, 1, "brotli")]).encode_to_vec(),
                content_type: "application/x-protobuf",
                content_encoding: Some("br"),
            },
            answer: Answer::HttpError(400, "unsupported Content-Encoding"),
            stored: vec![in_trace(31, 0)],
        },
        Case {
            name: "corrupt gzip",
            sent: Sent::Http {
                body: {
                    let mut body = gzip(&request("agent", "pipecat", vec![ok(32, 1, "z")]).encode_to_vec());
                    let middle = body.len() / 2;
                    body[middle] ^= 0xff;
                    body.truncate(body.len() - 4);
                    body
                },
                content_type: "application/x-protobuf",
                content_encoding: Some("gzip"),
            },
            answer: Answer::HttpError(400, "corrupt gzip body"),
            stored: vec![in_trace(32, 0)],
        },
        Case {
            name: "gzip body over max_request_bytes once inflated",
            sent: Sent::Http {
                body: gzip(&vec![0u8; 4 * MAX_REQUEST_BYTES]),
                content_type: "application/x-protobuf",
                content_encoding: Some("gzip"),
            },
            answer: Answer::HttpError(413, "over the limit of 262144 bytes"),
            stored: vec![],
        },
        Case {
            name: "valid gzip protobuf",
            sent: Sent::Http {
                body: gzip(&request("agent", "pipecat", vec![ok(34, 1, "zipped")]).encode_to_vec()),
                content_type: "application/x-protobuf",
                content_encoding: Some("gzip"),
            },
            answer: accepted(),
            stored: vec![named(34, "zipped", 1)],
        },
        Case {
            name: "gRPC request over max_request_bytes",
            sent: grpc(vec![SpanSpec::new(35, 1, "big")
                .at(0, 10)
                .attributes([kv("blob", "x".repeat(MAX_REQUEST_BYTES + 1))])
                .build(anchor)]),
            answer: Answer::GrpcError(tonic::Code::InvalidArgument, "over the limit of 262144 bytes"),
            stored: vec![in_trace(35, 0)],
        },
        Case {
            name: "several bad spans among good ones in several scopes",
            sent: Sent::Grpc(two_resources(
                request("agent", "pipecat", vec![ok(36, 1, "a"), with(36, 2, "bad", &|s| s.span_id.clear())]),
                request("other", "livekit", vec![with(36, 3, "bad", &|s| s.trace_id = vec![0; 16]), ok(36, 4, "b")]),
            )),
            answer: rejected(2, "2 span(s) rejected"),
            stored: vec![named(36, "a", 1), named(36, "b", 1), in_trace(36, 2)],
        },
        Case {
            name: "end over a day ahead (repaired)",
            sent: grpc(vec![
                ok(39, 1, "good"),
                with(39, 2, "endless", &|s| s.end_time_unix_nano = anchor + 2 * day),
            ]),
            answer: repaired("end too far in the future, end set to start"),
            stored: vec![
                named(39, "good", 1),
                kept(39, "endless", "duration_ns = 0"),
            ],
        },
        Case {
            name: "link with an invalid id (dropped)",
            sent: grpc(vec![
                ok(40, 1, "good"),
                with(40, 2, "linked", &|s| {
                    s.links = vec![Link {
                        trace_id: vec![1; 3],
                        span_id: span_id(1),
                        ..Default::default()
                    }]
                }),
            ]),
            answer: repaired("link with an invalid id dropped"),
            stored: vec![
                named(40, "good", 1),
                kept(40, "linked", "length(links.trace_id) = 0"),
            ],
        },
        Case {
            name: "JSON id neither hex nor base64 (span rejected)",
            sent: http_json(json_request(
                anchor,
                &[
                    json_span(41, 1, "\"good\"", "[]"),
                    json_span(41, 2, "\"bad\"", "[]").replace(&hex::encode(span_id(2)), "not-an-id!"),
                ],
            )),
            answer: rejected(
                1,
                "'bad': $.resourceSpans[0].scopeSpans[0].spans[1].spanId: \"not-an-id!\" is neither hex nor base64",
            ),
            stored: vec![named(41, "good", 1), in_trace(41, 1)],
        },
        Case {
            name: "Content-Type with a charset",
            sent: Sent::Http {
                body: json_request(anchor, &[json_span(42, 1, "\"charset\"", "[]")]),
                content_type: "application/json; charset=utf-8",
                content_encoding: None,
            },
            answer: accepted(),
            stored: vec![named(42, "charset", 1)],
        },
        Case {
            name: "JSON with the .proto field names",
            sent: http_json(
                String::from_utf8(json_request(anchor, &[json_span(43, 1, "\"snake\"", "[]")]))
                    .expect("UTF-8")
                    .replace("resourceSpans", "resource_spans")
                    .replace("scopeSpans", "scope_spans")
                    .replace("traceId", "trace_id")
                    .replace("spanId", "span_id")
                    .replace("startTimeUnixNano", "start_time_unix_nano")
                    .replace("endTimeUnixNano", "end_time_unix_nano")
                    .into_bytes(),
            ),
            answer: accepted(),
            stored: vec![named(43, "snake", 1)],
        },
        Case {
            name: "JSON attribute of the wrong type (span rejected)",
            sent: http_json(json_request(
                anchor,
                &[
                    json_span(44, 1, "\"good\"", "[]"),
                    json_span(44, 2, "\"odd\"", r#"[{"key":"k","value":{"intValue":"x"}}]"#),
                ],
            )),
            answer: rejected(1, "'odd': $.resourceSpans[0].scopeSpans[0].spans[1].attributes[0].value.intValue: expected an integer"),
            stored: vec![named(44, "good", 1), in_trace(44, 1)],
        },
        Case {
            name: "JSON resource of the wrong type (its spans rejected)",
            sent: http_json(
                format!(
                    r#"{{"resourceSpans":[
                        {{"resource":{{"attributes":{{"service.name":"agent"}}}},"scopeSpans":[{{"spans":[{},{}]}}]}},
                        {{"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
                    json_span(45, 1, "\"a\"", "[]"),
                    json_span(45, 2, "\"b\"", "[]"),
                    json_span(45, 3, "\"good\"", "[]"),
                )
                .replace("START", &anchor.to_string())
                .into_bytes(),
            ),
            answer: rejected(2, "'a': $.resourceSpans[0].resource.attributes: expected a list, found an object"),
            stored: vec![named(45, "good", 1), in_trace(45, 1)],
        },
        Case {
            // Without a readable list of spans there is nothing to keep.
            name: "JSON spans that are not a list (refused)",
            sent: http_json(br#"{"resourceSpans":[{"scopeSpans":[{"spans":{}}]}]}"#.to_vec()),
            answer: Answer::HttpError(
                400,
                "$.resourceSpans[0].scopeSpans[0].spans: expected a list, found an object",
            ),
            stored: vec![],
        },
        Case {
            name: "too many event attributes (cut)",
            sent: grpc(vec![
                ok(47, 1, "good"),
                with(47, 2, "eventful", &|s| {
                    s.events = vec![Event {
                        time_unix_nano: anchor,
                        name: "e".into(),
                        attributes: (0..1030i64).map(|i| kv(&format!("k{i}"), i)).collect(),
                        ..Default::default()
                    }]
                }),
            ]),
            answer: repaired("6 event attributes over the limit of 1024 dropped"),
            stored: vec![named(47, "good", 1), kept(47, "eventful", &only_first_1024("events"))],
        },
        Case {
            name: "too many link attributes (cut)",
            sent: grpc(vec![
                ok(48, 1, "good"),
                with(48, 2, "linked", &|s| {
                    s.links = vec![Link {
                        trace_id: trace_id(48),
                        span_id: span_id(1),
                        attributes: (0..1030i64).map(|i| kv(&format!("k{i}"), i)).collect(),
                        ..Default::default()
                    }]
                }),
            ]),
            answer: repaired("6 link attributes over the limit of 1024 dropped"),
            stored: vec![named(48, "good", 1), kept(48, "linked", &only_first_1024("links"))],
        },
    ]
}

/// The logs path: the same checks and answers as spans, on log records.
fn log_cases(anchor: u64) -> Vec<Case> {
    let ok = |t, body: &str| log_record(anchor, t, body);
    let with = |t, body: &str, change: &dyn Fn(&mut LogRecord)| {
        let mut record = ok(t, body);
        change(&mut record);
        record
    };
    vec![
        Case {
            name: "log record with a trace id of the wrong length",
            sent: Sent::LogsGrpc(logs(vec![ok(50, "good"), with(50, "bad", &|r| r.trace_id.truncate(8))])),
            answer: rejected(1, "trace_id has 8 bytes, expected 16"),
            stored: vec![logged(50, "good", 1), logs_in_trace(50, 1)],
        },
        Case {
            name: "log record with an all-zero span id",
            sent: Sent::LogsGrpc(logs(vec![ok(51, "good"), with(51, "bad", &|r| r.span_id = vec![0; 8])])),
            answer: rejected(1, "span_id"),
            stored: vec![logged(51, "good", 1), logs_in_trace(51, 1)],
        },
        Case {
            name: "log record from before 2000",
            sent: Sent::LogsGrpc(logs(vec![ok(52, "good"), with(52, "old", &|r| r.time_unix_nano = 5)])),
            answer: rejected(1, "outside the accepted range"),
            stored: vec![logged(52, "good", 1), logs_in_trace(52, 1)],
        },
        Case {
            name: "log record without trace or time (kept, time of receipt)",
            sent: Sent::LogsGrpc(logs(vec![with(53, "untraced", &|r| {
                r.trace_id.clear();
                r.span_id.clear();
                r.time_unix_nano = 0;
            })])),
            answer: repaired("no time, the time received used"),
            stored: vec![log_count_where("body = 'untraced' AND trace_id = '' AND time_unix_nano > 0", 1)],
        },
        Case {
            name: "log body and attribute over the value limit (repaired)",
            sent: Sent::LogsGrpc(logs(vec![with(54, &"b".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 10), &|r| {
                r.attributes = vec![kv("big", "x".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 1))];
            })])),
            answer: repaired("body truncated"),
            stored: vec![log_count_where(
                &format!(
                    "{} AND length(body) = {MAX_ATTRIBUTE_VALUE_BYTES} AND length(attributes.value[1]) = {MAX_ATTRIBUTE_VALUE_BYTES}",
                    trace(54)
                ),
                1,
            )],
        },
        Case {
            name: "logs request with invalid UTF-8 (repaired)",
            sent: Sent::LogsHttp {
                body: {
                    let mut body = logs(vec![ok(55, "bad\u{fffd}text")]).encode_to_vec();
                    let at = body.windows(3).position(|w| w == "\u{fffd}".as_bytes()).expect("marker");
                    body[at..at + 3].copy_from_slice(&[0xff, 0xfe, b'!']);
                    body
                },
                content_type: "application/x-protobuf",
                content_encoding: None,
            },
            answer: repaired("invalid UTF-8 replaced"),
            stored: vec![logs_in_trace(55, 1)],
        },
        Case {
            name: "malformed logs protobuf",
            sent: logs_http(vec![0xff, 0x01, 0x02, 0x03], "application/x-protobuf", None),
            answer: Answer::HttpError(400, "malformed OTLP protobuf"),
            stored: vec![],
        },
        Case {
            name: "logs JSON with a wrong value type (record rejected)",
            sent: logs_http(
                logs_json(anchor, 57, &[r#""severityText":5"#, r#""severityText":"INFO""#]),
                "application/json",
                None,
            ),
            answer: rejected(
                1,
                "a log record: $.resourceLogs[0].scopeLogs[0].logRecords[0].severityText: expected a string, found a number",
            ),
            stored: vec![logs_in_trace(57, 1)],
        },
        Case {
            name: "logs with an unsupported Content-Type",
            sent: logs_http(logs(vec![ok(58, "plain")]).encode_to_vec(), "text/plain", None),
            answer: Answer::HttpError(415, "unsupported Content-Type"),
            stored: vec![logs_in_trace(58, 0)],
        },
        Case {
            name: "logs gzip body over max_request_bytes once inflated",
            sent: logs_http(gzip(&vec![0u8; 4 * MAX_REQUEST_BYTES]), "application/x-protobuf", Some("gzip")),
            answer: Answer::HttpError(413, "over the limit of 262144 bytes"),
            stored: vec![],
        },
        Case {
            name: "logs gRPC request over max_request_bytes",
            sent: Sent::LogsGrpc(logs(vec![ok(60, &"x".repeat(MAX_REQUEST_BYTES + 1))])),
            answer: Answer::GrpcError(tonic::Code::InvalidArgument, "over the limit of 262144 bytes"),
            stored: vec![logs_in_trace(60, 0)],
        },
        Case {
            name: "valid gzip OTLP/JSON logs, severity by name",
            sent: logs_http(
                gzip(&logs_json(anchor, 61, &[r#""severityNumber":"SEVERITY_NUMBER_ERROR""#])),
                "application/json",
                Some("gzip"),
            ),
            answer: accepted(),
            stored: vec![log_count_where(&format!("{} AND severity_number = 17", trace(61)), 1)],
        },
    ]
}

/// With ingest keys configured, a request without one is refused whole.
fn keyed_cases(anchor: u64) -> Vec<Case> {
    let spans = |t| vec![SpanSpec::new(t, 1, "good").at(0, 10).build(anchor)];
    vec![
        Case {
            name: "key required but missing (gRPC)",
            sent: grpc(spans(37)),
            answer: Answer::GrpcError(tonic::Code::Unauthenticated, "an API key is required"),
            stored: vec![in_trace(37, 0)],
        },
        Case {
            name: "key required but missing (HTTP)",
            sent: http_protobuf(request("agent", "pipecat", spans(38)).encode_to_vec()),
            answer: Answer::HttpError(401, "an API key is required"),
            stored: vec![in_trace(38, 0)],
        },
        Case {
            name: "key required but missing (logs over gRPC)",
            sent: Sent::LogsGrpc(logs(vec![log_record(anchor, 62, "keyless")])),
            answer: Answer::GrpcError(tonic::Code::Unauthenticated, "an API key is required"),
            stored: vec![logs_in_trace(62, 0)],
        },
        Case {
            name: "key required but missing (logs over HTTP)",
            sent: logs_http(
                logs(vec![log_record(anchor, 63, "keyless")]).encode_to_vec(),
                "application/x-protobuf",
                None,
            ),
            answer: Answer::HttpError(401, "an API key is required"),
            stored: vec![logs_in_trace(63, 0)],
        },
    ]
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_its_answer_and_valid_spans_are_kept() {
    let t = TestApp::start_with("bad_input", |c| {
        c.ingest.max_request_bytes = MAX_REQUEST_BYTES;
        c.ingest.max_attribute_value_bytes = MAX_ATTRIBUTE_VALUE_BYTES;
    })
    .await;
    let anchor = anchor();
    let cases: Vec<Case> = cases(anchor).into_iter().chain(log_cases(anchor)).collect();
    assert!(cases.len() >= 40, "the catalogue has {} cases", cases.len());
    let mut failures = run(&t, cases).await;
    t.stop().await;

    // The tenant's database is the app's, so the counts look there and `stop` drops it.
    let database = fresh_database("bad_input_keyed");
    let tenant = TenantConfig {
        name: "keyed".into(),
        database: Some(database.clone()),
        keys: vec![KeyConfig {
            sha256: hash_key("ingest-key"),
            scope: Scope::Ingest,
        }],
    };
    let keyed = TestApp::start_with("bad_input_keyed", |c| {
        c.clickhouse.database = database;
        c.tenants = vec![tenant];
    })
    .await;
    failures.extend(run(&keyed, keyed_cases(anchor)).await);
    keyed.stop().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Sends every case and checks its answer and what was stored; the failures, all of them.
async fn run(t: &TestApp, cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let name = case.name;
        if let Err(why) = check_answer(send(t, case.sent).await, &case.answer) {
            failures.push(format!("{name}: {why}"));
            continue;
        }
        for (sql, expected) in &case.stored {
            // Spans are stored before the answer; derived sessions follow shortly after.
            let mut last = 0;
            let reached = wait_until(async || {
                last = t.count(sql).await;
                last == *expected
            })
            .await;
            if !reached {
                failures.push(format!("{name}: {sql} gave {last}, expected {expected}"));
            }
        }
    }
    failures
}

// ---- sending and reading answers ----

/// What came back: a gRPC result, or an HTTP status with its body and content type.
enum Reply {
    /// The `partial_success` (rejected count, message) of an accepted export, or the refusal.
    Grpc(Result<(i64, String), tonic::Status>),
    /// Status, content type, body, and whether it answers a logs request.
    Http(u16, String, Vec<u8>, bool),
}

async fn send(t: &TestApp, sent: Sent) -> Reply {
    let (body, content_type, content_encoding, url) = match sent {
        Sent::Grpc(request) => {
            return Reply::Grpc(
                t.export_grpc(request)
                    .await
                    .map(|r| official(r.partial_success)),
            )
        }
        Sent::LogsGrpc(request) => {
            let mut client = LogsServiceClient::connect(t.grpc_url())
                .await
                .expect("gRPC connects");
            return Reply::Grpc(client.export(request).await.map(|r| {
                r.into_inner()
                    .partial_success
                    .map(|p| (p.rejected_log_records, p.error_message))
                    .unwrap_or_default()
            }));
        }
        Sent::Http {
            body,
            content_type,
            content_encoding,
        } => (body, content_type, content_encoding, None),
        Sent::LogsHttp {
            body,
            content_type,
            content_encoding,
        } => (
            body,
            content_type,
            content_encoding,
            Some(format!("http://{}/v1/logs", t.app.http_addr)),
        ),
    };
    let logs = url.is_some();
    let mut request = reqwest::Client::new()
        .post(url.unwrap_or_else(|| t.http_url()))
        .header("content-type", content_type)
        .body(body);
    if let Some(encoding) = content_encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request.send().await.expect("HTTP request is answered");
    let status = response.status().as_u16();
    let answered_as = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.bytes().await.expect("body").to_vec();
    Reply::Http(status, answered_as, body, logs)
}

fn official(p: Option<ExportTracePartialSuccess>) -> (i64, String) {
    p.map(|p| (p.rejected_spans, p.error_message))
        .unwrap_or_default()
}

/// The `partial_success` of an accepted export (rejected count, message), in either encoding.
fn partial_success(reply: Reply) -> Result<(i64, String), String> {
    match reply {
        Reply::Grpc(Ok(partial)) => Ok(partial),
        Reply::Grpc(Err(status)) => Err(format!("refused with {status:?}")),
        Reply::Http(200, content_type, body, logs) if content_type == "application/json" => {
            let answer: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| format!("answer is not JSON: {e}"))?;
            // The proto3 JSON mapping leaves an unset message out; it is never `null`.
            let partial = match answer.get("partialSuccess") {
                Some(serde_json::Value::Null) => {
                    return Err(format!("partialSuccess is null in {answer}"))
                }
                None if answer != serde_json::json!({}) => {
                    return Err(format!("a full success is {{}}, not {answer}"))
                }
                partial => partial.unwrap_or(&serde_json::Value::Null),
            };
            let rejected = &partial[if logs {
                "rejectedLogRecords"
            } else {
                "rejectedSpans"
            }];
            let rejected = rejected
                .as_i64()
                .or_else(|| rejected.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            let message = partial["errorMessage"].as_str().unwrap_or("").to_owned();
            Ok((rejected, message))
        }
        Reply::Http(200, _, body, true) => ExportLogsServiceResponse::decode(body.as_slice())
            .map(|r| {
                r.partial_success
                    .map(|p| (p.rejected_log_records, p.error_message))
                    .unwrap_or_default()
            })
            .map_err(|e| format!("answer is not protobuf: {e}")),
        Reply::Http(200, _, body, false) => ExportTraceServiceResponse::decode(body.as_slice())
            .map(|r| official(r.partial_success))
            .map_err(|e| format!("answer is not protobuf: {e}")),
        Reply::Http(status, _, body, _) => Err(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}

fn check_answer(reply: Reply, answer: &Answer) -> Result<(), String> {
    match (answer, reply) {
        (Answer::Accepted { rejected, message }, reply) => {
            let (got_rejected, got_message) = partial_success(reply)?;
            let message_fits = if message.is_empty() {
                got_message.is_empty()
            } else {
                got_message.contains(message)
            };
            if got_rejected != *rejected || !message_fits {
                return Err(format!(
                    "expected {rejected} rejected and {message:?}, got {got_rejected} rejected and {got_message:?}"
                ));
            }
        }
        (Answer::GrpcError(code, message), Reply::Grpc(Err(status))) => {
            if status.code() != *code || !status.message().contains(message) {
                return Err(format!(
                    "expected {code:?} with {message:?}, got {status:?}"
                ));
            }
        }
        (Answer::HttpError(expected, message), Reply::Http(status, _, body, _)) => {
            let text = String::from_utf8_lossy(&body);
            if status != *expected || !text.contains(message) {
                return Err(format!(
                    "expected {expected} with {message:?}, got {status}: {text}"
                ));
            }
        }
        (Answer::GrpcError(code, _), _) => return Err(format!("expected gRPC {code:?}")),
        (Answer::HttpError(status, _), _) => return Err(format!("expected HTTP {status}")),
    }
    Ok(())
}

// ---- building the table ----

fn accepted() -> Answer {
    Answer::Accepted {
        rejected: 0,
        message: "",
    }
}

fn rejected(rejected: i64, message: &'static str) -> Answer {
    Answer::Accepted { rejected, message }
}

/// Accepted whole, with a warning naming the repair.
fn repaired(message: &'static str) -> Answer {
    Answer::Accepted {
        rejected: 0,
        message,
    }
}

fn grpc(spans: Vec<Span>) -> Sent {
    Sent::Grpc(request("agent", "pipecat", spans))
}

fn http_protobuf(body: Vec<u8>) -> Sent {
    Sent::Http {
        body,
        content_type: "application/x-protobuf",
        content_encoding: None,
    }
}

fn http_json(body: Vec<u8>) -> Sent {
    Sent::Http {
        body,
        content_type: "application/json",
        content_encoding: None,
    }
}

fn trace(n: u64) -> String {
    format!("trace_id = '{}'", hex::encode(trace_id(n)))
}

/// The span `name` of trace `n` is stored once, and `condition` holds for it.
fn kept(n: u64, name: &str, condition: &str) -> (String, u64) {
    count_where(
        &format!("{} AND name = '{name}' AND {condition}", trace(n)),
        1,
    )
}

fn count_where(condition: &str, expected: u64) -> (String, u64) {
    (
        format!("SELECT count() FROM spans WHERE {condition}"),
        expected,
    )
}

fn in_trace(n: u64, expected: u64) -> (String, u64) {
    count_where(&trace(n), expected)
}

fn named(n: u64, name: &str, expected: u64) -> (String, u64) {
    count_where(&format!("{} AND name = '{name}'", trace(n)), expected)
}

/// The encoded request with `marker` replaced by bytes that are not UTF-8.
fn corrupt(request: ExportTraceServiceRequest, marker: &[u8; 4]) -> Vec<u8> {
    let mut body = request.encode_to_vec();
    let at = body
        .windows(4)
        .position(|w| w == marker)
        .expect("marker present");
    body[at + 1..at + 3].copy_from_slice(&[0xff, 0xfe]);
    body
}

fn with_scope(mut request: ExportTraceServiceRequest, name: String) -> ExportTraceServiceRequest {
    request.resource_spans[0].scope_spans[0].scope = Some(InstrumentationScope {
        name,
        ..Default::default()
    });
    request
}

fn with_resource(
    mut request: ExportTraceServiceRequest,
    attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
) -> ExportTraceServiceRequest {
    request.resource_spans[0].resource = Some(Resource {
        attributes,
        ..Default::default()
    });
    request
}

fn two_resources(
    first: ExportTraceServiceRequest,
    second: ExportTraceServiceRequest,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: first
            .resource_spans
            .into_iter()
            .chain(second.resource_spans)
            .collect(),
    }
}

/// A log record of trace `t` at the anchor, in span 1.
fn log_record(anchor: u64, t: u64, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: anchor,
        severity_number: 9,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.to_owned())),
        }),
        trace_id: trace_id(t),
        span_id: span_id(1),
        ..Default::default()
    }
}

fn logs(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "agent")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn logs_http(
    body: Vec<u8>,
    content_type: &'static str,
    content_encoding: Option<&'static str>,
) -> Sent {
    Sent::LogsHttp {
        body,
        content_type,
        content_encoding,
    }
}

/// An OTLP/JSON logs request with one record of `trace` per entry of `fields`, each entry one
/// more JSON field of its record, so a case can put a wrong type there.
fn logs_json(anchor: u64, trace: u64, fields: &[&str]) -> Vec<u8> {
    let records: Vec<String> = fields
        .iter()
        .map(|field| {
            format!(
                r#"{{"timeUnixNano":"{anchor}","traceId":"{}","spanId":"{}","body":{{"stringValue":"line"}},{field}}}"#,
                hex::encode(trace_id(trace)),
                hex::encode(span_id(1)),
            )
        })
        .collect();
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    )
    .into_bytes()
}

fn log_count_where(condition: &str, expected: u64) -> (String, u64) {
    (
        format!("SELECT count() FROM logs WHERE {condition}"),
        expected,
    )
}

fn logs_in_trace(n: u64, expected: u64) -> (String, u64) {
    log_count_where(&trace(n), expected)
}

fn logged(n: u64, body: &str, expected: u64) -> (String, u64) {
    log_count_where(&format!("{} AND body = '{body}'", trace(n)), expected)
}

/// The first event's or link's attributes (`nested` is `events` or `links`) hold k0..k1023.
fn only_first_1024(nested: &str) -> String {
    format!(
        "position({nested}.attributes[1], '\"k1023\":') > 0 AND position({nested}.attributes[1], '\"k1024\":') = 0"
    )
}

fn long_session_key() -> String {
    format!("session-{}", "k".repeat(300))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

/// An OTLP/JSON span of `trace`; `name` and `attributes` are JSON text, so a case can put a
/// wrong type there.
fn json_span(trace: u64, id: u64, name: &str, attributes: &str) -> String {
    format!(
        r#"{{"traceId":"{}","spanId":"{}","name":{name},"kind":1,"startTimeUnixNano":"START","endTimeUnixNano":"START","attributes":{attributes}}}"#,
        hex::encode(trace_id(trace)),
        hex::encode(span_id(id)),
    )
}

fn json_request(anchor: u64, spans: &[String]) -> Vec<u8> {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"agent"}}}}]}},"scopeSpans":[{{"scope":{{"name":"pipecat"}},"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
    .replace("START", &anchor.to_string())
    .into_bytes()
}
