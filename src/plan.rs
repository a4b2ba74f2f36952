//! What runs, resolved from a config once: each job with its compiled
//! relabel rules, its HTTP client (TLS built once for all its targets) and
//! its targets; each `remote_write` entry with its name, compiled
//! write-relabel rules and client; and for each a change key that a reload
//! compares with `==`, so an unchanged job or queue keeps running.
//!
//! `relay run`, `relay check config` and a reload all go through
//! [`resolve`], so they refuse the same configs with the same field paths
//! (`scrape_configs[0].tls_config.ca_file: …`). The config itself stays
//! pure data (see `config`).
//!
//! ```
//! let yaml = "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost:8001]\n";
//! let plan = relay::plan::from_yaml_str(yaml).expect("valid config");
//! assert_eq!(plan.jobs[0].targets[0].url, "http://localhost:8001/metrics");
//! assert!(plan.jobs[0].client.is_ok());
//! ```

use std::path::Path;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};

use crate::auth::{Credentials, TokenSource};
use crate::config::{
    self, Config, ConfigError, Loaded, NameValidation, OAuth2, Overrides, RemoteWriteConfig,
    ScrapeConfig,
};
use crate::relabel::{RelabelConfig, Rules};
use crate::targets::{self, Target, TargetError};

/// Why a config cannot run: what loading refuses, or what resolving it
/// refuses (a relabel rule, a TLS file), each with its field path.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

/// Why a client could not be built (the job's targets report `up 0` with
/// it; a receiver's queue does not start).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// A config and what runs from it.
pub struct Plan {
    pub config: Config,
    pub jobs: Vec<Arc<Job>>,
    pub writers: Vec<Arc<Writer>>,
}

/// One `scrape_configs` entry, ready to scrape.
pub struct Job {
    pub config: ScrapeConfig,
    /// `relabel_configs`, compiled.
    pub target_relabel: Rules,
    /// `metric_relabel_configs`, compiled.
    pub metric_relabel: Rules,
    /// Shared by the job's targets; an error makes each of them report
    /// `up 0` with it every interval, so the failure stays visible.
    pub client: Result<reqwest::Client, SetupError>,
    /// `authorization`, `basic_auth` or `oauth2` (one token for all targets).
    pub credentials: Credentials,
    /// The targets after relabeling.
    pub targets: Vec<Target>,
    /// Targets that relabeling made invalid (`relay run` skips them,
    /// `relay check config` refuses them).
    pub refused: Vec<TargetError>,
    pub key: JobKey,
}

/// What makes a job's scrape loops differ from another's: everything but
/// its targets' sources (`static_configs`, `relabel_configs`), whose effect
/// is in each [`Target`]. Secrets compare by value (`Debug` hides them).
#[derive(Debug, Clone, PartialEq)]
pub struct JobKey(ScrapeConfig);

/// What makes one target's scrape loop differ from another's.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetKey {
    job: JobKey,
    target: Target,
}

impl Job {
    /// The change key of `target`'s loop: a reload keeps a loop whose key
    /// is unchanged.
    pub fn target_key(&self, target: &Target) -> TargetKey {
        TargetKey {
            job: self.key.clone(),
            target: target.clone(),
        }
    }
}

/// One `remote_write` entry, ready to send.
pub struct Writer {
    pub config: RemoteWriteConfig,
    /// Its `remote_name` (queue, checkpoint file and metric label).
    pub name: String,
    /// `write_relabel_configs`, compiled.
    pub write_relabel: Rules,
    /// With the entry's headers, timeout, redirects and TLS.
    pub client: Result<reqwest::Client, SetupError>,
    /// `authorization`, `basic_auth` or `oauth2` (one token for all shards).
    pub credentials: Credentials,
    /// The entry's `sigv4` signer (its credentials cache shared by the
    /// queue's shards), or why it has none: no region or credentials where
    /// this process runs. Like a client that cannot be built, that stops the
    /// queue (`relay run` logs it) but not `relay check config` or `relay
    /// gen`, which run where the Pod's AWS settings (IRSA) are not.
    pub sigv4: Option<Result<Arc<crate::sigv4::Signer>, SetupError>>,
    pub key: WriterKey,
}

/// What makes a queue differ from another: its entry (secrets by value)
/// and the external labels it adds.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterKey {
    config: RemoteWriteConfig,
    external_labels: Vec<(String, String)>,
}

/// Loads a config file and resolves it (what `relay run`, `relay check
/// config` and a reload do).
pub fn load(path: &Path, overrides: &Overrides) -> Result<(Plan, Vec<String>), PlanError> {
    let Loaded { config, warnings } = config::load(path, overrides)?;
    Ok((resolve(&config)?, warnings))
}

/// Loads a config from a YAML string and resolves it (tests, `relay demo`).
pub fn from_yaml_str(yaml: &str) -> Result<Plan, PlanError> {
    resolve(&config::from_yaml_str(yaml)?.config)
}

