//! The retention task: once an hour (and at start), removes what is past its window.
//! Transcript, spans and log records go after `transcript_days`; the session summary stays until
//! `sessions_days`, so a session can still be listed after its transcript is gone.

use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_unix_nano;
use crate::config;
use crate::store::retention::TRANSCRIPT_TABLES;
use crate::store::{Store, StoreError};

const INTERVAL: Duration = Duration::from_secs(3600);

/// Instants (Unix seconds) before which data is removed; None keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Spans and transcript older than this go, by whole partition.
    pub transcript_before: Option<u32>,
    /// Sessions that ended before this go.
    pub sessions_before: Option<u32>,
}

pub fn cutoffs(now_unix_seconds: u64, retention: &config::Retention) -> Cutoffs {
    let before = |days: u32| {
        let secs = now_unix_seconds.saturating_sub(u64::from(days) * 86_400);
        u32::try_from(secs).unwrap_or(u32::MAX)
    };
    Cutoffs {
        transcript_before: (retention.transcript_days > 0)
            .then(|| before(retention.transcript_days)),
        sessions_before: (retention.sessions_days > 0).then(|| before(retention.sessions_days)),
    }
}

/// One retention run.
pub async fn apply(
    store: &Store,
    retention: &config::Retention,
) -> Result<Vec<String>, StoreError> {
    let cut = cutoffs(now_unix_nano() / 1_000_000_000, retention);
    let mut removed = Vec::new();
    if let Some(before) = cut.transcript_before {
        // Partitions are days and months in the server's time zone, so the server names the
        // day and month of the cutoff: every partition below them ended before it.
        let (day, month) = store.partition_keys_at(before).await?;
        removed.extend(store.drop_partitions_before("spans", day).await?);
        for table in TRANSCRIPT_TABLES.iter().chain(&["logs"]) {
            removed.extend(store.drop_partitions_before(table, month).await?);
        }
    }
    if let Some(before) = cut.sessions_before {
        if store.delete_sessions_before(before).await? {
            removed.push("sessions (ended before the window)".to_owned());
        }
    }
    Ok(removed)
}

pub async fn run(store: Store, retention: config::Retention, mut stopping: watch::Receiver<bool>) {
    if retention.transcript_days == 0 && retention.sessions_days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            // The only change ever sent is "stop".
            _ = stopping.changed() => break,
        }
        if let Err(err) = apply(&store, &retention).await {
            tracing::warn!(error = %err, "retention run failed; retrying in an hour");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_follow_the_windows() {
        // 2026-11-22T00:00:00Z
        let now = 1_795_305_600;
        let retention = config::Retention {
            transcript_days: 30,
            sessions_days: 365,
        };
        let cut = cutoffs(now, &retention);
        assert_eq!(cut.transcript_before, Some(now as u32 - 30 * 86_400));
        assert_eq!(cut.sessions_before, Some(now as u32 - 365 * 86_400));
        let keep_all = cutoffs(
            now,
            &config::Retention {
                transcript_days: 0,
                sessions_days: 0,
            },
        );
        assert_eq!(
            keep_all,
            Cutoffs {
                transcript_before: None,
                sessions_before: None
            }
        );
    }
}
