//! `convolog serve` as a real process, a load of OTLP exports that retries like an exporter,
//! and the checks that follow: every acknowledged span stored, every session as a clean run
//! derives it. For the soak and multi-instance tests.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::*;

/// `convolog serve` as a child process, on free ports.
pub struct Convolog {
    child: Child,
    pub grpc_url: String,
    pub api_url: String,
}

impl Convolog {
    pub async fn start(
        clickhouse_url: &str,
        database: &str,
        settings: &[(&str, &str)],
    ) -> Convolog {
        let address = || format!("127.0.0.1:{}", free_port());
        let (grpc, http, api) = (address(), address(), address());
        let child = Command::new(env!("CARGO_BIN_EXE_convolog"))
            .arg("serve")
            .env_remove("CONVOLOG_CONFIG")
            .env("CONVOLOG_CLICKHOUSE_URL", clickhouse_url)
            .env("CONVOLOG_CLICKHOUSE_DATABASE", database)
            .env("CONVOLOG_GRPC_LISTEN", &grpc)
            .env("CONVOLOG_HTTP_LISTEN", &http)
            .env("CONVOLOG_API_LISTEN", &api)
            .env("CONVOLOG_BATCH_MAX_WAIT_MS", "20")
            .env("CONVOLOG_SESSIONIZE_DEBOUNCE_MS", "50")
            .env("CONVOLOG_LOG_FILTER", "warn")
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("convolog starts");
        let convolog = Convolog {
            child,
            grpc_url: format!("http://{grpc}"),
            api_url: format!("http://{api}"),
        };
        // Ready: the schema is applied and the receivers serve. On a cluster every schema
        // statement waits for every server: half a minute on a quiet machine.
        let ready = format!("{}/readyz", convolog.api_url);
        let up = wait_up_to(Duration::from_secs(180), async || {
            reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            up,
            "convolog serve did not become ready on {ready} (its log is above)"
        );
        convolog
    }

    pub async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("convolog ends");
    }

    /// Resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.id().expect("convolog runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmRSS in /proc/PID/status")
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// ---- the load ----

/// One export request, and the (trace_id, span_id) of its spans in hex as they are stored.
pub struct Export {
    pub request: ExportTraceServiceRequest,
    pub spans: Vec<(String, String)>,
}

impl Export {
    pub fn new(request: ExportTraceServiceRequest) -> Export {
        let spans = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| (hex::encode(&s.trace_id), hex::encode(&s.span_id)))
            .collect();
        Export { request, spans }
    }
}

/// `conversations` Pipecat conversations (3 turns, 13 spans each), 3 spans to a request;
/// the session ids.
pub fn conversations(count: u64) -> (Vec<Export>, Vec<String>) {
    let anchor = anchor();
    let mut exports = Vec::new();
    let mut sessions = Vec::new();
    for n in 0..count {
        let session = format!("soak-{n}");
        let specs = pipecat_conversation(&session, 1000 + n);
        let requests = requests(&specs.iter().collect::<Vec<_>>(), anchor, 3);
        exports.extend(requests.into_iter().map(Export::new));
        sessions.push(session);
    }
    (exports, sessions)
}

/// What the load client saw.
#[derive(Default)]
pub struct Seen {
    /// Indexes of acknowledged exports, in the order of their acknowledgement.
    pub acknowledged: Vec<usize>,
    /// Every answer other than OK.
    pub refusals: Vec<tonic::Status>,
    /// Connections refused or cut (convolog down, or killed during an export).
    pub transport_errors: usize,
    /// Exports given up after [`EXPORT_TIMEOUT`] without an answer (and sent again).
    pub timeouts: usize,
}

/// How long the load client waits for an answer: OpenTelemetry SDK exporters' default.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl Seen {
    pub fn acknowledged(seen: &Mutex<Seen>) -> usize {
        seen.lock().expect("lock").acknowledged.len()
    }
}

/// Which of the convolog instances an export goes to first.
#[derive(Clone, Copy)]
pub enum Route {
    /// By the trace id of its first span, as the Collector's `load_balancing` exporter does.
    ByTrace,
    /// Each export to the next instance, whatever its traces, as a plain load balancer does.
    RoundRobin,
}

impl Route {
    fn first(self, index: usize, export: &Export, instances: usize) -> usize {
        let n = instances.max(1);
        match self {
            Route::RoundRobin => index % n,
            Route::ByTrace => {
                let trace = export.spans.first().map_or("", |(t, _)| t.as_str());
                trace
                    .bytes()
                    .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
                    % n
            }
        }
    }
}

