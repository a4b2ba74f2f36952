//! The text 0.0.4 rules of `relay check metrics`, as `promtool check
//! metrics` applies them: the parser's errors plus a counter's `_total`, a
//! histogram's `+Inf` bucket, one HELP/TYPE per family, a family's samples
//! kept together. Scrapes do not apply these: Prometheus ingests such
//! expositions, so relay does too.

use std::collections::HashMap;

use crate::exposition::model::MetricType;
use crate::exposition::parse::{Entry, Format, ParseError, Parser, Sample};
use crate::exposition::render;

/// Every problem of a text 0.0.4 exposition, unsorted.
pub(super) fn check(input: &[u8]) -> Vec<ParseError> {
    let mut lint = Lint::new();
    let mut parser = Parser::new(input, Format::Text);
    while let Some(entry) = parser.next() {
        match entry {
            Ok(entry) => lint.entry(&entry, parser.line()),
            Err(e) => lint.problems.push(e),
        }
    }
    lint.finish_family();
    lint.raw_rules(input);
    lint.problems
}

#[derive(Default)]
struct Family {
    name: String,
    kind: MetricType,
    has_help: bool,
    has_type: bool,
    has_unit: bool,
    samples: usize,
    /// Histogram series (labels but `le`) → (line of first bucket, saw +Inf).
    buckets: HashMap<String, (usize, bool)>,
}

struct Lint {
    family: Option<Family>,
    /// Families already closed, with the line they started on.
    seen: HashMap<String, usize>,
    started_line: usize,
    problems: Vec<ParseError>,
}

