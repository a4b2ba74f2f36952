//! The pure part of a scrape: body bytes → parse → target labels → metric
//! relabeling → limits → samples handed to an [`Appender`] (the rendered
//! family blocks of [`Rendered`], the WAL, or both). No I/O, so benchmarks
//! and `relay relabel` run exactly what the scrape loop runs.
//!
//! A series seen before is found in the target's [`SeriesCache`] by its
//! bytes in the body and handed on as rendered then, so steady-state
//! scrapes parse and validate each line but build, relabel and render no
//! labels; a new series is processed once, its labels borrowing from the body
//! and the target. Output buffers are reused from scrape to scrape, so a
//! known series costs no heap allocation.

use std::borrow::Cow;

use super::cache::Kind;
pub use super::cache::SeriesCache;
pub use super::error::PipelineError;
use super::lookup::Lookups;
use crate::exposition::proto::{self, ProtoSample, SampleValue};
use crate::exposition::{render, Entry, Format, Labels, MetricType, Parser, Resume, Sample};
use crate::relabel::Rules;
pub use crate::snapshot::{Counts, FamilyBlock, Rendered};
pub use crate::storage::{Appended, Appender, Family};
use crate::storage::{Exemplar, Histogram, Value};

/// Prometheus's per-scrape limits; 0 means no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    /// vmagent's: new series past it are dropped, not the scrape.
    pub series_limit: usize,
    /// `body_size_limit` in bytes: a protobuf message whose length prefix
    /// reaches past it is refused before it is buffered.
    pub body_size_limit: usize,
}

/// How many labels a line is taken to hold when bounding its length
/// without a `label_limit` (see [`Limits::line_bound`]).
const BOUND_LABELS: usize = 128;
/// Room for a line's value, timestamp and OpenMetrics exemplar (whose labels
/// OpenMetrics caps at 128 characters) past its labels.
const BOUND_TAIL: usize = 1024;

impl Limits {
    /// The longest sample line (or lines joined inside a quoted value) that
    /// the label limits can let through, so a longer one is refused while it
    /// streams in instead of being buffered whole first: every name and
    /// value at its limit (names at the value limit when unlimited) and
    /// escaped (two bytes a byte), `label_limit` labels or 128, the metric
    /// name, and the tail; at least a 64 KiB piece. None without a
    /// `label_value_length_limit`: a value is then unbounded.
    pub fn line_bound(&self) -> Option<usize> {
        let value = self.label_value_length_limit;
        if value == 0 {
            return None;
        }
        let name = match self.label_name_length_limit {
            0 => value,
            n => n,
        };
        let count = match self.label_limit {
            0 => BOUND_LABELS,
            n => n,
        };
        // `"name"="value",` with every byte escaped.
        let label = name
            .saturating_mul(2)
            .saturating_add(value.saturating_mul(2))
            .saturating_add(6);
        // The metric name, quoted (it is `__name__`'s value).
        let metric = value.saturating_mul(2).saturating_add(2);
        Some(
            count
                .saturating_mul(label)
                .saturating_add(metric)
                .saturating_add(BOUND_TAIL)
                .max(PIECE),
        )
    }
}

/// How one target's samples are turned into output.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'t> {
    /// `job`, `instance` and static labels.
    pub target_labels: &'t Labels<'static>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub rules: &'t Rules,
    pub limits: Limits,
    /// The format the sample lines are rendered in.
    pub output: Format,
    /// Sort labels by name (what Prometheus stores); off to keep input order.
    pub sort_labels: bool,
    /// Any UTF-8 name may be stored (`metric_name_validation_scheme: utf8`,
    /// the default); else a name outside the legacy charset fails the scrape.
    pub utf8_names: bool,
    /// How protobuf histograms are read: the job's `scrape_native_histograms`
    /// and `always_scrape_classic_histograms`.
    pub proto: proto::Options,
    /// The job's native histogram limits.
    pub native: NativeLimits,
}

/// What a job lets a native histogram keep, as Prometheus's
/// `maxSchemaAppender` and `bucketLimitAppender`.
#[derive(Debug, Clone, Copy)]
pub struct NativeLimits {
    /// `native_histogram_bucket_limit`; 0 means none.
    pub bucket_limit: usize,
    /// The highest schema kept (8, or from `native_histogram_min_bucket_factor`).
    pub max_schema: i32,
}

impl Default for NativeLimits {
    fn default() -> Self {
        NativeLimits {
            bucket_limit: 0,
            max_schema: crate::exposition::histogram::SCHEMA_MAX,
        }
    }
}

impl NativeLimits {
    /// The limits of `native_histogram_bucket_limit` and
    /// `native_histogram_min_bucket_factor` (0: none).
    pub fn of(bucket_limit: u32, min_bucket_factor: f64) -> Self {
        let max_schema = if min_bucket_factor == 0.0 {
            crate::exposition::histogram::SCHEMA_MAX
        } else {
            crate::exposition::histogram::schema_for_factor(min_bucket_factor)
        };
        NativeLimits {
            bucket_limit: usize::try_from(bucket_limit).unwrap_or(usize::MAX),
            max_schema,
        }
    }

    /// Brings `h` within the limits as Prometheus 3 does: a schema of 9..=52
    /// (or above the max schema) is reduced; past the bucket limit the
    /// resolution is halved until it fits. Err(true) when it cannot fit even
    /// at schema -4; an invalid schema fails at once.
    fn apply(&self, h: &mut Histogram, metric: &str) -> Result<bool, PipelineError> {
        use crate::exposition::histogram::{SCHEMA_MAX, SCHEMA_MIN};
        /// Prometheus's highest reserved exponential schema.
        const SCHEMA_RESERVED_MAX: i32 = 52;
        if !(SCHEMA_MIN..=SCHEMA_RESERVED_MAX).contains(&h.schema) {
            return Err(PipelineError::InvalidSchema {
                metric: metric.to_owned(),
                schema: h.schema,
            });
        }
        h.reduce_resolution(self.max_schema.min(SCHEMA_MAX));
        if self.bucket_limit == 0 {
            return Ok(true);
        }
        while h.bucket_count() > self.bucket_limit {
            if h.schema <= SCHEMA_MIN {
                return Ok(false);
            }
            h.reduce_resolution(h.schema - 1);
        }
        Ok(true)
    }
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
            utf8_names: true,
            proto: PROTO_OPTIONS,
            native: NativeLimits::default(),
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

/// Makes `family` the family of the samples that follow (HELP/TYPE/UNIT).
fn for_name<'f, 'a>(family: &'f mut Family<'a>, name: Cow<'a, str>) -> &'f mut Family<'a> {
    if family.name != name {
        *family = Family {
            name,
            ..Family::default()
        };
    }
    family
}

/// Runs one body through the pipeline into `out` (cleared first; rendered in
/// `settings.output`). On an error `out` still holds the counts up to it,
/// which Prometheus reports.
pub fn process(
    body: &[u8],
    input: Format,
    settings: &Settings<'_>,
    cache: &mut SeriesCache,
    out: &mut Rendered,
) -> Result<(), PipelineError> {
    out.clear();
    out.format = settings.output;
    let mut counts = Counts::default();
    let result = process_into(body, input, settings, cache, &mut counts, out);
    if result.is_ok() {
        // Serves the last group's created timestamp.
        out.commit();
    }
    out.set_counts(counts);
    result
}

/// Runs one body through the pipeline, handing every kept sample to `sink`
/// once (the first of duplicates wins). `counts` are what Prometheus reports,
/// also up to an error. On an error the sink has received part of the body:
/// the caller rolls it back.
pub fn process_into(
    body: &[u8],
    input: Format,
    settings: &Settings<'_>,
    cache: &mut SeriesCache,
    counts: &mut Counts,
    sink: &mut impl Appender,
) -> Result<(), PipelineError> {
    let mut stream = Stream::new(input, settings, cache, counts, sink);
    stream.any_piece(body, false)?;
    stream.check_limit()
}

/// The family of the samples that follow, owned so that it carries over
/// from one piece of a body to the next.
#[derive(Debug, Default)]
struct OwnedFamily {
    name: String,
    help: Option<String>,
    kind: MetricType,
    unit: Option<String>,
}

impl OwnedFamily {
    fn borrow(&self) -> Family<'_> {
        Family {
            name: Cow::Borrowed(&self.name),
            help: self.help.as_deref().map(std::borrow::Cow::Borrowed),
            kind: self.kind,
            unit: self.unit.as_deref(),
        }
    }

