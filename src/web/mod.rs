//! `--web.config.file`: TLS and basic auth on relay's own port, in the
//! format of Prometheus's exporter-toolkit (the file `prometheus
//! --web.config.file` and the exporters read), so one file serves both.
//!
//! As in exporter-toolkit, the file is read again on every request and the
//! certificate files on every TLS handshake: a rotated cert-manager Secret
//! or a changed user list applies without a restart or a SIGHUP. A file
//! that became invalid is refused with one log line and the last good one
//! stays (exporter-toolkit fails the requests instead). Whether TLS is on
//! is fixed at start, as in exporter-toolkit.

pub mod api;
mod basic_auth;
pub mod conns;
pub mod page;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::config::{ConfigError, Secret};

pub use basic_auth::is_bcrypt_hash;

/// The web config file, field for field as exporter-toolkit reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    /// User name to bcrypt hash; empty: no basic auth.
    #[serde(default)]
    pub basic_auth_users: Option<BTreeMap<String, Secret>>,
}

/// `tls_server_config:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// The certificate as PEM text (instead of `cert_file`).
    #[serde(default)]
    pub cert: Option<String>,
    /// The key as PEM text (instead of `key_file`).
    #[serde(default)]
    pub key: Option<Secret>,
    /// The client CA as PEM text (instead of `client_ca_file`).
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth_type: Option<String>,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_allowed_sans: Option<Vec<String>>,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    pub curve_preferences: Option<Vec<String>>,
}

/// `http_server_config:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Accepted for compatibility: relay serves HTTP/1.1 only.
    #[serde(default)]
    pub http2: Option<bool>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

/// How a TLS client must show a certificate (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(value: Option<&str>) -> Result<ClientAuth, String> {
        Ok(match value.unwrap_or("") {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // exporter-toolkit still takes the old name.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(format!(
                    "unknown value {other:?} (expected one of: NoClientCert, RequestClientCert, \
                     RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
                ))
            }
        })
    }

    /// Whether the chain is checked against the client CA.
    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// Why a web config was refused: the file or the field path, and why.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(ConfigError),
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

fn field(path: impl Into<String>, message: impl Into<String>) -> WebConfigError {
    WebConfigError::Field {
        path: path.into(),
        message: message.into(),
    }
}

/// Headers exporter-toolkit lets a web config add, with their allowed values
/// (none listed: any value).
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// An empty string means "not set" in exporter-toolkit's files.
fn given<T: AsRef<std::ffi::OsStr>>(value: &Option<T>) -> Option<&T> {
    value.as_ref().filter(|v| !v.as_ref().is_empty())
}

impl TlsServerConfig {
    /// Whether any TLS field is set: then relay serves HTTPS only.
    pub fn enabled(&self) -> bool {
        given(&self.cert).is_some()
            || self.key.as_ref().is_some_and(|k| !k.0.is_empty())
            || given(&self.client_ca).is_some()
            || given(&self.cert_file).is_some()
            || given(&self.key_file).is_some()
            || given(&self.client_ca_file).is_some()
            || given(&self.client_auth_type).is_some()
    }

    /// The client auth policy, checked against the CA it needs.
    pub fn client_auth(&self) -> Result<ClientAuth, WebConfigError> {
        let auth = ClientAuth::parse(self.client_auth_type.as_deref())
            .map_err(|m| field("tls_server_config.client_auth_type", m))?;
        let has_ca = given(&self.client_ca).is_some() || given(&self.client_ca_file).is_some();
        if has_ca && auth == ClientAuth::NoClientCert {
            return Err(field(
                "tls_server_config.client_auth_type",
                "a client CA is configured without a client auth policy \
                 (set client_auth_type, e.g. VerifyClientCertIfGiven)",
            ));
        }
        if auth.verifies() && !has_ca {
            return Err(field(
                "tls_server_config.client_ca_file",
                "must be configured when client_auth_type verifies client certificates",
            ));
        }
        Ok(auth)
    }

