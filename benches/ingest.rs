//! Ingest load against a running OTLP/gRPC receiver (a release `convolog serve`, or `rotel`
//! for comparison), driven by `scripts/bench-ingest.sh`, which starts the servers and passes
//! their ports and process ids:
//!
//!   cargo bench --bench ingest -- --endpoint http://127.0.0.1:4317 --server-pid PID \
//!       [--clickhouse-pid PID --clickhouse-url URL --database DB --api http://127.0.0.1:8080]
//!
//! Before the timed phase it encodes a few Pipecat-shaped ExportTraceServiceRequests (whole
//! conversations: `conversation` -> `turn` -> `stt` / `llm` / `tts`, children before
//! parents). During it, K workers each copy one of them, write fresh trace and session ids
//! into the copy at offsets found once, and send the bytes as they are, so every request holds
//! new sessions and the client does no protobuf work. With `--turn-by-turn` each conversation
//! goes out as an SDK exports a call that is under way instead: one request per turn (that
//! turn of every conversation of the template), the conversation span last, several
//! conversations in rotation per worker; `--turns N` sets the length of a conversation.
//!
//! It measures, per run: spans acknowledged (an OK answer) and refused per second, CPU seconds
//! per 1M acknowledged spans of the server, of ClickHouse and of this client (from /proc), the
//! server's peak RSS (VmHWM, reset before each run) and its RSS some seconds after the load;
//! with ClickHouse, the sessionizer's lag (end of load -> every session whose turns were all
//! acknowledged derived with all its turns, counted in the `sessions` table); with an API,
//! freshness at half the best measured rate, whole conversations (send ->
//! `GET /v1/sessions/{id}/transcript` shows the conversation's last turn).
//!
//! The figures go to stdout as a table and, with `--out FILE`, as `figure<TAB>value` lines for
//! the script to put beside another server's.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes};
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use twox_hash::XxHash3_128;

