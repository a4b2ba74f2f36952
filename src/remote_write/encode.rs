//! Turns WAL series and samples into a remote-write request body.
//!
//! A series' labels are prepared once per WAL segment: parsed from the text
//! the pipeline rendered, `global.external_labels` added (the series' own
//! label of the same name wins), the entry's `write_relabel_configs`
//! applied, sorted, and encoded as the protobuf bytes of its `Label`
//! fields. A batch is then written straight into protobuf wire format, one
//! `TimeSeries` per sample as Prometheus sends them, byte for byte what
//! prost would encode for the same [`prompb::WriteRequest`] (tested), and
//! snappy-compressed with the block format the spec asks for.
//!
//! A native histogram or an exemplar is encoded once, when it is read from
//! the WAL, into the bytes of its `Histogram` or `Exemplar` message, shared
//! (an `Arc`) by the sample in flight; as Prometheus sends them, each is a
//! `TimeSeries` of its own with the series' labels. Metadata goes in
//! requests of its own (`WriteRequest.metadata`), see [`write_metadata`].

use std::hash::BuildHasher;
use std::sync::{Arc, RwLockReadGuard};

use super::prompb;
pub use super::series::EncodedSeries;
use super::series::{put_fixed, Segment, Tables, PAD};
use crate::exposition::{Entry, Format, Labels, Parser};
use crate::relabel::Rules;
use crate::storage::{BucketSpan, Histogram, HistogramCounts};
use crate::varint;

/// A label pair's name and value, read back out of its encoded `Label`
/// field (2.0 sends them as symbols). Empty when absent, as proto3 leaves
/// an empty string out.
pub fn name_value(bytes: &[u8]) -> (&[u8], &[u8]) {
    // Past the `Label` field's own tag and length (the pair is one field).
    let mut pos = 1;
    if varint::get(bytes, &mut pos).is_none() {
        return (&[], &[]);
    }
    let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
    while let Some(&tag) = bytes.get(pos) {
        pos += 1;
        let Some(len) = varint::get(bytes, &mut pos) else {
            break;
        };
        let Some(field) = bytes.get(pos..pos.saturating_add(len as usize)) else {
            break;
        };
        pos += field.len();
        match tag {
            0x0a => name = field,
            0x12 => value = field,
            _ => {}
        }
    }
    (name, value)
}

/// The segment tables a request reads, one segment's read lock held at a
/// time: a batch's samples come from one segment but at a segment change.
pub(crate) struct Reading<'a> {
    held: Option<(usize, RwLockReadGuard<'a, Tables>)>,
}

impl<'a> Reading<'a> {
    pub(crate) fn new() -> Self {
        Reading { held: None }
    }

    /// The tables of `series`' segment (locked for reading until another
    /// segment's are asked for, or this is dropped).
    pub(crate) fn tables(&mut self, series: &'a EncodedSeries) -> &Tables {
        let at = Arc::as_ptr(series.segment()) as usize;
        if self.held.as_ref().is_some_and(|(held, _)| *held != at) {
            // One lock at a time: the guard goes before the next is taken.
            self.held = None;
        }
        &self
            .held
            .get_or_insert_with(|| (at, series.segment().read()))
            .1
    }
}

/// What one outgoing `TimeSeries` carries besides its labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A float sample (`TimeSeries.samples`).
    Float(f64),
    /// A native histogram sample: its encoded `Histogram` message
    /// (`TimeSeries.histograms`), timestamp included.
    Histogram(Arc<Message>),
    /// An exemplar: its encoded `Exemplar` message (`TimeSeries.exemplars`).
    Exemplar(Arc<Message>),
}

/// An encoded protobuf message (a `Histogram` or an `Exemplar`), shared
/// by its sample in flight through a thin pointer: a float sample's
/// [`Outgoing`] stays small whatever the other payloads hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Message(Box<[u8]>);

impl Message {
    /// The message's bytes (no tag or length).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Payload {
    /// The float value; a histogram or an exemplar has none.
    pub fn float(&self) -> Option<f64> {
        match self {
            Payload::Float(v) => Some(*v),
            _ => None,
        }
    }
}

