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

/// The highest and lowest exponential schemas Prometheus stores (a target's
/// 9..=52 is reduced to 8; below -4 is invalid).
pub const SCHEMA_MAX: i32 = 8;
pub const SCHEMA_MIN: i32 = -4;

impl Histogram {
    /// How many buckets it holds, both sides: what
    /// `native_histogram_bucket_limit` counts.
    pub fn bucket_count(&self) -> usize {
        match &self.counts {
            HistogramCounts::Integer {
                positive_deltas,
                negative_deltas,
                ..
            } => positive_deltas.len() + negative_deltas.len(),
            HistogramCounts::Float {
                positive, negative, ..
            } => positive.len() + negative.len(),
        }
    }

    /// Makes this a copy of `from`, reusing its buffers (a derived
    /// `clone_from` would allocate them anew).
    pub fn assign(&mut self, from: &Histogram) {
        self.schema = from.schema;
        self.zero_threshold = from.zero_threshold;
        self.sum = from.sum;
        self.positive_spans.clone_from(&from.positive_spans);
        self.negative_spans.clone_from(&from.negative_spans);
        match (&mut self.counts, &from.counts) {
            (
                HistogramCounts::Integer {
                    count,
                    zero_count,
                    positive_deltas,
                    negative_deltas,
                },
                HistogramCounts::Integer {
                    count: c,
                    zero_count: z,
                    positive_deltas: p,
                    negative_deltas: n,
                },
            ) => {
                (*count, *zero_count) = (*c, *z);
                positive_deltas.clone_from(p);
                negative_deltas.clone_from(n);
            }
            (
                HistogramCounts::Float {
                    count,
                    zero_count,
                    positive,
                    negative,
                },
                HistogramCounts::Float {
                    count: c,
                    zero_count: z,
                    positive: p,
                    negative: n,
                },
            ) => {
                (*count, *zero_count) = (*c, *z);
                positive.clone_from(p);
                negative.clone_from(n);
            }
            (counts, from) => *counts = from.clone(),
        }
    }

    /// Whether it is a float histogram (else integer counts).
    pub fn is_float(&self) -> bool {
        matches!(self.counts, HistogramCounts::Float { .. })
    }

    /// The staleness marker Prometheus 3 writes for a series whose last
    /// sample was a histogram: an empty one of the same kind whose sum is
    /// the stale NaN.
    pub fn stale(float: bool, stale_nan: f64) -> Histogram {
        let counts = if float {
            HistogramCounts::Float {
                count: 0.0,
                zero_count: 0.0,
                positive: Vec::new(),
                negative: Vec::new(),
            }
        } else {
            HistogramCounts::Integer {
                count: 0,
                zero_count: 0,
                positive_deltas: Vec::new(),
                negative_deltas: Vec::new(),
            }
        };
        Histogram {
            schema: 0,
            zero_threshold: 0.0,
            sum: stale_nan,
            positive_spans: Vec::new(),
            negative_spans: Vec::new(),
            counts,
        }
    }

    /// Lowers the resolution to `target` (a lower schema), merging each
    /// group of 2^(schema-target) neighbouring buckets into one, as
    /// Prometheus's `ReduceResolution`; nothing happens when `target` is
    /// not lower. Integer counts stay delta-encoded.
    pub fn reduce_resolution(&mut self, target: i32) {
        if target >= self.schema {
            return;
        }
        let from = self.schema;
        match &mut self.counts {
            HistogramCounts::Integer {
                positive_deltas,
                negative_deltas,
                ..
            } => {
                reduce_integer(&mut self.positive_spans, positive_deltas, from, target);
                reduce_integer(&mut self.negative_spans, negative_deltas, from, target);
            }
            HistogramCounts::Float {
                positive, negative, ..
            } => {
                reduce(&mut self.positive_spans, positive, from, target);
                reduce(&mut self.negative_spans, negative, from, target);
            }
        }
        self.schema = target;
    }
}

/// The index at schema `to` of the bucket at `index` in schema `from`
/// (`from > to`): bucket i covers (base^(i-1), base^i].
fn target_index(index: i32, from: i32, to: i32) -> i32 {
    ((index - 1) >> (from - to)) + 1
}

