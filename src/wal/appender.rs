//! The WAL's side of the storage seam: each target's [`WalAppender`] builds
//! one batch of records per scrape transaction, written in one go at commit
//! while the segment it was built for stays current, and keeps its own note
//! of which series the current segment has described.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::storage::{Appended, Appender, SeriesRef, Storage, Value};

use super::record::{frame, zigzag, RECORD_TARGET, SAMPLES, SERIES};
use super::{Wal, WalError};
use crate::varint;

/// Holds the segment current while a scrape's batch is built and appended.
pub struct AppendGuard {
    pub(super) wal: Arc<Wal>,
    pub(super) epoch: u32,
}

impl Drop for AppendGuard {
    fn drop(&mut self) {
        // The last batch of a full segment cuts it, if a `begin` left it.
        if self.wal.appending.fetch_sub(1, Ordering::AcqRel) == 1
            && self.wal.cut_waiting.swap(false, Ordering::AcqRel)
        {
            self.wal.cut_if_idle();
        }
    }
}

impl AppendGuard {
    /// The epoch to build the batch for (series appended first in it are described).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Writes the batch's records (not synced: see [`Wal::sync`]).
    pub fn append(&self, batch: &WalBatch) -> Result<(), WalError> {
        self.wal.append(&batch.early, batch.early_described)?;
        self.wal.append(&batch.out, batch.described)
    }

    /// Writes the batch's full series records now, so a scrape that
    /// describes many series (a target's first, or the first in a new
    /// segment) does not hold all their text until its end. Only
    /// descriptions go early: a series described and then not sampled (the
    /// scrape failed) costs the reader nothing. If the write fails they
    /// stay in the batch for [`AppendGuard::append`].
    pub fn spill(&self, batch: &mut WalBatch) {
        if batch.early.is_empty() {
            return;
        }
        if self.wal.append(&batch.early, batch.early_described).is_ok() {
            batch.early.clear();
            batch.early_described = 0;
        }
    }
}

/// What the WAL's appenders report in relay's own metrics.
#[derive(Clone, Default)]
pub struct AppendMetrics {
    /// The newest timestamp written (`prometheus_remote_storage_highest_timestamp_in_seconds`).
    pub highest_timestamp: Gauge<f64, AtomicU64>,
    /// Samples left out because their own timestamp was not newer.
    pub out_of_order: Counter,
    /// Samples lost because the WAL could not be written.
    pub write_failed: Counter,
}

/// The WAL as the scrape loops' durable storage.
pub struct WalStorage {
    pub wal: Arc<Wal>,
    pub metrics: AppendMetrics,
}

impl Storage for WalStorage {
    fn appender(&self, target: &str) -> Box<dyn Appender + Send> {
        let mut appender = WalAppender::new(self.wal.clone(), self.metrics.clone());
        appender.target = target.to_owned();
        Box::new(appender)
    }
}

/// Which series the current segment has described: a bit per ref from
/// `base` on. Refs are handed out in increasing order, so a target's live
/// series span a range not much wider than their number (a bit each);
/// the bits start over with each segment.
#[derive(Default)]
struct Described {
    epoch: Option<u32>,
    base: u64,
    words: Vec<u64>,
}

impl Described {
    /// Starts over for segment `epoch` unless it is the current one.
    fn at(&mut self, epoch: u32) {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.words = Vec::new();
        }
    }

    /// Notes `r` as described; true if it was not yet.
    fn insert(&mut self, r: SeriesRef) -> bool {
        if self.words.is_empty() {
            self.base = r & !63;
        } else if r < self.base {
            // An older series after newer ones: room below, an eighth more.
            let need = (self.base - (r & !63)) / 64;
            let grow = need.max(self.words.len() as u64 / 8).min(self.base / 64);
            self.words
                .splice(0..0, std::iter::repeat_n(0, grow as usize));
            self.base -= grow * 64;
        }
        let index = ((r - self.base) / 64) as usize;
        if index >= self.words.len() {
            self.words.resize(index + 1, 0);
        }
        let mask = 1u64 << (r % 64);
        let new = self.words[index] & mask == 0;
        self.words[index] |= mask;
        new
    }

    fn remove(&mut self, r: SeriesRef) {
        if let Some(word) = r
            .checked_sub(self.base)
            .and_then(|i| self.words.get_mut((i / 64) as usize))
        {
            *word &= !(1u64 << (r % 64));
        }
    }
}

