//! The protobuf exposition format: length-delimited `MetricFamily` messages
//! (client_model's `io.prometheus.client`), the only format that carries
//! native histograms.
//!
//! A body is a run of frames, each a varint length and that many bytes of
//! one family; [`next_frame`] finds them as the body arrives, refusing a
//! length past the body size limit before any of it is buffered. Each
//! family is decoded by [`wire`], which borrows from the body (no
//! allocation per sample), and turned into the series Prometheus's
//! `textparse.ProtobufParser` makes of it ([`for_each_sample`]): counters,
//! gauges and untyped by their own name (no `_total` added); summaries as
//! `_count`, `_sum` and one series per `quantile`; classic histograms as
//! `_count`, `_sum` and `_bucket` with `le` (plus a `+Inf` bucket when the
//! target left it out); `le` and `quantile` values written as Prometheus
//! writes them from floats (`1.0`, not `1`). A native histogram becomes one
//! [`Histogram`] sample when [`Options::native`] asks for it, else its
//! classic view (`_count`, `_sum`, buckets or a lone `+Inf`).
//!
//! ```
//! use prost::Message;
//! use relay::exposition::proto::{self, pb, Options, SampleValue};
//!
//! let family = pb::MetricFamily {
//!     name: "requests_total".into(),
//!     r#type: pb::MetricType::Counter as i32,
//!     metric: vec![pb::Metric {
//!         counter: Some(pb::Counter { value: 5.0, ..Default::default() }),
//!         ..Default::default()
//!     }],
//!     ..Default::default()
//! };
//! let body = family.encode_length_delimited_to_vec();
//! let frame = proto::next_frame(&body, 0, 0, false).unwrap().unwrap();
//! let family = proto::decode(&body, frame).unwrap();
//! let mut seen = Vec::new();
//! proto::for_each_sample(&family, frame, Options::default(), &mut proto::Scratch::default(), |s| {
//!     if let SampleValue::Float(v) = s.value {
//!         seen.push((s.name.to_owned(), v));
//!     }
//!     Ok::<_, proto::ProtoError>(())
//! })
//! .unwrap();
//! assert_eq!(seen, [("requests_total".to_owned(), 5.0)]);
//! ```

use std::borrow::Cow;

use super::histogram::{BucketSpan, Histogram, HistogramCounts};
use super::model::{is_label_name, is_metric_name, Labels, MetricType};

pub mod wire;

/// The client_model messages, generated from `proto/metrics.proto`: what
/// tests and benchmarks encode bodies with (scrapes decode with [`wire`]).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.client.rs"));
}

/// The Content-Type (without parameters) of the delimited protobuf format.
pub const CONTENT_TYPE: &str = super::parse::PROTOBUF_MEDIA_TYPE;

/// Which views of a histogram to produce, as Prometheus's
/// `scrape_native_histograms` and `always_scrape_classic_histograms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Native histograms become [`SampleValue::Histogram`] samples (off, as
    /// Prometheus 3's default: they are then read as classic histograms).
    pub native: bool,
    /// With `native`, a histogram that has classic buckets gives its classic
    /// series as well (off, as Prometheus 3's default).
    pub classic: bool,
}

/// Where a frame is: one delimited message of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// 1-based number of the message in the body.
    pub number: usize,
    /// Byte offset of its length prefix in the whole body.
    pub offset: usize,
    /// The message's bytes within the buffer given to [`next_frame`].
    pub start: usize,
    pub end: usize,
}

/// A malformed protobuf body: which message, at which byte, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {number} at byte {offset}{family}: {message}")]
pub struct ProtoError {
    /// 1-based number of the delimited message.
    pub number: usize,
    /// Byte offset of its length prefix in the body.
    pub offset: usize,
    /// ` (metric family "name")` once the name is known, else empty.
    pub family: String,
    pub message: String,
}

impl ProtoError {
    fn at(frame: Frame, family: &str, message: impl Into<String>) -> ProtoError {
        ProtoError {
            number: frame.number,
            offset: frame.offset,
            family: if family.is_empty() {
                String::new()
            } else {
                format!(" (metric family {family:?})")
            },
            message: message.into(),
        }
    }
}

