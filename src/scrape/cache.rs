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
//! A key is not stored: the cache holds 96 bits of a hash of its bytes
//! (XXH3-128 with a secret drawn at random for each process), which is all
//! a lookup compares. Two keys collide with probability about n²/2^97 for
//! n keys, about 6·10⁻¹⁸ at a million series, far below the odds of a
//! memory error (96 bits rather than all 128 save 4 of a key's 24 bytes); and as the hashes never leave the process and the secret is
//! not known outside it, a target cannot write series chosen to collide. A
//! collision would file one series' samples under the other's labels.
//! Prometheus keys its scrape cache by the full string; holding only the
//! hash saves a series' text as the target wrote it, about half the cache.
//! The table buckets by 64 of those bits, so a key is hashed once.
//!
//! Rendered series live end to end in an [`Arena`], so a series costs its
//! bytes and a small index record, not heap allocations; a series that
//! starts as the one before it (a family's series differ late) keeps only
//! what follows the shared prefix.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use hashbrown::{DefaultHashBuilder, HashTable};
use xxhash_rust::xxh3::xxh3_128_with_secret;

use super::arena::{Arena, Stored};
use super::error::PipelineError;
use super::slots::Slots;
use crate::storage::{
    name_start, next_ref, stale_nan, Appended, Appender, Family, Histogram, SeriesRef, SeriesText,
    Value,
};

/// Marks a key whose series relabeling dropped.
const DROPPED: u32 = u32::MAX;

/// Bytes of XXH3's secret (its default size).
const SECRET_LEN: usize = 192;

/// The process's XXH3 secret: random, so that which keys collide cannot be
/// known outside the process.
fn secret() -> &'static [u8; SECRET_LEN] {
    static SECRET: OnceLock<[u8; SECRET_LEN]> = OnceLock::new();
    SECRET.get_or_init(|| {
        // std seeds RandomState from the OS's random source; SipHash of a
        // counter under that key stretches it to the secret's length.
        let state = std::collections::hash_map::RandomState::new();
        let mut secret = [0; SECRET_LEN];
        for (i, chunk) in secret.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&state.hash_one(i).to_le_bytes());
        }
        secret
    })
}

/// 96 bits of a key's XXH3-128 hash, as three u32 (so a [`Key`] is 20
/// bytes, 4-byte aligned): the first two, `low`, also bucket the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyHash([u32; 3]);

impl KeyHash {
    #[inline]
    fn of(key: &[u8], secret: &[u8; SECRET_LEN]) -> Self {
        let hash = xxh3_128_with_secret(key, secret);
        KeyHash([hash as u32, (hash >> 32) as u32, (hash >> 64) as u32])
    }

    /// The 64 bits the table buckets by.
    fn low(&self) -> u64 {
        u64::from(self.0[0]) | u64::from(self.0[1]) << 32
    }
}

/// One target series as written in the body, known by its hash alone.
#[derive(Debug)]
struct Key {
    hash: KeyHash,
    /// The scrape that last saw it.
    generation: u32,
    /// Index into `series`, or [`DROPPED`].
    slot: u32,
}

/// Bits of a key's hash that choose its shard of [`Keys`].
const SHARD_BITS: u32 = 4;

/// The keys, in 16 tables by 4 bits of their hash (bits the tables do
/// not bucket by). A table grows by allocating twice its buckets and
/// moving its keys over, so one table held both sizes at once while it
/// grew: at a million keys, a target's first scrape peaked at 75 MiB for
/// a 50 MiB table. Shards grow one at a time, a sixteenth of that each.
#[derive(Debug)]
struct Keys {
    shards: [HashTable<Key>; 1 << SHARD_BITS],
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            shards: std::array::from_fn(|_| HashTable::new()),
        }
    }
}

impl Keys {
    fn shard(hash: &KeyHash) -> usize {
        (hash.0[2] >> (32 - SHARD_BITS)) as usize
    }

    fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    fn find_mut(&mut self, hash: &KeyHash) -> Option<&mut Key> {
        self.shards[Self::shard(hash)].find_mut(hash.low(), |k| k.hash == *hash)
    }

