//! The NetworkPolicy of `--network-policy`: relay's port is readable by
//! the whole cluster unless a policy says otherwise, so this one admits the
//! scraper to it, anyone to the app's serving port, and no one to the rest
//! (the app's metrics port is scraped over the Pod's loopback, which no
//! policy touches).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{labels, meta};
use super::{to_yaml, GenError, Object, Options, Scraper};

/// The label Kubernetes (1.21+) sets on every namespace to its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn tcp(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(port))),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..Default::default()
    }
}

/// The policy: ingress to the Pod only through the rules below (a Pod
/// selected by an Ingress policy refuses what no rule admits).
pub(crate) fn object(
    options: &Options,
    listen_port: u16,
    scraper: Option<&Scraper>,
) -> Result<Object, GenError> {
    // The app serves its clients on `http`, from wherever they are.
    let mut ingress = vec![NetworkPolicyIngressRule {
        ports: Some(vec![tcp(options.agent_port)]),
        ..Default::default()
    }];
    if let Some(scraper) = scraper {
        // One peer: namespace and Pod labels must both match (ANDed).
        let peer = NetworkPolicyPeer {
            namespace_selector: scraper.namespace.as_ref().map(|ns| {
                selector(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_owned(),
                    ns.clone(),
                )]))
            }),
            pod_selector: scraper.pod_labels.clone().map(selector),
            ..Default::default()
        };
        ingress.push(NetworkPolicyIngressRule {
            from: Some(vec![peer]),
            ports: Some(vec![tcp(listen_port)]),
        });
    }
    let name = format!("{}-relay", options.name);
    let policy = NetworkPolicy {
        metadata: meta(options, name.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(labels(options))),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress),
            ..Default::default()
        }),
    };
    Ok(Object {
        kind: "NetworkPolicy",
        name,
        yaml: to_yaml("the NetworkPolicy", &policy)?,
    })
}
