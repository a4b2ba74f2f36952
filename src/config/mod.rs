//! The relay config: a subset of `prometheus.yml` with the same field names
//! and defaults, plus a `relay:` section, so an existing `prometheus-config`
//! ConfigMap loads unchanged where it uses supported fields.
//!
//! Loading is figment (YAML file, then `RELAY_*` environment for the `relay:`
//! section, then command-line overrides) followed by our own validation, so
//! every error names the field path (`scrape_configs[0].scrape_timeout`).

mod expand;
mod foreign;
mod relabel;
mod types;
mod units;
mod validate;

use std::path::Path;

use figment::providers::{Env, Format as _, Yaml};
use figment::value::Value;
use figment::Figment;

pub use relabel::{Action, RelabelConfig, DEFAULT_REGEX};
pub use types::*;
pub use units::{ByteSize, Duration};

/// Values given on the command line; they override the file and `RELAY_*`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen_address: Option<String>,
}

/// A config plus the warnings loading it produced (ignored Prometheus fields).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Why a config was rejected: the field path, the bad value, what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Read(String),
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

impl ConfigError {
    fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Field {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The `relay:` keys that `RELAY_<KEY>` environment variables may override.
const ENV_KEYS: [&str; 4] = [
    "listen_address",
    "wal_dir",
    "wal_max_size",
    "shutdown_timeout",
];

/// Loads a config file: YAML, then `RELAY_*` environment, then `overrides`.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(ConfigError::Read("is a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::Read("no such file".into()))
        }
        Err(e) => return Err(ConfigError::Read(format!("cannot read: {e}"))),
    }
    if let Err(e) = std::fs::File::open(path) {
        return Err(ConfigError::Read(format!("cannot read: {e}")));
    }
    let env = Env::prefixed("RELAY_")
        .only(&ENV_KEYS)
        .map(|k| format!("relay.{k}").into());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(e.to_string()))?;
    reject_duplicate_keys(&text)?;
    let mut figment = Figment::from(Yaml::string(&text)).merge(env);
    if let Some(addr) = &overrides.listen_address {
        figment = figment.merge(("relay.listen_address", addr));
    }
    from_figment(figment, path.parent())
}

/// The config as YAML with its secrets shown as `<secret>` and URL
/// passwords as `xxxxx`, as Prometheus's `/api/v1/status/config` shows its
/// own: defaults filled in, unset and empty fields left out.
pub fn to_redacted_yaml(config: &Config) -> String {
    serde_norway::to_value(config)
        .and_then(|mut value| {
            prune(&mut value);
            serde_norway::to_string(&value)
        })
        .unwrap_or_else(|e| format!("# cannot be shown: {e}\n"))
}

