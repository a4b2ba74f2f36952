//! The targets of a scrape config, built as Prometheus's `PopulateLabels`
//! builds them: static target and group labels, then the job's defaults
//! (`__address__`, `__scheme__`, `__metrics_path__`, `__param_*`,
//! `__scrape_interval__`, `__scrape_timeout__`, `job`) where not already set,
//! then `relabel_configs`; `instance` defaults to the address, and every
//! `__`-prefixed label is removed at the end.

use std::time::Duration;

use crate::config::{self, ScrapeConfig};
use crate::exposition::Labels;
use crate::relabel::Rules;

/// One endpoint to scrape and the labels its series get.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub job: String,
    /// scheme://address/metrics_path?params
    pub url: String,
    /// The final target labels (`job`, `instance`, static labels), sorted.
    pub labels: Labels<'static>,
    /// The labels before `relabel_configs` (`__address__`, `__scheme__`,
    /// ...), sorted: Prometheus's `discoveredLabels`, for the status API.
    pub discovered: Labels<'static>,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// `job/instance`, for logs.
    pub fn name(&self) -> String {
        format!("{}/{}", self.job, self.labels.get("instance").unwrap_or(""))
    }
}

/// Why one configured target could not be scraped (it is skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {job:?}, target {target:?}: {message}")]
pub struct TargetError {
    pub job: String,
    pub target: String,
    pub message: String,
}

/// The targets of one job after its compiled `relabel_configs`
/// (`relabel`); targets dropped by relabeling are left out, targets that
/// relabeling made invalid come back as errors.
pub fn from_config(sc: &ScrapeConfig, relabel: &Rules) -> (Vec<Target>, Vec<TargetError>) {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for group in &sc.static_configs {
        for address in &group.targets {
            match populate(sc, relabel, address, &group.labels) {
                Ok(Some(t)) => targets.push(t),
                Ok(None) => {}
                Err(message) => errors.push(TargetError {
                    job: sc.job_name.clone(),
                    // A password in it is shown as Prometheus shows one.
                    target: config::redact_url(address),
                    message,
                }),
            }
        }
    }
    (targets, errors)
}

/// The discovered labels (before relabeling) of the targets of `sc` that
/// `relabel` drops: Prometheus's `droppedTargets`.
pub fn dropped(sc: &ScrapeConfig, relabel: &Rules) -> Vec<Labels<'static>> {
    let mut out = Vec::new();
    for group in &sc.static_configs {
        for address in &group.targets {
            let found = discovered(sc, address, &group.labels);
            if !relabel.apply(&mut found.clone()) {
                out.push(found);
            }
        }
    }
    out
}

/// A target's labels before relabeling: its address, its group's labels,
/// then the job's defaults where not set, sorted.
fn discovered(
    sc: &ScrapeConfig,
    address: &str,
    group_labels: &std::collections::BTreeMap<String, String>,
) -> Labels<'static> {
    let mut labels = Labels::with_capacity(8 + group_labels.len());
    labels.set("__address__".to_owned(), address.to_owned());
    for (k, v) in group_labels {
        labels.set(k.clone(), v.clone());
    }
    let defaults = [
        ("job", sc.job_name.clone()),
        ("__scheme__", sc.scheme.as_str().to_owned()),
        ("__metrics_path__", sc.metrics_path.clone()),
        (
            "__scrape_interval__",
            config::Duration(sc.interval()).to_string(),
        ),
        (
            "__scrape_timeout__",
            config::Duration(sc.timeout()).to_string(),
        ),
    ];
    for (k, v) in defaults {
        if labels.get(k).is_none() {
            labels.set(k.to_owned(), v);
        }
    }
    for (k, values) in &sc.params {
        let name = format!("__param_{k}");
        if let (None, Some(first)) = (labels.get(&name), values.first()) {
            labels.set(name, first.clone());
        }
    }
    labels.sort();
    labels.into_owned()
}

fn populate(
    sc: &ScrapeConfig,
    relabel: &Rules,
    address: &str,
    group_labels: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Target>, String> {
    let discovered = discovered(sc, address, group_labels);
    let mut labels = discovered.clone();
    if !relabel.apply(&mut labels) {
        return Ok(None);
    }
    let Some(mut addr) = labels.get("__address__").map(str::to_owned) else {
        return Err("no address left after relabeling".into());
    };
    let scheme = labels.get("__scheme__").unwrap_or("http").to_owned();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "invalid scheme {scheme:?} (expected http or https)"
        ));
    }
    // Not shown: what comes before the @ would be a password.
    if addr.contains('@') {
        return Err(
            "a target address with user info (user:password@host) is refused: use basic_auth"
                .into(),
        );
    }
    if addr.contains('/') {
        let addr = config::redact_url(&addr);
        return Err(format!("{addr:?} is not a valid host:port address"));
    }
    // Prometheus 2.x adds the scheme's default port when there is none.
    if !has_port(&addr) {
        addr.push_str(if scheme == "https" { ":443" } else { ":80" });
        labels.set("__address__".to_owned(), addr.clone());
    }
    let parse = |name: &str| -> Result<Duration, String> {
        let raw = labels.get(name).unwrap_or("");
        config::Duration::parse(raw)
            .map(config::Duration::as_std)
            .map_err(|e| format!("{name}: {e}"))
    };
    let interval = parse("__scrape_interval__")?;
    let timeout = parse("__scrape_timeout__")?;
    if interval.is_zero() || timeout > interval {
        return Err(format!(
            "scrape timeout {timeout:?} must be positive and not greater than the interval {interval:?}"
        ));
    }
    let url = build_url(
        &scheme,
        &addr,
        labels.get("__metrics_path__").unwrap_or("/metrics"),
        sc,
        &labels,
    );
    if labels.get("instance").is_none() {
        labels.set("instance".to_owned(), addr);
    }
    labels.retain(|l| !l.name.starts_with("__"));
    labels.sort();
    Ok(Some(Target {
        job: labels.get("job").unwrap_or(&sc.job_name).to_owned(),
        url,
        labels: labels.into_owned(),
        discovered,
        interval,
        timeout,
    }))
}

