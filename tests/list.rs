//! The sessions list against a real ClickHouse: every filter, the sorts and cursor pagination,
//! and revisions of a session.

mod common;

use std::collections::BTreeSet;

use common::session_fixtures::*;
use common::*;
use convolog::model::conversation::DerivedSession;
use serde_json::Value;

#[tokio::test]
async fn every_filter_selects_the_right_sessions() {
    let t = TestApp::start("list_filters").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;
    // Log records naming their session by key (no trace): an error in s3, a warning in s1.
    t.sql
        .query(
            "INSERT INTO logs (time, time_unix_nano, severity_number, body, session_key) \
             VALUES (toDateTime(?), ?, 17, 'payment API failed', 's3'), (toDateTime(?), ?, 13, 'slow', 's1')",
        )
        .bind(t0 / S)
        .bind(t0)
        .bind(t0 / S)
        .bind(t0)
        .execute()
        .await
        .expect("log records");

    let all = set(&["s1", "s2", "s3", "s4", "s5"]);
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        ("".into(), all.clone()),
        ("environment=prod".into(), set(&["s1", "s2", "s5"])),
        ("channel=voice".into(), set(&["s1", "s2", "s5"])),
        ("channel=web_chat,sms".into(), set(&["s3", "s4"])),
        ("channel=web_chat&channel=sms".into(), set(&["s3", "s4"])),
        ("direction=outbound".into(), set(&["s2"])),
        ("agent=helper".into(), set(&["s3", "s4"])),
        ("service=svc-a".into(), set(&["s1", "s2", "s5"])),
        ("framework=livekit,genai".into(), set(&["s2", "s3", "s4"])),
        ("handoff_target=human".into(), set(&["s2"])),
        ("model=gpt-4o-mini".into(), set(&["s1", "s4"])),
        ("model=claude,gpt-4o".into(), set(&["s2", "s3", "s4"])),
        ("session=S".into(), all.clone()),
        ("session=4".into(), set(&["s4"])),
        ("duration_ms_min=45000".into(), set(&["s1", "s4", "s5"])),
        ("duration_ms_max=30000".into(), set(&["s2", "s3"])),
        (
            "duration_ms_min=30000&duration_ms_max=60000".into(),
            set(&["s1", "s2", "s5"]),
        ),
        ("turns_min=5".into(), set(&["s1", "s4"])),
        ("messages_max=6".into(), set(&["s2", "s3"])),
        ("interruptions_min=2".into(), set(&["s1"])),
        ("tool_errors_min=1".into(), set(&["s1"])),
        (
            "voice_to_voice_p95_ms_min=1000".into(),
            set(&["s1", "s4", "s5"]),
        ),
        ("voice_to_voice_p95_ms_max=1000".into(), set(&["s2"])),
        (
            "voice_to_voice_p50_ms_min=950&voice_to_voice_p50_ms_max=1100".into(),
            set(&["s5"]),
        ),
        ("llm_ttft_p50_ms_min=450".into(), set(&["s4", "s5"])),
        ("has_interruptions=true".into(), set(&["s1", "s4"])),
        ("has_interruptions=false".into(), set(&["s2", "s3", "s5"])),
        ("has_tool_errors=true".into(), set(&["s1"])),
        ("has_errors=1".into(), set(&["s1"])),
        ("has_handoff=true".into(), set(&["s2"])),
        ("state=RESOLVED".into(), set(&["s1", "s5"])),
        ("state=EXPIRED".into(), set(&["s4"])),
        ("state=AWAITING_USER,WITH_AGENT".into(), set(&["s2", "s3"])),
        ("outcome=In%20Progress".into(), set(&["s3"])),
        (
            "outcome=Skill%20Error,Budget%20Exceeded".into(),
            set(&["s4", "s5"]),
        ),
        ("outcome=To%20Agent".into(), set(&["s2"])),
        // Closed lists take the snake_case and display forms, in any case.
        (
            "outcome=skill_error,BUDGET_EXCEEDED".into(),
            set(&["s4", "s5"]),
        ),
        (
            "state=awaiting_user,With%20Agent".into(),
            set(&["s2", "s3"]),
        ),
        ("call_status=completed".into(), set(&["s1", "s4"])),
        ("ended_reason=Inactivity".into(), set(&["s4"])),
        ("call_status=Completed".into(), set(&["s1", "s4"])),
        ("ended_reason=inactivity".into(), set(&["s4"])),
        ("ended_reason=transfer".into(), set(&["s2"])),
        ("intent=refund".into(), set(&["s1"])),
        ("skill=lookup_order".into(), set(&["s1", "s2"])),
        ("flow=support".into(), set(&["s1"])),
        ("node=greeting".into(), set(&["s2"])),
        ("detected_issue=slow_turn".into(), set(&["s1", "s4"])),
        ("detected_issue=tool_error".into(), set(&["s4"])),
        ("detected_issue=error_logged".into(), set(&["s3"])),
        (
            "detected_issue=tool_error,error_logged".into(),
            set(&["s3", "s4"]),
        ),
        ("has_errors_logged=true".into(), set(&["s3"])),
        (
            "has_errors_logged=false".into(),
            set(&["s1", "s2", "s4", "s5"]),
        ),
        ("cost_usd_min=0.01".into(), set(&["s1", "s4"])),
        ("cost_usd_max=0.001".into(), set(&["s2", "s3", "s5"])),
        ("feedback=down".into(), set(&["s2"])),
        ("sentiment=negative".into(), set(&["s4"])),
        ("topic=billing".into(), set(&["s1"])),
        ("campaign=spring".into(), set(&["s2"])),
        ("contact=4567".into(), set(&["s1"])),
        ("user=Calm%20Otter%2042".into(), set(&["s3"])),
        ("confidence_min=0.8".into(), set(&["s5"])),
        (
            format!("from={}", instant(t0 + 15 * S)),
            set(&["s3", "s4", "s5"]),
        ),
        (format!("to={}", instant(t0 + 15 * S)), set(&["s1", "s2"])),
        (
            format!("from={}&to={}", instant(t0 + 10 * S), instant(t0 + 30 * S)),
            set(&["s2", "s3"]),
        ),
        ("from=365d".into(), all.clone()),
        ("q=refund".into(), set(&["s1"])),
        ("q=M%C3%9CNCHEN".into(), set(&["s3"])),
        ("q=nothing-like-this".into(), set(&[])),
        (
            "channel=voice&environment=prod&has_interruptions=false".into(),
            set(&["s2", "s5"]),
        ),
        (
            "channel=voice&voice_to_voice_p95_ms_min=1000&q=refund".into(),
            set(&["s1"]),
        ),
    ];
    for (query, expected) in &cases {
        assert_eq!(&id_set(&t, query).await, expected, "query: {query}");
    }

    // Every filter in the table has a case above.
    for spec in convolog::query::FILTERS {
        assert!(
            cases.iter().any(|(q, _)| q.contains(spec.param)),
            "no test for filter {}",
            spec.param
        );
    }

    // Rows carry what the list shows.
    let (_, body) = get_json(&t, "/v1/sessions?session=s1").await;
    let row = &body["sessions"][0];
    assert_eq!(row["preview"], "I want a refund");
    assert_eq!(row["channel"], "voice");
    assert_eq!(row["message_count"], 10);
    assert_eq!(row["duration_ms"], 60_000.0);
    assert_eq!(row["latency"]["voice_to_voice_p95_ms"], 1500.0);
    assert_eq!(row["labels"], serde_json::json!([]));
    assert_eq!(row["flagged"], false);
    assert_eq!(row["links"]["page"], "/sessions/s1");
    assert_eq!(body["next_cursor"], Value::Null);
    t.stop().await;
}

