//! The series a queue knows in the WAL segment it reads, by reference.
//!
//! References are process-unique and handed out in increasing order, so a
//! segment's series sit in runs of consecutive references: they are kept in
//! pages of [`PAGE`] consecutive slots of 16 bytes, found by page number. A
//! hash map keyed by reference took about half as much again per series,
//! and every sample's lookup hashed into a table as large as the series.

use super::encode::EncodedSeries;
use crate::storage::SeriesRef;

/// References per page: a page is 4 KiB of slots.
const PAGE_BITS: u32 = 8;
const PAGE: usize = 1 << PAGE_BITS;

type Page = Box<[Option<EncodedSeries>]>;

/// Prepared series by reference; a reference without one (never described,
/// or dropped by write relabeling) has no series.
#[derive(Default)]
pub struct SeriesTable {
    // Looked up once per sample: hashbrown's foldhash, not SipHash (refs
    // come from relay's own WAL, no one else chooses them).
    pages: hashbrown::HashMap<u64, Page>,
    /// The start timestamps the segment's starts records gave (few series
    /// have one: looked up only when any has).
    starts: hashbrown::HashMap<SeriesRef, i64>,
}

impl SeriesTable {
    /// Sets what `r` is sent as (None: its samples are dropped).
    pub fn insert(&mut self, r: SeriesRef, series: Option<EncodedSeries>) {
        let slot = (r as usize) & (PAGE - 1);
        match self.pages.get_mut(&(r >> PAGE_BITS)) {
            Some(page) => page[slot] = series,
            None if series.is_some() => {
                let mut page: Page = std::iter::repeat_with(|| None).take(PAGE).collect();
                page[slot] = series;
                self.pages.insert(r >> PAGE_BITS, page);
            }
            None => {}
        }
    }

    /// What `r` is sent as, if anything.
    pub fn get(&self, r: SeriesRef) -> Option<&EncodedSeries> {
        self.pages.get(&(r >> PAGE_BITS))?[(r as usize) & (PAGE - 1)].as_ref()
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

    /// Forgets every series, and gives back the memory they took.
    pub fn clear(&mut self) {
        self.pages = hashbrown::HashMap::new();
        self.starts = hashbrown::HashMap::new();
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
        let refs = [0, 1, 255, 256, 257, 1 << 40, u64::MAX];
        for (i, &r) in refs.iter().enumerate() {
            let series = prep.prepare(format!("m{{i=\"{i}\"}}").as_bytes());
            table.insert(r, series);
        }
        for (i, &r) in refs.iter().enumerate() {
            let want = prep.prepare(format!("m{{i=\"{i}\"}}").as_bytes());
            assert_eq!(table.get(r), want.as_ref(), "ref {r}");
        }
        assert_eq!(table.get(2), None);
        assert_eq!(table.get(1 << 41), None);
        table.insert(256, None);
        assert_eq!(table.get(256), None, "re-described as dropped");
        assert!(table.get(257).is_some());
        table.clear();
        assert!(refs.iter().all(|&r| table.get(r).is_none()));
    }
}
