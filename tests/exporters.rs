//! One relay scraping three real exporters that disagree about shared
//! families: Debian's prometheus-node-exporter, Prometheus 2.42's own
//! /metrics, and victoria-metrics' (which has no TYPE lines, so its
//! `go_gc_duration_seconds_sum` is untyped where the others have a summary,
//! and node_exporter has a gauge `go_memstats_alloc_bytes` next to a
//! counter `go_memstats_alloc_bytes_total`, one OpenMetrics name). What
//! relay serves must be valid text (promtool) and valid OpenMetrics
//! (prometheus_client's strict parser), and a Prometheus scraping relay
//! must store what one scraping the exporters directly stores.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::{require_peer, scraping_relay, start_prometheus, Kind, Peer, Prometheus};
use common::{free_port, get, pipe, pyclient, wait_for, Relay};

/// node_exporter on a loopback port of the test's own (never the system
/// service); killed when dropped.
struct NodeExporter {
    child: Child,
    addr: String,
}

impl NodeExporter {
    fn start() -> NodeExporter {
        let binary = require_peer("prometheus-node-exporter", "prometheus-node-exporter");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary)
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-node-exporter");
        let exporter = NodeExporter { child, addr };
        wait_for("node_exporter to answer", || {
            get(&exporter.addr, "/metrics", &[]).filter(|r| r.status == 200)
        });
        exporter
    }
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three jobs, one exporter each.
fn jobs(node: &str, prometheus: &str, vm: &str) -> String {
    format!(
        "scrape_configs:\n  - job_name: node\n    static_configs: [{{targets: [\"{node}\"]}}]\n  - job_name: prometheus\n    static_configs: [{{targets: [\"{prometheus}\"]}}]\n  - job_name: vm\n    static_configs: [{{targets: [\"{vm}\"]}}]\n"
    )
}

