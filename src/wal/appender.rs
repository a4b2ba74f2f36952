//! The WAL's side of the storage seam: each target's [`WalAppender`] builds
//! one batch of records per scrape transaction, written in one go at commit
//! while the segment it was built for stays current, and keeps its own note
//! of which series the current segment has described.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::exposition::MetricType;
use crate::storage::{Appended, Appender, Exemplar, Family, Histogram, SeriesRef, Storage, Value};

use super::record::{
    put_exemplar, put_histogram, put_metadata, put_start, zigzag, FamilyMetadata, Records,
    EXEMPLARS, HISTOGRAMS, METADATA, SAMPLES, SERIES, STARTS,
};
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
        self.wal.append(batch.records(), batch.described())
    }

    /// Writes the batch's full series records now, so a scrape that
    /// describes many series (a target's first, or the first in a new
    /// segment) does not hold all their text until its end. Only
    /// descriptions go early: a series described and then not sampled (the
    /// scrape failed) costs the reader nothing. If the write fails they
    /// stay in the batch for [`AppendGuard::append`].
    pub fn spill(&self, batch: &mut WalBatch) {
        if self.wal.append(batch.early(), batch.described()).is_ok() {
            batch.early_written();
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
/// the bits start over with each segment. The series the current
/// transaction described have a bit in `newly` too, to be described again
/// if it is rolled back or its write fails (a bit, where a list of their
/// refs took 8 bytes a series in a target's first scrape).
#[derive(Default)]
struct Described {
    epoch: Option<u32>,
    base: u64,
    words: Vec<u64>,
    /// As `words` (same base and length), for this transaction only.
    newly: Vec<u64>,
    /// Whether any bit of `newly` is set.
    any_newly: bool,
}

impl Described {
    /// Starts over for segment `epoch` unless it is the current one.
    fn at(&mut self, epoch: u32) {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.words = Vec::new();
            self.newly = Vec::new();
            self.any_newly = false;
        }
    }

    /// Notes `r` as described (in this transaction); true if it was not yet.
    /// Inlined for a ref within the bits (every sample of a steady scrape).
    #[inline]
    fn insert(&mut self, r: SeriesRef) -> bool {
        // `words` empty: nothing is within, whatever `base` says.
        let within = r
            .checked_sub(self.base)
            .and_then(|d| usize::try_from(d / 64).ok())
            .filter(|&index| index < self.words.len());
        match within {
            Some(index) => self.set(index, 1u64 << (r % 64)),
            None => self.insert_outside(r),
        }
    }

    /// Sets the bit `mask` of word `index` (within both lists); true if it was clear.
    #[inline]
    fn set(&mut self, index: usize, mask: u64) -> bool {
        let (Some(word), Some(newly)) = (self.words.get_mut(index), self.newly.get_mut(index))
        else {
            return false;
        };
        let new = *word & mask == 0;
        if new {
            *word |= mask;
            *newly |= mask;
            self.any_newly = true;
        }
        new
    }

    /// [`Described::insert`] of a ref the bits do not reach yet: they grow.
    #[inline(never)]
    fn insert_outside(&mut self, r: SeriesRef) -> bool {
        if self.words.is_empty() {
            self.base = r & !63;
        } else if r < self.base {
            // An older series after newer ones: room below, an eighth more.
            let need = (self.base - (r & !63)) / 64;
            let grow = need.max(self.words.len() as u64 / 8).min(self.base / 64);
            for words in [&mut self.words, &mut self.newly] {
                words.splice(0..0, std::iter::repeat_n(0, grow as usize));
            }
            self.base -= grow * 64;
        }
        let index = ((r - self.base) / 64) as usize;
        if index >= self.words.len() {
            self.words.resize(index + 1, 0);
            self.newly.resize(index + 1, 0);
        }
        self.set(index, 1u64 << (r % 64))
    }

    /// The transaction's descriptions were written: they stay.
    fn settle(&mut self) {
        if std::mem::take(&mut self.any_newly) {
            self.newly.fill(0);
        }
    }

    /// The transaction's descriptions were lost: those series are new again.
    fn forget_newly(&mut self) {
        if std::mem::take(&mut self.any_newly) {
            for (word, newly) in self.words.iter_mut().zip(self.newly.iter_mut()) {
                *word &= !*newly;
                *newly = 0;
            }
        }
    }
}

/// One target's appender into the WAL (see the module documentation).
pub struct WalAppender {
    wal: Arc<Wal>,
    metrics: AppendMetrics,
    guard: Option<AppendGuard>,
    pub(super) batch: WalBatch,
    /// Series described in the current segment (and in this transaction).
    described: Described,
    /// The families whose metadata the current segment has (see [`Families`]).
    families: Families,
    /// The series' start timestamps the current segment has (see [`Starts`]).
    starts: Starts,
    /// The target it appends for, in log lines.
    target: String,
}

/// Which families' metadata (type, help, unit) this appender wrote in the
/// current segment, by name, with a hash of what it wrote: written again
/// in each segment (segments are self-contained) and when it changes.
/// Samples come family by family, so only a change of family is looked up
/// (and each family's first sample in a transaction).
#[derive(Default)]
struct Families {
    epoch: Option<u32>,
    written: std::collections::HashMap<String, u64>,
    last: String,
}

impl Families {
    /// A transaction starts in segment `epoch`: each family is checked
    /// again at its first sample (its metadata may have changed).
    fn at(&mut self, epoch: u32) {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.forget();
        }
        self.last.clear();
    }

    /// Forgets what was written (a rolled-back or failed batch lost it).
    fn forget(&mut self) {
        self.written.clear();
        self.last.clear();
    }

    /// Whether `family` needs a metadata entry now, noted as written.
    #[inline]
    fn changed(&mut self, family: &Family<'_>) -> bool {
        if family.name.is_empty() || family.name == self.last {
            return false;
        }
        self.changed_family(family)
    }

    /// [`Families::changed`] at a family's first sample (a lookup by name).
    #[inline(never)]
    fn changed_family(&mut self, family: &Family<'_>) -> bool {
        self.last.clear();
        self.last.push_str(&family.name);
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            metadata_type(family.kind).hash(&mut h);
            family.help.as_deref().hash(&mut h);
            family.unit.hash(&mut h);
            h.finish()
        };
        match self.written.get_mut(&*family.name) {
            Some(known) if *known == hash => false,
            Some(known) => {
                *known = hash;
                true
            }
            None => {
                self.written.insert(family.name.to_string(), hash);
                true
            }
        }
    }
}

