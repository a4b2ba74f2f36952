//! The config's shape: Prometheus's field names and defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::relabel::RelabelConfig;
use super::units::{ByteSize, Duration};

/// A whole relay config.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
    #[serde(default)]
    pub relay: RelaySettings,
}

impl Config {
    /// Makes relative file paths relative to `dir` (Prometheus's `SetDirectory`).
    pub fn set_directory(&mut self, dir: &Path) {
        let jobs = self.scrape_configs.iter_mut().map(|j| {
            (
                &mut j.authorization,
                &mut j.basic_auth,
                &mut j.tls_config,
                &mut j.oauth2,
            )
        });
        let writers = self.remote_write.iter_mut().map(|r| {
            (
                &mut r.authorization,
                &mut r.basic_auth,
                &mut r.tls_config,
                &mut r.oauth2,
            )
        });
        for (auth, basic, tls, oauth2) in jobs.chain(writers) {
            let (secret, oauth2_tls) = match oauth2.as_mut() {
                Some(o) => (o.client_secret_file.as_mut(), Some(&mut o.tls_config)),
                None => (None, None),
            };
            let (ca, cert, key) = match oauth2_tls {
                Some(t) => (
                    t.ca_file.as_mut(),
                    t.cert_file.as_mut(),
                    t.key_file.as_mut(),
                ),
                None => (None, None, None),
            };
            let files = [
                auth.as_mut().and_then(|a| a.credentials_file.as_mut()),
                basic.as_mut().and_then(|b| b.password_file.as_mut()),
                tls.ca_file.as_mut(),
                tls.cert_file.as_mut(),
                tls.key_file.as_mut(),
                secret,
                ca,
                cert,
                key,
            ];
            for file in files.into_iter().flatten() {
                if file.is_relative() {
                    *file = dir.join(&*file);
                }
            }
        }
    }
}

impl Config {
    /// Every `tls_config` of the config: each job's and receiver's, and
    /// their `oauth2` blocks' own.
    pub fn tls_configs_mut(&mut self) -> impl Iterator<Item = &mut TlsConfig> {
        let jobs = self
            .scrape_configs
            .iter_mut()
            .map(|j| (&mut j.tls_config, j.oauth2.as_mut()));
        let writers = self
            .remote_write
            .iter_mut()
            .map(|r| (&mut r.tls_config, r.oauth2.as_mut()));
        jobs.chain(writers)
            .flat_map(|(tls, oauth2)| std::iter::once(tls).chain(oauth2.map(|o| &mut o.tls_config)))
    }
}

/// `global:`; what a job leaves unset comes from here.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "default_scrape_interval")]
    pub scrape_interval: Duration,
    /// Zero when the file leaves it out: resolved at load to 10s clamped to
    /// `scrape_interval`, as Prometheus does (only a written one is checked).
    #[serde(default)]
    pub scrape_timeout: Duration,
    /// Environment variables in the values (`${POD_NAME}`) are expanded at
    /// load, as Prometheus 3 does, so each replica labels its own series.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Whether a value of `external_labels` names an environment variable
    /// (set at load): the sign that each replica's relay labels its series
    /// with its own identity.
    #[serde(skip)]
    pub external_labels_from_env: bool,
    /// The formats asked of targets, in order; unset, the job's default
    /// (protobuf first with `scrape_native_histograms`), as Prometheus 3.
    #[serde(default)]
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Whether jobs ask for protobuf first (native histograms); default false.
    #[serde(default)]
    pub scrape_native_histograms: Option<bool>,
    /// With native histograms, also keep a histogram's classic buckets
    /// series (Prometheus 3's `always_scrape_classic_histograms`); default false.
    #[serde(default)]
    pub always_scrape_classic_histograms: Option<bool>,
    /// Which metric and label names are valid; default `utf8` (Prometheus 3).
    #[serde(default)]
    pub metric_name_validation_scheme: Option<NameValidation>,
    /// How targets are asked to escape names; default from the validation
    /// scheme (`allow-utf-8`, or `underscores` with `legacy`).
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<NameEscaping>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: default_scrape_interval(),
            scrape_timeout: default_scrape_timeout(),
            external_labels: BTreeMap::new(),
            external_labels_from_env: false,
            scrape_protocols: None,
            scrape_native_histograms: None,
            always_scrape_classic_histograms: None,
            metric_name_validation_scheme: None,
            metric_name_escaping_scheme: None,
        }
    }
}

