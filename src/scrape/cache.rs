//! A target's series as last scraped, like Prometheus's scrape cache.
//!
//! Keyed by a series' text as the target wrote it (`name{labels}`), so a
//! series seen before skips label parsing, target labels, relabeling,
//! sorting and rendering. Each distinct label set after relabeling is one
//! [`SeriesRef`], whatever keys lead to it (two target series that relabel
//! to the same labels are one series, as Prometheus stores them), appended
//! at most once per scrape. The cache also knows which series the last
//! successful scrape appended, so a series that vanishes, or every series
//! of a failed scrape, gets a staleness marker.
//!
//! Keys and rendered series live end to end in one arena string, so an
//! entry costs its bytes and a small index record, not heap allocations.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::{DefaultHashBuilder, HashTable};

use super::append::{stale_nan, Appended, Appender, Family, SeriesRef};
use super::pipeline::PipelineError;

/// Series refs are unique in the process, across targets: a WAL segment
/// written by one process never sees a ref reused.
static NEXT_REF: AtomicU64 = AtomicU64::new(1);

/// A new, never used series ref.
pub fn next_ref() -> SeriesRef {
    NEXT_REF.fetch_add(1, Ordering::Relaxed)
}

/// A sink epoch no series has been described in.
pub const NEVER: u32 = u32::MAX;

/// Marks a key whose series relabeling dropped.
const DROPPED: u32 = u32::MAX;

/// One target series as written in the body.
#[derive(Debug)]
struct Key {
    start: usize,
    len: usize,
    /// The scrape that last saw it.
    generation: u64,
    /// Index into `series`, or [`DROPPED`].
    slot: u32,
    /// Kept so that growing the table does not hash every key again.
    hash: u64,
}

/// One label set after target labels and relabeling.
#[derive(Debug)]
struct Series {
    start: usize,
    len: usize,
    name_len: usize,
    series_ref: SeriesRef,
    /// The scrape that last appended a sample of it, and the one before.
    appended: u64,
    before: u64,
    /// The sink epoch the labels were last described in.
    epoch: u32,
    /// How many keys lead here; 0 for a free slot.
    keys: u32,
    /// Prometheus does not mark series with the target's own timestamps stale.
    explicit_timestamps: bool,
    /// The newest of the target's own timestamps appended, and the one
    /// before this scrape: a sample not newer is out of order for a receiver.
    last_explicit: i64,
    before_explicit: i64,
}

/// What a key leads to.
pub(crate) struct Lookup {
    /// The series, or None when relabeling dropped it.
    pub slot: Option<u32>,
    /// The key was not in the cache.
    pub new: bool,
}

/// A series to append now.
pub(crate) struct Emit<'c> {
    pub series_ref: SeriesRef,
    pub text: &'c str,
    pub name_len: usize,
    pub describe: bool,
    /// False when the target's own timestamp is not newer than the last one
    /// appended: a receiver would reject it (and its whole batch).
    pub in_order: bool,
}

/// See the module documentation; the scrape loop keeps one per target.
#[derive(Debug)]
pub struct SeriesCache {
    keys: HashTable<Key>,
    series: Vec<Series>,
    free: Vec<u32>,
    /// (hash of the rendered text, slot), to find a label set another key
    /// already has.
    by_text: HashTable<(u64, u32)>,
    hasher: DefaultHashBuilder,
    arena: String,
    /// Bytes of `arena` that nothing uses any more.
    garbage: usize,
    /// Where a new series is rendered before it joins the arena.
    scratch: Vec<u8>,
    /// The current scrape; starts at 1 so that 0 means "never".
    generation: u64,
    /// Keys the current scrape has seen.
    seen: usize,
    /// Keys after the last successful scrape, to bound growth when scrapes fail.
    settled: usize,
    /// The last successful scrape, while no scrape has failed since.
    last_appended: Option<u64>,
    /// How many series it appended.
    last_count: usize,
    /// Of the series appended in this scrape, how many it also appended.
    continued: usize,
    /// Series appended in this scrape.
    appended_now: usize,
}

