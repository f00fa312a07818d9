//! A pass derives a session from the spans the session cache holds, with the facts it read
//! when each span arrived: whatever the arrival order, batches and re-sent copies, that must
//! give exactly the rows of a from-scratch `sessionize` of the same spans.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;
use crate::pipeline::session_cache::SessionCache;

/// The spans of `voice`, one trace per turn (each turn span a root), as OpenInference sends them.
fn trace_per_turn(spans: Vec<Span>) -> Vec<Span> {
    spans
        .into_iter()
        .filter(|s| s.name != "conversation")
        .map(|mut s| {
            let mut trace = *s.trace_id.as_bytes();
            trace[15] = trace[15].wrapping_add((s.start_unix_nano / 5_000_000_000) as u8);
            s.trace_id = TraceId::from(trace);
            if s.name == "turn" {
                s.parent_span_id = None;
            }
            s
        })
        .collect()
}

fn conversations() -> Vec<Vec<Span>> {
    let call = || {
        let mut turns = vec![t("hello", "hi there"), t("book a table", "done")];
        turns[1].interrupted = true;
        turns[1].tool = Some(("book", true));
        turns.push(t("thanks", "bye"));
        voice(turns, true, &[])
    };
    vec![pipecat(), livekit(), call(), trace_per_turn(call())]
}

#[test]
fn deriving_from_held_spans_equals_deriving_from_scratch_in_any_arrival() {
    let rules = Rules::default();
    for (n, spans) in conversations().into_iter().enumerate() {
        for seed in 0..40u64 {
            let mut rng = StdRng::seed_from_u64(seed * 31 + n as u64);
            let mut arriving = spans.clone();
            // Re-sent copies of a few spans, some of them changed: the copy stored last counts.
            for resend in 0..rng.random_range(0..4usize) {
                let mut copy = arriving[rng.random_range(0..spans.len())].clone();
                if resend % 2 == 1 {
                    copy.status_message = "changed".into();
                    copy.attributes = copy.attributes.iter().skip(1).collect();
                }
                arriving.push(copy);
            }
            arriving.shuffle(&mut rng);
            let mut cache = SessionCache::new(usize::MAX);
            let mut traces = BTreeSet::new();
            let mut arrived: HashMap<(TraceId, SpanId), Span> = HashMap::new();
            let mut stamp = 0;
            while !arriving.is_empty() {
                let take = rng.random_range(1..=arriving.len().min(6));
                let batch: Vec<Span> = arriving.drain(..take).collect();
                let new: Vec<String> = batch.iter().map(|s| s.trace_id.to_hex()).collect();
                arrived.extend(batch.iter().map(|s| ((s.trace_id, s.span_id), s.clone())));
                stamp += 1;
                cache.add_stored(stamp, batch);
                for trace in cache.not_whole(&new) {
                    cache.make_whole(&trace, Vec::new(), None);
                }
                traces.extend(new);
                let held = traces.iter().filter_map(|t| cache.read_spans(t)).flatten();
                let incremental = sessionize_read("s", held, stamp, 7, &rules);
                let scratch = sessionize("s", arrived.values(), stamp, 7, &rules);
                assert_eq!(
                    incremental, scratch,
                    "conversation {n}, seed {seed}, batch {stamp}"
                );
            }
        }
    }
}