fn default_scrape_interval() -> Duration {
    Duration::from_secs(60)
}
/// Prometheus's `DefaultGlobalConfig.ScrapeTimeout`.
pub(crate) fn default_scrape_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One `scrape_configs` entry. `scrape_interval` and `scrape_timeout` are
/// always set after loading (from `global` when the job leaves them out).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub scrape_interval: Option<Duration>,
    #[serde(default)]
    pub scrape_timeout: Option<Duration>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// 0 means no limit.
    #[serde(default)]
    pub body_size_limit: ByteSize,
    /// 0 means no limit (likewise for the label limits).
    #[serde(default)]
    pub sample_limit: usize,
    #[serde(default)]
    pub label_limit: usize,
    #[serde(default)]
    pub label_name_length_limit: usize,
    #[serde(default)]
    pub label_value_length_limit: usize,
    /// vmagent's per-target cap on series: past it, samples of new series
    /// are dropped and counted while known series keep flowing (instead of
    /// `sample_limit` failing the whole scrape); 0 means no limit.
    #[serde(default)]
    pub series_limit: usize,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// `oauth2` client credentials: a token fetched from `token_url`, cached
    /// until it expires, sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub oauth2: Option<OAuth2>,
    /// The HTTP proxy requests go through (Prometheus's `proxy_url`).
    #[serde(default, serialize_with = "serialize_redacted_opt_url")]
    pub proxy_url: Option<String>,
    /// Hosts, domains and CIDRs reached directly, comma-separated.
    #[serde(default)]
    pub no_proxy: Option<String>,
    /// Take the proxy from `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`.
    #[serde(default)]
    pub proxy_from_environment: bool,
    /// Headers sent to the proxy (values shown as `<secret>`).
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    /// Follow 3xx answers (up to 10 requests, as Go's client), the default
    /// of Prometheus's `http_config`: FastAPI answers `/metrics` with a 307.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Offer HTTP/2 over TLS (Prometheus's default for scrapes).
    #[serde(default = "yes")]
    pub enable_http2: bool,
    /// The formats asked of the target, in order (always set after loading:
    /// from `global`, else Prometheus 3's default order).
    #[serde(default)]
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// The format of a body whose Content-Type is missing or unknown;
    /// without it such a scrape fails, as in Prometheus 3.
    #[serde(default)]
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    /// Ask for protobuf first (set after loading, from `global`).
    #[serde(default)]
    pub scrape_native_histograms: Option<bool>,
    /// Keep classic buckets beside native ones (set after loading, from `global`).
    #[serde(default)]
    pub always_scrape_classic_histograms: Option<bool>,
    /// Most buckets a native histogram may keep: past it the resolution is
    /// lowered, and below schema -4 the scrape fails, as Prometheus; 0: no limit.
    #[serde(default)]
    pub native_histogram_bucket_limit: u32,
    /// The growth factor native histogram buckets must at least have: the
    /// schema is lowered to the first one this coarse (Prometheus's
    /// `pickSchema`); 0: no minimum.
    #[serde(default)]
    pub native_histogram_min_bucket_factor: f64,
    /// Which names are valid after relabeling (set after loading).
    #[serde(default)]
    pub metric_name_validation_scheme: Option<NameValidation>,
    /// The escaping asked of the target (set after loading).
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<NameEscaping>,
}

impl ScrapeConfig {
    /// The job's scrape protocols (resolved at load).
    pub fn protocols(&self) -> &[ScrapeProtocol] {
        self.scrape_protocols
            .as_deref()
            .unwrap_or(&ScrapeProtocol::DEFAULT)
    }

    /// The job's name validation scheme (resolved at load).
    pub fn validation(&self) -> NameValidation {
        self.metric_name_validation_scheme.unwrap_or_default()
    }

    /// The job's name escaping scheme (resolved at load).
    pub fn escaping(&self) -> NameEscaping {
        self.metric_name_escaping_scheme.unwrap_or_default()
    }

    /// The job's scrape interval (resolved from `global` at load).
    pub fn interval(&self) -> std::time::Duration {
        self.scrape_interval.unwrap_or_default().as_std()
    }

    /// The job's scrape timeout (resolved from `global` at load).
    pub fn timeout(&self) -> std::time::Duration {
        self.scrape_timeout.unwrap_or_default().as_std()
    }
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}
fn yes() -> bool {
    true
}

/// `http` (the default) or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One exposition format a scrape may ask for, by Prometheus's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ScrapeProtocol {
    PrometheusProto,
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText1_0_0,
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText0_0_1,
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1_0_0,
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0_0_4,
}

