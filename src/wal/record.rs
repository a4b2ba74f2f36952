//! Records: `[length u32][CRC32-Castagnoli u32][type u8][body]`, and the
//! bodies of its types: series, float samples, native histogram samples,
//! exemplars and family metadata.

use crate::storage::{BucketSpan, Histogram, HistogramCounts, SeriesRef};
use crate::varint;

pub(super) const HEADER: usize = 9;
/// A record larger than this is corruption, not data.
pub(super) const MAX_RECORD: usize = 64 << 20;
/// Records are cut at about this size, so readers work in small steps: a
/// reader and each type of a batch being built hold one record of about
/// this size at most (the format has no limit of its own but `MAX_RECORD`).
pub(super) const RECORD_TARGET: usize = 256 << 10;
pub(super) const SERIES: u8 = 1;
pub(super) const SAMPLES: u8 = 2;
pub(super) const HISTOGRAMS: u8 = 3;
pub(super) const EXEMPLARS: u8 = 4;
pub(super) const METADATA: u8 = 5;
/// Series' start (created) timestamps: a series' entry holds from that
/// record on, until another entry for it (0: none any more) or the end of
/// the segment (each segment gives them again). A relay older than this
/// type skips such records (with a warning) and reads the rest.
pub(super) const STARTS: u8 = 6;

/// Whether a reader knows what a record of type `kind` holds.
pub(super) fn known(kind: u8) -> bool {
    matches!(
        kind,
        SERIES | SAMPLES | HISTOGRAMS | EXEMPLARS | METADATA | STARTS
    )
}

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

/// Free room below which a record's buffer is grown ahead of an entry.
const ROOM: usize = 1 << 10;
/// The most a record's buffer grows to ahead of entries: a record is
/// closed once its body reaches [`RECORD_TARGET`], so an entry that
/// crosses it fits in this unless it is longer than the margin.
const RECORD_CAPACITY: usize = RECORD_TARGET + (8 << 10);

/// Records of one type framed where they are built: each in a buffer of
/// its own, its header reserved when it opens and filled in when it closes
/// (length and CRC), so framing copies no body, and a buffer grows to about
/// its record's size (a record, not the whole batch, is ever copied on
/// growth).
#[derive(Debug)]
pub(super) struct Records {
    kind: u8,
    /// Framed records, in order.
    closed: Vec<Vec<u8>>,
    /// The open record, header first (empty when none is open).
    open: Vec<u8>,
}

impl Records {
    /// No records of type `kind` yet.
    pub(super) const fn new(kind: u8) -> Self {
        Records {
            kind,
            closed: Vec::new(),
            open: Vec::new(),
        }
    }

    /// The open record, to append an entry's bytes to (opened if none is).
    #[inline]
    pub(super) fn body(&mut self) -> &mut Vec<u8> {
        if self.open.is_empty() || self.open.capacity() - self.open.len() < ROOM {
            self.make_room();
        }
        &mut self.open
    }

    /// Opens a record if none is, and grows its buffer ahead of entries up
    /// to [`RECORD_CAPACITY`].
    #[cold]
    fn make_room(&mut self) {
        if self.open.is_empty() {
            self.open.extend_from_slice(&[0; HEADER - 1]);
            self.open.push(self.kind);
        }
        if self.open.capacity() - self.open.len() < ROOM {
            let want = (self.open.capacity() * 2).clamp(4 * ROOM, RECORD_CAPACITY);
            if want > self.open.capacity() {
                self.open.reserve_exact(want - self.open.len());
            }
        }
    }

    /// Whether the open record has reached [`RECORD_TARGET`] (time to close it).
    #[inline]
    pub(super) fn full(&self) -> bool {
        self.open.len() >= RECORD_TARGET + HEADER
    }

    /// Whether closed records wait to be written.
    #[inline]
    pub(super) fn has_closed(&self) -> bool {
        !self.closed.is_empty()
    }

    /// Closes the open record (one without a body is dropped: a reader
    /// takes no empty record) and returns its length.
    pub(super) fn close(&mut self) -> usize {
        if self.open.len() <= HEADER {
            self.open.clear();
            return 0;
        }
        let payload = &self.open[HEADER - 1..];
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let crc = crc32c::crc32c(payload);
        self.open[0..4].copy_from_slice(&len.to_le_bytes());
        self.open[4..8].copy_from_slice(&crc.to_le_bytes());
        let record = std::mem::take(&mut self.open);
        let framed = record.len();
        self.closed.push(record);
        framed
    }

