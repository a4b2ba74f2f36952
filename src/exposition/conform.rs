//! Whether a family's sample lines can be served under its type: what
//! OpenMetrics 1.0 (and `relay check metrics`, promtool, prometheus_client's
//! strict parser) require of a typed family beyond what Prometheus ingests.
//! Prometheus stores a counter that went negative, a histogram without a
//! `+Inf` bucket or a quantile of 2 from text; a consumer of relay's
//! OpenMetrics does not, so such a family is served untyped instead (its
//! series and values unchanged).
//!
//! The judgment is made where the samples are at hand: the text sink of a
//! scrape feeds each rendered sample to its block's [`Judged`], which keeps
//! what the merge needs of the block (whether its samples fit, its groups of
//! series, the state of its first and last group). The merge then judges a
//! family from its blocks ([`family`]), checking only what spans blocks: a
//! group (a series but for `le` or `quantile`) that goes on from one block
//! into the next, a group seen in two blocks, a gauge histogram's series.
//! No line is parsed again. An untyped block is judged as what it may turn
//! out to be: the samples its name's suffix names (`x_sum`, `x_bucket`, ...),
//! a summary's quantiles, a state set's states; which of these the merge
//! uses depends on the typed family it joins.
//!
//! A counter's, histogram's or summary's `_created` samples are not in its
//! block: text 0.0.4 has no place for them in the family, so the text sink
//! keeps them apart, judged as an untyped `x_created` block and paired with
//! their series ([`Created`]); the merge serves them after the family as a
//! gauge `x_created` in text 0.0.4 (as prometheus_client does) and
//! OpenMetrics puts them back where they came.

use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::LazyLock;

use super::model::MetricType;
use super::parse::{Entry, Format, Parser};

/// A family's OpenMetrics name from the name its text block carries: a
/// counter's without `_total`.
pub fn family_name(kind: MetricType, header: &str) -> &str {
    match kind {
        MetricType::Counter => header.strip_suffix("_total").unwrap_or(header),
        _ => header,
    }
}

/// Whether `lines` (text 0.0.4 sample lines as relay renders them) are
/// valid for a family of `kind` whose OpenMetrics name is `family` and whose
/// text header is `header`, in both formats.
pub fn conforms(kind: MetricType, family: &str, header: &str, lines: &[u8]) -> bool {
    if !judged_kind(kind) {
        return true;
    }
    let Some(judged) = judge_lines(kind, family, header, lines) else {
        return false;
    };
    let piece = Piece {
        name: header,
        typed: true,
        judged: &judged,
        lines,
    };
    self::family(kind, family, header, &[piece])
}

/// A block's judgment from its lines (None if one does not parse).
fn judge_lines(kind: MetricType, family: &str, header: &str, lines: &[u8]) -> Option<Judged> {
    let mut judged = Judged::default();
    let mut scratch = Scratch::default();
    for entry in Parser::new(lines, Format::Text) {
        let Entry::Sample(s) = entry.ok()? else {
            continue;
        };
        let key = s.series_in(lines);
        let start = (key.as_ptr() as usize).wrapping_sub(lines.as_ptr() as usize);
        // Through the closing brace.
        let end = start + key.len() + usize::from(!s.labels_src.is_empty());
        let sample = SampleAt {
            name: &s.name,
            series: start..end,
            value: s.value,
            timestamp: s.timestamp_ms.is_some(),
        };
        judged.sample(kind, family, header, lines, &sample, &mut scratch);
    }
    Some(judged)
}

/// Whether samples of `kind` are judged at all (a gauge or untyped sample
/// is any value).
fn judged_kind(kind: MetricType) -> bool {
    !matches!(kind, MetricType::Gauge | MetricType::Unknown)
}

/// Group keys are told apart across blocks by a 64-bit hash, keyed once
/// per process (a false match serves a family untyped, never invalid).
static HASHER: LazyLock<hashbrown::DefaultHashBuilder> = LazyLock::new(Default::default);

/// What a sample's name makes of it within its family: which checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Total,
    Created,
    Sum,
    Count,
    Bucket,
    GSum,
    GCount,
    Info,
    Quantile,
    State,
}

impl Rule {
    /// The rule for a sample named family + `suffix` in a family of `kind`;
    /// None when the type does not allow it. (A counter's `_total` must
    /// also be its text header.)
    fn of(kind: MetricType, suffix: &str) -> Option<Rule> {
        use MetricType::*;
        Some(match (kind, suffix) {
            (Counter, "_total") => Rule::Total,
            (Histogram | Summary, "_sum") => Rule::Sum,
            (Histogram | Summary, "_count") => Rule::Count,
            (Histogram | Summary, "_created") => Rule::Created,
            (Histogram | GaugeHistogram, "_bucket") => Rule::Bucket,
            (GaugeHistogram, "_gsum") => Rule::GSum,
            (GaugeHistogram, "_gcount") => Rule::GCount,
            (Summary, "") => Rule::Quantile,
            (Info, "_info") => Rule::Info,
            (StateSet, "") => Rule::State,
            _ => return None,
        })
    }

