//! Whether a family's sample lines can be served under its type: what
//! OpenMetrics 1.0 (and `relay check metrics`, promtool, prometheus_client's
//! strict parser) require of a typed family beyond what Prometheus ingests.
//! Prometheus stores a counter that went negative, a histogram without a
//! `+Inf` bucket or a quantile of 2 from text; a consumer of relay's
//! OpenMetrics does not, so such a family is served untyped instead (its
//! series and values unchanged).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::model::MetricType;
use super::parse::{Entry, Format, Parser};

/// The sample names a family of `kind` named `family` (its OpenMetrics
/// name) owns, as OpenMetrics parsers reserve them: no other family may use one.
pub fn reserved_suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["", "_total", "_created"],
        MetricType::Histogram => &["", "_bucket", "_sum", "_count", "_created"],
        MetricType::GaugeHistogram => &["", "_bucket", "_gsum", "_gcount"],
        MetricType::Summary => &["", "_sum", "_count", "_created"],
        MetricType::Info => &["", "_info"],
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
    }
}

/// Whether `lines` (text 0.0.4 sample lines as relay renders them) are
/// valid for a family of `kind` whose OpenMetrics name is `family` and whose
/// text header is `header`, in both formats.
pub fn conforms(kind: MetricType, family: &str, header: &str, lines: &[u8]) -> bool {
    let mut check = Conform::new(kind, family, header);
    check.feed(lines) && check.finish()
}

/// [`conforms`] over a family whose lines come in pieces (one per target).
pub struct Conform<'f> {
    check: Option<Check<'f>>,
}

impl<'f> Conform<'f> {
    pub fn new(kind: MetricType, family: &'f str, header: &'f str) -> Self {
        let check = match kind {
            // Nothing to check: a gauge or untyped sample is any value.
            MetricType::Gauge | MetricType::Unknown => None,
            _ => Some(Check::new(kind, family, header)),
        };
        Conform { check }
    }

