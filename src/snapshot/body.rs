//! The body `/metrics` serves: the merged text 0.0.4 exposition, and its
//! other encodings (OpenMetrics, gzip of either), each made on the first
//! request for it and then kept with the snapshot, so that further GETs
//! are a memory copy.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

use super::escape;
use super::exemplars::Exemplars;
use super::merge::Merged;
use super::native::NativeSeries;
use super::protobuf;
use super::sink::FamilyBlock;
use super::text::Text;
use crate::config::NameEscaping;
use crate::exposition::{render, Entry, Format, Parser};

/// One rendered exposition; the other encodings are made on first request.
pub struct Snapshot {
    /// Every line, `_created` blocks for OpenMetrics only included; the
    /// targets' lines are shared with their results, not copied.
    text: Text,
    /// The text 0.0.4 body as pieces: `text` without the blocks for
    /// OpenMetrics only (made on first request).
    text_pieces: OnceLock<Vec<Bytes>>,
    /// Those pieces joined, made only for a scraper that asks for text
    /// without gzip.
    text_body: OnceLock<Bytes>,
    /// Each family's header fields and the range of its lines in `text`.
    families: Vec<FamilyBlock>,
    /// The exemplars of lines in `text`, served in OpenMetrics only.
    exemplars: Exemplars,
    text_gzip: OnceLock<Bytes>,
    /// OpenMetrics as pieces: its own header lines, and slices of `text`
    /// where the sample lines are the same in both formats (see
    /// [`openmetrics_pieces`]).
    openmetrics_pieces: OnceLock<Vec<Bytes>>,
    /// The pieces joined, made only for a scraper that asks for
    /// OpenMetrics without gzip (Prometheus asks with it).
    openmetrics: OnceLock<Bytes>,
    openmetrics_gzip: OnceLock<Bytes>,
    /// Bodies with names escaped for scrapers that did not ask for UTF-8,
    /// by format, scheme and gzip; made on first request.
    escaped: Mutex<Vec<(Asked, Bytes)>>,
    /// The targets' native histograms, for protobuf answers.
    native: Vec<NativeSeries>,
    /// Protobuf bodies by name escaping and gzip; made on first request.
    protobuf: Mutex<Vec<((NameEscaping, bool), Bytes)>>,
    /// The compressed bodies answered, by what was asked (see
    /// [`Snapshot::answer`]).
    answered: Mutex<Vec<(Asked, Bytes)>>,
}

/// What a GET asks for: format, name escaping, gzip.
pub type Asked = (Format, NameEscaping, bool);

impl Snapshot {
    /// `text` is a text 0.0.4 body; `families` say where its lines are.
    pub fn new(merged: Merged) -> Snapshot {
        let Merged {
            text,
            families,
            exemplars,
        } = merged;
        Snapshot {
            text,
            text_pieces: OnceLock::new(),
            text_body: OnceLock::new(),
            families,
            exemplars,
            text_gzip: OnceLock::new(),
            openmetrics_pieces: OnceLock::new(),
            openmetrics: OnceLock::new(),
            openmetrics_gzip: OnceLock::new(),
            escaped: Mutex::new(Vec::new()),
            native: Vec::new(),
            protobuf: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
        }
    }

    /// The body for what a GET asks; a compressed one is remembered, so
    /// that it can still be served while a large target's next scrape
    /// renders without this snapshot (see [`super::Latest::begin_render`]).
    pub fn answer(&self, asked: Asked) -> Bytes {
        let (format, escaping, gzip) = asked;
        let body = self.body_escaped(format, escaping, gzip);
        if gzip {
            let mut answered = self.answered.lock().unwrap_or_else(|e| e.into_inner());
            if !answered.iter().any(|(k, _)| *k == asked) {
                answered.push((asked, body.clone()));
            }
        }
        body
    }

