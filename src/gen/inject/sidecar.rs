//! relay's parts in an existing Pod template: added by `inject`, taken out
//! by `--remove`. What inject changed is recorded in an annotation of its
//! own (the values it overwrote, the keys it created), so `--remove` puts
//! the template back exactly and a second `inject` first does that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value};

use super::target::{PATH_ANNOTATION, PORT_ANNOTATION, SCHEME_ANNOTATION};

/// The annotation holding inject's record (JSON) on the Pod template.
pub const RECORD_ANNOTATION: &str = "relay/inject";
/// The md5 of relay's ConfigMap contents: a changed config rolls the Pods.
pub const CHECKSUM_ANNOTATION: &str = "relay/config-checksum";
/// The name of relay's container, as `relay gen` names it.
const CONTAINER: &str = "relay";
/// The annotation an annotation-discovering Prometheus keeps Pods by.
const SCRAPE_ANNOTATION: &str = "prometheus.io/scrape";
/// The grace period Kubernetes gives a Pod that does not set one.
const DEFAULT_GRACE_SECONDS: i64 = 30;
const GRACE: &str = "terminationGracePeriodSeconds";

/// What inject changed in a template, to undo it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Record {
    /// Each annotation inject set, with the value it had (null: none).
    #[serde(default)]
    annotations: BTreeMap<String, Option<String>>,
    /// terminationGracePeriodSeconds as it was (null: not set).
    #[serde(default)]
    termination_grace_period_seconds: Option<i64>,
    /// The volumes inject added, by name.
    #[serde(default)]
    volumes: Vec<String>,
    /// Keys inject created because they were absent: `metadata`,
    /// `metadata.annotations`, `spec.initContainers`, `spec.volumes`.
    #[serde(default)]
    created: Vec<String>,
}

/// relay's parts for one template, built by gen's builders.
pub(crate) struct Parts {
    pub container: Value,
    pub volumes: Vec<Value>,
    pub checksum: String,
    /// Whether to point the prometheus.io annotations at relay.
    pub scrape_annotations: bool,
    pub listen_port: u16,
    pub tls: bool,
    /// Seconds the Pod's grace period gets on top of the app's (the
    /// template's own, or Kubernetes' 30): relay's flush and a margin.
    pub relay_grace: i64,
}

fn mapping<'a>(parent: &'a mut Mapping, key: &str) -> Option<&'a mut Mapping> {
    parent.get_mut(key).and_then(Value::as_mapping_mut)
}

fn names(list: Option<&Value>) -> impl Iterator<Item = (usize, &str)> {
    list.and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| Some((i, v.get("name")?.as_str()?)))
}

/// Takes relay's parts out of a template injected before, as its record
/// says; Ok(false) when it carries no record (nothing to take out).
pub(crate) fn remove(tpl: &mut Mapping, prefix: &str) -> Result<bool, String> {
    let field = format!("{prefix}metadata.annotations.{RECORD_ANNOTATION}");
    let text = match tpl
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(RECORD_ANNOTATION))
    {
        None => return Ok(false),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("{field}: not a string")),
    };
    let record: Record = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{field}: {e}: this is relay inject's record of what it changed; restore it, or \
             take relay out by hand"
        )
    })?;
    let created = |key: &str| record.created.iter().any(|c| c == key);
    if let Some(meta) = mapping(tpl, "metadata") {
        if let Some(annotations) = mapping(meta, "annotations") {
            annotations.shift_remove(RECORD_ANNOTATION);
            annotations.shift_remove(CHECKSUM_ANNOTATION);
            for (key, old) in &record.annotations {
                match old {
                    Some(v) => {
                        annotations.insert(Value::from(key.as_str()), Value::from(v.as_str()));
                    }
                    None => {
                        annotations.shift_remove(key.as_str());
                    }
                }
            }
            if annotations.is_empty() && created("metadata.annotations") {
                meta.shift_remove("annotations");
            }
        }
        if meta.is_empty() && created("metadata") {
            tpl.shift_remove("metadata");
        }
    }
    if let Some(spec) = mapping(tpl, "spec") {
        let container = [CONTAINER.to_owned()];
        for (list, ours) in [
            ("initContainers", &container[..]),
            ("volumes", &record.volumes[..]),
        ] {
            if let Some(items) = spec.get_mut(list).and_then(Value::as_sequence_mut) {
                items.retain(|v| {
                    let name = v.get("name").and_then(Value::as_str);
                    !name.is_some_and(|n| ours.iter().any(|o| o == n))
                });
                if items.is_empty() && created(&format!("spec.{list}")) {
                    spec.shift_remove(list);
                }
            }
        }
        match record.termination_grace_period_seconds {
            Some(g) => {
                spec.insert(Value::from(GRACE), Value::from(g));
            }
            None => {
                spec.shift_remove(GRACE);
            }
        }
    }
    Ok(true)
}

