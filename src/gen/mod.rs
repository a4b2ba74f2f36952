//! `relay gen`: the Kubernetes manifests that run relay as a native sidecar
//! next to an app, built from typed k8s-openapi structs and printed as YAML.
//!
//! What it prints matches what `relay run` does with the config it embeds:
//! the listen port, the WAL directory and the probe paths come from one place
//! (this module), and `tests/gen.rs` checks the round trip.

mod common;
mod fluentbit;
pub mod inject;
mod monitor;
pub mod monitoring;
mod network;
mod pod;
mod relay_config;
mod web;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::config::{ConfigError, Duration};

pub use monitor::PodMonitor;
pub use web::{WEB_CONFIG_KEY, WEB_CONFIG_PATH, WEB_TLS_DIR};

/// The agent image used when `--agent-image` is not given: a placeholder for your app.
pub const DEFAULT_AGENT_IMAGE: &str = "registry.example.com/agent:1.0";
/// The relay image used when `--relay-image` is not given: what `scripts/build-image` builds.
pub const DEFAULT_RELAY_IMAGE: &str = "localhost/relay:dev";
/// The Fluent Bit image used when `--fluent-bit-image` is not given.
pub const DEFAULT_FLUENT_BIT_IMAGE: &str = "cr.fluentbit.io/fluent/fluent-bit:3.2";
/// The relay config file inside the container: the ConfigMap's key under its mount.
pub const CONFIG_PATH: &str = "/etc/relay/relay.yml";
/// Where the relay ConfigMap is mounted (a directory, so edits reach the file).
pub const CONFIG_DIR: &str = "/etc/relay";
/// The ConfigMap key holding the relay config.
pub const CONFIG_KEY: &str = "relay.yml";
/// Where the WAL emptyDir is mounted unless the config names an absolute `relay.wal_dir`.
pub const DEFAULT_WAL_DIR: &str = "/var/lib/relay/wal";
/// The name of relay's container port: probes and the PodMonitor refer to it.
pub const RELAY_PORT_NAME: &str = "relay-metrics";
/// The directory the agent writes logs to and Fluent Bit tails.
pub const AGENT_LOG_DIR: &str = "/var/log/agent";
/// Where relay's container mounts the remote-write credentials Secret.
pub const REMOTE_WRITE_SECRET_DIR: &str = "/etc/relay-remote-write";
/// Fluent Bit's HTTP port (health and metrics, on the Pod's loopback only),
/// counted among the Pod's ports.
pub const FLUENT_BIT_PORT: u16 = 2020;
/// The numeric non-root user (and group) relay's image runs as; gen sets it
/// on relay's and Fluent Bit's containers only, never on the Pod (a Pod-level
/// uid would override the app image's own user).
pub const RUN_AS_USER: i64 = 65532;

