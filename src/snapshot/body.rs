//! The body `/metrics` serves: the merged text 0.0.4 exposition, and its
//! other encodings (OpenMetrics, gzip of either), each made on the first
//! request for it and then kept with the snapshot, so that further GETs
//! are a memory copy.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

use super::escape;
use super::sink::FamilyBlock;
use crate::config::NameEscaping;
use crate::exposition::{render, Entry, Format, Parser};

/// One rendered exposition; the other encodings are made on first request.
pub struct Snapshot {
    text: Bytes,
    /// Each family's header fields and the range of its lines in `text`.
    families: Vec<FamilyBlock>,
    text_gzip: OnceLock<Bytes>,
    openmetrics: OnceLock<Bytes>,
    openmetrics_gzip: OnceLock<Bytes>,
    /// Bodies with names escaped for scrapers that did not ask for UTF-8,
    /// by format, scheme and gzip; made on first request.
    escaped: Mutex<Vec<(EscapedKey, Bytes)>>,
}

/// Which escaped body: format, name escaping, gzip.
type EscapedKey = (Format, NameEscaping, bool);

impl Snapshot {
    /// `text` is a text 0.0.4 body; `families` say where its lines are.
    pub fn new(text: Vec<u8>, families: Vec<FamilyBlock>) -> Snapshot {
        Snapshot {
            text: Bytes::from(text),
            families,
            text_gzip: OnceLock::new(),
            openmetrics: OnceLock::new(),
            openmetrics_gzip: OnceLock::new(),
            escaped: Mutex::new(Vec::new()),
        }
    }

    /// The body for a format, name escaping and encoding: names are
    /// escaped by `escaping` unless it is `allow-utf-8` (or no name needs it).
    pub fn body_escaped(&self, format: Format, escaping: NameEscaping, gzip: bool) -> Bytes {
        let plain = self.body(format, false);
        if !escape::needs_escaping(&plain, escaping) {
            return self.body(format, gzip);
        }
        let key = (format, escaping, gzip);
        let mut cache = self.escaped.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, body)) = cache.iter().find(|(k, _)| *k == key) {
            return body.clone();
        }
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
            (Format::Text | Format::Protobuf, false) => self.text.clone(),
            (Format::Text | Format::Protobuf, true) => {
                self.text_gzip.get_or_init(|| compress(&self.text)).clone()
            }
            (Format::OpenMetrics, false) => self.openmetrics().clone(),
            (Format::OpenMetrics, true) => self
                .openmetrics_gzip
                .get_or_init(|| compress(self.openmetrics()))
                .clone(),
        }
    }

    fn openmetrics(&self) -> &Bytes {
        self.openmetrics
            .get_or_init(|| Bytes::from(to_openmetrics(&self.text, &self.families)))
    }
}

/// The same families as OpenMetrics: OpenMetrics headers over the same
/// sample lines, which only differ where a line has a timestamp (Prometheus
/// asks for OpenMetrics first, so this runs once for every snapshot). A
/// family's `_created` samples, a gauge family of their own in text 0.0.4,
/// go back among its lines, each where the target had it.
fn to_openmetrics(text: &[u8], families: &[FamilyBlock]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut blocks = families.iter().peekable();
    while let Some(f) = blocks.next() {
        f.write_header(&mut out, Format::OpenMetrics);
        let lines = text.get(f.lines.clone()).unwrap_or_default();
        let Some((c, at)) = blocks
            .next_if(|c| c.created.is_some())
            .and_then(|c| Some((c, &c.created.as_ref()?.at)))
        else {
            sample_lines(&mut out, lines, f.timestamps);
            continue;
        };
        let created = text.get(c.lines.clone()).unwrap_or_default();
        let mut from = 0;
        for (line, &to) in created.split_inclusive(|&b| b == b'\n').zip(at) {
            let to = to.clamp(from, lines.len());
            sample_lines(&mut out, &lines[from..to], f.timestamps);
            sample_lines(&mut out, line, c.timestamps);
            from = to;
        }
        sample_lines(&mut out, &lines[from..], f.timestamps);
    }
    render::end(&mut out, Format::OpenMetrics);
    out
}

/// Text sample lines as OpenMetrics has them.
fn sample_lines(out: &mut Vec<u8>, lines: &[u8], timestamps: bool) {
    if timestamps {
        with_seconds(out, lines);
    } else {
        out.extend_from_slice(lines);
    }
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
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}