#[tokio::test]
async fn sorts_and_cursor_pagination() {
    let t = TestApp::start("list_sort").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;

    let cases = [
        ("", vec!["s5", "s4", "s3", "s2", "s1"]),
        (
            "sort=start_time&order=asc",
            vec!["s1", "s2", "s3", "s4", "s5"],
        ),
        ("sort=duration", vec!["s4", "s1", "s5", "s2", "s3"]),
        (
            "sort=duration&order=asc",
            vec!["s3", "s2", "s5", "s1", "s4"],
        ),
        // Ties break on the session id; sessions without a value come last either way.
        ("sort=latency", vec!["s4", "s5", "s1", "s2", "s3"]),
        (
            "sort=voice_to_voice_p95&order=asc",
            vec!["s2", "s1", "s5", "s4", "s3"],
        ),
        (
            "sort=voice_to_voice_p50",
            vec!["s4", "s5", "s1", "s2", "s3"],
        ),
        (
            "sort=llm_ttft_p50&order=asc",
            vec!["s2", "s1", "s5", "s4", "s3"],
        ),
        ("sort=turns", vec!["s4", "s1", "s5", "s2", "s3"]),
        ("sort=cost", vec!["s1", "s4", "s5", "s3", "s2"]),
    ];
    for (query, expected) in &cases {
        assert_eq!(&ids(&t, query).await, expected, "query: {query}");
        // The same order page by page, whatever the page size.
        for limit in [1, 2, 3] {
            let mut pages = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = format!("{query}&limit={limit}");
                if let Some(c) = &cursor {
                    q.push_str(&format!("&cursor={c}"));
                }
                let (status, body) = get_json(&t, &format!("/v1/sessions?{q}")).await;
                assert_eq!(status, 200, "{q}: {body}");
                let page = body["sessions"].as_array().expect("sessions");
                assert!(page.len() <= limit);
                pages.extend(
                    page.iter()
                        .map(|s| s["session_id"].as_str().expect("id").to_owned()),
                );
                match body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
                assert!(pages.len() <= 5, "pagination does not end: {pages:?}");
            }
            assert_eq!(&pages, expected, "query: {query}, limit {limit}");
        }
    }
    for spec in convolog::query::SORTS {
        assert!(
            cases
                .iter()
                .any(|(q, _)| q.contains(&format!("sort={}", spec.param)))
                || spec.param == "start_time",
            "no test for sort {}",
            spec.param
        );
    }

    // Bad parameters: 400 naming the parameter.
    let bad = [
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("sort=colour", "sort"),
        ("order=up", "order"),
        ("cursor=abc", "cursor"),
        (
            "voice_to_voice_p95_ms_min=slow",
            "voice_to_voice_p95_ms_min",
        ),
        ("has_interruptions=perhaps", "has_interruptions"),
        ("from=last+tuesday", "from"),
        ("chanel=voice", "chanel"),
        ("limit=1&limit=2", "limit"),
        ("outcome=great", "outcome"),
        ("direction=sideways", "direction"),
    ];
    for (query, name) in bad {
        let (status, body) = get_json(&t, &format!("/v1/sessions?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = body["error"].as_str().expect("error text");
        assert!(message.contains(name), "{query}: {message}");
    }
    // An unknown closed value is answered with the values that exist.
    let (_, body) = get_json(&t, "/v1/sessions?outcome=great").await;
    let message = body["error"].as_str().expect("error text");
    assert!(message.contains("Skill Error"), "{message}");
    // A cursor belongs to its sort.
    let (_, body) = get_json(&t, "/v1/sessions?limit=1").await;
    let cursor = body["next_cursor"].as_str().expect("more pages");
    let (status, body) = get_json(&t, &format!("/v1/sessions?sort=duration&cursor={cursor}")).await;
    assert_eq!(status, 400, "{body}");
    t.stop().await;
}

/// The ids of every page of a list, following its cursors.
async fn every_page(t: &TestApp, query: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, body) = get_json(t, &format!("/v1/sessions?{query}{cursor}")).await;
        seen.extend(
            body["sessions"]
                .as_array()
                .expect("sessions")
                .iter()
                .map(|s| s["session_id"].as_str().expect("id").to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn old_revisions_neither_show_nor_hide_sessions() {
    let t = TestApp::start("list_churn").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;
    // A session re-derived 450 times: every old revision would top the duration sort and
    // match channel=fax; the current one is short and on voice.
    let mut revisions: Vec<DerivedSession> = (1..=450)
        .map(|revision| {
            let f = session("churn", t0 + 5 * S, |r| {
                r.revision = revision;
                r.duration_ms = 10_000_000.0 + revision as f64;
                r.channel = "fax".into();
            });
            derived(&f)
        })
        .collect();
    let current = session("churn", t0 + 5 * S, |r| {
        r.revision = 451;
        r.duration_ms = 1.0;
        r.channel = "voice".into();
    });
    revisions.push(derived(&current));
    t.app
        .store
        .write_derived(&[], &revisions, &[])
        .await
        .expect("revisions");

    assert_eq!(ids(&t, "sort=duration&limit=2").await, ["s4", "s1"]);
    assert_eq!(
        ids(&t, "sort=duration&order=asc&limit=2").await,
        ["churn", "s3"]
    );
    assert_eq!(id_set(&t, "channel=fax").await, set(&[]));
    assert_eq!(
        id_set(&t, "channel=voice").await,
        set(&["s1", "s2", "s5", "churn"])
    );
    // Page by page, every session once.
    assert_eq!(
        every_page(&t, "sort=duration&limit=2").await,
        ["s4", "s1", "s5", "s2", "s3", "churn"]
    );
    t.stop().await;
}

#[tokio::test]
async fn a_session_whose_start_moves_shows_once_at_its_current_revision() {
    let t = TestApp::start("list_moved_start").await;
    let t0 = (anchor() / S - 3600) * S;
    load_fixtures(&t, t0).await;
    // First seen starting last; then a late span starts it 40 days earlier (another month,
    // another partition), then a few seconds later than that.
    let starts = [
        t0 + 600 * S,
        t0 - 40 * 86_400 * S,
        t0 - 40 * 86_400 * S + 5 * S,
    ];
    for (i, start) in starts.into_iter().enumerate() {
        let revision = 20 + i as u64;
        let f = session("moved", start, |r| {
            r.revision = revision;
            r.channel = if revision == 22 { "voice" } else { "fax" }.into();
        });
        t.app
            .store
            .write_derived(&[], &[derived(&f)], &[])
            .await
            .expect("revision");
    }

    let newest = ids(&t, "limit=50").await;
    assert_eq!(newest.iter().filter(|id| *id == "moved").count(), 1);
    assert_eq!(newest.last().map(String::as_str), Some("moved"));
    assert_eq!(id_set(&t, "channel=fax").await, set(&[]));
    assert!(id_set(&t, "channel=voice").await.contains("moved"));
    let (status, summary) = get_json(&t, "/v1/sessions/moved").await;
    assert_eq!(status, 200);
    assert_eq!(summary["channel"], "voice");
    let current = "SELECT count() FROM sessions_current WHERE session_id = 'moved'";
    assert_eq!(t.count(current).await, 1);
    // Page by page, newest first, every session once.
    let seen = every_page(&t, "limit=2").await;
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 6, "{seen:?}");

    // Deleted, it is gone from every start it held.
    assert!(t.app.store.delete_session("moved").await.expect("delete"));
    assert_eq!(t.count(current).await, 0);
    assert!(!id_set(&t, "").await.contains("moved"));
    assert_eq!(get_json(&t, "/v1/sessions/moved").await.0, 404);
    t.stop().await;
}

#[tokio::test]
async fn an_upgraded_database_keeps_its_sessions_in_the_layout_by_start() {
    let (database, client) = database_before_migration("list_upgrade", 8).await;
    let run = |sql: String| {
        let client = client.clone();
        async move { client.query(&sql).execute().await.expect("old rows") }
    };
    // As the layout by id held them: two revisions of one session, one session deleted.
    let t0 = (anchor() / S - 3600) * S;
    let seconds = t0 / S;
    run(format!(
        "INSERT INTO sessions (session_id, revision, deleted, start_time, start_time_unix_nano, channel) \
         VALUES ('kept', 1, 0, {seconds}, {t0}, 'fax'), ('kept', 2, 0, {seconds}, {t0}, 'voice'), \
         ('gone', 1, 0, {seconds}, {t0}, 'voice'), ('gone', 2, 1, 0, 0, '')"
    ))
    .await;

    let t = TestApp::start_with("list_upgrade", |c| c.clickhouse.database = database.clone()).await;
    let layout = t
        .sql
        .query(
            "SELECT create_table_query FROM system.tables WHERE database = ? AND name = 'sessions'",
        )
        .bind(&database)
        .fetch_one::<String>()
        .await
        .expect("layout");
    assert!(
        layout.contains("ORDER BY (start_time_unix_nano, session_id)"),
        "{layout}"
    );
    assert_eq!(ids(&t, "").await, ["kept"]);
    assert_eq!(ids(&t, "channel=voice").await, ["kept"]);
    let (status, summary) = get_json(&t, "/v1/sessions/kept").await;
    assert_eq!(status, 200);
    assert_eq!(summary["channel"], "voice");
    assert_eq!(get_json(&t, "/v1/sessions/gone").await.0, 404);

    // The next pass finds it by id and moves it without a second row.
    let earlier = session("kept", t0 - 60 * S, |r| r.revision = 3);
    t.app
        .store
        .write_derived(&[], &[derived(&earlier)], &[])
        .await
        .expect("next pass");
    assert_eq!(
        t.count("SELECT count() FROM sessions_current WHERE session_id = 'kept'")
            .await,
        1
    );
    assert_eq!(get_json(&t, "/v1/sessions/kept").await.1["channel"], "");
    t.stop().await;
}