/// `relay gen` flags as typed: strings, so a bad value exits 1 naming the flag.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// What else to print than the sidecar's manifests.
    #[command(subcommand)]
    pub what: Option<What>,
    /// Name of the Pod or Deployment, its label, and its ConfigMaps' prefix.
    #[arg(long, default_value = "agent")]
    pub name: String,
    /// Namespace of every object (default: none, kubectl's current namespace).
    #[arg(long)]
    pub namespace: Option<String>,
    /// `pod` or `deployment`.
    #[arg(long, default_value = "pod")]
    pub kind: String,
    /// Replicas of the Deployment (with --kind deployment).
    #[arg(long, allow_negative_numbers = true)]
    pub replicas: Option<String>,
    /// The app's image.
    #[arg(long, default_value = DEFAULT_AGENT_IMAGE)]
    pub agent_image: String,
    /// The app's serving port (container port `http`).
    #[arg(long, default_value = "8000")]
    pub agent_port: String,
    /// The app's metrics port (container port `metrics`), scraped on localhost [default: 8001, or with --config the port of its one localhost target; a flag that names none of the config's localhost targets is refused].
    #[arg(long)]
    pub metrics_port: Option<String>,
    /// How long the app may take to shut down (terminationGracePeriodSeconds adds relay's shutdown_timeout).
    #[arg(long, default_value = "30s")]
    pub app_shutdown_timeout: String,
    /// relay's own settings, shared with `relay inject`.
    #[command(flatten)]
    pub sidecar: SidecarArgs,
    /// Mount the Pod's service account token (automountServiceAccountToken: true); off by default, as neither relay nor gen's sidecars call the Kubernetes API (an app that does needs this flag).
    #[arg(long)]
    pub automount_service_account_token: bool,
    /// The Pod's service account (serviceAccountName): on EKS, one annotated with `eks.amazonaws.com/role-arn` gives relay's `sigv4` its credentials by IRSA.
    #[arg(long)]
    pub service_account_name: Option<String>,
    /// Also emit a NetworkPolicy: the app's serving port open, relay's port only to the scraper (--scraper-namespace, --scraper-pod-selector), every other port closed to other Pods.
    #[arg(long)]
    pub network_policy: bool,
    /// The namespace of the Prometheus that scrapes relay (with --network-policy).
    #[arg(long)]
    pub scraper_namespace: Option<String>,
    /// Labels of the Prometheus Pods that scrape relay, `key=value[,key=value]` (with --network-policy; without --scraper-namespace, Pods of the Pod's own namespace).
    #[arg(long)]
    pub scraper_pod_selector: Option<String>,
    /// The app container's securityContext: `restricted` (what the restricted Pod Security Standard requires: runAsNonRoot, allowPrivilegeEscalation false, capabilities drop ALL, seccomp RuntimeDefault; the image's own user and a writable root filesystem are kept) or `none` (gen sets nothing on the app, nor on the Pod).
    #[arg(long, default_value = "restricted")]
    pub app_security_context: String,
    /// Run the app's container as this numeric uid (runAsUser; not 0), e.g. when its image names its user by name, which runAsNonRoot cannot check.
    #[arg(long, allow_negative_numbers = true)]
    pub app_run_as_user: Option<String>,
    /// Run the app's container with this numeric primary gid (runAsGroup).
    #[arg(long, allow_negative_numbers = true)]
    pub app_run_as_group: Option<String>,
    /// Mount the app container's root filesystem read-only (readOnlyRootFilesystem: true); the app then needs volumes for what it writes (e.g. /tmp, prometheus_client's PROMETHEUS_MULTIPROC_DIR).
    #[arg(long)]
    pub app_read_only_root: bool,
    /// Add a logging sidecar: `fluent-bit`.
    #[arg(long)]
    pub log_sidecar: Option<String>,
    /// Fluent Bit's image (with --log-sidecar fluent-bit).
    #[arg(long, default_value = DEFAULT_FLUENT_BIT_IMAGE)]
    pub fluent_bit_image: String,
    /// Also emit a Prometheus Operator PodMonitor for relay's port.
    #[arg(long)]
    pub pod_monitor: bool,
    /// Write one file per object into this directory instead of YAML on stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// The flags that shape relay's sidecar (its image, port, config, remote write,
