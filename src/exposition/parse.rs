//! The parser for Prometheus text 0.0.4 and OpenMetrics 1.0 text.
//!
//! Like Prometheus's `textparse`, it is an iterator over the lines of a
//! scrape body whose entries hand out slices of that body: nothing is copied
//! unless an escape sequence has to be undone. It accepts what Prometheus's
//! own parsers accept (so a scrape ingests what Prometheus would) and rejects
//! the rest with `line:col: expected X, got Y`. Columns count characters,
//! from 1. After an error, iteration resumes at the next line, so
//! [`check`](super::lint::check) can report every problem; a scrape stops at
//! the first.

use std::borrow::Cow;

use super::model::{is_label_name_byte, label_name_len, metric_name_len, Labels, MetricType};

/// Which format a body is in, chosen from the response's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text format (0.0.4, and 1.0.0 with quoted UTF-8 names).
    #[default]
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Delimited protobuf `MetricFamily` messages (see [`super::proto`]);
    /// an input format only: output in it renders as text 0.0.4.
    Protobuf,
}

impl Format {
    /// The format a `Content-Type` header announces, by its media type as
    /// Prometheus 3's `textparse.New` reads it; None for any other (the
    /// scrape then needs `fallback_scrape_protocol`).
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/plain") {
            Some(Format::Text)
        } else if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Some(Format::OpenMetrics)
        } else if media.eq_ignore_ascii_case(PROTOBUF_MEDIA_TYPE) {
            Some(Format::Protobuf)
        } else {
            None
        }
    }
}

/// The media type of the delimited protobuf format (`proto::CONTENT_TYPE`).
pub(crate) const PROTOBUF_MEDIA_TYPE: &str = "application/vnd.google.protobuf";

/// A malformed input, located by 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// An exemplar attached to a sample (OpenMetrics).
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    /// The raw text between the exemplar's braces (validated).
    pub labels_src: &'a str,
    pub value: f64,
    /// Seconds since the epoch, as written.
    pub timestamp: Option<f64>,
}

impl<'a> Exemplar<'a> {
    /// The exemplar's labels, unescaped.
    pub fn labels(&self) -> LabelPairs<'a> {
        LabelPairs {
            src: self.labels_src,
        }
    }
}

/// One sample line; its labels are re-read from the input on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name, unescaped (borrowed unless it was quoted with an
    /// escape sequence in it).
    pub name: Cow<'a, str>,
    /// The raw text between the braces, validated by the parser (when it
    /// defers that, by [`Parser::check_labels`] before anyone reads it).
    pub labels_src: &'a str,
    pub value: f64,
    /// Milliseconds since the epoch (OpenMetrics seconds are converted).
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
}

impl<'a> Sample<'a> {
    /// Appends `__name__` and this sample's labels to `out` (which the caller
    /// clears and reuses between samples, so this allocates nothing unless a
    /// label value holds an escape sequence).
    pub fn labels_into(&self, out: &mut Labels<'a>) {
        out.push(super::METRIC_NAME, self.name.clone());
        for (name, value) in self.labels() {
            out.push(name, value);
        }
    }

    /// The series as the line wrote it, name through labels (without the
    /// closing `}`): a slice of `body`, the buffer the sample was parsed
    /// from, so a lookup by it allocates nothing.
    pub fn series_in(&self, body: &'a [u8]) -> &'a [u8] {
        let offset = |s: &str| (s.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        let name = match &self.name {
            Cow::Borrowed(name) => *name,
            // Unescaped from a quoted name: its quotes are in the body,
            // inside the braces (`{"a\"b"}`) or before them.
            Cow::Owned(_) => "",
        };
        let mut start = offset(name);
        let end = if self.labels_src.is_empty() {
            if name.is_empty() {
                // An owned name with no braces cannot happen (an escaped
                // name is quoted, so inside braces); keep a safe answer.
                return self.labels_src.as_bytes();
            }
            start + name.len()
        } else if name.is_empty() {
            let labels = offset(self.labels_src);
            start = labels.wrapping_sub(1);
            labels + self.labels_src.len()
        } else {
            let labels = offset(self.labels_src);
            // A quoted name inside the braces (`{"a.b",x="1"}`): the key
            // starts at the `{`, so it holds the whole series as written.
            if start > labels {
                start = labels.wrapping_sub(1);
            }
            labels + self.labels_src.len()
        };
        body.get(start..end).unwrap_or(name.as_bytes())
    }

    /// The sample's labels (without `__name__`), unescaped.
    pub fn labels(&self) -> LabelPairs<'a> {
        LabelPairs {
            src: self.labels_src,
        }
    }
}

/// Iterator over the label pairs of an already validated label list.
#[derive(Debug, Clone)]
pub struct LabelPairs<'a> {
    src: &'a str,
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        // The parser proved the syntax, so this only has to find the pieces.
        let mut s = self.src.trim_start_matches([' ', '\t', ',']);
        let (name, rest) = loop {
            if let Some(quoted) = s.strip_prefix('"') {
                // A quoted label name, or the quoted metric name (no `=`).
                let close = scan_quoted(quoted.as_bytes())?;
                let after = quoted[close + 1..].trim_start_matches([' ', '\t']);
                match after.strip_prefix('=') {
                    Some(rest) => break (unescape_label_value(&quoted[..close]), rest),
                    None => s = after.trim_start_matches([' ', '\t', ',']),
                }
            } else {
                let eq = memchr::memchr(b'=', s.as_bytes())?;
                break (
                    Cow::Borrowed(s[..eq].trim_end_matches([' ', '\t'])),
                    &s[eq + 1..],
                );
            }
        };
        let open = memchr::memchr(b'"', rest.as_bytes())?;
        let body = &rest[open + 1..];
        let close = scan_quoted(body.as_bytes())?;
        self.src = &body[close + 1..];
        let raw = &body[..close];
        Some((name, unescape_label_value(raw)))
    }
}

/// The index of the quote that closes a label value (escapes skipped).
fn scan_quoted(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let j = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[j] == b'"' {
            return Some(j);
        }
        i = j + 2;
    }
}

/// Where a text sample whose quoted label values may span lines ends.
enum Across {
    /// The newline after its `}` (or the end of the whole input).
    End(usize),
    /// The input ends first but more follows: parse it with the next piece.
    MoreInput,
    /// A newline outside the quotes: the one-line error stands.
    No,
}

