//! ClickHouse: the schema, span and derived-row writes, and the reads the API needs.
//! SQL here runs on ClickHouse 18.16 (Debian's) and on current releases.

mod annotations;
mod cluster;
mod delete;
mod derived;
mod gaps;
mod list;
mod logs;
mod migrations;
mod reads;
pub mod retention;
mod shared;
mod spans;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock, Semaphore};

use crate::config;

pub use annotations::{Annotations, Change};
pub use cluster::{ClusterLayout, ClusterSchema};
pub use derived::TraceSessions;
pub use gaps::{GapExampleRow, GapRow, KnowledgeGap};
pub use list::{SessionPage, SessionStream};
pub use logs::{LogLine, LogQuery};
pub use migrations::{statements, MIGRATIONS};
pub use reads::{SessionDetail, WaterfallRow};
pub use shared::{DerivedThrough, Fingerprint, SessionState};
pub use spans::SpanRow;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Worth retrying: the server is down, slow or overloaded.
    #[error("ClickHouse unavailable: {0}")]
    Unavailable(String),
    /// Retrying the same request cannot succeed (bad data, schema mismatch).
    #[error("ClickHouse rejected the request: {0}")]
    Rejected(String),
    /// A stored value could not be read back into the model.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// ClickHouse exception codes that mean "this request is wrong", not "try later" (checked
/// against 18.16 and current releases). Codes about the server, its schema or its users
/// (unknown table, authentication) stay retryable: the data is valid, the operator fixes them.
const PERMANENT_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    16,  // NO_SUCH_COLUMN_IN_TABLE
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA
    36,  // BAD_ARGUMENTS
    41,  // CANNOT_PARSE_DATETIME
    43,  // ILLEGAL_TYPE_OF_ARGUMENT
    44,  // ILLEGAL_COLUMN
    47,  // UNKNOWN_IDENTIFIER
    53,  // TYPE_MISMATCH
    62,  // SYNTAX_ERROR
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    130, // CANNOT_READ_ARRAY_FROM_TEXT
    131, // TOO_LARGE_STRING_SIZE
    349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    469, // VIOLATED_CONSTRAINT
];

/// Code 252 (TOO_MANY_PARTS) is both "merges are behind, slow down" (retryable) and this,
/// which the same rows hit again on every retry.
const TOO_MANY_PARTITIONS: &str = "Too many partitions for single INSERT block";

fn is_permanent(text: &str) -> bool {
    match exception_code(text) {
        Some(252) => text.contains(TOO_MANY_PARTITIONS),
        Some(code) => PERMANENT_CODES.contains(&code),
        None => false,
    }
}

/// The numeric code of a ClickHouse exception text ("Code: 27. DB::Exception: ...").
fn exception_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

