//! `relay relabel`: try a job's `metric_relabel_configs` on a real
//! exposition, and with `--explain` see what each rule did to each series
//! (a relabel debugger; Prometheus has none). Each series gets one of the
//! job's targets' labels (`job`, `instance`, static labels, as
//! `relabel_configs` left them) before the rules, through the scrape's own
//! code, so a rule on `job` or `instance` does here what it does in `relay run`.

use std::io::Write;

use crate::exposition::{render, Entry, Format, Labels, ParseError, Parser};
use crate::plan::{Job, Plan};
use crate::scrape::pipeline::{self, PipelineError, Rendered, SeriesCache, Settings};
use crate::targets::Target;

use crate::relabel::RelabelConfig;

/// Why `relay relabel` could not relabel its input.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no scrape config has job_name {0:?} (jobs: {1})")]
    NoSuchJob(String, String),
    #[error("the config has no scrape_configs")]
    NoJobs,
    #[error("job {0:?} has no target (its series take job, instance and static labels from one)")]
    NoTargets(String),
    #[error("job {job:?} has no target {target:?} (targets: {targets})")]
    NoSuchTarget {
        job: String,
        target: String,
        targets: String,
    },
    #[error("stdin:{0}")]
    Parse(ParseError),
    #[error("{0}")]
    Limit(String),
    #[error("cannot write the output")]
    Io(#[from] std::io::Error),
}

impl From<ParseError> for CliError {
    fn from(e: ParseError) -> Self {
        CliError::Parse(e)
    }
}

/// `relay relabel`: applies one job's `metric_relabel_configs` (the first
/// job's when `job` is None) to every series of `input`, with the labels of
/// the job's target at `target` (its first when None), and writes the
/// survivors to `out`; with `explain`, each rule's effect per series instead.
pub fn run_cli(
    plan: &Plan,
    job: Option<&str>,
    target: Option<&str>,
    explain: bool,
    format: Format,
    input: &[u8],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let job = find_job(plan, job)?;
    let target = find_target(job, target)?;
    let settings = Settings {
        output: format,
        ..crate::scrape::settings(job, &target.labels)
    };
    if explain {
        explain_all(&settings, format, input, out)
    } else {
        relabel_all(&settings, format, input, out)
    }
}

/// The target whose labels the series get, as `relay run` builds it
/// (static labels, then `relabel_configs`): the one at `address`, or the first.
fn find_target(job: &Job, address: Option<&str>) -> Result<Target, CliError> {
    let found = &job.targets;
    let picked = match address {
        None => found.first(),
        Some(a) => found
            .iter()
            .find(|t| t.labels.get("instance") == Some(a) || t.url.contains(&format!("//{a}/"))),
    };
    match (picked, address) {
        (Some(t), _) => Ok(t.clone()),
        (None, None) => Err(CliError::NoTargets(job.config.job_name.clone())),
        (None, Some(a)) => Err(CliError::NoSuchTarget {
            job: job.config.job_name.clone(),
            target: a.to_owned(),
            targets: found
                .iter()
                .map(|t| t.labels.get("instance").unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn find_job<'p>(plan: &'p Plan, job: Option<&str>) -> Result<&'p Job, CliError> {
    match job {
        None => plan.jobs.first().map(|j| &**j).ok_or(CliError::NoJobs),
        Some(name) => plan
            .jobs
            .iter()
            .map(|j| &**j)
            .find(|j| j.config.job_name == name)
            .ok_or_else(|| {
                let names: Vec<_> = plan
                    .jobs
                    .iter()
                    .map(|j| j.config.job_name.as_str())
                    .collect();
                CliError::NoSuchJob(name.to_owned(), names.join(", "))
            }),
    }
}

/// The scrape pipeline itself, rendering what `relay run` would serve for
/// this input (minus its `up` and `scrape_*` series).
fn relabel_all(
    settings: &Settings<'_>,
    format: Format,
    input: &[u8],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut rendered = Rendered::default();
    pipeline::process(
        input,
        format,
        settings,
        &mut SeriesCache::default(),
        &mut rendered,
    )
    .map_err(|e| match e {
        PipelineError::Parse(e) => CliError::Parse(e),
        other => CliError::Limit(other.to_string()),
    })?;
    let mut buf = Vec::with_capacity(input.len());
    rendered.write(&mut buf, format);
    render::end(&mut buf, format);
    out.write_all(&buf)?;
    Ok(())
}

fn explain_all(
    settings: &Settings<'_>,
    format: Format,
    input: &[u8],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let rules = settings.rules;
    let mut labels = Labels::with_capacity(16);
    let mut text = Vec::new();
    for entry in Parser::new(input, format) {
        let Entry::Sample(sample) = entry? else {
            continue;
        };
        text.clear();
        text.extend_from_slice(b"series ");
        labels.clear();
        sample.labels_into(&mut labels);
        render::series(&mut text, &labels);
        pipeline::labels_before_relabel(&sample, &mut labels, settings);
        text.extend_from_slice(b"\n  with the target's labels");
        if settings.honor_labels {
            text.extend_from_slice(b" (honor_labels: the scraped values win)");
        }
        text.extend_from_slice(b"\n      -> ");
        render::series(&mut text, &labels);
        text.push(b'\n');
        let mut last = 0;
        let kept = rules.apply_traced(&mut labels, |i, rule, after| {
            last = i + 1;
            let _ = write!(text, "  [{i}] {}\n      -> ", describe(rule));
            render::series(&mut text, after);
            text.push(b'\n');
        });
        if !kept {
            let rule = rules.configs().nth(last).map(describe).unwrap_or_default();
            let _ = writeln!(text, "  [{last}] {rule}\n      -> dropped");
        } else if labels.metric_name().is_empty() {
            text.extend_from_slice(b"  => dropped: no __name__ left\n");
        } else {
            // Stored with sorted labels, as the scrape does.
            labels.sort();
            text.extend_from_slice(b"  => kept as ");
            render::series(&mut text, &labels);
            text.push(b'\n');
        }
        out.write_all(&text)?;
    }
    Ok(())
}

/// A rule in one line, naming only the fields that differ from the defaults.
fn describe(rule: &RelabelConfig) -> String {
    let mut s = rule.action.to_string();
    if !rule.source_labels.is_empty() {
        s.push_str(&format!(
            " source_labels=[{}]",
            rule.source_labels.join(",")
        ));
    }
    if rule.separator != ";" {
        s.push_str(&format!(" separator={:?}", rule.separator));
    }
    if rule.regex != crate::relabel::DEFAULT_REGEX {
        s.push_str(&format!(" regex={:?}", rule.regex));
    }
    if let Some(m) = rule.modulus {
        s.push_str(&format!(" modulus={m}"));
    }
    if let Some(t) = &rule.target_label {
        s.push_str(&format!(" target_label={t}"));
    }
    if rule.replacement != "$1" {
        s.push_str(&format!(" replacement={:?}", rule.replacement));
    }
    s
}
