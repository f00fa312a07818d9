//! What a sessionizer reads to work beside other convolog instances on one database: what
//! ClickHouse holds of each trace (to tell whether its memory is complete), the current
//! revision and traces of each session (to write above what others wrote), and how far each
//! trace was derived (to find spans whose storing instance died before deriving them).

use std::collections::{BTreeSet, HashMap};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::derived::by_id;
use super::spans::{in_chunks, placeholders};
use super::{Store, StoreError};

/// A summary of the stored spans of one trace, each span counted once in its latest copy.
/// Memory that holds a subset of the stored spans holds all of them exactly when the two
/// summaries are equal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub spans: u64,
    /// The latest copies' stamps, summed (wrapping).
    pub stamps: u64,
    pub newest: u64,
}

#[derive(Row, Deserialize)]
struct TraceFingerprint {
    trace_id: String,
    spans: u64,
    stamps: u64,
    newest: u64,
}

/// The stored state of one session, as the pass that writes it next must see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Of its current row; 0 when it has none.
    pub revision: u64,
    /// Its current row is not deleted.
    pub live: bool,
    /// The traces whose latest `trace_sessions` row names it.
    pub traces: BTreeSet<String>,
}

#[derive(Row, Deserialize)]
struct SessionRevision {
    session_id: String,
    revision: u64,
    deleted: u8,
}

#[derive(Row, Deserialize)]
struct TraceMapping {
    trace_id: String,
    session_id: String,
}

/// A row of `session_traces`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct SessionTraceRow {
    pub session_id: String,
    pub trace_id: String,
    pub revision: u64,
}

#[derive(Row, Deserialize)]
struct DerivedThroughRow {
    trace_id: String,
    derived_through: u64,
    derived_spans: u64,
    mapped_session: String,
    mapped_revision: u64,
}

/// How far a trace was derived: the newest span stamp any pass derived it from; and of the
/// latest pass that wrote it, how many of its spans it took, the session it put it in and
/// that pass's revision (a pass writes a session and all of its traces at one revision).
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedThrough {
    pub newest: u64,
    pub spans: u64,
    pub session: String,
    pub revision: u64,
}

fn fingerprints_sql(n: usize) -> String {
    format!(
        "SELECT trace_id, count() AS spans, sum(at) AS stamps, max(at) AS newest FROM \
         (SELECT trace_id, span_id, max(ingested_at_unix_nano) AS at FROM spans \
          WHERE trace_id IN {} GROUP BY trace_id, span_id) GROUP BY trace_id",
        placeholders(n)
    )
}

fn session_revisions_sql(n: usize) -> String {
    format!(
        "SELECT session_id, max(revision) AS current_revision, argMax(deleted, revision) AS current_deleted \
         FROM sessions WHERE {} GROUP BY session_id",
        by_id(&placeholders(n))
    )
}

fn session_traces_sql(n: usize) -> String {
    format!(
        "SELECT trace_id, argMax(session_id, revision) AS session_id FROM trace_sessions \
         WHERE trace_id IN (SELECT trace_id FROM session_traces WHERE session_id IN {}) \
         GROUP BY trace_id",
        placeholders(n)
    )
}

fn derived_through_sql(n: usize) -> String {
    format!(
        "SELECT trace_id, max(derived_through) AS derived_through, \
         argMax(derived_spans, revision) AS derived_spans, \
         argMax(session_id, revision) AS mapped_session, max(revision) AS mapped_revision \
         FROM trace_sessions WHERE trace_id IN {} GROUP BY trace_id",
        placeholders(n)
    )
}

impl Store {
    /// Runs `sql` (built for a chunk's length) once per chunk of `ids`, each id bound once.
    async fn by_chunks<T>(
        &self,
        what: &str,
        ids: &[String],
        sql: impl Fn(usize) -> String,
    ) -> Result<Vec<T>, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let mut out = Vec::new();
        for chunk in in_chunks(ids) {
            let sql = sql(chunk.len());
            let rows = self
                .timed(what, async {
                    let mut query = self.client.query(&sql);
                    for id in chunk {
                        query = query.bind(id);
                    }
                    Ok(query.fetch_all::<T>().await?)
                })
                .await?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// What ClickHouse holds of each of these traces; a trace with no stored span is absent.
    pub async fn trace_fingerprints(
        &self,
        trace_ids: &[String],
    ) -> Result<HashMap<String, Fingerprint>, StoreError> {
        let rows: Vec<TraceFingerprint> = self
            .by_chunks("trace fingerprints", trace_ids, fingerprints_sql)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let print = Fingerprint {
                    spans: r.spans,
                    stamps: r.stamps,
                    newest: r.newest,
                };
                (r.trace_id, print)
            })
            .collect())
    }

    /// The stored state of each of these sessions (the default for one never written).
    pub async fn session_states(
        &self,
        session_ids: &[String],
    ) -> Result<HashMap<String, SessionState>, StoreError> {
        let mut states: HashMap<String, SessionState> = session_ids
            .iter()
            .map(|id| (id.clone(), SessionState::default()))
            .collect();
        for row in self.session_revisions(session_ids).await? {
            if let Some(state) = states.get_mut(&row.session_id) {
                state.revision = row.revision;
                state.live = row.deleted == 0;
            }
        }
        let mappings: Vec<TraceMapping> = self
            .by_chunks("session traces", session_ids, session_traces_sql)
            .await?;
        for row in mappings {
            if let Some(state) = states.get_mut(&row.session_id) {
                state.traces.insert(row.trace_id);
            }
        }
        Ok(states)
    }

    /// The current revision of each of these sessions that was ever written.
    pub async fn current_revisions(
        &self,
        session_ids: &[String],
    ) -> Result<HashMap<String, u64>, StoreError> {
        let rows = self.session_revisions(session_ids).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.session_id, r.revision))
            .collect())
    }

    async fn session_revisions(
        &self,
        session_ids: &[String],
    ) -> Result<Vec<SessionRevision>, StoreError> {
        self.by_chunks("session revisions", session_ids, session_revisions_sql)
            .await
    }

    /// Of these traces, how far each was derived; a trace no pass derived is absent.
    pub async fn derived_through(
        &self,
        trace_ids: &[String],
    ) -> Result<HashMap<String, DerivedThrough>, StoreError> {
        let rows: Vec<DerivedThroughRow> = self
            .by_chunks("derived through", trace_ids, derived_through_sql)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let through = DerivedThrough {
                    newest: r.derived_through,
                    spans: r.derived_spans,
                    session: r.mapped_session,
                    revision: r.mapped_revision,
                };
                (r.trace_id, through)
            })
            .collect())
    }

    /// The reads above with values bound, as ClickHouse receives them: for checking the SQL
    /// on other ClickHouse releases.
    #[doc(hidden)]
    pub fn rendered_shared_sql(&self) -> Vec<String> {
        let render = |sql: String| {
            self.client
                .query(&sql)
                .bind("a")
                .bind("b")
                .sql_display()
                .to_string()
        };
        [
            fingerprints_sql(2),
            session_revisions_sql(2),
            session_traces_sql(2),
            derived_through_sql(2),
        ]
        .into_iter()
        .map(render)
        .collect()
    }
}
