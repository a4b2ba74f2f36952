//! The seam between scraping and everything that keeps samples: the text
//! snapshot behind :9090 and the remote-write WAL. Neither side owns it.
//!
//! The pipeline makes one pass over a scraped body and hands each sample to
//! an [`Appender`], as Prometheus's scrape loop hands them to a
//! `storage.Appender`: a transaction begun per scrape, then committed when
//! the scrape was good or rolled back when it failed (its samples are kept
//! by no one; the staleness markers and `up 0` that follow are a new
//! transaction). [`FanOut`] feeds two appenders from the same pass.
//!
//! A series is known by its [`SeriesRef`] for the life of the process; a
//! sample carries the series' labels too, so an appender that must record
//! them (the WAL, once per segment) keeps its own note of which it has.
//! The sample kinds relay carries are defined here: floats today; native
//! histograms (integer and float counts), start (created) timestamps,
//! exemplars and per-family metadata are carried by the same [`Appended`].

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

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
/// cache first sees a label set, so an appender learns the labels once and
/// then gets (ref, timestamp, value).
pub type SeriesRef = u64;

/// Series refs are unique in the process, across targets: a WAL segment
/// written by one process never sees a ref reused.
static NEXT_REF: AtomicU64 = AtomicU64::new(1);

/// A new, never used series ref.
pub fn next_ref() -> SeriesRef {
    NEXT_REF.fetch_add(1, Ordering::Relaxed)
}

/// The metric family a sample belongs to, from its HELP/TYPE/UNIT lines:
/// the metadata remote write sends per family.
#[derive(Debug, Clone, Default)]
pub struct Family<'a> {
    pub name: Cow<'a, str>,
    pub help: Option<Cow<'a, str>>,
    pub kind: MetricType,
    pub unit: Option<&'a str>,
}

/// Native histograms (defined beside the parsers that decode them, so
/// that the exposition module need not import this one).
pub use crate::exposition::histogram::{BucketSpan, Histogram, HistogramCounts};

/// What a sample holds.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Float(f64),
    Histogram(&'a Histogram),
}

impl Value<'_> {
    /// The float value; a histogram has none.
    pub fn float(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            Value::Histogram(_) => None,
        }
    }
}

/// An exemplar attached to a sample: its labels rendered `{a="b",...}`.
#[derive(Debug, Clone, Copy)]
pub struct Exemplar<'a> {
    pub labels: &'a str,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A series' text, `name{a="b",...}`, in the two pieces the series cache
/// keeps it as: the prefix it shares with an earlier series, then its own
/// bytes (`head` empty when it is whole). The name is never split: it is
/// all in `head`, or `head` is empty. Appenders copy the pieces where they
/// write the text; joining them for each sample cost 3-5 % of a steady
/// scrape's instructions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeriesText<'a> {
    pub head: &'a str,
    pub tail: &'a str,
}

impl<'a> From<&'a str> for SeriesText<'a> {
    fn from(whole: &'a str) -> Self {
        SeriesText {
            head: "",
            tail: whole,
        }
    }
}

impl<'a> From<&'a String> for SeriesText<'a> {
    fn from(whole: &'a String) -> Self {
        whole.as_str().into()
    }
}

impl<'a> SeriesText<'a> {
    /// Bytes of the whole text.
    #[inline]
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The piece the text starts with (and the name is in).
    #[inline]
    pub fn first(&self) -> &'a str {
        if self.head.is_empty() {
            self.tail
        } else {
            self.head
        }
    }

    /// Appends the whole text to `out`.
    #[inline]
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(self.tail.as_bytes());
    }

    /// Whether the whole text is `bytes`.
    pub fn is(&self, bytes: &[u8]) -> bool {
        bytes.len() == self.len()
            && bytes.starts_with(self.head.as_bytes())
            && bytes.get(self.head.len()..) == Some(self.tail.as_bytes())
    }

    /// The whole text: in `out` when it is in two pieces.
    pub fn join<'b>(self, out: &'b mut String) -> &'b str
    where
        'a: 'b,
    {
        if self.head.is_empty() {
            return self.tail;
        }
        out.clear();
        out.push_str(self.head);
        out.push_str(self.tail);
        out
    }
}

impl std::fmt::Display for SeriesText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.head)?;
        f.write_str(self.tail)
    }
}

