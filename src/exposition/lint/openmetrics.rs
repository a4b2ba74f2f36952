//! The OpenMetrics 1.0 rules of `relay check metrics --format openmetrics`,
//! on top of the parser's syntax errors: which samples a family of each type
//! may have and what their labels and values may be, where exemplars may
//! appear, metadata before samples and once per family, families and series
//! kept together, names that do not clash, and the histogram rules (see
//! [`histogram`]). It judges the OpenMetrics conformance suite's parser
//! cases as the reference parser (prometheus_client's) does:
//! `scripts/openmetrics-conformance` runs the suite.

mod histogram;
mod layout;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::exposition::model::MetricType;
use crate::exposition::parse::{Entry, Format, ParseError, Parser, Sample};

use histogram::{num, Pos, Series};
use layout::{col, labels_at, sample_layout, trailing_comma, LabelAt};

/// Every problem of an OpenMetrics exposition, unsorted.
pub(super) fn check(input: &[u8]) -> Vec<ParseError> {
    let lines = Lines::new(input);
    let mut validator = Validator::default();
    let mut parser = Parser::new(input, Format::OpenMetrics);
    while let Some(entry) = parser.next() {
        match entry {
            Ok(entry) => {
                let n = parser.line();
                validator.entry(&entry, n, lines.get(n));
            }
            Err(e) => validator.parse_errors.push(e),
        }
    }
    validator.close_family();
    let mut errors = validator.parse_errors;
    errors.extend(
        validator
            .problems
            .into_iter()
            .map(|((line, col), message)| ParseError { line, col, message }),
    );
    errors
}

/// The input's lines by number (OpenMetrics has no multi-line entries).
struct Lines<'a> {
    input: &'a [u8],
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(input: &'a [u8]) -> Self {
        let starts = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', input).map(|i| i + 1))
            .collect();
        Lines { input, starts }
    }

    /// Line `n` (1-based) without its newline.
    fn get(&self, n: usize) -> &'a [u8] {
        let Some(&start) = n.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            return b"";
        };
        let end = self.starts.get(n).map_or(self.input.len(), |next| next - 1);
        self.input.get(start..end).unwrap_or_default()
    }
}

/// A type's name in messages.
fn noun(kind: MetricType) -> &'static str {
    match kind {
        MetricType::GaugeHistogram => "gauge histogram",
        MetricType::StateSet => "stateset",
        other => other.as_openmetrics(),
    }
}

/// A series' identity within its family: its labels, sorted, without the
/// one that tells its samples apart (`le`, `quantile`, the state).
type SeriesKey = Vec<(String, String)>;

fn show_key(key: &SeriesKey) -> String {
    let pairs: Vec<_> = key.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Meta {
    Help,
    Type,
    Unit,
}

impl Meta {
    fn keyword(self) -> &'static str {
        match self {
            Meta::Help => "HELP",
            Meta::Type => "TYPE",
            Meta::Unit => "UNIT",
        }
    }
}

struct Family<'a> {
    name: Cow<'a, str>,
    /// None until a TYPE line says (a family without one is unknown).
    kind: Option<MetricType>,
    first_line: usize,
    help_line: Option<usize>,
    type_line: Option<usize>,
    unit: Option<(Pos, &'a str)>,
    first_sample: Option<usize>,
    /// Series already seen, with the line each started on.
    series_seen: HashMap<SeriesKey, usize>,
    /// Series reported as split.
    split_series: HashSet<SeriesKey>,
    /// The series of the last sample and that sample's timestamp as written.
    current: Option<(SeriesKey, Option<(f64, String)>)>,
    /// The histogram series (labels and timestamp) being read.
    histogram: Option<((SeriesKey, Option<u64>), Series)>,
}

impl<'a> Family<'a> {
    fn new(name: Cow<'a, str>, line: usize) -> Self {
        Family {
            name,
            kind: None,
            first_line: line,
            help_line: None,
            type_line: None,
            unit: None,
            first_sample: None,
            series_seen: HashMap::new(),
            split_series: HashSet::new(),
            current: None,
            histogram: None,
        }
    }

    fn kind(&self) -> MetricType {
        self.kind.unwrap_or(MetricType::Unknown)
    }

    /// The part of `sample` after the family name, when it is one of this
    /// family's sample names.
    fn suffix<'s>(&self, sample: &'s str) -> Option<&'s str> {
        let suffix = sample.strip_prefix(&*self.name)?;
        self.kind()
            .sample_suffixes()
            .contains(&suffix)
            .then_some(suffix)
    }
}

