//! Versioned schema files, applied in order and recorded in `schema_migrations`. Every
//! statement is idempotent (IF NOT EXISTS, or an ADD COLUMN skipped when the column exists),
//! so a half-applied migration is simply re-run. On a cluster (`clickhouse.cluster`) each
//! statement is first rewritten by [`ClusterSchema`]. Of several processes starting at once
//! on one database, one applies what is missing and the others wait for it
//! ([`MIGRATION_LOCK`]): a migration that copies a table must not run twice at once.

use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use super::{exception_code, ClusterSchema, Store, StoreError};

/// A table only one `CREATE` can make: the process that makes it applies the pending
/// migrations and drops it. On a cluster the `CREATE` runs ON CLUSTER: the servers execute
/// such statements in one order, so all agree on who made it.
const MIGRATION_LOCK: &str = "schema_migrations_lock";

/// A lock this old was left by a process that died while migrating, and is taken over.
const LOCK_ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// ClickHouse's TABLE_ALREADY_EXISTS.
const TABLE_ALREADY_EXISTS: u32 = 57;

/// The migration lock as the server asked shows it.
#[derive(Row, Deserialize)]
struct LockRow {
    age_seconds: u64,
    create_table_query: String,
}

pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "spans", include_str!("../../migrations/0001_spans.sql")),
    (
        2,
        "sessions",
        include_str!("../../migrations/0002_sessions.sql"),
    ),
    (
        3,
        "session semantics",
        include_str!("../../migrations/0003_session_semantics.sql"),
    ),
    (
        4,
        "annotations",
        include_str!("../../migrations/0004_annotations.sql"),
    ),
    (
        5,
        "timeline events",
        include_str!("../../migrations/0005_timeline_events.sql"),
    ),
    (6, "logs", include_str!("../../migrations/0006_logs.sql")),
    (
        7,
        "grounding",
        include_str!("../../migrations/0007_grounding.sql"),
    ),
    (
        8,
        "sessions by start",
        include_str!("../../migrations/0008_sessions_by_start.sql"),
    ),
    (
        10,
        "sessions in fine granules",
        include_str!("../../migrations/0010_sessions_fine_granules.sql"),
    ),
    (
        12,
        "shared derivation",
        include_str!("../../migrations/0012_shared_derivation.sql"),
    ),
];

/// The table and column of an `ALTER TABLE t [ON CLUSTER c] ADD COLUMN col ...` statement.
/// ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`, so the runner checks before adding.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let mut words: Vec<&str> = statement.split_whitespace().take(9).collect();
    let keyword = |words: &[&str], i: usize, k: &str| {
        words
            .get(i)
            .is_some_and(|w: &&str| w.eq_ignore_ascii_case(k))
    };
    if keyword(&words, 3, "ON") && keyword(&words, 4, "CLUSTER") {
        words.drain(3..6);
    }
    let is_add = keyword(&words, 0, "ALTER")
        && keyword(&words, 1, "TABLE")
        && keyword(&words, 3, "ADD")
        && keyword(&words, 4, "COLUMN");
    // A table named with its database: `db`.t.
    let table = words.get(2)?.rsplit('.').next()?;
    is_add.then(|| (table, words[5]))
}

/// The statements of a migration file: `--` comment lines dropped, split on `;`.
pub fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Consecutive `ALTER TABLE t ... ADD COLUMN` statements of one table as one ALTER of
/// several ADD COLUMNs, in the same order.
fn alters_merged(statements: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut previous_table: Option<String> = None;
    for statement in statements {
        let added = added_column(&statement).map(|(table, _)| table.to_owned());
        let clause_at = find_add_column(&statement);
        match (&added, &previous_table, clause_at, out.last_mut()) {
            (Some(table), Some(previous), Some(at), Some(last)) if table == previous => {
                last.push_str(", ");
                last.push_str(&statement[at..]);
            }
            _ => out.push(statement),
        }
        previous_table = added;
    }
    out
}

/// Where the `ADD COLUMN` clause of an ALTER starts.
fn find_add_column(statement: &str) -> Option<usize> {
    let upper = statement.to_ascii_uppercase();
    let at = upper.find(" ADD ")? + 1;
    upper[at + 3..]
        .trim_start()
        .starts_with("COLUMN")
        .then_some(at)
}

/// The statements of a migration file, rewritten for a cluster.
fn on_cluster(schema: &mut ClusterSchema, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for statement in statements(sql) {
        let rewritten = schema
            .rewrite(&statement)
            .map_err(|err| StoreError::Rejected(err.to_string()))?;
        out.extend(rewritten);
    }
    out.extend(schema.finish());
    Ok(out)
}

