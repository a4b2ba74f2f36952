//! Issue 21's property test: the same families, exposed as Prometheus text
//! 0.0.4, as OpenMetrics 1.0 and as delimited protobuf (encoded by
//! `common::protoenc`, not by relay), give the same samples through
//! relay's parsers: names, labels, values and timestamps. Only `le` and
//! `quantile` differ as the formats write them; they are compared after
//! normalising the text's as Prometheus 3 does (`FormatOpenMetricsFloat`:
//! `1` → `1.0`), written here from Go's `strconv.FormatFloat(v, 'g', -1,
//! 64)` rules so relay's own formatting is checked, not reused.

mod common;

use proptest::prelude::*;

use common::protoenc::client::{self, bucket, family, metric, summary};
use common::protoenc::Msg;
use relay::exposition::proto::{self, Options, SampleValue, Scratch};
use relay::exposition::{Entry, Format, Parser};

/// A sample as compared: name, sorted labels, value (bits, or "NaN"),
/// timestamp in ms.
type Got = (String, Vec<(String, String)>, String, Option<i64>);

/// One metric of a family: its own labels and its value.
#[derive(Debug, Clone)]
struct Metric {
    labels: Vec<(String, String)>,
    value: Value,
    timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone)]
enum Value {
    Counter(f64),
    Gauge(f64),
    Untyped(f64),
    /// count, sum, (quantile, value) with quantiles ascending.
    Summary(u64, f64, Vec<(f64, f64)>),
    /// count, sum, (upper bound, cumulative count) with finite bounds
    /// ascending; `+Inf` is the count.
    Histogram(u64, f64, Vec<(f64, u64)>),
}

/// A family: its metrics share their kind (the first one's).
#[derive(Debug, Clone)]
struct Family {
    kind: u8,
    metrics: Vec<Metric>,
}

/// How a float is written in the text bodies: Rust's shortest decimal or
/// exponent form (both parse to the same float, as Go's ParseFloat reads
/// them).
#[derive(Debug, Clone, Copy)]
enum Style {
    Plain,
    Exp,
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-1000i32..1000).prop_map(|n| f64::from(n) / 8.0),
        2 => any::<f64>().prop_filter("finite", |v| v.is_finite()),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::NAN),
        1 => prop_oneof![Just(1e-5), Just(123456.0), Just(1234567.0), Just(1e21), Just(0.0001)],
    ]
}

fn non_negative() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (0u32..100_000).prop_map(|n| f64::from(n) / 4.0),
        1 => 0.0f64..1e300,
        1 => Just(f64::INFINITY),
    ]
}

/// Finite bounds (of buckets or quantiles), ascending and distinct.
fn bounds(range: std::ops::Range<f64>) -> impl Strategy<Value = Vec<f64>> {
    let one = prop_oneof![
        (range.start..range.end),
        (-20i32..20).prop_map(|n| f64::from(n) / 4.0),
        prop_oneof![
            Just(1.0),
            Just(1e-5),
            Just(1e6),
            Just(0.5),
            Just(100.0),
            Just(-0.0)
        ],
    ];
    prop::collection::vec(one, 0..5).prop_map(move |mut v| {
        v.retain(|b| b.is_finite() && *b >= range.start && *b <= range.end);
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    })
}

fn value(kind: u8) -> BoxedStrategy<Value> {
    match kind {
        0 => non_negative().prop_map(Value::Counter).boxed(),
        1 => float().prop_map(Value::Gauge).boxed(),
        2 => float().prop_map(Value::Untyped).boxed(),
        3 => (
            0u64..1000,
            non_negative(),
            bounds(0.0..1.0),
            prop::collection::vec(float(), 5),
        )
            .prop_map(|(count, sum, qs, vs)| {
                Value::Summary(count, sum, qs.into_iter().zip(vs).collect())
            })
            .boxed(),
        _ => (
            bounds(-1e9..1e9),
            prop::collection::vec(0u64..50, 6),
            non_negative(),
        )
            .prop_map(|(les, steps, sum)| {
                let mut total = 0;
                let buckets = les
                    .into_iter()
                    .zip(&steps)
                    .map(|(le, step)| {
                        total += step;
                        (le, total)
                    })
                    .collect();
                Value::Histogram(total + steps[5], sum, buckets)
            })
            .boxed(),
    }
}