/// Where the name starts in a series' text: past `{"` when it is quoted
/// inside the braces (not a legacy name), else at 0.
#[inline]
pub fn name_start(text: &str) -> usize {
    if text.starts_with("{\"") {
        2
    } else {
        0
    }
}

/// One sample of one series, as the pipeline hands it to an appender.
#[derive(Debug, Clone, Copy)]
pub struct Appended<'a> {
    pub series_ref: SeriesRef,
    /// The series rendered as `name{a="b",...}`, labels sorted: its identity.
    pub series: SeriesText<'a>,
    /// Length of the metric name at the start of `series`, as written there
    /// (a quoted name's escapes included).
    pub name_len: usize,
    pub family: &'a Family<'a>,
    /// The exposition's own timestamp (when honored); else the transaction's.
    pub timestamp_ms: Option<i64>,
    /// The series' start (created) timestamp, when the target gave one.
    pub start_timestamp_ms: Option<i64>,
    pub value: Value<'a>,
    pub exemplar: Option<&'a Exemplar<'a>>,
    /// False when the target's own timestamp is not newer than the series'
    /// last one: a remote-write receiver would reject it with its whole
    /// batch, so the WAL leaves it out (Prometheus's agent does the same).
    pub in_order: bool,
}

impl Appended<'_> {
    /// The metric name, unescaped (quoted inside the braces when it is not
    /// a legacy name: `{"a.b",x="1"}`); a copy only for a name whose
    /// quoted form holds an escape.
    #[inline]
    pub fn name(&self) -> Cow<'_, str> {
        let raw = self.rendered_name();
        if self.series.first().starts_with("{\"") {
            crate::exposition::parse::unescape_label_value(raw)
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// The metric name as `series` writes it (escaped inside its quotes).
    #[inline]
    pub fn rendered_name(&self) -> &str {
        let first = self.series.first();
        let at = name_start(first);
        first.get(at..at + self.name_len).unwrap_or(first)
    }

    /// A float sample with no exemplar or start timestamp.
    pub fn float<'a>(
        series_ref: SeriesRef,
        series: impl Into<SeriesText<'a>>,
        name_len: usize,
        family: &'a Family<'a>,
        timestamp_ms: Option<i64>,
        value: f64,
    ) -> Appended<'a> {
        Appended {
            series_ref,
            series: series.into(),
            name_len,
            family,
            timestamp_ms,
            start_timestamp_ms: None,
            value: Value::Float(value),
            exemplar: None,
            in_order: true,
        }
    }
}

/// A transaction of samples: [`Appender::begin`], appends, then
/// [`Appender::commit`] or [`Appender::rollback`].
pub trait Appender {
    /// Starts a transaction of samples scraped at `timestamp_ms` (the time
    /// of samples without their own).
    fn begin(&mut self, _timestamp_ms: i64) {}
    fn append(&mut self, sample: &Appended<'_>);
    /// Keeps what was appended since `begin` (for the WAL: writes it).
    fn commit(&mut self) {}
    /// Drops what was appended since `begin`; appends after it start a new
    /// transaction at the same timestamp.
    fn rollback(&mut self) {}
}

impl<A: Appender + ?Sized> Appender for &mut A {
    fn begin(&mut self, timestamp_ms: i64) {
        (**self).begin(timestamp_ms);
    }
    fn append(&mut self, sample: &Appended<'_>) {
        (**self).append(sample);
    }
    fn commit(&mut self) {
        (**self).commit();
    }
    fn rollback(&mut self) {
        (**self).rollback();
    }
}

/// Two appenders fed from one pass.
pub struct FanOut<A, B>(pub A, pub B);

impl<A: Appender, B: Appender> Appender for FanOut<A, B> {
    fn begin(&mut self, timestamp_ms: i64) {
        self.0.begin(timestamp_ms);
        self.1.begin(timestamp_ms);
    }
    fn append(&mut self, sample: &Appended<'_>) {
        self.0.append(sample);
        self.1.append(sample);
    }
    fn commit(&mut self) {
        self.0.commit();
        self.1.commit();
    }
    fn rollback(&mut self) {
        self.0.rollback();
        self.1.rollback();
    }
}

/// An appender that may not be there (no remote write configured).
impl<A: Appender> Appender for Option<A> {
    fn begin(&mut self, timestamp_ms: i64) {
        if let Some(a) = self {
            a.begin(timestamp_ms);
        }
    }
    fn append(&mut self, sample: &Appended<'_>) {
        if let Some(a) = self {
            a.append(sample);
        }
    }
    fn commit(&mut self) {
        if let Some(a) = self {
            a.commit();
        }
    }
    fn rollback(&mut self) {
        if let Some(a) = self {
            a.rollback();
        }
    }
}

/// An appender that keeps nothing (a cache commit with no one to tell).
impl Appender for () {
    fn append(&mut self, _: &Appended<'_>) {}
}

/// Durable storage the scrape loops append to besides the snapshot (the
/// remote-write WAL): each target gets an appender of its own, which keeps
/// what it must across that target's scrapes.
pub trait Storage: Send + Sync {
    /// The appender of one target, named `target` in log lines.
    fn appender(&self, target: &str) -> Box<dyn Appender + Send>;
}

/// The storage the scrape loops append to, if any: a config reload may add
/// remote write where there was none, or remove it.
#[derive(Clone, Default)]
pub struct Shared(Arc<RwLock<Option<Arc<dyn Storage>>>>);

impl Shared {
    pub fn set(&self, storage: Option<Arc<dyn Storage>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = storage;
    }