/// resources, web TLS): one definition for `relay gen` and `relay inject`.
#[derive(Debug, Clone, clap::Args)]
pub struct SidecarArgs {
    /// relay's image.
    #[arg(long, default_value = DEFAULT_RELAY_IMAGE)]
    pub relay_image: String,
    /// relay's port (`relay-metrics`) [default: 9090, or the port of --config's relay.listen_address].
    #[arg(long)]
    pub listen_port: Option<String>,
    /// Add a remote_write entry with this URL to the generated config. (The config always gets external labels pod: ${POD_NAME} and namespace: ${POD_NAMESPACE}, unless it sets those keys, so replicas' series stay apart, served or remote-written.)
    #[arg(long)]
    pub remote_write_url: Option<String>,
    /// Take the remote_write entry's basic-auth password from this Secret (key `password`), mounted read-only into relay alone; needs --remote-write-username. A password in --remote-write-url is refused: it would land in the ConfigMap, which the `view` role reads.
    #[arg(long)]
    pub remote_write_basic_auth_secret: Option<String>,
    /// The basic-auth username of the remote_write entry (with --remote-write-basic-auth-secret).
    #[arg(long)]
    pub remote_write_username: Option<String>,
    /// Take the remote_write entry's bearer token from this Secret (key `token`), mounted read-only into relay alone.
    #[arg(long)]
    pub remote_write_bearer_token_secret: Option<String>,
    /// The remote-write protocol of the --remote-write-url entry: 1.0, or 2.0 (`protobuf_message: io.prometheus.write.v2.Request`; relay falls back to 1.0 for a receiver that cannot read it).
    #[arg(long, value_parser = ["1.0", "2.0"])]
    pub remote_write_protocol: Option<String>,
    /// Add prometheus.io/scrape, port and path annotations for a Prometheus that discovers Pods by annotation: `auto` (on without remote write, off with it, or that Prometheus would ingest everything twice), `true` or `false`.
    #[arg(long, default_value = "auto")]
    pub scrape_annotations: String,
    /// Embed this relay config (validated first) instead of config/relay.yml.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// relay's CPU request.
    #[arg(long, default_value = "25m")]
    pub relay_cpu_request: String,
    /// relay's CPU limit.
    #[arg(long, default_value = "500m")]
    pub relay_cpu_limit: String,
    /// relay's memory request (about 30 MiB RSS at 10k series, measured).
    #[arg(long, default_value = "64Mi")]
    pub relay_memory_request: String,
    /// relay's memory limit (about 170 MiB peak at 100k series with remote write, measured).
    #[arg(long, default_value = "256Mi")]
    pub relay_memory_limit: String,
    /// Serve relay's port over TLS with this kubernetes.io/tls Secret (e.g. cert-manager's), mounted at /etc/relay-tls; probes use HTTPS.
    #[arg(long)]
    pub web_tls_secret: Option<String>,
    /// Embed this web config (TLS, basic_auth_users) as /etc/relay/web.yml instead of the generated one.
    #[arg(long)]
    pub web_config: Option<PathBuf>,
}

/// `relay gen`'s subcommands (without one, it prints the sidecar's manifests).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum What {
    /// Print relay's alerts (a PrometheusRule) and Grafana dashboard (a ConfigMap); --output writes rules.yml and dashboard.json too.
    #[command(
        after_help = "Examples:\n  relay gen monitoring | kubectl apply -f -\n  relay gen monitoring --output monitoring/ && promtool check rules monitoring/rules.yml"
    )]
    Monitoring(monitoring::MonitoringArgs),
}

/// Pod or Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Deployment,
}

/// Whether the Pod carries prometheus.io/* annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeAnnotations {
    /// On without remote write, off with it: one path per sample by default.
    Auto,
    On,
    Off,
}

/// What gen puts in the app container's securityContext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppSecurity {
    /// Nothing: the app's settings are the user's to write.
    None,
    /// The restricted Pod Security Standard's required fields, plus what the flags add.
    Restricted {
        run_as_user: Option<i64>,
        run_as_group: Option<i64>,
        read_only_root: bool,
    },
}

/// Where the generated remote_write entry's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteWriteAuth {
    /// `basic_auth` with `password_file` from the Secret's key `password`.
    Basic { secret: String, username: String },
    /// `authorization` (Bearer) with `credentials_file` from the Secret's key `token`.
    Bearer { secret: String },
}

impl RemoteWriteAuth {
    /// The Secret and the one key of it relay reads.
    pub fn secret(&self) -> (&str, &str) {
        match self {
            RemoteWriteAuth::Basic { secret, .. } => (secret, "password"),
            RemoteWriteAuth::Bearer { secret } => (secret, "token"),
        }
    }

    /// The file relay reads the credential from.
    pub fn file(&self) -> String {
        format!("{REMOTE_WRITE_SECRET_DIR}/{}", self.secret().1)
    }
}

/// Who may reach relay's port under --network-policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scraper {
    pub namespace: Option<String>,
    pub pod_labels: Option<BTreeMap<String, String>>,
}

