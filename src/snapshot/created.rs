//! Created timestamps a target gave outside its sample lines (protobuf's
//! `created_timestamp` fields, carried as [`Appended::start_timestamp_ms`])
//! served as the `_created` samples OpenMetrics has for counters,
//! summaries and histograms, as client_golang's OpenMetrics encoder writes
//! them: one per series group (a counter's `_total`; a summary's or
//! histogram's samples but `quantile`/`le`), after the group, in seconds.
//!
//! The text sink places them as a text target's own `_created` lines (in
//! place in OpenMetrics), but serves them in OpenMetrics only: unlike a
//! text target's `_created` lines they are no samples of the target, and a
//! Prometheus scraping it (or client_golang's text encoder) has no
//! `_created` series. A group's last sample is only known when a sample of
//! another group (or the commit) comes, so the timestamp waits here.

use std::borrow::Cow;

use crate::exposition::{is_metric_name, MetricType};
use crate::storage::{Appended, Family};

/// The created timestamp of the series group being written, if any; its
/// buffers are reused from group to group.
#[derive(Debug, Clone, Default)]
pub struct PendingCreated {
    on: bool,
    /// The group: family name, then its labels but `le`/`quantile`.
    key: Vec<u8>,
    /// The same for the sample being looked at.
    scratch: Vec<u8>,
    /// A sample's series joined, when in two pieces.
    joined: String,
    /// The `_created` series, rendered as the pipeline renders series.
    series: String,
    name_len: usize,
    /// The family as the target named it (protobuf: a counter's with `_total`).
    source: String,
    /// Its name in OpenMetrics, which its `_created` sample extends.
    family_name: String,
    help: Option<String>,
    kind: MetricType,
    seconds: f64,
}

impl PendingCreated {
    pub fn clear(&mut self) {
        self.on = false;
    }

    /// Notes the created timestamp `ms` of `s`'s group, unless noted already
    /// or `s` is no sample of a counter, summary or histogram family.
    pub fn start(&mut self, s: &Appended<'_>, ms: i64) {
        let family = s.family;
        let name = s.name();
        if !matches!(
            family.kind,
            MetricType::Counter | MetricType::Summary | MetricType::Histogram
        ) || family.name.is_empty()
            || !family.kind.has_sample(&family.name, &name)
        {
            return;
        }
        if self.on && self.source == family.name && {
            group_key(&mut self.scratch, &mut self.joined, s);
            self.scratch == self.key
        } {
            return;
        }
        group_key(&mut self.key, &mut self.joined, s);
        self.on = true;
        self.source.clear();
        self.source.push_str(&family.name);
        // A protobuf counter family is named after its `_total` samples.
        let base = match family.kind {
            MetricType::Counter => family.name.strip_suffix("_total").unwrap_or(&family.name),
            _ => &family.name,
        };
        self.family_name.clear();
        self.family_name.push_str(base);
        self.help = family.help.as_deref().map(str::to_owned);
        self.kind = family.kind;
        self.seconds = ms as f64 / 1000.0;
        // `name_created{labels}`, or `{"name_created",labels}` for a name
        // that is not a legacy one.
        let labels = &self.key[family.name.len()..];
        let labels = std::str::from_utf8(labels).unwrap_or_default();
        self.series.clear();
        let quoted = !is_metric_name(base);
        if quoted {
            self.series.push_str("{\"");
        }
        // As written between the quotes (escaped; a copy only when needed).
        let written = match quoted {
            true => crate::exposition::render::escaped_name(base),
            false => Cow::Borrowed(base),
        };
        self.series.push_str(&written);
        self.series.push_str("_created");
        self.name_len = written.len() + "_created".len();
        match (quoted, labels.is_empty()) {
            (true, true) => self.series.push_str("\"}"),
            (true, false) => {
                self.series.push_str("\",");
                self.series.push_str(labels);
                self.series.push('}');
            }
            (false, true) => {}
            (false, false) => {
                self.series.push('{');
                self.series.push_str(labels);
                self.series.push('}');
            }
        }
    }

    /// Whether `s` is of another group than the pending one (which is then
    /// complete).
    pub fn ends_before(&mut self, s: &Appended<'_>) -> bool {
        if !self.on {
            return false;
        }
        if s.family.name != self.source || s.family.kind != self.kind {
            return true;
        }
        group_key(&mut self.scratch, &mut self.joined, s);
        self.scratch != self.key
    }

