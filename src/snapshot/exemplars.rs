//! The exemplars of a rendered body, kept beside its text 0.0.4 lines
//! (which cannot carry them) and found by where their line starts: the
//! OpenMetrics encoding writes each after its sample as OpenMetrics 1.0
//! does (` # {labels} value timestamp`), and an encoder of another format
//! (protobuf) can ask for the exemplar of any line ([`Exemplars::at_line`]).
//!
//! Only the samples OpenMetrics lets carry one keep it: a counter's
//! `_total` and a histogram's `_bucket` lines. An exemplar whose label set
//! (names and values) is over 128 UTF-8 characters is dropped, as
//! Prometheus's exemplar storage refuses it (`ErrExemplarLabelLength`)
//! while keeping the sample; client_golang never makes one.

use std::ops::Range;

use crate::exposition::{render, Format, MetricType};
use crate::storage::Exemplar;

/// OpenMetrics's (and Prometheus's) cap on an exemplar's label set, in
/// UTF-8 characters of its names and values.
pub const MAX_LABEL_CHARS: usize = 128;

/// One line's exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct LineExemplar {
    /// Where the sample line it belongs to starts in its text buffer.
    pub line: usize,
    /// Its labels, rendered `{a="b",...}`, in [`Exemplars::labels`].
    labels: Range<usize>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// The exemplars of one text buffer, in the order of their lines; their
/// labels in one string, so that keeping one allocates nothing once the
/// buffers have grown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exemplars {
    labels: String,
    entries: Vec<LineExemplar>,
}

impl Exemplars {
    pub fn clear(&mut self) {
        self.labels.clear();
        self.entries.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Gives back what a much larger earlier scrape left (see [`crate::buffers`]).
    pub fn give_back(&mut self) {
        let (labels, entries) = (self.labels.len(), self.entries.len());
        if self.labels.capacity() > 4 * labels.max(1024) {
            self.labels.shrink_to(labels);
        }
        crate::buffers::give_back(&mut self.entries, entries);
    }

    /// Keeps `e` for the line starting at `line` (after every line kept so far).
    pub fn push(&mut self, line: usize, e: &Exemplar<'_>) {
        let start = self.labels.len();
        self.labels.push_str(e.labels);
        self.entries.push(LineExemplar {
            line,
            labels: start..self.labels.len(),
            value: e.value,
            timestamp_ms: e.timestamp_ms,
        });
    }

    /// Keeps `e`, one of `from`'s, for the line starting at `line` here.
    pub fn push_moved(&mut self, from: &Exemplars, e: &LineExemplar, line: usize) {
        self.push(
            line,
            &Exemplar {
                labels: from.labels(e),
                value: e.value,
                timestamp_ms: e.timestamp_ms,
            },
        );
    }

    /// Every exemplar's labels, one after the other (to look for names).
    pub fn all_labels(&self) -> &str {
        &self.labels
    }

    /// Its labels, rendered `{a="b",...}`.
    pub fn labels(&self, e: &LineExemplar) -> &str {
        self.labels.get(e.labels.clone()).unwrap_or("{}")
    }

    /// The exemplars of the lines starting within `lines`.
    pub fn within(&self, lines: Range<usize>) -> &[LineExemplar] {
        let from = self.entries.partition_point(|e| e.line < lines.start);
        let to = self.entries.partition_point(|e| e.line < lines.end);
        self.entries.get(from..to).unwrap_or_default()
    }

    /// The exemplar of the line starting at `line`, if it has one.
    pub fn at_line(&self, line: usize) -> Option<&LineExemplar> {
        self.within(line..line + 1).first()
    }

    /// Writes ` # {labels} value[ timestamp]` (seconds) as OpenMetrics has
    /// it after a sample's value and timestamp.
    pub fn write(&self, out: &mut Vec<u8>, e: &LineExemplar) {
        out.extend_from_slice(b" # ");
        out.extend_from_slice(self.labels(e).as_bytes());
        // `sample_tail` ends the line; the caller ends it.
        render::sample_tail(out, Format::OpenMetrics, e.value, e.timestamp_ms);
        out.pop();
    }
}

/// Whether a sample named `name` of a family block of type `kind` may
/// carry an exemplar in OpenMetrics (a counter's `_total`, a histogram's
/// `_bucket`).
pub fn allowed(kind: MetricType, name: &str) -> bool {
    match kind {
        MetricType::Counter => name.ends_with("_total"),
        MetricType::Histogram | MetricType::GaugeHistogram => name.ends_with("_bucket"),
        _ => false,
    }
}

/// Whether an exemplar's label set (rendered `{a="b",...}`) is within the
/// 128 characters OpenMetrics allows its names and values.
pub fn within_limit(labels: &str) -> bool {
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or(labels);
    let mut chars = 0;
    let mut quoted = false;
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            // `\n`, `\"`, `\\` stand for one character.
            escaped = false;
            chars += 1;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            // Syntax, not part of a name or value.
            '=' | ',' if !quoted => {}
            _ => chars += 1,
        }
        if chars > MAX_LABEL_CHARS {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(labels: &str) -> Exemplar<'_> {
        Exemplar {
            labels,
            value: 0.5,
            timestamp_ms: Some(1_700_000_000_123),
        }
    }

    #[test]
    fn exemplars_are_found_by_their_line_and_written_as_openmetrics() {
        let mut all = Exemplars::default();
        all.push(10, &ex("{trace_id=\"a\"}"));
        all.push(
            40,
            &Exemplar {
                labels: "{}",
                value: 2.0,
                timestamp_ms: None,
            },
        );
        assert_eq!(all.within(0..10), &[]);
        assert_eq!(all.within(0..41).len(), 2);
        assert_eq!(all.within(11..40), &[]);
        let e = all.at_line(10).expect("exemplar at 10");
        let mut out = Vec::new();
        all.write(&mut out, e);
        assert_eq!(out, b" # {trace_id=\"a\"} 0.5 1700000000.123");
        let mut out = Vec::new();
        all.write(&mut out, all.at_line(40).expect("exemplar at 40"));
        assert_eq!(out, b" # {} 2");
        let mut moved = Exemplars::default();
        moved.push_moved(&all, e, 3);
        assert_eq!(
            moved.labels(moved.at_line(3).expect("moved")),
            "{trace_id=\"a\"}"
        );
    }

    #[test]
    fn the_label_set_limit_counts_names_and_values_in_characters() {
        let at = |n: usize| format!("{{a=\"{}\"}}", "é".repeat(n - 1));
        assert!(within_limit(&at(128)));
        assert!(!within_limit(&at(129)));
        // An escape is one character of the value.
        assert!(within_limit(&format!("{{a=\"{}\\\"\"}}", "x".repeat(126))));
        assert!(!within_limit(&format!("{{a=\"{}\\\"\"}}", "x".repeat(127))));
        assert!(within_limit("{}"));
    }

    #[test]
    fn only_totals_and_buckets_carry_exemplars() {
        assert!(allowed(MetricType::Counter, "c_total"));
        assert!(!allowed(MetricType::Counter, "c_created"));
        assert!(allowed(MetricType::Histogram, "h_bucket"));
        assert!(!allowed(MetricType::Histogram, "h_sum"));
        assert!(!allowed(MetricType::Gauge, "g_total"));
        assert!(!allowed(MetricType::Summary, "s_count"));
    }
}
