//! Several `convolog serve` processes on one database, as behind the Collector's
//! `load_balancing` exporter or a plain load balancer: whatever reaches which instance, and
//! whichever instance dies, every session ends as one instance alone derives it from the same
//! spans (compared with a clean single-instance run: summary, timeline, transcript, and the
//! count of current derived rows). Real binaries, real ClickHouse; memory (the session cache)
//! on, as in production.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::serve::*;
use common::*;
use tokio::sync::watch;

/// Short sweeps, so a dead instance's spans are taken over within a test's wait.
const SETTINGS: &[(&str, &str)] = &[
    ("CONVOLOG_SESSIONIZE_SWEEP_INTERVAL_MS", "500"),
    ("CONVOLOG_SESSIONIZE_SWEEP_GRACE_MS", "3000"),
];

/// An OpenInference-style conversation: each turn is a trace of its own, its root span
/// naming the session (`session.id`) and sent after its children, so each trace first
/// derives as a session of its own and then moves.
fn openinference_conversation(session: &str, first_trace: u64) -> Vec<SpanSpec> {
    let oi = |kind: &str| kv("openinference.span.kind", kind.to_owned());
    let mut spans = Vec::new();
    for turn in 0..3u64 {
        let trace = first_trace + turn;
        let start = turn * 3_000;
        let user = format!("{session} question {turn}");
        let agent = format!("{session} answer {turn}");
        spans.push(
            SpanSpec::new(trace, 2, "pipecat.stt")
                .child_of(1)
                .at(start, start + 800)
                .attributes([oi("CHAIN"), kv("output.value", user.as_str())]),
        );
        spans.push(
            SpanSpec::new(trace, 3, "pipecat.llm")
                .child_of(1)
                .at(start + 900, start + 1_500)
                .attributes([
                    oi("LLM"),
                    kv("output.value", agent.as_str()),
                    kv("llm.model_name", "gpt-4o"),
                ]),
        );
        spans.push(
            SpanSpec::new(trace, 1, "pipecat.conversation.turn")
                .at(start, start + 2_000)
                .attributes([
                    oi("CHAIN"),
                    kv("session.id", session),
                    kv("input.value", user.as_str()),
                    kv("output.value", agent.as_str()),
                ]),
        );
    }
    spans
}

/// `pipecat` one-trace conversations and `openinference` multi-trace ones, `per_request`
/// spans to an export, the conversations' exports interleaved (they run at once).
fn mixed_load(pipecat: u64, openinference: u64, per_request: usize) -> (Vec<Export>, Vec<String>) {
    let anchor = anchor();
    let mut conversations: Vec<Vec<Export>> = Vec::new();
    let mut sessions = Vec::new();
    for n in 0..pipecat {
        let session = format!("pc-{n}");
        let specs = pipecat_conversation(&session, 2000 + n);
        let requests = requests(&specs.iter().collect::<Vec<_>>(), anchor, per_request);
        conversations.push(requests.into_iter().map(Export::new).collect());
        sessions.push(session);
    }
    for n in 0..openinference {
        let session = format!("oi-{n}");
        let specs = openinference_conversation(&session, 5000 + 10 * n);
        // One trace's spans never share an export with another trace's.
        let requests = specs
            .chunks(3)
            .flat_map(|trace| requests(&trace.iter().collect::<Vec<_>>(), anchor, per_request));
        conversations.push(requests.map(Export::new).collect());
        sessions.push(session);
    }
    let mut exports = Vec::new();
    let longest = conversations.iter().map(Vec::len).max().unwrap_or(0);
    let mut queues: Vec<_> = conversations.into_iter().map(Vec::into_iter).collect();
    for _ in 0..longest {
        exports.extend(queues.iter_mut().filter_map(Iterator::next));
    }
    (exports, sessions)
}

/// `count` instances started at once on a new database, as a deployment of several starts:
/// one applies the schema, the others wait for it.
async fn start_instances(clickhouse: &str, database: &str, count: usize) -> Vec<Convolog> {
    futures::future::join_all((0..count).map(|_| Convolog::start(clickhouse, database, SETTINGS)))
        .await
}

fn grpc_urls(instances: &[Convolog]) -> Vec<String> {
    instances.iter().map(|c| c.grpc_url.clone()).collect()
}