    /// The pending timestamp, no longer pending.
    pub fn take(&mut self) -> Option<&PendingCreated> {
        std::mem::replace(&mut self.on, false).then_some(&*self)
    }

    /// The family its sample belongs to.
    pub fn family(&self) -> Family<'_> {
        Family {
            name: Cow::Borrowed(&self.family_name),
            help: self.help.as_deref().map(Cow::Borrowed),
            kind: self.kind,
            unit: None,
        }
    }

    /// Its `_created` sample, of `family` (see [`PendingCreated::family`]).
    pub fn appended<'a>(&'a self, family: &'a Family<'a>) -> Appended<'a> {
        Appended::float(0, &self.series, self.name_len, family, None, self.seconds)
    }
}

/// Writes `s`'s group into `out`: its family name, then its label pairs as
/// rendered, but `le` and `quantile`, comma-separated.
fn group_key(out: &mut Vec<u8>, joined: &mut String, s: &Appended<'_>) {
    out.clear();
    out.extend_from_slice(s.family.name.as_bytes());
    let series = s.series.join(joined).as_bytes();
    let labels = series
        .get(crate::exposition::render::labels_in(series, s.name_len))
        .unwrap_or_default();
    let start = out.len();
    for pair in pairs(labels) {
        if pair.starts_with(b"le=\"") || pair.starts_with(b"quantile=\"") {
            continue;
        }
        if out.len() > start {
            out.push(b',');
        }
        out.extend_from_slice(pair);
    }
}

