//! The relay config `gen` embeds: config/relay.yml or --config's file, with
//! `relay.listen_address` and `relay.wal_dir` set to what the Pod provides.

use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{GenError, Options, DEFAULT_WAL_DIR};
use crate::config::{self, Config, Overrides};

/// The default sidecar config, as shipped in the repository.
const DEFAULT_CONFIG: &str = include_str!("../../config/relay.yml");
/// The default config's scrape target, replaced by `localhost:<--metrics-port>`.
const DEFAULT_TARGET: &str = "localhost:8001";
/// The port relay listens on when neither --listen-port nor the config says.
const DEFAULT_LISTEN_PORT: u16 = 9090;

/// The config as embedded, and what `relay run` will make of it.
#[derive(Debug, Clone)]
pub(crate) struct RelayConfig {
    pub yaml: String,
    pub config: Config,
    pub listen_port: u16,
    pub wal_dir: PathBuf,
}

pub(crate) fn build(options: &Options) -> Result<RelayConfig, GenError> {
    let (text, path) = match &options.config {
        Some(path) => {
            config::load(path, &Overrides::default()).map_err(|source| GenError::Config {
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
    if path.is_none() {
        retarget(root, &format!("localhost:{}", options.metrics_port));
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
        entries.push(Value::Mapping(entry));
    }

    let yaml = super::to_yaml("the relay config", &doc)?;
    let config = config::from_yaml_str(&yaml)
        .map_err(GenError::Generated)?
        .config;
    Ok(RelayConfig {
        yaml,
        config,
        listen_port,
        wal_dir,
    })
}

/// Points the default config's `localhost:8001` targets at `target`.
fn retarget(root: &mut Mapping, target: &str) {
    let Some(Value::Sequence(jobs)) = root.get_mut("scrape_configs") else {
        return;
    };
    for job in jobs {
        let Some(Value::Sequence(statics)) = job.get_mut("static_configs") else {
            continue;
        };
        for s in statics {
            let Some(Value::Sequence(targets)) = s.get_mut("targets") else {
                continue;
            };
            for t in targets {
                if t.as_str() == Some(DEFAULT_TARGET) {
                    *t = Value::from(target);
                }
            }
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
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("relay.listen_address {address:?} has no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("relay.listen_address {address:?} has no valid port"))?;
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
