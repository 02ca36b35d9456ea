//! The wall clock, read where the node needs it (message and binding times are unix times;
//! everything else runs on `Instant`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time, milliseconds.
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Unix time, seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
