//! The exposition formats: Prometheus text 0.0.4, OpenMetrics 1.0 text and
//! the delimited protobuf format.
//!
//! [`Parser`] is an iterator over the entries of a text scrape body that
//! borrows from it; [`proto`] reads protobuf bodies family by family;
//! [`render`] writes text 0.0.4 (or OpenMetrics) back out.

pub mod conform;
pub mod histogram;
pub mod lint;
pub mod model;
pub mod parse;
pub mod proto;
pub mod render;

pub use lint::check;
pub use model::{
    family_suffixes, is_label_name, is_metric_name, Label, Labels, MetricType, METRIC_NAME,
};
pub use parse::{Entry, Exemplar, Format, ParseError, Parser, Resume, Sample};