/// Drops null values and empty maps and lists from mappings, as Go's
/// `omitempty` leaves them out.
fn prune(value: &mut serde_norway::Value) {
    use serde_norway::Value;
    match value {
        Value::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                prune(v);
            }
            map.retain(|_, v| match v {
                Value::Null => false,
                Value::Mapping(m) => !m.is_empty(),
                Value::Sequence(s) => !s.is_empty(),
                _ => true,
            });
        }
        Value::Sequence(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

/// Loads a config from a YAML string (tests, `relay demo`): no `RELAY_*`
/// environment, though `external_labels` are expanded as in a file.
pub fn from_yaml_str(yaml: &str) -> Result<Loaded, ConfigError> {
    reject_duplicate_keys(yaml)?;
    from_figment(Figment::from(Yaml::string(yaml)), None)
}

/// A key given twice is an error, as in Prometheus (`field … already set`):
/// figment would silently keep the last one, dropping e.g. a whole
/// `scrape_configs` list.
fn reject_duplicate_keys(yaml: &str) -> Result<(), ConfigError> {
    match serde_norway::from_str::<serde_norway::Value>(yaml) {
        Err(e) if e.to_string().contains("duplicate entry") => {
            let message = e.to_string();
            // The parser points at the mapping, not at the second key: find it.
            let head = message.split(" at line ").next().unwrap_or(&message);
            let key = message.split('"').nth(1).unwrap_or_default();
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let at = second_key_line(yaml, key, line, column)
                .map(|l| format!(" at line {l} column {column}"))
                .unwrap_or_default();
            Err(ConfigError::Read(format!("cannot read YAML: {head}{at}")))
        }
        // Other syntax errors are figment's to report, as before.
        _ => Ok(()),
    }
}

/// The 1-based line of `key`'s second occurrence in the block mapping whose
/// first key is at (`line`, `column`).
fn second_key_line(yaml: &str, key: &str, line: usize, column: usize) -> Option<usize> {
    let indent = column.checked_sub(1)?;
    let mut seen = 0;
    for (i, text) in yaml.lines().enumerate().skip(line.checked_sub(1)?) {
        let rest = text.get(indent..).unwrap_or("");
        let lead = text.get(..indent).unwrap_or(text);
        let first = i + 1 == line;
        if !first && !text.trim().is_empty() && !lead.trim().is_empty() {
            break; // the mapping ended
        }
        let is_key = rest.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
            || rest
                .strip_prefix(&format!("\"{key}\""))
                .is_some_and(|r| r.starts_with(':'));
        if is_key {
            seen += 1;
            if seen == 2 {
                return Some(i + 1);
            }
        }
    }
    None
}

/// `dir` is the config file's directory: as in Prometheus, relative secret
/// and certificate paths are read from there, not from the working directory.
fn from_figment(figment: Figment, dir: Option<&Path>) -> Result<Loaded, ConfigError> {
    let mut value: Value = figment
        .extract()
        .map_err(|e| ConfigError::Read(format!("cannot read YAML: {}", e.kind)))?;
    // An empty file is a config with every default, as in Prometheus.
    if matches!(&value, Value::Empty(..)) {
        value = Value::from(figment::value::Dict::new());
    }
    let mut warnings = foreign::strip(&mut value)?;
    let mut config: Config =
        serde_path_to_error::deserialize(&value).map_err(foreign::describe_serde_error)?;
    config.global.external_labels_from_env = expand::uses_env(&config.global.external_labels);
    warnings.extend(expand::external_labels(
        &mut config.global.external_labels,
        |var| std::env::var_os(var),
    )?);
    if let Some(dir) = dir {
        config.set_directory(dir);
    }
    validate::resolve(&mut config)?;
    Ok(Loaded { config, warnings })
}

/// Deserializes another YAML file of relay's (the web config) with the same
/// error style: the field path, unknown fields refused with a did-you-mean.
pub(crate) fn from_yaml_as<T: serde::de::DeserializeOwned>(yaml: &str) -> Result<T, ConfigError> {
    let mut value: Value = Figment::from(Yaml::string(yaml))
        .extract()
        .map_err(|e| ConfigError::Read(format!("cannot read YAML: {}", e.kind)))?;
    if matches!(&value, Value::Empty(..)) {
        value = Value::from(figment::value::Dict::new());
    }
    serde_path_to_error::deserialize(&value).map_err(foreign::describe_serde_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redacted_yaml_shows_no_secret_and_loads_again() {
        let yaml = "scrape_configs:\n  - job_name: app\n    basic_auth: {username: u, password: PW1}\n    static_configs: [{targets: ['a:1']}]\nremote_write:\n  - url: http://w:PW2@r:1/write\n    headers: {X-Key: PW3}\n    authorization: {credentials: PW4}\n";
        let config = from_yaml_str(yaml).expect("valid").config;
        let shown = to_redacted_yaml(&config);
        for secret in ["PW1", "PW2", "PW3", "PW4"] {
            assert!(!shown.contains(secret), "{secret} in:\n{shown}");
        }
        assert!(shown.contains("url: http://w:xxxxx@r:1/write"), "{shown}");
        assert!(!shown.contains("null"), "{shown}");
        // Secrets aside, the same config.
        let mut again = from_yaml_str(&shown).expect("loads again").config;
        again.scrape_configs[0].basic_auth = config.scrape_configs[0].basic_auth.clone();
        assert_eq!(again.scrape_configs, config.scrape_configs);
        assert_eq!(
            again.remote_write[0].queue_config,
            config.remote_write[0].queue_config
        );
    }

    #[test]
    fn oauth2_and_proxy_secrets_are_redacted_and_load_again() {
        let yaml = "scrape_configs:\n  - job_name: app\n    proxy_url: http://u:PW1@proxy:3128\n    proxy_connect_header: {X-Token: [PW2, PW3]}\n    oauth2:\n      client_id: id\n      client_secret: PW4\n      token_url: http://t:PW5@auth/token\n      proxy_url: http://u:PW6@proxy:3128\n      proxy_connect_header: {X-Token: [PW7]}\nremote_write:\n  - url: http://r:1/write\n    proxy_from_environment: true\n    oauth2: {client_id: id, client_secret_file: /s, token_url: http://auth/token}\n";
        let config = from_yaml_str(yaml).expect("valid").config;
        let shown = to_redacted_yaml(&config);
        for secret in ["PW1", "PW2", "PW3", "PW4", "PW5", "PW6", "PW7"] {
            assert!(!shown.contains(secret), "{secret} in:\n{shown}");
        }
        for redacted in [
            "proxy_url: http://u:xxxxx@proxy:3128",
            "token_url: http://t:xxxxx@auth/token",
            "client_secret: <secret>",
            "client_secret_file: /s",
        ] {
            assert!(shown.contains(redacted), "{redacted} in:\n{shown}");
        }
        assert!(!shown.contains("null"), "{shown}");
        let again = from_yaml_str(&shown).expect("loads again").config;
        assert_eq!(again.remote_write[0].oauth2, config.remote_write[0].oauth2);
        let connect = &again.scrape_configs[0].proxy_connect_header["X-Token"];
        assert_eq!(connect.len(), 2);
    }
}
