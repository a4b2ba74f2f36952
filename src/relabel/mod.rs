//! Relabel rules with Prometheus's semantics, so rules copied between
//! Prometheus and relay give the same series.
//!
//! Rules are validated and compiled once at load ([`Rules::compile`]), like
//! Prometheus's `Config.Validate`, so applying them cannot fail. Regexes are
//! anchored as current Prometheus anchors them, `^(?s:REGEX)$`.
//!
//! ```
//! use relay::exposition::Labels;
//!
//! let yaml = r#"
//! scrape_configs:
//!   - job_name: app
//!     metric_relabel_configs:
//!       - source_labels: [code]
//!         regex: "5.."
//!         target_label: error
//!         replacement: "yes"
//! "#;
//! let plan = relay::plan::from_yaml_str(yaml).expect("valid config");
//! let rules = &plan.jobs[0].metric_relabel;
//! let mut labels: Labels = [("__name__", "http_requests_total"), ("code", "503")].into_iter().collect();
//! assert!(rules.apply(&mut labels));
//! assert_eq!(labels.get("error"), Some("yes"));
//! ```

mod template;

use std::borrow::Cow;
use std::cell::RefCell;

use regex::Regex;

use template::Template;

/// The rule data lives in the config (pure data); this module compiles it.
pub use crate::config::{Action, RelabelConfig, DEFAULT_REGEX};

/// The label-name check relabeling validates targets with (one for the crate).
pub use crate::exposition::is_label_name;
use crate::exposition::Labels;

/// Why a rule was rejected at load: which field of the rule, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// Index of the rule in its list.
    pub index: usize,
    /// The rule's field at fault (`regex`, `modulus`, ...), or "" for the rule as a whole.
    pub field: &'static str,
    pub message: String,
}

/// The compiled regex of a rule; the default `(.*)` needs no matching at all.
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Re(Regex),
}

impl Pattern {
    fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Re(re) => re.is_match(s),
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    config: RelabelConfig,
    pattern: Pattern,
    target: Template,
    replacement: Template,
    target_label: String,
    modulus: u64,
    /// Names are checked as UTF-8 (`metric_name_validation_scheme: utf8`),
    /// not as Prometheus 2.x's `[a-zA-Z_][a-zA-Z0-9_]*`.
    utf8: bool,
}

/// A compiled rule list; applying it cannot fail.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