/// Where a text sample starting at `start` ends when its quoted label values
/// may span lines (Prometheus's text lexer takes a raw newline there): the
/// newline after its `}`; `more` says whether input follows `input`.
fn sample_end_across_lines(input: &[u8], start: usize, more: bool) -> Across {
    let ran_out = if more { Across::MoreInput } else { Across::No };
    let Some(rest) = input.get(start..) else {
        return Across::No;
    };
    let Some(brace) = memchr::memchr2(b'{', b'\n', rest).filter(|&i| rest[i] == b'{') else {
        return Across::No;
    };
    let mut i = brace + 1;
    loop {
        let Some(j) = rest
            .get(i..)
            .and_then(|r| memchr::memchr3(b'"', b'}', b'\n', r))
            .map(|n| i + n)
        else {
            return ran_out;
        };
        match rest[j] {
            b'"' => match scan_quoted(&rest[j + 1..]) {
                Some(q) => i = j + 1 + q + 1,
                None => return ran_out,
            },
            b'}' => {
                return match memchr::memchr(b'\n', &rest[j..]) {
                    Some(n) => Across::End(start + j + n),
                    None if more => Across::MoreInput,
                    None => Across::End(start + rest.len()),
                }
            }
            _ => return Across::No,
        }
    }
}

/// Undoes `\\`, `\"` and `\n` in a label value; any other escape is kept
/// as written, like Prometheus's replacer.
pub(crate) fn unescape_label_value(raw: &str) -> Cow<'_, str> {
    unescape(raw, true)
}

/// Undoes the escapes of a HELP text: `\\` and `\n` (and `\"` in OpenMetrics).
fn unescape_help(raw: &str, format: Format) -> Cow<'_, str> {
    unescape(raw, format == Format::OpenMetrics)
}

fn unescape(raw: &str, quote: bool) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// What one line of the input is.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Help {
        name: Cow<'a, str>,
        text: Cow<'a, str>,
    },
    Type {
        name: Cow<'a, str>,
        kind: MetricType,
    },
    Unit {
        name: Cow<'a, str>,
        unit: &'a str,
    },
    Comment(&'a str),
    Sample(Sample<'a>),
    /// OpenMetrics `# EOF`; nothing follows it.
    Eof,
}

/// An iterator over the entries of an exposition, borrowing from it.
pub struct Parser<'a> {
    input: &'a [u8],
    format: Format,
    /// Start of the next line.
    pos: usize,
    /// Number of the line the last entry (or error) came from.
    line: usize,
    eof_seen: bool,
    finished: bool,
    /// More input follows this piece (see [`Parser::resume`]).
    more: bool,
    /// Scratch list of a sample's label names, for the duplicate check; kept
    /// between samples so it does not allocate again.
    names: Vec<Cow<'a, str>>,
    /// Set when a text-format label value ran to the end of its line: the
    /// value may hold a raw newline, which Prometheus's text lexer accepts.
    unterminated: bool,
    /// See [`Parser::deferring_labels`].
    defer_labels: bool,
    /// The label list of the last sample, when its check was deferred.
    deferred: Option<DeferredLabels<'a>>,
}

/// Where a sample whose label list was not checked is: its line, that
/// line's number and where the sample starts in it.
#[derive(Debug, Clone, Copy)]
struct DeferredLabels<'a> {
    line: &'a [u8],
    number: usize,
    sample_at: usize,
}

