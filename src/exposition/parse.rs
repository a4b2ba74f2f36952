//! STUB: the exposition parser (owned by the exposition work).

use std::borrow::Cow;

use super::model::{Labels, MetricType};

/// Which text format a body is in, chosen from the response's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    #[default]
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` header announces (text 0.0.4 when unknown).
    pub fn from_content_type(content_type: &str) -> Format {
        if content_type
            .trim_start()
            .starts_with("application/openmetrics-text")
        {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// A malformed input, located by 1-based line and column (in bytes).
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
    pub timestamp: Option<f64>,
}

/// One sample line; its labels are re-read from the input on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// The raw text between the braces, already validated by the parser.
    pub labels_src: &'a str,
    pub value: f64,
    /// Milliseconds since the epoch (OpenMetrics seconds are converted).
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
}

impl<'a> Sample<'a> {
    /// Appends `__name__` and this sample's labels to `out` (which the caller
    /// clears and reuses between samples).
    pub fn labels_into(&self, out: &mut Labels<'a>) {
        let _ = out;
        todo!()
    }
}

/// What one line of the input is.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Help {
        name: &'a str,
        text: Cow<'a, str>,
    },
    Type {
        name: &'a str,
        kind: MetricType,
    },
    Unit {
        name: &'a str,
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
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Self {
        Parser { input, format }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        let _ = (self.input, self.format);
        todo!()
    }
}

/// Every problem `relay check metrics` reports: the parser's errors plus the
/// family-level rules (counter without `_total`, histogram without `+Inf`...).
pub fn check(input: &[u8], format: Format) -> Vec<ParseError> {
    let _ = (input, format);
    todo!()
}
