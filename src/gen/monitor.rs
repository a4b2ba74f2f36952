//! A Prometheus Operator PodMonitor for relay's port: k8s-openapi has no
//! type for it, so a small typed struct of our own (only the fields we set).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::pod::{labels, meta};
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
}

pub(crate) fn object(options: &Options) -> Result<Object, GenError> {
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
            }],
        },
    };
    Ok(Object {
        kind: "PodMonitor",
        name: options.name.clone(),
        yaml: to_yaml("the PodMonitor", &monitor)?,
    })
}
