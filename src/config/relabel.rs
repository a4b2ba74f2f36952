//! Relabel rules as written in YAML (Prometheus's `relabel_config`): data
//! only; `relabel::Rules::compile` validates and compiles them at resolve.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// One rule as written in YAML, with Prometheus's field names and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default = "default_regex")]
    pub regex: String,
    #[serde(default)]
    pub modulus: Option<u64>,
    #[serde(default)]
    pub target_label: Option<String>,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    ";".to_owned()
}
fn default_regex() -> String {
    DEFAULT_REGEX.to_owned()
}
fn default_replacement() -> String {
    "$1".to_owned()
}

/// The regex of a rule that gives none (matches anything).
pub const DEFAULT_REGEX: &str = "(.*)";

/// The relabel actions of current Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

const ACTIONS: [(&str, Action); 11] = [
    ("replace", Action::Replace),
    ("keep", Action::Keep),
    ("drop", Action::Drop),
    ("keepequal", Action::KeepEqual),
    ("dropequal", Action::DropEqual),
    ("hashmod", Action::HashMod),
    ("labelmap", Action::LabelMap),
    ("labeldrop", Action::LabelDrop),
    ("labelkeep", Action::LabelKeep),
    ("lowercase", Action::Lowercase),
    ("uppercase", Action::Uppercase),
];

impl Action {
    pub fn as_str(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("replace", |(s, _)| s)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    /// Case-insensitive, as Prometheus reads actions (`action: Drop` works).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let lower = s.to_ascii_lowercase();
        ACTIONS
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let names: Vec<_> = ACTIONS.iter().map(|(n, _)| *n).collect();
                de::Error::custom(format!(
                    "unknown relabel action {s:?} (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}