fn label_value() -> impl Strategy<Value = String> {
    "[a-z0-9\"\\\\\n é☃{}=,#]{0,6}"
}

fn metrics(kind: u8) -> impl Strategy<Value = Vec<Metric>> {
    let one = (
        prop::collection::btree_map(
            prop::sample::select(vec!["a", "code", "path_x", "Z9"]),
            label_value(),
            0..3,
        ),
        value(kind),
        prop::option::of(1i64..2_000_000_000_000),
    );
    prop::collection::vec(one, 1..4).prop_map(|ms| {
        ms.into_iter()
            .enumerate()
            .map(|(i, (labels, value, timestamp_ms))| {
                // `i` keeps the series of a family distinct.
                let mut labels: Vec<(String, String)> =
                    labels.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                labels.push(("i".to_owned(), i.to_string()));
                Metric {
                    labels,
                    value,
                    timestamp_ms,
                }
            })
            .collect()
    })
}

fn families() -> impl Strategy<Value = Vec<Family>> {
    let one = (0u8..5)
        .prop_flat_map(|kind| metrics(kind).prop_map(move |metrics| Family { kind, metrics }));
    prop::collection::vec(one, 1..6)
}

/// The family's name in protobuf and text 0.0.4 (counters end in `_total`,
/// as OpenMetrics asks of their samples).
fn name(i: usize, kind: u8) -> String {
    if kind == 0 {
        format!("fam{i}_total")
    } else {
        format!("fam{i}")
    }
}

fn write_float(out: &mut String, v: f64, style: Style) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        match style {
            Style::Plain => out.push_str(&format!("{v}")),
            Style::Exp => out.push_str(&format!("{v:e}")),
        }
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One sample line: `name{labels,extra} value [timestamp]`.
fn line(
    out: &mut String,
    name: &str,
    m: &Metric,
    extra: Option<(&str, f64)>,
    v: f64,
    om: bool,
    style: Style,
) {
    out.push_str(name);
    let mut pairs: Vec<String> = m
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, bound)) = extra {
        let mut text = String::new();
        write_float(&mut text, bound, style);
        pairs.push(format!("{k}=\"{text}\""));
    }
    if !pairs.is_empty() {
        out.push('{');
        out.push_str(&pairs.join(","));
        out.push('}');
    }
    out.push(' ');
    write_float(out, v, style);
    if let Some(ts) = m.timestamp_ms {
        if om {
            out.push_str(&format!(" {}.{:03}", ts / 1000, ts % 1000));
        } else {
            out.push_str(&format!(" {ts}"));
        }
    }
    out.push('\n');
}

