//! `convolog-simulate`: sends synthetic voice and chat agent conversations
//! over OTLP with the real OpenTelemetry SDK, shaped like Pipecat, LiveKit
//! Agents or GenAI-semconv instrumentation emit them.
//!
//! Conversations are compressed in time: spans carry the timestamps of a
//! conversation that just ended (a few seconds per turn) but are sent at once.
//!
//! Layers, each testable on its own:
//! - `script`: what is said and how long each stage takes (all randomness);
//! - `voice`, `pipecat`, `livekit`, `genai`: pure span plans per framework;
//! - `debug_log`: the agent's log lines at each step, attached to the plans' spans;
//! - `emit`: plan -> SDK spans and log records; `run` exports them and reports failures.

mod corpus;
mod debug_log;
mod emit;
mod genai;
mod grounding;
mod livekit;
mod pipecat;
mod plan;
mod script;
mod voice;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressStyle};
use opentelemetry_otlp::{ExporterBuildError, LogExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _};
use opentelemetry_sdk::trace::SpanExporter as _;
use tokio::task::JoinSet;
use tokio::time::Instant;

use emit::Logs;
use plan::{conversation_seed, plan_conversation};
use script::PlanOptions;

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// OTLP endpoint, e.g. http://127.0.0.1:4317 (grpc) or http://127.0.0.1:4318 (http)
    /// [default: 127.0.0.1 on port 4317 for grpc, 4318 for http]
    #[arg(long)]
    pub endpoint: Option<String>,
    /// OTLP transport
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Number of conversations to send
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// Conversations started per second (0 = as fast as possible)
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Which framework's span layout to imitate
    #[arg(long, value_enum, default_value = "mixed")]
    pub shape: Shape,
    /// Seed for reproducible conversations (random when absent)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Conversations in flight at once, each with its own OTLP client
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Session ids are PREFIX-N, with N counting from 1
    #[arg(long, default_value = "sim")]
    pub session_prefix: String,
    /// Turns per conversation, "MIN..MAX" (inclusive) or a single number
    #[arg(long, default_value = "3..8", value_parser = parse_turns)]
    pub turns: TurnRange,
    /// Share of replies the user barges in on (voice shapes)
    #[arg(long, default_value_t = 0.15)]
    pub interrupt_rate: f64,
    /// Share of tool calls that fail
    #[arg(long, default_value_t = 0.15)]
    pub tool_error_rate: f64,
    /// Share of conversations that end with a transfer to a human
    #[arg(long, default_value_t = 0.10)]
    pub handoff_rate: f64,
    /// Share of conversations that end abnormally: rate limited, over budget,
    /// verification required, unanswered, hung up, no speech, busy, orphaned
    #[arg(long, default_value_t = 0.25)]
    pub incident_rate: f64,
    /// Share of STT, LLM and TTS calls that fail once and are retried
    #[arg(long, default_value_t = 0.02)]
    pub stage_error_rate: f64,
    /// Share of user lines the agent misunderstands and the user repeats
    #[arg(long, default_value_t = 0.04)]
    pub misheard_rate: f64,
    /// Share of chats the application marks as ended (the rest stay open)
    #[arg(long, default_value_t = 0.5)]
    pub chat_end_rate: f64,
    /// Share of conversations that ask one of the planted weak questions (answered
    /// with low confidence, rated thumbs-down, or without citations)
    #[arg(long, default_value_t = 0.2)]
    pub weak_rate: f64,
    /// Per-request export timeout in seconds (the exporter retries within it)
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// Send spans only, no OTLP log records
    ///
    /// By default the agent's debug lines (INFO per step, WARN when a step is slow, ERROR
    /// when a tool or stage fails) go as OTLP logs to the same endpoint, each written
    /// inside its span at its step; over HTTP to /v1/logs, or beside a traces URL ending
    /// in /traces.
    #[arg(long)]
    pub no_logs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// One trace per call: conversation -> turn -> stt / llm / tts
    Pipecat,
    /// LiveKit Agents 1.7+: agent_session, session.id on every span
    Livekit,
    /// Text chat with the GenAI semantic conventions, one trace per request
    Genai,
    /// A random choice of the three per conversation.
    Mixed,
}

