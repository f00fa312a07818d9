//! The receivers against a real ClickHouse: what is stored, what is refused, and that every
//! refusal a client should retry is retryable.

mod common;

use std::io::Write;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn two_spans(trace: u64) -> Vec<SpanSpec> {
    vec![
        span(
            trace,
            1,
            None,
            "conversation",
            0,
            2_000,
            vec![kv("conversation.id", format!("s-{trace}"))],
        ),
        span(
            trace,
            2,
            Some(1),
            "turn",
            0,
            1_000,
            vec![kv("turn.number", 1i64)],
        ),
    ]
}

fn encode(specs: &[SpanSpec]) -> Vec<u8> {
    let anchor = anchor();
    request(
        "agent",
        "pipecat",
        specs.iter().map(|s| build(anchor, s)).collect(),
    )
    .encode_to_vec()
}

#[tokio::test]
async fn grpc_stores_valid_spans_and_reports_rejected_ones() {
    let t = TestApp::start("grpc").await;
    let anchor = anchor();
    let mut spans: Vec<_> = two_spans(1).iter().map(|s| build(anchor, s)).collect();
    let mut short_id = build(anchor, &span(1, 3, None, "bad", 0, 10, vec![]));
    short_id.trace_id = vec![1; 8];
    let mut ancient = build(anchor, &span(1, 4, None, "ancient", 0, 10, vec![]));
    ancient.start_time_unix_nano = 1_000;
    let mut reversed = build(anchor, &span(1, 5, None, "reversed", 0, 10, vec![]));
    reversed.end_time_unix_nano = reversed.start_time_unix_nano - 5;
    spans.extend([short_id, ancient, reversed]);

    let response = t
        .export_grpc(request("agent", "pipecat", spans))
        .await
        .expect("export succeeds");
    let partial = response.partial_success.expect("partial_success is set");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial
            .error_message
            .contains("trace_id has 8 bytes, expected 16"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("outside the accepted range"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("end before start"),
        "{}",
        partial.error_message
    );
    assert_eq!(t.count("SELECT count() FROM spans").await, 3);
    assert_eq!(t.count("SELECT count() FROM spans WHERE name = 'reversed' AND end_time_unix_nano = start_time_unix_nano").await, 1);
    t.stop().await;
}

#[tokio::test]
async fn http_accepts_protobuf_json_and_gzip() {
    let t = TestApp::start("http").await;

    let response = t
        .export_http(encode(&two_spans(1)), "application/x-protobuf", None)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let body = ExportTraceServiceResponse::decode(response.bytes().await.expect("body"))
        .expect("protobuf response");
    assert_eq!(body.partial_success, None);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&encode(&two_spans(2))).expect("compress");
    let response = t
        .export_http(
            gz.finish().expect("compress"),
            "application/x-protobuf",
            Some("gzip"),
        )
        .await;
    assert_eq!(response.status(), 200);

    // OTLP/JSON as the specification writes it: hex ids, enum integers, 64-bit integers as strings.
    let start = anchor();
    let json = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"agent"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"pipecat"}},"spans":[{{
          "traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"llm","kind":3,
          "startTimeUnixNano":"{start}","endTimeUnixNano":"{}",
          "attributes":[{{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"42"}}}},
                        {{"key":"metrics.ttfb","value":{{"doubleValue":0.25}}}}],
          "status":{{"code":2,"message":"boom"}}}}]}}]}}]}}"#,
        start + 1_000_000
    );
    let response = t
        .export_http(json.into_bytes(), "application/json", None)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        t.count("SELECT count() FROM spans WHERE trace_id = '0102030405060708090a0b0c0d0e0f10' AND kind = 'CLIENT' AND status_code = 'ERROR' AND attributes.value[indexOf(attributes.key, 'gen_ai.usage.input_tokens')] = '42'").await,
        1
    );
    assert_eq!(t.count("SELECT count() FROM spans").await, 5);
    t.stop().await;
}

