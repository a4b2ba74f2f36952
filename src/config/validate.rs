//! Checks that need more than one field (Prometheus's `Validate` rules) and
//! defaults resolved from `global`: everything that needs the data alone.
//! What needs building (relabel rules, TLS clients) is `plan::resolve`'s.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::types::{
    Authorization, BasicAuth, Config, NameEscaping, NameValidation, OAuth2, ProxyConfig,
    RemoteWriteConfig, ScrapeConfig, ScrapeProtocol, SigV4Config,
};
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
    if let Some(protocols) = &config.global.scrape_protocols {
        check_protocols("global.scrape_protocols", protocols)?;
    }
    let validation = config
        .global
        .metric_name_validation_scheme
        .unwrap_or_default();
    config.global.metric_name_validation_scheme = Some(validation);
    let escaping = config
        .global
        .metric_name_escaping_scheme
        .unwrap_or_else(|| default_escaping(validation));
    check_escaping("global.metric_name_escaping_scheme", validation, escaping)?;
    config.global.metric_name_escaping_scheme = Some(escaping);
    let global = config.global.clone();
    for name in global.external_labels.keys() {
        check_label_name(&format!("global.external_labels.{name}"), name, validation)?;
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
        check_auth(
            &path,
            rw.authorization.as_ref(),
            rw.basic_auth.as_ref(),
            rw.oauth2.as_ref(),
        )?;
        check_proxy(&path, &rw.proxy())?;
        if let Some(sigv4) = &rw.sigv4 {
            check_sigv4(&path, rw, sigv4)?;
        }
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
    resolve_protocols(job, global, path)?;
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
            check_label_name(
                &format!("{path}.static_configs[{g}].labels.{name}"),
                name,
                job.metric_name_validation_scheme.unwrap_or_default(),
            )?;
        }
    }
    check_auth(
        path,
        job.authorization.as_ref(),
        job.basic_auth.as_ref(),
        job.oauth2.as_ref(),
    )?;
    check_proxy(path, &job.proxy())?;
    Ok(())
}

/// Scrape protocols and name schemes as Prometheus 3's
/// `ScrapeConfig.Validate`: a job's own setting wins, then `global`'s; the
/// protocols default to protobuf first when the job scrapes native
/// histograms; the escaping follows the job's validation scheme when only
/// that is set (a `legacy` job never inherits `allow-utf-8`).
fn resolve_protocols(
    job: &mut ScrapeConfig,
    global: &super::GlobalConfig,
    path: &str,
) -> Result<(), ConfigError> {
    let native = job
        .scrape_native_histograms
        .or(global.scrape_native_histograms)
        .unwrap_or(false);
    job.scrape_native_histograms = Some(native);
    job.always_scrape_classic_histograms = Some(
        job.always_scrape_classic_histograms
            .or(global.always_scrape_classic_histograms)
            .unwrap_or(false),
    );
    let factor = job.native_histogram_min_bucket_factor;
    if !factor.is_finite() || factor < 0.0 {
        return Err(ConfigError::field(
            format!("{path}.native_histogram_min_bucket_factor"),
            format!("{factor} is not a growth factor (0 for none, else above 1)"),
        ));
    }
    let protocols = match (&job.scrape_protocols, &global.scrape_protocols) {
        (Some(own), _) => {
            check_protocols(&format!("{path}.scrape_protocols"), own)?;
            own.clone()
        }
        (None, Some(global)) => global.clone(),
        (None, None) if native => ScrapeProtocol::PROTO_FIRST.to_vec(),
        (None, None) => ScrapeProtocol::DEFAULT.to_vec(),
    };
    job.scrape_protocols = Some(protocols);
    let validation = match job.metric_name_validation_scheme {
        Some(own) => own,
        None => global.metric_name_validation_scheme.unwrap_or_default(),
    };
    let escaping = match (
        job.metric_name_escaping_scheme,
        job.metric_name_validation_scheme,
    ) {
        (Some(own), _) => own,
        (None, None) => global
            .metric_name_escaping_scheme
            .unwrap_or_else(|| default_escaping(validation)),
        (None, Some(own)) => default_escaping(own),
    };
    check_escaping(
        &format!("{path}.metric_name_escaping_scheme"),
        validation,
        escaping,
    )?;
    job.metric_name_validation_scheme = Some(validation);
    job.metric_name_escaping_scheme = Some(escaping);
    Ok(())
}