    /// The storage for one scrape.
    pub fn get(&self) -> Option<Arc<dyn Storage>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A target's appender into [`Shared`] storage, made again when a reload
/// replaced the storage.
#[derive(Default)]
pub struct TargetAppender {
    from: Option<Arc<dyn Storage>>,
    appender: Option<Box<dyn Appender + Send>>,
}

impl TargetAppender {
    /// The appender for this scrape of `target`, None when there is no storage.
    pub fn current(
        &mut self,
        shared: &Shared,
        target: &str,
    ) -> Option<&mut (dyn Appender + Send + 'static)> {
        let storage = shared.get();
        let same = match (&storage, &self.from) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.appender = storage.as_ref().map(|s| s.appender(target));
            self.from = storage;
        }
        self.appender.as_deref_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each call: (what, ref or timestamp).
    #[derive(Default)]
    struct Log(Vec<(&'static str, i64)>);

    impl Appender for Log {
        fn begin(&mut self, ts: i64) {
            self.0.push(("begin", ts));
        }
        fn append(&mut self, s: &Appended<'_>) {
            self.0.push(("append", s.series_ref as i64));
        }
        fn commit(&mut self) {
            self.0.push(("commit", 0));
        }
        fn rollback(&mut self) {
            self.0.push(("rollback", 0));
        }
    }

    #[test]
    fn a_fan_out_gives_both_sides_the_whole_transaction() {
        let (mut a, mut b) = (Log::default(), Log::default());
        let family = Family::default();
        {
            let mut both = FanOut(&mut a, Some(&mut b));
            both.begin(1000);
            both.append(&Appended::float(7, "m", 1, &family, None, 1.0));
            both.rollback();
            both.append(&Appended::float(8, "m", 1, &family, None, 2.0));
            both.commit();
        }
        let want = vec![
            ("begin", 1000),
            ("append", 7),
            ("rollback", 0),
            ("append", 8),
            ("commit", 0),
        ];
        assert_eq!(a.0, want);
        assert_eq!(b.0, want);
    }

    struct Counting(Arc<AtomicU64>);
    impl Storage for Counting {
        fn appender(&self, _: &str) -> Box<dyn Appender + Send> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::new(())
        }
    }

    #[test]
    fn a_target_appender_is_made_again_only_when_the_storage_changes() {
        let made = Arc::new(AtomicU64::new(0));
        let shared = Shared::default();
        let mut target = TargetAppender::default();
        assert!(target.current(&shared, "t").is_none());
        shared.set(Some(Arc::new(Counting(made.clone()))));
        assert!(target.current(&shared, "t").is_some());
        assert!(target.current(&shared, "t").is_some());
        assert_eq!(made.load(Ordering::Relaxed), 1);
        shared.set(Some(Arc::new(Counting(made.clone()))));
        assert!(target.current(&shared, "t").is_some());
        assert_eq!(made.load(Ordering::Relaxed), 2);
        shared.set(None);
        assert!(target.current(&shared, "t").is_none());
    }
}
