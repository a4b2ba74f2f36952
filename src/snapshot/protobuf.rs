//! The served body as delimited protobuf `MetricFamily` messages, for a
//! scraper whose Accept prefers them (Prometheus with native histograms):
//! every family of the merged text body, each block's lines read once into
//! its metrics, with the native histograms ([`NativeSeries`]) put into the
//! histogram metrics whose classic view the text shows. A family's
//! `_created` block becomes its metrics' `created_timestamp` fields and the
//! exemplars of its lines their `exemplar` fields, as a client library's
//! protobuf has them. Made once per snapshot and escaping, on the first
//! request that asks for it.

use std::collections::HashMap;

use prost::Message;

use super::escape::escape_name;
use super::exemplars::{Exemplars, LineExemplar};
use super::native::NativeSeries;
use super::sink::FamilyBlock;
use super::text::Text;
use crate::config::NameEscaping;
use crate::exposition::proto::pb;
use crate::exposition::{Entry, Format, MetricType, Parser, Sample};
use crate::storage::HistogramCounts;

/// Encodes `families` (blocks of `text`, relay's merged text body, whose
/// lines' exemplars are `exemplars`) with names escaped by `escaping`.
pub fn encode(
    text: &Text,
    families: &[FamilyBlock],
    native: &[NativeSeries],
    exemplars: &Exemplars,
    escaping: NameEscaping,
) -> Vec<u8> {
    let mut by_key: HashMap<String, &NativeSeries> = HashMap::with_capacity(native.len());
    for n in native {
        let line = format!("{} 0\n", n.series);
        if let Some(Ok(Entry::Sample(s))) = Parser::new(line.as_bytes(), Format::Text).next() {
            let mut key = String::new();
            key_of(&mut key, &s.name, &s);
            by_key.insert(key, n);
        }
    }
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut key = String::new();
    let mut created = Vec::new();
    let mut blocks = families.iter().peekable();
    while let Some(block) = blocks.next() {
        // `_created` samples (a gauge family in text 0.0.4) are what
        // protobuf carries as created timestamps: not a family of their
        // own, as a target's protobuf has no such series.
        if block.created.is_some() {
            continue;
        }
        created.clear();
        if let Some(c) = blocks.peek().filter(|c| c.created.is_some()) {
            created_of(text, c, &mut created);
        }
        let lines = text.get(block.lines.clone()).unwrap_or_default();
        let lines: &[u8] = &lines;
        let mut families = Families {
            block,
            escaping,
            exemplars,
            line: block.lines.start,
            done: Vec::new(),
            native: None,
        };
        let mut pending = created.iter().peekable();
        for entry in Parser::new(lines, Format::Text) {
            let sample = match entry {
                Ok(Entry::Sample(s)) => s,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode the snapshot as protobuf");
                    break;
                }
            };
            let offset =
                (sample.series_in(lines).as_ptr() as usize).wrapping_sub(lines.as_ptr() as usize);
            // A `_created` line follows its group's last line: the group
            // before this line is complete.
            while let Some((_, ms)) = pending.next_if(|(at, _)| *at <= offset) {
                families.created(*ms);
            }
            families.line = block.lines.start + offset;
            if let Some((n, suffix)) = view_line(&sample, &by_key, &mut key) {
                families.native(&sample, n, suffix);
                continue;
            }
            match block.kind {
                MetricType::Histogram | MetricType::GaugeHistogram => families.histogram(&sample),
                MetricType::Summary => families.summary(&sample),
                kind => families.single(&sample, kind),
            }
        }
        for (_, ms) in pending {
            families.created(*ms);
        }
        for family in families.done {
            // Writing into a Vec cannot fail.
            let _ = family.encode_length_delimited(&mut out);
        }
    }
    out
}

/// The `_created` samples of block `c` into `out`: for each, where
/// OpenMetrics has it among the lines of the block before (right after
/// its group) and its value in milliseconds.
fn created_of(text: &Text, c: &FamilyBlock, out: &mut Vec<(usize, i64)>) {
    let Some(at) = c.created.as_ref().map(|c| &c.at) else {
        return;
    };
    let lines = text.get(c.lines.clone()).unwrap_or_default();
    let samples = Parser::new(&lines, Format::Text).filter_map(|e| match e {
        Ok(Entry::Sample(s)) => Some(s.value),
        _ => None,
    });
    for (seconds, &at) in samples.zip(at) {
        if seconds.is_finite() {
            out.push((at, (seconds * 1000.0).round() as i64));
        }
    }
}

