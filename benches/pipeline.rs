//! The CPU side of ingest, without I/O: decoding + validating an OTLP request, deriving a
//! session from its spans. Span rows are encoded inside the insert, so their cost shows in
//! end-to-end runs, not here.
//! Run: cargo bench --bench pipeline

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use convolog::model::otlp::{self, SpanLimits};
use convolog::model::TraceId;
use convolog::pipeline::session_cache::SessionCache;
use convolog::sessionize;

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
    group.bench_function("sessionize_200_turns_1001_spans", |b| {
        b.iter_batched(
            || spans.clone(),
            |spans| sessionize::sessionize("bench", &spans, 1, 0, &sessionize::Rules::default()),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    // What a pass costs per new span, from memory: the conversation arrives a turn at a time
    // (as a 5-second export schedule sends it) and each arrival derives its session again.
    // A 3-turn call against a 60-minute one of 3,000 spans, and 300 per-turn traces.
    let mut group = c.benchmark_group("pass_per_new_span");
    group.sample_size(10);
    for (name, spans) in [
        ("3_turns_one_trace", convert(&conversation(3), &limits, now)),
        (
            "600_turns_3001_spans_one_trace",
            convert(&conversation(600), &limits, now),
        ),
        (
            "300_turns_one_trace_per_turn",
            trace_per_turn(&convert(&conversation(300), &limits, now)),
        ),
    ] {
        group.throughput(Throughput::Elements(spans.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || arrivals(&spans),
                derive_at_each_arrival,
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    // Every span looks at its ancestors (session key, turn, failed stage): this must stay
    // linear in the depth of the trace.
    let chain = parent_chain(40_000, &spans[0]);
    let mut group = c.benchmark_group("ancestry");
    group.throughput(Throughput::Elements(chain.len() as u64));
    group.sample_size(10);
    group.bench_function("sessionize_40000_span_chain", |b| {
        b.iter(|| {
            sessionize::trace_session_key(&chain);
            sessionize::sessionize("bench", &chain, 1, 0, &sessionize::Rules::default())
        })
    });
    group.finish();
}

fn convert(
    request: &ExportTraceServiceRequest,
    limits: &SpanLimits,
    now: u64,
) -> Vec<convolog::model::Span> {
    let bytes = request.encode_to_vec();
    let decoded = otlp::ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
    otlp::convert(decoded, limits, now).spans
}

/// The same conversation as one trace per turn, each turn span a root (OpenInference's shape).
fn trace_per_turn(spans: &[convolog::model::Span]) -> Vec<convolog::model::Span> {
    spans
        .iter()
        .filter(|s| s.name != "conversation")
        .map(|s| {
            let mut span = s.clone();
            let turn = (u64::from_be_bytes(*s.span_id.as_bytes()) - 1) / 10;
            let mut trace = [7u8; 16];
            trace[8..].copy_from_slice(&turn.to_be_bytes());
            span.trace_id = TraceId::from(trace);
            if span.name == "turn" {
                span.parent_span_id = None;
            }
            span
        })
        .collect()
}

/// The spans in groups as they end: each turn's spans, then the root.
fn arrivals(spans: &[convolog::model::Span]) -> Vec<Vec<convolog::model::Span>> {
    let mut sorted = spans.to_vec();
    sorted.sort_by_key(|s| s.end_unix_nano);
    sorted.chunks(5).map(<[_]>::to_vec).collect()
}

/// What the sessionizer does per arrival with the conversation in memory: keep the new spans
/// (their facts read once), see whether the session's inputs changed, derive it from all of
/// its spans.
fn derive_at_each_arrival(arrivals: Vec<Vec<convolog::model::Span>>) {
    let mut cache = SessionCache::new(usize::MAX);
    let mut traces = std::collections::BTreeSet::new();
    for (stamp, batch) in (1..).zip(arrivals) {
        let new: Vec<String> = batch.iter().map(|s| s.trace_id.to_hex()).collect();
        cache.add_stored(stamp, batch);
        for trace in cache.not_whole(&new) {
            cache.make_whole(&trace, Vec::new(), None);
        }
        traces.extend(new);
        std::hint::black_box(cache.inputs("bench", &traces));
        let spans = traces.iter().filter_map(|t| cache.read_spans(t)).flatten();
        std::hint::black_box(sessionize::sessionize_read(
            "bench",
            spans,
            stamp,
            0,
            &sessionize::Rules::default(),
        ));
    }
}

/// `len` copies of `template`, each the parent of the next, each with a session key.
fn parent_chain(len: u64, template: &convolog::model::Span) -> Vec<convolog::model::Span> {
    (1..=len)
        .map(|n| {
            let mut span = template.clone();
            span.span_id = n.to_be_bytes().into();
            span.parent_span_id = (n > 1).then(|| (n - 1).to_be_bytes().into());
            span.start_unix_nano = T0 + n * MS;
            span.end_unix_nano = T0 + (n + 1) * MS;
            span.attributes = [("conversation.id", format!("conv-{n}"))]
                .into_iter()
                .collect();
            span
        })
        .collect()
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