impl ScrapeProtocol {
    /// Prometheus 3's `DefaultScrapeProtocols`.
    pub const DEFAULT: [ScrapeProtocol; 4] = [
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// Prometheus 3's `DefaultProtoFirstScrapeProtocols` (native histograms).
    pub const PROTO_FIRST: [ScrapeProtocol; 5] = [
        ScrapeProtocol::PrometheusProto,
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// The name Prometheus's config uses.
    pub fn name(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => "PrometheusProto",
            ScrapeProtocol::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "PrometheusText1.0.0",
            ScrapeProtocol::PrometheusText0_0_4 => "PrometheusText0.0.4",
        }
    }

    /// The media type with parameters, as in Prometheus's `ScrapeProtocolsHeaders`.
    pub fn header(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
            ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
        }
    }

    /// Whether the format can carry quoted UTF-8 names, so the Accept
    /// header says which escaping is wanted (only the 1.0.0 text formats).
    pub fn takes_escaping(self) -> bool {
        matches!(
            self,
            ScrapeProtocol::OpenMetricsText1_0_0 | ScrapeProtocol::PrometheusText1_0_0
        )
    }
}

/// `metric_name_validation_scheme`: which names Prometheus stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameValidation {
    /// Any UTF-8 name (Prometheus 3's default).
    #[default]
    Utf8,
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` names only (Prometheus 2.x).
    Legacy,
}

/// `metric_name_escaping_scheme`: how names outside the legacy charset
/// are written for a reader that asked so (prometheus/common's `EscapingScheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum NameEscaping {
    /// Quoted UTF-8 names, unchanged.
    #[default]
    #[serde(rename = "allow-utf-8")]
    AllowUtf8,
    /// Every invalid character becomes `_`.
    #[serde(rename = "underscores")]
    Underscores,
    /// `.` becomes `_dot_`, `_` becomes `__`, others `__`.
    #[serde(rename = "dots")]
    Dots,
    /// `U__` then `_<hex code point>_` for each invalid character.
    #[serde(rename = "values")]
    Values,
}

impl NameEscaping {
    /// The name used in config and in the `escaping=` parameter.
    pub fn name(self) -> &'static str {
        match self {
            NameEscaping::AllowUtf8 => "allow-utf-8",
            NameEscaping::Underscores => "underscores",
            NameEscaping::Dots => "dots",
            NameEscaping::Values => "values",
        }
    }

    /// The scheme an `escaping=` parameter names (None when unknown).
    pub fn from_name(name: &str) -> Option<NameEscaping> {
        [
            NameEscaping::AllowUtf8,
            NameEscaping::Underscores,
            NameEscaping::Dots,
            NameEscaping::Values,
        ]
        .into_iter()
        .find(|e| e.name() == name)
    }
}

/// A group of targets sharing labels.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A string that must not show up in logs or `Debug` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

/// Only a string: any other value is refused without showing it (serde's
/// own message would print a number given as a password).
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
        }
        // A non-string fails in the visitor's default methods, whose
        // message names the value: replace it with one that does not.
        d.deserialize_string(Text).map_err(|_| {
            serde::de::Error::custom(
                "expected a string (put the secret in quotes; its value is not shown)",
            )
        })
    }
}

/// Shown as Prometheus shows a secret: `<secret>`, never its value.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<secret>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// `authorization:` (an `Authorization: <type> <credentials>` header).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<Secret>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn bearer() -> String {
    "Bearer".to_owned()
}

/// `basic_auth:`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `tls_config:` towards a target or receiver.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS10` … `TLS13`, as in Prometheus (relay speaks TLS 1.2 and 1.3).
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
}

/// Prometheus's `ProxyConfig`, as the fields of a job, a `remote_write`
/// entry or an `oauth2` block hold it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyConfig {
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: bool,
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
}

/// `oauth2:` (the client credentials grant), as Prometheus's `OAuth2`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(serialize_with = "serialize_redacted_url")]
    pub token_url: String,
    #[serde(default)]
    pub endpoint_params: BTreeMap<String, String>,
    /// TLS towards the token endpoint.
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default, serialize_with = "serialize_redacted_opt_url")]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub no_proxy: Option<String>,
    #[serde(default)]
    pub proxy_from_environment: bool,
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
}

/// The proxy fields of a struct that has Prometheus's inline `ProxyConfig`.
macro_rules! proxy_of {
    ($($t:ty),*) => {$(
        impl $t {
            /// Its proxy settings, gathered.
            pub fn proxy(&self) -> ProxyConfig {
                ProxyConfig {
                    proxy_url: self.proxy_url.clone(),
                    no_proxy: self.no_proxy.clone(),
                    proxy_from_environment: self.proxy_from_environment,
                    proxy_connect_header: self.proxy_connect_header.clone(),
                }
            }
        }
    )*};
}
proxy_of!(ScrapeConfig, RemoteWriteConfig, OAuth2);

