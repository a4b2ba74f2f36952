//! Segment files: their names, creation, the torn-tail repair on open and
//! the count of what dropping one loses.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use super::record::{record_at, HistogramIter, SampleIter, HISTOGRAMS, SAMPLES};
use super::WalError;

pub(super) fn segment_name(segment: u32) -> String {
    format!("{segment:08}")
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Segment {
        path: path.to_owned(),
        source,
    }
}

pub(super) fn create_segment(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))
}

pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Cuts a segment after its last whole, valid record (a crash can leave a
/// torn one); returns the new length.
pub(super) fn repair(path: &Path) -> Result<u64, WalError> {
    let data = fs::read(path).map_err(io_err(path))?;
    let mut offset = 0;
    while let Some((_, _, next)) = record_at(&data, offset) {
        offset = next;
    }
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    if offset < data.len() {
        tracing::warn!(path = %path.display(), valid = offset, size = data.len(), dropped_bytes = data.len() - offset, "WAL segment has a torn or corrupt tail; cutting it off");
        file.set_len(offset as u64).map_err(io_err(path))?;
    }
    // Synced either way: a process killed before its periodic sync left
    // pages a power cut after this start could still tear, in a segment
    // that is no longer the newest and would not be repaired again.
    file.sync_all().map_err(io_err(path))?;
    Ok(offset as u64)
}

/// Samples in the records of a segment from `from` on (what dropping it loses).
pub(super) fn count_samples(path: &Path, from: u64) -> u64 {
    let Ok(data) = fs::read(path) else { return 0 };
    let mut offset = 0;
    let mut count = 0;
    while let Some((kind, body, next)) = record_at(&data, offset) {
        if offset as u64 >= from {
            count += match kind {
                SAMPLES => SampleIter::new(body).count() as u64,
                HISTOGRAMS => HistogramIter::new(body).count() as u64,
                _ => 0,
            };
        }
        offset = next;
    }
    count
}
