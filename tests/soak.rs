//! Soak tests: the real `convolog serve` binary under a sustained load of OTLP exports while
//! it is killed (`kill -9`) and restarted, while its ClickHouse is stopped for 60 s, and while
//! ClickHouse answers slowly. The load client retries each export until it is acknowledged,
//! as OTLP exporters do, and records every answer. The assertions are about answers, stored
//! spans and derived sessions, never about speed: every acknowledged span is stored, and every
//! session equals what a clean run derives from the same spans.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::serve::*;
use common::*;
use tokio::sync::watch;

// ---- the tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_under_load_loses_no_acknowledged_span_and_derives_the_same_sessions() {
    let database = fresh_database("soak_crash");
    let clickhouse = clickhouse_url();
    let stored = Database {
        clickhouse_url: &clickhouse,
        name: &database,
    };
    let mut convolog = Convolog::start(&clickhouse, &database, &[]).await;
    let (exports, sessions) = conversations(40);
    let exports = Arc::new(exports);
    let (target, targeted) = watch::channel(vec![convolog.grpc_url.clone()]);
    let (seen, load) = start_load(
        Arc::clone(&exports),
        targeted,
        Route::ByTrace,
        4,
        Duration::from_millis(20),
    );

    // Killed at several moments of the load: early, in the middle, near the end.
    let total = exports.len();
    for moment in [total / 10, total / 2, total * 4 / 5] {
        wait_for_acknowledged(&seen, moment).await;
        convolog.kill().await;
        let acknowledged_at_kill = Seen::acknowledged(&seen);
        // Clients meet a closed port for a while, as after a real crash.
        tokio::time::sleep(Duration::from_millis(300)).await;
        convolog = Convolog::start(&clickhouse, &database, &[]).await;
        target.send_replace(vec![convolog.grpc_url.clone()]);
        // What was acknowledged before the kill is never sent again: finding it stored at the
        // end means it was stored when it was acknowledged.
        assert!(acknowledged_at_kill >= moment);
    }
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(
        seen.acknowledged.len(),
        total,
        "every export acknowledged in the end"
    );
    assert!(
        seen.transport_errors > 0,
        "the clients met convolog down at least once"
    );

    assert_acknowledged_spans_stored(&clickhouse, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&convolog.api_url, &stored, &exports, &sessions).await;
    convolog.kill().await;
    drop_database(&clickhouse, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_60_second_clickhouse_outage_gets_retryable_answers_and_loses_nothing() {
    // ClickHouse is killed (a clean stop can take long under load) and started again 60 s later.
    const MAX_PENDING_BYTES: u64 = 4 * 1024 * 1024;
    const MAX_REQUEST_BYTES: u64 = 1024 * 1024;
    let own = OwnClickHouse::start("outage", None, &[]);
    let database = fresh_database("soak_outage");
    let stored = Database {
        clickhouse_url: &own.url,
        name: &database,
    };
    let convolog = Convolog::start(
        &own.url,
        &database,
        &[
            ("CONVOLOG_MAX_PENDING_BYTES", &MAX_PENDING_BYTES.to_string()),
            ("CONVOLOG_MAX_REQUEST_BYTES", &MAX_REQUEST_BYTES.to_string()),
        ],
    )
    .await;
    let (exports, sessions) = conversations(120);
    let exports = Arc::new(exports);
    let (_target, targeted) = watch::channel(vec![convolog.grpc_url.clone()]);
    // Paced, so the load goes on through the outage and past it.
    let (seen, load) = start_load(
        Arc::clone(&exports),
        targeted,
        Route::ByTrace,
        8,
        Duration::from_millis(250),
    );

    wait_for_acknowledged(&seen, exports.len() / 4).await;
    let rss_before = convolog.rss_bytes();
    own.kill();
    let acknowledged_before = Seen::acknowledged(&seen);
    let mut rss_peak = rss_before;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(convolog.rss_bytes());
    }
    let acknowledged_during = Seen::acknowledged(&seen) - acknowledged_before;
    own.restart();
    assert!(
        Seen::acknowledged(&seen) < exports.len(),
        "the load went on past the outage"
    );
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));

    assert_eq!(
        acknowledged_during, 0,
        "nothing is acknowledged while ClickHouse is down"
    );
    assert_only_retryable_answers(&seen);
    // The memory held for waiting exports is bounded by max_pending_bytes; the rest of the
    // process (connections, buffers, the sessionizer) must not grow with the outage either.
    let grown = rss_peak.saturating_sub(rss_before);
    assert!(
        grown <= 2 * MAX_PENDING_BYTES + 32 * 1024 * 1024,
        "resident memory grew by {grown} bytes during the outage (from {rss_before})"
    );
    assert_eq!(seen.acknowledged.len(), exports.len());
    assert_acknowledged_spans_stored(&own.url, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&convolog.api_url, &stored, &exports, &sessions).await;
    convolog.kill().await;
    own.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_clickhouse_gets_retryable_answers_and_loses_nothing() {
    let database = fresh_database("soak_slow");
    let clickhouse = clickhouse_url();
    let stored = Database {
        clickhouse_url: &clickhouse,
        name: &database,
    };
    let proxy = Proxy::start(&clickhouse).await;
    let convolog = Convolog::start(
        &proxy.url,
        &database,
        &[("CONVOLOG_CLICKHOUSE_TIMEOUT_MS", "1000")],
    )
    .await;
    let (exports, sessions) = conversations(40);
    let exports = Arc::new(exports);
    let (_target, targeted) = watch::channel(vec![convolog.grpc_url.clone()]);
    let (seen, load) = start_load(
        Arc::clone(&exports),
        targeted,
        Route::ByTrace,
        4,
        Duration::from_millis(20),
    );

    // Slow but within convolog's time-out, then past it, then well again.
    wait_for_acknowledged(&seen, exports.len() / 5).await;
    proxy.set(ProxyMode::Delay(Duration::from_millis(300)));
    let slow_from = Seen::acknowledged(&seen);
    wait_for_acknowledged(&seen, slow_from + 10).await;
    proxy.set(ProxyMode::Delay(Duration::from_millis(1500)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(ProxyMode::Forward);
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));

    assert_only_retryable_answers(&seen);
    assert_eq!(seen.acknowledged.len(), exports.len());
    assert_acknowledged_spans_stored(&clickhouse, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&convolog.api_url, &stored, &exports, &sessions).await;
    convolog.kill().await;
    drop_database(&clickhouse, &database).await;
}
