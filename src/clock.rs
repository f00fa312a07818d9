//! The wall clock, in the unit spans and revisions use.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix_nano() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