use common::{flag, float, int, text};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// A conversation's spans: four a turn (stt, llm, tts, the turn) and the conversation's.
fn spans_per_conversation(turns: usize) -> usize {
    1 + 4 * turns
}
/// Distinct request bodies (different texts); ids are fresh in every request anyway.
const TEMPLATES: usize = 8;
const PROBE_POLL: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
const LAG_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Parser, Debug)]
#[command(about = "OTLP/gRPC ingest load with pre-encoded Pipecat-shaped requests")]
struct Args {
    /// The receiver's OTLP/gRPC endpoint.
    #[arg(long)]
    endpoint: String,
    /// The receiver's process id (CPU and RSS from /proc).
    #[arg(long)]
    server_pid: u32,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Spans per request, rounded to whole conversations (of 33 spans at 8 turns).
    #[arg(long, default_value_t = 400)]
    spans: usize,
    /// Turns of each conversation (at least one).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    turns: u16,
    /// Send each conversation turn by turn, as an SDK exports a call while it goes on (each
    /// turn's spans in one request, the conversation span after the last turn), instead of
    /// whole. A worker takes turns of `--interleave` conversations in rotation.
    #[arg(long)]
    turn_by_turn: bool,
    /// With `--turn-by-turn`: the conversations each worker has under way.
    #[arg(long, default_value_t = 16)]
    interleave: usize,
    /// Load runs against the same server.
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// A worker's pause after a refused export before its next, as an OTLP exporter backs off
    /// (a retry storm would measure the client, not the server).
    #[arg(long, default_value_t = 1000)]
    refused_pause_ms: u64,
    /// Seconds after the end of a run's load at which the server's RSS is read.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// ClickHouse server process id (its CPU during the load).
    #[arg(long)]
    clickhouse_pid: Option<u32>,
    /// ClickHouse HTTP URL and database: with them, the sessionizer's lag is measured.
    #[arg(long)]
    clickhouse_url: Option<String>,
    #[arg(long, default_value = "convolog")]
    database: String,
    /// convolog's API base URL: with it, freshness is measured at half the best rate.
    #[arg(long)]
    api: Option<String>,
    /// Seconds of the freshness phase.
    #[arg(long, default_value_t = 20)]
    freshness_duration: u64,
    /// Write `figure<TAB>value` lines here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() {
    // Test runners that build every target (`cargo test --all-targets`, nextest) run bench
    // binaries too, with flags of their own (`--list`, filters): with no endpoint to load
    // there is nothing to do.
    let asked = std::env::args()
        .any(|a| a == "--endpoint" || a.starts_with("--endpoint=") || a == "--help" || a == "-h");
    if !asked {
        eprintln!("ingest bench: run it with scripts/bench-ingest.sh");
        return;
    }
    let args = Args::parse();
    if let Err(err) = run(&args).await {
        eprintln!("ingest bench failed: {err}");
        std::process::exit(1);
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let (endpoint, server_pid) = (args.endpoint.as_str(), args.server_pid);
    let templates = (0..TEMPLATES)
        .map(|t| Template::new(t, args.spans, usize::from(args.turns), args.turn_by_turn))
        .collect::<Result<Vec<_>, _>>()?;
    let shape = &templates[0];
    eprintln!(
        "{} requests of {} conversations, {} spans, {} bytes ({:.0} bytes a span)",
        templates.len(),
        shape.conversations,
        shape.spans,
        shape.whole.bytes.len(),
        shape.whole.bytes.len() as f64 / shape.spans as f64
    );
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = Channel::from_shared(endpoint.to_string())
            .map_err(|e| format!("endpoint {endpoint:?}: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        channels.push(channel);
    }
    let load = Load {
        templates: Arc::new(templates),
        channels,
        salt: std::process::id() % 10_000,
        turns: usize::from(args.turns),
    };
    let http = reqwest::Client::new();
    let tick = clock_ticks_per_second();

    let mut runs = Vec::new();
    for run in 0..args.runs.max(1) {
        // Resets VmHWM so each run's peak is its own (Linux >= 4.0).
        let _ = std::fs::write(format!("/proc/{server_pid}/clear_refs"), "5");
        let cpu_before = Cpu::read(server_pid, args.clickhouse_pid, tick);
        let stats = load
            .closed_loop(
                run,
                args.in_flight,
                if args.turn_by_turn {
                    args.interleave.max(1)
                } else {
                    1
                },
                Duration::from_secs(args.duration),
                Duration::from_millis(args.refused_pause_ms),
            )
            .await;
        let cpu_load = Cpu::read(server_pid, args.clickhouse_pid, tick).minus(&cpu_before);
        let load_end = Instant::now();
        let lag = match &args.clickhouse_url {
            Some(url) => Some(
                sessionizer_lag(
                    &http,
                    url,
                    &args.database,
                    &load.session_prefix(run),
                    load.turns,
                    &stats,
                )
                .await?,
            ),
            None => None,
        };
        let cpu_derived = Cpu::read(server_pid, args.clickhouse_pid, tick).minus(&cpu_before);
        tokio::time::sleep(Duration::from_secs(args.settle).saturating_sub(load_end.elapsed()))
            .await;
        let final_rss = proc_status_kib(server_pid, "VmRSS:");
        // The peak of the load and of deriving its sessions afterwards.
        let peak_rss = proc_status_kib(server_pid, "VmHWM:");
        let result = RunResult {
            stats,
            cpu_load,
            cpu_derived,
            peak_rss,
            final_rss,
            lag,
        };
        eprintln!("run {}: {}", run + 1, result.summary());
        runs.push(result);
    }

    let freshness = match &args.api {
        Some(api) => {
            let best = runs
                .iter()
                .map(|r| r.stats.acked_per_second())
                .fold(0.0, f64::max);
            Some(
                load.freshness(
                    &http,
                    api,
                    best / 2.0,
                    args.in_flight,
                    Duration::from_secs(args.freshness_duration),
                )
                .await,
            )
        }
        None => None,
    };

    let figures = figures(args, &load.templates[0], &runs, freshness.as_ref());
    let mut table = String::from("| figure | value |\n|---|---|\n");
    let mut tsv = String::new();
    for (figure, value) in &figures {
        let _ = writeln!(table, "| {figure} | {value} |");
        let _ = writeln!(tsv, "{figure}\t{value}");
    }
    print!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, tsv).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Requests: encoded once, ids written into a copy per request.

/// Where a per-request id sits in a template's bytes.
struct Patch {
    offset: usize,
    conversation: usize,
    field: Field,
}

#[derive(Clone, Copy)]
enum Field {
    TraceId,
    SessionId,
}

/// One request's bytes, with where its ids go.
struct Part {
    bytes: Vec<u8>,
    patches: Vec<Patch>,
    spans: usize,
    /// Conversations it completes once acknowledged (all their turns sent).
    completes: usize,
}

struct Template {
    /// Every conversation whole, in one request.
    whole: Part,
    /// Per turn, that turn of every conversation, then the conversation spans; only with
    /// `--turn-by-turn`.
    turns: Vec<Part>,
    conversations: usize,
    spans: usize,
}

impl Template {
    fn new(
        index: usize,
        spans: usize,
        turns: usize,
        turn_by_turn: bool,
    ) -> Result<Template, String> {
        let per_conversation = spans_per_conversation(turns);
        let conversations = ((spans + per_conversation / 2) / per_conversation).max(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_nanos() as u64;
        let all: Vec<Vec<Span>> = (0..conversations)
            .map(|c| {
                // Conversations that ended within the last few minutes.
                let start = now - (10 * 60 - (c as u64 % 60)) * 1_000_000_000;
                conversation(
                    index + c,
                    turns,
                    placeholder_trace_id(index, c),
                    &placeholder_session_id(index, c),
                    start,
                )
            })
            .collect();
        let whole = Part::new(index, &all, 0..per_conversation, turns, conversations)?;
        let mut parts = Vec::new();
        if turn_by_turn {
            // conversation() gives each turn's four spans in turn, then the conversation's.
            for turn in 0..turns {
                let completes = if turn + 1 == turns { conversations } else { 0 };
                let range = 4 * turn..4 * turn + 4;
                parts.push(Part::new(index, &all, range, turns, completes)?);
            }
            let last = per_conversation - 1;
            parts.push(Part::new(index, &all, last..last + 1, turns, 0)?);
        }
        Ok(Template {
            whole,
            turns: parts,
            conversations,
            spans: conversations * per_conversation,
        })
    }

    /// The requests a conversation is sent in, in order.
    fn parts(&self) -> &[Part] {
        if self.turns.is_empty() {
            std::slice::from_ref(&self.whole)
        } else {
            &self.turns
        }
    }
}

impl Part {
    /// The spans `range` of each of the `conversations` of template `index`, in one request.
    fn new(
        index: usize,
        conversations: &[Vec<Span>],
        range: std::ops::Range<usize>,
        turns: usize,
        completes: usize,
    ) -> Result<Part, String> {
        let spans: Vec<Span> = conversations
            .iter()
            .flat_map(|c| c[range.clone()].iter().cloned())
            .collect();
        let span_count = spans.len();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", "voice-agent"),
                        text("service.version", "2.4.1"),
                        text("deployment.environment", "production"),
                        text("host.name", &format!("agent-worker-{index}")),
                        text("telemetry.sdk.language", "python"),
                        text("telemetry.sdk.name", "opentelemetry"),
                        text("telemetry.sdk.version", "1.38.0"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "pipecat".into(),
                        version: "1.2.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = request.encode_to_vec();
        let mut patches = Vec::new();
        for c in 0..conversations.len() {
            let trace = placeholder_trace_id(index, c);
            let session = placeholder_session_id(index, c);
            for (needle, field) in [
                (&trace[..], Field::TraceId),
                (session.as_bytes(), Field::SessionId),
            ] {
                let found = find_all(&bytes, needle);
                // The session id is on the conversation span and on every turn span: once in
                // a turn's four spans and on the conversation span alone.
                let expected = match field {
                    Field::TraceId => range.len(),
                    Field::SessionId if range.len() == spans_per_conversation(turns) => 1 + turns,
                    Field::SessionId => 1,
                };
                if found.len() != expected {
                    return Err(format!(
                        "template {index}: id found {} times, expected {expected}",
                        found.len()
                    ));
                }
                patches.extend(found.into_iter().map(|offset| Patch {
                    offset,
                    conversation: c,
                    field,
                }));
            }
        }
        Ok(Part {
            bytes,
            patches,
            spans: span_count,
            completes,
        })
    }

    /// This part's bytes with the ids of conversations `number` of the run tagged `tag`.
    fn request(&self, tag: &str, number: u64) -> Bytes {
        let mut bytes = self.bytes.clone();
        for patch in &self.patches {
            let id = match patch.field {
                Field::TraceId => trace_id(tag, number, patch.conversation).to_vec(),
                Field::SessionId => session_id(tag, number, patch.conversation).into_bytes(),
            };
            bytes[patch.offset..patch.offset + id.len()].copy_from_slice(&id);
        }
        Bytes::from(bytes)
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(offset, _)| offset)
        .collect()
}

/// Same length as [`session_id`]; "xxxxxx" never appears in a real one.
fn placeholder_session_id(template: usize, conversation: usize) -> String {
    format!("bench-xxxxxx-{template:010}-{conversation:03}")
}

fn session_id(tag: &str, number: u64, conversation: usize) -> String {
    // The run's tag, to count its sessions, then 14 hex digits: as long as the placeholder.
    let id = scattered("session", tag, number, conversation) >> (128 - 56);
    format!("bench-{tag}-{id:014x}")
}

fn placeholder_trace_id(template: usize, conversation: usize) -> [u8; 16] {
    let mut id = [0xee; 16];
    id[4..8].copy_from_slice(&(template as u32).to_be_bytes());
    id[8..12].copy_from_slice(&(conversation as u32).to_be_bytes());
    id
}

/// Ids as SDKs make them: random-looking, so that a run's newest traces and sessions are
/// spread over the whole key space of ClickHouse's tables, as in production, and not
/// gathered at its end, where lookups by id would touch far fewer granules.
fn scattered(kind: &str, tag: &str, number: u64, conversation: usize) -> u128 {
    XxHash3_128::oneshot(format!("{kind}/{tag}/{number}/{conversation}").as_bytes())
}

fn trace_id(tag: &str, number: u64, conversation: usize) -> [u8; 16] {
    scattered("trace", tag, number, conversation).to_be_bytes()
}

const USER_LINES: [&str; 6] = [
    "Hi, I'd like to move my appointment from Thursday to Saturday morning if that's possible.",
    "It's under the name Jordan Alvarez, the booking reference should be in the email you sent.",
    "Saturday at ten would be perfect, and can you also add a second person to the booking?",
    "Actually, wait, is there parking near the clinic or should we take the train instead?",
    "Okay great, and will I get a text message to confirm the new time before the visit?",
    "No, that's everything for today, thank you so much for sorting that out so quickly.",
];

const AGENT_LINES: [&str; 6] = [
    "Of course, I can help you with that. Could you tell me the name the booking is under?",
    "Thanks, Jordan. I found your appointment on Thursday at two. Let me check Saturday for you.",
    "Done: Saturday at ten for two people. Both of you will get a reminder the day before.",
    "There is a car park right behind the clinic, and the station is a five minute walk away.",
    "Yes, you'll receive a text message within a few minutes confirming the new time.",
    "You're welcome! Have a lovely weekend and we'll see you on Saturday morning.",
];

const SYSTEM_PROMPT: &str = "You are Ava, the friendly voice assistant of the Riverside Health \
    clinic. You help callers book, move and cancel appointments, answer questions about opening \
    hours, parking, prices and what to bring, and hand the call to a human receptionist when \
    the caller asks for one or when you cannot help. Keep every answer short: this is a phone \
    call and the caller hears your reply as speech. Never read out long lists, links or \
    reference numbers in full. Confirm names, dates and times back to the caller before you \
    change a booking, and say clearly what you changed. The clinic is open Monday to Friday \
    from 8 am to 6 pm and on Saturday from 9 am to 1 pm. Appointments last 30 minutes. If the \
    caller sounds distressed or describes an emergency, tell them to call the emergency number \
    right away and end the call politely. Do not give medical advice. Use the tools to look up \
    and change bookings; never invent availability. When a tool fails, apologise once, try \
    again, and if it fails again offer to pass the call to a receptionist.";

const TOOLS: &str = r#"[{"type":"function","function":{"name":"find_booking","description":"Find a booking by name","parameters":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}}},{"type":"function","function":{"name":"move_booking","description":"Move a booking to a new time","parameters":{"type":"object","properties":{"booking_id":{"type":"string"},"start":{"type":"string","format":"date-time"},"guests":{"type":"integer"}},"required":["booking_id","start"]}}}]"#;

/// The LLM's `input`: system prompt, the conversation so far (the last exchanges) and the
/// new user line, as Pipecat serialises the context.
fn llm_input(variant: usize, turn: usize) -> String {
    let mut messages = vec![serde_json::json!({"role": "system", "content": SYSTEM_PROMPT})];
    for earlier in turn.saturating_sub(4)..turn {
        let line = (variant + earlier) % USER_LINES.len();
        messages.push(serde_json::json!({"role": "user", "content": USER_LINES[line]}));
        messages.push(serde_json::json!({"role": "assistant", "content": AGENT_LINES[line]}));
    }
    let line = (variant + turn) % USER_LINES.len();
    messages.push(serde_json::json!({"role": "user", "content": USER_LINES[line]}));
    serde_json::Value::Array(messages).to_string()
}

/// One Pipecat conversation, spans in the order Pipecat ends them: each turn's stt, llm, tts,
/// then the turn; the conversation last.
fn conversation(
    variant: usize,
    turns: usize,
    trace_id: [u8; 16],
    session_id: &str,
    start: u64,
) -> Vec<Span> {
    const MS: u64 = 1_000_000;
    let span_id = |i: usize| ((i as u64) + 1).to_be_bytes().to_vec();
    let make = |i: usize, parent: Option<usize>, name: &str, from: u64, to: u64| Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id(i),
        parent_span_id: parent.map(span_id).unwrap_or_default(),
        name: name.into(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: start + from * MS,
        end_time_unix_nano: start + to * MS,
        status: Some(Status::default()),
        ..Default::default()
    };
    let turn_ms = 6_000;
    let mut spans = Vec::with_capacity(spans_per_conversation(turns));
    for turn in 0..turns {
        let (at, first) = (turn as u64 * turn_ms, 1 + 4 * turn);
        let line = (variant + turn) % USER_LINES.len();
        let user = USER_LINES[line];
        let agent = AGENT_LINES[line];
        let mut stt = make(first + 1, Some(first), "stt", at, at + 1_800);
        stt.attributes = vec![
            text("gen_ai.provider.name", "deepgram"),
            text("gen_ai.request.model", "nova-3"),
            text("gen_ai.operation.name", "stt"),
            text("transcript", user),
            flag("is_final", true),
            text("language", "en-US"),
            text("user_id", "caller-5521"),
            float("metrics.ttfb", 0.18 + 0.01 * turn as f64),
            float("metrics.audio_seconds", 3.4),
            flag("vad_enabled", true),
        ];
        let mut llm = make(first + 2, Some(first), "llm", at + 1_900, at + 2_700);
        llm.attributes = vec![
            text("gen_ai.provider.name", "openai"),
            text("gen_ai.request.model", "gpt-4o-mini"),
            text("gen_ai.operation.name", "chat"),
            text("input", &llm_input(variant, turn)),
            text("output", agent),
            text("tools", TOOLS),
            int("tool_count", 2),
            int("gen_ai.usage.input_tokens", 410 + 38 * turn as i64),
            int("gen_ai.usage.output_tokens", 24),
            int("gen_ai.usage.cache_read.input_tokens", 384),
            float("metrics.ttfb", 0.42),
        ];
        let mut tts = make(first + 3, Some(first), "tts", at + 2_750, at + 4_900);
        tts.attributes = vec![
            text("gen_ai.provider.name", "cartesia"),
            text("gen_ai.request.model", "sonic-2"),
            text("gen_ai.operation.name", "tts"),
            text("voice_id", "a0e99841-438c-4a64-b679-ae501e7d6091"),
            text("text", agent),
            int("metrics.character_count", agent.len() as i64),
            float("metrics.ttfb", 0.21),
            flag("tts.interrupted", false),
        ];
        let mut turn_span = make(first, Some(0), "turn", at, at + 5_400);
        turn_span.attributes = vec![
            int("turn.number", turn as i64 + 1),
            text("turn.type", "conversation"),
            text("conversation.id", session_id),
            float("turn.duration_seconds", 5.4),
            flag("turn.was_interrupted", false),
            flag("turn.ended_by_conversation_end", turn + 1 == turns),
            float("turn.user_bot_latency_seconds", 0.95),
        ];
        spans.extend([stt, llm, tts, turn_span]);
    }
    let mut root = make(0, None, "conversation", 0, turns as u64 * turn_ms);
    root.attributes = vec![
        text("conversation.id", session_id),
        text("conversation.type", "voice"),
    ];
    spans.push(root);
    spans
}

// ---------------------------------------------------------------------------------------------
// Sending.

/// Sends the request bytes as they are; decodes the answer.
#[derive(Clone, Copy)]
struct RawExport;

struct BytesEncoder;
struct ResponseDecoder;

impl Codec for RawExport {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = BytesEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable answer: {e}")))
    }
}

enum Answer {
    /// OK; the spans the receiver rejected as invalid (partial_success).
    Acked {
        rejected: u64,
    },
    Refused(tonic::Code),
}

async fn export(channel: &Channel, body: Bytes) -> Answer {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if let Err(err) = grpc.ready().await {
        eprintln!("connection not ready: {err}");
        return Answer::Refused(tonic::Code::Unavailable);
    }
    let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
    match grpc.unary(tonic::Request::new(body), path, RawExport).await {
        Ok(answer) => Answer::Acked {
            rejected: answer
                .into_inner()
                .partial_success
                .map_or(0, |p| p.rejected_spans.max(0) as u64),
        },
        Err(status) => Answer::Refused(status.code()),
    }
}

#[derive(Default)]
struct Stats {
    elapsed: Duration,
    /// Conversations whose every turn was acknowledged.
    complete_conversations: u64,
    acked_requests: u64,
    acked_spans: u64,
    refused_spans: u64,
    rejected_spans: u64,
    refusals: Vec<(tonic::Code, u64)>,
    latencies: Vec<Duration>,
    client_cpu: f64,
}

impl Stats {
    fn acked_per_second(&self) -> f64 {
        self.acked_spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The answer to a request of `part`.
    fn record(&mut self, answer: Answer, latency: Duration, part: &Part) {
        let spans = part.spans as u64;
        match answer {
            Answer::Acked { rejected } => {
                self.acked_requests += 1;
                self.complete_conversations += part.completes as u64;
                self.acked_spans += spans - rejected.min(spans);
                self.rejected_spans += rejected;
                self.latencies.push(latency);
            }
            Answer::Refused(code) => {
                self.refused_spans += spans;
                match self.refusals.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => self.refusals.push((code, 1)),
                }
            }
        }
    }
}

struct Load {
    templates: Arc<Vec<Template>>,
    channels: Vec<Channel>,
    salt: u32,
    /// Turns of each conversation.
    turns: usize,
}

impl Load {
    /// Six digits naming a phase of this process (run index, or 99 for freshness).
    fn tag(&self, phase: usize) -> String {
        format!("{:04}{:02}", self.salt, phase % 100)
    }

    fn session_prefix(&self, phase: usize) -> String {
        format!("bench-{}-", self.tag(phase))
    }

    /// `in_flight` workers send back to back for `duration`; the run ends when the last answer
    /// is in.
    async fn closed_loop(
        &self,
        run: usize,
        in_flight: usize,
        interleave: usize,
        duration: Duration,
        refused_pause: Duration,
    ) -> Stats {
        let tag = self.tag(run);
        let next = Arc::new(AtomicU64::new(0));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let cpu_before = own_cpu_seconds();
        let started = Instant::now();
        let deadline = started + duration;
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..in_flight.max(1) {
            let channel = self.channels[worker % self.channels.len()].clone();
            let (templates, next, stats, tag) = (
                Arc::clone(&self.templates),
                Arc::clone(&next),
                Arc::clone(&stats),
                tag.clone(),
            );
            workers.spawn(async move {
                // Conversations under way: (request number, index of the next part).
                let mut under_way: Vec<(u64, usize)> = Vec::new();
                let mut turn = 0;
                while Instant::now() < deadline {
                    if under_way.len() < interleave {
                        under_way.push((next.fetch_add(1, Ordering::Relaxed), 0));
                    }
                    let slot = turn % under_way.len();
                    turn += 1;
                    let (number, part) = under_way[slot];
                    let template = &templates[number as usize % templates.len()];
                    let parts = template.parts();
                    let body = parts[part].request(&tag, number);
                    let sent = Instant::now();
                    let answer = export(&channel, body).await;
                    let refused = matches!(answer, Answer::Refused(_));
                    lock(&stats).record(answer, sent.elapsed(), &parts[part]);
                    // A refused part is not sent again, as an exporter that gives up drops it.
                    under_way[slot] = if part + 1 == parts.len() {
                        (next.fetch_add(1, Ordering::Relaxed), 0)
                    } else {
                        (number, part + 1)
                    };
                    if refused {
                        tokio::time::sleep(refused_pause).await;
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let mut stats = std::mem::take(&mut *lock(&stats));
        stats.elapsed = started.elapsed();
        stats.client_cpu = own_cpu_seconds() - cpu_before;
        stats
    }

    /// Sends at `spans_per_second` (at most `in_flight` at once) for `duration`; twice a
    /// second, the request's last conversation is followed on the API until its last turn
    /// shows.
    async fn freshness(
        &self,
        http: &reqwest::Client,
        api: &str,
        spans_per_second: f64,
        in_flight: usize,
        duration: Duration,
    ) -> Freshness {
        let template_spans = self.templates[0].spans as f64;
        let requests_per_second = (spans_per_second / template_spans).max(0.5);
        let probe_every = (requests_per_second / 2.0).round().max(1.0) as u64;
        eprintln!(
            "freshness: {:.0} spans/s ({requests_per_second:.1} requests/s) for {} s",
            spans_per_second,
            duration.as_secs()
        );
        let tag = self.tag(99);
        let stats = Arc::new(Mutex::new(Stats::default()));
        // Probes are followed while the load goes on; the rate counts only the sends.
        let (probes, mut probe_queue) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
        let follower = {
            let (http, api, turns) = (http.clone(), api.to_string(), self.turns);
            tokio::spawn(async move {
                let mut polls = tokio::task::JoinSet::new();
                while let Some((session, sent)) = probe_queue.recv().await {
                    let (http, api) = (http.clone(), api.clone());
                    polls.spawn(
                        async move { visible_after(&http, &api, &session, turns, sent).await },
                    );
                }
                polls.join_all().await
            })
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / requests_per_second));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sends = tokio::task::JoinSet::new();
        let started = Instant::now();
        let mut number = 0u64;
        while started.elapsed() < duration {
            ticker.tick().await;
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let template = &self.templates[number as usize % self.templates.len()];
            let body = template.whole.request(&tag, number);
            let probe = number
                .is_multiple_of(probe_every)
                .then(|| session_id(&tag, number, template.conversations - 1));
            let channel = self.channels[number as usize % self.channels.len()].clone();
            let (stats, probes) = (Arc::clone(&stats), probes.clone());
            let templates = Arc::clone(&self.templates);
            sends.spawn(async move {
                let sent = Instant::now();
                let answer = export(&channel, body).await;
                drop(slot);
                let acked = matches!(answer, Answer::Acked { .. });
                let whole = &templates[number as usize % templates.len()].whole;
                lock(&stats).record(answer, sent.elapsed(), whole);
                if let (true, Some(session)) = (acked, probe) {
                    let _ = probes.send((session, sent));
                }
            });
            number += 1;
        }
        // The rate is the one offered: over the sending, not the last answers' wait.
        let sending = started.elapsed();
        while sends.join_next().await.is_some() {}
        let mut stats = std::mem::take(&mut *lock(&stats));
        stats.elapsed = sending;
        drop(probes);
        let outcomes = follower.await.unwrap_or_default();
        Freshness {
            achieved: stats.acked_per_second(),
            refused: stats.refused_spans,
            delays: outcomes.iter().flatten().copied().collect(),
            missed: outcomes.iter().filter(|o| o.is_none()).count(),
        }
    }
}

/// Time from `sent` until the transcript of `session` shows all its turns; None after
/// [`PROBE_TIMEOUT`].
async fn visible_after(
    http: &reqwest::Client,
    api: &str,
    session: &str,
    expected_turns: usize,
    sent: Instant,
) -> Option<Duration> {
    let url = format!("{api}/v1/sessions/{session}/transcript");
    while sent.elapsed() < PROBE_TIMEOUT {
        if let Ok(response) = http.get(&url).send().await {
            if response.status().is_success() {
                let turns = response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|t| t["turn_count"].as_u64());
                if turns == Some(expected_turns as u64) {
                    return Some(sent.elapsed());
                }
            }
        }
        tokio::time::sleep(PROBE_POLL).await;
    }
    None
}

struct Freshness {
    achieved: f64,
    refused: u64,
    delays: Vec<Duration>,
    missed: usize,
}

/// Time from the end of the load until every acknowledged session of the run is in
/// `sessions` with all its turns.
async fn sessionizer_lag(
    http: &reqwest::Client,
    url: &str,
    database: &str,
    prefix: &str,
    turns: usize,
    stats: &Stats,
) -> Result<Lag, String> {
    let expected = stats.complete_conversations;
    let sql = format!(
        "SELECT uniqExact(session_id) FROM {database}.sessions \
         WHERE session_id LIKE '{prefix}%' AND turn_count = {turns}"
    );
    let started = Instant::now();
    let mut at_end = None;
    loop {
        let answer = http
            .post(url)
            .body(sql.clone())
            .send()
            .await
            .map_err(|e| format!("ClickHouse at {url}: {e}"))?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("ClickHouse answered {status}: {body}"));
        }
        let derived: u64 = body
            .trim()
            .parse()
            .map_err(|_| format!("ClickHouse answered {body:?} to a count"))?;
        at_end.get_or_insert(derived);
        if derived >= expected {
            return Ok(Lag {
                time: Some(started.elapsed()),
                behind_at_end: expected - at_end.unwrap_or(derived).min(expected),
                expected,
            });
        }
        if started.elapsed() > LAG_TIMEOUT {
            return Ok(Lag {
                time: None,
                behind_at_end: expected - at_end.unwrap_or(derived).min(expected),
                expected,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Lag {
    /// None: not caught up within [`LAG_TIMEOUT`].
    time: Option<Duration>,
    behind_at_end: u64,
    expected: u64,
}

// ---------------------------------------------------------------------------------------------
// /proc

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn own_cpu_seconds() -> f64 {
    cpu_ticks("self").unwrap_or(0) as f64 / clock_ticks_per_second()
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU seconds of the server and of ClickHouse.
#[derive(Clone, Copy)]
struct Cpu {
    server: f64,
    clickhouse: Option<f64>,
}

impl Cpu {
    fn read(server: u32, clickhouse: Option<u32>, tick: f64) -> Cpu {
        let seconds = |pid: u32| cpu_ticks(&pid.to_string()).unwrap_or(0) as f64 / tick;
        Cpu {
            server: seconds(server),
            clickhouse: clickhouse.map(seconds),
        }
    }

    fn minus(&self, before: &Cpu) -> Cpu {
        Cpu {
            server: self.server - before.server,
            clickhouse: self.clickhouse.zip(before.clickhouse).map(|(a, b)| a - b),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Report.

struct RunResult {
    stats: Stats,
    cpu_load: Cpu,
    cpu_derived: Cpu,
    peak_rss: Option<u64>,
    final_rss: Option<u64>,
    lag: Option<Lag>,
}

impl RunResult {
    /// None when nothing was acknowledged.
    fn per_million(&self, cpu_seconds: f64) -> Option<f64> {
        (self.stats.acked_spans > 0).then(|| cpu_seconds * 1e6 / self.stats.acked_spans as f64)
    }

    fn summary(&self) -> String {
        format!(
            "{:.0} spans/s acked, {} refused, server {} per 1M spans",
            self.stats.acked_per_second(),
            self.stats.refused_spans,
            cpu_seconds(self.per_million(self.cpu_load.server))
        )
    }
}

fn cpu_seconds(per_million: Option<f64>) -> String {
    per_million.map_or("- (none acknowledged)".into(), |s| format!("{s:.1} CPU-s"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn kilo(n: f64) -> String {
    if n >= 1000.0 {
        format!("{:.1}k", n / 1000.0)
    } else {
        format!("{n:.0}")
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// One value per run, joined.
fn per_run(runs: &[RunResult], value: impl Fn(&RunResult) -> String) -> String {
    runs.iter().map(value).collect::<Vec<_>>().join(" / ")
}

fn figures(
    args: &Args,
    shape: &Template,
    runs: &[RunResult],
    freshness: Option<&Freshness>,
) -> Vec<(String, String)> {
    let mut rows = vec![
        (
            "load".to_string(),
            format!(
                "conversations of {} turns, {} ({:.0} bytes a span), {} in flight, {} s a run, runs: {}",
                args.turns,
                match shape.turns.first() {
                    Some(turn) => format!(
                        "turn by turn: {} spans a request, {} conversations under way a worker",
                        turn.spans, args.interleave
                    ),
                    None => format!("{} spans a request", shape.spans),
                },
                shape.whole.bytes.len() as f64 / shape.spans as f64,
                args.in_flight,
                args.duration,
                runs.len()
            ),
        ),
        (
            "spans acknowledged after stored, per second".into(),
            per_run(runs, |r| kilo(r.stats.acked_per_second())),
        ),
        (
            "spans refused (retryable), per second".into(),
            per_run(runs, |r| {
                let mut s = kilo(r.stats.refused_spans as f64 / r.stats.elapsed.as_secs_f64());
                for (code, n) in &r.stats.refusals {
                    let _ = write!(s, " ({n} x {code:?})");
                }
                s
            }),
        ),
        (
            "export latency p50 / p99".into(),
            per_run(runs, |r| {
                let mut sorted = r.stats.latencies.clone();
                sorted.sort();
                format!(
                    "{} {}",
                    ms(percentile(&sorted, 50.0)),
                    ms(percentile(&sorted, 99.0))
                )
            }),
        ),
    ];
    let derived = runs.iter().any(|r| r.lag.is_some());
    let cpu = |figure: &str, seconds: fn(&RunResult) -> f64| {
        let value = per_run(runs, |r| cpu_seconds(r.per_million(seconds(r))));
        (figure.to_string(), value)
    };
    rows.push(cpu("server CPU per 1M spans, during the load", |r| {
        r.cpu_load.server
    }));
    if derived {
        rows.push(cpu(
            "server CPU per 1M spans, until all sessions derived",
            |r| r.cpu_derived.server,
        ));
    }
    if args.clickhouse_pid.is_some() {
        rows.push(cpu("ClickHouse CPU per 1M spans, during the load", |r| {
            r.cpu_load.clickhouse.unwrap_or(0.0)
        }));
        if derived {
            rows.push(cpu(
                "ClickHouse CPU per 1M spans, until all sessions derived",
                |r| r.cpu_derived.clickhouse.unwrap_or(0.0),
            ));
        }
    }
    rows.push(cpu("load generator CPU per 1M spans", |r| {
        r.stats.client_cpu
    }));
    rows.extend([
        (
            "server peak RSS (VmHWM) under the load and its catch-up".into(),
            per_run(runs, |r| mib(r.peak_rss)),
        ),
        (
            format!("server RSS {} s after the load", args.settle),
            per_run(runs, |r| mib(r.final_rss)),
        ),
    ]);
    if derived {
        rows.push((
            "sessionizer lag: end of load -> all sessions derived".into(),
            per_run(runs, |r| match &r.lag {
                Some(Lag {
                    time: Some(t),
                    behind_at_end,
                    expected,
                }) => format!(
                    "{:.1} s ({behind_at_end} of {expected} behind)",
                    t.as_secs_f64()
                ),
                Some(Lag {
                    behind_at_end,
                    expected,
                    ..
                }) => format!(
                    "> {} s ({behind_at_end} of {expected} behind)",
                    LAG_TIMEOUT.as_secs()
                ),
                None => "-".into(),
            }),
        ));
    }
    if let Some(f) = freshness {
        let mut sorted = f.delays.clone();
        sorted.sort();
        let mut value = format!(
            "p50 {}, p99 {}, max {} ({} probes at {} spans/s",
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            ms(sorted.last().copied().unwrap_or_default()),
            sorted.len(),
            kilo(f.achieved),
        );
        if f.missed > 0 {
            let _ = write!(
                value,
                "; {} not visible in {} s",
                f.missed,
                PROBE_TIMEOUT.as_secs()
            );
        }
        if f.refused > 0 {
            let _ = write!(value, "; {} spans refused", f.refused);
        }
        value.push(')');
        rows.push((
            "freshness at half the best rate: export sent -> transcript shows it".into(),
            value,
        ));
    }
    rows
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