#[derive(Default)]
struct Validator<'a> {
    family: Option<Family<'a>>,
    /// Names owned by closed families → (family name, its first line).
    taken: HashMap<String, (Cow<'a, str>, usize)>,
    problems: Vec<(Pos, String)>,
    parse_errors: Vec<ParseError>,
}

impl<'a> Validator<'a> {
    fn entry(&mut self, entry: &Entry<'a>, n: usize, raw: &'a [u8]) {
        match entry {
            Entry::Help { name, .. } => {
                self.metadata(name.clone(), Meta::Help, n, None);
            }
            Entry::Type { name, kind } => {
                self.metadata(name.clone(), Meta::Type, n, Some(*kind));
            }
            Entry::Unit { name, unit } => {
                let unit_pos = (n, col(raw, 8 + name.len()));
                if self.metadata(name.clone(), Meta::Unit, n, None) && !unit.is_empty() {
                    if let Some(f) = self.family.as_mut() {
                        f.unit = Some((unit_pos, unit));
                    }
                }
            }
            Entry::Sample(sample) => self.sample(sample, n, raw),
            Entry::Comment(_) | Entry::Eof => {}
        }
    }

    /// A HELP, TYPE or UNIT line; false when it was a problem.
    fn metadata(
        &mut self,
        name: Cow<'a, str>,
        meta: Meta,
        n: usize,
        kind: Option<MetricType>,
    ) -> bool {
        if self.family.as_ref().is_none_or(|f| f.name != name) {
            self.close_family();
            self.family = Some(Family::new(name, n));
        }
        let Some(f) = self.family.as_mut() else {
            return false;
        };
        let keyword = meta.keyword();
        if let Some(first) = f.first_sample {
            self.problems.push((
                (n, 3),
                format!(
                    "{keyword} for metric family {:?} must come before its samples (line {first})",
                    f.name
                ),
            ));
            return false;
        }
        let previous = match meta {
            Meta::Help => f.help_line,
            Meta::Type => f.type_line,
            Meta::Unit => f.unit.map(|((line, _), _)| line),
        };
        if let Some(first) = previous {
            self.problems.push((
                (n, 3),
                format!(
                    "second {keyword} line for metric family {:?} (the first is on line {first})",
                    f.name
                ),
            ));
            return false;
        }
        match meta {
            Meta::Help => f.help_line = Some(n),
            Meta::Type => {
                f.type_line = Some(n);
                f.kind = kind;
            }
            // Recorded by the caller, which knows the unit's position; an
            // empty unit is no unit, but a second UNIT line still repeats it.
            Meta::Unit => f.unit = Some(((n, 3), "")),
        }
        true
    }

