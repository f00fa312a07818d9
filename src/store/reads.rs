//! Reads for the API: one session at its current revision, with its children, its timeline
//! events and its spans as a waterfall.

use clickhouse::Row;
use serde::Deserialize;

use super::derived::{by_id, session_rows_sql};
use super::list::{with_annotations, SEMANTICS};
use super::logs::LogQuery;
use super::spans::{span_partitions_written_sql, traces_ingested_sql};
use super::{Store, StoreError};
use crate::model::conversation::{
    unix_seconds, AnswerRow, CitationRow, InterruptionRow, IssueRow, MessageRow, SessionRow,
    SessionView, TimelineEventRow, ToolCallRow, TurnRow,
};
use crate::model::log::SEVERITY_ERROR;
use crate::sessionize::logs::{errors_logged, turn_at, turn_spans, ERROR_LOGGED};

/// What the waterfall shows of a span.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct WaterfallRow {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root.
    pub parent_span_id: String,
    pub name: String,
    pub kind: String,
    pub service_name: String,
    pub start_time_unix_nano: u64,
    pub duration_ns: u64,
    pub status_code: String,
    pub status_message: String,
    pub attribute_keys: Vec<String>,
    pub attribute_values: Vec<String>,
    pub event_times_unix_nano: Vec<u64>,
    pub event_names: Vec<String>,
    /// Each event's attributes as the receiver stored them (a JSON object).
    pub event_attributes: Vec<String>,
}

/// A session's current row by id. The table, not the view: a WHERE does not reach below
/// FINAL in a view on 18.16.
pub(super) fn session_sql() -> String {
    format!(
        "SELECT ?fields FROM sessions FINAL WHERE {} AND deleted = 0 ORDER BY revision DESC LIMIT 1",
        by_id("(?)")
    )
}

#[derive(Debug, Clone)]
pub struct SessionDetail {
    /// The stored row, every column.
    pub session: SessionRow,
    /// The same revision as the list and the export show it.
    pub view: SessionView,
    pub issues: Vec<IssueRow>,
    pub turns: Vec<TurnRow>,
    pub messages: Vec<MessageRow>,
    pub tool_calls: Vec<ToolCallRow>,
    pub interruptions: Vec<InterruptionRow>,
    pub answers: Vec<AnswerRow>,
    pub citations: Vec<CitationRow>,
}

impl Store {
    /// The session and its rows at the session's current revision; None if unknown or deleted.
    pub async fn session_detail(
        &self,
        session_id: &str,
    ) -> Result<Option<SessionDetail>, StoreError> {
        let session = self
            .timed("session", async {
                Ok(self
                    .client
                    .query(&session_sql())
                    .bind(session_id)
                    .fetch_optional::<SessionRow>()
                    .await?)
            })
            .await?;
        let Some(session) = session else {
            return Ok(None);
        };
        // What readers see of it, at the same revision as the row (state and outcome are ALIAS
        // columns, the one place they are defined), read with its children at once.
        let view_sql = with_annotations(
            &format!(
                "SELECT *, {SEMANTICS} FROM sessions \
                 WHERE start_time_unix_nano = ? AND session_id = ? AND revision = ? LIMIT 1"
            ),
            Some("session_id = ?"),
            "session_id",
        );
        let view = async {
            self.timed("session view", async {
                Ok(self
                    .client
                    .query(&view_sql)
                    .bind(session.start_time_unix_nano)
                    .bind(session_id)
                    .bind(session.revision)
                    .bind(session_id)
                    .fetch_optional::<SessionView>()
                    .await?)
            })
            .await?
            // Only a newer revision merged over this one in between: reading again finds it.
            .ok_or_else(|| {
                StoreError::Unavailable(format!("session {session_id:?} changed while read"))
            })
        };
        let revision = session.revision;
        let (view, turns, messages, tool_calls, interruptions, issues, answers, citations) = futures::try_join!(
            view,
            self.children("turns", "turn_number", session_id, revision),
            self.children("messages", "message_index", session_id, revision),
            self.children("tool_calls", "call_index", session_id, revision),
            self.children("interruptions", "interruption_index", session_id, revision),
            self.children("session_issues", "issue_index", session_id, revision),
            self.children("answers", "turn_number", session_id, revision),
            self.children("citations", "citation_index", session_id, revision),
        )?;
        let mut detail = SessionDetail {
            view,
            issues,
            session,
            turns,
            messages,
            tool_calls,
            interruptions,
            answers,
            citations,
        };
        self.add_errors_logged(&mut detail).await?;
        Ok(Some(detail))
    }

