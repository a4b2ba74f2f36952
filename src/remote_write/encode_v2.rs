//! Remote write 2.0 (`io.prometheus.write.v2.Request`, spec 2.0-rc.4): the
//! same batch of [`Outgoing`] samples as 1.0's encoder takes, written
//! straight into protobuf wire bytes, byte for byte what prost encodes for
//! the same [`prompb_v2::Request`](super::prompb_v2::Request) (tested).
//!
//! Each request carries its own symbol table: every string once, `""`
//! first, and each series refers to its labels' names and values by index.
//! The strings come out of the series' interned label pairs (one 1.0
//! `Label` field each, numbered in their segment's
//! [`Tables`](super::series::Tables)), so a pair's refs are looked up once
//! per request and reused for every other series that shares it: the
//! encoder notes on the pair where its refs are ([`Tables::stamp`]), so a
//! pair met again costs one load, no hashing and no read of its bytes.
//! The encoder keeps its tables and buffers between requests: a request
//! allocates nothing per sample once they have grown.
//!
//! Each `TimeSeries` carries one float sample (with `start_timestamp`
//! when the WAL gave the series one), one native histogram (1.0's
//! `Histogram` bytes, whose fields 2.0 numbers alike, plus
//! `start_timestamp`) or one exemplar (its labels turned into refs), as
//! Prometheus sends them, and the family's metadata (type, help and unit
//! refs) when the queue knows it.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use super::encode::{name_value, Outgoing, Payload, Reading, TimestampField};
use super::series::{put_fixed, Tables};
use crate::varint;

/// A string of the symbol table: where its bytes are in the symbols
/// section, and its ref.
#[derive(Clone, Copy)]
struct Symbol {
    hash: u64,
    start: u32,
    len: u32,
    index: u32,
}

/// A label pair of this request with its name's and value's refs, found
/// through the pair's stamp (which only this request's encoder writes
/// with this request's number). Equal pairs of two segments are two
/// entries with the same refs.
#[derive(Clone, Copy)]
struct PairRefs {
    /// The name's and value's refs as the series' packed `labels_refs`
    /// hold them (two varints), written once per request and pair.
    refs: [u8; 16],
    refs_len: u32,
    /// For a `__name__` pair, its family's index in `families` (looked up
    /// when the pair is first met in the request, so a sample costs no
    /// lookup of its own); 0 otherwise. A series has one `__name__`, so
    /// its pairs' indexes OR together to its family's.
    family: u32,
}

/// A family's `metadata` field (tag, length, message) as a series
/// carries it, encoded once per request: at most 2 + 2 + 6 + 6 bytes.
#[derive(Clone, Copy, Default)]
struct FamilyField {
    bytes: [u8; 16],
    len: u8,
}

impl FamilyField {
    /// The field for `refs`; empty when the message would be. Built in
    /// place: a request allocates nothing per family.
    fn of(refs: &FamilyRefs) -> FamilyField {
        let mut field = FamilyField::default();
        let len = refs.len();
        if len > 0 {
            // Type (1), help_ref (3), unit_ref (4); at most 14 bytes, so
            // the length is one byte.
            let b = &mut field.bytes;
            b[0] = 0x2a;
            b[1] = len as u8;
            let mut at = 2;
            for (tag, v) in [
                (0x08, refs.kind.into()),
                (0x18, refs.help),
                (0x20, refs.unit),
            ] {
                if v != 0 {
                    b[at] = tag;
                    at += 1;
                    varint::put_at(b, &mut at, v.into());
                }
            }
            field.len = at as u8;
        }
        field
    }
}

/// A family's metadata as a 2.0 `Metadata` message holds it.
#[derive(Clone, Copy, Default)]
struct FamilyRefs {
    /// The `MetricType` number (the same numbers as 1.0's).
    kind: u8,
    help: u32,
    unit: u32,
}

impl FamilyRefs {
    /// Bytes of the `Metadata` message; 0 when there is nothing to say
    /// (the field is then left out, which a receiver reads as
    /// `METRIC_TYPE_UNSPECIFIED` with empty help and unit, as Prometheus's
    /// empty one).
    fn len(&self) -> usize {
        int_len(self.kind.into()) + int_len(self.help.into()) + int_len(self.unit.into())
    }
}

/// A family's metadata as the queue knows it.
pub struct FamilyMetadata<'a> {
    /// prompb's `MetricType` number (1.0 and 2.0 number them the same).
    pub kind: u8,
    pub help: &'a [u8],
    pub unit: &'a [u8],
}

