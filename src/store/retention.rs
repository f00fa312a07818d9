//! Retention by dropping whole partitions: cheap, immediate, no mutation. Spans are
//! partitioned by day, transcript tables by month; a partition goes once all of it is older
//! than its window. Session summaries (an unpartitioned, one-row-per-session table) are
//! removed with a lightweight delete of the rows past their own window.

use super::{Store, StoreError};

/// Tables holding a session's transcript and details, partitioned by month.
pub const TRANSCRIPT_TABLES: &[&str] = &[
    "turns",
    "messages",
    "tool_calls",
    "interruptions",
    "session_issues",
    "timeline_events",
    "answers",
    "citations",
    "session_contacts",
];

impl Store {
    async fn partitions(&self, table: &str) -> Result<Vec<String>, StoreError> {
        let (parts, table) = self.parts_of(table);
        let sql = format!(
            "SELECT DISTINCT partition FROM {parts} WHERE database = ? AND table = ? AND active"
        );
        self.timed("list partitions", async {
            Ok(self
                .client
                .query(&sql)
                .bind(&self.database)
                .bind(&table)
                .fetch_all::<String>()
                .await?)
        })
        .await
    }

    /// The day (YYYYMMDD) and month (YYYYMM) partition keys of an instant, in the server's
    /// time zone, which is the one the partition expressions use.
    pub async fn partition_keys_at(&self, unix_seconds: u32) -> Result<(u32, u32), StoreError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Keys {
            day: u32,
            month: u32,
        }
        let keys = self
            .timed("partition keys", async {
                Ok(self
                    .client
                    .query(
                        "SELECT toYYYYMMDD(toDateTime(?)) AS day, toYYYYMM(toDateTime(?)) AS month",
                    )
                    .bind(unix_seconds)
                    .bind(unix_seconds)
                    .fetch_one::<Keys>()
                    .await?)
            })
            .await?;
        Ok((keys.day, keys.month))
    }

    /// Drops the partitions of `table` whose key (YYYYMMDD or YYYYMM) is below `cutoff`.
    pub async fn drop_partitions_before(
        &self,
        table: &str,
        cutoff: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut dropped = Vec::new();
        for partition in self.partitions(table).await? {
            // Partition keys here are numbers; anything else is not ours to drop.
            let Ok(key) = partition.parse::<u32>() else {
                continue;
            };
            if key >= cutoff {
                continue;
            }
            let sql = format!(
                "ALTER TABLE {} DROP PARTITION {key}",
                self.altered_table(table)
            );
            self.note_deletion();
            self.timed("drop partition", async {
                Ok(self.client.query(&sql).execute().await?)
            })
            .await?;
            tracing::info!(table, partition = key, "retention dropped a partition");
            dropped.push(format!("{table}/{key}"));
        }
        Ok(dropped)
    }

    /// Removes session summaries that ended before `cutoff_unix_seconds`; true if any did.
    /// A delete rewrites the table's parts, so it only runs when something is due.
    /// Tombstones stay: they hide older revisions of a session (a stand-in whose trace
    /// moved, a deleted session) that may be newer than the cutoff.
    pub async fn delete_sessions_before(
        &self,
        cutoff_unix_seconds: u32,
    ) -> Result<bool, StoreError> {
        let cutoff = u64::from(cutoff_unix_seconds) * 1_000_000_000;
        let due = self
            .timed("count old sessions", async {
                Ok(self
                    .client
                    .query(
                        "SELECT count() FROM sessions WHERE deleted = 0 AND end_time_unix_nano < ?",
                    )
                    .bind(cutoff)
                    .fetch_one::<u64>()
                    .await?)
            })
            .await?;
        if due == 0 {
            return Ok(false);
        }
        self.note_deletion();
        let sql = format!(
            "ALTER TABLE {} DELETE WHERE deleted = 0 AND end_time_unix_nano < ?",
            self.altered_table("sessions")
        );
        self.timed("delete old sessions", async {
            Ok(self.client.query(&sql).bind(cutoff).execute().await?)
        })
        .await?;
        Ok(true)
    }
}