    fn set(&mut self, family: &Family<'_>) {
        self.name.clear();
        self.name.push_str(&family.name);
        self.help = family.help.as_deref().map(str::to_owned);
        self.kind = family.kind;
        self.unit = family.unit.map(str::to_owned);
    }
}

/// A body run through the pipeline as it arrives, piece by piece (see
/// [`Stream::feed`]): what is held between pieces is the unfinished last
/// line and the parse's place, not the body.
pub struct Stream<'p, 's, S, C = SeriesCache> {
    input: Format,
    settings: &'p Settings<'s>,
    /// The loop's cache, or a read-only peek at it (see [`Lookups`]).
    cache: &'p mut C,
    counts: &'p mut Counts,
    sink: &'p mut S,
    at: Resume,
    family: OwnedFamily,
    /// Where a protobuf body stands: bytes and messages parsed so far.
    proto_offset: usize,
    proto_number: usize,
    /// A protobuf series' key (see [`ProtoSample::key_into`]) and the
    /// parser's buffers, reused from sample to sample.
    key: Vec<u8>,
    proto_scratch: proto::Scratch,
    /// A native histogram as the job's limits leave it, reused.
    histogram: Option<Histogram>,
    /// The first native histogram past the bucket limit: the scrape fails
    /// once the body is counted (the sample limit's error comes first).
    bucket_limited: Option<PipelineError>,
}

/// How protobuf histograms are read unless the job says otherwise
/// ([`Settings::proto`], from `scrape_native_histograms` and
/// `always_scrape_classic_histograms`): a native histogram is read as its
/// classic series (`_count`, `_sum`, its classic buckets or a lone `+Inf`),
/// as Prometheus without scrape_native_histograms.
const PROTO_OPTIONS: proto::Options = proto::Options {
    native: false,
    classic: false,
};

// Outside the crate a stream runs over a `SeriesCache` (the default);
// what else can stand in for it (a read-only peek) is relay's own business.
#[allow(private_bounds)]
impl<'p, 's, S: Appender, C: Lookups> Stream<'p, 's, S, C> {
    pub fn new(
        input: Format,
        settings: &'p Settings<'s>,
        cache: &'p mut C,
        counts: &'p mut Counts,
        sink: &'p mut S,
    ) -> Self {
        cache.set_series_limit(settings.limits.series_limit);
        Stream {
            input,
            settings,
            cache,
            counts,
            sink,
            at: Resume::default(),
            family: OwnedFamily::default(),
            proto_offset: 0,
            proto_number: 1,
            key: Vec::new(),
            proto_scratch: proto::Scratch::default(),
            histogram: None,
            bucket_limited: None,
        }
    }

    /// Runs the next `chunk` of the body; `carry` holds what the previous
    /// ones left unparsed (an unfinished line, or chunks too small to parse
    /// alone) and keeps what this one leaves. Whole lines of a large chunk
    /// are parsed where they are.
    ///
    /// With a `label_value_length_limit`, the unfinished line the carry
    /// keeps may not grow past [`Limits::line_bound`]: a longer one fails
    /// the scrape at once, so one huge line costs the bound, not its size.
    pub fn feed(&mut self, carry: &mut Carry, chunk: &[u8]) -> Result<(), PipelineError> {
        if self.input == Format::Protobuf {
            return self.take_proto(carry, chunk);
        }
        self.take(carry, chunk)?;
        self.bound(carry)
    }

    /// Fails when the line the carry keeps is longer than the limits allow.
    fn bound(&mut self, carry: &mut Carry) -> Result<(), PipelineError> {
        let Some(bound) = self.settings.limits.line_bound() else {
            return Ok(());
        };
        if carry.buf.len() <= bound {
            return Ok(());
        }
        // Whole lines gathered before the unfinished one are parsed first.
        let used = self.piece(&carry.buf, true)?;
        carry.buf.drain(..used);
        if carry.buf.len() > bound {
            let metric = line_name(&carry.buf);
            carry.clear();
            return Err(PipelineError::LineTooLong { metric, bound });
        }
        carry.retry_at = if memchr::memchr(b'\n', &carry.buf).is_some() {
            carry.buf.len() * 2
        } else {
            0
        };
        Ok(())
    }

