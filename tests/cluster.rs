//! convolog on a ClickHouse cluster (scripts/cluster.sh: ZooKeeper and two servers, as one
//! shard of two replicas or as two shards): the schema made ON CLUSTER, the API answering as
//! on one server, deletion and retention on every replica and every shard, and one replica
//! down.

mod common;

use common::*;
use convolog::config::Retention;

const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// convolog on the cluster, reached through server `server`.
async fn on_cluster(cluster: &LocalCluster, server: usize, database: &str) -> TestApp {
    let url = cluster.urls[server].clone();
    let database = database.to_owned();
    let mut t = TestApp::start_with("cluster", |config| {
        config.clickhouse.url = url.clone();
        config.clickhouse.database = database;
        config.clickhouse.cluster = LocalCluster::NAME.to_owned();
    })
    .await;
    t.sql = replica(cluster, server, &t.database);
    t
}

/// A client of one server, for what is stored on it (its `*_local` tables).
fn replica(cluster: &LocalCluster, server: usize, database: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(&cluster.urls[server])
        .with_database(database)
        .with_validation(false)
}

async fn count(client: &clickhouse::Client, sql: &str) -> u64 {
    client.query(sql).fetch_one::<u64>().await.expect(sql)
}

async fn send(t: &TestApp, session: &str, trace: u64, anchor: u64) {
    let specs = pipecat_conversation(session, trace);
    for request in requests(&specs.iter().collect::<Vec<_>>(), anchor, 7) {
        t.export_grpc(request).await.expect("export");
    }
}

async fn three_turns(t: &TestApp, session: &str) -> serde_json::Value {
    t.transcript_when(session, |tr| {
        tr["turns"].as_array().map(Vec::len) == Some(3)
            && tr["messages"].as_array().map(Vec::len) == Some(7)
    })
    .await
}

