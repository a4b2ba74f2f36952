//! Which documents are workloads `inject` adds relay to, where each keeps
//! its Pod template, and which kinds it refuses rather than pass through.

use serde_norway::Value;

/// A workload kind `inject` knows: its apiVersion and the path from the
/// document's root to the mapping holding the Pod's `metadata` and `spec`.
struct Known {
    kind: &'static str,
    api_version: &'static str,
    template: &'static [&'static str],
}

const KNOWN: [Known; 7] = [
    Known {
        kind: "Pod",
        api_version: "v1",
        template: &[],
    },
    Known {
        kind: "Deployment",
        api_version: "apps/v1",
        template: &["spec", "template"],
    },
    Known {
        kind: "StatefulSet",
        api_version: "apps/v1",
        template: &["spec", "template"],
    },
    Known {
        kind: "DaemonSet",
        api_version: "apps/v1",
        template: &["spec", "template"],
    },
    Known {
        kind: "ReplicaSet",
        api_version: "apps/v1",
        template: &["spec", "template"],
    },
    Known {
        kind: "Job",
        api_version: "batch/v1",
        template: &["spec", "template"],
    },
    Known {
        kind: "CronJob",
        api_version: "batch/v1",
        template: &["spec", "jobTemplate", "spec", "template"],
    },
];

/// A workload document: what messages and the ConfigMap are named after,
/// and where its Pod template is.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub kind: &'static str,
    pub name: String,
    pub namespace: Option<String>,
    pub template: &'static [&'static str],
}

impl Workload {
    /// The template's path as a field-path prefix (`spec.template.`), "" for a Pod.
    pub fn prefix(&self) -> String {
        self.template.iter().map(|k| format!("{k}.")).collect()
    }
}

/// What a document is to `inject`.
#[derive(Debug)]
pub(crate) enum Class {
    Workload(Workload),
    /// `kind: List`: its `items` are classified one by one.
    List,
    /// Anything else: passed through unchanged.
    Other,
}

fn text<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

/// The names of the kinds `inject` knows, for messages.
fn known_kinds() -> String {
    KNOWN.iter().map(|k| k.kind).collect::<Vec<_>>().join(", ")
}

/// Classifies a document; Err names the field and says why it is refused
/// (a known kind in another apiVersion, a kind with a Pod template that
/// `inject` does not know, a workload without a name).
pub(crate) fn classify(doc: &Value) -> Result<Class, String> {
    let Some(kind) = text(doc, "kind") else {
        return Ok(Class::Other);
    };
    let api_version = text(doc, "apiVersion").unwrap_or_default();
    if kind == "List" && api_version == "v1" {
        return Ok(Class::List);
    }
    if let Some(known) = KNOWN.iter().find(|k| k.kind == kind) {
        if known.api_version != api_version {
            return Err(format!(
                "apiVersion: {api_version:?}: relay inject knows {kind} as {}",
                known.api_version
            ));
        }
        let meta = doc.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                "metadata.name: missing: relay inject names the relay ConfigMap after it \
                 (NAME-relay), so generateName alone is not enough"
                    .to_owned()
            })?;
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if name.len() > 63 {
            return Err(format!(
                "metadata.name: {name:?} is longer than 63 characters: relay's ConfigMap \
                 carries it as its app.kubernetes.io/name label, whose values are at most 63"
            ));
        }
        return Ok(Class::Workload(Workload {
            kind: known.kind,
            name: name.to_owned(),
            namespace,
            template: known.template,
        }));
    }
    let has_template = ["template", "jobTemplate"]
        .iter()
        .any(|t| doc.get("spec").and_then(|s| s.get(*t)).is_some());
    if kind == "PodTemplate" || kind == "ReplicationController" || has_template {
        return Err(format!(
            "kind: {kind} ({api_version}) holds a Pod template, but relay inject cannot inject \
             this kind (it knows {}): add relay to it by hand, or leave it out of the input",
            known_kinds()
        ));
    }
    Ok(Class::Other)
}

/// The mapping at `path` in `doc`, if every step is a mapping.
pub(crate) fn at_mut<'a>(doc: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter()
        .try_fold(doc, |v, key| v.get_mut(*key))
        .filter(|v| v.is_mapping())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(yaml: &str) -> Result<Class, String> {
        classify(&serde_norway::from_str(yaml).expect("yaml"))
    }

    #[test]
    fn kinds() {
        let Ok(Class::Workload(w)) =
            class("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: b, namespace: n}\n")
        else {
            panic!("a CronJob is a workload");
        };
        assert_eq!((w.kind, w.name.as_str()), ("CronJob", "b"));
        assert_eq!(w.namespace.as_deref(), Some("n"));
        assert_eq!(w.prefix(), "spec.jobTemplate.spec.template.");
        assert!(matches!(
            class("apiVersion: v1\nkind: List\nitems: []\n"),
            Ok(Class::List)
        ));
        assert!(matches!(
            class("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
            Ok(Class::Other)
        ));
        let err = class("apiVersion: extensions/v1beta1\nkind: Deployment\n").expect_err("old");
        assert!(err.contains("apps/v1"), "{err}");
        let err =
            class("apiVersion: v1\nkind: ReplicationController\nspec: {}\n").expect_err("cannot");
        assert!(err.contains("cannot inject"), "{err}");
        let err = class("apiVersion: v1\nkind: Pod\nmetadata: {generateName: p-}\n")
            .expect_err("no name");
        assert!(err.starts_with("metadata.name"), "{err}");
    }
}
