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
        SpanSpec::new(trace, 1, "conversation")
            .at(0, 2_000)
            .attributes([kv("conversation.id", format!("s-{trace}"))]),
        SpanSpec::new(trace, 2, "turn")
            .child_of(1)
            .at(0, 1_000)
            .attributes([kv("turn.number", 1i64)]),
    ]
}

fn encode(specs: &[SpanSpec]) -> Vec<u8> {
    let anchor = anchor();
    request(
        "agent",
        "pipecat",
        specs.iter().map(|s| s.build(anchor)).collect(),
    )
    .encode_to_vec()
}

#[tokio::test]
async fn grpc_stores_valid_spans_and_reports_rejected_ones() {
    let t = TestApp::start("grpc").await;
    let anchor = anchor();
    let mut spans: Vec<_> = two_spans(1).iter().map(|s| s.build(anchor)).collect();
    let mut short_id = SpanSpec::new(1, 3, "bad").at(0, 10).build(anchor);
    short_id.trace_id = vec![1; 8];
    let mut ancient = SpanSpec::new(1, 4, "ancient").at(0, 10).build(anchor);
    ancient.start_time_unix_nano = 1_000;
    let mut reversed = SpanSpec::new(1, 5, "reversed").at(0, 10).build(anchor);
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
        SpanSpec::new(1, 1, "QQQQ")
            .at(0, 10)
            .attributes([kv("transcript", "ok")])
            .build(anchor),
        SpanSpec::new(1, 2, "fine")
            .child_of(1)
            .at(0, 10)
            .build(anchor),
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
            two_spans(1).iter().map(|s| s.build(anchor())).collect(),
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
            two_spans(1).iter().map(|s| s.build(anchor())).collect(),
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
        c.ingest.batch_min_spans = 8;
        c.ingest.queue_wait_ms = 200;
    })
    .await;
    let eight: Vec<SpanSpec> = (1..=8)
        .map(|i| SpanSpec::new(1, i, "x").at(0, 10))
        .collect();

    // ClickHouse stops answering: the first request holds 8 of the 10 places while it waits.
    proxy.set(ProxyMode::Stall);
    let grpc_url = t.grpc_url();
    let first_request = request(
        "agent",
        "pipecat",
        eight.iter().map(|s| s.build(anchor())).collect(),
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
                .map(|s| s.build(anchor()))
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
        two_spans(1).iter().map(|s| s.build(anchor())).collect(),
    );
    client.export(small).await.expect("gzip export succeeds");
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);

    // Compresses to almost nothing, but is over the limit once inflated.
    let huge = SpanSpec::new(2, 1, "llm")
        .at(0, 10)
        .attributes([kv("output", "a".repeat(200 * 1024))]);
    let status = client
        .export(request("agent", "pipecat", vec![huge.build(anchor())]))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    // Uncompressed, too: a status OTLP clients do not retry, since it would never fit.
    let status = t
        .export_grpc(request("agent", "pipecat", vec![huge.build(anchor())]))
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
        two_spans(1).iter().map(|s| s.build(anchor())).collect(),
    ))
    .await
    .expect("ingest works once ready");
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);
    t.stop().await;
}

/// Clients wait for their answers before they send more, so once no other request is on its
/// way, a batch of `batch_min_spans` or more is written at once instead of after
/// `batch_max_wait`; a smaller one waits for company.
#[tokio::test]
async fn a_large_enough_batch_is_written_once_nothing_else_is_on_its_way() {
    let t = TestApp::start_with("early", |c| {
        c.ingest.batch_max_wait_ms = 600_000;
        c.ingest.batch_min_spans = 8;
    })
    .await;
    let anchor = anchor();
    let spans = move |trace: u64, count: u64| {
        (1..=count)
            .map(|i| SpanSpec::new(trace, i, "x").at(0, 10).build(anchor))
            .collect()
    };
    let grpc_url = t.grpc_url();
    let seven = tokio::spawn(async move {
        let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(grpc_url)
            .await
            .expect("connects");
        client
            .export(request("agent", "pipecat", spans(1, 7)))
            .await
    });
    let stored = "SELECT count() FROM spans";
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!seven.is_finished(), "seven spans wait for more");
    assert_eq!(t.count(stored).await, 0);

    // Well under the batch wait: the batch is written once it is large enough.
    let within = std::time::Duration::from_secs(60);
    tokio::time::timeout(
        within,
        t.export_grpc(request("agent", "pipecat", spans(2, 1))),
    )
    .await
    .expect("the eighth span completes the batch, which is written at once")
    .expect("stored");
    tokio::time::timeout(within, seven)
        .await
        .expect("answered with the eighth")
        .expect("joins")
        .expect("stored in the same insert");
    assert_eq!(t.count(stored).await, 8);
    t.stop().await;
}

