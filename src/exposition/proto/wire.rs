//! A borrowing decoder of client_model's messages: strings and packed
//! fields stay slices of the body, and a family's metrics are decoded one
//! at a time into one [`Metric`] whose vectors are reused, so a scrape of
//! known series allocates per family, not per sample (prost's generated
//! types, in [`super::pb`], own a `String` per label name and value). The
//! structs mirror the generated ones, field for field, with the same
//! numbers; unknown fields are skipped, as protobuf requires.

/// Why a message does not decode, as a short phrase.
pub type WireError = String;

/// Wire types.
const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// One field's value as it lies in the buffer.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    I64(u64),
    Len(&'a [u8]),
    I32,
}

/// The fields of one message, in order.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], message: &'static str) -> Self {
        Fields {
            buf,
            pos: 0,
            message,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        crate::varint::get(self.buf, &mut self.pos)
            .ok_or_else(|| format!("{}: invalid or truncated varint", self.message))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("{}: a field runs past the message's end", self.message))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next (field number, value), None at the message's end.
    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).unwrap_or(0);
        if field == 0 {
            return Err(format!("{}: field number 0", self.message));
        }
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            I64 => {
                let b = self.take(8)?;
                Value::I64(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            }
            LEN => {
                let n = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                Value::Len(self.take(n)?)
            }
            I32 => {
                self.take(4)?;
                Value::I32
            }
            other => return Err(format!("{}: unsupported wire type {other}", self.message)),
        };
        Ok(Some((field, value)))
    }
}

fn wrong(message: &str, field: u32) -> WireError {
    format!("{message}: field {field} has the wrong wire type")
}

fn double(v: Value<'_>, message: &str, field: u32) -> Result<f64, WireError> {
    match v {
        Value::I64(bits) => Ok(f64::from_bits(bits)),
        _ => Err(wrong(message, field)),
    }
}

fn uint(v: Value<'_>, message: &str, field: u32) -> Result<u64, WireError> {
    match v {
        Value::Varint(x) => Ok(x),
        _ => Err(wrong(message, field)),
    }
}

fn zigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

fn text<'a>(v: Value<'a>, message: &str, field: u32) -> Result<&'a str, WireError> {
    match v {
        Value::Len(b) => std::str::from_utf8(b)
            .map_err(|_| format!("{message}: field {field} is not valid UTF-8")),
        _ => Err(wrong(message, field)),
    }
}

fn bytes<'a>(v: Value<'a>, message: &str, field: u32) -> Result<&'a [u8], WireError> {
    match v {
        Value::Len(b) => Ok(b),
        _ => Err(wrong(message, field)),
    }
}

/// A repeated sint64, packed or not.
fn sints(
    v: Value<'_>,
    out: &mut Vec<i64>,
    message: &'static str,
    field: u32,
) -> Result<(), WireError> {
    match v {
        Value::Varint(x) => out.push(zigzag(x)),
        Value::Len(b) => {
            let mut f = Fields::new(b, message);
            while f.pos < b.len() {
                out.push(zigzag(f.varint()?));
            }
        }
        _ => return Err(wrong(message, field)),
    }
    Ok(())
}

/// A repeated double, packed or not.
fn doubles(v: Value<'_>, out: &mut Vec<f64>, message: &str, field: u32) -> Result<(), WireError> {
    match v {
        Value::I64(bits) => out.push(f64::from_bits(bits)),
        Value::Len(b) if b.len() % 8 == 0 => out.extend(
            b.chunks_exact(8)
                .map(|c| f64::from_bits(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))),
        ),
        _ => return Err(wrong(message, field)),
    }
    Ok(())
}

/// A label pair, borrowing from the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelPair<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

fn label_pair(b: &[u8]) -> Result<LabelPair<'_>, WireError> {
    const M: &str = "LabelPair";
    let mut pair = LabelPair::default();
    let mut f = Fields::new(b, M);
    while let Some((n, v)) = f.next_field()? {
        match n {
            1 => pair.name = text(v, M, n)?,
            2 => pair.value = text(v, M, n)?,
            _ => {}
        }
    }
    Ok(pair)
}

/// `google.protobuf.Timestamp` in milliseconds, as Prometheus converts it.
fn timestamp_ms(b: &[u8]) -> Result<i64, WireError> {
    const M: &str = "Timestamp";
    let (mut seconds, mut nanos) = (0i64, 0i32);
    let mut f = Fields::new(b, M);
    while let Some((n, v)) = f.next_field()? {
        match n {
            1 => seconds = uint(v, M, n)? as i64,
            2 => nanos = uint(v, M, n)? as i32,
            _ => {}
        }
    }
    Ok(seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(nanos / 1_000_000)))
}