fn has_port(addr: &str) -> bool {
    matches!(crate::hostport::split(addr), Ok((_, Some(_))))
}

/// The scrape URL; `__param_<name>` labels override the config's `params`.
fn build_url(
    scheme: &str,
    addr: &str,
    path: &str,
    sc: &ScrapeConfig,
    labels: &Labels<'_>,
) -> String {
    let mut url = reqwest::Url::parse(&format!("{scheme}://{addr}")).unwrap_or_else(|_| {
        reqwest::Url::parse("http://invalid").unwrap_or_else(|_| unreachable!())
    });
    url.set_path(path);
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, values) in &sc.params {
        match labels.get(&format!("__param_{k}")) {
            Some(v) => params.push((k.clone(), v.to_owned())),
            None => params.extend(values.iter().map(|v| (k.clone(), v.clone()))),
        }
    }
    for l in labels.iter() {
        if let Some(k) = l.name.strip_prefix("__param_") {
            if !sc.params.contains_key(k) {
                params.push((k.to_owned(), l.value.to_string()));
            }
        }
    }
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(yaml: &str) -> (Vec<Target>, Vec<TargetError>) {
        let config = config::from_yaml_str(yaml).expect("valid config").config;
        let job = &config.scrape_configs[0];
        let rules = Rules::compile(&job.relabel_configs).expect("valid rules");
        from_config(job, &rules)
    }

    fn labels(t: &Target) -> Vec<(String, String)> {
        t.labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }

    #[test]
    fn static_target_gets_job_and_instance() {
        let (t, e) = targets("scrape_configs:\n- job_name: app\n  static_configs:\n  - targets: ['localhost:8001']\n    labels: {team: a}\n");
        assert!(e.is_empty());
        assert_eq!(t[0].url, "http://localhost:8001/metrics");
        assert_eq!(
            labels(&t[0]),
            vec![
                ("instance".into(), "localhost:8001".into()),
                ("job".into(), "app".into()),
                ("team".into(), "a".into())
            ]
        );
        assert_eq!(t[0].interval, Duration::from_secs(60));
    }

    #[test]
    fn relabeling_can_drop_rewrite_and_set_params() {
        let yaml = "scrape_configs:\n- job_name: app\n  params: {format: [prometheus]}\n  static_configs:\n  - targets: ['a:1', 'b:2']\n  relabel_configs:\n  - {source_labels: [__address__], regex: 'b:.*', action: drop}\n  - {target_label: instance, replacement: pod-1}\n  - {target_label: __param_module, replacement: http}\n  - {target_label: __metrics_path__, replacement: /probe}\n";
        let (t, _) = targets(yaml);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].url, "http://a:1/probe?format=prometheus&module=http");
        assert_eq!(t[0].labels.get("instance"), Some("pod-1"));
        assert!(t[0].labels.iter().all(|l| !l.name.starts_with("__")));
    }

    #[test]
    fn missing_port_defaults_by_scheme_and_group_labels_may_override_job() {
        let (t, _) = targets("scrape_configs:\n- job_name: app\n  scheme: https\n  static_configs:\n  - targets: ['example']\n    labels: {job: other}\n");
        assert_eq!(t[0].url, "https://example/metrics"); // the default port is implied
        assert_eq!(t[0].labels.get("instance"), Some("example:443"));
        assert_eq!(t[0].job, "other");
    }

    #[test]
    fn user_info_put_in_by_relabeling_is_refused_without_showing_it() {
        let (t, e) = targets("scrape_configs:\n- job_name: app\n  static_configs:\n  - targets: ['a:1']\n  relabel_configs:\n  - {target_label: __address__, replacement: 'u:S3cret@a:1'}\n");
        assert!(t.is_empty());
        assert_eq!(
            e[0].to_string(),
            "job \"app\", target \"a:1\": a target address with user info (user:password@host) is refused: use basic_auth"
        );
    }

    #[test]
    fn relabeling_away_the_address_is_an_error() {
        let (t, e) = targets("scrape_configs:\n- job_name: app\n  static_configs:\n  - targets: ['a:1']\n  relabel_configs:\n  - {target_label: __address__, replacement: ''}\n");
        assert!(t.is_empty());
        assert_eq!(e[0].message, "no address left after relabeling");
    }
}