/// A protobuf `Timestamp` of milliseconds since the epoch.
fn timestamp(ms: i64) -> pb::Timestamp {
    pb::Timestamp {
        seconds: ms.div_euclid(1000),
        // Below 10^9: fits.
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The families one block's lines give (one, or one per name when untyped).
struct Families<'b> {
    block: &'b FamilyBlock,
    escaping: NameEscaping,
    exemplars: &'b Exemplars,
    /// Where the line being read starts in the text (its exemplar's key).
    line: usize,
    done: Vec<pb::MetricFamily>,
    /// The native histogram whose classic view lines are being read.
    native: Option<*const NativeSeries>,
}

impl Families<'_> {
    /// The created timestamp `ms` of the last metric (the group just read).
    fn created(&mut self, ms: i64) {
        let Some(metric) = self.done.last_mut().and_then(|f| f.metric.last_mut()) else {
            return;
        };
        let ts = Some(timestamp(ms));
        if let Some(c) = metric.counter.as_mut() {
            c.created_timestamp = ts;
        } else if let Some(s) = metric.summary.as_mut() {
            s.created_timestamp = ts;
        } else if let Some(h) = metric.histogram.as_mut() {
            h.created_timestamp = ts;
        }
    }

    /// The exemplar of the line being read, if it has one.
    fn exemplar(&self) -> Option<pb::Exemplar> {
        let e = self.exemplars.at_line(self.line)?;
        Some(exemplar(self.exemplars, e, self.escaping))
    }

    /// The family `name` of `kind`: the last one if it is that, else a new one.
    fn family(&mut self, name: &str, kind: MetricType) -> &mut pb::MetricFamily {
        let name = escape_name(name, self.escaping);
        let same = self.done.last().is_some_and(|f| f.name == name);
        if !same {
            let r#type = match kind {
                MetricType::Counter => pb::MetricType::Counter,
                MetricType::Gauge => pb::MetricType::Gauge,
                MetricType::Summary => pb::MetricType::Summary,
                MetricType::Histogram => pb::MetricType::Histogram,
                MetricType::GaugeHistogram => pb::MetricType::GaugeHistogram,
                MetricType::Unknown | MetricType::Info | MetricType::StateSet => {
                    pb::MetricType::Untyped
                }
            };
            self.done.push(pb::MetricFamily {
                name: name.into_owned(),
                help: self.block.help.clone().unwrap_or_default(),
                r#type: r#type as i32,
                metric: Vec::new(),
                unit: self.block.unit.clone().unwrap_or_default(),
            });
        }
        let last = self.done.len() - 1;
        &mut self.done[last]
    }

    /// A counter's, gauge's or untyped sample: one metric.
    fn single(&mut self, s: &Sample<'_>, kind: MetricType) {
        let kind = if s.name == self.block.name {
            kind
        } else {
            MetricType::Unknown
        };
        let label = labels(s, None, self.escaping);
        let mut metric = pb::Metric {
            label,
            timestamp_ms: s.timestamp_ms.unwrap_or(0),
            ..Default::default()
        };
        match kind {
            MetricType::Counter => {
                metric.counter = Some(pb::Counter {
                    value: s.value,
                    exemplar: self.exemplar(),
                    ..Default::default()
                })
            }
            MetricType::Gauge => metric.gauge = Some(pb::Gauge { value: s.value }),
            _ => metric.untyped = Some(pb::Untyped { value: s.value }),
        }
        self.family(&s.name, kind).metric.push(metric);
    }

    /// The metric of `s`'s labels (without `skip`) in the current family:
    /// the last one if it has them, else a new one.
    /// Whether it is new too.
    fn grouped(&mut self, s: &Sample<'_>, skip: &str, kind: MetricType) -> (&mut pb::Metric, bool) {
        let escaping = self.escaping;
        let label = labels(s, Some(skip), escaping);
        let name = self.block.name.clone();
        let family = self.family(&name, kind);
        let same = family.metric.last().is_some_and(|m| m.label == label);
        if !same {
            family.metric.push(pb::Metric {
                label,
                timestamp_ms: s.timestamp_ms.unwrap_or(0),
                ..Default::default()
            });
        }
        let last = family.metric.len() - 1;
        (&mut family.metric[last], !same)
    }

    fn summary(&mut self, s: &Sample<'_>) {
        let Some(suffix) = s.name.strip_prefix(self.block.name.as_str()) else {
            return self.single(s, MetricType::Unknown);
        };
        let quantile = quantile_of(s, "quantile");
        let (metric, _) = self.grouped(s, "quantile", MetricType::Summary);
        let summary = metric.summary.get_or_insert_with(Default::default);
        match (suffix, quantile) {
            ("_count", _) => summary.sample_count = s.value as u64,
            ("_sum", _) => summary.sample_sum = s.value,
            ("", Some(quantile)) => summary.quantile.push(pb::Quantile {
                quantile,
                value: s.value,
            }),
            _ => {}
        }
    }

    /// A classic histogram's sample.
    fn histogram(&mut self, s: &Sample<'_>) {
        let kind = self.block.kind;
        let Some(suffix) = s.name.strip_prefix(self.block.name.as_str()) else {
            return self.single(s, MetricType::Unknown);
        };
        let le = quantile_of(s, "le");
        let exemplar = self.exemplar();
        let (metric, _) = self.grouped(s, "le", kind);
        let h = metric.histogram.get_or_insert_with(Default::default);
        match (suffix, le) {
            ("_count", _) => set_count(h, s.value),
            ("_sum", _) => h.sample_sum = s.value,
            ("_bucket", Some(upper_bound)) => h.bucket.push(pb::Bucket {
                exemplar,
                ..bucket(upper_bound, s.value)
            }),
            _ => {}
        }
    }

    /// A line of native histogram `n`'s classic view: its `_count` gives
    /// the native metric; its buckets are kept when they are the target's
    /// (a lone `+Inf` is the view's own, which client_golang leaves out too).
    fn native(&mut self, s: &Sample<'_>, n: &NativeSeries, suffix: &str) {
        let base = &s.name[..s.name.len() - suffix.len()];
        let kind = match self.block.kind {
            MetricType::GaugeHistogram => MetricType::GaugeHistogram,
            _ => MetricType::Histogram,
        };
        match suffix {
            "_count" => {
                let label = labels(s, Some("le"), self.escaping);
                let mut h = pb::Histogram::default();
                fill_native(&mut h, n);
                self.family(base, kind).metric.push(pb::Metric {
                    label,
                    histogram: Some(h),
                    timestamp_ms: n.timestamp_ms.unwrap_or(0),
                    ..Default::default()
                });
                self.native = Some(n as *const NativeSeries);
            }
            "_bucket" if n.classic && self.native == Some(n as *const NativeSeries) => {
                let upper_bound = quantile_of(s, "le").unwrap_or(f64::INFINITY);
                let exemplar = self.exemplar();
                let metric = self
                    .done
                    .last_mut()
                    .and_then(|f| f.metric.last_mut())
                    .and_then(|m| m.histogram.as_mut());
                if let Some(h) = metric {
                    h.bucket.push(pb::Bucket {
                        exemplar,
                        ..bucket(upper_bound, s.value)
                    });
                }
            }
            _ => {}
        }
    }
}