/// Validated `relay gen` options: every field is what the manifests will say.
#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    pub namespace: Option<String>,
    pub kind: Kind,
    pub replicas: i32,
    pub agent_image: String,
    pub agent_port: u16,
    /// None: 8001, or the config's one localhost target.
    pub metrics_port: Option<u16>,
    /// The app's metrics path for the default config's job (None: its `/metrics`).
    pub metrics_path: Option<String>,
    pub app_shutdown_timeout: Duration,
    pub relay_image: String,
    /// None: the config's port, or 9090.
    pub listen_port: Option<u16>,
    pub remote_write_url: Option<String>,
    pub remote_write_auth: Option<RemoteWriteAuth>,
    /// `protobuf_message` of the --remote-write-url entry.
    pub remote_write_protocol: crate::config::ProtobufMessage,
    pub automount_token: bool,
    /// serviceAccountName (None: the namespace's default).
    pub service_account_name: Option<String>,
    /// Some with --network-policy: the scraper (None: nobody) admitted to relay's port.
    pub network_policy: Option<Option<Scraper>>,
    pub scrape_annotations: ScrapeAnnotations,
    pub app_security: AppSecurity,
    pub config: Option<PathBuf>,
    pub fluent_bit: bool,
    pub fluent_bit_image: String,
    pub pod_monitor: bool,
    pub relay_cpu_request: String,
    pub relay_cpu_limit: String,
    pub relay_memory_request: String,
    pub relay_memory_limit: String,
    pub web_tls_secret: Option<String>,
    pub web_config: Option<PathBuf>,
}

/// Why `relay gen` refused: always names the flag or the config field.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    #[error("--config {}: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: crate::plan::PlanError,
    },
    #[error("--config {}: {message}", path.display())]
    Conflict { path: PathBuf, message: String },
    #[error("--web-config {}: {message}", path.display())]
    WebConfig { path: PathBuf, message: String },
    #[error("the generated config is invalid (a bug): {0}")]
    Generated(ConfigError),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the output")]
    Stdout(#[from] std::io::Error),
    #[error("cannot serialize {what}: {message}")]
    Serialize { what: String, message: String },
}

fn flag(flag: &'static str, message: impl Into<String>) -> GenError {
    GenError::Flag {
        flag,
        message: message.into(),
    }
}

static DNS_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("static regex"));
/// An image reference as the distribution/reference grammar spells it (no IPv6 hosts).
static IMAGE_REF: LazyLock<Regex> = LazyLock::new(|| {
    let domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    let domain = format!(r"{domain_component}(?:\.{domain_component})*(?::[0-9]+)?");
    let path_component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let tag = r"[\w][\w.-]{0,127}";
    let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
    Regex::new(&format!(
        r"^(?:{domain}/)?{path_component}(?:/{path_component})*(?::{tag})?(?:@{digest})?$"
    ))
    .expect("static regex")
});
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
        .expect("static regex")
});

fn dns_label(name: &'static str, value: &str, max: usize) -> Result<String, GenError> {
    if value.len() > max || !DNS_LABEL.is_match(value) {
        return Err(flag(
            name,
            format!(
                "{value:?} is not a DNS-1123 label (lowercase letters, digits and '-', \
                 starting and ending with a letter or digit, at most {max} characters)"
            ),
        ));
    }
    Ok(value.to_owned())
}

fn port(name: &'static str, value: &str) -> Result<u16, GenError> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(flag(
            name,
            format!("{value:?} is not a port (an integer from 1 to 65535)"),
        )),
    }
}

/// A numeric uid or gid for the app's container; 0 is refused (runAsNonRoot and the standard forbid root).
fn id(name: &'static str, value: &str) -> Result<i64, GenError> {
    match value.parse::<u32>() {
        Ok(0) => Err(flag(
            name,
            "0 is root: the restricted standard (and runAsNonRoot) need a uid that is not 0",
        )),
        Ok(n) if n < i32::MAX as u32 => Ok(i64::from(n)),
        _ => Err(flag(
            name,
            format!("{value:?} is not a numeric id (1 to 2147483646)"),
        )),
    }
}

fn app_security(args: &Args) -> Result<AppSecurity, GenError> {
    let run_as_user = match &args.app_run_as_user {
        Some(v) => Some(id("--app-run-as-user", v)?),
        None => None,
    };
    let run_as_group = match &args.app_run_as_group {
        Some(v) => Some(id("--app-run-as-group", v)?),
        None => None,
    };
    match args.app_security_context.as_str() {
        "restricted" => Ok(AppSecurity::Restricted {
            run_as_user,
            run_as_group,
            read_only_root: args.app_read_only_root,
        }),
        "none" => {
            for (given, name) in [
                (run_as_user.is_some(), "--app-run-as-user"),
                (run_as_group.is_some(), "--app-run-as-group"),
                (args.app_read_only_root, "--app-read-only-root"),
            ] {
                if given {
                    return Err(flag(
                        name,
                        "conflicts with --app-security-context none, which leaves the app's \
                         securityContext to you: drop one of the two",
                    ));
                }
            }
            Ok(AppSecurity::None)
        }
        other => Err(flag(
            "--app-security-context",
            format!("{other:?} is neither `restricted` nor `none`"),
        )),
    }
}