    /// The rule an untyped sample's name suffix gives it.
    fn of_name(name: &str) -> Option<Rule> {
        const SUFFIXES: [(&str, Rule); 8] = [
            ("_total", Rule::Total),
            ("_created", Rule::Created),
            ("_sum", Rule::Sum),
            ("_count", Rule::Count),
            ("_bucket", Rule::Bucket),
            ("_gsum", Rule::GSum),
            ("_gcount", Rule::GCount),
            ("_info", Rule::Info),
        ];
        SUFFIXES
            .iter()
            .find(|(s, _)| name.len() > s.len() && name.ends_with(s))
            .map(|&(_, rule)| rule)
    }

    /// Whether `value` may be such a sample's: counter-like samples are
    /// never NaN nor negative, counts are whole, a creation time is a time.
    fn allows(self, v: f64) -> bool {
        match self {
            Rule::Total | Rule::Sum | Rule::Created => !(v.is_nan() || v < 0.0),
            Rule::Count | Rule::GCount | Rule::Bucket => integral_count(v),
            Rule::GSum => !v.is_nan(),
            Rule::Info => v == 1.0,
            Rule::Quantile => v.is_nan() || v >= 0.0,
            Rule::State => v == 0.0 || v == 1.0,
        }
    }
}

fn integral_count(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0 && v >= 0.0
}

/// One rendered sample as the text sink has it: where its series
/// (`name{labels}`) is in the block's lines, and its name.
#[derive(Debug, Clone)]
pub struct SampleAt<'a> {
    pub name: &'a str,
    pub series: Range<usize>,
    pub value: f64,
    pub timestamp: bool,
}

/// What a block is judged as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum As {
    /// Its own type.
    Typed,
    /// Untyped: as the samples its name's suffix names.
    Named(Rule),
    /// Untyped: as a summary's quantile samples.
    Quantiles,
    /// Untyped: as a state set's samples.
    States,
}

impl As {
    /// Tells apart the groups of one block judged as several things.
    fn salt(self) -> u64 {
        match self {
            As::Typed | As::Named(_) => 0,
            As::Quantiles => 0x9e37_79b9_7f4a_7c15,
            As::States => 0xc2b2_ae3d_27d4_eb4f,
        }
    }
}

/// A group's key: its series' labels but the one that tells its samples
/// apart (`le`, `quantile`, a state set's own), as two ranges of the
/// block's lines whose concatenation is those labels rendered.
#[derive(Debug, Clone, Default, PartialEq)]
struct Key {
    before: Range<usize>,
    after: Range<usize>,
}

impl Key {
    fn bytes<'l>(&self, lines: &'l [u8]) -> (&'l [u8], &'l [u8]) {
        (
            lines.get(self.before.clone()).unwrap_or_default(),
            lines.get(self.after.clone()).unwrap_or_default(),
        )
    }

    fn same(&self, lines: &[u8], other: &Key, other_lines: &[u8]) -> bool {
        concat_eq(self.bytes(lines), other.bytes(other_lines))
    }
}

/// Whether a0 + a1 == b0 + b1, without concatenating.
fn concat_eq(a: (&[u8], &[u8]), b: (&[u8], &[u8])) -> bool {
    if a.0.len() + a.1.len() != b.0.len() + b.1.len() {
        return false;
    }
    let (short, long) = if a.0.len() <= b.0.len() {
        (a, b)
    } else {
        (b, a)
    };
    let split = long.0.len() - short.0.len();
    long.0.starts_with(short.0)
        && short.1.get(..split) == long.0.get(short.0.len()..)
        && short.1.get(split..) == Some(long.1)
}

/// A histogram group's buckets and totals so far.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    last_le: Option<f64>,
    last_bucket: f64,
    negative_bucket: bool,
    count: Option<f64>,
    sum: bool,
    gsum: Option<f64>,
}

impl Histogram {
    /// The next bucket; false when it breaks the order (bounds ascend,
    /// counts do not fall).
    fn bucket(&mut self, bound: f64, value: f64) -> bool {
        if self.last_le.is_some_and(|last| bound <= last) || value < self.last_bucket {
            return false;
        }
        self.negative_bucket |= bound < 0.0;
        self.last_le = Some(bound);
        self.last_bucket = value;
        true
    }

    /// A complete group: its `+Inf` bucket, matching its count, and
    /// `_sum`/`_count` together.
    fn complete(&self) -> bool {
        let has_inf = self.last_le == Some(f64::INFINITY);
        let sums = self.sum || self.gsum.is_some();
        has_inf
            && self.count.is_none_or(|c| c == self.last_bucket)
            && sums == self.count.is_some()
            && !(self.negative_bucket && self.sum)
            && (self.negative_bucket || self.gsum.is_none_or(|g| g >= 0.0))
    }