/// As Prometheus's `validateAcceptScrapeProtocols`: not empty, no repeats
/// (unknown names are refused when the YAML is read).
fn check_protocols(path: &str, protocols: &[ScrapeProtocol]) -> Result<(), ConfigError> {
    if protocols.is_empty() {
        return Err(ConfigError::field(
            path,
            "scrape_protocols cannot be empty (omit it for the default order)",
        ));
    }
    let mut seen = HashSet::new();
    if let Some(dup) = protocols.iter().find(|p| !seen.insert(**p)) {
        let names: Vec<&str> = protocols.iter().map(|p| p.name()).collect();
        return Err(ConfigError::field(
            path,
            format!(
                "duplicated protocol {} in scrape_protocols, got [{}]",
                dup.name(),
                names.join(" ")
            ),
        ));
    }
    Ok(())
}

/// The escaping a validation scheme implies when none is written.
fn default_escaping(validation: NameValidation) -> NameEscaping {
    match validation {
        NameValidation::Utf8 => NameEscaping::AllowUtf8,
        NameValidation::Legacy => NameEscaping::Underscores,
    }
}

/// `allow-utf-8` asks targets for names `legacy` would refuse.
fn check_escaping(
    path: &str,
    validation: NameValidation,
    escaping: NameEscaping,
) -> Result<(), ConfigError> {
    if validation == NameValidation::Legacy && escaping == NameEscaping::AllowUtf8 {
        return Err(ConfigError::field(
            path,
            "utf8 metric names requested (allow-utf-8) but metric_name_validation_scheme is legacy; use underscores, dots or values",
        ));
    }
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

/// A label name as Prometheus 3's `LabelName.IsValid` judges it under
/// `validation`: any non-empty UTF-8 under `utf8`, `[a-zA-Z_][a-zA-Z0-9_]*`
/// under `legacy`.
fn check_label_name(path: &str, name: &str, validation: NameValidation) -> Result<(), ConfigError> {
    match validation {
        NameValidation::Utf8 if !name.is_empty() => Ok(()),
        NameValidation::Utf8 => Err(ConfigError::field(path, "a label name must not be empty")),
        NameValidation::Legacy if crate::exposition::is_label_name(name) => Ok(()),
        NameValidation::Legacy => Err(ConfigError::field(
            path,
            format!(
                "{name:?} is not a valid label name under metric_name_validation_scheme legacy (expected [a-zA-Z_][a-zA-Z0-9_]*; utf8 allows it)"
            ),
        )),
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

/// Prometheus's `HTTPClientConfig.Validate` for the credentials: one kind
/// at most, one source of each secret.
fn check_auth(
    path: &str,
    auth: Option<&Authorization>,
    basic: Option<&BasicAuth>,
    oauth2: Option<&OAuth2>,
) -> Result<(), ConfigError> {
    let kinds = [auth.is_some(), basic.is_some(), oauth2.is_some()];
    if kinds.into_iter().filter(|k| *k).count() > 1 {
        return Err(ConfigError::field(
            path,
            "at most one of basic_auth, oauth2 and authorization may be configured",
        ));
    }
    if let Some(o) = oauth2 {
        check_oauth2(&format!("{path}.oauth2"), o)?;
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

fn check_oauth2(path: &str, o: &OAuth2) -> Result<(), ConfigError> {
    if o.client_secret.is_some() && o.client_secret_file.is_some() {
        return Err(ConfigError::field(
            path,
            "at most one of oauth2 client_secret and client_secret_file may be configured",
        ));
    }
    check_url(&format!("{path}.token_url"), &o.token_url)?;
    check_proxy(path, &o.proxy())
}

/// Prometheus's `ProxyConfig.Validate`, plus what relay can reach: the
/// proxy is an `http://` URL (reqwest speaks to HTTP proxies only without
/// its SOCKS feature) and each header is a valid HTTP header.
fn check_proxy(path: &str, p: &ProxyConfig) -> Result<(), ConfigError> {
    let field = |name: &str| format!("{path}.{name}");
    let url = p.proxy_url.as_deref().filter(|u| !u.is_empty());
    if !p.proxy_connect_header.is_empty() && !p.proxy_from_environment && url.is_none() {
        return Err(ConfigError::field(
            field("proxy_connect_header"),
            "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
        ));
    }
    if p.proxy_from_environment && url.is_some() {
        return Err(ConfigError::field(
            field("proxy_url"),
            "if proxy_from_environment is configured, proxy_url must not be configured",
        ));
    }
    let no_proxy = p.no_proxy.as_deref().is_some_and(|n| !n.is_empty());
    if p.proxy_from_environment && no_proxy {
        return Err(ConfigError::field(
            field("no_proxy"),
            "if proxy_from_environment is configured, no_proxy must not be configured",
        ));
    }
    if url.is_none() && no_proxy {
        return Err(ConfigError::field(
            field("no_proxy"),
            "if no_proxy is configured, proxy_url must also be configured",
        ));
    }
    if let Some(url) = url {
        let ok = reqwest::Url::parse(url)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(ConfigError::field(
                field("proxy_url"),
                format!(
                    "{:?} is not an http(s) proxy URL (expected e.g. http://proxy:3128)",
                    super::types::redact_url(url)
                ),
            ));
        }
    }
    for name in p.proxy_connect_header.keys() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::field(
                field(&format!("proxy_connect_header.{name}")),
                "not a valid HTTP header name",
            ));
        }
    }
    for (name, values) in &p.proxy_connect_header {
        for (i, v) in values.iter().enumerate() {
            if reqwest::header::HeaderValue::from_str(&v.0).is_err() {
                // The value is a secret: only where it is.
                return Err(ConfigError::field(
                    field(&format!("proxy_connect_header.{name}[{i}]")),
                    "not a valid HTTP header value (its value is not shown)",
                ));
            }
        }
    }
    Ok(())
}

/// `sigv4` signs the request itself, so no other credentials may ride
/// along (Prometheus's rule), and keys come in pairs.
fn check_sigv4(path: &str, rw: &RemoteWriteConfig, sigv4: &SigV4Config) -> Result<(), ConfigError> {
    let others = [
        ("basic_auth", rw.basic_auth.is_some()),
        ("authorization", rw.authorization.is_some()),
        ("oauth2", rw.oauth2.is_some()),
    ];
    if let Some((other, _)) = others.iter().find(|(_, set)| *set) {
        return Err(ConfigError::field(
            format!("{path}.sigv4"),
            format!(
                "at most one of basic_auth, authorization, oauth2 and sigv4 may be configured \
                 (found {other} too)"
            ),
        ));
    }
    let key = sigv4.access_key.as_deref().is_some_and(|k| !k.is_empty());
    let secret = sigv4.secret_key.as_ref().is_some_and(|s| !s.0.is_empty());
    if key != secret {
        return Err(ConfigError::field(
            format!("{path}.sigv4"),
            "must provide an AWS SigV4 access_key and secret_key together \
             if credentials are specified in the sigv4 config",
        ));
    }
    if sigv4.service.as_deref() == Some("") {
        return Err(ConfigError::field(
            format!("{path}.sigv4.service"),
            "must not be empty (leave it out for aps)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{from_yaml_str, NameEscaping, NameValidation, ScrapeProtocol};
    use ScrapeProtocol::*;

    fn job(yaml: &str) -> Result<super::ScrapeConfig, String> {
        let text = format!("{yaml}\nscrape_configs:\n  - job_name: a\n");
        from_yaml_str(&text)
            .map(|l| l.config.scrape_configs[0].clone())
            .map_err(|e| e.to_string())
    }

    fn with_job(global: &str, job_fields: &str) -> Result<super::ScrapeConfig, String> {
        let text =
            format!("global: {{{global}}}\nscrape_configs:\n  - {{job_name: a, {job_fields}}}\n");
        from_yaml_str(&text)
            .map(|l| l.config.scrape_configs[0].clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn utf8_label_names_are_accepted_under_utf8_and_refused_under_legacy() {
        let yaml = |global: &str, job: &str| {
            format!("global: {{external_labels: {{\"k8s.pod\": p}}{global}}}\nscrape_configs:\n  - job_name: a\n{job}    static_configs: [{{targets: [\"h:1\"], labels: {{\"app.kubernetes.io/name\": shop}}}}]\n")
        };
        let loaded = from_yaml_str(&yaml("", "")).expect("utf8 is the default");
        assert!(loaded.config.global.external_labels.contains_key("k8s.pod"));
        assert!(loaded.config.scrape_configs[0].static_configs[0]
            .labels
            .contains_key("app.kubernetes.io/name"));
        let err = from_yaml_str(&yaml(", metric_name_validation_scheme: legacy", ""))
            .expect_err("legacy refuses the external label")
            .to_string();
        assert!(
            err.contains("global.external_labels.k8s.pod") && err.contains("legacy"),
            "{err}"
        );
        // Legacy for the job only: its target labels are refused, the
        // external labels (global scheme utf8) are not.
        let err = from_yaml_str(&yaml("", "    metric_name_validation_scheme: legacy\n"))
            .expect_err("legacy refuses the target label")
            .to_string();
        assert!(
            err.contains("scrape_configs[0].static_configs[0].labels.app.kubernetes.io/name"),
            "{err}"
        );
        let err = from_yaml_str(
            "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"h:1\"], labels: {\"\": x}}]\n",
        )
        .expect_err("empty name")
        .to_string();
        assert!(err.contains("must not be empty"), "{err}");
    }

    #[test]
    fn protocols_default_as_prometheus_3() {
        let j = job("").expect("loads");
        assert_eq!(j.protocols(), ScrapeProtocol::DEFAULT);
        assert_eq!(j.validation(), NameValidation::Utf8);
        assert_eq!(j.escaping(), NameEscaping::AllowUtf8);
        let native = with_job("scrape_native_histograms: true", "").expect("loads");
        assert_eq!(native.protocols(), ScrapeProtocol::PROTO_FIRST);
        let own = with_job("", "scrape_native_histograms: true").expect("loads");
        assert_eq!(own.protocols(), ScrapeProtocol::PROTO_FIRST);
        // A configured list wins over the native-histogram order.
        let configured = with_job(
            "scrape_protocols: [PrometheusText0.0.4]",
            "scrape_native_histograms: true",
        )
        .expect("loads");
        assert_eq!(configured.protocols(), [PrometheusText0_0_4]);
        let own = with_job(
            "scrape_protocols: [PrometheusText0.0.4]",
            "scrape_protocols: [OpenMetricsText1.0.0, PrometheusProto]",
        )
        .expect("loads");
        assert_eq!(own.protocols(), [OpenMetricsText1_0_0, PrometheusProto]);
        let fallback =
            with_job("", "fallback_scrape_protocol: PrometheusText1.0.0").expect("loads");
        assert_eq!(fallback.fallback_scrape_protocol, Some(PrometheusText1_0_0));
    }

    /// Prometheus 3's native histogram fields: `always_scrape_classic_histograms`
    /// from the job, else `global`; the limits per job; NHCB conversion refused.
    #[test]
    fn native_histogram_fields_resolve_as_prometheus_3() {
        let j = job("").expect("loads");
        assert_eq!(j.always_scrape_classic_histograms, Some(false));
        assert_eq!(j.native_histogram_bucket_limit, 0);
        assert_eq!(j.native_histogram_min_bucket_factor, 0.0);
        let global = with_job("always_scrape_classic_histograms: true", "").expect("loads");
        assert_eq!(global.always_scrape_classic_histograms, Some(true));
        let own = with_job(
            "always_scrape_classic_histograms: true",
            "always_scrape_classic_histograms: false, native_histogram_bucket_limit: 160, native_histogram_min_bucket_factor: 1.1",
        )
        .expect("loads");
        assert_eq!(own.always_scrape_classic_histograms, Some(false));
        assert_eq!(own.native_histogram_bucket_limit, 160);
        assert_eq!(own.native_histogram_min_bucket_factor, 1.1);
        let err = with_job("", "native_histogram_min_bucket_factor: -2").expect_err("refused");
        assert!(
            err.contains("scrape_configs[0].native_histogram_min_bucket_factor"),
            "{err}"
        );
        for (global, job_fields) in [
            ("", "convert_classic_histograms_to_nhcb: true"),
            ("convert_classic_histograms_to_nhcb: true", ""),
        ] {
            let err = with_job(global, job_fields).expect_err("refused");
            assert!(err.contains("convert_classic_histograms_to_nhcb"), "{err}");
            assert!(err.contains("custom-bucket"), "{err}");
        }
    }

    #[test]
    fn bad_protocols_are_refused_with_their_path() {
        for (global, job_fields, want) in [
            (
                "",
                "scrape_protocols: [PrometheusText0.0.4, PrometheusText0.0.4]",
                "scrape_configs[0].scrape_protocols: duplicated protocol PrometheusText0.0.4 in scrape_protocols, got [PrometheusText0.0.4 PrometheusText0.0.4]",
            ),
            (
                "scrape_protocols: []",
                "",
                "global.scrape_protocols: scrape_protocols cannot be empty",
            ),
            ("", "scrape_protocols: [Text]", "scrape_configs[0].scrape_protocols[0]"),
            ("", "fallback_scrape_protocol: text", "scrape_configs[0].fallback_scrape_protocol"),
        ] {
            let err = with_job(global, job_fields).expect_err(job_fields);
            assert!(err.contains(want), "{err}");
        }
        let err = with_job("", "scrape_protocols: [Text]").expect_err("unknown");
        assert!(
            err.contains("PrometheusText1.0.0"),
            "lists the names: {err}"
        );
    }

    #[test]
    fn escaping_follows_the_validation_scheme_as_prometheus() {
        for (global, job_fields, validation, escaping) in [
            ("", "", NameValidation::Utf8, NameEscaping::AllowUtf8),
            (
                "metric_name_validation_scheme: legacy",
                "",
                NameValidation::Legacy,
                NameEscaping::Underscores,
            ),
            // A legacy job does not inherit the global allow-utf-8.
            (
                "",
                "metric_name_validation_scheme: legacy",
                NameValidation::Legacy,
                NameEscaping::Underscores,
            ),
            (
                "metric_name_escaping_scheme: dots",
                "",
                NameValidation::Utf8,
                NameEscaping::Dots,
            ),
            (
                "metric_name_validation_scheme: legacy",
                "metric_name_validation_scheme: utf8",
                NameValidation::Utf8,
                NameEscaping::AllowUtf8,
            ),
            (
                "",
                "metric_name_escaping_scheme: values",
                NameValidation::Utf8,
                NameEscaping::Values,
            ),
        ] {
            let j = with_job(global, job_fields).expect(job_fields);
            assert_eq!(
                (j.validation(), j.escaping()),
                (validation, escaping),
                "{global} / {job_fields}"
            );
        }
        let err = with_job(
            "",
            "metric_name_validation_scheme: legacy, metric_name_escaping_scheme: allow-utf-8",
        )
        .expect_err("legacy with utf-8");
        assert!(
            err.starts_with(
                "scrape_configs[0].metric_name_escaping_scheme: utf8 metric names requested"
            ),
            "{err}"
        );
        let err = with_job("metric_name_escaping_scheme: dashes", "").expect_err("unknown");
        assert!(err.contains("global.metric_name_escaping_scheme"), "{err}");
    }

    #[test]
    fn http_client_settings_are_refused_as_prometheus_with_their_path() {
        let oauth2 = "oauth2: {client_id: c, client_secret: s3cr3t, token_url: \"http://t/token\"}";
        for (fields, want) in [
            (
                format!("basic_auth: {{username: u, password: p}}, {oauth2}"),
                "scrape_configs[0]: at most one of basic_auth, oauth2 and authorization may be configured",
            ),
            (
                format!("authorization: {{credentials: x}}, {oauth2}"),
                "scrape_configs[0]: at most one of basic_auth, oauth2 and authorization",
            ),
            (
                "oauth2: {client_id: c, client_secret: s3cr3t, client_secret_file: /f, token_url: \"http://t/\"}".into(),
                "scrape_configs[0].oauth2: at most one of oauth2 client_secret and client_secret_file",
            ),
            (
                "oauth2: {client_id: c, token_url: \"not a url\"}".into(),
                "scrape_configs[0].oauth2.token_url: \"not a url\" is not an http(s) URL",
            ),
            (
                "oauth2: {client_id: c}".into(),
                "scrape_configs[0].oauth2.token_url: missing required field",
            ),
            (
                "oauth2: {client_id: c, token_url: \"http://t/\", no_proxy: a.b}".into(),
                "scrape_configs[0].oauth2.no_proxy: if no_proxy is configured, proxy_url must also be configured",
            ),
            (
                "no_proxy: a.b".into(),
                "scrape_configs[0].no_proxy: if no_proxy is configured, proxy_url must also be configured",
            ),
            (
                "proxy_from_environment: true, proxy_url: \"http://p:1\"".into(),
                "scrape_configs[0].proxy_url: if proxy_from_environment is configured, proxy_url must not be configured",
            ),
            (
                "proxy_from_environment: true, no_proxy: a.b".into(),
                "scrape_configs[0].no_proxy: if proxy_from_environment is configured, no_proxy must not be configured",
            ),
            (
                "proxy_connect_header: {X-A: [s3cr3t]}".into(),
                "scrape_configs[0].proxy_connect_header: if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
            ),
            (
                "proxy_url: \"http://u:s3cr3t@[bad\"".into(),
                "scrape_configs[0].proxy_url: \"http://u:xxxxx@[bad\" is not an http(s) proxy URL",
            ),
            (
                "proxy_url: \"socks5://p:1\"".into(),
                "scrape_configs[0].proxy_url: \"socks5://p:1\" is not an http(s) proxy URL",
            ),
            (
                "proxy_url: \"http://p:1\", proxy_connect_header: {X-A: [ok, \"s3cr3t\\n\"]}".into(),
                "scrape_configs[0].proxy_connect_header.X-A[1]: not a valid HTTP header value (its value is not shown)",
            ),
            (
                "proxy_url: \"http://p:1\", proxy_connect_header: {X-A: [12345]}".into(),
                "scrape_configs[0].proxy_connect_header.X-A[0]: expected a string (put the secret in quotes; its value is not shown)",
            ),
        ] {
            let err = with_job("", &fields).expect_err(&fields);
            assert!(err.starts_with(want), "{fields}: {err}");
            assert!(!err.contains("s3cr3t") && !err.contains("12345"), "{err}");
        }
        // The same rules for remote_write entries; sigv4 with oauth2 refused.
        for (entry, want) in [
            (
                "oauth2: {client_id: c, token_url: \"http://t/\"}, basic_auth: {username: u}",
                "remote_write[0]: at most one of basic_auth, oauth2 and authorization",
            ),
            (
                "no_proxy: a.b",
                "remote_write[0].no_proxy: if no_proxy is configured",
            ),
            (
                "sigv4: {region: eu-west-1}, oauth2: {client_id: c, token_url: \"http://t/\"}",
                "remote_write[0].sigv4: at most one of basic_auth, authorization, oauth2 and sigv4 may be configured (found oauth2 too)",
            ),
        ] {
            let text = format!("remote_write:\n  - {{url: \"http://r/w\", {entry}}}\n");
            let err = from_yaml_str(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.starts_with(want), "{entry}: {err}");
        }
        // Accepted, with the defaults of Prometheus 3.
        let j = with_job("", &format!("{oauth2}, proxy_url: \"http://p:1\", no_proxy: \"10.0.0.0/8,.svc\", proxy_connect_header: {{X-A: [v]}}")).expect("valid");
        assert!(
            j.oauth2.is_some() && j.proxy_url.is_some() && j.enable_http2 && j.follow_redirects
        );
        let rw = from_yaml_str("remote_write:\n  - url: http://r/w\n").expect("valid");
        let rw = &rw.config.remote_write[0];
        assert!(
            !rw.enable_http2,
            "false by default for remote write, as Prometheus 3"
        );
        assert!(rw.follow_redirects);
    }

    fn remote_write(entry: &str) -> Result<super::RemoteWriteConfig, String> {
        let text = format!("remote_write:\n  - url: http://127.0.0.1:9/w\n{entry}");
        from_yaml_str(&text)
            .map(|l| l.config.remote_write[0].clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sigv4_is_read_with_prometheus_fields_and_shows_no_secret() {
        let rw = remote_write(
            "    sigv4:\n      region: eu-west-1\n      access_key: AKID\n      secret_key: s3cr3t\n      role_arn: arn:aws:iam::1:role/r\n      external_id: e\n      use_fips_sts_endpoint: true\n      service: aps\n      profile: p\n",
        )
        .expect("valid sigv4");
        let s = rw.sigv4.as_ref().expect("sigv4");
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.role_arn.as_deref(), Some("arn:aws:iam::1:role/r"));
        assert!(s.use_fips_sts_endpoint);
        let shown = serde_norway::to_string(&rw).expect("yaml");
        assert!(shown.contains("secret_key: <secret>"), "{shown}");
        assert!(!shown.contains("s3cr3t") && !format!("{rw:?}").contains("s3cr3t"));
    }

    #[test]
    fn sigv4_excludes_other_credentials_and_wants_keys_in_pairs() {
        for other in [
            "basic_auth: {username: u, password: p}",
            "authorization: {credentials: t}",
        ] {
            let err = remote_write(&format!("    {other}\n    sigv4: {{region: r}}\n"))
                .expect_err("both");
            assert!(err.starts_with("remote_write[0].sigv4: at most one of basic_auth, authorization, oauth2 and sigv4"), "{err}");
        }
        let err = remote_write("    sigv4: {access_key: A}\n").expect_err("no secret");
        assert!(
            err.contains(
                "remote_write[0].sigv4: must provide an AWS SigV4 access_key and secret_key"
            ),
            "{err}"
        );
        let err = remote_write("    sigv4: {regoin: r}\n").expect_err("typo");
        assert!(
            err.contains("remote_write[0].sigv4") && err.contains("regoin"),
            "{err}"
        );
    }
}
