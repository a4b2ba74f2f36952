//! The write-ahead log every remote-written sample goes through first.
//!
//! Segment files (`00000001`, `00000002`, ...) hold records framed as
//! `[length u32][CRC32-Castagnoli u32][type u8][body]` (little-endian), as
//! Prometheus's WAL checksums its records. Record types: series (a ref
//! and the series rendered as `name{labels}`), samples (ref, timestamp,
//! value), native histogram samples (ref, timestamp, the whole histogram,
//! integer or float counts), exemplars (ref, timestamp, value, labels) and
//! family metadata (type, name, help, unit, written by each target's
//! appender once per segment and when it changes, as series are). A reader
//! skips a type it does not know, and the first two are unchanged, so
//! segments written before the others existed read as they did. Every segment is self-contained: a series is described again the
//! first time it is appended in a new segment, so a reader can start at any
//! segment and segments can be deleted one by one, with no checkpointing of
//! series (the cost is one copy of the active series per segment, which is
//! why a segment grows with the number of series). Refs are only
//! meaningful within a segment; a new process starts a new segment.
//!
//! Each remote-write queue tails the WAL with a [`Reader`] from its own
//! checkpoint (a position saved after the receiver acknowledged everything
//! before it). A segment is deleted when every queue has delivered past it,
//! or, oldest first, when the WAL outgrows `relay.wal_max_size`; what that
//! drops is counted and logged.

mod appender;
mod checkpoint;
mod reader;
mod record;
mod segment;

pub use appender::{AppendGuard, AppendMetrics, WalAppender, WalBatch, WalStorage};
pub use reader::{Next, Reader};
pub use record::{
    ExemplarIter, FamilyMetadata, HistogramIter, HistogramSample, MetadataIter, Record, SampleIter,
    SeriesIter, StartIter,
};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::watch;

use segment::{count_samples, create_segment, io_err, repair, segment_name, sync_dir};

/// Why the WAL could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL directory {dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("WAL segment {path}: {source}")]
    Segment { path: PathBuf, source: io::Error },
    #[error("WAL checkpoint {path}: {source}")]
    Checkpoint { path: PathBuf, source: io::Error },
}

/// A place in the WAL: everything before `offset` in `segment`, and every
/// earlier segment, comes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u32,
    pub offset: u64,
}

/// The end of the data readers may read: the active segment and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    pub segment: u32,
    pub len: u64,
    /// True once the writer is closed for good (shutdown): no more data.
    pub closed: bool,
}

struct Writer {
    file: File,
    segment: u32,
    size: u64,
    /// Bytes of series records in the active segment.
    described: u64,
    /// Size of every segment on disk, the active one included.
    sizes: BTreeMap<u32, u64>,
}

