//! The write-ahead log every remote-written sample goes through first.
//!
//! Segment files (`00000001`, `00000002`, ...) hold records framed as
//! `[length u32][CRC32-Castagnoli u32][type u8][body]` (little-endian), as
//! Prometheus's WAL checksums its records. Two record types: series (a ref
//! and the series rendered as `name{labels}`) and samples (ref, timestamp,
//! value). Every segment is self-contained: a series is described again the
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

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::watch;

use crate::scrape::append::{Appended, Appender, SeriesRef};

const HEADER: usize = 9;
/// A record larger than this is corruption, not data.
const MAX_RECORD: usize = 64 << 20;
/// Records are cut at about this size, so readers work in small steps.
const RECORD_TARGET: usize = 1 << 20;
const SERIES: u8 = 1;
const SAMPLES: u8 = 2;

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

fn segment_name(segment: u32) -> String {
    format!("{segment:08}")
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Segment {
        path: path.to_owned(),
        source,
    }
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
    pub fn begin(&self) -> AppendGuard<'_> {
        if self.full() {
            self.cut_if_idle();
        }
        let _shared = self.cut.read().unwrap_or_else(PoisonError::into_inner);
        self.appending.fetch_add(1, Ordering::AcqRel);
        AppendGuard {
            wal: self,
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

    fn append(&self, bytes: &[u8], described: u64) -> Result<(), WalError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut w = self.lock();
        let path = self.dir.join(segment_name(w.segment));
        if let Err(e) = w.file.write_all(bytes) {
            // Cut off a partial record, so later appends stay readable.
            let size = w.size;
            let _ = w.file.set_len(size);
            let _ = w.file.seek(SeekFrom::Start(size));
            return Err(io_err(&path)(e));
        }
        w.size += bytes.len() as u64;
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

    fn checkpoint_path(&self, queue: &str) -> PathBuf {
        checkpoint_file(&self.dir, queue)
    }

    /// Gives the checkpoint saved under queue `from` to queue `to` when
    /// `to` has none (a queue whose name changed resumes where it was,
    /// nothing resent or skipped); Ok(true) when it did. Called before the
    /// WAL is opened with `to`, or before `to` is registered.
    pub fn adopt_checkpoint(dir: &Path, from: &str, to: &str) -> Result<bool, WalError> {
        let (old, new) = (checkpoint_file(dir, from), checkpoint_file(dir, to));
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| WalError::Checkpoint { path, source }
        };
        if new.try_exists().map_err(err(&new))? || !old.try_exists().map_err(err(&old))? {
            return Ok(false);
        }
        fs::rename(&old, &new).map_err(err(&old))?;
        sync_dir(&dir.join("checkpoints"));
        Ok(true)
    }

    fn read_checkpoint(&self, queue: &str) -> Result<Option<Position>, WalError> {
        let path = self.checkpoint_path(queue);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(WalError::Checkpoint { path, source }),
        };
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Position {
                segment: u32::try_from(segment).unwrap_or(u32::MAX),
                offset,
            })),
            _ => {
                tracing::warn!(path = %path.display(), "unreadable checkpoint; resending the whole WAL");
                Ok(Some(Position::default()))
            }
        }
    }

    /// Records that `queue` has delivered everything before `position`
    /// (written to a temporary file, then renamed over the old one).
    pub fn save_checkpoint(&self, queue: &str, position: Position) -> Result<(), WalError> {
        // Held across the write and the rename: two savers of one queue (its
        // saver task and its stop) would otherwise share the temporary file,
        // and the second rename would find it gone.
        let mut saved = self
            .checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Unchanged (a receiver outage, an idle queue): nothing to write.
        if saved.get(queue) == Some(&position) {
            return Ok(());
        }
        let path = self.checkpoint_path(queue);
        let tmp = path.with_extension("tmp");
        let err = |source| WalError::Checkpoint {
            path: path.clone(),
            source,
        };
        fs::write(&tmp, format!("{} {}\n", position.segment, position.offset)).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        saved.insert(queue.to_owned(), position);
        Ok(())
    }

    /// Adds a queue (at start, or when a reload adds it) and says where it
    /// resumes: its saved checkpoint when there is one on disk (clamped to
    /// the segments there are), else the start of the active segment. The
    /// checkpoint is written now, so a crash before its first delivery
    /// still resends from here.
    pub fn register(&self, queue: &str) -> Result<Position, WalError> {
        let active = self.epoch.load(Ordering::Acquire);
        let first = self.first_segment();
        let position = match self.read_checkpoint(queue)? {
            Some(p) if p.segment > active => {
                tracing::warn!(queue = %queue, segment = p.segment, "checkpoint is past the end of the WAL; starting at the active segment");
                Position {
                    segment: active,
                    offset: 0,
                }
            }
            Some(p) if p.segment >= first => p,
            Some(p) => {
                tracing::warn!(queue = %queue, segment = p.segment, "checkpoint is older than the WAL; starting at its oldest segment");
                Position {
                    segment: first,
                    offset: 0,
                }
            }
            None => Position {
                segment: active,
                offset: 0,
            },
        };
        self.save_checkpoint(queue, position)?;
        Ok(position)
    }

    /// A queue a reload removed no longer holds segments back (its
    /// checkpoint file stays, should the entry come back).
    pub fn unregister(&self, queue: &str) {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(queue);
        self.truncate();
    }

    /// Where `queue` resumes: everything before it was delivered.
    pub fn checkpoint(&self, queue: &str) -> Position {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(queue)
            .copied()
            .unwrap_or_default()
    }

    /// The position the slowest queue has delivered up to.
    fn slowest(&self) -> Option<Position> {
        self.checkpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .min()
            .copied()
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
            tracing::warn!(segment = oldest, samples = lost, max_size = self.max_size, "WAL over relay.wal_max_size: dropped its oldest segment before every queue delivered it");
        }
        self.set_first(&w);
    }
}

