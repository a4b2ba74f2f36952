//! Records: `[length u32][CRC32-Castagnoli u32][type u8][body]`, and the
//! bodies of its two types, series and samples.

use crate::storage::SeriesRef;
use crate::varint;

pub(super) const HEADER: usize = 9;
/// A record larger than this is corruption, not data.
pub(super) const MAX_RECORD: usize = 64 << 20;
/// Records are cut at about this size, so readers work in small steps.
pub(super) const RECORD_TARGET: usize = 1 << 20;
pub(super) const SERIES: u8 = 1;
pub(super) const SAMPLES: u8 = 2;

/// The record at `offset` of `data`: its type, body and the next offset.
pub(super) fn record_at(data: &[u8], offset: usize) -> Option<(u8, &[u8], usize)> {
    let header = data.get(offset..offset + HEADER)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = data.get(offset + 8..offset + 8 + len)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    Some((payload[0], &payload[1..], offset + 8 + len))
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(super) fn frame(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, body);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

/// The entries of a series record: (ref, `name{labels}`).
pub struct SeriesIter<'a> {
    pub(super) body: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Iterator for SeriesIter<'a> {
    type Item = (SeriesRef, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let r = varint::get(self.body, &mut self.pos)?;
        let len = usize::try_from(varint::get(self.body, &mut self.pos)?).ok()?;
        let text = self.body.get(self.pos..self.pos + len)?;
        self.pos += len;
        Some((r, text))
    }
}

/// The entries of a samples record: (ref, timestamp ms, value).
pub struct SampleIter<'a> {
    pub(super) body: &'a [u8],
    pub(super) pos: usize,
    last_ts: i64,
}

impl<'a> SampleIter<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        SampleIter {
            body,
            pos: 0,
            last_ts: 0,
        }
    }
}

impl Iterator for SampleIter<'_> {
    type Item = (SeriesRef, i64, f64);
    fn next(&mut self) -> Option<Self::Item> {
        let r = varint::get(self.body, &mut self.pos)?;
        let delta = unzigzag(varint::get(self.body, &mut self.pos)?);
        let bits = self.body.get(self.pos..self.pos + 8)?;
        self.pos += 8;
        let value = f64::from_bits(u64::from_le_bytes(bits.try_into().ok()?));
        self.last_ts = self.last_ts.wrapping_add(delta);
        Some((r, self.last_ts, value))
    }
}

/// One record as a reader sees it.
pub enum Record<'a> {
    Series(SeriesIter<'a>),
    Samples(SampleIter<'a>),
}