impl Lint {
    fn new() -> Self {
        Lint {
            family: None,
            seen: HashMap::new(),
            started_line: 0,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, line: usize, message: String) {
        self.problems.push(ParseError {
            line,
            col: 1,
            message,
        });
    }

    fn entry(&mut self, entry: &Entry<'_>, line: usize) {
        match entry {
            Entry::Help { name, .. } => {
                let family = self.family_for_metadata(name, line);
                if std::mem::replace(&mut family.has_help, true) {
                    self.problem(line, format!("second HELP line for metric family {name:?}"));
                }
            }
            Entry::Type { name, kind } => {
                let family = self.family_for_metadata(name, line);
                let (dup, late) = (family.has_type, family.samples > 0);
                family.has_type = true;
                family.kind = *kind;
                if dup {
                    self.problem(line, format!("second TYPE line for metric family {name:?}"));
                } else if late {
                    self.problem(
                        line,
                        format!("TYPE line for {name:?} must come before its samples"),
                    );
                }
            }
            Entry::Unit { name, .. } => {
                let family = self.family_for_metadata(name, line);
                if std::mem::replace(&mut family.has_unit, true) {
                    self.problem(line, format!("second UNIT line for metric family {name:?}"));
                }
            }
            Entry::Sample(sample) => self.sample(sample, line),
            Entry::Comment(_) | Entry::Eof => {}
        }
    }

    /// The family a HELP/TYPE/UNIT line belongs to, opening it if new.
    fn family_for_metadata(&mut self, name: &str, line: usize) -> &mut Family {
        if self.family.as_ref().is_none_or(|f| f.name != name) {
            self.open_family(name, line);
        }
        self.family.get_or_insert_with(Family::default)
    }

    fn open_family(&mut self, name: &str, line: usize) {
        self.finish_family();
        if let Some(first) = self.seen.get(name) {
            self.problem(
                line,
                format!("metric family {name:?} is not contiguous (it already appeared on line {first})"),
            );
        }
        self.started_line = line;
        self.family = Some(Family {
            name: name.to_owned(),
            ..Family::default()
        });
    }

    fn finish_family(&mut self) {
        let Some(family) = self.family.take() else {
            return;
        };
        let mut missing: Vec<_> = family
            .buckets
            .iter()
            .filter(|(_, (_, inf))| !inf)
            .map(|(series, (line, _))| (*line, series.clone()))
            .collect();
        missing.sort();
        for (line, series) in missing {
            self.problem(
                line,
                format!(
                    "histogram {:?} has no bucket with le=\"+Inf\" for series {{{series}}}",
                    family.name
                ),
            );
        }
        self.seen.entry(family.name).or_insert(self.started_line);
    }

    /// What promtool's parser refuses in the raw text that scrapes accept
    /// (Prometheus ingests it): escapes other than `\\`, `\"` and `\n`
    /// in label values (`\\` and `\n` in HELP), and a last line without
    /// its newline.
    fn raw_rules(&mut self, input: &[u8]) {
        for (i, line) in input.split(|b| *b == b'\n').enumerate() {
            let value: &[u8] = b"\\\"n";
            // A quoted metric name on a HELP line takes a label value's
            // escapes (expfmt reads it so); the HELP text after it does not.
            let mut quoted_name_end = 0;
            let allowed: &[u8] = if let Some(rest) = line.strip_prefix(b"# HELP ") {
                let blanks = rest
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                if let Some(name) = rest[blanks..].strip_prefix(b"\"") {
                    quoted_name_end =
                        line.len() - name.len() + render::quoted_len(name).unwrap_or(0);
                }
                b"\\n"
            } else if line.starts_with(b"#") {
                continue;
            } else {
                value
            };
            let mut at = 0;
            while let Some(j) = line.get(at..).and_then(|r| memchr::memchr(b'\\', r)) {
                let pos = at + j;
                let allowed = if pos < quoted_name_end {
                    value
                } else {
                    allowed
                };
                match line.get(pos + 1) {
                    Some(next) if allowed.contains(next) => {}
                    next => {
                        let shown = next.map_or(String::new(), |b| char::from(*b).to_string());
                        self.problems.push(ParseError {
                            line: i + 1,
                            col: pos + 1,
                            message: format!("invalid escape sequence '\\{shown}'"),
                        });
                    }
                }
                at = pos + 2;
            }
        }
        if input.last().is_some_and(|b| *b != b'\n') {
            let lines = memchr::memchr_iter(b'\n', input).count();
            let start = memchr::memrchr(b'\n', input).map_or(0, |p| p + 1);
            self.problems.push(ParseError {
                line: lines + 1,
                col: input.len() - start + 1,
                message: "unexpected end of input stream (the last line has no newline)".into(),
            });
        }
    }

    fn sample(&mut self, sample: &Sample<'_>, line: usize) {
        let belongs = self
            .family
            .as_ref()
            .is_some_and(|f| f.kind.has_sample(&f.name, &sample.name));
        if !belongs {
            self.open_family(&sample.name, line);
        }
        let Some(family) = self.family.as_mut() else {
            return;
        };
        family.samples += 1;
        let mut problem = None;
        match family.kind {
            MetricType::Counter
                if !(sample.name.ends_with("_total") || sample.name.ends_with("_created")) =>
            {
                problem = Some(format!(
                    "counter {:?} should have a \"_total\" suffix",
                    sample.name
                ));
            }
            MetricType::Histogram | MetricType::GaugeHistogram
                if sample.name.ends_with("_bucket") =>
            {
                problem = record_bucket(family, sample, line);
            }
            MetricType::Summary if sample.name == family.name => {
                let quantile = sample.labels().find(|(n, _)| *n == "quantile");
                match quantile {
                    None => {
                        problem = Some(format!(
                            "summary {:?} sample has no quantile label",
                            sample.name
                        ))
                    }
                    Some((_, q)) if q.parse::<f64>().is_err() => {
                        problem = Some(format!(
                            "summary {:?} has a bad quantile {q:?}",
                            sample.name
                        ))
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
        if let Some(message) = problem {
            self.problem(line, message);
        }
    }
}

/// Notes a histogram bucket; returns a problem when its `le` is missing or bad.
fn record_bucket(family: &mut Family, sample: &Sample<'_>, line: usize) -> Option<String> {
    let mut le = None;
    let mut series = String::new();
    for (name, value) in sample.labels() {
        if name == "le" {
            le = Some(value);
        } else {
            if !series.is_empty() {
                series.push(',');
            }
            series.push_str(&format!("{name}={value:?}"));
        }
    }
    let Some(le) = le else {
        return Some(format!(
            "histogram bucket {:?} has no le label",
            sample.name
        ));
    };
    let Ok(bound) = le.parse::<f64>() else {
        return Some(format!(
            "histogram bucket {:?} has a bad le {le:?}",
            sample.name
        ));
    };
    let entry = family.buckets.entry(series).or_insert((line, false));
    entry.1 |= bound == f64::INFINITY;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(input: &str) -> Vec<String> {
        check(input.as_bytes())
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn family_rules() {
        let cases: &[(&str, &str)] = &[
            (
                "# TYPE c counter\nc 1\n",
                "2:1: counter \"c\" should have a \"_total\" suffix",
            ),
            (
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
                "2:1: histogram \"h\" has no bucket with le=\"+Inf\" for series {}",
            ),
            (
                "# TYPE g gauge\n# TYPE g gauge\ng 1\n",
                "2:1: second TYPE line for metric family \"g\"",
            ),
            (
                "# HELP g x\n# HELP g y\ng 1\n",
                "2:1: second HELP line for metric family \"g\"",
            ),
            (
                "a 1\nb 1\na 2\n",
                "3:1: metric family \"a\" is not contiguous (it already appeared on line 1)",
            ),
            ("s{quantile=\"x\"} 1\n", ""),
            ("a{x=\"\\q\"} 1\n", "1:6: invalid escape sequence '\\q'"),
            ("a{x=\"\\\\ \\\" \\n\"} 1\n", ""),
            (
                "# HELP a x \\\"\na 1\n",
                "1:12: invalid escape sequence '\\\"'",
            ),
            (
                "# HELP \"a\\\"b\\\\c\\nd\" x\n{\"a\\\"b\\\\c\\nd\",\"e\\\"f\"=\"1\"} 1\n",
                "",
            ),
            (
                "# HELP \"a\\\"b\" x \\\"\n{\"a\\\"b\"} 1\n",
                "1:17: invalid escape sequence '\\\"'",
            ),
            (
                "a 1\n# c",
                "2:4: unexpected end of input stream (the last line has no newline)",
            ),
            (
                "a{__name__=\"b\"} 1\n",
                "1:3: label name \"__name__\" is not unique (the metric name goes before the braces)",
            ),
            (
                "# TYPE s summary\ns{quantile=\"x\"} 1\n",
                "2:1: summary \"s\" has a bad quantile \"x\"",
            ),
        ];
        for (input, want) in cases {
            let want: Vec<&str> = Some(*want).filter(|w| !w.is_empty()).into_iter().collect();
            assert_eq!(problems(input), want, "{input:?}");
        }
    }

    #[test]
    fn valid_histogram_has_no_problems() {
        let input = "# HELP h x\n# TYPE h histogram\nh_bucket{a=\"1\",le=\"0.5\"} 1\nh_bucket{a=\"1\",le=\"+Inf\"} 2\nh_sum{a=\"1\"} 3\nh_count{a=\"1\"} 2\n";
        assert_eq!(problems(input), Vec::<String>::new());
    }
}
