//! A tiny protobuf encoder written from the wire format alone (varints,
//! zigzag, fixed64, length-delimited fields), independent of relay's code
//! and of prost: the bytes the protobuf tests serve do not come from the
//! code under test. Enough for client_model's `MetricFamily` messages.

/// One message being written, field by field.
#[derive(Default, Clone)]
pub struct Msg(pub Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

impl Msg {
    pub fn new() -> Msg {
        Msg::default()
    }

    /// An unsigned or int64 varint field (uint64, int64, enum).
    pub fn uint(mut self, field: u32, v: u64) -> Msg {
        key(&mut self.0, field, 0);
        varint(&mut self.0, v);
        self
    }

    /// A sint32/sint64 field (zigzag).
    pub fn sint(mut self, field: u32, v: i64) -> Msg {
        key(&mut self.0, field, 0);
        varint(&mut self.0, zigzag(v));
        self
    }

    /// A double field (fixed64, little endian).
    pub fn double(mut self, field: u32, v: f64) -> Msg {
        key(&mut self.0, field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(mut self, field: u32, b: &[u8]) -> Msg {
        key(&mut self.0, field, 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn str(self, field: u32, s: &str) -> Msg {
        self.bytes(field, s.as_bytes())
    }

    pub fn msg(self, field: u32, m: Msg) -> Msg {
        self.bytes(field, &m.0)
    }

    /// A packed repeated sint64 field.
    pub fn packed_sint(self, field: u32, vs: &[i64]) -> Msg {
        let mut body = Vec::new();
        for &v in vs {
            varint(&mut body, zigzag(v));
        }
        self.bytes(field, &body)
    }

    /// A packed repeated double field.
    pub fn packed_double(self, field: u32, vs: &[f64]) -> Msg {
        let body: Vec<u8> = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &body)
    }

    /// The message with its varint length in front (one delimited frame).
    pub fn delimited(&self) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, self.0.len() as u64);
        out.extend_from_slice(&self.0);
        out
    }
}

/// client_model's field numbers and a few builders over them.
pub mod client {
    use super::Msg;

    pub const COUNTER: u64 = 0;
    pub const GAUGE: u64 = 1;
    pub const SUMMARY: u64 = 2;
    pub const UNTYPED: u64 = 3;
    pub const HISTOGRAM: u64 = 4;

    /// A `MetricFamily` (name 1, help 2, type 3, metric 4).
    pub fn family(name: &str, help: &str, kind: u64, metrics: Vec<Msg>) -> Msg {
        let mut m = Msg::new().str(1, name).str(2, help).uint(3, kind);
        for metric in metrics {
            m = m.msg(4, metric);
        }
        m
    }

    /// A `Metric` with its labels (field 1) and one value message.
    pub fn metric(labels: &[(&str, &str)], value_field: u32, value: Msg) -> Msg {
        let mut m = Msg::new();
        for (n, v) in labels {
            m = m.msg(1, Msg::new().str(1, n).str(2, v));
        }
        m.msg(value_field, value)
    }

    /// Metric fields: gauge 2, counter 3, summary 4, untyped 5, histogram 7.
    pub const GAUGE_FIELD: u32 = 2;
    pub const COUNTER_FIELD: u32 = 3;
    pub const SUMMARY_FIELD: u32 = 4;
    pub const UNTYPED_FIELD: u32 = 5;
    pub const HISTOGRAM_FIELD: u32 = 7;

    /// `{value = 1}` of Gauge, Counter and Untyped.
    pub fn value(v: f64) -> Msg {
        Msg::new().double(1, v)
    }

    /// A `Timestamp` (seconds 1, nanos 2).
    pub fn timestamp(ms: i64) -> Msg {
        Msg::new()
            .uint(1, ms.div_euclid(1000) as u64)
            .uint(2, (ms.rem_euclid(1000) * 1_000_000) as u64)
    }

    /// A `Summary`: count 1, sum 2, quantiles 3 (quantile 1, value 2).
    pub fn summary(count: u64, sum: f64, quantiles: &[(f64, f64)]) -> Msg {
        let mut m = Msg::new().uint(1, count).double(2, sum);
        for &(q, v) in quantiles {
            m = m.msg(3, Msg::new().double(1, q).double(2, v));
        }
        m
    }

    /// A `Bucket`: cumulative_count 1, upper_bound 2.
    pub fn bucket(le: f64, count: u64) -> Msg {
        Msg::new().uint(1, count).double(2, le)
    }

    /// A `BucketSpan`: offset 1 (sint32), length 2.
    pub fn span(offset: i64, length: u64) -> Msg {
        Msg::new().sint(1, offset).uint(2, length)
    }
}

/// Every kind of family, native histograms included (the protobuf tests
/// and the native histogram tests serve it): integer counts with a
/// zero bucket and negative and positive spans, float counts, and one
/// histogram with classic and native buckets.
pub fn every_kind() -> Vec<u8> {
    use client::*;
    let native_int = Msg::new()
        .uint(1, 9)
        .double(2, 4.5)
        .sint(5, 0)
        .double(6, 0.001)
        .uint(7, 2)
        .msg(9, span(-1, 1))
        .packed_sint(10, &[3])
        .msg(12, span(0, 2))
        .msg(12, span(2, 1))
        .packed_sint(13, &[1, 1, -1]);
    let native_float = Msg::new()
        .double(4, 5.5)
        .double(2, 10.0)
        .sint(5, 1)
        .double(6, 0.01)
        .double(8, 0.5)
        .msg(12, span(1, 2))
        .packed_double(14, &[2.0, 3.0]);
    let both = Msg::new()
        .uint(1, 4)
        .double(2, 3.0)
        .msg(3, bucket(0.5, 1))
        .msg(3, bucket(1.0, 3))
        .sint(5, 0)
        .msg(12, span(0, 2))
        .packed_sint(13, &[1, 2]);
    let classic = Msg::new()
        .uint(1, 6)
        .double(2, 20.0)
        .msg(3, bucket(1.0, 2))
        .msg(3, bucket(10.0, 5));
    let counter_with_extras = value(42.0)
        .msg(
            2,
            Msg::new()
                .msg(1, Msg::new().str(1, "trace_id").str(2, "abc"))
                .double(2, 1.0),
        )
        .msg(3, timestamp(1_700_000_000_000));
    let all = [
        family(
            "pt_requests_total",
            "Requests.",
            COUNTER,
            vec![
                metric(&[("code", "200")], COUNTER_FIELD, counter_with_extras),
                metric(&[("code", "500")], COUNTER_FIELD, value(3.0)),
            ],
        ),
        family(
            "pt_temperature",
            "A gauge.",
            GAUGE,
            vec![metric(&[("room", "a\"b\\c")], GAUGE_FIELD, value(-1.5))],
        ),
        family(
            "pt_untyped",
            "",
            UNTYPED,
            vec![metric(&[], UNTYPED_FIELD, value(7.0))],
        ),
        family(
            "pt_latency",
            "A summary.",
            SUMMARY,
            vec![metric(
                &[],
                SUMMARY_FIELD,
                summary(10, 2.5, &[(0.5, 0.1), (0.99, 0.9)]),
            )],
        ),
        family(
            "pt_size",
            "A classic histogram.",
            HISTOGRAM,
            vec![metric(&[], HISTOGRAM_FIELD, classic)],
        ),
        family(
            "pt_native_int",
            "A native histogram.",
            HISTOGRAM,
            vec![metric(&[], HISTOGRAM_FIELD, native_int)],
        ),
        family(
            "pt_native_float",
            "A float native histogram.",
            HISTOGRAM,
            vec![metric(&[], HISTOGRAM_FIELD, native_float)],
        ),
        family(
            "pt_both",
            "Classic and native buckets.",
            HISTOGRAM,
            vec![metric(&[], HISTOGRAM_FIELD, both)],
        ),
    ];
    all.iter().flat_map(Msg::delimited).collect()
}