fn serialize_redacted_opt_url<S: serde::Serializer>(
    url: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&redact_url(url)),
        None => s.serialize_none(),
    }
}

/// One `remote_write` entry (validated now; the sender comes later).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Shown as `<secret>`: a header may carry a token.
    #[serde(default, serialize_with = "serialize_secret_values")]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: Duration,
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub queue_config: QueueConfig,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Sign each request with AWS SigV4 (Amazon Managed Prometheus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<SigV4Config>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// `oauth2` client credentials: a token fetched from `token_url`, cached
    /// until it expires, sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub oauth2: Option<OAuth2>,
    /// The HTTP proxy requests go through (Prometheus's `proxy_url`).
    #[serde(default, serialize_with = "serialize_redacted_opt_url")]
    pub proxy_url: Option<String>,
    /// Hosts, domains and CIDRs reached directly, comma-separated.
    #[serde(default)]
    pub no_proxy: Option<String>,
    /// Take the proxy from `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`.
    #[serde(default)]
    pub proxy_from_environment: bool,
    /// Headers sent to the proxy (values shown as `<secret>`).
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    /// Follow 3xx answers (up to 10 requests, as Go's client), the default
    /// of Prometheus's `http_config`.
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Offer HTTP/2 over TLS; false by default for remote write, as in
    /// Prometheus 3 (one connection per shard spreads the load).
    #[serde(default)]
    pub enable_http2: bool,
    /// Send exemplars (`TimeSeries.exemplars`), as Prometheus's option.
    #[serde(default)]
    pub send_exemplars: bool,
    /// Send native histograms (`TimeSeries.histograms`); without it they
    /// are left out, as Prometheus leaves them out.
    #[serde(default)]
    pub send_native_histograms: bool,
    #[serde(default)]
    pub metadata_config: MetadataConfig,
    /// Which remote-write protocol the entry speaks, by Prometheus's name
    /// of its message: 1.0 (default) or 2.0, falling back to 1.0 for a
    /// receiver that cannot read 2.0.
    #[serde(default)]
    pub protobuf_message: ProtobufMessage,
}

/// `sigv4:` of a `remote_write` entry, Prometheus's fields; what is left
/// empty comes from the environment and the shared AWS files, as the AWS
/// SDKs find it (see `crate::sigv4`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigV4Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default)]
    pub use_fips_sts_endpoint: bool,
    /// The signing name; Amazon Managed Prometheus's `aps` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// `metadata_config:`: family metadata (type, help, unit) sent in requests
/// of its own every `send_interval`, with Prometheus's defaults.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: bool,
    pub send_interval: Duration,
    pub max_samples_per_send: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            send: true,
            send_interval: Duration::from_secs(60),
            max_samples_per_send: 2_000,
        }
    }
}

/// `remote_write[].protobuf_message`: the message (and so the protocol
/// version) sent, with Prometheus's names for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum ProtobufMessage {
    /// Remote write 1.0.
    #[default]
    #[serde(rename = "prometheus.WriteRequest")]
    V1,
    /// Remote write 2.0 (spec 2.0-rc.4).
    #[serde(rename = "io.prometheus.write.v2.Request")]
    V2,
}

impl ProtobufMessage {
    /// The name as in the config (and Prometheus's docs).
    pub fn as_str(self) -> &'static str {
        match self {
            ProtobufMessage::V1 => "prometheus.WriteRequest",
            ProtobufMessage::V2 => "io.prometheus.write.v2.Request",
        }
    }
}

impl RemoteWriteConfig {
    /// The URL with its password (if any) replaced by `xxxxx`, as
    /// Prometheus shows it: for logs and the `url` label.
    pub fn url_redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// The `remote_name` label of an entry: its `name`, or as Prometheus
    /// does without one, a short hash (here of the URL, so it survives
    /// reordering). The URL is hashed with its password redacted, as
    /// Prometheus hashes a config with its secrets redacted: the name is
    /// shown in `/metrics` and names the queue's checkpoint file.
    pub fn remote_name(&self) -> String {
        match &self.name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => short_hash(&self.url_redacted()),
        }
    }
}

fn serialize_redacted_url<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

fn serialize_secret_values<S: serde::Serializer>(
    map: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = s.serialize_map(Some(map.len()))?;
    for name in map.keys() {
        out.serialize_entry(name, "<secret>")?;
    }
    out.end()
}

