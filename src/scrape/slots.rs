//! The series cache's slots, in chunks that never move or grow past a
//! fixed size.
//!
//! One growing Vec would double its capacity, up to twice the slots in
//! use, and hold both copies while it grows; chunks hold the slots and at
//! most one partly filled chunk. The first chunk grows as a Vec does, so a
//! small target's cache stays small.

/// Slots in a chunk: 4096 (128 KiB of 32-byte slots).
const BITS: u32 = 12;
const CHUNK: usize = 1 << BITS;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// How many slots there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Slot `i`, if there is one.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> BITS)?.get(i & (CHUNK - 1))
    }

    /// Slot `i`, if there is one, to change.
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks.get_mut(i >> BITS)?.get_mut(i & (CHUNK - 1))
    }

    /// Adds a slot at the end.
    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(value),
            _ => {
                // The first chunk grows by doubling (up to CHUNK, a power of
                // two); later ones are allocated whole.
                let mut chunk = if self.chunks.is_empty() {
                    Vec::new()
                } else {
                    Vec::with_capacity(CHUNK)
                };
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// The slots in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// The slots in order, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }

    /// Takes every slot out, in order, leaving none.
    pub fn take_all(&mut self) -> impl Iterator<Item = T> {
        self.len = 0;
        std::mem::take(&mut self.chunks).into_iter().flatten()
    }

    /// Slots the chunks have room for (tests check the slack).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_by_index_and_in_order_with_little_slack() {
        let mut slots = Slots::default();
        slots.push(0u32);
        assert!(slots.capacity() < CHUNK, "a small cache stays small");
        let n = 3 * CHUNK + 5;
        for i in 1..n {
            slots.push(i as u32);
        }
        assert_eq!(slots.len(), n);
        for i in [0, CHUNK - 1, CHUNK, 2 * CHUNK + 1, n - 1] {
            assert_eq!(slots.get(i), Some(&(i as u32)));
        }
        assert_eq!(slots.get(n), None);
        *slots.get_mut(CHUNK).expect("a slot") = 7;
        assert_eq!(slots.get(CHUNK), Some(&7));
        assert_eq!(slots.capacity(), 4 * CHUNK);
        assert!(slots.iter().copied().eq((0..n as u32).map(|i| {
            if i as usize == CHUNK {
                7
            } else {
                i
            }
        })));
        for s in slots.iter_mut() {
            *s += 1;
        }
        let all: Vec<u32> = slots.take_all().collect();
        assert_eq!((all.len(), all[1], all[n - 1]), (n, 2, n as u32));
        assert_eq!((slots.len(), slots.capacity()), (0, 0));
    }
}
