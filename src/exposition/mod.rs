//! The exposition formats: Prometheus text 0.0.4 and OpenMetrics 1.0 text.
//!
//! [`Parser`] is an iterator over the entries of a scrape body that borrows
//! from it; [`render`] writes text 0.0.4 (or OpenMetrics) back out.

pub mod conform;
pub mod lint;
pub mod model;
pub mod parse;
pub mod render;

pub use lint::check;
pub use model::{is_label_name, is_metric_name, Label, Labels, MetricType, METRIC_NAME};
pub use parse::{Entry, Exemplar, Format, ParseError, Parser, Resume, Sample};