    /// This state followed by `next`, a group's samples from its start:
    /// None when `next`'s first bucket (`first`) does not follow on.
    fn then(&self, next: &Histogram, first: Option<(f64, f64)>) -> Option<Histogram> {
        let mut joined = self.clone();
        if let Some((bound, value)) = first {
            if !joined.bucket(bound, value) {
                return None;
            }
            joined.last_le = next.last_le;
            joined.last_bucket = next.last_bucket;
        }
        joined.negative_bucket |= next.negative_bucket;
        joined.count = next.count.or(joined.count);
        joined.sum |= next.sum;
        joined.gsum = next.gsum.or(joined.gsum);
        Some(joined)
    }
}

/// A block judged as one thing ([`As`]) while every sample so far fits it.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    what: As,
    /// Whether a new group is looked up among the block's earlier ones.
    /// Not needed when every sample has the same name and no label is left
    /// out of the key (one series per group) if the block's series are
    /// known to be distinct, as a scrape's are (see [`Scratch::distinct`]).
    lookup: bool,
    /// Each group's key hash, in order.
    groups: Vec<u64>,
    first: Key,
    /// The first group's state (while it is the only one: `last_state`).
    first_state: Histogram,
    /// The first group's first bucket, which must follow on from a group
    /// continued from the block before.
    first_bucket: Option<(f64, f64)>,
    /// Whether the groups between the first and the last were complete
    /// histogram groups.
    middle_complete: bool,
    last: Key,
    last_state: Histogram,
    /// The last sample's labels and where the label left out of its key
    /// is in them (relative), if it had one: a sample that differs from it
    /// in that label's value only is of the same group.
    previous: Option<(Range<usize>, Range<usize>)>,
}

impl Part {
    fn new(what: As, lookup: bool) -> Part {
        Part {
            what,
            lookup,
            groups: Vec::new(),
            first: Key::default(),
            first_state: Histogram::default(),
            first_bucket: None,
            middle_complete: true,
            last: Key::default(),
            last_state: Histogram::default(),
            previous: None,
        }
    }

    fn first_state(&self) -> &Histogram {
        if self.groups.len() > 1 {
            &self.first_state
        } else {
            &self.last_state
        }
    }

    /// Starts a group unless `key` is the current one's. False when the
    /// group was seen before in the block.
    fn group(&mut self, lines: &[u8], key: Key, scratch: &mut Scratch) -> bool {
        // A group's samples are contiguous, and a group is not seen twice
        // (a group of one series of distinct ones is new).
        let lookup = self.lookup || !scratch.distinct;
        if lookup && !self.groups.is_empty() && key.same(lines, &self.last, lines) {
            return true;
        }
        let hash = scratch.hash(key.bytes(lines));
        if lookup && !scratch.first_sight(hash ^ self.what.salt()) {
            return false;
        }
        match self.groups.len() {
            0 => self.first = key.clone(),
            1 => self.first_state = std::mem::take(&mut self.last_state),
            _ => {
                self.middle_complete &= self.last_state.complete();
                self.last_state = Histogram::default();
            }
        }
        self.groups.push(hash);
        self.last = key;
        true
    }

    /// The sample's effect on its group's histogram state (`label` the
    /// value of its `le`, for a bucket).
    fn count(
        &mut self,
        rule: Rule,
        label: Option<&[u8]>,
        value: f64,
        scratch: &mut Scratch,
    ) -> bool {
        let h = &mut self.last_state;
        match rule {
            Rule::Bucket => {
                let Some(le) = label else { return false };
                let Some(bound) = scratch.number(le) else {
                    return false;
                };
                // +Inf must be written canonically.
                if bound.is_nan() || bound == f64::INFINITY && le != b"+Inf" {
                    return false;
                }
                if self.groups.len() == 1 && h.last_le.is_none() {
                    self.first_bucket = Some((bound, value));
                }
                return h.bucket(bound, value);
            }
            Rule::Count | Rule::GCount => h.count = Some(value),
            Rule::Sum => h.sum = true,
            Rule::GSum => h.gsum = Some(value),
            _ => {}
        }
        true
    }
}

/// What the merge needs of one block: the things it may be judged as,
/// each while all its samples fit (none left: it fits nothing but a
/// gauge or untyped family).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judged {
    started: bool,
    parts: Vec<Part>,
}

impl Judged {
    /// Whether the block fits being the `_created` samples of a family
    /// (judged as an untyped block named `x_created`).
    pub fn fits_created(&self) -> bool {
        self.parts
            .iter()
            .any(|p| p.what == As::Named(Rule::Created))
    }

    /// The number of series groups so far if the last one's labels are
    /// `labels` (as rendered between the braces): a typed block only.
    fn last_group_is(&self, lines: &[u8], labels: &[u8]) -> Option<usize> {
        let part = self.parts.iter().find(|p| p.what == As::Typed)?;
        let empty: &[u8] = &[];
        (!part.groups.is_empty() && concat_eq(part.last.bytes(lines), (labels, empty)))
            .then_some(part.groups.len())
    }
}

