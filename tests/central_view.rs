//! What a central Prometheus sees through relay (issue 18): every Pod's
//! relay serves the app's `job` and `instance` (`localhost:8001`), so
//! under `honor_labels: true` replicas merge into one series unless relay
//! attaches its Pod's external labels to what it serves, as Prometheus's
//! `/federate` does. And relay's own series only where the user wants them
//! (`relay.self_metrics`), remote-write ones only with remote write.

mod common;

use common::peers::{require_peer, start_prometheus};
use common::{free_port, get, pipe, wait_for, Relay, Reply, Target};

/// A relay config scraping `app` as a Pod's relay scrapes its app: the
/// target's `instance` is `localhost:8001` whatever loopback port the test
/// app has (each Pod has its own network namespace; here they share one).
fn pod_config(app: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels:\n    pod: '${{POD_NAME}}'\n    namespace: '${{POD_NAMESPACE}}'\n\
         scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{app}\"]}}]\n    relabel_configs:\n      - {{target_label: instance, replacement: 'localhost:8001'}}\n"
    )
}

/// An instant query's result: the labels and the value.
type Series = (Vec<(String, String)>, String);

/// `GET /api/v1/query?query=...` on the central Prometheus: each result's
/// labels and value.
fn query(prometheus: &str, promql: &str) -> Vec<Series> {
    try_query(prometheus, promql).unwrap_or_else(|| panic!("query {promql} failed"))
}

/// Like [`query`]; None while Prometheus does not answer 200.
fn try_query(prometheus: &str, promql: &str) -> Option<Vec<Series>> {
    let path = format!("/api/v1/query?query={}", common::peers::urlencode(promql));
    let text = get(prometheus, &path, &[])
        .filter(|r| r.status == 200)
        .map(|r| r.text())?;
    let json = common::json::Json::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let results = json
        .get("data")
        .and_then(|d| d.get("result"))
        .and_then(common::json::Json::array)
        .unwrap_or_else(|| panic!("no data.result in {text}"));
    Some(
        results
            .iter()
            .map(|r| {
                let labels = r
                    .get("metric")
                    .and_then(common::json::Json::labels)
                    .expect("metric");
                let value = r
                    .get("value")
                    .and_then(common::json::Json::array)
                    .and_then(|v| v.get(1)?.num_text().map(str::to_owned))
                    .expect("value");
                (labels, value)
            })
            .collect(),
    )
}

fn label<'l>(labels: &'l [(String, String)], name: &str) -> Option<&'l str> {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Three app+relay "Pods" of one Deployment, one config file for all but
/// `POD_NAME`; a central Prometheus 2.42 scrapes the three relays with
/// `honor_labels: true` (the recommended config) and no target label of
/// its own: it keeps one series per Pod for each app metric, each with its
/// own value, under the app's `job` and `instance`.
#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn pods_of_one_deployment_stay_apart_at_a_central_prometheus() {
    let binary = require_peer("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let pods = ["shop-0", "shop-1", "shop-2"];
    let mut apps = Vec::new();
    let mut relays = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let app = Target::start(Reply::text(&format!(
            "# HELP pod_constant A value of this Pod's own.\n# TYPE pod_constant gauge\npod_constant {}\n",
            i + 1
        )));
        let file = dir.path().join(format!("{pod}.yml"));
        let addr = format!("127.0.0.1:{}", free_port());
        std::fs::write(
            &file,
            format!(
                "{}relay:\n  listen_address: {addr}\n",
                pod_config(&app.addr)
            ),
        )
        .expect("write relay.yml");
        let relay = Relay::start_file_env(
            &file,
            &addr,
            &[("POD_NAME", pod), ("POD_NAMESPACE", "prod")],
        );
        relay.wait_for_line("pod_constant{");
        apps.push(app);
        relays.push(relay);
    }
    let targets: Vec<String> = relays.iter().map(|r| format!("\"{}\"", r.addr)).collect();
    let central = start_prometheus(
        &binary,
        &format!(
            "scrape_configs:\n  - job_name: relay\n    honor_labels: true\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ),
    );
    // Five scrapes of each Pod at least, so a merged series would have
    // changed value several times.
    wait_for("5 samples of every pod_constant series", || {
        let counts = try_query(&central.addr, "count_over_time(pod_constant[1m])")?;
        (counts.len() >= pods.len()
            && counts
                .iter()
                .all(|(_, v)| v.parse::<f64>().is_ok_and(|n| n >= 5.0)))
        .then_some(())
    });
    let mut series = query(&central.addr, "pod_constant");
    series.sort_by(|a, b| label(&a.0, "pod").cmp(&label(&b.0, "pod")));
    let seen: Vec<(Option<&str>, &str)> = series
        .iter()
        .map(|(l, v)| (label(l, "pod"), v.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("shop-0"), "1"),
            (Some("shop-1"), "2"),
            (Some("shop-2"), "3")
        ],
        "{series:?}"
    );
    for (labels, _) in &series {
        assert_eq!(label(labels, "job"), Some("app"), "{labels:?}");
        assert_eq!(
            label(labels, "instance"),
            Some("localhost:8001"),
            "{labels:?}"
        );
        assert_eq!(label(labels, "namespace"), Some("prod"), "{labels:?}");
    }
    // No series changed value: no two Pods ever shared one.
    let changes = query(&central.addr, "changes(pod_constant[1m])");
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes.iter().all(|(_, v)| v == "0"), "{changes:?}");
    // One relayed `up{job="app"}` per Pod (the app's scrape health).
    let up = query(&central.addr, "up{job=\"app\"}");
    assert_eq!(up.len(), 3, "{up:?}");
    assert!(up.iter().all(|(_, v)| v == "1"), "{up:?}");
}

