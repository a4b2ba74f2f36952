//! The series cache's texts, end to end in chunks that never move or grow,
//! each stored after the prefix it shares with an earlier one.
//!
//! One growing string would double its capacity, up to twice the text it
//! holds, and copy itself on each doubling; chunks hold the text and at
//! most one partly filled chunk, sized to an eighth of what is held so far
//! (4 KiB to 256 KiB), so a small target's cache stays small.
//!
//! A family's series are written one after the other and differ late:
//! `http_request_duration_seconds_bucket{instance="10.1.2.3:8080",job="app",le="`
//! is 78 of the 105 bytes of each of its series. So a text that shares at
//! least half of itself with one of the last [`RECENT`] texts stored whole
//! keeps only a reference to that one and its own bytes ([`Stored`]): at
//! 1M series the texts took 104 MiB whole. Several, not one: series
//! alternate within a family (`code="200"`, `code="404"`, ... of each
//! route; a histogram's `_bucket`, `_sum`, `_count`).

/// Bits of a [`Place`] for the offset in its chunk.
const OFFSET_BITS: u32 = 18;

/// Smallest and largest size of a new chunk, unless one text is longer
/// (such a text has a chunk of its own, at offset 0).
const MIN_CHUNK: usize = 4 << 10;
const MAX_CHUNK: usize = 1 << OFFSET_BITS;

/// Where a text starts: its chunk in the high 14 bits, the offset in the
/// low 18 (4 bytes a series where two halves of a u64 took 8). 16384
/// chunks hold 4 GiB of text at least.
pub(crate) type Place = u32;

use crate::storage::SeriesText;

/// The shortest prefix worth a reference (a [`Stored`] is 8 bytes more
/// than a [`Place`]).
const MIN_SHARED: usize = 16;

/// How many of the texts stored whole last a new text is compared with.
const RECENT: usize = 8;

/// Where a text is: its own bytes at `start`, after the first `shared`
/// bytes of the text stored whole at `base` (none when `shared` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub start: Place,
    pub base: Place,
    pub shared: u32,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    chunks: Vec<String>,
    /// Bytes of text held, across the chunks.
    len: usize,
    /// The last texts stored whole (place and length; a ring, `next` the
    /// oldest): a new text may share a prefix with one of them.
    recent: [(Place, u32); RECENT],
    next: usize,
}

/// Bytes `a` and `b` start with in common, eight at a time.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut n = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        if x != y {
            break;
        }
        n += 8;
    }
    n + a[n..]
        .iter()
        .zip(&b[n..])
        .take_while(|(x, y)| x == y)
        .count()
}

impl Arena {
    /// Bytes of text held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Stores `text`, after a prefix it shares with one of the last texts
    /// stored whole when that is at least half of it and its first
    /// `unsplit` bytes (a series' name stays in one piece); None when the
    /// chunks are all used (4 GiB of text at least) or `text` is 4 GiB or
    /// longer.
    pub fn store(&mut self, text: &str, unsplit: usize) -> Option<Stored> {
        let len = u32::try_from(text.len()).ok()?;
        let (base, mut shared) = self
            .recent
            .iter()
            .map(|&(base, base_len)| {
                let whole = self.get(base, base_len).as_bytes();
                (base, common_prefix(whole, text.as_bytes()))
            })
            .max_by_key(|&(_, shared)| shared)?;
        while !text.is_char_boundary(shared) {
            shared -= 1;
        }
        if shared >= MIN_SHARED.max(unsplit) && 2 * shared >= text.len() {
            let start = self.push(text.get(shared..)?)?;
            let shared = u32::try_from(shared).ok()?;
            return Some(Stored {
                start,
                base,
                shared,
            });
        }
        let start = self.push(text)?;
        self.recent[self.next] = (start, len);
        self.next = (self.next + 1) % RECENT;
        Some(Stored {
            start,
            base: start,
            shared: 0,
        })
    }

