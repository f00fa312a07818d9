//! Reads for the API: one session at its current revision, with its children.

use super::{Store, StoreError};
use crate::model::conversation::{
    InterruptionRow, IssueRow, MessageRow, SessionRow, SessionStatus, ToolCallRow, TurnRow,
};

#[derive(Debug, Clone)]
pub struct SessionDetail {
    pub session: SessionRow,
    pub status: SessionStatus,
    pub issues: Vec<IssueRow>,
    pub turns: Vec<TurnRow>,
    pub messages: Vec<MessageRow>,
    pub tool_calls: Vec<ToolCallRow>,
    pub interruptions: Vec<InterruptionRow>,
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
        // State and outcome are ALIAS columns, the one place they are defined; read at the
        // same revision as the row.
        let status = self
            .timed("session status", async {
                Ok(self
                    .client
                    .query("SELECT ?fields FROM sessions WHERE session_id = ? AND revision = ? LIMIT 1")
                    .bind(session_id)
                    .bind(session.revision)
                    .fetch_optional::<SessionStatus>()
                    .await?)
            })
            .await?
            .unwrap_or_default();
        let revision = session.revision;
        // The child tables are independent: read them at once.
        let (turns, messages, tool_calls, interruptions, issues) = futures::try_join!(
            self.children("turns", "turn_number", session_id, revision),
            self.children("messages", "message_index", session_id, revision),
            self.children("tool_calls", "call_index", session_id, revision),
            self.children("interruptions", "interruption_index", session_id, revision),
            self.children("session_issues", "issue_index", session_id, revision),
        )?;
        Ok(Some(SessionDetail {
            status,
            issues,
            session,
            turns,
            messages,
            tool_calls,
            interruptions,
        }))
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
