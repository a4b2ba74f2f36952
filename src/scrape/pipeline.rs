//! The pure part of a scrape: body bytes → parse → target labels → metric
//! relabeling → limits → rendered family blocks. No I/O, so benchmarks and
//! `relay relabel` run exactly what the scrape loop runs.
//!
//! Labels borrow from the body and the target; the output buffers are reused
//! from scrape to scrape, so a sample that passes unchanged costs no heap
//! allocation.

use std::collections::HashSet;
use std::ops::Range;

use crate::exposition::{render, Entry, Format, Labels, MetricType, ParseError, Parser};
use crate::relabel::Rules;

/// Prometheus's per-scrape limits; 0 means no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
}

/// How one target's samples are turned into output.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'t> {
    /// `job`, `instance` and static labels; empty for `relay relabel`.
    pub target_labels: &'t Labels<'static>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub rules: &'t Rules,
    pub limits: Limits,
    /// The format the sample lines are rendered in.
    pub output: Format,
    /// Sort labels by name (what Prometheus stores); off to keep input order.
    pub sort_labels: bool,
}

impl<'t> Settings<'t> {
    /// Prometheus's defaults for a target: target labels win, timestamps are
    /// honored, no limits, text output, labels sorted.
    pub fn new(target_labels: &'t Labels<'static>, rules: &'t Rules) -> Self {
        Settings {
            target_labels,
            honor_labels: false,
            honor_timestamps: true,
            rules,
            limits: Limits::default(),
            output: Format::Text,
            sort_labels: true,
        }
    }
}

/// Re-renders an exposition in another format, samples and label order
/// unchanged (relay's own metrics, OpenMetrics on request).
pub fn convert(body: &[u8], input: Format, output: Format) -> Result<Rendered, PipelineError> {
    static NO_LABELS: Labels<'static> = Labels::new();
    let rules = Rules::default();
    let settings = Settings {
        output,
        sort_labels: false,
        ..Settings::new(&NO_LABELS, &rules)
    };
    let mut out = Rendered::default();
    process(
        body,
        input,
        &settings,
        &mut SeriesMemory::default(),
        &mut out,
    )?;
    Ok(out)
}

/// Why a scrape's body was rejected whole (Prometheus fails the scrape too).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    #[error("line {0}")]
    Parse(ParseError),
    #[error("sample_limit exceeded: {count} samples after relabeling, limit {limit}")]
    SampleLimit { count: usize, limit: usize },
    #[error("label_limit exceeded (metric: {metric}, number of labels: {count}, limit: {limit})")]
    LabelLimit {
        metric: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "label_name_length_limit exceeded (metric: {metric}, label name: {name}, limit: {limit})"
    )]
    LabelNameLength {
        metric: String,
        name: String,
        limit: usize,
    },
    #[error("label_value_length_limit exceeded (metric: {metric}, label value of {name}: {length} bytes, limit: {limit})")]
    LabelValueLength {
        metric: String,
        name: String,
        length: usize,
        limit: usize,
    },
}

impl PipelineError {
    /// A short, stable word for the failure metric's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            PipelineError::Parse(_) => "parse",
            PipelineError::SampleLimit { .. } => "sample_limit",
            _ => "label_limit",
        }
    }
}

/// One block of a family's sample lines in [`Rendered::text`].
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyBlock {
    /// The name the HELP/TYPE lines carry.
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub unit: Option<String>,
    pub lines: Range<usize>,
}

/// A target's relabeled samples, rendered; reused between scrapes.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub families: Vec<FamilyBlock>,
    pub text: Vec<u8>,
    pub samples_scraped: usize,
    pub samples_kept: usize,
    pub series_added: usize,
}

impl Rendered {
    /// Drops the rendered samples but keeps the counts (a failed scrape).
    pub fn clear_samples(&mut self) {
        self.families.clear();
        self.text.clear();
    }

    pub fn clear(&mut self) {
        self.clear_samples();
        self.samples_scraped = 0;
        self.samples_kept = 0;
        self.series_added = 0;
    }

    /// Writes every block with its header, in order, as one exposition body
    /// (without the OpenMetrics `# EOF`).
    pub fn write(&self, out: &mut Vec<u8>, format: Format) {
        for f in &self.families {
            render::family_header(
                out,
                format,
                &f.name,
                f.help.as_deref(),
                f.kind,
                f.unit.as_deref(),
            );
            out.extend_from_slice(&self.text[f.lines.clone()]);
        }
    }
}

/// The series seen in the last successful scrape, for `scrape_series_added`.
#[derive(Debug, Default)]
pub struct SeriesMemory {
    previous: HashSet<u64>,
    current: HashSet<u64>,
}

impl SeriesMemory {
    /// Call after a successful scrape: what was current becomes previous.
    pub fn commit(&mut self) {
        std::mem::swap(&mut self.previous, &mut self.current);
        self.current.clear();
    }

