//! The relay ConfigMap and the Pod or Deployment: the app in `containers`,
//! relay (and Fluent Bit) as native sidecars in `initContainers`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
    KeyToPath, ObjectFieldSelector, Pod, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SecretVolumeSource, SecurityContext, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{
    config_map_volume, labels, meta, mount, quantities, restricted, sidecar_security, LOG_VOLUME,
};
use super::relay_config::{RelayConfig, POD_LABELS};
use super::web::{self, WebSetup, WEB_CONFIG_KEY, WEB_TLS_DIR};
use super::{
    fluentbit, to_yaml, AppSecurity, GenError, Kind, Object, Options, ScrapeAnnotations,
    AGENT_LOG_DIR, CONFIG_DIR, CONFIG_KEY, CONFIG_PATH, RELAY_PORT_NAME, REMOTE_WRITE_SECRET_DIR,
};

/// Seconds added to the app's and relay's shutdown times in terminationGracePeriodSeconds.
const GRACE_MARGIN_SECONDS: i64 = 5;
const CONFIG_VOLUME: &str = "relay-config";
const WAL_VOLUME: &str = "relay-wal";
const TLS_VOLUME: &str = "relay-tls";
const REMOTE_WRITE_VOLUME: &str = "relay-remote-write";

/// The name of the relay ConfigMap.
pub fn config_map_name(options: &Options) -> String {
    format!("{}-relay", options.name)
}

pub(crate) fn config_map(
    options: &Options,
    relay: &RelayConfig,
    web: Option<&WebSetup>,
) -> Result<Object, GenError> {
    let name = config_map_name(options);
    let mut data = BTreeMap::from([(CONFIG_KEY.to_owned(), relay.yaml.clone())]);
    if let Some(web) = web {
        data.insert(WEB_CONFIG_KEY.to_owned(), web.yaml.clone());
    }
    let cm = ConfigMap {
        metadata: meta(options, name.clone()),
        data: Some(data),
        ..Default::default()
    };
    Ok(Object {
        kind: "ConfigMap",
        name,
        yaml: to_yaml("the relay ConfigMap", &cm)?,
    })
}

/// The app's container: the restricted standard's minimum and what the
/// flags add, or nothing with `--app-security-context none`.
fn app_security(security: &AppSecurity) -> Option<SecurityContext> {
    match security {
        AppSecurity::None => None,
        AppSecurity::Restricted {
            run_as_user,
            run_as_group,
            read_only_root,
        } => Some(SecurityContext {
            run_as_user: *run_as_user,
            run_as_group: *run_as_group,
            read_only_root_filesystem: read_only_root.then_some(true),
            ..restricted()
        }),
    }
}

