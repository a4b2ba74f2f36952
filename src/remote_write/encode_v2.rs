//! Remote write 2.0 (`io.prometheus.write.v2.Request`, spec 2.0-rc.4): the
//! same batch of [`Outgoing`] samples as 1.0's encoder takes, written
//! straight into protobuf wire bytes, byte for byte what prost encodes for
//! the same [`prompb_v2::Request`](super::prompb_v2::Request) (tested).
//!
//! Each request carries its own symbol table: every string once, `""`
//! first, and each series refers to its labels' names and values by index.
//! The strings come out of the series' interned label pairs (one 1.0
//! `Label` field each, see [`Pair`]), so a pair's refs are looked up once
//! per request by the pair's precomputed hash and reused for every other
//! series that shares it. The encoder keeps its tables and buffers between
//! requests: a request allocates nothing per sample once they have grown.
//!
//! Left for the sample kinds that are being added to `Outgoing` (issue 22
//! item 1): native histograms (`TimeSeries` field 3), exemplars (field 4),
//! metadata (field 5: type, help and unit refs) and created timestamps
//! (`Sample.start_timestamp`, field 3); the places are marked `KINDS:`
//! below, and `proto/write_v2.proto` has all their fields.

use std::hash::BuildHasher;

use super::encode::{Outgoing, Pair};
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

/// A label pair of this request with its name's and value's refs. The
/// pair is known by the address of its bytes: every pair of a request is
/// alive (held by its samples) while the request is built, so an address
/// names one pair, and no reference count is touched. Equal pairs of two
/// segments are two entries with the same refs.
struct PairRefs {
    hash: u64,
    at: usize,
    name: u32,
    value: u32,
}

/// Builds 2.0 requests; one per shard, reused for each of its requests.
#[derive(Default)]
pub struct V2Encoder {
    /// The `symbols` fields, encoded (tag, length, bytes), in ref order.
    symbols: Vec<u8>,
    strings: hashbrown::HashTable<Symbol>,
    n_symbols: u32,
    pairs: hashbrown::HashTable<PairRefs>,
    /// The `timeseries` fields, encoded, until the symbols are complete.
    series: Vec<u8>,
    /// One series' label refs.
    refs: Vec<u32>,
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
    /// compressed): the symbols, then one `TimeSeries` per sample, as
    /// Prometheus sends them.
    pub fn write_request(&mut self, samples: &[Outgoing], out: &mut Vec<u8>) {
        self.symbols.clear();
        self.strings.clear();
        self.pairs.clear();
        self.series.clear();
        self.n_symbols = 0;
        self.symbol(b"");
        for s in samples {
            // KINDS: histograms and exemplars are not written in 2.0 yet.
            let Some(value) = s.value.float() else {
                continue;
            };
            self.refs.clear();
            for pair in s.series.pairs() {
                let (name, value) = self.pair_refs(pair);
                self.refs.push(name);
                self.refs.push(value);
            }
            let refs_len: usize = self.refs.iter().map(|&r| varint::len(r.into())).sum();
            // Sample: value (double, 1), timestamp (int64, 2) and
            // start_timestamp (int64, 3), each left out when zero as proto3
            // encoders do (-0.0 too, as prost and 1.0's encoder).
            // KINDS: start_timestamp from the series' created timestamp
            // once `Outgoing` carries it; 0 (left out) until then.
            let start_ts: i64 = 0;
            let sample_len =
                scalar_len(value != 0.0, 8) + int_len(s.timestamp_ms) + int_len(start_ts);
            let series_len = field_len(refs_len) + field_len(sample_len);
            // KINDS: histograms (field 3), exemplars (field 4) and
            // metadata (field 5, type/help_ref/unit_ref) add their lengths
            // here and are written after the sample below; metadata is
            // left out (type UNSPECIFIED) until `Outgoing` carries it.
            let out = &mut self.series;
            out.push(0x2a);
            varint::put(out, series_len as u64);
            if refs_len > 0 {
                out.push(0x0a);
                varint::put(out, refs_len as u64);
                for &r in &self.refs {
                    varint::put(out, r.into());
                }
            }
            out.push(0x12);
            varint::put(out, sample_len as u64);
            if value != 0.0 {
                out.push(0x09);
                out.extend_from_slice(&value.to_bits().to_le_bytes());
            }
            if s.timestamp_ms != 0 {
                out.push(0x10);
                varint::put(out, s.timestamp_ms as u64);
            }
            if start_ts != 0 {
                out.push(0x18);
                varint::put(out, start_ts as u64);
            }
        }
        out.reserve(self.symbols.len() + self.series.len());
        out.extend_from_slice(&self.symbols);
        out.extend_from_slice(&self.series);
    }

    /// The refs of a pair's name and value, added to the table if new.
    fn pair_refs(&mut self, pair: &Pair) -> (u32, u32) {
        let hash = pair.hash();
        let at = pair.bytes().as_ptr() as usize;
        if let Some(p) = self.pairs.find(hash, |p| p.at == at) {
            return (p.name, p.value);
        }
        let (name, value) = pair.name_value();
        let refs = (self.symbol(name), self.symbol(value));
        self.pairs.insert_unique(
            hash,
            PairRefs {
                hash,
                at,
                name: refs.0,
                value: refs.1,
            },
            |p| p.hash,
        );
        refs
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

/// Bytes of a length-delimited field holding `len` bytes (tag, length, payload).
fn field_len(len: usize) -> usize {
    1 + varint::len(len as u64) + len
}

/// Bytes of a fixed-size scalar field, 0 when left out.
fn scalar_len(present: bool, size: usize) -> usize {
    if present {
        1 + size
    } else {
        0
    }
}

/// Bytes of an int64 field, 0 when it is zero (left out).
fn int_len(v: i64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint::len(v as u64)
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
    use crate::remote_write::encode::SeriesPrep;
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
        encoder.write_request(&samples[..1], &mut ours);
        ours.clear();
        encoder.write_request(&samples, &mut ours);
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
    fn a_pair_reads_back_its_name_and_value() {
        let rules = Rules::default();
        let mut prep = SeriesPrep::new(&[], &rules);
        let long = "v".repeat(300);
        let s = prep
            .prepare(format!("m{{l=\"{long}\"}}").as_bytes())
            .expect("kept");
        let got: Vec<(&[u8], &[u8])> = s.pairs().iter().map(Pair::name_value).collect();
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