/// The `name="value"` pairs of a rendered label list (a name may be
/// quoted; values hold escapes).
fn pairs(labels: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= labels.len() {
            return None;
        }
        let start = at;
        let mut quoted = false;
        let mut i = at;
        while i < labels.len() {
            match labels[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b',' if !quoted => break,
                _ => {}
            }
            i += 1;
        }
        let end = i.min(labels.len());
        at = end + 1;
        labels.get(start..end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(series: &'a str, name_len: usize, family: &'a Family<'a>) -> Appended<'a> {
        Appended::float(1, series, name_len, family, None, 1.0)
    }

    #[test]
    fn a_group_is_its_labels_but_le_and_quantile() {
        let family = Family {
            name: "h".into(),
            kind: MetricType::Histogram,
            ..Family::default()
        };
        let mut p = PendingCreated::default();
        p.start(&sample("h_count{a=\"x,\\\"y\"}", 7, &family), 1_500);
        assert!(!p.ends_before(&sample("h_bucket{a=\"x,\\\"y\",le=\"1.0\"}", 8, &family)));
        assert!(p.ends_before(&sample("h_bucket{a=\"z\",le=\"1.0\"}", 8, &family)));
        let done = p.take().expect("pending");
        assert_eq!(done.series, "h_created{a=\"x,\\\"y\"}");
        assert_eq!(done.seconds, 1.5);
        assert!(p.take().is_none());
    }

    /// A protobuf body: a counter (two series), a histogram and a summary,
    /// each series with a created timestamp; exemplars on a counter and a
    /// bucket.
    fn protobuf_body() -> Vec<u8> {
        use crate::exposition::proto::pb;
        use prost::Message;
        let ts = |seconds: i64| {
            Some(pb::Timestamp {
                seconds,
                nanos: 500_000_000,
            })
        };
        let label = |name: &str, value: &str| pb::LabelPair {
            name: name.into(),
            value: value.into(),
        };
        let exemplar = |value: f64| {
            Some(pb::Exemplar {
                label: vec![label("trace_id", "t1")],
                value,
                timestamp: ts(1_700_000_001),
            })
        };
        let counter = pb::MetricFamily {
            name: "c_total".into(),
            help: "Calls.".into(),
            r#type: pb::MetricType::Counter as i32,
            metric: ["/a", "/b"]
                .iter()
                .enumerate()
                .map(|(i, path)| pb::Metric {
                    label: vec![label("path", path)],
                    counter: Some(pb::Counter {
                        value: 5.0,
                        exemplar: if i == 0 { exemplar(1.0) } else { None },
                        created_timestamp: ts(1_700_000_000 + i as i64),
                    }),
                    ..Default::default()
                })
                .collect(),
            unit: String::new(),
        };
        let histogram = pb::MetricFamily {
            name: "h".into(),
            help: String::new(),
            r#type: pb::MetricType::Histogram as i32,
            metric: vec![pb::Metric {
                histogram: Some(pb::Histogram {
                    sample_count: 2,
                    sample_sum: 3.0,
                    bucket: vec![pb::Bucket {
                        cumulative_count: 1,
                        upper_bound: 1.0,
                        exemplar: exemplar(0.5),
                        ..Default::default()
                    }],
                    created_timestamp: ts(1_600_000_000),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            unit: String::new(),
        };
        let summary = pb::MetricFamily {
            name: "s".into(),
            help: String::new(),
            r#type: pb::MetricType::Summary as i32,
            metric: vec![pb::Metric {
                summary: Some(pb::Summary {
                    sample_count: 2,
                    sample_sum: 3.0,
                    quantile: vec![pb::Quantile {
                        quantile: 0.5,
                        value: 1.0,
                    }],
                    created_timestamp: ts(1_500_000_000),
                }),
                ..Default::default()
            }],
            unit: String::new(),
        };
        let mut body = counter.encode_length_delimited_to_vec();
        body.extend(histogram.encode_length_delimited_to_vec());
        body.extend(summary.encode_length_delimited_to_vec());
        body
    }

    #[test]
    fn protobuf_created_timestamps_are_served_as_text_created_lines_are() {
        use crate::exposition::{check, Format, Labels};
        use crate::relabel::Rules;
        use crate::scrape::pipeline::{process, SeriesCache, Settings};
        use crate::snapshot::{merge, Rendered, Snapshot};
        let target: Labels<'static> = [("instance", "a:1"), ("job", "j")].into_iter().collect();
        let rules = Rules::default();
        let mut out = Rendered::default();
        process(
            &protobuf_body(),
            Format::Protobuf,
            &Settings::new(&target, &rules),
            &mut SeriesCache::default(),
            &mut out,
        )
        .expect("valid");
        let snapshot = Snapshot::new(merge::merge(&[std::sync::Arc::new(out.clone())]));
        let body = |format| String::from_utf8_lossy(&snapshot.body(format, false)).into_owned();
        let om = body(Format::OpenMetrics);
        assert_eq!(check(om.as_bytes(), Format::OpenMetrics), vec![], "{om}");
        let l = "instance=\"a:1\",job=\"j\"";
        let want = format!(
            "# HELP c Calls.\n# TYPE c counter\n\
             c_total{{{l},path=\"/a\"}} 5 # {{trace_id=\"t1\"}} 1 1700000001.5\n\
             c_created{{{l},path=\"/a\"}} 1.7000000005e+09\n\
             c_total{{{l},path=\"/b\"}} 5\n\
             c_created{{{l},path=\"/b\"}} 1.7000000015e+09\n\
             # TYPE h histogram\n\
             h_count{{{l}}} 2\nh_sum{{{l}}} 3\n\
             h_bucket{{{l},le=\"1.0\"}} 1 # {{trace_id=\"t1\"}} 0.5 1700000001.5\n\
             h_bucket{{{l},le=\"+Inf\"}} 2\n\
             h_created{{{l}}} 1.6000000005e+09\n\
             # TYPE s summary\n\
             s_count{{{l}}} 2\ns_sum{{{l}}} 3\ns{{{l},quantile=\"0.5\"}} 1\n\
             s_created{{{l}}} 1.5000000005e+09\n# EOF\n"
        );
        assert_eq!(om, want);
        // Text 0.0.4 as client_golang's: neither created timestamps
        // (Prometheus scraping the target stores no `_created` series)
        // nor exemplars; every other line.
        let text = body(Format::Text);
        assert_eq!(check(text.as_bytes(), Format::Text), vec![], "{text}");
        assert!(
            !text.contains(" # {") && !text.contains("_created"),
            "{text}"
        );
        let lines = |b: &str| b.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(lines(&text), lines(&om) - 4, "{text}");
    }

    #[test]
    fn a_utf8_family_gets_a_quoted_created_name() {
        let family = Family {
            name: "a.b".into(),
            kind: MetricType::Counter,
            ..Family::default()
        };
        let mut p = PendingCreated::default();
        p.start(&sample("{\"a.b_total\",\"c.d\"=\"1\"}", 9, &family), 2_000);
        let done = p.take().expect("pending");
        assert_eq!(done.series, "{\"a.b_created\",\"c.d\"=\"1\"}");
        assert_eq!(done.appended(&done.family()).name(), "a.b_created");
        // Not a counter's own sample: nothing pending.
        p.start(&sample("other", 5, &family), 2_000);
        assert!(p.take().is_none());
    }
}
