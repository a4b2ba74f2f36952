//! The series a queue knows in the WAL segment it reads: their label pairs
//! and, by reference, where each series' pairs are.
//!
//! A segment's label pairs and series live in one [`Segment`], shared (one
//! `Arc`) by the queue's watcher, which adds to it, and every sample in
//! flight, which keeps it alive until sent: a series costs no allocation
//! and no reference count of its own. Each distinct pair (one 1.0 `Label`
//! field, encoded) is stored once, numbered by a `u32`; a series is a run
//! of those numbers in a chunked arena, found by a `u32` offset. With 5
//! labels that is 24 bytes a series where an `Arc<[Arc<pair>]>` per series
//! took 56, and its table slot 16.
//!
//! References are process-unique and handed out in increasing order, so a
//! segment's series sit in runs of consecutive references: their slots are
//! kept in pages of [`PAGE`] consecutive 8-byte slots (the run's offset and
//! the series' shard hash), found by page number. A hash map keyed by
//! reference took about half as much again per series, and every sample's
//! lookup hashed into a table as large as the series.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::storage::SeriesRef;

/// References per page: a page is 4 KiB of slots.
const PAGE_BITS: u32 = 9;
const PAGE: usize = 1 << PAGE_BITS;

/// A slot without a series (no run offset is `u32::MAX`, see [`CHUNK_BITS`]).
const EMPTY: u64 = u64::MAX;

type Page = Box<[u64]>;

/// Numbers per arena chunk (64 KiB): runs are appended to the last chunk,
/// never moved, so no chunk is ever copied to grow and the arena's peak is
/// what it holds plus at most one chunk. A run's offset is its chunk's
/// number above its place in the chunk.
const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Chunks a segment may have, so that an offset is never `u32::MAX`.
const MAX_CHUNKS: usize = (1 << (32 - CHUNK_BITS)) - 1;

/// Bytes after the last pair, so that any pair's first `PAD` bytes can be
/// read as one fixed-size piece (see [`Tables::write_labels`]).
pub(super) const PAD: usize = 32;

/// A run's header when its pair count and labels' length fit one number:
/// the count in the low byte, the length above it.
const SHORT_MAX_PAIRS: usize = 0xfe;
const SHORT_MAX_LEN: usize = (1 << 24) - 1;
/// A header's low byte saying the count and the length follow.
const LONG: u32 = 0xff;

/// One WAL segment's label pairs and series, as a queue sends them; shared
/// by the queue's watcher (the only writer) and the samples in flight. The
/// lock is taken for writing once per series described, and for reading
/// once per request built (per run of its samples from one segment).
#[derive(Default)]
pub struct Segment(RwLock<Tables>);

impl Segment {
    /// The tables, to read (a request being built).
    pub fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tables, to add to (a series being described).
    pub fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pairs and the series' runs of one segment.
#[derive(Default)]
pub struct Tables {
    /// Each pair's place in `bytes` (start, length), by pair number.
    pairs: Vec<(u32, u32)>,
    /// The pairs' encoded `Label` fields, one after another, then [`PAD`]
    /// zeros.
    bytes: Vec<u8>,
    /// Where 2.0's encoders last put each pair's symbol refs, by pair
    /// number (see [`Tables::stamp`]).
    stamps: Vec<AtomicU64>,
    /// Each series: a header (pair count and labels' length), then its
    /// pair numbers.
    runs: Vec<Vec<u32>>,
}

/// A series as its run holds it: its pairs' numbers in order, and the
/// bytes of its encoded `Label` fields.
#[derive(Clone, Copy)]
pub struct Run<'t> {
    pub pairs: &'t [u32],
    pub labels_len: usize,
}

impl Tables {
    /// The encoded `Label` field of pair `pair` (empty if there is none:
    /// numbers come from this segment's own runs).
    pub fn pair_bytes(&self, pair: u32) -> &[u8] {
        let Some(&(start, len)) = self.pairs.get(pair as usize) else {
            return &[];
        };
        self.bytes
            .get(start as usize..start as usize + len as usize)
            .unwrap_or_default()
    }

    /// A note a 2.0 encoder leaves on the pair so that the next series of
    /// the same request finds the pair's symbol refs without hashing: the
    /// request's number and the index of the refs in that request's table.
    /// Shards share the pairs and overwrite each other's notes, so a note
    /// is only a hint: the encoder checks the entry it points at is this
    /// pair's. None for a number this segment does not have.
    pub fn stamp(&self, pair: u32) -> Option<&AtomicU64> {
        self.stamps.get(pair as usize)
    }