/// An exemplar: its labels stay encoded until it is rendered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exemplar<'a> {
    labels: &'a [u8],
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl<'a> Exemplar<'a> {
    fn decode(b: &'a [u8]) -> Result<Self, WireError> {
        const M: &str = "Exemplar";
        let mut e = Exemplar::default();
        let mut f = Fields::new(b, M);
        while let Some((n, v)) = f.next_field()? {
            match n {
                1 => {
                    label_pair(bytes(v, M, n)?)?;
                    if e.labels.is_empty() {
                        e.labels = b;
                    }
                }
                2 => e.value = double(v, M, n)?,
                3 => e.timestamp_ms = Some(timestamp_ms(bytes(v, M, n)?)?),
                _ => {}
            }
        }
        Ok(e)
    }

    /// The exemplar's labels, in order (checked when it was decoded).
    pub fn labels(&self) -> impl Iterator<Item = LabelPair<'a>> + 'a {
        let mut f = Fields::new(self.labels, "Exemplar");
        std::iter::from_fn(move || loop {
            match f.next_field().ok()?? {
                (1, Value::Len(b)) => return label_pair(b).ok(),
                _ => continue,
            }
        })
    }
}

/// A classic bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bucket<'a> {
    pub cumulative_count: u64,
    pub cumulative_count_float: f64,
    pub upper_bound: f64,
    pub exemplar: Option<Exemplar<'a>>,
}

fn bucket(b: &[u8]) -> Result<Bucket<'_>, WireError> {
    const M: &str = "Bucket";
    let mut out = Bucket::default();
    let mut f = Fields::new(b, M);
    while let Some((n, v)) = f.next_field()? {
        match n {
            1 => out.cumulative_count = uint(v, M, n)?,
            4 => out.cumulative_count_float = double(v, M, n)?,
            2 => out.upper_bound = double(v, M, n)?,
            3 => out.exemplar = Some(Exemplar::decode(bytes(v, M, n)?)?),
            _ => {}
        }
    }
    Ok(out)
}

/// A native histogram's span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketSpan {
    pub offset: i32,
    pub length: u32,
}

fn span(b: &[u8]) -> Result<BucketSpan, WireError> {
    const M: &str = "BucketSpan";
    let mut out = BucketSpan::default();
    let mut f = Fields::new(b, M);
    while let Some((n, v)) = f.next_field()? {
        match n {
            1 => out.offset = zigzag(uint(v, M, n)?) as i32,
            2 => out.length = uint(v, M, n)? as u32,
            _ => {}
        }
    }
    Ok(out)
}

/// A histogram, classic and native parts.
#[derive(Debug, Clone, Default)]
pub struct Histogram<'a> {
    pub sample_count: u64,
    pub sample_count_float: f64,
    pub sample_sum: f64,
    pub bucket: Vec<Bucket<'a>>,
    pub created_timestamp: Option<i64>,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub zero_count_float: f64,
    pub negative_span: Vec<BucketSpan>,
    pub negative_delta: Vec<i64>,
    pub negative_count: Vec<f64>,
    pub positive_span: Vec<BucketSpan>,
    pub positive_delta: Vec<i64>,
    pub positive_count: Vec<f64>,
    pub exemplars: Vec<Exemplar<'a>>,
}

impl<'a> Histogram<'a> {
    fn clear(&mut self) {
        let mut old = std::mem::take(self);
        for v in [&mut old.negative_span, &mut old.positive_span] {
            v.clear();
        }
        for v in [&mut old.negative_delta, &mut old.positive_delta] {
            v.clear();
        }
        for v in [&mut old.negative_count, &mut old.positive_count] {
            v.clear();
        }
        old.bucket.clear();
        old.exemplars.clear();
        *self = Histogram {
            bucket: old.bucket,
            negative_span: old.negative_span,
            negative_delta: old.negative_delta,
            negative_count: old.negative_count,
            positive_span: old.positive_span,
            positive_delta: old.positive_delta,
            positive_count: old.positive_count,
            exemplars: old.exemplars,
            ..Histogram::default()
        };
    }