/// The families as text 0.0.4 or (with `om`) OpenMetrics 1.0.
fn text(families: &[Family], om: bool, style: Style) -> String {
    let mut out = String::new();
    for (i, f) in families.iter().enumerate() {
        let name = name(i, f.kind);
        let (type_name, kind) = match (f.kind, om) {
            (0, true) => (format!("fam{i}"), "counter"),
            (0, false) => (name.clone(), "counter"),
            (1, _) => (name.clone(), "gauge"),
            (2, true) => (name.clone(), "unknown"),
            (2, false) => (name.clone(), "untyped"),
            (3, _) => (name.clone(), "summary"),
            _ => (name.clone(), "histogram"),
        };
        out.push_str(&format!("# TYPE {type_name} {kind}\n"));
        for m in &f.metrics {
            match &m.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                    line(&mut out, &name, m, None, *v, om, style);
                }
                Value::Summary(count, sum, qs) => {
                    for &(q, v) in qs {
                        line(&mut out, &name, m, Some(("quantile", q)), v, om, style);
                    }
                    line(&mut out, &format!("{name}_sum"), m, None, *sum, om, style);
                    let count = *count as f64;
                    line(
                        &mut out,
                        &format!("{name}_count"),
                        m,
                        None,
                        count,
                        om,
                        style,
                    );
                }
                Value::Histogram(count, sum, buckets) => {
                    let bucket = format!("{name}_bucket");
                    for &(le, n) in buckets {
                        line(&mut out, &bucket, m, Some(("le", le)), n as f64, om, style);
                    }
                    let count = *count as f64;
                    let inf = Some(("le", f64::INFINITY));
                    line(&mut out, &bucket, m, inf, count, om, style);
                    line(&mut out, &format!("{name}_sum"), m, None, *sum, om, style);
                    line(
                        &mut out,
                        &format!("{name}_count"),
                        m,
                        None,
                        count,
                        om,
                        style,
                    );
                }
            }
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

/// The families as delimited protobuf; `inf` writes the `+Inf` bucket
/// that a target may leave out.
fn protobuf(families: &[Family], inf: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, f) in families.iter().enumerate() {
        let metrics = f
            .metrics
            .iter()
            .map(|m| {
                let labels: Vec<(&str, &str)> = m
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let msg = match &m.value {
                    Value::Counter(v) => metric(&labels, client::COUNTER_FIELD, client::value(*v)),
                    Value::Gauge(v) => metric(&labels, client::GAUGE_FIELD, client::value(*v)),
                    Value::Untyped(v) => metric(&labels, client::UNTYPED_FIELD, client::value(*v)),
                    Value::Summary(count, sum, qs) => {
                        metric(&labels, client::SUMMARY_FIELD, summary(*count, *sum, qs))
                    }
                    Value::Histogram(count, sum, buckets) => {
                        let mut h = Msg::new().uint(1, *count).double(2, *sum);
                        for &(le, n) in buckets {
                            h = h.msg(3, bucket(le, n));
                        }
                        if inf {
                            h = h.msg(3, bucket(f64::INFINITY, *count));
                        }
                        metric(&labels, client::HISTOGRAM_FIELD, h)
                    }
                };
                match m.timestamp_ms {
                    Some(ts) => msg.uint(6, ts as u64),
                    None => msg,
                }
            })
            .collect();
        let kind = match f.kind {
            0 => client::COUNTER,
            1 => client::GAUGE,
            2 => client::UNTYPED,
            3 => client::SUMMARY,
            _ => client::HISTOGRAM,
        };
        body.extend(family(&name(i, f.kind), "", kind, metrics).delimited());
    }
    body
}

fn compared(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{:016x}", v.to_bits())
    }
}