    /// Call after a failed scrape: forget the partial set.
    pub fn discard(&mut self) {
        self.current.clear();
    }
}

/// The family the next samples belong to (from HELP/TYPE/UNIT lines).
#[derive(Default)]
struct Meta<'a> {
    name: &'a str,
    help: Option<std::borrow::Cow<'a, str>>,
    kind: MetricType,
    unit: Option<&'a str>,
}

impl<'a> Meta<'a> {
    fn for_name(&mut self, name: &'a str) -> &mut Self {
        if self.name != name {
            *self = Meta {
                name,
                ..Meta::default()
            };
        }
        self
    }
}

/// Runs one body through the pipeline into `out` (cleared first). On an
/// error `out` still holds the counts up to it, which Prometheus reports.
pub fn process(
    body: &[u8],
    input: Format,
    settings: &Settings<'_>,
    memory: &mut SeriesMemory,
    out: &mut Rendered,
) -> Result<(), PipelineError> {
    out.clear();
    let mut meta = Meta::default();
    let mut labels: Labels<'_> = Labels::with_capacity(16);
    for entry in Parser::new(body, input) {
        let sample = match entry.map_err(PipelineError::Parse)? {
            Entry::Help { name, text } => {
                meta.for_name(name).help = Some(text);
                continue;
            }
            Entry::Type { name, kind } => {
                meta.for_name(name).kind = kind;
                continue;
            }
            Entry::Unit { name, unit } => {
                meta.for_name(name).unit = Some(unit);
                continue;
            }
            Entry::Comment(_) | Entry::Eof => continue,
            Entry::Sample(s) => s,
        };
        out.samples_scraped += 1;
        labels.clear();
        sample.labels_into(&mut labels);
        add_target_labels(&mut labels, settings.target_labels, settings.honor_labels);
        if !settings.rules.apply(&mut labels) || labels.metric_name().is_empty() {
            continue;
        }
        check_label_limits(&labels, &settings.limits)?;
        out.samples_kept += 1;
        // Past the limit the scrape has failed, but Prometheus still counts
        // the rest for scrape_samples_scraped and _post_metric_relabeling.
        if over_limit(out.samples_kept, settings.limits.sample_limit) {
            continue;
        }
        if settings.sort_labels {
            labels.sort();
        }
        let id = labels.hash64();
        if memory.current.insert(id) && !memory.previous.contains(&id) {
            out.series_added += 1;
        }
        open_block(out, &meta, labels.metric_name(), settings.output);
        let timestamp = sample.timestamp_ms.filter(|_| settings.honor_timestamps);
        render::sample(
            &mut out.text,
            settings.output,
            &labels,
            sample.value,
            timestamp,
        );
        if let Some(block) = out.families.last_mut() {
            block.lines.end = out.text.len();
        }
    }
    if over_limit(out.samples_kept, settings.limits.sample_limit) {
        return Err(PipelineError::SampleLimit {
            count: out.samples_kept,
            limit: settings.limits.sample_limit,
        });
    }
    Ok(())
}

fn over_limit(count: usize, limit: usize) -> bool {
    limit > 0 && count > limit
}

/// Starts a new block unless the sample continues the last one. A sample
/// relabeled out of its family's names stands in an untyped family of its own.
fn open_block(out: &mut Rendered, meta: &Meta<'_>, name: &str, format: Format) {
    let in_family = !meta.name.is_empty() && meta.kind.has_sample(meta.name, name);
    let (family, kind) = if in_family {
        (meta.name, meta.kind)
    } else {
        (name, MetricType::Unknown)
    };
    // Text 0.0.4 names a counter family after its samples (`x_total`).
    let header = match (format, kind) {
        (Format::Text, MetricType::Counter)
            if name.len() > family.len() && name.ends_with("_total") =>
        {
            name
        }
        _ => family,
    };
    if out.families.last().is_some_and(|b| b.name == header) {
        return;
    }
    let start = out.text.len();
    out.families.push(FamilyBlock {
        name: header.to_owned(),
        help: in_family
            .then(|| meta.help.as_deref().map(str::to_owned))
            .flatten(),
        kind,
        unit: in_family.then(|| meta.unit.map(str::to_owned)).flatten(),
        lines: start..start,
    });
}

/// Prometheus's `mutateSampleLabels` before relabeling: with honor_labels the
/// scraped value wins; otherwise the target's does and a scraped label of the
/// same name is kept as `exported_<name>` (`exported_exported_...` if taken).
fn add_target_labels<'a>(labels: &mut Labels<'a>, target: &'a Labels<'static>, honor: bool) {
    for tl in target.iter() {
        let existing = labels.get_cow(&tl.name);
        match (honor, existing) {
            (true, Some(_)) => {}
            (true, None) | (false, None) => labels.set(tl.name.as_ref(), tl.value.as_ref()),
            (false, Some(scraped)) => {
                labels.set(tl.name.as_ref(), tl.value.as_ref());
                let mut name = format!("exported_{}", tl.name);
                while labels.get(&name).is_some() {
                    name.insert_str(0, "exported_");
                }
                labels.set(name, scraped);
            }
        }
    }
}

