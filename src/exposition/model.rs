//! The data model shared by the parser, the relabel engine, the scrape loop
//! and the renderer.
//!
//! Labels borrow from the scrape buffer (`Cow::Borrowed`) and only become
//! owned when an escape had to be undone or a relabel rule wrote a new value,
//! so a series that passes through unchanged costs no heap allocation.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;

/// The label that holds a series' metric name, as in Prometheus.
pub const METRIC_NAME: &str = "__name__";

/// Prometheus 2.x's `model.IsValidMetricName`: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    !name.is_empty() && metric_name_len(name.as_bytes()) == name.len()
}

/// Prometheus 2.x's `model.LabelName.IsValid`: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    !name.is_empty() && label_name_len(name.as_bytes()) == name.len()
}

/// A name under the UTF-8 scheme that needs no escapes inside its quotes:
/// not empty, and no `"`, `\` or newline.
pub fn is_utf8_name(name: &str) -> bool {
    !name.is_empty() && memchr::memchr3(b'"', b'\\', b'\n', name.as_bytes()).is_none()
}

/// The length of the metric name `bytes` starts with (0: none), for the
/// parser, which reads names out of a scrape body with no copy.
#[inline]
pub(crate) fn metric_name_len(bytes: &[u8]) -> usize {
    name_len(bytes, NAME_START | COLON, NAME_REST | COLON)
}

/// The length of the label name `bytes` starts with (0: none).
#[inline]
pub(crate) fn label_name_len(bytes: &[u8]) -> usize {
    name_len(bytes, NAME_START, NAME_REST)
}

/// Whether `b` may stand in a label name (first: as its first byte).
#[inline]
pub(crate) fn is_label_name_byte(b: u8, first: bool) -> bool {
    NAME_BYTES[usize::from(b)] & if first { NAME_START } else { NAME_REST } != 0
}

#[inline]
fn name_len(bytes: &[u8], first: u8, rest: u8) -> usize {
    match bytes.split_first() {
        Some((&b, tail)) if NAME_BYTES[usize::from(b)] & first != 0 => {
            1 + tail
                .iter()
                .position(|&b| NAME_BYTES[usize::from(b)] & rest == 0)
                .unwrap_or(tail.len())
        }
        _ => 0,
    }
}

/// Classes of the bytes names are made of, one table lookup per byte (the
/// parser's hot path reads every name through it).
const NAME_START: u8 = 1;
const NAME_REST: u8 = 2;
const COLON: u8 = 4;
static NAME_BYTES: [u8; 256] = name_bytes();

const fn name_bytes() -> [u8; 256] {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = if byte.is_ascii_alphabetic() || byte == b'_' {
            NAME_START | NAME_REST
        } else if byte.is_ascii_digit() {
            NAME_REST
        } else if byte == b':' {
            COLON
        } else {
            0
        };
        b += 1;
    }
    table
}

/// The metric types of text 0.0.4 and OpenMetrics 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `untyped` in text 0.0.4, `unknown` in OpenMetrics; also what a family
    /// without a TYPE line is.
    #[default]
    Unknown,
}

impl MetricType {
    /// Every type, for tables derived from the per-type ones below.
    pub const ALL: [MetricType; 8] = [
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
        MetricType::GaugeHistogram,
        MetricType::Summary,
        MetricType::Info,
        MetricType::StateSet,
        MetricType::Unknown,
    ];

    /// The keyword used on a `# TYPE` line of text 0.0.4.
    pub fn as_text(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "untyped",
        }
    }

    /// The suffixes of the sample names a family of this type owns, `""`
    /// (the bare family name) first: OpenMetrics reserves all of them, so no
    /// other family may use one. The one table the parser, the checker and
    /// the merge share.
    pub fn suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["", "_total", "_created"],
            MetricType::Histogram => &["", "_bucket", "_sum", "_count", "_created"],
            MetricType::GaugeHistogram => &["", "_bucket", "_gsum", "_gcount"],
            MetricType::Summary => &["", "_sum", "_count", "_created"],
            MetricType::Info => &["", "_info"],
            MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
        }
    }

    /// The suffixes an OpenMetrics sample of this type may carry: the owned
    /// ones, without the bare name where the type has none of its own (a
    /// counter's value is `_total`, a histogram's are buckets, sum and count).
    pub fn sample_suffixes(self) -> &'static [&'static str] {
        let all = self.suffixes();
        match self {
            MetricType::Counter
            | MetricType::Histogram
            | MetricType::GaugeHistogram
            | MetricType::Info => &all[1..],
            MetricType::Summary
            | MetricType::Gauge
            | MetricType::StateSet
            | MetricType::Unknown => all,
        }
    }

    /// Whether a sample named `sample` belongs to family `family` of this
    /// type (`h_bucket` to histogram `h`, `c_total` to counter `c`, and, as
    /// text 0.0.4 allows, the bare name to any type).
    pub fn has_sample(self, family: &str, sample: &str) -> bool {
        sample
            .strip_prefix(family)
            .is_some_and(|rest| self.suffixes().contains(&rest))
    }

    /// The keyword used on a `# TYPE` line of OpenMetrics 1.0.
    pub fn as_openmetrics(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            other => other.as_text(),
        }
    }
}

