//! `relay check metrics`: the strict counterpart of the lenient scrape
//! parser. Scrapes ingest what Prometheus ingests; this reports, with
//! `line:col`, everything the format's own rules forbid: the parser's syntax
//! errors plus the family-level rules of `promtool check metrics` (text
//! 0.0.4) or of the OpenMetrics 1.0 specification; for protobuf, what
//! Prometheus's protobuf parser refuses.

mod openmetrics;
mod protobuf;
mod text;

use super::parse::{Format, ParseError};

/// Every problem in `input`, in line order; empty when it is valid.
pub fn check(input: &[u8], format: Format) -> Vec<ParseError> {
    let mut problems = match format {
        Format::Text => text::check(input),
        Format::OpenMetrics => openmetrics::check(input),
        Format::Protobuf => protobuf::check(input),
    };
    problems.sort_by_key(|p| (p.line, p.col));
    problems
}
