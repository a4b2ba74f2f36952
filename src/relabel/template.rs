//! Replacement templates with Go's `Regexp.Expand` semantics, parsed once at
//! load so that applying one is a walk over literal and group parts.
//!
//! Go's rules: `$$` is a literal `$`; `$name` takes the longest run of
//! letters, digits and `_` as the name (so `$1_x` names the group `1_x`, not
//! group 1); `${name}` delimits it; an all-digit name without a leading zero
//! is a group number; a name that is no group expands to nothing; a `$` not
//! followed by a valid name is kept literally.

use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Group(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `template` against the groups of `regex` (None: the default
    /// `(.*)`, which has exactly one unnamed group).
    pub(super) fn parse(template: &str, regex: Option<&Regex>) -> Template {
        let group_count = regex.map_or(2, Regex::captures_len);
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                literal.push('$');
                rest = after;
                continue;
            }
            let Some((name, after)) = extract(rest) else {
                literal.push('$');
                continue;
            };
            rest = after;
            let index = match group_number(name) {
                Some(n) => Some(n).filter(|n| *n < group_count),
                None => regex.and_then(|re| re.capture_names().position(|n| n == Some(name))),
            };
            if let Some(index) = index {
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Group(index));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Template { parts }
    }

    /// The text when the template refers to no group.
    pub(super) fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Appends the expansion to `out`; `group(i)` gives group i's text ("" when
    /// it did not participate).
    pub(super) fn expand<'s>(&self, out: &mut String, group: impl Fn(usize) -> &'s str) {
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Group(i) => out.push_str(group(*i)),
            }
        }
    }
}

/// Go's `extract`: the name after a `$` and the text after it.
fn extract(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let (name, mut rest) = body.split_at(len);
    if braced {
        rest = rest.strip_prefix('}')?;
    }
    Some((name, rest))
}

/// An all-ASCII-digit name without a leading zero (and below 1e8, as Go).
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    name.parse().ok().filter(|n| *n < 100_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(template: &str, re: &str, input: &str) -> String {
        let re = Regex::new(&format!("^(?s:{re})$")).expect("regex");
        let t = Template::parse(template, Some(&re));
        let caps = re.captures(input).expect("match");
        let mut out = String::new();
        t.expand(&mut out, |i| caps.get(i).map_or("", |m| m.as_str()));
        out
    }

    #[test]
    fn go_expand_semantics() {
        let cases = [
            ("$1", "(a)(b)", "ab", "a"),
            ("${1}x", "(a)(b)", "ab", "ax"),
            ("$1x", "(a)(b)", "ab", ""),
            ("$1_x", "(a)(b)", "ab", ""),
            ("$name-$2", "(?P<name>a)(b)", "ab", "a-b"),
            ("${name}s", "(?P<name>a)(b)", "ab", "as"),
            ("$$1", "(a)", "a", "$1"),
            ("$", "(a)", "a", "$"),
            ("a$-b", "(a)", "a", "a$-b"),
            ("${1", "(a)", "a", "${1"),
            ("$9", "(a)", "a", ""),
            ("$01", "(a)", "a", ""),
            ("$0", "(a)", "a", "a"),
            ("x", "(a)", "a", "x"),
        ];
        for (template, re, input, want) in cases {
            assert_eq!(expand(template, re, input), want, "{template:?} on {re:?}");
        }
    }

    #[test]
    fn literal_templates_are_recognized() {
        assert_eq!(Template::parse("plain", None).as_literal(), Some("plain"));
        assert_eq!(Template::parse("$$", None).as_literal(), Some("$"));
        assert_eq!(Template::parse("", None).as_literal(), Some(""));
        assert_eq!(Template::parse("$1", None).as_literal(), None);
    }
}
