//! The wall clock, read in one place: sample timestamps (milliseconds, as
//! Prometheus stores them) and the seconds of relay's own `*_timestamp_seconds`
//! metrics. A clock set before 1970 reads as 0 rather than panicking.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch: a sample's timestamp.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds since the epoch: the value of a `*_timestamp_seconds` gauge.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_read_the_same_clock() {
        let (ms, s) = (now_ms(), now_seconds());
        // After 2020-01-01 and the two within a minute of each other.
        assert!(ms > 1_577_836_800_000, "{ms}");
        assert!((s * 1000.0 - ms as f64).abs() < 60_000.0, "{s} vs {ms}");
    }
}
