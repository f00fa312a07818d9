//! Export of 100k sessions streams: the process's memory stays flat while the body grows to
//! tens of megabytes.

mod common;

use common::*;

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