/// The longest varint: 10 bytes for 64 bits.
const MAX_VARINT: usize = 10;

/// Finds the next frame at the start of `buf`, which begins at byte
/// `offset` of the body and is message `number - 1`'s successor. Ok(None)
/// when `buf` holds only part of it and `more` input follows. A length
/// that would take the body past `limit` bytes (0: no limit) is refused as
/// soon as its prefix is read, before anything is buffered; so is a broken
/// prefix, and a message the body ends inside.
pub fn next_frame(
    buf: &[u8],
    offset: usize,
    limit: usize,
    more: bool,
) -> Result<Option<Frame>, ProtoError> {
    next_numbered_frame(buf, offset, 1, limit, more)
}

/// [`next_frame`] for message `number` (1-based) of the body.
pub fn next_numbered_frame(
    buf: &[u8],
    offset: usize,
    number: usize,
    limit: usize,
    more: bool,
) -> Result<Option<Frame>, ProtoError> {
    let at = Frame {
        number,
        offset,
        start: 0,
        end: 0,
    };
    let mut pos = 0;
    let Some(len) = crate::varint::get(buf, &mut pos) else {
        if buf.len() >= MAX_VARINT {
            return Err(ProtoError::at(at, "", "invalid varint length prefix"));
        }
        if more {
            return Ok(None);
        }
        return Err(ProtoError::at(
            at,
            "",
            format!("the body ends inside a length prefix ({} bytes)", buf.len()),
        ));
    };
    let total = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(pos))
        .and_then(|l| l.checked_add(offset));
    match total {
        Some(total) if limit == 0 || total <= limit => {}
        _ => {
            return Err(ProtoError::at(
                at,
                "",
                format!("message length {len} goes past the body size limit of {limit} bytes"),
            ))
        }
    }
    // The check above bounds len by usize.
    let end = pos + len as usize;
    if end > buf.len() {
        if more {
            return Ok(None);
        }
        return Err(ProtoError::at(
            at,
            "",
            format!(
                "truncated message: length prefix says {len} bytes, the body ends after {}",
                buf.len() - pos
            ),
        ));
    }
    Ok(Some(Frame {
        start: pos,
        end,
        ..at
    }))
}

/// Decodes the family of `frame` in `buf` (its metrics are decoded by
/// [`for_each_sample`], one at a time).
pub fn decode(buf: &[u8], frame: Frame) -> Result<wire::MetricFamily<'_>, ProtoError> {
    let bytes = buf.get(frame.start..frame.end).unwrap_or_default();
    wire::MetricFamily::decode(bytes).map_err(|e| ProtoError::at(frame, "", e))
}

/// The relay type of a family, or None for a type number Prometheus does
/// not know (it fails the scrape).
pub fn metric_type(family: &wire::MetricFamily<'_>) -> Option<MetricType> {
    Some(match pb::MetricType::try_from(family.r#type).ok()? {
        pb::MetricType::Counter => MetricType::Counter,
        pb::MetricType::Gauge => MetricType::Gauge,
        pb::MetricType::Summary => MetricType::Summary,
        pb::MetricType::Untyped => MetricType::Unknown,
        pb::MetricType::Histogram => MetricType::Histogram,
        pb::MetricType::GaugeHistogram => MetricType::GaugeHistogram,
    })
}

/// What a sample holds.
#[derive(Debug, Clone, Copy)]
pub enum SampleValue<'a> {
    Float(f64),
    Histogram(&'a Histogram),
}

/// An exemplar of a sample, its labels rendered `{a="b",...}`.
#[derive(Debug, Clone, Copy)]
pub struct ProtoExemplar<'a> {
    pub labels: &'a str,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// One series' sample of a family, borrowing from the decoded family and
/// the [`Scratch`].
#[derive(Debug, Clone, Copy)]
pub struct ProtoSample<'a> {
    /// The series' name: the family's, or it with `_count`, `_sum`, `_bucket`.
    pub name: &'a str,
    /// The metric's own labels, in the target's order.
    pub labels: &'a [wire::LabelPair<'a>],
    /// `le` or `quantile` and its value, for buckets and quantiles.
    pub extra: Option<(&'static str, &'a str)>,
    pub value: SampleValue<'a>,
    /// The metric's timestamp (0 in the message means none, as Prometheus).
    pub timestamp_ms: Option<i64>,
    /// The created (start) timestamp of counters, summaries and histograms.
    pub start_timestamp_ms: Option<i64>,
    pub exemplar: Option<ProtoExemplar<'a>>,
}

