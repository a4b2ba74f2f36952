//! Environment variables in `global.external_labels`, expanded at load as
//! Prometheus 3 does (`config.Load`, with Go's `os.Expand`): `${VAR}` and
//! `$VAR`, `$$` for a dollar, an unset or empty variable is the empty string
//! (with a warning). Every replica of a Deployment shares one config, so
//! this is how each one's relay labels its series with its own pod
//! (`pod: '${POD_NAME}'` from the Downward API) and they do not collide at
//! the receiver.

use std::collections::BTreeMap;
use std::ffi::OsString;

use super::ConfigError;

/// Expands every value of `labels` in place with `env` (the process
/// environment in `load`), returning a warning per empty variable.
pub(super) fn external_labels(
    labels: &mut BTreeMap<String, String>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    for (name, value) in labels.iter_mut() {
        let path = format!("global.external_labels.{name}");
        let mut error = None;
        let mut empty: Vec<String> = Vec::new();
        let expanded = expand(value, |var| {
            if var == "$" {
                return "$".to_owned();
            }
            match env(var).map(OsString::into_string) {
                Some(Ok(v)) if !v.is_empty() => v,
                Some(Err(_)) => {
                    error.get_or_insert_with(|| {
                        ConfigError::field(
                            &path,
                            format!("environment variable {var} is not valid UTF-8"),
                        )
                    });
                    String::new()
                }
                _ => {
                    if !empty.iter().any(|e| e == var) {
                        empty.push(var.to_owned());
                    }
                    String::new()
                }
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        for var in empty {
            // Prometheus keeps the label with an empty value, and an empty
            // label is no label: it is left out of what is sent.
            warnings.push(format!(
                "{path}: environment variable {var} is empty or unset (it expands to \"\")"
            ));
        }
        *value = expanded;
    }
    Ok(warnings)
}

/// Go's `os.Expand`: `${name}` and `$name` replaced by `lookup(name)`; a
/// `$` followed by no name is kept, bad syntax (`${}`, an unclosed `${`)
/// is dropped.
/// Whether any value of `labels` names an environment variable (`$$`, a
/// dollar, does not).
pub(super) fn uses_env(labels: &BTreeMap<String, String>) -> bool {
    labels.values().any(|value| {
        let mut named = false;
        expand(value, |var| {
            named |= var != "$";
            String::new()
        });
        named
    })
}

fn expand(s: &str, mut lookup: impl FnMut(&str) -> String) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut literal = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&s[literal..j]);
            let (name, width) = shell_name(&s[j + 1..]);
            if !name.is_empty() {
                out.push_str(&lookup(name));
            } else if width == 0 {
                out.push('$');
            }
            j += width;
            literal = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[literal..]);
    out
}

/// The variable name `s` (the text after a `$`, never empty) starts with,
/// and how many bytes it takes (`{}` included); Go's `getShellName`.
fn shell_name(s: &str) -> (&str, usize) {
    let bytes = s.as_bytes();
    if bytes[0] == b'{' {
        if bytes.len() > 2 && is_special(bytes[1]) && bytes[2] == b'}' {
            return (&s[1..2], 3);
        }
        return match bytes.iter().skip(1).position(|&b| b == b'}') {
            Some(0) => ("", 2),
            Some(i) => (&s[1..=i], i + 2),
            None => ("", 1),
        };
    }
    if is_special(bytes[0]) {
        return (&s[..1], 1);
    }
    let len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    (&s[..len], len)
}

/// Shell special parameters (`$$`, `$1`, `$*`…), one byte long.
fn is_special(b: u8) -> bool {
    matches!(
        b,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<OsString> {
        match var {
            "A" => Some("alpha".into()),
            "POD_NAME" => Some("app-7c9d-x2".into()),
            "EMPTY" => Some("".into()),
            "1" => Some("one".into()),
            _ => None,
        }
    }

    fn one(value: &str) -> (String, Vec<String>) {
        let mut labels = BTreeMap::from([("l".to_owned(), value.to_owned())]);
        let warnings = external_labels(&mut labels, env).expect("expands");
        (labels.remove("l").unwrap_or_default(), warnings)
    }

    #[test]
    fn only_a_named_variable_counts_as_coming_from_the_environment() {
        let labels = |v: &str| BTreeMap::from([("l".to_owned(), v.to_owned())]);
        assert!(uses_env(&labels("${POD_NAME}")));
        assert!(uses_env(&labels("pod-$HOSTNAME")));
        assert!(!uses_env(&labels("prod")));
        assert!(!uses_env(&labels("$$5")));
        assert!(!uses_env(&BTreeMap::new()));
    }

    #[test]
    fn expands_as_prometheus_does() {
        let cases = [
            ("${A}", "alpha"),
            ("$A", "alpha"),
            ("$$", "$"),
            ("$$A", "$A"),
            ("${A}x", "alphax"),
            ("$Ax", ""),
            ("x$A.y", "xalpha.y"),
            ("${POD_NAME}", "app-7c9d-x2"),
            ("plain value", "plain value"),
            ("", ""),
            ("${UNSET}", ""),
            ("a-${UNSET}-b", "a--b"),
            ("${EMPTY}", ""),
            // Go's os.Expand: a lone or trailing `$` stays, bad syntax
            // is dropped, special parameters are one byte.
            ("$", "$"),
            ("cost: 5$", "cost: 5$"),
            ("$ x", "$ x"),
            ("$.", "$."),
            ("${}", ""),
            ("${A", "A"),
            ("$1x", "onex"),
            ("${1}", "one"),
            ("${$}", "$"),
            ("é${A}ü", "éalphaü"),
        ];
        for (input, want) in cases {
            assert_eq!(one(input).0, want, "input {input:?}");
        }
    }

    #[test]
    fn an_empty_or_unset_variable_warns_once_and_names_the_label() {
        assert_eq!(
            one("${UNSET}/$UNSET/${EMPTY}").1,
            [
                "global.external_labels.l: environment variable UNSET is empty or unset (it expands to \"\")",
                "global.external_labels.l: environment variable EMPTY is empty or unset (it expands to \"\")",
            ]
        );
        assert!(one("${A}$$").1.is_empty());
        assert!(one("no dollar").1.is_empty());
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_refused_without_its_value() {
        use std::os::unix::ffi::OsStringExt;
        let mut labels = BTreeMap::from([("pod".to_owned(), "${BAD}".to_owned())]);
        let err = external_labels(&mut labels, |_| {
            Some(OsString::from_vec(vec![b's', 0xff, b'k']))
        })
        .expect_err("not UTF-8");
        assert_eq!(
            err.to_string(),
            "global.external_labels.pod: environment variable BAD is not valid UTF-8"
        );
    }
}