fn image(name: &'static str, value: &str) -> Result<String, GenError> {
    let repo = value.split('@').next().unwrap_or(value);
    if value.len() > 255 + 200 || repo.len() > 255 || !IMAGE_REF.is_match(value) {
        return Err(flag(
            name,
            format!(
                "{value:?} is not an image reference ([registry[:port]/]path[:tag][@digest], \
                 the path in lowercase)"
            ),
        ));
    }
    Ok(value.to_owned())
}

fn quantity(name: &'static str, value: &str) -> Result<String, GenError> {
    if !QUANTITY.is_match(value) {
        return Err(flag(
            name,
            format!("{value:?} is not a Kubernetes quantity (e.g. 25m, 0.5, 64Mi, 1Gi)"),
        ));
    }
    Ok(value.to_owned())
}

/// A quantity's value (cores or bytes) to compare a request with its limit.
fn quantity_value(q: &str) -> f64 {
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().unwrap_or(f64::NAN) * factor;
        }
    }
    q.parse::<f64>().unwrap_or(f64::NAN)
}

fn url(name: &'static str, value: &str) -> Result<String, GenError> {
    match reqwest::Url::parse(value) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            let mut shown = u.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            Err(flag(
                name,
                format!(
                    "{shown} with credentials in it (user:password@) would put them in the \
                     ConfigMap, which anyone with the `view` role reads: create a Secret \
                     (kubectl create secret generic NAME --from-literal=password=...) and pass \
                     --remote-write-basic-auth-secret NAME --remote-write-username USER, or, \
                     for a bearer token (key `token`), --remote-write-bearer-token-secret NAME"
                ),
            ))
        }
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            Ok(value.to_owned())
        }
        Ok(u) => Err(flag(
            name,
            format!(
                "{value:?} is not an http(s) URL with a host (scheme {:?})",
                u.scheme()
            ),
        )),
        Err(e) => Err(flag(name, format!("{value:?} is not a URL: {e}"))),
    }
}

/// The remote_write entry's credentials from the Secret flags, which need
/// --remote-write-url and exclude each other (as basic_auth and
/// authorization do in Prometheus).
fn remote_write_auth(args: &SidecarArgs) -> Result<Option<RemoteWriteAuth>, GenError> {
    let basic = match &args.remote_write_basic_auth_secret {
        Some(s) => Some(web::secret_name("--remote-write-basic-auth-secret", s)?),
        None => None,
    };
    let bearer = match &args.remote_write_bearer_token_secret {
        Some(s) => Some(web::secret_name("--remote-write-bearer-token-secret", s)?),
        None => None,
    };
    let auth = match (basic, bearer, &args.remote_write_username) {
        (None, None, None) => return Ok(None),
        (Some(_), Some(_), _) => {
            return Err(flag(
                "--remote-write-bearer-token-secret",
                "conflicts with --remote-write-basic-auth-secret: a remote_write entry has \
                 basic_auth or a bearer token, not both",
            ))
        }
        (Some(secret), None, Some(username)) if !username.is_empty() => RemoteWriteAuth::Basic {
            secret,
            username: username.clone(),
        },
        (Some(_), None, _) => {
            return Err(flag(
                "--remote-write-username",
                "--remote-write-basic-auth-secret needs the username (not a secret) too",
            ))
        }
        (None, Some(_), Some(_)) | (None, None, Some(_)) => {
            return Err(flag(
                "--remote-write-username",
                "goes with --remote-write-basic-auth-secret (the Secret holding the password)",
            ))
        }
        (None, Some(secret), None) => RemoteWriteAuth::Bearer { secret },
    };
    if args.remote_write_url.is_none() {
        let name = match auth {
            RemoteWriteAuth::Basic { .. } => "--remote-write-basic-auth-secret",
            RemoteWriteAuth::Bearer { .. } => "--remote-write-bearer-token-secret",
        };
        return Err(flag(
            name,
            "needs --remote-write-url (the entry it authenticates); with --config, set \
             password_file or credentials_file in the file and mount the Secret yourself",
        ));
    }
    Ok(Some(auth))
}

