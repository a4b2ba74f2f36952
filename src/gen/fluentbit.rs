//! The logging sidecar: Fluent Bit as a native sidecar tailing the agent's
//! log files from a shared emptyDir and printing them on its stdout (where
//! the cluster's log collection picks them up); its own ConfigMap.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EmptyDirVolumeSource, ResourceRequirements, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::common::{config_map_volume, meta, mount, quantities, sidecar_security, LOG_VOLUME};
use super::{to_yaml, GenError, Object, Options, AGENT_LOG_DIR, FLUENT_BIT_PORT};

const CONFIG_VOLUME: &str = "fluent-bit-config";
const STATE_VOLUME: &str = "fluent-bit-state";
const CONFIG_DIR: &str = "/fluent-bit/etc";
const STATE_DIR: &str = "/fluent-bit/state";

/// The name of Fluent Bit's ConfigMap.
pub fn config_map_name(options: &Options) -> String {
    format!("{}-fluent-bit", options.name)
}

fn conf() -> String {
    format!(
        "\
[SERVICE]
    Flush         1
    Log_Level     info
    HTTP_Server   On
    HTTP_Listen   127.0.0.1
    HTTP_Port     {FLUENT_BIT_PORT}
    Health_Check  On

[INPUT]
    Name              tail
    Path              {AGENT_LOG_DIR}/*.log
    Tag               agent.*
    DB                {STATE_DIR}/tail.db
    Mem_Buf_Limit     5MB
    Skip_Long_Lines   On
    Refresh_Interval  5

[OUTPUT]
    Name    stdout
    Match   *
    Format  json_lines
"
    )
}

/// The ConfigMap and its `fluent-bit.conf` (also hashed into the Pod's checksum).
pub(crate) fn config_map(options: &Options) -> Result<(Object, String), GenError> {
    let name = config_map_name(options);
    let conf = conf();
    let cm = ConfigMap {
        metadata: meta(options, name.clone()),
        data: Some(BTreeMap::from([(
            "fluent-bit.conf".to_owned(),
            conf.clone(),
        )])),
        ..Default::default()
    };
    Ok((
        Object {
            kind: "ConfigMap",
            name,
            yaml: to_yaml("the Fluent Bit ConfigMap", &cm)?,
        },
        conf,
    ))
}

pub(crate) fn container(options: &Options) -> Container {
    Container {
        name: "fluent-bit".to_owned(),
        image: Some(options.fluent_bit_image.clone()),
        command: Some(vec![
            "/fluent-bit/bin/fluent-bit".to_owned(),
            "--config".to_owned(),
            format!("{CONFIG_DIR}/fluent-bit.conf"),
        ]),
        restart_policy: Some("Always".to_owned()),
        // Its HTTP server listens on the Pod's loopback only (its API has
        // more than health: metrics, and trace or reload where built in),
        // so neither a port nor a probe: the kubelet probes the Pod's IP,
        // and the image has no shell or client for an exec probe. A crash
        // still restarts it (restartPolicy Always); the app does not wait
        // for it (a native sidecar without a startup probe counts as
        // started once running).
        ports: None,
        startup_probe: None,
        liveness_probe: None,
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "10m"), ("memory", "32Mi")])),
            limits: Some(quantities(&[("cpu", "200m"), ("memory", "64Mi")])),
            ..Default::default()
        }),
        // Its state emptyDir is world-writable (no fsGroup needed); it reads
        // the app's log files, which the app must create readable by others
        // (the usual 0644) now that the app keeps its image's uid.
        security_context: Some(sidecar_security()),
        volume_mounts: Some(vec![
            mount(CONFIG_VOLUME, CONFIG_DIR, true),
            mount(LOG_VOLUME, AGENT_LOG_DIR, true),
            mount(STATE_VOLUME, STATE_DIR, false),
        ]),
        ..Default::default()
    }
}

pub(crate) fn volumes(options: &Options) -> Vec<Volume> {
    let empty_dir = |name: &str, size: &str| Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(size.to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        config_map_volume(CONFIG_VOLUME, config_map_name(options)),
        empty_dir(LOG_VOLUME, "1Gi"),
        empty_dir(STATE_VOLUME, "16Mi"),
    ]
}