    fn set_directory(&mut self, dir: &Path) {
        for path in [
            &mut self.cert_file,
            &mut self.key_file,
            &mut self.client_ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if !path.as_os_str().is_empty() && path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    fn validate(&self) -> Result<(), WebConfigError> {
        let pairs = [
            (
                "cert",
                given(&self.cert).is_some(),
                "cert_file",
                given(&self.cert_file).is_some(),
            ),
            (
                "key",
                self.key.as_ref().is_some_and(|k| !k.0.is_empty()),
                "key_file",
                given(&self.key_file).is_some(),
            ),
            (
                "client_ca",
                given(&self.client_ca).is_some(),
                "client_ca_file",
                given(&self.client_ca_file).is_some(),
            ),
        ];
        for (inline, has_inline, file, has_file) in pairs {
            if has_inline && has_file {
                return Err(field(
                    format!("tls_server_config.{inline}"),
                    format!("give {inline} or {file}, not both"),
                ));
            }
        }
        for (inline, has_inline, file, has_file) in &pairs[..2] {
            if !has_inline && !has_file {
                return Err(field(
                    format!("tls_server_config.{file}"),
                    format!("must be configured when TLS is on (or give {inline} inline)"),
                ));
            }
        }
        self.client_auth()?;
        tls::check_names(self)
    }
}

impl WebConfig {
    fn tls(&self) -> Option<&TlsServerConfig> {
        self.tls_server_config.as_ref().filter(|t| t.enabled())
    }

    /// Whether relay serves HTTPS with this file.
    pub fn tls_enabled(&self) -> bool {
        self.tls().is_some()
    }

    fn users(&self) -> Option<&BTreeMap<String, Secret>> {
        self.basic_auth_users.as_ref().filter(|u| !u.is_empty())
    }

    fn headers(&self) -> impl Iterator<Item = (&String, &String)> {
        self.http_server_config
            .iter()
            .flat_map(|h| h.headers.iter().flatten())
    }

    /// Parses a web config; relative paths are read from `dir`, as in
    /// exporter-toolkit. Checks everything but the files' content.
    pub fn parse(text: &str, dir: Option<&Path>) -> Result<WebConfig, WebConfigError> {
        let mut config: WebConfig =
            crate::config::from_yaml_as(text).map_err(WebConfigError::Parse)?;
        if let (Some(dir), Some(tls)) = (dir, config.tls_server_config.as_mut()) {
            tls.set_directory(dir);
        }
        if let Some(tls) = config.tls() {
            tls.validate()?;
        }
        for (name, value) in config.headers() {
            let path = format!("http_server_config.headers.{name}");
            let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(h, _)| h == name) else {
                let names: Vec<&str> = EXTRA_HEADERS.iter().map(|(h, _)| *h).collect();
                return Err(field(
                    path,
                    format!(
                        "this header cannot be configured (expected one of: {})",
                        names.join(", ")
                    ),
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(field(
                    path,
                    format!("{value:?} is not one of: {}", allowed.join(", ")),
                ));
            }
            if HeaderValue::from_str(value).is_err() {
                return Err(field(path, "not a valid header value"));
            }
        }
        for (user, hash) in config.users().into_iter().flatten() {
            if !is_bcrypt_hash(&hash.0) {
                // The value is not shown: it may be a password put there by mistake.
                return Err(field(
                    format!("basic_auth_users.{user}"),
                    "not a bcrypt hash ($2y$10$ and 53 more characters, as `htpasswd -nBC 10` prints)",
                ));
            }
        }
        Ok(config)
    }

    /// Reads and checks a web config file, certificates and keys included
    /// (`relay check web-config`, and `relay run` at start).
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config = WebConfig::parse(&text, path.parent())?;
        if let Some(tls) = config.tls() {
            tls::server_config(tls, &tls::Inputs::read(tls)?)?;
        }
        Ok(config)
    }
}

/// The web config in force on relay's port, read again as it changes.
pub struct Web {
    /// None: no `--web.config.file` (plain HTTP, no auth).
    path: Option<PathBuf>,
    tls: bool,
    state: Mutex<State>,
    auth: basic_auth::Checker,
}

struct State {
    /// The file's bytes behind `config`.
    text: Vec<u8>,
    config: Arc<WebConfig>,
    /// The TLS server config, with what it was built from.
    server: Option<Server>,
    /// The last problem logged, so a bad file is logged once, not per request.
    logged: Option<String>,
}

struct Server {
    from: Arc<WebConfig>,
    inputs: tls::Inputs,
    config: Arc<rustls::ServerConfig>,
}

/// What the web config says of one request.
pub struct Verdict {
    /// False: 401 with `WWW-Authenticate: Basic`.
    pub allowed: bool,
    /// Added to the response, whatever it is.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Web {
    /// Plain HTTP, no auth: no `--web.config.file`.
    pub fn disabled() -> Web {
        Web {
            path: None,
            tls: false,
            state: Mutex::new(State {
                text: Vec::new(),
                config: Arc::new(WebConfig::default()),
                server: None,
                logged: None,
            }),
            auth: basic_auth::Checker::default(),
        }
    }

    /// Reads the file at start: an invalid file stops relay, naming the field.
    pub fn open(path: &Path) -> Result<Web, WebConfigError> {
        let text = std::fs::read(path).map_err(|source| WebConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config = Arc::new(WebConfig::parse(
            &String::from_utf8_lossy(&text),
            path.parent(),
        )?);
        let server = match config.tls() {
            Some(tls) => {
                let inputs = tls::Inputs::read(tls)?;
                let server = Arc::new(tls::server_config(tls, &inputs)?);
                Some(Server {
                    from: config.clone(),
                    inputs,
                    config: server,
                })
            }
            None => None,
        };
        Ok(Web {
            path: Some(path.to_owned()),
            tls: server.is_some(),
            state: Mutex::new(State {
                text,
                config,
                server,
                logged: None,
            }),
            auth: basic_auth::Checker::default(),
        })
    }

    /// Counts basic auth checks into relay's own metrics from now on.
    pub fn count_checks(&self, checks: crate::telemetry::WebAuthChecks) {
        self.auth.count_into(checks);
    }

    /// Whether relay serves HTTPS (fixed at start).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// Whether basic auth is asked for now.
    pub fn basic_auth(&self) -> bool {
        self.current().users().is_some()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The web config now: the file read again, the last good one kept when
    /// the new content is refused.
    fn current(&self) -> Arc<WebConfig> {
        let Some(path) = &self.path else {
            return self.state().config.clone();
        };
        let read = std::fs::read(path);
        let mut state = self.state();
        let text = match read {
            Ok(text) if text == state.text => return state.config.clone(),
            Ok(text) => text,
            Err(e) => {
                state.log_once(format!("cannot read {}: {e}", path.display()));
                return state.config.clone();
            }
        };
        let parsed = WebConfig::parse(&String::from_utf8_lossy(&text), path.parent());
        match parsed {
            Ok(config) if config.tls_enabled() != self.tls => state.log_once(format!(
                "{}: TLS cannot be turned {} without a restart",
                path.display(),
                if self.tls { "off" } else { "on" }
            )),
            Ok(config) => {
                tracing::info!(file = %path.display(), "web config changed: applied");
                state.text = text;
                state.config = Arc::new(config);
                state.logged = None;
            }
            Err(e) => state.log_once(format!("{}: {e}", path.display())),
        }
        state.config.clone()
    }

    /// The TLS server config for a new connection (None: plain HTTP), with
    /// the certificate, key and client CA read again.
    pub fn tls_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        if !self.tls {
            return None;
        }
        let config = self.current();
        let tls = config.tls()?;
        let inputs = tls::Inputs::read(tls);
        let mut state = self.state();
        let server = state.server.as_ref()?;
        let inputs = match inputs {
            Ok(i) if Arc::ptr_eq(&server.from, &config) && i == server.inputs => {
                return Some(server.config.clone())
            }
            Ok(i) => i,
            Err(e) => {
                let keep = server.config.clone();
                state.log_once(e.to_string());
                return Some(keep);
            }
        };
        match tls::server_config(tls, &inputs) {
            Ok(built) => {
                tracing::info!("web config: TLS certificate or settings changed: applied");
                let built = Arc::new(built);
                state.server = Some(Server {
                    from: config.clone(),
                    inputs,
                    config: built.clone(),
                });
                Some(built)
            }
            Err(e) => {
                let keep = server.config.clone();
                state.log_once(e.to_string());
                Some(keep)
            }
        }
    }

    /// Whether a request to `path` with this `Authorization` header may go
    /// on, and the headers the web config adds to its response. The probes'
    /// paths need no credentials: kubelet sends none, and they say nothing
    /// but "up" and "ready".
    pub async fn check(&self, path: &str, authorization: Option<&HeaderValue>) -> Verdict {
        let config = self.current();
        let headers = config
            .headers()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        let allowed = match config.users() {
            _ if matches!(path, "/-/healthy" | "/-/ready") => true,
            None => true,
            Some(users) => self.auth.check(users, authorization).await,
        };
        Verdict { allowed, headers }
    }
}

impl State {
    fn log_once(&mut self, problem: String) {
        if self.logged.as_ref() != Some(&problem) {
            tracing::error!(error = %problem, "web config refused; the last good one stays");
            self.logged = Some(problem);
        }
    }
}