    fn find(&self, hash: &KeyHash) -> Option<&Key> {
        self.shards[Self::shard(hash)].find(hash.low(), |k| k.hash == *hash)
    }

    fn insert_unique(&mut self, key: Key) {
        self.shards[Self::shard(&key.hash)].insert_unique(key.hash.low(), key, |k| k.hash.low());
    }

    fn retain(&mut self, mut keep: impl FnMut(&mut Key) -> bool) {
        for shard in &mut self.shards {
            shard.retain(&mut keep);
        }
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Key> {
        self.shards.iter_mut().flat_map(HashTable::iter_mut)
    }

    /// Shrinks each shard much larger than its keys need (see [`SeriesCache::give_back`]).
    fn give_back(&mut self) {
        for shard in &mut self.shards {
            if crate::buffers::oversized(shard.capacity(), shard.len(), std::mem::size_of::<Key>())
            {
                shard.shrink_to(shard.len() * 2, |k| k.hash.low());
            }
        }
    }
}

/// One label set after target labels and relabeling: 40 bytes besides its
/// own text (4-byte aligned, no padding: the ref in two halves, the kind in
/// the name length's top bits). Generations are u32: a key or series not
/// seen by a successful scrape is forgotten at its end, so a cached
/// generation is never 2^32 scrapes old.
#[derive(Debug)]
struct Series {
    /// Its [`SeriesRef`], low half first.
    series_ref: [u32; 2],
    at: Stored,
    /// Bytes of its text, shared prefix included (at most u32::MAX: see
    /// [`PipelineError::SeriesTooLong`]).
    len: u32,
    /// Bytes of its name in the low 30 bits (see [`MAX_NAME`]), and in the
    /// top two what its last sample was: its staleness marker is of the
    /// same kind.
    name_kind: u32,
    /// The scrape that last appended a sample of it, and the one before.
    appended: u32,
    before: u32,
    /// How many keys lead here; 0 for a free slot.
    keys: u32,
}

/// The longest name a series may have (longer is [`PipelineError::SeriesTooLong`]).
const MAX_NAME: u32 = (1 << 30) - 1;

impl Series {
    fn series_ref(&self) -> SeriesRef {
        u64::from(self.series_ref[0]) | u64::from(self.series_ref[1]) << 32
    }

    fn name_len(&self) -> usize {
        (self.name_kind & MAX_NAME) as usize
    }

    fn kind(&self) -> Kind {
        match self.name_kind >> 30 {
            0 => Kind::Float,
            1 => Kind::IntegerHistogram,
            _ => Kind::FloatHistogram,
        }
    }

    fn set_kind(&mut self, kind: Kind) {
        let bits = match kind {
            Kind::Float => 0,
            Kind::IntegerHistogram => 1,
            Kind::FloatHistogram => 2,
        };
        self.name_kind = (self.name_kind & MAX_NAME) | bits << 30;
    }
}

/// What a series' last sample was, for its staleness marker: Prometheus 3
/// marks a histogram series stale with a histogram whose sum is the stale NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Kind {
    #[default]
    Float,
    IntegerHistogram,
    FloatHistogram,
}

impl Kind {
    /// The kind of `value`.
    pub(crate) fn of(value: &Value<'_>) -> Kind {
        match value {
            Value::Float(_) => Kind::Float,
            Value::Histogram(h) if h.is_float() => Kind::FloatHistogram,
            Value::Histogram(_) => Kind::IntegerHistogram,
        }
    }
}

/// A series' own timestamps, kept apart as few targets write any.
#[derive(Debug, Clone, Copy)]
struct Explicit {
    /// The last scrape appended it with the target's own timestamp:
    /// Prometheus does not mark such series stale.
    on: bool,
    /// The newest of the target's own timestamps appended, and the one
    /// before this scrape: a sample not newer is out of order for a receiver.
    last: i64,
    before: i64,
}

/// A series that never had its own timestamp.
const NO_EXPLICIT: Explicit = Explicit {
    on: false,
    last: i64::MIN,
    before: i64::MIN,
};

