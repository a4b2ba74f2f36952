//! STUB: the relay config (owned by the config work).

use std::path::Path;

/// A loaded, validated config.
#[derive(Debug, Clone)]
pub struct Config {}

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
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

/// Loads a config file: YAML, then `RELAY_*` environment, then `overrides`.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let _ = (path, overrides);
    todo!()
}

/// Loads a config from a YAML string (tests, `relay demo`), no environment.
pub fn from_yaml_str(yaml: &str) -> Result<Loaded, ConfigError> {
    let _ = yaml;
    todo!()
}
