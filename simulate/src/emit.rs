//! Turns a [`ConversationPlan`] into real SDK spans.
//!
//! Spans are built by the `opentelemetry_sdk` tracer with explicit start and
//! end times and collected in memory; the caller exports them with the OTLP
//! exporter on the async runtime. The SDK's `BatchSpanProcessor` is not used
//! because it exports on its own thread with a blocking executor (which the
//! async reqwest client used for OTLP/HTTP cannot run on) and it only logs
//! the failures of background exports. Exporting ourselves gives every
//! failure back to `run`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Event, Span as _, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::plan::{ConversationPlan, PlannedSpan};

/// The spans of one conversation, in the order they ended, and their resource.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub resource: Resource,
    pub spans: Vec<SpanData>,
}

/// Keeps ended spans in memory.
#[derive(Debug, Clone, Default)]
struct Collector(Arc<Mutex<Vec<SpanData>>>);

impl Collector {
    fn take(&self) -> Vec<SpanData> {
        // A panic elsewhere cannot leave a Vec half-written, so a poisoned
        // lock still holds usable data.
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl SpanProcessor for Collector {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Records `plan` as SDK spans laid out so the conversation ends at `now`:
/// it looks like it just happened, although it is sent at once.
pub(crate) fn record(plan: &ConversationPlan, now: SystemTime) -> Recorded {
    let resource = Resource::builder()
        .with_attributes(plan.resource.clone())
        .build();
    let collector = Collector::default();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_span_processor(collector.clone())
        .build();
    let anchor = now.checked_sub(plan.length()).unwrap_or(now);
    for root in &plan.traces {
        emit(&provider, root, &Context::new(), anchor);
    }
    Recorded {
        resource,
        spans: collector.take(),
    }
}

fn emit(provider: &SdkTracerProvider, span: &PlannedSpan, parent: &Context, anchor: SystemTime) {
    let tracer = provider.tracer(span.scope);
    let events = span
        .events
        .iter()
        .map(|e| Event::new(e.name, anchor + e.at, e.attributes.clone(), 0))
        .collect();
    let mut otel_span = tracer
        .span_builder(span.name.clone())
        .with_kind(span.kind.clone())
        .with_start_time(anchor + span.start)
        .with_attributes(span.attributes.clone())
        .with_events(events)
        .start_with_context(&tracer, parent);
    if let Some(description) = &span.error {
        otel_span.set_status(Status::error(description.clone()));
    }
    let cx = parent.with_span(otel_span);
    for child in &span.children {
        emit(provider, child, &cx, anchor);
    }
    // Children ended above, so every span ends after its descendants, as
    // Pipecat and LiveKit do.
    cx.span().end_with_timestamp(anchor + span.end);
}
