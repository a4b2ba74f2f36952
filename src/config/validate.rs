//! Checks that need more than one field (Prometheus's `Validate` rules) and
//! defaults resolved from `global`: everything that needs the data alone.
//! What needs building (relabel rules, TLS clients) is `plan::resolve`'s.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::types::{Authorization, BasicAuth, Config, ScrapeConfig};
use super::ConfigError;

pub(super) fn resolve(config: &mut Config) -> Result<(), ConfigError> {
    // As Prometheus's GlobalConfig.UnmarshalYAML: a written timeout may not
    // exceed the interval; an unset (zero) one is 10s clamped to it.
    let g = &mut config.global;
    if g.scrape_timeout > g.scrape_interval {
        return Err(ConfigError::field(
            "global.scrape_timeout",
            format!(
                "{} is greater than global.scrape_interval {}",
                g.scrape_timeout, g.scrape_interval
            ),
        ));
    }
    if g.scrape_timeout.as_std().is_zero() {
        g.scrape_timeout = super::types::default_scrape_timeout().min(g.scrape_interval);
    }
    let global = config.global.clone();
    for name in global.external_labels.keys() {
        check_label_name(&format!("global.external_labels.{name}"), name)?;
    }
    let mut jobs = HashSet::new();
    for (i, job) in config.scrape_configs.iter_mut().enumerate() {
        let path = format!("scrape_configs[{i}]");
        if job.job_name.is_empty() {
            return Err(ConfigError::field(
                format!("{path}.job_name"),
                "must not be empty",
            ));
        }
        if !jobs.insert(job.job_name.clone()) {
            return Err(ConfigError::field(
                format!("{path}.job_name"),
                format!(
                    "found multiple scrape configs with job name {:?}",
                    job.job_name
                ),
            ));
        }
        resolve_job(job, &global, &path)?;
    }
    let mut queues = HashSet::new();
    for (i, rw) in config.remote_write.iter_mut().enumerate() {
        let path = format!("remote_write[{i}]");
        check_url(&format!("{path}.url"), &rw.url)?;
        // Each entry's queue and WAL checkpoint are named by it.
        let name = rw.remote_name();
        if !queues.insert(name.clone()) {
            let (field, what) = match &rw.name {
                Some(_) => ("name", format!("found multiple remote write configs named {name:?}")),
                None => ("url", format!("found multiple remote write configs for {:?} without a name; give each a distinct name", rw.url_redacted())),
            };
            return Err(ConfigError::field(format!("{path}.{field}"), what));
        }
        check_auth(&path, rw.authorization.as_ref(), rw.basic_auth.as_ref())?;
    }
    config
        .relay
        .listen_address
        .parse::<SocketAddr>()
        .map_err(|_| {
            ConfigError::field(
                "relay.listen_address",
                format!(
                    "{:?} is not an address to listen on (expected ip:port, e.g. 0.0.0.0:9090)",
                    config.relay.listen_address
                ),
            )
        })?;
    // A segment is cut at an eighth of the cap: a tiny cap would drop what
    // every scrape writes before any queue could send it.
    if config.relay.wal_max_size.0 < 1 << 20 {
        return Err(ConfigError::field(
            "relay.wal_max_size",
            format!(
                "{} bytes is below the minimum of 1MiB (default 1GiB)",
                config.relay.wal_max_size.0
            ),
        ));
    }
    if config.relay.shutdown_timeout.as_std().is_zero() {
        return Err(ConfigError::field(
            "relay.shutdown_timeout",
            "must be greater than 0 (default 25s, under Kubernetes' 30s grace period)",
        ));
    }
    Ok(())
}