/// One sample ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub series: EncodedSeries,
    pub timestamp_ms: i64,
    /// The series' start (created) timestamp, 0 when unknown: 2.0's
    /// `start_timestamp` of a sample or histogram (1.0 has no place for it).
    pub start_ms: i64,
    pub value: Payload,
    /// Written by an earlier process: it may have been delivered already.
    pub replayed: bool,
}

impl Outgoing {
    /// A float sample.
    pub fn new(series: EncodedSeries, timestamp_ms: i64, value: f64, replayed: bool) -> Self {
        Outgoing::with(series, timestamp_ms, Payload::Float(value), replayed)
    }

    /// A sample of any kind.
    pub fn with(series: EncodedSeries, timestamp_ms: i64, value: Payload, replayed: bool) -> Self {
        Outgoing {
            series,
            timestamp_ms,
            start_ms: 0,
            value,
            replayed,
        }
    }

    /// With the series' start timestamp (0: unknown).
    pub fn starting(mut self, start_ms: i64) -> Self {
        self.start_ms = start_ms;
        self
    }
}

/// What every series of one queue goes through before it is sent.
pub struct SeriesPrep<'c> {
    pub external_labels: &'c [(String, String)],
    pub rules: &'c Rules,
    scratch: Vec<u8>,
    /// The series' label pairs, encoded one after another, and where each
    /// ends (encoded before the segment is locked).
    encoded: Vec<u8>,
    ends: Vec<usize>,
    /// The series' pair numbers.
    series: Vec<u32>,
    /// The current segment's pairs and series.
    segment: Arc<Segment>,
    /// The segment's pairs, (hash, number), found by their bytes.
    pairs: hashbrown::HashTable<(u64, u32)>,
    /// SipHash with fixed keys: a pair's hash, and so a series' shard, is
    /// the same in every process.
    hasher: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
}

impl<'c> SeriesPrep<'c> {
    pub fn new(external_labels: &'c [(String, String)], rules: &'c Rules) -> Self {
        SeriesPrep {
            external_labels,
            rules,
            scratch: Vec::new(),
            encoded: Vec::new(),
            ends: Vec::new(),
            series: Vec::new(),
            segment: Arc::default(),
            pairs: hashbrown::HashTable::new(),
            hasher: Default::default(),
        }
    }

    /// Starts a new segment's tables (a new segment describes its series
    /// again); the old one lives on with its samples in flight.
    pub fn clear_pairs(&mut self) {
        self.segment = Arc::default();
        self.pairs = hashbrown::HashTable::new();
    }

    /// The series rendered as `name{labels}`, ready to send; None when
    /// write relabeling drops it or the text does not parse (logged).
    pub fn prepare(&mut self, rendered: &[u8]) -> Option<EncodedSeries> {
        self.scratch.clear();
        self.scratch.extend_from_slice(rendered);
        self.scratch.extend_from_slice(b" 0\n");
        let sample = match Parser::new(&self.scratch, Format::Text).next() {
            Some(Ok(Entry::Sample(s))) => s,
            _ => {
                tracing::warn!(series = %String::from_utf8_lossy(rendered), "WAL series does not parse; its samples are dropped");
                return None;
            }
        };
        let mut labels = Labels::with_capacity(16);
        sample.labels_into(&mut labels);
        for (name, value) in self.external_labels {
            if labels.get(name).is_none() {
                labels.set(name.as_str(), value.as_str());
            }
        }
        if !self.rules.apply(&mut labels) || labels.metric_name().is_empty() {
            return None;
        }
        labels.sort();
        self.encoded.clear();
        self.ends.clear();
        for l in labels.iter() {
            put_label(&mut self.encoded, l.name.as_bytes(), l.value.as_bytes());
            self.ends.push(self.encoded.len());
        }
        // The shard hash folds the pairs' hashes: the same labels give the
        // same hash in any segment and process.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        self.series.clear();
        let mut tables = self.segment.write();
        let mut from = 0;
        let mut full = false;
        for &end in &self.ends {
            let bytes = &self.encoded[from..end];
            from = end;
            let Some((pair_hash, number)) =
                intern(&mut self.pairs, &self.hasher, &mut tables, bytes)
            else {
                full = true;
                break;
            };
            hash = (hash.rotate_left(5) ^ pair_hash).wrapping_mul(0x0100_0000_01b3);
            self.series.push(number);
        }
        let at = match full {
            false => tables.add_run(&self.series, self.encoded.len()),
            true => None,
        };
        drop(tables);
        let Some(at) = at else {
            tracing::warn!(series = %String::from_utf8_lossy(rendered), "a WAL segment's series fill the queue's tables (4 GiB); its samples are dropped");
            return None;
        };
        let hash = (hash ^ (hash >> 32)) as u32;
        Some(EncodedSeries::from_parts(self.segment.clone(), at, hash))
    }
}