/// Every suffix some type owns, each once (the bare name left out): what to
/// strip from a sample's name to find its family when the name is not one,
/// derived from [`MetricType::suffixes`] so there is one table.
pub fn family_suffixes() -> &'static [&'static str] {
    static ALL: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<&'static str> = Vec::new();
        for kind in MetricType::ALL {
            for suffix in kind.suffixes() {
                if !suffix.is_empty() && !all.contains(suffix) {
                    all.push(suffix);
                }
            }
        }
        all
    })
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_text())
    }
}

/// One label pair; either side may borrow from the scrape buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, str>,
}

/// A series' label set, `__name__` included, with unique names.
///
/// Kept as a small vector in insertion order: label sets are short (rarely
/// more than 30), so a linear scan beats hashing, and the vector can be
/// cleared and refilled for every sample of a scrape without reallocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels<'a> {
    items: Vec<Label<'a>>,
}

impl<'a> Labels<'a> {
    /// An empty set (usable in statics).
    pub const fn new() -> Self {
        Labels { items: Vec::new() }
    }

    /// An empty set that can hold `n` labels before it reallocates.
    pub fn with_capacity(n: usize) -> Self {
        Labels {
            items: Vec::with_capacity(n),
        }
    }

    /// Empties the set but keeps its allocation for the next sample.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Appends without checking for an existing name: for loading a label set
    /// that the parser already proved has unique names.
    pub fn push(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        self.items.push(Label {
            name: name.into(),
            value: value.into(),
        });
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_ref())
    }

    /// The value of `name` as stored: a cheap copy while it still borrows.
    pub fn get_cow(&self, name: &str) -> Option<Cow<'a, str>> {
        self.items
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.clone())
    }

    /// The metric name (`__name__`), or "" when it was relabeled away.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// Sets `name` to `value`, replacing an existing value in place; an empty
    /// value deletes the label, as in Prometheus (an empty label is no label).
    pub fn set(&mut self, name: impl Into<Cow<'a, str>>, value: impl Into<Cow<'a, str>>) {
        let name = name.into();
        let value = value.into();
        if value.is_empty() {
            self.remove(&name);
            return;
        }
        match self.items.iter_mut().find(|l| l.name == name) {
            Some(l) => l.value = value,
            None => self.items.push(Label { name, value }),
        }
    }

    /// Deletes `name`; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.items.iter().position(|l| l.name == name) {
            Some(i) => {
                self.items.remove(i);
                true
            }
            None => false,
        }
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label<'a>) -> bool) {
        self.items.retain(|l| keep(l));
    }

    /// The labels in their current order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label<'a>> {
        self.items.iter()
    }

    /// Mutable access, for rules that rewrite names or values in place.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Label<'a>> {
        self.items.iter_mut()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sorts by name (in place, no allocation), the order Prometheus stores
    /// and exposes labels in.
    pub fn sort(&mut self) {
        self.items.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    }

    /// A stable identity for the series (FNV-1a over the names and values in
    /// their current order): call [`Labels::sort`] first so that the same set
    /// in another order hashes the same.
    pub fn hash64(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        for l in &self.items {
            for b in l
                .name
                .bytes()
                .chain([0xff])
                .chain(l.value.bytes())
                .chain([0xfe])
            {
                h ^= u64::from(b);
                h = h.wrapping_mul(PRIME);
            }
        }
        h
    }

    /// Whether Prometheus would store the set (`labels.IsValid`): a valid
    /// metric name and valid label names (values are UTF-8 already). With
    /// `utf8` (Prometheus 3's default scheme) any non-empty name is valid
    /// (one holding `"`, `\` or a newline is served quoted and escaped).
    /// Else the legacy charsets apply.
    pub fn is_valid(&self, utf8: bool) -> bool {
        self.items.iter().all(|l| {
            if utf8 {
                let name = if l.name == METRIC_NAME {
                    &l.value
                } else {
                    &l.name
                };
                !name.is_empty()
            } else if l.name == METRIC_NAME {
                is_metric_name(&l.value)
            } else {
                is_label_name(&l.name)
            }
        })
    }

    /// A copy that owns its strings, for keeping a series past its scrape.
    pub fn into_owned(self) -> Labels<'static> {
        Labels {
            items: self
                .items
                .into_iter()
                .map(|l| Label {
                    name: Cow::Owned(l.name.into_owned()),
                    value: Cow::Owned(l.value.into_owned()),
                })
                .collect(),
        }
    }
}