/// `--remote-write-protocol`, which needs the entry of `--remote-write-url`.
fn remote_write_protocol(args: &SidecarArgs) -> Result<crate::config::ProtobufMessage, GenError> {
    use crate::config::ProtobufMessage;
    let Some(protocol) = &args.remote_write_protocol else {
        return Ok(ProtobufMessage::V1);
    };
    if args.remote_write_url.is_none() {
        return Err(flag(
            "--remote-write-protocol",
            "needs --remote-write-url (the entry it sets); with --config, set \
             protobuf_message in the file",
        ));
    }
    Ok(match protocol.as_str() {
        "2.0" => ProtobufMessage::V2,
        _ => ProtobufMessage::V1,
    })
}

/// `key=value[,key=value]` as matchLabels.
fn label_selector(name: &'static str, value: &str) -> Result<BTreeMap<String, String>, GenError> {
    let mut labels = BTreeMap::new();
    for pair in value.split(',') {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                labels.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            _ => {
                return Err(flag(
                    name,
                    format!("{pair:?} is not key=value (labels as key=value[,key=value])"),
                ))
            }
        }
    }
    Ok(labels)
}

/// --network-policy and the scraper it admits to relay's port.
fn network_policy(args: &Args) -> Result<Option<Option<Scraper>>, GenError> {
    let namespace = match &args.scraper_namespace {
        Some(ns) => Some(dns_label("--scraper-namespace", ns, 63)?),
        None => None,
    };
    let pod_labels = match &args.scraper_pod_selector {
        Some(s) => Some(label_selector("--scraper-pod-selector", s)?),
        None => None,
    };
    let given = namespace.is_some() || pod_labels.is_some();
    match (args.network_policy, given) {
        (false, false) => Ok(None),
        (false, true) => Err(flag(
            if namespace.is_some() {
                "--scraper-namespace"
            } else {
                "--scraper-pod-selector"
            },
            "needs --network-policy (the policy it goes into)",
        )),
        (true, true) => Ok(Some(Some(Scraper {
            namespace,
            pod_labels,
        }))),
        // Without a scraper relay's port admits no one: refused in
        // `generate` unless the config remote-writes.
        (true, false) => Ok(Some(None)),
    }
}

