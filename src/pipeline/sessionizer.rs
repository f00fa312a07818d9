//! Keeps the derived tables in step with the stored spans. After each span insert the writer
//! hands it the spans it stored; after a short quiet period it derives the sessions of the
//! traces they belong to with [`sessionize`](crate::sessionize) and writes those whose rows
//! changed, at a new revision. The spans of recent conversations stay in memory
//! ([`SessionCache`], bounded in bytes); ClickHouse is read only for what is not there: a
//! conversation that resumes after it was forgotten, a restart, `rebuild`. Memory or not, a
//! session is always derived from every stored span of its traces, so the outcome does not
//! depend on arrival order, retries, or which process did the work, and `rebuild` is the
//! same code over old traces.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::session_cache::{Derived, SessionCache, StampedSpan};
use super::Stored;
use crate::clock::now_unix_nano;
use crate::config;
use crate::conventions::SpanFacts;
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
    cache: SessionCache,
    /// Every span stored since the last recorded progress was handed to this sessionizer
    /// (its catch-up succeeded), so a trace it has not been handed before and that has no
    /// session in ClickHouse is new: nothing to read back.
    reports_complete: bool,
    /// Traces skipped as underivable: read back whole when they come again.
    reread: HashSet<String>,
    /// [`Store::deletions`] when the cache was last known current.
    deletions_seen: u64,
    /// What `/metrics` was last told, so tenants' sessionizers add up.
    reported: Reported,
    /// Spans handed over and not derived yet: their bytes and the oldest one's stamp.
    pending_bytes: usize,
    oldest_pending: Option<u64>,
}