/// The `_created` samples of a counter, histogram or summary block, kept
/// apart from it: text 0.0.4 has no place for them in the family, so they
/// are served after it as a gauge family of their own (as prometheus_client
/// serves them), and OpenMetrics puts each back among the family's lines
/// where it came, after its own series' other samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// For each `_created` line, in order: the offset in the family
    /// block's lines where OpenMetrics has it.
    pub at: Vec<usize>,
    /// Whether each came right after its own series' other samples, one per
    /// series (else OpenMetrics could not have them back in the family).
    paired: bool,
    /// The family block's groups when the last one was paired.
    groups: usize,
}

impl Default for Created {
    fn default() -> Self {
        Created {
            at: Vec::new(),
            paired: true,
            groups: 0,
        }
    }
}

impl Created {
    /// Records the next `_created` sample, with labels `labels` (rendered,
    /// between the braces), which came after the family block's `lines`
    /// (judged `main`) so far.
    pub fn pair(&mut self, main: &Judged, lines: &[u8], labels: &[u8]) {
        self.at.push(lines.len());
        match main.last_group_is(lines, labels) {
            Some(groups) if groups != self.groups => self.groups = groups,
            _ => self.paired = false,
        }
    }

    /// A merged family's: placed where the merge put them.
    pub fn placed(at: Vec<usize>) -> Created {
        Created {
            at,
            ..Created::default()
        }
    }

    /// Whether every `_created` sample has its series' place in OpenMetrics.
    pub fn paired(&self) -> bool {
        self.paired
    }
}

/// Buffers the judging of a scrape's blocks reuses: no allocation per sample.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// The groups of the block being judged (their hashes, salted by what
    /// the block is judged as).
    seen: hashbrown::HashTable<u64>,
    key: Vec<u8>,
    /// Label values read as numbers lately (`le`, `quantile`): (up to 7
    /// bytes and their length, packed; the number).
    numbers: [(u64, f64); 64],
    /// Whether no series comes twice in a block (as the pipeline appends
    /// them: once per scrape), so a group of one series needs no lookup.
    pub distinct: bool,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            seen: hashbrown::HashTable::new(),
            key: Vec::new(),
            numbers: [(u64::MAX, 0.0); 64],
            distinct: false,
        }
    }
}

impl Scratch {
    fn hash(&mut self, (a, b): (&[u8], &[u8])) -> u64 {
        if b.is_empty() {
            return HASHER.hash_one(a);
        }
        self.key.clear();
        self.key.extend_from_slice(a);
        self.key.extend_from_slice(b);
        HASHER.hash_one(self.key.as_slice())
    }

    /// Whether `hash` is new to the block (then remembered).
    fn first_sight(&mut self, hash: u64) -> bool {
        match self.seen.entry(hash, |&h| h == hash, |&h| h) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(hash);
                true
            }
        }
    }

    /// A label value as a number (None if it is not one), as Rust reads
    /// it; the few values a scrape's buckets and quantiles use are kept.
    fn number(&mut self, text: &[u8]) -> Option<f64> {
        if text.len() > 7 {
            return std::str::from_utf8(text).ok()?.parse().ok();
        }
        let mut packed = (text.len() as u64) << 56;
        for (i, &b) in text.iter().enumerate() {
            packed |= u64::from(b) << (8 * i);
        }
        let slot = &mut self.numbers[(packed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize];
        if slot.0 == packed {
            return Some(slot.1);
        }
        let number = std::str::from_utf8(text).ok()?.parse().ok()?;
        *slot = (packed, number);
        Some(number)
    }
}

impl Judged {
    /// Judges the next sample of a block whose HELP/TYPE lines name
    /// `header` of `kind` (`family` its OpenMetrics name); `lines` are the
    /// block's lines so far, the sample's among them.
    pub fn sample(
        &mut self,
        kind: MetricType,
        family: &str,
        header: &str,
        lines: &[u8],
        sample: &SampleAt<'_>,
        scratch: &mut Scratch,
    ) {
        if self.started && self.parts.is_empty() {
            return;
        }
        let name = sample.name;
        // The labels between the braces (after a quoted metric name).
        let series = lines.get(sample.series.clone()).unwrap_or_default();
        let within = super::render::labels_in(series, name.len());
        let inner = sample.series.start + within.start..sample.series.start + within.end;
        let fits = |part: &mut Part, scratch: &mut Scratch| {
            let rule = match part.what {
                As::Typed => match name.strip_prefix(family).and_then(|s| Rule::of(kind, s)) {
                    Some(Rule::Total) if name != header => None,
                    rule => rule,
                },
                As::Named(rule) => Some(rule),
                As::Quantiles => Some(Rule::Quantile),
                As::States => Some(Rule::State),
            };
            !sample.timestamp
                && rule.is_some_and(|rule| {
                    judge(
                        part,
                        rule,
                        name,
                        lines,
                        inner.clone(),
                        sample.value,
                        scratch,
                    )
                })
        };
        if !std::mem::replace(&mut self.started, true) {
            scratch.seen.clear();
            // What the block may be judged as: its type; or, untyped, what
            // it may turn out to be once a typed family takes it in. Kept
            // only if the first sample fits.
            let mut candidates = [None, None, None];
            if kind == MetricType::Unknown {
                if let Some(rule) = Rule::of_name(name) {
                    candidates[0] = Some(Part::new(As::Named(rule), rule == Rule::Bucket));
                }
                candidates[1] = Some(Part::new(As::Quantiles, true));
                candidates[2] = Some(Part::new(As::States, true));
            } else if judged_kind(kind) {
                let lookup = !matches!(kind, MetricType::Counter | MetricType::Info);
                candidates[0] = Some(Part::new(As::Typed, lookup));
            }
            for candidate in &mut candidates {
                if candidate.as_mut().is_some_and(|part| !fits(part, scratch)) {
                    *candidate = None;
                }
            }
            self.parts
                .reserve_exact(candidates.iter().flatten().count());
            self.parts.extend(candidates.into_iter().flatten());
            return;
        }
        self.parts.retain_mut(|part| fits(part, scratch));
    }
}