/// `clients` exporters take the exports in turn, each sending one until it is acknowledged
/// and pausing `pause` between exports. An export goes to the convolog `route` picks among
/// those `targets` names at the time; after a failure it is sent again to the next one.
pub fn start_load(
    exports: Arc<Vec<Export>>,
    targets: watch::Receiver<Vec<String>>,
    route: Route,
    clients: usize,
    pause: Duration,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (exports, targets, seen, next) = (
            Arc::clone(&exports),
            targets.clone(),
            Arc::clone(&seen),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(export) = exports.get(index) else {
                    return;
                };
                for attempt in 0.. {
                    let url = {
                        let urls = targets.borrow();
                        let first = route.first(index, export, urls.len());
                        urls[(first + attempt) % urls.len()].clone()
                    };
                    // Connecting is timed too: the port of a killed instance may be taken by
                    // another test's server, which need never answer an HTTP/2 handshake.
                    let answer = tokio::time::timeout(EXPORT_TIMEOUT, async {
                        match TraceServiceClient::connect(url).await {
                            Ok(mut client) => Some(client.export(export.request.clone()).await),
                            Err(_) => None,
                        }
                    })
                    .await
                    .map_or(Some(Err(())), |answer| answer.map(Ok));
                    {
                        let mut seen = seen.lock().expect("lock");
                        match answer {
                            Some(Ok(Ok(_))) => {
                                seen.acknowledged.push(index);
                                break;
                            }
                            Some(Ok(Err(status))) if is_transport_error(&status) => {
                                seen.transport_errors += 1
                            }
                            Some(Ok(Err(status))) => seen.refusals.push(status),
                            Some(Err(_elapsed)) => seen.timeouts += 1,
                            None => seen.transport_errors += 1,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                tokio::time::sleep(pause).await;
            }
        }));
    }
    let all = tokio::spawn(async move {
        for task in tasks {
            task.await.expect("load client");
        }
    });
    (seen, all)
}

/// A connection cut before an answer came (tonic reports it as UNAVAILABLE or UNKNOWN with
/// a transport error as its source), not an answer from convolog.
fn is_transport_error(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
}

pub async fn wait_for_acknowledged(seen: &Mutex<Seen>, count: usize) {
    let reached = wait_until(async || Seen::acknowledged(seen) >= count).await;
    assert!(
        reached,
        "the load did not reach {count} acknowledged exports"
    );
}

// ---- what must hold afterwards ----

/// Requests the checks send at once.
pub const PARALLEL: usize = 8;

/// convolog kept its ports open, and whatever it refused, it refused with a status that OTLP
/// clients retry; and the fault was seen (refusals, or exports that timed out and were sent
/// again, as exporters do).
pub fn assert_only_retryable_answers(seen: &Seen) {
    assert_eq!(seen.transport_errors, 0, "convolog kept answering");
    assert!(
        !seen.refusals.is_empty() || seen.timeouts > 0,
        "the fault was seen by the clients"
    );
    let not_retryable: Vec<_> = seen
        .refusals
        .iter()
        .filter(|status| status.code() != tonic::Code::Unavailable)
        .collect();
    assert!(
        not_retryable.is_empty(),
        "answers clients do not retry: {not_retryable:?}"
    );
}

