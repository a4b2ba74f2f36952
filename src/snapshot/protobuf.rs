//! The served body as delimited protobuf `MetricFamily` messages, for a
//! scraper whose Accept prefers them (Prometheus with native histograms):
//! every family of the merged text body, each block's lines read once into
//! its metrics, with the native histograms ([`NativeSeries`]) put into the
//! histogram metrics whose classic view the text shows. Made once per
//! snapshot and escaping, on the first request that asks for it.

use std::collections::HashMap;

use prost::Message;

use super::escape::escape_name;
use super::native::NativeSeries;
use super::sink::FamilyBlock;
use crate::config::NameEscaping;
use crate::exposition::proto::pb;
use crate::exposition::{Entry, Format, MetricType, Parser, Sample};
use crate::storage::HistogramCounts;

/// Encodes `families` (blocks of `text`, relay's merged text body) with
/// names escaped by `escaping`.
pub fn encode(
    text: &[u8],
    families: &[FamilyBlock],
    native: &[NativeSeries],
    escaping: NameEscaping,
) -> Vec<u8> {
    let mut by_key: HashMap<String, &NativeSeries> = HashMap::with_capacity(native.len());
    for n in native {
        let line = format!("{} 0\n", n.series);
        if let Some(Ok(Entry::Sample(s))) = Parser::new(line.as_bytes(), Format::Text).next() {
            let mut key = String::new();
            key_of(&mut key, s.name, &s);
            by_key.insert(key, n);
        }
    }
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut key = String::new();
    for block in families {
        // `_created` samples (a gauge family in text 0.0.4) are what
        // protobuf carries as created timestamps, which Prometheus 2.x
        // does not read: left out, as a target's protobuf has no such series.
        if block.created.is_some() {
            continue;
        }
        let lines = text.get(block.lines.clone()).unwrap_or_default();
        let mut families = Families {
            block,
            escaping,
            done: Vec::new(),
            native: None,
        };
        for entry in Parser::new(lines, Format::Text) {
            let sample = match entry {
                Ok(Entry::Sample(s)) => s,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode the snapshot as protobuf");
                    break;
                }
            };
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
        for family in families.done {
            // Writing into a Vec cannot fail.
            let _ = family.encode_length_delimited(&mut out);
        }
    }
    out
}

/// The families one block's lines give (one, or one per name when untyped).
struct Families<'b> {
    block: &'b FamilyBlock,
    escaping: NameEscaping,
    done: Vec<pb::MetricFamily>,
    /// The native histogram whose classic view lines are being read.
    native: Option<*const NativeSeries>,
}

impl Families<'_> {
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
                    ..Default::default()
                })
            }
            MetricType::Gauge => metric.gauge = Some(pb::Gauge { value: s.value }),
            _ => metric.untyped = Some(pb::Untyped { value: s.value }),
        }
        self.family(s.name, kind).metric.push(metric);
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
        let (metric, _) = self.grouped(s, "le", kind);
        let h = metric.histogram.get_or_insert_with(Default::default);
        match (suffix, le) {
            ("_count", _) => set_count(h, s.value),
            ("_sum", _) => h.sample_sum = s.value,
            ("_bucket", Some(upper_bound)) => h.bucket.push(bucket(upper_bound, s.value)),
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
                let metric = self
                    .done
                    .last_mut()
                    .and_then(|f| f.metric.last_mut())
                    .and_then(|m| m.histogram.as_mut());
                if let Some(h) = metric {
                    h.bucket.push(bucket(upper_bound, s.value));
                }
            }
            _ => {}
        }
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
        key.push_str(n);
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
        .filter(|(name, _)| Some(*name) != skip)
        .map(|(name, value)| pb::LabelPair {
            name: escape_name(name, escaping).into_owned(),
            value: value.into_owned(),
        })
        .collect()
}
