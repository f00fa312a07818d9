//! Export against a real ClickHouse: every format with the list filters, the command line, and
//! 100k sessions streamed with the process's memory flat while the body grows to tens of
//! megabytes.

mod common;

use common::session_fixtures::*;
use common::*;
use serde_json::Value;

const SESSIONS: u64 = 100_000;

/// Resident memory of this process (test client and server both), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_of_100k_sessions_streams_in_flat_memory() {
    let t = TestApp::start("export_big").await;
    let base = (anchor() / 1_000_000_000 - 86_400) * 1_000_000_000;
    t.sql
        .query(&synthetic::sessions_sql(0, SESSIONS, base, 500))
        .execute()
        .await
        .expect("synthetic sessions");
    assert_eq!(
        t.count("SELECT count() FROM sessions_current").await,
        SESSIONS
    );

    for format in ["csv", "jsonl", "json"] {
        let mut response = reqwest::get(t.api_url(&format!("/v1/export?format={format}")))
            .await
            .expect("export answers");
        assert_eq!(response.status(), 200);
        let (mut bytes, mut lines) = (0u64, 0u64);
        let mut settled = None;
        let mut peak = 0;
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            // Measure from a tenth of the way in: buffers and connections exist by then.
            if settled.is_none() && lines >= SESSIONS / 10 {
                settled = Some(rss());
            }
            if settled.is_some() {
                peak = peak.max(rss());
            }
        }
        let settled = settled.expect("the export got a tenth of the way");
        let growth = peak.saturating_sub(settled);
        eprintln!(
            "{format}: {bytes} bytes, {lines} lines; RSS {} MiB at 10%, peak {} MiB, growth {} KiB",
            settled >> 20,
            peak >> 20,
            growth >> 10
        );
        let expected_lines = match format {
            "csv" => SESSIONS + 1,
            "jsonl" => SESSIONS,
            _ => SESSIONS + 2,
        };
        assert_eq!(lines, expected_lines, "{format}");
        assert!(bytes > 20 << 20, "{format}: only {bytes} bytes");
        // Collecting the rows would grow by about the body's size; streaming stays flat.
        assert!(
            growth < 16 << 20,
            "{format}: memory grew by {} MiB while streaming {} MiB",
            growth >> 20,
            bytes >> 20
        );
    }
    t.stop().await;
}

/// RFC 4180 records (quoted cells may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = vec![];
    let mut record = vec![];
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => cell.push(c),
        }
    }
    records
}

