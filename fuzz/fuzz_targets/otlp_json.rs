//! OTLP/JSON bodies through the decoder `POST /v1/traces` uses and the conversion to spans.
#![no_main]

use convolog::model::otlp::{convert, SpanLimits};
use convolog::model::otlp_json;
use libfuzzer_sys::fuzz_target;

/// 2026-01-01T00:00:00Z: a fixed "now", so a failing input fails again.
const NOW: u64 = 1_767_225_600_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = otlp_json::decode(data) else {
        return;
    };
    let _ = convert(decoded.request, &SpanLimits::default(), NOW).message();
});