/// Holds the segment current while a scrape's batch is built and appended.
pub struct AppendGuard<'w> {
    wal: &'w Wal,
    epoch: u32,
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

fn create_segment(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

/// A queue's checkpoint file: its name with anything but letters, digits,
/// `-` and `_` percent-encoded (any `remote_write.name` is valid).
fn checkpoint_file(dir: &Path, queue: &str) -> PathBuf {
    let mut file = String::with_capacity(queue.len());
    for b in queue.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            file.push(char::from(b));
        } else {
            file.push_str(&format!("%{b:02X}"));
        }
    }
    dir.join("checkpoints").join(file)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Cuts a segment after its last whole, valid record (a crash can leave a
/// torn one); returns the new length.
fn repair(path: &Path) -> Result<u64, WalError> {
    let data = fs::read(path).map_err(io_err(path))?;
    let mut offset = 0;
    while let Some((_, _, next)) = record_at(&data, offset) {
        offset = next;
    }
    if offset < data.len() {
        tracing::warn!(path = %path.display(), valid = offset, size = data.len(), "WAL segment has a torn or corrupt tail; cutting it off");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        file.set_len(offset as u64).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
    }
    Ok(offset as u64)
}

/// The record at `offset` of `data`: its type, body and the next offset.
fn record_at(data: &[u8], offset: usize) -> Option<(u8, &[u8], usize)> {
    let header = data.get(offset..offset + HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = data.get(offset + 8..offset + 8 + len)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    Some((payload[0], &payload[1..], offset + 8 + len))
}

/// Samples in the records of a segment from `from` on (what dropping it loses).
fn count_samples(path: &Path, from: u64) -> u64 {
    let Ok(data) = fs::read(path) else { return 0 };
    let mut offset = 0;
    let mut count = 0;
    while let Some((kind, body, next)) = record_at(&data, offset) {
        if kind == SAMPLES && offset as u64 >= from {
            count += SampleIter::new(body).count() as u64;
        }
        offset = next;
    }
    count
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
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

fn frame(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, body);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

impl Appender for WalBatch {
    fn append(&mut self, s: &Appended<'_>) {
        if s.describe {
            put_varint(&mut self.series, s.series_ref);
            put_varint(&mut self.series, s.series.len() as u64);
            self.series.extend_from_slice(s.series.as_bytes());
        }
        if !s.in_order {
            self.out_of_order += 1;
            return;
        }
        let ts = s.timestamp_ms.unwrap_or(self.default_ts);
        put_varint(&mut self.samples, s.series_ref);
        put_varint(&mut self.samples, zigzag(ts.wrapping_sub(self.last_ts)));
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

/// The entries of a series record: (ref, `name{labels}`).
pub struct SeriesIter<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for SeriesIter<'a> {
    type Item = (SeriesRef, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let r = get_varint(self.body, &mut self.pos)?;
        let len = usize::try_from(get_varint(self.body, &mut self.pos)?).ok()?;
        let text = self.body.get(self.pos..self.pos + len)?;
        self.pos += len;
        Some((r, text))
    }
}

/// The entries of a samples record: (ref, timestamp ms, value).
pub struct SampleIter<'a> {
    body: &'a [u8],
    pos: usize,
    last_ts: i64,
}

impl<'a> SampleIter<'a> {
    fn new(body: &'a [u8]) -> Self {
        SampleIter {
            body,
            pos: 0,
            last_ts: 0,
        }
    }
}

impl Iterator for SampleIter<'_> {
    type Item = (SeriesRef, i64, f64);
    fn next(&mut self) -> Option<Self::Item> {
        let r = get_varint(self.body, &mut self.pos)?;
        let delta = unzigzag(get_varint(self.body, &mut self.pos)?);
        let bits = self.body.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        let value = f64::from_bits(u64::from_le_bytes(bits.try_into().ok()?));
        self.last_ts = self.last_ts.wrapping_add(delta);
        Some((r, self.last_ts, value))
    }
}

/// One record as a reader sees it.
pub enum Record<'a> {
    Series(SeriesIter<'a>),
    Samples(SampleIter<'a>),
}

/// What [`Reader::read_next`] found.
pub enum Next<'a> {
    /// A record, and the position right after it.
    Record(Record<'a>, Position),
    /// The reader moved on to a new segment: refs start over.
    NewSegment(u32),
    /// Nothing more for now; wait for the head to move.
    Pending,
    /// The WAL is closed and everything has been read.
    End,
}

/// Reads the WAL in order from a position, following the writer.
pub struct Reader {
    wal: Arc<Wal>,
    segment: u32,
    offset: u64,
    file: Option<File>,
    buf: Vec<u8>,
}

impl Reader {
    /// A reader at the start of `from`'s segment (the caller skips the
    /// samples before `from` but needs the series described there).
    pub fn new(wal: Arc<Wal>, from: Position) -> Reader {
        Reader {
            wal,
            segment: from.segment,
            offset: 0,
            file: None,
            buf: Vec::new(),
        }
    }

    /// The segment being read.
    pub fn segment(&self) -> u32 {
        self.segment
    }

    /// The next record, or why there is none now.
    pub fn read_next(&mut self) -> Next<'_> {
        let position = loop {
            let first = self.wal.first_segment();
            if self.segment < first {
                tracing::warn!(
                    segment = self.segment,
                    next = first,
                    "WAL segment was dropped before it was sent"
                );
                return self.move_to(first);
            }
            let head = *self.wal.head.borrow();
            let sealed = self.segment < head.segment;
            let limit = if sealed { u64::MAX } else { head.len };
            if self.file.is_none() {
                let path = self.wal.dir.join(segment_name(self.segment));
                match File::open(&path) {
                    Ok(f) => self.file = Some(f),
                    Err(e) if sealed => {
                        tracing::warn!(path = %path.display(), error = %e, "WAL segment is missing; skipping it");
                        return self.move_to(self.segment + 1);
                    }
                    Err(_) => return Next::Pending,
                }
            }
            match self.read_record(limit) {
                Ok(true) if matches!(self.buf[0], SERIES | SAMPLES) => {
                    break Position {
                        segment: self.segment,
                        offset: self.offset,
                    };
                }
                Ok(true) => {
                    tracing::warn!(
                        segment = self.segment,
                        kind = self.buf[0],
                        "unknown WAL record type; skipped"
                    );
                }
                Ok(false) if sealed => return self.move_to(self.segment + 1),
                Ok(false) if head.closed => return Next::End,
                Ok(false) => {
                    // Caught up: the record buffer (a whole scrape's samples
                    // for a large one) goes back until the next record.
                    self.buf = Vec::new();
                    return Next::Pending;
                }
                Err(why) => {
                    tracing::warn!(
                        segment = self.segment,
                        offset = self.offset,
                        why,
                        "corrupt WAL record; skipping the rest of the segment"
                    );
                    if sealed {
                        return self.move_to(self.segment + 1);
                    }
                    // The active segment only gets whole records appended:
                    // this is a read error; try again later.
                    self.file = None;
                    return Next::Pending;
                }
            }
        };
        let body = &self.buf[1..];
        let record = if self.buf[0] == SERIES {
            Record::Series(SeriesIter { body, pos: 0 })
        } else {
            Record::Samples(SampleIter::new(body))
        };
        Next::Record(record, position)
    }

    fn move_to(&mut self, segment: u32) -> Next<'static> {
        self.segment = segment;
        self.offset = 0;
        self.file = None;
        Next::NewSegment(segment)
    }

    /// Reads the record at the offset into `buf` if it is whole below
    /// `limit`: Ok(false) when there is none (yet), Err when it is corrupt.
    fn read_record(&mut self, limit: u64) -> Result<bool, &'static str> {
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        if self.offset + HEADER as u64 > limit {
            return Ok(false);
        }
        let mut header = [0u8; 8];
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Err("seek failed");
        }
        match read_full(file, &mut header) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(_) => return Err("read failed"),
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_RECORD {
            return Err("bad record length");
        }
        let end = self.offset + 8 + len as u64;
        if end > limit {
            return Ok(false);
        }
        // A sealed segment does not grow: a (corrupt) length past its end
        // is a truncated record, not a reason to allocate up to MAX_RECORD.
        if limit == u64::MAX && file.metadata().is_ok_and(|m| end > m.len()) {
            return Err("truncated record");
        }
        self.buf.resize(len, 0);
        match read_full(file, &mut self.buf) {
            Ok(true) => {}
            Ok(false) => return Err("truncated record"),
            Err(_) => return Err("read failed"),
        }
        if crc32c::crc32c(&self.buf) != crc {
            return Err("checksum mismatch");
        }
        self.offset += 8 + len as u64;
        Ok(true)
    }
}

