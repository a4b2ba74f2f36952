//! Writes text 0.0.4 (or OpenMetrics 1.0) into a caller-owned buffer, which
//! the scrape loop reuses between scrapes: rendering allocates nothing.
//! Numbers are written as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes
//! them, so relay's output reads like Prometheus's own.

use std::borrow::Cow;
use std::io::Write;

use super::model::{is_label_name, is_metric_name, is_utf8_name, Labels, MetricType, METRIC_NAME};
use super::parse::Format;

/// Writes the `# HELP`/`# TYPE`/`# UNIT` lines that open a family. In
/// OpenMetrics a counter family is named without its `_total` suffix; in text
/// 0.0.4, types it cannot express are written as `untyped`.
pub fn family_header(
    out: &mut Vec<u8>,
    format: Format,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
    unit: Option<&str>,
) {
    let name = match (format, kind) {
        (Format::OpenMetrics, MetricType::Counter) => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        metric_name(out, name);
        out.push(b' ');
        escape(out, help, format == Format::OpenMetrics);
        out.push(b'\n');
    }
    let keyword = match format {
        Format::OpenMetrics => kind.as_openmetrics(),
        Format::Text | Format::Protobuf => match kind {
            MetricType::Counter
            | MetricType::Gauge
            | MetricType::Histogram
            | MetricType::Summary => kind.as_text(),
            _ => "untyped",
        },
    };
    out.extend_from_slice(b"# TYPE ");
    metric_name(out, name);
    out.push(b' ');
    out.extend_from_slice(keyword.as_bytes());
    out.push(b'\n');
    if let (Format::OpenMetrics, Some(unit)) = (format, unit.filter(|u| !u.is_empty())) {
        out.extend_from_slice(b"# UNIT ");
        metric_name(out, name);
        out.push(b' ');
        out.extend_from_slice(unit.as_bytes());
        out.push(b'\n');
    }
}

/// Writes one sample line; `labels` holds `__name__` and the other labels
/// in the order they are to be written.
pub fn sample(
    out: &mut Vec<u8>,
    format: Format,
    labels: &Labels<'_>,
    value: f64,
    timestamp_ms: Option<i64>,
) {
    series(out, labels);
    sample_tail(out, format, value, timestamp_ms);
}

/// Writes what follows a series on its line: ` value[ timestamp]\n`.
pub fn sample_tail(out: &mut Vec<u8>, format: Format, value: f64, timestamp_ms: Option<i64>) {
    out.push(b' ');
    float(out, value);
    if let Some(ms) = timestamp_ms {
        out.push(b' ');
        match format {
            Format::Text | Format::Protobuf => {
                let _ = write!(out, "{ms}");
            }
            Format::OpenMetrics => seconds(out, ms),
        }
    }
    out.push(b'\n');
}

/// Writes a metric name on a metadata line: quoted unless it is a legacy
/// name (Prometheus 3's text 1.0.0 and OpenMetrics).
fn metric_name(out: &mut Vec<u8>, name: &str) {
    if is_metric_name(name) {
        out.extend_from_slice(name.as_bytes());
    } else {
        quoted(out, name);
    }
}

/// `"name"`, with `\`, `"` and newline escaped as in a label value (as
/// prometheus/common's expfmt writes a quoted name, and its parsers undo).
fn quoted(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    escape(out, name, true);
    out.push(b'"');
}

/// A name as it stands between the quotes of a rendered series: escaped
/// as [`quoted`] writes it; borrowed (no copy) when nothing needs escaping.
pub fn escaped_name(name: &str) -> Cow<'_, str> {
    if is_utf8_name(name) || name.is_empty() {
        return Cow::Borrowed(name);
    }
    let mut out = Vec::with_capacity(name.len() + 4);
    escape(&mut out, name, true);
    // Escaping only inserts ASCII before ASCII bytes: still UTF-8.
    Cow::Owned(String::from_utf8(out).unwrap_or_default())
}