    /// [`Stream::feed`] without the bound.
    fn take(&mut self, carry: &mut Carry, chunk: &[u8]) -> Result<(), PipelineError> {
        if carry.buf.len() + chunk.len() < carry.piece {
            // Small chunks (a gzip decoder hands out a few KiB at a time)
            // are gathered first: a piece's parse has a fixed cost.
            carry.buf.extend_from_slice(chunk);
            return Ok(());
        }
        let mut rest = chunk;
        if !carry.buf.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                carry.buf.extend_from_slice(rest);
                return Ok(());
            };
            if carry.buf.len() < carry.retry_at {
                // A sample spanning lines still waits for its end: parsed
                // again once the carry has doubled, so not once per chunk.
                carry.buf.extend_from_slice(rest);
                return Ok(());
            }
            carry.buf.extend_from_slice(&rest[..=nl]);
            rest = &rest[nl + 1..];
            let used = self.piece(&carry.buf, true)?;
            if used < carry.buf.len() {
                carry.buf.drain(..used);
                carry.buf.extend_from_slice(rest);
                carry.retry_at = carry.buf.len() * 2;
                return Ok(());
            }
            carry.buf.clear();
        }
        let used = self.piece(rest, true)?;
        let left = &rest[used..];
        carry.buf.extend_from_slice(left);
        carry.retry_at = if memchr::memchr(b'\n', left).is_some() {
            left.len() * 2
        } else {
            0
        };
        Ok(())
    }

    /// [`Stream::feed`] for a protobuf body: whole messages are parsed
    /// where they are; the carry keeps an unfinished one.
    fn take_proto(&mut self, carry: &mut Carry, chunk: &[u8]) -> Result<(), PipelineError> {
        if carry.buf.is_empty() {
            let used = self.proto_piece(chunk, true)?;
            carry.buf.extend_from_slice(&chunk[used..]);
            return Ok(());
        }
        carry.buf.extend_from_slice(chunk);
        let used = self.proto_piece(&carry.buf, true)?;
        carry.buf.drain(..used);
        Ok(())
    }

    /// The body's format, once its response says it (before any chunk).
    pub fn set_format(&mut self, input: Format) {
        self.input = input;
    }

    /// The body has ended: parses what `carry` holds and checks the
    /// sample limit.
    pub fn finish(&mut self, carry: &mut Carry) -> Result<(), PipelineError> {
        let result = self.any_piece(&carry.buf, false);
        carry.clear();
        result?;
        self.check_limit()
    }

    fn check_limit(&mut self) -> Result<(), PipelineError> {
        if over_limit(self.counts.samples_kept, self.settings.limits.sample_limit) {
            return Err(PipelineError::SampleLimit {
                count: self.counts.samples_kept,
                limit: self.settings.limits.sample_limit,
            });
        }
        match self.bucket_limited.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `body` in its format: [`Stream::piece`] or [`Stream::proto_piece`].
    fn any_piece(&mut self, body: &[u8], more: bool) -> Result<usize, PipelineError> {
        match self.input {
            Format::Protobuf => self.proto_piece(body, more),
            Format::Text | Format::OpenMetrics => self.piece(body, more),
        }
    }

    /// Runs the whole messages of a protobuf `body` (all of it unless
    /// `more` follows: then a message cut short fails); returns how many
    /// bytes it parsed.
    fn proto_piece(&mut self, body: &[u8], more: bool) -> Result<usize, PipelineError> {
        let limit = self.settings.limits.body_size_limit;
        let mut pos = 0;
        while pos < body.len() {
            let rest = &body[pos..];
            let frame =
                proto::next_numbered_frame(rest, self.proto_offset, self.proto_number, limit, more)
                    .map_err(PipelineError::Protobuf)?;
            let Some(frame) = frame else { break };
            let family = proto::decode(rest, frame).map_err(PipelineError::Protobuf)?;
            self.proto_family(&family, frame)?;
            pos += frame.end;
            self.proto_offset += frame.end;
            self.proto_number += 1;
        }
        Ok(pos)
    }

    /// Runs the samples of one protobuf family.
    fn proto_family(
        &mut self,
        family: &proto::wire::MetricFamily<'_>,
        frame: proto::Frame,
    ) -> Result<(), PipelineError> {
        let meta = Family {
            name: Cow::Borrowed(family.name),
            help: proto::help(family),
            kind: proto::metric_type(family).unwrap_or_default(),
            unit: proto::unit(family),
        };
        let settings = self.settings;
        let counts = &mut *self.counts;
        let cache = &mut *self.cache;
        let sink = &mut *self.sink;
        let key = &mut self.key;
        let histogram = &mut self.histogram;
        let bucket_limited = &mut self.bucket_limited;
        proto::for_each_sample(
            family,
            frame,
            settings.proto,
            &mut self.proto_scratch,
            |s: &ProtoSample<'_>| -> Result<(), PipelineError> {
                let mut within = true;
                let value = match s.value {
                    SampleValue::Float(value) => Value::Float(value),
                    SampleValue::Histogram(h) => {
                        let kept = match histogram {
                            Some(kept) => {
                                kept.assign(h);
                                kept
                            }
                            None => histogram.insert(h.clone()),
                        };
                        within = settings.native.apply(kept, s.name)?;
                        Value::Histogram(kept)
                    }
                };
                counts.samples_scraped += 1;
                s.key_into(key);
                let exemplar = s.exemplar.map(|e| Exemplar {
                    labels: e.labels,
                    value: e.value,
                    timestamp_ms: e.timestamp_ms,
                });
                let taken = Taken {
                    timestamp_ms: s.timestamp_ms,
                    start_timestamp_ms: s.start_timestamp_ms,
                    value,
                    exemplar: exemplar.as_ref(),
                    refused: !within,
                };
                let kept_before = counts.samples_kept;
                accept(counts, cache, sink, settings, key, &meta, taken, |out| {
                    let mut labels = Labels::with_capacity(16);
                    first_sight(s, &mut labels, settings, out)
                })?;
                // As Prometheus: only a histogram relabeling keeps is held
                // to the bucket limit, and the body is still counted.
                if !within && counts.samples_kept > kept_before && bucket_limited.is_none() {
                    *bucket_limited = Some(PipelineError::BucketLimit {
                        metric: s.name.chars().take(50).collect(),
                        buckets: match value {
                            Value::Histogram(h) => h.bucket_count(),
                            Value::Float(_) => 0,
                        },
                        limit: settings.native.bucket_limit,
                    });
                }
                Ok(())
            },
        )
    }

    /// Runs the whole lines of `body` (all of it unless `more` follows);
    /// returns how many bytes it parsed.
    fn piece(&mut self, body: &[u8], more: bool) -> Result<usize, PipelineError> {
        let settings = self.settings;
        let mut meta = self.family.borrow();
        let mut family_changed = false;
        let mut labels: Labels<'_> = Labels::with_capacity(16);
        let mut parser = Parser::resume(body, self.input, self.at, more).deferring_labels();
        while let Some(entry) = parser.next() {
            let sample = match entry.map_err(PipelineError::Parse)? {
                Entry::Help { name, text } => {
                    for_name(&mut meta, name).help = Some(text);
                    family_changed = true;
                    continue;
                }
                Entry::Type { name, kind } => {
                    for_name(&mut meta, name).kind = kind;
                    family_changed = true;
                    continue;
                }
                Entry::Unit { name, unit } => {
                    for_name(&mut meta, name).unit = Some(unit);
                    family_changed = true;
                    continue;
                }
                Entry::Comment(_) | Entry::Eof => continue,
                Entry::Sample(s) => s,
            };
            self.counts.samples_scraped += 1;
            let key = sample.series_in(body);
            let exemplar = sample.exemplar.as_ref().map(|e| Exemplar {
                labels: braced(body, e.labels_src),
                value: e.value,
                timestamp_ms: e.timestamp.map(|s| (s * 1000.0).round() as i64),
            });
            let taken = Taken {
                timestamp_ms: sample.timestamp_ms,
                start_timestamp_ms: None,
                value: Value::Float(sample.value),
                exemplar: exemplar.as_ref(),
                refused: false,
            };
            accept(
                self.counts,
                self.cache,
                self.sink,
                settings,
                key,
                &meta,
                taken,
                |out| {
                    parser.check_labels().map_err(PipelineError::Parse)?;
                    first_sight(&sample, &mut labels, settings, out)
                },
            )?;
        }
        let (used, at) = parser.stopped();
        self.at = at;
        if family_changed {
            let mut family = OwnedFamily::default();
            family.set(&meta);
            drop(meta);
            self.family = family;
        }
        Ok(used)
    }
}

/// An exemplar's label list with its braces, `{a="b"}`: the parser hands
/// out what is between them, a slice of `body` (else the list as it is).
fn braced<'b>(body: &'b [u8], inner: &'b str) -> &'b str {
    let start = (inner.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
    let end = start.wrapping_add(inner.len());
    let with = start
        .checked_sub(1)
        .and_then(|s| body.get(s..=end))
        .filter(|w| w.first() == Some(&b'{') && w.last() == Some(&b'}'))
        .and_then(|w| std::str::from_utf8(w).ok());
    with.unwrap_or(inner)
}

/// What a parsed sample brings besides its series.
struct Taken<'a> {
    timestamp_ms: Option<i64>,
    start_timestamp_ms: Option<i64>,
    value: Value<'a>,
    exemplar: Option<&'a Exemplar<'a>>,
    /// A native histogram past the bucket limit: counted, never appended.
    refused: bool,
}