/// What a key leads to.
pub(crate) struct Lookup {
    /// The series, or None when relabeling dropped it.
    pub slot: Option<u32>,
    /// The key was not in the cache.
    pub new: bool,
    /// A new series past the `series_limit`: not cached, its sample dropped.
    pub limited: bool,
}

/// A series to append now.
pub(crate) struct Emit<'c> {
    pub series_ref: SeriesRef,
    pub text: SeriesText<'c>,
    pub name_len: usize,
    /// False when the target's own timestamp is not newer than the last one
    /// appended: a receiver would reject it (and its whole batch).
    pub in_order: bool,
}

/// See the module documentation; the scrape loop keeps one per target.
#[derive(Debug)]
pub struct SeriesCache {
    keys: Keys,
    series: Slots<Series>,
    /// By slot as `series`, up to the last slot that had its own timestamp
    /// (empty for a target that writes none); [`NO_EXPLICIT`] past its end.
    explicit: Vec<Explicit>,
    free: Vec<u32>,
    /// Slots by the hash of their text, to find a label set another key
    /// already has (the hash is computed again when the table grows).
    by_text: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The process's secret for key hashes (see [`secret`]).
    secret: &'static [u8; SECRET_LEN],
    arena: Arena,
    /// Bytes of `arena` that nothing uses any more.
    garbage: usize,
    /// Where a new series is rendered before it joins the arena.
    scratch: Vec<u8>,
    /// Where a series stored in two pieces is joined to be hashed.
    joined: String,
    /// The current scrape; starts at 1 so that 0 means "never".
    generation: u32,
    /// Keys the current scrape has seen.
    seen: usize,
    /// Keys after the last successful scrape, to bound growth when scrapes fail.
    settled: usize,
    /// The last successful scrape, while no scrape has failed since.
    last_appended: Option<u32>,
    /// How many series it appended.
    last_count: usize,
    /// Of the series appended in this scrape, how many it also appended.
    continued: usize,
    /// Series appended in this scrape.
    appended_now: usize,
    /// vmagent's `series_limit` (0: none): live series at most.
    series_limit: usize,
    /// The first series the limit kept out, until taken (once per cache).
    first_limited: Option<String>,
    limit_noted: bool,
}

impl Default for SeriesCache {
    fn default() -> Self {
        SeriesCache {
            keys: Keys::default(),
            series: Slots::default(),
            explicit: Vec::new(),
            free: Vec::new(),
            by_text: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            secret: secret(),
            arena: Arena::default(),
            garbage: 0,
            scratch: Vec::new(),
            joined: String::new(),
            generation: 1,
            seen: 0,
            settled: 0,
            last_appended: None,
            last_count: 0,
            continued: 0,
            appended_now: 0,
            series_limit: 0,
            first_limited: None,
            limit_noted: false,
        }
    }
}

/// `r` in halves, low first (see [`Series`]).
fn split(r: SeriesRef) -> [u32; 2] {
    [r as u32, (r >> 32) as u32]
}

fn text<'a>(arena: &'a Arena, s: &Series) -> SeriesText<'a> {
    arena.text(s.at, s.len)
}

impl SeriesCache {
    /// How many target series (keys) are cached.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }

    /// Label sets (series) held: what `series_limit` counts. A series the
    /// target stopped writing is forgotten after the scrape that marks it
    /// stale, which frees its place.
    pub fn series_count(&self) -> usize {
        self.series.len() - self.free.len()
    }

    /// Sets the `series_limit` (0: none) new series are checked against.
    pub fn set_series_limit(&mut self, limit: usize) {
        self.series_limit = limit;
    }

    /// The first series the limit kept out, once per cache (for one log line).
    pub fn take_first_limited(&mut self) -> Option<String> {
        self.first_limited.take()
    }