/// Writes `name{a="b",...}`: a series' identity, without value. A name
/// outside the legacy charset is quoted, the metric name then inside the
/// braces, first: `{"a.b","c.d"="x"}`. Returns the length of the metric
/// name as written (between its quotes, escapes included).
pub fn series(out: &mut Vec<u8>, labels: &Labels<'_>) -> usize {
    let name = labels.metric_name();
    let mut first = true;
    let name_len = if is_metric_name(name) {
        out.extend_from_slice(name.as_bytes());
        name.len()
    } else {
        out.push(b'{');
        let start = out.len() + 1;
        quoted(out, name);
        first = false;
        out.len() - 1 - start
    };
    for label in labels.iter().filter(|l| l.name != METRIC_NAME) {
        out.push(if first { b'{' } else { b',' });
        first = false;
        if is_label_name(&label.name) {
            out.extend_from_slice(label.name.as_bytes());
        } else {
            quoted(out, &label.name);
        }
        out.extend_from_slice(b"=\"");
        escape(out, &label.value, true);
        out.push(b'"');
    }
    if !first {
        out.push(b'}');
    }
    name_len
}

/// Where the label list (between the braces, without a quoted metric name
/// and its comma) is in a series `series` rendered with a metric name of
/// `name_len` bytes: `name{a="1"}` or `{"name",a="1"}` (a quoted name is
/// found by its closing quote, escapes skipped). Empty when none.
pub fn labels_in(series: &[u8], name_len: usize) -> std::ops::Range<usize> {
    let (start, end) = if series.starts_with(b"{\"") {
        let quoted_len = quoted_len(&series[2..]).unwrap_or(name_len);
        let after = 2 + quoted_len + 1;
        let start = after + usize::from(series.get(after) == Some(&b','));
        (start, series.len().saturating_sub(1))
    } else {
        (name_len + 1, series.len().saturating_sub(1))
    };
    if start < end {
        start..end
    } else {
        end..end
    }
}

/// Milliseconds as decimal seconds (`1520879607.789`), exactly.
fn seconds(out: &mut Vec<u8>, ms: i64) {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (s, frac) = (abs / 1000, abs % 1000);
    let _ = if frac == 0 {
        write!(out, "{sign}{s}")
    } else {
        // Three digits, trailing zeros dropped: .5, .25, .125.
        let (digits, width) = match (frac % 100, frac % 10) {
            (0, _) => (frac / 100, 1),
            (_, 0) => (frac / 10, 2),
            _ => (frac, 3),
        };
        write!(out, "{sign}{s}.{digits:0width$}")
    };
}

/// Writes a float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` does (with
/// `NaN`, `+Inf`, `-Inf`), the form Prometheus exposes: the shortest digits
/// that read back exactly, in exponent form (`1e+06`, `1.5e-07`) when the
/// decimal exponent is below -4 or at least 6.
pub fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // Most values are small integers (counters, buckets): Go writes those
    // plainly below 1e6, and so can we, without the exponent analysis.
    if v.fract() == 0.0 && v.abs() < 1e6 {
        let _ = write!(out, "{}", v as i64);
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits and the decimal
    // exponent; only the layout differs from Go's.
    let mut buf = [0u8; 40];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{v:e}");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    let sci = std::str::from_utf8(&buf[..len]).unwrap_or("0e0");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if go_exponent_form(exp) {
        out.extend_from_slice(mantissa.as_bytes());
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Go's `%g` at shortest precision decides with `eprec = 6` (strconv's
/// `formatDigits`; the 21 of `fmt`'s `%v` does not apply to expfmt).
fn go_exponent_form(exp: i32) -> bool {
    !(-4..6).contains(&exp)
}

/// The length of a quoted text up to (not with) its closing quote, escapes
/// skipped; None when it has none.
pub fn quoted_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let j = i + memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[j] == b'"' {
            return Some(j);
        }
        i = j + 2;
    }
}

/// Escapes `\`, `"` and newline in a label value.
pub(crate) fn escape_label_value(out: &mut Vec<u8>, s: &str) {
    escape(out, s, true);
}

