//! Issue 21, item 4: UTF-8 metric and label names end to end. A
//! prometheus_client app exposes dotted names (quoted, when asked with
//! `escaping=allow-utf-8`, as Prometheus 3 asks); relay asks for them and
//! keeps them; prometheus_client's parser reads relay's body with the same
//! names; a Prometheus 2.42 scraping relay (no `escaping=` in its Accept)
//! stores the underscore names with `up 1`; remote write carries the
//! UTF-8 names unchanged.

mod common;

use common::peers::{require_peer, scraping_relay, start_prometheus, Kind, Peer};
use common::pyclient::{self, App};
use common::{free_port, get, wait_for, Relay};

/// Dotted metric and label names, and a legacy one beside them.
const APP: &str = "import sys, time
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
r = CollectorRegistry()
c = Counter('http.server.requests', 'Requests served.', ['http.route'], registry=r)
c.labels('/a').inc(5)
g = Gauge('plain_gauge', 'A legacy name.', ['k'], registry=r)
g.labels('v').set(2)
start_http_server(int(sys.argv[1]), addr='127.0.0.1', registry=r)
while True:
    time.sleep(60)
";

/// What Prometheus 3 asks with its default settings (scrape/scrape.go).
const PROMETHEUS_3_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

fn relay_for(app: &App, extra: &str) -> Relay {
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\n{extra}",
        app.addr
    ));
    relay.wait_for_line("plain_gauge{");
    relay
}

#[test]
#[ignore = "needs the venv with prometheus_client; scripts/test runs it"]
fn relay_asks_for_utf8_names_keeps_them_and_prometheus_client_reads_them() {
    let app = App::start(APP);
    let relay = relay_for(&app, "");
    let instance = format!("instance={}", app.addr);
    let asked = get(&relay.addr, "/metrics", &[("Accept", PROMETHEUS_3_ACCEPT)])
        .expect("relay /metrics as Prometheus 3 asks");
    assert_eq!(
        asked.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8")
    );
    let body = asked.text();
    assert!(
        body.contains("# TYPE \"http.server.requests\" counter\n{\"http.server.requests_total\",\"http.route\"=\"/a\","),
        "{body}"
    );
    let samples =
        pyclient::samples(&asked.body, true).expect("prometheus_client reads relay's OpenMetrics");
    for want in [
        format!("http.server.requests_total http.route=/a {instance} job=app"),
        format!("http.server.requests_created http.route=/a {instance} job=app"),
        format!("plain_gauge {instance} job=app k=v"),
    ] {
        assert!(samples.contains(&want), "{want:?} not in {samples:#?}");
    }
    // Text 1.0.0 with UTF-8 names, read by prometheus_client's text parser.
    let text = get(
        &relay.addr,
        "/metrics",
        &[("Accept", "text/plain;version=1.0.0;escaping=allow-utf-8")],
    )
    .expect("text 1.0.0");
    assert_eq!(
        text.header("content-type").as_deref(),
        Some("text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8")
    );
    let samples =
        pyclient::samples(&text.body, false).expect("prometheus_client reads relay's text");
    assert!(
        samples.contains(&format!(
            "http.server.requests_total http.route=/a {instance} job=app"
        )),
        "{samples:#?}"
    );
    // No escaping asked: underscores, as prometheus_client itself answers.
    let plain = get(&relay.addr, "/metrics", &[]).expect("plain");
    assert_eq!(
        plain.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    let samples =
        pyclient::samples(&plain.body, false).expect("prometheus_client reads escaped text");
    assert!(
        samples.contains(&format!(
            "http_server_requests_total http_route=/a {instance} job=app"
        )),
        "{samples:#?}"
    );
    assert!(!plain.text().contains("http.server"), "{}", plain.text());
}

#[test]
#[ignore = "needs the venv with prometheus_client; scripts/test runs it"]
fn legacy_validation_fails_the_scrape_on_a_utf8_name() {
    let app = App::start(APP);
    // Asked with allow-utf-8 (so the app sends dotted names) but validated
    // as legacy: Prometheus 3 fails such a scrape.
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: app\n    metric_name_validation_scheme: legacy\n    metric_name_escaping_scheme: underscores\n    scrape_protocols: [PrometheusText1.0.0]\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        app.addr
    ));
    let up = relay.wait_for_line("up{");
    assert!(up.ends_with(" 1"), "underscores asked, valid names: {up}");
    assert!(relay.metrics().contains("\nhttp_server_requests_total{"));
    drop(relay);
    // A target that sends UTF-8 names anyway (here: fixed text).
    let target = common::Target::start(common::Reply {
        content_type: "text/plain; version=1.0.0; escaping=allow-utf-8".into(),
        ..common::Reply::text("{\"a.b\",x=\"1\"} 1\nok 2\n")
    });
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: app\n    metric_name_validation_scheme: legacy\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        target.addr
    ));
    let up = relay.wait_for_line("up{");
    assert!(up.ends_with(" 0"), "{up}");
    relay.wait_for_log(&["scrape failed", "invalid metric name or label names", "a.b"]);
}

