//! The pure part of a scrape: body bytes → parse → target labels → metric
//! relabeling → limits → rendered family blocks. No I/O, so benchmarks and
//! `relay relabel` run exactly what the scrape loop runs.
//!
//! A series seen before is found in the target's [`SeriesCache`] by its
//! bytes in the body and written out as rendered then, so steady-state
//! scrapes parse and validate each line but build, relabel and render no
//! labels; a new series is processed once, its labels borrowing from the body
//! and the target. Output buffers are reused from scrape to scrape, so a
//! known series costs no heap allocation.

use std::hash::BuildHasher;
use std::ops::Range;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::exposition::{render, Entry, Format, Labels, MetricType, ParseError, Parser, Sample};
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
        &mut SeriesCache::default(),
        &mut out,
    )?;
    Ok(out)
}

/// Why a scrape's body was rejected whole (Prometheus fails the scrape too).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid exposition at line {0}")]
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
    /// Whether a line carries a timestamp (milliseconds in text, seconds
    /// in OpenMetrics): the only part of a sample line the formats differ in.
    pub timestamps: bool,
}

impl FamilyBlock {
    /// The family's `# HELP`/`# TYPE`/`# UNIT` lines in `format`.
    pub fn write_header(&self, out: &mut Vec<u8>, format: Format) {
        render::family_header(
            out,
            format,
            &self.name,
            self.help.as_deref(),
            self.kind,
            self.unit.as_deref(),
        );
    }
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
            f.write_header(out, format);
            out.extend_from_slice(&self.text[f.lines.clone()]);
        }
    }
}

/// A target's series as last scraped, keyed by their text as the target
/// wrote it (`name{labels}`), like Prometheus's scrape cache: a series seen
/// before skips label parsing, target labels, relabeling, sorting and
/// rendering, and one not seen before counts in `scrape_series_added`.
/// Valid for one target's [`Settings`]; the scrape loop keeps one per target.
///
/// Keys and rendered series live end to end in one string, so an entry costs
/// its bytes and a small index record, not two heap allocations.
#[derive(Debug, Default)]
pub struct SeriesCache {
    table: HashTable<Cached>,
    hasher: DefaultHashBuilder,
    /// Each entry's key followed by its rendered series.
    arena: String,
    /// Bytes of `arena` that no entry uses any more.
    garbage: usize,
    /// Where a new series is rendered before it joins the arena.
    scratch: Vec<u8>,
    /// Scrape counter, to find the entries the last scrape did not see.
    generation: u64,
    /// Entries the current scrape has seen.
    seen: usize,
    /// Size after the last successful scrape, to bound growth when scrapes fail.
    settled: usize,
}

/// Where one series' key and rendering are in the arena.
#[derive(Debug)]
struct Cached {
    start: usize,
    key_len: usize,
    /// Length of the rendered `name{labels}` after target labels,
    /// relabeling and sorting; 0 when relabeling dropped the series.
    series_len: usize,
    /// Length of the metric name at the start of the rendered series.
    name_len: usize,
    generation: u64,
}

impl Cached {
    fn key<'s>(&self, arena: &'s str) -> &'s [u8] {
        let bytes = arena.as_bytes();
        bytes
            .get(self.start..self.start + self.key_len)
            .unwrap_or_default()
    }

    fn series<'s>(&self, arena: &'s str) -> &'s str {
        let start = self.start + self.key_len;
        arena
            .get(start..start + self.series_len)
            .unwrap_or_default()
    }
}

impl SeriesCache {
    /// Call after a successful scrape: forgets the series it did not see.
    pub fn commit(&mut self) {
        if self.table.len() > self.seen {
            self.forget_unseen();
        }
        self.settled = self.table.len();
        self.next_generation();
    }

    /// Call after a failed scrape: keeps what is known unless a churning
    /// target has doubled the cache since the last success (as Prometheus).
    pub fn discard(&mut self) {
        if self.table.len() > 2 * self.settled + 1000 {
            self.forget_unseen();
        }
        self.next_generation();
    }

    fn next_generation(&mut self) {
        self.generation += 1;
        self.seen = 0;
    }

    fn forget_unseen(&mut self) {
        let (current, garbage) = (self.generation, &mut self.garbage);
        self.table.retain(|e| {
            let keep = e.generation == current;
            if !keep {
                *garbage += e.key_len + e.series_len;
            }
            keep
        });
        if self.garbage > self.arena.len() / 2 {
            let mut arena = String::with_capacity(self.arena.len() - self.garbage);
            for e in self.table.iter_mut() {
                let end = e.start + e.key_len + e.series_len;
                let bytes = self.arena.get(e.start..end).unwrap_or_default();
                e.start = arena.len();
                arena.push_str(bytes);
            }
            self.arena = arena;
            self.garbage = 0;
        }
    }

