//! Shared pieces of the integration tests: a real ClickHouse (CONVOLOG_TEST_CLICKHOUSE_URL, or a
//! private one started on first use: see `clickhouse_server`), a fresh database per test, the app on
//! port 0, the spans and OTLP requests the tests send (`spans`), and a TCP proxy that can fail
//! on demand.
#![allow(dead_code)]

mod clickhouse_server;
pub mod serve;
pub mod session_fixtures;
mod spans;
pub mod synthetic;

pub use clickhouse_server::{clickhouse_url, skip};
// Only the tests that run a ClickHouse of their own use it.
#[allow(unused_imports)]
pub use clickhouse_server::{LocalCluster, OwnClickHouse, Topology};
pub use spans::*;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use convolog::app::App;
use convolog::config::Config;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A database name no other test uses.
pub fn fresh_database(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "test_{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000
    )
}

/// A fresh database with the schema an older convolog left: the migrations below `version`
/// applied and recorded. Its name, and a client of it.
pub async fn database_before_migration(prefix: &str, version: u32) -> (String, clickhouse::Client) {
    let database = fresh_database(prefix);
    let server = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_validation(false);
    server
        .query(&format!("CREATE DATABASE {database}"))
        .execute()
        .await
        .expect("database");
    let client = server.with_database(&database);
    let mut statements = vec![
        "CREATE TABLE schema_migrations (version UInt32, name String, \
         applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
            .to_owned(),
    ];
    for (applied, name, sql) in convolog::store::MIGRATIONS {
        if *applied < version {
            statements.extend(convolog::store::statements(sql));
            statements.push(format!(
                "INSERT INTO schema_migrations (version, name) VALUES ({applied}, '{name}')"
            ));
        }
    }
    for statement in statements {
        client.query(&statement).execute().await.expect(&statement);
    }
    (database, client)
}

/// The Python with the test requirements (the OpenTelemetry SDK, chdb-core): CONVOLOG_TEST_PYTHON,
/// else the venv scripts/test.sh sets up in .venv-test; without either the test is skipped.
pub fn python() -> String {
    if let Ok(python) = std::env::var("CONVOLOG_TEST_PYTHON") {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-test/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_owned();
    }
    skip("CONVOLOG_TEST_PYTHON is not set and there is no .venv-test (scripts/test.sh makes it)")
}

pub struct TestApp {
    pub app: App,
    pub database: String,
    pub sql: clickhouse::Client,
}

pub fn test_config(database: &str, clickhouse_url: &str) -> Config {
    let mut config = Config::default();
    config.clickhouse.url = clickhouse_url.to_owned();
    config.clickhouse.database = database.to_owned();
    config.listen.grpc = "127.0.0.1:0".parse().expect("address");
    config.listen.http = "127.0.0.1:0".parse().expect("address");
    config.listen.api = "127.0.0.1:0".parse().expect("address");
    config.ingest.batch_max_wait_ms = 20;
    // More than one insert at once, so that every test also runs the writer's ordering of
    // concurrent inserts' reports (the default is one).
    config.ingest.max_inserts_in_flight = 2;
    config.sessionize.debounce_ms = 50;
    config
}

impl TestApp {
    pub async fn start(prefix: &str) -> TestApp {
        Self::start_with(prefix, |_| {}).await
    }

    pub async fn start_with(prefix: &str, customize: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config(&fresh_database(prefix), &clickhouse_url());
        customize(&mut config);
        let database = config.clickhouse.database.clone();
        let app = App::start(config).await.expect("app starts");
        let sql = clickhouse::Client::default()
            .with_url(clickhouse_url())
            .with_database(&database)
            .with_validation(false);
        TestApp { app, database, sql }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.app.grpc_addr)
    }
    pub fn http_url(&self) -> String {
        format!("http://{}/v1/traces", self.app.http_addr)
    }
    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app.api_addr)
    }

    pub async fn count(&self, sql: &str) -> u64 {
        self.sql
            .query(sql)
            .fetch_one::<u64>()
            .await
            .expect("count query")
    }

    /// Exports `specs` over gRPC, timed from `anchor`, `per_request` spans to a request.
    pub async fn send_grpc(&self, specs: &[SpanSpec], anchor: u64, per_request: usize) {
        for request in requests(&specs.iter().collect::<Vec<_>>(), anchor, per_request) {
            self.export_grpc(request).await.expect("export");
        }
    }

    pub async fn export_grpc(
        &self,
        request: ExportTraceServiceRequest,
    ) -> Result<ExportTraceServiceResponse, tonic::Status> {
        let mut client = TraceServiceClient::connect(self.grpc_url())
            .await
            .expect("gRPC connects");
        client.export(request).await.map(|r| r.into_inner())
    }

    pub async fn export_http(
        &self,
        body: Vec<u8>,
        content_type: &str,
        content_encoding: Option<&str>,
    ) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .post(self.http_url())
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = content_encoding {
            request = request.header("content-encoding", encoding);
        }
        request.send().await.expect("HTTP request is answered")
    }

    /// The transcript JSON once `ready` accepts it; panics after 60 s.
    pub async fn transcript_when(
        &self,
        session_id: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let url = self.api_url(&format!("/v1/sessions/{session_id}/transcript"));
        let mut last = serde_json::Value::Null;
        let became_ready = wait_until(async || match reqwest::get(&url).await {
            Ok(response) if response.status() == 200 => {
                last = response.json().await.expect("transcript is JSON");
                ready(&last)
            }
            _ => false,
        })
        .await;
        assert!(
            became_ready,
            "session {session_id} never became ready; last transcript: {last}"
        );
        last
    }

    pub async fn status_of(&self, path: &str) -> u16 {
        reqwest::get(self.api_url(path))
            .await
            .expect("API answers")
            .status()
            .as_u16()
    }

    pub async fn stop(self) {
        self.app.shutdown().await;
        let _ = self
            .sql
            .query(&format!("DROP DATABASE IF EXISTS {}", self.database))
            .execute()
            .await;
    }
}

