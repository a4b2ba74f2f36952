//! Helpers every generated object shares (metadata, labels, volumes, the
//! sidecars' security context): one file the object builders import, so
//! that none of them imports another for a helper.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Options, RUN_AS_USER};

/// The label every generated object carries and selectors match.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The log emptyDir shared by the agent and Fluent Bit.
pub(crate) const LOG_VOLUME: &str = "agent-logs";

/// A volume holding ConfigMap `config_map` (relay's and Fluent Bit's).
pub(crate) fn config_map_volume(name: &str, config_map: String) -> Volume {
    Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Labels of the Pod (and of every object): `app.kubernetes.io/name`.
pub(crate) fn labels(options: &Options) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), options.name.clone())])
}

/// The metadata every object carries: its name, the namespace, the labels.
pub(crate) fn meta(options: &Options, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: options.namespace.clone(),
        labels: Some(labels(options)),
        ..Default::default()
    }
}

/// What the restricted Pod Security Standard requires of every container
/// (Kubernetes 1.30: allowPrivilegeEscalation false, capabilities drop ALL,
/// runAsNonRoot true, seccompProfile RuntimeDefault or Localhost); no uid
/// and no read-only root, which are not required and would break images
/// that run as their own user or write to their root filesystem.
pub(crate) fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// relay's and Fluent Bit's containers: the restricted standard plus the
/// uid and gid their images run as, and a read-only root (they write only
/// to their emptyDirs). On the containers, never on the Pod: Pod-level
/// settings would apply to the app's container too.
pub(crate) fn sidecar_security() -> SecurityContext {
    SecurityContext {
        read_only_root_filesystem: Some(true),
        run_as_user: Some(RUN_AS_USER),
        run_as_group: Some(RUN_AS_USER),
        ..restricted()
    }
}

/// Resource quantities from (name, value) pairs.
pub(crate) fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

/// A container's mount of `volume` at `path`.
pub(crate) fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}
