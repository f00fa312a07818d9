//! OTLP/protobuf bytes through the decoder and the conversion to spans, as a gRPC or HTTP
//! export would take them; every converted span must survive the trip to a stored row and back.
#![no_main]

use convolog::model::otlp::{convert, ExportTraceServiceRequest, SpanLimits};
use convolog::store::SpanRow;
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
    for span in &converted.spans {
        let back = SpanRow::from_span(span, NOW)
            .into_span()
            .expect("a converted span reads back from its row");
        assert_eq!((back.trace_id, back.span_id), (span.trace_id, span.span_id));
    }
});
