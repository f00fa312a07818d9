//! The schema on a ClickHouse cluster (`clickhouse.cluster`). The migration files are
//! written for one server; each statement is rewritten here so that on a cluster:
//!
//! - a table `t` keeps its rows in `t_local` on every server, a Replicated*MergeTree at
//!   `/clickhouse/tables/{shard}/<database>/t_local` (replica `{replica}`): the `shard` and
//!   `replica` macros come from each server's configuration;
//! - `t` itself is a Distributed table over `t_local`, so every query and insert convolog
//!   makes runs unchanged;
//! - views read the Distributed tables, and every statement runs `ON CLUSTER`, its tables
//!   named with their database (a server runs another's DDL in its own default database).
//!
//! Sharding key: rows that ClickHouse folds together (same sorting key, for FINAL and
//! ReplacingMergeTree merges) and rows a reader aggregates together (argMax per session)
//! must sit on one shard. So a table whose sorting key holds `session_id` is sharded by the
//! session (a session's summary, transcript rows, annotations, starts), any other by the
//! first column of its sorting key (spans, logs and trace_sessions by trace id).

use std::collections::{HashMap, HashSet};

use super::{Store, StoreError};

/// A statement the rewrite does not know how to run on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this migration statement cannot be run on a cluster: {0}")]
pub struct Unsupported(String);

/// The local (per-server) table behind the Distributed table `table`.
pub fn local_table(table: &str) -> String {
    format!("{table}_local")
}

/// Rewrites plain migration statements for a cluster; keeps the sharding key of each table
/// it has seen created, so later statements (ALTER, RENAME) can rebuild its Distributed table.
#[derive(Debug, Clone)]
pub struct ClusterSchema {
    cluster: String,
    database: String,
    sharding_keys: HashMap<String, String>,
    views: HashSet<String>,
    /// Tables altered since their Distributed table was last made: rebuilt before the next
    /// other statement, so a run of ADD COLUMNs costs one rebuild.
    altered: Vec<String>,
}

impl ClusterSchema {
    pub fn new(cluster: &str, database: &str) -> ClusterSchema {
        ClusterSchema {
            cluster: cluster.to_owned(),
            database: database.to_owned(),
            sharding_keys: HashMap::new(),
            views: HashSet::new(),
            altered: Vec::new(),
        }
    }

    /// `name` in this database.
    fn qualified(&self, name: &str) -> String {
        format!("`{}`.{name}", self.database)
    }