/// One sample of `part` under `rule`: its value, the label its rule leaves
/// out of its group, then its group.
fn judge(
    part: &mut Part,
    rule: Rule,
    name: &str,
    lines: &[u8],
    inner: Range<usize>,
    value: f64,
    scratch: &mut Scratch,
) -> bool {
    if !rule.allows(value) {
        return false;
    }
    let left_out = match rule {
        Rule::Bucket => "le",
        Rule::Quantile => "quantile",
        // A state set's label is named after it (an untyped block's name).
        Rule::State => name,
        _ => {
            part.previous = None;
            let key = Key {
                before: inner,
                after: 0..0,
            };
            return part.group(lines, key, scratch) && part.count(rule, None, value, scratch);
        }
    };
    let labels = lines.get(inner.clone()).unwrap_or_default();
    // The same labels as the sample before but for this one's value: the
    // same group, found without reading the labels one by one.
    let same = part.previous.as_ref().and_then(|(before, label)| {
        let before = lines.get(before.clone())?;
        let value = same_but(before, label.clone(), labels, left_out.as_bytes())?;
        Some((
            label.start..labels.len() - (before.len() - label.end),
            value,
        ))
    });
    let (label, value_at) = match same {
        Some(found) => found,
        None => {
            let Some((label, value_at)) = find_label(labels, left_out.as_bytes()) else {
                return false;
            };
            let at = inner.start;
            let key = if label.start == 0 {
                // First: drop the comma after it.
                Key {
                    before: at..at,
                    after: at + (label.end + 1).min(labels.len())..inner.end,
                }
            } else {
                // Else drop the comma before it.
                Key {
                    before: at..at + label.start - 1,
                    after: at + label.end..inner.end,
                }
            };
            if !part.group(lines, key, scratch) {
                return false;
            }
            (label, value_at)
        }
    };
    part.previous = Some((inner, label));
    let label = &labels[value_at];
    if rule == Rule::Quantile
        && !scratch
            .number(label)
            .is_some_and(|q| (0.0..=1.0).contains(&q))
    {
        return false;
    }
    part.count(rule, Some(label), value, scratch)
}

/// Where `labels` has the value of the label `name` that `before` has at
/// `label` (a whole `name="value"`), if they differ in nothing else and
/// that value needs no unescaping.
fn same_but(
    before: &[u8],
    label: Range<usize>,
    labels: &[u8],
    name: &[u8],
) -> Option<Range<usize>> {
    let head = before.get(..label.start)?;
    let tail = before.get(label.end..)?;
    let rest = labels.len().checked_sub(head.len() + tail.len())?;
    if rest < name.len() + 3 || !labels.starts_with(head) || !labels.ends_with(tail) {
        return None;
    }
    let middle = &labels[head.len()..head.len() + rest];
    let value = middle
        .strip_prefix(name)?
        .strip_prefix(b"=\"")?
        .strip_suffix(b"\"")?;
    if value.iter().any(|&b| b == b'"' || b == b'\\') {
        return None;
    }
    let start = head.len() + name.len() + 2;
    Some(start..start + value.len())
}

/// Where the label `name` is in rendered label text (`a="1",b="x\"y"`):
/// the whole `name="value"`, and its value as written (escaped).
fn find_label(labels: &[u8], name: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
    if memchr::memchr(b'\\', labels).is_some() {
        return walk_to_label(labels, name);
    }
    // Without escapes every quote opens or closes a value: `name="` is a
    // label where an even number of quotes comes before it.
    let mut from = 0;
    loop {
        let at = from + find_opening(labels.get(from..)?, name)?;
        if (at == 0 || labels[at - 1] == b',')
            && labels[..at].iter().filter(|&&b| b == b'"').count() % 2 == 0
        {
            let start = at + name.len() + 2;
            let end = start + memchr::memchr(b'"', labels.get(start..)?)?;
            return Some((at..end + 1, start..end));
        }
        from = at + 1;
    }
}

