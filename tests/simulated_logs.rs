//! The simulator's debug logs: sent as OTLP log records inside their spans, over gRPC and
//! HTTP, they land at their turns, a failing tool gives `error_logged` at its turn, and
//! `has_errors_logged` selects exactly the sessions with an ERROR record.

mod common;

use std::collections::BTreeSet;

use clap::Parser;
use common::{get_json, wait_until, TestApp};
use convolog_simulate::{run, SimulateArgs, SimulateReport};
use serde_json::Value;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

async fn simulate(
    endpoint: &str,
    protocol: &str,
    prefix: &str,
    count: &str,
    more: &[&str],
) -> SimulateReport {
    let args = [
        "simulate",
        "--endpoint",
        endpoint,
        "--protocol",
        protocol,
        "--count",
        count,
        "--rate",
        "0",
        "--seed",
        "11",
        "--concurrency",
        "4",
        "--session-prefix",
        prefix,
        "--tool-error-rate",
        "0.5",
        "--stage-error-rate",
        "0.1",
    ];
    let cli = Cli::parse_from(args.iter().chain(more));
    run(&cli.args)
        .await
        .expect("the simulator sends its traffic")
}

fn session_ids(list: &Value) -> BTreeSet<String> {
    list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["session_id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn simulated_sessions_carry_their_debug_logs() {
    let t = TestApp::start("simlogs").await;
    let grpc = simulate(&t.grpc_url(), "grpc", "grpc", "24", &[]).await;
    let http = simulate(&t.http_url(), "http", "http", "6", &[]).await;
    let spans = grpc.spans + http.spans;
    let records = grpc.log_records + http.log_records;
    assert!(grpc.log_records > 0 && http.log_records > 0);
    let stored = wait_until(async || {
        t.count("SELECT toUInt64(sum(span_count)) FROM sessions FINAL WHERE deleted = 0")
            .await
            == spans
            && t.count("SELECT count() FROM logs").await == records
    })
    .await;
    assert!(
        stored,
        "every span is in a session and every log record stored"
    );

    let mut with_errors = BTreeSet::new();
    let mut failed_tools = 0;
    let mut listed_records = 0;
    for session in grpc.session_ids.iter().chain(&http.session_ids) {
        let (status, logs) = get_json(&t, &format!("/v1/sessions/{session}/logs?limit=500")).await;
        assert_eq!(status, 200, "{logs}");
        assert_eq!(logs["next_cursor"], Value::Null);
        let lines = logs["records"].as_array().expect("records");
        listed_records += lines.len() as u64;
        let (_, timeline) = get_json(&t, &format!("/v1/sessions/{session}/timeline")).await;
        let steps = timeline["steps"].as_array().expect("steps");
        // Every reply comes from an LLM call that logs; no turn, no lines.
        let turns = steps.iter().filter(|s| s["kind"] == "turn").count();
        let replied = steps
            .iter()
            .any(|s| s["kind"] == "message" && s["speaker"] == "agent");
        if replied {
            assert!(!lines.is_empty(), "{session}: no log records");
        }
        if turns == 0 {
            assert!(lines.is_empty(), "{session}: {logs}");
        }

        // Each line sits in a turn, inside the span it was written in.
        for line in lines {
            assert!(line["turn_number"].as_u64().is_some(), "{session}: {line}");
            assert!(
                !line["span_name"].as_str().unwrap_or("").is_empty(),
                "{line}"
            );
            assert_eq!(
                line["service_name"].as_str().map(str::is_empty),
                Some(false)
            );
        }
        let timeline_lines = steps.iter().filter(|s| s["kind"] == "log").count();
        assert_eq!(timeline_lines, lines.len(), "{session}");
        if lines.iter().any(|l| l["severity"] == "ERROR") {
            with_errors.insert(session.clone());
        }

        // A failing tool logs an ERROR in its span, at its turn: `error_logged` there.
        for tool in steps
            .iter()
            .filter(|s| s["kind"] == "tool_call" && s["is_error"] == true)
        {
            failed_tools += 1;
            let turn = &tool["turn_number"];
            let name = tool["name"].as_str().expect("tool name");
            let failure = format!("tool {name} failed");
            assert!(
                lines.iter().any(|l| l["turn_number"] == *turn
                    && l["severity"] == "ERROR"
                    && l["body"].as_str().is_some_and(|b| b.starts_with(&failure))),
                "{session} turn {turn}: {logs}"
            );
            assert!(
                steps.iter().any(|s| s["kind"] == "issue"
                    && s["issue"] == "error_logged"
                    && s["turn_number"] == *turn),
                "{session} turn {turn}: no error_logged"
            );
        }
    }
    assert_eq!(
        listed_records, records,
        "every record belongs to its session"
    );
    assert!(failed_tools > 0, "the run has failing tools");

    // The list filter selects exactly the sessions with an ERROR record, and the page
    // shows the lines under their steps.
    let (status, errors) = get_json(&t, "/v1/sessions?has_errors_logged=true&limit=500").await;
    assert_eq!(status, 200, "{errors}");
    assert_eq!(session_ids(&errors), with_errors);
    let (_, clean) = get_json(&t, "/v1/sessions?has_errors_logged=false&limit=500").await;
    let all: BTreeSet<String> = grpc
        .session_ids
        .iter()
        .chain(&http.session_ids)
        .cloned()
        .collect();
    assert_eq!(
        session_ids(&clean),
        all.difference(&with_errors).cloned().collect()
    );
    assert!(!with_errors.is_empty() && with_errors.len() < all.len());
    let example = with_errors.first().expect("a session with errors");
    let (status, _, page) = common::text_of(&t, &format!("/sessions/{example}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<details class=\"logs failed\">"), "{page}");
    t.stop().await;
}

#[tokio::test]
async fn no_logs_sends_spans_only() {
    let t = TestApp::start("simnologs").await;
    let report = simulate(&t.grpc_url(), "grpc", "quiet", "3", &["--no-logs"]).await;
    assert_eq!(report.log_records, 0);
    let derived = wait_until(async || {
        t.count("SELECT toUInt64(sum(span_count)) FROM sessions FINAL WHERE deleted = 0")
            .await
            == report.spans
    })
    .await;
    assert!(derived);
    assert_eq!(t.count("SELECT count() FROM logs").await, 0);
    t.stop().await;
}