    pub fn create_database(&self) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS `{}` ON CLUSTER {}",
            self.database, self.cluster
        )
    }

    /// The record of applied migrations is one table copied to every server of every shard
    /// (its path has no `{shard}`), so any server tells what the whole cluster has.
    pub fn create_schema_migrations(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} ON CLUSTER {} \
             (version UInt32, name String, applied_at DateTime DEFAULT now()) \
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/{}/schema_migrations', '{{shard}}-{{replica}}') \
             ORDER BY version",
            self.qualified("schema_migrations"),
            self.cluster,
            self.database
        )
    }

    /// The statements that do `statement` on the cluster.
    pub fn rewrite(&mut self, statement: &str) -> Result<Vec<String>, Unsupported> {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let starts = |prefix: &[&str]| {
            prefix.len() <= words.len()
                && prefix
                    .iter()
                    .zip(&words)
                    .all(|(k, w)| w.eq_ignore_ascii_case(k))
        };
        if starts(&["ALTER", "TABLE"]) && words.len() > 3 {
            let table = words[2];
            let rest = after_words(statement, 3);
            if !self.altered.iter().any(|t| t == table) {
                self.altered.push(table.to_owned());
            }
            return Ok(vec![format!(
                "ALTER TABLE {} ON CLUSTER {} {rest}",
                self.qualified(&local_table(table)),
                self.cluster
            )]);
        }
        let mut out = self.finish();
        if starts(&["CREATE", "TABLE", "IF", "NOT", "EXISTS"]) && words.len() > 6 {
            out.extend(self.create_table(words[5], after_words(statement, 6))?);
        } else if starts(&["CREATE", "VIEW", "IF", "NOT", "EXISTS"]) && words.len() > 6 {
            let select = self.with_names_qualified(after_words(statement, 6), false);
            self.views.insert(words[5].to_owned());
            out.push(format!(
                "CREATE VIEW IF NOT EXISTS {} ON CLUSTER {} {select}",
                self.qualified(words[5]),
                self.cluster,
            ));
        } else if starts(&["CREATE", "MATERIALIZED", "VIEW", "IF", "NOT", "EXISTS"])
            && words.len() > 8
            && words[7].eq_ignore_ascii_case("TO")
        {
            // Inserts reach the local tables, so the view watches and fills those: each
            // server's view sees the rows written to it and its replicas copy the result.
            let select = self.with_names_qualified(after_words(statement, 9), true);
            out.push(format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {} ON CLUSTER {} TO {} {select}",
                self.qualified(words[6]),
                self.cluster,
                self.qualified(&local_table(words[8]))
            ));
        } else if starts(&["DROP", "TABLE", "IF", "EXISTS"]) && words.len() == 5 {
            let table = words[4];
            self.sharding_keys.remove(table);
            self.views.remove(table);
            for name in [table.to_owned(), local_table(table)] {
                out.push(format!(
                    "DROP TABLE IF EXISTS {} ON CLUSTER {}",
                    self.qualified(&name),
                    self.cluster
                ));
            }
        } else if starts(&["RENAME", "TABLE"]) {
            out.extend(self.rename(after_words(statement, 2))?);
        } else if starts(&["INSERT", "INTO"]) {
            // Through the Distributed table, which sends each row to its shard.
            out.push(statement.to_owned());
        } else {
            return Err(Unsupported(statement.to_owned()));
        }
        Ok(out)
    }

    /// What is left to do at the end of a migration: Distributed tables of altered tables.
    pub fn finish(&mut self) -> Vec<String> {
        let altered = std::mem::take(&mut self.altered);
        let mut out = Vec::new();
        for table in altered {
            if let Some(key) = self.sharding_keys.get(&table) {
                out.push(format!(
                    "DROP TABLE IF EXISTS {} ON CLUSTER {}",
                    self.qualified(&table),
                    self.cluster
                ));
                out.push(self.distributed(&table, key));
            }
        }
        out
    }

    fn create_table(&mut self, table: &str, rest: &str) -> Result<Vec<String>, Unsupported> {
        let unsupported = || Unsupported(format!("CREATE TABLE IF NOT EXISTS {table} {rest}"));
        let engine_at = find_keyword(rest, "ENGINE").ok_or_else(unsupported)?;
        let (definition, engine_clause) = rest.split_at(engine_at);
        let engine = engine_clause["ENGINE".len()..]
            .trim_start()
            .strip_prefix('=')
            .ok_or_else(unsupported)?
            .trim_start();
        let name_end = engine
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(engine.len());
        let (name, after_name) = engine.split_at(name_end);
        if !name.ends_with("MergeTree") || name.starts_with("Replicated") {
            return Err(unsupported());
        }
        let (arguments, tail) = match after_name.strip_prefix('(') {
            Some(inside) => {
                let close = inside.find(')').ok_or_else(unsupported)?;
                (inside[..close].trim(), &inside[close + 1..])
            }
            None => ("", after_name),
        };
        let key = sharding_key(tail).ok_or_else(unsupported)?;
        // `CREATE TABLE t AS other ENGINE = ...` copies the columns of other's local table.
        let definition = definition.trim();
        let definition = match definition.split_whitespace().collect::<Vec<_>>()[..] {
            [as_keyword, source] if as_keyword.eq_ignore_ascii_case("AS") => {
                format!("AS {}", self.qualified(&local_table(source)))
            }
            _ => definition.to_owned(),
        };
        let local = local_table(table);
        let mut replicated_arguments = format!(
            "'/clickhouse/tables/{{shard}}/{}/{local}', '{{replica}}'",
            self.database
        );
        if !arguments.is_empty() {
            replicated_arguments.push_str(", ");
            replicated_arguments.push_str(arguments);
        }
        self.sharding_keys.insert(table.to_owned(), key.clone());
        Ok(vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {} ON CLUSTER {} {definition} \
                 ENGINE = Replicated{name}({replicated_arguments}){tail}",
                self.qualified(&local),
                self.cluster
            ),
            self.distributed(table, &key),
        ])
    }

    fn distributed(&self, table: &str, key: &str) -> String {
        let local = local_table(table);
        format!(
            "CREATE TABLE IF NOT EXISTS {} ON CLUSTER {cluster} AS {} \
             ENGINE = Distributed('{cluster}', '{database}', '{local}', cityHash64({key}))",
            self.qualified(table),
            self.qualified(&local),
            cluster = self.cluster,
            database = self.database,
        )
    }

    /// `RENAME TABLE a TO b, c TO d`: the local tables are renamed, and the Distributed
    /// tables, which name their local table, are made anew under the new names.
    fn rename(&mut self, pairs: &str) -> Result<Vec<String>, Unsupported> {
        let mut renames = Vec::new();
        for pair in pairs.split(',') {
            match pair.split_whitespace().collect::<Vec<_>>()[..] {
                [from, to_keyword, to] if to_keyword.eq_ignore_ascii_case("TO") => {
                    let key = self.sharding_keys.get(from).cloned().ok_or_else(|| {
                        Unsupported(format!("RENAME TABLE of an unknown table {from}"))
                    })?;
                    renames.push((from.to_owned(), to.to_owned(), key));
                }
                _ => return Err(Unsupported(format!("RENAME TABLE {pairs}"))),
            }
        }
        let mut out: Vec<String> = renames
            .iter()
            .map(|(from, _, _)| {
                format!(
                    "DROP TABLE IF EXISTS {} ON CLUSTER {}",
                    self.qualified(from),
                    self.cluster
                )
            })
            .collect();
        let locals: Vec<String> = renames
            .iter()
            .map(|(from, to, _)| {
                format!(
                    "{} TO {}",
                    self.qualified(&local_table(from)),
                    self.qualified(&local_table(to))
                )
            })
            .collect();
        out.push(format!(
            "RENAME TABLE {} ON CLUSTER {}",
            locals.join(", "),
            self.cluster
        ));
        for (from, _, _) in &renames {
            self.sharding_keys.remove(from);
        }
        for (_, to, key) in renames {
            out.push(self.distributed(&to, &key));
            self.sharding_keys.insert(to, key);
        }
        Ok(out)
    }

    /// `sql` with each table or view it reads (after FROM or JOIN) named with its database;
    /// with `local`, tables are read from their local tables.
    fn with_names_qualified(&self, sql: &str, local: bool) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut reads_next = false;
        for part in sql.split_inclusive(char::is_whitespace) {
            let word = part.trim_end();
            let name_end = word
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(word.len());
            let (name, after) = (&word[..name_end], &part[name_end..]);
            if reads_next && self.sharding_keys.contains_key(name) {
                let table = if local {
                    local_table(name)
                } else {
                    name.to_owned()
                };
                out.push_str(&self.qualified(&table));
                out.push_str(after);
            } else if reads_next && self.views.contains(name) {
                out.push_str(&self.qualified(name));
                out.push_str(after);
            } else {
                out.push_str(part);
            }
            if !word.is_empty() {
                reads_next = word.eq_ignore_ascii_case("FROM") || word.eq_ignore_ascii_case("JOIN");
            }
        }
        out
    }
}

