//! The text sink: what a scrape renders for `/metrics`. Each kept sample
//! of a target goes on a family block of text 0.0.4 lines (or `format`),
//! judged as it is written (see [`Judged`]), so that the merge of every
//! target's blocks parses no line again. Staleness markers are not served:
//! a scraper of relay's port tracks staleness itself.

use std::ops::Range;

use super::created::PendingCreated;
use super::exemplars::{self, Exemplars};
use super::native::Natives;
use crate::exposition::conform::{self, Created, Judged, SampleAt, Scratch};
use crate::exposition::{render, Format, MetricType};
use crate::storage::{is_stale, Appended, Appender, Family, Value};

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
    /// Whether its samples may be served under its type (judged as they
    /// are appended, so the merge parses no line again).
    pub judged: Judged,
    /// For the `_created` samples of the family block before it (a gauge
    /// `x_created` in text 0.0.4, as prometheus_client serves them): where
    /// OpenMetrics has each among that block's lines. In a scrape's
    /// [`Rendered`] such a block's lines are in [`Rendered::created`].
    pub created: Option<Created>,
    /// A `_created` block made of created timestamps the target gave
    /// outside its samples (protobuf): served in OpenMetrics only, as
    /// client_golang serves them; text 0.0.4 gets what the target had.
    pub openmetrics_only: bool,
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

/// What a scrape counted, for `scrape_samples_*` and `scrape_series_added`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub samples_scraped: usize,
    pub samples_kept: usize,
    pub series_added: usize,
    /// Samples of new series dropped past the job's `series_limit`.
    pub series_limit_dropped: usize,
    /// The newest of the target's own timestamps appended (honored and in
    /// order): what relay appends later for the target must come after it.
    pub newest_own_timestamp: Option<i64>,
}

/// A target's relabeled samples, rendered as text (or `format`) family
/// blocks: the sink behind the :9090 snapshot; reused between scrapes.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub families: Vec<FamilyBlock>,
    pub text: Vec<u8>,
    /// The lines of the `_created` blocks (see [`FamilyBlock::created`]):
    /// apart from `text`, so that their family's block goes on growing there.
    pub created: Vec<u8>,
    /// The exemplars of lines in `text`, by where each line starts.
    pub exemplars: Exemplars,
    /// The created timestamp of the series group being written, served as
    /// its `_created` sample once the group is complete.
    pending_created: PendingCreated,
    /// The format the sample lines are written in.
    pub format: Format,
    pub samples_scraped: usize,
    pub samples_kept: usize,
    pub series_added: usize,
    /// What judging the blocks reuses from sample to sample.
    scratch: Scratch,
    /// The native histograms, beside the blocks that show their classic
    /// view (see [`native`]).
    pub native: Natives,
}

impl Rendered {
    /// Drops the rendered samples but keeps the counts (a failed scrape).
    pub fn clear_samples(&mut self) {
        self.families.clear();
        self.text.clear();
        self.created.clear();
        self.native.clear();
        self.exemplars.clear();
        self.pending_created.clear();
    }

    pub fn clear(&mut self) {
        self.clear_samples();
        self.set_counts(Counts::default());
    }

    /// Clears, and makes room for a text of about `text_len` bytes (the
    /// last scrape's) at once: growing by doubling would pass through
    /// twice that and, while copying, three times.
    pub fn clear_for(&mut self, text_len: usize) {
        self.clear();
        let want = text_len.saturating_add(text_len / 8);
        self.text.reserve_exact(want);
    }

    /// Frees the text of a result the snapshot no longer holds, before it
    /// waits as the next scrape's buffers: kept, it would be a third copy
    /// of the target's lines beside the current result and the merged body
    /// a GET makes of that. The next scrape reserves its room at once
    /// ([`Rendered::clear_for`]).
    pub fn release_text(&mut self) {
        self.clear();
        self.text = Vec::new();
        self.created = Vec::new();
    }

    /// Gives back the space a much larger earlier scrape left in the
    /// buffers, and the slack of the text's growth (see [`crate::buffers`]).
    pub fn give_back(&mut self) {
        let (text, families) = (self.text.len(), self.families.len());
        let created = self.created.len();
        crate::buffers::fit(&mut self.text, text);
        crate::buffers::give_back(&mut self.created, created);
        crate::buffers::give_back(&mut self.families, families);
        self.exemplars.give_back();
    }

    pub fn set_counts(&mut self, counts: Counts) {
        self.samples_scraped = counts.samples_scraped;
        self.samples_kept = counts.samples_kept;
        self.series_added = counts.series_added;
    }