#[test]
#[ignore = "needs prometheus and the venv with prometheus_client; scripts/test runs it"]
fn prometheus_2_stores_underscores_from_relay_and_remote_write_keeps_utf8() {
    let prometheus = require_peer("prometheus", "prometheus");
    let app = App::start(APP);
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Peer::start(
        Kind::Prometheus,
        &prometheus,
        &format!("127.0.0.1:{}", free_port()),
        dir.path(),
    );
    let relay = relay_for(
        &app,
        &format!("remote_write:\n  - url: {}\n", receiver.write_url()),
    );
    let scraper = start_prometheus(&prometheus, &scraping_relay(&relay.addr));
    // Prometheus 2.42 scraping relay: underscore names, up 1.
    let stored = wait_for("Prometheus 2.42 to store the escaped names", || {
        let path = format!(
            "/api/v1/series?match[]={}",
            common::peers::urlencode("{__name__=~\".+\"}")
        );
        let text = get(&scraper.addr, &path, &[])?.text();
        text.contains("http_server_requests_total").then_some(text)
    });
    assert!(stored.contains("\"http_route\":\"/a\""), "{stored}");
    assert!(!stored.contains("http.server"), "{stored}");
    let up = wait_for("up of relay", || {
        let path = format!("/api/v1/query?query={}", common::peers::urlencode("up"));
        let text = get(&scraper.addr, &path, &[])?.text();
        text.contains("relay-sidecar").then_some(text)
    });
    assert!(up.contains("\"1\"]"), "{up}");
    // The remote-write receiver got the names as the app wrote them.
    let series = wait_for("the receiver to store the UTF-8 names", || {
        let path = format!(
            "/api/v1/series?match[]={}",
            common::peers::urlencode("{__name__=~\".+\"}")
        );
        let text = get(&receiver.addr, &path, &[])?.text();
        text.contains("http.server.requests_total").then_some(text)
    });
    assert!(series.contains("\"http.route\":\"/a\""), "{series}");
    assert!(!series.contains("http_server_requests"), "{series}");
}

/// Target labels (`static_configs[].labels`) and `global.external_labels`
/// with UTF-8 names: served quoted to a scraper that asks for UTF-8,
/// escaped to one that does not; refused by `relay check config` under
/// `legacy`, naming the field.
#[test]
fn utf8_target_and_external_label_names_are_served_and_refused_under_legacy() {
    let target = common::Target::start(common::Reply::text(
        "# TYPE shop_orders gauge\nshop_orders 3\n",
    ));
    let config = |global: &str| {
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels: {{\"k8s.pod\": p1}}\n{global}scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"], labels: {{\"app.kubernetes.io/name\": shop}}}}]\n",
            target.addr
        )
    };
    let relay = Relay::start(&config(""));
    let utf8 = wait_for("relay to serve shop_orders with UTF-8 names", || {
        get(
            &relay.addr,
            "/metrics",
            &[("Accept", "text/plain;version=1.0.0;escaping=allow-utf-8")],
        )
        .filter(|r| r.status == 200)
        .map(|r| r.text())
        .filter(|t| t.contains("shop_orders{"))
    });
    let want = format!(
        "shop_orders{{\"app.kubernetes.io/name\"=\"shop\",instance=\"{}\",job=\"app\",\"k8s.pod\"=\"p1\"}} 3\n",
        target.addr
    );
    assert!(utf8.contains(&want), "missing {want:?} in\n{utf8}");
    let plain = relay.metrics_ok();
    let want = format!(
        "shop_orders{{app_kubernetes_io_name=\"shop\",instance=\"{}\",job=\"app\",k8s_pod=\"p1\"}} 3\n",
        target.addr
    );
    assert!(plain.contains(&want), "missing {want:?} in\n{plain}");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("legacy.yml");
    std::fs::write(&path, config("  metric_name_validation_scheme: legacy\n")).expect("write");
    let ran = common::pipe(
        common::relay(&["check", "config", &path.display().to_string()]),
        b"",
    );
    assert_ne!(ran.code, 0, "legacy must refuse the UTF-8 label names");
    assert!(
        ran.stderr.contains("global.external_labels.k8s.pod") && ran.stderr.contains("legacy"),
        "{}",
        ran.stderr
    );
}

/// Quoted names holding `"`, `\` and a newline, escaped inside their quotes
/// (text 1.0.0 and OpenMetrics), as Prometheus 3 reads and expfmt writes them.
const ESCAPED_TEXT: &str = "# HELP \"a\\\"b\" Odd names.\n# TYPE \"a\\\"b\" gauge\n{\"a\\\"b\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 1\n";
const ESCAPED_OPENMETRICS: &str = "# HELP \"g\\\"h\" Odd names.\n# TYPE \"g\\\"h\" gauge\n{\"g\\\"h\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\"} 2\n# EOF\n";

/// A relay scraping one text 1.0.0 target and one OpenMetrics target with
/// [`ESCAPED_TEXT`] and [`ESCAPED_OPENMETRICS`], and one protobuf target
/// whose names hold the same characters; returns it once it serves all.
fn relay_with_escaped_names() -> (Relay, Vec<common::Target>) {
    use common::protoenc::client;
    let text = common::Target::start(common::Reply {
        content_type: "text/plain; version=1.0.0; escaping=allow-utf-8".into(),
        ..common::Reply::text(ESCAPED_TEXT)
    });
    let om = common::Target::start(common::Reply {
        content_type: "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8".into(),
        ..common::Reply::text(ESCAPED_OPENMETRICS)
    });
    let family = client::family(
        "p\"q",
        "Odd names.",
        client::GAUGE,
        vec![client::metric(
            &[("c\\d", "x"), ("e\nf", "y")],
            client::GAUGE_FIELD,
            client::value(3.0),
        )],
    );
    let proto = common::Target::start(common::Reply {
        content_type: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited".into(),
        body: family.delimited(),
        ..common::Reply::text("")
    });
    let job = |name: &str, t: &common::Target, protocols: &str| {
        format!("  - job_name: {name}\n    scrape_protocols: [{protocols}]\n    static_configs: [{{targets: [\"{}\"]}}]\n", t.addr)
    };
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}{}",
        job("text", &text, "PrometheusText1.0.0"),
        job("om", &om, "OpenMetricsText1.0.0"),
        job("proto", &proto, "PrometheusProto"),
    ));
    wait_for("relay to serve the three families", || {
        let body = relay.metrics();
        (body.contains("\na_b{") && body.contains("\ng_h{") && body.contains("\np_q{"))
            .then_some(())
    });
    (relay, vec![text, om, proto])
}