fn check_label_limits(labels: &Labels<'_>, limits: &Limits) -> Result<(), PipelineError> {
    let metric = || labels.metric_name().chars().take(50).collect::<String>();
    if limits.label_limit > 0 && labels.len() > limits.label_limit {
        return Err(PipelineError::LabelLimit {
            metric: metric(),
            count: labels.len(),
            limit: limits.label_limit,
        });
    }
    for l in labels.iter() {
        if limits.label_name_length_limit > 0 && l.name.len() > limits.label_name_length_limit {
            return Err(PipelineError::LabelNameLength {
                metric: metric(),
                name: l.name.to_string(),
                limit: limits.label_name_length_limit,
            });
        }
        if limits.label_value_length_limit > 0 && l.value.len() > limits.label_value_length_limit {
            return Err(PipelineError::LabelValueLength {
                metric: metric(),
                name: l.name.to_string(),
                length: l.value.len(),
                limit: limits.label_value_length_limit,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        body: &str,
        target: &Labels<'static>,
        honor: bool,
        rules: &Rules,
        limits: Limits,
    ) -> Result<String, PipelineError> {
        let settings = Settings {
            honor_labels: honor,
            limits,
            ..Settings::new(target, rules)
        };
        let mut out = Rendered::default();
        process(
            body.as_bytes(),
            Format::Text,
            &settings,
            &mut SeriesMemory::default(),
            &mut out,
        )?;
        let mut text = Vec::new();
        out.write(&mut text, Format::Text);
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    fn target() -> Labels<'static> {
        [("instance", "localhost:8001"), ("job", "app")]
            .into_iter()
            .collect()
    }

    #[test]
    fn target_labels_win_and_conflicts_are_exported() {
        let got = run(
            "# TYPE m gauge\nm{job=\"x\",exported_job=\"y\",a=\"1\"} 1\n",
            &target(),
            false,
            &Rules::default(),
            Limits::default(),
        );
        assert_eq!(
            got.as_deref(),
            Ok("# TYPE m gauge\nm{a=\"1\",exported_exported_job=\"x\",exported_job=\"y\",instance=\"localhost:8001\",job=\"app\"} 1\n")
        );
    }

    #[test]
    fn honor_labels_keeps_scraped_values() {
        let got = run(
            "m{job=\"x\"} 1\n",
            &target(),
            true,
            &Rules::default(),
            Limits::default(),
        );
        assert_eq!(
            got.as_deref(),
            Ok("# TYPE m untyped\nm{instance=\"localhost:8001\",job=\"x\"} 1\n")
        );
    }

    #[test]
    fn counters_keep_their_total_name_in_text() {
        let got = run(
            "# HELP c_total C.\n# TYPE c_total counter\nc_total 1\n",
            &Labels::default(),
            false,
            &Rules::default(),
            Limits::default(),
        );
        assert_eq!(
            got.as_deref(),
            Ok("# HELP c_total C.\n# TYPE c_total counter\nc_total 1\n")
        );
    }

    #[test]
    fn limits_fail_the_scrape() {
        let limits = Limits {
            sample_limit: 1,
            ..Limits::default()
        };
        let err = run(
            "a 1\nb 2\n",
            &Labels::default(),
            false,
            &Rules::default(),
            limits,
        );
        assert_eq!(err, Err(PipelineError::SampleLimit { count: 2, limit: 1 }));
        let limits = Limits {
            label_limit: 2,
            ..Limits::default()
        };
        let err = run(
            "a{x=\"1\",y=\"2\"} 1\n",
            &Labels::default(),
            false,
            &Rules::default(),
            limits,
        );
        assert!(
            matches!(
                err,
                Err(PipelineError::LabelLimit {
                    count: 3,
                    limit: 2,
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn series_added_counts_new_series_only() {
        let target = Labels::default();
        let rules = Rules::default();
        let settings = Settings::new(&target, &rules);
        let mut memory = SeriesMemory::default();
        let mut out = Rendered::default();
        process(
            b"a 1\nb 1\n",
            Format::Text,
            &settings,
            &mut memory,
            &mut out,
        )
        .expect("ok");
        assert_eq!(out.series_added, 2);
        memory.commit();
        process(
            b"a 2\nc 1\n",
            Format::Text,
            &settings,
            &mut memory,
            &mut out,
        )
        .expect("ok");
        assert_eq!(out.series_added, 1);
    }
}
