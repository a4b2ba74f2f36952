//! The series cache's texts, end to end in chunks that never move or grow.
//!
//! One growing string would double its capacity, up to twice the text it
//! holds, and copy itself on each doubling; chunks hold the text and at
//! most one partly filled chunk, sized to an eighth of what is held so far
//! (4 KiB to 256 KiB), so a small target's cache stays small.

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

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    chunks: Vec<String>,
    /// Bytes of text held, across the chunks.
    len: usize,
}

impl Arena {
    /// Bytes of text held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `text`; None when the chunks are all used (4 GiB of text
    /// at least).
    pub fn push(&mut self, text: &str) -> Option<Place> {
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
    pub fn get(&self, place: Place, len: u32) -> &str {
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
}