/// One target's appender into the WAL (see the module documentation).
pub struct WalAppender {
    wal: Arc<Wal>,
    metrics: AppendMetrics,
    guard: Option<AppendGuard>,
    pub(super) batch: WalBatch,
    described: Described,
    /// Series described in this transaction: described again if it is
    /// rolled back or its write fails.
    newly: Vec<SeriesRef>,
    /// The target it appends for, in log lines.
    target: String,
}

impl WalAppender {
    pub fn new(wal: Arc<Wal>, metrics: AppendMetrics) -> Self {
        WalAppender {
            wal,
            metrics,
            guard: None,
            batch: WalBatch::default(),
            described: Described::default(),
            newly: Vec::new(),
            target: String::new(),
        }
    }

    fn forget_newly(&mut self) {
        for r in self.newly.drain(..) {
            self.described.remove(r);
        }
    }
}

impl Appender for WalAppender {
    fn begin(&mut self, timestamp_ms: i64) {
        let guard = self.guard.get_or_insert_with(|| self.wal.begin());
        self.described.at(guard.epoch);
        self.batch.begin(timestamp_ms);
        self.newly.clear();
    }

    fn append(&mut self, s: &Appended<'_>) {
        let Some(guard) = &self.guard else {
            // Appended outside a transaction: a caller's bug, nothing to write to.
            debug_assert!(false, "WAL append without begin");
            return;
        };
        let describe = self.described.insert(s.series_ref);
        if describe {
            self.newly.push(s.series_ref);
        }
        self.batch.append(s, describe);
        if !self.batch.early.is_empty() {
            guard.spill(&mut self.batch);
        }
    }

    fn rollback(&mut self) {
        self.batch.rollback();
        self.forget_newly();
    }

    fn commit(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        self.batch.finish();
        if self.batch.out_of_order > 0 {
            self.metrics
                .out_of_order
                .inc_by(self.batch.out_of_order as u64);
            tracing::debug!(
                samples = self.batch.out_of_order,
                "samples with timestamps not newer than their series' last one left out of the WAL"
            );
        }
        if !self.batch.is_empty() {
            match guard.append(&self.batch) {
                Ok(()) => {
                    let newest = self.batch.max_ts as f64 / 1000.0;
                    if newest > self.metrics.highest_timestamp.get() {
                        self.metrics.highest_timestamp.set(newest);
                    }
                }
                Err(e) => {
                    self.metrics.write_failed.inc_by(self.batch.count as u64);
                    tracing::error!(target = %self.target, samples = self.batch.count, error = %e, "cannot write the scrape to the WAL; its samples are lost");
                    self.forget_newly();
                }
            }
        }
        self.newly.clear();
        self.batch.give_back();
    }
}

/// One scrape's records, built by the pipeline as an [`Appender`] and
/// appended in one write; reused between scrapes.
#[derive(Debug, Default)]
pub struct WalBatch {
    /// The scrape's timestamp, for samples without their own.
    default_ts: i64,
    out: Vec<u8>,
    /// Full series records, written ahead of `out` (see [`AppendGuard::spill`]).
    early: Vec<u8>,
    early_described: u64,
    series: Vec<u8>,
    samples: Vec<u8>,
    last_ts: i64,
    /// Bytes of series records framed into `out`.
    described: u64,
    /// Samples in the batch, and the newest timestamp among them.
    pub count: usize,
    pub max_ts: i64,
    /// Samples left out because their own timestamp was not newer.
    pub out_of_order: usize,
}

