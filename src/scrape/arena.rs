//! The series cache's texts, end to end in chunks that never move or grow.
//!
//! One growing string would double its capacity, up to twice the text it
//! holds, and copy itself on each doubling; chunks hold the text and at
//! most one partly filled chunk, sized to an eighth of what is held so far
//! (4 KiB to 256 KiB), so a small target's cache stays small.

/// Smallest and largest size of a new chunk, unless one text is longer.
const MIN_CHUNK: usize = 4 << 10;
const MAX_CHUNK: usize = 256 << 10;

/// Where a text starts: its chunk in the high 32 bits, the offset in the low.
pub(crate) type Place = u64;

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

    /// Appends `text`; None if there are 2^32 chunks or a chunk would pass
    /// 4 GiB (a text that long is refused before it gets here).
    pub fn push(&mut self, text: &str) -> Option<Place> {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= text.len());
        if !fits {
            let size = (self.len / 8).clamp(MIN_CHUNK, MAX_CHUNK).max(text.len());
            self.chunks.push(String::with_capacity(size));
        }
        let index = u32::try_from(self.chunks.len() - 1).ok()?;
        let chunk = self.chunks.last_mut()?;
        let offset = u32::try_from(chunk.len()).ok()?;
        chunk.push_str(text);
        self.len += text.len();
        Some(u64::from(index) << 32 | u64::from(offset))
    }

    /// The text of `len` bytes at `place` ("" if there is none).
    pub fn get(&self, place: Place, len: u32) -> &str {
        let (index, offset) = ((place >> 32) as usize, (place as u32) as usize);
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
        assert_eq!(arena.get(u64::MAX, 3), "");
    }
}