    /// Bytes held in the arena, live or not (for tests of its bound).
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }

    /// Bytes of the arena that live series use (their own, past a shared
    /// prefix).
    pub fn live_len(&self) -> usize {
        self.series
            .iter()
            .filter(|s| s.keys > 0)
            .map(|s| (s.len - s.at.shared) as usize)
            .sum()
    }

    /// The series the last successful scrape appended, as rendered (for
    /// the status page's cardinality, computed on request).
    pub fn live_series(&self) -> impl Iterator<Item = String> + '_ {
        let last = self.last_appended;
        self.series
            .iter()
            .filter(move |s| s.keys > 0 && last == Some(s.appended))
            .map(|s| text(&self.arena, s).to_string())
    }

    /// How many series the last successful scrape appended.
    pub fn live_count(&self) -> usize {
        if self.last_appended.is_some() {
            self.last_count
        } else {
            0
        }
    }

    /// Finds the series for `key`. On a miss, `first_sight` renders the
    /// series into the scratch buffer and returns its name's length, or None
    /// when relabeling drops it.
    #[inline]
    pub(crate) fn lookup(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<Lookup, PipelineError> {
        let (hash, known) = self.find_seen(key);
        if let Some(slot) = known {
            let slot = (slot != DROPPED).then_some(slot);
            return Ok(Lookup {
                slot,
                new: false,
                limited: false,
            });
        }
        self.miss(hash, first_sight)
    }

    /// [`SeriesCache::lookup`] of a key not seen before: kept out of line,
    /// so the known keys' path (every sample of a steady scrape) stays small
    /// enough to inline into the pipeline's loop.
    #[inline(never)]
    fn miss(
        &mut self,
        hash: KeyHash,
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<Lookup, PipelineError> {
        self.scratch.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        let rendered = first_sight(&mut scratch);
        let slot = match rendered.and_then(|name_len| {
            name_len
                .map(|name_len| self.series_for(&scratch, name_len))
                .transpose()
        }) {
            Ok(Some(Some(slot))) => Some(slot),
            Ok(None) => None,
            Ok(Some(None)) => {
                // Past the series limit: the key stays unknown, so a later
                // scrape tries again once a place is free.
                if !self.limit_noted {
                    self.limit_noted = true;
                    self.first_limited = Some(String::from_utf8_lossy(&scratch).into_owned());
                }
                self.scratch = scratch;
                return Ok(Lookup {
                    slot: None,
                    new: true,
                    limited: true,
                });
            }
            Err(e) => {
                self.scratch = scratch;
                return Err(e);
            }
        };
        self.scratch = scratch;
        let entry = Key {
            hash,
            generation: self.generation,
            slot: slot.unwrap_or(DROPPED),
        };
        self.keys.insert_unique(entry);
        self.seen += 1;
        Ok(Lookup {
            slot,
            new: true,
            limited: false,
        })
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
    #[inline]
    fn find_seen(&mut self, key: &[u8]) -> (KeyHash, Option<u32>) {
        let hash = KeyHash::of(key, self.secret);
        let generation = self.generation;
        let Some(k) = self.keys.find_mut(&hash) else {
            return (hash, None);
        };
        if k.generation != generation {
            k.generation = generation;
            self.seen += 1;
        }
        (hash, Some(k.slot))
    }

    /// The slot of the label set rendered as `rendered`, made if new; None
    /// when it is new and the `series_limit` is reached.
    fn series_for(
        &mut self,
        rendered: &[u8],
        name_len: usize,
    ) -> Result<Option<u32>, PipelineError> {
        let hash = self.hasher.hash_one(rendered);
        let (arena, series) = (&self.arena, &self.series);
        let found = self.by_text.find(hash, |&slot| {
            series
                .get(slot as usize)
                .is_some_and(|s| text(arena, s).is(rendered))
        });
        if let Some(&slot) = found {
            if let Some(s) = self.series.get_mut(slot as usize) {
                s.keys += 1;
            }
            return Ok(Some(slot));
        }
        if self.series_limit > 0 && self.series_count() >= self.series_limit {
            return Ok(None);
        }
        let too_long = || PipelineError::SeriesTooLong {
            length: rendered.len(),
        };
        let len = u32::try_from(rendered.len()).map_err(|_| too_long())?;
        let name_len = u32::try_from(name_len)
            .ok()
            .filter(|&n| n <= MAX_NAME)
            .ok_or_else(too_long)?;
        // Rendered from str pieces: this only checks.
        let rendered_text = String::from_utf8_lossy(rendered);
        let name_end = name_start(&rendered_text) + name_len as usize;
        let at = self
            .arena
            .store(&rendered_text, name_end)
            .ok_or_else(too_long)?;
        let entry = Series {
            series_ref: split(next_ref()),
            at,
            len,
            name_kind: name_len,
            appended: 0,
            before: 0,
            keys: 1,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.series.get_mut(slot as usize) {
                    *s = entry;
                }
                if let Some(e) = self.explicit.get_mut(slot as usize) {
                    *e = NO_EXPLICIT;
                }
                slot
            }
            None => {
                self.series.push(entry);
                u32::try_from(self.series.len() - 1).unwrap_or(DROPPED - 1)
            }
        };
        let joined = RefCell::new(std::mem::take(&mut self.joined));
        let (arena, series, hasher) = (&self.arena, &self.series, &self.hasher);
        self.by_text.insert_unique(hash, slot, |&slot| {
            text_hash(hasher, arena, series, slot, &joined)
        });
        self.joined = joined.into_inner();
        Ok(Some(slot))
    }

    /// Marks the series appended in this scrape and says what to append, or
    /// None when this scrape already appended it (a duplicate: the first wins,
    /// as Prometheus keeps the first sample of a timestamp).
    #[inline]
    pub(crate) fn emit(
        &mut self,
        slot: u32,
        explicit_timestamp: Option<i64>,
        kind: Kind,
    ) -> Option<Emit<'_>> {
        let s = self.series.get_mut(slot as usize)?;
        if s.appended == self.generation {
            return None;
        }
        s.set_kind(kind);
        if Some(s.appended) == self.last_appended {
            self.continued += 1;
        }
        s.before = s.appended;
        s.appended = self.generation;
        self.appended_now += 1;
        let index = slot as usize;
        if explicit_timestamp.is_some() && self.explicit.len() <= index {
            self.explicit.resize(index + 1, NO_EXPLICIT);
        }
        let in_order = match self.explicit.get_mut(index) {
            Some(e) => {
                e.on = explicit_timestamp.is_some();
                e.before = e.last;
                match explicit_timestamp {
                    Some(ts) if ts <= e.last => false,
                    Some(ts) => {
                        e.last = ts;
                        true
                    }
                    None => true,
                }
            }
            None => true,
        };
        Some(Emit {
            series_ref: s.series_ref(),
            text: text(&self.arena, s),
            name_len: s.name_len(),
            in_order,
        })
    }

    /// Call after a successful scrape whose samples were appended: marks the
    /// series it no longer has stale in `sink`, and forgets them.
    pub fn commit(&mut self, sink: &mut impl Appender) {
        if let Some(last) = self.last_appended {
            if self.continued < self.last_count {
                let generation = self.generation;
                self.mark_stale(sink, |s| s.appended == last && s.appended != generation);
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
    pub fn discard(&mut self, sink: &mut impl Appender) {
        let generation = self.generation;
        for (index, s) in self.series.iter_mut().enumerate() {
            if s.appended != generation {
                continue;
            }
            // Not appended after all.
            s.appended = s.before;
            if let Some(e) = self.explicit.get_mut(index) {
                e.last = e.before;
            }
        }
        self.stale_all(sink);
        if self.keys.len() > 2 * self.settled + 1000 {
            self.forget_unseen();
        }
        self.give_back();
        self.next_generation();
    }

    /// Marks every series of the last successful scrape stale (a failed
    /// scrape, or shutdown); the next scrape starts without any.
    pub fn stale_all(&mut self, sink: &mut impl Appender) {
        if let Some(last) = self.last_appended.take() {
            self.mark_stale(sink, |s| s.appended == last);
        }
        self.last_count = 0;
    }

    fn mark_stale(&mut self, sink: &mut impl Appender, which: impl Fn(&Series) -> bool) {
        let family = Family::default();
        // Empty: making them allocates nothing.
        let integer = Histogram::stale(false, stale_nan());
        let float = Histogram::stale(true, stale_nan());
        for (index, s) in self.series.iter_mut().enumerate() {
            let explicit = self.explicit.get(index).is_some_and(|e| e.on);
            if s.keys == 0 || explicit || !which(s) {
                continue;
            }
            let mut marker = Appended::float(
                s.series_ref(),
                text(&self.arena, s),
                s.name_len(),
                &family,
                None,
                stale_nan(),
            );
            match s.kind() {
                Kind::Float => {}
                Kind::IntegerHistogram => marker.value = Value::Histogram(&integer),
                Kind::FloatHistogram => marker.value = Value::Histogram(&float),
            }
            sink.append(&marker);
        }
    }

    fn next_generation(&mut self) {
        // 0 means "never"; see [`Series`] on why wrapping is safe.
        self.generation = self.generation.wrapping_add(1).max(1);
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
        let (arena, hasher, joined) = (&self.arena, &self.hasher, &mut self.joined);
        self.keys.retain(|k| {
            if k.generation == current {
                return true;
            }
            if let Some(s) = series.get_mut(k.slot as usize) {
                s.keys -= 1;
                if s.keys == 0 {
                    *garbage += (s.len - s.at.shared) as usize;
                    let hash = hasher.hash_one(text(arena, s).join(joined).as_bytes());
                    if let Ok(entry) = by_text.find_entry(hash, |&slot| slot == k.slot) {
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
        let explicit = self.explicit.len();
        crate::buffers::give_back(&mut self.explicit, explicit);
        let free = self.free.len();
        crate::buffers::give_back(&mut self.free, free);
        self.keys.give_back();
        if oversized(self.by_text.capacity(), self.by_text.len(), 4) {
            let joined = RefCell::new(std::mem::take(&mut self.joined));
            let (arena, series, hasher) = (&self.arena, &self.series, &self.hasher);
            self.by_text.shrink_to(self.by_text.len() * 2, |&slot| {
                text_hash(hasher, arena, series, slot, &joined)
            });
            self.joined = joined.into_inner();
        }
        let used = self.scratch.len();
        crate::buffers::give_back(&mut self.scratch, used);
    }

    /// Moves the live series to the front of `series` (free slots dropped)
    /// and points the keys and the text index at their new slots. Only
    /// between scrapes: no slot is held elsewhere then.
    fn renumber(&mut self) {
        let mut moved = vec![DROPPED; self.series.len()];
        let mut live = Slots::default();
        let mut explicit = Vec::new();
        for (old, s) in self.series.take_all().enumerate() {
            if s.keys > 0 {
                moved[old] = u32::try_from(live.len()).unwrap_or(DROPPED);
                live.push(s);
                if !self.explicit.is_empty() {
                    explicit.push(self.explicit.get(old).copied().unwrap_or(NO_EXPLICIT));
                }
            }
        }
        self.series = live;
        self.explicit = explicit;
        self.free.clear();
        for k in self.keys.iter_mut() {
            if let Some(&slot) = moved.get(k.slot as usize) {
                k.slot = slot;
            }
        }
        for slot in self.by_text.iter_mut() {
            if let Some(&new) = moved.get(*slot as usize) {
                *slot = new;
            }
        }
    }

    /// Copies what is live into a new arena (sharing prefixes anew).
    fn compact(&mut self) {
        let mut arena = Arena::default();
        for s in self.series.iter_mut().filter(|s| s.keys > 0) {
            let name_end = name_start(text(&self.arena, s).first()) + s.name_len();
            let whole = text(&self.arena, s).join(&mut self.joined);
            if let Some(at) = arena.store(whole, name_end) {
                s.at = at;
            }
        }
        self.arena = arena;
        self.garbage = 0;
    }
}

/// The hash `by_text` files a slot under: its whole text's (joined in
/// `joined` when stored in two pieces).
fn text_hash(
    hasher: &DefaultHashBuilder,
    arena: &Arena,
    series: &Slots<Series>,
    slot: u32,
    joined: &RefCell<String>,
) -> u64 {
    series.get(slot as usize).map_or(0, |s| {
        let mut joined = joined.borrow_mut();
        hasher.hash_one(text(arena, s).join(&mut joined).as_bytes())
    })
}

/// Read-only views for a scrape that must leave the cache as it was (the
/// scrape a GET asks for while remote write runs, see `super::lookup`).
impl SeriesCache {
    /// What `key` leads to, without marking it seen: None when unknown,
    /// Some(None) when relabeling dropped its series.
    pub(crate) fn peek(&self, key: &[u8]) -> Option<Option<u32>> {
        let hash = KeyHash::of(key, self.secret);
        let k = self.keys.find(&hash)?;
        Some((k.slot != DROPPED).then_some(k.slot))
    }

    /// The live slot whose series is rendered as `rendered`, if any.
    pub(crate) fn peek_text(&self, rendered: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(rendered);
        let (arena, series) = (&self.arena, &self.series);
        self.by_text
            .find(hash, |&slot| {
                series
                    .get(slot as usize)
                    .is_some_and(|s| s.keys > 0 && text(arena, s).is(rendered))
            })
            .copied()
    }

    /// A live slot's series: its ref, its text and its name's length.
    pub(crate) fn peek_series(&self, slot: u32) -> Option<(SeriesRef, SeriesText<'_>, usize)> {
        let s = self.series.get(slot as usize).filter(|s| s.keys > 0)?;
        Some((s.series_ref(), text(&self.arena, s), s.name_len()))
    }

    /// How many slots there are (live or free): every slot is below it.
    pub(crate) fn slots(&self) -> usize {
        self.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_40_bytes_and_a_key_20() {
        assert_eq!(std::mem::size_of::<Series>(), 40);
        assert_eq!(std::mem::size_of::<Key>(), 20);
    }

    #[test]
    fn keys_spread_over_the_shards_are_found_kept_and_forgotten() {
        let mut keys = Keys::default();
        let secret = secret();
        let hashes: Vec<KeyHash> = (0..10_000)
            .map(|i| KeyHash::of(format!("m{{i=\"{i}\"}}").as_bytes(), secret))
            .collect();
        for (i, &hash) in hashes.iter().enumerate() {
            keys.insert_unique(Key {
                hash,
                generation: 1,
                slot: i as u32,
            });
        }
        assert_eq!(keys.len(), hashes.len());
        let smallest = keys.shards.iter().map(HashTable::len).min();
        assert!(smallest > Some(400), "every shard has keys: {smallest:?}");
        for (i, hash) in hashes.iter().enumerate() {
            assert_eq!(keys.find_mut(hash).map(|k| k.slot), Some(i as u32));
        }
        keys.retain(|k| k.slot % 2 == 0);
        assert_eq!(keys.len(), hashes.len() / 2);
        for (i, hash) in hashes.iter().enumerate() {
            assert_eq!(keys.find_mut(hash).is_some(), i % 2 == 0, "{i}");
        }
        assert_eq!(keys.iter_mut().count(), hashes.len() / 2);
    }

    #[test]
    fn a_series_keeps_its_ref_name_length_and_kind_in_packed_fields() {
        let r = 0x1234_5678_9abc_def0;
        let mut s = Series {
            series_ref: split(r),
            at: Stored {
                start: 0,
                base: 0,
                shared: 0,
            },
            len: 0,
            name_kind: MAX_NAME,
            appended: 0,
            before: 0,
            keys: 1,
        };
        assert_eq!(s.series_ref(), r);
        for kind in [Kind::FloatHistogram, Kind::IntegerHistogram, Kind::Float] {
            s.set_kind(kind);
            assert_eq!((s.kind(), s.name_len()), (kind, MAX_NAME as usize));
        }
    }

    #[test]
    fn a_name_longer_than_the_packed_field_holds_is_refused() {
        let mut cache = SeriesCache::default();
        let got = cache.lookup(b"m", |_| Ok(Some(MAX_NAME as usize + 1)));
        assert!(
            matches!(got, Err(PipelineError::SeriesTooLong { .. })),
            "{:?}",
            got.map(|l| l.slot)
        );
        let got = cache.lookup(b"m", |out| {
            out.extend_from_slice(b"m");
            Ok(Some(1))
        });
        let slot = got.ok().and_then(|l| l.slot).expect("a slot");
        let emit = cache.emit(slot, None, Kind::Float).expect("emitted");
        assert_eq!((emit.text.to_string().as_str(), emit.name_len), ("m", 1));
    }
}
