//! How many shards the load needs, as Prometheus computes it: every ten
//! seconds, from the time sending one sample took and the rates in and out.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

use super::shard::SendStats;
use super::tracker::Tracker;

/// How often the desired number of shards is computed (as Prometheus).
const RESHARD_EVERY: Duration = Duration::from_secs(10);

/// What the computation needs between its runs.
pub(super) struct Resharder {
    pub(super) min: usize,
    pub(super) max: usize,
    last: Instant,
    /// Samples dealt since the last run.
    samples_in: u64,
    /// The shards' samples out and busy time at the last run.
    last_stats: (u64, Duration),
}

impl Resharder {
    pub(super) fn new(min: usize, max: usize) -> Self {
        Resharder {
            min,
            max,
            last: Instant::now(),
            samples_in: 0,
            last_stats: (0, Duration::ZERO),
        }
    }

    /// Counts samples dealt to the shards.
    pub(super) fn dealt(&mut self, samples: usize) {
        self.samples_in += samples as u64;
    }

    /// Every ten seconds: the desired number of shards (for its gauge) and
    /// the number to run now, if it should change from `current` (never
    /// while sends are failing: more shards would not help).
    pub(super) fn due(
        &mut self,
        current: usize,
        stats: &Mutex<SendStats>,
        tracker: &Tracker,
        highest_wal_ts: &Gauge<f64, AtomicU64>,
    ) -> Option<(f64, Option<usize>)> {
        if self.last.elapsed() < RESHARD_EVERY {
            return None;
        }
        let elapsed = self.last.elapsed().as_secs_f64();
        let (out, busy, failing) = {
            let s = stats.lock().unwrap_or_else(PoisonError::into_inner);
            let failing = s
                .last_failure
                .is_some_and(|t| t.elapsed() < RESHARD_EVERY * 2);
            (s.samples_out, s.busy, failing)
        };
        let (d_out, d_busy) = (out - self.last_stats.0, busy - self.last_stats.1);
        self.last_stats = (out, busy);
        let in_rate = self.samples_in as f64 / elapsed;
        self.samples_in = 0;
        self.last = Instant::now();
        if d_out == 0 {
            return None;
        }
        let time_per_sample = d_busy.as_secs_f64() / d_out as f64;
        let lag_s = tracker.highest_sent_ts().map_or(0.0, |sent| {
            (highest_wal_ts.get() * 1000.0 - sent as f64).max(0.0) / 1000.0
        });
        let (desired, n) = desired_shards(
            current,
            in_rate,
            time_per_sample,
            lag_s * in_rate,
            self.min,
            self.max,
        );
        Some((desired, (n != current && !failing).then_some(n)))
    }
}

/// Prometheus's shard computation: the time sending one sample takes, times
/// the samples coming in per second plus 5% of the backlog, clamped, and
/// left alone within ±30% of the current number.
pub(super) fn desired_shards(
    current: usize,
    in_rate: f64,
    time_per_sample: f64,
    backlog_samples: f64,
    min: usize,
    max: usize,
) -> (f64, usize) {
    let desired = time_per_sample * (in_rate + 0.05 * backlog_samples);
    let n = if desired > current as f64 * 1.3 || desired < current as f64 * 0.7 {
        desired.ceil() as usize
    } else {
        current
    };
    (desired, n.clamp(min.max(1), max.max(min).max(1)))
}
