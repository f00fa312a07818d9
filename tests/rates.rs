//! The sessions derived from a set of spans do not depend on how fast they came: the same
//! spans sent at once in large concurrent requests, and sent slowly one trace at a time in a
//! shuffled order, give the same rows in every derived table.

mod common;

use std::time::Duration;

use common::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::Value;

/// Pipecat calls in one trace each, and OpenInference-style sessions of one trace per turn
/// whose session key sits on the turn span.
fn span_set() -> Vec<SpanSpec> {
    let mut specs = Vec::new();
    for n in 0..12u64 {
        specs.extend(pipecat_conversation(&format!("call-{n}"), 100 + n));
    }
    for session in 0..4u64 {
        specs.extend(openinference_conversation(
            &format!("oi-{session}"),
            1000 + session * 10,
        ));
    }
    specs
}

/// Every current derived row, without what only says when or in which pass it was derived.
async fn derived_rows(t: &TestApp) -> Vec<(String, Vec<String>)> {
    let mut tables: Vec<(String, String)> = [
        "sessions_current",
        "turns_current",
        "messages_current",
        "tool_calls_current",
        "interruptions_current",
        "session_issues_current",
        "timeline_events_current",
    ]
    .iter()
    .map(|v| (v.to_string(), format!("SELECT * FROM {v}")))
    .collect();
    tables.push((
        "trace_sessions".into(),
        "SELECT trace_id, argMax(session_id, revision) AS session_id FROM trace_sessions GROUP BY trace_id".into(),
    ));
    let mut out = Vec::new();
    for (name, sql) in tables {
        let body = reqwest::Client::new()
            .post(clickhouse_url())
            .query(&[("database", t.database.as_str())])
            .body(format!("{sql} FORMAT JSONEachRow"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("query")
            .text()
            .await
            .expect("body");
        let mut rows: Vec<String> = body
            .lines()
            .map(|line| {
                let mut row: Value = serde_json::from_str(line).expect("a JSON row");
                if let Value::Object(fields) = &mut row {
                    fields.remove("revision");
                    fields.remove("updated_at");
                }
                row.to_string()
            })
            .collect();
        rows.sort();
        out.push((name, rows));
    }
    out
}

#[tokio::test]
async fn sessions_derived_fast_equal_those_derived_slowly() {
    let specs = span_set();
    let anchor = anchor();

    // Fast: everything at once, in large requests sent concurrently.
    let fast = TestApp::start("fast").await;
    let all: Vec<&SpanSpec> = specs.iter().collect();
    let sends = requests(&all, anchor, 60)
        .into_iter()
        .map(|r| fast.export_grpc(r));
    for result in futures::future::join_all(sends).await {
        result.expect("export");
    }

    // Slow: one trace at a time, traces and the spans within each shuffled, a few spans per
    // request, each request derived before the next comes.
    let slow = TestApp::start("slow").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut traces: Vec<Vec<u8>> = specs.iter().map(|s| s.build(anchor).trace_id).collect();
    traces.sort();
    traces.dedup();
    traces.shuffle(&mut rng);
    for trace in traces {
        let mut of_trace: Vec<&SpanSpec> = specs
            .iter()
            .filter(|s| s.build(anchor).trace_id == trace)
            .collect();
        of_trace.shuffle(&mut rng);
        for r in requests(&of_trace, anchor, 3) {
            slow.export_grpc(r).await.expect("export");
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }

    // The slow run's last pass may still be on its way.
    let mut tries = 0;
    let (fast_rows, slow_rows) = loop {
        let rows = (derived_rows(&fast).await, derived_rows(&slow).await);
        tries += 1;
        if rows.0 == rows.1 || tries == 60 {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for ((table, fast_rows), (_, slow_rows)) in fast_rows.iter().zip(&slow_rows) {
        assert_eq!(fast_rows, slow_rows, "{table}");
    }
    assert_eq!(
        fast.count("SELECT count() FROM sessions_current").await,
        16,
        "12 calls and 4 chat sessions"
    );
    fast.stop().await;
    slow.stop().await;
}