impl SeriesPrep<'_> {
    /// An exemplar's `Exemplar` message from its labels rendered
    /// `{a="b",...}` (sorted by name, as Prometheus keeps them); None when
    /// they do not parse (logged).
    pub fn exemplar(
        &mut self,
        labels: &[u8],
        value: f64,
        timestamp_ms: i64,
    ) -> Option<Arc<Message>> {
        self.scratch.clear();
        self.scratch.extend_from_slice(b"e");
        self.scratch.extend_from_slice(labels);
        self.scratch.extend_from_slice(b" 0\n");
        let sample = match Parser::new(&self.scratch, Format::Text).next() {
            Some(Ok(Entry::Sample(s))) => s,
            _ => {
                tracing::warn!(labels = %String::from_utf8_lossy(labels), "WAL exemplar labels do not parse; the exemplar is dropped");
                return None;
            }
        };
        let mut parsed = Labels::with_capacity(4);
        sample.labels_into(&mut parsed);
        parsed.sort();
        let out = &mut self.encoded;
        out.clear();
        for l in parsed.iter() {
            let (name, value) = (l.name.as_bytes(), l.value.as_bytes());
            if name == b"__name__" {
                continue;
            }
            put_label(out, name, value);
        }
        if value != 0.0 {
            out.push(0x11);
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
        if timestamp_ms != 0 {
            out.push(0x18);
            varint::put(out, timestamp_ms as u64);
        }
        Some(Arc::new(Message(out.as_slice().into())))
    }
}

/// A native histogram sample's `Histogram` message, with `reset_hint`
/// (prompb's `ResetHint` number) and its timestamp.
pub fn encode_histogram(h: &Histogram, reset_hint: u8, timestamp_ms: i64) -> Arc<Message> {
    let mut out = Vec::with_capacity(64);
    let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u64;
    // The `count` and `zero_count` oneofs are written even when zero: a
    // set oneof field is always encoded.
    match &h.counts {
        HistogramCounts::Integer { count, .. } => {
            out.push(0x08);
            varint::put(&mut out, *count);
        }
        HistogramCounts::Float { count, .. } => put_double(&mut out, 0x11, *count, true),
    }
    put_double(&mut out, 0x19, h.sum, false);
    if h.schema != 0 {
        out.push(0x20);
        varint::put(&mut out, zigzag(i64::from(h.schema)));
    }
    put_double(&mut out, 0x29, h.zero_threshold, false);
    match &h.counts {
        HistogramCounts::Integer { zero_count, .. } => {
            out.push(0x30);
            varint::put(&mut out, *zero_count);
        }
        HistogramCounts::Float { zero_count, .. } => {
            put_double(&mut out, 0x39, *zero_count, true);
        }
    }
    let sides = [
        (&h.negative_spans, 0x42, 0x4a, 0x52),
        (&h.positive_spans, 0x5a, 0x62, 0x6a),
    ];
    for (side, (spans, span_tag, deltas_tag, counts_tag)) in sides.into_iter().enumerate() {
        put_spans(&mut out, span_tag, spans);
        match &h.counts {
            HistogramCounts::Integer {
                positive_deltas,
                negative_deltas,
                ..
            } => {
                let deltas = if side == 0 {
                    negative_deltas
                } else {
                    positive_deltas
                };
                if !deltas.is_empty() {
                    let len: usize = deltas.iter().map(|d| varint::len(zigzag(*d))).sum();
                    out.push(deltas_tag);
                    varint::put(&mut out, len as u64);
                    for d in deltas {
                        varint::put(&mut out, zigzag(*d));
                    }
                }
            }
            HistogramCounts::Float {
                positive, negative, ..
            } => {
                let counts = if side == 0 { negative } else { positive };
                if !counts.is_empty() {
                    out.push(counts_tag);
                    varint::put(&mut out, (counts.len() * 8) as u64);
                    for c in counts {
                        out.extend_from_slice(&c.to_bits().to_le_bytes());
                    }
                }
            }
        }
    }
    if reset_hint != 0 {
        out.push(0x70);
        varint::put(&mut out, u64::from(reset_hint));
    }
    if timestamp_ms != 0 {
        out.push(0x78);
        varint::put(&mut out, timestamp_ms as u64);
    }
    Arc::new(Message(out.into_boxed_slice()))
}