impl Args {
    /// gen's defaults with these sidecar flags: how `relay inject` gets
    /// gen's checks and defaults without a second definition of either.
    pub fn with_sidecar(sidecar: SidecarArgs) -> Result<Args, GenError> {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: Args,
        }
        let mut args = <Defaults as clap::Parser>::try_parse_from(["relay-gen"])
            .map_err(|e| flag("relay gen", e.to_string()))?
            .args;
        args.sidecar = sidecar;
        Ok(args)
    }

    /// Checks every flag, naming the flag in the error, before anything is built.
    pub fn validate(&self) -> Result<Options, GenError> {
        let name = dns_label("--name", &self.name, 63)?;
        let namespace = match &self.namespace {
            Some(ns) => Some(dns_label("--namespace", ns, 63)?),
            None => None,
        };
        let kind = match self.kind.as_str() {
            "pod" => Kind::Pod,
            "deployment" => Kind::Deployment,
            other => {
                return Err(flag(
                    "--kind",
                    format!("{other:?} is neither `pod` nor `deployment`"),
                ))
            }
        };
        let replicas = match (&self.replicas, kind) {
            (None, _) => 1,
            (Some(_), Kind::Pod) => {
                return Err(flag("--replicas", "needs --kind deployment"));
            }
            (Some(r), Kind::Deployment) => match r.parse::<i32>() {
                Ok(n) if n >= 0 => n,
                _ => {
                    return Err(flag(
                        "--replicas",
                        format!("{r:?} is not a number of replicas (0 or more)"),
                    ))
                }
            },
        };
        let agent_port = port("--agent-port", &self.agent_port)?;
        let metrics_port = match &self.metrics_port {
            Some(p) => Some(port("--metrics-port", p)?),
            None => None,
        };
        let listen_port = match &self.sidecar.listen_port {
            Some(p) => Some(port("--listen-port", p)?),
            None => None,
        };
        let fluent_bit = match self.log_sidecar.as_deref() {
            None => false,
            Some("fluent-bit") => true,
            Some(other) => {
                return Err(flag(
                    "--log-sidecar",
                    format!("{other:?} is not a known logging sidecar (only `fluent-bit`)"),
                ))
            }
        };
        // The app's container is named after --name, next to the sidecars.
        if name == "relay" || (fluent_bit && name == "fluent-bit") {
            return Err(flag(
                "--name",
                format!(
                    "{name:?} is the name of a sidecar's container, and the app's container is \
                     named after --name: choose another name"
                ),
            ));
        }
        let scrape_annotations = match self.sidecar.scrape_annotations.as_str() {
            "auto" => ScrapeAnnotations::Auto,
            "true" => ScrapeAnnotations::On,
            "false" => ScrapeAnnotations::Off,
            other => {
                return Err(flag(
                    "--scrape-annotations",
                    format!("{other:?} is not `auto`, `true` or `false`"),
                ))
            }
        };
        let app_shutdown_timeout = Duration::parse(&self.app_shutdown_timeout)
            .map_err(|e| flag("--app-shutdown-timeout", e))?;
        let options = Options {
            name,
            namespace,
            kind,
            replicas,
            agent_image: image("--agent-image", &self.agent_image)?,
            agent_port,
            metrics_port,
            metrics_path: None,
            app_shutdown_timeout,
            relay_image: image("--relay-image", &self.sidecar.relay_image)?,
            listen_port,
            remote_write_url: match &self.sidecar.remote_write_url {
                Some(u) => Some(url("--remote-write-url", u)?),
                None => None,
            },
            remote_write_auth: remote_write_auth(&self.sidecar)?,
            remote_write_protocol: remote_write_protocol(&self.sidecar)?,
            automount_token: self.automount_service_account_token,
            service_account_name: match &self.service_account_name {
                Some(n) => Some(dns_label("--service-account-name", n, 253)?),
                None => None,
            },
            network_policy: network_policy(self)?,
            scrape_annotations,
            app_security: app_security(self)?,
            config: self.sidecar.config.clone(),
            fluent_bit,
            fluent_bit_image: image("--fluent-bit-image", &self.fluent_bit_image)?,
            pod_monitor: self.pod_monitor,
            relay_cpu_request: quantity("--relay-cpu-request", &self.sidecar.relay_cpu_request)?,
            relay_cpu_limit: quantity("--relay-cpu-limit", &self.sidecar.relay_cpu_limit)?,
            relay_memory_request: quantity(
                "--relay-memory-request",
                &self.sidecar.relay_memory_request,
            )?,
            relay_memory_limit: quantity("--relay-memory-limit", &self.sidecar.relay_memory_limit)?,
            web_tls_secret: match &self.sidecar.web_tls_secret {
                Some(s) => Some(web::secret_name("--web-tls-secret", s)?),
                None => None,
            },
            web_config: self.sidecar.web_config.clone(),
        };
        for (request, limit, name) in [
            (
                &options.relay_cpu_request,
                &options.relay_cpu_limit,
                "--relay-cpu-request",
            ),
            (
                &options.relay_memory_request,
                &options.relay_memory_limit,
                "--relay-memory-request",
            ),
        ] {
            if quantity_value(request) > quantity_value(limit) {
                return Err(flag(name, format!("{request} is above the limit {limit}")));
            }
        }
        Ok(options)
    }
}