    fn sample(&mut self, s: &Sample<'a>, n: usize, raw: &'a [u8]) {
        let suffix = self.family.as_ref().and_then(|f| f.suffix(&s.name));
        let suffix = match (suffix, self.family.as_mut()) {
            (Some(suffix), _) => suffix,
            (None, Some(f)) if f.name == s.name => {
                // A counter, histogram or info sample named like its family:
                // name the ones it may have rather than start a new family.
                let names: Vec<_> = f
                    .kind()
                    .sample_suffixes()
                    .iter()
                    .map(|suffix| format!("{:?}", format!("{}{suffix}", f.name)))
                    .collect();
                f.first_sample.get_or_insert(n);
                self.problems.push((
                    (n, 1),
                    format!(
                        "{} {:?} has no sample named {:?} (its samples are {})",
                        noun(f.kind()),
                        f.name,
                        s.name,
                        names.join(", ")
                    ),
                ));
                return;
            }
            (None, _) => {
                self.close_family();
                self.family = Some(Family::new(s.name.clone(), n));
                ""
            }
        };
        let Some(f) = self.family.as_mut() else {
            return;
        };
        f.first_sample.get_or_insert(n);
        let out = &mut self.problems;
        let kind = f.kind();
        let histogram = matches!(kind, MetricType::Histogram | MetricType::GaugeHistogram);
        let lay = sample_layout(raw, &s.name, s.labels_src);
        let labels = lay
            .labels_at
            .map(|at| labels_at(s.labels_src, at))
            .unwrap_or_default();
        let value_pos = (n, col(raw, lay.value_at));
        if let Some(at) = lay
            .labels_at
            .and_then(|at| trailing_comma(s.labels_src, at))
        {
            out.push(((n, col(raw, at)), "trailing comma in label set".into()));
        }
        let le = type_labels(f, kind, suffix, &labels, n, raw, out);
        let value_ok = value_rules(kind, suffix, s.value, value_pos, out);
        if let Some(exemplar) = &s.exemplar {
            let (hash_at, labels_start) = lay.exemplar_at.unwrap_or((raw.len(), raw.len()));
            let allowed = (histogram && suffix == "_bucket")
                || (kind == MetricType::Counter && suffix == "_total");
            if !allowed {
                out.push((
                    (n, col(raw, hash_at)),
                    format!(
                        "exemplars are allowed only on counter _total and histogram bucket samples, not on {:?} ({})",
                        s.name,
                        noun(kind)
                    ),
                ));
            }
            let ex_labels = labels_at(exemplar.labels_src, labels_start);
            let length: usize = ex_labels
                .iter()
                .map(|l| l.name.chars().count() + l.value.chars().count())
                .sum();
            if length > 128 {
                out.push((
                    (n, col(raw, labels_start)),
                    format!("exemplar labels are {length} characters long (names and values together may have at most 128)"),
                ));
            }
            if let Some(at) = trailing_comma(exemplar.labels_src, labels_start) {
                out.push((
                    (n, col(raw, at)),
                    "trailing comma in exemplar label set".into(),
                ));
            }
        }

        // Series: together, and with timestamps present in all or none and
        // never going backwards (info series excepted, as in the reference).
        let key: SeriesKey = if kind == MetricType::Info {
            Vec::new()
        } else {
            // The label that tells a series' samples apart is not part of it.
            let sets_apart = |name: &str| {
                (histogram && suffix == "_bucket" && name == "le")
                    || (kind == MetricType::Summary && suffix.is_empty() && name == "quantile")
                    || (kind == MetricType::StateSet && name == f.name)
            };
            let mut key: SeriesKey = labels
                .iter()
                .filter(|l| !sets_apart(&l.name))
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            key.sort();
            key
        };
        let ts = lay
            .timestamp
            .and_then(|(text, _)| Some((text.parse::<f64>().ok()?, text.to_owned())));
        let ts_pos = (
            n,
            col(raw, lay.timestamp.map_or(lay.value_end, |(_, at)| at)),
        );
        match &f.current {
            Some((current, previous)) if *current == key => match (previous, &ts) {
                (Some(_), None) => out.push((
                    ts_pos,
                    format!(
                        "this sample has no timestamp but the previous one of series {} has (a series' samples all have one or none has)",
                        show_key(&key)
                    ),
                )),
                (None, Some(_)) => out.push((
                    ts_pos,
                    format!(
                        "this sample has a timestamp but the previous one of series {} has none (a series' samples all have one or none has)",
                        show_key(&key)
                    ),
                )),
                (Some((prev, prev_text)), Some((t, text)))
                    if t < prev && kind != MetricType::Info =>
                {
                    out.push((
                        ts_pos,
                        format!("timestamp {text} of series {} goes backwards (the previous sample has {prev_text})", show_key(&key)),
                    ))
                }
                _ => {}
            },
            _ => {
                if let Some(first) = f.series_seen.get(&key) {
                    f.split_series.insert(key.clone());
                    out.push((
                        (n, 1),
                        format!(
                            "series {} of metric family {:?} is split: it already appeared at line {first} (keep a series' samples together)",
                            show_key(&key),
                            f.name
                        ),
                    ));
                } else {
                    f.series_seen.insert(key.clone(), n);
                }
            }
        }

        // A split series was reported; its pieces are not checked as
        // histograms of their own.
        if histogram && !f.split_series.contains(&key) {
            let run = (key.clone(), ts.as_ref().map(|(t, _)| t.to_bits()));
            if f.histogram.as_ref().is_none_or(|(r, _)| *r != run) {
                if let Some((_, series)) = f.histogram.take() {
                    series.finish(out);
                }
                f.histogram = Some((run, Series::new(kind, (n, 1))));
            }
            if let Some((_, series)) = f.histogram.as_mut() {
                match suffix {
                    "_bucket" => {
                        if let Some((bound, text, pos)) = le {
                            series.bucket(bound, &text, pos, s.value, value_pos, out);
                        }
                    }
                    // A bad count was reported; comparing it with the
                    // +Inf bucket would only say so again.
                    "_count" | "_gcount" => series.count(value_ok.then_some(s.value), value_pos),
                    "_sum" => series.sum(value_pos),
                    "_gsum" => series.gsum(s.value, value_pos),
                    _ => {}
                }
            }
        }
        f.current = Some((key, ts));
    }