impl<'a> ProtoSample<'a> {
    /// Appends `__name__` and the sample's labels to `out`.
    pub fn labels_into(&self, out: &mut Labels<'a>) {
        out.push(super::METRIC_NAME, self.name);
        for l in self.labels {
            out.push(l.name, l.value);
        }
        if let Some((name, value)) = self.extra {
            out.push(name, value);
        }
    }

    /// Writes the series' key into `out` (cleared first): the form a text
    /// line would write it in, `name{a="b",...` without the closing brace,
    /// names quoted when they are not legacy names, so that two label sets
    /// never share a key and a series keeps its key from one scrape to
    /// the next. Allocates nothing once `out` has grown.
    pub fn key_into(&self, out: &mut Vec<u8>) {
        out.clear();
        if is_metric_name(self.name) {
            out.extend_from_slice(self.name.as_bytes());
        } else {
            quoted(out, self.name);
        }
        let mut first = true;
        let pairs = self
            .labels
            .iter()
            .map(|l| (l.name, l.value))
            .chain(self.extra);
        for (name, value) in pairs {
            out.push(if first { b'{' } else { b',' });
            first = false;
            if is_label_name(name) {
                out.extend_from_slice(name.as_bytes());
            } else {
                quoted(out, name);
            }
            out.push(b'=');
            quoted(out, value);
        }
    }
}

/// Writes `s` in double quotes with `\`, `"` and newline escaped.
fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    super::render::escape_label_value(out, s);
    out.push(b'"');
}

/// Buffers reused from family to family: the series names with suffixes,
/// the `le`/`quantile` values, exemplar labels and the native histogram.
#[derive(Debug, Default)]
pub struct Scratch {
    name: String,
    /// `le` texts by bucket position and `quantile` texts by position: a
    /// family's metrics mostly share their bounds, so each is formatted
    /// once, not once per series and scrape.
    bounds: Vec<(u64, Vec<u8>)>,
    quantiles: Vec<(u64, Vec<u8>)>,
    exemplar: Vec<u8>,
    histogram: Option<Histogram>,
}