/// Prometheus's `FormatOpenMetricsFloat`: Go's `FormatFloat(v, 'g', -1,
/// 64)` (shortest round-trip digits; the exponent form below 1e-4 and from
/// 1e6 on, at least two exponent digits) plus `.0` when that has neither
/// `.` nor `e`; zero of either sign is `0.0`.
fn prometheus_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    // Prometheus's own shortcut (`case f == 0`), which -0 takes too.
    if v == 0.0 {
        return "0.0".to_owned();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let mut g = {
        // Rust's `{:e}` has the shortest round-trip digits, as Go's -1.
        let e = format!("{:e}", v.abs());
        let (mantissa, exp) = e.split_once('e').expect("an exponent");
        let exp: i32 = exp.parse().expect("an integer exponent");
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let nd = digits.len() as i32;
        let dp = exp + 1;
        // Go's %g with the shortest precision decides by a precision of
        // 6: %e when exp < -4 || exp >= 6, else %f.
        if !(-4..6).contains(&exp) {
            let mut out = digits[..1].to_owned();
            if nd > 1 {
                out.push('.');
                out.push_str(&digits[1..]);
            }
            out.push_str(&format!(
                "e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            ));
            out
        } else if dp <= 0 {
            format!("0.{}{digits}", "0".repeat((-dp) as usize))
        } else if dp >= nd {
            format!("{digits}{}", "0".repeat((dp - nd) as usize))
        } else {
            format!("{}.{}", &digits[..dp as usize], &digits[dp as usize..])
        }
    };
    if !g.contains('.') && !g.contains('e') {
        g.push_str(".0");
    }
    format!("{sign}{g}")
}

fn sorted(name: &str, mut labels: Vec<(String, String)>, v: f64, ts: Option<i64>) -> Got {
    labels.sort();
    (name.to_owned(), labels, compared(v), ts)
}

/// What relay's text parser makes of `body`, `le`/`quantile` normalised.
fn parse_text(body: &str, format: Format) -> Result<Vec<Got>, String> {
    let mut out = Vec::new();
    for entry in Parser::new(body.as_bytes(), format) {
        match entry.map_err(|e| e.to_string())? {
            Entry::Sample(s) => {
                let labels = s
                    .labels()
                    .map(|(k, v)| {
                        let v = match &*k {
                            "le" | "quantile" => {
                                let f: f64 = v.parse().map_err(|_| format!("{k}={v:?}"))?;
                                prometheus_float(f)
                            }
                            _ => v.into_owned(),
                        };
                        Ok((k.into_owned(), v))
                    })
                    .collect::<Result<_, String>>()?;
                out.push(sorted(&s.name, labels, s.value, s.timestamp_ms));
            }
            _ => continue,
        }
    }
    out.sort();
    Ok(out)
}

/// What relay's protobuf parser makes of `body` (classic view), as is.
fn parse_protobuf(body: &[u8]) -> Result<Vec<Got>, String> {
    let mut out = Vec::new();
    let (mut pos, mut number) = (0, 1);
    let mut scratch = Scratch::default();
    while pos < body.len() {
        let frame = proto::next_numbered_frame(&body[pos..], pos, number, 0, false)
            .map_err(|e| e.to_string())?
            .ok_or("a whole body")?;
        let buf = &body[pos..];
        let family = proto::decode(buf, frame).map_err(|e| e.to_string())?;
        proto::for_each_sample(&family, frame, Options::default(), &mut scratch, |s| {
            let SampleValue::Float(v) = s.value else {
                return Err(proto::ProtoError {
                    number,
                    offset: pos,
                    family: String::new(),
                    message: "a native histogram in classic mode".into(),
                });
            };
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|l| (l.name.to_owned(), l.value.to_owned()))
                .collect();
            if let Some((k, v)) = s.extra {
                labels.push((k.to_owned(), v.to_owned()));
            }
            out.push(sorted(s.name, labels, v, s.timestamp_ms));
            Ok(())
        })
        .map_err(|e: proto::ProtoError| e.to_string())?;
        pos += frame.end;
        number += 1;
    }
    out.sort();
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn text_openmetrics_and_protobuf_give_the_same_samples(
        families in families(),
        exp in any::<bool>(),
        inf in any::<bool>(),
    ) {
        let style = if exp { Style::Exp } else { Style::Plain };
        let want = parse_protobuf(&protobuf(&families, inf));
        prop_assert!(want.is_ok(), "protobuf: {:?}", want);
        let want = want.unwrap_or_default();
        let expected: usize = families
            .iter()
            .flat_map(|f| &f.metrics)
            .map(|m| match &m.value {
                Value::Summary(_, _, qs) => qs.len() + 2,
                Value::Histogram(_, _, b) => b.len() + 3,
                _ => 1,
            })
            .sum();
        prop_assert_eq!(want.len(), expected);
        for (format, om) in [(Format::Text, false), (Format::OpenMetrics, true)] {
            let body = text(&families, om, style);
            let got = parse_text(&body, format);
            prop_assert_eq!(got.as_ref(), Ok(&want), "{:?}:\n{}", format, body);
        }
    }
}

/// The normalisation the property relies on is Prometheus's: spot checks
/// of Go's `FormatFloat(v, 'g', -1, 64)` outputs.
#[test]
fn prometheus_float_formats_as_go_does() {
    for (v, want) in [
        (1.0, "1.0"),
        (0.0, "0.0"),
        (-0.0, "0.0"),
        (0.5, "0.5"),
        (100.0, "100.0"),
        (123456.0, "123456.0"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (1.5e-7, "1.5e-07"),
        (1e21, "1e+21"),
        (-2.5, "-2.5"),
        (f64::INFINITY, "+Inf"),
    ] {
        assert_eq!(prometheus_float(v), want, "{v}");
    }
}
