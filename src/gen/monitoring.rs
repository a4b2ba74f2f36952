//! `relay gen monitoring`: relay's alerts and Grafana dashboard, as files
//! (`rules.yml` for a plain Prometheus, `dashboard.json` for Grafana) and as
//! Kubernetes objects (a Prometheus Operator PrometheusRule, and a ConfigMap
//! that kube-prometheus-stack's Grafana sidecar loads by its
//! `grafana_dashboard: "1"` label). The rules and the dashboard are kept as
//! text files beside this one, so they read (and diff) as what they are;
//! `tests/monitoring.rs` runs them through promtool and a real Prometheus.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::{dns_label, to_yaml, GenError};

/// The alerting rules, a Prometheus rules file (see docs/deploy.md#monitoring).
pub const RULES: &str = include_str!("monitoring/rules.yml");
/// The Grafana dashboard (JSON model, data source chosen by a variable).
pub const DASHBOARD: &str = include_str!("monitoring/dashboard.json");
/// The ConfigMap key of the dashboard: the Grafana sidecar loads `*.json`.
pub const DASHBOARD_KEY: &str = "relay-dashboard.json";

/// `relay gen monitoring` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MonitoringArgs {
    /// Name of the PrometheusRule; the dashboard's ConfigMap is NAME-dashboard.
    #[arg(long, default_value = "relay")]
    pub name: String,
    /// Namespace of both objects (default: none, kubectl's current namespace).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Labels of both objects, `key=value[,key=value]` (e.g. `release=kube-prometheus-stack`, which that chart's Prometheus selects rules by).
    #[arg(long)]
    pub labels: Option<String>,
    /// Write rules.yml, prometheusrule.yaml, dashboard.json and dashboard-configmap.yaml into this directory instead of printing the two objects.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `monitoring.coreos.com/v1` PrometheusRule: k8s-openapi has no type for
/// it; its spec is the rules file's own `groups`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PrometheusRule {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
    spec: serde_norway::Value,
}

/// The objects' metadata from the flags.
fn metadata(args: &MonitoringArgs, name: String) -> Result<ObjectMeta, GenError> {
    let mut labels = BTreeMap::from([(super::common::NAME_LABEL.to_owned(), "relay".to_owned())]);
    for pair in args.labels.iter().flat_map(|l| l.split(',')) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(super::flag(
                "--labels",
                format!("{pair:?} is not key=value"),
            ));
        };
        if key.is_empty() {
            return Err(super::flag(
                "--labels",
                format!("{pair:?} has an empty key"),
            ));
        }
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(ObjectMeta {
        name: Some(name),
        namespace: args.namespace.clone(),
        labels: Some(labels),
        ..Default::default()
    })
}

/// The PrometheusRule: the same groups as [`RULES`].
pub fn prometheus_rule(args: &MonitoringArgs) -> Result<String, GenError> {
    let name = dns_label("--name", &args.name, 253)?;
    let rules: serde_norway::Value =
        serde_norway::from_str(RULES).map_err(|e| GenError::Serialize {
            what: "the embedded rules (a bug)".to_owned(),
            message: e.to_string(),
        })?;
    let rule = PrometheusRule {
        api_version: "monitoring.coreos.com/v1",
        kind: "PrometheusRule",
        metadata: metadata(args, name)?,
        spec: rules,
    };
    to_yaml("the PrometheusRule", &rule)
}

/// The dashboard's ConfigMap, labelled for the Grafana sidecar.
pub fn dashboard_config_map(args: &MonitoringArgs) -> Result<String, GenError> {
    let name = dns_label("--name", &args.name, 253 - "-dashboard".len())?;
    let mut metadata = metadata(args, format!("{name}-dashboard"))?;
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert("grafana_dashboard".to_owned(), "1".to_owned());
    let map = ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(
            DASHBOARD_KEY.to_owned(),
            DASHBOARD.to_owned(),
        )])),
        ..Default::default()
    };
    to_yaml("the dashboard ConfigMap", &map)
}

/// `relay gen monitoring`: the two objects on stdout, or four files.
pub fn run_cli(args: &MonitoringArgs, stdout: &mut dyn Write) -> Result<(), GenError> {
    let rule = prometheus_rule(args)?;
    let dashboard = dashboard_config_map(args)?;
    let Some(dir) = &args.output else {
        stdout.write_all(
            b"# relay's alerts as a PrometheusRule and its Grafana dashboard as a ConfigMap\n\
              # (label grafana_dashboard: \"1\"); `relay gen monitoring --output DIR` also\n\
              # writes rules.yml (a plain Prometheus rules file) and dashboard.json.\n",
        )?;
        for doc in [&rule, &dashboard] {
            stdout.write_all(b"---\n")?;
            stdout.write_all(doc.as_bytes())?;
        }
        stdout.flush()?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|source| GenError::Write {
        path: dir.clone(),
        source,
    })?;
    for (file, text) in [
        ("rules.yml", RULES),
        ("prometheusrule.yaml", &rule),
        ("dashboard.json", DASHBOARD),
        ("dashboard-configmap.yaml", &dashboard),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|source| GenError::Write {
            path: path.clone(),
            source,
        })?;
        writeln!(stdout, "{}", path.display())?;
    }
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> MonitoringArgs {
        MonitoringArgs {
            name: "relay".to_owned(),
            namespace: Some("monitoring".to_owned()),
            labels: Some("release=kube-prometheus-stack".to_owned()),
            output: None,
        }
    }

    #[test]
    fn the_prometheus_rule_holds_the_rules_files_groups() {
        let rule: serde_norway::Value =
            serde_norway::from_str(&prometheus_rule(&args()).expect("builds")).expect("yaml");
        let rules: serde_norway::Value = serde_norway::from_str(RULES).expect("yaml");
        assert_eq!(rule["spec"], rules);
        assert_eq!(rule["kind"], "PrometheusRule");
        assert_eq!(
            rule["metadata"]["labels"]["release"],
            "kube-prometheus-stack"
        );
    }

    #[test]
    fn the_dashboard_is_json_in_a_labelled_config_map() {
        let map: serde_norway::Value =
            serde_norway::from_str(&dashboard_config_map(&args()).expect("builds")).expect("yaml");
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
        assert_eq!(map["metadata"]["name"], "relay-dashboard");
        let json = map["data"][DASHBOARD_KEY].as_str().expect("the dashboard");
        assert_eq!(json, DASHBOARD);
        let parsed: serde_json::Value = serde_json::from_str(json).expect("JSON");
        assert_eq!(parsed["uid"], "relay-sidecar");
    }

    #[test]
    fn a_bad_label_is_refused_naming_the_flag() {
        let bad = MonitoringArgs {
            labels: Some("release".to_owned()),
            ..args()
        };
        let e = prometheus_rule(&bad).expect_err("refused").to_string();
        assert!(e.starts_with("--labels: \"release\""), "{e}");
    }
}