    /// The closed records, framed, in order (the open one is not included).
    pub(super) fn closed(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        self.closed.iter().map(Vec::as_slice)
    }

    /// Bytes of the closed records.
    pub(super) fn closed_len(&self) -> usize {
        self.closed.iter().map(Vec::len).sum()
    }

    /// Drops the closed records (written), keeping the open one.
    pub(super) fn drop_closed(&mut self) {
        self.closed.clear();
    }

    /// Drops every record.
    pub(super) fn clear(&mut self) {
        self.closed.clear();
        self.open.clear();
    }

    /// Bytes held, framed or not.
    pub(super) fn len(&self) -> usize {
        self.closed_len() + self.open.len()
    }
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

/// A histogram entry's flags byte: float counts, and the reset hint
/// (prompb's `ResetHint`) above it.
const FLOAT_COUNTS: u8 = 1;

/// A native histogram sample as a histograms record holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub series_ref: SeriesRef,
    pub timestamp_ms: i64,
    /// prompb's `Histogram.ResetHint`: 3 (gauge) for a gauge histogram,
    /// else 0 (unknown, the receiver works it out).
    pub reset_hint: u8,
    pub histogram: Histogram,
}

/// Adds a histogram entry to a histograms record body; `last_ts` is the
/// record's previous timestamp (timestamps are delta-encoded).
pub(super) fn put_histogram(
    out: &mut Vec<u8>,
    last_ts: i64,
    r: SeriesRef,
    ts: i64,
    reset_hint: u8,
    h: &Histogram,
) {
    varint::put(out, r);
    varint::put(out, zigzag(ts.wrapping_sub(last_ts)));
    let float = matches!(h.counts, HistogramCounts::Float { .. });
    out.push((u8::from(float) * FLOAT_COUNTS) | (reset_hint << 1));
    varint::put(out, zigzag(i64::from(h.schema)));
    put_f64(out, h.zero_threshold);
    put_f64(out, h.sum);
    for spans in [&h.positive_spans, &h.negative_spans] {
        varint::put(out, spans.len() as u64);
        for span in spans.iter() {
            varint::put(out, zigzag(i64::from(span.offset)));
            varint::put(out, u64::from(span.length));
        }
    }
    match &h.counts {
        HistogramCounts::Integer {
            count,
            zero_count,
            positive_deltas,
            negative_deltas,
        } => {
            varint::put(out, *count);
            varint::put(out, *zero_count);
            for deltas in [positive_deltas, negative_deltas] {
                varint::put(out, deltas.len() as u64);
                for d in deltas {
                    varint::put(out, zigzag(*d));
                }
            }
        }
        HistogramCounts::Float {
            count,
            zero_count,
            positive,
            negative,
        } => {
            put_f64(out, *count);
            put_f64(out, *zero_count);
            for counts in [positive, negative] {
                varint::put(out, counts.len() as u64);
                for c in counts {
                    put_f64(out, *c);
                }
            }
        }
    }
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn get_f64(body: &[u8], pos: &mut usize) -> Option<f64> {
    let bits = body.get(*pos..*pos + 8)?;
    *pos += 8;
    Some(f64::from_bits(u64::from_le_bytes(bits.try_into().ok()?)))
}

/// A count read from a record, bounded by the bytes left (each item takes
/// at least one): a corrupt count cannot ask for a huge allocation.
fn get_len(body: &[u8], pos: &mut usize) -> Option<usize> {
    let n = usize::try_from(varint::get(body, pos)?).ok()?;
    (n <= body.len().saturating_sub(*pos)).then_some(n)
}

/// The entries of a histograms record.
pub struct HistogramIter<'a> {
    body: &'a [u8],
    pos: usize,
    last_ts: i64,
}