    /// The compressed bodies answered so far.
    pub fn answered(&self) -> Vec<(Asked, Bytes)> {
        self.answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// With the native histograms whose classic view `text` shows, served
    /// as such to protobuf scrapers.
    pub fn with_native(mut self, native: Vec<NativeSeries>) -> Snapshot {
        self.native = native;
        self
    }

    /// Delimited protobuf `MetricFamily` messages: every family, native
    /// histograms as such; names escaped by `escaping`.
    fn protobuf(&self, escaping: NameEscaping, gzip: bool) -> Bytes {
        let key = (escaping, gzip);
        let mut cache = self.protobuf.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, body)) = cache.iter().find(|(k, _)| *k == key) {
            return body.clone();
        }
        let plain = match cache.iter().find(|(k, _)| *k == (escaping, false)) {
            Some((_, body)) => body.clone(),
            None => Bytes::from(protobuf::encode(
                &self.text,
                &self.families,
                &self.native,
                &self.exemplars,
                escaping,
            )),
        };
        let body = if gzip {
            compress(&plain)
        } else {
            plain.clone()
        };
        if gzip && !cache.iter().any(|(k, _)| *k == (escaping, false)) {
            cache.push(((escaping, false), plain));
        }
        cache.push((key, body.clone()));
        body
    }

    /// The body for a format, name escaping and encoding: names are
    /// escaped by `escaping` unless it is `allow-utf-8` (or no name needs it).
    pub fn body_escaped(&self, format: Format, escaping: NameEscaping, gzip: bool) -> Bytes {
        if format == Format::Protobuf {
            return self.protobuf(escaping, gzip);
        }
        // Both formats carry the same names: the text tells for either,
        // and OpenMetrics has the exemplars' label names besides.
        let exemplars = format == Format::OpenMetrics
            && escape::needs_escaping(self.exemplars.all_labels().as_bytes(), escaping);
        let names = |p: &Bytes| escape::needs_escaping(p, escaping);
        if !exemplars && !self.text.pieces().iter().any(names) {
            return self.body(format, gzip);
        }
        let key = (format, escaping, gzip);
        let mut cache = self.escaped.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, body)) = cache.iter().find(|(k, _)| *k == key) {
            return body.clone();
        }
        let plain = self.body(format, false);
        let text_format = match format {
            Format::OpenMetrics => Format::OpenMetrics,
            _ => Format::Text,
        };
        let escaped = escape::escape_body(&plain, text_format, escaping);
        let body = if gzip {
            compress(&escaped)
        } else {
            Bytes::from(escaped)
        };
        cache.push((key, body.clone()));
        body
    }

    /// The body for a format and encoding, names as they are (quoted UTF-8).
    pub fn body(&self, format: Format, gzip: bool) -> Bytes {
        match (format, gzip) {
            // Protobuf output is item 3's (native histograms served).
            (Format::Text | Format::Protobuf, false) => self
                .text_body
                .get_or_init(|| join(self.text_pieces()))
                .clone(),
            (Format::Text | Format::Protobuf, true) => self
                .text_gzip
                .get_or_init(|| compress_pieces(self.text_pieces()))
                .clone(),
            (Format::OpenMetrics, false) => self.openmetrics().clone(),
            (Format::OpenMetrics, true) => self
                .openmetrics_gzip
                .get_or_init(|| compress_pieces(self.openmetrics_pieces()))
                .clone(),
        }
    }

    /// The text 0.0.4 body: each block for OpenMetrics only (a `_created`
    /// block, always right after its family's lines) left out with its header.
    fn text_pieces(&self) -> &[Bytes] {
        self.text_pieces.get_or_init(|| {
            let (text, families) = (&self.text, &self.families);
            if !families.iter().any(|f| f.openmetrics_only) {
                return text.pieces().to_vec();
            }
            let mut out = Vec::with_capacity(text.pieces().len());
            let mut from = 0;
            for (i, f) in families.iter().enumerate() {
                if !f.openmetrics_only {
                    continue;
                }
                let start = i
                    .checked_sub(1)
                    .map_or(0, |p| families[p].lines.end)
                    .max(from);
                out.extend(text.slices(from..start));
                from = f.lines.end.max(start);
            }
            out.extend(text.slices(from..text.len()));
            out
        })
    }

    fn openmetrics_pieces(&self) -> &[Bytes] {
        self.openmetrics_pieces
            .get_or_init(|| openmetrics_pieces(&self.text, &self.families, &self.exemplars))
    }

    /// Bytes of the OpenMetrics body that are the text body's own lines,
    /// shared rather than copied.
    #[cfg(test)]
    pub(crate) fn openmetrics_shared(&self) -> usize {
        let text: Vec<_> = self
            .text
            .pieces()
            .iter()
            .map(|p| p.as_ptr_range())
            .collect();
        self.openmetrics_pieces()
            .iter()
            .filter(|p| text.iter().any(|t| t.contains(&p.as_ptr())))
            .map(Bytes::len)
            .sum()
    }

    fn openmetrics(&self) -> &Bytes {
        self.openmetrics
            .get_or_init(|| join(self.openmetrics_pieces()))
    }
}

/// An OpenMetrics body being built: lines of its own, and runs of the text
/// body's lines shared without a copy.
struct Pieces<'t> {
    text: &'t Text,
    exemplars: &'t Exemplars,
    done: Vec<Bytes>,
    own: Vec<u8>,
}

