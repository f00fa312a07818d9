//! The spans of open conversations, kept in memory so the sessionizer derives them from the
//! spans the writer hands over instead of reading them back from ClickHouse. Bounded in bytes:
//! past the bound the least recently derived sessions are forgotten, and read back from
//! ClickHouse if they resume. No I/O here; the sessionizer decides what to read.
//!
//! A trace is *whole* when the cache holds every stored span of it: it was read from
//! ClickHouse, or found to be new, and every span stored since was added. Spans of any other
//! trace wait aside until the sessionizer has made the trace whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use twox_hash::XxHash3_128;

use crate::model::{Attributes, Span, SpanId};

/// A span with the time its insert was stamped: of two stored copies, the later one counts.
pub type StampedSpan = (u64, Span);

/// What a session's rows are derived from (its id and the content of each of its spans): the
/// same inputs always give the same rows, so a session whose inputs did not change since
/// its rows were written needs no new pass.
pub type Inputs = u128;

struct CachedSpan {
    ingested_at: u64,
    span: Span,
    /// Of the span's content, computed once when it arrives.
    digest: u128,
}

/// Digests are only compared within this process, so each process seeds them afresh: no
/// client can prepare spans that collide under a seed it knows.
static DIGEST_SEED: LazyLock<u64> = LazyLock::new(rand::random);

/// A 128-bit digest of some bytes.
fn digest(bytes: &[u8]) -> u128 {
    XxHash3_128::oneshot_with_seed(*DIGEST_SEED, bytes)
}

/// Digests spans by their content: the bytes their `Hash` writes (every field, each string
/// and list delimited), gathered in one buffer kept between spans.
#[derive(Default)]
struct SpanDigester {
    bytes: Vec<u8>,
}

impl SpanDigester {
    fn digest(&mut self, span: &Span) -> u128 {
        self.bytes.clear();
        span.hash(self);
        digest(&self.bytes)
    }
}

impl Hasher for SpanDigester {
    fn write(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn finish(&self) -> u64 {
        digest(&self.bytes) as u64
    }
}

#[derive(Default)]
struct CachedTrace {
    spans: HashMap<SpanId, CachedSpan>,
    bytes: usize,
    /// The last resource counted in `bytes`: spans of one request share theirs.
    last_resource: Option<Arc<Attributes>>,
    whole: bool,
    /// The session its trace -> session row names (None: no row yet).
    session: Option<String>,
}

impl CachedTrace {
    /// Keeps the later copy of a span; returns the change in bytes.
    fn add(&mut self, ingested_at: u64, span: Span, digester: &mut SpanDigester) -> isize {
        if self
            .spans
            .get(&span.span_id)
            .is_some_and(|kept| kept.ingested_at > ingested_at)
        {
            return 0;
        }
        let mut added = span.memory_bytes();
        if !self
            .last_resource
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, &span.resource))
        {
            added += span.resource.memory_bytes();
            self.last_resource = Some(Arc::clone(&span.resource));
        }
        let cached = CachedSpan {
            ingested_at,
            digest: digester.digest(&span),
            span,
        };
        let removed = self
            .spans
            .insert(cached.span.span_id, cached)
            .map_or(0, |old| old.span.memory_bytes());
        self.bytes = (self.bytes + added).saturating_sub(removed);
        added as isize - removed as isize
    }
}

struct CachedSession {
    traces: BTreeSet<String>,
    /// Its current stored row is not deleted.
    live: bool,
    /// Of what its rows last written were derived from; None if not written by this process.
    inputs: Option<Inputs>,
    last_used: u64,
}

/// What the sessionizer records after writing a session.
pub struct Derived {
    pub session: String,
    /// Empty: the session has no spans left and was removed.
    pub traces: BTreeSet<String>,
    pub inputs: Inputs,
}

pub struct SessionCache {
    max_bytes: usize,
    bytes: usize,
    traces: HashMap<String, CachedTrace>,
    sessions: HashMap<String, CachedSession>,
    /// Sessions by `last_used`, least recent first.
    by_use: BTreeMap<u64, String>,
    uses: u64,
    digester: SpanDigester,
}