#[tokio::test]
async fn http_bad_input_gets_clear_errors() {
    let t = TestApp::start_with("badhttp", |c| c.ingest.max_request_bytes = 64 * 1024).await;

    let wrong_type = t
        .export_http(encode(&two_spans(1)), "text/plain", None)
        .await;
    assert_eq!(wrong_type.status(), 415);

    let garbage = t
        .export_http(vec![0xff, 0x01, 0x02, 0x03], "application/x-protobuf", None)
        .await;
    assert_eq!(garbage.status(), 400);
    let status = garbage.bytes().await.expect("body");
    assert!(String::from_utf8_lossy(&status).contains("malformed OTLP protobuf"));

    let bad_json = t
        .export_http(b"{\"resourceSpans\": [".to_vec(), "application/json", None)
        .await;
    assert_eq!(bad_json.status(), 400);
    let message: serde_json::Value = bad_json.json().await.expect("JSON status");
    assert!(
        message["message"]
            .as_str()
            .unwrap_or("")
            .contains("malformed OTLP/JSON"),
        "{message}"
    );

    let corrupt_gzip = t
        .export_http(
            b"\x1f\x8b\x08\x00not really gzip".to_vec(),
            "application/x-protobuf",
            Some("gzip"),
        )
        .await;
    assert_eq!(corrupt_gzip.status(), 400);

    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![0u8; 4 * 1024 * 1024])
        .expect("compress");
    let bomb = bomb.finish().expect("compress");
    assert!(
        bomb.len() < 64 * 1024,
        "the compressed bomb fits the wire limit"
    );
    assert_eq!(
        t.export_http(bomb, "application/x-protobuf", Some("gzip"))
            .await
            .status(),
        413
    );

    assert_eq!(
        t.export_http(encode(&two_spans(1)), "application/x-protobuf", Some("br"))
            .await
            .status(),
        400
    );
    assert_eq!(t.count("SELECT count() FROM spans").await, 0);
    t.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_repaired_and_the_rest_of_the_request_kept() {
    let t = TestApp::start("utf8").await;
    let anchor = anchor();
    let spans = vec![
        build(
            anchor,
            &span(1, 1, None, "QQQQ", 0, 10, vec![kv("transcript", "ok")]),
        ),
        build(anchor, &span(1, 2, Some(1), "fine", 0, 10, vec![])),
    ];
    let mut body = request("agent", "pipecat", spans).encode_to_vec();
    let at = body
        .windows(4)
        .position(|w| w == b"QQQQ")
        .expect("marker present");
    body[at..at + 4].copy_from_slice(&[b'Q', 0xff, 0xfe, b'Q']);
    let response = t.export_http(body, "application/x-protobuf", None).await;
    assert_eq!(response.status(), 200);
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.expect("body"))
        .expect("response");
    let partial = answer.partial_success.expect("the repair is reported");
    assert_eq!(partial.rejected_spans, 0);
    assert!(partial.error_message.contains("invalid UTF-8 replaced"));
    assert_eq!(
        t.count("SELECT count() FROM spans WHERE name = 'Q\u{fffd}\u{fffd}Q'")
            .await,
        1
    );
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);
    t.stop().await;
}

#[tokio::test]
async fn clickhouse_down_means_retry_not_success() {
    let proxy = Proxy::start(&clickhouse_url()).await;
    let url = proxy.url.clone();
    let t = TestApp::start_with("down", |c| c.clickhouse.url = url).await;

    proxy.set(ProxyMode::Refuse);
    let grpc = t
        .export_grpc(request(
            "agent",
            "pipecat",
            two_spans(1).iter().map(|s| build(anchor(), s)).collect(),
        ))
        .await;
    assert_eq!(
        grpc.expect_err("no success while ClickHouse is down")
            .code(),
        tonic::Code::Unavailable
    );
    let http = t
        .export_http(encode(&two_spans(2)), "application/x-protobuf", None)
        .await;
    assert_eq!(http.status(), 503);
    assert!(http.headers().contains_key("retry-after"));

    proxy.set(ProxyMode::Forward);
    assert_eq!(
        t.count("SELECT count() FROM spans").await,
        0,
        "nothing stored while down"
    );
    let retried = t
        .export_grpc(request(
            "agent",
            "pipecat",
            two_spans(1).iter().map(|s| build(anchor(), s)).collect(),
        ))
        .await;
    assert!(retried.is_ok(), "{retried:?}");
    assert_eq!(
        t.export_http(encode(&two_spans(2)), "application/x-protobuf", None)
            .await
            .status(),
        200
    );
    assert_eq!(t.count("SELECT count() FROM spans").await, 4);
    t.stop().await;
}

