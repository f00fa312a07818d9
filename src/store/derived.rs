//! Derived rows: written by the sessionizer at a new revision per pass, children before the
//! session rows that make them current. `sessions` is keyed by start time; see
//! migrations/0008_sessions_by_start.sql for how a session whose start moves stays one row.

use std::collections::{BTreeSet, HashMap};

use clickhouse::Row;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::shared::SessionTraceRow;
use super::spans::{in_chunks, placeholders};
use super::{Store, StoreError};
use crate::model::conversation::{unix_seconds, DerivedSession, SessionRow, TraceSessionRow};

/// trace id -> session id, as last resolved.
pub type TraceSessions = HashMap<String, String>;

#[derive(Row, Deserialize)]
struct TraceSession {
    trace_id: String,
    session_id: String,
}

/// The condition that picks the `sessions` rows of the ids in `ids` (an IN list): their
/// keys, found through `session_starts` (`sessions` is keyed by start).
pub(super) fn by_id(ids: &str) -> String {
    format!(
        "(start_time_unix_nano, session_id) IN \
         (SELECT start_time_unix_nano, session_id FROM session_starts WHERE session_id IN {ids})"
    )
}

/// The latest row at each key of the sessions in an IN list of `n` ids.
pub(super) fn session_rows_sql(n: usize) -> String {
    format!(
        "SELECT ?fields FROM sessions FINAL WHERE {}",
        by_id(&placeholders(n))
    )
}

/// A start time a session's rows have been written at (a key of `sessions`).
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct SessionStart {
    session_id: String,
    start_time_unix_nano: u64,
}

/// Per session, the starts its rows have been written at.
type HeldStarts = HashMap<String, BTreeSet<u64>>;

/// The `sessions` rows of a pass as they are written: each live row at its start, and a
/// deleted row at the pass's revision at every other start the session held, so that no
/// older live row outlives it there. A deletion's tombstone goes to every start held (as
/// given when none is known: it then hides nothing and costs nothing).
fn placed_rows(rows: &[&SessionRow], held: &HeldStarts) -> Vec<SessionRow> {
    let mut out = Vec::new();
    for row in rows {
        let starts = held.get(&row.session_id);
        let live = row.deleted == 0;
        if live || starts.is_none_or(BTreeSet::is_empty) {
            out.push((*row).clone());
        }
        for &start in starts.into_iter().flatten() {
            if live && start == row.start_time_unix_nano {
                continue;
            }
            out.push(SessionRow {
                session_id: row.session_id.clone(),
                revision: row.revision,
                deleted: 1,
                start_time: unix_seconds(start),
                start_time_unix_nano: start,
                updated_at: row.updated_at,
                ..SessionRow::default()
            });
        }
    }
    out
}

/// One child table's rows of every session of a pass.
fn rows_of<'a, T>(
    sessions: &'a [DerivedSession],
    rows: impl Fn(&'a DerivedSession) -> &'a Vec<T>,
) -> Vec<&'a T> {
    sessions.iter().flat_map(rows).collect()
}

/// The starts of live rows not recorded yet.
fn new_starts(rows: &[&SessionRow], held: &HeldStarts) -> Vec<SessionStart> {
    rows.iter()
        .filter(|row| row.deleted == 0)
        .filter(|row| {
            !held
                .get(&row.session_id)
                .is_some_and(|starts| starts.contains(&row.start_time_unix_nano))
        })
        .map(|row| SessionStart {
            session_id: row.session_id.clone(),
            start_time_unix_nano: row.start_time_unix_nano,
        })
        .collect()
}

/// Each session's current row among the latest rows at each of its starts: the highest
/// revision, the live row when a deleted one retiring its old start shares that revision.
fn current_rows(rows: Vec<SessionRow>) -> Vec<SessionRow> {
    let mut current: HashMap<String, SessionRow> = HashMap::new();
    for row in rows {
        let rank = |r: &SessionRow| (r.revision, r.deleted == 0);
        match current.get(&row.session_id) {
            Some(best) if rank(best) >= rank(&row) => {}
            _ => {
                current.insert(row.session_id.clone(), row);
            }
        }
    }
    current.into_values().collect()
}