impl<'a> HistogramIter<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        HistogramIter {
            body,
            pos: 0,
            last_ts: 0,
        }
    }

    fn entry(&mut self) -> Option<HistogramSample> {
        let (body, pos) = (self.body, &mut self.pos);
        let r = varint::get(body, pos)?;
        let delta = unzigzag(varint::get(body, pos)?);
        let flags = *body.get(*pos)?;
        *pos += 1;
        let schema = i32::try_from(unzigzag(varint::get(body, pos)?)).ok()?;
        let zero_threshold = get_f64(body, pos)?;
        let sum = get_f64(body, pos)?;
        let mut spans = [Vec::new(), Vec::new()];
        for side in &mut spans {
            let n = get_len(body, pos)?;
            for _ in 0..n {
                let offset = i32::try_from(unzigzag(varint::get(body, pos)?)).ok()?;
                let length = u32::try_from(varint::get(body, pos)?).ok()?;
                side.push(BucketSpan { offset, length });
            }
        }
        let counts = if flags & FLOAT_COUNTS == 0 {
            let count = varint::get(body, pos)?;
            let zero_count = varint::get(body, pos)?;
            let mut sides = [Vec::new(), Vec::new()];
            for side in &mut sides {
                let n = get_len(body, pos)?;
                for _ in 0..n {
                    side.push(unzigzag(varint::get(body, pos)?));
                }
            }
            let [positive_deltas, negative_deltas] = sides;
            HistogramCounts::Integer {
                count,
                zero_count,
                positive_deltas,
                negative_deltas,
            }
        } else {
            let count = get_f64(body, pos)?;
            let zero_count = get_f64(body, pos)?;
            let mut sides = [Vec::new(), Vec::new()];
            for side in &mut sides {
                let n = get_len(body, pos)?;
                for _ in 0..n {
                    side.push(get_f64(body, pos)?);
                }
            }
            let [positive, negative] = sides;
            HistogramCounts::Float {
                count,
                zero_count,
                positive,
                negative,
            }
        };
        let [positive_spans, negative_spans] = spans;
        self.last_ts = self.last_ts.wrapping_add(delta);
        Some(HistogramSample {
            series_ref: r,
            timestamp_ms: self.last_ts,
            reset_hint: flags >> 1,
            histogram: Histogram {
                schema,
                zero_threshold,
                sum,
                positive_spans,
                negative_spans,
                counts,
            },
        })
    }
}

impl Iterator for HistogramIter<'_> {
    type Item = HistogramSample;
    fn next(&mut self) -> Option<Self::Item> {
        self.entry()
    }
}

/// Adds an exemplar entry (ref, timestamp, value, labels rendered
/// `{a="b"}`) to an exemplars record body.
pub(super) fn put_exemplar(
    out: &mut Vec<u8>,
    last_ts: i64,
    r: SeriesRef,
    ts: i64,
    value: f64,
    labels: &str,
) {
    varint::put(out, r);
    varint::put(out, zigzag(ts.wrapping_sub(last_ts)));
    put_f64(out, value);
    varint::put(out, labels.len() as u64);
    out.extend_from_slice(labels.as_bytes());
}

/// The entries of an exemplars record: (ref, timestamp ms, value,
/// labels rendered `{a="b"}`).
pub struct ExemplarIter<'a> {
    body: &'a [u8],
    pos: usize,
    last_ts: i64,
}

impl<'a> ExemplarIter<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        ExemplarIter {
            body,
            pos: 0,
            last_ts: 0,
        }
    }
}

impl<'a> Iterator for ExemplarIter<'a> {
    type Item = (SeriesRef, i64, f64, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let r = varint::get(self.body, &mut self.pos)?;
        let delta = unzigzag(varint::get(self.body, &mut self.pos)?);
        let value = get_f64(self.body, &mut self.pos)?;
        let len = get_len(self.body, &mut self.pos)?;
        let labels = self.body.get(self.pos..self.pos + len)?;
        self.pos += len;
        self.last_ts = self.last_ts.wrapping_add(delta);
        Some((r, self.last_ts, value, labels))
    }
}

/// A metric family's metadata as a metadata record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyMetadata<'a> {
    /// prompb's `MetricMetadata.MetricType` number.
    pub kind: u8,
    pub name: &'a [u8],
    pub help: &'a [u8],
    pub unit: &'a [u8],
}

/// Adds a family's metadata to a metadata record body.
pub(super) fn put_metadata(out: &mut Vec<u8>, m: &FamilyMetadata<'_>) {
    out.push(m.kind);
    for text in [m.name, m.help, m.unit] {
        varint::put(out, text.len() as u64);
        out.extend_from_slice(text);
    }
}

