//! Keeps the derived tables in step with the stored spans. After each span insert it is
//! told which traces changed; after a short quiet period it re-reads those traces' sessions
//! from ClickHouse, runs [`sessionize`](crate::sessionize) on all of their spans and writes
//! the result at a new revision. Because it always derives from the stored spans, the
//! outcome does not depend on arrival order, retries, or which process did the work, and
//! `rebuild` is the same code over old traces.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Stored;
use crate::clock::now_unix_nano;
use crate::config;
use crate::model::conversation::{unix_seconds, DerivedSession, SessionRow, TraceSessionRow};
use crate::model::Span;
use crate::progress;
use crate::sessionize::{self, Rules};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

pub struct Sessionizer {
    store: Store,
    config: config::Sessionize,
    rules: Rules,
    metrics: Arc<Metrics>,
    last_revision: u64,
}

/// What one pass did, for logs and `rebuild`'s report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub traces: usize,
    pub sessions: usize,
    pub removed_sessions: usize,
    /// Traces whose pass ClickHouse refused even alone (logged with their ids); the next
    /// span of such a trace tries again.
    pub skipped_traces: usize,
}

impl std::ops::AddAssign for PassSummary {
    fn add_assign(&mut self, other: PassSummary) {
        self.traces += other.traces;
        self.sessions += other.sessions;
        self.removed_sessions += other.removed_sessions;
        self.skipped_traces += other.skipped_traces;
    }
}

impl Sessionizer {
    pub fn new(
        store: Store,
        config: config::Sessionize,
        rules: Rules,
        metrics: Arc<Metrics>,
    ) -> Self {
        Sessionizer {
            store,
            config,
            rules,
            metrics,
            last_revision: 0,
        }
    }

    fn next_revision(&mut self) -> u64 {
        self.last_revision = now_unix_nano().max(self.last_revision + 1);
        self.last_revision
    }