    /// The entry for `key`, the arena, and whether the entry is new. A new
    /// one is rendered by `first_sight` into the scratch buffer, which
    /// returns the metric name's length, or None for a dropped series.
    fn get_or_insert(
        &mut self,
        key: &[u8],
        first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
    ) -> Result<(&mut Cached, &str, bool), PipelineError> {
        let SeriesCache {
            table,
            hasher,
            arena,
            scratch,
            generation,
            seen,
            ..
        } = self;
        let hash = hasher.hash_one(key);
        let entry = table.entry(
            hash,
            |e| e.key(arena) == key,
            |e| hasher.hash_one(e.key(arena)),
        );
        let (cached, new) = match entry {
            hashbrown::hash_table::Entry::Occupied(o) => (o.into_mut(), false),
            hashbrown::hash_table::Entry::Vacant(v) => {
                scratch.clear();
                let name_len = first_sight(scratch)?.unwrap_or(0);
                let start = arena.len();
                // The parser has checked the key as UTF-8, and the series is
                // written from str pieces: these only check.
                arena.push_str(&String::from_utf8_lossy(key));
                let key_len = arena.len() - start;
                arena.push_str(&String::from_utf8_lossy(scratch));
                let cached = Cached {
                    start,
                    key_len,
                    series_len: arena.len() - start - key_len,
                    name_len,
                    generation: *generation,
                };
                (v.insert(cached).into_mut(), true)
            }
        };
        if new || cached.generation != *generation {
            cached.generation = *generation;
            *seen += 1;
        }
        Ok((cached, arena.as_str(), new))
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
    cache: &mut SeriesCache,
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
        let key = series_key(body, &sample);
        let (cached, arena, new) =
            cache.get_or_insert(key, |out| first_sight(&sample, &mut labels, settings, out))?;
        let series = cached.series(arena);
        if series.is_empty() {
            continue;
        }
        out.samples_kept += 1;
        // Past the limit the scrape has failed, but Prometheus still counts
        // the rest for scrape_samples_scraped and _post_metric_relabeling.
        if over_limit(out.samples_kept, settings.limits.sample_limit) {
            continue;
        }
        if new {
            out.series_added += 1;
        }
        let name = series.get(..cached.name_len).unwrap_or(series);
        open_block(out, &meta, name, settings.output);
        out.text.extend_from_slice(series.as_bytes());
        let timestamp = sample.timestamp_ms.filter(|_| settings.honor_timestamps);
        render::sample_tail(&mut out.text, settings.output, sample.value, timestamp);
        if let Some(block) = out.families.last_mut() {
            block.lines.end = out.text.len();
            block.timestamps |= timestamp.is_some();
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

/// What a series not in the cache becomes: target labels, relabeling, the
/// label limits, then sorted and rendered once into `out`. Returns the
/// metric name's length, or None when relabeling drops the series.
fn first_sight<'a>(
    sample: &Sample<'a>,
    labels: &mut Labels<'a>,
    settings: &Settings<'a>,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, PipelineError> {
    labels.clear();
    sample.labels_into(labels);
    add_target_labels(labels, settings.target_labels, settings.honor_labels);
    if !settings.rules.apply(labels) || labels.metric_name().is_empty() {
        return Ok(None);
    }
    check_label_limits(labels, &settings.limits)?;
    if settings.sort_labels {
        labels.sort();
    }
    render::series(out, labels);
    Ok(Some(labels.metric_name().len()))
}

/// The series as the target wrote it, name through labels (without the
/// closing `}`): a slice of the body, so looking it up allocates nothing.
pub(crate) fn series_key<'a>(body: &'a [u8], sample: &Sample<'a>) -> &'a [u8] {
    let offset = |s: &str| (s.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let start = offset(sample.name);
    let end = if sample.labels_src.is_empty() {
        start + sample.name.len()
    } else {
        offset(sample.labels_src) + sample.labels_src.len()
    };
    body.get(start..end).unwrap_or(sample.name.as_bytes())
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
        timestamps: false,
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
            &mut SeriesCache::default(),
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
    fn cached_series_render_as_on_first_sight_and_stale_ones_are_forgotten() {
        let target = target();
        let config = crate::config::from_yaml_str(
            "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: drop_me, action: drop}\n      - {source_labels: [x], target_label: y, replacement: 'y$1'}\n",
        )
        .expect("valid");
        let rules = &config.config.scrape_configs[0].metric_relabel;
        let settings = Settings::new(&target, rules);
        let mut cache = SeriesCache::default();
        let scrape = |body: &str, cache: &mut SeriesCache| {
            let mut out = Rendered::default();
            process(body.as_bytes(), Format::Text, &settings, cache, &mut out).expect("valid");
            cache.commit();
            let mut text = Vec::new();
            out.write(&mut text, Format::Text);
            (
                String::from_utf8_lossy(&text).into_owned(),
                out.samples_kept,
                out.series_added,
            )
        };
        let body =
            "# TYPE m gauge\nm{x=\"1\",a=\"\\\"q\\\"\"} 1\ndrop_me 2\nm{x=\"2\"} 3 1700000000000\n";
        let want = "# TYPE m gauge\nm{a=\"\\\"q\\\"\",instance=\"localhost:8001\",job=\"app\",x=\"1\",y=\"y1\"} 1\nm{instance=\"localhost:8001\",job=\"app\",x=\"2\",y=\"y2\"} 3 1700000000000\n";
        assert_eq!(scrape(body, &mut cache), (want.to_owned(), 2, 2));
        // Same series, new values: served from the cache, nothing added.
        let again = body.replace("} 1\n", "} 10\n");
        let (text, kept, added) = scrape(&again, &mut cache);
        assert_eq!((kept, added), (2, 0));
        assert_eq!(text, want.replace("} 1\n", "} 10\n"));
        assert_eq!(cache.table.len(), 3, "the dropped series is cached too");
        // A scrape without m{x="2"} forgets it; its return counts as added.
        scrape("m{x=\"1\",a=\"\\\"q\\\"\"} 1\n", &mut cache);
        assert_eq!(cache.table.len(), 1);
        assert_eq!(scrape(body, &mut cache).2, 1);
    }

    #[test]
    fn a_churning_target_cannot_grow_the_cache_without_bound() {
        let target = Labels::default();
        let rules = Rules::default();
        let settings = Settings {
            limits: Limits {
                sample_limit: 10,
                ..Limits::default()
            },
            ..Settings::new(&target, &rules)
        };
        let mut cache = SeriesCache::default();
        let mut out = Rendered::default();
        // Every scrape fails (over the sample limit) with 500 new series.
        for scrape in 0..20 {
            let body: String = (0..500)
                .map(|i| format!("m{{s=\"{scrape}-{i}\"}} 1\n"))
                .collect();
            let result = process(
                body.as_bytes(),
                Format::Text,
                &settings,
                &mut cache,
                &mut out,
            );
            assert!(matches!(
                result,
                Err(PipelineError::SampleLimit { count: 500, .. })
            ));
            cache.discard();
            assert!(cache.table.len() <= 1500, "{} entries", cache.table.len());
        }
        // A successful scrape keeps only what it saw.
        process(b"m 1\n", Format::Text, &settings, &mut cache, &mut out).expect("ok");
        cache.commit();
        assert_eq!(cache.table.len(), 1);
        // Successful scrapes that churn: the arena is compacted, and what
        // stays renders as before.
        let settings = Settings::new(&target, &rules);
        for scrape in 0..20 {
            let body: String = (0..100)
                .map(|i| format!("m{{s=\"{scrape}-{i}\"}} 1\nkept 2\n"))
                .collect();
            process(
                body.as_bytes(),
                Format::Text,
                &settings,
                &mut cache,
                &mut out,
            )
            .expect("ok");
            cache.commit();
            assert_eq!(cache.table.len(), 101);
            let live: usize = cache.table.iter().map(|e| e.key_len + e.series_len).sum();
            assert!(
                cache.arena.len() <= 2 * live + 64,
                "{} for {live}",
                cache.arena.len()
            );
        }
        process(b"kept 3\n", Format::Text, &settings, &mut cache, &mut out).expect("ok");
        assert_eq!(out.series_added, 0);
        assert_eq!(String::from_utf8_lossy(&out.text), "kept 3\n");
    }

    #[test]
    fn series_added_counts_new_series_only() {
        let target = Labels::default();
        let rules = Rules::default();
        let settings = Settings::new(&target, &rules);
        let mut cache = SeriesCache::default();
        let mut out = Rendered::default();
        process(b"a 1\nb 1\n", Format::Text, &settings, &mut cache, &mut out).expect("ok");
        assert_eq!(out.series_added, 2);
        cache.commit();
        process(b"a 2\nc 1\n", Format::Text, &settings, &mut cache, &mut out).expect("ok");
        assert_eq!(out.series_added, 1);
    }
}
