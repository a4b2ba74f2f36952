//! The rules for one series of a histogram or gauge histogram (the samples
//! that share labels other than `le`, and a timestamp): buckets in `le`
//! order with counts that never fall, ending in `+Inf`; `_count` equal to the
//! `+Inf` bucket; `_sum` and `_count` (`_gsum` and `_gcount`) together or
//! not at all; no `_sum` when a bucket is negative; no negative `_gsum`
//! unless one is.

use crate::exposition::model::MetricType;

/// Where a sample is: (line, column).
pub(super) type Pos = (usize, usize);

/// What one histogram series has shown so far.
pub(super) struct Series {
    kind: MetricType,
    /// Position of the first sample, for a series that has no bucket at all.
    first: Pos,
    /// The last bucket: its bound, count and line.
    last_bucket: Option<(f64, f64, Pos)>,
    negative_bucket: bool,
    /// `_count`/`_gcount`: its value (None when it broke a rule of its
    /// own) and position.
    count: Option<(Option<f64>, Pos)>,
    sum: Option<Pos>,
    /// `_gsum`, and whether it is negative.
    gsum: Option<(Pos, bool)>,
}

impl Series {
    pub(super) fn new(kind: MetricType, first: Pos) -> Self {
        Series {
            kind,
            first,
            last_bucket: None,
            negative_bucket: false,
            count: None,
            sum: None,
            gsum: None,
        }
    }

    fn noun(&self) -> &'static str {
        if self.kind == MetricType::GaugeHistogram {
            "gauge histogram"
        } else {
            "histogram"
        }
    }

    /// A bucket with bound `le` (written `le_text`, its value at `le_pos`)
    /// and count `value` (at `value_pos`).
    pub(super) fn bucket(
        &mut self,
        le: f64,
        le_text: &str,
        le_pos: Pos,
        value: f64,
        value_pos: Pos,
        problems: &mut Vec<(Pos, String)>,
    ) {
        if le < 0.0 {
            self.negative_bucket = true;
        }
        if let Some((prev_le, prev_value, _)) = self.last_bucket {
            if le <= prev_le {
                problems.push((
                    le_pos,
                    format!(
                        "{} bucket le must be increasing: le=\"{le_text}\" follows le=\"{}\"",
                        self.noun(),
                        num(prev_le)
                    ),
                ));
                return;
            }
            if value < prev_value {
                problems.push((
                    value_pos,
                    format!(
                        "{} bucket counts must not decrease: {} is less than the previous bucket's {}",
                        self.noun(),
                        num(value),
                        num(prev_value)
                    ),
                ));
            }
        }
        self.last_bucket = Some((le, value, value_pos));
    }

    pub(super) fn count(&mut self, value: Option<f64>, pos: Pos) {
        self.count = Some((value, pos));
    }

    pub(super) fn sum(&mut self, pos: Pos) {
        self.sum = Some(pos);
    }

    pub(super) fn gsum(&mut self, value: f64, pos: Pos) {
        self.gsum = Some((pos, value < 0.0));
    }

    /// The rules that need the whole series.
    pub(super) fn finish(self, problems: &mut Vec<(Pos, String)>) {
        let noun = self.noun();
        let (count_name, sum_name) = if self.kind == MetricType::GaugeHistogram {
            ("_gcount", "_gsum")
        } else {
            ("_count", "_sum")
        };
        match self.last_bucket {
            Some((le, inf_count, _)) if le == f64::INFINITY => {
                if let Some((Some(count), pos)) = self.count {
                    if count != inf_count {
                        problems.push((
                            pos,
                            format!(
                                "{noun} {count_name} {} does not match the le=\"+Inf\" bucket's {}",
                                num(count),
                                num(inf_count)
                            ),
                        ));
                    }
                }
            }
            Some((_, _, (line, _))) => problems.push((
                (line, 1),
                format!("{noun} series has no le=\"+Inf\" bucket (it must be the last bucket)"),
            )),
            None => problems.push((
                (self.first.0, 1),
                format!("{noun} series has no buckets (it needs at least le=\"+Inf\")"),
            )),
        }
        let sum = self.sum.or(self.gsum.map(|(pos, _)| pos));
        match (sum, self.count) {
            (Some((line, _)), None) => problems.push((
                (line, 1),
                format!("{noun} has {sum_name} but no {count_name}"),
            )),
            (None, Some((_, (line, _)))) => problems.push((
                (line, 1),
                format!("{noun} has {count_name} but no {sum_name}"),
            )),
            _ => {}
        }
        if let (Some((line, _)), true) = (self.sum, self.negative_bucket) {
            problems.push((
                (line, 1),
                "histogram with a negative bucket must not have _sum (use a gauge histogram)"
                    .into(),
            ));
        }
        if let (Some((pos, true)), false) = (self.gsum, self.negative_bucket) {
            problems.push((
                pos,
                "gauge histogram _gsum must not be negative when no bucket is negative".into(),
            ));
        }
    }
}

/// A number as the renderer writes it (`1`, `0.5`, `+Inf`).
pub(super) fn num(v: f64) -> String {
    let mut out = Vec::new();
    crate::exposition::render::float(&mut out, v);
    String::from_utf8_lossy(&out).into_owned()
}
