//! Keeps the derived tables in step with the stored spans. After each span insert the writer
//! hands it the spans it stored; after a short quiet period it derives the sessions of the
//! traces they belong to with [`sessionize`](crate::sessionize) and writes those whose rows
//! changed, at a new revision. The spans of recent conversations stay in memory
//! ([`SessionCache`], bounded in bytes); ClickHouse is read only for what is not there: a
//! conversation that resumes after it was forgotten, spans another instance stored, a
//! restart, `rebuild`. Memory or not, a session is always derived from every stored span of
//! its traces, so the outcome does not depend on arrival order, retries, or which process
//! did the work, and `rebuild` is the same code over old traces.
//!
//! Any number of instances may derive from one database at once (README "Running more than
//! one"); three rules make them agree, without clocks and without an owner per session:
//! 1. A pass first checks every trace of every session it touches against ClickHouse
//!    ([`Fingerprint`](crate::store::Fingerprint): what is stored, not what this instance was handed) and reads the
//!    stored state of those sessions ([`SessionState`]: current revision and traces).
//! 2. It writes above the revisions it read, so a pass that read another's rows wins
//!    over them: it derived from a superset.
//! 3. After writing, it reads that state again; if another instance wrote any of its
//!    sessions since, or spans arrived that it did not derive from, it passes again.
//!
//! Passes that overlap in time are what rule 3 is for: of two overlapping passes, the one
//! that writes last sees the other's rows or spans in its check. And spans whose storing
//! instance died before deriving them are found by every instance's periodic sweep
//! ([`Sessionizer::sweep`]) once `sweep_grace_ms` has passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::session_cache::{Derived, SessionCache, StampedSpan};
use super::Stored;
use crate::clock::now_unix_nano;
use crate::config;
use crate::conventions::SpanFacts;
use crate::model::conversation::{unix_seconds, DerivedSession, TraceSessionRow};
use crate::model::Span;
use crate::progress;
use crate::sessionize::{self, Rules};
use crate::store::{DerivedThrough, SessionState, Store, StoreError};
use crate::telemetry::Metrics;

