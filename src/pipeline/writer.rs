//! The span writer: takes batches from the receivers, inserts them in groups of up to
//! `batch_max_spans` or every `batch_max_wait`, then acknowledges each request. A group of
//! `batch_min_spans` or more is written at once when no other request is on its way: its
//! clients wait for the answer before they send more, so a longer wait would add latency
//! and nothing else. Up to `max_inserts_in_flight` inserts run at once, and each hands the
//! spans it stored to the sessionizer; while all are running (or waiting for the sessionizer
//! to take their report) it takes no new input, so a slow ClickHouse or sessionizer pushes
//! back on the receivers.
//!
//! A group merges many clients' requests into one INSERT. When ClickHouse refuses a merged
//! insert for good, each request is inserted on its own, so only the one at fault fails.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{Batch, HandOver, Incoming, NotStored};
use crate::clock::now_unix_nano;
use crate::config;
use crate::model::{Span, TraceId};
use crate::store::Store;
use crate::telemetry::Metrics;

pub async fn run(
    store: Store,
    config: config::Ingest,
    mut incoming: Incoming,
    stored: HandOver,
    metrics: Arc<Metrics>,
) {
    let slots = Arc::new(Semaphore::new(config.max_inserts_in_flight));
    let mut inserts = JoinSet::new();
    // Inserts tell the sessionizer what they stored in the order they were stamped, so its
    // progress ("everything ingested up to X is derived") never passes an insert still running.
    let (first, mut previous_reported) = oneshot::channel();
    let _ = first.send(());
    let mut last_stamp = 0u64;
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let Some(first) = incoming.batches.recv().await else {
            break;
        };
        let deadline = tokio::time::Instant::now() + config.batch_max_wait();
        let mut group = vec![first];
        let mut span_count = group[0].spans.len();
        while span_count < config.batch_max_spans {
            let large_enough = span_count >= config.batch_min_spans;
            let none_left = incoming.arrivals.none_left();
            tokio::pin!(none_left);
            none_left.as_mut().enable();
            if large_enough && incoming.nothing_on_the_way() {
                break;
            }
            tokio::select! {
                received = tokio::time::timeout_at(deadline, incoming.batches.recv()) => match received {
                    Ok(Some(batch)) => {
                        span_count += batch.spans.len();
                        group.push(batch);
                    }
                    // Channel closed (shutting down) or time is up: write what we have.
                    Ok(None) | Err(_) => break,
                },
                // The last request on its way was queued or failed: look again.
                () = &mut none_left, if large_enough => {}
            }
        }
        // Strictly increasing, so "ingested after X" never misses a batch written in the same nanosecond.
        let ingested_at = now_unix_nano().max(last_stamp + 1);
        last_stamp = ingested_at;
        let (reported, next_reported) = oneshot::channel();
        let order = Order {
            after: std::mem::replace(&mut previous_reported, next_reported),
            reported,
        };
        inserts.spawn(write_group(
            store.clone(),
            group,
            ingested_at,
            slot,
            order,
            stored.clone(),
            Arc::clone(&metrics),
        ));
        // Finished inserts have nothing to hand back; reap them as we go.
        while inserts.try_join_next().is_some() {}
    }
    while inserts.join_next().await.is_some() {}
    tracing::info!("span writer drained");
}

/// An insert's place in the order of reports to the sessionizer.
struct Order {
    /// Resolves (or is dropped) once the insert before has reported.
    after: oneshot::Receiver<()>,
    /// Resolved (or dropped) once this one has.
    reported: oneshot::Sender<()>,
}

/// Inserts a group, acknowledges each of its requests and tells the sessionizer what was stored.
async fn write_group(
    store: Store,
    group: Vec<Batch>,
    ingested_at: u64,
    slot: OwnedSemaphorePermit,
    order: Order,
    stored: HandOver,
    metrics: Arc<Metrics>,
) {
    let (store, metrics) = (&store, &*metrics);
    let mut spans: Vec<&Span> = Vec::with_capacity(group.iter().map(|b| b.spans.len()).sum());
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(group.len());
    for batch in &group {
        let start = spans.len();
        spans.extend(&batch.spans);
        ranges.push(start..spans.len());
    }
    let outcomes: Vec<Result<(), NotStored>> =
        match insert(store, &spans, ingested_at, metrics).await {
            Err(NotStored::Rejected) if group.len() > 1 => {
                tracing::info!(
                    requests = group.len(),
                    "merged span insert refused; inserting each request on its own"
                );
                let mut outcomes = Vec::with_capacity(ranges.len());
                for range in &ranges {
                    outcomes.push(insert(store, &spans[range.clone()], ingested_at, metrics).await);
                }
                outcomes
            }
            merged => vec![merged; group.len()],
        };
    drop(spans);
    let mut stored_spans: Vec<Span> = Vec::new();
    for (batch, outcome) in group.into_iter().zip(outcomes) {
        // A client that gave up waiting is not an error here.
        let _ = batch.ack.send(outcome);
        if outcome.is_ok() {
            // Moved, not copied: the sessionizer keeps these spans instead of reading them back.
            stored_spans.extend(batch.spans);
        }
    }
    // Deduplicated as ids, so only each trace's text is allocated, not each span's.
    let mut ids: Vec<TraceId> = stored_spans.iter().map(|s| s.trace_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let trace_ids: Vec<String> = ids.iter().map(TraceId::to_hex).collect();
    // A dropped sender (the insert before failed to finish) means there is nothing to wait for.
    let _ = order.after.await;
    if !trace_ids.is_empty() {
        // The sessionizer gone means shutdown; the spans are stored and the next start catches up.
        let _ = stored.send(trace_ids, stored_spans, ingested_at).await;
    }
    let _ = order.reported.send(());
    // Held until the sessionizer has taken the report, so a sessionizer that falls behind
    // slows the writer down rather than piling up reports.
    drop(slot);
}

/// One INSERT of span rows, measured and logged.
async fn insert(
    store: &Store,
    spans: &[&Span],
    ingested_at: u64,
    metrics: &Metrics,
) -> Result<(), NotStored> {
    let count = spans.len() as u64;
    let started = Instant::now();
    let result = store.insert_spans(spans, ingested_at).await;
    metrics.insert_duration.record(started.elapsed());
    match result {
        Ok(()) => {
            metrics.batches_written.increment(1);
            metrics.batch_spans_written.increment(count);
            metrics.insert_batch_spans.record(count as f64);
            Ok(())
        }
        Err(err) => {
            metrics.batch_failures.increment(1);
            tracing::warn!(error = %err, spans = count, "span insert failed");
            Err(if err.is_retryable() {
                NotStored::Unavailable
            } else {
                NotStored::Rejected
            })
        }
    }
}