/// Requests that arrive together go into one INSERT. When ClickHouse refuses that insert for
/// good because of one request's rows, the others are still stored and only that one fails.
#[tokio::test]
async fn one_clients_refused_rows_do_not_fail_the_others() {
    // A long batch wait so both requests land in the same insert.
    let t = TestApp::start_with("cobatched", |c| c.ingest.batch_max_wait_ms = 1_000).await;
    // Make ClickHouse refuse (Code 6, permanent) any row of a span named 'poison'.
    t.sql
        .query("ALTER TABLE spans ADD COLUMN refuse UInt8 MATERIALIZED toUInt8(if(name = 'poison', 'x', '0'))")
        .execute()
        .await
        .expect("alter spans");
    let anchor = anchor();
    let good: Vec<_> = two_spans(1).iter().map(|s| s.build(anchor)).collect();
    let bad = vec![SpanSpec::new(2, 1, "poison").at(0, 10).build(anchor)];
    let (good, bad) = tokio::join!(
        t.export_grpc(request("agent", "pipecat", good)),
        t.export_grpc(request("other", "pipecat", bad)),
    );
    good.expect("the good client's spans are stored");
    let refused = bad.expect_err("the bad client's insert is refused");
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused:?}");
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);
    assert_eq!(
        t.count("SELECT count() FROM spans WHERE name = 'poison'")
            .await,
        0
    );
    t.stop().await;
}

/// Every field of a span, events, links and the shared resource included, reads back as written.
#[tokio::test]
async fn a_stored_span_reads_back_as_written() {
    use convolog::model::{
        Attributes, Span, SpanEvent, SpanId, SpanKind, SpanLink, StatusCode, TraceId,
    };
    let t = TestApp::start("roundtrip").await;
    let start = anchor();
    let span = Span {
        trace_id: TraceId::from([7; 16]),
        span_id: SpanId::from([3; 8]),
        parent_span_id: Some(SpanId::from([1; 8])),
        trace_state: "k=v".into(),
        flags: 1,
        name: "llm".into(),
        kind: SpanKind::Client,
        start_unix_nano: start,
        end_unix_nano: start + 5,
        status_code: StatusCode::Error,
        status_message: "boom".into(),
        attributes: [("k", "v"), ("n", "1")].into_iter().collect(),
        resource: std::sync::Arc::new([("service.name", "agent")].into_iter().collect()),
        scope_name: "pipecat".into(),
        scope_version: "1.0".into(),
        events: vec![SpanEvent {
            time_unix_nano: start + 1,
            name: "exception".into(),
            attributes: [("exception.message", "boom")].into_iter().collect(),
        }],
        links: vec![SpanLink {
            trace_id: TraceId::from([9; 16]),
            span_id: SpanId::from([8; 8]),
            attributes: Attributes::default(),
        }],
        dropped_attributes_count: 2,
        dropped_events_count: 3,
        dropped_links_count: 4,
    };
    let root = Span {
        span_id: SpanId::from([1; 8]),
        parent_span_id: None,
        events: Vec::new(),
        links: Vec::new(),
        ..span.clone()
    };
    t.app
        .store
        .insert_spans(&[&root, &span], 42)
        .await
        .expect("stored");
    let mut read = t
        .app
        .store
        .load_spans(&[span.trace_id.to_hex()])
        .await
        .expect("read back");
    read.sort_by_key(|s| s.span_id);
    assert_eq!(read, [root, span]);
    assert_eq!(
        t.count(
            "SELECT count() FROM spans WHERE service_name = 'agent' AND ingested_at_unix_nano = 42"
        )
        .await,
        2
    );
    t.stop().await;
}