/// Exemplar `e` of `all`, its label names escaped by `escaping`.
fn exemplar(all: &Exemplars, e: &LineExemplar, escaping: NameEscaping) -> pb::Exemplar {
    // Its labels are kept rendered (`{a="b"}`): read back as a line's.
    let line = format!("e{} 0\n", all.labels(e));
    let label = match Parser::new(line.as_bytes(), Format::Text).next() {
        Some(Ok(Entry::Sample(s))) => labels(&s, None, escaping),
        _ => Vec::new(),
    };
    pb::Exemplar {
        label,
        value: e.value,
        timestamp: e.timestamp_ms.map(timestamp),
    }
}

/// A classic bucket: an integer count when it is one.
fn bucket(upper_bound: f64, value: f64) -> pb::Bucket {
    let mut bucket = pb::Bucket {
        upper_bound,
        ..Default::default()
    };
    if value.fract() == 0.0 && value >= 0.0 {
        bucket.cumulative_count = value as u64;
    } else {
        bucket.cumulative_count_float = value;
    }
    bucket
}

/// The native histogram a line shows the classic view of, and the line's
/// suffix: its name without `_count`, `_sum` or `_bucket` and its labels
/// without `le` are the histogram's series.
fn view_line<'n>(
    s: &Sample<'_>,
    native: &HashMap<String, &'n NativeSeries>,
    key: &mut String,
) -> Option<(&'n NativeSeries, &'static str)> {
    if native.is_empty() {
        return None;
    }
    let suffix = ["_count", "_sum", "_bucket"]
        .into_iter()
        .find(|suffix| s.name.len() > suffix.len() && s.name.ends_with(suffix))?;
    key_of(key, &s.name[..s.name.len() - suffix.len()], s);
    native.get(key.as_str()).map(|n| (*n, suffix))
}

