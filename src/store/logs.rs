//! The `logs` table: log records as received, and a session's records as read. A record is
//! a session's when its trace is one of the session's traces, or, when its trace is in no
//! session, when the record names the session's key itself (see `sessionize::logs`).

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::derived::by_id;
use super::spans::{Each, Hex};
use super::{Store, StoreError};
use crate::model::conversation::unix_seconds;
use crate::model::LogRecord;
use crate::sessionize::logs::session_key;

/// A record as one row of `logs`, borrowed from the record.
#[derive(Row, Serialize)]
struct LogInsert<'a> {
    time: u32,
    time_unix_nano: u64,
    observed_time_unix_nano: u64,
    severity_number: u8,
    severity_text: &'a str,
    body: &'a str,
    #[serde(rename = "attributes.key")]
    attribute_keys: Each<'a, (String, String), &'a str>,
    #[serde(rename = "attributes.value")]
    attribute_values: Each<'a, (String, String), &'a str>,
    #[serde(rename = "resource_attributes.key")]
    resource_keys: Each<'a, (String, String), &'a str>,
    #[serde(rename = "resource_attributes.value")]
    resource_values: Each<'a, (String, String), &'a str>,
    service_name: &'a str,
    scope_name: &'a str,
    scope_version: &'a str,
    trace_id: Hex<'a>,
    span_id: Hex<'a>,
    event_name: &'a str,
    session_key: String,
    dropped_attributes_count: u32,
    ingested_at_unix_nano: u64,
}

impl<'a> LogInsert<'a> {
    fn new(record: &'a LogRecord, ingested_at_unix_nano: u64) -> LogInsert<'a> {
        LogInsert {
            time: unix_seconds(record.time_unix_nano),
            time_unix_nano: record.time_unix_nano,
            observed_time_unix_nano: record.observed_time_unix_nano,
            severity_number: record.severity_number,
            severity_text: &record.severity_text,
            body: &record.body,
            attribute_keys: Each(&record.attributes.0, |(k, _)| k),
            attribute_values: Each(&record.attributes.0, |(_, v)| v),
            resource_keys: Each(&record.resource.0, |(k, _)| k),
            resource_values: Each(&record.resource.0, |(_, v)| v),
            service_name: record.service_name(),
            scope_name: &record.scope_name,
            scope_version: &record.scope_version,
            trace_id: Hex(record.trace_id.as_ref().map_or(&[][..], |t| t.as_bytes())),
            span_id: Hex(record.span_id.as_ref().map_or(&[][..], |s| s.as_bytes())),
            event_name: &record.event_name,
            session_key: session_key(record).unwrap_or_default(),
            dropped_attributes_count: record.dropped_attributes_count,
            ingested_at_unix_nano,
        }
    }
}

/// A session's log record as read, with the name of the span it was written in (empty when
/// that span is not stored).
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct LogLine {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: u8,
    pub severity_text: String,
    pub body: String,
    #[serde(rename = "attributes.key")]
    pub attribute_keys: Vec<String>,
    #[serde(rename = "attributes.value")]
    pub attribute_values: Vec<String>,
    pub service_name: String,
    pub scope_name: String,
    pub trace_id: String,
    pub span_id: String,
    pub event_name: String,
    pub span_name: String,
    /// Tells records of the same instant apart (a hash of what makes a record itself); with
    /// the time, the position a page of records ends at.
    pub record_key: u64,
}

/// Which of a session's records to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    /// Records at or above this severity number.
    pub min_severity: u8,
    /// Records whose body contains this text, ignoring case.
    pub text: Option<String>,
    /// Records after this (time, record key), for paging.
    pub after: Option<(u64, u64)>,
    pub limit: u64,
}

/// The trace ids of session `?` at revision `?` (binds: id, revision).
fn session_traces() -> String {
    format!(
        "SELECT arrayJoin(trace_ids) FROM sessions WHERE {} AND revision = ?",
        by_id("(?)")
    )
}

