//! Slow, idle and unauthenticated clients, spoken to over raw sockets: none of them can hold
//! a connection or a buffer for longer than the configured limits.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for "the server reacted": the limits under test are a fraction of it.
const PATIENCE: Duration = Duration::from_secs(10);

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.expect("connects")
}

/// Everything the server sends until it closes the connection; None if it is still open
/// after [`PATIENCE`].
async fn until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn half_sent_headers_are_cut_off_on_both_http_ports() {
    let t = TestApp::start_with("slowloris", |c| c.http.header_timeout_ms = 300).await;
    for addr in [t.app.http_addr, t.app.api_addr] {
        let mut stream = connect(addr).await;
        stream
            .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .expect("writes");
        assert!(
            until_closed(&mut stream).await.is_some(),
            "{addr} kept a half-sent request open"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn a_request_without_a_key_is_refused_before_its_body() {
    let key = "ingest-key-1";
    let t = TestApp::start_with("nokeybody", |c| {
        c.tenants = vec![convolog::config::TenantConfig {
            name: "acme".into(),
            database: Some(c.clickhouse.database.clone()),
            keys: vec![convolog::config::KeyConfig {
                sha256: convolog::tenants::hash_key(key),
                scope: convolog::tenants::Scope::Ingest,
            }],
        }];
    })
    .await;
    let mut stream = connect(t.app.http_addr).await;
    // Announces 10 MB and sends none of it: the answer must not wait for the body.
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-protobuf\r\nContent-Length: 10000000\r\n\r\n",
        )
        .await
        .expect("writes");
    let mut head = [0u8; 12];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut head))
        .await
        .expect("answered before the body was sent")
        .expect("reads");
    assert_eq!(&head, b"HTTP/1.1 401");
    t.stop().await;
}

#[tokio::test]
async fn a_trickled_body_times_out() {
    let t = TestApp::start_with("trickle", |c| c.http.body_timeout_ms = 500).await;
    let mut stream = connect(t.app.http_addr).await;
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n",
        )
        .await
        .expect("writes");
    // One byte every 100 ms never lets the connection go idle, but the body is late.
    let answer = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 12];
        loop {
            tokio::select! {
                read = stream.read_exact(&mut buf) => return read.map(|_| buf),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    let _ = stream.write_all(b"x").await;
                }
            }
        }
    })
    .await
    .expect("answered while the body still trickled")
    .expect("reads");
    assert_eq!(&answer, b"HTTP/1.1 400");
    t.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let t = TestApp::start_with("connlimit", |c| c.http.max_connections = 2).await;
    let addr = t.app.api_addr;
    let mut first = connect(addr).await;
    let _second = connect(addr).await;
    // Give the server time to accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(addr).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut buf = [0u8; 12];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read_exact(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served at a limit of 2"
    );
    first.shutdown().await.expect("closes");
    drop(first);
    let answer = until_closed(&mut third)
        .await
        .expect("served once a slot freed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    t.stop().await;
}
