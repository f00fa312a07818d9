//! The stages that run for as long as the server does, and what they hand each other: the
//! receivers pass a [`Batch`] to the span [`writer`], which inserts it, acknowledges it and
//! hands the [`sessionizer`] what it [`Stored`]; [`retention`] removes what is past
//! its window.

pub mod retention;
pub mod session_cache;
pub mod sessionizer;
pub mod writer;

use tokio::sync::{oneshot, OwnedSemaphorePermit};

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

/// Why a batch was not stored, as much as the client needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// ClickHouse is down, slow or overloaded: the same batch may succeed later.
    Unavailable,
    /// ClickHouse refused the data: sending it again cannot succeed.
    Rejected,
}

/// Told to the sessionizer after each successful insert.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Traces whose sessions must be derived again.
    pub trace_ids: Vec<String>,
    /// The spans just stored, which the sessionizer keeps instead of reading them back.
    pub spans: Vec<Span>,
    pub ingested_at_unix_nano: u64,
}