/// Escapes `\` and newline (and `"` when `quote`): label values always,
/// HELP texts without `"` in text 0.0.4 and with it in OpenMetrics.
fn escape(out: &mut Vec<u8>, s: &str, quote: bool) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'"' if quote => b"\\\"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Writes the OpenMetrics `# EOF` terminator (nothing for text 0.0.4).
pub fn end(out: &mut Vec<u8>, format: Format) {
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        float(&mut out, v);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn floats_read_like_go() {
        // Expected strings are what Go's strconv.FormatFloat(v, 'g', -1, 64) prints.
        let cases = [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (0.1, "0.1"),
            (1e100, "1e+100"),
            (1.7130787371e9, "1.7130787371e+09"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ];
        for (v, want) in cases {
            assert_eq!(f(v), want, "{v:e}");
        }
    }

    /// A name holding `"`, `\` or a newline is quoted with them escaped
    /// (as expfmt writes it), and the parser reads it back as it was.
    #[test]
    fn quoted_names_are_escaped_and_read_back() {
        let labels: Labels<'_> = [("__name__", "a\"b"), ("c\\d", "x"), ("e\nf", "y\"")]
            .into_iter()
            .collect();
        let mut out = Vec::new();
        let name_len = series(&mut out, &labels);
        let text = String::from_utf8_lossy(&out).into_owned();
        assert_eq!(text, "{\"a\\\"b\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\\\"\"}");
        assert_eq!(name_len, "a\\\"b".len());
        assert_eq!(
            &out[labels_in(&out, name_len)],
            b"\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\\\"\""
        );
        assert_eq!(escaped_name("a.b"), "a.b");
        assert!(matches!(escaped_name("a.b"), Cow::Borrowed(_)));
        assert_eq!(escaped_name("a\n\\"), "a\\n\\\\");
        out.extend_from_slice(b" 1\n");
        let parsed = crate::exposition::Parser::new(&out, Format::Text)
            .next()
            .and_then(Result::ok);
        let Some(crate::exposition::Entry::Sample(s)) = parsed else {
            panic!("{text}");
        };
        let mut back = Labels::default();
        s.labels_into(&mut back);
        assert_eq!(back, labels);
        let mut meta = Vec::new();
        family_header(
            &mut meta,
            Format::OpenMetrics,
            "a\"b",
            Some("h"),
            MetricType::Gauge,
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&meta),
            "# HELP \"a\\\"b\" h\n# TYPE \"a\\\"b\" gauge\n"
        );
    }

    #[test]
    fn sample_escapes_label_values_and_writes_timestamps() {
        let labels: Labels = [("__name__", "m"), ("a", "x\\\"y\n")].into_iter().collect();
        let mut out = Vec::new();
        sample(&mut out, Format::Text, &labels, 1.0, Some(1500));
        sample(&mut out, Format::OpenMetrics, &labels, 1.0, Some(1500));
        assert_eq!(
            String::from_utf8_lossy(&out),
            "m{a=\"x\\\\\\\"y\\n\"} 1 1500\nm{a=\"x\\\\\\\"y\\n\"} 1 1.5\n"
        );
    }

    #[test]
    fn openmetrics_timestamps_are_exact_seconds() {
        let cases = [
            (1500, "1.5"),
            (1250, "1.25"),
            (1001, "1.001"),
            (1010, "1.01"),
            (2000, "2"),
            (0, "0"),
            (-1500, "-1.5"),
            (1_700_000_000_120, "1700000000.12"),
        ];
        for (ms, want) in cases {
            let mut out = Vec::new();
            seconds(&mut out, ms);
            assert_eq!(String::from_utf8_lossy(&out), want, "{ms} ms");
        }
    }

    #[test]
    fn openmetrics_counter_header_drops_total() {
        let mut out = Vec::new();
        family_header(
            &mut out,
            Format::OpenMetrics,
            "c_total",
            Some("a \"b\""),
            MetricType::Counter,
            None,
        );
        family_header(&mut out, Format::Text, "i", None, MetricType::Info, None);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "# HELP c a \\\"b\\\"\n# TYPE c counter\n# TYPE i untyped\n"
        );
    }
}