thread_local! {
    /// Per-thread scratch text (joined source values, expansions), so that
    /// applying rules allocates only for the labels it actually rewrites.
    static SCRATCH: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

impl Rules {
    /// Validates and compiles the rules once, at load, with the legacy
    /// name rules (Prometheus 2.x's).
    pub fn compile(configs: &[RelabelConfig]) -> Result<Rules, RuleError> {
        Rules::compile_for(configs, false)
    }

    /// [`Rules::compile`] for a validation scheme: with `utf8`, a rule may
    /// name and write any non-empty UTF-8 label name (Prometheus 3's
    /// `Config.Validate(UTF8Validation)`); whether the result may be stored
    /// is the scrape's check.
    pub fn compile_for(configs: &[RelabelConfig], utf8: bool) -> Result<Rules, RuleError> {
        let rules = configs
            .iter()
            .enumerate()
            .map(|(index, c)| {
                compile_rule(c, utf8).map_err(|(field, message)| RuleError {
                    index,
                    field,
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Rules { rules })
    }

    /// Applies the rules in order; returns false when the series is dropped.
    /// (A series left without `__name__` is the caller's to drop: target
    /// relabeling has no `__name__`.)
    pub fn apply(&self, labels: &mut Labels<'_>) -> bool {
        self.apply_traced(labels, |_, _, _| {})
    }

    /// Like [`Rules::apply`], calling `step(index, rule, labels)` after each
    /// rule that kept the series: the `relay relabel --explain` debugger.
    pub fn apply_traced(
        &self,
        labels: &mut Labels<'_>,
        mut step: impl FnMut(usize, &RelabelConfig, &Labels<'_>),
    ) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (val, out) = &mut *scratch;
            for (i, rule) in self.rules.iter().enumerate() {
                if !rule.apply(labels, val, out) {
                    return false;
                }
                step(i, &rule.config, labels);
            }
            true
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules as written, in order.
    pub fn configs(&self) -> impl Iterator<Item = &RelabelConfig> {
        self.rules.iter().map(|r| &r.config)
    }
}

fn compile_rule(c: &RelabelConfig, utf8: bool) -> Result<Rule, (&'static str, String)> {
    use Action::*;
    let is_label_name = |name: &str| valid_name(name, utf8);
    let is_relabel_target = |name: &str| {
        if utf8 {
            !name.is_empty()
        } else {
            is_relabel_target(name)
        }
    };
    let action = c.action;
    let target = c.target_label.clone().unwrap_or_default();
    let modulus = c.modulus.unwrap_or(0);
    if action == HashMod && modulus == 0 {
        return Err((
            "modulus",
            "relabel configuration for hashmod requires non-zero modulus".into(),
        ));
    }
    let needs_target = matches!(
        action,
        Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
    );
    if needs_target && target.is_empty() {
        return Err((
            "target_label",
            format!("relabel configuration for {action} action requires 'target_label' value"),
        ));
    }
    let bad_target = || {
        (
            "target_label",
            format!("{target:?} is invalid 'target_label' for {action} action"),
        )
    };
    if action == Replace {
        let valid = if target.contains('$') {
            is_relabel_target(&target)
        } else {
            is_label_name(&target)
        };
        if !valid {
            return Err(bad_target());
        }
    }
    if matches!(
        action,
        Lowercase | Uppercase | KeepEqual | DropEqual | HashMod
    ) && !is_label_name(&target)
    {
        return Err(bad_target());
    }
    let default_replacement = c.replacement == "$1";
    if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual) && !default_replacement {
        return Err((
            "replacement",
            format!("'replacement' can not be set for {action} action"),
        ));
    }
    if action == LabelMap && !is_relabel_target(&c.replacement) {
        return Err((
            "replacement",
            format!(
                "{:?} is invalid 'replacement' for {action} action",
                c.replacement
            ),
        ));
    }
    if matches!(action, KeepEqual | DropEqual) {
        let extra = [
            ("regex", c.regex != DEFAULT_REGEX),
            ("modulus", c.modulus.is_some_and(|m| m != 0)),
            ("separator", c.separator != ";"),
        ];
        if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
            return Err((
                field,
                format!("{action} action requires only 'source_labels' and 'target_label', and no other fields"),
            ));
        }
    }
    if matches!(action, LabelDrop | LabelKeep) {
        let extra = [
            ("source_labels", !c.source_labels.is_empty()),
            ("target_label", !target.is_empty()),
            ("modulus", c.modulus.is_some_and(|m| m != 0)),
            ("separator", c.separator != ";"),
            ("replacement", !default_replacement),
        ];
        if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
            return Err((
                field,
                format!("{action} action requires only 'regex', and no other fields"),
            ));
        }
    }
    for name in &c.source_labels {
        if !is_label_name(name) {
            return Err((
                "source_labels",
                format!("{name:?} is not a valid label name"),
            ));
        }
    }
    let pattern = if c.regex == DEFAULT_REGEX {
        Pattern::Any
    } else {
        Regex::new(&format!("^(?s:{})$", c.regex))
            .map(Pattern::Re)
            .map_err(|e| {
                (
                    "regex",
                    format!("invalid regular expression {:?}: {e}", c.regex),
                )
            })?
    };
    let re = match &pattern {
        Pattern::Re(re) => Some(re),
        Pattern::Any => None,
    };
    Ok(Rule {
        config: c.clone(),
        target: Template::parse(&target, re),
        replacement: Template::parse(&c.replacement, re),
        pattern,
        target_label: target,
        modulus,
        utf8,
    })
}

/// A label name under the validation scheme (UTF-8: any non-empty text).
fn valid_name(name: &str, utf8: bool) -> bool {
    if utf8 {
        !name.is_empty()
    } else {
        is_label_name(name)
    }
}

impl Rule {
    /// One rule; `val` and `out` are scratch buffers. Returns false to drop.
    fn apply(&self, labels: &mut Labels<'_>, val: &mut String, out: &mut String) -> bool {
        let c = &self.config;
        val.clear();
        for (i, name) in c.source_labels.iter().enumerate() {
            if i > 0 {
                val.push_str(&c.separator);
            }
            val.push_str(labels.get(name).unwrap_or(""));
        }
        match c.action {
            Action::Drop => return !self.pattern.is_match(val),
            Action::Keep => return self.pattern.is_match(val),
            Action::DropEqual => return labels.get(&self.target_label).unwrap_or("") != val,
            Action::KeepEqual => return labels.get(&self.target_label).unwrap_or("") == val,
            Action::Replace => self.replace(labels, val, out),
            Action::Lowercase => set_if_changed(labels, &self.target_label, &val.to_lowercase()),
            Action::Uppercase => set_if_changed(labels, &self.target_label, &val.to_uppercase()),
            Action::HashMod => {
                let digest = md5::compute(val.as_bytes());
                let mut tail = [0u8; 8];
                tail.copy_from_slice(&digest.0[8..]);
                let shard = u64::from_be_bytes(tail) % self.modulus;
                set_if_changed(labels, &self.target_label, &shard.to_string());
            }
            Action::LabelMap => self.label_map(labels, out),
            Action::LabelDrop => labels.retain(|l| !self.pattern.is_match(&l.name)),
            Action::LabelKeep => labels.retain(|l| self.pattern.is_match(&l.name)),
        }
        true
    }

    fn replace(&self, labels: &mut Labels<'_>, val: &str, out: &mut String) {
        let (target_literal, replacement_literal) =
            (self.target.as_literal(), self.replacement.as_literal());
        let any = matches!(self.pattern, Pattern::Any);
        // Prometheus's fast path: empty input, default regex, no `$` in the
        // target or replacement: set (or, when empty, delete) the target as written.
        if val.is_empty()
            && any
            && !self.target_label.contains('$')
            && !self.config.replacement.contains('$')
        {
            set_if_changed(labels, &self.target_label, &self.config.replacement);
            return;
        }
        let caps = match &self.pattern {
            Pattern::Any => None,
            // Literal target and replacement only need to know that it matched.
            Pattern::Re(re) if target_literal.is_some() && replacement_literal.is_some() => {
                if !re.is_match(val) {
                    return;
                }
                None
            }
            // `captures` allocates even on a miss; the cheaper test first
            // keeps a series this rule leaves alone allocation-free.
            Pattern::Re(re) => match re.is_match(val).then(|| re.captures(val)).flatten() {
                Some(c) => Some(c),
                None => return,
            },
        };
        let group = |i: usize| -> &str {
            match &caps {
                Some(c) => c.get(i).map_or("", |m| m.as_str()),
                None if any && i <= 1 => val,
                None => "",
            }
        };
        let mut expanded_target = String::new();
        let target = match target_literal {
            Some(t) => t,
            None => {
                self.target.expand(&mut expanded_target, group);
                expanded_target.as_str()
            }
        };
        if !valid_name(target, self.utf8) {
            return;
        }
        out.clear();
        self.replacement.expand(out, group);
        set_if_changed(labels, target, out);
    }

    fn label_map(&self, labels: &mut Labels<'_>, out: &mut String) {
        // Like Prometheus's Builder.Range: visit the labels as they were
        // before this rule; what it adds is not visited again.
        let before: Vec<(Cow<'_, str>, Cow<'_, str>)> = labels
            .iter()
            .filter(|l| self.pattern.is_match(&l.name))
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        for (name, value) in before {
            out.clear();
            match &self.pattern {
                Pattern::Any => self
                    .replacement
                    .expand(out, |i| if i <= 1 { &name } else { "" }),
                Pattern::Re(re) => {
                    let caps = re.captures(&name);
                    self.replacement.expand(out, |i| {
                        caps.as_ref()
                            .and_then(|c| c.get(i))
                            .map_or("", |m| m.as_str())
                    });
                }
            }
            if labels.get(out) != Some(value.as_ref()) {
                labels.set(out.clone(), value.into_owned());
            }
        }
    }
}

/// Sets `name` only when its value differs, so an unchanged series keeps
/// borrowing and costs no allocation. An empty value deletes the label.
fn set_if_changed(labels: &mut Labels<'_>, name: &str, value: &str) {
    match labels.get(name) {
        Some(old) if old == value => {}
        None if value.is_empty() => {}
        _ => labels.set(name.to_owned(), value.to_owned()),
    }
}

/// Prometheus's `relabelTarget`: a label name that may contain `$1`,
/// `${name}` references.
fn is_relabel_target(s: &str) -> bool {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").unwrap_or_else(|_| unreachable!())
    })
    .is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(yaml: &str, utf8: bool) -> Result<Rules, String> {
        let configs: Vec<RelabelConfig> =
            serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        Rules::compile_for(&configs, utf8).map_err(|e| e.to_string())
    }

    /// Prometheus 3's `Config.Validate(scheme)`: under `utf8` a rule may
    /// name and write UTF-8 label names; under `legacy` it may not.
    #[test]
    fn names_a_rule_may_use_follow_the_validation_scheme() {
        for yaml in [
            "[{source_labels: [http.route], target_label: route}]",
            "[{source_labels: [x], target_label: http.route}]",
            "[{action: lowercase, source_labels: [x], target_label: a.b}]",
            "[{action: labelmap, regex: 'meta_(.*)', replacement: 'meta.$1'}]",
        ] {
            assert!(rules(yaml, true).is_ok(), "utf8: {yaml}");
            assert!(rules(yaml, false).is_err(), "legacy: {yaml}");
        }
        let mut labels: Labels<'_> = [("__name__", "m"), ("http.route", "/a"), ("meta_x", "1")]
            .into_iter()
            .collect();
        let applied = rules(
            "[{source_labels: [http.route], target_label: route.copy}, {action: labelmap, regex: 'meta_(.*)', replacement: 'meta.$1'}, {action: labeldrop, regex: 'http\\.route'}]",
            true,
        )
        .expect("utf8 rules");
        assert!(applied.apply(&mut labels));
        assert_eq!(labels.get("route.copy"), Some("/a"));
        assert_eq!(labels.get("meta.x"), Some("1"));
        assert_eq!(labels.get("http.route"), None);
    }
}
