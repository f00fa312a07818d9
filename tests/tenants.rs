//! Tenant isolation, tested from the outside: spans and log records land in the tenant whose
//! ingest key sent them, and a key of tenant A cannot see, export, label or delete tenant B's sessions.

mod common;

use common::*;
use convolog::config::{Config, KeyConfig, TenantConfig};
use convolog::pipeline::sessionizer::rebuild;
use convolog::tenants::{hash_key, Scope};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

fn tenant(name: &str, keys: &[(&str, Scope)]) -> TenantConfig {
    TenantConfig {
        name: name.into(),
        database: Some(fresh_database(name)),
        keys: keys
            .iter()
            .map(|(key, scope)| KeyConfig {
                sha256: hash_key(key),
                scope: *scope,
            })
            .collect(),
    }
}

async fn export_as(
    t: &TestApp,
    key: Option<&str>,
    session: &str,
    trace: u64,
) -> Result<(), tonic::Status> {
    let mut client = TraceServiceClient::connect(t.grpc_url())
        .await
        .expect("connects");
    for r in requests(
        &pipecat_conversation(session, trace)
            .iter()
            .collect::<Vec<_>>(),
        anchor(),
        100,
    ) {
        let mut request = tonic::Request::new(r);
        if let Some(key) = key {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {key}").parse().expect("metadata"),
            );
        }
        client.export(request).await?;
    }
    Ok(())
}

/// One log record in `trace` over OTLP/HTTP with `key`; the status.
async fn export_log_as(t: &TestApp, key: &str, trace: u64) -> u16 {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: anchor() + 1_000_000,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("bolt's line".into())),
                    }),
                    trace_id: trace_id(trace),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    reqwest::Client::new()
        .post(format!("http://{}/v1/logs", t.app.http_addr))
        .header("content-type", "application/x-protobuf")
        .header("x-api-key", key)
        .body(prost::Message::encode_to_vec(&request))
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16()
}