/// Hands every sample of `family` (from `frame`) to `visit`, in the order
/// Prometheus's parser yields them; fails on what Prometheus refuses: an
/// empty or unknown-typed family, duplicate or reserved label names, an
/// empty label name, native histogram spans that do not match its buckets.
/// Families without metrics are skipped, as Prometheus skips them.
pub fn for_each_sample<'f, E: From<ProtoError>>(
    family: &wire::MetricFamily<'f>,
    frame: Frame,
    options: Options,
    scratch: &mut Scratch,
    mut visit: impl for<'s> FnMut(&ProtoSample<'s>) -> Result<(), E>,
) -> Result<(), E> {
    if family.metric.is_empty() {
        return Ok(());
    }
    let name = family.name;
    let fail = |message: String| ProtoError::at(frame, name, message);
    if name.is_empty() {
        return Err(fail("empty metric name".into()).into());
    }
    let Some(kind) = metric_type(family) else {
        return Err(fail(format!("unknown metric type {}", family.r#type)).into());
    };
    let mut metric = wire::Metric::default();
    for bytes in &family.metric {
        metric.decode_into(bytes).map_err(&fail)?;
        let metric = &metric;
        check_labels(metric, kind).map_err(&fail)?;
        let timestamp_ms = (metric.timestamp_ms != 0).then_some(metric.timestamp_ms);
        let base = ProtoSample {
            name,
            labels: &metric.label,
            extra: None,
            value: SampleValue::Float(0.0),
            timestamp_ms,
            start_timestamp_ms: None,
            exemplar: None,
        };
        match kind {
            MetricType::Counter => {
                let exemplar = metric
                    .counter_exemplar
                    .as_ref()
                    .and_then(|e| exemplar(&mut scratch.exemplar, e));
                visit(&ProtoSample {
                    value: SampleValue::Float(metric.counter),
                    start_timestamp_ms: metric.counter_created,
                    exemplar: exemplar.map(|(value, ts)| ProtoExemplar {
                        labels: exemplar_text(&scratch.exemplar),
                        value,
                        timestamp_ms: ts,
                    }),
                    ..base
                })?;
            }
            MetricType::Gauge => {
                let value = metric.gauge;
                visit(&ProtoSample {
                    value: SampleValue::Float(value),
                    ..base
                })?;
            }
            MetricType::Summary => {
                let base = ProtoSample {
                    start_timestamp_ms: metric.summary_created,
                    ..base
                };
                let count = metric.summary_count as f64;
                count_and_sum(
                    name,
                    count,
                    metric.summary_sum,
                    base,
                    &mut scratch.name,
                    &mut visit,
                )?;
                for (i, q) in metric.quantile.iter().enumerate() {
                    let text = formatted(&mut scratch.quantiles, i, q.quantile);
                    visit(&ProtoSample {
                        extra: Some(("quantile", text)),
                        value: SampleValue::Float(q.value),
                        ..base
                    })?;
                }
            }
            MetricType::Histogram | MetricType::GaugeHistogram => {
                let h = &metric.histogram;
                let base = ProtoSample {
                    start_timestamp_ms: h.created_timestamp,
                    ..base
                };
                let native = options.native && is_native(h);
                if native {
                    let histogram = scratch.histogram.get_or_insert_with(empty_histogram);
                    native_into(h, histogram).map_err(&fail)?;
                    let exemplar =
                        native_exemplar(h).and_then(|e| exemplar(&mut scratch.exemplar, &e));
                    let histogram = &*histogram;
                    visit(&ProtoSample {
                        value: SampleValue::Histogram(histogram),
                        exemplar: exemplar.map(|(value, ts)| ProtoExemplar {
                            labels: exemplar_text(&scratch.exemplar),
                            value,
                            timestamp_ms: ts,
                        }),
                        ..base
                    })?;
                }
                if !native || (options.classic && !h.bucket.is_empty()) {
                    classic(h, name, base, scratch, &mut visit)?;
                }
            }
            MetricType::Unknown | MetricType::Info | MetricType::StateSet => {
                let value = metric.untyped;
                visit(&ProtoSample {
                    value: SampleValue::Float(value),
                    ..base
                })?;
            }
        }
    }
    Ok(())
}

/// The classic series of a histogram: `_count`, `_sum`, the buckets and a
/// `+Inf` bucket if the target left it out.
fn classic<'f, E>(
    h: &'f wire::Histogram<'f>,
    name: &'f str,
    base: ProtoSample<'f>,
    scratch: &mut Scratch,
    visit: &mut impl for<'s> FnMut(&ProtoSample<'s>) -> Result<(), E>,
) -> Result<(), E> {
    let count = if h.sample_count_float > 0.0 {
        h.sample_count_float
    } else {
        h.sample_count as f64
    };
    count_and_sum(name, count, h.sample_sum, base, &mut scratch.name, visit)?;
    suffixed(&mut scratch.name, name, "_bucket");
    let mut inf = false;
    for (i, b) in h.bucket.iter().enumerate() {
        let value = if b.cumulative_count_float > 0.0 {
            b.cumulative_count_float
        } else {
            b.cumulative_count as f64
        };
        inf = b.upper_bound == f64::INFINITY;
        let le = formatted(&mut scratch.bounds, i, b.upper_bound);
        let ex = b
            .exemplar
            .as_ref()
            .and_then(|e| exemplar(&mut scratch.exemplar, e));
        visit(&ProtoSample {
            name: &scratch.name,
            extra: Some(("le", le)),
            value: SampleValue::Float(value),
            exemplar: ex.map(|(value, ts)| ProtoExemplar {
                labels: exemplar_text(&scratch.exemplar),
                value,
                timestamp_ms: ts,
            }),
            ..base
        })?;
        if inf {
            // Prometheus stops at the +Inf bucket.
            return Ok(());
        }
    }
    if !inf {
        visit(&ProtoSample {
            name: &scratch.name,
            extra: Some(("le", "+Inf")),
            value: SampleValue::Float(count),
            ..base
        })?;
    }
    Ok(())
}

/// Labels Prometheus would refuse: an empty name, `__name__`, a name given
/// twice, and the label the series' suffix adds (`le`, `quantile`).
fn check_labels(metric: &wire::Metric<'_>, kind: MetricType) -> Result<(), String> {
    let reserved = match kind {
        MetricType::Histogram | MetricType::GaugeHistogram => "le",
        MetricType::Summary => "quantile",
        _ => "",
    };
    for (i, l) in metric.label.iter().enumerate() {
        if l.name.is_empty() {
            return Err("empty label name".into());
        }
        if l.name == super::METRIC_NAME || l.name == reserved {
            return Err(format!("label {:?} is reserved here", l.name));
        }
        if metric.label[..i].iter().any(|o| o.name == l.name) {
            return Err(format!("duplicate label name {:?}", l.name));
        }
    }
    Ok(())
}

/// Prometheus's `isNativeHistogram`: spans, a zero threshold or a zero
/// count (an empty native histogram carries a no-op span).
pub fn is_native(h: &wire::Histogram<'_>) -> bool {
    !h.positive_span.is_empty()
        || !h.negative_span.is_empty()
        || h.zero_threshold > 0.0
        || h.zero_count > 0
        || h.zero_count_float > 0.0
}

fn empty_histogram() -> Histogram {
    Histogram {
        schema: 0,
        zero_threshold: 0.0,
        sum: 0.0,
        positive_spans: Vec::new(),
        negative_spans: Vec::new(),
        counts: HistogramCounts::Integer {
            count: 0,
            zero_count: 0,
            positive_deltas: Vec::new(),
            negative_deltas: Vec::new(),
        },
    }
}

/// Decodes a native histogram into `out`, reusing its vectors: float counts
/// when the sample or zero count is given as a float (as Prometheus), else
/// integer deltas. The spans must account for every bucket.
fn native_into(h: &wire::Histogram<'_>, out: &mut Histogram) -> Result<(), String> {
    let float = h.sample_count_float > 0.0 || h.zero_count_float > 0.0;
    let (positive, negative) = if float {
        (h.positive_count.len(), h.negative_count.len())
    } else {
        (h.positive_delta.len(), h.negative_delta.len())
    };
    spans_match("positive", &h.positive_span, positive)?;
    spans_match("negative", &h.negative_span, negative)?;
    out.schema = h.schema;
    out.zero_threshold = h.zero_threshold;
    out.sum = h.sample_sum;
    let spans = |to: &mut Vec<BucketSpan>, from: &[wire::BucketSpan]| {
        to.clear();
        to.extend(from.iter().map(|s| BucketSpan {
            offset: s.offset,
            length: s.length,
        }));
    };
    spans(&mut out.positive_spans, &h.positive_span);
    spans(&mut out.negative_spans, &h.negative_span);
    match (&mut out.counts, float) {
        (
            HistogramCounts::Integer {
                count,
                zero_count,
                positive_deltas,
                negative_deltas,
            },
            false,
        ) => {
            *count = h.sample_count;
            *zero_count = h.zero_count;
            copy(positive_deltas, &h.positive_delta);
            copy(negative_deltas, &h.negative_delta);
        }
        (
            HistogramCounts::Float {
                count,
                zero_count,
                positive,
                negative,
            },
            true,
        ) => {
            *count = h.sample_count_float;
            *zero_count = h.zero_count_float;
            copy(positive, &h.positive_count);
            copy(negative, &h.negative_count);
        }
        (counts, false) => {
            *counts = HistogramCounts::Integer {
                count: h.sample_count,
                zero_count: h.zero_count,
                positive_deltas: h.positive_delta.clone(),
                negative_deltas: h.negative_delta.clone(),
            }
        }
        (counts, true) => {
            *counts = HistogramCounts::Float {
                count: h.sample_count_float,
                zero_count: h.zero_count_float,
                positive: h.positive_count.clone(),
                negative: h.negative_count.clone(),
            }
        }
    }
    Ok(())
}

fn copy<T: Copy>(to: &mut Vec<T>, from: &[T]) {
    to.clear();
    to.extend_from_slice(from);
}

/// Prometheus's `checkProtoSpanBucketConsistency`.
fn spans_match(side: &str, spans: &[wire::BucketSpan], buckets: usize) -> Result<(), String> {
    let total: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    if total != buckets as u64 {
        return Err(format!(
            "native histogram, {side} side: spans require {total} buckets, have {buckets}"
        ));
    }
    Ok(())
}

/// The exemplar a native histogram sample carries: the first of its own
/// exemplars with a timestamp, else the first bucket exemplar with one
/// (Prometheus drops native histogram exemplars without a timestamp).
fn native_exemplar<'a>(h: &wire::Histogram<'a>) -> Option<wire::Exemplar<'a>> {
    h.exemplars
        .iter()
        .copied()
        .find(|e| e.timestamp_ms.is_some())
        .or_else(|| {
            h.bucket
                .iter()
                .filter_map(|b| b.exemplar)
                .find(|e| e.timestamp_ms.is_some())
        })
}

