//! Test builds only: the allocator counts what each thread holds, so a test can compare the
//! memory estimates ([`Span::memory_bytes`](super::Span::memory_bytes) and what is built on
//! it) with what was really allocated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Bytes and blocks allocated minus freed on this thread.
    static HELD: Cell<(isize, isize)> = const { Cell::new((0, 0)) };
}

fn count(bytes: isize, blocks: isize) {
    // Unavailable only while the thread is torn down, when nothing is measured.
    let _ = HELD.try_with(|held| {
        let (b, n) = held.get();
        held.set((b + bytes, n + blocks));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), -1);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize, 0);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// What this thread holds now: bytes asked for, and blocks.
pub fn held() -> (isize, isize) {
    HELD.with(Cell::get)
}

/// What `make` leaves allocated on this thread (what it returns, and anything it leaked),
/// in bytes as the allocator really takes them: each block with
/// [`ALLOCATION_OVERHEAD`](super::span::ALLOCATION_OVERHEAD).
pub fn measure<T>(make: impl FnOnce() -> T) -> (T, usize) {
    let (bytes_before, blocks_before) = held();
    let made = make();
    let (bytes, blocks) = held();
    let taken = (bytes - bytes_before)
        + (blocks - blocks_before) * super::span::ALLOCATION_OVERHEAD as isize;
    (made, usize::try_from(taken).unwrap_or(0))
}

/// A Pipecat-shaped request of `spans` spans over one resource and scope (as the ingest
/// benchmark sends), in conversations (traces) of 33 spans: twelve attributes a span of mixed types and lengths, an LLM context on
/// every third, an event on every fourth.
pub fn pipecat_like_request(spans: usize) -> super::otlp::ExportTraceServiceRequest {
    use super::otlp::any_value::Value;
    use super::otlp::*;
    let text = |s: &str| Value::StringValue(s.as_bytes().to_vec());
    let kv = |key: &str, value: Value| KeyValue {
        key: key.as_bytes().to_vec(),
        value: Some(AnyValue { value: Some(value) }),
    };
    let resource = Resource {
        attributes: vec![
            kv("service.name", text("voice-agent")),
            kv("service.version", text("1.4.2")),
            kv("deployment.environment", text("production")),
            kv("telemetry.sdk.name", text("opentelemetry")),
            kv("telemetry.sdk.language", text("python")),
            kv("host.name", text("agent-7f9c4d-xk2lp")),
        ],
    };
    let wire_spans = (0..spans)
        .map(|i| {
            let mut attributes = vec![
                kv(
                    "conversation.id",
                    text("6f1c2a9e-8d4b-4a7e-9c3f-2b1d0e5a7c88"),
                ),
                kv("turn.number", Value::IntValue(i as i64 % 8)),
                kv("gen_ai.system", text("openai")),
                kv("gen_ai.request.model", text("gpt-4o-mini")),
                kv("metrics.ttfb", Value::DoubleValue(0.3125 + i as f64)),
                kv(
                    "gen_ai.usage.input_tokens",
                    Value::IntValue(1200 + i as i64),
                ),
                kv("gen_ai.usage.output_tokens", Value::IntValue(48)),
                kv(
                    "transcript",
                    text("I would like to change the date of my booking, please"),
                ),
                kv("is_final", Value::BoolValue(true)),
                kv("vad.stop_secs", Value::DoubleValue(0.8)),
                kv("session.id", text("sess-2b1d0e5a7c88")),
            ];
            if i % 3 == 0 {
                attributes.push(kv(
                    "input",
                    text(&"{\"role\":\"user\",\"content\":\"hello\"},".repeat(12)),
                ));
            } else {
                attributes.push(kv("output", text("Sure, which date works for you?")));
            }
            let events = if i % 4 == 0 {
                vec![WireEvent {
                    time_unix_nano: 1_700_000_000_500_000_000,
                    name: b"first_audio".to_vec(),
                    attributes: vec![kv("latency_ms", Value::IntValue(420))],
                }]
            } else {
                Vec::new()
            };
            let mut span_id = [0u8; 8];
            span_id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            WireSpan {
                trace_id: vec![(i / 33) as u8 + 1; 16],
                span_id: span_id.to_vec(),
                parent_span_id: if i == 0 {
                    Vec::new()
                } else {
                    vec![0, 0, 0, 0, 0, 0, 0, 1]
                },
                name: ["stt", "llm", "tts", "turn"][i % 4].as_bytes().to_vec(),
                kind: 1,
                start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                end_time_unix_nano: 1_700_000_001_000_000_000,
                attributes,
                events,
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: b"pipecat".to_vec(),
                    version: b"0.0.90".to_vec(),
                }),
                spans: wire_spans,
            }],
        }],
    }
}