fn resolve_job(
    job: &mut ScrapeConfig,
    global: &super::GlobalConfig,
    path: &str,
) -> Result<(), ConfigError> {
    let interval = job.scrape_interval.unwrap_or(global.scrape_interval);
    // As Prometheus: an unset timeout is the global one, clamped to the
    // job's interval; an explicit one may not exceed the interval.
    let timeout = match job.scrape_timeout {
        Some(t) if t > interval => {
            return Err(ConfigError::field(
                format!("{path}.scrape_timeout"),
                format!("{t} is greater than scrape_interval {interval}"),
            ))
        }
        Some(t) => t,
        None => global.scrape_timeout.min(interval),
    };
    if interval.as_std().is_zero() {
        return Err(ConfigError::field(
            format!("{path}.scrape_interval"),
            "must be greater than 0",
        ));
    }
    job.scrape_interval = Some(interval);
    job.scrape_timeout = Some(timeout);
    if !job.metrics_path.starts_with('/') {
        return Err(ConfigError::field(
            format!("{path}.metrics_path"),
            format!("{:?} must start with \"/\"", job.metrics_path),
        ));
    }
    for (g, group) in job.static_configs.iter().enumerate() {
        for (t, target) in group.targets.iter().enumerate() {
            check_target(&format!("{path}.static_configs[{g}].targets[{t}]"), target)?;
        }
        for name in group.labels.keys() {
            check_label_name(&format!("{path}.static_configs[{g}].labels.{name}"), name)?;
        }
    }
    check_auth(path, job.authorization.as_ref(), job.basic_auth.as_ref())?;
    Ok(())
}

/// A target is `host:port` (a missing port defaults by scheme, as in
/// Prometheus 2.x), never a URL, and has no user info: the scrape refuses
/// `user:password@host` (src/targets.rs), so the config does too, and
/// `relay check config` says so. Shown with its password redacted.
fn check_target(path: &str, target: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        ConfigError::field(
            path,
            format!(
                "{:?} {why} (expected host:port, e.g. localhost:8001)",
                super::types::redact_url(target)
            ),
        )
    };
    if target.is_empty() {
        return Err(bad("is empty"));
    }
    if target.contains("://") {
        return Err(bad(
            "is a URL; put the scheme in `scheme` and the path in `metrics_path`",
        ));
    }
    if target.contains(['/', '?', '#', ' ']) {
        return Err(bad("is not a valid host"));
    }
    crate::hostport::split(target)
        .map(|_| ())
        .map_err(|e| bad(&e.to_string()))
}

fn check_label_name(path: &str, name: &str) -> Result<(), ConfigError> {
    if crate::exposition::is_label_name(name) {
        Ok(())
    } else {
        Err(ConfigError::field(
            path,
            format!("{name:?} is not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*)"),
        ))
    }
}

fn check_url(path: &str, url: &str) -> Result<(), ConfigError> {
    let ok = reqwest::Url::parse(url)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::field(
            path,
            format!(
                "{:?} is not an http(s) URL (expected e.g. http://receiver:9090/api/v1/write)",
                super::types::redact_url(url)
            ),
        ))
    }
}

fn check_auth(
    path: &str,
    auth: Option<&Authorization>,
    basic: Option<&BasicAuth>,
) -> Result<(), ConfigError> {
    if auth.is_some() && basic.is_some() {
        return Err(ConfigError::field(
            path,
            "at most one of basic_auth and authorization may be configured",
        ));
    }
    if let Some(a) = auth {
        if a.credentials.is_some() && a.credentials_file.is_some() {
            return Err(ConfigError::field(
                format!("{path}.authorization"),
                "at most one of credentials and credentials_file may be configured",
            ));
        }
        if a.kind.eq_ignore_ascii_case("basic") {
            return Err(ConfigError::field(
                format!("{path}.authorization.type"),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ));
        }
    }
    if let Some(b) = basic {
        if b.password.is_some() && b.password_file.is_some() {
            return Err(ConfigError::field(
                format!("{path}.basic_auth"),
                "at most one of basic_auth password and password_file may be configured",
            ));
        }
    }
    Ok(())
}
