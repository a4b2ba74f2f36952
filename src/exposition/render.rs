//! STUB: the renderer (owned by the exposition work).

use super::model::{Labels, MetricType};
use super::parse::Format;

/// Writes the `# HELP`/`# TYPE`/`# UNIT` lines that open a family.
pub fn family_header(
    out: &mut Vec<u8>,
    format: Format,
    name: &str,
    help: Option<&str>,
    kind: MetricType,
    unit: Option<&str>,
) {
    let _ = (out, format, name, help, kind, unit);
    todo!()
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
    let _ = (out, format, labels, value, timestamp_ms);
    todo!()
}

/// Writes a float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` does (with
/// `NaN`, `+Inf`, `-Inf`), the form Prometheus exposes.
pub fn float(out: &mut Vec<u8>, v: f64) {
    let _ = (out, v);
    todo!()
}

/// Writes the OpenMetrics `# EOF` terminator (nothing for text 0.0.4).
pub fn end(out: &mut Vec<u8>, format: Format) {
    if format == Format::OpenMetrics {
        out.extend_from_slice(b"# EOF\n");
    }
}