impl WalBatch {
    /// Empties the batch for a scrape that started at `timestamp_ms`.
    pub fn begin(&mut self, timestamp_ms: i64) {
        self.default_ts = timestamp_ms;
        self.out.clear();
        self.early.clear();
        self.early_described = 0;
        self.series.clear();
        self.samples.clear();
        self.last_ts = 0;
        self.described = 0;
        self.count = 0;
        self.max_ts = i64::MIN;
        self.out_of_order = 0;
    }

    /// Drops what was added (a failed scrape appends none of its samples).
    pub fn rollback(&mut self) {
        let ts = self.default_ts;
        self.begin(ts);
    }

    /// Frames the open records; call before appending.
    pub fn finish(&mut self) {
        self.flush_series();
        frame(&mut self.out, SAMPLES, &self.samples);
        self.samples.clear();
        self.last_ts = 0;
    }

    fn flush_series(&mut self) {
        self.described += self.series.len() as u64;
        frame(&mut self.out, SERIES, &self.series);
        self.series.clear();
    }

    /// Gives back the space a much larger earlier batch left (see
    /// [`crate::buffers`]); call after appending.
    pub fn give_back(&mut self) {
        let used = self.len();
        crate::buffers::give_back(&mut self.out, used);
        crate::buffers::give_back(&mut self.early, used);
        crate::buffers::give_back(&mut self.series, used);
        crate::buffers::give_back(&mut self.samples, used);
    }

    /// Bytes of the framed records not written yet (after [`WalBatch::finish`]).
    pub fn len(&self) -> usize {
        self.early.len() + self.out.len()
    }

    /// Whether nothing is left to write (after [`WalBatch::finish`]).
    pub fn is_empty(&self) -> bool {
        self.early.is_empty() && self.out.is_empty()
    }
}

impl WalBatch {
    /// Adds a sample, after its series' labels when `describe`.
    pub fn append(&mut self, s: &Appended<'_>, describe: bool) {
        if describe {
            varint::put(&mut self.series, s.series_ref);
            varint::put(&mut self.series, s.series.len() as u64);
            self.series.extend_from_slice(s.series.as_bytes());
        }
        if !s.in_order {
            self.out_of_order += 1;
            return;
        }
        // Native histograms get a record type of their own with issue 21;
        // no scrape produces them before that.
        let Value::Float(value) = s.value else {
            return;
        };
        let ts = s.timestamp_ms.unwrap_or(self.default_ts);
        varint::put(&mut self.samples, s.series_ref);
        varint::put(&mut self.samples, zigzag(ts.wrapping_sub(self.last_ts)));
        self.samples
            .extend_from_slice(&value.to_bits().to_le_bytes());
        self.last_ts = ts;
        self.count += 1;
        self.max_ts = self.max_ts.max(ts);
        if self.samples.len() >= RECORD_TARGET {
            // The series this record refers to go first.
            self.finish();
        } else if self.series.len() >= RECORD_TARGET {
            // Early series records go before every record in `out`, so the
            // open samples record may stay open.
            self.early_described += self.series.len() as u64;
            frame(&mut self.early, SERIES, &self.series);
            self.series.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_refs_are_known_in_any_order_until_the_segment_changes() {
        let mut d = Described::default();
        d.at(1);
        let refs = [5_000, 5_001, 70, 1 << 20, 0, 64, 5_000 + 64 * 9];
        for r in refs {
            assert!(d.insert(r), "{r} new");
        }
        for r in refs {
            assert!(!d.insert(r), "{r} known");
        }
        assert!(d.insert(71));
        d.remove(70);
        assert!(d.insert(70), "removed, so new again");
        d.at(1);
        assert!(!d.insert(5_000), "same segment");
        d.at(2);
        assert!(
            refs.iter().all(|&r| d.insert(r)),
            "a new segment knows none"
        );
    }
}