/// The short hash a `remote_write` entry without a name is named by.
pub fn short_hash(text: &str) -> String {
    format!("{:x}", md5::compute(text.as_bytes()))[..6].to_owned()
}

/// A URL (or a target) with the password of its user info replaced by
/// `xxxxx`, as Prometheus shows one: for every message, label and name
/// derived from it. A text that is not a URL with an authority (`u:p@h:1`,
/// `http://u:p@[bad`) is redacted by its text, at the last `@` before the
/// host, so a password is never shown because the URL is invalid.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        // The parser found the user info (or that there is none).
        Ok(mut parsed) if parsed.has_authority() => {
            if parsed.password().is_none() {
                url.to_owned()
            } else if parsed.set_password(Some("xxxxx")).is_ok() {
                parsed.to_string()
            } else {
                redact_text(url)
            }
        }
        _ => redact_text(url),
    }
}

/// The user info's password of `text`, found without a URL parser: after
/// an optional `scheme://`, the user info ends at the last `@` before the
/// first `/`, `?` or `#` that follows an `@`; what follows its first `:` is
/// the password. A text with no such `@` is returned as it is.
fn redact_text(text: &str) -> String {
    let start = text
        .find("://")
        .filter(|&i| {
            let scheme = &text[..i];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
        .map_or(0, |i| i + 3);
    let rest = &text[start..];
    let Some(first_at) = rest.find('@') else {
        return text.to_owned();
    };
    let end = rest[first_at..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |i| first_at + i);
    let Some(at) = rest[..end].rfind('@') else {
        return text.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}xxxxx{}", &text[..start], &rest[..=colon], &rest[at..]),
        None => text.to_owned(),
    }
}

fn default_remote_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `queue_config:`, with Prometheus 2.x's `DefaultQueueConfig`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub capacity: usize,
    pub max_shards: usize,
    pub min_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: true,
        }
    }
}

/// `relay:`: settings that have no Prometheus equivalent.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySettings {
    /// Where `/metrics`, `/-/healthy` and `/-/ready` are served.
    pub listen_address: String,
    /// The remote-write WAL's directory.
    pub wal_dir: PathBuf,
    /// The WAL's size cap; what is dropped past it is counted.
    pub wal_max_size: ByteSize,
    /// How long SIGTERM may spend flushing (under Kubernetes' 30 s grace).
    pub shutdown_timeout: Duration,
    /// Where relay's own `relay_*`, `process_*` and remote-write metrics are
    /// served, so a central scrape of `/metrics` gets only what it wants.
    pub self_metrics: SelfMetrics,
}

/// `relay.self_metrics`: where relay's own metrics are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfMetrics {
    /// In `/metrics`, after the targets' series (as before this setting).
    #[default]
    WithApp,
    /// On `/relay/metrics` only: `/metrics` has the targets' series alone.
    Separate,
    /// Nowhere.
    Off,
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            listen_address: "0.0.0.0:9090".to_owned(),
            wal_dir: PathBuf::from("data/wal"),
            wal_max_size: ByteSize(1 << 30),
            shutdown_timeout: Duration::from_secs(25),
            self_metrics: SelfMetrics::WithApp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_in_urls_and_in_what_does_not_parse() {
        for (text, shown) in [
            ("http://u:p@h:1/w", "http://u:xxxxx@h:1/w"),
            ("ftp://u:S3cret@h", "ftp://u:xxxxx@h/"),
            ("foo://u:p@h/x", "foo://u:xxxxx@h/x"),
            ("http:u:p@h", "http://u:xxxxx@h/"),
            ("u:p@h:1", "u:xxxxx@h:1"),
            (
                "alice:S3cret@127.0.0.1:notaport",
                "alice:xxxxx@127.0.0.1:notaport",
            ),
            ("http://u:p@[bad", "http://u:xxxxx@[bad"),
            ("http://u:pa/ss@h:1", "http://u:xxxxx@h:1"),
            ("http://u:p#x@h:99999", "http://u:xxxxx@h:99999"),
            ("http://u:p@ss@h:99999/a@b", "http://u:xxxxx@h:99999/a@b"),
            ("u:p@h/x://y", "u:xxxxx@h/x://y"),
            ("foo:u:p@h", "foo:xxxxx@h"),
            // Nothing to redact: kept as written.
            ("http://h:1/w", "http://h:1/w"),
            ("http://u@h:1/w", "http://u@h:1/w"),
            ("http://h:1/a:b@c", "http://h:1/a:b@c"),
            ("not a url", "not a url"),
            ("h:1", "h:1"),
            ("", ""),
        ] {
            assert_eq!(redact_url(text), shown, "{text}");
        }
    }
}