/// The start (created) timestamp this appender wrote for each of its
/// series in the current segment: written again in each segment and when
/// it changes (a counter's reset), and as 0 when a series no longer has
/// one. Series without one cost one emptiness check per sample.
#[derive(Default)]
struct Starts {
    epoch: Option<u32>,
    written: hashbrown::HashMap<SeriesRef, i64>,
}

impl Starts {
    /// A transaction starts in segment `epoch`.
    fn at(&mut self, epoch: u32) {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.forget();
        }
    }

    /// Forgets what was written (a rolled-back or failed batch lost it).
    fn forget(&mut self) {
        self.written = hashbrown::HashMap::new();
    }

    /// The entry series `r` needs now that its sample has `start`, if any,
    /// noted as written.
    #[inline]
    fn change(&mut self, r: SeriesRef, start: Option<i64>) -> Option<i64> {
        match start {
            // 0 means none in the record; a start at the epoch is none too.
            Some(start) if start != 0 => match self.written.insert(r, start) {
                Some(known) if known == start => None,
                _ => Some(start),
            },
            _ if self.written.is_empty() => None,
            _ => self.written.remove(&r).map(|_| 0),
        }
    }
}

/// prompb's `MetricMetadata.MetricType` number of a family's type.
pub(super) fn metadata_type(kind: MetricType) -> u8 {
    match kind {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    }
}

impl WalAppender {
    pub fn new(wal: Arc<Wal>, metrics: AppendMetrics) -> Self {
        WalAppender {
            wal,
            metrics,
            guard: None,
            batch: WalBatch::default(),
            described: Described::default(),
            families: Families::default(),
            starts: Starts::default(),
            target: String::new(),
        }
    }

    fn forget_newly(&mut self) {
        self.described.forget_newly();
    }
}

impl Appender for WalAppender {
    fn begin(&mut self, timestamp_ms: i64) {
        let guard = self.guard.get_or_insert_with(|| self.wal.begin());
        self.described.at(guard.epoch);
        self.families.at(guard.epoch);
        self.starts.at(guard.epoch);
        self.batch.begin(timestamp_ms);
        self.described.settle();
    }

    #[inline]
    fn append(&mut self, s: &Appended<'_>) {
        let Some(guard) = &self.guard else {
            // Appended outside a transaction: a caller's bug, nothing to write to.
            debug_assert!(false, "WAL append without begin");
            return;
        };
        let describe = self.described.insert(s.series_ref);
        if self.families.changed(s.family) {
            self.batch.metadata(s.family);
        }
        if let Some(start) = self.starts.change(s.series_ref, s.start_timestamp_ms) {
            put_start(self.batch.starts.body(), s.series_ref, start);
        }
        self.batch.append(s, describe);
        if self.batch.series.has_closed() {
            guard.spill(&mut self.batch);
        }
    }