#[tokio::test]
async fn export_formats_filters_and_command_line() {
    let t = TestApp::start("export").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;

    let response = reqwest::get(
        t.api_url("/v1/export?format=csv&bom=true&channel=voice,web_chat&sort=duration&order=asc"),
    )
    .await
    .expect("export");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"sessions.csv\""
    );
    let text = response.text().await.expect("body");
    let text = text.strip_prefix('\u{feff}').expect("byte order mark");
    let records = parse_csv(text);
    assert_eq!(records[0], convolog::api::export::CSV_COLUMNS);
    let ids: Vec<&str> = records[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(ids, ["s3", "s2", "s5", "s1"]);
    assert!(records.iter().all(|r| r.len() == records[0].len()));
    let column = |name: &str| records[0].iter().position(|c| c == name).expect("column");
    assert_eq!(records[1][column("preview")], format!("'{TRICKY_PREVIEW}"));
    assert_eq!(records[4][column("voice_to_voice_p95_ms")], "1500");
    assert_eq!(records[1][column("voice_to_voice_p95_ms")], "");
    assert_eq!(records[4][column("models")], "gpt-4o-mini");
    assert_eq!(records[4][column("page")], "/sessions/s1");

    let (_, _, jsonl) = text_of(&t, "/v1/export?format=jsonl&environment=staging").await;
    let rows: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["session_id"].as_str())
        .collect();
    assert_eq!(ids, ["s4", "s3"]);
    assert_eq!(rows[1]["preview"], TRICKY_PREVIEW);

    let (status, content_type, json) = text_of(&t, "/v1/export?format=json&q=refund").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let all: Value = serde_json::from_str(&json).expect("a JSON array");
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["session_id"], "s1");
    let (_, _, empty) = text_of(&t, "/v1/export?format=json&channel=fax").await;
    assert_eq!(
        serde_json::from_str::<Value>(&empty).expect("JSON"),
        serde_json::json!([])
    );

    for (query, name) in [
        ("format=xml", "format"),
        ("chanel=voice", "chanel"),
        ("bom=perhaps", "bom"),
    ] {
        let (status, body) = get_json(&t, &format!("/v1/export?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(name),
            "{body}"
        );
    }

    // The command line writes the same export to a file.
    let dir = std::env::temp_dir().join(format!("convolog-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("voice.jsonl");
    let command = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_convolog"))
            .arg("export")
            .args(args)
            .env("CONVOLOG_CLICKHOUSE_URL", clickhouse_url())
            .env("CONVOLOG_CLICKHOUSE_DATABASE", &t.database)
            .output()
            .expect("convolog runs")
    };
    let out = command(&[
        "--format",
        "jsonl",
        "--filter",
        "channel=voice",
        "--filter",
        "has_interruptions=false",
        "--sort",
        "start_time",
        "--order",
        "asc",
        "--output",
        file.to_str().expect("path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("exported 2 sessions"), "{stderr}");
    let written = std::fs::read_to_string(&file).expect("export file");
    let ids: Vec<String> = written
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("json")["session_id"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["s2", "s5"]);
    let out = command(&["--filter", "chanel=voice"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--filter chanel"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command(&["--format", "csv", "--filter", "q=refund"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(parse_csv(&stdout).len(), 2, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
    t.stop().await;
}

/// Far more than socket buffers hold as an export, so an unread export keeps streaming.
async fn load_many_sessions(t: &TestApp) {
    let base = (anchor() / S - 86_400) * S;
    t.sql
        .query(&synthetic::sessions_sql(0, 50_000, base, 500))
        .execute()
        .await
        .expect("synthetic sessions");
}

#[tokio::test]
async fn exports_beyond_the_tenant_cap_are_refused_until_one_ends() {
    let t = TestApp::start_with("exportcap", |c| c.clickhouse.max_concurrent_exports = 1).await;
    load_many_sessions(&t).await;
    let url = t.api_url("/v1/export?format=jsonl");
    // Headers read, body not: the export is still streaming.
    let first = reqwest::get(&url).await.expect("first export");
    assert_eq!(first.status(), 200);
    let second = reqwest::get(&url).await.expect("second export");
    assert_eq!(second.status(), 503);
    drop(first);
    assert!(
        wait_until(async || reqwest::get(&url).await.is_ok_and(|r| r.status() == 200)).await,
        "a slot frees once the first export is gone"
    );
    t.stop().await;
}

#[tokio::test]
async fn an_export_nobody_reads_is_cut_off_and_its_query_stopped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Between convolog and ClickHouse, a proxy that does not pass a closed connection on,
    // and a server that sends small blocks: the abandoned query then goes on, slowly, unless
    // convolog kills it (a killed query stops at its next block).
    let own = OwnClickHouse::start("exportstall", None, &[("max_block_size", "1024")]);
    let proxy = Proxy::start(&own.url).await;
    proxy.set(ProxyMode::Linger);
    let url = proxy.url.clone();
    let mut t = TestApp::start_with("exportstall", |c| {
        c.http.idle_timeout_ms = 3000;
        c.clickhouse.url = url;
        // Longer than the wait below, so the server's own time limit does not end it either.
        c.clickhouse.timeout_ms = 120_000;
    })
    .await;
    t.sql = t.sql.with_url(&own.url);
    load_many_sessions(&t).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut stream = socket.connect(t.app.api_addr).await.expect("connects");
    stream
        .write_all(b"GET /v1/export?format=jsonl HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("writes");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.expect("answered");
    assert_eq!(&head, b"HTTP/1.1 200");
    let running = format!(
        "SELECT query_id FROM system.processes WHERE query_id LIKE 'convolog-export-{}-%'",
        t.database
    );
    let query_id: String = t
        .sql
        .query(&running)
        .fetch_one()
        .await
        .expect("the export runs");
    // The client stalls well past the idle limit, then reads what is left.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut rest),
    )
    .await;
    assert!(
        read.is_ok_and(|r| r.is_err() || !rest.ends_with(b"0\r\n\r\n")),
        "the export ran to its end for a client that stalled"
    );
    let still_running =
        format!("SELECT count() FROM system.processes WHERE query_id = '{query_id}'");
    assert!(
        wait_until(async || t.count(&still_running).await == 0).await,
        "query {query_id} still runs on the server"
    );
    t.stop().await;
    proxy.set(ProxyMode::Forward);
    own.stop();
}
