//! Native histograms in the text sink. Each kept native histogram is held
//! beside its target's family blocks ([`Rendered::native`]), for scrapers
//! of :9090 that ask for protobuf; text and OpenMetrics scrapers get its
//! classic view, as client_golang serves one: the classic buckets when the
//! target exposed them too (they follow the native sample from the
//! pipeline), else `_count`, `_sum` and one `le="+Inf"` bucket, written
//! here once the next sample shows that no classic series follow.

use crate::exposition::{render, MetricType};
use crate::storage::{is_stale, Appended, Family, Histogram, HistogramCounts};

/// A native histogram of a target, as served.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeSeries {
    /// The series rendered as its float samples are (`name{a="b",...}`);
    /// its classic view's lines are this with `_count`, `_sum`, `_bucket`.
    pub series: String,
    pub histogram: Histogram,
    pub timestamp_ms: Option<i64>,
    /// Its created timestamp (ms), served as its view's `_created` sample
    /// in OpenMetrics and as `created_timestamp` in protobuf.
    pub created_ms: Option<i64>,
    /// Whether the target's classic buckets are served with it (else its
    /// classic view has a lone `+Inf` bucket, which protobuf leaves out).
    pub classic: bool,
}

impl NativeSeries {
    /// The observation count, as the classic view's `_count` has it.
    pub fn count(&self) -> f64 {
        match self.histogram.counts {
            HistogramCounts::Integer { count, .. } => count as f64,
            HistogramCounts::Float { count, .. } => count,
        }
    }
}

/// A target's native histograms, and the one whose classic view is not
/// written yet: whether the target's classic series follow is known at the
/// next sample. The view's lines go to the sink through `emit`.
#[derive(Debug, Clone, Default)]
pub struct Natives {
    /// The first `used` are this scrape's; the rest are kept from earlier
    /// scrapes so that their buffers are reused.
    series: Vec<NativeSeries>,
    used: usize,
    pending: Option<Pending>,
    /// A float sample's series joined, when in two pieces.
    joined: String,
}

/// See [`Natives`].
#[derive(Debug, Clone, Default)]
struct Pending {
    /// Its index in [`Natives::series`].
    index: usize,
    name_len: usize,
    family: String,
    help: Option<String>,
    kind: MetricType,
    unit: Option<String>,
}

impl Natives {
    /// Empties it, keeping as many entries as the last scrape used (their
    /// buffers are reused by the next).
    pub fn clear(&mut self) {
        self.series.truncate(self.used);
        self.used = 0;
        self.pending = None;
    }

    /// The native histograms, in the order they were appended.
    pub fn series(&self) -> &[NativeSeries] {
        self.series.get(..self.used).unwrap_or_default()
    }

    /// Adds one (a copy made elsewhere, e.g. with external labels).
    pub fn push(&mut self, n: NativeSeries) {
        self.series.truncate(self.used);
        self.series.push(n);
        self.used += 1;
    }

    /// Whether a classic view waits for the next sample.
    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A native histogram sample: kept, its classic view pending (the one
    /// pending before is written first).
    pub fn histogram(&mut self, s: &Appended<'_>, h: &Histogram, emit: impl FnMut(&Appended<'_>)) {
        self.flush(emit);
        if is_stale(h.sum) {
            return;
        }
        match self.series.get_mut(self.used) {
            Some(old) => {
                old.series.clear();
                old.series.push_str(s.series.head);
                old.series.push_str(s.series.tail);
                old.histogram.assign(h);
                old.timestamp_ms = s.timestamp_ms;
                old.created_ms = s.start_timestamp_ms;
                old.classic = false;
            }
            None => self.series.push(NativeSeries {
                series: s.series.to_string(),
                histogram: h.clone(),
                timestamp_ms: s.timestamp_ms,
                created_ms: s.start_timestamp_ms,
                classic: false,
            }),
        }
        self.used += 1;
        self.pending = Some(Pending {
            index: self.used - 1,
            name_len: s.name_len,
            family: s.family.name.to_string(),
            help: s.family.help.as_deref().map(str::to_owned),
            kind: s.family.kind,
            unit: s.family.unit.map(str::to_owned),
        });
    }

    /// Before a float sample: when it is the pending histogram's own
    /// classic `_count`, its classic series follow and no view is written;
    /// else the view is written now.
    pub fn before_float(&mut self, s: &Appended<'_>, emit: impl FnMut(&Appended<'_>)) {
        let Some(pending) = &self.pending else {
            return;
        };
        let Some(native) = self.series.get_mut(pending.index) else {
            self.pending = None;
            return;
        };
        let base = name_of(&native.series, pending.name_len);
        let own = s
            .rendered_name()
            .strip_prefix(base)
            .is_some_and(|suffix| suffix == "_count")
            && labels_of(&native.series, pending.name_len)
                == labels_of(s.series.join(&mut self.joined), s.name_len);
        if own {
            native.classic = true;
            self.pending = None;
        } else {
            self.flush(emit);
        }
    }

    /// Writes the pending histogram's classic view (`_count`, `_sum`, `+Inf`).
    pub fn flush(&mut self, mut emit: impl FnMut(&Appended<'_>)) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let Some(native) = self.series.get(pending.index) else {
            return;
        };
        let (count, sum) = (native.count(), native.histogram.sum);
        let family = Family {
            name: std::borrow::Cow::Borrowed(&pending.family),
            help: pending.help.as_deref().map(std::borrow::Cow::Borrowed),
            kind: pending.kind,
            unit: pending.unit.as_deref(),
        };
        let mut line = String::with_capacity(native.series.len() + 16);
        for (suffix, le, value) in [
            ("_count", false, count),
            ("_sum", false, sum),
            ("_bucket", true, count),
        ] {
            view_series(&mut line, &native.series, pending.name_len, suffix, le);
            emit(&Appended {
                start_timestamp_ms: native.created_ms,
                ..Appended::float(
                    0,
                    &line,
                    pending.name_len + suffix.len(),
                    &family,
                    native.timestamp_ms,
                    value,
                )
            });
        }
    }
}

