//! OTLP/JSON bodies through the JSON decoding that `POST /v1/traces` uses (the official
//! message types' serde), re-encoded, decoded by convolog and converted to spans.
#![no_main]

use convolog::model::otlp::{convert, ExportTraceServiceRequest, SpanLimits};
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1 as official;
use prost::Message;

const NOW: u64 = 1_767_225_600_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<official::ExportTraceServiceRequest>(data) else {
        return;
    };
    let bytes = request.encode_to_vec();
    let decoded = ExportTraceServiceRequest::decode(bytes.as_slice())
        .expect("convolog decodes what the official types encode");
    let _ = convert(decoded, &SpanLimits::default(), NOW).message();
});
