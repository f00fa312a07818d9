//! Reads for the API: one session at its current revision, with its children, its timeline
//! events, its spans as a waterfall and its latency percentiles.

use clickhouse::Row;
use serde::Deserialize;

use super::list::{with_annotations, SEMANTICS};
use super::logs::LogQuery;
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

/// The per-turn latency stages, each a `<stage>_ms` column of `turns`.
const LATENCY_STAGES: &[&str] = &[
    "voice_to_voice",
    "end_of_utterance",
    "stt",
    "llm_ttft",
    "tts_ttfb",
    "tool",
];

/// One latency stage over a session's turns that measured it.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct StagePercentiles {
    pub stage: String,
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

/// Nearest-rank percentile `q` of a Nullable column over the rows read, NULL for none: the
/// same definition as [`crate::sessionize::percentile`], which fills the session row.
fn nearest_rank(column: &str, q: &str) -> String {
    format!(
        "if(count({column}) = 0, NULL, arraySort(groupArray({column}))[toUInt64(greatest(1, ceil({q} * count({column}))))])"
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
                    // The table, not the view: a WHERE does not reach below FINAL in a view on 18.16.
                    .query(
                        "SELECT ?fields FROM sessions FINAL WHERE session_id = ? AND deleted = 0",
                    )
                    .bind(session_id)
                    .fetch_optional::<SessionRow>()
                    .await?)
            })
            .await?;
        let Some(session) = session else {
            return Ok(None);
        };
        // What readers see of it, at the same revision as the row (state and outcome are ALIAS
        // columns, the one place they are defined).
        let view_sql = with_annotations(
            &format!(
                "SELECT *, {SEMANTICS} FROM sessions WHERE session_id = ? AND revision = ? LIMIT 1"
            ),
            Some("session_id = ?"),
            "session_id",
        );
        let view = self
            .timed("session view", async {
                Ok(self
                    .client
                    .query(&view_sql)
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
            })?;
        let revision = session.revision;
        // The child tables are independent: read them at once.
        let (turns, messages, tool_calls, interruptions, issues, answers, citations) = futures::try_join!(
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

    /// The first `limit` spans of the session's traces at `revision` by start (ties: span id,
    /// then trace id), each span once (its latest copy). The limit is in the query, so a
    /// session of any size costs at most `limit` rows here.
    pub async fn waterfall_spans(
        &self,
        session_id: &str,
        revision: u64,
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
                         WHERE trace_id IN (SELECT arrayJoin(trace_ids) FROM sessions WHERE session_id = ? AND revision = ?) \
                         ORDER BY trace_id, span_id, ingested_at_unix_nano DESC \
                         LIMIT 1 BY trace_id, span_id) \
                     ORDER BY start_time_unix_nano, span_id, trace_id \
                     LIMIT ?",
                )
                .bind(session_id)
                .bind(revision)
                .bind(limit)
                .fetch_all::<WaterfallRow>()
                .await?)
        })
        .await
    }

    /// Percentiles of each of [`LATENCY_STAGES`] over the session's stored turns at
    /// `revision`, in that order.
    pub async fn stage_percentiles(
        &self,
        session_id: &str,
        revision: u64,
    ) -> Result<Vec<StagePercentiles>, StoreError> {
        let selects: Vec<String> = LATENCY_STAGES
            .iter()
            .enumerate()
            .map(|(i, stage)| {
                let column = format!("{stage}_ms");
                format!(
                    "SELECT {i} AS position, '{stage}' AS stage, count({column}) AS count, {} AS p50, {} AS p90, {} AS p95, {} AS max \
                     FROM turns WHERE session_id = ? AND revision = ?",
                    nearest_rank(&column, "0.5"),
                    nearest_rank(&column, "0.9"),
                    nearest_rank(&column, "0.95"),
                    nearest_rank(&column, "1.0"),
                )
            })
            .collect();
        let sql = format!(
            "SELECT ?fields FROM ({}) ORDER BY position",
            selects.join(" UNION ALL ")
        );
        self.timed("stage percentiles", async {
            let mut query = self.client.query(&sql);
            for _ in LATENCY_STAGES {
                query = query.bind(session_id).bind(revision);
            }
            Ok(query.fetch_all::<StagePercentiles>().await?)
        })
        .await
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