/// Fills `buf`: Ok(false) at end of file before the first byte or midway.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..]) {
            Ok(0) => return Ok(false),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::append::{stale_nan, Family};
    use crate::scrape::cache::NEVER;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    fn open(dir: &Path, max: u64, queues: &[&str]) -> (Arc<Wal>, Counter) {
        let dropped = Counter::default();
        let names: Vec<String> = queues.iter().map(|q| (*q).to_owned()).collect();
        let wal = Wal::open(dir, max, &names, dropped.clone(), Gauge::default()).expect("opens");
        (Arc::new(wal), dropped)
    }

    /// Appends one scrape: `values` of series `m{i="k"}` (refs 100 + k) at `ts`.
    fn scrape(wal: &Wal, ts: i64, values: &[f64], described: &mut u32) -> usize {
        let guard = wal.begin();
        let epoch = guard.epoch();
        let mut batch = WalBatch::default();
        batch.begin(ts);
        let family = Family::default();
        let texts: Vec<String> = (0..values.len())
            .map(|k| format!("m{{i=\"{k}\"}}"))
            .collect();
        for (k, &value) in values.iter().enumerate() {
            batch.append(&Appended {
                series_ref: 100 + k as u64,
                series: &texts[k],
                name_len: 1,
                family: &family,
                timestamp_ms: None,
                value,
                describe: *described != epoch,
                in_order: true,
            });
        }
        *described = epoch;
        batch.finish();
        guard.append(&batch).expect("appends");
        batch.len()
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
        let guard = wal.begin();
        let mut batch = WalBatch::default();
        batch.begin(1000);
        let family = Family::default();
        let before = wal.head.borrow().len;
        {
            let mut sink = Spilling {
                batch: &mut batch,
                guard: &guard,
            };
            for (k, text) in texts.iter().enumerate() {
                sink.append(&Appended {
                    series_ref: 1 + k as u64,
                    series: text,
                    name_len: 19,
                    family: &family,
                    timestamp_ms: None,
                    value: k as f64,
                    describe: true,
                    in_order: true,
                });
            }
        }
        let early = wal.head.borrow().len - before;
        assert!(early >= 2 * RECORD_TARGET as u64, "written early: {early}");
        batch.finish();
        assert!(batch.len() < total / 2, "held to the end: {}", batch.len());
        guard.append(&batch).expect("appends");
        drop(guard);
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
        let mut described = NEVER;
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
            let mut described = NEVER;
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
        let mut described = NEVER;
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
            let mut described = NEVER;
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
        let mut described = NEVER;
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
        let mut described = NEVER;
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
        let mut described = NEVER;
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
        let mut described = NEVER;
        let saved = {
            let (wal, _) = open(dir.path(), 8 << 20, &["old"]);
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
        let mut described = NEVER;
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
        let mut described = NEVER;
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
}
