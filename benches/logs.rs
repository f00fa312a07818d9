//! List and transcript latency of the logs API over a large ClickHouse: loads synthetic
//! sessions (default 1,000,000, with 4 messages and 2 turns each) with INSERT ... SELECT FROM
//! numbers(), then times requests through the API router (parsing, SQL, JSON), in process.
//!
//!   CONVOLOG_BENCH_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench --bench logs
//!
//! CONVOLOG_BENCH_SESSIONS sets the count; CONVOLOG_BENCH_KEEP=1 keeps the database
//! (`convolog_bench_<count>`) and a later run reuses it. Without a ClickHouse URL
//! (CONVOLOG_BENCH_CLICKHOUSE_URL, else CONVOLOG_TEST_CLICKHOUSE_URL) it prints why and exits.

#[path = "../tests/common/synthetic.rs"]
mod synthetic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use convolog::api::{self, ApiState};
use convolog::config::Config;
use convolog::store::Store;
use convolog::telemetry::Metrics;

const CHUNK: u64 = 250_000;
const RUNS: usize = 15;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn count(client: &clickhouse::Client, sql: &str) -> u64 {
    client.query(sql).fetch_one::<u64>().await.unwrap_or(0)
}

async fn load(client: &clickhouse::Client, sessions: u64, base: u64, step_ms: u64) {
    let started = Instant::now();
    let mut first = 0;
    while first < sessions {
        let n = CHUNK.min(sessions - first);
        for sql in [
            synthetic::sessions_sql(first, n, base, step_ms),
            synthetic::session_starts_sql(first, n, base, step_ms),
            synthetic::messages_sql(first, n, base, step_ms),
            synthetic::turns_sql(first, n, base, step_ms),
        ] {
            client
                .query(&sql)
                .execute()
                .await
                .expect("synthetic insert");
        }
        first += n;
        eprint!("\rloaded {first}/{sessions} sessions");
    }
    // A few labelled and flagged sessions for the annotation filters.
    client
        .query(
            "INSERT INTO session_annotations (session_id, kind, value, present, note, version, updated_at) \
             SELECT session_id, 'label', 'vip', 1, '', 1, now() FROM sessions WHERE cityHash64(session_id) % 1000 = 0",
        )
        .execute()
        .await
        .expect("labels");
    eprintln!(" in {:.1} s", started.elapsed().as_secs_f64());
}

struct Timing {
    name: String,
    runs: Vec<Duration>,
    bytes: usize,
}

async fn get(app: &axum::Router, uri: &str) -> (u16, bytes::Bytes) {
    let request = Request::builder()
        .uri(uri)
        .header("host", "localhost")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))))
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("answer");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