/// The metric name of a rendered series.
fn name_of(series: &str, name_len: usize) -> &str {
    let at = if series.starts_with("{\"") { 2 } else { 0 };
    series.get(at..at + name_len).unwrap_or("")
}

/// The label list of a rendered series (between the braces, past a quoted name).
fn labels_of(series: &str, name_len: usize) -> &str {
    series
        .get(render::labels_in(series.as_bytes(), name_len))
        .unwrap_or("")
}

/// `series` with `suffix` after its name, and `le="+Inf"` last when `le`.
fn view_series(out: &mut String, series: &str, name_len: usize, suffix: &str, le: bool) {
    out.clear();
    let at = if series.starts_with("{\"") { 2 } else { 0 };
    let end = (at + name_len).min(series.len());
    out.push_str(&series[..end]);
    out.push_str(suffix);
    let rest = &series[end..];
    if !le {
        out.push_str(rest);
        return;
    }
    match rest.strip_suffix('}') {
        Some(open) if open.len() > 1 || at == 2 => {
            out.push_str(open);
            out.push_str(",le=\"+Inf\"}");
        }
        _ => out.push_str("{le=\"+Inf\"}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::Format;
    use crate::snapshot::Rendered;
    use crate::storage::{stale_nan, Appender, BucketSpan};

    fn histogram(float: bool, sum: f64) -> Histogram {
        let counts = if float {
            HistogramCounts::Float {
                count: 4.5,
                zero_count: 0.5,
                positive: vec![1.0, 3.0],
                negative: vec![],
            }
        } else {
            HistogramCounts::Integer {
                count: 5,
                zero_count: 1,
                positive_deltas: vec![1, 2],
                negative_deltas: vec![1],
            }
        };
        Histogram {
            schema: 0,
            zero_threshold: 0.001,
            sum,
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 2,
            }],
            negative_spans: if float {
                vec![]
            } else {
                vec![BucketSpan {
                    offset: 1,
                    length: 1,
                }]
            },
            counts,
        }
    }

    fn text(out: &Rendered) -> String {
        let mut text = Vec::new();
        out.write(&mut text, Format::Text);
        String::from_utf8_lossy(&text).into_owned()
    }

    /// A native-only histogram shows text scrapers `_count`, `_sum` and a
    /// lone `+Inf` bucket (client_golang's classic view); one whose classic
    /// series follow shows those instead, and is marked so; a stale one
    /// (Prometheus 3's marker) is not served.
    #[test]
    fn classic_view_of_native_histograms() {
        let family = Family {
            name: "h".into(),
            kind: MetricType::Histogram,
            ..Family::default()
        };
        let mut out = Rendered::default();
        let native = histogram(false, 7.5);
        let stale = histogram(true, stale_nan());
        fn h<'a>(
            series: &'a str,
            name_len: usize,
            family: &'a Family<'a>,
            value: &'a Histogram,
        ) -> Appended<'a> {
            Appended {
                value: crate::storage::Value::Histogram(value),
                ..Appended::float(1, series, name_len, family, None, 0.0)
            }
        }
        out.append(&h("h{a=\"1\"}", 1, &family, &native));
        out.append(&h("h", 1, &family, &native));
        // Its classic series follow: no view of its own.
        out.append(&h("h{a=\"2\"}", 1, &family, &native));
        for (series, value) in [
            ("h_count{a=\"2\"}", 5.0),
            ("h_sum{a=\"2\"}", 7.5),
            ("h_bucket{a=\"2\",le=\"1\"}", 2.0),
            ("h_bucket{a=\"2\",le=\"+Inf\"}", 5.0),
        ] {
            let name_len = series.find('{').unwrap_or(series.len());
            out.append(&Appended::float(2, series, name_len, &family, None, value));
        }
        let dotted = Family {
            name: "h.q".into(),
            kind: MetricType::Histogram,
            ..Family::default()
        };
        out.append(&h("{\"h.q\",a=\"3\"}", 3, &dotted, &native));
        out.append(&h("h{a=\"4\"}", 1, &family, &stale));
        out.commit();
        assert_eq!(
            text(&out),
            "# TYPE h histogram\n\
             h_count{a=\"1\"} 5\nh_sum{a=\"1\"} 7.5\nh_bucket{a=\"1\",le=\"+Inf\"} 5\n\
             h_count 5\nh_sum 7.5\nh_bucket{le=\"+Inf\"} 5\n\
             h_count{a=\"2\"} 5\nh_sum{a=\"2\"} 7.5\nh_bucket{a=\"2\",le=\"1\"} 2\nh_bucket{a=\"2\",le=\"+Inf\"} 5\n\
             # TYPE \"h.q\" histogram\n{\"h.q_count\",a=\"3\"} 5\n{\"h.q_sum\",a=\"3\"} 7.5\n{\"h.q_bucket\",a=\"3\",le=\"+Inf\"} 5\n"
        );
        let kept: Vec<(&str, bool)> = out
            .native
            .series()
            .iter()
            .map(|n| (n.series.as_str(), n.classic))
            .collect();
        assert_eq!(
            kept,
            [
                ("h{a=\"1\"}", false),
                ("h", false),
                ("h{a=\"2\"}", true),
                ("{\"h.q\",a=\"3\"}", false)
            ]
        );
        // A failed scrape serves none of them.
        out.rollback();
        assert!(out.native.series().is_empty() && text(&out).is_empty());
    }
}