    /// Runs until `stored` closes (the writer has drained) and what it reported is derived.
    pub async fn run(mut self, mut stored: mpsc::Receiver<Stored>) {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut newest_ingested = 0u64;
        // Catch up on spans stored after the last recorded pass (a crash or restart in between).
        match self.catch_up().await {
            Ok(summary) if summary.traces > 0 => tracing::info!(?summary, "sessionizer caught up"),
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "sessionizer catch-up failed; continuing with new spans")
            }
        }
        let mut open = true;
        while open || !dirty.is_empty() {
            if dirty.is_empty() {
                match stored.recv().await {
                    Some(s) => {
                        newest_ingested = newest_ingested.max(s.ingested_at_unix_nano);
                        dirty.extend(s.trace_ids);
                    }
                    None => break,
                }
            }
            // Quiet period: gather the rest of a burst.
            let quiet = tokio::time::sleep(Duration::from_millis(self.config.debounce_ms));
            tokio::pin!(quiet);
            while open {
                tokio::select! {
                    _ = &mut quiet => break,
                    message = stored.recv() => match message {
                        Some(s) => {
                            newest_ingested = newest_ingested.max(s.ingested_at_unix_nano);
                            dirty.extend(s.trace_ids);
                        }
                        None => { open = false; break; }
                    },
                }
            }
            let traces: Vec<String> = std::mem::take(&mut dirty).into_iter().collect();
            match self.derive_traces(&traces).await {
                Ok(_) => {
                    let lag_nanos = now_unix_nano().saturating_sub(newest_ingested);
                    self.metrics.sessionize_lag.record(lag_nanos as f64 / 1e9);
                    if let Err(err) = self
                        .store
                        .record_sessionizer_progress(newest_ingested)
                        .await
                    {
                        tracing::warn!(error = %err, "could not record sessionizer progress");
                    }
                }
                Err(err) => {
                    self.metrics.sessionize_failures.increment(1);
                    tracing::warn!(error = %err, traces = traces.len(), "sessionizer pass failed; retrying");
                    dirty.extend(traces);
                    if !open {
                        tracing::warn!(
                            traces = dirty.len(),
                            "stopping with traces not derived; the next start catches up"
                        );
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!("sessionizer stopped");
    }

    async fn catch_up(&mut self) -> Result<PassSummary, StoreError> {
        let after = self.store.sessionizer_progress().await?;
        let until = now_unix_nano();
        let traces = self.store.traces_ingested_between(after, until).await?;
        let summary = self.derive_traces(&traces).await?;
        if !traces.is_empty() {
            self.store.record_sessionizer_progress(until).await?;
        }
        Ok(summary)
    }

    /// Re-derives every session touched by these traces, in passes of bounded size.
    async fn derive_traces(&mut self, traces: &[String]) -> Result<PassSummary, StoreError> {
        let mut total = PassSummary::default();
        for chunk in traces.chunks(self.config.max_traces_per_pass) {
            total += self.derive_isolating(chunk).await?;
        }
        Ok(total)
    }

    /// One pass over `traces`, unless ClickHouse refuses it for good (an error retrying cannot
    /// fix, such as bad stored data): then the set is halved until the traces that cause the
    /// refusal stand alone; those are logged and skipped, and every other trace is derived.
    /// Without this, one bad trace would block every trace that arrives with it, forever.
    /// Retryable errors (ClickHouse down or slow) return at once: the whole set waits.
    async fn derive_isolating(&mut self, traces: &[String]) -> Result<PassSummary, StoreError> {
        let mut total = PassSummary::default();
        let mut pending = vec![traces];
        while let Some(set) = pending.pop() {
            match self.pass(set).await {
                Ok(summary) => total += summary,
                Err(err) if err.is_retryable() => return Err(err),
                Err(err) => {
                    self.metrics.sessionize_failures.increment(1);
                    if let [trace] = set {
                        self.metrics.sessionize_skipped_traces.increment(1);
                        tracing::error!(%trace, error = %err, "skipping a trace that cannot be derived");
                        total.traces += 1;
                        total.skipped_traces += 1;
                    } else {
                        let (first, second) = set.split_at(set.len() / 2);
                        pending.push(second);
                        pending.push(first);
                    }
                }
            }
        }
        Ok(total)
    }

    async fn pass(&mut self, traces: &[String]) -> Result<PassSummary, StoreError> {
        // A deletion waits for the pass: it must not derive what the deletion just removed.
        let _hold = self.store.hold_writes().await;
        let _timer = self.metrics.sessionize_pass();
        let revision = self.next_revision();
        let updated_at = unix_seconds(now_unix_nano());

        let mut spans_by_trace = group_by_trace(self.store.load_spans(traces).await?);
        let previous = self.store.trace_sessions(traces).await?;

        // Where each changed trace belongs now, and which sessions that touches.
        let mut moves = Vec::new();
        let mut now_in: HashMap<&str, String> = HashMap::new();
        let mut affected: BTreeSet<String> = BTreeSet::new();
        for trace in traces {
            let Some(spans) = spans_by_trace.get(trace) else {
                continue;
            };
            let session = sessionize::trace_session_key(spans).unwrap_or_else(|| trace.clone());
            if let Some(old) = previous.get(trace) {
                if *old != session {
                    affected.insert(old.clone());
                }
            }
            if previous.get(trace) != Some(&session) {
                moves.push(TraceSessionRow {
                    trace_id: trace.clone(),
                    session_id: session.clone(),
                    revision,
                });
            }
            affected.insert(session.clone());
            now_in.insert(trace, session);
        }

        // Each affected session's traces: what it had, less what left, plus what arrived.
        let affected: Vec<String> = affected.into_iter().collect();
        let current: HashMap<String, SessionRow> = self
            .store
            .session_rows(&affected)
            .await?
            .into_iter()
            .map(|row| (row.session_id.clone(), row))
            .collect();
        let mut members: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for session in &affected {
            let kept = current
                .get(session)
                .filter(|row| row.deleted == 0)
                .map(|row| row.trace_ids.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|t| now_in.get(t.as_str()).is_none_or(|s| s == session));
            members.entry(session).or_default().extend(kept);
        }
        for (trace, session) in &now_in {
            members
                .entry(session.as_str())
                .or_default()
                .insert((*trace).to_owned());
        }

        // Spans of member traces this pass did not load yet.
        let missing: Vec<String> = members
            .values()
            .flatten()
            .filter(|t| !spans_by_trace.contains_key(*t))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            spans_by_trace.extend(group_by_trace(self.store.load_spans(&missing).await?));
        }

        let mut derived: Vec<DerivedSession> = Vec::new();
        let mut tombstones = Vec::new();
        for (session, trace_ids) in &members {
            let spans: Vec<Span> = trace_ids
                .iter()
                .filter_map(|t| spans_by_trace.get(t))
                .flatten()
                .cloned()
                .collect();
            if spans.is_empty() {
                if current.get(*session).is_some_and(|row| row.deleted == 0) {
                    tombstones.push(sessionize::tombstone(session, revision, updated_at));
                }
                continue;
            }
            derived.push(sessionize::sessionize(
                session,
                &spans,
                revision,
                updated_at,
                &self.rules,
            ));
        }
        self.store
            .write_derived(&moves, &derived, &tombstones)
            .await?;
        self.metrics
            .sessions_derived
            .increment(derived.len() as u64);
        Ok(PassSummary {
            traces: traces.len(),
            sessions: derived.len(),
            removed_sessions: tombstones.len(),
            skipped_traces: 0,
        })
    }
}

/// `convolog rebuild`: re-derives the sessions of every trace with a span that started at or
/// after `since_unix_seconds`, under the configured rules (which may have changed since).
pub async fn rebuild(
    store: Store,
    config: &config::Config,
    since_unix_seconds: u64,
) -> Result<PassSummary, StoreError> {
    let since = u32::try_from(since_unix_seconds).unwrap_or(u32::MAX);
    let traces = store.traces_started_since(since).await?;
    // Nobody reads these metrics: a rebuild runs outside the server.
    let mut sessionizer = Sessionizer::new(
        store,
        config.sessionize.clone(),
        config.rules.clone(),
        Arc::new(Metrics::default()),
    );
    // A bar on a terminal (hidden otherwise), moved pass by pass; derive_traces would make
    // the same passes.
    let progress = progress::bar(traces.len() as u64, "traces");
    let mut summary = PassSummary::default();
    for pass in traces.chunks(config.sessionize.max_traces_per_pass) {
        summary += sessionizer.derive_traces(pass).await?;
        progress.inc(pass.len() as u64);
    }
    progress.finish_and_clear();
    Ok(summary)
}

fn group_by_trace(spans: Vec<Span>) -> HashMap<String, Vec<Span>> {
    let mut out: HashMap<String, Vec<Span>> = HashMap::new();
    for span in spans {
        out.entry(span.trace_id.to_hex()).or_default().push(span);
    }
    out
}