/// A series' key: its name and labels in order, without `le`.
fn key_of(key: &mut String, name: &str, s: &Sample<'_>) {
    key.clear();
    key.push_str(name);
    for (n, v) in s.labels().filter(|(n, _)| *n != "le") {
        key.push('\0');
        key.push_str(&n);
        key.push('=');
        key.push_str(&v);
    }
}

/// The native histogram's fields into `h`.
fn fill_native(h: &mut pb::Histogram, n: &NativeSeries) {
    let native = &n.histogram;
    h.schema = native.schema;
    h.zero_threshold = native.zero_threshold;
    h.sample_sum = native.sum;
    let spans = |spans: &[crate::storage::BucketSpan]| {
        spans
            .iter()
            .map(|s| pb::BucketSpan {
                offset: s.offset,
                length: s.length,
            })
            .collect::<Vec<_>>()
    };
    h.positive_span = spans(&native.positive_spans);
    h.negative_span = spans(&native.negative_spans);
    match &native.counts {
        HistogramCounts::Integer {
            count,
            zero_count,
            positive_deltas,
            negative_deltas,
        } => {
            h.sample_count = *count;
            h.zero_count = *zero_count;
            h.positive_delta = positive_deltas.clone();
            h.negative_delta = negative_deltas.clone();
        }
        HistogramCounts::Float {
            count,
            zero_count,
            positive,
            negative,
        } => {
            h.sample_count_float = *count;
            h.zero_count_float = *zero_count;
            h.positive_count = positive.clone();
            h.negative_count = negative.clone();
        }
    }
    if h.positive_span.is_empty() && h.negative_span.is_empty() && h.zero_threshold == 0.0 {
        // An empty native histogram carries a no-op span, or a scraper
        // would read it as a classic one (client_golang does the same).
        h.positive_span.push(pb::BucketSpan {
            offset: 0,
            length: 0,
        });
    }
}

/// A classic `_count`: an integer when it is one.
fn set_count(h: &mut pb::Histogram, value: f64) {
    if value.fract() == 0.0 && value >= 0.0 {
        h.sample_count = value as u64;
    } else {
        h.sample_count_float = value;
    }
}

/// The float value of label `name` (`le`, `quantile`).
fn quantile_of(s: &Sample<'_>, name: &str) -> Option<f64> {
    let (_, value) = s.labels().find(|(n, _)| *n == name)?;
    match value.as_ref() {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        v => v.parse().ok(),
    }
}

/// `s`'s labels (without `skip`), names escaped.
fn labels(s: &Sample<'_>, skip: Option<&str>, escaping: NameEscaping) -> Vec<pb::LabelPair> {
    s.labels()
        .filter(|(name, _)| Some(&**name) != skip)
        .map(|(name, value)| pb::LabelPair {
            name: escape_name(&name, escaping).into_owned(),
            value: value.into_owned(),
        })
        .collect()
}