pub struct Sessionizer {
    store: Store,
    config: config::Sessionize,
    rules: Rules,
    metrics: Arc<Metrics>,
    last_revision: u64,
    cache: SessionCache,
    /// [`Store::deletions`] when the cache was last known current.
    deletions_seen: u64,
    /// What `/metrics` was last told, so tenants' sessionizers add up.
    reported: Reported,
    /// Spans handed over and not derived yet: their bytes and the oldest one's stamp.
    pending_bytes: usize,
    oldest_pending: Option<u64>,
    /// The hand-over's room those spans take, given back once they are derived.
    pending_room: Vec<OwnedSemaphorePermit>,
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
            reported: Reported::default(),
            pending_bytes: 0,
            oldest_pending: None,
            pending_room: Vec::new(),
        }
    }

    /// A revision above this process's last and above `at_least`.
    fn next_revision(&mut self, at_least: u64) -> u64 {
        self.last_revision = now_unix_nano().max(self.last_revision + 1).max(at_least);
        self.last_revision
    }

    /// Runs until `stored` closes (the writer has drained) and what it reported is derived.
    pub async fn run(mut self, mut stored: mpsc::Receiver<Stored>) {
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut newest_ingested = 0u64;
        // Catch up on spans stored since the last sweep (a crash or restart in between), up to
        // now; the periodic sweeps then go on from `grace` ago.
        let grace = self.config.sweep_grace_ms * 1_000_000;
        let mut swept = match self.store.sessionizer_progress().await {
            Ok(progress) => {
                let now = now_unix_nano();
                match self.sweep(progress.saturating_sub(grace), now).await {
                    Ok(again) => dirty.extend(again),
                    Err(err) => tracing::warn!(error = %err, "sessionizer catch-up failed"),
                }
                // Not recorded: the periodic sweep records what it covered.
                progress.max(now.saturating_sub(grace))
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read sessionizer progress; sweeping from one grace period ago");
                now_unix_nano().saturating_sub(grace)
            }
        };
        let mut sweeps =
            tokio::time::interval(Duration::from_millis(self.config.sweep_interval_ms.max(1)));
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sweeps.tick().await;
        let mut open = true;
        while open || !dirty.is_empty() {
            if dirty.is_empty() {
                tokio::select! {
                    message = stored.recv() => match message {
                        Some(s) => self.take(s, &mut dirty, &mut newest_ingested),
                        None => break,
                    },
                    _ = sweeps.tick() => {
                        let until = now_unix_nano().saturating_sub(grace);
                        match self.sweep(swept.saturating_sub(grace), until).await {
                            Ok(again) => {
                                dirty.extend(again);
                                swept = swept.max(until);
                                if let Err(err) = self.store.record_sessionizer_progress(swept).await {
                                    tracing::warn!(error = %err, "could not record sessionizer progress");
                                }
                            }
                            Err(err) => tracing::warn!(error = %err, "sessionizer sweep failed; the next one covers its spans"),
                        }
                        continue;
                    }
                }
            }
            // Quiet period: gather the rest of a burst. It counts from when the oldest span
            // held was stored, so spans that waited out the last pass do not wait a whole
            // period more. It ends early once the spans held take half of the hand-over's
            // bound: past that the writer soon waits for this pass, and the other half is its
            // room to go on while the pass runs.
            let debounce = Duration::from_millis(self.config.debounce_ms);
            let quiet =
                tokio::time::sleep(quiet_period(debounce, self.oldest_pending, now_unix_nano()));
            tokio::pin!(quiet);
            while open && self.pending_bytes < self.config.max_pending_bytes / 2 {
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
                Ok((_, again)) => {
                    let lag_seconds = now_unix_nano().saturating_sub(newest_ingested) as f64 / 1e9;
                    self.metrics.sessionize_lag.record(lag_seconds);
                    self.metrics.sessionize_last_lag.set(lag_seconds);
                    self.pending_bytes = 0;
                    self.oldest_pending = None;
                    self.pending_room.clear();
                    self.report_memory();
                    // Sessions another instance wrote meanwhile: after the quiet period.
                    dirty.extend(again);
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
        self.pending_bytes += stored.bytes;
        dirty.extend(stored.trace_ids);
        self.cache.add_stored(at, stored.spans);
        self.pending_room.push(stored.room);
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

    /// Derives the traces with spans stamped in (after, until] that no pass derived that far:
    /// after a restart, and periodically for the spans of an instance that died before
    /// deriving them (any instance's: spans do not say who stored them). Returns the traces
    /// to pass again.
    async fn sweep(&mut self, after: u64, until: u64) -> Result<Vec<String>, StoreError> {
        let ingested = self.store.traces_ingested_between(after, until).await?;
        if ingested.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ingested.iter().map(|(trace, _)| trace.clone()).collect();
        let through = self.store.derived_through(&ids).await?;
        let mut underived = Vec::new();
        let mut derived = Vec::new();
        for (trace, newest) in ingested {
            match through.get(&trace) {
                Some(d) if d.newest >= newest => derived.push(trace),
                _ => underived.push(trace),
            }
        }
        if self.config.sweep_checks_replicas || self.store.cluster().is_some() {
            underived.extend(self.missed_on_a_replica(derived, &through).await?);
        }
        let (summary, again) = self.derive_traces(&underived).await?;
        if summary.traces > 0 {
            tracing::info!(
                ?summary,
                "sessionizer derived stored spans no pass had derived"
            );
        }
        Ok(again)
    }

    /// Of these derived traces, those a pass derived without all that is stored now, as an
    /// instance reading a lagging replica does: spans stamped before what was derived but
    /// not counted in it, or a session written since by a pass that did not know of the
    /// trace (a pass writes a session and all of its traces at one revision).
    async fn missed_on_a_replica(
        &self,
        derived: Vec<String>,
        through: &HashMap<String, DerivedThrough>,
    ) -> Result<Vec<String>, StoreError> {
        let stored = self.store.trace_fingerprints(&derived).await?;
        let sessions: BTreeSet<String> = derived
            .iter()
            .filter_map(|trace| through.get(trace))
            .map(|d| d.session.clone())
            .collect();
        let sessions: Vec<String> = sessions.into_iter().collect();
        let revisions = self.store.current_revisions(&sessions).await?;
        Ok(derived
            .into_iter()
            .filter(|trace| {
                let Some(d) = through.get(trace) else {
                    return true;
                };
                stored.get(trace).is_some_and(|s| s.spans > d.spans)
                    || revisions.get(&d.session).is_some_and(|r| *r > d.revision)
            })
            .collect())
    }

    /// Re-derives every session touched by these traces, in passes of bounded size. Returns
    /// also the traces to pass again (rule 3 in the module docs).
    async fn derive_traces(
        &mut self,
        traces: &[String],
    ) -> Result<(PassSummary, Vec<String>), StoreError> {
        let mut total = PassSummary::default();
        let mut again = Vec::new();
        for chunk in traces.chunks(self.config.max_traces_per_pass) {
            let (summary, more) = self.derive_isolating(chunk).await?;
            total += summary;
            again.extend(more);
        }
        Ok((total, again))
    }

    /// One pass over `traces`, unless ClickHouse refuses it for good (an error retrying cannot
    /// fix, such as bad stored data): then the set is halved until the traces that cause the
    /// refusal stand alone; those are logged and skipped, and every other trace is derived.
    /// Without this, one bad trace would block every trace that arrives with it, forever.
    /// Retryable errors (ClickHouse down or slow) return at once: the whole set waits.
    async fn derive_isolating(
        &mut self,
        traces: &[String],
    ) -> Result<(PassSummary, Vec<String>), StoreError> {
        let mut total = PassSummary::default();
        let mut again = Vec::new();
        let mut pending = vec![traces];
        while let Some(set) = pending.pop() {
            match self.pass(set).await {
                Ok((summary, more)) => {
                    total += summary;
                    again.extend(more);
                }
                Err(err) if err.is_retryable() => return Err(err),
                Err(err) => {
                    self.metrics.sessionize_failures.increment(1);
                    if let [trace] = set {
                        self.metrics.sessionize_skipped_traces.increment(1);
                        // Forgotten: read back whole when it comes again.
                        self.cache.forget_trace(trace);
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
        Ok((total, again))
    }

    async fn pass(&mut self, traces: &[String]) -> Result<(PassSummary, Vec<String>), StoreError> {
        // A deletion waits for the pass: it must not derive what the deletion just removed.
        let _hold = self.store.hold_writes().await;
        let deletions = self.store.deletions();
        if deletions != self.deletions_seen {
            // Spans in memory may be gone from ClickHouse: read everything back from now on.
            self.cache.clear();
            self.deletions_seen = deletions;
        }
        let _timer = self.metrics.sessionize_pass();

        // Every trace of every session touched, as stored, and where each belongs now: the
        // sessions of the changed traces (old and new), the traces those sessions have in
        // ClickHouse (some stored and derived by other instances), and so on until closed.
        let mut now_in: BTreeMap<String, String> = BTreeMap::new();
        let mut states: BTreeMap<String, SessionState> = BTreeMap::new();
        let mut checked: BTreeSet<String> = BTreeSet::new();
        let mut newest = 0;
        let mut to_check: Vec<String> = traces.to_vec();
        while !to_check.is_empty() {
            // The sessions this instance last knew them in, which another may have left.
            let mut touched: BTreeSet<String> = to_check
                .iter()
                .filter_map(|t| self.cache.stored_session(t))
                .map(str::to_owned)
                .collect();
            newest = newest.max(self.hold_current(&to_check).await?);
            for trace in &to_check {
                // The session a trace forms alone until its key arrives, which a pass that
                // died before recording where the trace went may have left.
                touched.insert(trace.clone());
                if let Some(old) = self.cache.stored_session(trace) {
                    touched.insert(old.to_owned());
                }
                if let Some(spans) = self.cache.spans(trace) {
                    let session =
                        sessionize::trace_session_key(spans).unwrap_or_else(|| trace.clone());
                    touched.insert(session.clone());
                    now_in.insert(trace.clone(), session);
                }
            }
            checked.extend(to_check.drain(..));
            let new: Vec<String> = touched
                .into_iter()
                .filter(|s| !states.contains_key(s))
                .collect();
            if new.is_empty() {
                break;
            }
            let found = self.store.session_states(&new).await?;
            to_check = found
                .values()
                .flat_map(|state| &state.traces)
                .filter(|t| !checked.contains(*t))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            states.extend(found);
        }
        let mut members: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (trace, session) in &now_in {
            members
                .entry(session.as_str())
                .or_default()
                .insert(trace.clone());
        }

        // Above every revision read and every span stamp seen: whatever the clocks, these
        // rows replace the ones they were derived after.
        let read = states.values().map(|s| s.revision).max().unwrap_or(0);
        let revision = self.next_revision(read.max(newest) + 1);
        let updated_at = unix_seconds(now_unix_nano());

        let mut changed: Vec<DerivedSession> = Vec::new();
        let mut tombstones = Vec::new();
        let mut trace_rows = Vec::new();
        let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut records = Vec::new();
        let mut unchanged = 0;
        for (session, state) in &states {
            let trace_ids = members.remove(session.as_str()).unwrap_or_default();
            let spans: Vec<(&Span, &SpanFacts)> = trace_ids
                .iter()
                .filter_map(|t| self.cache.read_spans(t))
                .flatten()
                .collect();
            if spans.is_empty() {
                if state.live {
                    tombstones.push(sessionize::tombstone(session, revision, updated_at));
                    written.insert(session.clone(), BTreeSet::new());
                }
                records.push(Derived {
                    session: session.clone(),
                    traces: BTreeSet::new(),
                    inputs: 0,
                    revision,
                });
                continue;
            }
            let inputs = self.cache.inputs(session, &trace_ids);
            let mut at = revision;
            if self.cache.unchanged(session, inputs, state.revision) {
                // Same spans, same rules, and nobody wrote it since: the rows are these.
                unchanged += 1;
                at = state.revision;
            } else {
                changed.push(sessionize::sessionize_read(
                    session,
                    spans,
                    revision,
                    updated_at,
                    &self.rules,
                ));
                trace_rows.extend(trace_ids.iter().map(|trace| {
                    let derived = self.cache.fingerprint(trace);
                    TraceSessionRow {
                        trace_id: trace.clone(),
                        session_id: session.clone(),
                        revision,
                        derived_through: derived.newest,
                        derived_spans: derived.spans,
                    }
                }));
                written.insert(session.clone(), trace_ids.clone());
            }
            records.push(Derived {
                session: session.clone(),
                traces: trace_ids,
                inputs,
                revision: at,
            });
        }
        self.store
            .write_derived(&trace_rows, &changed, &tombstones)
            .await?;
        self.cache.record(records);
        let again = self.still_current(&written, revision).await?;
        let evicted = self.cache.evict_to_bound();
        self.metrics
            .session_cache_evictions
            .increment(evicted as u64);
        self.metrics
            .sessions_derived
            .increment(changed.len() as u64);
        self.metrics.sessions_unchanged.increment(unchanged);
        self.report_memory();
        let summary = PassSummary {
            traces: traces.len(),
            sessions: changed.len(),
            removed_sessions: tombstones.len(),
            skipped_traces: 0,
        };
        Ok((summary, again))
    }

    /// Makes each of these traces whole in memory and equal to what ClickHouse holds: a
    /// trace whose stored spans are not exactly those held (spans another instance stored,
    /// a trace forgotten or never held, spans deleted) is read back. Returns the newest
    /// stamp of their stored spans.
    async fn hold_current(&mut self, traces: &[String]) -> Result<u64, StoreError> {
        let stored = self.store.trace_fingerprints(traces).await?;
        let stored_print = |t: &String| stored.get(t).copied().unwrap_or_default();
        let stale: Vec<String> = traces
            .iter()
            .filter(|t| self.cache.fingerprint(t) != stored_print(t))
            .cloned()
            .collect();
        // Held spans are every stored span: whole without reading.
        let complete: Vec<String> = traces
            .iter()
            .filter(|t| self.cache.fingerprint(t) == stored_print(t) && !self.cache.is_whole(t))
            .cloned()
            .collect();
        let newest = stored.values().map(|p| p.newest).max().unwrap_or(0);
        if stale.is_empty() && complete.is_empty() {
            return Ok(newest);
        }
        let unplaced: Vec<String> = stale.iter().chain(&complete).cloned().collect();
        let stored_sessions = self.store.trace_sessions(&unplaced).await?;
        let mut read = self.read_back(&stale).await?;
        for trace in &stale {
            self.cache.forget_trace(trace);
            let spans = read.remove(trace).unwrap_or_default();
            self.cache
                .make_whole(trace, spans, stored_sessions.get(trace).cloned());
        }
        for trace in &complete {
            self.cache
                .make_whole(trace, Vec::new(), stored_sessions.get(trace).cloned());
        }
        Ok(newest)
    }

    /// After a pass wrote these sessions (each with the traces it derived it from) at
    /// `revision`: the traces to pass again because another instance wrote one of the
    /// sessions since, or stored spans or placed traces the pass did not derive from.
    async fn still_current(
        &mut self,
        written: &BTreeMap<String, BTreeSet<String>>,
        revision: u64,
    ) -> Result<Vec<String>, StoreError> {
        if written.is_empty() {
            return Ok(Vec::new());
        }
        let sessions: Vec<String> = written.keys().cloned().collect();
        let states = self.store.session_states(&sessions).await?;
        let traces: Vec<String> = written
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let stored = self.store.trace_fingerprints(&traces).await?;
        let mut again = BTreeSet::new();
        for (session, derived_from) in written {
            let state = states.get(session).cloned().unwrap_or_default();
            let current = state.revision == revision
                && &state.traces == derived_from
                && derived_from.iter().all(|t| {
                    stored.get(t).copied().unwrap_or_default() == self.cache.fingerprint(t)
                });
            if !current {
                again.extend(derived_from.iter().cloned());
                again.extend(state.traces);
            }
        }
        Ok(again.into_iter().collect())
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

/// What is left of the quiet period before a pass: `debounce` from when the oldest span held
/// was stored (a unix-nanosecond stamp), all of it when no span is held (traces to pass
/// again, found by a sweep or a check).
fn quiet_period(debounce: Duration, oldest_stored: Option<u64>, now: u64) -> Duration {
    let waited = oldest_stored.map_or(0, |stored| now.saturating_sub(stored));
    debounce.saturating_sub(Duration::from_nanos(waited))
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
        let (done, mut again) = sessionizer.derive_traces(pass).await?;
        summary += done;
        // Instances serving beside the rebuild wrote some of these sessions meanwhile.
        while !again.is_empty() {
            tokio::time::sleep(Duration::from_millis(config.sessionize.debounce_ms)).await;
            let (done, more) = sessionizer.derive_traces(&again).await?;
            summary += done;
            again = more;
        }
        progress.inc(pass.len() as u64);
    }
    progress.finish_and_clear();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quiet_period_counts_from_the_oldest_span_held() {
        let debounce = Duration::from_millis(500);
        let ms = 1_000_000;
        let now = 10_000 * ms;
        assert_eq!(quiet_period(debounce, None, now), debounce);
        assert_eq!(quiet_period(debounce, Some(now), now), debounce);
        assert_eq!(
            quiet_period(debounce, Some(now - 300 * ms), now),
            Duration::from_millis(200)
        );
        assert_eq!(
            quiet_period(debounce, Some(now - 800 * ms), now),
            Duration::ZERO
        );
        // A stamp ahead of the clock (set back since the insert) waits it all.
        assert_eq!(quiet_period(debounce, Some(now + 900 * ms), now), debounce);
    }
}
