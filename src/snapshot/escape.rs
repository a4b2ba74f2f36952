//! Names escaped for a scraper that did not ask for UTF-8: the served body
//! keeps quoted UTF-8 names (`{"a.b"}`), and a scraper whose Accept has no
//! `escaping=allow-utf-8` (Prometheus 2.x, or one asking `underscores`,
//! `dots` or `values`) gets them escaped as prometheus/common's
//! `model.EscapeName` writes them, so it stores valid legacy names.

use std::borrow::Cow;

use crate::config::NameEscaping;
use crate::exposition::{render, Entry, Format, Labels, Parser, METRIC_NAME};

/// `name` under `scheme` (prometheus/common `EscapeName`).
pub fn escape_name(name: &str, scheme: NameEscaping) -> Cow<'_, str> {
    let legacy_rune = |c: char, i: usize| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (c.is_ascii_digit() && i > 0)
    };
    if name.is_empty() {
        return Cow::Borrowed(name);
    }
    let legacy = name.char_indices().all(|(i, c)| legacy_rune(c, i));
    let mut out = String::with_capacity(name.len() + 8);
    match scheme {
        NameEscaping::AllowUtf8 => return Cow::Borrowed(name),
        NameEscaping::Underscores if legacy => return Cow::Borrowed(name),
        NameEscaping::Underscores => {
            for (i, c) in name.char_indices() {
                out.push(if legacy_rune(c, i) { c } else { '_' });
            }
        }
        // Every `_` is doubled, so a legacy name changes too.
        NameEscaping::Dots => {
            for (i, c) in name.char_indices() {
                match c {
                    '_' => out.push_str("__"),
                    '.' => out.push_str("_dot_"),
                    c if legacy_rune(c, i) => out.push(c),
                    _ => out.push_str("__"),
                }
            }
        }
        NameEscaping::Values if legacy => return Cow::Borrowed(name),
        NameEscaping::Values => {
            out.push_str("U__");
            for (i, c) in name.char_indices() {
                match c {
                    '_' => out.push_str("__"),
                    c if legacy_rune(c, i) => out.push(c),
                    c => out.push_str(&format!("_{:x}_", u32::from(c))),
                }
            }
        }
    }
    Cow::Owned(out)
}