/// The prometheus.io annotations pointed at relay: the port (and a path
/// and scheme the template sets) retargeted, or, on a template without
/// any, the set `relay gen` writes.
fn scrape_annotations(annotations: &Mapping, parts: &Parts) -> Vec<(&'static str, String)> {
    let scheme = if parts.tls { "https" } else { "http" };
    let had = |key: &str| annotations.contains_key(key);
    let mut set = Vec::new();
    if [
        SCRAPE_ANNOTATION,
        PORT_ANNOTATION,
        PATH_ANNOTATION,
        SCHEME_ANNOTATION,
    ]
    .iter()
    .any(|k| had(k))
    {
        set.push((PORT_ANNOTATION, parts.listen_port.to_string()));
        if had(PATH_ANNOTATION) {
            set.push((PATH_ANNOTATION, "/metrics".to_owned()));
        }
        if had(SCHEME_ANNOTATION) || parts.tls {
            set.push((SCHEME_ANNOTATION, scheme.to_owned()));
        }
    } else {
        set.push((SCRAPE_ANNOTATION, "true".to_owned()));
        set.push((PORT_ANNOTATION, parts.listen_port.to_string()));
        set.push((PATH_ANNOTATION, "/metrics".to_owned()));
        if parts.tls {
            set.push((SCHEME_ANNOTATION, scheme.to_owned()));
        }
    }
    set
}

/// Refuses a template whose own containers or volumes already use the
/// names of relay's (which inject must be able to tell apart to remove).
pub(crate) fn check_names(tpl: &Mapping, prefix: &str, parts: &Parts) -> Result<(), String> {
    let spec = tpl.get("spec");
    for list in ["initContainers", "containers"] {
        if let Some((i, _)) = names(spec.and_then(|s| s.get(list))).find(|(_, n)| *n == CONTAINER) {
            return Err(format!(
                "{prefix}spec.{list}[{i}].name: a container is already named {CONTAINER:?}, the \
                 name of relay's container: rename it"
            ));
        }
    }
    let ours: Vec<&str> = parts
        .volumes
        .iter()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    if let Some((i, n)) = names(spec.and_then(|s| s.get("volumes"))).find(|(_, n)| ours.contains(n))
    {
        return Err(format!(
            "{prefix}spec.volumes[{i}].name: a volume is already named {n:?}, the name of one of \
             relay's volumes: rename it"
        ));
    }
    Ok(())
}

/// Adds relay's parts to a template that has none, and records what changed.
pub(crate) fn apply(tpl: &mut Mapping, prefix: &str, parts: &Parts) -> Result<(), String> {
    let mut record = Record::default();
    let spec = tpl
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| format!("{prefix}spec: missing: not a Pod template"))?;
    if !spec.get("containers").is_some_and(Value::is_sequence) {
        return Err(format!(
            "{prefix}spec.containers: missing: not a Pod template"
        ));
    }
    for (list, items) in [
        ("initContainers", vec![parts.container.clone()]),
        ("volumes", parts.volumes.clone()),
    ] {
        let entry = spec.entry(Value::from(list)).or_insert(Value::Null);
        if entry.is_null() {
            *entry = Value::Sequence(Vec::new());
            record.created.push(format!("spec.{list}"));
        }
        entry
            .as_sequence_mut()
            .ok_or_else(|| format!("{prefix}spec.{list}: not a list"))?
            .extend(items);
    }
    record.volumes = parts
        .volumes
        .iter()
        .filter_map(|v| Some(v.get("name")?.as_str()?.to_owned()))
        .collect();
    let old_grace = match spec.get(GRACE) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| format!("{prefix}spec.{GRACE}: not a number of seconds"))?,
        ),
    };
    record.termination_grace_period_seconds = old_grace;
    spec.insert(
        Value::from(GRACE),
        Value::from(old_grace.unwrap_or(DEFAULT_GRACE_SECONDS) + parts.relay_grace),
    );

    if !tpl.get("metadata").is_some_and(Value::is_mapping) {
        tpl.insert(Value::from("metadata"), Value::Mapping(Mapping::new()));
        record.created.push("metadata".to_owned());
    }
    let meta =
        mapping(tpl, "metadata").ok_or_else(|| format!("{prefix}metadata: not a mapping"))?;
    if !meta.get("annotations").is_some_and(Value::is_mapping) {
        meta.insert(Value::from("annotations"), Value::Mapping(Mapping::new()));
        record.created.push("metadata.annotations".to_owned());
    }
    let annotations = mapping(meta, "annotations")
        .ok_or_else(|| format!("{prefix}metadata.annotations: not a mapping"))?;
    let set = if parts.scrape_annotations {
        scrape_annotations(annotations, parts)
    } else {
        Vec::new()
    };
    for (key, value) in set {
        let old = annotations
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned);
        record.annotations.insert(key.to_owned(), old);
        annotations.insert(Value::from(key), Value::from(value));
    }
    annotations.insert(
        Value::from(CHECKSUM_ANNOTATION),
        Value::from(parts.checksum.as_str()),
    );
    let text = serde_json::to_string(&record).map_err(|e| format!("cannot record: {e}"))?;
    annotations.insert(Value::from(RECORD_ANNOTATION), Value::from(text));
    Ok(())
}