    /// Writes every block with its header, in order, as one exposition body
    /// (without the OpenMetrics `# EOF`); exemplars only in OpenMetrics.
    pub fn write(&self, out: &mut Vec<u8>, format: Format) {
        for f in &self.families {
            if f.openmetrics_only && format != Format::OpenMetrics {
                continue;
            }
            f.write_header(out, format);
            let lines = self.lines(f);
            let exemplars = match (format, &f.created) {
                (Format::OpenMetrics, None) => self.exemplars.within(f.lines.clone()),
                _ => &[],
            };
            let mut from = 0;
            for e in exemplars {
                let start = e.line - f.lines.start;
                let Some(end) = lines.get(start..).and_then(|l| memchr::memchr(b'\n', l)) else {
                    continue;
                };
                out.extend_from_slice(&lines[from..start + end]);
                self.exemplars.write(out, e);
                from = start + end;
            }
            out.extend_from_slice(&lines[from..]);
        }
    }

    /// A block's sample lines.
    pub fn lines(&self, block: &FamilyBlock) -> &[u8] {
        let buffer = match block.created {
            Some(_) => &self.created,
            None => &self.text,
        };
        buffer.get(block.lines.clone()).unwrap_or_default()
    }

    /// Serves the pending created timestamp (of a group now complete) as
    /// its series' `_created` sample, as a text input's `_created` line.
    fn flush_created(&mut self) {
        let mut pending = std::mem::take(&mut self.pending_created);
        if let Some(created) = pending.take() {
            let family = created.family();
            let sample = created.appended(&family);
            if self.format == Format::Text && is_created(&family, &sample.name()) {
                self.append_created(&sample, true);
            } else {
                self.append(&sample);
            }
        }
        self.pending_created = pending;
    }

    /// Appends a `_created` sample of the family block being written to
    /// the `_created` block after it (opened if need be).
    fn append_created(&mut self, s: &Appended<'_>, openmetrics_only: bool) {
        let meta = s.family;
        let Some(main) = main_block(self, meta) else {
            return;
        };
        if self.families.len() == main + 1 {
            let start = self.created.len();
            self.families.push(FamilyBlock {
                name: s.name().into_owned(),
                help: meta.help.as_deref().map(str::to_owned),
                kind: MetricType::Gauge,
                unit: None,
                lines: start..start,
                timestamps: false,
                judged: Judged::default(),
                created: Some(Created::default()),
                openmetrics_only,
            });
        }
        let Rendered {
            families,
            text,
            created,
            scratch,
            ..
        } = self;
        let start = created.len();
        s.series.write_to(created);
        render::sample_tail(
            created,
            Format::Text,
            s.value.float().unwrap_or(f64::NAN),
            s.timestamp_ms,
        );
        let [family, block] = &mut families[main..] else {
            return;
        };
        block.lines.end = created.len();
        block.timestamps |= s.timestamp_ms.is_some();
        let at = start - block.lines.start;
        let name = s.name();
        let series = at..at + s.series.len();
        // The labels between the braces.
        let written = created
            .get(start..start + s.series.len())
            .unwrap_or_default();
        let within = render::labels_in(written, s.name_len);
        let labels = (!within.is_empty())
            .then(|| written.get(within))
            .flatten()
            .and_then(|l| std::str::from_utf8(l).ok());
        if let Some(pairing) = block.created.as_mut() {
            pairing.pair(
                &family.judged,
                text.get(family.lines.clone()).unwrap_or_default(),
                labels.unwrap_or_default().as_bytes(),
            );
        }
        scratch.distinct = true;
        let sample = SampleAt {
            name: &name,
            series,
            value: s.value.float().unwrap_or(f64::NAN),
            timestamp: s.timestamp_ms.is_some(),
        };
        block.judged.sample(
            MetricType::Unknown,
            &name,
            &name,
            created.get(block.lines.clone()).unwrap_or_default(),
            &sample,
            scratch,
        );
    }
}

/// Whether a sample is a `_created` one of a family text 0.0.4 serves
/// typed (a counter, histogram or summary), which it keeps apart.
fn is_created(meta: &Family<'_>, name: &str) -> bool {
    matches!(
        meta.kind,
        MetricType::Counter | MetricType::Histogram | MetricType::Summary
    ) && name
        .strip_prefix(&*meta.name)
        .is_some_and(|rest| rest == "_created")
}

/// The index of the block the family `meta`'s samples go on in (before
/// its `_created` block, if it has one), opened (empty) if need be.
fn main_block(out: &mut Rendered, meta: &Family<'_>) -> Option<usize> {
    let current = current_block(out);
    let header_is = |b: &FamilyBlock| {
        b.kind == meta.kind && *conform::family_name(b.kind, &b.name) == *meta.name
    };
    if let Some(i) = current.filter(|&i| header_is(&out.families[i])) {
        return Some(i);
    }
    // Text 0.0.4 names a counter family after its `_total` samples.
    let header = match meta.kind {
        MetricType::Counter => format!("{}_total", meta.name),
        _ => meta.name.to_string(),
    };
    push_block(out, header, meta, meta.kind);
    out.families.len().checked_sub(1)
}

/// The block samples go on in: the last, or the one before it if the last
/// holds its `_created` samples.
fn current_block(out: &Rendered) -> Option<usize> {
    let last = out.families.len().checked_sub(1)?;
    match out.families[last].created {
        Some(_) => last.checked_sub(1),
        None => Some(last),
    }
}