/// Renders an exemplar's labels into `out` as `{a="b",...}` (a name that
/// is not a legacy one quoted, as in a series); returns its value and
/// timestamp, or None for an exemplar with an empty label name, which is
/// dropped.
fn exemplar(out: &mut Vec<u8>, e: &wire::Exemplar<'_>) -> Option<(f64, Option<i64>)> {
    out.clear();
    out.push(b'{');
    for (i, l) in e.labels().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if is_label_name(l.name) {
            out.extend_from_slice(l.name.as_bytes());
        } else if !l.name.is_empty() {
            quoted(out, l.name);
        } else {
            return None;
        }
        out.push(b'=');
        quoted(out, l.value);
    }
    out.push(b'}');
    Some((e.value, e.timestamp_ms))
}

fn exemplar_text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("{}")
}

/// A summary's or a classic histogram's `_count` and `_sum` series.
fn count_and_sum<'f, E>(
    name: &str,
    count: f64,
    sum: f64,
    base: ProtoSample<'f>,
    scratch_name: &mut String,
    visit: &mut impl for<'s> FnMut(&ProtoSample<'s>) -> Result<(), E>,
) -> Result<(), E> {
    for (suffix, value) in [("_count", count), ("_sum", sum)] {
        suffixed(scratch_name, name, suffix);
        visit(&ProtoSample {
            name: scratch_name,
            value: SampleValue::Float(value),
            ..base
        })?;
    }
    Ok(())
}