impl From<clickhouse::error::Error> for StoreError {
    fn from(err: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        match &err {
            E::BadResponse(text) if is_permanent(text) => StoreError::Rejected(err.to_string()),
            E::Network(_) | E::TimedOut | E::BadResponse(_) | E::Other(_) => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Rejected(err.to_string()),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    client: clickhouse::Client,
    database: String,
    /// `clickhouse.cluster`, None on one server.
    cluster: Option<String>,
    timeout: Duration,
    /// Span inserts and sessionizer passes hold it shared, deletions exclusively: a deletion
    /// never interleaves with a write that would bring back what it removes.
    writes: Arc<RwLock<()>>,
    /// Deletions started so far: memory derived from stored data is stale once it moves.
    deletions: Arc<AtomicU64>,
    /// Exports of this tenant that may stream at once.
    export_slots: Arc<Semaphore>,
    export_max_seconds: u64,
    /// The key contact pseudonyms were made with (`rules.contact_key`), so that a search by
    /// a full contact matches them.
    contact_key: config::Secret,
    /// Who this store is when it holds the migration lock (written into the lock's
    /// definition): a `CREATE` of the lock that timed out may still have made it, and the
    /// retry must know it holds it.
    lock_holder: String,
}

/// Held while spans are written or sessions derived; see [`Store::hold_writes`].
pub type WriteHold = OwnedRwLockReadGuard<()>;

impl Store {
    pub fn new(config: &config::ClickHouse) -> Store {
        let mut client = clickhouse::Client::default()
            .with_url(&config.url)
            .with_user(&config.user)
            .with_password(config.password.expose())
            .with_database(&config.database)
            // Lets a WHERE on a view (the annotation views) reach the table below it; 18.16 has
            // it off by default, current releases on.
            .with_setting("enable_optimize_predicate_expression", "1")
            // ClickHouse stops a query itself when convolog stops waiting for it: a query left
            // running after a timeout would still hold the server.
            .with_setting(
                "max_execution_time",
                config.timeout_ms.div_ceil(1000).to_string(),
            )
            // ClickHouse 18.16 lacks RowBinaryWithNamesAndTypes, which validation needs.
            .with_validation(false);
        let cluster = Some(config.cluster.clone()).filter(|c| !c.is_empty());
        if cluster.is_some() {
            // An insert into a Distributed table returns once every shard has its rows, so
            // what convolog acknowledges is stored (not queued on the server it reached).
            client = client
                .with_setting("insert_distributed_sync", "1")
                // A subquery over a Distributed table inside a query over another (the
                // *_current views, spans of a session's traces) runs once, on the server
                // convolog asked, and its result goes to every shard: right whatever the two
                // tables are sharded by.
                .with_setting("distributed_product_mode", "global");
        }
        if config.max_query_memory_bytes > 0 {
            client = client.with_setting(
                "max_memory_usage",
                config.max_query_memory_bytes.to_string(),
            );
        }
        Store {
            client,
            database: config.database.clone(),
            cluster,
            timeout: Duration::from_millis(config.timeout_ms),
            writes: Arc::new(RwLock::new(())),
            deletions: Arc::new(AtomicU64::new(0)),
            export_slots: Arc::new(Semaphore::new(config.max_concurrent_exports)),
            export_max_seconds: config.export_max_seconds,
            contact_key: config::Secret::default(),
            lock_holder: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// Searches by a full contact match pseudonyms made with `key` (`rules.contact_key`).
    pub fn with_contact_key(mut self, key: config::Secret) -> Store {
        self.contact_key = key;
        self
    }

    /// Keeps deletions of this tenant's data waiting until the hold is dropped.
    pub async fn hold_writes(&self) -> WriteHold {
        Arc::clone(&self.writes).read_owned().await
    }

    /// Waits for the writes in progress and keeps new ones waiting while held.
    async fn exclude_writes(&self) -> OwnedRwLockWriteGuard<()> {
        let exclusive = Arc::clone(&self.writes).write_owned().await;
        self.note_deletion();
        exclusive
    }

    pub(super) fn note_deletion(&self) {
        self.deletions.fetch_add(1, Ordering::SeqCst);
    }

    /// How many deletions (of sessions, or by retention) have started; what was read before
    /// a change may hold data that is gone.
    pub fn deletions(&self) -> u64 {
        self.deletions.load(Ordering::SeqCst)
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster the schema is spread over, if any.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Where the parts of `table` are listed: the source to read and the table name to look
    /// for in it. On a cluster, the parts of its local table on one replica of every shard.
    fn parts_of(&self, table: &str) -> (String, String) {
        match &self.cluster {
            Some(cluster) => (
                format!("cluster('{cluster}', system, parts)"),
                cluster::local_table(table),
            ),
            None => ("system.parts".to_owned(), table.to_owned()),
        }
    }

    /// How a mutation or partition drop names `table`: on a cluster, its local tables on
    /// every server (`t_local ON CLUSTER c`), since a Distributed table takes neither.
    fn altered_table(&self, table: &str) -> String {
        match &self.cluster {
            Some(cluster) => format!(
                "`{}`.{} ON CLUSTER {cluster}",
                self.database,
                cluster::local_table(table)
            ),
            None => table.to_owned(),
        }
    }

    /// Every call goes through here so no query can hang past the configured timeout.
    async fn timed<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "{what} timed out after {:?}",
                    self.timeout
                )))
            })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", async {
            Ok(self.client.query("SELECT 1").fetch_one::<u8>().await?)
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_exceptions_by_code() {
        let parse = clickhouse::error::Error::BadResponse(
            "Code: 27. DB::Exception: Cannot parse input".into(),
        );
        assert!(matches!(StoreError::from(parse), StoreError::Rejected(_)));
        let memory = clickhouse::error::Error::BadResponse(
            "Code: 241. DB::Exception: Memory limit exceeded".into(),
        );
        assert!(StoreError::from(memory).is_retryable());
        assert!(StoreError::from(clickhouse::error::Error::TimedOut).is_retryable());
        let partitions = clickhouse::error::Error::BadResponse(
            "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)".into(),
        );
        assert!(matches!(
            StoreError::from(partitions),
            StoreError::Rejected(_)
        ));
        let merges_behind = clickhouse::error::Error::BadResponse(
            "Code: 252. DB::Exception: Too many parts (300). Merges are processing significantly slower than inserts. (TOO_MANY_PARTS)".into(),
        );
        assert!(StoreError::from(merges_behind).is_retryable());
    }
}
