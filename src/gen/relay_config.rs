//! The relay config `gen` embeds: config/relay.yml or --config's file, with
//! `relay.listen_address` and `relay.wal_dir` set to what the Pod provides,
//! the app's metrics port agreeing with its localhost scrape target, and
//! the Pod's identity in `global.external_labels` (always: relay attaches
//! them to what it serves too, so replicas stay apart at a central
//! Prometheus with `honor_labels: true` as well as at a receiver).

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{GenError, Options, RemoteWriteAuth, DEFAULT_WAL_DIR};
use crate::config::{self, Config, Overrides};
use crate::hostport;

/// The default sidecar config, as shipped in the repository.
const DEFAULT_CONFIG: &str = include_str!("../../config/relay.yml");
/// The default config's scrape target, replaced by `localhost:<--metrics-port>`.
const DEFAULT_TARGET: &str = "localhost:8001";
/// The app's metrics port when neither --metrics-port nor --config says.
const DEFAULT_METRICS_PORT: u16 = 8001;
/// Hosts of a scrape target in the Pod's own network namespace.
const LOCAL_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];
/// The external labels that tell replicas apart under remote write, the
/// variables they expand and the Pod fields the Downward API sets those to
/// on relay's container: every replica scrapes localhost, so job and
/// instance alone collide at the receiver.
pub(crate) const POD_LABELS: [(&str, &str, &str); 2] = [
    ("pod", "POD_NAME", "metadata.name"),
    ("namespace", "POD_NAMESPACE", "metadata.namespace"),
];
/// The port relay listens on when neither --listen-port nor the config says.
const DEFAULT_LISTEN_PORT: u16 = 9090;

/// The config as embedded, and what `relay run` will make of it.
#[derive(Debug, Clone)]
pub(crate) struct RelayConfig {
    pub yaml: String,
    pub config: Config,
    pub listen_port: u16,
    /// The app's `metrics` container port: what relay scrapes on localhost.
    pub metrics_port: u16,
    pub wal_dir: PathBuf,
}

