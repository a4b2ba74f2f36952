//! A Prometheus Operator PodMonitor for relay's port: k8s-openapi has no
//! type for it, so a small typed struct of our own (only the fields we set).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::common::{labels, meta};
use super::web::WebSetup;
use super::{to_yaml, GenError, Object, Options, RELAY_PORT_NAME};

/// `monitoring.coreos.com/v1` PodMonitor: which Pods' ports Prometheus scrapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitor {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: PodMonitorSpec,
}

/// The PodMonitor's spec: a selector and the endpoints to scrape.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub selector: LabelSelector,
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

/// One scraped port, by its container port name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetricsEndpoint {
    pub port: String,
    pub path: String,
    /// True, as for federation: the app's `job`/`instance` are kept and the
    /// Pod is told apart by the `pod`/`namespace` external labels relay
    /// attaches to every served series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honor_labels: Option<bool>,
    /// `https` when relay serves TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<SafeTlsConfig>,
}

/// The PodMonitor's `tlsConfig`: the CA from the TLS Secret's `ca.crt`, and
/// the name the certificate must carry (a Pod IP rarely is in it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SafeTlsConfig {
    pub ca: SecretOrConfigMap,
    pub server_name: String,
}

/// A key of a Secret, as the Prometheus Operator refers to one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretOrConfigMap {
    pub secret: SecretKey,
}

/// `{name, key}` of a Secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

pub(crate) fn object(options: &Options, web: Option<&WebSetup>) -> Result<Object, GenError> {
    let tls = web.filter(|w| w.tls);
    let monitor = PodMonitor {
        api_version: "monitoring.coreos.com/v1".to_owned(),
        kind: "PodMonitor".to_owned(),
        metadata: meta(options, options.name.clone()),
        spec: PodMonitorSpec {
            selector: LabelSelector {
                match_labels: Some(labels(options).into_iter().collect::<BTreeMap<_, _>>()),
                ..Default::default()
            },
            pod_metrics_endpoints: vec![PodMetricsEndpoint {
                port: RELAY_PORT_NAME.to_owned(),
                path: "/metrics".to_owned(),
                honor_labels: Some(true),
                scheme: tls.map(|_| "https".to_owned()),
                tls_config: tls
                    .and_then(|w| w.tls_secret.clone())
                    .map(|name| SafeTlsConfig {
                        ca: SecretOrConfigMap {
                            secret: SecretKey {
                                name,
                                key: "ca.crt".to_owned(),
                            },
                        },
                        server_name: options.name.clone(),
                    }),
            }],
        },
    };
    Ok(Object {
        kind: "PodMonitor",
        name: options.name.clone(),
        yaml: to_yaml("the PodMonitor", &monitor)?,
    })
}
