//! `convolog doctor` against a real ClickHouse: what it says about a database without a
//! schema, a current one, ports a running convolog holds, and a server that is not there.

mod common;

use common::*;
use convolog::doctor::{self, Finding, Verdict};

fn verdict_of<'a>(findings: &'a [Finding], subject: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.subject == subject)
        .unwrap_or_else(|| panic!("no finding for {subject}: {findings:?}"))
}

#[tokio::test]
async fn doctor_reads_the_schema_and_sees_ports_in_use() {
    let fresh = test_config(&fresh_database("doctor"), &clickhouse_url());
    let report = doctor::check(&fresh).await;
    let schema = verdict_of(
        &report.findings,
        &format!("schema {}", fresh.clickhouse.database),
    );
    assert_eq!(schema.verdict, Verdict::Warning, "{report}");
    assert!(schema.detail.contains("no convolog schema yet"), "{report}");
    assert!(!report.has_problems(), "{report}");
    let clickhouse = verdict_of(&report.findings, "clickhouse");
    assert_eq!(clickhouse.verdict, Verdict::Ok, "{report}");

    // A running convolog: its schema is current and it holds its ports.
    let t = TestApp::start("doctor").await;
    let mut running = test_config(&t.database, &clickhouse_url());
    running.listen.grpc = t.app.grpc_addr;
    running.listen.http = t.app.http_addr;
    running.listen.api = t.app.api_addr;
    let report = doctor::check(&running).await;
    let schema = verdict_of(&report.findings, &format!("schema {}", t.database));
    assert_eq!(schema.verdict, Verdict::Ok, "{report}");
    for field in ["listen.grpc", "listen.http", "listen.api"] {
        let listen = verdict_of(&report.findings, field);
        assert_eq!(listen.verdict, Verdict::Problem, "{report}");
        assert!(listen.detail.contains("in use"), "{report}");
    }
    t.stop().await;
}

#[tokio::test]
async fn doctor_says_when_clickhouse_is_not_there() {
    // Nothing listens on a port just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let config = test_config(&fresh_database("doctor"), &format!("http://{closed}"));
    let report = doctor::check(&config).await;
    let clickhouse = verdict_of(&report.findings, "clickhouse");
    assert_eq!(clickhouse.verdict, Verdict::Problem, "{report}");
    assert!(
        clickhouse.detail.contains("cannot reach ClickHouse"),
        "{report}"
    );
    assert!(report.has_problems());
}