impl Default for SeriesCache {
    fn default() -> Self {
        SeriesCache {
            keys: HashTable::new(),
            series: Vec::new(),
            free: Vec::new(),
            by_text: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            arena: String::new(),
            garbage: 0,
            scratch: Vec::new(),
            generation: 1,
            seen: 0,
            settled: 0,
            last_appended: None,
            last_count: 0,
            continued: 0,
            appended_now: 0,
        }
    }
}

fn text(arena: &str, start: usize, len: usize) -> &str {
    arena.get(start..start + len).unwrap_or_default()
}

impl SeriesCache {
    /// How many target series (keys) are cached.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes held in the arena, live or not (for tests of its bound).
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }

    /// Bytes of the arena that live entries use.
    pub fn live_len(&self) -> usize {
        let keys: usize = self.keys.iter().map(|k| k.len).sum();
        let series: usize = self
            .series
            .iter()
            .filter(|s| s.keys > 0)
            .map(|s| s.len)
            .sum();
        keys + series
    }

    /// Finds the series for `key`. On a miss, `first_sight` renders the
    /// series into the scratch buffer and returns its name's length, or None
    /// when relabeling drops it.
    pub(crate) fn lookup(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<Lookup, PipelineError> {
        let (hash, known) = self.find_seen(key);
        if let Some(slot) = known {
            let slot = (slot != DROPPED).then_some(slot);
            return Ok(Lookup { slot, new: false });
        }
        self.scratch.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        let rendered = first_sight(&mut scratch);
        let slot = match rendered {
            Ok(Some(name_len)) => Some(self.series_for(&scratch, name_len)),
            Ok(None) => None,
            Err(e) => {
                self.scratch = scratch;
                return Err(e);
            }
        };
        self.scratch = scratch;
        let start = self.arena.len();
        // The parser has checked the key as UTF-8: this only checks.
        self.arena.push_str(&String::from_utf8_lossy(key));
        let entry = Key {
            start,
            len: self.arena.len() - start,
            generation: self.generation,
            slot: slot.unwrap_or(DROPPED),
            hash,
        };
        self.keys.insert_unique(hash, entry, |k| k.hash);
        self.seen += 1;
        Ok(Lookup { slot, new: true })
    }

    /// Whether relabeling keeps the series of `key`, without caching a key
    /// not seen before (a scrape past its sample limit only counts).
    pub(crate) fn kept_uncached(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<bool, PipelineError> {
        if let (_, Some(slot)) = self.find_seen(key) {
            return Ok(slot != DROPPED);
        }
        self.scratch.clear();
        Ok(first_sight(&mut self.scratch)?.is_some())
    }

    /// `key`'s hash, and its slot (or [`DROPPED`]) when known; a known key
    /// is marked seen in this scrape.
    fn find_seen(&mut self, key: &[u8]) -> (u64, Option<u32>) {
        let hash = self.hasher.hash_one(key);
        let (arena, generation) = (&self.arena, self.generation);
        let Some(k) = self.keys.find_mut(hash, |k| {
            arena.as_bytes().get(k.start..k.start + k.len) == Some(key)
        }) else {
            return (hash, None);
        };
        if k.generation != generation {
            k.generation = generation;
            self.seen += 1;
        }
        (hash, Some(k.slot))
    }

    /// The slot of the label set rendered as `rendered`, made if new.
    fn series_for(&mut self, rendered: &[u8], name_len: usize) -> u32 {
        let hash = self.hasher.hash_one(rendered);
        let (arena, series) = (&self.arena, &self.series);
        let found = self.by_text.find(hash, |&(h, slot)| {
            let s = &series[slot as usize];
            h == hash && text(arena, s.start, s.len).as_bytes() == rendered
        });
        if let Some(&(_, slot)) = found {
            self.series[slot as usize].keys += 1;
            return slot;
        }
        let start = self.arena.len();
        // Rendered from str pieces: this only checks.
        self.arena.push_str(&String::from_utf8_lossy(rendered));
        let entry = Series {
            start,
            len: self.arena.len() - start,
            name_len,
            series_ref: next_ref(),
            appended: 0,
            before: 0,
            epoch: NEVER,
            keys: 1,
            explicit_timestamps: false,
            last_explicit: i64::MIN,
            before_explicit: i64::MIN,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.series[slot as usize] = entry;
                slot
            }
            None => {
                self.series.push(entry);
                u32::try_from(self.series.len() - 1).unwrap_or(DROPPED - 1)
            }
        };
        self.by_text.insert_unique(hash, (hash, slot), |&(h, _)| h);
        slot
    }

    /// Marks the series appended in this scrape and says what to append, or
    /// None when this scrape already appended it (a duplicate: the first wins,
    /// as Prometheus keeps the first sample of a timestamp).
    pub(crate) fn emit(
        &mut self,
        slot: u32,
        epoch: u32,
        explicit_timestamp: Option<i64>,
    ) -> Option<Emit<'_>> {
        let s = self.series.get_mut(slot as usize)?;
        if s.appended == self.generation {
            return None;
        }
        if Some(s.appended) == self.last_appended {
            self.continued += 1;
        }
        s.before = s.appended;
        s.appended = self.generation;
        self.appended_now += 1;
        s.explicit_timestamps = explicit_timestamp.is_some();
        s.before_explicit = s.last_explicit;
        let in_order = match explicit_timestamp {
            Some(ts) if ts <= s.last_explicit => false,
            Some(ts) => {
                s.last_explicit = ts;
                true
            }
            None => true,
        };
        let describe = s.epoch != epoch;
        s.epoch = epoch;
        Some(Emit {
            series_ref: s.series_ref,
            text: text(&self.arena, s.start, s.len),
            name_len: s.name_len,
            describe,
            in_order,
        })
    }

    /// Call after a successful scrape whose samples were appended: marks the
    /// series it no longer has stale in `sink`, and forgets them.
    pub fn commit(&mut self, sink: &mut impl Appender, epoch: u32) {
        if let Some(last) = self.last_appended {
            if self.continued < self.last_count {
                let generation = self.generation;
                self.mark_stale(sink, epoch, |s| {
                    s.appended == last && s.appended != generation
                });
            }
        }
        self.last_appended = Some(self.generation);
        self.last_count = self.appended_now;
        if self.keys.len() > self.seen {
            self.forget_unseen();
        }
        self.settled = self.keys.len();
        self.give_back();
        self.next_generation();
    }

    /// Call after a failed scrape, whose samples were not appended: every
    /// series of the last successful scrape is marked stale in `sink`, as
    /// Prometheus does; the cache keeps what it knows unless a churning
    /// target has doubled it since the last success.
    pub fn discard(&mut self, sink: &mut impl Appender, epoch: u32) {
        let generation = self.generation;
        for s in self.series.iter_mut().filter(|s| s.appended == generation) {
            // Not appended after all, and its description was rolled back.
            s.appended = s.before;
            s.last_explicit = s.before_explicit;
            s.epoch = NEVER;
        }
        self.stale_all(sink, epoch);
        if self.keys.len() > 2 * self.settled + 1000 {
            self.forget_unseen();
        }
        self.give_back();
        self.next_generation();
    }

    /// Marks every series of the last successful scrape stale (a failed
    /// scrape, or shutdown); the next scrape starts without any.
    pub fn stale_all(&mut self, sink: &mut impl Appender, epoch: u32) {
        if let Some(last) = self.last_appended.take() {
            self.mark_stale(sink, epoch, |s| s.appended == last);
        }
        self.last_count = 0;
    }

    fn mark_stale(
        &mut self,
        sink: &mut impl Appender,
        epoch: u32,
        which: impl Fn(&Series) -> bool,
    ) {
        let family = Family::default();
        for s in self.series.iter_mut() {
            if s.keys == 0 || s.explicit_timestamps || !which(s) {
                continue;
            }
            let describe = s.epoch != epoch;
            s.epoch = epoch;
            sink.append(&Appended {
                series_ref: s.series_ref,
                series: text(&self.arena, s.start, s.len),
                name_len: s.name_len,
                family: &family,
                timestamp_ms: None,
                value: stale_nan(),
                describe,
                in_order: true,
            });
        }
    }

    /// Forces every series to be described again in the next epoch it is
    /// appended in (the sink lost what it was told).
    pub fn forget_descriptions(&mut self) {
        for s in &mut self.series {
            s.epoch = NEVER;
        }
    }

    fn next_generation(&mut self) {
        self.generation += 1;
        self.seen = 0;
        self.continued = 0;
        self.appended_now = 0;
    }

    fn forget_unseen(&mut self) {
        let current = self.generation;
        let (series, free, by_text, garbage) = (
            &mut self.series,
            &mut self.free,
            &mut self.by_text,
            &mut self.garbage,
        );
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.keys.retain(|k| {
            if k.generation == current {
                return true;
            }
            *garbage += k.len;
            if let Some(s) = series.get_mut(k.slot as usize) {
                s.keys -= 1;
                if s.keys == 0 {
                    *garbage += s.len;
                    let hash = hasher.hash_one(text(arena, s.start, s.len).as_bytes());
                    if let Ok(entry) = by_text.find_entry(hash, |&(_, slot)| slot == k.slot) {
                        entry.remove();
                    }
                    free.push(k.slot);
                }
            }
            false
        });
        if self.garbage > self.arena.len() / 2 {
            self.compact();
        }
    }

    /// Gives back what a much larger earlier scrape left: the index tables
    /// and the series slots (renumbered when most are free), as
    /// [`crate::buffers::give_back`] does for plain buffers.
    fn give_back(&mut self) {
        use crate::buffers::oversized;
        let live = self.series.len() - self.free.len();
        if oversized(self.series.len(), live, std::mem::size_of::<Series>()) {
            self.renumber();
        }
        crate::buffers::give_back(&mut self.series, live);
        let free = self.free.len();
        crate::buffers::give_back(&mut self.free, free);
        if oversized(
            self.keys.capacity(),
            self.keys.len(),
            std::mem::size_of::<Key>(),
        ) {
            self.keys.shrink_to(self.keys.len() * 2, |k| k.hash);
        }
        if oversized(self.by_text.capacity(), self.by_text.len(), 16) {
            self.by_text.shrink_to(self.by_text.len() * 2, |&(h, _)| h);
        }
        let used = self.scratch.len();
        crate::buffers::give_back(&mut self.scratch, used);
    }

    /// Moves the live series to the front of `series` (free slots dropped)
    /// and points the keys and the text index at their new slots. Only
    /// between scrapes: no slot is held elsewhere then.
    fn renumber(&mut self) {
        let mut moved = vec![DROPPED; self.series.len()];
        let mut live = Vec::with_capacity(self.series.len() - self.free.len());
        for (old, s) in self.series.drain(..).enumerate() {
            if s.keys > 0 {
                moved[old] = u32::try_from(live.len()).unwrap_or(DROPPED);
                live.push(s);
            }
        }
        self.series = live;
        self.free.clear();
        for k in self.keys.iter_mut() {
            if let Some(&slot) = moved.get(k.slot as usize) {
                k.slot = slot;
            }
        }
        for (_, slot) in self.by_text.iter_mut() {
            if let Some(&new) = moved.get(*slot as usize) {
                *slot = new;
            }
        }
    }

    /// Copies what is live into a new arena.
    fn compact(&mut self) {
        let live = self.arena.len() - self.garbage;
        let mut arena = String::with_capacity(live);
        for k in self.keys.iter_mut() {
            let bytes = text(&self.arena, k.start, k.len);
            k.start = arena.len();
            arena.push_str(bytes);
        }
        for s in self.series.iter_mut().filter(|s| s.keys > 0) {
            let bytes = text(&self.arena, s.start, s.len);
            s.start = arena.len();
            arena.push_str(bytes);
        }
        self.arena = arena;
        self.garbage = 0;
    }
}