fn four_hundred_spans(
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let anchor = anchor();
    request(
        "agent",
        "pipecat",
        (1..=400)
            .map(|i| SpanSpec::new(1, i, "x").at(0, 10).build(anchor))
            .collect(),
    )
}

/// A huge scope name or resource is cut once, not copied into each of the 400 spans, and the
/// client is told (without the answer growing with it either).
#[tokio::test]
async fn oversized_scope_and_resource_are_cut_once() {
    let t = TestApp::start("cut").await;

    let mut huge_scope = four_hundred_spans();
    if let Some(scope) = huge_scope.resource_spans[0].scope_spans[0].scope.as_mut() {
        scope.name = "s".repeat(512 * 1024);
    }
    let response = t.export_grpc(huge_scope).await.expect("export succeeds");
    let warning = response.partial_success.expect("partial_success is set");
    assert_eq!(warning.rejected_spans, 0);
    assert!(
        warning
            .error_message
            .contains("scope name truncated from 524288 bytes"),
        "{}",
        &warning.error_message[..warning.error_message.len().min(500)]
    );
    assert!(warning.error_message.len() < 4096, "the answer stays small");
    assert_eq!(
        t.count("SELECT count() FROM spans WHERE length(scope_name) = 1024")
            .await,
        400
    );

    let mut many_attributes = four_hundred_spans();
    if let Some(resource) = many_attributes.resource_spans[0].resource.as_mut() {
        resource
            .attributes
            .extend((0..10_000).map(|i| kv(&format!("k{i}"), i as i64)));
    }
    let response = t
        .export_grpc(many_attributes)
        .await
        .expect("export succeeds");
    let warning = response.partial_success.expect("partial_success is set");
    assert!(
        warning
            .error_message
            .contains("resource attributes over the limit of 128 dropped"),
        "{}",
        warning.error_message
    );
    assert_eq!(
        t.count("SELECT count() FROM spans WHERE length(resource_attributes.key) = 128")
            .await,
        400
    );
    t.stop().await;
}

/// The pending-bytes cap holds by the request's size before decoding and by what its spans
/// take after; a request that can never fit is refused for good, with the setting named.
#[tokio::test]
async fn requests_over_the_pending_bytes_cap_are_refused_clearly() {
    let t = TestApp::start_with("bytes", |c| {
        c.ingest.max_request_bytes = 48 * 1024;
        c.ingest.max_pending_bytes = 64 * 1024;
    })
    .await;
    // Small on the wire (about 40 bytes a span), several times that once converted.
    let request = four_hundred_spans();
    assert!(prost::Message::encoded_len(&request) < 64 * 1024);
    let refused = t.export_grpc(request).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("ingest.max_pending_bytes"),
        "{}",
        refused.message()
    );

    let mut big = four_hundred_spans();
    big.resource_spans[0].scope_spans[0].spans.truncate(1);
    big.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("blob", "x".repeat(100 * 1024)));
    let response = t
        .export_http(big.encode_to_vec(), "application/x-protobuf", None)
        .await;
    assert_eq!(response.status(), 413, "over max_request_bytes as before");

    // What fits is stored.
    t.export_grpc(request_of(&two_spans(1)))
        .await
        .expect("a small request is stored");
    assert_eq!(t.count("SELECT count() FROM spans").await, 2);
    t.stop().await;
}

fn request_of(
    specs: &[SpanSpec],
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let anchor = anchor();
    request(
        "agent",
        "pipecat",
        specs.iter().map(|s| s.build(anchor)).collect(),
    )
}
