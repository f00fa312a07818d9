//! Soak tests: the real `convolog serve` binary under a sustained load of OTLP exports while
//! it is killed (`kill -9`) and restarted, while its ClickHouse is stopped for 60 s, and while
//! ClickHouse answers slowly. The load client retries each export until it is acknowledged,
//! as OTLP exporters do, and records every answer. The assertions are about answers, stored
//! spans and derived sessions, never about speed: every acknowledged span is stored, and every
//! session equals what a clean run derives from the same spans.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::stream::{self, StreamExt};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// `convolog serve` as a child process, on free ports.
struct Convolog {
    child: Child,
    grpc_url: String,
    api_url: String,
}

impl Convolog {
    async fn start(clickhouse_url: &str, database: &str, settings: &[(&str, &str)]) -> Convolog {
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
        let health = format!("{}/healthz", convolog.api_url);
        let up = wait_until(async || reqwest::get(&health).await.is_ok()).await;
        assert!(
            up,
            "convolog serve did not answer on {health} (its log is above)"
        );
        convolog
    }

    async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("convolog ends");
    }

    /// Resident memory, from /proc.
    fn rss_bytes(&self) -> u64 {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

// ---- the load ----

/// One export request, and the (trace_id, span_id) of its spans in hex as they are stored.
struct Export {
    request: ExportTraceServiceRequest,
    spans: Vec<(String, String)>,
}

/// `conversations` Pipecat conversations (3 turns, 13 spans each), 3 spans to a request;
/// the session ids.
fn conversations(count: u64) -> (Vec<Export>, Vec<String>) {
    let anchor = anchor();
    let mut exports = Vec::new();
    let mut sessions = Vec::new();
    for n in 0..count {
        let session = format!("soak-{n}");
        let specs = pipecat_conversation(&session, 1000 + n);
        for request in requests(&specs.iter().collect::<Vec<_>>(), anchor, 3) {
            let spans = request.resource_spans[0].scope_spans[0]
                .spans
                .iter()
                .map(|s| (hex::encode(&s.trace_id), hex::encode(&s.span_id)))
                .collect();
            exports.push(Export { request, spans });
        }
        sessions.push(session);
    }
    (exports, sessions)
}

/// What the load client saw.
#[derive(Default)]
struct Seen {
    /// Indexes of acknowledged exports, in the order of their acknowledgement.
    acknowledged: Vec<usize>,
    /// Every answer other than OK.
    refusals: Vec<tonic::Status>,
    /// Connections refused or cut (convolog down, or killed during an export).
    transport_errors: usize,
    /// Exports given up after [`EXPORT_TIMEOUT`] without an answer (and sent again).
    timeouts: usize,
}

/// How long the load client waits for an answer: OpenTelemetry SDK exporters' default.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl Seen {
    fn acknowledged(seen: &Mutex<Seen>) -> usize {
        seen.lock().expect("lock").acknowledged.len()
    }
}