/// One sample's way from the body to the sink, whatever its format: the
/// series cache by `key` (a miss runs `first_sight`), the sample limit,
/// then the sink. Past the sample limit the scrape has failed, but
/// Prometheus still counts the rest for scrape_samples_scraped and
/// _post_metric_relabeling; new series stay out of the cache, so a body of
/// a million series costs its own bytes, not a million cache entries.
#[allow(clippy::too_many_arguments)]
#[inline]
fn accept<S: Appender, C: Lookups>(
    counts: &mut Counts,
    cache: &mut C,
    sink: &mut S,
    settings: &Settings<'_>,
    key: &[u8],
    meta: &Family<'_>,
    taken: Taken<'_>,
    first_sight: impl FnOnce(&mut Vec<u8>) -> Result<Option<usize>, PipelineError>,
) -> Result<(), PipelineError> {
    if over_limit(counts.samples_kept + 1, settings.limits.sample_limit) {
        let kept = cache
            .kept_uncached(key, first_sight)
            .inspect_err(|e| uncount_unparsed(counts, e))?;
        counts.samples_kept += usize::from(kept);
        return Ok(());
    }
    // A key the cache knows was checked, byte for byte, when it was new.
    let found = cache
        .lookup(key, first_sight)
        .inspect_err(|e| uncount_unparsed(counts, e))?;
    if found.limited {
        // Relabeling kept it: it counts as kept, as in vmagent.
        counts.samples_kept += 1;
        counts.series_limit_dropped += 1;
        return Ok(());
    }
    let Some(slot) = found.slot else {
        return Ok(());
    };
    counts.samples_kept += 1;
    if found.new {
        counts.series_added += 1;
    }
    if taken.refused {
        return Ok(());
    }
    let timestamp = taken.timestamp_ms.filter(|_| settings.honor_timestamps);
    let Some(emit) = cache.emit(slot, timestamp, Kind::of(&taken.value)) else {
        return Ok(());
    };
    if emit.in_order && timestamp > counts.newest_own_timestamp {
        counts.newest_own_timestamp = timestamp;
    }
    sink.append(&Appended {
        series_ref: emit.series_ref,
        series: emit.text,
        name_len: emit.name_len,
        family: meta,
        timestamp_ms: timestamp,
        start_timestamp_ms: taken.start_timestamp_ms,
        value: taken.value,
        exemplar: taken.exemplar,
        in_order: emit.in_order,
    });
    Ok(())
}

/// The least a [`Stream`] parses at once, gathering smaller chunks.
const PIECE: usize = 64 << 10;

/// What a [`Stream`] keeps between chunks: the unparsed end of the last
/// one. Reused from scrape to scrape.
#[derive(Debug)]
pub struct Carry {
    buf: Vec<u8>,
    /// A sample spanning lines is waiting: parse again at this length.
    retry_at: usize,
    /// Chunks are gathered up to this many bytes before a parse.
    piece: usize,
}

impl Default for Carry {
    fn default() -> Self {
        Carry::gathering(PIECE)
    }
}

impl Carry {
    /// A carry that parses once `piece` bytes are there (the default:
    /// 64 KiB; tests split bodies finer).
    pub fn gathering(piece: usize) -> Carry {
        Carry {
            buf: Vec::new(),
            retry_at: 0,
            piece,
        }
    }

    /// Empties it, giving back the room a long line took.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.retry_at = 0;
        crate::buffers::give_back(&mut self.buf, 0);
    }
}

/// What a series not in the cache becomes: target labels, relabeling, the
/// validity check and the label limits, then sorted and rendered once into
/// `out`. Returns the metric name's length, or None when relabeling drops
/// the series. Only a cache miss gets here, so a known series is never
/// checked again.
fn first_sight<'a>(
    sample: &impl SeriesLabels<'a>,
    labels: &mut Labels<'a>,
    settings: &Settings<'a>,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, PipelineError> {
    labels_before_relabel(sample, labels, settings);
    // As Prometheus: no labels left is a drop; labels without a name, or
    // with a name Prometheus cannot store, fail the scrape.
    if !settings.rules.apply(labels) || labels.is_empty() {
        return Ok(None);
    }
    if labels.metric_name().is_empty() || !labels.is_valid(settings.utf8_names) {
        return Err(invalid_series(sample, labels, settings));
    }
    check_label_limits(labels, &settings.limits)?;
    if settings.sort_labels {
        labels.sort();
    }
    Ok(Some(render::series(out, labels)))
}

/// The error for a series relabeling made invalid, naming the series and
/// the first rule after which it was (found by applying the rules again:
/// this runs once per failed scrape, not per sample).
fn invalid_series<'a>(
    sample: &impl SeriesLabels<'a>,
    result: &Labels<'_>,
    settings: &Settings<'a>,
) -> PipelineError {
    let broken = |l: &Labels<'_>| l.metric_name().is_empty() || !l.is_valid(settings.utf8_names);
    let mut labels = Labels::default();
    labels_before_relabel(sample, &mut labels, settings);
    let mut culprit = None;
    if !broken(&labels) {
        settings
            .rules
            .apply_traced(&mut labels, |index, rule, after| {
                if culprit.is_none() && broken(after) {
                    culprit = Some(describe_rule(index, rule));
                }
            });
    }
    let rule = culprit.map_or_else(String::new, |r| format!(" (made by {r})"));
    let series = result.to_string();
    if result.metric_name().is_empty() {
        PipelineError::MissingName { series, rule }
    } else {
        PipelineError::InvalidLabels { series, rule }
    }
}

/// A rule as a log line names it: its place in the list and what it does.
fn describe_rule(index: usize, rule: &crate::relabel::RelabelConfig) -> String {
    use crate::relabel::Action;
    let mut out = format!("metric_relabel_configs[{index}]: action {}", rule.action);
    if !rule.source_labels.is_empty() {
        out.push_str(&format!(
            ", source_labels [{}]",
            rule.source_labels.join(", ")
        ));
    }
    out.push_str(&format!(", regex {:?}", rule.regex));
    if let Some(target) = &rule.target_label {
        out.push_str(&format!(", target_label {target:?}"));
    }
    if matches!(rule.action, Action::Replace | Action::LabelMap) {
        out.push_str(&format!(", replacement {:?}", rule.replacement));
    }
    out
}

/// The metric name a line starts with, for an error about the line: at
/// most 64 bytes of it (the name may be what is too long).
fn line_name(line: &[u8]) -> String {
    const SHOWN: usize = 64;
    let end = line
        .iter()
        .position(|b| matches!(b, b'{' | b' ' | b'\t' | b'\n'))
        .unwrap_or(line.len());
    let name = String::from_utf8_lossy(&line[..end.min(SHOWN)]);
    match (end > SHOWN, name.is_empty()) {
        (_, true) => "?".to_owned(),
        (true, false) => format!("{name}..."),
        (false, false) => name.into_owned(),
    }
}

/// A line whose deferred label check failed was counted as scraped before
/// the check; Prometheus counts only the samples parsed before the error.
fn uncount_unparsed(counts: &mut Counts, error: &PipelineError) {
    if matches!(error, PipelineError::Parse(_)) {
        counts.samples_scraped = counts.samples_scraped.saturating_sub(1);
    }
}

fn over_limit(count: usize, limit: usize) -> bool {
    limit > 0 && count > limit
}

/// The labels a sample has when metric relabeling starts: its own plus the
/// target's. The scrape and `relay relabel` (and its `--explain`) start here,
/// so the debugger shows what the running relay does.
pub(crate) fn labels_before_relabel<'a>(
    sample: &impl SeriesLabels<'a>,
    labels: &mut Labels<'a>,
    settings: &Settings<'a>,
) {
    labels.clear();
    sample.labels_into(labels);
    add_target_labels(labels, settings.target_labels, settings.honor_labels);
}

/// A parsed sample whose labels (`__name__` first) can be listed: a text
/// line or a protobuf series.
pub(crate) trait SeriesLabels<'a> {
    fn labels_into(&self, out: &mut Labels<'a>);
}

impl<'a> SeriesLabels<'a> for Sample<'a> {
    fn labels_into(&self, out: &mut Labels<'a>) {
        Sample::labels_into(self, out);
    }
}

