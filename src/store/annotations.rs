//! Labels and flags on sessions: each change is a row at a new version, the latest wins.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::model::conversation::unix_seconds;

pub const LABEL: &str = "label";
pub const FLAG: &str = "flag";

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct AnnotationRow {
    session_id: String,
    kind: String,
    value: String,
    present: u8,
    note: String,
    version: u64,
    updated_at: u32,
}

/// What readers have marked on one session.
#[derive(Debug, Clone, Default, PartialEq, Row, Deserialize, Serialize)]
pub struct Annotations {
    pub labels: Vec<String>,
    pub flagged: u8,
    pub flag_reason: String,
}

/// One change to a session's annotations.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    AddLabel(String),
    RemoveLabel(String),
    Flag { reason: String },
    Unflag,
}

/// Versions come from the clock in nanoseconds, bumped so two changes in one process never tie.
fn next_version() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

impl Store {
    pub async fn annotations(&self, session_id: &str) -> Result<Annotations, StoreError> {
        let found = self
            .timed("annotations", async {
                Ok(self
                    .client
                    .query(
                        "SELECT ?fields FROM session_annotations_by_session WHERE session_id = ?",
                    )
                    .bind(session_id)
                    .fetch_optional::<Annotations>()
                    .await?)
            })
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// Records one change. The caller checks the session exists.
    pub async fn annotate(&self, session_id: &str, change: Change) -> Result<(), StoreError> {
        let version = next_version();
        let (kind, value, present, note) = match change {
            Change::AddLabel(label) => (LABEL, label, 1, String::new()),
            Change::RemoveLabel(label) => (LABEL, label, 0, String::new()),
            Change::Flag { reason } => (FLAG, String::new(), 1, reason),
            Change::Unflag => (FLAG, String::new(), 0, String::new()),
        };
        let row = AnnotationRow {
            session_id: session_id.to_owned(),
            kind: kind.to_owned(),
            value,
            present,
            note,
            version,
            updated_at: unix_seconds(version),
        };
        self.insert_all("session_annotations", std::iter::once(&row))
            .await
    }

    /// Whether a current (not deleted) session has this id.
    pub async fn session_exists(&self, session_id: &str) -> Result<bool, StoreError> {
        self.timed("session exists", async {
            Ok(self
                .client
                .query(&format!(
                    "SELECT count() FROM sessions FINAL WHERE {} AND deleted = 0",
                    super::derived::by_id("(?)")
                ))
                .bind(session_id)
                .fetch_one::<u64>()
                .await?
                > 0)
        })
        .await
    }
}