/// Where the parse of a body given in pieces stands between two of them:
/// lines are numbered over the whole body, and nothing may follow `# EOF`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    line: usize,
    eof_seen: bool,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Self {
        Parser::resume(input, format, Resume::default(), false)
    }

    /// A parser for one piece of a body, going on from where the previous
    /// piece's parse stopped ([`Parser::stopped`]). With `more`, input
    /// follows: an unfinished last line (or a text sample whose label values
    /// run past the piece) is left for the next piece, not parsed.
    pub fn resume(input: &'a [u8], format: Format, at: Resume, more: bool) -> Self {
        Parser {
            input,
            format,
            pos: 0,
            line: at.line,
            eof_seen: at.eof_seen,
            finished: false,
            more,
            names: Vec::with_capacity(16),
            unterminated: false,
            defer_labels: false,
            deferred: None,
        }
    }

    /// Label lists are only delimited, not checked, until
    /// [`Parser::check_labels`] asks: a scrape loop has seen most series
    /// before, byte for byte, and checks only the ones its cache does not
    /// know. A list that cannot even be delimited is checked at once.
    pub fn deferring_labels(mut self) -> Self {
        self.defer_labels = true;
        self
    }

    /// Checks the label list of the sample returned last, if its check was
    /// deferred: the same errors, at the same places, as without deferring.
    pub fn check_labels(&mut self) -> Result<(), ParseError> {
        match self.deferred.take() {
            Some(deferred) => self.strict_sample(deferred).map(drop),
            None => Ok(()),
        }
    }

    /// The sample parsed again with every check: rare (a series the cache
    /// does not know, or a broken line), so simply the same code twice.
    fn strict_sample(&mut self, at: DeferredLabels<'a>) -> Result<Sample<'a>, ParseError> {
        let defer = std::mem::replace(&mut self.defer_labels, false);
        let mut c = Cursor::new(at.line, at.number);
        c.i = at.sample_at;
        let sample = self.parse_sample(c);
        self.defer_labels = defer;
        self.deferred = None;
        sample
    }

    /// The label list from the cursor to its closing brace, with nothing
    /// checked; None when it cannot be found so, and the full check runs.
    /// In a valid sample line no `}` follows the list's own, except in an
    /// OpenMetrics exemplar (after a `#`), so the last `}` of a line closes
    /// it; lines with a `#` pair the quotes from the start instead. Where
    /// a broken line puts the end does not matter: a key the cache does not
    /// know is checked in full, and one it knows is the same bytes as a
    /// valid line's. A list that may leave a value open is not delimited:
    /// in text such a sample can go on over the next lines (see
    /// `parse_lines`), which only the full parse decides.
    fn delimit_labels(&mut self, c: &mut Cursor<'a>, sample_at: usize) -> Option<&'a str> {
        let line = c.s?;
        let start = c.i;
        let rest = c.b.get(start..)?;
        let end = if self.format == Format::OpenMetrics && memchr::memchr(b'#', rest).is_some() {
            let mut i = 0;
            loop {
                let j = i + memchr::memchr2(b'"', b'}', rest.get(i..)?)?;
                if rest[j] == b'}' {
                    break j;
                }
                i = j + 1 + scan_quoted(rest.get(j + 1..)?)? + 1;
            }
        } else {
            let end = memchr::memrchr(b'}', rest)?;
            // Without escapes, an even number of quotes closes every value
            // the full parse could open: no value is left open.
            let list = &rest[..end];
            let quotes = memchr::memchr_iter(b'"', list).count();
            let escapes = memchr::memchr(b'\\', list).is_some();
            if escapes || quotes % 2 == 1 {
                return None;
            }
            end
        };
        self.deferred = Some(DeferredLabels {
            line: c.b,
            number: c.line,
            sample_at,
        });
        c.i = start + end;
        line.get(start..start + end)
    }

    /// How many bytes of the piece were parsed (the rest goes before the
    /// next piece) and where the parse stands.
    pub fn stopped(&self) -> (usize, Resume) {
        (
            self.pos.min(self.input.len()),
            Resume {
                line: self.line,
                eof_seen: self.eof_seen,
            },
        )
    }

    /// The 1-based line number of the entry (or error) returned last.
    pub fn line(&self) -> usize {
        self.line
    }

    fn next_line(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.input.len() {
            return None;
        }
        let rest = &self.input[self.pos..];
        let len = match memchr::memchr(b'\n', rest) {
            Some(len) => len,
            None if self.more => return None,
            None => rest.len(),
        };
        self.pos += len + 1;
        self.line += 1;
        Some(&rest[..len])
    }

    /// Parses `input[start..end]`, a text sample whose label values hold raw
    /// newlines, as one line; the next line starts after it.
    fn parse_lines(&mut self, start: usize, end: usize) -> Result<Option<Entry<'a>>, ParseError> {
        let lines = &self.input[start..end];
        self.pos = end + 1;
        let parsed = self.parse_line(lines);
        self.line += memchr::memchr_iter(b'\n', lines).count();
        parsed
    }

    fn parse_line(&mut self, line: &'a [u8]) -> Result<Option<Entry<'a>>, ParseError> {
        let om = self.format == Format::OpenMetrics;
        let mut c = Cursor::new(line, self.line);
        if self.eof_seen {
            return Err(c.error("unexpected data after \"# EOF\"".into()));
        }
        if !om {
            c.skip_ws();
        }
        match c.peek() {
            None if om => Err(c.error("unexpected empty line (OpenMetrics allows none)".into())),
            None => Ok(None),
            Some(b'#') => self.parse_comment(c),
            Some(_) => match self.parse_sample(c) {
                Ok(sample) => Ok(Some(Entry::Sample(sample))),
                // After a deferred label list, the error the full check
                // gives first (a broken list comes before a broken value).
                Err(e) => match self.deferred.take() {
                    Some(deferred) => self.strict_sample(deferred).map(|s| Some(Entry::Sample(s))),
                    None => Err(e),
                },
            },
        }
    }

    fn parse_comment(&mut self, mut c: Cursor<'a>) -> Result<Option<Entry<'a>>, ParseError> {
        let om = self.format == Format::OpenMetrics;
        c.bump(); // '#'
        if om {
            let rest = c.rest();
            if rest == b" EOF" {
                self.eof_seen = true;
                return Ok(Some(Entry::Eof));
            }
            if !c.eat(b' ') {
                return Err(c.error(format!(
                    "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got {}",
                    c.token_text()
                )));
            }
        } else if !matches!(c.peek(), Some(b' ' | b'\t')) {
            return Ok(Some(Entry::Comment(c.text_lossy_rest())));
        } else {
            c.skip_ws();
        }
        let keyword_start = c.i;
        let keyword = c.take_while(|b| b.is_ascii_alphabetic());
        let keyword_ends_token = om && c.peek() == Some(b' ') || !om && c.at_ws();
        match (keyword, keyword_ends_token) {
            (b"HELP", true) => {
                let name = self.meta_name(&mut c, "HELP")?;
                let text = match c.peek() {
                    None => "",
                    Some(_) => {
                        if om {
                            c.bump();
                        } else {
                            c.skip_ws();
                        }
                        c.text_rest()?
                    }
                };
                Ok(Some(Entry::Help {
                    name,
                    text: unescape_help(text, self.format),
                }))
            }
            (b"TYPE", true) => {
                let name = self.meta_name(&mut c, "TYPE")?;
                c.separator(om)?;
                let word_col = c.i;
                let word = c.take_while(|b| !matches!(b, b' ' | b'\t'));
                let kind = metric_type(word, self.format).ok_or_else(|| {
                    c.error_at(
                        word_col,
                        format!(
                            "invalid metric type {} (expected {})",
                            quote(word),
                            if om {
                                "counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown"
                            } else {
                                "counter, gauge, histogram, summary or untyped"
                            }
                        ),
                    )
                })?;
                c.end_of_line(om, "metric type")?;
                Ok(Some(Entry::Type { name, kind }))
            }
            (b"UNIT", true) if om => {
                let name = self.meta_name(&mut c, "UNIT")?;
                let unit = match c.peek() {
                    None => "",
                    // `# UNIT name ` with an empty unit, as `# HELP name `
                    // may have an empty text (the OpenMetrics suite's
                    // empty_metadata case).
                    Some(b' ') if c.rest().len() == 1 => {
                        c.bump();
                        ""
                    }
                    Some(_) => {
                        c.separator(om)?;
                        let start = c.i;
                        let unit = c.take_while(|b| is_label_name_byte(b, false));
                        let unit = ascii(unit);
                        c.end_of_line(om, "unit").map_err(|mut e| {
                            if start == c.i {
                                e.message = format!("expected unit, got {}", c.token_text());
                            }
                            e
                        })?;
                        unit
                    }
                };
                // As in Prometheus: "_" and the unit end the name.
                if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
                    return Err(c.error_at(
                        keyword_start,
                        format!("unit {unit:?} is not a suffix of metric {name:?}"),
                    ));
                }
                Ok(Some(Entry::Unit { name, unit }))
            }
            (b"HELP" | b"TYPE" | b"UNIT", false) if om => Err(c.error(format!(
                "expected a space and a metric name after {}, got {}",
                quote(keyword),
                c.token_text()
            ))),
            _ if om => {
                c.i = keyword_start;
                Err(c.error(format!(
                    "expected \"HELP\", \"TYPE\", \"UNIT\" or \"EOF\" after \"#\", got {}",
                    c.token_text()
                )))
            }
            _ => {
                c.i = 0;
                c.bump();
                Ok(Some(Entry::Comment(c.text_lossy_rest())))
            }
        }
    }

    /// The metric name after `# HELP`/`# TYPE`/`# UNIT` and its separator.
    fn meta_name(&self, c: &mut Cursor<'a>, keyword: &str) -> Result<Cow<'a, str>, ParseError> {
        let om = self.format == Format::OpenMetrics;
        if om {
            c.bump(); // the single space, checked by the caller
        } else {
            c.skip_ws();
        }
        let name = match c.peek() {
            Some(b'"') => c.quoted_name("metric name")?,
            _ => Cow::Borrowed(c.metric_name()),
        };
        if name.is_empty() {
            return Err(c.error(format!(
                "expected metric name after {keyword}, got {}",
                c.token_text()
            )));
        }
        if om && c.peek() != Some(b' ') {
            // Prometheus's lexer wants exactly one space here, even when the
            // HELP text or the unit after it is empty.
            let what = match keyword {
                "HELP" => "help text (which may be empty)",
                "UNIT" => "unit (which may be empty)",
                _ => "metric type",
            };
            return Err(c.error(format!(
                "expected a space and the {what} after the metric name, got {}",
                c.token_text()
            )));
        }
        if c.peek().is_some() && !c.at_ws() {
            return Err(c.error(format!(
                "expected whitespace after metric name, got {}",
                c.token_text()
            )));
        }
        Ok(name)
    }

    fn parse_sample(&mut self, mut c: Cursor<'a>) -> Result<Sample<'a>, ParseError> {
        let om = self.format == Format::OpenMetrics;
        let sample_at = c.i;
        self.deferred = None;
        let mut name = Cow::Borrowed(c.metric_name());
        // `{"a.b",x="1"}`: the quoted name is inside the braces (Prometheus 3).
        let braces_first = name.is_empty() && c.peek() == Some(b'{');
        if name.is_empty() && !braces_first {
            return Err(c.error(format!("expected metric name, got {}", c.token_text())));
        }
        if !om {
            c.skip_ws();
        }
        let labels_src = if c.peek() == Some(b'{') {
            let open = c.i;
            c.bump();
            // A name in the braces is found by the full parse only.
            let delimited = match self.defer_labels && !braces_first {
                true => self.delimit_labels(&mut c, sample_at),
                false => None,
            };
            let src = match delimited {
                Some(src) => src,
                None => {
                    let (src, quoted) = self.label_list(&mut c)?;
                    match (quoted, braces_first) {
                        (Some(quoted), true) => name = quoted,
                        (Some(_), false) => {
                            return Err(c.error_at(
                                open,
                                format!("metric name {name:?} is set twice: before the braces and quoted inside them"),
                            ))
                        }
                        (None, true) => {
                            return Err(c.error_at(
                                open,
                                "expected metric name, got \"{\"".into(),
                            ))
                        }
                        (None, false) => {}
                    }
                    src
                }
            };
            c.bump(); // '}'
            src
        } else {
            ""
        };
        if om {
            if !c.eat(b' ') {
                return Err(c.error(format!(
                    "expected a space before the value, got {}",
                    c.token_text()
                )));
            }
        } else {
            c.skip_ws();
        }
        let value_col = c.i;
        let value = c.take_while(|b| !matches!(b, b' ' | b'\t'));
        if value.is_empty() {
            return Err(c.error(format!("expected value, got {}", c.token_text())));
        }
        let value = c
            .float_at(value_col)
            .ok_or_else(|| c.error_at(value_col, format!("bad number {}", quote(value))))?;
        let mut sample = Sample {
            name,
            labels_src,
            value,
            timestamp_ms: None,
            exemplar: None,
        };
        if om {
            self.om_sample_tail(&mut c, &mut sample)?;
        } else {
            c.skip_ws();
            if c.peek().is_some() {
                let ts_col = c.i;
                let ts = c.take_while(|b| !matches!(b, b' ' | b'\t'));
                let ms = ascii(ts).parse::<i64>().map_err(|_| {
                    c.error_at(
                        ts_col,
                        format!(
                            "bad timestamp {} (expected integer milliseconds)",
                            quote(ts)
                        ),
                    )
                })?;
                sample.timestamp_ms = Some(ms);
                c.end_of_line(false, "timestamp")?;
            }
        }
        Ok(sample)
    }

    /// OpenMetrics: ` timestamp` and ` # {labels} value [timestamp]`.
    fn om_sample_tail(
        &mut self,
        c: &mut Cursor<'a>,
        sample: &mut Sample<'a>,
    ) -> Result<(), ParseError> {
        if c.peek().is_none() {
            return Ok(());
        }
        c.separator(true)?;
        if c.peek() != Some(b'#') {
            let ts_col = c.i;
            let ts = c.take_while(|b| b != b' ');
            let ms = decimal_seconds_to_ms(ts)
                .or_else(|| om_timestamp(ts).map(seconds_to_ms))
                .ok_or_else(|| {
                    c.error_at(
                        ts_col,
                        format!("bad timestamp {} (expected seconds)", quote(ts)),
                    )
                })?;
            sample.timestamp_ms = Some(ms);
            if c.peek().is_none() {
                return Ok(());
            }
            c.separator(true)?;
        }
        if !c.rest().starts_with(b"# {") {
            return Err(c.error(format!(
                "expected end of line or an exemplar \"# {{...}}\", got {}",
                c.token_text()
            )));
        }
        c.i += 3;
        let (labels_src, quoted) = self.label_list(c)?;
        if quoted.is_some() {
            return Err(c.error("expected label name in the exemplar, got a metric name".into()));
        }
        c.bump(); // '}'
        c.separator(true)?;
        let value_col = c.i;
        let value = c.take_while(|b| b != b' ');
        let value = parse_float(value)
            .ok_or_else(|| c.error_at(value_col, format!("bad exemplar value {}", quote(value))))?;
        let mut timestamp = None;
        if c.peek().is_some() {
            c.separator(true)?;
            let ts_col = c.i;
            let ts = c.take_while(|b| b != b' ');
            timestamp = Some(om_timestamp(ts).ok_or_else(|| {
                c.error_at(
                    ts_col,
                    format!("bad exemplar timestamp {} (expected seconds)", quote(ts)),
                )
            })?);
            c.end_of_line(true, "exemplar timestamp")?;
        }
        sample.exemplar = Some(Exemplar {
            labels_src,
            value,
            timestamp,
        });
        Ok(())
    }

    /// Validates `name="value", ...` up to (not past) the closing brace and
    /// returns the text in between, and the quoted metric name if the list
    /// holds one (`{"a.b",x="1"}`; label names may be quoted too).
    fn label_list(
        &mut self,
        c: &mut Cursor<'a>,
    ) -> Result<(&'a str, Option<Cow<'a, str>>), ParseError> {
        let om = self.format == Format::OpenMetrics;
        let start = c.i;
        let mut metric = None;
        self.names.clear();
        loop {
            if !om {
                c.skip_ws();
            }
            match c.peek() {
                Some(b'}') => break,
                None => return Err(c.error("expected label name or \"}\", got end of line".into())),
                _ => {}
            }
            let name_col = c.i;
            let name = if c.peek() == Some(b'"') {
                let quoted = c.quoted_name("label name")?;
                let at = c.i;
                if !om {
                    c.skip_ws();
                }
                // A quoted string followed by `,` or `}` is the metric name.
                if matches!(c.peek(), Some(b',' | b'}')) {
                    if metric.is_some() {
                        return Err(c.error_at(
                            name_col,
                            format!("metric name {quoted:?} is set twice in the braces"),
                        ));
                    }
                    if quoted.is_empty() {
                        return Err(c.error_at(name_col, "empty metric name".into()));
                    }
                    metric = Some(quoted);
                    c.eat(b',');
                    continue;
                }
                c.i = at;
                if quoted.is_empty() {
                    return Err(c.error_at(name_col, "empty label name".into()));
                }
                quoted
            } else {
                Cow::Borrowed(c.label_name())
            };
            if name.is_empty() {
                return Err(c.error(format!("expected label name, got {}", c.token_text())));
            }
            // The metric name is `__name__` already: Prometheus's TSDB refuses
            // the sample as a duplicate label, and promtool's parser refuses it.
            if name == super::METRIC_NAME {
                return Err(c.error_at(
                    name_col,
                    "label name \"__name__\" is not unique (the metric name goes before the braces)"
                        .into(),
                ));
            }
            // Same length and last byte before a full compare: most names
            // differ there, which spares a memcmp call per pair.
            let last = name.as_bytes().last();
            if self
                .names
                .iter()
                .any(|n| n.len() == name.len() && n.as_bytes().last() == last && **n == *name)
            {
                return Err(c.error_at(name_col, format!("label name {name:?} is not unique")));
            }
            self.names.push(name);
            if !om {
                c.skip_ws();
            }
            if !c.eat(b'=') {
                return Err(c.error(format!(
                    "expected \"=\" after label name, got {}",
                    c.token_text()
                )));
            }
            if !om {
                c.skip_ws();
            }
            if !c.eat(b'"') {
                return Err(c.error(format!("expected label value, got {}", c.token_text())));
            }
            let value_start = c.i;
            let Some(len) = scan_quoted(c.rest()) else {
                self.unterminated = !om;
                return Err(c.error_at(
                    value_start - 1,
                    "unterminated label value (expected a closing '\"')".into(),
                ));
            };
            c.i = value_start + len + 1;
            let spaced = c.at_ws();
            if !om {
                c.skip_ws();
            }
            match c.peek() {
                Some(b',') => c.bump(),
                Some(b'}') => break,
                // promparse also takes pairs separated by blanks alone
                // (`{a="1" b="2"}`), so Prometheus ingests them: so do we.
                Some(b) if !om && spaced && (b == b'"' || is_label_name_byte(b, true)) => {}
                _ => {
                    return Err(c.error(format!(
                        "expected \",\" or \"}}\" after label value, got {}",
                        c.token_text()
                    )))
                }
            }
        }
        if let Some(line) = c.s {
            return Ok((line.get(start..c.i).unwrap_or_default(), metric));
        }
        // Unquoted names and punctuation are ASCII, so one check of the
        // whole list validates every value (quoted names were checked).
        std::str::from_utf8(&c.b[start..c.i])
            .map(|list| (list, metric))
            .map_err(|e| {
                c.error_at(
                    start + e.valid_up_to(),
                    "invalid UTF-8 in label value".into(),
                )
            })
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let start = self.pos;
            let Some(line) = self.next_line() else {
                self.finished = true;
                if self.format == Format::OpenMetrics && !self.eof_seen && !self.more {
                    self.line += 1;
                    return Some(Err(ParseError {
                        line: self.line,
                        col: 1,
                        message: "expected \"# EOF\" at the end of an OpenMetrics exposition, got end of input".into(),
                    }));
                }
                return None;
            };
            let mut parsed = self.parse_line(line);
            if std::mem::take(&mut self.unterminated) {
                match sample_end_across_lines(self.input, start, self.more) {
                    Across::End(end) => parsed = self.parse_lines(start, end),
                    Across::MoreInput => {
                        // Parsed again, whole, with the next piece.
                        self.pos = start;
                        self.line -= 1;
                        self.finished = true;
                        return None;
                    }
                    Across::No => {}
                }
            }
            match parsed {
                Ok(Some(entry)) => return Some(Ok(entry)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

fn metric_type(word: &[u8], format: Format) -> Option<MetricType> {
    let om = format == Format::OpenMetrics;
    Some(match word {
        b"counter" => MetricType::Counter,
        b"gauge" => MetricType::Gauge,
        b"histogram" => MetricType::Histogram,
        b"summary" => MetricType::Summary,
        b"untyped" if !om => MetricType::Unknown,
        b"unknown" if om => MetricType::Unknown,
        b"gaugehistogram" if om => MetricType::GaugeHistogram,
        b"info" if om => MetricType::Info,
        b"stateset" if om => MetricType::StateSet,
        _ => return None,
    })
}

/// Go's `strconv.ParseFloat` spellings; Rust's parser agrees on them
/// (`NaN`, `+Inf`, `-Inf`, `Inf`, case-insensitive, exponents).
fn parse_float(b: &[u8]) -> Option<f64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn om_timestamp(b: &[u8]) -> Option<f64> {
    parse_float(b).filter(|t| t.is_finite())
}

/// Seconds to milliseconds, rounded to the nearest (1.005 s is 1005 ms).
fn seconds_to_ms(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

/// Plain decimal seconds (`-12.3456`) to milliseconds exactly, rounded to
/// the nearest as `seconds_to_ms`: a float keeps only ~16 digits, so a
/// millisecond timestamp relay rendered as seconds must not come back
/// changed. `None` for other forms (exponents) or past the i64 range.
fn decimal_seconds_to_ms(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, b),
    };
    let (whole, fraction) = match memchr::memchr(b'.', digits) {
        Some(dot) => (&digits[..dot], &digits[dot + 1..]),
        None => (digits, &digits[digits.len()..]),
    };
    if whole.is_empty() || !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return None;
    }
    let mut ms: i128 = 0;
    for &d in whole {
        ms = ms.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    for i in 0..3 {
        let d = fraction.get(i).map_or(0, |d| i128::from(d - b'0'));
        ms = ms.checked_mul(10)?.checked_add(d)?;
    }
    if fraction.get(3).is_some_and(|&d| d >= b'5') {
        ms += 1;
    }
    i64::try_from(if negative { -ms } else { ms }).ok()
}

/// Bytes the grammar already limited to ASCII.
/// A line as text when it is valid UTF-8. Lines are almost always ASCII,
/// which `is_ascii` checks a word at a time; the full UTF-8 check, a byte
/// at a time over most of a line, cost 176 instructions per sample.
#[inline]
fn line_text(b: &[u8]) -> Option<&str> {
    if is_ascii(b) {
        // SAFETY: every byte is below 0x80 (checked just above), and ASCII
        // is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(b) });
    }
    std::str::from_utf8(b).ok()
}

/// Whether every byte is below 0x80: 16 bytes per step (the last step
/// overlaps the one before), no early exit: lines are short and almost
/// always ASCII.
#[inline]
fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u128 = u128::from_ne_bytes([0x80; 16]);
    let word =
        |piece: &[u8]| u128::from_ne_bytes(<[u8; 16]>::try_from(piece).unwrap_or([0x80; 16]));
    let Some(last) = b.len().checked_sub(16) else {
        return b.iter().fold(0u8, |acc, &x| acc | x) < 0x80;
    };
    let mut high = word(&b[last..]);
    for chunk in b.chunks_exact(16) {
        high |= word(chunk);
    }
    high & HIGH == 0
}

fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// A token for an error message, quoted; invalid UTF-8 is shown lossily.
fn quote(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

/// A position within one line.
struct Cursor<'a> {
    b: &'a [u8],
    /// The line as text when it is valid UTF-8 (almost always): tokens are
    /// then slices of it, checked once per line, not once per token. A line
    /// that is not takes the per-token checks, which say where it breaks.
    s: Option<&'a str>,
    i: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8], line: usize) -> Self {
        Cursor {
            b,
            s: line_text(b),
            i: 0,
            line,
        }
    }

    /// `b[start..end]`, which the grammar limited to ASCII, as text.
    fn ascii_at(&self, start: usize, end: usize) -> &'a str {
        match self.s {
            Some(line) => line.get(start..end).unwrap_or_default(),
            None => ascii(&self.b[start..end]),
        }
    }

    /// The number from `start` to the cursor.
    fn float_at(&self, start: usize) -> Option<f64> {
        match self.s {
            Some(line) => line.get(start..self.i)?.parse().ok(),
            None => parse_float(&self.b[start..self.i]),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) {
        self.i += 1;
    }

    fn eat(&mut self, want: u8) -> bool {
        if self.peek() == Some(want) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.i.min(self.b.len())..]
    }

    fn at_ws(&self) -> bool {
        matches!(self.peek(), Some(b' ' | b'\t'))
    }

    fn skip_ws(&mut self) {
        while self.at_ws() {
            self.i += 1;
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&keep) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, or "" when there is none here.
    fn metric_name(&mut self) -> &'a str {
        let start = self.i;
        self.i += metric_name_len(self.rest());
        self.ascii_at(start, self.i)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, or "" when there is none here.
    fn label_name(&mut self) -> &'a str {
        let start = self.i;
        self.i += label_name_len(self.rest());
        self.ascii_at(start, self.i)
    }

    /// A quoted name at the cursor (on its `"`): the text between the
    /// quotes, which must be UTF-8, unescaped as Prometheus's `unreplace`
    /// does a label value (`\\`, `\"`, `\n`). A name without a backslash
    /// is a slice of the body; only one with an escape is copied.
    fn quoted_name(&mut self, what: &str) -> Result<Cow<'a, str>, ParseError> {
        let open = self.i;
        let body = self.b.get(open + 1..).unwrap_or_default();
        let unterminated = |c: &Self| {
            c.error_at(
                open,
                format!("unterminated quoted {what} (expected a closing '\"')"),
            )
        };
        let mut len = 0;
        let mut escaped = false;
        loop {
            let Some(j) = body
                .get(len..)
                .and_then(|rest| memchr::memchr3(b'"', b'\\', b'\n', rest))
            else {
                return Err(unterminated(self));
            };
            len += j;
            match body[len] {
                b'"' => break,
                b'\\' if body.get(len + 1).is_some_and(|&b| b != b'\n') => {
                    escaped = true;
                    len += 2;
                }
                _ => return Err(unterminated(self)),
            }
        }
        let (start, end) = (open + 1, open + 1 + len);
        self.i = end + 1;
        let raw = match self.s {
            Some(line) => line.get(start..end).unwrap_or_default(),
            None => std::str::from_utf8(&self.b[start..end]).map_err(|e| {
                self.error_at(start + e.valid_up_to(), format!("invalid UTF-8 in {what}"))
            })?,
        };
        Ok(match escaped {
            false => Cow::Borrowed(raw),
            true => unescape_label_value(raw),
        })
    }

    /// One space (OpenMetrics) or a run of blanks (text) between tokens.
    fn separator(&mut self, om: bool) -> Result<(), ParseError> {
        if om {
            if self.eat(b' ') && self.peek().is_some_and(|b| b != b' ') {
                return Ok(());
            }
        } else if self.at_ws() {
            self.skip_ws();
            if self.peek().is_some() {
                return Ok(());
            }
        }
        Err(self.error(format!(
            "expected a single space and another token, got {}",
            self.token_text()
        )))
    }

    /// Nothing but (in text) trailing blanks may follow `what`.
    fn end_of_line(&mut self, om: bool, what: &str) -> Result<(), ParseError> {
        if !om {
            self.skip_ws();
        }
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(format!(
                "expected end of line after {what}, got {}",
                self.token_text()
            ))),
        }
    }

    /// The rest of the line as text, which must be UTF-8 (a HELP text).
    fn text_rest(&mut self) -> Result<&'a str, ParseError> {
        if let Some(line) = self.s {
            let text = line.get(self.i.min(line.len())..).unwrap_or_default();
            self.i = self.b.len();
            return Ok(text);
        }
        let rest = self.rest();
        match std::str::from_utf8(rest) {
            Ok(s) => {
                self.i = self.b.len();
                Ok(s)
            }
            Err(e) => Err(self.error_at(
                self.i + e.valid_up_to(),
                "invalid UTF-8 in HELP text".into(),
            )),
        }
    }

    /// The rest of a comment line: Prometheus does not look inside comments,
    /// so invalid UTF-8 there only shortens what we hand out.
    fn text_lossy_rest(&mut self) -> &'a str {
        let rest = self.rest();
        self.i = self.b.len();
        match std::str::from_utf8(rest) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
        }
    }

    /// The token at the cursor, quoted, for "got ..." in error messages.
    fn token_text(&self) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            return "end of line".into();
        }
        if matches!(rest[0], b'{' | b'}' | b'=' | b',' | b'"') {
            return quote(&rest[..1]);
        }
        let len = rest
            .iter()
            .skip(1)
            .position(|&b| matches!(b, b' ' | b'\t' | b',' | b'}' | b'{' | b'=' | b'"'))
            .map_or(rest.len(), |p| p + 1)
            .min(40);
        quote(&rest[..len])
    }

    fn error(&self, message: String) -> ParseError {
        self.error_at(self.i, message)
    }

    fn error_at(&self, byte: usize, message: String) -> ParseError {
        let byte = byte.min(self.b.len());
        let col = String::from_utf8_lossy(&self.b[..byte]).chars().count() + 1;
        ParseError {
            line: self.line,
            col,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(input: &str, format: Format) -> Vec<Entry<'_>> {
        Parser::new(input.as_bytes(), format)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_line_is_text_when_valid_utf8_wherever_a_high_byte_stands() {
        let ascii_line = "http_requests_total{code=\"200\",path=\"/api/v1\"} 1027 1395066363000";
        for len in 0..=ascii_line.len() {
            let line = &ascii_line.as_bytes()[..len];
            assert!(is_ascii(line), "{len}");
            assert_eq!(line_text(line), Some(&ascii_line[..len]));
        }
        // One byte of 0x80 or more at every position, of lines short and
        // long: never ASCII; text only if the whole line is valid UTF-8.
        for len in 1..40 {
            for at in 0..len {
                let mut line = vec![b'a'; len];
                line[at] = 0xff;
                assert!(!is_ascii(&line), "len {len}, at {at}");
                assert_eq!(line_text(&line), None, "len {len}, at {at}");
                line[at] = b'\xc3';
                if at + 1 < len {
                    line[at + 1] = 0xa9;
                    assert_eq!(line_text(&line), std::str::from_utf8(&line).ok());
                    assert!(line_text(&line).is_some_and(|t| t.contains('é')));
                }
            }
        }
    }

    fn first_error(input: &str, format: Format) -> String {
        Parser::new(input.as_bytes(), format)
            .find_map(Result::err)
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no error".into())
    }

    #[test]
    fn openmetrics_timestamps_keep_every_millisecond() {
        for (text, ms) in [
            ("-123372036548058.778", -123_372_036_548_058_778),
            ("1700000000.123", 1_700_000_000_123),
            ("1.005", 1005),
            ("1.0005", 1001),
            ("1.0004", 1000),
            ("+2", 2000),
            ("7.", 7000),
            ("-9223372036854775.808", i64::MIN),
            ("9223372036854775.807", i64::MAX),
        ] {
            assert_eq!(decimal_seconds_to_ms(text.as_bytes()), Some(ms), "{text}");
        }
        for text in ["1e3", ".5", "-", "", "1.2.3", "99999999999999999999"] {
            assert_eq!(decimal_seconds_to_ms(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn text_sample_with_labels_and_timestamp() {
        let e = entries(
            "a_total{x=\"1\",y=\"q\\\"\\n\\\\\"} 3.5 1700000000000\n",
            Format::Text,
        );
        let Entry::Sample(s) = &e[0] else {
            panic!("{e:?}")
        };
        assert_eq!(s.name, "a_total");
        assert_eq!(s.value, 3.5);
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
        let labels: Vec<_> = s.labels().collect();
        assert_eq!(
            labels,
            vec![
                (Cow::from("x"), Cow::from("1")),
                (Cow::from("y"), Cow::from("q\"\n\\"))
            ]
        );
        assert!(matches!(labels[0].1, Cow::Borrowed(_)));
    }

    #[test]
    fn text_whitespace_is_flexible_like_promparse() {
        let e = entries("  m { a = \"b\" , } \t 1  \n", Format::Text);
        let Entry::Sample(s) = &e[0] else {
            panic!("{e:?}")
        };
        assert_eq!(
            s.labels().collect::<Vec<_>>(),
            vec![(Cow::from("a"), Cow::from("b"))]
        );
        assert_eq!(s.value, 1.0);
    }

    #[test]
    fn openmetrics_timestamp_in_seconds_and_exemplar() {
        let e = entries(
            "# TYPE foo counter\nfoo_total 17 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67 1520879607.5\n# EOF\n",
            Format::OpenMetrics,
        );
        let Entry::Sample(s) = &e[1] else {
            panic!("{e:?}")
        };
        assert_eq!(s.timestamp_ms, Some(1_520_879_607_789));
        let ex = s.exemplar.as_ref().expect("exemplar");
        assert_eq!(ex.labels_src, "trace_id=\"KOO5S4vxi0o\"");
        assert_eq!(ex.value, 0.67);
        assert_eq!(ex.timestamp, Some(1_520_879_607.5));
        assert_eq!(e[2], Entry::Eof);
    }

    #[test]
    fn errors_have_line_and_column() {
        let cases = [
            (
                "a{b=\"c} 1\n",
                "1:5: unterminated label value (expected a closing '\"')",
            ),
            ("ok 1\na 1x\n", "2:3: bad number \"1x\""),
            ("a{1b=\"c\"} 1\n", "1:3: expected label name, got \"1b\""),
            (
                "a{b=\"c\",b=\"d\"} 1\n",
                "1:9: label name \"b\" is not unique",
            ),
            (
                "a 1 2 3\n",
                "1:7: expected end of line after timestamp, got \"3\"",
            ),
            (
                "a 1 1.5\n",
                "1:5: bad timestamp \"1.5\" (expected integer milliseconds)",
            ),
        ];
        for (input, want) in cases {
            let got: Vec<String> = Parser::new(input.as_bytes(), Format::Text)
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .collect();
            assert_eq!(got, [want], "{input:?}");
        }
    }

    #[test]
    fn invalid_utf8_in_a_label_value_is_located() {
        let e = Parser::new(b"a{b=\"\xff\"} 1\n", Format::Text).find_map(Result::err);
        assert_eq!(
            e.map(|e| e.to_string()),
            Some("1:6: invalid UTF-8 in label value".into())
        );
    }

    #[test]
    fn openmetrics_eof_rules() {
        assert_eq!(
            first_error("a 1\n", Format::OpenMetrics),
            "2:1: expected \"# EOF\" at the end of an OpenMetrics exposition, got end of input"
        );
        assert_eq!(
            first_error("# EOF\na 1\n", Format::OpenMetrics),
            "2:1: unexpected data after \"# EOF\""
        );
        assert_eq!(first_error("a 1\n# EOF\n", Format::OpenMetrics), "no error");
        assert_eq!(first_error("a 1\n# EOF", Format::OpenMetrics), "no error");
    }

    #[test]
    fn openmetrics_unit_must_be_a_suffix() {
        let got = first_error(
            "# TYPE x_seconds gauge\n# UNIT x_seconds bytes\n# EOF\n",
            Format::OpenMetrics,
        );
        assert_eq!(
            got,
            "2:3: unit \"bytes\" is not a suffix of metric \"x_seconds\""
        );
    }

    #[test]
    fn text_label_values_may_hold_a_raw_newline_as_in_promparse() {
        let input = "a{b=\"x\ny\",c=\"z\"} 1\nnext 2\nbad 3x\n";
        let mut parser = Parser::new(input.as_bytes(), Format::Text);
        let Some(Ok(Entry::Sample(first))) = parser.next() else {
            panic!("the two-line sample must parse");
        };
        let labels: Vec<_> = first
            .labels()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            labels,
            [
                ("b".to_owned(), "x\ny".to_owned()),
                ("c".to_owned(), "z".to_owned())
            ]
        );
        assert_eq!(first.value, 1.0);
        assert!(matches!(parser.next(), Some(Ok(Entry::Sample(s))) if s.name == "next"));
        assert_eq!(
            parser.line(),
            3,
            "line numbers count the newline in the value"
        );
        let err = parser.next().and_then(Result::err).map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("4:5: bad number \"3x\""));
        assert!(parser.next().is_none());
        // Still an error: a newline outside the quotes, the input ending
        // inside them, and OpenMetrics, which forbids raw newlines.
        for (input, format) in [
            ("a{b=\"x\ny} 1\n", Format::Text),
            ("a{b=\"x\n", Format::Text),
            ("a{b=\"x\ny\"} 1\n# EOF\n", Format::OpenMetrics),
        ] {
            assert_eq!(
                first_error(input, format),
                "1:5: unterminated label value (expected a closing '\"')",
                "{input:?}"
            );
        }
    }

    /// Quoted UTF-8 names (Prometheus 3, text 1.0.0 and OpenMetrics): input,
    /// format, then the name and labels of its one sample, or the error.
    #[test]
    fn quoted_names_table() {
        let om = Format::OpenMetrics;
        let text = Format::Text;
        type Want = Result<(&'static str, &'static [(&'static str, &'static str)]), &'static str>;
        let cases: &[(&str, Format, Want)] = &[
            ("{\"a.b\"} 1\n", text, Ok(("a.b", &[]))),
            ("{\"a.b\",\"c.d\"=\"x\"} 1\n", text, Ok(("a.b", &[("c.d", "x")]))),
            ("{\"c.d\"=\"x\",\"a.b\"} 1\n", text, Ok(("a.b", &[("c.d", "x")]))),
            ("{x=\"1\",\"a.b\",y=\"2\"} 1\n", text, Ok(("a.b", &[("x", "1"), ("y", "2")]))),
            ("{ \"a.b\" , \"c.d\" = \"x\" } 1\n", text, Ok(("a.b", &[("c.d", "x")]))),
            ("{\"a_b\",x=\"1\"} 1\n", text, Ok(("a_b", &[("x", "1")]))),
            ("a{\"c.d\"=\"x\"} 1\n", text, Ok(("a", &[("c.d", "x")]))),
            ("{\"héllo wörld\"} 1\n", text, Ok(("héllo wörld", &[]))),
            ("{\"a.b\",\"c.d\"=\"x\"} 1\n# EOF\n", om, Ok(("a.b", &[("c.d", "x")]))),
            ("{\"a.b\"} 1 # {\"t.x\"=\"1\"} 2\n# EOF\n", om, Ok(("a.b", &[]))),
            ("{\"a.b\"} 1 # {\"t\"} 2\n# EOF\n", om, Err("1:17: expected label name in the exemplar, got a metric name")),
            ("{ \"a.b\"} 1\n# EOF\n", om, Err("1:2: expected label name, got \" \"")),
            ("{x=\"1\"} 1\n", text, Err("1:1: expected metric name, got \"{\"")),
            ("a{\"b\"} 1\n", text, Err("1:2: metric name \"a\" is set twice: before the braces and quoted inside them")),
            ("{\"a\",\"b\"} 1\n", text, Err("1:6: metric name \"b\" is set twice in the braces")),
            ("{\"\"} 1\n", text, Err("1:2: empty metric name")),
            ("{\"a\",\"\"=\"x\"} 1\n", text, Err("1:6: empty label name")),
            ("{\"a\",\"__name__\"=\"x\"} 1\n", text, Err("1:6: label name \"__name__\" is not unique (the metric name goes before the braces)")),
            // Escapes in quoted names are undone as in label values (promparse's
            // unreplace): `\"`, `\\` and `\n`; any other is kept as written.
            ("{\"a\\\"b\"} 1\n", text, Ok(("a\"b", &[]))),
            ("{\"a\\\"b\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 1\n", text, Ok(("a\"b", &[("c\\d", "x"), ("e\nf", "y")]))),
            ("{\"a\\\"b\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 1\n# EOF\n", om, Ok(("a\"b", &[("c\\d", "x"), ("e\nf", "y")]))),
            ("{\"a\\qb\"} 1\n", text, Ok(("a\\qb", &[]))),
            ("{\"a\",\"b\\\"\"=\"1\",\"b\\\"\"=\"2\"} 1\n", text, Err("1:16: label name \"b\\\"\" is not unique")),
            ("{\"a\\\n\"} 1\n", text, Err("1:2: unterminated quoted label name (expected a closing '\"')")),
            ("{\"a\nb\"} 1\n", text, Err("1:2: unterminated quoted label name (expected a closing '\"')")),
            ("{\"a.b} 1\n", text, Err("1:2: unterminated quoted label name (expected a closing '\"')")),
            ("\"a.b\" 1\n", text, Err("1:1: expected metric name, got \"\\\"\"")),
        ];
        for (input, format, want) in cases {
            let got = Parser::new(input.as_bytes(), *format)
                .find_map(|e| match e {
                    Ok(Entry::Sample(s)) => Some(Ok((
                        s.name.to_string(),
                        s.labels()
                            .map(|(n, v)| (n.into_owned(), v.into_owned()))
                            .collect::<Vec<_>>(),
                    ))),
                    Ok(_) => None,
                    Err(e) => Some(Err(e.to_string())),
                })
                .expect("an entry");
            let want = want
                .map(|(n, l)| {
                    let labels = l.iter().map(|(a, b)| (a.to_string(), b.to_string()));
                    (n.to_owned(), labels.collect::<Vec<_>>())
                })
                .map_err(str::to_owned);
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn quoted_names_in_metadata_and_series_keys() {
        let e = entries(
            "# HELP \"a.b\" Some help.\n# TYPE \"a.b\" counter\n{\"a.b\",x=\"1\"} 1\n",
            Format::Text,
        );
        assert!(
            matches!(&e[0], Entry::Help { name, .. } if name == "a.b"),
            "{e:?}"
        );
        assert_eq!(
            e[1],
            Entry::Type {
                name: "a.b".into(),
                kind: MetricType::Counter
            }
        );
        let om = entries(
            "# TYPE \"a.b\" gauge\n# UNIT \"a.b_seconds\" seconds\n# EOF\n",
            Format::OpenMetrics,
        );
        assert!(matches!(
            &om[1],
            Entry::Unit {
                name,
                unit: "seconds"
            } if name == "a.b_seconds"
        ));
        // The series key holds the whole series as written, deferred or not.
        let body = b"{\"a.b\",x=\"1\"} 1\na{\"c.d\"=\"2\"} 2\n";
        for defer in [false, true] {
            let mut parser = Parser::new(body, Format::Text);
            if defer {
                parser = parser.deferring_labels();
            }
            let keys: Vec<_> = parser
                .map(|e| match e {
                    Ok(Entry::Sample(s)) => String::from_utf8_lossy(s.series_in(body)).into_owned(),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(keys, ["{\"a.b\",x=\"1\"", "a{\"c.d\"=\"2\""]);
        }
    }

    #[test]
    fn parsing_resumes_after_an_error() {
        let errors: Vec<_> = Parser::new(b"a 1x\nb 2\nc{ 3\n", Format::Text)
            .filter_map(Result::err)
            .map(|e| e.line)
            .collect();
        assert_eq!(errors, vec![1, 3]);
    }
}