impl Pieces<'_> {
    /// Shares `range` of the text body (nothing for a range outside it).
    fn shared(&mut self, range: std::ops::Range<usize>) {
        if range.is_empty() || range.end > self.text.len() {
            return;
        }
        if !self.own.is_empty() {
            self.done.push(Bytes::from(std::mem::take(&mut self.own)));
        }
        self.done.extend(self.text.slices(range));
    }

    /// Sample lines at `range` of the text body as OpenMetrics has them:
    /// shared unless their timestamps must be rewritten in seconds or an
    /// exemplar goes after their value.
    fn lines(&mut self, range: std::ops::Range<usize>, timestamps: bool) {
        let (text, exemplars) = (self.text, self.exemplars);
        let mut from = range.start;
        for e in exemplars.within(range.clone()) {
            let Some(end) = text
                .get(e.line..range.end)
                .and_then(|l| memchr::memchr(b'\n', &l))
                .map(|nl| e.line + nl)
            else {
                continue;
            };
            self.plain(from..e.line, timestamps);
            let line = text.get(e.line..end + 1).unwrap_or_default();
            if timestamps {
                with_seconds(&mut self.own, &line);
                if self.own.last() == Some(&b'\n') {
                    self.own.pop();
                }
            } else {
                self.own
                    .extend_from_slice(&line[..line.len().saturating_sub(1)]);
            }
            exemplars.write(&mut self.own, e);
            self.own.push(b'\n');
            from = end + 1;
        }
        self.plain(from..range.end, timestamps);
    }

    /// Lines without exemplars: shared unless their timestamps must be
    /// rewritten in seconds.
    fn plain(&mut self, range: std::ops::Range<usize>, timestamps: bool) {
        if range.is_empty() {
            return;
        }
        if timestamps {
            let text = self.text;
            with_seconds(&mut self.own, &text.get(range).unwrap_or_default());
        } else {
            self.shared(range);
        }
    }
}

/// The same families as OpenMetrics: OpenMetrics headers over the same
/// sample lines, which only differ where a line has a timestamp (Prometheus
/// asks for OpenMetrics first, so this runs once for every snapshot); the
/// lines are slices of `text`, not a copy of it. A family's `_created`
/// samples, a gauge family of their own in text 0.0.4, go back among its
/// lines, each where the target had it.
fn openmetrics_pieces(text: &Text, families: &[FamilyBlock], exemplars: &Exemplars) -> Vec<Bytes> {
    let mut out = Pieces {
        text,
        exemplars,
        done: Vec::with_capacity(2 * families.len() + 1),
        own: Vec::new(),
    };
    let mut blocks = families.iter().peekable();
    while let Some(f) = blocks.next() {
        f.write_header(&mut out.own, Format::OpenMetrics);
        let lines = f.lines.clone();
        let Some((c, at)) = blocks
            .next_if(|c| c.created.is_some())
            .and_then(|c| Some((c, &c.created.as_ref()?.at)))
        else {
            out.lines(lines, f.timestamps);
            continue;
        };
        let created = text.get(c.lines.clone()).unwrap_or_default();
        let (mut from, mut line_start) = (0, c.lines.start);
        for (line, &to) in created.split_inclusive(|&b| b == b'\n').zip(at) {
            let to = to.clamp(from, lines.len());
            out.lines(lines.start + from..lines.start + to, f.timestamps);
            out.lines(line_start..line_start + line.len(), c.timestamps);
            line_start += line.len();
            from = to;
        }
        out.lines(lines.start + from..lines.end, f.timestamps);
    }
    render::end(&mut out.own, Format::OpenMetrics);
    let mut done = out.done;
    done.push(Bytes::from(out.own));
    done
}

/// Rewrites text sample lines with their timestamps in seconds.
fn with_seconds(out: &mut Vec<u8>, lines: &[u8]) {
    for entry in Parser::new(lines, Format::Text) {
        match entry {
            Ok(Entry::Sample(s)) => {
                out.extend_from_slice(s.series_in(lines));
                if !s.labels_src.is_empty() {
                    out.push(b'}');
                }
                render::sample_tail(out, Format::OpenMetrics, s.value, s.timestamp_ms);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot re-render the snapshot as OpenMetrics"),
        }
    }
}

fn compress(data: &[u8]) -> Bytes {
    compress_all(data.len(), [data])
}

/// The pieces as one buffer (for an answer without gzip).
fn join(pieces: &[Bytes]) -> Bytes {
    match pieces {
        [one] => one.clone(),
        many => Bytes::from(many.concat()),
    }
}

/// Gzip of the pieces joined, without joining them.
fn compress_pieces(pieces: &[Bytes]) -> Bytes {
    let len = pieces.iter().map(Bytes::len).sum();
    compress_all(len, pieces.iter().map(|p| &p[..]))
}

fn compress_all<'a>(len: usize, parts: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(len / 4), flate2::Compression::fast());
    for part in parts {
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(part);
    }
    Bytes::from(encoder.finish().unwrap_or_default())
}