fn suffixed(out: &mut String, name: &str, suffix: &str) {
    out.clear();
    out.push_str(name);
    out.push_str(suffix);
}

/// Prometheus's `FormatOpenMetricsFloat` into `out` (cleared first): Go's
/// shortest `%g`, with `.0` added when that has neither a `.` nor an
/// exponent (`1.0`, `0.0`, `2.5`, `1e-05`, `+Inf`).
pub fn format_float(out: &mut Vec<u8>, v: f64) {
    out.clear();
    if v == 0.0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    super::render::float(out, v);
    if v.is_finite() && !out.iter().any(|&b| b == b'.' || b == b'e') {
        out.extend_from_slice(b".0");
    }
}

/// `v` formatted by [`format_float`], remembered at position `i` of `memo`
/// (formatted again only when the value there differs).
fn formatted(memo: &mut Vec<(u64, Vec<u8>)>, i: usize, v: f64) -> &str {
    let bits = v.to_bits();
    if memo.len() <= i {
        memo.resize_with(i + 1, || (!bits, Vec::new()));
    }
    let (at, text) = &mut memo[i];
    if *at != bits || text.is_empty() {
        format_float(text, v);
        *at = bits;
    }
    ascii(text)
}

/// The text [`format_float`] wrote (always ASCII).
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("NaN")
}

/// A family's HELP as Prometheus keeps it: none when empty.
pub fn help<'a>(family: &wire::MetricFamily<'a>) -> Option<Cow<'a, str>> {
    (!family.help.is_empty()).then_some(Cow::Borrowed(family.help))
}

/// A family's UNIT: none when empty.
pub fn unit<'a>(family: &wire::MetricFamily<'a>) -> Option<&'a str> {
    (!family.unit.is_empty()).then_some(family.unit)
}

#[cfg(test)]
mod tests;