    fn close_family(&mut self) {
        let Some(mut f) = self.family.take() else {
            return;
        };
        if let Some((_, series)) = f.histogram.take() {
            series.finish(&mut self.problems);
        }
        let kind = f.kind();
        let unit = f.unit.filter(|(_, unit)| !unit.is_empty());
        if let (Some((pos, unit)), MetricType::Info | MetricType::StateSet) = (unit, kind) {
            self.problems.push((
                pos,
                format!(
                    "{} {:?} must not have a unit (it has {unit:?})",
                    noun(kind),
                    f.name
                ),
            ));
        }
        let mut clash = None;
        for suffix in kind.suffixes() {
            let name = format!("{}{suffix}", f.name);
            match self.taken.get(&name) {
                Some((other, line)) => {
                    clash.get_or_insert_with(|| {
                        if *other == f.name {
                            format!("metric family {:?} is split: it already appeared at line {line} (keep a family's lines together)", f.name)
                        } else {
                            format!(
                                "metric family {:?} ({}) clashes with metric family {other:?} of line {line}: both own the name {name:?}",
                                f.name,
                                noun(kind)
                            )
                        }
                    });
                }
                None => {
                    self.taken.insert(name, (f.name.clone(), f.first_line));
                }
            }
        }
        if let Some(message) = clash {
            self.problems.push(((f.first_line, 1), message));
        }
    }
}

/// The labels a type requires: a stateset's state, a bucket's `le`, a
/// quantile's `quantile`. Returns a bucket's bound, as written and where.
fn type_labels(
    f: &Family<'_>,
    kind: MetricType,
    suffix: &str,
    labels: &[LabelAt<'_>],
    n: usize,
    raw: &[u8],
    out: &mut Vec<(Pos, String)>,
) -> Option<(f64, String, Pos)> {
    let find = |name: &str| labels.iter().find(|l| l.name == name);
    match (kind, suffix) {
        (MetricType::StateSet, _) if find(&f.name).is_none() => out.push((
            (n, 1),
            format!(
                "stateset {:?} sample has no {:?} label naming its state",
                f.name, f.name
            ),
        )),
        (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => {
            let Some(le) = find("le") else {
                out.push(((n, 1), format!("{} bucket has no le label", noun(kind))));
                return None;
            };
            let pos = (n, col(raw, le.value_at));
            match le.value.parse::<f64>() {
                Ok(bound) if bound == f64::INFINITY && le.value != "+Inf" => {
                    out.push((
                        pos,
                        format!("le=\"{}\" must be written le=\"+Inf\"", le.value),
                    ));
                    // Still the +Inf bucket for the series' own rules.
                    return Some((bound, le.value.to_string(), pos));
                }
                Ok(bound) if !bound.is_nan() => return Some((bound, le.value.to_string(), pos)),
                _ => out.push((
                    pos,
                    format!("{} bucket le=\"{}\" is not a number", noun(kind), le.value),
                )),
            }
        }
        (MetricType::Summary, "") => match find("quantile") {
            None => out.push((
                (n, 1),
                "summary quantile sample has no quantile label".into(),
            )),
            Some(q) => {
                let ok = q
                    .value
                    .parse::<f64>()
                    .is_ok_and(|v| (0.0..=1.0).contains(&v));
                if !ok {
                    out.push((
                        (n, col(raw, q.value_at)),
                        format!(
                            "summary quantile=\"{}\" must be a number from 0 to 1",
                            q.value
                        ),
                    ));
                }
            }
        },
        _ => {}
    }
    None
}

/// What values a sample of each kind may have; false when this one breaks
/// a rule.
fn value_rules(
    kind: MetricType,
    suffix: &str,
    value: f64,
    pos: Pos,
    out: &mut Vec<(Pos, String)>,
) -> bool {
    let what = match suffix {
        "_total" => "counter value".to_owned(),
        "_bucket" => format!("{} bucket count", noun(kind)),
        "_count" | "_gcount" | "_sum" | "_gsum" => format!("{} {suffix}", noun(kind)),
        _ => String::new(),
    };
    let problem = if !what.is_empty() {
        if value.is_nan() {
            Some(format!("{what} must not be NaN"))
        } else if value < 0.0 && suffix != "_gsum" {
            Some(format!("{what} must not be negative"))
        } else if matches!(suffix, "_bucket" | "_count" | "_gcount") && value.fract() != 0.0 {
            Some(format!("{what} must be an integer, not {}", num(value)))
        } else {
            None
        }
    } else {
        match kind {
            MetricType::Summary if value < 0.0 => {
                Some("summary quantile value must not be negative".into())
            }
            MetricType::StateSet if value != 0.0 && value != 1.0 => {
                Some(format!("stateset value must be 0 or 1, not {}", num(value)))
            }
            MetricType::Info if value != 1.0 => {
                Some(format!("info value must be 1, not {}", num(value)))
            }
            _ => None,
        }
    };
    let ok = problem.is_none();
    if let Some(message) = problem {
        out.push((pos, message));
    }
    ok
}
