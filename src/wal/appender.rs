//! The WAL's side of a scrape: one batch of records per scrape, appended in
//! one write while the segment it was built for stays current.

use crate::scrape::append::{Appended, Appender};

use super::record::{frame, zigzag, RECORD_TARGET, SAMPLES, SERIES};
use super::{Wal, WalError};
use crate::varint;
use std::sync::atomic::Ordering;

/// Holds the segment current while a scrape's batch is built and appended.
pub struct AppendGuard<'w> {
    pub(super) wal: &'w Wal,
    pub(super) epoch: u32,
}

impl Drop for AppendGuard<'_> {
    fn drop(&mut self) {
        // The last batch of a full segment cuts it, if a `begin` left it.
        if self.wal.appending.fetch_sub(1, Ordering::AcqRel) == 1
            && self.wal.cut_waiting.swap(false, Ordering::AcqRel)
        {
            self.wal.cut_if_idle();
        }
    }
}

impl AppendGuard<'_> {
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

/// The WAL's side of a scrape: its batch, whose series records are written
/// as they fill up (see [`AppendGuard::spill`]).
pub struct Spilling<'b, 'w> {
    pub batch: &'b mut WalBatch,
    pub guard: &'b AppendGuard<'w>,
}

impl Appender for Spilling<'_, '_> {
    fn append(&mut self, s: &Appended<'_>) {
        self.batch.append(s);
        if !self.batch.early.is_empty() {
            self.guard.spill(self.batch);
        }
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

impl Appender for WalBatch {
    fn append(&mut self, s: &Appended<'_>) {
        if s.describe {
            varint::put(&mut self.series, s.series_ref);
            varint::put(&mut self.series, s.series.len() as u64);
            self.series.extend_from_slice(s.series.as_bytes());
        }
        if !s.in_order {
            self.out_of_order += 1;
            return;
        }
        let ts = s.timestamp_ms.unwrap_or(self.default_ts);
        varint::put(&mut self.samples, s.series_ref);
        varint::put(&mut self.samples, zigzag(ts.wrapping_sub(self.last_ts)));
        self.samples
            .extend_from_slice(&s.value.to_bits().to_le_bytes());
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