async fn time(app: &axum::Router, name: &str, uris: &[String]) -> Timing {
    let (status, body) = get(app, &uris[0]).await; // warm-up
    assert_eq!(
        status,
        200,
        "{}: {}",
        uris[0],
        String::from_utf8_lossy(&body)
    );
    let mut runs = Vec::new();
    let mut bytes = 0;
    for i in 0..RUNS {
        let uri = &uris[i % uris.len()];
        let started = Instant::now();
        let (status, body) = get(app, uri).await;
        runs.push(started.elapsed());
        assert_eq!(status, 200, "{uri}");
        bytes = body.len();
    }
    runs.sort();
    Timing {
        name: name.to_owned(),
        runs,
        bytes,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    // Only `cargo bench` (which passes --bench) runs it: test runners that build every
    // target (`cargo test --all-targets`, nextest's `--list`) must not load a million rows.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("logs bench: run it with cargo bench --bench logs");
        return;
    }
    let Some(url) =
        env("CONVOLOG_BENCH_CLICKHOUSE_URL").or_else(|| env("CONVOLOG_TEST_CLICKHOUSE_URL"))
    else {
        eprintln!("logs bench skipped: set CONVOLOG_BENCH_CLICKHOUSE_URL to a ClickHouse server");
        return;
    };
    let sessions: u64 = env("CONVOLOG_BENCH_SESSIONS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let keep = env("CONVOLOG_BENCH_KEEP").is_some();
    let database = format!("convolog_bench_{sessions}_v2");
    let mut config = Config::default();
    config.clickhouse.url = url.clone();
    config.clickhouse.database = database.clone();
    config.clickhouse.timeout_ms = 120_000;
    let store = Store::new(&config.clickhouse);
    store.migrate().await.expect("schema");
    let client = clickhouse::Client::default()
        .with_url(&url)
        .with_database(&database)
        .with_validation(false);
    let version: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .expect("version");

    // One session every 800 ms, ending now: 1M sessions span about nine days.
    let step_ms = 800;
    let now = convolog::clock::now_unix_nano();
    let base = now - sessions * step_ms * 1_000_000;
    let have = count(&client, "SELECT count() FROM sessions").await;
    if have != sessions {
        if have != 0 {
            for table in [
                "sessions",
                "session_starts",
                "messages",
                "turns",
                "session_annotations",
            ] {
                client
                    .query(&format!("TRUNCATE TABLE {table}"))
                    .execute()
                    .await
                    .expect("truncate");
            }
        }
        load(&client, sessions, base, step_ms).await;
    } else {
        eprintln!("reusing {sessions} sessions in {database}");
    }
    let messages = count(&client, "SELECT count() FROM messages").await;

    let app = api::router(ApiState::single(store, Arc::new(Metrics::default())));
    let cursor = {
        let (_, body) = get(&app, "/v1/sessions?limit=50").await;
        let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        page["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned()
    };
    let some_ids: Vec<String> = client
        .query("SELECT session_id FROM sessions ORDER BY cityHash64(session_id, 7) LIMIT ?")
        .bind(RUNS as u64)
        .fetch_all()
        .await
        .expect("some ids");
    let per = |path: &str| -> Vec<String> {
        some_ids.iter().map(|id| path.replace("{id}", id)).collect()
    };
    let one = |uri: &str| vec![uri.to_owned()];
    let mut timings = Vec::new();
    for (name, uris) in [
        ("list: newest 50", one("/v1/sessions?limit=50")),
        ("list: next page (cursor)", one(&format!("/v1/sessions?limit=50&cursor={cursor}"))),
        ("list: sort by p95 latency", one("/v1/sessions?limit=50&sort=latency")),
        ("list: sort by duration, asc", one("/v1/sessions?limit=50&sort=duration&order=asc")),
        ("list: voice, p95 >= 2500 ms, last 24h", one("/v1/sessions?limit=50&channel=voice&voice_to_voice_p95_ms_min=2500&from=24h")),
        ("list: 4 filters combined", one("/v1/sessions?limit=50&environment=prod&agent=booker&has_interruptions=true&turns_min=5")),
        ("list: label=vip", one("/v1/sessions?limit=50&label=vip")),
        // One filter of each kind, newest first; the rare ones read back through every window.
        ("filter: channel=sms (1 in 4)", one("/v1/sessions?limit=50&channel=sms")),
        ("filter: direction=outbound (closed list)", one("/v1/sessions?limit=50&direction=outbound")),
        ("filter: model (array holds)", one("/v1/sessions?limit=50&model=gpt-4o-mini")),
        ("filter: duration >= 89 s (1 in 60)", one("/v1/sessions?limit=50&duration_ms_min=89000")),
        ("filter: has_tool_errors (1 in 11)", one("/v1/sessions?limit=50&has_tool_errors=true")),
        ("filter: id contains 99999 (rare)", one("/v1/sessions?limit=50&session=99999")),
        ("filter: flagged (none)", one("/v1/sessions?limit=50&flagged=true")),
        ("list: free text in transcripts", one("/v1/sessions?limit=50&q=order%20123457%2C")),
        ("summary", per("/v1/sessions/{id}")),
        ("transcript (JSON)", per("/v1/sessions/{id}/transcript")),
        ("transcript (WebVTT)", per("/v1/sessions/{id}/transcript?format=vtt")),
        ("page (HTML)", per("/sessions/{id}")),
    ] {
        let t = time(&app, name, &uris).await;
        eprintln!("  {:<42} median {:>8.1} ms", t.name, ms(t.runs[t.runs.len() / 2]));
        timings.push(t);
    }

    // Export throughput: a day of sessions, streamed.
    let started = Instant::now();
    let (status, body) = get(&app, "/v1/export?format=csv&from=24h").await;
    assert_eq!(status, 200);
    let export_time = started.elapsed();
    let export_rows = body
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        .saturating_sub(1);

    println!("\nlogs API over {sessions} sessions ({messages} messages), ClickHouse {version}, {RUNS} runs each:");
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>9}",
        "request", "min ms", "median", "p90", "bytes"
    );
    for t in &timings {
        let p90 = t.runs[(t.runs.len() * 9 / 10).min(t.runs.len() - 1)];
        println!(
            "{:<42} {:>9.1} {:>9.1} {:>9.1} {:>9}",
            t.name,
            ms(t.runs[0]),
            ms(t.runs[t.runs.len() / 2]),
            ms(p90),
            t.bytes
        );
    }
    println!(
        "export csv, last 24h: {export_rows} sessions, {} MB in {:.2} s ({:.0} sessions/s)",
        body.len() >> 20,
        export_time.as_secs_f64(),
        export_rows as f64 / export_time.as_secs_f64()
    );
    if keep {
        println!("kept database {database} (DROP DATABASE {database} to remove it)");
    } else {
        let _ = client
            .query(&format!("DROP DATABASE IF EXISTS {database}"))
            .execute()
            .await;
    }
}