impl SessionCache {
    pub fn new(max_bytes: usize) -> SessionCache {
        SessionCache {
            max_bytes,
            bytes: 0,
            traces: HashMap::new(),
            sessions: HashMap::new(),
            by_use: BTreeMap::new(),
            uses: 0,
            digester: SpanDigester::default(),
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Spans just stored, under the stamp of their insert.
    pub fn add_stored(&mut self, ingested_at: u64, spans: impl IntoIterator<Item = Span>) {
        for span in spans {
            // Looked up by the id's text on the stack: only a new trace allocates its key.
            let mut hex = [0; 32];
            let key = span.trace_id.hex_in(&mut hex);
            if !self.traces.contains_key(key) {
                self.traces.insert(key.to_owned(), CachedTrace::default());
            }
            if let Some(trace) = self.traces.get_mut(key) {
                let change = trace.add(ingested_at, span, &mut self.digester);
                self.bytes = self.bytes.saturating_add_signed(change);
            }
        }
    }

    /// Of these traces, those not held whole (an empty trace never is).
    pub fn not_whole(&self, traces: &[String]) -> Vec<String> {
        traces
            .iter()
            .filter(|t| !self.traces.get(*t).is_some_and(|c| c.whole))
            .cloned()
            .collect()
    }

    /// Whether spans of this trace were handed over since the cache last forgot it.
    pub fn has_reported_spans(&self, trace: &str) -> bool {
        self.traces.get(trace).is_some_and(|c| !c.spans.is_empty())
    }

    /// Makes a trace whole with its spans read from ClickHouse (none for a new trace) and the
    /// session its stored row names. A trace with no span at all is not kept.
    pub fn make_whole(&mut self, trace: &str, stored: Vec<StampedSpan>, session: Option<String>) {
        let entry = self.traces.entry(trace.to_owned()).or_default();
        let mut change = 0isize;
        for (ingested_at, span) in stored {
            change += entry.add(ingested_at, span, &mut self.digester);
        }
        entry.whole = true;
        entry.session = session;
        let empty = entry.spans.is_empty();
        self.bytes = self.bytes.saturating_add_signed(change);
        if empty {
            self.forget_trace(trace);
        }
    }

    /// The spans of a whole trace; None if the trace is not held whole or has none.
    pub fn spans(&self, trace: &str) -> Option<Vec<&Span>> {
        self.traces
            .get(trace)
            .filter(|c| c.whole && !c.spans.is_empty())
            .map(|c| c.spans.values().map(|cached| &cached.span).collect())
    }

    /// What a session of these whole traces is derived from. Order-free: a sum of digests
    /// (each span is held once).
    pub fn inputs(&self, session: &str, traces: &BTreeSet<String>) -> Inputs {
        traces
            .iter()
            .filter_map(|t| self.traces.get(t))
            .flat_map(|c| c.spans.values())
            .fold(digest(session.as_bytes()), |sum, cached| {
                sum.wrapping_add(cached.digest)
            })
    }

    /// The session a whole trace's stored row names.
    pub fn stored_session(&self, trace: &str) -> Option<&str> {
        self.traces.get(trace).and_then(|c| c.session.as_deref())
    }

    /// The traces of a session held with all of them whole, and whether its row is live.
    pub fn session(&self, session: &str) -> Option<(&BTreeSet<String>, bool)> {
        self.sessions.get(session).map(|s| (&s.traces, s.live))
    }

    /// Whether the session's rows last written were derived from these inputs.
    pub fn unchanged(&self, session: &str, inputs: Inputs) -> bool {
        self.sessions
            .get(session)
            .is_some_and(|s| s.inputs == Some(inputs))
    }

    /// Holds a session read from ClickHouse; every trace in `traces` must be whole.
    pub fn insert_session(&mut self, session: &str, traces: BTreeSet<String>, live: bool) {
        self.remove_session(session);
        let last_used = self.next_use(session);
        self.sessions.insert(
            session.to_owned(),
            CachedSession {
                traces,
                live,
                inputs: None,
                last_used,
            },
        );
    }

    /// Records what a pass wrote: each session's traces and rows, each trace's session.
    pub fn record(&mut self, derived: Vec<Derived>) {
        for d in derived {
            for trace in &d.traces {
                if let Some(cached) = self.traces.get_mut(trace) {
                    cached.session = Some(d.session.clone());
                }
            }
            self.remove_session(&d.session);
            if d.traces.is_empty() {
                // Tombstoned: nothing to keep, and a resumed session is read back.
                continue;
            }
            let last_used = self.next_use(&d.session);
            self.sessions.insert(
                d.session,
                CachedSession {
                    traces: d.traces,
                    live: true,
                    inputs: Some(d.inputs),
                    last_used,
                },
            );
        }
    }

    /// A trace that could not be derived: forgotten, so it is read back when it comes again.
    pub fn forget_trace(&mut self, trace: &str) {
        if let Some(cached) = self.traces.remove(trace) {
            self.bytes = self.bytes.saturating_sub(cached.bytes);
        }
    }

    /// Forgets least recently derived sessions, with their traces, until under the bound.
    /// Returns how many were forgotten. Traces not yet derived into a session are kept: they
    /// are what the next pass works on.
    pub fn evict_to_bound(&mut self) -> usize {
        let mut evicted = 0;
        while self.bytes > self.max_bytes {
            let Some((_, session)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(cached) = self.sessions.remove(&session) {
                for trace in &cached.traces {
                    self.forget_trace(trace);
                }
                evicted += 1;
            }
        }
        evicted
    }

    /// Forgets everything (after a deletion, which the cache must not outlive).
    pub fn clear(&mut self) {
        *self = SessionCache::new(self.max_bytes);
    }

    fn remove_session(&mut self, session: &str) {
        if let Some(old) = self.sessions.remove(session) {
            self.by_use.remove(&old.last_used);
        }
    }

    fn next_use(&mut self, session: &str) -> u64 {
        self.uses += 1;
        self.by_use.insert(self.uses, session.to_owned());
        self.uses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conventions::fixtures;
    use crate::model::TraceId;

    fn span(trace: u8, id: u8, name: &str) -> Span {
        fixtures::span(name).trace(trace).id(id).build()
    }

    fn names(cache: &SessionCache, trace: &str) -> Vec<String> {
        let mut names: Vec<String> = cache
            .spans(trace)
            .map(|s| s.into_iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_trace_counts_once_it_is_whole_and_the_latest_copy_wins() {
        let mut cache = SessionCache::new(1 << 20);
        let trace = TraceId::from([1; 16]).to_hex();
        cache.add_stored(20, [span(1, 1, "new copy")]);
        assert!(cache.spans(&trace).is_none());
        assert!(cache.has_reported_spans(&trace));
        let traces = [trace.clone()];
        assert_eq!(cache.not_whole(&traces), traces);
        cache.make_whole(
            &trace,
            vec![(10, span(1, 1, "old copy")), (10, span(1, 2, "other"))],
            Some("s".into()),
        );
        assert_eq!(names(&cache, &trace), ["new copy", "other"]);
        assert!(cache.not_whole(&traces).is_empty());
        assert_eq!(cache.stored_session(&trace), Some("s"));
    }

    #[test]
    fn inputs_follow_the_content_of_spans_not_their_order_or_copies() {
        let held = |spans: Vec<Span>| {
            let mut cache = SessionCache::new(1 << 20);
            let trace = TraceId::from([1; 16]).to_hex();
            for (at, span) in (1..).zip(spans) {
                cache.add_stored(at, [span]);
            }
            cache.make_whole(&trace, Vec::new(), None);
            cache.inputs("s", &[trace].into())
        };
        let a = || span(1, 1, "a");
        let b = || span(1, 2, "b");
        assert_eq!(held(vec![a(), b()]), held(vec![b(), a(), a()]));
        assert_ne!(
            held(vec![a(), b()]),
            held(vec![a(), span(1, 2, "b changed")])
        );
        assert_ne!(held(vec![a()]), held(vec![a(), b()]));
    }

    #[test]
    fn least_recently_derived_sessions_go_first_and_bytes_follow() {
        let mut cache = SessionCache::new(1 << 20);
        let derive = |cache: &mut SessionCache, trace: u8, session: &str| {
            let id = TraceId::from([trace; 16]).to_hex();
            cache.add_stored(1, [span(trace, 1, &"x".repeat(1000))]);
            cache.make_whole(&id, Vec::new(), None);
            cache.record(vec![Derived {
                session: session.into(),
                traces: [id].into(),
                inputs: u128::from(trace),
            }]);
        };
        derive(&mut cache, 1, "a");
        derive(&mut cache, 2, "b");
        derive(&mut cache, 1, "a");
        let full = cache.bytes();
        assert!(full > 2000);
        cache.max_bytes = full - 1;
        assert_eq!(cache.evict_to_bound(), 1);
        assert!(cache.session("b").is_none());
        assert!(cache.session("a").is_some());
        assert!(cache.unchanged("a", 1));
        assert!(cache.bytes() < full && cache.bytes() > 1000);
        cache.max_bytes = 0;
        assert_eq!(cache.evict_to_bound(), 1);
        assert_eq!((cache.bytes(), cache.session_count()), (0, 0));
    }
}