/// `clients` exporters take the exports in turn, each sending one until it is acknowledged
/// (retrying after any failure) and pausing `pause` between exports, to whichever convolog
/// `target` names at the time.
fn start_load(
    exports: Arc<Vec<Export>>,
    target: watch::Receiver<String>,
    clients: usize,
    pause: Duration,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (exports, target, seen, next) = (
            Arc::clone(&exports),
            target.clone(),
            Arc::clone(&seen),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(export) = exports.get(index) else {
                    return;
                };
                loop {
                    let url = target.borrow().clone();
                    let answer = match TraceServiceClient::connect(url).await {
                        Ok(mut client) => Some(
                            tokio::time::timeout(
                                EXPORT_TIMEOUT,
                                client.export(export.request.clone()),
                            )
                            .await,
                        ),
                        Err(_) => None,
                    };
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

async fn wait_for_acknowledged(seen: &Mutex<Seen>, count: usize) {
    let reached = wait_until(async || Seen::acknowledged(seen) >= count).await;
    assert!(
        reached,
        "the load did not reach {count} acknowledged exports"
    );
}

// ---- what must hold afterwards ----

/// Requests the checks send at once.
const PARALLEL: usize = 8;

/// convolog kept its ports open, and whatever it refused, it refused with a status that OTLP
/// clients retry; and the fault was seen (refusals, or exports that timed out and were sent
/// again, as exporters do).
fn assert_only_retryable_answers(seen: &Seen) {
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

/// Every span of every acknowledged export is in `database`.
async fn assert_acknowledged_spans_stored(
    clickhouse_url: &str,
    database: &str,
    exports: &[Export],
    seen: &Seen,
) {
    let sql = clickhouse::Client::default()
        .with_url(clickhouse_url)
        .with_database(database)
        .with_validation(false);
    let stored: BTreeSet<(String, String)> = sql
        .query("SELECT DISTINCT trace_id, span_id FROM spans")
        .fetch_all::<(String, String)>()
        .await
        .expect("stored spans")
        .into_iter()
        .collect();
    let missing: Vec<_> = seen
        .acknowledged
        .iter()
        .flat_map(|&index| &exports[index].spans)
        .filter(|span| !stored.contains(*span))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged spans are not stored, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}

/// The summary and timeline of every session, as the API at `api_url` shows them.
async fn session_views(api_url: &str, sessions: &[String]) -> Vec<(u16, serde_json::Value)> {
    let paths = sessions
        .iter()
        .flat_map(|session| ["", "/timeline"].map(|view| format!("{session}{view}")));
    stream::iter(paths)
        .map(|path| async move {
            let response = reqwest::get(format!("{api_url}/v1/sessions/{path}"))
                .await
                .expect("API answers");
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or_default())
        })
        .buffered(PARALLEL)
        .collect()
        .await
}

/// Derives the same spans in a clean run (an app that never failed, a fresh database, each
/// export sent once), then waits until every session at `api_url` equals its clean twin.
async fn assert_sessions_equal_a_clean_run(api_url: &str, exports: &[Export], sessions: &[String]) {
    let clean = TestApp::start("soak_clean").await;
    stream::iter(exports)
        .for_each_concurrent(PARALLEL, |export| async {
            clean
                .export_grpc(export.request.clone())
                .await
                .expect("the clean run stores every export");
        })
        .await;
    // Every session whole: three turns each.
    let expected = sessions.len() as u64;
    let derived = wait_until(async || {
        clean
            .count("SELECT count() FROM sessions FINAL WHERE turn_count = 3")
            .await
            == expected
    })
    .await;
    assert!(derived, "the clean run derives every session");
    let clean_views = session_views(&clean.api_url(""), sessions).await;
    assert!(clean_views.iter().all(|(status, _)| *status == 200));
    // The run under faults may still be catching up: give it the usual wait, twice.
    let mut views = Vec::new();
    let mut same = false;
    for _ in 0..2 {
        same = wait_until(async || {
            views = session_views(api_url, sessions).await;
            views == clean_views
        })
        .await;
        if same {
            break;
        }
    }
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
            sessions[index / 2]
        );
    }
}

// ---- the tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_under_load_loses_no_acknowledged_span_and_derives_the_same_sessions() {
    let database = fresh_database("soak_crash");
    let clickhouse = clickhouse_url();
    let mut convolog = Convolog::start(&clickhouse, &database, &[]).await;
    let (exports, sessions) = conversations(40);
    let exports = Arc::new(exports);
    let (target, targeted) = watch::channel(convolog.grpc_url.clone());
    let (seen, load) = start_load(Arc::clone(&exports), targeted, 4, Duration::from_millis(20));

    // Killed at several moments of the load: early, in the middle, near the end.
    let total = exports.len();
    for moment in [total / 10, total / 2, total * 4 / 5] {
        wait_for_acknowledged(&seen, moment).await;
        convolog.kill().await;
        let acknowledged_at_kill = Seen::acknowledged(&seen);
        // Clients meet a closed port for a while, as after a real crash.
        tokio::time::sleep(Duration::from_millis(300)).await;
        convolog = Convolog::start(&clickhouse, &database, &[]).await;
        target.send_replace(convolog.grpc_url.clone());
        // What was acknowledged before the kill is never sent again: finding it stored at the
        // end means it was stored when it was acknowledged.
        assert!(acknowledged_at_kill >= moment);
    }
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(
        seen.acknowledged.len(),
        total,
        "every export acknowledged in the end"
    );
    assert!(
        seen.transport_errors > 0,
        "the clients met convolog down at least once"
    );

    assert_acknowledged_spans_stored(&clickhouse, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&convolog.api_url, &exports, &sessions).await;
    convolog.kill().await;
    drop_database(&clickhouse, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_60_second_clickhouse_outage_gets_retryable_answers_and_loses_nothing() {
    // ClickHouse is killed (a clean stop can take long under load) and started again 60 s later.
    const MAX_PENDING_BYTES: u64 = 4 * 1024 * 1024;
    const MAX_REQUEST_BYTES: u64 = 1024 * 1024;
    let own = OwnClickHouse::start("outage", None, &[]);
    let database = fresh_database("soak_outage");
    let convolog = Convolog::start(
        &own.url,
        &database,
        &[
            ("CONVOLOG_MAX_PENDING_BYTES", &MAX_PENDING_BYTES.to_string()),
            ("CONVOLOG_MAX_REQUEST_BYTES", &MAX_REQUEST_BYTES.to_string()),
        ],
    )
    .await;
    let (exports, sessions) = conversations(120);
    let exports = Arc::new(exports);
    let (_target, targeted) = watch::channel(convolog.grpc_url.clone());
    // Paced, so the load goes on through the outage and past it.
    let (seen, load) = start_load(
        Arc::clone(&exports),
        targeted,
        8,
        Duration::from_millis(250),
    );

    wait_for_acknowledged(&seen, exports.len() / 4).await;
    let rss_before = convolog.rss_bytes();
    own.kill();
    let acknowledged_before = Seen::acknowledged(&seen);
    let mut rss_peak = rss_before;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(convolog.rss_bytes());
    }
    let acknowledged_during = Seen::acknowledged(&seen) - acknowledged_before;
    own.restart();
    assert!(
        Seen::acknowledged(&seen) < exports.len(),
        "the load went on past the outage"
    );
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));

    assert_eq!(
        acknowledged_during, 0,
        "nothing is acknowledged while ClickHouse is down"
    );
    assert_only_retryable_answers(&seen);
    // The memory held for waiting exports is bounded by max_pending_bytes; the rest of the
    // process (connections, buffers, the sessionizer) must not grow with the outage either.
    let grown = rss_peak.saturating_sub(rss_before);
    assert!(
        grown <= 2 * MAX_PENDING_BYTES + 32 * 1024 * 1024,
        "resident memory grew by {grown} bytes during the outage (from {rss_before})"
    );
    assert_eq!(seen.acknowledged.len(), exports.len());
    assert_acknowledged_spans_stored(&own.url, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&convolog.api_url, &exports, &sessions).await;
    convolog.kill().await;
    own.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_clickhouse_gets_retryable_answers_and_loses_nothing() {
    let database = fresh_database("soak_slow");
    let clickhouse = clickhouse_url();
    let proxy = Proxy::start(&clickhouse).await;
    let convolog = Convolog::start(
        &proxy.url,
        &database,
        &[("CONVOLOG_CLICKHOUSE_TIMEOUT_MS", "1000")],
    )
    .await;
    let (exports, sessions) = conversations(40);
    let exports = Arc::new(exports);
    let (_target, targeted) = watch::channel(convolog.grpc_url.clone());
    let (seen, load) = start_load(Arc::clone(&exports), targeted, 4, Duration::from_millis(20));

    // Slow but within convolog's time-out, then past it, then well again.
    wait_for_acknowledged(&seen, exports.len() / 5).await;
    proxy.set(ProxyMode::Delay(Duration::from_millis(300)));
    let slow_from = Seen::acknowledged(&seen);
    wait_for_acknowledged(&seen, slow_from + 10).await;
    proxy.set(ProxyMode::Delay(Duration::from_millis(1500)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(ProxyMode::Forward);
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));

    assert_only_retryable_answers(&seen);
    assert_eq!(seen.acknowledged.len(), exports.len());
    assert_acknowledged_spans_stored(&clickhouse, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&convolog.api_url, &exports, &sessions).await;
    convolog.kill().await;
    drop_database(&clickhouse, &database).await;
}

async fn drop_database(clickhouse_url: &str, database: &str) {
    let _ = clickhouse::Client::default()
        .with_url(clickhouse_url)
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
}