/// Polls `ready` every 100 ms until it holds, for up to 60 s of wall time however long each
/// poll takes; whether it did. Whatever is written asynchronously (derived sessions,
/// background deletes) is awaited this way.
pub async fn wait_until(ready: impl AsyncFnMut() -> bool) -> bool {
    wait_up_to(Duration::from_secs(60), ready).await
}

/// [`wait_until`] with a wait of its own.
pub async fn wait_up_to(patience: Duration, mut ready: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if ready().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---- API requests ----

/// The status and JSON body of a GET on the API.
pub async fn get_json(t: &TestApp, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(t.api_url(path)).await.expect("API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// The status, content type and text body of a GET on the API.
pub async fn text_of(t: &TestApp, path: &str) -> (u16, String, String) {
    let response = reqwest::get(t.api_url(path)).await.expect("API answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

// ---- a proxy in front of ClickHouse that can refuse or stall connections ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProxyMode {
    Forward,
    /// Close every connection at once: ClickHouse looks down.
    Refuse,
    /// Accept and never answer: ClickHouse looks stuck.
    Stall,
    /// Forward, holding every piece of ClickHouse's answers this long: ClickHouse is slow.
    Delay(Duration),
    /// Forward, but when the client closes, keep the connection to ClickHouse open and read
    /// what it still sends slowly, passing nothing on: ClickHouse never learns that the
    /// client went (as behind a proxy that does not pass a close on), and a query whose
    /// client went runs on slowly instead of failing on its next write.
    Linger,
}

pub struct Proxy {
    pub url: String,
    mode: watch::Sender<ProxyMode>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("CONVOLOG_TEST_CLICKHOUSE_URL is http://HOST:PORT");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let (mode, watcher) = watch::channel(ProxyMode::Forward);
        let watcher = Arc::new(watcher);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut mode = (*watcher).clone();
                tokio::spawn(async move {
                    let current = *mode.borrow_and_update();
                    match current {
                        ProxyMode::Refuse => {}
                        ProxyMode::Stall => {
                            let _ = mode.changed().await;
                        }
                        ProxyMode::Forward | ProxyMode::Delay(_) | ProxyMode::Linger => {
                            let Ok(mut server) = connect(upstream, current).await else {
                                return;
                            };
                            // Any change of mode cuts connections already open.
                            tokio::select! {
                                _ = forward(&mut client, &mut server, current) => {}
                                _ = mode.changed() => return,
                            }
                            if current == ProxyMode::Linger {
                                drop(client);
                                tokio::select! {
                                    _ = drain_slowly(&mut server) => {}
                                    _ = mode.changed() => {}
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy { url, mode }
    }

    pub fn set(&self, mode: ProxyMode) {
        let _ = self.mode.send(mode);
    }
}

/// In `Linger` mode with a small receive buffer, so that what the server sends after the
/// client went is not all taken at once by the kernel.
async fn connect(upstream: SocketAddr, mode: ProxyMode) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if mode == ProxyMode::Linger {
        socket.set_recv_buffer_size(4096)?;
    }
    socket.connect(upstream).await
}

/// Reads and drops 4 KiB every 100 ms until the server closes.
async fn drain_slowly(server: &mut TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 4 * 1024];
    while let Ok(1..) = server.read(&mut buffer).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Copies both ways until either side closes; in `Delay` mode each read from the server
/// waits before it is passed on.
async fn forward(client: &mut TcpStream, server: &mut TcpStream, mode: ProxyMode) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ProxyMode::Delay(delay) = mode else {
        let _ = tokio::io::copy_bidirectional(client, server).await;
        return;
    };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let answers = async {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read @ 1..) = server_read.read(&mut buffer).await {
            tokio::time::sleep(delay).await;
            if client_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
        _ = answers => {}
    }
}