    /// The series whose run is at `at` (empty if there is none).
    pub fn run(&self, at: u32) -> Run<'_> {
        let empty = Run {
            pairs: &[],
            labels_len: 0,
        };
        let Some(chunk) = self.runs.get((at >> CHUNK_BITS) as usize) else {
            return empty;
        };
        let start = (at as usize) & (CHUNK - 1);
        let Some(&head) = chunk.get(start) else {
            return empty;
        };
        let (n, labels_len, from) = if head & 0xff != LONG {
            ((head & 0xff) as usize, (head >> 8) as usize, start + 1)
        } else {
            match chunk.get(start + 1..start + 3) {
                Some(&[n, len]) => (n as usize, len as usize, start + 3),
                _ => return empty,
            }
        };
        match chunk.get(from..from + n) {
            Some(pairs) => Run { pairs, labels_len },
            None => empty,
        }
    }

    /// Appends the encoded `Label` fields of `run` to `out`. Most pairs
    /// are short, and one is stored as [`PAD`] bytes past `out`'s end then
    /// kept to its length (a copy of a fixed size is two moves, of a
    /// varying one a call to memcpy); `out` is reserved once per series,
    /// not zeroed.
    #[inline]
    pub fn write_labels(&self, run: Run<'_>, out: &mut Vec<u8>) {
        out.reserve(run.labels_len + PAD);
        let (pairs, bytes) = (self.pairs.as_slice(), self.bytes.as_slice());
        for &p in run.pairs {
            let Some(&(start, len)) = pairs.get(p as usize) else {
                continue;
            };
            let (start, len) = (start as usize, len as usize);
            // `start` is a u32: `start + PAD` cannot overflow, one check.
            match bytes.get(start..start + PAD).map(<&[u8; PAD]>::try_from) {
                Some(Ok(src)) if len <= PAD => put_fixed(out, src, len),
                _ => out.extend_from_slice(bytes.get(start..start + len).unwrap_or_default()),
            }
        }
    }

    /// Whether a pair of `bytes` bytes still fits: a segment's pairs are
    /// numbered and placed by `u32`.
    fn has_room(&self, bytes: usize) -> bool {
        self.pairs.len() < u32::MAX as usize && self.bytes.len() + bytes + PAD <= u32::MAX as usize
    }

    /// Adds a pair (its encoded bytes), returning its number; None when
    /// the segment has no room for more (4 GiB of pairs).
    pub(super) fn add_pair(&mut self, bytes: &[u8]) -> Option<u32> {
        if !self.has_room(bytes.len()) {
            return None;
        }
        let number = self.pairs.len() as u32;
        // The pad stays last, after the newest pair.
        let start = self.bytes.len().saturating_sub(PAD);
        self.bytes.truncate(start);
        self.pairs.push((start as u32, bytes.len() as u32));
        self.bytes.extend_from_slice(bytes);
        self.bytes.extend_from_slice(&[0; PAD]);
        self.stamps.push(AtomicU64::new(0));
        Some(number)
    }

    /// Appends a series' run (its pairs' numbers and labels' length),
    /// returning where it is; None when the segment has no room for more.
    pub(super) fn add_run(&mut self, pairs: &[u32], labels_len: usize) -> Option<u32> {
        let short = pairs.len() <= SHORT_MAX_PAIRS && labels_len <= SHORT_MAX_LEN;
        let need = pairs.len() + if short { 1 } else { 3 };
        // A run starts within a chunk's first CHUNK numbers (its offset
        // has CHUNK_BITS for them).
        let fits = self
            .runs
            .last()
            .is_some_and(|c| c.len() < CHUNK && c.capacity() - c.len() >= need);
        if !fits {
            if self.runs.len() >= MAX_CHUNKS {
                return None;
            }
            // A run longer than a chunk gets a chunk of its own size.
            self.runs.push(Vec::with_capacity(CHUNK.max(need)));
        }
        let chunk_number = self.runs.len() - 1;
        let chunk = self.runs.last_mut()?;
        let start = chunk.len();
        if short {
            chunk.push(((labels_len as u32) << 8) | pairs.len() as u32);
        } else {
            chunk.push(LONG);
            chunk.push(u32::try_from(pairs.len()).ok()?);
            chunk.push(u32::try_from(labels_len).ok()?);
        }
        chunk.extend_from_slice(pairs);
        Some(((chunk_number as u32) << CHUNK_BITS) | start as u32)
    }
}