/// Compiles the rules and builds the clients of a loaded config.
pub fn resolve(config: &Config) -> Result<Plan, PlanError> {
    let mut jobs = Vec::with_capacity(config.scrape_configs.len());
    for (i, job) in config.scrape_configs.iter().enumerate() {
        jobs.push(Arc::new(resolve_job(job, &format!("scrape_configs[{i}]"))?));
    }
    let external: Vec<(String, String)> = config
        .global
        .external_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut writers = Vec::with_capacity(config.remote_write.len());
    for (i, rw) in config.remote_write.iter().enumerate() {
        let path = format!("remote_write[{i}]");
        let utf8 = config.global.metric_name_validation_scheme != Some(NameValidation::Legacy);
        writers.push(Arc::new(resolve_writer(rw, &path, &external, utf8)?));
    }
    Ok(Plan {
        config: config.clone(),
        jobs,
        writers,
    })
}

fn resolve_job(job: &ScrapeConfig, path: &str) -> Result<Job, PlanError> {
    // A bad TLS file is a config error with its path, not a failing scrape.
    let tls = alpn(tls(path, &job.tls_config)?, job.enable_http2);
    let utf8 = job.validation() == NameValidation::Utf8;
    let target_relabel = compile(
        &format!("{path}.relabel_configs"),
        &job.relabel_configs,
        utf8,
    )?;
    let metric_relabel = compile(
        &format!("{path}.metric_relabel_configs"),
        &job.metric_relabel_configs,
        utf8,
    )?;
    let client = crate::http::client(tls, job.follow_redirects, &job.proxy(), |b| {
        b.default_headers(user_agent())
    })
    .map_err(|e| SetupError(format!("invalid TLS or client setup: {e}")));
    let credentials = Credentials::new(
        job.authorization.clone(),
        job.basic_auth.clone(),
        token_source(path, job.oauth2.as_ref(), job.timeout())?,
    );
    let (targets, refused) = targets::from_config(job, &target_relabel);
    let key = JobKey(ScrapeConfig {
        static_configs: Vec::new(),
        relabel_configs: Vec::new(),
        ..job.clone()
    });
    Ok(Job {
        config: job.clone(),
        target_relabel,
        metric_relabel,
        client,
        credentials,
        targets,
        refused,
        key,
    })
}

fn resolve_writer(
    rw: &RemoteWriteConfig,
    path: &str,
    external: &[(String, String)],
    utf8: bool,
) -> Result<Writer, PlanError> {
    let tls = alpn(tls(path, &rw.tls_config)?, rw.enable_http2);
    let write_relabel = compile(
        &format!("{path}.write_relabel_configs"),
        &rw.write_relabel_configs,
        utf8,
    )?;
    let client = writer_client(rw, tls).map_err(SetupError);
    let credentials = Credentials::new(
        rw.authorization.clone(),
        rw.basic_auth.clone(),
        token_source(path, rw.oauth2.as_ref(), rw.remote_timeout.as_std())?,
    );
    let sigv4 = rw.sigv4.as_ref().map(|config| {
        crate::sigv4::Signer::new(config)
            .map(Arc::new)
            .map_err(|e| SetupError(format!("{path}.sigv4: {}", e.0)))
    });
    Ok(Writer {
        config: rw.clone(),
        name: rw.remote_name(),
        write_relabel,
        client,
        credentials,
        sigv4,
        key: WriterKey {
            config: rw.clone(),
            external_labels: external.to_vec(),
        },
    })
}

/// The receiver's client: its `headers`, `remote_timeout`, redirects and
/// TLS (the protocol's own headers are the sender's).
fn writer_client(
    rw: &RemoteWriteConfig,
    tls: rustls::ClientConfig,
) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &rw.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name:?}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        headers.insert(name, value);
    }
    // After the entry's headers, as before: relay's own name wins.
    headers.extend(user_agent());
    crate::http::client(tls, rw.follow_redirects, &rw.proxy(), |b| {
        b.default_headers(headers)
            .timeout(rw.remote_timeout.as_std())
    })
    .map_err(|e| e.to_string())
}

/// The token source of an `oauth2` block: its own TLS (a bad file is a
/// config error with its path) and proxy, requests bounded by `timeout`
/// (the scrape timeout or `remote_timeout`, as the request waiting for it).
fn token_source(
    path: &str,
    oauth2: Option<&OAuth2>,
    timeout: std::time::Duration,
) -> Result<Option<TokenSource>, PlanError> {
    let Some(o) = oauth2 else {
        return Ok(None);
    };
    let path = format!("{path}.oauth2");
    // As Prometheus's token client: HTTP/1.1.
    let tls = alpn(tls(&path, &o.tls_config)?, false);
    let client = crate::http::client(tls, true, &o.proxy(), |b| {
        b.default_headers(user_agent()).timeout(timeout)
    })
    .map_err(|e| PlanError::Field {
        path: path.clone(),
        message: format!(
            "invalid client setup: {}",
            crate::http::error_message(e, "")
        ),
    })?;
    Ok(Some(TokenSource::new(o.clone(), client)))
}