#[tokio::test]
async fn full_buffer_refuses_with_a_retryable_status() {
    let proxy = Proxy::start(&clickhouse_url()).await;
    let url = proxy.url.clone();
    let t = TestApp::start_with("full", |c| {
        c.clickhouse.url = url;
        c.ingest.max_pending_spans = 10;
        c.ingest.batch_max_spans = 8;
        c.ingest.queue_wait_ms = 200;
    })
    .await;
    let eight: Vec<SpanSpec> = (1..=8)
        .map(|i| span(1, i, None, "x", 0, 10, vec![]))
        .collect();

    // ClickHouse stops answering: the first request holds 8 of the 10 places while it waits.
    proxy.set(ProxyMode::Stall);
    let grpc_url = t.grpc_url();
    let first_request = request(
        "agent",
        "pipecat",
        eight.iter().map(|s| build(anchor(), s)).collect(),
    );
    let first = tokio::spawn(async move {
        let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(grpc_url)
            .await
            .expect("connects");
        client.export(first_request).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let grpc = t
        .export_grpc(request(
            "agent",
            "pipecat",
            two_spans(2)
                .iter()
                .chain(two_spans(3).iter())
                .map(|s| build(anchor(), s))
                .collect(),
        ))
        .await;
    assert_eq!(grpc.expect_err("no room").code(), tonic::Code::Unavailable);
    let http = t
        .export_http(
            encode(&[two_spans(4), two_spans(5)].concat()),
            "application/x-protobuf",
            None,
        )
        .await;
    assert_eq!(http.status(), 429);
    assert!(http.headers().contains_key("retry-after"));
    // The body's google.rpc.Status carries the code gRPC answers: UNAVAILABLE (14).
    let body = RpcStatus::decode(http.bytes().await.expect("body")).expect("google.rpc.Status");
    assert_eq!(body.code, tonic::Code::Unavailable as i32);

    // The stalled insert fails when the connection is cut: the first client is told to retry.
    proxy.set(ProxyMode::Forward);
    let first = first
        .await
        .expect("task")
        .expect_err("the stalled request is not acknowledged");
    assert_eq!(first.code(), tonic::Code::Unavailable);
    assert_eq!(
        t.app.metrics.value("convolog_requests_overloaded_total"),
        Some(2.0)
    );
    t.stop().await;
}

#[tokio::test]
async fn grpc_accepts_gzip_and_refuses_oversized_messages() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use tonic::codec::CompressionEncoding;
    let t = TestApp::start_with("grpcgzip", |c| c.ingest.max_request_bytes = 64 * 1024).await;
    let mut client = TraceServiceClient::connect(t.grpc_url())
        .await
        .expect("connects")
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let small = request(
        "agent",
        "pipecat",
        two_spans(1).iter().map(|s| build(anchor(), s)).collect(),
    );
    client.export(small).await.expect("gzip export succeeds");
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);

    // Compresses to almost nothing, but is over the limit once inflated.
    let huge = span(
        2,
        1,
        None,
        "llm",
        0,
        10,
        vec![kv("output", "a".repeat(200 * 1024))],
    );
    let status = client
        .export(request("agent", "pipecat", vec![build(anchor(), &huge)]))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // Uncompressed, too: a status OTLP clients do not retry, since it would never fit.
    let status = t
        .export_grpc(request("agent", "pipecat", vec![build(anchor(), &huge)]))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);
    t.stop().await;
}

#[tokio::test]
async fn ports_are_bound_and_not_ready_until_the_schema_is_applied() {
    let proxy = Proxy::start(&clickhouse_url()).await;
    proxy.set(ProxyMode::Refuse);
    let database = fresh_database("starting");
    let starting = convolog::app::App::bind(test_config(&database, &proxy.url))
        .await
        .expect("binds");
    let (grpc_addr, http_addr, api_addr) =
        (starting.grpc_addr, starting.http_addr, starting.api_addr);
    let finishing = tokio::spawn(starting.finish());

    for addr in [grpc_addr, http_addr] {
        tokio::net::TcpStream::connect(addr)
            .await
            .expect("bound while ClickHouse is down");
    }
    let client = reqwest::Client::new();
    let status = |path: &str| {
        let request = client.get(format!("http://{api_addr}{path}"));
        async move { request.send().await.expect("the API answers").status() }
    };
    // Several looks, across more than one retry of the schema.
    for _ in 0..3 {
        assert_eq!(
            status("/readyz").await,
            503,
            "not ready while ClickHouse is down"
        );
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }
    assert_eq!(
        status("/v1/sessions").await,
        503,
        "no reads before the schema"
    );
    assert!(!finishing.is_finished(), "still applying the schema");

    proxy.set(ProxyMode::Forward);
    let app = finishing
        .await
        .expect("task")
        .expect("starts once ClickHouse answers");
    assert_eq!(status("/readyz").await, 200);
    let t = TestApp {
        app,
        sql: clickhouse::Client::default()
            .with_url(clickhouse_url())
            .with_database(&database)
            .with_validation(false),
        database,
    };
    t.export_grpc(request(
        "agent",
        "pipecat",
        two_spans(1).iter().map(|s| build(anchor(), s)).collect(),
    ))
    .await
    .expect("ingest works once ready");
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);
    t.stop().await;
}