    fn rollback(&mut self) {
        self.batch.rollback();
        self.forget_newly();
        self.families.forget();
        self.starts.forget();
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
                    self.families.forget();
                    self.starts.forget();
                }
            }
        }
        self.described.settle();
        self.batch.give_back();
    }
}

/// One scrape's records, built by the pipeline as an [`Appender`] and
/// appended in one go; reused between scrapes. Each type's records are
/// framed where they are built (see [`Records`]) and written type by type:
/// series, metadata, start timestamps, samples, histograms, exemplars. So
/// a family's metadata, a series' description and its start come before
/// its samples, and exemplars after the samples they belong to, as a
/// reader needs them.
#[derive(Debug)]
pub struct WalBatch {
    /// The scrape's timestamp, for samples without their own.
    default_ts: i64,
    /// Series records; the closed ones may be written early (see
    /// [`AppendGuard::spill`]).
    series: Records,
    metadata: Records,
    /// Start timestamps (see [`Starts`]).
    starts: Records,
    samples: Records,
    /// The open record's last timestamp (timestamps are delta-encoded
    /// within a record), for samples, histograms and exemplars.
    last_ts: i64,
    histograms: Records,
    histograms_ts: i64,
    exemplars: Records,
    exemplars_ts: i64,
    /// Samples in the batch, and the newest timestamp among them.
    pub count: usize,
    pub max_ts: i64,
    /// Samples left out because their own timestamp was not newer.
    pub out_of_order: usize,
}

impl Default for WalBatch {
    fn default() -> Self {
        WalBatch {
            default_ts: 0,
            series: Records::new(SERIES),
            metadata: Records::new(METADATA),
            starts: Records::new(STARTS),
            samples: Records::new(SAMPLES),
            last_ts: 0,
            histograms: Records::new(HISTOGRAMS),
            histograms_ts: 0,
            exemplars: Records::new(EXEMPLARS),
            exemplars_ts: 0,
            count: 0,
            max_ts: i64::MIN,
            out_of_order: 0,
        }
    }
}

impl WalBatch {
    /// Empties the batch for a scrape that started at `timestamp_ms`.
    pub fn begin(&mut self, timestamp_ms: i64) {
        self.default_ts = timestamp_ms;
        for records in self.all_mut() {
            records.clear();
        }
        self.last_ts = 0;
        self.histograms_ts = 0;
        self.exemplars_ts = 0;
        self.count = 0;
        self.max_ts = i64::MIN;
        self.out_of_order = 0;
    }

    fn all(&self) -> [&Records; 6] {
        [
            &self.series,
            &self.metadata,
            &self.starts,
            &self.samples,
            &self.histograms,
            &self.exemplars,
        ]
    }

    fn all_mut(&mut self) -> [&mut Records; 6] {
        [
            &mut self.series,
            &mut self.metadata,
            &mut self.starts,
            &mut self.samples,
            &mut self.histograms,
            &mut self.exemplars,
        ]
    }

    /// Drops what was added (a failed scrape appends none of its samples).
    pub fn rollback(&mut self) {
        let ts = self.default_ts;
        self.begin(ts);
    }

    /// Closes the open records; call before appending.
    pub fn finish(&mut self) {
        for records in self.all_mut() {
            records.close();
        }
        self.last_ts = 0;
        self.histograms_ts = 0;
        self.exemplars_ts = 0;
    }

    /// The framed records, in the order they are written.
    pub(super) fn records(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        self.all().into_iter().flat_map(Records::closed)
    }

    /// Bytes of series records among them (see [`Wal::append`]).
    pub(super) fn described(&self) -> u64 {
        self.series.closed_len() as u64
    }

    /// The closed series records, to write ahead of the rest.
    pub(super) fn early(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        self.series.closed()
    }

    /// Drops the series records written ahead (see [`AppendGuard::spill`]).
    pub(super) fn early_written(&mut self) {
        self.series.drop_closed();
    }

    /// Drops the records once written: a batch holds no scrape's records
    /// between scrapes.
    pub fn give_back(&mut self) {
        for records in self.all_mut() {
            records.clear();
        }
    }

    /// Bytes of records not written yet, framed or not.
    pub fn len(&self) -> usize {
        self.all().iter().map(|r| r.len()).sum()
    }

