//! Wall-clock time for what is stamped with it (sample timestamps, the
//! reload timestamp): a leaf, so that a module needing the time imports
//! no module above it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch, as sample timestamps are written; 0 for a
/// clock set before 1970.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the epoch, as Prometheus's `*_timestamp_seconds` gauges
/// have them.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_tell_the_same_time() {
        let (ms, s) = (now_ms(), now_seconds());
        assert!(ms > 1_600_000_000_000, "{ms}");
        // Read one after the other: within a second of each other.
        assert!((s - ms as f64 / 1000.0).abs() < 1.0, "{s} vs {ms}");
    }
}