#[derive(Default)]
struct Reported {
    cache_bytes: usize,
    cache_sessions: usize,
    pending_bytes: usize,
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
            deletions_seen: store.deletions(),
            store,
            cache: SessionCache::new(config.cache_max_bytes),
            config,
            rules,
            metrics,
            last_revision: 0,
            reports_complete: false,
            reread: HashSet::new(),
            reported: Reported::default(),
            pending_bytes: 0,
            oldest_pending: None,
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
            Ok(summary) => {
                self.reports_complete = true;
                if summary.traces > 0 {
                    tracing::info!(?summary, "sessionizer caught up");
                }
            }
            Err(err) => tracing::warn!(
                error = %err,
                "sessionizer catch-up failed; continuing with new spans, reading every trace back"
            ),
        }
        let mut open = true;
        while open || !dirty.is_empty() {
            if dirty.is_empty() {
                match stored.recv().await {
                    Some(s) => self.take(s, &mut dirty, &mut newest_ingested),
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
                        Some(s) => self.take(s, &mut dirty, &mut newest_ingested),
                        None => { open = false; break; }
                    },
                }
            }
            let traces: Vec<String> = std::mem::take(&mut dirty).into_iter().collect();
            match self.derive_traces(&traces).await {
                Ok(_) => {
                    let lag_seconds = now_unix_nano().saturating_sub(newest_ingested) as f64 / 1e9;
                    self.metrics.sessionize_lag.record(lag_seconds);
                    self.metrics.sessionize_last_lag.set(lag_seconds);
                    self.pending_bytes = 0;
                    self.oldest_pending = None;
                    self.report_memory();
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

    /// Takes one insert's report: its traces are to be derived, its spans kept.
    fn take(&mut self, stored: Stored, dirty: &mut BTreeSet<String>, newest_ingested: &mut u64) {
        let at = stored.ingested_at_unix_nano;
        *newest_ingested = (*newest_ingested).max(at);
        self.oldest_pending = Some(self.oldest_pending.map_or(at, |oldest| oldest.min(at)));
        self.pending_bytes += stored.spans.iter().map(Span::memory_bytes).sum::<usize>();
        dirty.extend(stored.trace_ids);
        self.cache.add_stored(at, stored.spans);
        self.report_memory();
    }

    /// Brings the memory gauges up to date, by difference: tenants share them.
    fn report_memory(&mut self) {
        let change = |gauge: &metrics::Gauge, reported: &mut usize, now: usize| {
            gauge.increment(now as f64 - *reported as f64);
            *reported = now;
        };
        let m = &self.metrics;
        change(
            &m.session_cache_bytes,
            &mut self.reported.cache_bytes,
            self.cache.bytes(),
        );
        change(
            &m.session_cache_sessions,
            &mut self.reported.cache_sessions,
            self.cache.session_count(),
        );
        change(
            &m.sessionize_pending_bytes,
            &mut self.reported.pending_bytes,
            self.pending_bytes,
        );
        m.sessionize_oldest_pending
            .set(self.oldest_pending.map_or(0.0, |at| at as f64 / 1e9));
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
                        self.cache.forget_trace(trace);
                        self.reread.insert(trace.clone());
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
        let deletions = self.store.deletions();
        if deletions != self.deletions_seen {
            // Spans in memory may be gone from ClickHouse: read everything back from now on.
            self.cache.clear();
            self.deletions_seen = deletions;
        }
        let _timer = self.metrics.sessionize_pass();
        let revision = self.next_revision();
        let updated_at = unix_seconds(now_unix_nano());

        self.hold_traces(traces).await?;
        // Where each changed trace belongs now, and which sessions that touches.
        let mut moves = Vec::new();
        let mut now_in: HashMap<&str, String> = HashMap::new();
        let mut affected: BTreeSet<String> = BTreeSet::new();
        for trace in traces {
            let Some(spans) = self.cache.spans(trace) else {
                continue;
            };
            let session = sessionize::trace_session_key(spans).unwrap_or_else(|| trace.clone());
            let previous = self.cache.stored_session(trace);
            if let Some(old) = previous {
                if old != session {
                    affected.insert(old.to_owned());
                }
            }
            if previous != Some(session.as_str()) {
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
        self.hold_sessions(&affected).await?;
        let mut members: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for session in &affected {
            let kept = self
                .cache
                .session(session)
                .map(|(traces, _)| traces.clone())
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

        let mut changed: Vec<DerivedSession> = Vec::new();
        let mut tombstones = Vec::new();
        let mut records = Vec::new();
        let mut unchanged = 0;
        for (session, trace_ids) in members {
            let spans: Vec<(&Span, &SpanFacts)> = trace_ids
                .iter()
                .filter_map(|t| self.cache.read_spans(t))
                .flatten()
                .collect();
            if spans.is_empty() {
                if self.cache.session(session).is_some_and(|(_, live)| live) {
                    tombstones.push(sessionize::tombstone(session, revision, updated_at));
                }
                records.push(Derived {
                    session: session.to_owned(),
                    traces: BTreeSet::new(),
                    inputs: 0,
                });
                continue;
            }
            let inputs = self.cache.inputs(session, &trace_ids);
            if self.cache.unchanged(session, inputs) {
                // Same spans, same rules: the rows written last time are these.
                unchanged += 1;
            } else {
                changed.push(sessionize::sessionize_read(
                    session,
                    spans,
                    revision,
                    updated_at,
                    &self.rules,
                ));
            }
            records.push(Derived {
                session: session.to_owned(),
                traces: trace_ids,
                inputs,
            });
        }
        self.store
            .write_derived(&moves, &changed, &tombstones)
            .await?;
        self.cache.record(records);
        let evicted = self.cache.evict_to_bound();
        self.metrics
            .session_cache_evictions
            .increment(evicted as u64);
        self.metrics
            .sessions_derived
            .increment(changed.len() as u64);
        self.metrics.sessions_unchanged.increment(unchanged);
        self.report_memory();
        Ok(PassSummary {
            traces: traces.len(),
            sessions: changed.len(),
            removed_sessions: tombstones.len(),
            skipped_traces: 0,
        })
    }

    /// Makes every one of these traces whole in memory, reading back from ClickHouse those
    /// that may have stored spans it was not handed.
    async fn hold_traces(&mut self, traces: &[String]) -> Result<(), StoreError> {
        let not_held = self.cache.not_whole(traces);
        if not_held.is_empty() {
            return Ok(());
        }
        let stored_sessions = self.store.trace_sessions(&not_held).await?;
        let read_back: Vec<String> = not_held
            .iter()
            .filter(|t| {
                !self.reports_complete
                    || stored_sessions.contains_key(*t)
                    || self.reread.contains(*t)
                    || !self.cache.has_reported_spans(t)
            })
            .cloned()
            .collect();
        let mut stored = self.read_back(&read_back).await?;
        for trace in &not_held {
            self.reread.remove(trace);
            let spans = stored.remove(trace).unwrap_or_default();
            self.cache
                .make_whole(trace, spans, stored_sessions.get(trace).cloned());
        }
        Ok(())
    }

    /// Holds each of these sessions in memory with all of its traces, reading back from
    /// ClickHouse the ones not there.
    async fn hold_sessions(&mut self, sessions: &[String]) -> Result<(), StoreError> {
        let not_held: Vec<String> = sessions
            .iter()
            .filter(|s| self.cache.session(s).is_none())
            .cloned()
            .collect();
        if not_held.is_empty() {
            return Ok(());
        }
        self.metrics
            .session_cache_misses
            .increment(not_held.len() as u64);
        let rows: HashMap<String, SessionRow> = self
            .store
            .session_rows(&not_held)
            .await?
            .into_iter()
            .filter(|row| row.deleted == 0)
            .map(|row| (row.session_id.clone(), row))
            .collect();
        let traces: Vec<String> = rows.values().flat_map(|r| r.trace_ids.clone()).collect();
        let missing = self.cache.not_whole(&traces);
        if !missing.is_empty() {
            let stored_sessions = self.store.trace_sessions(&missing).await?;
            let mut stored = self.read_back(&missing).await?;
            for trace in &missing {
                let spans = stored.remove(trace).unwrap_or_default();
                self.cache
                    .make_whole(trace, spans, stored_sessions.get(trace).cloned());
            }
        }
        for session in &not_held {
            let row = rows.get(session);
            let traces = row
                .map(|r| r.trace_ids.iter().cloned().collect())
                .unwrap_or_default();
            self.cache.insert_session(session, traces, row.is_some());
        }
        Ok(())
    }

    /// The stored spans of these traces, by trace.
    async fn read_back(
        &self,
        traces: &[String],
    ) -> Result<HashMap<String, Vec<StampedSpan>>, StoreError> {
        let mut out: HashMap<String, Vec<StampedSpan>> = HashMap::new();
        if traces.is_empty() {
            return Ok(out);
        }
        self.metrics
            .session_cache_misses
            .increment(traces.len() as u64);
        for (ingested_at, span) in self.store.load_stamped_spans(traces).await? {
            out.entry(span.trace_id.to_hex())
                .or_default()
                .push((ingested_at, span));
        }
        Ok(out)
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
