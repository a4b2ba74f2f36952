//! A YAML stream cut into its documents as text, so that a document
//! `inject` does not change is printed as it was written (comments kept).
//!
//! A line starting with `---` or `...` (then a space, a tab or its end) is
//! a document marker wherever it appears: YAML forbids such a line inside
//! any scalar, so no parser is needed to find them.

/// One document of a stream: its text and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Doc<'a> {
    pub text: &'a str,
    /// 1-based line of the stream on which `text` starts.
    pub line: usize,
}

/// Whether `line` starts with the marker `mark` followed by nothing, a space or a tab.
fn is_marker(line: &str, mark: &str) -> bool {
    line.strip_prefix(mark)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// The documents of `text` in order, leaving out those with nothing but
/// whitespace (as kubectl does).
pub(crate) fn split(text: &str) -> Vec<Doc<'_>> {
    let mut docs = Vec::new();
    let (mut start, mut start_line) = (0, 1);
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let number = i + 1;
        let end = offset + line.len();
        if is_marker(line, "---") || is_marker(line, "...") {
            docs.push(Doc {
                text: &text[start..offset],
                line: start_line,
            });
            let rest = line[3..].trim();
            if is_marker(line, "---") && !rest.is_empty() && !rest.starts_with('#') {
                // `--- value`: the document begins on the marker's line.
                start = offset + 3;
                start_line = number;
            } else {
                start = end;
                start_line = number + 1;
            }
        }
        offset = end;
    }
    docs.push(Doc {
        text: &text[start..],
        line: start_line,
    });
    docs.retain(|d| !d.text.trim().is_empty());
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_their_lines() {
        let text = "a: 1\n---\n# c\nb: 2\n--- # x\n\n...\n---\nc: |\n  ---x\n--- !!str d\n";
        let docs = split(text);
        let got: Vec<(&str, usize)> = docs.iter().map(|d| (d.text, d.line)).collect();
        assert_eq!(
            got,
            [
                ("a: 1\n", 1),
                ("# c\nb: 2\n", 3),
                ("c: |\n  ---x\n", 9),
                (" !!str d\n", 11),
            ]
        );
        assert!(split("").is_empty());
        assert_eq!(split("---\nx: 1").len(), 1);
        assert!(!is_marker("----", "---"));
    }
}