/// A double field, left out when zero unless `always` (a oneof member).
fn put_double(out: &mut Vec<u8>, tag: u8, v: f64, always: bool) {
    if always || v != 0.0 {
        out.push(tag);
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// Repeated `BucketSpan` messages (offset sint32 1, length uint32 2).
fn put_spans(out: &mut Vec<u8>, tag: u8, spans: &[BucketSpan]) {
    for span in spans {
        let offset = ((span.offset << 1) ^ (span.offset >> 31)) as u32;
        let len = if offset != 0 {
            1 + varint::len(u64::from(offset))
        } else {
            0
        } + if span.length != 0 {
            1 + varint::len(u64::from(span.length))
        } else {
            0
        };
        out.push(tag);
        varint::put(out, len as u64);
        if offset != 0 {
            out.push(0x08);
            varint::put(out, u64::from(offset));
        }
        if span.length != 0 {
            out.push(0x10);
            varint::put(out, u64::from(span.length));
        }
    }
}

/// A family's `MetricMetadata` message (prompb's type number, name, help,
/// unit), for [`write_metadata`].
pub fn encode_metadata(kind: u8, name: &[u8], help: &[u8], unit: &[u8]) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(name.len() + help.len() + unit.len() + 8);
    if kind != 0 {
        out.push(0x08);
        varint::put(&mut out, u64::from(kind));
    }
    put_bytes(&mut out, 0x12, name);
    put_bytes(&mut out, 0x22, help);
    put_bytes(&mut out, 0x2a, unit);
    Arc::from(out)
}

/// Appends a `WriteRequest` holding only `metadata` (encoded
/// `MetricMetadata` messages) to `out`.
pub fn write_metadata(metadata: &[Arc<[u8]>], out: &mut Vec<u8>) {
    for m in metadata {
        out.push(0x1a);
        varint::put(out, m.len() as u64);
        out.extend_from_slice(m);
    }
}

/// The hash and number of the pair encoded as `bytes` in `tables`, added
/// if new; None when the segment has no room for it.
fn intern(
    pairs: &mut hashbrown::HashTable<(u64, u32)>,
    hasher: &impl BuildHasher,
    tables: &mut Tables,
    bytes: &[u8],
) -> Option<(u64, u32)> {
    let hash = hasher.hash_one(bytes);
    if let Some(&found) = pairs.find(hash, |&(h, n)| h == hash && tables.pair_bytes(n) == bytes) {
        return Some(found);
    }
    let number = tables.add_pair(bytes)?;
    pairs.insert_unique(hash, (hash, number), |&(h, _)| h);
    Some((hash, number))
}

/// Bytes of a length-delimited field (tag, length, payload); 0 when empty,
/// as proto3 leaves out empty strings.
fn field_len(_field: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + varint::len(len as u64) + len
    }
}