/// A cluster as the server convolog talks to sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLayout {
    pub shards: u64,
    pub servers: u64,
    /// This server's `shard` and `replica` macros; empty when not defined.
    pub shard: String,
    pub replica: String,
}

impl Store {
    /// The cluster's shards and servers in `remote_servers`, and this server's macros; None
    /// when the server has no such cluster.
    pub async fn cluster_layout(&self, cluster: &str) -> Result<Option<ClusterLayout>, StoreError> {
        #[derive(clickhouse::Row, serde::Deserialize)]
        struct Counts {
            shards: u64,
            servers: u64,
        }
        let server = self.client.clone().with_database("default");
        let counts = self
            .timed("read system.clusters", async {
                Ok(server
                    .query("SELECT uniqExact(shard_num) AS shards, count() AS servers FROM system.clusters WHERE cluster = ?")
                    .bind(cluster)
                    .fetch_one::<Counts>()
                    .await?)
            })
            .await?;
        if counts.servers == 0 {
            return Ok(None);
        }
        let macros = self
            .timed("read system.macros", async {
                Ok(server
                    .query("SELECT macro, substitution FROM system.macros WHERE macro IN ('shard', 'replica')")
                    .fetch_all::<(String, String)>()
                    .await?)
            })
            .await?;
        let macro_value = |name: &str| {
            macros
                .iter()
                .find(|(macro_name, _)| macro_name == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        Ok(Some(ClusterLayout {
            shards: counts.shards,
            servers: counts.servers,
            shard: macro_value("shard"),
            replica: macro_value("replica"),
        }))
    }
}

/// The rest of `statement` after its first `n` words, its own spacing kept.
fn after_words(statement: &str, n: usize) -> &str {
    let mut rest = statement.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

/// The byte offset of `keyword` as a whole word, any case.
fn find_keyword(sql: &str, keyword: &str) -> Option<usize> {
    let upper = sql.to_ascii_uppercase();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = upper.as_bytes();
    upper.match_indices(keyword).map(|(at, _)| at).find(|&at| {
        let before = at == 0 || !is_word(bytes[at - 1]);
        let end = at + keyword.len();
        before && (end == bytes.len() || !is_word(bytes[end]))
    })
}

/// The column a table is sharded by, from the `ORDER BY` of its engine clause: `session_id`
/// when the sorting key holds it, otherwise the key's first column.
fn sharding_key(engine_tail: &str) -> Option<String> {
    let at = find_keyword(engine_tail, "ORDER")?;
    let after = engine_tail[at + "ORDER".len()..].trim_start();
    let by = find_keyword(after, "BY").filter(|&i| i == 0)?;
    let expression = after[by + 2..].trim_start();
    let columns: Vec<&str> = match expression.strip_prefix('(') {
        Some(inside) => inside[..inside.find(')')?]
            .split(',')
            .map(str::trim)
            .collect(),
        None => vec![expression.split_whitespace().next()?],
    };
    let key = columns
        .iter()
        .find(|c| **c == "session_id")
        .or(columns.first())?;
    Some((*key).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{statements, MIGRATIONS};

    fn schema() -> ClusterSchema {
        ClusterSchema::new("c1", "db")
    }

    #[test]
    fn a_table_becomes_a_replicated_local_table_and_a_distributed_one() {
        let sql = "CREATE TABLE IF NOT EXISTS turns (\n    session_id String,\n    revision UInt64\n) ENGINE = ReplacingMergeTree(revision)\nPARTITION BY toYYYYMM(start_time)\nORDER BY (turn_number, session_id)";
        assert_eq!(
            schema().rewrite(sql).unwrap(),
            [
                "CREATE TABLE IF NOT EXISTS `db`.turns_local ON CLUSTER c1 (\n    session_id String,\n    revision UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/turns_local', '{replica}', revision)\nPARTITION BY toYYYYMM(start_time)\nORDER BY (turn_number, session_id)",
                "CREATE TABLE IF NOT EXISTS `db`.turns ON CLUSTER c1 AS `db`.turns_local ENGINE = Distributed('c1', 'db', 'turns_local', cityHash64(session_id))",
            ]
        );
    }

    #[test]
    fn sharded_by_the_first_sorting_column_without_a_session() {
        let mut schema = schema();
        let spans = schema
            .rewrite("CREATE TABLE IF NOT EXISTS spans (trace_id String) ENGINE = MergeTree ORDER BY (trace_id, span_id) SETTINGS index_granularity = 256")
            .unwrap();
        assert_eq!(
            spans[0],
            "CREATE TABLE IF NOT EXISTS `db`.spans_local ON CLUSTER c1 (trace_id String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/spans_local', '{replica}') ORDER BY (trace_id, span_id) SETTINGS index_granularity = 256"
        );
        assert!(spans[1].ends_with("cityHash64(trace_id))"));
        let progress = schema
            .rewrite("CREATE TABLE IF NOT EXISTS progress (id UInt8) ENGINE = ReplacingMergeTree(x) ORDER BY id")
            .unwrap();
        assert!(progress[1].ends_with("cityHash64(id))"));
    }

    #[test]
    fn a_table_made_as_another_copies_the_local_table() {
        let mut schema = schema();
        schema
            .rewrite("CREATE TABLE IF NOT EXISTS sessions (session_id String) ENGINE = ReplacingMergeTree(revision) ORDER BY session_id")
            .unwrap();
        let copy = schema
            .rewrite("CREATE TABLE IF NOT EXISTS by_start AS sessions\nENGINE = ReplacingMergeTree(revision)\nORDER BY (start, session_id)")
            .unwrap();
        assert_eq!(
            copy[0],
            "CREATE TABLE IF NOT EXISTS `db`.by_start_local ON CLUSTER c1 AS `db`.sessions_local ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/by_start_local', '{replica}', revision)\nORDER BY (start, session_id)"
        );
    }

    #[test]
    fn alters_act_on_local_tables_then_rebuild_the_distributed_table_once() {
        let mut schema = schema();
        schema
            .rewrite("CREATE TABLE IF NOT EXISTS s (session_id String) ENGINE = MergeTree ORDER BY session_id")
            .unwrap();
        assert_eq!(
            schema.rewrite("ALTER TABLE s ADD COLUMN a String").unwrap(),
            ["ALTER TABLE `db`.s_local ON CLUSTER c1 ADD COLUMN a String"]
        );
        assert_eq!(
            schema
                .rewrite("ALTER TABLE s ADD COLUMN b String ALIAS if(a = 'x', 'y', a)")
                .unwrap(),
            ["ALTER TABLE `db`.s_local ON CLUSTER c1 ADD COLUMN b String ALIAS if(a = 'x', 'y', a)"]
        );
        assert_eq!(
            schema
                .rewrite("CREATE VIEW IF NOT EXISTS v AS SELECT *, b FROM s")
                .unwrap(),
            [
                "DROP TABLE IF EXISTS `db`.s ON CLUSTER c1",
                "CREATE TABLE IF NOT EXISTS `db`.s ON CLUSTER c1 AS `db`.s_local ENGINE = Distributed('c1', 'db', 's_local', cityHash64(session_id))",
                "CREATE VIEW IF NOT EXISTS `db`.v ON CLUSTER c1 AS SELECT *, b FROM `db`.s",
            ]
        );
        assert!(schema.finish().is_empty());
        schema.rewrite("ALTER TABLE s DROP COLUMN a").unwrap();
        assert_eq!(schema.finish().len(), 2);
    }

    #[test]
    fn drops_and_renames_act_on_both_tables() {
        let mut schema = schema();
        for create in [
            "CREATE TABLE IF NOT EXISTS a (session_id String) ENGINE = MergeTree ORDER BY session_id",
            "CREATE TABLE IF NOT EXISTS b (trace_id String) ENGINE = MergeTree ORDER BY trace_id",
        ] {
            schema.rewrite(create).unwrap();
        }
        assert_eq!(
            schema.rewrite("RENAME TABLE a TO old_a, b TO a").unwrap(),
            [
                "DROP TABLE IF EXISTS `db`.a ON CLUSTER c1",
                "DROP TABLE IF EXISTS `db`.b ON CLUSTER c1",
                "RENAME TABLE `db`.a_local TO `db`.old_a_local, `db`.b_local TO `db`.a_local ON CLUSTER c1",
                "CREATE TABLE IF NOT EXISTS `db`.old_a ON CLUSTER c1 AS `db`.old_a_local ENGINE = Distributed('c1', 'db', 'old_a_local', cityHash64(session_id))",
                "CREATE TABLE IF NOT EXISTS `db`.a ON CLUSTER c1 AS `db`.a_local ENGINE = Distributed('c1', 'db', 'a_local', cityHash64(trace_id))",
            ]
        );
        assert_eq!(
            schema.rewrite("DROP TABLE IF EXISTS old_a").unwrap(),
            [
                "DROP TABLE IF EXISTS `db`.old_a ON CLUSTER c1",
                "DROP TABLE IF EXISTS `db`.old_a_local ON CLUSTER c1",
            ]
        );
        assert!(schema.rewrite("RENAME TABLE old_a TO x").is_err());
    }

    #[test]
    fn materialized_views_fill_local_tables_from_local_tables() {
        let mut schema = schema();
        for create in [
            "CREATE TABLE IF NOT EXISTS src (session_id String) ENGINE = MergeTree ORDER BY session_id",
            "CREATE TABLE IF NOT EXISTS dst (session_id String) ENGINE = MergeTree ORDER BY session_id",
        ] {
            schema.rewrite(create).unwrap();
        }
        assert_eq!(
            schema
                .rewrite("CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO dst AS SELECT session_id FROM src")
                .unwrap(),
            ["CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.mv ON CLUSTER c1 TO `db`.dst_local AS SELECT session_id FROM `db`.src_local"]
        );
    }

    #[test]
    fn unknown_statements_are_refused() {
        let mut schema = schema();
        assert!(schema.rewrite("OPTIMIZE TABLE spans FINAL").is_err());
        assert!(schema
            .rewrite("CREATE TABLE IF NOT EXISTS m (a UInt8) ENGINE = Memory")
            .is_err());
    }

    /// Every shipped migration runs on a cluster, and each table is sharded as the schema
    /// comments say.
    #[test]
    fn every_migration_rewrites() {
        let mut schema = schema();
        for (version, _, sql) in MIGRATIONS {
            for statement in statements(sql) {
                if let Err(err) = schema.rewrite(&statement) {
                    panic!("migration {version}: {err}");
                }
            }
            schema.finish();
        }
        let key = |table: &str| schema.sharding_keys.get(table).map(String::as_str);
        assert_eq!(key("spans"), Some("trace_id"));
        assert_eq!(key("logs"), Some("trace_id"));
        assert_eq!(key("trace_sessions"), Some("trace_id"));
        for table in ["sessions", "turns", "session_starts", "session_annotations"] {
            assert_eq!(key(table), Some("session_id"), "{table}");
        }
        assert_eq!(key("sessions_by_id"), None);
        assert_eq!(key("sessions_by_start"), None);
    }
}