/// [`escape_name`] of a name that may borrow from a body, keeping the
/// borrow when the parser handed out a slice (no copy then).
fn escape_cow(name: Cow<'_, str>, scheme: NameEscaping) -> Cow<'_, str> {
    match name {
        Cow::Borrowed(name) => escape_name(name, scheme),
        Cow::Owned(name) => Cow::Owned(escape_name(&name, scheme).into_owned()),
    }
}

/// Whether `body` (relay's own rendering) may hold a name `scheme` changes:
/// quoted names are only written as `{"`, `,"` or after `# HELP`/`# TYPE`,
/// so a body without those (or with them only inside label values, which
/// costs one needless rewrite) is served as it is.
pub fn needs_escaping(body: &[u8], scheme: NameEscaping) -> bool {
    match scheme {
        NameEscaping::AllowUtf8 => false,
        NameEscaping::Dots => true,
        NameEscaping::Underscores | NameEscaping::Values => {
            memchr::memmem::find(body, b"{\"").is_some()
                || memchr::memmem::find(body, b",\"").is_some()
        }
    }
}

/// `body` in `format` with every metric and label name escaped by `scheme`;
/// exemplar label names too; values, timestamps and comments are copied
/// as they are.
pub fn escape_body(body: &[u8], format: Format, scheme: NameEscaping) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 8);
    let mut labels: Labels<'_> = Labels::with_capacity(16);
    for line in body.split_inclusive(|&b| b == b'\n') {
        if let Some(rest) = metadata(line) {
            let (keyword, rest) = line.split_at(line.len() - rest.len());
            out.extend_from_slice(keyword);
            let (name, tail) = match rest.strip_prefix(b"\"") {
                Some(quoted) => match render::quoted_len(quoted) {
                    Some(end) => (&quoted[..end], &quoted[end + 1..]),
                    None => (rest, &rest[rest.len()..]),
                },
                None => {
                    let end = memchr::memchr2(b' ', b'\n', rest).unwrap_or(rest.len());
                    (&rest[..end], &rest[end..])
                }
            };
            let name = String::from_utf8_lossy(name);
            let name = crate::exposition::parse::unescape_label_value(&name);
            let escaped = escape_name(&name, scheme);
            // A scheme other than allow-utf-8 leaves a legacy name, but
            // keep a quoted one quoted and escaped as it was.
            if rest.starts_with(b"\"") && !crate::exposition::is_metric_name(&escaped) {
                out.push(b'"');
                render::escape_label_value(&mut out, &escaped);
                out.push(b'"');
            } else {
                out.extend_from_slice(escaped.as_bytes());
            }
            out.extend_from_slice(tail);
            continue;
        }
        if line.first().is_none_or(|&b| b == b'#' || b == b'\n') {
            out.extend_from_slice(line);
            continue;
        }
        // One line parsed alone: its sample comes first (an OpenMetrics
        // parser then misses `# EOF`, which is not this line's problem).
        let sample = match Parser::new(line, format).next() {
            Some(Ok(Entry::Sample(s))) => s,
            _ => {
                out.extend_from_slice(line);
                continue;
            }
        };
        let series = sample.series_in(line);
        let offset = (series.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
        let mut end = offset + series.len();
        if !sample.labels_src.is_empty() {
            end += 1; // the `}`
        }
        labels.clear();
        labels.push(METRIC_NAME, escape_cow(sample.name.clone(), scheme));
        for (name, value) in sample.labels() {
            labels.push(escape_cow(name, scheme), value);
        }
        out.extend_from_slice(&line[..offset]);
        render::series(&mut out, &labels);
        let rest = line.get(end..).unwrap_or_default();
        match sample.exemplar.as_ref() {
            Some(e) => exemplar_escaped(&mut out, rest, e.labels_src, e.labels(), scheme),
            None => out.extend_from_slice(rest),
        }
    }
    out
}

/// `rest`, the line past its series, with the names of the exemplar
/// labels `pairs` (written at `src`, a slice of `rest`) escaped: a scraper
/// that gets escaped names reads no quoted ones in an exemplar either.
fn exemplar_escaped<'a>(
    out: &mut Vec<u8>,
    rest: &[u8],
    src: &str,
    pairs: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
    scheme: NameEscaping,
) {
    let at = (src.as_ptr() as usize).wrapping_sub(rest.as_ptr() as usize);
    let Some(after) = at.checked_add(src.len()).filter(|&e| e <= rest.len()) else {
        out.extend_from_slice(rest);
        return;
    };
    out.extend_from_slice(&rest[..at]);
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let name = escape_name(&name, scheme);
        if crate::exposition::is_label_name(&name) {
            out.extend_from_slice(name.as_bytes());
        } else {
            out.push(b'"');
            render::escape_label_value(out, &name);
            out.push(b'"');
        }
        out.extend_from_slice(b"=\"");
        render::escape_label_value(out, &value);
        out.push(b'"');
    }
    out.extend_from_slice(&rest[after..]);
}

