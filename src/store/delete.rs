//! Permanent deletion, for admins: one session, or every conversation of the tenant.

use super::retention::TRANSCRIPT_TABLES;
use super::spans::{in_chunks, placeholders};
use super::{Store, StoreError};
use crate::clock::now_unix_nano;
use crate::model::conversation::SessionRow;

/// Tables keyed by session id that hold a session's rows: its transcript and details (the
/// tables retention drops by month) and its annotations.
fn session_tables() -> impl Iterator<Item = &'static str> {
    TRANSCRIPT_TABLES
        .iter()
        .copied()
        .chain(["session_annotations"])
}

impl Store {
    async fn execute(&self, what: &str, sql: &str, binds: &[&str]) -> Result<(), StoreError> {
        self.timed(what, async {
            let mut query = self.client.query(sql);
            for value in binds {
                query = query.bind(*value);
            }
            Ok(query.execute().await?)
        })
        .await
    }

    /// Removes a session for good; false if there is no such session. A tombstone hides it at
    /// once; deletes (applied by ClickHouse in the background) then remove its spans, so no
    /// rebuild can bring it back, its log records and its rows.
    pub async fn delete_session(&self, session_id: &str) -> Result<bool, StoreError> {
        let _exclusive = self.exclude_writes().await;
        let ids = [session_id.to_owned()];
        let Some(current) = self
            .session_rows(&ids)
            .await?
            .into_iter()
            .find(|r| r.deleted == 0)
        else {
            return Ok(false);
        };
        let tombstone = SessionRow {
            session_id: session_id.to_owned(),
            revision: now_unix_nano().max(current.revision + 1),
            deleted: 1,
            ..SessionRow::default()
        };
        self.write_derived(&[], &[], &[tombstone]).await?;
        for chunk in in_chunks(&current.trace_ids) {
            let binds: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let list = placeholders(chunk.len());
            self.execute(
                "delete spans",
                &format!(
                    "ALTER TABLE {} DELETE WHERE trace_id IN {list}",
                    self.altered_table("spans")
                ),
                &binds,
            )
            .await?;
            self.execute(
                "delete log records",
                &format!(
                    "ALTER TABLE {} DELETE WHERE trace_id IN {list}",
                    self.altered_table("logs")
                ),
                &binds,
            )
            .await?;
            self.execute(
                "delete trace mapping",
                &format!(
                    "ALTER TABLE {} DELETE WHERE trace_id IN {list}",
                    self.altered_table("trace_sessions")
                ),
                &binds,
            )
            .await?;
        }
        // Records that name the session themselves, their trace in no session.
        self.execute(
            "delete log records",
            &format!(
                "ALTER TABLE {} DELETE WHERE session_key = ?",
                self.altered_table("logs")
            ),
            &[session_id],
        )
        .await?;
        for table in session_tables() {
            self.execute(
                "delete session rows",
                &format!(
                    "ALTER TABLE {} DELETE WHERE session_id = ?",
                    self.altered_table(table)
                ),
                &[session_id],
            )
            .await?;
        }
        self.execute(
            "delete session",
            &format!(
                "ALTER TABLE {} DELETE WHERE session_id = ? AND deleted = 0",
                self.altered_table("sessions")
            ),
            &[session_id],
        )
        .await?;
        Ok(true)
    }

    /// Removes every conversation of this tenant: its database is dropped and made anew,
    /// once the span inserts and sessionizer passes in progress are done, and before new ones.
    pub async fn delete_everything(&self) -> Result<(), StoreError> {
        let _exclusive = self.exclude_writes().await;
        let server = self.client.clone().with_database("default");
        let mut sql = format!("DROP DATABASE IF EXISTS `{}`", self.database);
        if let Some(cluster) = &self.cluster {
            sql.push_str(&format!(" ON CLUSTER {cluster}"));
        }
        self.timed("drop database", async {
            Ok(server.query(&sql).execute().await?)
        })
        .await?;
        self.migrate().await.map(|_| ())
    }
}