/// Where `name="` first is in `labels`.
fn find_opening(labels: &[u8], name: &[u8]) -> Option<usize> {
    let first = *name.first()?;
    let mut from = 0;
    loop {
        let at = from + memchr::memchr(first, labels.get(from..)?)?;
        let rest = labels.get(at..)?;
        if rest.starts_with(name) && rest.get(name.len()..name.len() + 2) == Some(b"=\"") {
            return Some(at);
        }
        from = at + 1;
    }
}

/// [`find_label`] label by label, undoing nothing but skipping escapes.
fn walk_to_label(labels: &[u8], name: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
    let mut at = 0;
    while at < labels.len() {
        let eq = at + memchr::memchr(b'=', labels.get(at..)?)?;
        let start = eq + 2;
        let mut end = start;
        loop {
            end += memchr::memchr2(b'"', b'\\', labels.get(end..)?)?;
            if labels[end] == b'"' {
                break;
            }
            end += 2;
        }
        if labels.get(at..eq) == Some(name) {
            return Some((at..end + 1, start..end));
        }
        // Past the closing quote and the comma.
        at = end + 2;
    }
    None
}

/// One block of a family, as the merge gives it: its name, whether it is
/// typed (else it joined the family), its judgment and its lines.
pub struct Piece<'a> {
    pub name: &'a str,
    pub typed: bool,
    pub judged: &'a Judged,
    pub lines: &'a [u8],
}

/// Whether a family of `kind` named `family` (text header `header`) may be
/// served typed, its blocks in the order they are served.
pub fn family(kind: MetricType, family: &str, header: &str, pieces: &[Piece<'_>]) -> bool {
    if !judged_kind(kind) || pieces.is_empty() {
        return true;
    }
    // Text 0.0.4 names a counter after its `_total` samples, and only
    // those belong to it there.
    if kind == MetricType::Counter && (header == family || !header.ends_with("_total")) {
        return false;
    }
    let histogram = matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram);
    let complete = |h: &Histogram| !histogram || h.complete();
    let many = pieces.len() > 1;
    let mut seen: hashbrown::HashSet<u64> = hashbrown::HashSet::new();
    // The current group: its key, the lines it is in, its state.
    let mut current: Option<(&Key, &[u8], Histogram)> = None;
    for piece in pieces {
        let Some(part) = part_for(kind, family, header, piece) else {
            return false;
        };
        if part.groups.is_empty() {
            continue;
        }
        let goes_on = current
            .as_ref()
            .is_some_and(|(key, lines, _)| key.same(lines, &part.first, piece.lines));
        let state = match &current {
            Some((_, _, before)) if goes_on => {
                match before.then(part.first_state(), part.first_bucket) {
                    Some(state) => state,
                    None => return false,
                }
            }
            Some((_, _, before)) if !complete(before) => return false,
            _ => part.first_state().clone(),
        };
        // Groups are not seen twice, in a block (judged there) or across.
        if many
            && part.groups[usize::from(goes_on)..]
                .iter()
                .any(|&g| !seen.insert(g))
        {
            return false;
        }
        if part.groups.len() > 1 {
            if !complete(&state) || histogram && !part.middle_complete {
                return false;
            }
            current = Some((&part.last, piece.lines, part.last_state.clone()));
        } else {
            current = Some((&part.first, piece.lines, state));
        }
        // Text 0.0.4 has no gauge histogram: its `_bucket`, `_gcount` and
        // `_gsum` samples stand as families of their own there, so a second
        // series would split them.
        let series = if many { seen.len() } else { part.groups.len() };
        if kind == MetricType::GaugeHistogram && series > 1 {
            return false;
        }
    }
    current.is_none_or(|(_, _, h)| complete(&h))
}

/// What a block is judged as in a family of `kind`: a typed block as its
/// type, an untyped one as what its name makes it in the family.
fn part_for<'j>(
    kind: MetricType,
    family: &str,
    header: &str,
    piece: &Piece<'j>,
) -> Option<&'j Part> {
    let find = |what: As| piece.judged.parts.iter().find(|p| p.what == what);
    if piece.typed {
        return find(As::Typed);
    }
    let suffix = piece.name.strip_prefix(family)?;
    match Rule::of(kind, suffix)? {
        Rule::Quantile => find(As::Quantiles),
        Rule::State => find(As::States),
        Rule::Total if piece.name != header => None,
        rule => find(As::Named(rule)),
    }
}

/// The judgment as it was made before it moved to the text sink: by
/// parsing a family's lines again at merge time. The rules' reference.
#[cfg(test)]
mod oracle {
    use std::borrow::Cow;
    use std::fmt::Write as _;