/// Appends the first `len` bytes of `piece` to `out`: all `N` are
/// stored past its end, one fixed-size copy, when its room allows (else
/// only `len` are copied), and `out` keeps `len`.
#[inline(always)]
pub(super) fn put_fixed<const N: usize>(out: &mut Vec<u8>, piece: &[u8; N], len: usize) {
    let at = out.len();
    if len <= N && out.capacity() - at >= N {
        // SAFETY: the N bytes from `at` are within `out`'s capacity
        // (checked just above), so the store stays inside its allocation;
        // the `len <= N` bytes kept are the ones it wrote.
        unsafe {
            std::ptr::write_unaligned(out.as_mut_ptr().add(at).cast::<[u8; N]>(), *piece);
            out.set_len(at + len);
        }
    } else {
        out.extend_from_slice(piece.get(..len).unwrap_or(piece));
    }
}

/// Series by reference, each as the place of its run in the segment's
/// [`Segment`] and its shard hash; a reference without one (never
/// described, or dropped by write relabeling) has no series.
#[derive(Default)]
pub struct SeriesTable {
    // Looked up once per sample: hashbrown's foldhash, not SipHash (refs
    // come from relay's own WAL, no one else chooses them).
    pages: hashbrown::HashMap<u64, Page>,
    /// The segment the series' runs are in (the one the watcher's
    /// preparation adds to).
    segment: Option<Arc<Segment>>,
    /// The start timestamps the segment's starts records gave (few series
    /// have one: looked up only when any has).
    starts: hashbrown::HashMap<SeriesRef, i64>,
}

impl SeriesTable {
    /// Sets what `r` is sent as (None: its samples are dropped). Every
    /// series inserted until [`SeriesTable::clear`] is of one segment.
    pub fn insert(&mut self, r: SeriesRef, series: Option<EncodedSeries>) {
        let slot = (r as usize) & (PAGE - 1);
        let value = match series {
            Some(s) => {
                let (segment, at, hash) = s.into_parts();
                if self.segment.is_none() {
                    self.segment = Some(segment);
                }
                (u64::from(hash) << 32) | u64::from(at)
            }
            None => EMPTY,
        };
        match self.pages.get_mut(&(r >> PAGE_BITS)) {
            Some(page) => page[slot] = value,
            None if value != EMPTY => {
                let mut page: Page = vec![EMPTY; PAGE].into_boxed_slice();
                page[slot] = value;
                self.pages.insert(r >> PAGE_BITS, page);
            }
            None => {}
        }
    }

    /// What `r` is sent as, if anything.
    pub fn get(&self, r: SeriesRef) -> Option<EncodedSeries> {
        let value = self.pages.get(&(r >> PAGE_BITS))?[(r as usize) & (PAGE - 1)];
        if value == EMPTY {
            return None;
        }
        let segment = self.segment.clone()?;
        Some(EncodedSeries::from_parts(
            segment,
            value as u32,
            (value >> 32) as u32,
        ))
    }

    /// Sets `r`'s start timestamp (0: none).
    pub fn set_start(&mut self, r: SeriesRef, start_ms: i64) {
        if start_ms == 0 {
            self.starts.remove(&r);
        } else {
            self.starts.insert(r, start_ms);
        }
    }

    /// `r`'s start timestamp, 0 when it has none.
    pub fn start(&self, r: SeriesRef) -> i64 {
        if self.starts.is_empty() {
            return 0;
        }
        self.starts.get(&r).copied().unwrap_or(0)
    }

    /// Forgets every series, and gives back the memory they took (the
    /// segment's tables once its last sample in flight is sent).
    pub fn clear(&mut self) {
        self.pages = hashbrown::HashMap::new();
        self.segment = None;
        self.starts = hashbrown::HashMap::new();
    }
}

/// What a series is sent as: where its run of label pairs is in its
/// segment's tables (sorted pairs, each shared with the other series of
/// the segment that have it), and the hash that picks its shard. The
/// segment is shared by every series and sample of it: a series in flight
/// adds no allocation of its own.
#[derive(Clone)]
pub struct EncodedSeries {
    segment: Arc<Segment>,
    at: u32,
    hash: u32,
}

impl std::fmt::Debug for EncodedSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedSeries")
            .field("labels", &String::from_utf8_lossy(&self.labels()))
            .field("hash", &self.hash)
            .finish()
    }
}

/// Equal when the labels are, whatever segment holds them.
impl PartialEq for EncodedSeries {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.labels() == other.labels()
    }
}

impl Eq for EncodedSeries {}

impl EncodedSeries {
    pub(super) fn from_parts(segment: Arc<Segment>, at: u32, hash: u32) -> Self {
        EncodedSeries { segment, at, hash }
    }

    pub(super) fn into_parts(self) -> (Arc<Segment>, u32, u32) {
        (self.segment, self.at, self.hash)
    }

    /// The tables the series' run is in.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// Where the series' run is in its segment's tables.
    pub fn at(&self) -> u32 {
        self.at
    }

