//! How the pipeline finds the series of a key ([`Lookups`]): through the
//! scrape loop's own [`SeriesCache`], which learns every scrape's series,
//! or through a [`Peek`] at it that leaves it as it was.
//!
//! A [`Peek`] is for the scrape a GET asks for after an idle time while
//! remote write runs (`Scraper::scrape_for_get`): that scrape must change
//! nothing the next interval scrape relies on (which series were appended
//! and when, which keys are known, the generations), yet a fresh cache of
//! its own would hold every series' text a second time (about 18 MiB at
//! 100k series, the served relay's peak). A key the loop knows is served
//! with the loop's rendered series, read only; a key it does not know is
//! processed into a small cache of the peek's own, dropped with it.

use super::cache::{Emit, Kind, Lookup, SeriesCache};
use super::error::PipelineError;

/// What the pipeline asks of a series cache while it runs a body.
pub(crate) trait Lookups {
    /// The `series_limit` (0: none) new series are checked against.
    fn set_series_limit(&mut self, limit: usize);

    /// Finds the series for `key`; on a miss `first_sight` renders it into
    /// the buffer and returns its name's length (None: relabeling drops it).
    fn lookup(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<Lookup, PipelineError>;

    /// Whether relabeling keeps the series of `key`, caching nothing new.
    fn kept_uncached(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<bool, PipelineError>;

    /// What to append for `slot` now, or None if this scrape already did.
    fn emit(&mut self, slot: u32, explicit_timestamp: Option<i64>, kind: Kind) -> Option<Emit<'_>>;
}

// Forwarders, inlined: a call per sample through them cost 26 instructions.
impl Lookups for SeriesCache {
    fn set_series_limit(&mut self, limit: usize) {
        SeriesCache::set_series_limit(self, limit);
    }

    #[inline]
    fn lookup(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<Lookup, PipelineError> {
        SeriesCache::lookup(self, key, first_sight)
    }

    fn kept_uncached(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<bool, PipelineError> {
        SeriesCache::kept_uncached(self, key, first_sight)
    }

    #[inline]
    fn emit(&mut self, slot: u32, explicit_timestamp: Option<i64>, kind: Kind) -> Option<Emit<'_>> {
        SeriesCache::emit(self, slot, explicit_timestamp, kind)
    }
}

/// Marks a slot of the peek's own cache (the loop's slots are below it: a
/// cache of 2^31 series would take far more memory than any Pod has).
const OWN: u32 = 1 << 31;

/// A read-only look at the loop's cache, with a cache of its own for the
/// series the loop does not know (see the module documentation).
pub(crate) struct Peek<'l> {
    known: &'l SeriesCache,
    /// Series the loop does not know, met in this scrape.
    own: SeriesCache,
    /// Which of the loop's slots this scrape appended (a bit each): the
    /// first sample of a series wins, as in the loop's cache.
    emitted: Vec<u64>,
    /// A new key's series as rendered, before it is looked for in `known`.
    rendered: Vec<u8>,
    /// How many new series the `series_limit` still lets in; None: no limit.
    room: Option<usize>,
}

impl<'l> Peek<'l> {
    /// A peek at `known`, which it leaves as it is.
    pub fn new(known: &'l SeriesCache) -> Peek<'l> {
        Peek {
            known,
            own: SeriesCache::default(),
            emitted: vec![0; known.slots().div_ceil(64)],
            rendered: Vec::new(),
            room: None,
        }
    }

    /// Bytes of series text the peek's own cache holds (for tests).
    #[cfg(test)]
    pub fn own_arena_len(&self) -> usize {
        self.own.arena_len()
    }
}

impl Lookups for Peek<'_> {
    fn set_series_limit(&mut self, limit: usize) {
        // New series join what the loop holds, as at the next interval
        // scrape; with no room left, the peek's own cache takes none.
        self.room = (limit > 0).then(|| limit.saturating_sub(self.known.series_count()));
        self.own.set_series_limit(self.room.unwrap_or(0));
    }

    fn lookup(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<Lookup, PipelineError> {
        let known = |slot: Option<u32>, new: bool| Lookup {
            slot,
            new,
            limited: false,
        };
        if let Some(slot) = self.known.peek(key) {
            return Ok(known(slot, false));
        }
        if self.own.peek(key).is_some() {
            let found = self.own.lookup(key, |_| Ok(None))?;
            return Ok(Lookup {
                slot: found.slot.map(|s| s | OWN),
                ..found
            });
        }
        self.rendered.clear();
        let Some(name_len) = first_sight(&mut self.rendered)? else {
            // Relabeling drops it: remembered, so a repeat is not relabeled.
            self.own.lookup(key, |_| Ok(None))?;
            return Ok(known(None, true));
        };
        // Another key of the loop's may lead to the same label set.
        if let Some(slot) = self.known.peek_text(&self.rendered) {
            return Ok(known(Some(slot), true));
        }
        if self.room == Some(0) {
            return Ok(Lookup {
                slot: None,
                new: true,
                limited: true,
            });
        }
        let rendered = &self.rendered;
        let found = self.own.lookup(key, |out| {
            out.extend_from_slice(rendered);
            Ok(Some(name_len))
        })?;
        Ok(Lookup {
            slot: found.slot.map(|s| s | OWN),
            ..found
        })
    }

    fn kept_uncached(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<bool, PipelineError> {
        match self.known.peek(key) {
            Some(slot) => Ok(slot.is_some()),
            None => self.own.kept_uncached(key, first_sight),
        }
    }

    fn emit(&mut self, slot: u32, explicit_timestamp: Option<i64>, kind: Kind) -> Option<Emit<'_>> {
        if slot & OWN != 0 {
            return self.own.emit(slot & !OWN, explicit_timestamp, kind);
        }
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        let seen = self.emitted.get_mut(word)?;
        if *seen & bit != 0 {
            return None;
        }
        *seen |= bit;
        let (series_ref, text, name_len) = self.known.peek_series(slot)?;
        // This scrape goes to no receiver: its own timestamps are in order
        // as far as the GET is concerned (as with a cache of its own).
        Some(Emit {
            series_ref,
            text,
            name_len,
            in_order: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{Format, Labels};
    use crate::relabel::Rules;
    use crate::scrape::pipeline::{
        Appended, Appender, Carry, Counts, Limits, Rendered, Settings, Stream,
    };
    use crate::storage::Value;

    /// What a sink was handed: each series' text and value, in order.
    #[derive(Default)]
    struct Log(Vec<(String, String)>);

    impl Appender for Log {
        fn append(&mut self, s: &Appended<'_>) {
            let value = match s.value {
                Value::Float(v) if v.is_nan() => format!("NaN {:x}", v.to_bits()),
                Value::Float(v) => v.to_string(),
                Value::Histogram(_) => "histogram".into(),
            };
            self.0.push((s.series.to_string(), value));
        }
    }

    fn target() -> Labels<'static> {
        [("instance", "app:8001"), ("job", "app")]
            .into_iter()
            .collect::<Labels>()
            .into_owned()
    }

    /// Runs `body` through `cache` into `sink` as the scrape loop does.
    fn run<C: Lookups, S: Appender>(
        settings: &Settings<'_>,
        cache: &mut C,
        sink: &mut S,
        body: &str,
    ) -> Counts {
        let mut counts = Counts::default();
        let mut carry = Carry::gathering(8);
        let mut stream = Stream::new(Format::Text, settings, cache, &mut counts, sink);
        // Small chunks: the peek is used across pieces as a scrape goes.
        for chunk in body.as_bytes().chunks(5) {
            stream.feed(&mut carry, chunk).expect("valid");
        }
        stream.finish(&mut carry).expect("valid");
        counts
    }

    /// An interval scrape: appended to a log, then committed (staleness).
    fn interval(settings: &Settings<'_>, cache: &mut SeriesCache, body: &str) -> (Log, usize) {
        let mut log = Log::default();
        let counts = run(settings, cache, &mut log, body);
        cache.commit(&mut log);
        (log, counts.series_added)
    }

    fn rendered<C: Lookups>(settings: &Settings<'_>, cache: &mut C, body: &str) -> String {
        let mut out = Rendered::default();
        run(settings, cache, &mut out, body);
        out.commit();
        String::from_utf8_lossy(&out.text).into_owned()
    }

    /// A GET's scrape through a peek renders what a cache of its own would
    /// (a duplicate's first sample wins, a new series is there), holds only
    /// the series the loop does not know, and leaves the loop's cache as it
    /// was: the next interval scrape appends, marks stale and counts as
    /// new exactly what it would have without the GET's scrape.
    #[test]
    fn a_peek_renders_as_a_cache_of_its_own_and_changes_nothing() {
        let (target, rules) = (target(), Rules::default());
        let settings = Settings::new(&target, &rules);
        let first = "# TYPE a gauge\na 1\nb{x=\"1\"} 1\nc 1\n";
        let for_get = "# TYPE a gauge\na 2\nb{x=\"1\"} 2\nb{x=\"1\"} 9\nd 2\n";
        let next = "# TYPE a gauge\na 3\nb{x=\"1\"} 3\nd 3\n";
        let (mut peeked, mut alone) = (SeriesCache::default(), SeriesCache::default());
        interval(&settings, &mut peeked, first);
        interval(&settings, &mut alone, first);

        let mut peek = Peek::new(&peeked);
        let got = rendered(&settings, &mut peek, for_get);
        let want = rendered(&settings, &mut SeriesCache::default(), for_get);
        assert_eq!(got, want);
        assert!(
            got.contains("b{instance=\"app:8001\",job=\"app\",x=\"1\"} 2\n"),
            "{got}"
        );
        assert!(
            !got.contains("} 9"),
            "the first sample of a duplicate wins: {got}"
        );
        assert!(
            got.contains("d{instance=\"app:8001\",job=\"app\"} 2\n"),
            "{got}"
        );
        // Only `d` is new to the loop: the peek holds its text alone.
        assert_eq!(
            peek.own_arena_len(),
            "d{instance=\"app:8001\",job=\"app\"}".len()
        );
        drop(peek);

        let (after_peek, added_after_peek) = interval(&settings, &mut peeked, next);
        let (without, added_without) = interval(&settings, &mut alone, next);
        assert_eq!(after_peek.0, without.0);
        assert_eq!(added_after_peek, added_without);
        assert_eq!(added_without, 1, "d is new to the interval scrapes");
        assert!(
            without
                .0
                .iter()
                .any(|(s, v)| s.starts_with("c{") && v.starts_with("NaN")),
            "c is marked stale: {:?}",
            without.0
        );
    }

    /// Under a `series_limit`, a peek lets in as many new series as the
    /// loop's cache still has room for, as the next interval scrape would.
    #[test]
    fn a_peek_counts_new_series_against_the_room_the_loop_left() {
        let (target, rules) = (target(), Rules::default());
        let settings = Settings {
            limits: Limits {
                series_limit: 3,
                ..Limits::default()
            },
            ..Settings::new(&target, &rules)
        };
        let mut cache = SeriesCache::default();
        interval(&settings, &mut cache, "a 1\nb 1\n");
        let mut peek = Peek::new(&cache);
        let mut out = Rendered::default();
        let counts = run(&settings, &mut peek, &mut out, "a 2\nb 2\nc 2\nd 2\n");
        let text = String::from_utf8_lossy(&out.text).into_owned();
        let names: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split('{').next())
            .collect();
        assert_eq!(names, ["a", "b", "c"], "{text}");
        assert_eq!(counts.series_limit_dropped, 1);
        // Full: no new series at all.
        let mut full = SeriesCache::default();
        interval(&settings, &mut full, "a 1\nb 1\nc 1\n");
        let mut peek = Peek::new(&full);
        let counts = run(&settings, &mut peek, &mut Rendered::default(), "a 2\nd 2\n");
        assert_eq!((counts.series_limit_dropped, counts.samples_kept), (1, 2));
    }
}