    /// The text of `len` bytes (shared prefix included, so never less
    /// than `at.shared`) stored at `at`.
    #[inline]
    pub fn text(&self, at: Stored, len: u32) -> SeriesText<'_> {
        let head = if at.shared == 0 {
            ""
        } else {
            self.get(at.base, at.shared)
        };
        SeriesText {
            head,
            tail: self.get(at.start, len - at.shared),
        }
    }

    /// Appends `text` whole; None when the chunks are all used (4 GiB of
    /// text at least).
    fn push(&mut self, text: &str) -> Option<Place> {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.len() < MAX_CHUNK && c.capacity() - c.len() >= text.len());
        if !fits {
            if self.chunks.len() >= 1 << (32 - OFFSET_BITS) {
                return None;
            }
            let size = (self.len / 8).clamp(MIN_CHUNK, MAX_CHUNK).max(text.len());
            self.chunks.push(String::with_capacity(size));
        }
        let index = u32::try_from(self.chunks.len() - 1).ok()?;
        let chunk = self.chunks.last_mut()?;
        let offset = u32::try_from(chunk.len()).ok()?;
        chunk.push_str(text);
        self.len += text.len();
        Some(index << OFFSET_BITS | offset)
    }

    /// The text of `len` bytes at `place` ("" if there is none).
    #[inline]
    fn get(&self, place: Place, len: u32) -> &str {
        let index = (place >> OFFSET_BITS) as usize;
        let offset = (place & ((1 << OFFSET_BITS) - 1)) as usize;
        self.chunks
            .get(index)
            .and_then(|c| c.get(offset..offset + len as usize))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_at_the_end_of_the_largest_chunks_come_back() {
        let mut arena = Arena::default();
        // 30-byte texts: some straddle no chunk end, the last in a full
        // 256 KiB chunk starts at an offset just under 2^18.
        let texts: Vec<String> = (0..150_000).map(|i| format!("{i:>29}x")).collect();
        let places: Vec<Place> = texts.iter().map(|t| arena.push(t).expect("room")).collect();
        let max_offset = places.iter().map(|p| p & (MAX_CHUNK as u32 - 1)).max();
        assert!(max_offset > Some(MAX_CHUNK as u32 - 64), "{max_offset:?}");
        for (t, &p) in texts.iter().zip(&places) {
            assert_eq!(arena.get(p, 30), t);
        }
    }

    #[test]
    fn texts_come_back_as_pushed_across_chunks_without_slack() {
        let mut arena = Arena::default();
        let texts: Vec<String> = (0..20_000).map(|i| format!("m{{i=\"{i}\"}}")).collect();
        let places: Vec<Place> = texts.iter().map(|t| arena.push(t).expect("room")).collect();
        let long = "x".repeat(MAX_CHUNK + 1);
        let long_place = arena.push(&long).expect("room");
        for (t, &p) in texts.iter().zip(&places) {
            assert_eq!(arena.get(p, t.len() as u32), t);
        }
        assert_eq!(arena.get(long_place, long.len() as u32), long);
        assert_eq!(
            arena.len(),
            texts.iter().map(String::len).sum::<usize>() + long.len()
        );
        assert!(arena.chunks.len() > 2, "{} chunks", arena.chunks.len());
        let capacity: usize = arena.chunks.iter().map(String::capacity).sum();
        assert!(
            capacity <= arena.len() + arena.len() / 8 + MIN_CHUNK,
            "{capacity} bytes held for {}",
            arena.len()
        );
        assert_eq!(arena.get(u32::MAX, 3), "");
        // A text after the long one's chunk starts a new chunk: its offset
        // must fit in the place.
        let after = arena.push("after").expect("room");
        assert_eq!(arena.get(after, 5), "after");
    }

    /// Stores each of `texts` and checks that each comes back whole.
    fn store_all(arena: &mut Arena, texts: &[String]) -> Vec<Stored> {
        let stored: Vec<Stored> = texts
            .iter()
            .map(|t| arena.store(t, 0).expect("room"))
            .collect();
        for (t, &at) in texts.iter().zip(&stored) {
            let text = arena.text(at, t.len() as u32);
            assert!(text.is(t.as_bytes()), "{t}");
            assert_eq!(text.join(&mut String::new()), t);
        }
        stored
    }

    #[test]
    fn texts_that_share_a_prefix_store_only_their_own_bytes() {
        let mut arena = Arena::default();
        let family =
            r#"http_request_duration_seconds_bucket{instance="10.1.2.3:8080",job="app",le=""#;
        let texts: Vec<String> = (0..1000)
            .map(|i| format!("{family}{i}\",route=\"/api/{}\"}}", i % 7))
            // Shares 20 bytes, under half of itself: stored whole.
            .chain([format!("{}{}", &family[..20], "x".repeat(40))])
            .chain(["up{job=\"app\"}".to_owned()])
            // Differs inside a two-byte character: the prefix stops before it.
            .chain([
                format!("{}é", "y".repeat(30)),
                format!("{}è", "y".repeat(30)),
            ])
            .collect();
        let stored = store_all(&mut arena, &texts);
        assert_eq!(stored[1].base, stored[0].start);
        assert_eq!(stored[1].shared as usize, family.len());
        assert_eq!(stored[1000].shared, 0, "20 of 60 bytes is under half");
        assert_eq!(stored[1001].shared, 0, "up shares nothing");
        assert_eq!(stored[1003].shared, 30, "é and è share their first byte");
        let whole: usize = texts.iter().map(String::len).sum();
        assert!(arena.len() * 3 < whole, "{} of {whole} bytes", arena.len());
    }

    #[test]
    fn series_that_alternate_within_a_family_share_too() {
        let mut arena = Arena::default();
        let texts: Vec<String> = (0..100)
            .flat_map(|route| {
                ["200", "404", "500"].map(|code| {
                    format!("http_requests_total{{code=\"{code}\",job=\"app\",route=\"/api/v1/items/{route}\"}}")
                })
            })
            .collect();
        let stored = store_all(&mut arena, &texts);
        let whole = stored.iter().filter(|at| at.shared == 0).count();
        assert_eq!(whole, 3, "one whole text per code");
    }

    #[test]
    fn a_name_is_never_split() {
        let mut arena = Arena::default();
        arena
            .store("a_long_metric_name_total{x=\"1\"}", 24)
            .expect("room");
        let at = arena
            .store("a_long_metric_name_totals{x=\"2\"}", 25)
            .expect("room");
        assert_eq!(at.shared, 0, "the shared prefix ends inside the name");
        let at = arena
            .store("a_long_metric_name_total{x=\"3\"}", 24)
            .expect("room");
        assert_eq!(at.shared, 28);
    }

    #[test]
    fn a_text_is_only_the_bytes_it_was() {
        let mut arena = Arena::default();
        let at = arena.store("abcdefghijklmnopqrstuvwxyz", 0).expect("room");
        let shared = arena.store("abcdefghijklmnopqrstuvWXYZ", 0).expect("room");
        let text = arena.text(shared, 26);
        assert!(text.is(b"abcdefghijklmnopqrstuvWXYZ"));
        assert!(!text.is(b"abcdefghijklmnopqrstuvwxyz"));
        assert!(!text.is(b"abcdefghijklmnopqrstuvWXY"));
        assert!(arena.text(at, 26).is(b"abcdefghijklmnopqrstuvwxyz"));
    }
}
