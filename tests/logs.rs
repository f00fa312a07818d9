//! OTLP log records: received over gRPC and HTTP (protobuf, OTLP/JSON, gzip), read back per
//! session (`/v1/sessions/{id}/logs` with its filters and paging), placed at their steps in
//! the timeline and on the page, counted by `has_errors_logged` and `error_logged`, and
//! deleted with their session.

mod common;

use std::io::Write;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{json, Value};

/// A record written `ms` after the anchor inside span `span` of `trace` (0: no span).
fn record(anchor: u64, ms: u64, severity: i32, body: &str, trace: u64, span: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: anchor + ms * 1_000_000,
        observed_time_unix_nano: anchor + ms * 1_000_000 + 1000,
        severity_number: severity,
        severity_text: match severity {
            17.. => "ERROR",
            13.. => "WARN",
            _ => "INFO",
        }
        .into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        attributes: vec![kv("code.function", "handler")],
        trace_id: if trace == 0 { vec![] } else { trace_id(trace) },
        span_id: if span == 0 { vec![] } else { span_id(span) },
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "agent")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "agent.logging".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn export_logs_grpc(t: &TestApp, request: ExportLogsServiceRequest) {
    let mut client = LogsServiceClient::connect(t.grpc_url())
        .await
        .expect("gRPC connects");
    let answer = client.export(request).await.expect("logs accepted");
    assert_eq!(answer.into_inner().partial_success, None);
}