async fn call(
    t: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> (u16, String) {
    let mut request = reqwest::Client::new().request(method, t.api_url(path));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.expect("API answers");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// Sends each request in turn and checks its status.
async fn expect_statuses(t: &TestApp, cases: &[(reqwest::Method, &str, Option<&str>, u16)]) {
    for (method, path, key, status) in cases {
        assert_eq!(
            call(t, method.clone(), path, *key).await.0,
            *status,
            "{method} {path} with key {key:?}"
        );
    }
}

async fn wait_listed(t: &TestApp, key: &str, session: &str) {
    let path = format!("/v1/sessions/{session}");
    let listed = wait_until(async || {
        let (status, body) = call(t, reqwest::Method::GET, &path, Some(key)).await;
        status == 200 && body.contains("\"turn_count\":3")
    })
    .await;
    assert!(listed, "{session} never appeared for its tenant");
}

#[tokio::test]
async fn one_tenants_keys_cannot_reach_another_tenants_sessions() {
    use reqwest::Method;
    let acme = tenant(
        "acme",
        &[
            ("acme-ingest", Scope::Ingest),
            ("acme-read", Scope::Read),
            ("acme-admin", Scope::Admin),
        ],
    );
    let bolt = tenant(
        "bolt",
        &[
            ("bolt-ingest", Scope::Ingest),
            ("bolt-read", Scope::Read),
            ("bolt-admin", Scope::Admin),
        ],
    );
    let databases = [
        acme.database.clone().unwrap_or_default(),
        bolt.database.clone().unwrap_or_default(),
    ];
    let t = TestApp::start_with("tenants", |c| c.tenants = vec![acme, bolt]).await;

    // Ingest needs an ingest key, and the key decides the tenant.
    assert_eq!(
        export_as(&t, None, "x", 9)
            .await
            .expect_err("no key")
            .code(),
        tonic::Code::Unauthenticated
    );
    assert_eq!(
        export_as(&t, Some("acme-read"), "x", 9)
            .await
            .expect_err("read key")
            .code(),
        tonic::Code::PermissionDenied
    );
    export_as(&t, Some("acme-ingest"), "a-1", 1)
        .await
        .expect("acme ingests");
    export_as(&t, Some("bolt-ingest"), "b-1", 2)
        .await
        .expect("bolt ingests");
    let http = t
        .export_http(
            prost::Message::encode_to_vec(&request("agent", "pipecat", vec![])),
            "application/x-protobuf",
            None,
        )
        .await;
    assert_eq!(http.status(), 401, "OTLP/HTTP without a key");
    wait_listed(&t, "acme-read", "a-1").await;
    wait_listed(&t, "bolt-read", "b-1").await;

    // Log records too go to the tenant of the key, which needs the ingest scope.
    assert_eq!(export_log_as(&t, "bolt-read", 2).await, 403);
    assert_eq!(export_log_as(&t, "bolt-ingest", 2).await, 200);
    let (status, logs) = call(&t, Method::GET, "/v1/sessions/b-1/logs", Some("bolt-read")).await;
    assert_eq!(status, 200);
    assert!(logs.contains("bolt's line"), "{logs}");
    let acme_logs = t
        .sql
        .clone()
        .with_database(&databases[0])
        .query("SELECT count() FROM logs")
        .fetch_one::<u64>()
        .await
        .expect("count");
    assert_eq!(acme_logs, 0, "bolt's log record stayed in bolt's database");
    assert_eq!(
        call(&t, Method::GET, "/v1/sessions/b-1/logs", Some("acme-read"))
            .await
            .0,
        404
    );

    // Reading: each tenant sees its own sessions only.
    let (status, list) = call(&t, Method::GET, "/v1/sessions", Some("acme-read")).await;
    assert_eq!(status, 200);
    assert!(
        list.contains("\"a-1\"") && !list.contains("\"b-1\""),
        "{list}"
    );
    for path in [
        "/v1/sessions/b-1",
        "/v1/sessions/b-1/transcript",
        "/v1/sessions/b-1/timeline",
        "/sessions/b-1",
    ] {
        assert_eq!(
            call(&t, Method::GET, path, Some("acme-read")).await.0,
            404,
            "{path}"
        );
    }
    let (status, csv) = call(&t, Method::GET, "/v1/export?format=csv", Some("acme-read")).await;
    assert_eq!(status, 200);
    assert!(csv.contains("a-1") && !csv.contains("b-1"), "{csv}");

    expect_statuses(
        &t,
        &[
            // Marking and deleting: B's session is not found through A's keys, and stays.
            (
                Method::PUT,
                "/v1/sessions/b-1/labels/vip",
                Some("acme-read"),
                404,
            ),
            (Method::PUT, "/v1/sessions/b-1/flag", Some("acme-read"), 404),
            (Method::DELETE, "/v1/sessions/b-1", Some("acme-admin"), 404),
            (Method::GET, "/v1/sessions/b-1", Some("bolt-read"), 200),
            // Keys and scopes; an admin key reads too.
            (Method::GET, "/v1/sessions", None, 401),
            (Method::GET, "/v1/sessions", Some("nope"), 401),
            (Method::GET, "/v1/sessions", Some("acme-ingest"), 403),
            (Method::DELETE, "/v1/sessions/a-1", Some("acme-read"), 403),
            (Method::GET, "/v1/sessions", Some("acme-admin"), 200),
            // An admin deletes one of its own sessions, then all of its tenant's conversations.
            (Method::DELETE, "/v1/sessions/a-1", Some("acme-admin"), 204),
            (Method::GET, "/v1/sessions/a-1", Some("acme-read"), 404),
        ],
    )
    .await;
    let (_, list) = call(&t, Method::GET, "/v1/sessions", Some("acme-read")).await;
    assert!(!list.contains("\"a-1\""), "{list}");
    export_as(&t, Some("acme-ingest"), "a-2", 3)
        .await
        .expect("acme ingests again");
    wait_listed(&t, "acme-read", "a-2").await;
    assert_eq!(
        call(&t, Method::DELETE, "/v1/sessions", Some("acme-admin"))
            .await
            .0,
        204
    );
    let (_, list) = call(&t, Method::GET, "/v1/sessions", Some("acme-read")).await;
    assert!(!list.contains("\"a-2\""), "{list}");
    assert_eq!(
        call(&t, Method::GET, "/v1/sessions/b-1", Some("bolt-read"))
            .await
            .0,
        200,
        "B untouched"
    );

    t.stop().await;
    let sql = clickhouse::Client::default().with_url(clickhouse_url());
    for database in databases {
        let _ = sql
            .query(&format!("DROP DATABASE IF EXISTS {database}"))
            .execute()
            .await;
    }
}

#[tokio::test]
async fn a_deleted_session_does_not_come_back_on_rebuild() {
    let t = TestApp::start("delete").await;
    for r in requests(
        &pipecat_conversation("gone-1", 1).iter().collect::<Vec<_>>(),
        anchor(),
        100,
    ) {
        t.export_grpc(r).await.expect("export");
    }
    t.transcript_when("gone-1", |tr| {
        tr["turns"].as_array().map(Vec::len) == Some(3)
    })
    .await;
    assert_eq!(
        call(&t, reqwest::Method::DELETE, "/v1/sessions/gone-1", None)
            .await
            .0,
        204
    );
    assert_eq!(t.status_of("/v1/sessions/gone-1/transcript").await, 404);
    // The spans go too (a background delete), so a rebuild has nothing to bring back.
    wait_until(async || t.count("SELECT count() FROM spans").await == 0).await;
    assert_eq!(t.count("SELECT count() FROM spans").await, 0);
    let an_hour_ago = convolog::clock::now_unix_nano() / 1_000_000_000 - 3600;
    let summary = rebuild(t.app.store.clone(), &Config::default(), an_hour_ago)
        .await
        .expect("rebuild");
    assert_eq!((summary.traces, summary.sessions), (0, 0));
    assert_eq!(t.status_of("/v1/sessions/gone-1/transcript").await, 404);
    t.stop().await;
}

#[tokio::test]
async fn without_keys_only_requests_addressed_to_this_machine_are_served() {
    let t = TestApp::start("rebinding").await;
    let client = reqwest::Client::new();
    let status = |method: reqwest::Method, url: String, host: &'static str| {
        let request = client
            .request(method, url)
            .header("host", host)
            .header("content-type", "application/json");
        async move { request.send().await.expect("answered").status().as_u16() }
    };
    // A page served from a name that a rebinding DNS points at 127.0.0.1.
    let evil = "rebound.example:8080";
    assert_eq!(
        status(reqwest::Method::GET, t.api_url("/v1/sessions"), evil).await,
        403
    );
    assert_eq!(
        status(reqwest::Method::DELETE, t.api_url("/v1/sessions"), evil).await,
        403
    );
    assert_eq!(
        status(reqwest::Method::GET, t.api_url("/sessions"), evil).await,
        403
    );
    assert_eq!(status(reqwest::Method::POST, t.http_url(), evil).await, 403);
    assert_eq!(
        status(
            reqwest::Method::GET,
            t.api_url("/v1/sessions"),
            "localhost:8080"
        )
        .await,
        200
    );
    assert_eq!(
        status(reqwest::Method::GET, t.api_url("/v1/sessions"), "127.0.0.1").await,
        200
    );

    let page = client
        .get(t.api_url("/sessions"))
        .send()
        .await
        .expect("answered");
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    // The pages run their own script file only: no inline script, nothing from elsewhere.
    let policy = header("content-security-policy");
    let scripts: Vec<&str> = policy
        .split(';')
        .map(str::trim)
        .filter(|d| d.starts_with("script-src"))
        .collect();
    assert_eq!(scripts, ["script-src 'self'"], "{policy}");
    t.stop().await;
}

#[tokio::test]
async fn status_endpoints_want_a_key_unless_made_public() {
    for public in [false, true] {
        let t = TestApp::start_with("status", |c| {
            c.tenants = vec![tenant("acme", &[("reader", Scope::Read)])];
            c.http.public_status = public;
        })
        .await;
        let closed = if public { 200 } else { 401 };
        for path in ["/metrics", "/readyz"] {
            assert_eq!(
                call(&t, reqwest::Method::GET, path, None).await.0,
                closed,
                "{path}"
            );
            assert_eq!(
                call(&t, reqwest::Method::GET, path, Some("reader")).await.0,
                200
            );
        }
        assert_eq!(
            call(&t, reqwest::Method::GET, "/healthz", None).await.0,
            200
        );
        t.stop().await;
    }
}

#[tokio::test]
async fn deleting_everything_waits_for_writes_in_progress() {
    let t = TestApp::start("wipewait").await;
    // What a span insert or a sessionizer pass holds while it writes.
    let writing = t.app.store.hold_writes().await;
    let store = t.app.store.clone();
    let wipe = tokio::spawn(async move { store.delete_everything().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !wipe.is_finished(),
        "the wipe ran under a write in progress"
    );
    drop(writing);
    wipe.await.expect("task").expect("wiped");
    t.stop().await;
}