/// The Pod's own name and namespace from the Downward API, for relay to
/// expand in external_labels (`${POD_NAME}`, `${POD_NAMESPACE}`).
fn downward_env() -> Vec<EnvVar> {
    POD_LABELS
        .iter()
        .map(|(_, var, field)| EnvVar {
            name: (*var).to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: (*field).to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// An HTTP GET probe of `path` on the container port named `port`.
pub(crate) fn http_probe(port: &str, path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(number),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

/// The kubelet probes relay over HTTPS when its web config turns TLS on
/// (the probe paths need no basic auth; a required client certificate
/// would fail them: the kubelet presents none).
fn relay_probe(path: &str, period: i32, failures: i32, web: Option<&WebSetup>) -> Probe {
    let mut probe = http_probe(RELAY_PORT_NAME, path, period, failures);
    if let (Some(get), true) = (probe.http_get.as_mut(), web.is_some_and(|w| w.tls)) {
        get.scheme = Some("HTTPS".to_owned());
    }
    probe
}

fn relay_container(options: &Options, relay: &RelayConfig, web: Option<&WebSetup>) -> Container {
    let mut args = vec![
        "run".to_owned(),
        "--config".to_owned(),
        CONFIG_PATH.to_owned(),
    ];
    let mut mounts = vec![
        // The whole directory, no subPath: a subPath mount never sees
        // the ConfigMap's updates, and relay reloads on them.
        mount(CONFIG_VOLUME, CONFIG_DIR, true),
        mount(WAL_VOLUME, &relay.wal_dir.display().to_string(), false),
    ];
    if options.remote_write_auth.is_some() {
        mounts.push(mount(REMOTE_WRITE_VOLUME, REMOTE_WRITE_SECRET_DIR, true));
    }
    if let Some(web) = web {
        args.push("--web.config.file".to_owned());
        args.push(web::config_path().display().to_string());
        if web.tls_secret.is_some() {
            mounts.push(mount(TLS_VOLUME, WEB_TLS_DIR, true));
        }
    }
    Container {
        name: "relay".to_owned(),
        image: Some(options.relay_image.clone()),
        args: Some(args),
        // Native sidecar: started before the app, stopped after it.
        restart_policy: Some("Always".to_owned()),
        ports: Some(vec![port(RELAY_PORT_NAME, relay.listen_port)]),
        // The kubelet starts the app only once the startup probe passes, so
        // it must not depend on the app: /-/healthy (relay is up). /-/ready
        // means up with its config loaded, as Prometheus's; it never waits
        // for a scrape, so relay's readiness (part of the Pod's) does not
        // take the app out of its Service over a metrics problem.
        startup_probe: Some(relay_probe("/-/healthy", 1, 60, web)),
        liveness_probe: Some(relay_probe("/-/healthy", 10, 3, web)),
        readiness_probe: Some(relay_probe("/-/ready", 5, 3, web)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[
                ("cpu", &options.relay_cpu_request),
                ("memory", &options.relay_memory_request),
            ])),
            limits: Some(quantities(&[
                ("cpu", &options.relay_cpu_limit),
                ("memory", &options.relay_memory_limit),
            ])),
            ..Default::default()
        }),
        env: Some(downward_env()),
        security_context: Some(sidecar_security()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

fn agent_container(options: &Options, metrics_port: u16) -> Container {
    let mut mounts = Vec::new();
    if options.fluent_bit {
        mounts.push(mount(LOG_VOLUME, AGENT_LOG_DIR, false));
    }
    Container {
        // Named after the app (kubectl logs POD -c NAME); --name is refused
        // when it would collide with a sidecar's container.
        name: options.name.clone(),
        image: Some(options.agent_image.clone()),
        ports: Some(vec![
            port("http", options.agent_port),
            port("metrics", metrics_port),
        ]),
        security_context: app_security(&options.app_security),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Default::default()
    }
}

/// The WAL emptyDir's sizeLimit: a quarter above wal_max_size (segments are
/// cut and dropped in steps), in MiB, so the kubelet never evicts before the cap acts.
pub fn wal_size_limit(wal_max_size: u64) -> String {
    let mib = (wal_max_size + wal_max_size / 4).div_ceil(1 << 20).max(64);
    format!("{mib}Mi")
}

/// An md5 of everything relay's Pod reads from ConfigMaps, as the
/// template's annotation: a change of the config rolls the Pods.
pub(crate) fn config_checksum(
    relay: &RelayConfig,
    web: Option<&WebSetup>,
    fluent_bit_conf: Option<&str>,
) -> String {
    let mut checksum = relay.yaml.clone();
    if let Some(web) = web {
        checksum.push_str(&web.yaml);
    }
    if let Some(conf) = fluent_bit_conf {
        checksum.push_str(conf);
    }
    format!("{:x}", md5::compute(checksum.as_bytes()))
}

/// terminationGracePeriodSeconds: the app's shutdown time, then relay's
/// flush (Kubernetes stops a native sidecar only after the app has exited).
pub(crate) fn grace_seconds(app_seconds: i64, relay: &RelayConfig) -> i64 {
    app_seconds
        + relay
            .config
            .relay
            .shutdown_timeout
            .as_std()
            .as_secs_f64()
            .ceil() as i64
        + GRACE_MARGIN_SECONDS
}

/// relay's native sidecar container and the volumes it mounts: what `gen`
/// puts in a new Pod and `inject` adds to an existing one.
pub(crate) fn relay_sidecar(
    options: &Options,
    relay: &RelayConfig,
    web: Option<&WebSetup>,
) -> (Container, Vec<Volume>) {
    let mut volumes = vec![
        config_map_volume(CONFIG_VOLUME, config_map_name(options)),
        // relay (uid 65532) writes the WAL here without a Pod-level
        // fsGroup: the kubelet creates an emptyDir's directory world-writable
        // (mode 0777, pkg/volume/emptydir), so any uid can write to it.
        Volume {
            name: WAL_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(wal_size_limit(relay.config.relay.wal_max_size.0))),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if let Some(secret) = web.and_then(|w| w.tls_secret.clone()) {
        volumes.push(Volume {
            name: TLS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some(auth) = &options.remote_write_auth {
        // Only the key relay reads, in relay's container only.
        let (secret, key) = auth.secret();
        volumes.push(Volume {
            name: REMOTE_WRITE_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_owned()),
                items: Some(vec![KeyToPath {
                    key: key.to_owned(),
                    path: key.to_owned(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    (relay_container(options, relay, web), volumes)
}

/// Whether the Pod carries prometheus.io/* annotations pointing at relay.
pub(crate) fn scrape_annotations(options: &Options, relay: &RelayConfig) -> bool {
    // With remote write on, a Prometheus that also scrapes the Pod by
    // annotation would ingest every sample twice: off unless asked for.
    match options.scrape_annotations {
        ScrapeAnnotations::On => true,
        ScrapeAnnotations::Off => false,
        ScrapeAnnotations::Auto => relay.config.remote_write.is_empty(),
    }
}

fn pod_template(
    options: &Options,
    relay: &RelayConfig,
    web: Option<&WebSetup>,
    fluent_bit_conf: Option<&str>,
) -> PodTemplateSpec {
    let mut annotations = BTreeMap::from([(
        "checksum/config".to_owned(),
        config_checksum(relay, web, fluent_bit_conf),
    )]);
    if scrape_annotations(options, relay) {
        annotations.extend([
            ("prometheus.io/scrape".to_owned(), "true".to_owned()),
            (
                "prometheus.io/port".to_owned(),
                relay.listen_port.to_string(),
            ),
            ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
        ]);
        if web.is_some_and(|w| w.tls) {
            annotations.insert("prometheus.io/scheme".to_owned(), "https".to_owned());
        }
    }
    let (relay_container, mut volumes) = relay_sidecar(options, relay, web);
    let mut init_containers = vec![relay_container];
    if options.fluent_bit {
        init_containers.push(fluentbit::container(options));
        volumes.extend(fluentbit::volumes(options));
    }
    let grace = grace_seconds(
        options.app_shutdown_timeout.as_std().as_secs_f64().ceil() as i64,
        relay,
    );
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(options)),
            annotations: Some(annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            init_containers: Some(init_containers),
            containers: vec![agent_container(options, relay.metrics_port)],
            volumes: Some(volumes),
            termination_grace_period_seconds: Some(grace),
            // Neither relay nor Fluent Bit calls the Kubernetes API: no
            // token in the Pod (the app's too) unless the flag asks for it.
            automount_service_account_token: Some(options.automount_token),
            service_account_name: options.service_account_name.clone(),
            // No Pod-level securityContext: whatever it set (a uid, a gid,
            // fsGroup, runAsNonRoot) would apply to the app's container too
            // and override its image. Each container says its own.
            security_context: None,
            ..Default::default()
        }),
    }
}

pub(crate) fn workload(
    options: &Options,
    relay: &RelayConfig,
    web: Option<&WebSetup>,
    fluent_bit_conf: Option<&str>,
) -> Result<Object, GenError> {
    let template = pod_template(options, relay, web, fluent_bit_conf);
    let name = options.name.clone();
    match options.kind {
        Kind::Pod => {
            let template_meta = template.metadata.unwrap_or_default();
            let pod = Pod {
                metadata: ObjectMeta {
                    annotations: template_meta.annotations,
                    ..meta(options, name.clone())
                },
                spec: template.spec,
                ..Default::default()
            };
            Ok(Object {
                kind: "Pod",
                name,
                yaml: to_yaml("the Pod", &pod)?,
            })
        }
        Kind::Deployment => {
            let deployment = Deployment {
                metadata: meta(options, name.clone()),
                spec: Some(DeploymentSpec {
                    replicas: Some(options.replicas),
                    selector: LabelSelector {
                        match_labels: Some(labels(options)),
                        ..Default::default()
                    },
                    template,
                    ..Default::default()
                }),
                ..Default::default()
            };
            Ok(Object {
                kind: "Deployment",
                name,
                yaml: to_yaml("the Deployment", &deployment)?,
            })
        }
    }
}