/// Inclusive bounds on the number of turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnRange {
    pub min: u32,
    pub max: u32,
}

fn parse_turns(s: &str) -> Result<TurnRange, String> {
    let parse = |part: &str| {
        part.trim()
            .parse::<u32>()
            .map_err(|e| format!("invalid turn count {part:?}: {e}"))
    };
    let (min, max) = match s.split_once("..") {
        Some((lo, hi)) => (parse(lo)?, parse(hi.trim_start_matches('='))?),
        None => {
            let n = parse(s)?;
            (n, n)
        }
    };
    if min == 0 || min > max {
        return Err(format!("turn range {s:?} must satisfy 1 <= MIN <= MAX"));
    }
    Ok(TurnRange { min, max })
}

#[derive(Debug, Clone)]
pub struct SimulateReport {
    /// Conversations exported.
    pub conversations: u64,
    /// Spans exported, over all conversations.
    pub spans: u64,
    /// Log records exported, over all conversations (0 with `--no-logs`).
    pub log_records: u64,
    /// Wall time of the run, including pacing.
    pub elapsed: Duration,
    /// Session ids in the order conversations were numbered.
    pub session_ids: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("invalid simulate arguments: {0}")]
    InvalidArgs(String),
    #[error("cannot build the OTLP exporter")]
    BuildExporter(#[from] ExporterBuildError),
    #[error("exporting the {signal} of session {session_id} to {endpoint} failed")]
    Export {
        signal: Signal,
        session_id: String,
        endpoint: String,
        #[source]
        source: OTelSdkError,
    },
    #[error("shutting down the OTLP exporters failed")]
    Shutdown(#[source] OTelSdkError),
    #[error("a simulation worker panicked")]
    Worker(#[from] tokio::task::JoinError),
}

/// What an export carries; over HTTP, also the last segment of its URL path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        })
    }
}

/// Everything a worker needs; shared read-only except for the counters.
struct Job {
    count: u64,
    shape: Shape,
    seed: u64,
    prefix: String,
    options: PlanOptions,
    logs: Logs,
    /// Time between conversation starts; `None` sends as fast as possible.
    interval: Option<Duration>,
    started: Instant,
    endpoint: String,
    next: AtomicU64,
    /// Set after the first failure so the other workers stop taking work.
    stop: AtomicBool,
    conversations: AtomicU64,
    spans: AtomicU64,
    log_records: AtomicU64,
    /// Conversations sent, on standard error when it is a terminal (hidden otherwise).
    progress: ProgressBar,
}

impl Job {
    fn session_id(&self, index: u64) -> String {
        format!("{}-{}", self.prefix, index + 1)
    }
}

