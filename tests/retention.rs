//! Retention against a real ClickHouse: past the transcript window, spans, transcript and log
//! records go (by dropping partitions) while the session summary stays; past the session
//! window, the summary goes too.

mod common;

use common::*;
use convolog::config::Retention;

const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// One log record in `trace`, at `anchor`.
async fn export_log_line(t: &TestApp, trace: u64, anchor: u64) {
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: anchor,
                    trace_id: trace_id(trace),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    LogsServiceClient::connect(t.grpc_url())
        .await
        .expect("gRPC connects")
        .export(request)
        .await
        .expect("log record stored");
}

#[tokio::test]
async fn old_transcripts_and_summaries_are_removed_recent_ones_kept() {
    let t = TestApp::start("retention").await;
    let now = convolog::clock::now_unix_nano();
    let conversations = [
        ("recent", 1, now - 120_000_000_000),
        ("old", 2, now - 70 * DAY_NS),
        ("ancient", 3, now - 120 * DAY_NS),
    ];
    for (id, trace, anchor) in conversations {
        for r in requests(
            &pipecat_conversation(id, trace).iter().collect::<Vec<_>>(),
            anchor,
            100,
        ) {
            t.export_grpc(r).await.expect("export");
        }
        export_log_line(&t, trace, anchor).await;
        t.transcript_when(id, |tr| tr["turns"].as_array().map(Vec::len) == Some(3))
            .await;
    }

    let removed = convolog::pipeline::retention::apply(
        &t.app.store,
        &Retention {
            transcript_days: 30,
            sessions_days: 90,
        },
    )
    .await
    .expect("retention runs");
    assert!(
        removed.iter().any(|r| r.starts_with("spans/")),
        "{removed:?}"
    );
    assert!(
        removed.iter().any(|r| r.starts_with("messages/")),
        "{removed:?}"
    );
    assert!(
        removed.iter().any(|r| r.starts_with("logs/")),
        "{removed:?}"
    );

    let spans_of = |trace: u64| {
        format!(
            "SELECT count() FROM spans WHERE trace_id = '{}'",
            hex::encode(trace_id(trace))
        )
    };
    assert!(t.count(&spans_of(1)).await > 0, "recent spans kept");
    assert_eq!(t.count(&spans_of(2)).await, 0, "old spans removed");
    let logs_of = |trace: u64| spans_of(trace).replace("FROM spans", "FROM logs");
    assert_eq!(t.count(&logs_of(1)).await, 1, "recent log records kept");
    assert_eq!(t.count(&logs_of(2)).await, 0, "old log records removed");

    // The old session is still listed, without its transcript.
    let old = t.transcript_when("old", |_| true).await;
    assert_eq!(old["turn_count"], 3);
    assert_eq!(old["messages"].as_array().map(Vec::len), Some(0));
    let recent = t.transcript_when("recent", |_| true).await;
    assert_eq!(recent["messages"].as_array().map(Vec::len), Some(7));

    // The summary past its own window goes (a delete mutation: applied in the background).
    wait_until(async || t.status_of("/v1/sessions/ancient/transcript").await == 404).await;
    assert_eq!(t.status_of("/v1/sessions/ancient/transcript").await, 404);
    assert_eq!(t.status_of("/v1/sessions/old/transcript").await, 200);
    t.stop().await;
}

#[tokio::test]
async fn cutoff_partitions_are_named_in_the_servers_time_zone() {
    // A server east of UTC, where a day key worked out in UTC would name the wrong partition.
    let own = OwnClickHouse::start("partkeys", Some("Asia/Kolkata"), &[]);
    let url = own.url.clone();
    let mut t = TestApp::start_with("partkeys", |c| c.clickhouse.url = url).await;
    t.sql = t.sql.with_url(&own.url);
    // 23:59:59 UTC: already the next day east of UTC, still this day west of it.
    let at: u32 = 1_795_305_599;
    t.sql
        .query("INSERT INTO spans (trace_id, span_id, start_time) VALUES ('t', 's', toDateTime(?))")
        .bind(at)
        .execute()
        .await
        .expect("insert");
    let partition: String = t
        .sql
        .query(
            "SELECT partition FROM system.parts WHERE database = ? AND table = 'spans' AND active",
        )
        .bind(&t.database)
        .fetch_one()
        .await
        .expect("partition");
    assert_eq!(partition, "20261122", "05:29:59 the next day in Kolkata");
    let (day, month) = t.app.store.partition_keys_at(at).await.expect("keys");
    assert_eq!(partition, day.to_string());
    assert_eq!(month, day / 100);
    t.stop().await;
    own.stop();
}
