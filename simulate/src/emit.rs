//! Turns a [`ConversationPlan`] into real SDK spans and log records.
//!
//! Spans are built by the `opentelemetry_sdk` tracer with explicit start and
//! end times, log records by its logger inside the span they were written in
//! (the span is the current context, as in an application), and both are
//! collected in memory; the caller exports them with the OTLP exporters on the
//! async runtime. The SDK's batch processors are not used because they export
//! on their own thread with a blocking executor (which the async reqwest
//! client used for OTLP/HTTP cannot run on) and they only log the failures of
//! background exports. Exporting ourselves gives every failure back to `run`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{
    Event, Span as _, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::plan::{ConversationPlan, PlannedSpan};

/// The spans of one conversation, in the order they ended, its log records,
/// in the order they were written, and their resource.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub resource: Resource,
    pub spans: Vec<SpanData>,
    pub logs: Vec<(SdkLogRecord, InstrumentationScope)>,
}

/// Whether the agent's debug lines are recorded as log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logs {
    Record,
    Skip,
}

/// Keeps ended spans, or emitted log records, in memory.
#[derive(Debug)]
struct Collector<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Collector<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for Collector<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T> Collector<T> {
    fn push(&self, item: T) {
        // A panic elsewhere cannot leave a Vec half-written, so a poisoned
        // lock still holds usable data.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(item);
    }

    fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl SpanProcessor for Collector<SpanData> {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl LogProcessor for Collector<(SdkLogRecord, InstrumentationScope)> {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.push((record.clone(), scope.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    // Holds nothing to release; without this the SDK warns on every provider it drops.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Records `plan` as SDK spans laid out so the conversation ends at `now`:
/// it looks like it just happened, although it is sent at once.
pub(crate) fn record(plan: &ConversationPlan, now: SystemTime, logs: Logs) -> Recorded {
    let resource = Resource::builder()
        .with_attributes(plan.resource.clone())
        .build();
    let spans = Collector::default();
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_span_processor(spans.clone())
        .build();
    let records = Collector::default();
    let logger_provider = (logs == Logs::Record).then(|| {
        SdkLoggerProvider::builder()
            .with_resource(resource.clone())
            .with_log_processor(records.clone())
            .build()
    });
    let providers = Providers {
        tracer: tracer_provider,
        logger: logger_provider,
    };
    let anchor = now.checked_sub(plan.length()).unwrap_or(now);
    for root in &plan.traces {
        emit(&providers, root, &Context::new(), anchor);
    }
    Recorded {
        resource,
        spans: spans.take(),
        logs: records.take(),
    }
}

struct Providers {
    tracer: SdkTracerProvider,
    /// None when log records are skipped.
    logger: Option<SdkLoggerProvider>,
}

fn emit(providers: &Providers, span: &PlannedSpan, parent: &Context, anchor: SystemTime) {
    let tracer = providers.tracer.tracer(span.scope);
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
    if let Some(logger_provider) = &providers.logger {
        // The application logs under the component's name while the span is current,
        // so the SDK stamps each record with the span's trace and span id.
        let logger = logger_provider.logger(span.scope);
        let _current = cx.clone().attach();
        for line in &span.logs {
            let mut record = logger.create_log_record();
            record.set_timestamp(anchor + line.at);
            record.set_severity_number(line.severity);
            record.set_severity_text(line.severity.name());
            record.set_body(line.body.clone().into());
            logger.emit(record);
        }
    }
    for child in &span.children {
        emit(providers, child, &cx, anchor);
    }
    // Children ended above, so every span ends after its descendants, as
    // Pipecat and LiveKit do.
    cx.span().end_with_timestamp(anchor + span.end);
}
