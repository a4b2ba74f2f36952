//! Issue 18, item 3: a prometheus_client (Python) app's counter, histogram
//! and summary, all with `_created` samples, keep their types through
//! relay. In text 0.0.4 relay serves a `_created` as prometheus_client
//! does (a gauge family of its own, with HELP), so `promtool check metrics`
//! says of relay's body what it says of the app's; in OpenMetrics the
//! `_created` samples are back in their families, which the strict parsers
//! take; and a Prometheus 2.42 scraping relay records the same metadata
//! types as one scraping the app.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::json::Json;
use common::peers::{require_peer, scraping_relay, start_prometheus, Prometheus};
use common::pyclient::App;
use common::{get, pipe, pyclient, Relay};

/// The app: two counter series, two histogram series and a summary, on a
/// registry of their own (no process or GC collectors).
const APP: &str = "import sys, time
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, start_http_server
r = CollectorRegistry()
c = Counter('app_requests', 'Requests served.', ['path'], registry=r)
c.labels('/').inc(3)
c.labels('/a').inc()
h = Histogram('app_latency_seconds', 'Request latency.', ['path'], buckets=[0.1, 1], registry=r)
h.labels('/').observe(0.5)
h.labels('/a').observe(2)
s = Summary('app_size_bytes', 'Response size.', registry=r)
s.observe(200)
start_http_server(int(sys.argv[1]), addr='127.0.0.1', registry=r)
while True:
    time.sleep(60)
";

/// The families of the app and the type prometheus_client gives each.
const TYPES: [(&str, &str); 3] = [
    ("app_requests", "counter"),
    ("app_latency_seconds", "histogram"),
    ("app_size_bytes", "summary"),
];

fn job(app: &App) -> String {
    format!(
        "scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        app.addr
    )
}

/// relay scraping the app every second, once it serves the app's samples.
fn relay_for(app: &App) -> Relay {
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{}",
        job(app)
    ));
    relay.wait_for_line("app_size_bytes_created{");
    relay
}

/// `promtool check metrics`' exit code and messages for a body.
fn promtool(body: &[u8]) -> (i32, Vec<String>) {
    let mut command = Command::new(require_peer("promtool", "prometheus"));
    command.args(["check", "metrics"]);
    let out = pipe(command, body);
    let mut messages: Vec<String> = format!("{}{}", out.stdout, out.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    messages.sort();
    (out.code, messages)
}

/// The `# TYPE` lines of a body's families named `app_*`.
fn app_types(body: &str) -> Vec<String> {
    body.lines()
        .filter(|l| l.starts_with("# TYPE app_"))
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "needs promtool (prometheus) and the venv with prometheus_client; scripts/test runs it"]
fn a_prometheus_client_apps_types_are_kept_in_both_formats() {
    let app = App::start(APP);
    let relay = relay_for(&app);

    // Text 0.0.4: promtool says of relay's body what it says of the app's.
    let app_text = get(&app.addr, "/metrics", &[]).expect("app /metrics");
    let text = get(&relay.addr, "/metrics", &[]).expect("relay /metrics");
    assert_eq!(
        promtool(&text.body),
        promtool(&app_text.body),
        "promtool on relay's body, on the app's:\n{}",
        text.text()
    );
    assert_eq!(
        app_types(&text.text()),
        app_types(&app_text.text()),
        "{}",
        text.text()
    );
    for created in [
        "app_requests_created",
        "app_latency_seconds_created",
        "app_size_bytes_created",
    ] {
        let help = app_text
            .text()
            .lines()
            .find(|l| l.starts_with(&format!("# HELP {created} ")))
            .map(str::to_owned)
            .expect("the app's HELP line");
        assert!(text.text().contains(&format!("{help}\n")), "{help}");
    }
    pyclient::parse(&text.body, false).expect("prometheus_client text parser");

    // OpenMetrics: the families typed, with their `_created` samples.
    let om = get(
        &relay.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .expect("relay /metrics as OpenMetrics");
    let om_text = om.text();
    pyclient::parse(&om.body, true).expect("prometheus_client strict OpenMetrics parser");
    let ran = pipe(
        common::relay(&["check", "metrics", "--format", "openmetrics"]),
        &om.body,
    );
    assert_eq!(ran.code, 0, "{}{}\n{om_text}", ran.stdout, ran.stderr);
    let want: Vec<String> = TYPES
        .iter()
        .map(|(name, kind)| format!("# TYPE {name} {kind}"))
        .collect();
    assert_eq!(app_types(&om_text), want, "{om_text}");
    // Each series' `_created` right after its own other samples.
    assert!(
        om_text.contains("app_requests_total{instance=")
            && om_text.contains("app_requests_created{instance="),
        "{om_text}"
    );
}

/// What Prometheus's `/api/v1/metadata` says each `app_*` family is.
fn metadata(prom: &Prometheus) -> BTreeMap<String, String> {
    let Some(reply) = get(&prom.addr, "/api/v1/metadata", &[]).filter(|r| r.status == 200) else {
        return BTreeMap::new();
    };
    let Ok(json) = Json::parse(&reply.text()) else {
        return BTreeMap::new();
    };
    let Some(Json::Obj(data)) = json.get("data") else {
        return BTreeMap::new();
    };
    data.iter()
        .filter(|(name, _)| name.starts_with("app_"))
        .filter_map(|(name, entries)| {
            let kind = entries.array()?.first()?.get("type")?.str()?;
            Some((name.clone(), kind.to_owned()))
        })
        .collect()
}

#[test]
#[ignore = "needs prometheus and the venv with prometheus_client; scripts/test runs it"]
fn prometheus_records_the_types_through_relay_as_from_the_app() {
    let prometheus = require_peer("prometheus", "prometheus");
    let app = App::start(APP);
    let relay = relay_for(&app);
    let direct = start_prometheus(&prometheus, &job(&app));
    let via_relay = start_prometheus(&prometheus, &scraping_relay(&relay.addr));
    let deadline = Instant::now() + common::DEADLINE;
    let (via, direct) = loop {
        let (via, direct) = (metadata(&via_relay), metadata(&direct));
        let all = |m: &BTreeMap<String, String>| TYPES.iter().all(|(n, _)| m.contains_key(*n));
        if (all(&via) && all(&direct)) || Instant::now() > deadline {
            break (via, direct);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let want: BTreeMap<String, String> = TYPES
        .iter()
        .map(|(n, k)| ((*n).to_owned(), (*k).to_owned()))
        .collect();
    assert_eq!(direct, want, "scraping the app");
    assert_eq!(via, want, "scraping relay");
}
