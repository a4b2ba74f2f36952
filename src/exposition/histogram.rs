//! Native (exponential-bucket) histograms as the protobuf parser decodes
//! them and the storage seam carries them (re-exported by `storage`).

/// A run of consecutive buckets of a native histogram, after a gap of
/// `offset` buckets (Prometheus's `BucketSpan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSpan {
    pub offset: i32,
    pub length: u32,
}

/// A native histogram's counts: integers (delta-encoded buckets, as the
/// protobuf exposition and remote write carry them) or floats.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramCounts {
    Integer {
        count: u64,
        zero_count: u64,
        positive_deltas: Vec<i64>,
        negative_deltas: Vec<i64>,
    },
    Float {
        count: f64,
        zero_count: f64,
        positive: Vec<f64>,
        negative: Vec<f64>,
    },
}

/// A native (exponential-bucket) histogram, as Prometheus's
/// `histogram.Histogram` / `FloatHistogram`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// -4..=8: bucket boundaries are powers of 2^(2^-schema).
    pub schema: i32,
    pub zero_threshold: f64,
    pub sum: f64,
    pub positive_spans: Vec<BucketSpan>,
    pub negative_spans: Vec<BucketSpan>,
    pub counts: HistogramCounts,
}
