//! Derived rows: written by the sessionizer at a new revision per pass, children before the
//! session rows that make them current.

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::spans::{in_chunks, placeholders};
use super::{Store, StoreError};
use crate::model::conversation::{DerivedSession, SessionRow, TraceSessionRow};

/// trace id -> session id, as last resolved.
pub type TraceSessions = HashMap<String, String>;

#[derive(Row, Deserialize)]
struct TraceSession {
    trace_id: String,
    session_id: String,
}

#[derive(Row, Serialize, Deserialize)]
struct Progress {
    id: u8,
    ingested_at_unix_nano: u64,
}

impl Store {
    pub(super) async fn insert_all<'r, T>(
        &self,
        table: &str,
        rows: impl Iterator<Item = &'r T> + Send,
    ) -> Result<(), StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowWrite + Sync,
    {
        self.timed(table, async {
            let mut insert = self.client.insert::<T>(table).await?;
            for row in rows {
                insert.write(row).await?;
            }
            insert.end().await?;
            Ok(())
        })
        .await
    }

    pub async fn trace_sessions(&self, trace_ids: &[String]) -> Result<TraceSessions, StoreError> {
        let mut out = TraceSessions::new();
        for chunk in in_chunks(trace_ids) {
            let sql = format!(
                "SELECT trace_id, argMax(session_id, revision) AS session_id FROM trace_sessions WHERE trace_id IN {} GROUP BY trace_id",
                placeholders(chunk.len())
            );
            let rows: Vec<TraceSession> = self
                .timed("trace sessions", async {
                    let mut query = self.client.query(&sql);
                    for id in chunk {
                        query = query.bind(id);
                    }
                    Ok(query.fetch_all::<TraceSession>().await?)
                })
                .await?;
            out.extend(rows.into_iter().map(|r| (r.trace_id, r.session_id)));
        }
        Ok(out)
    }

    /// Current rows of these sessions, deleted ones included.
    pub async fn session_rows(
        &self,
        session_ids: &[String],
    ) -> Result<Vec<SessionRow>, StoreError> {
        let mut out = Vec::new();
        for chunk in in_chunks(session_ids) {
            let sql = format!(
                "SELECT ?fields FROM sessions FINAL WHERE session_id IN {}",
                placeholders(chunk.len())
            );
            let rows = self
                .timed("session rows", async {
                    let mut query = self.client.query(&sql);
                    for id in chunk {
                        query = query.bind(id);
                    }
                    Ok(query.fetch_all::<SessionRow>().await?)
                })
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Writes one sessionizer pass: every child table, then the session rows, then the trace
    /// moves. Moves go last so that a pass that fails part-way is redone whole: until the
    /// moves are recorded, the next pass still sees the old session of each moved trace.
    pub async fn write_derived(
        &self,
        moves: &[TraceSessionRow],
        sessions: &[DerivedSession],
        tombstones: &[SessionRow],
    ) -> Result<(), StoreError> {
        let turns: Vec<_> = sessions.iter().flat_map(|s| s.turns.iter()).collect();
        if !turns.is_empty() {
            self.insert_all("turns", turns.into_iter()).await?;
        }
        let messages: Vec<_> = sessions.iter().flat_map(|s| s.messages.iter()).collect();
        if !messages.is_empty() {
            self.insert_all("messages", messages.into_iter()).await?;
        }
        let calls: Vec<_> = sessions.iter().flat_map(|s| s.tool_calls.iter()).collect();
        if !calls.is_empty() {
            self.insert_all("tool_calls", calls.into_iter()).await?;
        }
        let interruptions: Vec<_> = sessions
            .iter()
            .flat_map(|s| s.interruptions.iter())
            .collect();
        if !interruptions.is_empty() {
            self.insert_all("interruptions", interruptions.into_iter())
                .await?;
        }
        let issues: Vec<_> = sessions.iter().flat_map(|s| s.issues.iter()).collect();
        if !issues.is_empty() {
            self.insert_all("session_issues", issues.into_iter())
                .await?;
        }
        let events: Vec<_> = sessions
            .iter()
            .flat_map(|s| s.timeline_events.iter())
            .collect();
        if !events.is_empty() {
            self.insert_all("timeline_events", events.into_iter())
                .await?;
        }
        let answers: Vec<_> = sessions.iter().flat_map(|s| s.answers.iter()).collect();
        if !answers.is_empty() {
            self.insert_all("answers", answers.into_iter()).await?;
        }
        let citations: Vec<_> = sessions.iter().flat_map(|s| s.citations.iter()).collect();
        if !citations.is_empty() {
            self.insert_all("citations", citations.into_iter()).await?;
        }
        if !sessions.is_empty() {
            self.insert_all("session_contacts", sessions.iter().map(|s| &s.contact))
                .await?;
        }
        let session_rows: Vec<&SessionRow> = sessions
            .iter()
            .map(|s| &s.session)
            .chain(tombstones.iter())
            .collect();
        if !session_rows.is_empty() {
            self.insert_all("sessions", session_rows.into_iter())
                .await?;
        }
        if !moves.is_empty() {
            self.insert_all("trace_sessions", moves.iter()).await?;
        }
        Ok(())
    }

    /// Spans ingested up to this instant are reflected in the derived tables.
    pub async fn sessionizer_progress(&self) -> Result<u64, StoreError> {
        self.timed("read progress", async {
            Ok(self
                .client
                .query("SELECT max(ingested_at_unix_nano) FROM sessionizer_progress")
                .fetch_one::<u64>()
                .await?)
        })
        .await
    }

    pub async fn record_sessionizer_progress(
        &self,
        ingested_at_unix_nano: u64,
    ) -> Result<(), StoreError> {
        let row = Progress {
            id: 0,
            ingested_at_unix_nano,
        };
        self.insert_all("sessionizer_progress", std::iter::once(&row))
            .await
    }
}