/// Merges absolute bucket counts and their spans into schema `to`, in place.
fn reduce<T: Copy + std::ops::AddAssign>(
    spans: &mut Vec<BucketSpan>,
    counts: &mut Vec<T>,
    from: i32,
    to: i32,
) {
    let mut out_spans: Vec<BucketSpan> = Vec::with_capacity(spans.len());
    let mut written = 0;
    let mut last = 0;
    let mut index = 0;
    let mut at = 0;
    for span in spans.iter() {
        index += span.offset;
        for _ in 0..span.length {
            let Some(&count) = counts.get(at) else {
                break;
            };
            let target = target_index(index, from, to);
            match out_spans.last_mut() {
                Some(_) if target == last => counts[written - 1] += count,
                Some(s) if target == last + 1 => {
                    s.length += 1;
                    counts[written] = count;
                    written += 1;
                }
                Some(_) => {
                    out_spans.push(BucketSpan {
                        offset: target - last - 1,
                        length: 1,
                    });
                    counts[written] = count;
                    written += 1;
                }
                None => {
                    out_spans.push(BucketSpan {
                        offset: target,
                        length: 1,
                    });
                    counts[written] = count;
                    written += 1;
                }
            }
            last = target;
            index += 1;
            at += 1;
        }
    }
    counts.truncate(written);
    *spans = out_spans;
}

/// [`reduce`] for delta-encoded integer counts.
fn reduce_integer(spans: &mut Vec<BucketSpan>, deltas: &mut Vec<i64>, from: i32, to: i32) {
    let mut running = 0i64;
    for d in deltas.iter_mut() {
        running = running.wrapping_add(*d);
        *d = running;
    }
    reduce(spans, deltas, from, to);
    let mut previous = 0i64;
    for d in deltas.iter_mut() {
        let absolute = *d;
        *d = absolute.wrapping_sub(previous);
        previous = absolute;
    }
}

/// Prometheus's `pickSchema`: the highest schema whose buckets grow by at
/// least `factor` (at most 8, at least -4; 1.00271 when `factor` <= 1).
pub fn schema_for_factor(factor: f64) -> i32 {
    let factor = if factor <= 1.0 { 1.00271 } else { factor };
    let floor = (-factor.log2().log2()).floor();
    if floor >= f64::from(SCHEMA_MAX) {
        SCHEMA_MAX
    } else if floor <= f64::from(SCHEMA_MIN) {
        SCHEMA_MIN
    } else {
        floor as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integer(schema: i32, spans: &[(i32, u32)], deltas: &[i64]) -> Histogram {
        Histogram {
            schema,
            zero_threshold: 0.001,
            sum: 10.0,
            positive_spans: spans
                .iter()
                .map(|&(offset, length)| BucketSpan { offset, length })
                .collect(),
            negative_spans: Vec::new(),
            counts: HistogramCounts::Integer {
                count: 0,
                zero_count: 0,
                positive_deltas: deltas.to_vec(),
                negative_deltas: Vec::new(),
            },
        }
    }

    /// Cases worked out by hand from Prometheus's `reduceResolution`:
    /// bucket i at schema s goes to ((i-1) >> (s-t)) + 1 at schema t.
    #[test]
    fn resolution_is_reduced_as_prometheus() {
        // Absolute counts 1,2,3,4 at indexes 0..=3, schema 1 -> 0:
        // 0 -> 0, 1 -> 1, 2 -> 1, 3 -> 2: counts 1, 5, 4 in one span.
        let mut h = integer(1, &[(0, 4)], &[1, 1, 1, 1]);
        h.reduce_resolution(0);
        assert_eq!(h.schema, 0);
        assert_eq!(
            h.positive_spans,
            vec![BucketSpan {
                offset: 0,
                length: 3
            }]
        );
        assert_eq!(
            h.counts,
            HistogramCounts::Integer {
                count: 0,
                zero_count: 0,
                positive_deltas: vec![1, 4, -1],
                negative_deltas: vec![],
            }
        );
        // A gap survives where the merged buckets do not meet: indexes
        // -3, -2 and 5, 6 at schema 2 -> 0: -3 -> 0, -2 -> 0; 5 -> 2, 6 -> 2.
        let mut f = Histogram {
            counts: HistogramCounts::Float {
                count: 10.0,
                zero_count: 0.0,
                positive: vec![1.0, 2.0, 3.0, 4.0],
                negative: vec![],
            },
            ..integer(2, &[(-3, 2), (6, 2)], &[])
        };
        f.reduce_resolution(0);
        assert_eq!(
            f.positive_spans,
            vec![
                BucketSpan {
                    offset: 0,
                    length: 1
                },
                BucketSpan {
                    offset: 1,
                    length: 1
                }
            ]
        );
        assert_eq!(
            f.counts,
            HistogramCounts::Float {
                count: 10.0,
                zero_count: 0.0,
                positive: vec![3.0, 7.0],
                negative: vec![],
            }
        );
        // Not lower: unchanged.
        let before = f.clone();
        f.reduce_resolution(3);
        assert_eq!(f, before);
    }

    #[test]
    fn schema_from_the_bucket_factor_as_pick_schema() {
        assert_eq!(schema_for_factor(0.0), 8);
        assert_eq!(schema_for_factor(1.1), 2);
        assert_eq!(schema_for_factor(2.0), 0);
        assert_eq!(schema_for_factor(4.0), -1);
        assert_eq!(schema_for_factor(1e300), -4);
    }
}