/// Names with `"`, `\` and a newline from text 1.0.0, OpenMetrics and
/// protobuf: kept (no failed scrape), served back quoted and escaped to a
/// scraper asking for UTF-8, escaped to underscores to one that does not;
/// `relay check metrics` passes what it serves.
#[test]
fn names_with_quotes_backslashes_and_newlines_are_served_back_escaped() {
    let (relay, targets) = relay_with_escaped_names();
    for (format, accept) in [
        ("text", "text/plain;version=1.0.0;escaping=allow-utf-8"),
        (
            "openmetrics",
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
        ),
    ] {
        let body = get(&relay.addr, "/metrics", &[("Accept", accept)])
            .expect("relay /metrics")
            .text();
        for (name, job, target, value) in [
            ("a\\\"b", "text", &targets[0], 1),
            ("g\\\"h", "om", &targets[1], 2),
            ("p\\\"q", "proto", &targets[2], 3),
        ] {
            let want = format!(
                "# TYPE \"{name}\" gauge\n{{\"{name}\",\"c\\\\d\"=\"x\",\"e\\nf\"=\"y\",instance=\"{}\",job=\"{job}\"}} {value}\n",
                target.addr
            );
            assert!(
                body.contains(&want),
                "{format}: missing {want:?} in\n{body}"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("served");
        std::fs::write(&path, &body).expect("write");
        let ran = common::pipe(
            common::relay(&[
                "check",
                "metrics",
                "--format",
                format,
                &path.display().to_string(),
            ]),
            b"",
        );
        assert_eq!(
            ran.code, 0,
            "{format}: {}{}\n{body}",
            ran.stdout, ran.stderr
        );
    }
    let plain = relay.metrics_ok();
    for (name, job, target, value) in [
        ("a_b", "text", &targets[0], 1),
        ("g_h", "om", &targets[1], 2),
        ("p_q", "proto", &targets[2], 3),
    ] {
        let want = format!(
            "# TYPE {name} gauge\n{name}{{c_d=\"x\",e_f=\"y\",instance=\"{}\",job=\"{job}\"}} {value}\n",
            target.addr
        );
        assert!(plain.contains(&want), "missing {want:?} in\n{plain}");
    }
    assert!(!plain.contains("{\""), "{plain}");
}

/// prometheus_client's parsers (text and OpenMetrics) read relay's quoted,
/// escaped names back as the targets wrote them.
#[test]
#[ignore = "needs the venv with prometheus_client; scripts/test runs it"]
fn prometheus_client_reads_back_names_with_quotes_backslashes_and_newlines() {
    let (relay, targets) = relay_with_escaped_names();
    for (openmetrics, accept) in [
        (false, "text/plain;version=1.0.0;escaping=allow-utf-8"),
        (
            true,
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
        ),
    ] {
        let body = get(&relay.addr, "/metrics", &[("Accept", accept)]).expect("relay /metrics");
        let samples = pyclient::samples_repr(&body.body, openmetrics)
            .unwrap_or_else(|e| panic!("prometheus_client: {e}\n{}", body.text()));
        for (name, job, target) in [
            ("a\"b", "text", &targets[0]),
            ("g\"h", "om", &targets[1]),
            ("p\"q", "proto", &targets[2]),
        ] {
            let want = format!(
                "('{name}', [('c\\\\d', 'x'), ('e\\nf', 'y'), ('instance', '{}'), ('job', '{job}')])",
                target.addr
            );
            assert!(samples.contains(&want), "{want} not in {samples:#?}");
        }
    }
}