/// The WAL of one relay process (shared by the scrape loops and the queues).
pub struct Wal {
    dir: PathBuf,
    max_size: u64,
    /// The least a segment is cut at: 1/8 of the cap, at most 128 MiB.
    segment_size: u64,
    /// Where the active segment is cut: at least `segment_size`, and eight
    /// times the series descriptions the last segment needed (every segment
    /// describes its series once, so a target with many series gets larger
    /// segments: descriptions stay under an eighth), at most half the cap.
    cut_at: AtomicU64,
    /// Bytes of series records in the active segment (the writer's count,
    /// readable without its lock).
    described: AtomicU64,
    /// Cutting a segment holds it alone; a batch's builder holds it shared
    /// only to count itself in `appending`.
    cut: RwLock<()>,
    /// Batches being built (a scrape reads its body meanwhile, over awaits,
    /// so no lock is held): the segment is cut only when there are none,
    /// so a batch is built and appended within one segment.
    appending: AtomicUsize,
    /// A `begin` found the segment full while batches were being built:
    /// the last of them cuts it.
    cut_waiting: AtomicBool,
    writer: Mutex<Writer>,
    epoch: AtomicU32,
    first: AtomicU32,
    /// The first segment of this process: everything before it was
    /// written by an earlier one, and may have been delivered already.
    opened: u32,
    head: watch::Sender<Head>,
    /// Each queue's delivered position, to know what may be deleted.
    checkpoints: Mutex<BTreeMap<String, Position>>,
    /// Samples dropped because of the size cap.
    dropped: prometheus_client::metrics::counter::Counter,
    size_gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`: repairs a torn tail, starts a new
    /// segment, and loads the checkpoints of `queues` (a queue without one
    /// starts at the new segment, and its checkpoint is written now, so a
    /// crash before its first delivery still resends from here).
    pub fn open(
        dir: &Path,
        max_size: u64,
        queues: &[String],
        dropped: prometheus_client::metrics::counter::Counter,
        size_gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Result<Wal, WalError> {
        let dir_err = |source| WalError::Dir {
            dir: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir.join("checkpoints")).map_err(dir_err)?;
        let mut sizes = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            let name = entry.file_name();
            let Some(segment) = name
                .to_str()
                .filter(|n| n.len() == 8)
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            sizes.insert(segment, len);
        }
        let mut previous = None;
        for &segment in sizes.keys() {
            if let Some(p) = previous {
                if segment != p + 1 {
                    tracing::warn!(
                        after = p,
                        next = segment,
                        "WAL segments are not sequential; the missing ones are skipped"
                    );
                }
            }
            previous = Some(segment);
        }
        if let Some((&last, len)) = sizes.iter_mut().next_back() {
            match repair(&dir.join(segment_name(last))) {
                Ok(valid) => *len = valid,
                // Readers skip what they cannot read; relay still starts.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check the last WAL segment for a torn tail")
                }
            }
        }
        let segment = sizes.keys().next_back().map_or(1, |s| s + 1);
        let path = dir.join(segment_name(segment));
        let file = create_segment(&path)?;
        sync_dir(dir);
        sizes.insert(segment, 0);
        let first = sizes.keys().next().copied().unwrap_or(segment);
        let max_size = max_size.max(1 << 20);
        let wal = Wal {
            dir: dir.to_owned(),
            max_size,
            segment_size: (max_size / 8).clamp(1 << 20, 128 << 20),
            cut_at: AtomicU64::new((max_size / 8).clamp(1 << 20, 128 << 20)),
            described: AtomicU64::new(0),
            cut: RwLock::new(()),
            appending: AtomicUsize::new(0),
            cut_waiting: AtomicBool::new(false),
            writer: Mutex::new(Writer {
                file,
                segment,
                size: 0,
                described: 0,
                sizes,
            }),
            epoch: AtomicU32::new(segment),
            first: AtomicU32::new(first),
            opened: segment,
            head: watch::Sender::new(Head {
                segment,
                len: 0,
                closed: false,
            }),
            checkpoints: Mutex::new(BTreeMap::new()),
            dropped,
            size_gauge,
        };
        for queue in queues {
            wal.register(queue)?;
        }
        wal.truncate();
        Ok(wal)
    }

    /// Where this process's data starts (see [`Wal::open`]).
    pub fn opened_at(&self) -> Position {
        Position {
            segment: self.opened,
            offset: 0,
        }
    }

    /// The directory, for log lines.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts a batch: the epoch (segment) it is built for stays current
    /// until the guard is dropped. Cuts a new segment first when the active
    /// one is full and no other batch is being built (else the last of them
    /// cuts it when it ends).
    pub fn begin(self: &Arc<Self>) -> AppendGuard {
        if self.full() {
            self.cut_if_idle();
        }
        let _shared = self.cut.read().unwrap_or_else(PoisonError::into_inner);
        self.appending.fetch_add(1, Ordering::AcqRel);
        AppendGuard {
            wal: self.clone(),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Cuts the full active segment unless a batch is being built for it
    /// (none can start meanwhile: they count themselves under the shared lock).
    fn cut_if_idle(&self) {
        let _alone = self.cut.write().unwrap_or_else(PoisonError::into_inner);
        if !self.full() {
            return;
        }
        if self.appending.load(Ordering::Acquire) > 0 {
            self.cut_waiting.store(true, Ordering::Release);
            return;
        }
        if let Err(e) = self.cut_segment() {
            tracing::error!(error = %e, "cannot start a new WAL segment; appending to the current one");
        }
    }

    /// Whether the active segment is cut before the next batch: at its
    /// size, or as soon as its series descriptions pass an eighth of it (a
    /// burst of new series). Readers hold every series of a segment until
    /// its end, so this gives the burst's back once the next segment, which
    /// describes only the series still written, is reached; a target that
    /// stays that large gets segments sized for it from then on (unless the
    /// cap already limits them).
    fn full(&self) -> bool {
        let cut_at = self.cut_at.load(Ordering::Relaxed);
        self.head.borrow().len >= cut_at
            || (self.described.load(Ordering::Relaxed).saturating_mul(8) > cut_at
                && cut_at < self.max_size / 2)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cut_segment(&self) -> Result<(), WalError> {
        let mut w = self.lock();
        let old = self.dir.join(segment_name(w.segment));
        w.file.sync_data().map_err(io_err(&old))?;
        let segment = w.segment + 1;
        let path = self.dir.join(segment_name(segment));
        w.file = create_segment(&path)?;
        let cut_at = w.described.saturating_mul(8).clamp(
            self.segment_size,
            (self.max_size / 2).max(self.segment_size),
        );
        self.cut_at.store(cut_at, Ordering::Relaxed);
        w.described = 0;
        self.described.store(0, Ordering::Relaxed);
        sync_dir(&self.dir);
        w.segment = segment;
        w.size = 0;
        w.sizes.insert(segment, 0);
        self.epoch.store(segment, Ordering::Release);
        self.head.send_replace(Head {
            segment,
            len: 0,
            closed: false,
        });
        drop(w);
        self.truncate();
        Ok(())
    }

    /// Writes `records` (framed) one after the other, `described` bytes of
    /// them series records; a failed write is cut off whole.
    fn append<'r>(
        &self,
        records: impl Iterator<Item = &'r [u8]> + Clone,
        described: u64,
    ) -> Result<(), WalError> {
        let len: u64 = records.clone().map(|r| r.len() as u64).sum();
        if len == 0 {
            return Ok(());
        }
        let mut w = self.lock();
        let path = self.dir.join(segment_name(w.segment));
        for bytes in records {
            if let Err(e) = w.file.write_all(bytes) {
                // Cut off a partial batch, so later appends stay readable.
                let size = w.size;
                let _ = w.file.set_len(size);
                let _ = w.file.seek(SeekFrom::Start(size));
                return Err(io_err(&path)(e));
            }
        }
        w.size += len;
        w.described += described;
        self.described.store(w.described, Ordering::Relaxed);
        let (segment, size) = (w.segment, w.size);
        w.sizes.insert(segment, size);
        let total: u64 = w.sizes.values().sum();
        drop(w);
        self.head.send_replace(Head {
            segment,
            len: size,
            closed: false,
        });
        self.size_gauge
            .set(i64::try_from(total).unwrap_or(i64::MAX));
        if total > self.max_size {
            self.enforce_cap();
        }
        Ok(())
    }

    /// Flushes the active segment to disk (the periodic sync and shutdown).
    pub fn sync(&self) -> Result<(), WalError> {
        let (file, path) = {
            let w = self.lock();
            let path = self.dir.join(segment_name(w.segment));
            (w.file.try_clone().map_err(io_err(&path))?, path)
        };
        file.sync_data().map_err(io_err(&path))
    }

    /// No more appends: readers finish at the current end.
    pub fn close(&self) {
        let _alone = self.cut.write().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "cannot sync the WAL at shutdown");
        }
        self.head.send_modify(|h| h.closed = true);
    }

    /// Watches the head, to wake readers when data arrives.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.head.subscribe()
    }

    /// The oldest segment still on disk.
    pub fn first_segment(&self) -> u32 {
        self.first.load(Ordering::Acquire)
    }
    /// Deletes the segments every queue has delivered past.
    pub fn truncate(&self) {
        let Some(slowest) = self.slowest() else {
            return;
        };
        let mut w = self.lock();
        let active = w.segment;
        let done: Vec<u32> = w
            .sizes
            .range(..slowest.segment.min(active))
            .map(|(&s, _)| s)
            .collect();
        for segment in done {
            let path = self.dir.join(segment_name(segment));
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete a delivered WAL segment");
                    continue;
                }
            }
            w.sizes.remove(&segment);
        }
        self.set_first(&w);
    }

    fn set_first(&self, w: &Writer) {
        let first = w.sizes.keys().next().copied().unwrap_or(w.segment);
        self.first.store(first, Ordering::Release);
        let total: u64 = w.sizes.values().sum();
        self.size_gauge
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    /// Drops the oldest segments until the WAL fits its cap again, counting
    /// the samples no queue had delivered yet.
    fn enforce_cap(&self) {
        let slowest = self.slowest().unwrap_or_default();
        let mut w = self.lock();
        loop {
            let total: u64 = w.sizes.values().sum();
            let Some((&oldest, _)) = w.sizes.iter().next() else {
                break;
            };
            if total <= self.max_size || oldest == w.segment {
                break;
            }
            let path = self.dir.join(segment_name(oldest));
            let from = if slowest.segment == oldest {
                slowest.offset
            } else {
                0
            };
            let lost = if slowest.segment > oldest {
                0
            } else {
                count_samples(&path, from)
            };
            if let Err(e) = fs::remove_file(&path) {
                tracing::error!(path = %path.display(), error = %e, "cannot delete a WAL segment over the size cap");
                break;
            }
            w.sizes.remove(&oldest);
            self.dropped.inc_by(lost);
            if lost > 0 {
                tracing::warn!(segment = oldest, samples = lost, max_size = self.max_size, "WAL over relay.wal_max_size: dropped its oldest segment before every queue delivered it");
            } else {
                // Every queue had delivered it (the checkpoint had not yet
                // let it be deleted): nothing lost.
                tracing::debug!(
                    segment = oldest,
                    max_size = self.max_size,
                    "WAL over relay.wal_max_size: dropped its oldest segment, already delivered"
                );
            }
        }
        self.set_first(&w);
    }
}

#[cfg(test)]
mod tests {
    use super::checkpoint::checkpoint_file;
    use super::record::{HEADER, RECORD_TARGET};
    use super::*;
    use crate::storage::{stale_nan, Appended, Appender as _, Family};
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;
    use std::sync::Arc;

    fn open(dir: &Path, max: u64, queues: &[&str]) -> (Arc<Wal>, Counter) {
        let dropped = Counter::default();
        let names: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
        let wal = Wal::open(dir, max, &names, dropped.clone(), Gauge::default()).expect("opens");
        (Arc::new(wal), dropped)
    }

    /// A target's appender into `wal`.
    fn appender(wal: &Arc<Wal>) -> WalAppender {
        WalAppender::new(wal.clone(), AppendMetrics::default())
    }

    /// Appends one scrape: `values` of series `m{i="k"}` (refs 100 + k) at
    /// `ts`; returns the bytes it wrote at commit.
    fn scrape(wal: &Arc<Wal>, ts: i64, values: &[f64], app: &mut WalAppender) -> usize {
        app.begin(ts);
        let family = Family::default();
        let texts: Vec<String> = (0..values.len())
            .map(|k| format!("m{{i=\"{k}\"}}"))
            .collect();
        for (k, &value) in values.iter().enumerate() {
            app.append(&Appended::float(
                100 + k as u64,
                &texts[k],
                1,
                &family,
                None,
                value,
            ));
        }
        let before = wal.head.borrow().len;
        app.commit();
        (wal.head.borrow().len - before) as usize
    }

    /// Everything a reader from `from` gets until it would wait: samples as
    /// (series text, ts, value bits), and the segments it entered.
    fn read_all(wal: &Arc<Wal>, from: Position) -> (Vec<(String, i64, u64)>, Vec<u32>) {
        let mut reader = Reader::new(wal.clone(), from);
        let mut series = std::collections::HashMap::new();
        let (mut out, mut segments) = (Vec::new(), Vec::new());
        loop {
            match reader.read_next() {
                Next::Record(Record::Series(it), _) => {
                    for (r, text) in it {
                        series.insert(r, String::from_utf8_lossy(text).into_owned());
                    }
                }
                Next::Record(Record::Samples(_), end) if end <= from => {}
                Next::Record(Record::Samples(it), _) => {
                    for (r, ts, v) in it {
                        let text = series
                            .get(&r)
                            .cloned()
                            .unwrap_or_else(|| format!("unknown ref {r}"));
                        out.push((text, ts, v.to_bits()));
                    }
                }
                Next::Record(_, _) => {}
                Next::NewSegment(s) => {
                    series.clear();
                    segments.push(s);
                }
                Next::Pending | Next::End => return (out, segments),
            }
        }
    }

    /// The timestamps a reader from the start of segment 1 gets.
    fn timestamps_from_the_start(wal: &Arc<Wal>) -> Vec<i64> {
        let start = Position {
            segment: 1,
            offset: 0,
        };
        read_all(wal, start).0.iter().map(|g| g.1).collect()
    }

    #[test]
    fn series_records_are_written_as_they_fill_and_the_samples_follow_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let texts: Vec<String> = (0..90_000)
            .map(|k| format!("spilled_series_name{{instance=\"{k}\",pad=\"xxxxxxxxxxxxxxxx\"}}"))
            .collect();
        let total: usize = texts.iter().map(String::len).sum();
        assert!(total > 2 * RECORD_TARGET);
        let mut app = appender(&wal);
        app.begin(1000);
        let family = Family::default();
        let before = wal.head.borrow().len;
        for (k, text) in texts.iter().enumerate() {
            app.append(&Appended::float(
                1 + k as u64,
                text,
                19,
                &family,
                None,
                k as f64,
            ));
        }
        let early = wal.head.borrow().len - before;
        assert!(early >= 2 * RECORD_TARGET as u64, "written early: {early}");
        let held = app.batch.len();
        assert!(held < total / 2, "held to the end: {held}");
        app.commit();
        let (got, _) = read_all(&wal, wal.checkpoint("q"));
        assert_eq!(got.len(), texts.len());
        for (k, (text, ts, bits)) in got.iter().enumerate() {
            assert_eq!((text, *ts, *bits), (&texts[k], 1000, (k as f64).to_bits()));
        }
    }

    #[test]
    fn a_reader_gets_every_sample_in_order_with_its_series() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let mut described = appender(&wal);
        scrape(&wal, 1000, &[1.0, 2.0], &mut described);
        scrape(&wal, 2000, &[3.0, stale_nan()], &mut described);
        let (got, _) = read_all(&wal, wal.checkpoint("q"));
        let want = vec![
            ("m{i=\"0\"}".to_owned(), 1000, 1f64.to_bits()),
            ("m{i=\"1\"}".to_owned(), 1000, 2f64.to_bits()),
            ("m{i=\"0\"}".to_owned(), 2000, 3f64.to_bits()),
            ("m{i=\"1\"}".to_owned(), 2000, 0x7ff0_0000_0000_0002),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_a_restart_resumes_from_the_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first_len;
        {
            let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
            let mut described = appender(&wal);
            first_len = scrape(&wal, 1000, &[1.0], &mut described) as u64;
            wal.save_checkpoint(
                "q",
                Position {
                    segment: 1,
                    offset: first_len,
                },
            )
            .expect("saves");
            scrape(&wal, 2000, &[2.0], &mut described);
        }
        // A crash in the middle of a write: half a record at the end.
        let segment = dir.path().join(segment_name(1));
        let mut data = fs::read(&segment).expect("reads");
        let whole = data.len() as u64;
        data.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 2, 9, 9]);
        fs::write(&segment, &data).expect("writes");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        assert_eq!(
            fs::metadata(&segment).expect("exists").len(),
            whole,
            "torn record cut off"
        );
        assert_eq!(
            wal.checkpoint("q"),
            Position {
                segment: 1,
                offset: first_len
            }
        );
        let mut described = appender(&wal);
        scrape(&wal, 3000, &[3.0], &mut described);
        let (got, segments) = read_all(&wal, wal.checkpoint("q"));
        // The sample before the checkpoint is not resent; the one after it
        // and the new process's sample (in segment 2) are.
        let values: Vec<(i64, u64)> = got.iter().map(|g| (g.1, g.2)).collect();
        assert_eq!(values, vec![(2000, 2f64.to_bits()), (3000, 3f64.to_bits())]);
        assert_eq!(segments, vec![2]);
        assert!(got.iter().all(|g| g.0 == "m{i=\"0\"}"), "{got:?}");
    }

    #[test]
    fn a_corrupt_record_skips_the_rest_of_its_segment_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
            let mut described = appender(&wal);
            scrape(&wal, 1000, &[1.0], &mut described);
            scrape(&wal, 2000, &[2.0], &mut described);
        }
        let segment = dir.path().join(segment_name(1));
        let mut data = fs::read(&segment).expect("reads");
        let last = data.len() - 1;
        data[last] ^= 0xff; // the last sample's value: its CRC no longer matches
        fs::write(&segment, &data).expect("writes");
        // Reopened, segment 1 is repaired (its tail was the corrupt record).
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let mut described = appender(&wal);
        scrape(&wal, 3000, &[3.0], &mut described);
        let ts = timestamps_from_the_start(&wal);
        assert_eq!(ts, vec![1000, 3000]);
        // Corruption inside a sealed segment that the repair did not see
        // (the middle of segment 1): the reader moves on to segment 2.
        let mut data = fs::read(&segment).expect("reads");
        data[HEADER + 2] ^= 0xff;
        fs::write(&segment, &data).expect("writes");
        let ts = timestamps_from_the_start(&wal);
        assert_eq!(ts, vec![3000]);
    }

    #[test]
    fn over_the_cap_the_oldest_segments_go_and_their_samples_are_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 1 MiB cap (the least relay allows): 1 MiB segments.
        let (wal, dropped) = open(dir.path(), 1 << 20, &["q"]);
        let mut described = appender(&wal);
        let values = vec![1.5; 5000];
        let mut written = 0u64;
        for i in 0..60 {
            scrape(&wal, 1000 * i, &values, &mut described);
            written += values.len() as u64;
        }
        let on_disk: u64 = fs::read_dir(dir.path())
            .expect("lists")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().len() == 8)
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(
            on_disk <= (1 << 20) + (1 << 20) / 8 * 2,
            "{on_disk} bytes on disk"
        );
        let (left, _) = read_all(
            &wal,
            Position {
                segment: wal.first_segment(),
                offset: 0,
            },
        );
        assert!(dropped.get() > 0);
        assert_eq!(
            dropped.get() + left.len() as u64,
            written,
            "every sample is either there or counted"
        );
    }

    #[test]
    fn delivered_segments_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 8 << 20, &["a", "b"]);
        let mut described = appender(&wal);
        let values = vec![2.5; 5000];
        for i in 0..40 {
            scrape(&wal, 1000 * i, &values, &mut described);
        }
        let head = *wal.subscribe().borrow();
        assert!(head.segment >= 3, "segments cut: {}", head.segment);
        wal.save_checkpoint(
            "a",
            Position {
                segment: head.segment,
                offset: 0,
            },
        )
        .expect("saves");
        wal.truncate();
        assert_eq!(wal.first_segment(), 1, "queue b has delivered nothing");
        wal.save_checkpoint(
            "b",
            Position {
                segment: 3,
                offset: 0,
            },
        )
        .expect("saves");
        wal.truncate();
        assert_eq!(wal.first_segment(), 3);
        assert!(!dir.path().join(segment_name(2)).exists());
    }

    #[test]
    fn an_unchanged_checkpoint_is_not_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 8 << 20, &["q"]);
        let at = Position {
            segment: 1,
            offset: 0,
        };
        let file = wal.checkpoint_path("q");
        std::fs::remove_file(&file).expect("registered, so written");
        wal.save_checkpoint("q", at).expect("saves");
        assert!(!file.exists(), "rewritten although unchanged");
        let moved = Position { offset: 8, ..at };
        wal.save_checkpoint("q", moved).expect("saves");
        assert_eq!(wal.read_checkpoint("q").expect("reads"), Some(moved));
    }

    /// A renamed queue takes over its former checkpoint exactly (nothing
    /// resent, nothing skipped), but never over one the new name has.
    #[test]
    fn a_renamed_queue_adopts_its_former_checkpoint_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let saved = {
            let (wal, _) = open(dir.path(), 8 << 20, &["old"]);
            let mut described = appender(&wal);
            scrape(&wal, 1_000, &[1.0, 2.0], &mut described);
            let at = Position {
                segment: 1,
                offset: 40,
            };
            wal.save_checkpoint("old", at).expect("saves");
            at
        };
        assert!(!Wal::adopt_checkpoint(dir.path(), "absent", "new").expect("no-op"));
        assert!(Wal::adopt_checkpoint(dir.path(), "old", "new").expect("renames"));
        assert!(!checkpoint_file(dir.path(), "old").exists());
        let (wal, _) = open(dir.path(), 8 << 20, &["new"]);
        assert_eq!(wal.checkpoint("new"), saved);
        assert_eq!(wal.first_segment(), 1, "segment 1 is still to be sent");
        // Both names on disk: the new one's checkpoint stays as it is.
        std::fs::write(checkpoint_file(dir.path(), "old"), "1 0\n").expect("write");
        assert!(!Wal::adopt_checkpoint(dir.path(), "old", "new").expect("no-op"));
        assert_eq!(wal.read_checkpoint("new").expect("reads"), Some(saved));
    }

    /// A scrape reads its body while its batch is built, so another
    /// target's `begin` finding the segment full does not cut it under that
    /// batch: the batch ends in its segment, and then the segment is cut.
    #[test]
    fn a_full_segment_is_cut_after_the_batch_being_built() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 8 << 20, &["q"]);
        let values = vec![1.0; 20_000];
        let mut described = appender(&wal);
        let reading = wal.begin();
        let epoch = reading.epoch();
        let mut ts = 1000;
        while !wal.full() {
            scrape(&wal, ts, &values, &mut described);
            ts += 1000;
        }
        assert_eq!(wal.subscribe().borrow().segment, epoch, "cut under a batch");
        // Another batch starts and ends meanwhile: still not cut.
        scrape(&wal, ts, &values, &mut described);
        assert_eq!(wal.subscribe().borrow().segment, epoch, "cut under a batch");
        drop(reading);
        assert_eq!(
            wal.subscribe().borrow().segment,
            epoch + 1,
            "cut once the last batch ended"
        );
        assert_eq!(wal.begin().epoch(), epoch + 1);
    }

    #[test]
    fn segments_grow_with_the_series_they_describe() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 8 MiB cap: segments are cut from 1 MiB on.
        let (wal, _) = open(dir.path(), 8 << 20, &["q"]);
        let values = vec![1.0; 20_000];
        let mut described = appender(&wal);
        let mut first_segment_series = 0;
        while wal.subscribe().borrow().segment == 1 {
            scrape(&wal, 1000, &values, &mut described);
            first_segment_series = wal.lock().described;
        }
        // 20k series of about 10 bytes each were described once in segment 1.
        assert!(first_segment_series > 200_000, "{first_segment_series}");
        let cut_at = wal.cut_at.load(Ordering::Relaxed);
        assert_eq!(cut_at, (first_segment_series * 8).clamp(1 << 20, 4 << 20));
        assert!(cut_at > 1 << 20);
    }

    /// The series records a reader finds, as (segment, series text).
    fn descriptions(wal: &Arc<Wal>) -> Vec<(u32, String)> {
        let mut reader = Reader::new(
            wal.clone(),
            Position {
                segment: 1,
                offset: 0,
            },
        );
        let mut out = Vec::new();
        loop {
            let segment = reader.segment();
            match reader.read_next() {
                Next::Record(Record::Series(it), _) => out.extend(
                    it.map(|(_, text)| (segment, String::from_utf8_lossy(text).into_owned())),
                ),
                Next::Record(..) | Next::NewSegment(_) => {}
                Next::Pending | Next::End => return out,
            }
        }
    }

    /// The appender, not the scrape side, knows what a segment has
    /// described: once per segment, again after a rollback or a new segment.
    #[test]
    fn each_segment_describes_a_series_once_and_a_rollback_forgets_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let mut app = appender(&wal);
        let family = Family::default();
        let sample = |r, text| Appended::float(r, text, 1, &family, None, 1.0);
        app.begin(1000);
        app.append(&sample(1, "a"));
        app.commit();
        app.begin(2000);
        app.append(&sample(1, "a"));
        app.append(&sample(2, "b"));
        app.rollback();
        app.append(&sample(1, "a"));
        app.commit();
        app.begin(3000);
        app.append(&sample(2, "b"));
        app.commit();
        wal.cut_segment().expect("cuts");
        app.begin(4000);
        app.append(&sample(1, "a"));
        app.commit();
        let want: Vec<(u32, String)> = [(1, "a"), (1, "b"), (2, "a")]
            .iter()
            .map(|(s, t)| (*s, (*t).to_owned()))
            .collect();
        assert_eq!(descriptions(&wal), want);
    }

    fn histogram(float: bool) -> crate::storage::Histogram {
        use crate::storage::{BucketSpan, Histogram, HistogramCounts};
        Histogram {
            schema: -2,
            zero_threshold: 1e-128,
            sum: 12.5,
            positive_spans: vec![
                BucketSpan {
                    offset: -3,
                    length: 2,
                },
                BucketSpan {
                    offset: 4,
                    length: 1,
                },
            ],
            negative_spans: vec![BucketSpan {
                offset: 0,
                length: 1,
            }],
            counts: if float {
                HistogramCounts::Float {
                    count: 9.5,
                    zero_count: 0.5,
                    positive: vec![1.0, 2.5, 4.0],
                    negative: vec![1.5],
                }
            } else {
                HistogramCounts::Integer {
                    count: 9,
                    zero_count: 1,
                    positive_deltas: vec![2, -1, 3],
                    negative_deltas: vec![2],
                }
            },
        }
    }

    #[test]
    fn histograms_exemplars_and_metadata_are_read_back_as_appended() {
        use crate::exposition::MetricType;
        use crate::storage::{Exemplar, Value};
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let mut app = appender(&wal);
        let (int, float) = (histogram(false), histogram(true));
        let latency = Family {
            name: "lat".into(),
            help: Some("Latency \"x\".".into()),
            kind: MetricType::Histogram,
            unit: Some("seconds"),
        };
        let queue = Family {
            name: "q".into(),
            help: None,
            kind: MetricType::GaugeHistogram,
            unit: None,
        };
        let requests = Family {
            name: "req".into(),
            help: Some("Requests.".into()),
            kind: MetricType::Counter,
            unit: None,
        };
        let trace = Exemplar {
            labels: "{trace_id=\"abc\"}",
            value: 0.25,
            timestamp_ms: Some(1_500),
        };
        let untimed = Exemplar {
            labels: "{span=\"s\"}",
            value: 3.0,
            timestamp_ms: None,
        };
        for (round, ts) in [(0, 2_000), (1, 3_000)] {
            app.begin(ts);
            let mut h = Appended::float(1, "lat", 3, &latency, None, 0.0);
            h.value = Value::Histogram(&int);
            h.exemplar = (round == 0).then_some(&trace);
            app.append(&h);
            let mut g = Appended::float(2, "q", 1, &queue, Some(ts - 10), 0.0);
            g.value = Value::Histogram(&float);
            app.append(&g);
            let mut c = Appended::float(3, "req_total", 9, &requests, None, 7.0 + round as f64);
            c.exemplar = Some(&untimed);
            app.append(&c);
            app.commit();
        }
        let mut reader = Reader::new(
            wal.clone(),
            Position {
                segment: 1,
                offset: 0,
            },
        );
        let (mut floats, mut hists, mut exemplars, mut metadata) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        loop {
            match reader.read_next() {
                Next::Record(Record::Samples(it), _) => floats.extend(it),
                Next::Record(Record::Histograms(it), _) => hists.extend(it),
                Next::Record(Record::Exemplars(it), _) => exemplars.extend(
                    it.map(|(r, ts, v, l)| (r, ts, v, String::from_utf8_lossy(l).into_owned())),
                ),
                Next::Record(Record::Metadata(it), _) => metadata.extend(it.map(|m| {
                    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                    (m.kind, text(m.name), text(m.help), text(m.unit))
                })),
                Next::Record(_, _) | Next::NewSegment(_) => {}
                Next::Pending | Next::End => break,
            }
        }
        assert_eq!(floats, [(3, 2_000, 7.0), (3, 3_000, 8.0)]);
        let hist = |r, ts, reset_hint, h: &crate::storage::Histogram| HistogramSample {
            series_ref: r,
            timestamp_ms: ts,
            reset_hint,
            histogram: h.clone(),
        };
        assert_eq!(
            hists,
            [
                hist(1, 2_000, 0, &int),
                hist(2, 1_990, 3, &float),
                hist(1, 3_000, 0, &int),
                hist(2, 2_990, 3, &float),
            ]
        );
        let ex = |r, ts, v, l: &str| (r, ts, v, l.to_owned());
        assert_eq!(
            exemplars,
            [
                ex(1, 1_500, 0.25, "{trace_id=\"abc\"}"),
                ex(3, 2_000, 3.0, "{span=\"s\"}"),
                ex(3, 3_000, 3.0, "{span=\"s\"}"),
            ]
        );
        // Once per segment per family (the second scrape repeats none).
        let meta = |k, n: &str, h: &str, u: &str| (k, n.to_owned(), h.to_owned(), u.to_owned());
        assert_eq!(
            metadata,
            [
                meta(3, "lat", "Latency \"x\".", "seconds"),
                meta(4, "q", "", ""),
                meta(1, "req", "Requests.", ""),
            ]
        );
        // Dropping the segment would lose its floats and histograms.
        let path = dir.path().join(segment_name(1));
        assert_eq!(segment::count_samples(&path, 0), 6);
    }

    #[test]
    fn a_segment_written_before_the_new_record_types_still_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Written by the release before histograms: a series record (ref 7,
        // `up{job="a"}`) and a samples record (ref 7, ts 1000, 1.0), bytes
        // as that release framed them.
        let old: &[u8] = &[
            14, 0, 0, 0, 0, 0, 0, 0, 1, 7, 11, b'u', b'p', b'{', b'j', b'o', b'b', b'=', b'"',
            b'a', b'"', b'}', 12, 0, 0, 0, 0, 0, 0, 0, 2, 7, 0xd0, 0x0f, 0, 0, 0, 0, 0, 0, 0xf0,
            0x3f,
        ];
        let mut old = old.to_vec();
        for at in [0, 22] {
            let len = u32::from_le_bytes(old[at..at + 4].try_into().expect("4 bytes")) as usize;
            let crc = crc32c::crc32c(&old[at + 8..at + 8 + len]);
            old[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        }
        // The queue's checkpoint (at the start of segment 1) keeps it.
        drop(open(dir.path(), 1 << 30, &["q"]));
        fs::write(dir.path().join(segment_name(1)), &old).expect("writes");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let (got, _) = read_all(
            &wal,
            Position {
                segment: 1,
                offset: 0,
            },
        );
        assert_eq!(got, [("up{job=\"a\"}".to_owned(), 1000, 1f64.to_bits())]);
    }

    #[test]
    fn metadata_is_written_again_after_a_rollback_a_change_or_a_new_segment() {
        use crate::exposition::MetricType;
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let mut app = appender(&wal);
        let family = |help: &'static str| Family {
            name: "m".into(),
            help: Some(help.into()),
            kind: MetricType::Gauge,
            unit: None,
        };
        let mut scrape = |help: &'static str, commit: bool| {
            let f = family(help);
            app.begin(1000);
            app.append(&Appended::float(1, "m", 1, &f, None, 1.0));
            app.append(&Appended::float(2, "m{a=\"1\"}", 1, &f, None, 1.0));
            if commit {
                app.commit();
            } else {
                app.rollback();
                app.commit();
            }
        };
        scrape("one", true);
        scrape("one", true);
        scrape("one", false);
        scrape("one", true);
        scrape("two", true);
        scrape("two", true);
        wal.cut_segment().expect("cuts");
        scrape("two", true);
        let mut reader = Reader::new(
            wal.clone(),
            Position {
                segment: 1,
                offset: 0,
            },
        );
        let mut helps = Vec::new();
        loop {
            match reader.read_next() {
                Next::Record(Record::Metadata(it), _) => {
                    helps.extend(it.map(|m| String::from_utf8_lossy(m.help).into_owned()));
                }
                Next::NewSegment(s) => helps.push(format!("segment {s}")),
                Next::Record(_, _) => {}
                Next::Pending | Next::End => break,
            }
        }
        // Once per family, not per series; a rolled-back scrape's metadata
        // is written by the next one; a change is written; a new segment
        // describes it again.
        assert_eq!(helps, ["one", "one", "two", "segment 2", "two"]);
    }

    #[test]
    fn start_timestamps_are_written_when_new_changed_gone_or_in_a_new_segment() {
        use crate::exposition::MetricType;
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), 1 << 30, &["q"]);
        let mut app = appender(&wal);
        let family = Family {
            name: "c".into(),
            help: None,
            kind: MetricType::Counter,
            unit: None,
        };
        // Series 1 has a start timestamp (s1) in each scrape, series 2 never.
        let mut scrape = |s1: Option<i64>, commit: bool| {
            app.begin(1000);
            let mut a = Appended::float(1, "c_total", 7, &family, None, 1.0);
            a.start_timestamp_ms = s1;
            app.append(&a);
            app.append(&Appended::float(
                2,
                "c_total{a=\"1\"}",
                7,
                &family,
                None,
                1.0,
            ));
            if commit {
                app.commit();
            } else {
                app.rollback();
                app.commit();
            }
        };
        scrape(Some(500), true);
        scrape(Some(500), true);
        scrape(Some(600), false);
        scrape(Some(600), true);
        scrape(None, true);
        scrape(None, true);
        scrape(Some(700), true);
        wal.cut_segment().expect("cuts");
        scrape(Some(700), true);
        let mut reader = Reader::new(
            wal.clone(),
            Position {
                segment: 1,
                offset: 0,
            },
        );
        let mut got = Vec::new();
        loop {
            match reader.read_next() {
                Next::Record(Record::Starts(it), _) => {
                    got.extend(it.map(|(r, st)| format!("{r}:{st}")));
                }
                Next::Record(Record::Samples(it), _) => got.push(format!("{} samples", it.count())),
                Next::NewSegment(s) => got.push(format!("segment {s}")),
                Next::Record(_, _) => {}
                Next::Pending | Next::End => break,
            }
        }
        // Before the samples it holds for; again after a rollback and on a
        // change; 0 when the series has none any more; again in a new segment.
        assert_eq!(
            got,
            [
                "1:500",
                "2 samples",
                "2 samples",
                "1:600",
                "2 samples",
                "1:0",
                "2 samples",
                "2 samples",
                "1:700",
                "2 samples",
                "segment 2",
                "1:700",
                "2 samples",
            ]
        );
    }
}