/// What the API says of everything stored, in a form that does not depend on when it was
/// derived (each derivation stamps its own revision and time).
async fn api_view(t: &TestApp, sessions: &[&str]) -> Vec<serde_json::Value> {
    fn stable(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|key, _| !matches!(key.as_str(), "revision" | "updated_at"));
                map.values_mut().for_each(stable);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(stable),
            _ => {}
        }
    }
    let mut paths = vec!["/v1/sessions?limit=100".to_owned()];
    for session in sessions {
        paths.push(format!("/v1/sessions/{session}"));
        paths.push(format!("/v1/sessions/{session}/transcript"));
        paths.push(format!("/v1/sessions/{session}/timeline"));
    }
    let mut out = Vec::new();
    for path in paths {
        let (status, mut body) = get_json(t, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        stable(&mut body);
        out.push(serde_json::json!({ "path": path, "body": body }));
    }
    let (status, _, export) = text_of(t, "/v1/export?format=jsonl&sort=start_time&order=asc").await;
    assert_eq!(status, 200, "{export}");
    for line in export.lines() {
        let mut row: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        stable(&mut row);
        out.push(row);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_serves_what_one_server_does_and_deletes_on_every_replica() {
    let cluster = LocalCluster::start("same", Topology::Replicas);
    let database = fresh_database("cluster");
    let t = on_cluster(&cluster, 0, &database).await;
    let other = replica(&cluster, 1, &database);

    // The schema is on both servers, and applying it again changes nothing.
    assert_eq!(
        t.app.store.migrate().await.expect("migrate again"),
        Vec::<u32>::new()
    );
    for client in [&t.sql, &other] {
        let engines = "SELECT count() FROM system.tables WHERE database = currentDatabase() \
             AND ((name = 'sessions_local' AND engine = 'ReplicatedReplacingMergeTree') \
             OR (name = 'sessions' AND engine = 'Distributed'))";
        assert_eq!(count(client, engines).await, 2);
    }

    let single = TestApp::start("cluster_single").await;
    let now = convolog::clock::now_unix_nano();
    let conversations = [
        ("first", 1, now - 600_000_000_000),
        ("second", 2, now - 300_000_000_000),
        ("old", 3, now - 70 * DAY_NS),
    ];
    for (session, trace, anchor) in conversations {
        for app in [&t, &single] {
            send(app, session, trace, anchor).await;
            three_turns(app, session).await;
        }
    }
    let ids = ["first", "second", "old"];
    assert_eq!(api_view(&t, &ids).await, api_view(&single, &ids).await);
    single.stop().await;

    // Each replica holds every row.
    let spans = "SELECT count() FROM spans_local";
    assert!(
        wait_until(async || count(&t.sql, spans).await == count(&other, spans).await).await,
        "the replicas hold the same spans"
    );

    // Retention drops the old partitions on both replicas.
    let removed = convolog::pipeline::retention::apply(
        &t.app.store,
        &Retention {
            transcript_days: 30,
            sessions_days: 0,
        },
    )
    .await
    .expect("retention runs");
    assert!(
        removed.iter().any(|r| r.starts_with("spans/")),
        "{removed:?}"
    );
    let old_spans = format!(
        "SELECT count() FROM spans_local WHERE trace_id = '{}'",
        hex::encode(trace_id(3))
    );
    for client in [&t.sql, &other] {
        assert!(wait_until(async || count(client, &old_spans).await == 0).await);
    }

    // Deleting a session removes its rows from both replicas.
    assert!(t.app.store.delete_session("first").await.expect("delete"));
    assert_eq!(t.status_of("/v1/sessions/first").await, 404);
    let first_spans = old_spans.replace(&hex::encode(trace_id(3)), &hex::encode(trace_id(1)));
    let first_messages = "SELECT count() FROM messages_local WHERE session_id = 'first'";
    for client in [&t.sql, &other] {
        assert!(
            wait_until(async || {
                count(client, &first_spans).await == 0 && count(client, first_messages).await == 0
            })
            .await,
            "the deleted session's rows are gone from every replica"
        );
    }
    assert_eq!(t.status_of("/v1/sessions/second").await, 200);

    // Deleting everything empties both replicas, and the schema is made again.
    t.app.store.delete_everything().await.expect("wipe");
    for client in [&t.sql, &other] {
        assert_eq!(count(client, "SELECT count() FROM spans_local").await, 0);
        assert_eq!(count(client, "SELECT count() FROM sessions_local").await, 0);
    }
    assert_eq!(t.status_of("/v1/sessions/second").await, 404);
    t.stop().await;
}

/// Each instance talks to its own replica. With one replica down, the instance on the other
/// goes on ingesting and reading; the one on the stopped replica says it is not ready (so a
/// load balancer sends its clients elsewhere); the replica catches up once started again.
#[tokio::test(flavor = "multi_thread")]
async fn one_replica_down_the_other_serves_and_it_catches_up() {
    let cluster = LocalCluster::start("down", Topology::Replicas);
    let database = fresh_database("cluster");
    let a = on_cluster(&cluster, 0, &database).await;
    let b = on_cluster(&cluster, 1, &database).await;
    let now = convolog::clock::now_unix_nano();
    send(&a, "before", 1, now - 600_000_000_000).await;
    three_turns(&a, "before").await;

    cluster.stop(1);
    assert!(
        wait_until(async || b.status_of("/readyz").await == 503).await,
        "the instance on the stopped replica is not ready"
    );
    assert_eq!(a.status_of("/readyz").await, 200);
    send(&a, "during", 2, now - 300_000_000_000).await;
    three_turns(&a, "during").await;
    let (status, list) = get_json(&a, "/v1/sessions").await;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(2), "{list}");

    cluster.restart(1);
    assert!(
        wait_until(async || b.status_of("/readyz").await == 200).await,
        "the instance on the restarted replica is ready again"
    );
    let spans = "SELECT count() FROM spans_local";
    let sessions = "SELECT count() FROM sessions_local FINAL WHERE deleted = 0";
    assert!(
        wait_until(async || {
            count(&b.sql, spans).await == count(&a.sql, spans).await
                && count(&b.sql, sessions).await == 2
        })
        .await,
        "the restarted replica catches up"
    );
    let during = b.transcript_when("during", |_| true).await;
    assert_eq!(during["messages"].as_array().map(Vec::len), Some(7));
    b.app.shutdown().await;
    a.stop().await;
}

/// The API's lists under `queries`, as `api_view` leaves them.
async fn lists(t: &TestApp, queries: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for query in queries {
        let (status, body) = get_json(t, &format!("/v1/sessions?limit=100&{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        let ids = body["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .map(|s| s["session_id"].as_str().expect("session_id").to_owned())
            .collect();
        out.push((query.to_string(), ids));
    }
    out
}

/// Two shards of one replica each: a session's rows on one shard, a trace's spans on one
/// shard, each server holding only its part. The API (the list under the filters that read
/// other tables and views, summary, transcript, timeline, export) answers as one server does,
/// and deletes and the wipe reach both shards.
#[tokio::test(flavor = "multi_thread")]
async fn two_shards_serve_what_one_server_does_and_delete_on_both() {
    let cluster = LocalCluster::start("shards", Topology::Shards);
    let database = fresh_database("shards");
    let t = on_cluster(&cluster, 0, &database).await;
    let other = replica(&cluster, 1, &database);
    let single = TestApp::start("shards_single").await;

    let sessions: Vec<String> = (0..8).map(|n| format!("shard-{n}")).collect();
    let now = convolog::clock::now_unix_nano();
    for app in [&t, &single] {
        for (n, session) in (0u64..).zip(&sessions) {
            send(app, session, 10 + n, now - (n + 1) * 60_000_000_000).await;
        }
        for session in &sessions {
            three_turns(app, session).await;
        }
        let client = reqwest::Client::new();
        for path in [
            "/v1/sessions/shard-1/labels/vip",
            "/v1/sessions/shard-6/labels/vip",
            "/v1/sessions/shard-3/flag",
        ] {
            let response = client.put(app.api_url(path)).send().await.expect("PUT");
            assert_eq!(response.status(), 200, "{path}");
        }
    }
    for client in [&t.sql, &other] {
        assert!(count(client, "SELECT count() FROM sessions_local").await > 0);
        assert!(count(client, "SELECT count() FROM spans_local").await > 0);
    }

    let ids: Vec<&str> = sessions.iter().map(String::as_str).collect();
    assert_eq!(api_view(&t, &ids).await, api_view(&single, &ids).await);
    let filters = [
        "label=vip",
        "flagged=true",
        "flagged=false",
        "q=saturday",
        "span_name=llm_tool_call",
        "has_tool_errors=true",
        "sort=duration&order=asc",
    ];
    let sharded = lists(&t, &filters).await;
    assert_eq!(sharded, lists(&single, &filters).await);
    assert_eq!(sharded[0].1, ["shard-1", "shard-6"]);
    single.stop().await;

    // A deleted session's rows go from whichever shard held them.
    assert!(t.app.store.delete_session("shard-2").await.expect("delete"));
    let trace = hex::encode(trace_id(12));
    let left = format!(
        "SELECT (SELECT count() FROM spans_local WHERE trace_id = '{trace}') \
         + (SELECT count() FROM messages_local WHERE session_id = 'shard-2')"
    );
    for client in [&t.sql, &other] {
        assert!(
            wait_until(async || count(client, &left).await == 0).await,
            "the deleted session's rows are gone from every shard"
        );
    }
    assert_eq!(t.status_of("/v1/sessions/shard-2").await, 404);

    t.app.store.delete_everything().await.expect("wipe");
    for client in [&t.sql, &other] {
        assert_eq!(count(client, "SELECT count() FROM spans_local").await, 0);
        assert_eq!(count(client, "SELECT count() FROM sessions_local").await, 0);
    }
    t.stop().await;
}