/// `promtool check metrics` on a body: its exit code and findings.
fn promtool(body: &str) -> (i32, String) {
    let binary = require_peer("promtool", "prometheus");
    let mut command = std::process::Command::new(binary);
    command.args(["check", "metrics"]);
    let ran = pipe(command, body.as_bytes());
    (ran.code, format!("{}{}", ran.stdout, ran.stderr))
}

fn own_lines(body: &str) -> usize {
    body.lines()
        .filter(|l| l.starts_with("relay_") || l.starts_with("process_"))
        .count()
}

/// `relay.self_metrics: separate` serves relay's own metrics on
/// `/relay/metrics` and not in `/metrics`; `off` nowhere; both bodies
/// pass promtool.
#[test]
#[ignore = "needs promtool (Debian package prometheus); scripts/test runs it"]
fn self_metrics_separate_or_off_keep_metrics_to_the_apps_series() {
    let app = Target::start(Reply::text(
        "# HELP orders_total Orders.\n# TYPE orders_total counter\norders_total 42\n",
    ));
    let scrape = format!(
        "scrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        app.addr
    );
    for setting in ["separate", "off"] {
        let wal = tempfile::tempdir().expect("tempdir");
        let relay = Relay::start_with(&scrape, wal.path(), &format!("  self_metrics: {setting}\n"));
        relay.wait_for_line("orders_total{");
        let body = relay.metrics();
        assert!(body.contains("orders_total{instance="), "{setting}: {body}");
        assert!(body.contains("\nup{instance="), "{setting}: {body}");
        assert_eq!(own_lines(&body), 0, "{setting}: /metrics:\n{body}");
        assert_eq!(promtool(&body), (0, String::new()), "{setting}: {body}");
        let apart = get(&relay.addr, "/relay/metrics", &[]).expect("GET /relay/metrics");
        if setting == "separate" {
            assert_eq!(apart.status, 200, "{}", apart.text());
            let text = apart.text();
            assert!(own_lines(&text) > 10, "{text}");
            assert!(text.contains("relay_build_info{"), "{text}");
            assert!(text.contains("process_cpu_seconds_total"), "{text}");
            assert!(!text.contains("orders_total"), "{text}");
            assert_eq!(promtool(&text), (0, String::new()), "{text}");
        } else {
            assert_eq!(apart.status, 404, "{}", apart.text());
        }
    }
}

/// Without remote_write no `prometheus_remote_storage_*` or `relay_wal_*`
/// is served; a reload that adds a remote_write brings them.
#[test]
fn remote_write_metrics_come_with_remote_write() {
    let app = Target::start(Reply::text("# TYPE g gauge\ng 1\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.yml");
    let scrape = format!(
        "scrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        app.addr
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let scrape = format!(
        "{scrape}relay:\n  listen_address: {addr}\n  wal_dir: {}\n",
        dir.path().join("wal").display()
    );
    std::fs::write(&file, &scrape).expect("write");
    let relay = Relay::start_file(&file, &addr);
    relay.wait_for_line("g{");
    let body = relay.metrics();
    assert!(body.contains("relay_build_info{"), "{body}");
    for family in ["prometheus_remote_storage_", "relay_wal_"] {
        assert!(
            !body.contains(family),
            "{family} without remote write:\n{body}"
        );
    }
    // A receiver that is never there: the families show all the same.
    std::fs::write(
        &file,
        format!(
            "{scrape}remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n",
            free_port()
        ),
    )
    .expect("write");
    let reload = common::post(&addr, "/-/reload").expect("POST /-/reload");
    assert_eq!(reload.status, 200, "{}", reload.text());
    let body = wait_for("the remote-write families", || {
        let body = relay.metrics();
        body.contains("prometheus_remote_storage_highest_timestamp_in_seconds ")
            .then_some(body)
    });
    assert!(
        body.contains("prometheus_remote_storage_samples_total{"),
        "{body}"
    );
    assert!(body.contains("relay_wal_size_bytes "), "{body}");
}

/// relay in Kubernetes with no external label from the environment warns
/// that replicas would merge; with one it does not.
#[test]
fn relay_in_kubernetes_without_a_per_pod_label_warns() {
    let app = Target::start(Reply::text("# TYPE g gauge\ng 1\n"));
    let scrape = format!(
        "scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        app.addr
    );
    let relay = Relay::start_env(&scrape, &[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
    let log = relay.wait_for_log(&["no per-Pod external label"]);
    assert!(log.contains("POD_NAME"), "{log}");
    // With a label from the environment: no warning.
    let labelled = Relay::start_env(
        &format!("global:\n  external_labels: {{pod: '${{POD_NAME}}'}}\n{scrape}"),
        &[("KUBERNETES_SERVICE_HOST", "10.0.0.1"), ("POD_NAME", "p")],
    );
    labelled.wait_for_line("g{");
    assert!(
        !labelled.logs().contains("no per-Pod external label"),
        "{}",
        labelled.logs()
    );
}
