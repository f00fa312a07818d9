//! The stages that run for as long as the server does, and what they hand each other: the
//! receivers pass a [`Batch`] to the span [`writer`], which inserts it, acknowledges it and
//! hands the [`sessionizer`] what it [`Stored`]; [`retention`] removes what is past
//! its window.

pub mod retention;
pub mod session_cache;
pub mod sessionizer;
pub mod writer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use crate::model::Span;

/// What the writer receives: spans to store and where to report the outcome.
pub struct Batch {
    pub spans: Vec<Span>,
    pub ack: oneshot::Sender<Result<(), NotStored>>,
    /// Room under the pending-span cap, released when the batch is dropped after its insert.
    pub permit: OwnedSemaphorePermit,
    /// Room under the pending-bytes cap, likewise.
    pub bytes_permit: OwnedSemaphorePermit,
}

/// The writer's end of the receivers' queue.
pub struct Incoming {
    pub batches: mpsc::Receiver<Batch>,
    pub arrivals: Arc<Arrivals>,
}

impl Incoming {
    /// No request is on its way and none waits in the queue: nothing more can join the group
    /// the writer gathers until a client is answered (clients keep a bounded number of
    /// exports in flight), so waiting longer for one only adds latency.
    pub fn nothing_on_the_way(&self) -> bool {
        self.arrivals.on_the_way.load(Ordering::SeqCst) == 0 && self.batches.is_empty()
    }
}

/// Requests being decoded and converted, on their way to the writer's queue.
#[derive(Default)]
pub struct Arrivals {
    on_the_way: AtomicUsize,
    none_left: Notify,
}

impl Arrivals {
    /// Counts a request as on its way until the returned guard is dropped.
    pub fn arriving(self: &Arc<Self>) -> Arriving {
        self.on_the_way.fetch_add(1, Ordering::SeqCst);
        Arriving(Arc::clone(self))
    }

    /// Resolves when the count next falls to zero. Enable it before checking the count, so a
    /// request that leaves in between still wakes the waiter.
    pub fn none_left(&self) -> Notified<'_> {
        self.none_left.notified()
    }
}

/// A request on its way to the writer; dropped once it is converted or has failed.
pub struct Arriving(Arc<Arrivals>);

impl Drop for Arriving {
    fn drop(&mut self) {
        if self.0.on_the_way.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

/// Why a batch was not stored, as much as the client needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// ClickHouse is down, slow or overloaded: the same batch may succeed later.
    Unavailable,
    /// ClickHouse refused the data: sending it again cannot succeed.
    Rejected,
}

/// Told to the sessionizer after each successful insert.
#[derive(Debug)]
pub struct Stored {
    /// Traces whose sessions must be derived again.
    pub trace_ids: Vec<String>,
    /// The spans just stored, which the sessionizer keeps instead of reading them back.
    pub spans: Vec<Span>,
    pub ingested_at_unix_nano: u64,
    /// What the spans take in memory ([`Span::memory_bytes`]).
    pub bytes: usize,
    /// Room under the hand-over's bound, held until the spans are derived.
    pub room: OwnedSemaphorePermit,
}

/// The writer's end of the hand-over to the sessionizer, bounded by what the spans take in
/// memory: the spans reported and not yet derived stay under `max_bytes`, so a sessionizer
/// that falls behind holds up the writer (and so the receivers) instead of piling up spans.
#[derive(Clone)]
pub struct HandOver {
    reports: mpsc::Sender<Stored>,
    room: Arc<Semaphore>,
    max_bytes: u32,
}

/// Reports in the queue at most; the bytes are the bound that matters.
const HAND_OVER_REPORTS: usize = 64;

impl HandOver {
    pub fn new(max_bytes: usize) -> (HandOver, mpsc::Receiver<Stored>) {
        let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX).max(1);
        let (reports, receiver) = mpsc::channel(HAND_OVER_REPORTS);
        let hand_over = HandOver {
            reports,
            room: Arc::new(Semaphore::new(max_bytes as usize)),
            max_bytes,
        };
        (hand_over, receiver)
    }

    /// Waits for room for the spans (one insert larger than the bound takes all of it), then
    /// reports them. Fails only when the sessionizer has stopped.
    pub async fn send(
        &self,
        trace_ids: Vec<String>,
        spans: Vec<Span>,
        ingested_at_unix_nano: u64,
    ) -> Result<(), Stopped> {
        let bytes = spans.iter().map(Span::memory_bytes).sum::<usize>();
        let wanted = u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_bytes);
        let room = Arc::clone(&self.room)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| Stopped)?;
        self.reports
            .send(Stored {
                trace_ids,
                spans,
                ingested_at_unix_nano,
                bytes,
                room,
            })
            .await
            .map_err(|_| Stopped)
    }
}

/// The sessionizer has stopped (shutting down).
#[derive(Debug)]
pub struct Stopped;