/// Where the encoder finds a series' family metadata (the queue's store).
pub trait MetadataLookup {
    /// The metadata of the family a series named `metric_name` belongs to
    /// (`req_total` belongs to `req`), if known.
    fn family(&self, metric_name: &[u8]) -> Option<FamilyMetadata<'_>>;
}

/// No metadata known.
pub struct NoMetadata;

impl MetadataLookup for NoMetadata {
    fn family(&self, _: &[u8]) -> Option<FamilyMetadata<'_>> {
        None
    }
}

/// One field of a protobuf message: its tag byte, its bytes (tag
/// included), and a length-delimited field's payload.
struct Field<'a> {
    tag: u8,
    whole: &'a [u8],
    payload: &'a [u8],
}

/// The fields of a message relay encoded itself (one-byte tags); stops at
/// the first it cannot read.
fn fields(bytes: &[u8]) -> impl Iterator<Item = Field<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let start = pos;
        let tag = *bytes.get(pos)?;
        pos += 1;
        let (payload_start, payload_end) = match tag & 7 {
            0 => {
                varint::get(bytes, &mut pos)?;
                (pos, pos)
            }
            1 => (pos, pos + 8),
            5 => (pos, pos + 4),
            2 => {
                let len = varint::get(bytes, &mut pos)? as usize;
                (pos, pos.checked_add(len)?)
            }
            _ => return None,
        };
        let payload = bytes.get(payload_start..payload_end)?;
        pos = payload_end.max(pos);
        Some(Field {
            tag,
            whole: &bytes[start..pos],
            payload,
        })
    })
}

/// Bytes of a `Histogram`'s `start_timestamp` (field 17, a two-byte tag),
/// 0 when left out.
fn start_field_len(start_ms: i64) -> usize {
    if start_ms == 0 {
        0
    } else {
        2 + varint::len(start_ms as u64)
    }
}