/// `promtool check metrics`' messages for a body, and its exit code
/// (0 valid, 3 lint problems only, 1 unparsable).
fn promtool(body: &[u8]) -> (i32, Vec<String>) {
    let promtool = require_peer("promtool", "prometheus");
    let mut command = Command::new(promtool);
    command.args(["check", "metrics"]);
    let out = pipe(command, body);
    let mut messages: Vec<String> = format!("{}{}", out.stdout, out.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    messages.sort();
    messages.dedup();
    (out.code, messages)
}

/// The series of the three jobs a Prometheus stores now: label set → value.
fn stored(prom: &Prometheus) -> BTreeMap<String, String> {
    let text = get(
        &prom.addr,
        "/federate?match%5B%5D=%7Bjob%3D~%22node%7Cprometheus%7Cvm%22%7D",
        &[],
    )
    .filter(|r| r.status == 200)
    .map(|r| r.text())
    .unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            // `series value timestamp`; label values may hold spaces.
            let (rest, _timestamp) = l.rsplit_once(' ')?;
            let (series, value) = rest.rsplit_once(' ')?;
            Some((series.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Series whose value does not move between two scrapes of these exporters.
fn stable(series: &str) -> bool {
    let name = series.split('{').next().unwrap_or_default();
    name == "up"
        || name == "go_info"
        || name == "flag"
        || name.ends_with("_build_info")
        || name == "node_memory_MemTotal_bytes"
        || name == "process_max_fds"
        || name == "prometheus_config_last_reload_successful"
}

#[test]
#[ignore = "needs prometheus-node-exporter, prometheus, promtool, victoria-metrics and the venv; scripts/test runs it"]
fn three_real_exporters_are_served_valid_and_stored_as_prometheus_stores_them() {
    let prometheus = require_peer("prometheus", "prometheus");
    let node = NodeExporter::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let own = Peer::start(
        Kind::Prometheus,
        &prometheus,
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("prometheus"),
    );
    let vm = Peer::start(
        Kind::VictoriaMetrics,
        &require_peer("victoria-metrics", "victoria-metrics"),
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("vm"),
    );
    let jobs = jobs(&node.addr, &own.addr, &vm.addr);
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{jobs}"
    ));
    // Every target up in one snapshot.
    wait_for("relay to have scraped all three", || {
        let text = relay.metrics();
        (text
            .lines()
            .filter(|l| l.starts_with("up{") && l.ends_with(" 1"))
            .count()
            == 3)
            .then_some(())
    });

    // The exporters' own bodies already draw lint warnings (no HELP,
    // camelCase, ...): relay's body may have those, no others, and must
    // parse. The exporters are read before and after relay's body, and a
    // few snapshots are tried, so that a family appearing in between (or a
    // scrape timing out on a loaded machine) is not taken for relay's doing.
    let exporters_lint = || {
        let mut lint = Vec::new();
        for addr in [&node.addr, &own.addr, &vm.addr] {
            let body = get(addr, "/metrics", &[]).expect("exporter /metrics").body;
            lint.extend(promtool(&body).1);
        }
        lint
    };
    let mut attempts = 0;
    let text = loop {
        attempts += 1;
        let mut known = exporters_lint();
        let text = get(&relay.addr, "/metrics", &[]).expect("relay /metrics");
        known.extend(exporters_lint());
        let (code, messages) = promtool(&text.body);
        let new: Vec<&String> = messages.iter().filter(|m| !known.contains(m)).collect();
        assert!(
            code == 0 || code == 3,
            "promtool check metrics exit {code}: {messages:#?}"
        );
        if new.is_empty() {
            break text;
        }
        assert!(attempts < 5, "promtool problems relay added: {new:#?}");
        std::thread::sleep(Duration::from_secs(1));
    };
    let code = promtool(&text.body).0;
    for (family, kind) in [
        ("go_gc_duration_seconds", "summary"),
        ("node_cpu_seconds_total", "counter"),
        ("prometheus_http_request_duration_seconds", "histogram"),
    ] {
        assert!(
            text.text().contains(&format!("# TYPE {family} {kind}\n")),
            "{family} keeps its type"
        );
    }
    assert_eq!(
        text.text().matches("# TYPE go_gc_duration_seconds").count(),
        1,
        "one go_gc_duration_seconds family"
    );
    let families = pyclient::parse(&text.body, false).expect("prometheus_client text parser");
    assert!(families > 500, "{families} families");

    let om = get(
        &relay.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .expect("relay /metrics as OpenMetrics");
    assert_eq!(
        om.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores")
    );
    pyclient::parse(&om.body, true).expect("prometheus_client strict OpenMetrics parser");
    for (body, format) in [(&text.body, "text"), (&om.body, "openmetrics")] {
        let ran = pipe(
            common::relay(&["check", "metrics", "--format", format]),
            body,
        );
        assert_eq!(
            ran.code, 0,
            "relay check metrics --format {format}: {}{}",
            ran.stdout, ran.stderr
        );
    }

    // A Prometheus scraping relay stores what one scraping the exporters does.
    let direct = start_prometheus(&prometheus, &jobs);
    let via_relay = start_prometheus(&prometheus, &scraping_relay(&relay.addr));
    // Both keep scraping: wait until they agree, then show what differs if
    // they never do.
    let deadline = Instant::now() + common::DEADLINE;
    let (via, direct) = loop {
        let (a, b) = (stored(&via_relay), stored(&direct));
        let ups = a.keys().filter(|k| k.starts_with("up{")).count();
        if (ups == 3 && a.keys().eq(b.keys())) || Instant::now() > deadline {
            break (a, b);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let only_via: Vec<&String> = via.keys().filter(|k| !direct.contains_key(*k)).collect();
    let only_direct: Vec<&String> = direct.keys().filter(|k| !via.contains_key(*k)).collect();
    assert_eq!(
        (only_via, only_direct),
        (vec![], vec![]),
        "series stored only through relay, only scraping directly"
    );
    assert!(via.len() > 1000, "{} series", via.len());
    eprintln!(
        "{} series stored alike; text: {families} families (prometheus_client), promtool exit {code}",
        via.len()
    );
    let stable_values: Vec<(&String, &String, &String)> = via
        .iter()
        .filter(|(k, _)| stable(k))
        .map(|(k, v)| (k, v, &direct[k]))
        .collect();
    assert!(stable_values.len() >= 8, "{stable_values:#?}");
    for (series, relayed, scraped) in stable_values {
        assert_eq!(relayed, scraped, "{series}");
    }
}
