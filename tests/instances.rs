//! Several `convolog serve` processes on one database, as behind the Collector's
//! `load_balancing` exporter or a plain load balancer: whatever reaches which instance, and
//! whichever instance dies, every session ends as one instance alone derives it from the same
//! spans (compared with a clean single-instance run: summary, timeline, transcript, and the
//! count of current derived rows). On one ClickHouse server, and on a cluster of two replicas
//! with the instances spread over them. Real binaries, real ClickHouse; memory (the session
//! cache) on, as in production.

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

/// Where the instances keep their data: one ClickHouse server, or a local cluster of one
/// shard of two replicas with the instances spread over its servers (each reading its own
/// replica, which may not yet hold what another instance stored through the other).
struct Storage {
    urls: Vec<String>,
    /// Held for the cluster's lifetime.
    cluster: Option<LocalCluster>,
    database: String,
}

impl Storage {
    fn server(name: &str) -> Storage {
        Storage {
            urls: vec![clickhouse_url()],
            cluster: None,
            database: fresh_database(name),
        }
    }

    fn cluster(name: &str) -> Storage {
        let cluster = LocalCluster::start(name, Topology::Replicas);
        Storage {
            urls: cluster.urls.to_vec(),
            cluster: Some(cluster),
            database: fresh_database(name),
        }
    }

    /// Instance `n`, on server `n` modulo the servers.
    async fn start(&self, n: usize) -> Convolog {
        let mut settings = SETTINGS.to_vec();
        if self.cluster.is_some() {
            settings.push(("CONVOLOG_CLICKHOUSE_CLUSTER", LocalCluster::NAME));
        }
        let url = &self.urls[n % self.urls.len()];
        Convolog::start(url, &self.database, &settings).await
    }

    /// `count` instances started at once on a new database, as a deployment of several
    /// starts: one applies the schema, the others wait for it.
    async fn start_instances(&self, count: usize) -> Vec<Convolog> {
        futures::future::join_all((0..count).map(|n| self.start(n))).await
    }

    fn stored(&self) -> Database<'_> {
        Database {
            clickhouse_url: &self.urls[0],
            name: &self.database,
        }
    }

    async fn drop(self) {
        if self.cluster.is_none() {
            drop_database(&self.urls[0], &self.database).await;
        }
    }
}

fn grpc_urls(instances: &[Convolog]) -> Vec<String> {
    instances.iter().map(|c| c.grpc_url.clone()).collect()
}

/// Sends the load through three instances routed by `route`, then checks the outcome against
/// a clean single-instance run, read through the first instance's API.
async fn split_load_equals_one_instance(storage: Storage, route: Route, per_request: usize) {
    let stored = storage.stored();
    let instances = storage.start_instances(3).await;
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

    assert_acknowledged_spans_stored(stored.clickhouse_url, stored.name, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&instances[0].api_url, &stored, &exports, &sessions).await;
    for instance in instances {
        instance.kill().await;
    }
    storage.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traffic_split_by_trace_derives_what_one_instance_derives() {
    // A multi-trace conversation's traces reach different instances.
    let storage = Storage::server("instances_by_trace");
    split_load_equals_one_instance(storage, Route::ByTrace, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traffic_split_without_regard_to_traces_derives_what_one_instance_derives() {
    // One span to an export, each export to the next instance: every trace is spread.
    let storage = Storage::server("instances_round_robin");
    split_load_equals_one_instance(storage, Route::RoundRobin, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_traffic_split_by_trace_derives_what_one_instance_derives() {
    let storage = Storage::cluster("instances_cluster_by_trace");
    split_load_equals_one_instance(storage, Route::ByTrace, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_traffic_split_without_regard_to_traces_derives_what_one_instance_derives() {
    let storage = Storage::cluster("instances_cluster_round_robin");
    split_load_equals_one_instance(storage, Route::RoundRobin, 1).await;
}

/// One of three instances killed with `kill -9` mid-load: clients retry to the others,
/// nothing acknowledged is lost, the others complete its sessions, and its restart changes
/// nothing.
async fn an_instance_killed_under_load(storage: Storage) {
    let stored = storage.stored();
    let mut instances = storage.start_instances(3).await;
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
    assert_acknowledged_spans_stored(stored.clickhouse_url, stored.name, &exports, &seen).await;
    assert_sessions_equal_a_clean_run(&instances[0].api_url, &stored, &exports, &sessions).await;

    // Back again, it changes nothing.
    instances.push(storage.start(1).await);
    targets.send_replace(grpc_urls(&instances));
    assert_sessions_equal_a_clean_run(&instances[2].api_url, &stored, &exports, &sessions).await;
    for instance in instances {
        instance.kill().await;
    }
    storage.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_under_load_loses_nothing_and_the_others_complete_its_sessions() {
    an_instance_killed_under_load(Storage::server("instances_kill")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_an_instance_killed_under_load_loses_nothing() {
    an_instance_killed_under_load(Storage::cluster("instances_cluster_kill")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_beside_running_instances_leaves_what_one_instance_derives() {
    let storage = Storage::server("instances_rebuild");
    let stored = storage.stored();
    let instances = storage.start_instances(2).await;
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
            .env("CONVOLOG_CLICKHOUSE_URL", stored.clickhouse_url)
            .env("CONVOLOG_CLICKHOUSE_DATABASE", stored.name)
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
    storage.drop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_waits_while_another_process_holds_the_lock() {
    let (database, client) = database_before_migration("instances_lock", 10).await;
    client
        .query(
            "CREATE TABLE schema_migrations_lock (holder String DEFAULT 'another') ENGINE = Memory",
        )
        .execute()
        .await
        .expect("another process's lock");
    let store = convolog::store::Store::new(&test_config(&database, &clickhouse_url()).clickhouse);
    let migrating = tokio::spawn(async move { store.migrate().await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!migrating.is_finished(), "it waits for the lock's holder");

    client
        .query("DROP TABLE schema_migrations_lock")
        .execute()
        .await
        .expect("the other process is done");
    let applied = tokio::time::timeout(Duration::from_secs(60), migrating)
        .await
        .expect("it goes on once the lock is gone")
        .expect("task")
        .expect("migrate");
    assert_eq!(applied.first(), Some(&10));
    drop_database(&clickhouse_url(), &database).await;
}
