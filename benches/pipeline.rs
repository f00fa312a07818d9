//! The CPU side of ingest, without I/O: decoding + validating an OTLP request, deriving a
//! session from its spans, and encoding span rows for ClickHouse.
//! Run: cargo bench --bench pipeline

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use convolog::model::otlp::{self, SpanLimits};
use convolog::sessionize;
use convolog::store::SpanRow;

use common::{float as seconds, text};

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// A Pipecat-shaped conversation of `turns` turns (5 spans each, plus the root).
fn conversation(turns: u64) -> ExportTraceServiceRequest {
    let span =
        |id: u64, parent: u64, name: &str, start: u64, end: u64, attributes: Vec<KeyValue>| Span {
            trace_id: vec![7; 16],
            span_id: (id + 1).to_be_bytes().to_vec(),
            parent_span_id: if parent == 0 {
                vec![]
            } else {
                (parent + 1).to_be_bytes().to_vec()
            },
            name: name.into(),
            start_time_unix_nano: T0 + start * MS,
            end_time_unix_nano: T0 + end * MS,
            attributes,
            ..Default::default()
        };
    let mut spans = vec![span(
        1,
        0,
        "conversation",
        0,
        turns * 5000,
        vec![text("conversation.id", "bench")],
    )];
    for t in 0..turns {
        let (base, at) = (10 * (t + 1), t * 5000);
        spans.push(span(
            base,
            1,
            "turn",
            at,
            at + 4500,
            vec![
                text("conversation.id", "bench"),
                seconds("turn.user_bot_latency_seconds", 0.9),
            ],
        ));
        spans.push(span(
            base + 1,
            base,
            "stt",
            at,
            at + 1500,
            vec![
                text("gen_ai.operation.name", "stt"),
                text(
                    "transcript",
                    "I would like to change my booking to Saturday please",
                ),
                seconds("metrics.ttfb", 0.2),
            ],
        ));
        spans.push(span(
            base + 2,
            base,
            "llm",
            at + 1600,
            at + 2400,
            vec![
                text("gen_ai.operation.name", "chat"),
                text("gen_ai.request.model", "gpt-4o-mini"),
                text(
                    "output",
                    "Of course, let me check what is available on Saturday for you.",
                ),
                seconds("metrics.ttfb", 0.5),
            ],
        ));
        spans.push(span(
            base + 3,
            base,
            "llm_tool_call",
            at + 2400,
            at + 2900,
            vec![
                text("tool.function_name", "check_availability"),
                text("tool.call_id", &format!("c{t}")),
                text("tool.result_status", "success"),
            ],
        ));
        spans.push(span(
            base + 4,
            base,
            "tts",
            at + 3000,
            at + 4500,
            vec![
                text("gen_ai.operation.name", "tts"),
                text(
                    "text",
                    "Of course, let me check what is available on Saturday for you.",
                ),
                seconds("metrics.ttfb", 0.25),
            ],
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "pipecat".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn benches(c: &mut Criterion) {
    let request = conversation(200);
    let bytes = request.encode_to_vec();
    let span_count = request.resource_spans[0].scope_spans[0].spans.len() as u64;
    let limits = SpanLimits::default();
    let now = T0 + 3_600_000 * MS;

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(span_count));
    group.bench_function("decode_and_validate_1001_spans", |b| {
        b.iter(|| {
            let decoded =
                otlp::ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
            otlp::convert(decoded, &limits, now)
        })
    });
    let spans = otlp::convert(
        otlp::ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes"),
        &limits,
        now,
    )
    .spans;
    group.bench_function("encode_span_rows_1001_spans", |b| {
        b.iter(|| {
            spans
                .iter()
                .map(|s| SpanRow::from_span(s, now))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("sessionize_200_turns_1001_spans", |b| {
        b.iter_batched(
            || spans.clone(),
            |spans| sessionize::sessionize("bench", &spans, 1, 0, &sessionize::Rules::default()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