/// One `Label` field (field 1 of a `TimeSeries` and of an `Exemplar`):
/// tag, length, then its name and value fields.
fn put_label(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x0a);
    varint::put(
        out,
        (field_len(1, name.len()) + field_len(2, value.len())) as u64,
    );
    put_bytes(out, 0x0a, name);
    put_bytes(out, 0x12, value);
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    out.push(tag);
    varint::put(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A sample's timestamp field (tag 2, varint), kept encoded for the next
/// sample: a request's samples mostly share their scrape's timestamp, so
/// it is encoded once per run of equal timestamps (1.0 and 2.0 number it
/// alike).
#[derive(Default)]
pub(super) struct TimestampField {
    last: i64,
    bytes: [u8; 16],
    len: usize,
}

impl TimestampField {
    /// The field's bytes (16, to be stored as one fixed piece) and how many
    /// of them are the field: none for 0, which proto3 leaves out.
    #[inline]
    pub(super) fn of(&mut self, timestamp_ms: i64) -> (&[u8; 16], usize) {
        if timestamp_ms != self.last {
            self.last = timestamp_ms;
            self.len = 0;
            if timestamp_ms != 0 {
                self.bytes[0] = 0x10;
                self.len = 1;
                varint::put_at(&mut self.bytes, &mut self.len, timestamp_ms as u64);
            }
        }
        (&self.bytes, self.len)
    }
}

/// Appends a `WriteRequest` holding `samples` to `out` (protobuf, not compressed).
pub fn write_request(samples: &[Outgoing], out: &mut Vec<u8>) {
    let mut reading = Reading::new();
    let mut timestamps = TimestampField::default();
    for s in samples {
        let tables = reading.tables(&s.series);
        let run = tables.run(s.series.at());
        let value = match &s.value {
            Payload::Float(v) => *v,
            Payload::Histogram(m) | Payload::Exemplar(m) => {
                let bytes = m.bytes();
                // TimeSeries: labels, then the message in field 4
                // (histograms) or 3 (exemplars).
                let tag = if matches!(s.value, Payload::Histogram(_)) {
                    0x22
                } else {
                    0x1a
                };
                let series_len = run.labels_len + 1 + varint::len(bytes.len() as u64) + bytes.len();
                out.push(0x0a);
                varint::put(out, series_len as u64);
                tables.write_labels(run, out);
                out.push(tag);
                varint::put(out, bytes.len() as u64);
                out.extend_from_slice(bytes);
                continue;
            }
        };
        // Sample: value (fixed64, field 1) and timestamp (int64, field 2),
        // each left out when zero, as proto3 encoders do.
        let (ts_field, ts_len) = timestamps.of(s.timestamp_ms);
        let has_value = value != 0.0;
        let sample_len = if has_value { 9 } else { 0 } + ts_len;
        let series_len = run.labels_len + 1 + varint::len(sample_len as u64) + sample_len;
        // One reserve for the series: its head, labels and sample are each
        // stored as PAD fixed bytes, then kept to their length.
        out.reserve(run.labels_len + 3 * PAD);
        let mut head = [0u8; PAD];
        head[0] = 0x0a;
        let at = if series_len < 0x80 {
            head[1] = series_len as u8;
            2
        } else if series_len < 0x4000 {
            head[1] = series_len as u8 | 0x80;
            head[2] = (series_len >> 7) as u8;
            3
        } else {
            let mut at = 1;
            varint::put_at(&mut head, &mut at, series_len as u64);
            at
        };
        put_fixed(out, &head, at);
        tables.write_labels(run, out);
        // At most 1 + 1 + 9 + 11 bytes: sample_len is below 0x80.
        let mut tail = [0u8; PAD];
        tail[0] = 0x12;
        tail[1] = sample_len as u8;
        let mut at = 2;
        if has_value {
            tail[2] = 0x09;
            tail[3..11].copy_from_slice(&value.to_bits().to_le_bytes());
            at = 11;
        }
        if let Some(room) = tail.get_mut(at..at + ts_field.len()) {
            room.copy_from_slice(ts_field);
        }
        put_fixed(out, &tail, at + ts_len);
    }
}

/// Snappy block format (`Content-Encoding: snappy` in remote write): the
/// compressed bytes, written into `scratch`. The scratch keeps its length
/// between calls, so it is zeroed only when it grows, not for each
/// request (zeroing it took a quarter of a request's instructions).
pub fn compress<'a>(
    encoder: &mut snap::raw::Encoder,
    input: &[u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], snap::Error> {
    let need = snap::raw::max_compress_len(input.len());
    if scratch.len() < need {
        scratch.resize(need, 0);
    }
    let n = encoder.compress(input, scratch)?;
    Ok(&scratch[..n])
}

/// The same request as prost types (tests and the bench sink decode into these).
pub fn decode(body: &[u8]) -> Result<prompb::WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    prost::Message::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn prep(rendered: &str, external: &[(String, String)], rules: &Rules) -> Option<EncodedSeries> {
        SeriesPrep::new(external, rules).prepare(rendered.as_bytes())
    }

    #[test]
    fn requests_are_what_prost_encodes() {
        let rules = Rules::default();
        let external = vec![
            ("cluster".to_owned(), "c1".to_owned()),
            ("job".to_owned(), "ext".to_owned()),
        ];
        let series = prep("m{a=\"x \\\"q\\\"\",job=\"app\"}", &external, &rules).expect("kept");
        let samples: Vec<Outgoing> = [
            (1_700_000_000_123, 1.5),
            (0, 0.0),
            (-5, f64::NAN),
            (7, -0.0),
            (1, f64::from_bits(0x7ff0_0000_0000_0002)),
        ]
        .into_iter()
        .map(|(timestamp_ms, value)| Outgoing::new(series.clone(), timestamp_ms, value, false))
        .collect();
        let mut ours = Vec::new();
        write_request(&samples, &mut ours);
        let labels = |pairs: &[(&str, &str)]| -> Vec<prompb::Label> {
            pairs
                .iter()
                .map(|(n, v)| prompb::Label {
                    name: (*n).into(),
                    value: (*v).into(),
                })
                .collect()
        };
        let want = prompb::WriteRequest {
            timeseries: samples
                .iter()
                .map(|s| prompb::TimeSeries {
                    labels: labels(&[
                        ("__name__", "m"),
                        ("a", "x \"q\""),
                        ("cluster", "c1"),
                        ("job", "app"),
                    ]),
                    samples: vec![prompb::Sample {
                        value: s.value.float().expect("floats only"),
                        timestamp: s.timestamp_ms,
                    }],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(ours, want.encode_to_vec());
        let mut encoder = snap::raw::Encoder::new();
        let mut compressed = Vec::new();
        let body = compress(&mut encoder, &ours, &mut compressed).expect("compresses");
        let back = decode(body).expect("decodes");
        assert_eq!(back.timeseries.len(), 5);
        assert_eq!(
            back.timeseries[4].samples[0].value.to_bits(),
            0x7ff0_0000_0000_0002
        );
    }

    #[test]
    fn write_relabel_runs_after_external_labels() {
        let config = crate::plan::from_yaml_str(
            "remote_write:\n  - url: http://127.0.0.1:1/w\n    write_relabel_configs:\n      - {source_labels: [cluster], target_label: from_cluster}\n      - {source_labels: [__name__], regex: drop_me, action: drop}\n",
        )
        .expect("valid");
        let rules = &config.writers[0].write_relabel;
        let external = vec![("cluster".to_owned(), "c1".to_owned())];
        assert!(prep("drop_me{a=\"1\"}", &external, rules).is_none());
        let kept = prep("m{a=\"1\"}", &external, rules).expect("kept");
        let decoded = prompb::TimeSeries::decode(
            [&[0x0a_u8, kept.labels().len() as u8][..], &kept.labels()]
                .concat()
                .as_slice(),
        );
        // One Label field decoded on its own proves the framing; check all below.
        assert!(decoded.is_ok());
        let mut req = Vec::new();
        write_request(&[Outgoing::new(kept, 1, 1.0, false)], &mut req);
        let got = prompb::WriteRequest::decode(req.as_slice()).expect("decodes");
        let names: Vec<(String, String)> = got.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("__name__", "m"),
                ("a", "1"),
                ("cluster", "c1"),
                ("from_cluster", "c1")
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn series_share_their_pairs_and_hash_the_same_in_any_process() {
        let rules = Rules::default();
        let external = vec![("cluster".to_owned(), "c1".to_owned())];
        let mut prep = SeriesPrep::new(&external, &rules);
        let a = prep.prepare(b"m{job=\"app\",i=\"1\"}").expect("kept");
        let b = prep.prepare(b"m{job=\"app\",i=\"2\"}").expect("kept");
        // __name__, cluster, i, job: all but `i` are the same pairs.
        assert!(Arc::ptr_eq(a.segment(), b.segment()));
        let (pa, pb) = (a.pair_numbers(), b.pair_numbers());
        assert_eq!(pa.len(), 4);
        let same: Vec<bool> = pa.iter().zip(&pb).map(|(x, y)| x == y).collect();
        assert_eq!(same, [true, true, false, true]);
        assert_eq!(
            a.segment().read().pair_bytes(pa[3]),
            b"\x0a\x0a\x0a\x03job\x12\x03app"
        );
        assert_ne!(a.shard_key(), b.shard_key());
        // Another segment (or process) makes new pairs with the same hash.
        prep.clear_pairs();
        let again = prep.prepare(b"m{i=\"1\",job=\"app\"}").expect("kept");
        assert!(!Arc::ptr_eq(again.segment(), a.segment()));
        assert_eq!(again, a);
        assert_eq!(again.shard_key(), a.shard_key());
        let other = SeriesPrep::new(&external, &rules).prepare(b"m{job=\"app\",i=\"1\"}");
        assert_eq!(other.map(|s| s.shard_key()), Some(a.shard_key()));
        assert_eq!(a.labels().len(), a.labels_len());
    }

    fn histogram(float: bool, schema: i32, zero: bool) -> Histogram {
        Histogram {
            schema,
            zero_threshold: if zero { 0.0 } else { 1e-128 },
            sum: if zero { 0.0 } else { -12.5 },
            positive_spans: if zero {
                Vec::new()
            } else {
                vec![
                    BucketSpan {
                        offset: -3,
                        length: 2,
                    },
                    BucketSpan {
                        offset: 0,
                        length: 0,
                    },
                    BucketSpan {
                        offset: 400,
                        length: 1,
                    },
                ]
            },
            negative_spans: if zero {
                Vec::new()
            } else {
                vec![BucketSpan {
                    offset: 1,
                    length: 1,
                }]
            },
            counts: match (float, zero) {
                (false, true) => HistogramCounts::Integer {
                    count: 0,
                    zero_count: 0,
                    positive_deltas: Vec::new(),
                    negative_deltas: Vec::new(),
                },
                (false, false) => HistogramCounts::Integer {
                    count: 300,
                    zero_count: 1,
                    positive_deltas: vec![200, -199, 90],
                    negative_deltas: vec![8],
                },
                (true, true) => HistogramCounts::Float {
                    count: 0.0,
                    zero_count: 0.0,
                    positive: Vec::new(),
                    negative: Vec::new(),
                },
                (true, false) => HistogramCounts::Float {
                    count: 9.5,
                    zero_count: 0.5,
                    positive: vec![1.0, 2.5, 4.0],
                    negative: vec![1.5],
                },
            },
        }
    }

    /// What prost makes of the same histogram.
    fn prost_histogram(h: &Histogram, reset_hint: i32, timestamp: i64) -> prompb::Histogram {
        use prompb::histogram::{Count, ZeroCount};
        let spans = |s: &[BucketSpan]| -> Vec<prompb::BucketSpan> {
            s.iter()
                .map(|s| prompb::BucketSpan {
                    offset: s.offset,
                    length: s.length,
                })
                .collect()
        };
        let mut out = prompb::Histogram {
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            negative_spans: spans(&h.negative_spans),
            positive_spans: spans(&h.positive_spans),
            reset_hint,
            timestamp,
            ..Default::default()
        };
        match &h.counts {
            HistogramCounts::Integer {
                count,
                zero_count,
                positive_deltas,
                negative_deltas,
            } => {
                out.count = Some(Count::CountInt(*count));
                out.zero_count = Some(ZeroCount::ZeroCountInt(*zero_count));
                out.positive_deltas = positive_deltas.clone();
                out.negative_deltas = negative_deltas.clone();
            }
            HistogramCounts::Float {
                count,
                zero_count,
                positive,
                negative,
            } => {
                out.count = Some(Count::CountFloat(*count));
                out.zero_count = Some(ZeroCount::ZeroCountFloat(*zero_count));
                out.positive_counts = positive.clone();
                out.negative_counts = negative.clone();
            }
        }
        out
    }

    #[test]
    fn histograms_and_exemplars_are_what_prost_encodes() {
        let rules = Rules::default();
        let mut prep = SeriesPrep::new(&[], &rules);
        let series = prep.prepare(b"lat{job=\"app\"}").expect("kept");
        let mut samples = Vec::new();
        let mut want = Vec::new();
        let labels = vec![
            prompb::Label {
                name: "__name__".into(),
                value: "lat".into(),
            },
            prompb::Label {
                name: "job".into(),
                value: "app".into(),
            },
        ];
        let cases = [
            (false, 3, false, 0, 1_700_000_000_123),
            (true, -4, false, 3, 5),
            (false, 0, true, 0, 0),
            (true, 8, true, 1, -7),
        ];
        for (float, schema, zero, hint, ts) in cases {
            let h = histogram(float, schema, zero);
            let payload = Payload::Histogram(encode_histogram(&h, hint, ts));
            samples.push(Outgoing::with(series.clone(), ts, payload, false));
            want.push(prompb::TimeSeries {
                labels: labels.clone(),
                histograms: vec![prost_histogram(&h, i32::from(hint), ts)],
                ..Default::default()
            });
        }
        // Exemplars: labels sorted, the series' name not among them.
        let exemplars = [
            ("{trace_id=\"t1\",a=\"\"}", 0.25, 1_700_000_000_000),
            ("{}", 0.0, 0),
            ("{span=\"x\\\"y\"}", -1.0, -3),
        ];
        for (text, value, ts) in exemplars {
            let encoded = prep.exemplar(text.as_bytes(), value, ts).expect("parses");
            samples.push(Outgoing::with(
                series.clone(),
                ts,
                Payload::Exemplar(encoded),
                false,
            ));
        }
        let label = |n: &str, v: &str| prompb::Label {
            name: n.into(),
            value: v.into(),
        };
        for (labels_want, value, timestamp) in [
            (
                vec![label("a", ""), label("trace_id", "t1")],
                0.25,
                1_700_000_000_000,
            ),
            (vec![], 0.0, 0),
            (vec![label("span", "x\"y")], -1.0, -3),
        ] {
            want.push(prompb::TimeSeries {
                labels: labels.clone(),
                exemplars: vec![prompb::Exemplar {
                    labels: labels_want,
                    value,
                    timestamp,
                }],
                ..Default::default()
            });
        }
        samples.push(Outgoing::new(series.clone(), 9, 2.0, false));
        want.push(prompb::TimeSeries {
            labels: labels.clone(),
            samples: vec![prompb::Sample {
                value: 2.0,
                timestamp: 9,
            }],
            ..Default::default()
        });
        let mut ours = Vec::new();
        write_request(&samples, &mut ours);
        let want = prompb::WriteRequest {
            timeseries: want,
            ..Default::default()
        };
        assert_eq!(ours, want.encode_to_vec());
        assert_eq!(
            prompb::WriteRequest::decode(ours.as_slice()).ok(),
            Some(want)
        );
    }

    #[test]
    fn a_float_sample_in_flight_is_no_larger_for_the_other_kinds() {
        // Series (16: its segment, run and hash), payload (16: a float or
        // one thin pointer), timestamp, start timestamp (2.0's
        // `start_timestamp`), replayed.
        assert_eq!(std::mem::size_of::<EncodedSeries>(), 16);
        assert_eq!(std::mem::size_of::<Payload>(), 16);
        assert!(std::mem::size_of::<Outgoing>() <= 56);
    }

    #[test]
    fn metadata_requests_are_what_prost_encodes() {
        let families = [
            (2, "temp", "Temperature \"now\".", "celsius"),
            (0, "odd", "", ""),
            (7, "state", "S.", ""),
        ];
        let encoded: Vec<Arc<[u8]>> = families
            .iter()
            .map(|(k, n, h, u)| encode_metadata(*k, n.as_bytes(), h.as_bytes(), u.as_bytes()))
            .collect();
        let mut ours = Vec::new();
        write_metadata(&encoded, &mut ours);
        let want = prompb::WriteRequest {
            metadata: families
                .iter()
                .map(|(k, n, h, u)| prompb::MetricMetadata {
                    r#type: i32::from(*k),
                    metric_family_name: (*n).into(),
                    help: (*h).into(),
                    unit: (*u).into(),
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(ours, want.encode_to_vec());
    }
}