/// Every span of every acknowledged export is in `database`, as the server at
/// `clickhouse_url` reads it: on a cluster, once replication brought over what instances on
/// the other servers stored.
pub async fn assert_acknowledged_spans_stored(
    clickhouse_url: &str,
    database: &str,
    exports: &[Export],
    seen: &Seen,
) {
    let sql = clickhouse::Client::default()
        .with_url(clickhouse_url)
        .with_database(database)
        .with_validation(false);
    let acknowledged: BTreeSet<&(String, String)> = seen
        .acknowledged
        .iter()
        .flat_map(|&index| &exports[index].spans)
        .collect();
    let mut missing = Vec::new();
    let all_stored = wait_until(async || {
        let stored: BTreeSet<(String, String)> = sql
            .query("SELECT DISTINCT trace_id, span_id FROM spans")
            .fetch_all::<(String, String)>()
            .await
            .expect("stored spans")
            .into_iter()
            .collect();
        missing = acknowledged
            .iter()
            .filter(|span| !stored.contains(**span))
            .map(|span| (*span).clone())
            .collect();
        missing.is_empty()
    })
    .await;
    assert!(
        all_stored,
        "{} acknowledged spans are not stored, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}

/// The views of each session the API at `api_url` shows.
const VIEWS: [&str; 3] = ["", "/timeline", "/transcript"];

/// The summary, timeline and transcript of every session, as the API at `api_url` shows them.
async fn session_views(api_url: &str, sessions: &[String]) -> Vec<(u16, serde_json::Value)> {
    let paths = sessions
        .iter()
        .flat_map(|session| VIEWS.map(|view| format!("{session}{view}")));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    stream::iter(paths)
        .map(|path| {
            let request = client.get(format!("{api_url}/v1/sessions/{path}"));
            async move {
                let response = request.send().await.expect("API answers within 30 s");
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or_default())
            }
        })
        .buffered(PARALLEL)
        .collect()
        .await
}

/// Rows of the derived tables, current revisions only: a session, turn or message left over by
/// a pass that lost would show here.
const DERIVED_COUNTS: [&str; 4] = [
    "SELECT count() FROM sessions_current",
    "SELECT count() FROM sessions_current WHERE deleted = 0",
    "SELECT count() FROM turns_current",
    "SELECT count() FROM messages_current",
];

async fn derived_counts(sql: &clickhouse::Client) -> Vec<u64> {
    let mut counts = Vec::new();
    for query in DERIVED_COUNTS {
        counts.push(sql.query(query).fetch_one::<u64>().await.expect("count"));
    }
    counts
}

/// The database of the run under test.
pub struct Database<'a> {
    pub clickhouse_url: &'a str,
    pub name: &'a str,
}

/// Derives the same spans in a clean run (one app that never failed, a fresh database, each
/// export sent once), then waits until every session of the run under test (its API at
/// `api_url`, its `database`) equals its clean twin, and its derived tables hold as many
/// current rows.
pub async fn assert_sessions_equal_a_clean_run(
    api_url: &str,
    database: &Database<'_>,
    exports: &[Export],
    sessions: &[String],
) {
    let clean = TestApp::start("soak_clean").await;
    stream::iter(exports)
        .for_each_concurrent(PARALLEL, |export| async {
            clean
                .export_grpc(export.request.clone())
                .await
                .expect("the clean run stores every export");
        })
        .await;
    // Every session whole (three turns each) and every span in one: a clean view taken any
    // earlier could be one that the clean run itself still changes.
    let expected = sessions.len();
    let spans = exports
        .iter()
        .flat_map(|export| &export.spans)
        .collect::<BTreeSet<_>>()
        .len();
    let whole = format!(
        "SELECT toUInt64(count() = {expected} AND min(turn_count) = 3 AND sum(span_count) = {spans}) \
         FROM sessions_current WHERE deleted = 0"
    );
    let derived = wait_until(async || clean.count(&whole).await == 1).await;
    assert!(derived, "the clean run derives every span into its session");
    let clean_views = session_views(&clean.api_url(""), sessions).await;
    assert!(clean_views.iter().all(|(status, _)| *status == 200));
    // The run under faults may still be catching up.
    let mut views = Vec::new();
    let same = wait_until(async || {
        views = session_views(api_url, sessions).await;
        views == clean_views
    })
    .await;
    let clean_counts = derived_counts(&clean.sql).await;
    clean.stop().await;
    if !same {
        let (index, (got, want)) = views
            .iter()
            .zip(&clean_views)
            .enumerate()
            .find(|(_, (got, want))| got != want)
            .expect("some view differs");
        panic!(
            "session {} differs from the clean run:\n{got:?}\nclean:\n{want:?}",
            sessions[index / VIEWS.len()]
        );
    }
    let sql = clickhouse::Client::default()
        .with_url(database.clickhouse_url)
        .with_database(database.name)
        .with_validation(false);
    let mut counts = Vec::new();
    let same_counts = wait_until(async || {
        counts = derived_counts(&sql).await;
        counts == clean_counts
    })
    .await;
    assert!(
        same_counts,
        "derived rows {counts:?} differ from the clean run's {clean_counts:?} ({DERIVED_COUNTS:?})"
    );
}

pub async fn drop_database(clickhouse_url: &str, database: &str) {
    let _ = clickhouse::Client::default()
        .with_url(clickhouse_url)
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
}