pub async fn run(args: &SimulateArgs) -> Result<SimulateReport, SimulateError> {
    let options = validate(args)?;
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| match args.protocol {
            Protocol::Grpc => "http://127.0.0.1:4317".to_string(),
            Protocol::Http => "http://127.0.0.1:4318".to_string(),
        });
    let seed = args.seed.unwrap_or_else(rand::random);
    let count = u64::from(args.count);
    tracing::info!(
        seed,
        count,
        endpoint = %endpoint,
        protocol = ?args.protocol,
        shape = ?args.shape,
        "simulating conversations"
    );

    let interval = if args.rate > 0.0 {
        let interval = Duration::try_from_secs_f64(1.0 / args.rate).map_err(|_| {
            SimulateError::InvalidArgs(format!("--rate {} is too small", args.rate))
        })?;
        Some(interval)
    } else {
        None
    };

    // Built up front, so a malformed endpoint fails before anything is sent.
    let workers = args.concurrency.min(args.count.max(1) as usize);
    let timeout = Duration::from_secs(args.timeout_secs);
    let logs = if args.no_logs {
        Logs::Skip
    } else {
        Logs::Record
    };
    let exporters = (0..workers)
        .map(|_| build_exporters(args.protocol, &endpoint, timeout, logs))
        .collect::<Result<Vec<_>, _>>()?;

    let job = Arc::new(Job {
        count,
        shape: args.shape,
        seed,
        prefix: args.session_prefix.clone(),
        options,
        logs,
        interval,
        started: Instant::now(),
        endpoint,
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        conversations: AtomicU64::new(0),
        spans: AtomicU64::new(0),
        log_records: AtomicU64::new(0),
        progress: progress_bar(count),
    });

    let mut set = JoinSet::new();
    for exporter in exporters {
        set.spawn(worker(exporter, Arc::clone(&job)));
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let result = joined.map_err(SimulateError::from).and_then(|r| r);
        if let Err(err) = result {
            job.stop.store(true, Ordering::Relaxed);
            first_error.get_or_insert(err);
        }
    }
    job.progress.finish_and_clear();
    if let Some(err) = first_error {
        return Err(err);
    }

    Ok(SimulateReport {
        conversations: job.conversations.load(Ordering::Relaxed),
        spans: job.spans.load(Ordering::Relaxed),
        log_records: job.log_records.load(Ordering::Relaxed),
        elapsed: job.started.elapsed(),
        session_ids: (0..count).map(|i| job.session_id(i)).collect(),
    })
}

/// A bar with the count, the rate and the time left.
fn progress_bar(count: u64) -> ProgressBar {
    let template =
        "[{bar:30}] {percent:>3}% {human_pos}/{human_len} conversations, {per_sec}, {eta} left";
    // The template is ours; should it ever not parse, indicatif's plain bar still shows progress.
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(count).with_style(style.progress_chars("#>."))
}

fn validate(args: &SimulateArgs) -> Result<PlanOptions, SimulateError> {
    let invalid = |msg: String| Err(SimulateError::InvalidArgs(msg));
    if !args.rate.is_finite() || args.rate < 0.0 {
        return invalid(format!("--rate must be >= 0, got {}", args.rate));
    }
    if args.concurrency == 0 {
        return invalid("--concurrency must be at least 1".to_string());
    }
    if args.timeout_secs == 0 {
        return invalid("--timeout-secs must be at least 1".to_string());
    }
    for (name, value) in [
        ("--interrupt-rate", args.interrupt_rate),
        ("--tool-error-rate", args.tool_error_rate),
        ("--handoff-rate", args.handoff_rate),
        ("--incident-rate", args.incident_rate),
        ("--stage-error-rate", args.stage_error_rate),
        ("--misheard-rate", args.misheard_rate),
        ("--chat-end-rate", args.chat_end_rate),
        ("--weak-rate", args.weak_rate),
    ] {
        if !(0.0..=1.0).contains(&value) {
            return invalid(format!("{name} must be within 0..1, got {value}"));
        }
    }
    if args.turns.min == 0 || args.turns.min > args.turns.max {
        return invalid(format!("invalid --turns {:?}", args.turns));
    }
    Ok(PlanOptions {
        min_turns: args.turns.min,
        max_turns: args.turns.max,
        interrupt_rate: args.interrupt_rate,
        tool_error_rate: args.tool_error_rate,
        handoff_rate: args.handoff_rate,
        incident_rate: args.incident_rate,
        stage_error_rate: args.stage_error_rate,
        misheard_rate: args.misheard_rate,
        chat_end_rate: args.chat_end_rate,
        weak_rate: args.weak_rate,
    })
}

/// One worker's OTLP clients; no log client when log records are skipped.
struct Exporters {
    spans: SpanExporter,
    logs: Option<LogExporter>,
}