fn user_agent() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(crate::http::USER_AGENT),
    );
    headers
}

/// The TLS client config, built once; a missing or unreadable CA,
/// certificate or key is refused with its field path.
fn tls(path: &str, tls: &config::TlsConfig) -> Result<rustls::ClientConfig, PlanError> {
    crate::tls::client_config(tls).map_err(|e| PlanError::Field {
        path: format!("{path}.tls_config.{}", e.field),
        message: e.message,
    })
}

/// `enable_http2` as Go's client: over TLS, offer `h2` before `http/1.1`
/// (the server chooses); without it only `http/1.1`. Plain http stays
/// HTTP/1.1 either way (Go does not speak h2c).
fn alpn(mut tls: rustls::ClientConfig, enable_http2: bool) -> rustls::ClientConfig {
    tls.alpn_protocols = if enable_http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    tls
}

/// Compiles a rule list under the validation scheme (`utf8` or legacy).
fn compile(path: &str, rules: &[RelabelConfig], utf8: bool) -> Result<Rules, PlanError> {
    Rules::compile_for(rules, utf8).map_err(|e| {
        let at = if e.field.is_empty() {
            format!("{path}[{}]", e.index)
        } else {
            format!("{path}[{}].{}", e.index, e.field)
        };
        PlanError::Field {
            path: at,
            message: e.message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        from_yaml_str(yaml).expect("valid config")
    }

    const JOB: &str = "scrape_configs:\n  - job_name: app\n    basic_auth: {username: u, password: PASSWORD}\n    static_configs:\n      - targets: [a:1, b:1]\n";

    fn target_keys(p: &Plan) -> Vec<TargetKey> {
        p.jobs
            .iter()
            .flat_map(|j| j.targets.iter().map(|t| j.target_key(t)))
            .collect()
    }

    #[test]
    fn a_target_key_changes_with_what_its_loop_uses_and_only_that() {
        let before = target_keys(&plan(JOB));
        assert_eq!(before.len(), 2);
        assert_eq!(before, target_keys(&plan(JOB)), "same config, same keys");
        // A secret changes the key though Debug output hides it.
        let other_secret = target_keys(&plan(&JOB.replace("PASSWORD", "OTHER")));
        assert_ne!(before[0], other_secret[0]);
        assert_eq!(format!("{:?}", before[0]), format!("{:?}", other_secret[0]));
        // A target added to the job leaves the others' loops alone.
        let added = target_keys(&plan(&JOB.replace("[a:1, b:1]", "[a:1, b:1, c:1]")));
        assert_eq!(added.len(), 3);
        assert_eq!(&added[..2], &before[..]);
        // A scrape setting changes every target's key.
        let limited = target_keys(&plan(
            &JOB.replace("job_name: app\n", "job_name: app\n    sample_limit: 5\n"),
        ));
        assert_ne!(limited[0], before[0]);
        assert_ne!(limited[1], before[1]);
    }

    #[test]
    fn a_writer_has_its_name_rules_client_and_key() {
        let yaml = "global:\n  external_labels: {pod: p1}\nremote_write:\n  - url: http://u:PASSWORD@127.0.0.1:1/w\n    write_relabel_configs:\n      - {action: drop, source_labels: [__name__], regex: x}\n";
        let p = plan(yaml);
        let w = &p.writers[0];
        assert_eq!(w.name, config::short_hash("http://u:xxxxx@127.0.0.1:1/w"));
        assert!(w.client.is_ok());
        let mut labels: crate::exposition::Labels = [("__name__", "x")].into_iter().collect();
        assert!(!w.write_relabel.apply(&mut labels), "the rule drops x");
        assert_eq!(p.writers[0].key, plan(yaml).writers[0].key);
        assert_ne!(
            w.key,
            plan(&yaml.replace("PASSWORD", "OTHER")).writers[0].key
        );
        assert_ne!(w.key, plan(&yaml.replace("p1", "p2")).writers[0].key);
    }

    #[test]
    fn errors_name_the_field_path() {
        for (yaml, expected) in [
            (
                "scrape_configs:\n  - job_name: a\n    tls_config: {ca_file: /nonexistent/ca.pem}\n",
                "scrape_configs[0].tls_config.ca_file: /nonexistent/ca.pem: cannot read:",
            ),
            (
                "remote_write:\n  - url: http://r:1/w\n    write_relabel_configs:\n      - {action: hashmod, target_label: a, modulus: 0}\n",
                "remote_write[0].write_relabel_configs[0].modulus:",
            ),
        ] {
            let error = from_yaml_str(yaml).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.starts_with(expected)),
                "{yaml}: {error:?}"
            );
        }
    }

    #[test]
    fn a_bad_header_leaves_the_writer_without_a_client() {
        let p = plan("remote_write:\n  - url: http://r:1/w\n    headers: {\"bad header\": x}\n");
        let error = p.writers[0].client.as_ref().err().map(ToString::to_string);
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("header \"bad header\":")),
            "{error:?}"
        );
    }
}
