//! Where a scrape's samples go. The pipeline makes one pass over a body and
//! hands each sample to an [`Appender`], as Prometheus's scrape loop hands
//! them to a `storage.Appender`: the text snapshot behind :9090 is one
//! implementation, the remote-write WAL the other, and a pair of appenders
//! feeds both from the same pass.

use std::borrow::Cow;

use crate::exposition::MetricType;

/// Prometheus's staleness marker: a NaN with this exact bit pattern says
/// "this series ended here", distinct from a NaN that a target exposed.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `value` is a staleness marker (not just any NaN).
pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// A series' identity for the life of the process: given when the series
/// cache first sees a label set, so a sink learns the labels once and then
/// gets (ref, timestamp, value).
pub type SeriesRef = u64;

/// The metric family a sample belongs to, from its HELP/TYPE/UNIT lines.
#[derive(Debug, Clone, Default)]
pub struct Family<'a> {
    pub name: &'a str,
    pub help: Option<Cow<'a, str>>,
    pub kind: MetricType,
    pub unit: Option<&'a str>,
}

/// One sample of one series, as the pipeline hands it to a sink.
#[derive(Debug, Clone, Copy)]
pub struct Appended<'a> {
    pub series_ref: SeriesRef,
    /// The series rendered as `name{a="b",...}`, labels sorted: its identity.
    pub series: &'a str,
    /// Length of the metric name at the start of `series`.
    pub name_len: usize,
    pub family: &'a Family<'a>,
    /// The exposition's own timestamp (when honored); else the scrape's.
    pub timestamp_ms: Option<i64>,
    pub value: f64,
    /// True the first time this series is appended in the sink's current
    /// epoch (a WAL segment): the sink must record the labels before the sample.
    pub describe: bool,
    /// False when the target's own timestamp is not newer than the series'
    /// last one: a remote-write receiver would reject it with its whole
    /// batch, so the WAL leaves it out (Prometheus's agent does the same).
    pub in_order: bool,
}

impl Appended<'_> {
    /// The metric name.
    pub fn name(&self) -> &str {
        self.series.get(..self.name_len).unwrap_or(self.series)
    }
}

/// A destination for a scrape's samples.
pub trait Appender {
    fn append(&mut self, sample: &Appended<'_>);
}

impl<A: Appender + ?Sized> Appender for &mut A {
    fn append(&mut self, sample: &Appended<'_>) {
        (**self).append(sample);
    }
}

/// Both sinks from one pass.
impl<A: Appender + ?Sized, B: Appender + ?Sized> Appender for (&mut A, &mut B) {
    fn append(&mut self, sample: &Appended<'_>) {
        self.0.append(sample);
        self.1.append(sample);
    }
}

/// For a scrape whose only sink is optional (no remote write configured).
impl<A: Appender> Appender for Option<A> {
    fn append(&mut self, sample: &Appended<'_>) {
        if let Some(a) = self {
            a.append(sample);
        }
    }
}

/// A sink that keeps nothing (a cache commit with no one to tell).
impl Appender for () {
    fn append(&mut self, _: &Appended<'_>) {}
}
