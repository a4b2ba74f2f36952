//! Where the pieces of an already parsed OpenMetrics line are, so that a
//! rule broken by a value, a label or an exemplar can point at its column.
//! The parser proved the syntax (single spaces, quoted values), so this only
//! has to find the pieces again; it never panics on odd input.

use std::borrow::Cow;

use crate::exposition::parse::unescape_label_value;

/// The 1-based column (in characters) of byte `byte` of `line`.
pub(super) fn col(line: &[u8], byte: usize) -> usize {
    let byte = byte.min(line.len());
    String::from_utf8_lossy(&line[..byte]).chars().count() + 1
}

/// One `name="value"` pair of a label set, with byte offsets in the line.
pub(super) struct LabelAt<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, str>,
    /// Offset of the value's opening quote.
    pub value_at: usize,
}

/// The pairs of a validated label set that starts at byte `at` of its line.
pub(super) fn labels_at(src: &str, at: usize) -> Vec<LabelAt<'_>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && matches!(b[i], b',' | b' ' | b'\t') {
            i += 1;
        }
        // A quoted name: a label's (before `=`) or the metric's (skipped).
        let (name, eq) = if b.get(i) == Some(&b'"') {
            let Some(close) = crate::exposition::render::quoted_len(&b[i + 1..]).map(|p| i + 1 + p)
            else {
                break;
            };
            if b.get(close + 1) != Some(&b'=') {
                i = close + 1;
                continue;
            }
            (unescape_label_value(&src[i + 1..close]), close + 1)
        } else {
            let Some(eq) = b[i..].iter().position(|&c| c == b'=').map(|p| i + p) else {
                break;
            };
            (Cow::Borrowed(src[i..eq].trim()), eq)
        };
        let open = eq + 1;
        if b.get(open) != Some(&b'"') {
            break;
        }
        let mut j = open + 1;
        while j < b.len() && b[j] != b'"' {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        let raw = src.get(open + 1..j.min(b.len())).unwrap_or_default();
        out.push(LabelAt {
            name,
            value: unescape_label_value(raw),
            value_at: at + open,
        });
        i = j + 1;
    }
    out
}

/// The byte offset of a trailing comma in a label set starting at `at`
/// (`{a="1",}`), which OpenMetrics forbids and Prometheus tolerates.
pub(super) fn trailing_comma(src: &str, at: usize) -> Option<usize> {
    let trimmed = src.trim_end_matches([' ', '\t']);
    trimmed.ends_with(',').then(|| at + trimmed.len() - 1)
}

/// Where the parts of a sample line are (byte offsets in the line).
pub(super) struct SampleLayout<'a> {
    /// Start of the label set inside the braces, when there are braces.
    pub labels_at: Option<usize>,
    pub value_at: usize,
    /// The timestamp as written and its offset.
    pub timestamp: Option<(&'a str, usize)>,
    /// Offset of the value's end (where a missing timestamp would go).
    pub value_end: usize,
    /// Offset of the exemplar's `#`, and of its label set.
    pub exemplar_at: Option<(usize, usize)>,
}

/// Finds the parts of a sample line named `name` whose label set (between
/// the braces) is `labels_src`.
pub(super) fn sample_layout<'a>(line: &'a [u8], name: &str, labels_src: &str) -> SampleLayout<'a> {
    // A quoted name is inside the braces (`{"a.b",x="1"} 1`).
    let mut i = if line.first() == Some(&b'{') {
        0
    } else {
        name.len()
    };
    let name_len = i;
    let labels_at = (line.get(i) == Some(&b'{')).then(|| {
        i += labels_src.len() + 2;
        name_len + 1
    });
    let token_end = |from: usize| {
        line.get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b' '))
            .map_or(line.len(), |p| from + p)
    };
    let value_at = (i + 1).min(line.len());
    let value_end = token_end(value_at);
    let mut next = value_end + 1;
    let mut timestamp = None;
    if next < line.len() && line[next] != b'#' {
        let end = token_end(next);
        let text = std::str::from_utf8(&line[next..end]).unwrap_or_default();
        timestamp = Some((text, next));
        next = end + 1;
    }
    let exemplar_at = (next < line.len() && line[next] == b'#').then_some((next, next + 3));
    SampleLayout {
        labels_at,
        value_at,
        timestamp,
        value_end,
        exemplar_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_found_with_their_value_offsets_past_escapes() {
        let line = br#"m{a="x\"}",b="\\",c="\u00e9"} 1"#;
        let src = r#"a="x\"}",b="\\",c="\u00e9""#;
        let labels = labels_at(src, 2);
        let found: Vec<_> = labels
            .iter()
            .map(|l| (l.name.as_ref(), l.value.to_string(), l.value_at))
            .collect();
        assert_eq!(
            found,
            [
                ("a", "x\"}".to_owned(), 4),
                ("b", "\\".to_owned(), 13),
                ("c", "\\u00e9".to_owned(), 20),
            ]
        );
        assert_eq!(line[4], b'"');
        assert_eq!(line[13], b'"');
        assert_eq!(line[20], b'"');
    }

    #[test]
    fn trailing_comma_is_located() {
        assert_eq!(trailing_comma(r#"a="1","#, 2), Some(7));
        assert_eq!(trailing_comma(r#"a="1""#, 2), None);
        assert_eq!(trailing_comma("", 2), None);
    }

    #[test]
    fn sample_parts_are_located() {
        let line = br#"m_total{a="1"} 3 17.5 # {t="x"} 1"#;
        let lay = sample_layout(line, "m_total", r#"a="1""#);
        assert_eq!(lay.labels_at, Some(8));
        assert_eq!(lay.value_at, 15);
        assert_eq!(lay.value_end, 16);
        assert_eq!(lay.timestamp, Some(("17.5", 17)));
        assert_eq!(lay.exemplar_at, Some((22, 25)));
        let bare = sample_layout(b"m 3 # {} 1", "m", "");
        assert_eq!(
            (
                bare.labels_at,
                bare.value_at,
                bare.timestamp,
                bare.exemplar_at
            ),
            (None, 2, None, Some((4, 7)))
        );
        assert_eq!(col("é = 1".as_bytes(), 3), 3);
    }
}
