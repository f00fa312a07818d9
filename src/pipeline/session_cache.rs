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

use crate::conventions::{self, SpanFacts};
use crate::model::span::heap_bytes;
use crate::model::{Attributes, Span, SpanId};
use crate::store::Fingerprint;

/// A trace id as the cache keys it, in hex.
const HEX_TRACE_ID: usize = 32;

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
    /// What conventions say about the span, read once when it arrives: a pass derives a
    /// session from these instead of reading every span of it again.
    facts: SpanFacts,
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

/// What a hash map's table takes: hashbrown keeps at most 7 of 8 slots full, with a control
/// byte per slot.
fn table_bytes<K, V>(map: &HashMap<K, V>) -> usize {
    heap_bytes(map.capacity() * 8 / 7 * (std::mem::size_of::<(K, V)>() + 1))
}

/// What a held span takes besides its slot in the trace's table: its box, and the span's heap
/// bytes. Its facts are counted by their size in the box only: the texts they copy are small
/// beside the span's own (within 2% for a Pipecat-like request, checked below), except a
/// parsed LLM context, which is not counted.
fn held_bytes(span: &Span) -> usize {
    heap_bytes(std::mem::size_of::<CachedSpan>()) + span.heap_bytes()
}

#[derive(Default)]
struct CachedTrace {
    /// Boxed: a span with its facts is near a kilobyte, and a table keeps up to twice the
    /// slots it fills; its slots then take 16 bytes, and growing it moves no span.
    spans: HashMap<SpanId, Box<CachedSpan>>,
    /// What the spans take outside the table, and the resources and scopes counted.
    heap: usize,
    /// The last resource counted in `heap`: spans of one request share theirs.
    last_resource: Option<Arc<Attributes>>,
    whole: bool,
    /// The session its trace -> session row names (None: no row yet).
    session: Option<String>,
}

impl CachedTrace {
    /// What the trace takes, its entry in the cache's table of traces and its key included.
    fn bytes(&self) -> usize {
        (std::mem::size_of::<(String, CachedTrace)>() + 1) * 8 / 7
            + heap_bytes(HEX_TRACE_ID)
            + table_bytes(&self.spans)
            + self.heap
            + self
                .session
                .as_ref()
                .map_or(0, |s| heap_bytes(s.capacity()))
    }

    /// Keeps the later copy of a span.
    fn add(&mut self, ingested_at: u64, span: Span, digester: &mut SpanDigester) {
        if self
            .spans
            .get(&span.span_id)
            .is_some_and(|kept| kept.ingested_at > ingested_at)
        {
            return;
        }
        self.heap += held_bytes(&span);
        if !self
            .last_resource
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, &span.resource))
        {
            self.heap += span.shared_bytes();
            self.last_resource = Some(Arc::clone(&span.resource));
        }
        let cached = Box::new(CachedSpan {
            ingested_at,
            digest: digester.digest(&span),
            facts: conventions::read(&span),
            span,
        });
        if let Some(old) = self.spans.insert(cached.span.span_id, cached) {
            self.heap = self.heap.saturating_sub(held_bytes(&old.span));
        }
    }

    /// Of the spans held, as [`Fingerprint`] summarises the stored ones.
    fn fingerprint(&self) -> Fingerprint {
        self.spans
            .values()
            .fold(Fingerprint::default(), |print, cached| Fingerprint {
                spans: print.spans + 1,
                stamps: print.stamps.wrapping_add(cached.ingested_at),
                newest: print.newest.max(cached.ingested_at),
            })
    }
}

struct CachedSession {
    traces: BTreeSet<String>,
    /// Of what its rows last written were derived from.
    inputs: Inputs,
    /// The revision they were written at: while it is still the stored one, no other
    /// instance wrote the session since.
    revision: u64,
    last_used: u64,
}

impl CachedSession {
    /// What the session takes: its entry in the table of sessions and in `by_use`, each with a
    /// copy of its id, and its set of traces (B-tree nodes about two thirds full).
    fn bytes(&self, id: &str) -> usize {
        let entry = (std::mem::size_of::<(String, CachedSession)>() + 1) * 8 / 7;
        let by_use = std::mem::size_of::<(u64, String)>() * 3 / 2;
        let per_trace = std::mem::size_of::<String>() * 3 / 2 + heap_bytes(HEX_TRACE_ID);
        entry + by_use + 2 * heap_bytes(id.len()) + self.traces.len() * per_trace
    }
}

/// What the sessionizer records after writing a session.
pub struct Derived {
    pub session: String,
    /// Empty: the session has no spans left and was removed.
    pub traces: BTreeSet<String>,
    pub inputs: Inputs,
    pub revision: u64,
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
                let before = trace.bytes();
                trace.add(ingested_at, span, &mut self.digester);
                self.bytes = (self.bytes + trace.bytes()).saturating_sub(before);
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

    /// Whether the trace is held whole.
    pub fn is_whole(&self, trace: &str) -> bool {
        self.traces.get(trace).is_some_and(|c| c.whole)
    }

    /// Of the spans of this trace held, whole or not.
    pub fn fingerprint(&self, trace: &str) -> Fingerprint {
        self.traces
            .get(trace)
            .map_or_else(Fingerprint::default, CachedTrace::fingerprint)
    }