/// What follows `# HELP `, `# TYPE ` or `# UNIT ` on a metadata line.
fn metadata(line: &[u8]) -> Option<&[u8]> {
    ["# HELP ", "# TYPE ", "# UNIT "]
        .iter()
        .find_map(|k| line.strip_prefix(k.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prometheus/common's `TestEscapeName` cases.
    #[test]
    fn names_escape_as_prometheus_common() {
        use NameEscaping::*;
        for (name, underscores, dots, values) in [
            ("", "", "", ""),
            (
                "no:escaping_required",
                "no:escaping_required",
                "no:escaping__required",
                "no:escaping_required",
            ),
            (
                "mysystem.prod.west.cpu.load",
                "mysystem_prod_west_cpu_load",
                "mysystem_dot_prod_dot_west_dot_cpu_dot_load",
                "U__mysystem_2e_prod_2e_west_2e_cpu_2e_load",
            ),
            (
                "mysystem.prod.west.cpu.load_total",
                "mysystem_prod_west_cpu_load_total",
                "mysystem_dot_prod_dot_west_dot_cpu_dot_load__total",
                "U__mysystem_2e_prod_2e_west_2e_cpu_2e_load__total",
            ),
            (
                "http.status:sum",
                "http_status:sum",
                "http_dot_status:sum",
                "U__http_2e_status:sum",
            ),
            (
                "label with 😱",
                "label_with__",
                "label__with____",
                "U__label_20_with_20__1f631_",
            ),
            ("花火", "__", "____", "U___82b1__706b_"),
            (
                "label with \u{100}",
                "label_with__",
                "label__with____",
                "U__label_20_with_20__100_",
            ),
        ] {
            assert_eq!(escape_name(name, Underscores), underscores, "{name}");
            assert_eq!(escape_name(name, Dots), dots, "{name}");
            assert_eq!(escape_name(name, Values), values, "{name}");
            assert_eq!(escape_name(name, AllowUtf8), name, "{name}");
        }
    }

    #[test]
    fn bodies_escape_names_and_keep_the_rest() {
        let text = "# HELP \"a.b\" Help \"quoted\".\n# TYPE \"a.b\" counter\n{\"a.b\",\"c.d\"=\"x,\\\"y\",z=\"1\"} 1 1700000000000\n# comment {\"\n plain{q=\"w\"} 2\n";
        let got = escape_body(text.as_bytes(), Format::Text, NameEscaping::Underscores);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "# HELP a_b Help \"quoted\".\n# TYPE a_b counter\na_b{c_d=\"x,\\\"y\",z=\"1\"} 1 1700000000000\n# comment {\"\n plain{q=\"w\"} 2\n"
        );
        let om = "# TYPE \"a.b\" counter\n{\"a.b_total\"} 1 # {\"t.id\"=\"x\"} 1 2.5\n# EOF\n";
        let got = escape_body(om.as_bytes(), Format::OpenMetrics, NameEscaping::Values);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "# TYPE U__a_2e_b counter\nU__a_2e_b__total 1 # {U__t_2e_id=\"x\"} 1 2.5\n# EOF\n"
        );
        assert!(!needs_escaping(
            b"a{b=\"c\"} 1\n",
            NameEscaping::Underscores
        ));
        assert!(needs_escaping(b"{\"a.b\"} 1\n", NameEscaping::Underscores));
        assert!(needs_escaping(b"a 1\n", NameEscaping::Dots));
    }

    /// Names holding `"`, `\` and a newline are read unescaped, then
    /// escaped by the scheme, which leaves no character to quote.
    #[test]
    fn escaped_quoted_names_are_unescaped_then_escaped() {
        let text = "# HELP \"a\\\"b\" H.\n# TYPE \"a\\\"b\" gauge\n{\"a\\\"b\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 1\n";
        let got = escape_body(text.as_bytes(), Format::Text, NameEscaping::Underscores);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "# HELP a_b H.\n# TYPE a_b gauge\na_b{c_d=\"x\",e_f=\"y\"} 1\n"
        );
        let om = "{\"a\\\"b\"} 1 # {\"t\\nid\"=\"x\"} 1\n# EOF\n";
        let got = escape_body(om.as_bytes(), Format::OpenMetrics, NameEscaping::Values);
        assert_eq!(
            String::from_utf8_lossy(&got),
            "U__a_22_b 1 # {U__t_a_id=\"x\"} 1\n# EOF\n"
        );
    }
}