/// The records of session `?` at revision `?` (binds: id, revision, id, id): through the
/// session's traces, or the session's key on a record whose trace is in no session.
fn session_records() -> String {
    format!(
        "(trace_id IN ({}) \
         OR (session_key = ? AND trace_id NOT IN (SELECT trace_id FROM trace_sessions \
             WHERE trace_id IN (SELECT trace_id FROM logs WHERE session_key = ?))))",
        session_traces()
    )
}

impl Store {
    /// One insert of log records, measured.
    pub async fn insert_logs(
        &self,
        records: &[LogRecord],
        ingested_at_unix_nano: u64,
    ) -> Result<(), StoreError> {
        let _hold = self.hold_writes().await;
        self.timed("logs", async {
            let mut insert = self.client.insert::<LogInsert<'_>>("logs").await?;
            for record in records {
                insert
                    .write(&LogInsert::new(record, ingested_at_unix_nano))
                    .await?;
            }
            insert.end().await?;
            Ok(())
        })
        .await
    }

    /// The session's records at `revision` by time, each once (re-sent copies collapse).
    pub async fn session_logs(
        &self,
        session_id: &str,
        revision: u64,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>, StoreError> {
        let q = self.session_logs_query(session_id, revision, query);
        self.timed("session logs", async {
            Ok(q.fetch_all::<LogLine>().await?)
        })
        .await
    }

    fn session_logs_query(
        &self,
        session_id: &str,
        revision: u64,
        query: &LogQuery,
    ) -> clickhouse::query::Query {
        let mut conditions = vec![session_records()];
        if query.min_severity > 0 {
            conditions.push("severity_number >= ?".to_owned());
        }
        if query.text.is_some() {
            conditions.push("positionCaseInsensitiveUTF8(body, ?) > 0".to_owned());
        }
        if query.after.is_some() {
            conditions
                .push("(time_unix_nano > ? OR (time_unix_nano = ? AND record_key > ?))".to_owned());
        }
        let sql = format!(
            "SELECT ?fields FROM (\
                 SELECT time_unix_nano, observed_time_unix_nano, severity_number, severity_text, \
                     body, attributes.key, attributes.value, service_name, scope_name, trace_id, \
                     span_id, event_name, \
                     cityHash64(trace_id, span_id, observed_time_unix_nano, severity_number, body) AS record_key \
                 FROM logs WHERE {} \
                 ORDER BY time_unix_nano, record_key \
                 LIMIT 1 BY time_unix_nano, record_key \
                 LIMIT ?) AS records \
             ANY LEFT JOIN (\
                 SELECT trace_id, span_id, any(name) AS span_name FROM spans \
                 WHERE trace_id IN ({}) \
                 GROUP BY trace_id, span_id) AS names \
             USING trace_id, span_id \
             ORDER BY time_unix_nano, record_key",
            conditions.join(" AND "),
            session_traces()
        );
        let mut q = self
            .client
            .query(&sql)
            .bind(session_id)
            .bind(revision)
            .bind(session_id)
            .bind(session_id);
        if query.min_severity > 0 {
            q = q.bind(query.min_severity);
        }
        if let Some(text) = &query.text {
            q = q.bind(text);
        }
        if let Some((time, key)) = query.after {
            q = q.bind(time).bind(time).bind(key);
        }
        q.bind(query.limit).bind(session_id).bind(revision)
    }

    /// The SQL of a session's records read with every filter and a cursor, and without: for
    /// checking it on other ClickHouse releases.
    #[doc(hidden)]
    pub fn rendered_session_logs_sql(&self) -> Vec<String> {
        let fields: Vec<String> = <LogLine as Row>::COLUMN_NAMES
            .iter()
            .map(|c| format!("`{c}`"))
            .collect();
        let every = LogQuery {
            min_severity: 17,
            text: Some("time'out".into()),
            after: Some((1, 2)),
            limit: 50,
        };
        [LogQuery::default(), every]
            .iter()
            .map(|query| {
                self.session_logs_query("s'1", 3, query)
                    .sql_display()
                    .to_string()
                    .replace("?fields", &fields.join(", "))
            })
            .collect()
    }
}