async fn post_logs(t: &TestApp, body: Vec<u8>, content_type: &str, gzip: bool) -> (u16, Value) {
    let body = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).expect("gzip");
        encoder.finish().expect("gzip")
    } else {
        body
    };
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/v1/logs", t.app.http_addr))
        .header("content-type", content_type)
        .body(body);
    if gzip {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn start_of(specs: &[SpanSpec], name: &str, nth: usize) -> (u64, u64) {
    let spec = specs
        .iter()
        .filter(|s| s.name == name)
        .nth(nth)
        .expect("the span");
    (spec.id, spec.start_ms)
}

/// The session's log lines once there are `n` of them.
async fn logs_when(t: &TestApp, session: &str, query: &str, n: usize) -> Value {
    let path = format!("/v1/sessions/{session}/logs{query}");
    let mut last = Value::Null;
    let ready = wait_until(async || {
        let (status, body) = get_json(t, &path).await;
        last = body;
        status == 200 && last["records"].as_array().map(Vec::len) == Some(n)
    })
    .await;
    assert!(ready, "never {n} records at {path}: {last}");
    last
}

#[tokio::test]
async fn log_records_land_at_their_steps_whichever_arrives_first() {
    let t = TestApp::start("logs").await;
    let anchor = anchor();
    let specs = pipecat_conversation("logs-session", 1);
    let (stt, stt_ms) = start_of(&specs, "stt", 0);
    let (tool, tool_ms) = start_of(&specs, "llm_tool_call", 0);
    let (llm, llm_ms) = start_of(&specs, "llm", 2);

    // Before the spans: records of the first turn's STT and the second turn's tool call.
    export_logs_grpc(
        &t,
        logs_request(vec![
            record(anchor, stt_ms + 1, 9, "transcribing audio chunk", 1, stt),
            record(
                anchor,
                tool_ms + 1,
                17,
                "booking service timed out",
                1,
                tool,
            ),
        ]),
    )
    .await;
    t.send_grpc(&specs, anchor, 100).await;
    // After them, over HTTP as gzipped OTLP/JSON: the third turn's LLM call, and a record
    // without trace that names the session by its key.
    let mut late = logs_request(vec![
        record(anchor, llm_ms + 1, 13, "retrying the LLM call", 1, llm),
        record(anchor, llm_ms + 2, 9, "keyed line", 0, 0),
    ]);
    late.resource_logs[0].scope_logs[0].log_records[1]
        .attributes
        .push(kv("session.id", "logs-session"));
    let json_body = serde_json::to_vec(&late).expect("OTLP/JSON");
    let (status, answer) = post_logs(&t, json_body, "application/json", true).await;
    assert_eq!(status, 200);
    assert_eq!(answer["partialSuccess"], Value::Null, "{answer}");

    let logs = logs_when(&t, "logs-session", "", 4).await;
    let records = logs["records"].as_array().expect("records");
    let summary: Vec<(&str, &str, Value, &str)> = records
        .iter()
        .map(|r| {
            (
                r["body"].as_str().unwrap_or(""),
                r["span_name"].as_str().unwrap_or(""),
                r["turn_number"].clone(),
                r["severity"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("transcribing audio chunk", "stt", json!(1), "INFO"),
            (
                "booking service timed out",
                "llm_tool_call",
                json!(2),
                "ERROR"
            ),
            ("retrying the LLM call", "llm", json!(3), "WARN"),
            ("keyed line", "", json!(3), "INFO"),
        ]
    );
    assert_eq!(records[0]["attributes"]["code.function"], "handler");
    assert_eq!(records[0]["service_name"], "agent");
    assert_eq!(records[0]["scope_name"], "agent.logging");
    assert_eq!(logs["next_cursor"], Value::Null);

    // Filters and paging.
    let errors = logs_when(&t, "logs-session", "?severity=error", 1).await;
    assert_eq!(errors["records"][0]["body"], "booking service timed out");
    let warn_up = logs_when(&t, "logs-session", "?severity=WARN", 2).await;
    assert_eq!(warn_up["records"][1]["body"], "retrying the LLM call");
    let text = logs_when(&t, "logs-session", "?q=BOOKING", 1).await;
    assert_eq!(text["records"][0]["span_name"], "llm_tool_call");
    let first = logs_when(&t, "logs-session", "?limit=3", 3).await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let rest = logs_when(&t, "logs-session", &format!("?limit=3&cursor={cursor}"), 1).await;
    assert_eq!(rest["records"][0]["body"], "keyed line");
    assert_eq!(rest["next_cursor"], Value::Null);
    for (query, parameter) in [
        ("?severity=loud", "severity"),
        ("?cursor=nope", "cursor"),
        ("?limit=0", "limit"),
        ("?level=error", "level"),
    ] {
        let (status, body) = get_json(&t, &format!("/v1/sessions/logs-session/logs{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains(parameter)),
            "{body}"
        );
    }
    assert_eq!(t.status_of("/v1/sessions/nobody/logs").await, 404);

    // The timeline: each line at its time, in its turn, with its span.
    let (_, timeline) = get_json(&t, "/v1/sessions/logs-session/timeline").await;
    let steps = timeline["steps"].as_array().expect("steps");
    let lines: Vec<&Value> = steps.iter().filter(|s| s["kind"] == "log").collect();
    assert_eq!(lines.len(), 4, "{timeline}");
    let failing = lines[1];
    assert_eq!(failing["turn_number"], 2);
    assert_eq!(failing["span_id"], hex::encode(span_id(tool)));
    let tool_step = steps
        .iter()
        .position(|s| s["kind"] == "tool_call")
        .expect("the tool call");
    let line_step = steps
        .iter()
        .position(|s| s["body"] == "booking service timed out")
        .expect("the line");
    assert!(
        tool_step < line_step,
        "the line comes after its tool call starts"
    );
    let issue = steps
        .iter()
        .find(|s| s["kind"] == "issue" && s["issue"] == "error_logged")
        .expect("error_logged in the timeline");
    assert_eq!(issue["turn_number"], 2);
    assert!(issue["detail"]
        .as_str()
        .is_some_and(|d| d.contains("booking service timed out")));
    assert_eq!(timeline["logs_truncated"], false);

    // The summary, the list filters and the page.
    let (_, summary) = get_json(&t, "/v1/sessions/logs-session").await;
    assert!(
        summary["detected_issues"]
            .as_array()
            .is_some_and(|i| i.contains(&json!("error_logged"))),
        "{summary}"
    );
    for (query, expected) in [
        ("has_errors_logged=true", 1),
        ("has_errors_logged=false", 0),
        ("detected_issue=error_logged", 1),
    ] {
        let (status, list) = get_json(&t, &format!("/v1/sessions?{query}")).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(
            list["sessions"].as_array().map(Vec::len),
            Some(expected),
            "{query}: {list}"
        );
    }
    let (status, _, page) = text_of(&t, "/sessions/logs-session").await;
    assert_eq!(status, 200);
    let turn_two = page
        .split("id=\"turn-2\"")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("turn 2 on the page");
    assert!(
        turn_two.contains("<details class=\"logs failed\"><summary>Logs  (1) · worst ERROR"),
        "{turn_two}"
    );
    assert!(turn_two.contains("booking service timed out"));

    // Deleting the session removes its records, keyed ones too.
    let status = reqwest::Client::new()
        .delete(t.api_url("/v1/sessions/logs-session"))
        .send()
        .await
        .expect("answered")
        .status();
    assert_eq!(status, 204);
    let gone = wait_until(async || t.count("SELECT count() FROM logs").await == 0).await;
    assert!(gone, "log records remain after the delete");
    t.stop().await;
}

#[tokio::test]
async fn a_session_without_error_records_is_not_listed_as_having_them() {
    let t = TestApp::start("logs_quiet").await;
    let anchor = anchor();
    let specs = pipecat_conversation("quiet", 2);
    let (stt, stt_ms) = start_of(&specs, "stt", 0);
    t.send_grpc(&specs, anchor, 100).await;
    let mut body = Vec::new();
    prost::Message::encode(
        &logs_request(vec![record(anchor, stt_ms + 1, 13, "slow audio", 2, stt)]),
        &mut body,
    )
    .expect("encodes");
    let (status, _) = post_logs(&t, body, "application/x-protobuf", false).await;
    assert_eq!(status, 200);
    logs_when(&t, "quiet", "", 1).await;
    let (_, list) = get_json(&t, "/v1/sessions?has_errors_logged=false").await;
    assert_eq!(list["sessions"][0]["session_id"], "quiet", "{list}");
    let (_, list) = get_json(&t, "/v1/sessions?has_errors_logged=true").await;
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(0));
    t.stop().await;
}