/// Sends the load through `instances` routed by `route`, then checks the outcome against a
/// clean single-instance run, read through the first instance's API.
async fn split_load_equals_one_instance(name: &str, route: Route, per_request: usize) {
    let database = fresh_database(name);
    let clickhouse = clickhouse_url();
    let stored = Database {
        clickhouse_url: &clickhouse,
        name: &database,
    };
    let instances = start_instances(&clickhouse, &database, 3).await;
    let (exports, sessions) = mixed_load(12, 12, per_request);
    let exports = Arc::new(exports);
    let (_targets, targeted) = watch::channel(grpc_urls(&instances));
    let (seen, load) = start_load(
        Arc::clone(&exports),
        targeted,
        route,
        6,
        Duration::from_millis(5),
    );
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.acknowledged.len(), exports.len());

    assert_acknowledged_spans_stored(&clickhouse, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&instances[0].api_url, &stored, &exports, &sessions).await;
    for instance in instances {
        instance.kill().await;
    }
    drop_database(&clickhouse, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traffic_split_by_trace_derives_what_one_instance_derives() {
    // A multi-trace conversation's traces reach different instances.
    split_load_equals_one_instance("instances_by_trace", Route::ByTrace, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traffic_split_without_regard_to_traces_derives_what_one_instance_derives() {
    // One span to an export, each export to the next instance: every trace is spread.
    split_load_equals_one_instance("instances_round_robin", Route::RoundRobin, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_under_load_loses_nothing_and_the_others_complete_its_sessions() {
    let database = fresh_database("instances_kill");
    let clickhouse = clickhouse_url();
    let stored = Database {
        clickhouse_url: &clickhouse,
        name: &database,
    };
    let mut instances = start_instances(&clickhouse, &database, 3).await;
    let (exports, sessions) = mixed_load(12, 12, 2);
    let exports = Arc::new(exports);
    let (targets, targeted) = watch::channel(grpc_urls(&instances));
    let (seen, load) = start_load(
        Arc::clone(&exports),
        targeted,
        Route::RoundRobin,
        6,
        Duration::from_millis(20),
    );
    wait_for_acknowledged(&seen, exports.len() / 2).await;
    // kill -9: what it stored and had not derived yet is left for the others' sweeps.
    let killed = instances.remove(1);
    killed.kill().await;
    let acknowledged_at_kill = Seen::acknowledged(&seen);
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.acknowledged.len(), exports.len());
    assert!(
        acknowledged_at_kill < exports.len(),
        "the load went on past the kill"
    );
    assert!(
        seen.transport_errors > 0,
        "clients met the killed instance and sent to another"
    );
    assert_acknowledged_spans_stored(&clickhouse, &database, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&instances[0].api_url, &stored, &exports, &sessions).await;

    // Back again, it changes nothing.
    instances.push(Convolog::start(&clickhouse, &database, SETTINGS).await);
    targets.send_replace(grpc_urls(&instances));
    assert_sessions_equal_a_clean_run(&instances[2].api_url, &stored, &exports, &sessions).await;
    for instance in instances {
        instance.kill().await;
    }
    drop_database(&clickhouse, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_beside_running_instances_leaves_what_one_instance_derives() {
    let database = fresh_database("instances_rebuild");
    let clickhouse = clickhouse_url();
    let stored = Database {
        clickhouse_url: &clickhouse,
        name: &database,
    };
    let instances = start_instances(&clickhouse, &database, 2).await;
    let (exports, sessions) = mixed_load(10, 10, 2);
    let exports = Arc::new(exports);
    let (_targets, targeted) = watch::channel(grpc_urls(&instances));
    let (seen, load) = start_load(
        Arc::clone(&exports),
        targeted,
        Route::ByTrace,
        4,
        Duration::from_millis(20),
    );
    // Rebuilds while spans arrive and the instances derive them.
    for third in 1..=2 {
        wait_for_acknowledged(&seen, exports.len() * third / 3).await;
        let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_convolog"))
            .args(["rebuild", "--since", "2d"])
            .env_remove("CONVOLOG_CONFIG")
            .env("CONVOLOG_CLICKHOUSE_URL", &clickhouse)
            .env("CONVOLOG_CLICKHOUSE_DATABASE", &database)
            .env("CONVOLOG_LOG_FILTER", "warn")
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .expect("convolog rebuild runs");
        assert!(status.success(), "rebuild failed: {status}");
    }
    load.await.expect("the load ends");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.acknowledged.len(), exports.len());
    assert_sessions_equal_a_clean_run(&instances[1].api_url, &stored, &exports, &sessions).await;
    for instance in instances {
        instance.kill().await;
    }
    drop_database(&clickhouse, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_upgrading_one_database_at_once_apply_each_migration_once() {
    // A database as an older convolog left it, with a session in the table migration 0010
    // copies; four processes start on it at once.
    let (database, client) = database_before_migration("instances_migrate", 10).await;
    client
        .query(
            "INSERT INTO sessions (session_id, revision, start_time, start_time_unix_nano) \
             VALUES ('kept', 1, 1700000000, 1700000000000000000)",
        )
        .execute()
        .await
        .expect("old session");
    let config = test_config(&database, &clickhouse_url());
    let stores: Vec<_> = (0..4)
        .map(|_| convolog::store::Store::new(&config.clickhouse))
        .collect();
    let applied = futures::future::join_all(stores.iter().map(|store| store.migrate())).await;
    let mut applied: Vec<u32> = applied
        .into_iter()
        .flat_map(|versions| versions.expect("migrate"))
        .collect();
    applied.sort();
    let pending: Vec<u32> = convolog::store::MIGRATIONS
        .iter()
        .map(|(version, ..)| *version)
        .filter(|version| *version >= 10)
        .collect();
    assert_eq!(
        applied, pending,
        "each pending migration applied by one process"
    );
    let recorded = client
        .query("SELECT version FROM schema_migrations WHERE version >= 10 ORDER BY version")
        .fetch_all::<u32>()
        .await
        .expect("recorded");
    assert_eq!(recorded, pending, "each recorded once");
    let count = |sql: &'static str| {
        let client = client.clone();
        async move { client.query(sql).fetch_one::<u64>().await.expect(sql) }
    };
    assert_eq!(
        count("SELECT count() FROM sessions WHERE session_id = 'kept'").await,
        1
    );
    assert_eq!(
        count(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() \
             AND name IN ('sessions_fine', 'sessions_coarse', 'schema_migrations_lock')"
        )
        .await,
        0,
        "neither the copy's tables nor the lock are left"
    );
    drop_database(&clickhouse_url(), &database).await;
}
