//! Why a scrape's body was rejected whole.

use crate::exposition::proto::ProtoError;
use crate::exposition::ParseError;

/// Why a scrape's body was rejected whole (Prometheus fails the scrape too).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    #[error("invalid exposition at line {0}")]
    Parse(ParseError),
    #[error("invalid protobuf exposition: {0}")]
    Protobuf(ProtoError),
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
    /// Relabeling left a name Prometheus would not store (`labels.IsValid`).
    #[error("invalid metric name or label names: {series}{rule}")]
    InvalidLabels { series: String, rule: String },
    /// Relabeling removed `__name__` but kept other labels.
    #[error("missing metric name (__name__ label): {series}{rule}")]
    MissingName { series: String, rule: String },
    /// A series too long for the cache (over 4 GiB rendered).
    #[error("series of {length} bytes after relabeling: longer than relay can keep")]
    SeriesTooLong { length: usize },
    /// A line still unfinished past [`Limits::line_bound`], refused before
    /// it is buffered whole (relay's own: Prometheus reads the body first).
    #[error("label_value_length_limit exceeded (metric: {metric}, a line longer than {bound} bytes, the most the label limits allow)")]
    LineTooLong { metric: String, bound: usize },
    /// A native histogram with more buckets than `native_histogram_bucket_limit`
    /// even at the lowest schema (Prometheus's `errBucketLimit`).
    #[error("native_histogram_bucket_limit exceeded (metric: {metric}, {buckets} buckets at schema -4, limit: {limit})")]
    BucketLimit {
        metric: String,
        buckets: usize,
        limit: usize,
    },
    /// A native histogram schema Prometheus does not store (-4..=8, and
    /// 9..=52 reduced to 8).
    #[error(
        "invalid native histogram schema {schema} (metric: {metric}): valid schemas are -4 to 52"
    )]
    InvalidSchema { metric: String, schema: i32 },
    #[error("label_value_length_limit exceeded (metric: {metric}, label value of {name}: {length} bytes, limit: {limit})")]
    LabelValueLength {
        metric: String,
        name: String,
        length: usize,
        limit: usize,
    },
}

impl From<ProtoError> for PipelineError {
    fn from(e: ProtoError) -> Self {
        PipelineError::Protobuf(e)
    }
}

impl PipelineError {
    /// A short, stable word for the failure metric's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            PipelineError::Parse(_)
            | PipelineError::Protobuf(_)
            | PipelineError::InvalidSchema { .. } => "parse",
            PipelineError::BucketLimit { .. } => "bucket_limit",
            PipelineError::SampleLimit { .. } => "sample_limit",
            PipelineError::InvalidLabels { .. } | PipelineError::MissingName { .. } => {
                "invalid_labels"
            }
            PipelineError::LabelLimit { .. }
            | PipelineError::LabelNameLength { .. }
            | PipelineError::LabelValueLength { .. }
            | PipelineError::LineTooLong { .. }
            | PipelineError::SeriesTooLong { .. } => "label_limit",
        }
    }
}