/// Checks that no two containers of the Pod listen on one port (they share its network).
fn check_ports(options: &Options, listen_port: u16, metrics_port: u16) -> Result<(), GenError> {
    if options.agent_port == metrics_port {
        return Err(flag(
            "--metrics-port",
            format!("{metrics_port} is also --agent-port: the app needs two ports"),
        ));
    }
    for (other, other_flag) in [
        (options.agent_port, "--agent-port"),
        (metrics_port, "--metrics-port"),
    ] {
        if listen_port == other {
            return Err(flag(
                "--listen-port",
                format!(
                    "{listen_port} is also {other_flag}: relay and the app share the Pod's network"
                ),
            ));
        }
    }
    if options.fluent_bit {
        for (port, port_flag) in [
            (options.agent_port, "--agent-port"),
            (metrics_port, "--metrics-port"),
            (listen_port, "--listen-port"),
        ] {
            if port == FLUENT_BIT_PORT {
                return Err(flag(
                    port_flag,
                    format!("{port} is Fluent Bit's HTTP port (--log-sidecar fluent-bit)"),
                ));
            }
        }
    }
    Ok(())
}

/// One generated object: its kind and name (the file name with --output) and its YAML.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: &'static str,
    pub name: String,
    pub yaml: String,
}

pub(crate) fn to_yaml<T: Serialize>(what: &str, value: &T) -> Result<String, GenError> {
    serde_norway::to_string(value).map_err(|e| GenError::Serialize {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

/// Builds every object for the options: ConfigMaps first, then the workload, then the PodMonitor and the NetworkPolicy.
pub fn generate(options: &Options) -> Result<Vec<Object>, GenError> {
    let relay = relay_config::build(options)?;
    check_ports(options, relay.listen_port, relay.metrics_port)?;
    let web = web::build(options)?;
    let mut objects = vec![pod::config_map(options, &relay, web.as_ref())?];
    let fluent_bit_conf = if options.fluent_bit {
        let (object, conf) = fluentbit::config_map(options)?;
        objects.push(object);
        Some(conf)
    } else {
        None
    };
    objects.push(pod::workload(
        options,
        &relay,
        web.as_ref(),
        fluent_bit_conf.as_deref(),
    )?);
    if options.pod_monitor {
        objects.push(monitor::object(options, web.as_ref())?);
    }
    if let Some(scraper) = &options.network_policy {
        if scraper.is_none() && relay.config.remote_write.is_empty() {
            return Err(flag(
                "--network-policy",
                "without remote write only a scraper reads relay: name it with \
                 --scraper-namespace and/or --scraper-pod-selector",
            ));
        }
        objects.push(network::object(
            options,
            relay.listen_port,
            scraper.as_ref(),
        )?);
    }
    Ok(objects)
}

/// Multi-document YAML: each object after a `---` line.
pub fn render(objects: &[Object]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&o.yaml);
    }
    out
}

/// `relay gen`: validates the flags, then prints the objects or writes one file each.
pub fn run_cli(args: &Args, stdout: &mut dyn Write) -> Result<(), GenError> {
    if let Some(What::Monitoring(monitoring)) = &args.what {
        return monitoring::run_cli(monitoring, stdout);
    }
    let options = args.validate()?;
    let objects = generate(&options)?;
    match &args.output {
        None => stdout.write_all(render(&objects).as_bytes())?,
        Some(dir) => {
            write_files(dir, &objects)?;
            for o in &objects {
                writeln!(stdout, "{}", file_path(dir, o).display())?;
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

fn file_path(dir: &Path, o: &Object) -> PathBuf {
    dir.join(format!("{}-{}.yaml", o.kind.to_ascii_lowercase(), o.name))
}

fn write_files(dir: &Path, objects: &[Object]) -> Result<(), GenError> {
    std::fs::create_dir_all(dir).map_err(|source| GenError::Write {
        path: dir.to_owned(),
        source,
    })?;
    for o in objects {
        let path = file_path(dir, o);
        std::fs::write(&path, &o.yaml).map_err(|source| GenError::Write { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        for good in [
            "relay",
            "localhost/relay:dev",
            "registry.example.com:5000/team/agent:1.0",
            "cr.fluentbit.io/fluent/fluent-bit:3.2",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(IMAGE_REF.is_match(good), "{good}");
        }
        for bad in [
            "",
            "Relay:1",
            "relay:",
            "relay::1",
            "-relay",
            "relay:1 2",
            "a//b",
        ] {
            assert!(!IMAGE_REF.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn quantities_compare() {
        assert_eq!(quantity_value("25m"), 0.025);
        assert_eq!(quantity_value("64Mi"), 64.0 * 1048576.0);
        assert!(quantity_value("1Gi") > quantity_value("256Mi"));
    }
}