/// Builds 2.0 requests; one per shard, reused for each of its requests.
#[derive(Default)]
pub struct V2Encoder {
    /// The `symbols` fields, encoded (tag, length, bytes), in ref order.
    symbols: Vec<u8>,
    strings: hashbrown::HashTable<Symbol>,
    n_symbols: u32,
    /// The pairs met in this request, in the order met; a pair's
    /// [`Tables::stamp`] points into it.
    pairs: Vec<PairRefs>,
    /// The metadata fields of the families met in this request; the first
    /// is empty (a series without known metadata).
    families: Vec<FamilyField>,
    /// This request's number (never 0: a new pair's stamp is 0).
    request: u64,
    /// The `timeseries` fields, encoded, until the symbols are complete.
    series: Vec<u8>,
    /// One series' head (from [`HEAD`] back) and label refs (from
    /// [`HEAD`] on), zero-filled to its length: pieces of fixed size are
    /// stored into it and copied out of it.
    refs: Vec<u8>,
    /// One exemplar's label refs.
    exemplar_refs: Vec<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl V2Encoder {
    /// An encoder with empty tables.
    pub fn new() -> Self {
        V2Encoder::default()
    }

    /// Gives the buffers back (the shard calls it when it has caught up,
    /// so an idle Pod does not hold them between scrapes).
    pub fn release(&mut self) {
        *self = V2Encoder {
            hasher: self.hasher.clone(),
            ..V2Encoder::default()
        };
    }

    /// Appends a `Request` holding `samples` to `out` (protobuf, not
    /// compressed): the symbols, then one `TimeSeries` per sample (a float
    /// sample, a native histogram or an exemplar, as Prometheus sends
    /// them), each with its family's metadata from `metadata` when known.
    pub fn write_request(
        &mut self,
        samples: &[Outgoing],
        metadata: &dyn MetadataLookup,
        out: &mut Vec<u8>,
    ) {
        self.symbols.clear();
        self.strings.clear();
        self.pairs.clear();
        self.families.clear();
        self.families.push(FamilyField::default());
        self.series.clear();
        self.n_symbols = 0;
        self.request = next_request();
        self.symbol(b"");
        if self.refs.len() < HEAD + REFS_PIECE {
            self.refs.resize(HEAD + REFS_PIECE, 0);
        }
        let mut reading = Reading::new();
        let mut timestamps = TimestampField::default();
        for s in samples {
            let tables = reading.tables(&s.series);
            let run = tables.run(s.series.at());
            // Each pair's refs stored as 16 fixed bytes then cut: a copy of
            // a fixed size is two moves, a copy of a varying one a call to
            // memmove. At most 10 bytes a pair.
            let need = HEAD + run.pairs.len() * 10 + 16;
            if self.refs.len() < need {
                self.refs.resize(need.max(HEAD + REFS_PIECE), 0);
            }
            let mut end = HEAD;
            let mut family = 0;
            for &number in run.pairs {
                let p = self.pair_refs(tables, number, metadata);
                family |= p.family;
                if let Some(room) = self.refs.get_mut(end..end + 16) {
                    room.copy_from_slice(&p.refs);
                }
                end += p.refs_len as usize;
            }
            let refs_len = end - HEAD;
            let family = self
                .families
                .get(family as usize)
                .copied()
                .unwrap_or_default();
            if let Payload::Float(value) = s.value {
                let timestamp = timestamps.of(s.timestamp_ms);
                self.float_series(value, s.start_ms, timestamp, refs_len, &family);
                continue;
            }
            // What the series carries besides its labels: its length, and
            // for an exemplar the length of its label refs.
            let (body_len, exemplar_refs_len) = match &s.value {
                // Written by `float_series` above.
                Payload::Float(_) => continue,
                Payload::Histogram(m) => (m.bytes().len() + start_field_len(s.start_ms), 0),
                Payload::Exemplar(m) => {
                    let refs_len = self.exemplar_refs(m.bytes());
                    let rest: usize = fields(m.bytes())
                        .filter(|f| f.tag != 0x0a)
                        .map(|f| f.whole.len())
                        .sum();
                    let labels = if refs_len > 0 { field_len(refs_len) } else { 0 };
                    (labels + rest, refs_len)
                }
            };
            let mut series_len = field_len(body_len);
            if refs_len > 0 {
                series_len += field_len(refs_len);
            }
            series_len += usize::from(family.len);
            let out = &mut self.series;
            // Room for the series but its histogram or exemplar message,
            // and for the timestamp's fixed store.
            out.reserve(series_len.min(1 << 16) + 32);
            out.push(0x2a);
            varint::put(out, series_len as u64);
            if refs_len > 0 {
                out.push(0x0a);
                varint::put(out, refs_len as u64);
                out.extend_from_slice(self.refs.get(HEAD..HEAD + refs_len).unwrap_or_default());
            }
            match &s.value {
                Payload::Float(_) => {}
                Payload::Histogram(m) => {
                    // 2.0's `Histogram` numbers fields 1 to 15 as 1.0's
                    // does (same types, same reset hints): the 1.0 message
                    // is the 2.0 one without `start_timestamp` (17).
                    out.push(0x1a);
                    varint::put(out, body_len as u64);
                    out.extend_from_slice(m.bytes());
                    if s.start_ms != 0 {
                        // Field 17, varint: a two-byte tag.
                        out.extend_from_slice(&[0x88, 0x01]);
                        varint::put(out, s.start_ms as u64);
                    }
                }
                Payload::Exemplar(m) => {
                    // 1.0's `Exemplar` has its labels as `Label` fields
                    // (1); 2.0's as packed refs (1). Value (double, 2) and
                    // timestamp (int64, 3) are the same fields in both.
                    out.push(0x22);
                    varint::put(out, body_len as u64);
                    if exemplar_refs_len > 0 {
                        out.push(0x0a);
                        varint::put(out, exemplar_refs_len as u64);
                        for &r in &self.exemplar_refs {
                            varint::put(out, r.into());
                        }
                    }
                    for f in fields(m.bytes()).filter(|f| f.tag != 0x0a) {
                        out.extend_from_slice(f.whole);
                    }
                }
            }
            out.extend_from_slice(
                family
                    .bytes
                    .get(..usize::from(family.len))
                    .unwrap_or_default(),
            );
        }
        out.reserve(self.symbols.len() + self.series.len());
        out.extend_from_slice(&self.symbols);
        out.extend_from_slice(&self.series);
    }

    /// The refs of an exemplar's labels (a 1.0 `Exemplar` message's
    /// `Label` fields) into `exemplar_refs`; the bytes of their packed
    /// field's payload.
    fn exemplar_refs(&mut self, message: &[u8]) -> usize {
        self.exemplar_refs.clear();
        for f in fields(message) {
            if f.tag != 0x0a {
                continue;
            }
            let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
            for l in fields(f.payload) {
                match l.tag {
                    0x0a => name = l.payload,
                    0x12 => value = l.payload,
                    _ => {}
                }
            }
            let refs = (self.symbol(name), self.symbol(value));
            self.exemplar_refs.push(refs.0);
            self.exemplar_refs.push(refs.1);
        }
        self.exemplar_refs
            .iter()
            .map(|&r| varint::len(r.into()))
            .sum()
    }

    /// Writes a float sample's `TimeSeries` (its label refs already in
    /// `refs` from [`HEAD`] on, `refs_len` bytes) into `series`: its head
    /// and refs as one piece of fixed size, its sample and metadata as
    /// another, each stored past the end and kept to its length, into room
    /// reserved once.
    #[inline(always)]
    fn float_series(
        &mut self,
        value: f64,
        start_ms: i64,
        (ts_field, ts_len): (&[u8; 16], usize),
        refs_len: usize,
        family: &FamilyField,
    ) {
        // Sample: value (double, 1), timestamp (int64, 2) and
        // start_timestamp (int64, 3), each left out when zero as proto3
        // encoders do (-0.0 too, as prost and 1.0's encoder). At most
        // 2 + 9 + 11 + 11 bytes, then the metadata field's 16.
        let mut tail = [0u8; TAIL];
        let has_value = value != 0.0;
        let mut at = 2;
        if has_value {
            tail[2] = 0x09;
            tail[3..11].copy_from_slice(&value.to_bits().to_le_bytes());
            at = 11;
        }
        // All 16 stored (a fixed copy), `ts_len` kept.
        if let Some(room) = tail.get_mut(at..at + 16) {
            room.copy_from_slice(ts_field);
        }
        at += ts_len;
        if start_ms != 0 {
            tail[at] = 0x18;
            at += 1;
            varint::put_at(&mut tail, &mut at, start_ms as u64);
        }
        let body_len = at - 2;
        tail[0] = 0x12;
        tail[1] = body_len as u8;
        if let Some(room) = tail.get_mut(at..at + 16) {
            room.copy_from_slice(&family.bytes);
        }
        at += usize::from(family.len);
        let tail_len = at;
        let mut series_len = tail_len;
        if refs_len > 0 {
            series_len += field_len(refs_len);
        }
        // The head, right before the refs: the series' tag and length,
        // then the refs' tag and length (a field left out when empty).
        let mut head = [0u8; HEAD];
        let mut head_len = 0;
        head[0] = 0x2a;
        head_len += 1;
        varint::put_at(&mut head, &mut head_len, series_len as u64);
        if refs_len > 0 {
            head[head_len] = 0x0a;
            head_len += 1;
            varint::put_at(&mut head, &mut head_len, refs_len as u64);
        }
        // Moved to end right before the refs, and stored as all 16 bytes
        // (the bytes before it are not kept).
        // (A head is at most 12 bytes for any length below 2^35.)
        let start = HEAD.saturating_sub(head_len);
        let right = u128::from_le_bytes(head) << (8 * start);
        if let Some(room) = self.refs.get_mut(..HEAD) {
            room.copy_from_slice(&right.to_le_bytes());
        }
        let out = &mut self.series;
        out.reserve(head_len + refs_len + REFS_PIECE + TAIL);
        match self
            .refs
            .get(start..start + REFS_PIECE)
            .map(<&[u8; REFS_PIECE]>::try_from)
        {
            Some(Ok(piece)) if head_len + refs_len <= REFS_PIECE => {
                put_fixed(out, piece, head_len + refs_len)
            }
            _ => out.extend_from_slice(self.refs.get(start..HEAD + refs_len).unwrap_or_default()),
        }
        put_fixed(out, &tail, tail_len);
    }

    /// The refs of a pair's name and value (pair `number` of the segment
    /// whose `tables` are these), added to `pairs` if new; for the
    /// series' `__name__` pair, also its family's metadata field from
    /// `metadata` (once per request and name).
    #[inline(always)]
    fn pair_refs(
        &mut self,
        tables: &Tables,
        number: u32,
        metadata: &dyn MetadataLookup,
    ) -> PairRefs {
        let stamp = tables.stamp(number);
        if let Some(stamp) = stamp {
            let stamp = stamp.load(Ordering::Relaxed);
            // Only this encoder writes this request's number (numbers are
            // process-unique and do not wrap in 2^40 requests), and only on
            // the pair whose entry the index names.
            if stamp >> INDEX_BITS == self.request {
                if let Some(p) = self.pairs.get((stamp & INDEX_MASK) as usize) {
                    return *p;
                }
            }
        }
        self.new_pair_refs(tables, number, metadata, stamp)
    }

    /// [`V2Encoder::pair_refs`] for a pair not met yet in this request
    /// (kept out of line: most pairs of a request are met again).
    #[inline(never)]
    fn new_pair_refs(
        &mut self,
        tables: &Tables,
        number: u32,
        metadata: &dyn MetadataLookup,
        stamp: Option<&AtomicU64>,
    ) -> PairRefs {
        let (name, value) = name_value(tables.pair_bytes(number));
        let refs = (self.symbol(name), self.symbol(value));
        let mut family = 0;
        if name == b"__name__" {
            if let Some(m) = metadata.family(value) {
                if m.kind != 0 || !m.help.is_empty() || !m.unit.is_empty() {
                    let refs = FamilyRefs {
                        kind: m.kind,
                        help: self.symbol(m.help),
                        unit: self.symbol(m.unit),
                    };
                    // Past u32::MAX families, the rest go without.
                    if let Ok(i) = u32::try_from(self.families.len()) {
                        family = i;
                        self.families.push(FamilyField::of(&refs));
                    }
                }
            }
        }
        let index = self.pairs.len() as u64;
        // Past 2^24 pairs in one request, a pair is simply looked up again
        // next time.
        if let (true, Some(stamp)) = (index <= INDEX_MASK, stamp) {
            stamp.store((self.request << INDEX_BITS) | index, Ordering::Relaxed);
        }
        // Two u32 varints: at most 10 bytes.
        let mut packed = [0; 16];
        let mut len = 0;
        varint::put_at(&mut packed, &mut len, refs.0.into());
        varint::put_at(&mut packed, &mut len, refs.1.into());
        let p = PairRefs {
            refs: packed,
            refs_len: len as u32,
            family,
        };
        self.pairs.push(p);
        p
    }

    /// The ref of `text`, appended to the symbols if new.
    fn symbol(&mut self, text: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(text);
        let symbols = &self.symbols;
        let found = self.strings.find(hash, |s| {
            s.hash == hash && &symbols[s.start as usize..(s.start + s.len) as usize] == text
        });
        if let Some(s) = found {
            return s.index;
        }
        self.symbols.push(0x22);
        varint::put(&mut self.symbols, text.len() as u64);
        let symbol = Symbol {
            hash,
            start: self.symbols.len() as u32,
            len: text.len() as u32,
            index: self.n_symbols,
        };
        self.symbols.extend_from_slice(text);
        self.strings.insert_unique(hash, symbol, |s| s.hash);
        self.n_symbols += 1;
        symbol.index
    }
}

/// Numbers requests across every encoder of the process, so a pair's
/// stamp from another request (or another shard's) is told apart.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A stamp's low bits: the index of the pair's entry in its request.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;

/// Room before a series' refs for its head (two tags, two varints).
const HEAD: usize = 16;
/// A series' head and refs copied as one piece when they fit it.
const REFS_PIECE: usize = 64;
/// A float series' sample and metadata fields (at most 33 + 16 bytes).
const TAIL: usize = 64;

/// A new request number, never 0, below 2^40 (the stamp's high bits).
fn next_request() -> u64 {
    loop {
        let n = REQUESTS.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
            & ((1 << (64 - INDEX_BITS)) - 1);
        if n != 0 {
            return n;
        }
    }
}

/// Bytes of a length-delimited field holding `len` bytes (tag, length, payload).
fn field_len(len: usize) -> usize {
    1 + varint::len(len as u64) + len
}

/// Bytes of an int64 field, 0 when it is zero (left out).
fn int_len(v: i64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint::len(v as u64)
    }
}