impl<'a> SeriesLabels<'a> for ProtoSample<'a> {
    fn labels_into(&self, out: &mut Labels<'a>) {
        ProtoSample::labels_into(self, out);
    }
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
        // Legacy names, as the Prometheus 2.x these cases were checked with.
        let settings = Settings {
            honor_labels: honor,
            limits,
            utf8_names: false,
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

    /// Label lists are checked only on a cache miss (`deferring_labels`):
    /// every broken list still fails the scrape with the error, line and
    /// column the parser gives without deferring, whether the cache is cold
    /// or knows the body's other series.
    #[test]
    fn deferred_label_checks_give_the_parsers_errors() {
        let broken = [
            r#"a{x="1",x="2"} 1"#,
            r#"a{x="1" 1"#,
            r#"a{x="1"y="2"} 1"#,
            r#"a{x="1",,y="2"} 1"#,
            r#"a{x=1} 1"#,
            r#"a{1x="1"} 1"#,
            r#"a{x-y="1"} 1"#,
            r#"a{x"1"} 1"#,
            r#"a{,} 1"#,
            r#"a{x="1"}} 1"#,
            r#"a{x="a\"} 1"#,
            r#"a{x="1",y="}"} 1"#,
            "a{x=\"\u{0}\",\"} 1",
            "a{x=\"\u{e9}\" y=\"2\"} 1",
            r#"a{x="1" y} zz"#,
            r#"a{x="1"} 1}"#,
            r#"a{x="1"} 1 # {t="}"} 2"#,
            r##"a{x="#"} 1 # {t="1"}} 2"##,
            r#"a{x="1" # {t="1"} 2"#,
            r#"a{x="1"}} # {t="1"} 2"#,
        ];
        let valid = "a{x=\"1\"} 1\nb 2\n";
        let target = target();
        let rules = Rules::default();
        let settings = Settings::new(&target, &rules);
        for format in [Format::Text, Format::OpenMetrics] {
            let eof = if format == Format::OpenMetrics {
                "# EOF\n"
            } else {
                ""
            };
            let mut failing = 0;
            for line in broken {
                let body = format!("{valid}{line}\n{eof}");
                let want = Parser::new(body.as_bytes(), format)
                    .find_map(Result::err)
                    .map(|e| e.to_string());
                failing += usize::from(want.is_some());
                let mut warm = SeriesCache::default();
                let mut out = Rendered::default();
                let known = format!("{valid}{eof}");
                process(known.as_bytes(), format, &settings, &mut warm, &mut out)
                    .expect("the valid lines pass");
                for (cache, which) in [(SeriesCache::default(), "cold"), (warm, "warm")] {
                    let mut cache = cache;
                    let got = process(body.as_bytes(), format, &settings, &mut cache, &mut out)
                        .err()
                        .map(|e| match e {
                            PipelineError::Parse(p) => p.to_string(),
                            other => format!("not a parse error: {other}"),
                        });
                    assert_eq!(got, want, "{format:?} {which} cache: {line}");
                    // As Prometheus: the samples parsed before the error.
                    let parsed = Parser::new(body.as_bytes(), format)
                        .map_while(Result::ok)
                        .filter(|e| matches!(e, Entry::Sample(_)))
                        .count();
                    assert_eq!(
                        out.samples_scraped, parsed,
                        "{format:?} {which} cache: {line}"
                    );
                }
            }
            // Text takes blank-separated pairs and a brace inside a value.
            assert!(failing >= broken.len() - 4, "{format:?}: {failing} failed");
        }
    }

    /// UTF-8 names (Prometheus 3): kept and rendered quoted under `utf8`,
    /// one series whatever the spelling; a scrape failure under `legacy`
    /// unless relabeling makes them valid.
    #[test]
    fn utf8_names_follow_the_validation_scheme() {
        let target = target();
        let rules = Rules::default();
        let body = "# TYPE \"a.b\" counter\n{\"a.b\",\"c.d\"=\"x\"} 1\n{\"ok_total\"} 2\n";
        let mut out = Rendered::default();
        let mut cache = SeriesCache::default();
        let settings = Settings::new(&target, &rules);
        process(
            body.as_bytes(),
            Format::Text,
            &settings,
            &mut cache,
            &mut out,
        )
        .expect("utf8");
        cache.commit(&mut ());
        let mut text = Vec::new();
        out.write(&mut text, Format::Text);
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.contains("# TYPE \"a.b\" counter\n{\"a.b\",\"c.d\"=\"x\",instance=\"localhost:8001\",job=\"app\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("\nok_total{instance="), "{text}");
        // The other spelling of a known series is the same series.
        let again = "{\"ok_total\"} 3\nok_total 4\n";
        let err = process(
            again.as_bytes(),
            Format::Text,
            &settings,
            &mut cache,
            &mut out,
        );
        assert!(matches!(&err, Ok(()) if out.samples_kept == 2), "{err:?}");
        let mut text = Vec::new();
        out.write(&mut text, Format::Text);
        let lines = String::from_utf8_lossy(&text);
        assert_eq!(
            lines.lines().filter(|l| l.starts_with("ok_total")).count(),
            1,
            "one series: {lines}"
        );
        let legacy = Settings {
            utf8_names: false,
            ..Settings::new(&target, &rules)
        };
        let err = process(
            body.as_bytes(),
            Format::Text,
            &legacy,
            &mut SeriesCache::default(),
            &mut out,
        )
        .expect_err("legacy refuses a.b");
        assert_eq!(
            err.to_string(),
            "invalid metric name or label names: {__name__=\"a.b\", c.d=\"x\", instance=\"localhost:8001\", job=\"app\"}"
        );
        // Relabeled to a legacy name, the series is fine under legacy too.
        let config = crate::plan::from_yaml_str(
            "global: {metric_name_validation_scheme: legacy}\nscrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'a\\.b', target_label: __name__, replacement: a_b}\n      - {regex: 'c\\.d', action: labeldrop}\n",
        )
        .expect("valid");
        let legacy = Settings {
            utf8_names: false,
            ..Settings::new(&target, &config.jobs[0].metric_relabel)
        };
        process(
            body.as_bytes(),
            Format::Text,
            &legacy,
            &mut SeriesCache::default(),
            &mut out,
        )
        .expect("relabeled to legacy names");
    }

    /// Quoted names holding `\"`, `\\` and `\n` (Prometheus 3 unescapes
    /// them as label values): one series however spelled, relabel rules
    /// see the unescaped name, and both formats write them back escaped
    /// inside the quotes, families (a counter with `_total` and `_created`)
    /// kept together.
    #[test]
    fn escaped_quoted_names_round_trip() {
        let target = target();
        let config = crate::plan::from_yaml_str(
            "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'r\"s', target_label: __name__, replacement: 'r\\s'}\n",
        )
        .expect("valid");
        let rules = &config.jobs[0].metric_relabel;
        let text = "# HELP \"a\\\"b\" Help.\n# TYPE \"a\\\"b\" counter\n{\"a\\\"b_total\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 1\n{\"a\\\"b_created\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 5\n{\"r\\\"s\"} 2\n";
        let om = "# HELP \"a\\\"b\" Help.\n# TYPE \"a\\\"b\" counter\n{\"a\\\"b_total\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 1\n{\"a\\\"b_created\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 5\n{\"r\\\"s\"} 2\n# EOF\n";
        for (body, input) in [(text, Format::Text), (om, Format::OpenMetrics)] {
            let settings = Settings {
                sort_labels: false,
                ..Settings::new(&target, rules)
            };
            let mut out = Rendered::default();
            let mut cache = SeriesCache::default();
            for _ in 0..2 {
                process(body.as_bytes(), input, &settings, &mut cache, &mut out)
                    .unwrap_or_else(|e| panic!("{input:?}: {e}"));
                cache.commit(&mut ());
                assert_eq!(out.samples_kept, 3, "{input:?}");
                let mut served = Vec::new();
                out.write(&mut served, Format::OpenMetrics);
                let served = String::from_utf8_lossy(&served);
                let family = "# HELP \"a\\\"b\" Help.\n# TYPE \"a\\\"b\" counter\n{\"a\\\"b_total\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\",instance=\"localhost:8001\",job=\"app\"} 1\n";
                // `_created` as a sample of its own (as for a legacy name
                // under these settings), escaped the same way.
                let created = "{\"a\\\"b_created\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\",instance=\"localhost:8001\",job=\"app\"} 5\n";
                assert!(served.contains(family), "{input:?}: {served}");
                assert!(served.contains(created), "{input:?}: {served}");
                // The rule matched the unescaped `r"s` and wrote `r\s`.
                assert!(
                    served.contains("\n{\"r\\\\s\",instance=\"localhost:8001\",job=\"app\"} 2\n"),
                    "{input:?}: {served}"
                );
                let mut served = Vec::new();
                out.write(&mut served, Format::Text);
                let served = String::from_utf8_lossy(&served);
                assert!(
                    served.contains("# TYPE \"a\\\"b_total\" counter\n{\"a\\\"b_total\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\",instance=\"localhost:8001\",job=\"app\"} 1\n"),
                    "{input:?}: {served}"
                );
                // What relay serves reads back as the names it was given.
                let names: Vec<String> = Parser::new(served.as_bytes(), Format::Text)
                    .filter_map(|e| match e {
                        Ok(Entry::Sample(s)) => Some(s.name.into_owned()),
                        _ => None,
                    })
                    .collect();
                assert!(names.contains(&"a\"b_total".to_owned()), "{names:?}");
                assert!(names.contains(&"r\\s".to_owned()), "{names:?}");
            }
        }
    }

    /// A protobuf body: a counter with a created timestamp and an
    /// exemplar, and a summary.
    fn protobuf_body() -> Vec<u8> {
        use crate::exposition::proto::pb;
        use prost::Message;
        let counter = pb::MetricFamily {
            name: "c_total".into(),
            help: "Calls.".into(),
            r#type: pb::MetricType::Counter as i32,
            metric: vec![pb::Metric {
                label: vec![pb::LabelPair {
                    name: "path".into(),
                    value: "/a".into(),
                }],
                counter: Some(pb::Counter {
                    value: 5.0,
                    exemplar: Some(pb::Exemplar {
                        label: vec![pb::LabelPair {
                            name: "trace_id".into(),
                            value: "t".into(),
                        }],
                        value: 1.5,
                        timestamp: None,
                    }),
                    created_timestamp: Some(pb::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 250_000_000,
                    }),
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
                    created_timestamp: None,
                }),
                ..Default::default()
            }],
            unit: String::new(),
        };
        let mut body = counter.encode_length_delimited_to_vec();
        body.extend(summary.encode_length_delimited_to_vec());
        body
    }

    /// Records what reaches an appender from a protobuf body.
    #[derive(Default)]
    struct Seen(Vec<String>);

    impl Appender for Seen {
        fn append(&mut self, s: &Appended<'_>) {
            self.0.push(format!(
                "{} {:?} st={:?} ex={:?} family={}:{}",
                s.series,
                s.value.float(),
                s.start_timestamp_ms,
                s.exemplar.map(|e| (e.labels.to_owned(), e.value)),
                s.family.name,
                s.family.kind,
            ));
        }
    }

    #[test]
    fn protobuf_samples_reach_the_appender_with_created_timestamps_and_exemplars() {
        let target = target();
        let rules = Rules::default();
        let settings = Settings::new(&target, &rules);
        let body = protobuf_body();
        let mut cache = SeriesCache::default();
        let mut seen = Seen::default();
        let mut counts = Counts::default();
        process_into(
            &body,
            Format::Protobuf,
            &settings,
            &mut cache,
            &mut counts,
            &mut seen,
        )
        .unwrap();
        assert_eq!(
            seen.0,
            [
                r#"c_total{instance="localhost:8001",job="app",path="/a"} Some(5.0) st=Some(1700000000250) ex=Some(("{trace_id=\"t\"}", 1.5)) family=c_total:counter"#,
                r#"s_count{instance="localhost:8001",job="app"} Some(2.0) st=None ex=None family=s:summary"#,
                r#"s_sum{instance="localhost:8001",job="app"} Some(3.0) st=None ex=None family=s:summary"#,
                r#"s{instance="localhost:8001",job="app",quantile="0.5"} Some(1.0) st=None ex=None family=s:summary"#,
            ]
        );
        assert_eq!((counts.samples_scraped, counts.series_added), (4, 4));
        // The second scrape finds every series in the cache.
        let mut counts = Counts::default();
        process_into(
            &body,
            Format::Protobuf,
            &settings,
            &mut cache,
            &mut counts,
            &mut (),
        )
        .unwrap();
        assert_eq!((counts.samples_kept, counts.series_added), (4, 0));
    }

    /// A protobuf body fed a byte at a time gives what it gives whole; a
    /// body cut inside a message fails at the end, saying where.
    #[test]
    fn protobuf_bodies_are_parsed_as_they_arrive() {
        let target = target();
        let rules = Rules::default();
        let settings = Settings::new(&target, &rules);
        let body = protobuf_body();
        let whole = {
            let mut out = Rendered::default();
            process(
                &body,
                Format::Protobuf,
                &settings,
                &mut SeriesCache::default(),
                &mut out,
            )
            .unwrap();
            let mut text = Vec::new();
            out.write(&mut text, Format::Text);
            text
        };
        assert!(!whole.is_empty());
        let fed = |body: &[u8]| {
            let mut out = Rendered::default();
            let mut cache = SeriesCache::default();
            let mut counts = Counts::default();
            let mut carry = Carry::gathering(1);
            let result = {
                let mut stream = Stream::new(
                    Format::Protobuf,
                    &settings,
                    &mut cache,
                    &mut counts,
                    &mut out,
                );
                body.chunks(1)
                    .try_for_each(|c| stream.feed(&mut carry, c))
                    .and_then(|()| stream.finish(&mut carry))
            };
            out.set_counts(counts);
            let mut text = Vec::new();
            out.write(&mut text, Format::Text);
            (result, text)
        };
        let (result, text) = fed(&body);
        assert_eq!(result, Ok(()));
        assert_eq!(
            String::from_utf8_lossy(&text),
            String::from_utf8_lossy(&whole)
        );
        let (result, _) = fed(&body[..body.len() - 1]);
        let first = usize::from(body[0]) + 1;
        assert_eq!(
            result.unwrap_err().to_string(),
            format!(
                "invalid protobuf exposition: message 2 at byte {first}: truncated message: length prefix says {} bytes, the body ends after {}",
                body.len() - first - 1,
                body.len() - first - 2
            )
        );
    }

    fn target() -> Labels<'static> {
        [("instance", "localhost:8001"), ("job", "app")]
            .into_iter()
            .collect()
    }

    /// What [`feed_long`] saw: the result, the bytes fed until it, the
    /// most the carry held (capacity) and the rendered samples.
    type Streamed = (Result<(), PipelineError>, usize, usize, String);

    /// Streams `head`, then 8 KiB chunks of `fill` up to `total` bytes (or
    /// an error), then `tail`, as the scrape loop feeds a body.
    fn feed_long(limits: Limits, head: &[u8], fill: &[u8], tail: &[u8], total: usize) -> Streamed {
        let (target, rules) = (Labels::default(), Rules::default());
        let settings = Settings {
            limits,
            ..Settings::new(&target, &rules)
        };
        let (mut cache, mut counts, mut out) = (
            SeriesCache::default(),
            Counts::default(),
            Rendered::default(),
        );
        let mut stream = Stream::new(Format::Text, &settings, &mut cache, &mut counts, &mut out);
        let mut carry = Carry::default();
        let chunk: Vec<u8> = fill.iter().copied().cycle().take(8192).collect();
        let mut result = stream.feed(&mut carry, head);
        let (mut fed, mut held) = (head.len(), carry.buf.capacity());
        while result.is_ok() && fed < total {
            result = stream.feed(&mut carry, &chunk);
            fed += chunk.len();
            held = held.max(carry.buf.capacity());
        }
        if result.is_ok() {
            result = stream
                .feed(&mut carry, tail)
                .and_then(|()| stream.finish(&mut carry));
        }
        drop(stream);
        let mut text = Vec::new();
        out.write(&mut text, Format::Text);
        (
            result,
            fed,
            held,
            String::from_utf8_lossy(&text).into_owned(),
        )
    }

    /// A line longer than the label limits allow fails the scrape while it
    /// streams in: the carry never holds much more than the bound, whether
    /// the line is one line or a quoted value spanning lines.
    #[test]
    fn a_line_past_the_label_limits_fails_while_it_streams_in() {
        let limits = Limits {
            label_value_length_limit: 1024,
            ..Limits::default()
        };
        let bound = limits.line_bound().expect("a bound with a value limit");
        // 128 labels (no label_limit) of names and values within 1024
        // bytes, escaped: 2 bytes a byte, plus the name, value and tail.
        assert_eq!(bound, 128 * (2 * 1024 + 2 * 1024 + 6) + 2 * 1024 + 2 + 1024);
        let total = 8 << 20;
        let cases: [(&[u8], &[u8], &str); 3] = [
            (b"ok 1\nm{a=\"", b"x", "m"),
            (b"m{a=\"", b"x\n", "m"),
            (b"", b"n", "nnnnnnnn"),
        ];
        for (head, fill, metric) in cases {
            let (result, fed, held, _) = feed_long(limits, head, fill, b"\"} 1\n", total);
            let err = result.expect_err("a line past the bound");
            assert_eq!(err.reason(), "label_limit");
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "label_value_length_limit exceeded (metric: {metric}"
                )),
                "{text}"
            );
            assert!(
                text.contains(&format!("longer than {bound} bytes")),
                "{text}"
            );
            assert!(
                text.len() < 400,
                "the message quotes little of the line: {text}"
            );
            println!("fed {fed} bytes, carry held at most {held}: {text}");
            assert!(fed <= bound + 2 * 8192, "fed {fed} bytes before failing");
            assert!(held <= 2 * (bound + 8192), "the carry held {held} bytes");
        }
        // A long line within the limits (100 labels of 1000 bytes, over
        // 100 KB, well past a 64 KiB piece) streams through.
        let labels: Vec<String> = (0..100)
            .map(|i| format!("l{i}=\"{}\"", "v".repeat(1000)))
            .collect();
        let line = format!("m{{{}}} 1\n", labels.join(","));
        let (result, _, _, text) = feed_long(limits, line.as_bytes(), b"", b"", 0);
        assert_eq!(result, Ok(()));
        assert_eq!(text.len(), line.len() + "# TYPE m untyped\n".len());
        // Without a value limit a line has no bound (as in Prometheus, the
        // body size limit is then the only one).
        let (result, fed, held, text) =
            feed_long(Limits::default(), b"m{a=\"", b"x", b"\"} 1\n", 2 << 20);
        assert_eq!(result, Ok(()));
        assert!(held >= fed, "{held} {fed}");
        assert!(text.ends_with("\"} 1\n"));
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

    /// Prometheus's `verifyLabels`: an invalid name or a series left
    /// without `__name__` fails the scrape, naming the rule and the series.
    #[test]
    fn relabeling_to_an_invalid_name_fails_the_scrape() {
        let cases = [
            (
                "- {source_labels: [__name__], regex: 'bad_.*', target_label: __name__, replacement: 1bad}",
                "bad_one{x=\"y\"} 1\n",
                "invalid metric name or label names: {__name__=\"1bad\", x=\"y\"} (made by metric_relabel_configs[0]: action replace, source_labels [__name__], regex \"bad_.*\", target_label \"__name__\", replacement \"1bad\")",
            ),
            (
                "- {regex: 'meta_(.*)', action: labelmap}",
                "m{meta_=\"x\"} 1\n",
                "invalid metric name or label names: {__name__=\"m\", meta_=\"x\", =\"x\"} (made by metric_relabel_configs[0]: action labelmap, regex \"meta_(.*)\", replacement \"$1\")",
            ),
            (
                "- {regex: __name__, action: labeldrop}",
                "m{a=\"1\"} 1\n",
                "missing metric name (__name__ label): {a=\"1\"} (made by metric_relabel_configs[0]: action labeldrop, regex \"__name__\")",
            ),
        ];
        for (rule, body, want) in cases {
            let config = crate::plan::from_yaml_str(&format!(
                "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      {rule}\n"
            ))
            .expect("valid");
            let rules = &config.jobs[0].metric_relabel;
            let got = run(body, &Labels::default(), false, rules, Limits::default());
            let err = got.expect_err(rule);
            assert_eq!(err.to_string(), want);
            assert_eq!(err.reason(), "invalid_labels");
            // The same rules pass a series they leave valid, or with no
            // labels at all (a drop, as in Prometheus).
            let fine = run(
                "fine 1\n",
                &Labels::default(),
                false,
                rules,
                Limits::default(),
            );
            let kept = if rule.contains("labeldrop") {
                ""
            } else {
                "# TYPE fine untyped\nfine 1\n"
            };
            assert_eq!(fine.as_deref(), Ok(kept), "{rule}");
        }
        let config = crate::plan::from_yaml_str(
            "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - {regex: 'x', action: labelkeep}\n",
        )
        .expect("valid");
        let rules = &config.jobs[0].metric_relabel;
        let dropped = run(
            "m{a=\"1\"} 1\n",
            &Labels::default(),
            false,
            rules,
            Limits::default(),
        );
        assert_eq!(dropped.as_deref(), Ok(""));
    }

    #[test]
    fn cached_series_render_as_on_first_sight_and_stale_ones_are_forgotten() {
        let target = target();
        let config = crate::plan::from_yaml_str(
            "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: drop_me, action: drop}\n      - {source_labels: [x], target_label: y, replacement: 'y$1'}\n",
        )
        .expect("valid");
        let rules = &config.jobs[0].metric_relabel;
        let settings = Settings::new(&target, rules);
        let mut cache = SeriesCache::default();
        let scrape = |body: &str, cache: &mut SeriesCache| {
            let mut out = Rendered::default();
            process(body.as_bytes(), Format::Text, &settings, cache, &mut out).expect("valid");
            cache.commit(&mut ());
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
        assert_eq!(cache.len(), 3, "the dropped series is cached too");
        // A scrape without m{x="2"} forgets it; its return counts as added.
        scrape("m{x=\"1\",a=\"\\\"q\\\"\"} 1\n", &mut cache);
        assert_eq!(cache.len(), 1);
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
            cache.discard(&mut ());
            assert!(cache.len() <= 1500, "{} entries", cache.len());
        }
        // A successful scrape keeps only what it saw.
        process(b"m 1\n", Format::Text, &settings, &mut cache, &mut out).expect("ok");
        cache.commit(&mut ());
        assert_eq!(cache.len(), 1);
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
            cache.commit(&mut ());
            assert_eq!(cache.len(), 101);
            let live = cache.live_len();
            assert!(
                cache.arena_len() <= 2 * live + 64,
                "{} for {live}",
                cache.arena_len()
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
        cache.commit(&mut ());
        process(b"a 2\nc 1\n", Format::Text, &settings, &mut cache, &mut out).expect("ok");
        assert_eq!(out.series_added, 1);
    }

    /// Past the series limit new series are dropped and counted, known
    /// ones go on; a series that went stale frees its place after the
    /// scrape that marks it; the first series kept out is reported once.
    #[test]
    fn series_limit_drops_new_series_and_a_stale_one_frees_its_place() {
        let target = Labels::default();
        let rules = Rules::default();
        let settings = Settings {
            limits: Limits {
                series_limit: 2,
                ..Limits::default()
            },
            ..Settings::new(&target, &rules)
        };
        let mut cache = SeriesCache::default();
        let scrape = |body: &str, cache: &mut SeriesCache| {
            let mut sink = Capture::default();
            let mut counts = Counts::default();
            process_into(
                body.as_bytes(),
                Format::Text,
                &settings,
                cache,
                &mut counts,
                &mut sink,
            )
            .expect("a series limit never fails the scrape");
            cache.commit(&mut sink);
            let names: Vec<String> = sink.0.into_iter().map(|c| c.1).collect();
            (names, counts)
        };
        let (names, counts) = scrape("a 1\nb 1\nc 1\nd 1\n", &mut cache);
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            (
                counts.series_limit_dropped,
                counts.samples_kept,
                counts.series_added
            ),
            (2, 4, 2)
        );
        assert_eq!(cache.series_count(), 2);
        assert_eq!(cache.take_first_limited().as_deref(), Some("c"));
        // Known series keep flowing; the first one is reported only once.
        let (names, counts) = scrape("c 2\na 2\nb 2\n", &mut cache);
        assert_eq!(names, ["a", "b"]);
        assert_eq!(counts.series_limit_dropped, 1);
        assert_eq!(cache.take_first_limited(), None);
        // b vanishes: marked stale, and its place is free after this scrape.
        let (names, _) = scrape("a 3\nc 3\n", &mut cache);
        assert_eq!(names, ["a", "b"], "a, then b's staleness marker");
        assert_eq!(cache.series_count(), 1);
        let (names, counts) = scrape("a 4\nc 4\n", &mut cache);
        assert_eq!(names, ["a", "c"]);
        assert_eq!((counts.series_limit_dropped, cache.series_count()), (0, 2));
    }

    /// What a sink was handed: (ref, series, timestamp, value bits).
    type Captured = (u64, String, Option<i64>, u64);

    #[derive(Default)]
    struct Capture(Vec<Captured>);

    impl Appender for Capture {
        fn append(&mut self, s: &Appended<'_>) {
            if s.in_order {
                self.0.push((
                    s.series_ref,
                    s.series.to_string(),
                    s.timestamp_ms,
                    s.value.float().map_or(0, f64::to_bits),
                ));
            }
        }
    }

    fn scrape_into(body: &str, settings: &Settings<'_>, cache: &mut SeriesCache) -> Vec<Captured> {
        let mut sink = Capture::default();
        let mut counts = Counts::default();
        let result = process_into(
            body.as_bytes(),
            Format::Text,
            settings,
            cache,
            &mut counts,
            &mut sink,
        );
        if result.is_ok() {
            cache.commit(&mut sink);
            return sink.0;
        }
        // A failed scrape's samples are rolled back; only staleness is appended.
        let mut stale = Capture::default();
        cache.discard(&mut stale);
        stale.0
    }

    #[test]
    fn series_that_relabel_alike_are_one_series_sent_once_per_scrape() {
        let config = crate::plan::from_yaml_str(
            "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - {regex: pod, action: labeldrop}\n",
        )
        .expect("valid");
        let rules = &config.jobs[0].metric_relabel;
        let target = Labels::default();
        let settings = Settings::new(&target, rules);
        let mut cache = SeriesCache::default();
        // Two pods relabel to one series; `m` also appears twice verbatim.
        let got = scrape_into(
            "m{pod=\"a\"} 1\nm{pod=\"b\"} 2\nm{pod=\"a\"} 3\nn 4\n",
            &settings,
            &mut cache,
        );
        let names: Vec<(&str, u64)> = got.iter().map(|g| (g.1.as_str(), g.3)).collect();
        assert_eq!(names, vec![("m", 1f64.to_bits()), ("n", 4f64.to_bits())]);
        let m_ref = got[0].0;
        // The next scrape: same ref.
        let again = scrape_into(
            "m{pod=\"b\"} 5\nm{pod=\"a\"} 6\nn 7\n",
            &settings,
            &mut cache,
        );
        assert_eq!(again[0], (m_ref, "m".to_owned(), None, 5f64.to_bits()));
    }

    #[test]
    fn vanished_and_failed_series_get_staleness_markers_but_timestamped_ones_do_not() {
        let (target, rules) = (Labels::default(), Rules::default());
        let settings = Settings {
            limits: Limits {
                sample_limit: 3,
                ..Limits::default()
            },
            ..Settings::new(&target, &rules)
        };
        let stale = crate::storage::STALE_NAN_BITS;
        let mut cache = SeriesCache::default();
        scrape_into("a 1\nb 2\nt 3 1700000000000\n", &settings, &mut cache);
        // b vanished: a stale marker for b after the scrape's samples.
        let got = scrape_into("a 1\nt 3 1700000001000\n", &settings, &mut cache);
        let tail: Vec<(&str, u64)> = got.iter().map(|g| (g.1.as_str(), g.3)).collect();
        assert_eq!(
            tail,
            vec![("a", 1f64.to_bits()), ("t", 3f64.to_bits()), ("b", stale)]
        );
        // A failed scrape (over the sample limit): every series of the last
        // good scrape goes stale, except the one with its own timestamps.
        let failed = scrape_into("a 1\nb 1\nc 1\nd 1\n", &settings, &mut cache);
        let marked: Vec<(&str, u64)> = failed.iter().map(|g| (g.1.as_str(), g.3)).collect();
        assert_eq!(marked, vec![("a", stale)]);
        // After a failure nothing is stale twice; a comeback is appended.
        let back = scrape_into("b 5\n", &settings, &mut cache);
        let back: Vec<(&str, u64)> = back.iter().map(|g| (g.1.as_str(), g.3)).collect();
        assert_eq!(back, vec![("b", 5f64.to_bits())]);
        // A timestamp not newer than the series' last one is left out.
        scrape_into("t 3 1700000002000\n", &settings, &mut cache);
        let old = scrape_into("t 4 1700000002000\n", &settings, &mut cache);
        assert!(old.iter().all(|g| g.1 != "t"), "{old:?}");
    }

    #[test]
    fn a_series_in_a_freed_slot_inherits_nothing_of_its_timestamps() {
        let (target, rules) = (Labels::default(), Rules::default());
        let settings = Settings {
            ..Settings::new(&target, &rules)
        };
        let stale = crate::storage::STALE_NAN_BITS;
        let mut cache = SeriesCache::default();
        let values = |got: Vec<Captured>| -> Vec<(String, u64)> {
            got.into_iter().map(|g| (g.1, g.3)).collect()
        };
        scrape_into("t 1 1700000000000\n", &settings, &mut cache);
        // t is forgotten; u takes its slot, without timestamps: u is marked
        // stale when it vanishes.
        scrape_into("a 1\n", &settings, &mut cache);
        scrape_into("a 1\nu 2\n", &settings, &mut cache);
        let got = values(scrape_into("a 1\n", &settings, &mut cache));
        assert_eq!(got, vec![("a".into(), 1f64.to_bits()), ("u".into(), stale)]);
        // w takes the slot next, with a timestamp older than t's: in order.
        let got = values(scrape_into(
            "a 1\nw 5 1600000000000\n",
            &settings,
            &mut cache,
        ));
        assert_eq!(
            got,
            vec![("a".into(), 1f64.to_bits()), ("w".into(), 5f64.to_bits())]
        );
    }
}