/// As Prometheus prints a label set in its errors: `{__name__="up", job="a"}`.
impl fmt::Display for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a, 'b> IntoIterator for &'b Labels<'a> {
    type Item = &'b Label<'a>;
    type IntoIter = std::slice::Iter<'b, Label<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<'a, N: Into<Cow<'a, str>>, V: Into<Cow<'a, str>>> FromIterator<(N, V)> for Labels<'a> {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut labels = Labels::default();
        for (n, v) in iter {
            labels.push(n, v);
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_suffixes_are_every_owned_suffix_once() {
        let all = family_suffixes();
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            ["_bucket", "_count", "_created", "_gcount", "_gsum", "_info", "_sum", "_total"]
        );
        assert_eq!(all.len(), sorted.len());
        for kind in MetricType::ALL {
            for suffix in kind.suffixes().iter().filter(|s| !s.is_empty()) {
                assert!(all.contains(suffix), "{kind:?} owns {suffix}");
            }
        }
    }

    #[test]
    fn set_replaces_in_place_and_empty_deletes() {
        let mut l: Labels = [("__name__", "up"), ("job", "a")].into_iter().collect();
        l.set("job", "b");
        assert_eq!(l.get("job"), Some("b"));
        assert_eq!(l.len(), 2);
        l.set("job", "");
        assert_eq!(l.get("job"), None);
        assert_eq!(l.len(), 1);
        l.set("instance", "x:1");
        assert_eq!(l.iter().last().map(|x| x.name.as_ref()), Some("instance"));
    }

    #[test]
    fn hash_is_order_insensitive_after_sort() {
        let mut a: Labels = [("b", "2"), ("__name__", "m"), ("a", "1")]
            .into_iter()
            .collect();
        let mut b: Labels = [("a", "1"), ("b", "2"), ("__name__", "m")]
            .into_iter()
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a.hash64(), b.hash64());
        assert_eq!(a.iter().next().map(|x| x.name.as_ref()), Some("__name__"));
        let c: Labels = [("__name__", "m"), ("a", "1"), ("b", "3")]
            .into_iter()
            .collect();
        assert_ne!(a.hash64(), c.hash64());
    }

    #[test]
    fn name_value_boundary_is_part_of_the_hash() {
        let a: Labels = [("ab", "c")].into_iter().collect();
        let b: Labels = [("a", "bc")].into_iter().collect();
        assert_ne!(a.hash64(), b.hash64());
    }

    #[test]
    fn one_table_says_which_samples_a_type_owns() {
        use MetricType::*;
        for kind in [
            Counter,
            Gauge,
            Histogram,
            GaugeHistogram,
            Summary,
            Info,
            StateSet,
            Unknown,
        ] {
            let owned = kind.suffixes();
            assert_eq!(owned.first(), Some(&""), "{kind}: the bare name first");
            for s in kind.sample_suffixes() {
                assert!(owned.contains(s), "{kind}: {s} is a sample's but not owned");
            }
            for s in owned {
                assert!(kind.has_sample("x", &format!("x{s}")), "{kind}: x{s}");
            }
        }
        assert_eq!(Counter.sample_suffixes(), ["_total", "_created"]);
        assert_eq!(
            Summary.sample_suffixes(),
            ["", "_sum", "_count", "_created"]
        );
        assert_eq!(
            GaugeHistogram.suffixes(),
            ["", "_bucket", "_gsum", "_gcount"]
        );
        assert!(!Gauge.has_sample("x", "x_total"));
        assert!(!Counter.has_sample("x", "x_bucket"));
        assert!(!Histogram.has_sample("x", "y_bucket"));
    }

    #[test]
    fn one_name_check_for_the_parser_and_the_validators() {
        for b in 0..=255u8 {
            let letter = b.is_ascii_alphabetic() || b == b'_';
            let rest = letter || b.is_ascii_digit();
            assert_eq!(label_name_len(&[b]), usize::from(letter), "{b:#x}");
            assert_eq!(
                metric_name_len(&[b]),
                usize::from(letter || b == b':'),
                "{b:#x}"
            );
            assert_eq!(label_name_len(&[b'a', b]), 1 + usize::from(rest), "{b:#x}");
            assert_eq!(is_label_name_byte(b, true), letter, "{b:#x}");
            assert_eq!(is_label_name_byte(b, false), rest, "{b:#x}");
        }
        assert_eq!(metric_name_len(b"ns:up_total{job=\"a\"}"), 11);
        assert_eq!(label_name_len(b"ns:up"), 2);
        assert!(is_metric_name("a:b_1") && !is_metric_name("1a") && !is_metric_name(""));
        assert!(is_label_name("_a1") && !is_label_name("a:b") && !is_label_name(""));
        assert!(!is_label_name("é"));
    }
}