/// What one request carries, by kind: what a 2.0 receiver's written
/// headers are checked against.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
}

impl Sent {
    /// The counts of `batch`.
    pub fn of(batch: &[Outgoing]) -> Sent {
        let mut sent = Sent::default();
        for s in batch {
            match s.value {
                Payload::Float(_) => sent.samples += 1,
                Payload::Histogram(_) => sent.histograms += 1,
                Payload::Exemplar(_) => sent.exemplars += 1,
            }
        }
        sent
    }

    /// Everything it carries.
    pub fn total(&self) -> u64 {
        self.samples + self.histograms + self.exemplars
    }
}

/// The written counts a 2.0 receiver answers with (the
/// `X-Prometheus-Remote-Write-*-Written` headers); None for a header that
/// was absent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub samples: Option<u64>,
    pub histograms: Option<u64>,
    pub exemplars: Option<u64>,
}

impl Written {
    /// Whether the receiver sent any of the headers: a 2xx without them
    /// came from a 1.x receiver that read the request as an empty 1.0 one.
    pub fn any(&self) -> bool {
        self.samples.is_some() || self.histograms.is_some() || self.exemplars.is_some()
    }

    /// The counts from a response's headers (an unparsable value counts as
    /// absent).
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Written {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Written {
            samples: get("X-Prometheus-Remote-Write-Samples-Written"),
            histograms: get("X-Prometheus-Remote-Write-Histograms-Written"),
            exemplars: get("X-Prometheus-Remote-Write-Exemplars-Written"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::prompb_v2 as v2;
    use super::*;
    use crate::relabel::Rules;
    use crate::remote_write::encode::{EncodedSeries, SeriesPrep};
    use prost::Message;

    #[test]
    fn requests_are_what_prost_encodes_with_one_symbol_table() {
        let rules = Rules::default();
        let external = vec![("cluster".to_owned(), "c1".to_owned())];
        let mut prep = SeriesPrep::new(&external, &rules);
        let a = prep
            .prepare(b"m{a=\"x \\\"q\\\"\",job=\"app\"}")
            .expect("kept");
        let b = prep.prepare(b"m{a=\"m\",job=\"app\"}").expect("kept");
        // Another segment's pairs: equal bytes, other allocations.
        prep.clear_pairs();
        let a_again = prep
            .prepare(b"m{job=\"app\",a=\"x \\\"q\\\"\"}")
            .expect("kept");
        let samples = vec![
            Outgoing::new(a.clone(), 1_700_000_000_123, 1.5, false),
            Outgoing::new(b.clone(), 0, 0.0, false),
            Outgoing::new(a_again, -5, f64::NAN, false),
            Outgoing::new(b, 7, -0.0, true),
            Outgoing::new(a, 1, f64::from_bits(0x7ff0_0000_0000_0002), false),
        ];
        let mut encoder = V2Encoder::new();
        let mut ours = Vec::new();
        // Twice through the same encoder: the second request starts afresh.
        encoder.write_request(&samples[..1], &NoMetadata, &mut ours);
        ours.clear();
        encoder.write_request(&samples, &NoMetadata, &mut ours);
        let symbols: Vec<String> = ["", "__name__", "m", "a", "x \"q\"", "cluster", "c1"]
            .into_iter()
            .chain(["job", "app"])
            .map(str::to_owned)
            .collect();
        // m{a="x \"q\"",cluster="c1",job="app"} and m{a="m",cluster,job}.
        let refs_a = vec![1, 2, 3, 4, 5, 6, 7, 8];
        let refs_b = vec![1, 2, 3, 2, 5, 6, 7, 8];
        let want = v2::Request {
            symbols,
            timeseries: samples
                .iter()
                .zip([&refs_a, &refs_b, &refs_a, &refs_b, &refs_a])
                .map(|(s, refs)| v2::TimeSeries {
                    labels_refs: refs.clone(),
                    samples: vec![v2::Sample {
                        value: s.value.float().unwrap_or_default(),
                        timestamp: s.timestamp_ms,
                        start_timestamp: 0,
                    }],
                    ..Default::default()
                })
                .collect(),
        };
        assert_eq!(ours, want.encode_to_vec());
        let back = v2::Request::decode(ours.as_slice()).expect("decodes");
        assert_eq!(back.symbols[0], "");
        assert_eq!(
            back.timeseries[4].samples[0].value.to_bits(),
            0x7ff0_0000_0000_0002
        );
        assert!(back.timeseries.iter().all(|t| t.metadata.is_none()));
    }

    #[test]
    fn shards_sharing_pairs_write_what_one_encoder_writes_alone() {
        // Each shard leaves its notes on the same pairs and overwrites the
        // other's; a note from another request or shard must never give a
        // wrong ref, only a second lookup.
        let rules = Rules::default();
        let mut prep = SeriesPrep::new(&[], &rules);
        let samples: Vec<Outgoing> = (0..400)
            .map(|i| {
                let text = format!("m{{code=\"{}\",job=\"app\",n=\"{i}\"}}", i % 7);
                let series = prep.prepare(text.as_bytes()).expect("kept");
                Outgoing::new(series, 1_700_000_000_000 + i, i as f64, false)
            })
            .collect();
        let mut alone = Vec::new();
        V2Encoder::new().write_request(&samples, &NoMetadata, &mut alone);
        let back = v2::Request::decode(alone.as_slice()).expect("decodes");
        assert_eq!(back.timeseries.len(), 400);
        let labels = |t: &v2::TimeSeries| -> Vec<String> {
            t.labels_refs
                .iter()
                .map(|&r| back.symbols[r as usize].clone())
                .collect()
        };
        assert_eq!(
            labels(&back.timeseries[9]),
            ["__name__", "m", "code", "2", "job", "app", "n", "9"]
        );
        std::thread::scope(|scope| {
            for shard in 0..4 {
                let (samples, alone) = (&samples, &alone);
                scope.spawn(move || {
                    let mut encoder = V2Encoder::new();
                    let mut out = Vec::new();
                    for round in 0..200 {
                        out.clear();
                        // Shards start at different places, so they meet
                        // the same pairs in other orders.
                        let from = (shard * 97 + round) % samples.len();
                        encoder.write_request(&samples[from..], &NoMetadata, &mut out);
                        let mut want = Vec::new();
                        V2Encoder::new().write_request(&samples[from..], &NoMetadata, &mut want);
                        assert_eq!(out, want, "shard {shard}, round {round}");
                    }
                    out.clear();
                    encoder.write_request(samples, &NoMetadata, &mut out);
                    assert_eq!(&out, alone, "shard {shard}");
                });
            }
        });
    }

    /// Metadata for `req` (a counter, help only) and `lat` (a gauge with
    /// help and unit); `req_total` finds `req` by stripping `_total`.
    struct Families;

    impl MetadataLookup for Families {
        fn family(&self, name: &[u8]) -> Option<FamilyMetadata<'_>> {
            match name {
                b"req" | b"req_total" => Some(FamilyMetadata {
                    kind: 1,
                    help: b"Requests.",
                    unit: b"",
                }),
                b"lat" => Some(FamilyMetadata {
                    kind: 2,
                    help: b"app",
                    unit: b"seconds",
                }),
                _ => None,
            }
        }
    }

    #[test]
    fn histograms_exemplars_metadata_and_start_timestamps_ride_with_their_series() {
        use crate::remote_write::encode::encode_histogram;
        use crate::storage::{BucketSpan, Histogram, HistogramCounts};
        let rules = Rules::default();
        let mut prep = SeriesPrep::new(&[], &rules);
        let req = prep.prepare(b"req_total{job=\"app\"}").expect("kept");
        let lat = prep.prepare(b"lat{job=\"app\"}").expect("kept");
        let other = prep.prepare(b"other{job=\"app\"}").expect("kept");
        let spans = vec![BucketSpan {
            offset: -2,
            length: 2,
        }];
        let int = Histogram {
            schema: -1,
            zero_threshold: 0.001,
            sum: 4.5,
            positive_spans: spans.clone(),
            negative_spans: vec![BucketSpan {
                offset: 1,
                length: 1,
            }],
            counts: HistogramCounts::Integer {
                count: 9,
                zero_count: 2,
                positive_deltas: vec![3, -1],
                negative_deltas: vec![1],
            },
        };
        let float = Histogram {
            schema: 2,
            zero_threshold: 0.0,
            sum: 0.0,
            positive_spans: spans,
            negative_spans: Vec::new(),
            counts: HistogramCounts::Float {
                count: 0.0,
                zero_count: 0.0,
                positive: vec![0.5, 2.0],
                negative: Vec::new(),
            },
        };
        let exemplar = prep
            .exemplar(b"{trace_id=\"abc\",app=\"lat\"}", 0.25, 1_000)
            .expect("parses");
        let bare = prep.exemplar(b"{}", 0.0, 0).expect("parses");
        let at =
            |series: &EncodedSeries, ts, value| Outgoing::with(series.clone(), ts, value, false);
        let samples = vec![
            Outgoing::new(req.clone(), 10, 1.0, false).starting(1_600),
            at(&lat, 20, Payload::Histogram(encode_histogram(&int, 2, 20))).starting(5),
            at(&req, 1_000, Payload::Exemplar(exemplar)),
            at(
                &other,
                30,
                Payload::Histogram(encode_histogram(&float, 3, 30)),
            ),
            at(&other, 0, Payload::Exemplar(bare)),
            Outgoing::new(lat, 40, 2.0, false),
        ];
        let mut ours = Vec::new();
        V2Encoder::new().write_request(&samples, &Families, &mut ours);
        let symbols: Vec<String> = [
            "",
            "__name__",
            "req_total",
            "Requests.",
            "job",
            "app",
            "lat",
            "seconds",
            "trace_id",
            "abc",
            "other",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let (req_refs, lat_refs, other_refs) =
            (vec![1, 2, 4, 5], vec![1, 6, 4, 5], vec![1, 10, 4, 5]);
        // A family's help and unit come right after its name's value.
        let counter = Some(v2::Metadata {
            r#type: 1,
            help_ref: 3,
            unit_ref: 0,
        });
        // `lat`'s help is "app", already a symbol (ref 5).
        let gauge = Some(v2::Metadata {
            r#type: 2,
            help_ref: 5,
            unit_ref: 7,
        });
        let histogram = |h: &Histogram, hint, ts| v2::Histogram {
            sum: h.sum,
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            reset_hint: hint,
            timestamp: ts,
            ..v2::Histogram::default()
        };
        let want_int = v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(9)),
            zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(2)),
            negative_spans: vec![v2::BucketSpan {
                offset: 1,
                length: 1,
            }],
            negative_deltas: vec![1],
            positive_spans: vec![v2::BucketSpan {
                offset: -2,
                length: 2,
            }],
            positive_deltas: vec![3, -1],
            start_timestamp: 5,
            ..histogram(&int, 2, 20)
        };
        let want_float = v2::Histogram {
            count: Some(v2::histogram::Count::CountFloat(0.0)),
            zero_count: Some(v2::histogram::ZeroCount::ZeroCountFloat(0.0)),
            positive_spans: vec![v2::BucketSpan {
                offset: -2,
                length: 2,
            }],
            positive_counts: vec![0.5, 2.0],
            ..histogram(&float, 3, 30)
        };
        let want = v2::Request {
            symbols,
            timeseries: vec![
                v2::TimeSeries {
                    labels_refs: req_refs.clone(),
                    samples: vec![v2::Sample {
                        value: 1.0,
                        timestamp: 10,
                        start_timestamp: 1_600,
                    }],
                    metadata: counter,
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: lat_refs.clone(),
                    histograms: vec![want_int],
                    metadata: gauge,
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: req_refs,
                    exemplars: vec![v2::Exemplar {
                        // Sorted by name: app="lat", trace_id="abc".
                        labels_refs: vec![5, 6, 8, 9],
                        value: 0.25,
                        timestamp: 1_000,
                    }],
                    metadata: counter,
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: other_refs.clone(),
                    histograms: vec![want_float],
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: other_refs,
                    exemplars: vec![v2::Exemplar::default()],
                    ..Default::default()
                },
                v2::TimeSeries {
                    labels_refs: lat_refs,
                    samples: vec![v2::Sample {
                        value: 2.0,
                        timestamp: 40,
                        start_timestamp: 0,
                    }],
                    metadata: gauge,
                    ..Default::default()
                },
            ],
        };
        let back = v2::Request::decode(ours.as_slice()).expect("decodes");
        assert_eq!(back, want);
        assert_eq!(ours, want.encode_to_vec());
    }