    /// Whether nothing is left to write (after [`WalBatch::finish`]).
    pub fn is_empty(&self) -> bool {
        self.all().iter().all(|r| r.len() == 0)
    }
}

impl WalBatch {
    /// Adds a sample, after its series' labels when `describe`. A float
    /// sample of a described series (a steady scrape's every sample) is
    /// inlined; the rest is out of line.
    #[inline]
    pub fn append(&mut self, s: &Appended<'_>, describe: bool) {
        if describe {
            self.describe(s);
        }
        if !s.in_order {
            self.out_of_order += 1;
            return;
        }
        let ts = s.timestamp_ms.unwrap_or(self.default_ts);
        match s.value {
            Value::Float(value) => {
                let samples = self.samples.body();
                varint::put(samples, s.series_ref);
                varint::put(samples, zigzag(ts.wrapping_sub(self.last_ts)));
                samples.extend_from_slice(&value.to_bits().to_le_bytes());
                self.last_ts = ts;
                if self.samples.full() {
                    self.samples.close();
                    self.last_ts = 0;
                }
            }
            Value::Histogram(h) => self.histogram(s, h, ts),
        }
        if let Some(e) = s.exemplar {
            self.exemplar(s, e, ts);
        }
        self.count += 1;
        self.max_ts = self.max_ts.max(ts);
    }

    /// The series record entry of `s`: its ref and labels.
    #[inline(never)]
    fn describe(&mut self, s: &Appended<'_>) {
        let series = self.series.body();
        varint::put(series, s.series_ref);
        varint::put(series, s.series.len() as u64);
        s.series.write_to(series);
        if self.series.full() {
            self.series.close();
        }
    }

    /// A native histogram sample of `s` at `ts`.
    #[inline(never)]
    fn histogram(&mut self, s: &Appended<'_>, h: &Histogram, ts: i64) {
        let gauge = s.family.kind == MetricType::GaugeHistogram;
        let hint = if gauge { 3 } else { 0 };
        put_histogram(
            self.histograms.body(),
            self.histograms_ts,
            s.series_ref,
            ts,
            hint,
            h,
        );
        self.histograms_ts = ts;
        if self.histograms.full() {
            self.histograms.close();
            self.histograms_ts = 0;
        }
    }

    /// The exemplar `e` of `s`, whose sample is at `ts`.
    #[inline(never)]
    fn exemplar(&mut self, s: &Appended<'_>, e: &Exemplar<'_>, ts: i64) {
        // Without its own timestamp an exemplar takes its sample's,
        // as Prometheus's scrape loop gives it.
        let ets = e.timestamp_ms.unwrap_or(ts);
        put_exemplar(
            self.exemplars.body(),
            self.exemplars_ts,
            s.series_ref,
            ets,
            e.value,
            e.labels,
        );
        self.exemplars_ts = ets;
        if self.exemplars.full() {
            self.exemplars.close();
            self.exemplars_ts = 0;
        }
    }
}

impl WalBatch {
    /// Adds `family`'s metadata (written before the batch's samples).
    pub fn metadata(&mut self, family: &Family<'_>) {
        put_metadata(
            self.metadata.body(),
            &FamilyMetadata {
                kind: metadata_type(family.kind),
                name: family.name.as_bytes(),
                help: family.help.as_deref().unwrap_or("").as_bytes(),
                unit: family.unit.unwrap_or("").as_bytes(),
            },
        );
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
        d.settle();
        assert!(d.insert(71));
        d.forget_newly();
        assert!(!d.insert(70), "settled before");
        assert!(d.insert(71), "forgotten, so new again");
        d.at(1);
        assert!(!d.insert(5_000), "same segment");
        d.at(2);
        assert!(
            refs.iter().all(|&r| d.insert(r)),
            "a new segment knows none"
        );
    }

    #[test]
    fn a_lost_transaction_forgets_only_its_own_descriptions_wherever_the_base_moved() {
        let mut d = Described::default();
        d.at(1);
        assert!(d.insert(10_000) && d.insert(10_001));
        d.settle();
        // New refs above and far below the base (the bits are moved up).
        assert!(d.insert(10_002) && d.insert(10) && d.insert(9_000));
        d.forget_newly();
        for r in [10_000, 10_001] {
            assert!(!d.insert(r), "{r} was written before");
        }
        for r in [10_002, 10, 9_000] {
            assert!(d.insert(r), "{r} is new again");
        }
        d.settle();
        d.forget_newly();
        assert!(!d.insert(10), "settled: kept");
    }
}
