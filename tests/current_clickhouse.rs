//! The schema, the list queries, the reads by id, a session's log read and the knowledge-gaps report also run on a current ClickHouse (chDB, embedded), not only
//! on the 18.16 server the other integration tests use.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use convolog::config::Config;
use convolog::query::{
    After, FilterKind, FilterValue, GapQuery, SessionFilter, Sort, SortValue, FILTERS, SORTS,
};
use convolog::store::{statements, Store, MIGRATIONS};

use common::python;

const CHECK: &str = r#"
import json, sys
from chdb import session
work = json.load(sys.stdin)
s = session.Session()
s.query("CREATE DATABASE IF NOT EXISTS convolog")
s.query("USE convolog")
failed = 0
for i, sql in enumerate(work["setup"] + work["queries"]):
    try:
        s.query(sql, "TSV")
    except Exception as e:
        failed += 1
        print(f"--- statement {i} failed: {e}\n{sql}\n", file=sys.stderr)
sys.exit(1 if failed else 0)
"#;

fn every_filter() -> SessionFilter {
    let mut filter = SessionFilter {
        from_unix_nano: Some(1),
        to_unix_nano: Some(u64::MAX / 2),
        span_names: vec!["llm".into(), "tts".into()],
        text: Some("Grüße".into()),
        labels: vec!["vip".into()],
        flagged: Some(false),
        ..Default::default()
    };
    for spec in FILTERS {
        let value = match spec.kind {
            FilterKind::EqualsAny | FilterKind::HasAny => {
                FilterValue::Any(vec!["a".into(), "b'c".into()])
            }
            FilterKind::Range => FilterValue::Range {
                min: Some(0.5),
                max: Some(1e6),
            },
            FilterKind::NonZero => FilterValue::Bool(true),
            FilterKind::Contains => FilterValue::Text("x".into()),
            FilterKind::Contact => FilterValue::Text("+1 (555) 010-9999".into()),
        };
        filter.columns.push((spec, value));
    }
    filter
}

#[test]
fn schema_and_list_queries_run_on_current_clickhouse() {
    let store = Store::new(&Config::default().clickhouse);
    let setup: Vec<String> = MIGRATIONS
        .iter()
        .flat_map(|(_, _, sql)| statements(sql))
        .collect();
    let mut queries = Vec::new();
    for filter in [SessionFilter::default(), every_filter()] {
        for spec in SORTS {
            for descending in [true, false] {
                let sort = Sort { spec, descending };
                let value = match (spec.value)(&Default::default()) {
                    SortValue::Int(_) => SortValue::Int(7),
                    SortValue::Float(_) => SortValue::Float(None),
                };
                let after = After {
                    value,
                    session_id: "s".into(),
                };
                queries.extend(store.rendered_list_sql(&filter, &sort, None));
                queries.extend(store.rendered_list_sql(&filter, &sort, Some(&after)));
            }
        }
    }
    queries.extend(store.rendered_read_sql());
    queries.extend(store.rendered_shared_sql());
    queries.extend(store.rendered_session_logs_sql());
    let gaps = GapQuery {
        low_confidence: 0.5,
        usually_cites: 0.5,
        limit: 20,
        examples: 3,
    };
    for filter in [SessionFilter::default(), every_filter()] {
        queries.extend(store.rendered_gaps_sql(&filter, &gaps));
    }
    let work = serde_json::json!({ "setup": setup, "queries": queries });
    let mut child = Command::new(python())
        .args(["-c", CHECK])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(work.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