    #[test]
    fn a_pair_reads_back_its_name_and_value() {
        let rules = Rules::default();
        let mut prep = SeriesPrep::new(&[], &rules);
        let long = "v".repeat(300);
        let s = prep
            .prepare(format!("m{{l=\"{long}\"}}").as_bytes())
            .expect("kept");
        let tables = s.segment().read();
        let got: Vec<(&[u8], &[u8])> = tables
            .run(s.at())
            .pairs
            .iter()
            .map(|&p| name_value(tables.pair_bytes(p)))
            .collect();
        assert_eq!(
            got,
            [(&b"__name__"[..], &b"m"[..]), (&b"l"[..], long.as_bytes())]
        );
    }

    #[test]
    fn written_headers_are_read_and_their_absence_noticed() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert!(!Written::from_headers(&headers).any());
        headers.insert(
            "X-Prometheus-Remote-Write-Samples-Written",
            reqwest::header::HeaderValue::from_static("12"),
        );
        headers.insert(
            "x-prometheus-remote-write-exemplars-written",
            reqwest::header::HeaderValue::from_static("0"),
        );
        let w = Written::from_headers(&headers);
        assert!(w.any());
        assert_eq!(
            w,
            Written {
                samples: Some(12),
                histograms: None,
                exemplars: Some(0)
            }
        );
    }
}