    /// Makes a trace whole with its spans read from ClickHouse (none for a new trace) and the
    /// session its stored row names. A trace with no span at all is not kept.
    pub fn make_whole(&mut self, trace: &str, stored: Vec<StampedSpan>, session: Option<String>) {
        let entry = self.traces.entry(trace.to_owned()).or_default();
        let before = entry.bytes();
        for (ingested_at, span) in stored {
            entry.add(ingested_at, span, &mut self.digester);
        }
        entry.whole = true;
        entry.session = session;
        let empty = entry.spans.is_empty();
        self.bytes = (self.bytes + entry.bytes()).saturating_sub(before);
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

    /// The spans of a whole trace with their facts; None if the trace is not held whole or
    /// has none.
    pub fn read_spans(&self, trace: &str) -> Option<Vec<(&Span, &SpanFacts)>> {
        self.traces
            .get(trace)
            .filter(|c| c.whole && !c.spans.is_empty())
            .map(|c| c.spans.values().map(|c| (&c.span, &c.facts)).collect())
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

    /// Whether the session's stored rows are the ones this process last wrote (at
    /// `stored_revision`), derived from these inputs.
    pub fn unchanged(&self, session: &str, inputs: Inputs, stored_revision: u64) -> bool {
        self.sessions
            .get(session)
            .is_some_and(|s| s.inputs == inputs && s.revision == stored_revision)
    }

    /// Records what a pass wrote: each session's traces and rows, each trace's session.
    pub fn record(&mut self, derived: Vec<Derived>) {
        for d in derived {
            for trace in &d.traces {
                if let Some(cached) = self.traces.get_mut(trace) {
                    let before = cached.bytes();
                    cached.session = Some(d.session.clone());
                    self.bytes = (self.bytes + cached.bytes()).saturating_sub(before);
                }
            }
            self.remove_session(&d.session);
            if d.traces.is_empty() {
                // Tombstoned: nothing to keep, and a resumed session is read back.
                continue;
            }
            let last_used = self.next_use(&d.session);
            let cached = CachedSession {
                traces: d.traces,
                inputs: d.inputs,
                revision: d.revision,
                last_used,
            };
            self.bytes += cached.bytes(&d.session);
            self.sessions.insert(d.session, cached);
        }
    }

    /// A trace that could not be derived: forgotten, so it is read back when it comes again.
    pub fn forget_trace(&mut self, trace: &str) {
        if let Some(cached) = self.traces.remove(trace) {
            self.bytes = self.bytes.saturating_sub(cached.bytes());
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
                self.bytes = self.bytes.saturating_sub(cached.bytes(&session));
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
            self.bytes = self.bytes.saturating_sub(old.bytes(session));
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
        assert_eq!(cache.fingerprint(&trace).spans, 1);
        let traces = [trace.clone()];
        assert_eq!(cache.not_whole(&traces), traces);
        cache.make_whole(
            &trace,
            vec![(10, span(1, 1, "old copy")), (10, span(1, 2, "other"))],
            Some("s".into()),
        );
        assert_eq!(names(&cache, &trace), ["new copy", "other"]);
        // As ClickHouse summarises the stored spans: each once, in its latest copy.
        let print = Fingerprint {
            spans: 2,
            stamps: 30,
            newest: 20,
        };
        assert_eq!(cache.fingerprint(&trace), print);
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
    fn the_byte_count_is_what_the_allocator_holds() {
        use crate::model::allocations::{measure, pipecat_like_request};
        use crate::model::otlp::{self, SpanLimits};
        use prost::Message;
        let body = pipecat_like_request(400).encode_to_vec();
        let mut cache = SessionCache::new(usize::MAX);
        let ((), held) = measure(|| {
            let request =
                otlp::ExportTraceServiceRequest::decode(body.as_slice()).expect("decodes");
            let spans = otlp::convert(request, &SpanLimits::default(), u64::MAX / 2).spans;
            let traces: BTreeSet<String> = spans.iter().map(|s| s.trace_id.to_hex()).collect();
            cache.add_stored(1, spans);
            for trace in &traces {
                cache.make_whole(trace, Vec::new(), None);
            }
            cache.record(vec![Derived {
                session: "a session".into(),
                traces,
                inputs: 1,
                revision: 1,
            }]);
        });
        let counted = cache.bytes();
        assert!(
            counted >= held * 85 / 100 && counted <= held * 115 / 100,
            "counted {counted} bytes, the allocator holds {held}"
        );
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
                revision: 7,
            }]);
        };
        derive(&mut cache, 1, "a");
        derive(&mut cache, 2, "b");
        derive(&mut cache, 1, "a");
        let full = cache.bytes();
        assert!(full > 2000);
        cache.max_bytes = full - 1;
        assert_eq!(cache.evict_to_bound(), 1);
        assert!(!cache.unchanged("b", 2, 7));
        assert!(cache.unchanged("a", 1, 7));
        assert!(
            !cache.unchanged("a", 1, 8),
            "another instance wrote it since"
        );
        assert!(cache.bytes() < full && cache.bytes() > 1000);
        cache.max_bytes = 0;
        assert_eq!(cache.evict_to_bound(), 1);
        assert_eq!((cache.bytes(), cache.session_count()), (0, 0));
    }
}
