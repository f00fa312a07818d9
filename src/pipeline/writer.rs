//! The span writer: takes batches from the receivers, inserts them in groups of up to
//! `batch_max_spans` or every `batch_max_wait`, then acknowledges each request. It reads no
//! new input while an insert is in flight, so a slow ClickHouse pushes back on the receivers.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{Batch, NotStored, Stored};
use crate::clock::now_unix_nano;
use crate::config;
use crate::store::{SpanRow, Store};
use crate::telemetry::Metrics;

pub async fn run(
    store: Store,
    config: config::Ingest,
    mut batches: mpsc::Receiver<Batch>,
    stored: mpsc::UnboundedSender<Stored>,
    metrics: Arc<Metrics>,
) {
    let mut last_stamp = 0u64;
    while let Some(first) = batches.recv().await {
        let deadline = tokio::time::Instant::now() + config.batch_max_wait();
        let mut group = vec![first];
        let mut span_count = group[0].spans.len();
        while span_count < config.batch_max_spans {
            match tokio::time::timeout_at(deadline, batches.recv()).await {
                Ok(Some(batch)) => {
                    span_count += batch.spans.len();
                    group.push(batch);
                }
                // Channel closed (shutting down) or time is up: write what we have.
                Ok(None) | Err(_) => break,
            }
        }
        // Strictly increasing, so "ingested after X" never misses a batch written in the same nanosecond.
        let ingested_at = now_unix_nano().max(last_stamp + 1);
        last_stamp = ingested_at;
        let rows: Vec<SpanRow> = group
            .iter()
            .flat_map(|b| b.spans.iter())
            .map(|span| SpanRow::from_span(span, ingested_at))
            .collect();
        let started = Instant::now();
        let result = store.insert_spans(&rows).await;
        metrics.insert_duration.record(started.elapsed());
        match &result {
            Ok(()) => {
                metrics.batches_written.increment(1);
                metrics.batch_spans_written.increment(rows.len() as u64);
                metrics.insert_batch_spans.record(rows.len() as f64);
                let mut trace_ids: Vec<String> = rows.into_iter().map(|r| r.trace_id).collect();
                trace_ids.sort();
                trace_ids.dedup();
                // The sessionizer gone means shutdown; the spans are stored and the next start catches up.
                let _ = stored.send(Stored {
                    trace_ids,
                    ingested_at_unix_nano: ingested_at,
                });
            }
            Err(err) => {
                metrics.batch_failures.increment(1);
                tracing::warn!(error = %err, spans = rows.len(), "span insert failed; clients will retry");
            }
        }
        let outcome = result.map_err(|err| {
            if err.is_retryable() {
                NotStored::Unavailable
            } else {
                NotStored::Rejected
            }
        });
        for batch in group {
            // A client that gave up waiting is not an error here.
            let _ = batch.ack.send(outcome);
        }
    }
    tracing::info!("span writer drained");
}