#[derive(Row, Serialize, Deserialize)]
struct Progress {
    id: u8,
    ingested_at_unix_nano: u64,
}

impl Store {
    /// Adds the insert of `rows` into `table` to `inserts`, unless there are none.
    fn queue_insert<'a, T>(
        &'a self,
        inserts: &mut Vec<BoxFuture<'a, Result<(), StoreError>>>,
        table: &'a str,
        rows: Vec<&'a T>,
    ) where
        T: clickhouse::RowOwned + clickhouse::RowWrite + Sync,
    {
        if !rows.is_empty() {
            inserts.push(Box::pin(self.insert_all(table, rows.into_iter())));
        }
    }

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
            let sql = session_rows_sql(chunk.len());
            let rows = self
                .timed("session rows", async {
                    let mut query = self.client.query(&sql);
                    for id in chunk {
                        query = query.bind(id);
                    }
                    Ok(query.fetch_all::<SessionRow>().await?)
                })
                .await?;
            out.extend(current_rows(rows));
        }
        Ok(out)
    }

    /// The starts these sessions' rows have been written at.
    async fn held_starts(&self, session_ids: &[&str]) -> Result<HeldStarts, StoreError> {
        let mut held = HeldStarts::new();
        let ids: Vec<String> = session_ids
            .iter()
            .map(|id| (*id).to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in in_chunks(&ids) {
            let sql = format!(
                "SELECT ?fields FROM session_starts WHERE session_id IN {}",
                placeholders(chunk.len())
            );
            let rows = self
                .timed("session starts", async {
                    let mut query = self.client.query(&sql);
                    for id in chunk {
                        query = query.bind(id);
                    }
                    Ok(query.fetch_all::<SessionStart>().await?)
                })
                .await?;
            for row in rows {
                held.entry(row.session_id)
                    .or_default()
                    .insert(row.start_time_unix_nano);
            }
        }
        Ok(held)
    }

    /// Writes one sessionizer pass: the new starts of its sessions and every child table (at
    /// once), then the session rows, then the trace rows (where each trace belongs and how
    /// far it was derived; `session_traces` before `trace_sessions`, which decides). Trace rows go last
    /// so that a pass that fails part-way is redone whole: until they are recorded, the next
    /// pass still sees the old session of each moved trace, and the trace as not derived.
    /// Starts go before the session rows so that whatever start a live row is written at, a
    /// later pass retires it.
    pub async fn write_derived(
        &self,
        traces: &[TraceSessionRow],
        sessions: &[DerivedSession],
        tombstones: &[SessionRow],
    ) -> Result<(), StoreError> {
        let session_rows: Vec<&SessionRow> = sessions
            .iter()
            .map(|s| &s.session)
            .chain(tombstones.iter())
            .collect();
        let ids: Vec<&str> = session_rows.iter().map(|r| r.session_id.as_str()).collect();
        let held = self.held_starts(&ids).await?;
        let starts = new_starts(&session_rows, &held);
        // Nothing reads these rows before the session rows name their revision: inserted at
        // once, a pass waits for one round trip instead of ten.
        let mut inserts: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        self.queue_insert(&mut inserts, "session_starts", starts.iter().collect());
        self.queue_insert(&mut inserts, "turns", rows_of(sessions, |s| &s.turns));
        self.queue_insert(&mut inserts, "messages", rows_of(sessions, |s| &s.messages));
        self.queue_insert(
            &mut inserts,
            "tool_calls",
            rows_of(sessions, |s| &s.tool_calls),
        );
        self.queue_insert(
            &mut inserts,
            "interruptions",
            rows_of(sessions, |s| &s.interruptions),
        );
        self.queue_insert(
            &mut inserts,
            "session_issues",
            rows_of(sessions, |s| &s.issues),
        );
        self.queue_insert(
            &mut inserts,
            "timeline_events",
            rows_of(sessions, |s| &s.timeline_events),
        );
        self.queue_insert(&mut inserts, "answers", rows_of(sessions, |s| &s.answers));
        self.queue_insert(
            &mut inserts,
            "citations",
            rows_of(sessions, |s| &s.citations),
        );
        self.queue_insert(
            &mut inserts,
            "session_contacts",
            sessions.iter().map(|s| &s.contact).collect(),
        );
        futures::future::try_join_all(inserts).await?;
        let placed = placed_rows(&session_rows, &held);
        if !placed.is_empty() {
            self.insert_all("sessions", placed.iter()).await?;
        }
        if !traces.is_empty() {
            let candidates: Vec<SessionTraceRow> = traces
                .iter()
                .map(|t| SessionTraceRow {
                    session_id: t.session_id.clone(),
                    trace_id: t.trace_id.clone(),
                    revision: t.revision,
                })
                .collect();
            self.insert_all("session_traces", candidates.iter()).await?;
            self.insert_all("trace_sessions", traces.iter()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, revision: u64, deleted: u8, start: u64) -> SessionRow {
        SessionRow {
            session_id: id.into(),
            revision,
            deleted,
            start_time: unix_seconds(start),
            start_time_unix_nano: start,
            ..SessionRow::default()
        }
    }

    fn held(id: &str, starts: &[u64]) -> HeldStarts {
        HashMap::from([(id.to_owned(), starts.iter().copied().collect())])
    }

    fn keys(rows: &[SessionRow]) -> Vec<(u64, u8, u64)> {
        rows.iter()
            .map(|r| (r.start_time_unix_nano, r.deleted, r.revision))
            .collect()
    }

    #[test]
    fn a_moved_start_retires_every_other_start() {
        let live = row("s", 9, 0, 5_000_000_000);
        let placed = placed_rows(&[&live], &held("s", &[7_000_000_000, 8_000_000_000]));
        assert_eq!(
            keys(&placed),
            [
                (5_000_000_000, 0, 9),
                (7_000_000_000, 1, 9),
                (8_000_000_000, 1, 9)
            ]
        );
        assert_eq!(placed[1].start_time, 7);
        assert_eq!(
            new_starts(&[&live], &held("s", &[7_000_000_000])),
            [SessionStart {
                session_id: "s".into(),
                start_time_unix_nano: 5_000_000_000
            }]
        );
    }

    #[test]
    fn an_unmoved_start_writes_one_row_and_no_start() {
        let live = row("s", 9, 0, 5);
        assert_eq!(keys(&placed_rows(&[&live], &held("s", &[5]))), [(5, 0, 9)]);
        assert!(new_starts(&[&live], &held("s", &[5])).is_empty());
    }

    #[test]
    fn a_tombstone_goes_to_every_start_held() {
        let tombstone = row("s", 9, 1, 0);
        assert_eq!(
            keys(&placed_rows(&[&tombstone], &held("s", &[5, 6]))),
            [(5, 1, 9), (6, 1, 9)]
        );
        assert_eq!(
            keys(&placed_rows(&[&tombstone], &HeldStarts::new())),
            [(0, 1, 9)]
        );
        assert!(new_starts(&[&tombstone], &HeldStarts::new()).is_empty());
    }

    #[test]
    fn the_current_row_is_the_latest_live_one() {
        let rows = vec![
            row("s", 8, 0, 7),
            row("s", 9, 1, 7),
            row("s", 9, 0, 5),
            row("t", 3, 0, 1),
            row("t", 4, 1, 1),
        ];
        let mut current = current_rows(rows);
        current.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        assert_eq!(keys(&current), [(5, 0, 9), (1, 1, 4)]);
    }
}