    fn merge(&mut self, b: &'a [u8]) -> Result<(), WireError> {
        const M: &str = "Histogram";
        let mut f = Fields::new(b, M);
        while let Some((n, v)) = f.next_field()? {
            match n {
                1 => self.sample_count = uint(v, M, n)?,
                4 => self.sample_count_float = double(v, M, n)?,
                2 => self.sample_sum = double(v, M, n)?,
                3 => self.bucket.push(bucket(bytes(v, M, n)?)?),
                15 => self.created_timestamp = Some(timestamp_ms(bytes(v, M, n)?)?),
                5 => self.schema = zigzag(uint(v, M, n)?) as i32,
                6 => self.zero_threshold = double(v, M, n)?,
                7 => self.zero_count = uint(v, M, n)?,
                8 => self.zero_count_float = double(v, M, n)?,
                9 => self.negative_span.push(span(bytes(v, M, n)?)?),
                10 => sints(v, &mut self.negative_delta, M, n)?,
                11 => doubles(v, &mut self.negative_count, M, n)?,
                12 => self.positive_span.push(span(bytes(v, M, n)?)?),
                13 => sints(v, &mut self.positive_delta, M, n)?,
                14 => doubles(v, &mut self.positive_count, M, n)?,
                16 => self.exemplars.push(Exemplar::decode(bytes(v, M, n)?)?),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A summary's quantile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantile {
    pub quantile: f64,
    pub value: f64,
}

/// One metric of a family, decoded into reused vectors.
#[derive(Debug, Clone, Default)]
pub struct Metric<'a> {
    pub label: Vec<LabelPair<'a>>,
    pub timestamp_ms: i64,
    pub gauge: f64,
    pub untyped: f64,
    pub counter: f64,
    pub counter_exemplar: Option<Exemplar<'a>>,
    pub counter_created: Option<i64>,
    pub summary_count: u64,
    pub summary_sum: f64,
    pub quantile: Vec<Quantile>,
    pub summary_created: Option<i64>,
    pub histogram: Histogram<'a>,
}

impl<'a> Metric<'a> {
    /// Decodes `b` into this metric, keeping the vectors' room.
    pub fn decode_into(&mut self, b: &'a [u8]) -> Result<(), WireError> {
        const M: &str = "Metric";
        let mut label = std::mem::take(&mut self.label);
        let mut quantile = std::mem::take(&mut self.quantile);
        let mut histogram = std::mem::take(&mut self.histogram);
        label.clear();
        quantile.clear();
        histogram.clear();
        *self = Metric {
            label,
            quantile,
            histogram,
            ..Metric::default()
        };
        let mut f = Fields::new(b, M);
        while let Some((n, v)) = f.next_field()? {
            match n {
                1 => self.label.push(label_pair(bytes(v, M, n)?)?),
                2 => self.gauge = single_value(bytes(v, M, n)?, "Gauge")?,
                5 => self.untyped = single_value(bytes(v, M, n)?, "Untyped")?,
                3 => self.counter(bytes(v, M, n)?)?,
                4 => self.summary(bytes(v, M, n)?)?,
                7 => self.histogram.merge(bytes(v, M, n)?)?,
                6 => self.timestamp_ms = uint(v, M, n)? as i64,
                _ => {}
            }
        }
        Ok(())
    }

    fn counter(&mut self, b: &'a [u8]) -> Result<(), WireError> {
        const M: &str = "Counter";
        let mut f = Fields::new(b, M);
        while let Some((n, v)) = f.next_field()? {
            match n {
                1 => self.counter = double(v, M, n)?,
                2 => self.counter_exemplar = Some(Exemplar::decode(bytes(v, M, n)?)?),
                3 => self.counter_created = Some(timestamp_ms(bytes(v, M, n)?)?),
                _ => {}
            }
        }
        Ok(())
    }

    fn summary(&mut self, b: &'a [u8]) -> Result<(), WireError> {
        const M: &str = "Summary";
        let mut f = Fields::new(b, M);
        while let Some((n, v)) = f.next_field()? {
            match n {
                1 => self.summary_count = uint(v, M, n)?,
                2 => self.summary_sum = double(v, M, n)?,
                3 => {
                    const Q: &str = "Quantile";
                    let mut q = Quantile::default();
                    let mut g = Fields::new(bytes(v, M, n)?, Q);
                    while let Some((n, v)) = g.next_field()? {
                        match n {
                            1 => q.quantile = double(v, Q, n)?,
                            2 => q.value = double(v, Q, n)?,
                            _ => {}
                        }
                    }
                    self.quantile.push(q);
                }
                4 => self.summary_created = Some(timestamp_ms(bytes(v, M, n)?)?),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The `value = 1` of Gauge and Untyped.
fn single_value(b: &[u8], message: &'static str) -> Result<f64, WireError> {
    let mut value = 0.0;
    let mut f = Fields::new(b, message);
    while let Some((n, v)) = f.next_field()? {
        if n == 1 {
            value = double(v, message, n)?;
        }
    }
    Ok(value)
}

/// A family: its metrics stay encoded until [`Metric::decode_into`].
#[derive(Debug, Clone, Default)]
pub struct MetricFamily<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub r#type: i32,
    pub unit: &'a str,
    pub metric: Vec<&'a [u8]>,
}

impl<'a> MetricFamily<'a> {
    /// Decodes a family's own fields and finds its metrics.
    pub fn decode(b: &'a [u8]) -> Result<Self, WireError> {
        const M: &str = "MetricFamily";
        let mut out = MetricFamily::default();
        let mut f = Fields::new(b, M);
        while let Some((n, v)) = f.next_field()? {
            match n {
                1 => out.name = text(v, M, n)?,
                2 => out.help = text(v, M, n)?,
                3 => out.r#type = uint(v, M, n)? as i32,
                4 => out.metric.push(bytes(v, M, n)?),
                5 => out.unit = text(v, M, n)?,
                _ => {}
            }
        }
        Ok(out)
    }
}