    /// The `error_logged` issues, one per turn with ERROR-or-worse log records, added to the
    /// session's issues and detected-issue tags. Log records are tied to a session when read,
    /// not by the sessionizer, so this is computed here, where every reader of a session gets it.
    async fn add_errors_logged(&self, detail: &mut SessionDetail) -> Result<(), StoreError> {
        const MAX_ERRORS_READ: u64 = 1000;
        let query = LogQuery {
            min_severity: SEVERITY_ERROR,
            limit: MAX_ERRORS_READ,
            ..LogQuery::default()
        };
        let s = &detail.session;
        let errors = self.session_logs(&s.session_id, s.revision, &query).await?;
        let turns = turn_spans(&detail.turns);
        let issues = errors_logged(errors.iter().map(|line| {
            (
                line.time_unix_nano,
                line.severity_number,
                turn_at(&turns, line.time_unix_nano),
                line.body.as_str(),
            )
        }));
        if issues.is_empty() {
            return Ok(());
        }
        let first_index = detail.issues.iter().map(|i| i.issue_index + 1).max();
        for (n, issue) in issues.iter().enumerate() {
            detail.issues.push(IssueRow {
                session_id: s.session_id.clone(),
                revision: s.revision,
                issue_index: first_index.unwrap_or(0) + n as u32,
                issue: ERROR_LOGGED.to_owned(),
                turn_number: issue.turn_number.unwrap_or(0),
                time: unix_seconds(issue.time_unix_nano),
                time_unix_nano: issue.time_unix_nano,
                detail: issue.detail(),
            });
        }
        detail
            .issues
            .sort_by_key(|i| (i.time_unix_nano, i.issue_index));
        let tags = &mut detail.view.detected_issues;
        if !tags.iter().any(|t| t == ERROR_LOGGED) {
            tags.push(ERROR_LOGGED.to_owned());
        }
        Ok(())
    }

    /// The session's timeline events at `revision`, in order.
    pub async fn timeline_events(
        &self,
        session_id: &str,
        revision: u64,
    ) -> Result<Vec<TimelineEventRow>, StoreError> {
        self.children("timeline_events", "event_index", session_id, revision)
            .await
    }

    /// The first `limit` spans of the session's traces (as of its row `session`) by start
    /// (ties: span id, then trace id), each span once (its latest copy). The limit is in the
    /// query, so a session of any size costs at most `limit` rows here.
    pub async fn waterfall_spans(
        &self,
        session: &SessionRow,
        limit: u64,
    ) -> Result<Vec<WaterfallRow>, StoreError> {
        self.timed("waterfall spans", async {
            Ok(self
                .client
                .query(
                    "SELECT ?fields FROM (\
                         SELECT trace_id, span_id, parent_span_id, name, kind, service_name, \
                             start_time_unix_nano, duration_ns, status_code, status_message, \
                             attributes.key AS attribute_keys, attributes.value AS attribute_values, \
                             events.time_unix_nano AS event_times_unix_nano, events.name AS event_names, \
                             events.attributes AS event_attributes \
                         FROM spans \
                         WHERE trace_id IN (SELECT arrayJoin(trace_ids) FROM sessions \
                             WHERE start_time_unix_nano = ? AND session_id = ? AND revision = ?) \
                         ORDER BY trace_id, span_id, ingested_at_unix_nano DESC \
                         LIMIT 1 BY trace_id, span_id) \
                     ORDER BY start_time_unix_nano, span_id, trace_id \
                     LIMIT ?",
                )
                .bind(session.start_time_unix_nano)
                .bind(&session.session_id)
                .bind(session.revision)
                .bind(limit)
                .fetch_all::<WaterfallRow>()
                .await?)
        })
        .await
    }

    /// The reads by id and the catch-up's SQL with values bound, as ClickHouse receives
    /// them: for checking the SQL on other ClickHouse releases.
    #[doc(hidden)]
    pub fn rendered_read_sql(&self) -> Vec<String> {
        let fields: Vec<String> = <SessionRow as Row>::COLUMN_NAMES
            .iter()
            .map(|c| format!("`{c}`"))
            .collect();
        let render = |query: clickhouse::query::Query| {
            query
                .sql_display()
                .to_string()
                .replace("?fields", &fields.join(", "))
        };
        vec![
            render(self.client.query(&session_sql()).bind("a'b")),
            render(self.client.query(&session_rows_sql(2)).bind("a").bind("b")),
            render(
                self.client
                    .query(&span_partitions_written_sql("system.parts"))
                    .bind(&self.database)
                    .bind("spans")
                    .bind(5u32),
            ),
            render(
                self.client
                    .query(&traces_ingested_sql(2))
                    .bind(20261201u32)
                    .bind(19700101u32)
                    .bind(1u64)
                    .bind(2u64),
            ),
        ]
    }

    async fn children<T>(
        &self,
        table: &str,
        order: &str,
        session_id: &str,
        revision: u64,
    ) -> Result<Vec<T>, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let sql = format!(
            "SELECT ?fields FROM {table} WHERE session_id = ? AND revision = ? ORDER BY {order}"
        );
        self.timed(table, async {
            Ok(self
                .client
                .query(&sql)
                .bind(session_id)
                .bind(revision)
                .fetch_all::<T>()
                .await?)
        })
        .await
    }
}