fn build_exporters(
    protocol: Protocol,
    endpoint: &str,
    timeout: Duration,
    logs: Logs,
) -> Result<Exporters, SimulateError> {
    let spans = match protocol {
        Protocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .build()?,
        Protocol::Http => SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(http_signal_url(endpoint, Signal::Traces)?)
            .with_timeout(timeout)
            .build()?,
    };
    let logs = match (logs, protocol) {
        (Logs::Skip, _) => None,
        (Logs::Record, Protocol::Grpc) => Some(
            LogExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(timeout)
                .build()?,
        ),
        (Logs::Record, Protocol::Http) => Some(
            LogExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(http_signal_url(endpoint, Signal::Logs)?)
                .with_timeout(timeout)
                .build()?,
        ),
    };
    Ok(Exporters { spans, logs })
}

/// An endpoint set in code is used verbatim by the HTTP exporter, so a base
/// URL like the default needs the signal's path added. A URL with a path is
/// the traces URL; the logs URL replaces its last segment `traces` with `logs`.
fn http_signal_url(endpoint: &str, signal: Signal) -> Result<String, SimulateError> {
    let trimmed = endpoint.trim_end_matches('/');
    let has_path = trimmed
        .split_once("://")
        .map_or(trimmed, |(_, rest)| rest)
        .contains('/');
    if !has_path {
        return Ok(format!("{trimmed}/v1/{signal}"));
    }
    match signal {
        Signal::Traces => Ok(endpoint.to_string()),
        Signal::Logs => trimmed
            .strip_suffix("/traces")
            .map(|base| format!("{base}/logs"))
            .ok_or_else(|| {
                SimulateError::InvalidArgs(format!(
                    "--endpoint {endpoint} does not end in /traces, so the logs URL beside it \
                     is unknown: give the base URL (http://host:4318) or pass --no-logs"
                ))
            }),
    }
}

async fn worker(mut exporters: Exporters, job: Arc<Job>) -> Result<(), SimulateError> {
    while !job.stop.load(Ordering::Relaxed) {
        let index = job.next.fetch_add(1, Ordering::Relaxed);
        if index >= job.count {
            break;
        }
        if let Some(interval) = job.interval {
            // Starts are scheduled from the beginning of the run, so slow
            // exports do not lower the overall rate while workers are free.
            let offset = interval.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX));
            tokio::time::sleep_until(job.started + offset).await;
        }
        let session_id = job.session_id(index);
        let plan = plan_conversation(
            job.shape,
            conversation_seed(job.seed, index),
            session_id.clone(),
            &job.options,
        );
        let recorded = emit::record(&plan, SystemTime::now(), job.logs);
        let spans = recorded.spans.len() as u64;
        let failed = |signal, source| {
            tracing::warn!(%session_id, %signal, error = %source, "export failed");
            SimulateError::Export {
                signal,
                session_id: session_id.clone(),
                endpoint: job.endpoint.clone(),
                source,
            }
        };
        exporters.spans.set_resource(&recorded.resource);
        if let Err(source) = exporters.spans.export(recorded.spans).await {
            return Err(failed(Signal::Traces, source));
        }
        if let (Some(exporter), false) = (&mut exporters.logs, recorded.logs.is_empty()) {
            exporter.set_resource(&recorded.resource);
            // A borrowed batch is how the SDK's own processors hand records to an exporter.
            let batch: Vec<_> = recorded.logs.iter().map(|(r, s)| (r, s)).collect();
            if let Err(source) = exporter.export(LogBatch::new(&batch)).await {
                return Err(failed(Signal::Logs, source));
            }
        }
        job.conversations.fetch_add(1, Ordering::Relaxed);
        job.progress.inc(1);
        job.spans.fetch_add(spans, Ordering::Relaxed);
        job.log_records
            .fetch_add(recorded.logs.len() as u64, Ordering::Relaxed);
    }
    // Every export was awaited above, so nothing is buffered; this only
    // releases the connections.
    exporters
        .spans
        .shutdown()
        .map_err(SimulateError::Shutdown)?;
    match exporters.logs {
        Some(logs) => logs.shutdown().map_err(SimulateError::Shutdown),
        None => Ok(()),
    }
}
