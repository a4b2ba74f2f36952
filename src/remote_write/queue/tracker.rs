//! Which WAL records have been delivered, and the checkpoint saved from it.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use super::super::metrics::QueueMetrics;
use crate::clock;
use crate::wal::{Position, Wal};

/// Which records have been delivered: a record's samples are counted out
/// to the shards and back in as they are acknowledged.
pub(super) struct Tracker {
    pub(super) state: Mutex<TrackState>,
    /// Woken when the delivered position moves, so it is saved at once.
    pub(super) moved: tokio::sync::Notify,
    /// `queue_highest_sent_timestamp_seconds`, set as batches are acknowledged.
    pub(super) highest_sent: Gauge<f64, AtomicU64>,
}

pub(super) struct Pending {
    pub(super) seq: u64,
    pub(super) end: Position,
    pub(super) remaining: usize,
    pub(super) oldest_ts: i64,
    /// Still being dealt: more samples may be added.
    pub(super) open: bool,
}

pub(super) struct TrackState {
    pub(super) pending: VecDeque<Pending>,
    pub(super) delivered: Position,
    pub(super) highest_sent_ts: i64,
}

impl Tracker {
    pub(super) fn new(start: Position, highest_sent: Gauge<f64, AtomicU64>) -> Tracker {
        Tracker {
            state: Mutex::new(TrackState {
                pending: VecDeque::new(),
                delivered: start,
                highest_sent_ts: i64::MIN,
            }),
            highest_sent,
            moved: tokio::sync::Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, TrackState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record `seq`, ending at `end`, dealt `samples` samples to the shards.
    pub(super) fn read(&self, seq: u64, end: Position, samples: usize, oldest_ts: i64) {
        self.open(seq, end);
        self.add(seq, samples, oldest_ts);
        self.close(seq);
    }

    /// Record `seq`, ending at `end`, is being dealt: it is not delivered
    /// before [`Tracker::close`], whatever is done with.
    pub(super) fn open(&self, seq: u64, end: Position) {
        self.lock().pending.push_back(Pending {
            seq,
            end,
            remaining: 0,
            oldest_ts: i64::MAX,
            open: true,
        });
    }

    /// `samples` more samples of the open record `seq` go to a shard (told
    /// before they go, so that they cannot be done with first).
    pub(super) fn add(&self, seq: u64, samples: usize, oldest_ts: i64) {
        let mut s = self.lock();
        if let Some(p) = s.pending.back_mut().filter(|p| p.seq == seq && samples > 0) {
            p.remaining += samples;
            p.oldest_ts = p.oldest_ts.min(oldest_ts);
        }
    }

    /// Every sample of record `seq` has been dealt. A record without
    /// samples moves the delivered position quietly (saved with the next).
    pub(super) fn close(&self, seq: u64) {
        let mut s = self.lock();
        let mut had_samples = false;
        if let Some(p) = s.pending.back_mut().filter(|p| p.seq == seq) {
            p.open = false;
            had_samples = p.oldest_ts != i64::MAX;
        }
        if s.advance() && had_samples {
            self.moved.notify_one();
        }
    }

    /// `samples` samples of record `seq` are done with.
    pub(super) fn done(&self, seq: u64, samples: usize, sent_ts: Option<i64>) {
        let mut s = self.lock();
        let i = s.pending.partition_point(|p| p.seq < seq);
        if let Some(p) = s.pending.get_mut(i).filter(|p| p.seq == seq) {
            p.remaining = p.remaining.saturating_sub(samples);
        }
        if let Some(ts) = sent_ts.filter(|&ts| ts > s.highest_sent_ts) {
            s.highest_sent_ts = ts;
            self.highest_sent.set(ts as f64 / 1000.0);
        }
        if s.advance() {
            self.moved.notify_one();
        }
    }

    pub(super) fn delivered(&self) -> Position {
        self.lock().delivered
    }

    pub(super) fn highest_sent_ts(&self) -> Option<i64> {
        Some(self.lock().highest_sent_ts).filter(|&t| t != i64::MIN)
    }

    /// Samples dealt to the shards and not yet acknowledged or rejected.
    pub(super) fn pending_samples(&self) -> u64 {
        self.lock().pending.iter().map(|p| p.remaining as u64).sum()
    }

    /// The timestamp of the oldest sample read and not yet done with.
    pub(super) fn oldest_unsent_ts(&self) -> Option<i64> {
        self.lock()
            .pending
            .iter()
            .find(|p| p.remaining > 0)
            .map(|p| p.oldest_ts)
    }
}

impl TrackState {
    /// Moves the delivered position past the records that are done;
    /// true if it moved.
    pub(super) fn advance(&mut self) -> bool {
        let before = self.delivered;
        while let Some(front) = self.pending.front() {
            if front.remaining > 0 || front.open {
                break;
            }
            self.delivered = front.end;
            self.pending.pop_front();
        }
        self.delivered != before
    }
}

/// Saves the checkpoint as soon as acknowledgements move it (at most
/// every 50 ms), and every second for the gauges, while the queue runs. A
/// checkpoint that trails what the receiver has means resending after a
/// crash, and a Prometheus receiver refuses an older resent sample.
pub(super) async fn save_checkpoints(
    wal: Arc<Wal>,
    name: String,
    tracker: Arc<Tracker>,
    metrics: QueueMetrics,
    mut abort: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => save(&wal, &name, &tracker, &metrics),
            _ = tracker.moved.notified() => {
                save(&wal, &name, &tracker, &metrics);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r = abort.changed() => {
                if r.is_err() || *abort.borrow() {
                    return;
                }
            }
        }
    }
}

pub(super) fn save(wal: &Wal, name: &str, tracker: &Tracker, metrics: &QueueMetrics) {
    let delivered = tracker.delivered();
    if let Err(e) = wal.save_checkpoint(name, delivered) {
        tracing::error!(error = %e, "cannot save the remote write checkpoint");
    }
    wal.truncate();
    let age = tracker
        .oldest_unsent_ts()
        .map_or(0.0, |ts| ((clock::now_ms() - ts) as f64 / 1000.0).max(0.0));
    metrics.oldest_unsent.set(age);
    metrics.status.set_pending(tracker.pending_samples());
}