    /// Checks the next piece; false as soon as one sample does not fit.
    pub fn feed(&mut self, lines: &[u8]) -> bool {
        let Some(check) = self.check.as_mut() else {
            return true;
        };
        // Text 0.0.4 names a counter after its `_total` samples, and only
        // those belong to it there.
        if check.kind == MetricType::Counter
            && (check.header == check.family || !check.header.ends_with("_total"))
        {
            return false;
        }
        // One label buffer for the piece: no allocation per sample.
        let mut labels: Vec<(&str, Cow<'_, str>)> = Vec::new();
        for entry in Parser::new(lines, Format::Text) {
            let ok = match entry {
                Ok(Entry::Sample(s)) => {
                    labels.clear();
                    labels.extend(s.labels());
                    s.timestamp_ms.is_none() && check.sample(s.name, &labels, s.value)
                }
                Ok(_) => true,
                Err(_) => false,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    /// Whether the family, all pieces fed, is complete (histogram groups).
    pub fn finish(mut self) -> bool {
        self.check.as_mut().is_none_or(Check::finish_group)
    }
}

/// The state of one pass over a family's samples.
struct Check<'f> {
    kind: MetricType,
    family: &'f str,
    header: &'f str,
    /// The current group (labels without `le`/`quantile`) and those done.
    group: Option<String>,
    /// Looked up once per group (for a counter, per sample): foldhash,
    /// not SipHash; the keys are the families' own label text.
    seen: hashbrown::HashSet<String>,
    /// The sample being checked's group key, built in place.
    key: String,
    histogram: Histogram,
}

/// A histogram group's buckets and totals so far.
#[derive(Default)]
struct Histogram {
    last_le: Option<f64>,
    last_bucket: f64,
    negative_bucket: bool,
    count: Option<f64>,
    sum: bool,
    gsum: Option<f64>,
}

impl<'f> Check<'f> {
    fn new(kind: MetricType, family: &'f str, header: &'f str) -> Self {
        Check {
            kind,
            family,
            header,
            group: None,
            seen: Default::default(),
            key: String::new(),
            histogram: Histogram::default(),
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, Cow<'_, str>)], value: f64) -> bool {
        let Some(suffix) = name.strip_prefix(self.family) else {
            return false;
        };
        if !reserved_suffixes(self.kind).contains(&suffix) {
            return false;
        }
        let label = |n: &str| {
            labels
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_ref())
        };
        // OpenMetrics: counter-like samples are never NaN nor negative.
        let counter_like = matches!(suffix, "_total" | "_sum" | "_count" | "_bucket" | "_gcount");
        if (counter_like || suffix == "_gsum") && value.is_nan() {
            return false;
        }
        // A creation time is a time: not NaN, not before 1970.
        if (counter_like || suffix == "_created") && value < 0.0
            || suffix == "_created" && value.is_nan()
        {
            return false;
        }
        let integral = |v: f64| v.is_finite() && v.fract() == 0.0;
        let skip = match (self.kind, suffix) {
            // `_created` would stand apart from its counter in text 0.0.4.
            (MetricType::Counter, "_total") if name == self.header => "",
            (MetricType::Counter, _) => return false,
            (MetricType::Summary, "") => {
                match label("quantile").and_then(|q| q.parse::<f64>().ok()) {
                    Some(q) if (0.0..=1.0).contains(&q) && (value.is_nan() || value >= 0.0) => {
                        "quantile"
                    }
                    _ => return false,
                }
            }
            (MetricType::Summary, "_count") if !integral(value) => return false,
            (MetricType::Summary, "_sum" | "_count" | "_created") => "",
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => "le",
            (MetricType::Histogram | MetricType::GaugeHistogram, "") => return false,
            (MetricType::Histogram | MetricType::GaugeHistogram, _) => "",
            (MetricType::Info, "_info") if value == 1.0 => "",
            (MetricType::StateSet, "")
                if (value == 0.0 || value == 1.0) && label(self.family).is_some() =>
            {
                self.family
            }
            _ => return false,
        };
        // A group's samples are contiguous, and a group is not seen twice.
        // Name, value length, value: unambiguous without escaping each byte.
        self.key.clear();
        for (k, v) in labels.iter().filter(|(k, _)| *k != skip) {
            self.key.push_str(k);
            let _ = write!(self.key, "={}:", v.len());
            self.key.push_str(v);
        }
        if self.group.as_deref() != Some(self.key.as_str()) {
            if !self.finish_group() || !self.seen.insert(self.key.clone()) {
                return false;
            }
            // Text 0.0.4 has no gauge histogram: its `_bucket`, `_gcount`
            // and `_gsum` samples stand as families of their own there, so a
            // second series would split them.
            if self.kind == MetricType::GaugeHistogram && self.seen.len() > 1 {
                return false;
            }
            match self.group.as_mut() {
                Some(group) => group.clone_from(&self.key),
                None => self.group = Some(self.key.clone()),
            }
        }
        if matches!(
            self.kind,
            MetricType::Histogram | MetricType::GaugeHistogram
        ) {
            return self.histogram_sample(suffix, label("le"), value);
        }
        true
    }

    fn histogram_sample(&mut self, suffix: &str, le: Option<&str>, value: f64) -> bool {
        let h = &mut self.histogram;
        match suffix {
            "_bucket" => {
                let Some(bound) = le.and_then(|le| le.parse::<f64>().ok()) else {
                    return false;
                };
                // +Inf must be written canonically; buckets ascend, counts
                // are whole and do not fall.
                let canonical = bound != f64::INFINITY || le == Some("+Inf");
                let ascending = h.last_le.is_none_or(|last| bound > last);
                if bound.is_nan() || !canonical || !ascending || !integral_count(value) {
                    return false;
                }
                if value < h.last_bucket {
                    return false;
                }
                h.negative_bucket |= bound < 0.0;
                h.last_le = Some(bound);
                h.last_bucket = value;
            }
            "_count" | "_gcount" => {
                if !integral_count(value) {
                    return false;
                }
                h.count = Some(value);
            }
            "_sum" => h.sum = true,
            "_gsum" => h.gsum = Some(value),
            _ => {}
        }
        true
    }

    /// Closes the current group: a histogram group needs its `+Inf` bucket,
    /// matching its count, and `_sum`/`_count` together.
    fn finish_group(&mut self) -> bool {
        let h = std::mem::take(&mut self.histogram);
        if self.group.is_none()
            || !matches!(
                self.kind,
                MetricType::Histogram | MetricType::GaugeHistogram
            )
        {
            return true;
        }
        let has_inf = h.last_le == Some(f64::INFINITY);
        let sums = h.sum || h.gsum.is_some();
        has_inf
            && h.count.is_none_or(|c| c == h.last_bucket)
            && sums == h.count.is_some()
            && !(h.negative_bucket && h.sum)
            && (h.negative_bucket || h.gsum.is_none_or(|g| g >= 0.0))
    }
}

fn integral_count(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0 && v >= 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_families_that_openmetrics_forbids_do_not_conform() {
        use MetricType::*;
        let cases: &[(MetricType, &str, &str, &str, bool)] = &[
            (Counter, "c", "c_total", "c_total{a=\"1\"} 1\nc_total{a=\"2\"} 0\n", true),
            (Counter, "c", "c_total", "c_total NaN\n", false),
            (Counter, "c", "c_total", "c_total -1\n", false),
            (Counter, "c", "c", "c 1\n", false),
            (Counter, "c", "c_total", "c_total 1\nc_created 1\n", false),
            (Counter, "c", "c_total", "c_total{a=\"1\"} 1\nc_total{a=\"2\"} 1\nc_total{a=\"1\"} 1\n", false),
            (Counter, "c", "c_total", "c_total 1 1700000000000\n", false),
            (Histogram, "h", "h", "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n", true),
            (Histogram, "h", "h", "h_bucket{le=\"1\"} 1\nh_sum 3\nh_count 1\n", false),
            (Histogram, "h", "h", "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n", false),
            (Histogram, "h", "h", "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n", false),
            (Histogram, "h", "h", "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\n", false),
            (Histogram, "h", "h", "h_bucket{le=\"Inf\"} 2\n", false),
            (Histogram, "h", "h", "h_bucket{le=\"+Inf\"} 2\nh_sum 1\n", false),
            (Histogram, "h", "h", "h_bucket{le=\"+Inf\"} 2.5\n", false),
            (Histogram, "h", "h", "h_bucket{a=\"1\",le=\"+Inf\"} 2\nh_bucket{a=\"2\",le=\"+Inf\"} 1\nh_sum{a=\"1\"} 1\nh_count{a=\"1\"} 2\n", false),
            (Summary, "s", "s", "s{quantile=\"0.5\"} 1\ns{quantile=\"1\"} NaN\ns_sum 1\ns_count 2\n", true),
            (Summary, "s", "s", "s{quantile=\"1.5\"} 1\n", false),
            (Summary, "s", "s", "s{quantile=\"0.5\"} -1\n", false),
            (Summary, "s", "s", "s 1\n", false),
            (Summary, "s", "s", "s_sum NaN\n", false),
            (Summary, "s", "s", "s_created -1\n", false),
            (GaugeHistogram, "q", "q", "q_bucket{le=\"+Inf\"} 1\nq_gcount 1\nq_gsum 1\n", true),
            (GaugeHistogram, "q", "q", "q_bucket{a=\"1\",le=\"+Inf\"} 1\nq_bucket{a=\"2\",le=\"+Inf\"} 1\n", false),
            (Info, "i", "i", "i_info{v=\"1\"} 1\n", true),
            (Info, "i", "i", "i_info{v=\"1\"} 2\n", false),
            (StateSet, "s", "s", "s{s=\"a\"} 1\ns{s=\"b\"} 0\n", true),
            (StateSet, "s", "s", "s{s=\"a\"} 2\n", false),
            (Gauge, "g", "g", "anything at all", true),
        ];
        for (kind, family, header, lines, want) in cases {
            assert_eq!(
                conforms(*kind, family, header, lines.as_bytes()),
                *want,
                "{kind:?} {family}: {lines:?}"
            );
        }
    }
}
