//! `relay gen monitoring`: the rules pass `promtool check rules` and a unit
//! test per alert (`tests/monitoring/rules_test.yml`: it fires on bad input
//! and stays quiet on healthy input); the PrometheusRule holds exactly the
//! rules file's groups; the dashboard's ConfigMap passes kubernetes-validate;
//! and every dashboard query, Grafana's variables substituted, returns data
//! from a real Prometheus 2.42 that scrapes a running relay.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::k8s::kubernetes_validate;
use common::peers::{require_peer, scraping_relay, start_prometheus, urlencode};
use common::{free_port, get, Relay, Reply, Target, DEADLINE};
use serde_json::Value;

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

fn run(command: &mut Command) -> (Output, String) {
    let out = command.output().expect("run the command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// `relay gen monitoring --output DIR` into a fresh directory.
fn generate() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("monitoring");
    let (status, text) = run(Command::new(RELAY)
        .args(["gen", "monitoring", "--namespace", "monitoring", "--output"])
        .arg(&out));
    assert!(status.status.success(), "relay gen monitoring: {text}");
    for file in [
        "rules.yml",
        "prometheusrule.yaml",
        "dashboard.json",
        "dashboard-configmap.yaml",
    ] {
        assert!(
            text.contains(&out.join(file).display().to_string()),
            "{file} not listed: {text}"
        );
    }
    (dir, out)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The alert names of a rules file, in order.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_alert_the_issue_asks_for_is_there_and_unit_tested() {
    let (_dir, out) = generate();
    let names = alert_names(&read(&out.join("rules.yml")));
    for wanted in [
        "RelayTargetDown",
        "RelayScrapesFailing",
        "RelayRemoteWriteBehind",
        "RelayRemoteWriteFailures",
        "RelayWALSamplesDropped",
        "RelayWALNearCap",
        "RelayWALWriteFailing",
        "RelayConfigReloadFailed",
        "RelayTargetNearSampleLimit",
        "RelayTargetSeriesLimitReached",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    let tests =
        read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/monitoring/rules_test.yml"));
    for name in &names {
        // A test that fires it (exp_alerts with labels) and one that does not.
        let cases = tests.matches(&format!("alertname: {name}\n")).count();
        assert!(
            cases >= 2,
            "{name} has {cases} eval cases in rules_test.yml"
        );
    }
}

#[test]
#[ignore = "needs prometheus (Debian: promtool); scripts/test runs it"]
fn promtool_checks_the_rules_and_runs_a_unit_test_per_alert() {
    let promtool = require_peer("promtool", "prometheus");
    let (_dir, out) = generate();
    let rules = out.join("rules.yml");
    let count = alert_names(&read(&rules)).len();
    let (status, text) = run(Command::new(&promtool).args(["check", "rules"]).arg(&rules));
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains(&format!("SUCCESS: {count} rules found")),
        "{text}"
    );
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/monitoring/rules_test.yml"),
        out.join("rules_test.yml"),
    )
    .expect("copy the unit tests beside rules.yml");
    let (status, text) = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(out.join("rules_test.yml")));
    assert!(status.status.success(), "promtool test rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    // The unit tests can fail: a rule that never fires does.
    let broken = read(&rules).replace("> 0.8", "> 1.8");
    std::fs::write(&rules, broken).expect("write");
    let (status, text) = run(Command::new(&promtool)
        .args(["test", "rules"])
        .arg(out.join("rules_test.yml")));
    assert!(!status.status.success(), "{text}");
    assert!(text.contains("RelayWALNearCap"), "{text}");
}

#[test]
fn the_prometheus_rule_holds_exactly_the_rules_files_groups() {
    let (_dir, out) = generate();
    let rules: Value = serde_norway::from_str(&read(&out.join("rules.yml"))).expect("rules.yml");
    let rule: Value =
        serde_norway::from_str(&read(&out.join("prometheusrule.yaml"))).expect("PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["metadata"]["namespace"], "monitoring");
    assert_eq!(rule["spec"], rules);
    assert!(rules["groups"][0]["rules"]
        .as_array()
        .is_some_and(|r| r.len() >= 8));
    // Without --output both objects come on stdout, kubectl-ready.
    let (status, text) = run(Command::new(RELAY).args(["gen", "monitoring"]));
    assert!(status.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&status.stdout);
    let kinds: Vec<String> = serde_norway::Deserializer::from_str(&stdout)
        .map(|d| {
            let v = <Value as serde::Deserialize>::deserialize(d).expect("a YAML document");
            v["kind"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    assert_eq!(kinds, ["PrometheusRule", "ConfigMap"], "{stdout}");
}

#[test]
#[ignore = "needs kubernetes-validate (PyPI); scripts/test runs it"]
fn the_dashboard_config_map_passes_kubernetes_validate() {
    let bin = kubernetes_validate();
    let (_dir, out) = generate();
    let file = out.join("dashboard-configmap.yaml");
    let map: Value = serde_norway::from_str(&read(&file)).expect("ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        map["data"]["relay-dashboard.json"].as_str(),
        Some(read(&out.join("dashboard.json")).as_str())
    );
    let (status, text) = run(Command::new(&bin)
        .args(["--strict", "-k", "1.30.0"])
        .arg(&file));
    assert!(status.status.success(), "kubernetes-validate:\n{text}");
    assert_eq!(text.matches(" passed for resource ").count(), 1, "{text}");
}

/// Grafana's variables as the test's setup gives them values: `$job` is
/// the job Prometheus scrapes relay as, `$scrape_job` relay's jobs.
fn substitute(expr: &str, relay_addr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "5s")
        .replace("$scrape_job", "(app|down)")
        .replace("$job", "relay-sidecar")
        .replace("$instance", relay_addr);
    assert!(!out.contains('$'), "a variable left in {out}");
    out
}

/// `/api/v1/query` of `expr`: Ok(number of series), or Err(the answer).
fn query(prometheus: &str, expr: &str) -> Result<usize, String> {
    let path = format!("/api/v1/query?query={}", urlencode(expr));
    let answer = get(prometheus, &path, &[]).ok_or_else(|| "no answer".to_owned())?;
    let text = answer.text();
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if answer.status != 200 || json["status"] != "success" {
        return Err(text);
    }
    json["data"]["result"].as_array().map(Vec::len).ok_or(text)
}

/// Every query of the dashboard: the panels' targets, and the selectors
/// of its `label_values(selector, label)` variables with their label.
fn dashboard_queries(dashboard: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    let mut variables = Vec::new();
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        let Some(q) = var["query"]["query"].as_str() else {
            continue;
        };
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("a variable query relay's test does not know: {q}"));
        let (selector, label) = inner
            .rsplit_once(", ")
            .expect("label_values(selector, label)");
        variables.push((selector.to_owned(), label.to_owned()));
    }
    (exprs, variables)
}

#[test]
#[ignore = "needs prometheus (Debian); scripts/test runs it"]
fn every_dashboard_query_returns_data_from_a_prometheus_scraping_relay() {
    let prometheus_bin = require_peer("prometheus", "prometheus");
    let (_dir, out) = generate();
    let dashboard: Value =
        serde_json::from_str(&read(&out.join("dashboard.json"))).expect("dashboard JSON");
    let (exprs, variables) = dashboard_queries(&dashboard);
    assert!(exprs.len() >= 15, "{exprs:?}");
    let app = Target::start(Reply::text(
        "requests_total{path=\"/\"} 7\nrequests_total{path=\"/a\"} 3\nmemory_bytes 100\n",
    ));
    let receiver = common::rw::Receiver::start();
    // A healthy job with both limits, and one whose target is down (its
    // failures are what the failure panels show).
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    sample_limit: 100\n    series_limit: 50\n    static_configs:\n      - targets: [\"{}\"]\n  - job_name: down\n    scrape_interval: 1s\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\nremote_write:\n  - url: {}\n",
        app.addr,
        free_port(),
        receiver.url
    ));
    let prometheus = start_prometheus(&prometheus_bin, &scraping_relay(&relay.addr));
    let check = || {
        let mut missing = Vec::new();
        for expr in &exprs {
            let expr = substitute(expr, &relay.addr);
            match query(&prometheus.addr, &expr) {
                Ok(0) => missing.push(format!("no data: {expr}")),
                Ok(_) => {}
                Err(answer) => missing.push(format!("error: {expr}: {answer}")),
            }
        }
        for (selector, label) in &variables {
            let selector = substitute(selector, &relay.addr);
            let path = format!("/api/v1/series?match[]={}", urlencode(&selector));
            let text = get(&prometheus.addr, &path, &[])
                .map(|r| r.text())
                .unwrap_or_default();
            if !text.contains(&format!("\"{label}\":")) {
                missing.push(format!("variable: no {label} in {selector}: {text}"));
            }
        }
        missing
    };
    // Prometheus needs a few scrapes of relay before rates have two
    // samples: polled until all answer, or the deadline says which did not.
    let start = Instant::now();
    let mut missing = check();
    while !missing.is_empty() && start.elapsed() < DEADLINE {
        std::thread::sleep(Duration::from_millis(500));
        missing = check();
    }
    assert!(missing.is_empty(), "{missing:#?}");
    // The values are relay's: the sample limit panel shows 3 of 100.
    let share = substitute(
        "scrape_samples_post_metric_relabeling{job=~\"$scrape_job\"} / scrape_sample_limit{job=~\"$scrape_job\"}",
        &relay.addr,
    );
    let path = format!("/api/v1/query?query={}", urlencode(&share));
    let text = get(&prometheus.addr, &path, &[])
        .map(|r| r.text())
        .unwrap_or_default();
    assert!(text.contains("\"0.03\""), "{text}");
}