/// The entries of a metadata record.
pub struct MetadataIter<'a> {
    pub(super) body: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = FamilyMetadata<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        let kind = *self.body.get(self.pos)?;
        self.pos += 1;
        let mut texts: [&'a [u8]; 3] = [&[]; 3];
        for text in &mut texts {
            let len = get_len(self.body, &mut self.pos)?;
            *text = self.body.get(self.pos..self.pos + len)?;
            self.pos += len;
        }
        let [name, help, unit] = texts;
        Some(FamilyMetadata {
            kind,
            name,
            help,
            unit,
        })
    }
}

/// Adds a series' start timestamp (0: it has none from now on) to a
/// starts record body.
pub(super) fn put_start(out: &mut Vec<u8>, r: SeriesRef, start_ms: i64) {
    varint::put(out, r);
    varint::put(out, zigzag(start_ms));
}

/// The entries of a starts record: (ref, start timestamp ms, 0 for none).
pub struct StartIter<'a> {
    pub(super) body: &'a [u8],
    pub(super) pos: usize,
}

impl Iterator for StartIter<'_> {
    type Item = (SeriesRef, i64);
    fn next(&mut self) -> Option<Self::Item> {
        let r = varint::get(self.body, &mut self.pos)?;
        let start = unzigzag(varint::get(self.body, &mut self.pos)?);
        Some((r, start))
    }
}

/// One record as a reader sees it.
pub enum Record<'a> {
    Series(SeriesIter<'a>),
    Samples(SampleIter<'a>),
    Histograms(HistogramIter<'a>),
    Exemplars(ExemplarIter<'a>),
    Metadata(MetadataIter<'a>),
    Starts(StartIter<'a>),
}

impl<'a> Record<'a> {
    /// The record of type `kind` (one that [`known`] knows) over `body`.
    pub(super) fn new(kind: u8, body: &'a [u8]) -> Self {
        match kind {
            SERIES => Record::Series(SeriesIter { body, pos: 0 }),
            HISTOGRAMS => Record::Histograms(HistogramIter::new(body)),
            EXEMPLARS => Record::Exemplars(ExemplarIter::new(body)),
            METADATA => Record::Metadata(MetadataIter { body, pos: 0 }),
            STARTS => Record::Starts(StartIter { body, pos: 0 }),
            _ => Record::Samples(SampleIter::new(body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records `records` framed, as a reader finds them: (type, body).
    fn read_back(records: &Records) -> Vec<(u8, Vec<u8>)> {
        let data: Vec<u8> = records.closed().flatten().copied().collect();
        let mut out = Vec::new();
        let mut offset = 0;
        while let Some((kind, body, next)) = record_at(&data, offset) {
            out.push((kind, body.to_vec()));
            offset = next;
        }
        assert_eq!(offset, data.len(), "every byte is a valid record");
        out
    }

    #[test]
    fn records_framed_in_place_read_back_and_stay_about_their_size() {
        let mut records = Records::new(SAMPLES);
        records.close();
        assert_eq!(records.len(), 0, "an empty record is not framed");
        let entry = [7u8; 1000];
        let mut written = 0;
        while written < 3 * RECORD_TARGET {
            records.body().extend_from_slice(&entry);
            written += entry.len();
            assert!(records.open.capacity() <= RECORD_CAPACITY);
            if records.full() {
                records.close();
            }
        }
        let whole = RECORD_TARGET.div_ceil(entry.len()) * entry.len();
        let open = records.len() - records.closed_len();
        assert_eq!(open, HEADER + written - 2 * whole, "not framed yet");
        assert_eq!(records.closed().count(), 2);
        records.close();
        records.body().push(1);
        records.close();
        let got = read_back(&records);
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|(kind, _)| *kind == SAMPLES));
        let bodies: Vec<usize> = got.iter().map(|(_, b)| b.len()).collect();
        assert_eq!(bodies, vec![whole, whole, written - 2 * whole, 1]);
        assert_eq!(got[3].1, vec![1]);
        records.clear();
        assert_eq!(records.len(), 0);
        assert_eq!(records.closed().count(), 0);
    }
}