    use crate::exposition::model::MetricType;
    use crate::exposition::parse::{Entry, Format, Parser};

    /// [`conforms`] over a family whose lines come in pieces (one per target).
    pub(super) struct Conform<'f> {
        check: Option<Check<'f>>,
    }

    impl<'f> Conform<'f> {
        pub(super) fn new(kind: MetricType, family: &'f str, header: &'f str) -> Self {
            let check = match kind {
                // Nothing to check: a gauge or untyped sample is any value.
                MetricType::Gauge | MetricType::Unknown => None,
                _ => Some(Check::new(kind, family, header)),
            };
            Conform { check }
        }

        /// Checks the next piece; false as soon as one sample does not fit.
        pub(super) fn feed(&mut self, lines: &[u8]) -> bool {
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
            let mut labels: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
            for entry in Parser::new(lines, Format::Text) {
                let ok = match entry {
                    Ok(Entry::Sample(s)) => {
                        labels.clear();
                        labels.extend(s.labels());
                        s.timestamp_ms.is_none() && check.sample(&s.name, &labels, s.value)
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
        pub(super) fn finish(mut self) -> bool {
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

        fn sample(
            &mut self,
            name: &str,
            labels: &[(Cow<'_, str>, Cow<'_, str>)],
            value: f64,
        ) -> bool {
            let Some(suffix) = name.strip_prefix(self.family) else {
                return false;
            };
            if !self.kind.suffixes().contains(&suffix) {
                return false;
            }
            let label = |n: &str| {
                labels
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.as_ref())
            };
            // OpenMetrics: counter-like samples are never NaN nor negative.
            let counter_like =
                matches!(suffix, "_total" | "_sum" | "_count" | "_bucket" | "_gcount");
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
            // Within one block (never so from the text sink: it keeps a
            // counter's `_created` apart), text 0.0.4 would split the family.
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

/// The judgment made in pieces (each block as it is appended, then the
/// family from its blocks) against the reference that parses the family's
/// lines whole, on families near validity cut into typed and untyped blocks.
#[cfg(test)]
mod same_verdicts {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    struct Line {
        suffix: &'static str,
        labels: Vec<(&'static str, &'static str)>,
        value: &'static str,
        timestamp: bool,
    }

    const SUFFIXES: [&str; 10] = [
        "", "_total", "_created", "_sum", "_count", "_bucket", "_gsum", "_gcount", "_info", "_x",
    ];
    const VALUES: [&str; 10] = ["0", "1", "2", "3", "0.5", "-1", "NaN", "+Inf", "-0", "6"];
    const KINDS: [MetricType; 7] = [
        MetricType::Counter,
        MetricType::Histogram,
        MetricType::GaugeHistogram,
        MetricType::Summary,
        MetricType::Info,
        MetricType::StateSet,
        MetricType::Gauge,
    ];

    fn line(
        suffix: &'static str,
        group: &'static str,
        extra: &[(&'static str, &'static str)],
        value: &'static str,
    ) -> Line {
        let mut labels = vec![("a", group)];
        labels.extend_from_slice(extra);
        labels.sort();
        Line {
            suffix,
            labels,
            value,
            timestamp: false,
        }
    }

    /// A valid family of `kind` named `f` with `groups` series groups.
    fn valid(kind: MetricType, groups: usize) -> Vec<Line> {
        let mut out = Vec::new();
        for group in ["1", "x\\\"y", "2"].into_iter().take(groups) {
            match kind {
                MetricType::Counter => out.push(line("_total", group, &[], "3")),
                MetricType::Histogram | MetricType::GaugeHistogram => {
                    for (le, v) in [("0.5", "1"), ("1", "2"), ("+Inf", "3")] {
                        out.push(line("_bucket", group, &[("le", le)], v));
                    }
                    let (sum, count) = if kind == MetricType::Histogram {
                        ("_sum", "_count")
                    } else {
                        ("_gsum", "_gcount")
                    };
                    out.push(line(sum, group, &[], "2"));
                    out.push(line(count, group, &[], "3"));
                }
                MetricType::Summary => {
                    out.push(line("", group, &[("quantile", "0.5")], "1"));
                    out.push(line("", group, &[("quantile", "1")], "2"));
                    out.push(line("_sum", group, &[], "2"));
                    out.push(line("_count", group, &[], "2"));
                    out.push(line("_created", group, &[], "1"));
                }
                MetricType::Info => out.push(line("_info", group, &[("v", "1")], "1")),
                MetricType::StateSet => {
                    out.push(line("", group, &[("f", "x")], "1"));
                    out.push(line("", group, &[("f", "y")], "0"));
                }
                _ => out.push(line("", group, &[], "1")),
            }
        }
        out
    }

    fn any_line() -> impl Strategy<Value = Line> {
        let optional = |name: &'static str, values: &'static [&'static str]| {
            prop::option::weighted(0.4, prop::sample::select(values))
                .prop_map(move |v| v.map(|v| (name, v)))
        };
        (
            prop::sample::select(&SUFFIXES[..]),
            prop::sample::select(&["1", "2", "x\\\"y"][..]),
            optional("le", &["0.5", "1", "+Inf", "Inf", "-1", "x"]),
            optional("quantile", &["0", "0.5", "1", "1.5"]),
            optional("f", &["x", "y"]),
            optional("z", &["1"]),
            prop::sample::select(&VALUES[..]),
            prop::bool::weighted(0.05),
        )
            .prop_map(|(suffix, group, le, quantile, f, z, value, timestamp)| {
                let extra: Vec<_> = [le, quantile, f, z].into_iter().flatten().collect();
                Line {
                    timestamp,
                    ..line(suffix, group, &extra, value)
                }
            })
    }

    #[derive(Debug, Clone)]
    enum Change {
        Value(usize, &'static str),
        Remove(usize),
        Swap(usize, usize),
        Copy(usize, usize),
        Add(usize, Line),
        Reverse(usize),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (any::<usize>(), prop::sample::select(&VALUES[..]))
                .prop_map(|(i, v)| Change::Value(i, v)),
            any::<usize>().prop_map(Change::Remove),
            (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Change::Swap(i, j)),
            (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Change::Copy(i, j)),
            (any::<usize>(), any_line()).prop_map(|(i, l)| Change::Add(i, l)),
            any::<usize>().prop_map(Change::Reverse),
        ]
    }

    fn apply(lines: &mut Vec<Line>, change: Change) {
        let n = lines.len().max(1);
        match change {
            Change::Value(i, v) if !lines.is_empty() => lines[i % n].value = v,
            Change::Remove(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Change::Swap(i, j) if !lines.is_empty() => lines.swap(i % n, j % n),
            Change::Copy(i, j) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(j % (n + 1), l);
            }
            Change::Add(i, l) => lines.insert(i % (lines.len() + 1), l),
            Change::Reverse(i) if !lines.is_empty() => lines[i % n].labels.reverse(),
            _ => {}
        }
    }

    fn render(l: &Line) -> String {
        let labels: Vec<String> = l
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let ts = if l.timestamp { " 1700000000000" } else { "" };
        format!("f{}{labels} {}{ts}\n", l.suffix, l.value)
    }

    fn family_case() -> impl Strategy<Value = (MetricType, String, Vec<(bool, String)>)> {
        (
            prop::sample::select(&KINDS[..]),
            1..4usize,
            prop::collection::vec(change(), 0..4),
            prop::collection::vec(any_line(), 0..6),
            prop::bool::weighted(0.1),
            prop::collection::vec((any::<bool>(), any::<bool>()), 16),
            any::<bool>(),
        )
            .prop_map(
                |(kind, groups, changes, random, header_f, cuts, use_random)| {
                    let mut lines = if use_random {
                        random
                    } else {
                        valid(kind, groups)
                    };
                    for c in changes {
                        apply(&mut lines, c);
                    }
                    let header = if kind == MetricType::Counter && !header_f {
                        "f_total".to_owned()
                    } else {
                        "f".to_owned()
                    };
                    // Cut into blocks: typed ones, and untyped ones of one name.
                    let mut pieces: Vec<(bool, String, &'static str)> = Vec::new();
                    for (i, l) in lines.iter().enumerate() {
                        let (cut, typed) = cuts[i % cuts.len()];
                        let text = render(l);
                        match pieces.last_mut() {
                            Some((t, lines, suffix)) if !cut && (*t || *suffix == l.suffix) => {
                                lines.push_str(&text);
                            }
                            _ => pieces.push((typed, text, l.suffix)),
                        }
                    }
                    let pieces = pieces.into_iter().map(|(t, text, _)| (t, text)).collect();
                    (kind, header, pieces)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn judged_in_blocks_as_judged_whole((kind, header, pieces) in family_case()) {
            let family = "f";
            let mut whole = oracle::Conform::new(kind, family, &header);
            let want = pieces.iter().all(|(_, lines)| whole.feed(lines.as_bytes())) && whole.finish();
            let judged: Vec<(String, Judged)> = pieces
                .iter()
                .map(|(typed, lines)| {
                    let name = lines.split(['{', ' ']).next().unwrap_or_default().to_owned();
                    let judged = if *typed {
                        judge_lines(kind, family, &header, lines.as_bytes())
                    } else {
                        judge_lines(MetricType::Unknown, &name, &name, lines.as_bytes())
                    };
                    (name, judged.expect("parses"))
                })
                .collect();
            let blocks: Vec<Piece<'_>> = pieces
                .iter()
                .zip(&judged)
                .map(|((typed, lines), (name, judged))| Piece {
                    name,
                    typed: *typed,
                    judged,
                    lines: lines.as_bytes(),
                })
                .collect();
            let got = super::family(kind, family, &header, &blocks);
            prop_assert_eq!(got, want, "{:?} {}: {:?}", kind, header, pieces);
        }
    }
}