pub(crate) fn build(options: &Options) -> Result<RelayConfig, GenError> {
    let (text, path) = match &options.config {
        Some(path) => {
            check_for_pod(path).map_err(|source| GenError::Config {
                path: path.clone(),
                source,
            })?;
            let text = std::fs::read_to_string(path).map_err(|source| GenError::Read {
                path: path.clone(),
                source,
            })?;
            (text, Some(path.as_path()))
        }
        None => (DEFAULT_CONFIG.to_owned(), None),
    };
    let conflict = |message: String| match path {
        Some(p) => GenError::Conflict {
            path: p.to_owned(),
            message,
        },
        None => GenError::Conflict {
            path: PathBuf::from("config/relay.yml"),
            message,
        },
    };
    let mut doc: Value =
        serde_norway::from_str(&text).map_err(|e| conflict(format!("not a YAML mapping: {e}")))?;
    if doc.is_null() {
        doc = Value::Mapping(Mapping::new());
    }
    let root = doc
        .as_mapping_mut()
        .ok_or_else(|| conflict("the config is not a YAML mapping".into()))?;
    if let Some(field) = inline_secret(root) {
        return Err(conflict(format!(
            "{field} holds a secret, which would be embedded in the ConfigMap that anyone with \
             the `view` role reads: use password_file / credentials_file (a mounted Secret), for \
             sigv4 IRSA or AWS_* variables from a Secret, or --remote-write-url with --remote-write-basic-auth-secret or \
             --remote-write-bearer-token-secret"
        )));
    }
    let relay = root
        .entry(Value::from("relay"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if relay.is_null() {
        *relay = Value::Mapping(Mapping::new());
    }
    let relay = relay
        .as_mapping_mut()
        .ok_or_else(|| conflict("relay: is not a mapping".into()))?;

    let listen_port = listen_port(relay, options.listen_port, path.is_some()).map_err(conflict)?;
    relay.insert(
        Value::from("listen_address"),
        Value::from(format!("0.0.0.0:{listen_port}")),
    );

    // A relative wal_dir (the default data/wal) would land on the read-only
    // root filesystem: it becomes the emptyDir's mount. An absolute one is
    // kept, and the emptyDir is mounted there.
    let wal_dir = match relay.get("wal_dir").and_then(Value::as_str) {
        Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_WAL_DIR),
    };
    if wal_dir.starts_with(super::CONFIG_DIR) || wal_dir == Path::new("/") {
        return Err(conflict(format!(
            "relay.wal_dir {} cannot hold the WAL: it is (under) the config's read-only mount or the root",
            wal_dir.display()
        )));
    }
    relay.insert(
        Value::from("wal_dir"),
        Value::from(wal_dir.display().to_string()),
    );

    let metrics_port = match path {
        None => {
            let port = options.metrics_port.unwrap_or(DEFAULT_METRICS_PORT);
            retarget(
                root,
                &format!("localhost:{port}"),
                options.metrics_path.as_deref(),
            );
            port
        }
        Some(_) => {
            // Ports in the Pod that are not the app's: relay's own (a config
            // may scrape itself) and Fluent Bit's.
            let mut others = vec![listen_port];
            if options.fluent_bit {
                others.push(super::FLUENT_BIT_PORT);
            }
            metrics_port(root, options.metrics_port, &others).map_err(conflict)?
        }
    };

    if let Some(url) = &options.remote_write_url {
        let entries = root
            .entry(Value::from("remote_write"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        if entries.is_null() {
            *entries = Value::Sequence(Vec::new());
        }
        let entries = entries
            .as_sequence_mut()
            .ok_or_else(|| conflict("remote_write: is not a list".into()))?;
        let mut entry = Mapping::new();
        entry.insert(Value::from("url"), Value::from(url.clone()));
        // Credentials are files from the Secret relay mounts: the
        // ConfigMap (readable with the `view` role) holds only their paths.
        match &options.remote_write_auth {
            Some(auth @ RemoteWriteAuth::Basic { username, .. }) => {
                let mut basic = Mapping::new();
                basic.insert(Value::from("username"), Value::from(username.clone()));
                basic.insert(Value::from("password_file"), Value::from(auth.file()));
                entry.insert(Value::from("basic_auth"), Value::Mapping(basic));
            }
            Some(auth @ RemoteWriteAuth::Bearer { .. }) => {
                let mut authorization = Mapping::new();
                authorization.insert(Value::from("credentials_file"), Value::from(auth.file()));
                entry.insert(Value::from("authorization"), Value::Mapping(authorization));
            }
            None => {}
        }
        if options.remote_write_protocol != config::ProtobufMessage::V1 {
            entry.insert(
                Value::from("protobuf_message"),
                Value::from(options.remote_write_protocol.as_str()),
            );
        }
        entries.push(Value::Mapping(entry));
    }

    add_pod_labels(root).map_err(conflict)?;

    let yaml = super::to_yaml("the relay config", &doc)?;
    let config = config::from_yaml_str(&yaml)
        .map_err(GenError::Generated)?
        .config;
    Ok(RelayConfig {
        yaml,
        config,
        listen_port,
        metrics_port,
        wal_dir,
    })
}

/// Checks a config as `relay check config` does, except for the TLS files
/// it names: those are the Pod's (Secrets mounted there), seldom on the
/// machine running gen. What is checked of them without reading
/// (`cert_file` and `key_file` given together) still is.
fn check_for_pod(path: &Path) -> Result<(), crate::plan::PlanError> {
    let mut config = config::load(path, &Overrides::default())?.config;
    for tls in config.tls_configs_mut() {
        tls.ca_file = None;
        if tls.cert_file.is_some() && tls.key_file.is_some() {
            (tls.cert_file, tls.key_file) = (None, None);
        }
    }
    crate::plan::resolve(&config).map(drop)
}

/// Fields of Prometheus's HTTP client config that hold a secret inline
/// (each has a `_file` twin); `client_secret` is OAuth2's, `secret_key`
/// SigV4's (whose keys belong in IRSA or the environment instead).
const SECRET_FIELDS: [&str; 4] = ["password", "credentials", "client_secret", "secret_key"];

/// The path of the first secret the config holds inline: a secret field
/// with a value, or a remote_write URL with a user or password in it.
fn inline_secret(root: &Mapping) -> Option<String> {
    fn walk(value: &Value, path: &str) -> Option<String> {
        match value {
            Value::Mapping(m) => m.iter().find_map(|(k, v)| {
                let key = k.as_str().unwrap_or_default();
                let here = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                let set = !v.is_null() && v.as_str() != Some("");
                if SECRET_FIELDS.contains(&key) && set {
                    return Some(here);
                }
                walk(v, &here)
            }),
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    let entries = root.get("remote_write").and_then(Value::as_sequence);
    for (i, entry) in entries.into_iter().flatten().enumerate() {
        let url = entry.get("url").and_then(Value::as_str).unwrap_or_default();
        if reqwest::Url::parse(url)
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            return Some(format!("remote_write[{i}].url"));
        }
    }
    ["scrape_configs", "remote_write"]
        .iter()
        .find_map(|section| walk(root.get(*section)?, section))
}

/// Adds `pod: ${POD_NAME}` and `namespace: ${POD_NAMESPACE}` to
/// `global.external_labels`, keeping a value the config already gives either
/// key (that is how a user overrides them; a `labeldrop` in
/// write_relabel_configs removes them, as external labels come first).
fn add_pod_labels(root: &mut Mapping) -> Result<(), String> {
    let global = root
        .entry(Value::from("global"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if global.is_null() {
        *global = Value::Mapping(Mapping::new());
    }
    let global = global
        .as_mapping_mut()
        .ok_or_else(|| "global: is not a mapping".to_owned())?;
    let labels = global
        .entry(Value::from("external_labels"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if labels.is_null() {
        *labels = Value::Mapping(Mapping::new());
    }
    let labels = labels
        .as_mapping_mut()
        .ok_or_else(|| "global.external_labels: is not a mapping".to_owned())?;
    for (name, var, _) in POD_LABELS {
        if !labels.contains_key(name) {
            labels.insert(Value::from(name), Value::from(format!("${{{var}}}")));
        }
    }
    Ok(())
}

/// The ports of the config's static targets on localhost (any host naming
/// the Pod's own network), in order, without repeats.
fn local_ports(root: &Mapping) -> Vec<u16> {
    let mut ports = Vec::new();
    let Some(Value::Sequence(jobs)) = root.get("scrape_configs") else {
        return ports;
    };
    for job in jobs {
        let Some(Value::Sequence(statics)) = job.get("static_configs") else {
            continue;
        };
        for s in statics {
            let Some(Value::Sequence(targets)) = s.get("targets") else {
                continue;
            };
            for t in targets.iter().filter_map(Value::as_str) {
                let Ok((host, Some(port))) = hostport::split(t) else {
                    continue;
                };
                if LOCAL_HOSTS.contains(&host) && !ports.contains(&port) {
                    ports.push(port);
                }
            }
        }
    }
    ports
}

/// The app's metrics port with --config: the flag when it names one of the
/// config's localhost targets, else the config's one localhost target
/// (ports in `others` belong to relay and the other sidecars).
fn metrics_port(root: &Mapping, flag: Option<u16>, others: &[u16]) -> Result<u16, String> {
    let ports: Vec<u16> = local_ports(root)
        .into_iter()
        .filter(|p| !others.contains(p))
        .collect();
    let listed = ports
        .iter()
        .map(|p| format!("localhost:{p}"))
        .collect::<Vec<_>>()
        .join(", ");
    match (flag, ports.as_slice()) {
        (Some(f), ports) if ports.contains(&f) => Ok(f),
        (Some(f), []) => Err(format!(
            "--metrics-port {f} conflicts with the config, which scrapes no localhost target: \
             add localhost:{f} to a static_configs target, or relay never scrapes the app"
        )),
        (Some(f), _) => Err(format!(
            "--metrics-port {f} conflicts with the config's localhost scrape target(s) {listed}: \
             drop the flag or change the file"
        )),
        (None, [one]) => Ok(*one),
        (None, []) => Err(
            "the config scrapes no localhost target (localhost, 127.0.0.1 or [::1]), so relay \
             would not scrape the app in its Pod: add localhost:PORT to a static_configs target"
                .to_owned(),
        ),
        (None, _) => Err(format!(
            "the config scrapes several localhost targets ({listed}): name the app's metrics \
             port with --metrics-port"
        )),
    }
}

/// Points the default config's `localhost:8001` targets at `target`, and
/// their jobs' `metrics_path` at `path` when given.
fn retarget(root: &mut Mapping, target: &str, path: Option<&str>) {
    let Some(Value::Sequence(jobs)) = root.get_mut("scrape_configs") else {
        return;
    };
    for job in jobs {
        let mut hit = false;
        if let Some(Value::Sequence(statics)) = job.get_mut("static_configs") {
            for s in statics {
                let Some(Value::Sequence(targets)) = s.get_mut("targets") else {
                    continue;
                };
                for t in targets {
                    if t.as_str() == Some(DEFAULT_TARGET) {
                        *t = Value::from(target);
                        hit = true;
                    }
                }
            }
        }
        if let (true, Some(path), Some(job)) = (hit, path, job.as_mapping_mut()) {
            job.insert(Value::from("metrics_path"), Value::from(path));
        }
    }
}

/// The port relay listens on: --listen-port, else the config's, else 9090; a
/// config that disagrees with the flag or listens on loopback only is refused.
fn listen_port(relay: &Mapping, flag: Option<u16>, from_file: bool) -> Result<u16, String> {
    let Some(address) = relay.get("listen_address").and_then(Value::as_str) else {
        return Ok(flag.unwrap_or(DEFAULT_LISTEN_PORT));
    };
    if !from_file {
        // The shipped default's address only says 0.0.0.0:9090.
        return Ok(flag.unwrap_or(DEFAULT_LISTEN_PORT));
    }
    let (host, port) = match hostport::split(address) {
        Ok((host, Some(port))) => (host, port),
        Ok((_, None)) => return Err(format!("relay.listen_address {address:?} has no port")),
        Err(_) => {
            return Err(format!(
                "relay.listen_address {address:?} has no valid port"
            ))
        }
    };
    if !matches!(host, "" | "0.0.0.0" | "[::]") {
        return Err(format!(
            "relay.listen_address {address:?} listens on {host} only: the kubelet's probes and \
             Prometheus reach the Pod's IP, so use 0.0.0.0:{port}"
        ));
    }
    match flag {
        Some(f) if f != port => Err(format!(
            "relay.listen_address {address:?} conflicts with --listen-port {f}: \
             drop the flag or change the file"
        )),
        _ => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(yaml: &str) -> Mapping {
        serde_norway::from_str(yaml).expect("a mapping")
    }

    #[test]
    fn metrics_port_ignores_relay_and_sidecar_ports() {
        // A config that also scrapes relay itself (9090) and Fluent Bit (2020).
        let r = root(
            "scrape_configs:\n- job_name: a\n  static_configs:\n  - targets: ['localhost:8001', '127.0.0.1:9090']\n\
             - job_name: b\n  static_configs:\n  - targets: ['[::1]:2020', 'localhost:8001']\n",
        );
        assert_eq!(local_ports(&r), [8001, 9090, 2020]);
        assert_eq!(metrics_port(&r, None, &[9090, 2020]), Ok(8001));
        assert_eq!(metrics_port(&r, Some(8001), &[9090, 2020]), Ok(8001));
        let err = metrics_port(&r, None, &[9090]).expect_err("two candidates");
        assert!(err.contains("localhost:8001, localhost:2020"), "{err}");
        let err = metrics_port(&r, Some(9000), &[9090, 2020]).expect_err("disagrees");
        assert!(err.contains("--metrics-port 9000"), "{err}");
    }

    #[test]
    fn pod_labels_fill_null_sections_and_keep_set_keys() {
        let mut r = root("global:\n");
        add_pod_labels(&mut r).expect("added");
        let labels = &r["global"]["external_labels"];
        assert_eq!(labels["pod"].as_str(), Some("${POD_NAME}"));
        assert_eq!(labels["namespace"].as_str(), Some("${POD_NAMESPACE}"));

        let mut r = root("global:\n  external_labels:\n    namespace: prod\n");
        add_pod_labels(&mut r).expect("added");
        let labels = &r["global"]["external_labels"];
        assert_eq!(labels["namespace"].as_str(), Some("prod"));
        assert_eq!(labels["pod"].as_str(), Some("${POD_NAME}"));

        let mut r = root("global:\n  external_labels: [a]\n");
        let err = add_pod_labels(&mut r).expect_err("not a mapping");
        assert!(err.contains("global.external_labels"), "{err}");
    }
}