impl Store {
    async fn column_exists(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        let sql =
            "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?";
        self.timed("read system.columns", async {
            let count = self
                .client
                .query(sql)
                .bind(&self.database)
                .bind(table)
                .bind(column)
                .fetch_one::<u64>()
                .await?;
            Ok(count > 0)
        })
        .await
    }

    /// The server's version string, e.g. `18.16.1`. Works before the database exists.
    pub async fn server_version(&self) -> Result<String, StoreError> {
        let server = self.client.clone().with_database("default");
        self.timed("read the server version", async {
            Ok(server
                .query("SELECT version()")
                .fetch_one::<String>()
                .await?)
        })
        .await
    }

    /// The schema versions recorded in the database; None when it has no schema yet (no
    /// database or no `schema_migrations`). Changes nothing.
    pub async fn applied_migrations(&self) -> Result<Option<Vec<u32>>, StoreError> {
        let server = self.client.clone().with_database("default");
        let tables = self
            .timed("read system.tables", async {
                Ok(server
                    .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'")
                    .bind(&self.database)
                    .fetch_one::<u64>()
                    .await?)
            })
            .await?;
        if tables == 0 {
            return Ok(None);
        }
        Ok(Some(self.recorded_versions().await?))
    }

    async fn recorded_versions(&self) -> Result<Vec<u32>, StoreError> {
        if self.cluster.is_some() {
            // What another server's process recorded, before reading it here.
            let sync = format!("SYSTEM SYNC REPLICA `{}`.schema_migrations", self.database);
            self.timed("sync schema_migrations", async {
                Ok(self.client.query(&sync).execute().await?)
            })
            .await?;
        }
        self.timed("read schema_migrations", async {
            Ok(self
                .client
                .query("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all::<u32>()
                .await?)
        })
        .await
    }

    /// Creates the database if needed and applies what is missing, or waits while another
    /// process does. Returns the versions this call applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let (create_database, create_schema_migrations) = match &self.cluster_schema() {
            Some(schema) => (schema.create_database(), schema.create_schema_migrations()),
            None => (
                format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database),
                "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version".to_owned(),
            ),
        };
        // The database may not exist yet, so this one statement runs without it.
        let server = self.client.clone().with_database("default");
        self.timed("create database", async {
            Ok(server.query(&create_database).execute().await?)
        })
        .await?;
        self.timed("create schema_migrations", async {
            Ok(self
                .client
                .query(&create_schema_migrations)
                .execute()
                .await?)
        })
        .await?;
        let mut waited = Duration::ZERO;
        loop {
            let applied = self.recorded_versions().await?;
            if MIGRATIONS
                .iter()
                .all(|(version, ..)| applied.contains(version))
            {
                return Ok(Vec::new());
            }
            if self.lock_migrations().await? {
                let result = match self.recorded_versions().await {
                    Ok(applied) => self.apply_missing(&applied).await,
                    Err(err) => Err(err),
                };
                // Left behind, the lock would hold every other process back for an hour.
                let mut attempts = 1;
                while let Err(err) = self.unlock_migrations().await {
                    if attempts == 30 {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "dropping the migration lock failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    attempts += 1;
                }
                return result;
            }
            let age = self
                .migration_lock()
                .await?
                .map(|lock| Duration::from_secs(lock.age_seconds));
            if age.is_some_and(|age| age > LOCK_ABANDONED_AFTER) {
                tracing::warn!(
                    table = MIGRATION_LOCK,
                    "the migration lock is over an hour old: its process died while migrating; taking it over"
                );
                self.unlock_migrations().await?;
                continue;
            }
            if waited.as_secs().is_multiple_of(30) {
                tracing::info!(
                    table = MIGRATION_LOCK,
                    held_for = ?age,
                    "another process is applying the schema; waiting for it"
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            waited += Duration::from_secs(1);
        }
    }

    fn cluster_schema(&self) -> Option<ClusterSchema> {
        self.cluster
            .as_deref()
            .map(|cluster| ClusterSchema::new(cluster, &self.database))
    }

    /// ` ON CLUSTER name` on a cluster, else nothing.
    fn on_cluster_clause(&self) -> String {
        self.cluster
            .as_deref()
            .map(|cluster| format!(" ON CLUSTER {cluster}"))
            .unwrap_or_default()
    }

    /// Whether this process holds the lock now (false: another one does).
    async fn lock_migrations(&self) -> Result<bool, StoreError> {
        let sql = format!(
            "CREATE TABLE `{}`.{MIGRATION_LOCK}{} (holder String DEFAULT '{}') ENGINE = Memory",
            self.database,
            self.on_cluster_clause(),
            self.lock_holder
        );
        let created = self
            .timed("lock migrations", async {
                match self.client.query(&sql).execute().await {
                    Ok(()) => Ok(true),
                    Err(clickhouse::error::Error::BadResponse(text))
                        if exception_code(&text) == Some(TABLE_ALREADY_EXISTS) =>
                    {
                        Ok(false)
                    }
                    Err(err) => Err(err.into()),
                }
            })
            .await?;
        if created {
            return Ok(true);
        }
        let lock = self.migration_lock().await?;
        Ok(lock.is_some_and(|lock| lock.create_table_query.contains(&self.lock_holder)))
    }

    async fn unlock_migrations(&self) -> Result<(), StoreError> {
        let sql = format!(
            "DROP TABLE IF EXISTS `{}`.{MIGRATION_LOCK}{}",
            self.database,
            self.on_cluster_clause()
        );
        self.timed("unlock migrations", async {
            Ok(self.client.query(&sql).execute().await?)
        })
        .await
    }

    /// The lock, None when there is none (on the server asked).
    async fn migration_lock(&self) -> Result<Option<LockRow>, StoreError> {
        self.timed("read the migration lock", async {
            Ok(self
                .client
                .query(
                    "SELECT toUInt64(greatest(now() - metadata_modification_time, 0)) AS age_seconds, \
                     create_table_query FROM system.tables WHERE database = ? AND name = ?",
                )
                .bind(&self.database)
                .bind(MIGRATION_LOCK)
                .fetch_optional::<LockRow>()
                .await?)
        })
        .await
    }

    /// Applies the migrations not in `applied`, in order.
    async fn apply_missing(&self, applied: &[u32]) -> Result<Vec<u32>, StoreError> {
        let mut cluster = self.cluster_schema();
        let mut newly = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            // Applied migrations are rewritten too: the rewrite learns the tables they made.
            let statements = match &mut cluster {
                Some(schema) => on_cluster(schema, sql)?,
                None => statements(sql),
            };
            if applied.contains(version) {
                continue;
            }
            let mut missing = Vec::new();
            for statement in statements {
                if let Some((table, column)) = added_column(&statement) {
                    if self.column_exists(table, column).await? {
                        continue;
                    }
                }
                missing.push(statement);
            }
            // One ALTER per table on a cluster: each statement there waits for every server.
            let missing = match &cluster {
                Some(_) => alters_merged(missing),
                None => missing,
            };
            for statement in missing {
                self.timed("migration", async {
                    Ok(self.client.query(&statement).execute().await?)
                })
                .await?;
            }
            self.timed("record migration", async {
                Ok(self
                    .client
                    .query("INSERT INTO schema_migrations (version, name) VALUES (?, ?)")
                    .bind(*version)
                    .bind(*name)
                    .execute()
                    .await?)
            })
            .await?;
            tracing::info!(version, name, "applied migration");
            newly.push(*version);
        }
        Ok(newly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_skip_comments_with_semicolons() {
        let sql = "-- a; b\nCREATE TABLE x (a UInt8) ENGINE = Memory;\n\n-- trailing; note\nCREATE VIEW y AS SELECT 1;\n";
        assert_eq!(
            statements(sql),
            [
                "CREATE TABLE x (a UInt8) ENGINE = Memory",
                "CREATE VIEW y AS SELECT 1"
            ]
        );
    }

    #[test]
    fn recognises_added_columns() {
        assert_eq!(
            added_column("ALTER TABLE sessions ADD COLUMN intent String"),
            Some(("sessions", "intent"))
        );
        assert_eq!(
            added_column("ALTER TABLE sessions DROP COLUMN intent"),
            None
        );
        assert_eq!(added_column("CREATE TABLE x (a UInt8)"), None);
        assert_eq!(
            added_column("ALTER TABLE `db`.s_local ON CLUSTER c ADD COLUMN intent String"),
            Some(("s_local", "intent"))
        );
    }

    #[test]
    fn merges_consecutive_added_columns_of_one_table() {
        let statements = [
            "ALTER TABLE t ON CLUSTER c ADD COLUMN a String",
            "ALTER TABLE t ON CLUSTER c ADD COLUMN b String ALIAS if(a = 'x ADD y', 1, 2)",
            "ALTER TABLE u ON CLUSTER c ADD COLUMN a String",
            "CREATE VIEW v AS SELECT 1",
            "ALTER TABLE u ON CLUSTER c ADD COLUMN b String",
        ]
        .map(String::from);
        assert_eq!(
            alters_merged(statements.to_vec()),
            [
                "ALTER TABLE t ON CLUSTER c ADD COLUMN a String, ADD COLUMN b String ALIAS if(a = 'x ADD y', 1, 2)",
                "ALTER TABLE u ON CLUSTER c ADD COLUMN a String",
                "CREATE VIEW v AS SELECT 1",
                "ALTER TABLE u ON CLUSTER c ADD COLUMN b String",
            ]
        );
    }

    #[test]
    fn versions_are_increasing() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