    /// The hash that picks the series' shard (folded from its pairs'
    /// hashes, so the same across segments and restarts for the same
    /// labels).
    pub fn shard_key(&self) -> u64 {
        u64::from(self.hash)
    }

    /// The numbers of its pairs in its segment (equal numbers, equal
    /// pairs).
    pub fn pair_numbers(&self) -> Vec<u32> {
        self.segment.read().run(self.at).pairs.to_vec()
    }

    /// Bytes of the encoded `Label` fields.
    pub fn labels_len(&self) -> usize {
        self.segment.read().run(self.at).labels_len
    }

    /// The encoded `Label` fields, joined (for logs and tests).
    pub fn labels(&self) -> Vec<u8> {
        let tables = self.segment.read();
        let run = tables.run(self.at);
        let mut out = Vec::with_capacity(run.labels_len);
        tables.write_labels(run, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relabel::Rules;
    use crate::remote_write::encode::SeriesPrep;

    #[test]
    fn series_are_found_by_reference_anywhere_and_forgotten_on_clear() {
        let rules = Rules::default();
        let mut prep = SeriesPrep::new(&[], &rules);
        let mut table = SeriesTable::default();
        let refs = [0, 1, 511, 512, 513, 1 << 40, u64::MAX];
        for (i, &r) in refs.iter().enumerate() {
            let series = prep.prepare(format!("m{{i=\"{i}\"}}").as_bytes());
            table.insert(r, series);
        }
        for (i, &r) in refs.iter().enumerate() {
            let want = prep.prepare(format!("m{{i=\"{i}\"}}").as_bytes());
            assert_eq!(table.get(r), want, "ref {r}");
        }
        assert_eq!(table.get(2), None);
        assert_eq!(table.get(1 << 41), None);
        table.insert(512, None);
        assert_eq!(table.get(512), None, "re-described as dropped");
        assert!(table.get(513).is_some());
        table.clear();
        assert!(refs.iter().all(|&r| table.get(r).is_none()));
    }

    #[test]
    fn runs_fill_chunks_and_long_ones_keep_their_counts() {
        let mut t = Tables::default();
        let a = t.add_pair(b"\x0a\x03\x0a\x01a").expect("room");
        let b = t.add_pair(b"\x0a\x03\x0a\x01b").expect("room");
        assert_eq!(t.pair_bytes(b), b"\x0a\x03\x0a\x01b");
        assert_eq!(t.pair_bytes(7), b"");
        // Enough short runs to fill more than one chunk.
        let mut ats = Vec::new();
        for i in 0..CHUNK {
            let pairs = if i % 2 == 0 { vec![a, b] } else { vec![b] };
            ats.push((t.add_run(&pairs, i).expect("room"), pairs, i));
        }
        assert!(t.runs.len() > 1, "{} chunks", t.runs.len());
        assert!(t.runs.iter().all(|c| c.capacity() == CHUNK), "never grown");
        for (at, pairs, len) in &ats {
            let run = t.run(*at);
            assert_eq!((run.pairs, run.labels_len), (&pairs[..], *len));
        }
        // Past the header's one byte of count, or its 24 bits of length.
        let many: Vec<u32> = (0..300).map(|i| i % 2).collect();
        let at = t.add_run(&many, 9).expect("room");
        assert_eq!(t.run(at).pairs, &many[..]);
        let at = t.add_run(&[a], 1 << 25).expect("room");
        assert_eq!(t.run(at).labels_len, 1 << 25);
        assert_eq!(t.run(at).pairs, &[a]);
        // Longer than a chunk: a chunk of its own.
        let huge: Vec<u32> = vec![b; CHUNK + 5];
        let at = t.add_run(&huge, 1).expect("room");
        assert_eq!(t.run(at).pairs.len(), CHUNK + 5);
        let mut out = Vec::new();
        t.write_labels(t.run(ats[0].0), &mut out);
        assert_eq!(out, b"\x0a\x03\x0a\x01a\x0a\x03\x0a\x01b");
        // Pairs longer than the pad, and one that is the last added.
        let long = [7u8; 100];
        let (l, last) = (
            t.add_pair(&long).expect("room"),
            t.add_pair(b"\x0a\x01z").expect("room"),
        );
        assert_eq!(t.pair_bytes(l), &long[..]);
        let at = t.add_run(&[a, l, last, b], 1 + 100 + 3 + 5).expect("room");
        out.clear();
        t.write_labels(t.run(at), &mut out);
        let want = [
            &b"\x0a\x03\x0a\x01a"[..],
            &long,
            b"\x0a\x01z",
            b"\x0a\x03\x0a\x01b",
        ]
        .concat();
        assert_eq!(out, want);
        assert!(t.run(u32::MAX - 1).pairs.is_empty());
    }
}
