//! OTLP/protobuf bytes through the decoder and the conversion to spans, as a gRPC or HTTP
//! export would take them. (The trip of a span to a stored row and back is checked against a
//! real ClickHouse in tests/ingest.rs.)
#![no_main]

use convolog::model::otlp::{convert, ExportTraceServiceRequest, SpanLimits};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// 2026-01-01T00:00:00Z: a fixed "now", so a failing input fails again.
const NOW: u64 = 1_767_225_600_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ExportTraceServiceRequest::decode(data) else {
        return;
    };
    let converted = convert(request, &SpanLimits::default(), NOW);
    let _ = converted.message();
});