/// The text sink: staleness markers are not served (a scraper of :9090
/// tracks staleness itself).
impl Appender for Rendered {
    /// A failed scrape's lines are not served (its counts are).
    fn rollback(&mut self) {
        self.clear_samples();
    }

    /// Writes the classic view of a native histogram still pending, then
    /// the created timestamp of the group just completed.
    fn commit(&mut self) {
        let mut native = std::mem::take(&mut self.native);
        native.flush(|line| self.append(line));
        self.native = native;
        self.flush_created();
    }

    fn append(&mut self, s: &Appended<'_>) {
        let value = match s.value {
            Value::Float(value) => value,
            Value::Histogram(h) => {
                let mut native = std::mem::take(&mut self.native);
                native.histogram(s, h, |line| self.append(line));
                self.native = native;
                return;
            }
        };
        if is_stale(value) {
            return;
        }
        if self.native.pending() {
            let mut native = std::mem::take(&mut self.native);
            native.before_float(s, |line| self.append(line));
            self.native = native;
        }
        if self.pending_created.ends_before(s) {
            self.flush_created();
        }
        // Unescaped once: a quoted name may be copied.
        let name = s.name();
        if self.format == Format::Text && is_created(s.family, &name) {
            self.append_created(s, false);
            return;
        }
        let Some(current) = open_block(self, s.family, &name, self.format) else {
            return;
        };
        let Rendered {
            families,
            text,
            scratch,
            format,
            exemplars,
            ..
        } = self;
        let start = text.len();
        s.series.write_to(text);
        render::sample_tail(text, *format, value, s.timestamp_ms);
        if let Some(block) = families.get_mut(current) {
            block.lines.end = text.len();
            block.timestamps |= s.timestamp_ms.is_some();
            // The pipeline appends a series once per scrape.
            scratch.distinct = true;
            let at = start - block.lines.start;
            let sample = SampleAt {
                name: &name,
                series: at..at + s.series.len(),
                value,
                timestamp: s.timestamp_ms.is_some(),
            };
            block.judged.sample(
                block.kind,
                conform::family_name(block.kind, &block.name),
                &block.name,
                &text[block.lines.clone()],
                &sample,
                scratch,
            );
            if let Some(e) = s.exemplar {
                if exemplars::allowed(block.kind, &name) && exemplars::within_limit(e.labels) {
                    exemplars.push(start, e);
                }
            }
        }
        if let Some(ms) = s.start_timestamp_ms {
            self.pending_created.start(s, ms);
        }
    }
}

/// Starts a new block unless the sample continues the last one. A sample
/// relabeled out of its family's names stands in an untyped family of its own.
/// Returns the index of the block the sample goes in (see [`current_block`]).
fn open_block(out: &mut Rendered, meta: &Family<'_>, name: &str, format: Format) -> Option<usize> {
    let in_family = !meta.name.is_empty() && meta.kind.has_sample(&meta.name, name);
    let (family, kind) = if in_family {
        (&*meta.name, meta.kind)
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
    // A family of another type under the same name is a block of its own.
    let current = current_block(out);
    if current
        .and_then(|i| out.families.get(i))
        .is_some_and(|b| b.name == header && b.kind == kind)
    {
        return current;
    }
    if in_family {
        push_block(out, header.to_owned(), meta, kind);
    } else {
        push_block(out, header.to_owned(), &Family::default(), kind);
    }
    // The new block is the last, and not a `_created` one.
    current_block(out)
}

/// Starts a block named `header` of the family `meta` (its HELP and UNIT).
fn push_block(out: &mut Rendered, header: String, meta: &Family<'_>, kind: MetricType) {
    let start = out.text.len();
    out.families.push(FamilyBlock {
        name: header,
        help: meta.help.as_deref().map(str::to_owned),
        kind,
        unit: meta.unit.map(str::to_owned),
        lines: start..start,
        timestamps: false,
        judged: Judged::default(),
        created: None,
        openmetrics_only: false,
    });
}

/// The text sink of a scrape, off while nobody reads /metrics (see
/// `scrape::demand`): the WAL still gets every
/// sample, and no lines are rendered that nobody would read.
pub struct TextSink<'a> {
    pub out: &'a mut Rendered,
    pub on: bool,
}

impl Appender for TextSink<'_> {
    fn append(&mut self, sample: &Appended<'_>) {
        if self.on {
            self.out.append(sample);
        }
    }

    fn commit(&mut self) {
        self.out.commit();
    }

    fn rollback(&mut self) {
        self.out.rollback();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result the snapshot replaced waits for the next scrape without
    /// its text: the lines are not held a third time.
    #[test]
    fn a_released_result_keeps_no_text() {
        let mut r = Rendered::default();
        r.clear_for(1 << 20);
        r.text.extend_from_slice(b"a 1\n");
        r.created.extend_from_slice(b"a_created 1\n");
        r.samples_kept = 1;
        r.release_text();
        assert_eq!((r.text.capacity(), r.created.capacity()), (0, 0));
        assert_eq!(r.samples_kept, 0);
        assert!(r.families.is_empty());
    }
}
