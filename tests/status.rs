//! The status page and Prometheus's JSON APIs on relay's port: the page
//! in a real browser (headless Chromium: both targets with their health,
//! the failing one's error, the remote-write queue, nothing a label or an
//! error carries runs as markup, basic auth enforced), `/api/v1/targets`
//! against a real Prometheus 2.42's answer for the same targets (field
//! names and JSON types, recursively), and buildinfo, config (no secret)
//! and tsdb (counts of a known exposition).

mod common;

use std::path::Path;
use std::process::Command;

use common::peers::{require_peer, start_prometheus, Kind, Peer};
use common::{free_port, get, post, wait_for, Relay, Reply, Target};
use serde_json::Value;

/// A label value and a metric label that would run as script if the page
/// did not escape them.
const INJECTED: &str = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>";

/// An exposition with a label value full of markup.
fn exposition() -> String {
    "# TYPE app_requests_total counter\n\
     app_requests_total{path=\"/a\",code=\"200\"} 7\n\
     app_requests_total{path=\"<script>alert(2)</script>\",code=\"500\"} 1\n"
        .to_owned()
}

/// `GET path` as JSON (status 200).
fn api(addr: &str, path: &str, headers: &[(&str, &str)]) -> Value {
    let response = get(addr, path, headers).unwrap_or_else(|| panic!("GET {path}: no answer"));
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{path}: {e}: {}", response.text()))
}

/// The active targets of an `/api/v1/targets` answer, once every one of
/// them was scraped (health up or down).
fn scraped_targets(addr: &str, want: usize) -> Vec<Value> {
    wait_for("every target scraped", || {
        // Without remote write relay scrapes when /metrics is read.
        let _ = get(addr, "/metrics", &[]);
        // None until the server answers (Prometheus starting).
        let response = get(addr, "/api/v1/targets", &[]).filter(|r| r.status == 200)?;
        let body: Value = serde_json::from_slice(&response.body).ok()?;
        let active = body["data"]["activeTargets"].as_array()?.clone();
        let scraped = active.iter().all(|t| t["health"] != "unknown");
        (active.len() == want && scraped).then_some(active)
    })
}

/// Runs headless Chromium on `url` with `args`; its stdout and stderr.
fn chromium(chromium: &Path, profile: &Path, url: &str, args: &[&str]) -> (String, String) {
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A 1200×900 screenshot of `url` into `dir`, checked to be a PNG that
/// is not blank; its path.
fn screenshot(browser: &Path, dir: &Path, url: &str) -> std::path::PathBuf {
    let shot = dir.join("status-page.png");
    chromium(
        browser,
        &dir.join("profile"),
        url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    shot
}

/// What the browser console said, from Chromium's log: script errors and
/// console messages (the page has no script, so none are expected).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains(":INFO:console"))
        .collect()
}

/// The config of the browser test: a healthy target, a failing one (a
/// closed port), remote write to `write_url` and to the closed port.
fn page_config(healthy: &str, closed: &str, write_url: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: app\n    static_configs:\n      - targets: [\"{healthy}\"]\n        labels: {{team: \"{INJECTED}\"}}\n\
         \x20 - job_name: gone\n    static_configs:\n      - targets: [\"{closed}\"]\n\
         remote_write:\n  - url: {write_url}\n    name: central\n\
         \x20 - url: http://{closed}/api/v1/write\n    name: unreachable\n"
    )
}

/// What a small web app exposes: requests by route, method and code, and
/// a latency histogram.
fn shop_exposition() -> String {
    let mut body = String::from(
        "# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\n",
    );
    for route in ["/", "/cart", "/checkout", "/items", "/login"] {
        for (method, code, n) in [("GET", "200", 930), ("GET", "404", 12), ("POST", "500", 3)] {
            body += &format!("http_requests_total{{route=\"{route}\",method=\"{method}\",code=\"{code}\"}} {n}\n");
        }
    }
    body += "# HELP http_request_duration_seconds Latency.\n# TYPE http_request_duration_seconds histogram\n";
    for route in ["/", "/cart", "/checkout", "/items", "/login"] {
        for (le, n) in [("0.05", 700), ("0.25", 900), ("1", 940), ("+Inf", 945)] {
            body += &format!(
                "http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}\n"
            );
        }
        body += &format!("http_request_duration_seconds_sum{{route=\"{route}\"}} 61.5\nhttp_request_duration_seconds_count{{route=\"{route}\"}} 945\n");
    }
    body
}

/// The picture the README shows, taken here: a shop app, a payments
/// target that refuses connections, remote write to a real Prometheus.
/// `RELAY_SCREENSHOT=$PWD/docs/status-page.png cargo test --test status --
/// --include-ignored readme` writes it to the docs.
#[test]
#[ignore = "needs chromium and prometheus; scripts/test runs it"]
fn the_readme_screenshot_shows_a_healthy_and_a_failing_target() {
    let browser = require_peer("chromium", "chromium");
    let prometheus = require_peer("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Peer::start(
        Kind::Prometheus,
        &prometheus,
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("receiver"),
    );
    let shop = Target::start(Reply::text(&shop_exposition()));
    let closed = format!("127.0.0.1:{}", free_port());
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: shop\n    static_configs:\n      - targets: [\"{}\"]\n\
         \x20 - job_name: payments\n    static_configs:\n      - targets: [\"{closed}\"]\n\
         remote_write:\n  - url: {}\n    name: central\n",
        shop.addr,
        receiver.write_url()
    ));
    scraped_targets(&relay.addr, 2);
    wait_for("samples at the receiver", || {
        (!receiver.raw("up").is_empty()).then_some(())
    });
    let url = format!("http://{}/", relay.addr);
    // The histogram's 20 bucket series in the top list (counted from the
    // loop's cache on request: polled, as a loop may be mid-scrape), and
    // the failing target's error.
    let want = "<code>http_request_duration_seconds_bucket</code></td><td class=\"n\">20</td>";
    let dom = wait_for("the shop's top lists in the browser", || {
        let (dom, _) = chromium(&browser, &dir.path().join("dom"), &url, &["--dump-dom"]);
        dom.contains(want).then_some(dom)
    });
    assert!(dom.contains("Connection refused"), "{dom}");
    let shot = screenshot(&browser, dir.path(), &url);
    if let Some(to) = std::env::var_os("RELAY_SCREENSHOT") {
        std::fs::copy(&shot, &to).expect("copy the screenshot");
    }
}

#[test]
#[ignore = "needs chromium and prometheus; scripts/test runs it"]
fn the_page_in_chromium_shows_targets_health_errors_and_the_queue() {
    let browser = require_peer("chromium", "chromium");
    let prometheus = require_peer("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Peer::start(
        Kind::Prometheus,
        &prometheus,
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("receiver"),
    );
    let app = Target::start(Reply::text(&exposition()));
    let closed = format!("127.0.0.1:{}", free_port());
    let relay = Relay::start(&page_config(&app.addr, &closed, &receiver.write_url()));
    let targets = scraped_targets(&relay.addr, 2);
    let failing = targets
        .iter()
        .find(|t| t["scrapePool"] == "gone")
        .expect("the failing target");
    assert_eq!(failing["health"], "down", "{failing}");
    let error = failing["lastError"].as_str().unwrap_or("").to_owned();
    assert!(error.contains("refused"), "{error}");
    // The queue has delivered something: its row is not a placeholder.
    wait_for("samples at the receiver", || {
        let stored = receiver.raw("up");
        (!stored.is_empty()).then_some(())
    });
    // The unreachable queue has failed a send.
    wait_for("the unreachable queue's error on the page", || {
        let page = get(&relay.addr, "/", &[])?.text();
        let row = page
            .split("<tr class=queue>")
            .find(|r| r.contains("unreachable"))?;
        row.contains("refused").then_some(())
    });

    let url = format!("http://{}/", relay.addr);
    let (dom, log) = chromium(&browser, &dir.path().join("profile"), &url, &["--dump-dom"]);
    assert!(dom.contains("<title>relay status</title>"), "{dom}");
    assert_eq!(console_lines(&log), Vec::<&str>::new(), "{log}");
    // Both targets, each with its health; the failing one with its error.
    let rows: Vec<&str> = dom.split("<tr class=\"target\">").skip(1).collect();
    assert_eq!(rows.len(), 2, "{dom}");
    let row = |url: &str| {
        rows.iter()
            .find(|r| r.contains(url))
            .unwrap_or_else(|| panic!("no row for {url} in {dom}"))
            .to_owned()
    };
    let healthy = row(&format!("http://{}/metrics", app.addr));
    assert!(
        healthy.contains("<span class=\"health up\">up</span>"),
        "{healthy}"
    );
    let gone = row(&format!("http://{closed}/metrics"));
    assert!(
        gone.contains("<span class=\"health down\">down</span>"),
        "{gone}"
    );
    assert!(gone.contains("Connection refused"), "{gone}");
    // The queues, by name and receiver URL, the failing one with its
    // error; and the WAL line.
    let queue = |name: &str| {
        dom.split("<tr class=\"queue\">")
            .find(|r| r.starts_with(&format!("<td>{name}</td>")))
            .unwrap_or_else(|| panic!("no queue {name} in {dom}"))
            .to_owned()
    };
    let central = queue("central");
    assert!(central.contains(&receiver.write_url()), "{central}");
    assert!(!central.contains("refused"), "{central}");
    let unreachable = queue("unreachable");
    assert!(
        unreachable.contains(&format!("http://{closed}/api/v1/write")),
        "{unreachable}"
    );
    assert!(unreachable.contains("Connection refused"), "{unreachable}");
    assert!(dom.contains("id=\"wal\""), "{dom}");
    // The healthy target's top lists: its one metric name, two series.
    assert!(
        dom.contains("<code>app_requests_total</code></td><td class=\"n\">2</td>"),
        "{dom}"
    );
    // Markup from a target label and a scraped label value is text: no
    // element came of it, the title is the page's own.
    assert!(!dom.contains("<script"), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
    assert!(dom.contains("&lt;script&gt;document.title"), "{dom}");
    // A screenshot of this page (the README's is taken by
    // the_readme_screenshot_shows_a_healthy_and_a_failing_target).
    screenshot(&browser, dir.path(), &url);
}

#[test]
#[ignore = "needs chromium; scripts/test runs it"]
fn basic_auth_guards_the_page_and_the_apis() {
    let browser = require_peer("chromium", "chromium");
    let dir = tempfile::tempdir().expect("tempdir");
    let password = "status-Pa55word";
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
    std::fs::write(&web, format!("basic_auth_users:\n  alice: {hash}\n"))
        .expect("write web config");
    let app = Target::start(Reply::text(&exposition()));
    let relay = Relay::start_args(
        &format!(
            "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"{}\"]\n",
            app.addr
        ),
        &["--web.config.file", &web.display().to_string()],
    );
    for path in [
        "/",
        "/api/v1/targets",
        "/api/v1/status/config",
        "/api/v1/status/buildinfo",
        "/api/v1/status/tsdb",
    ] {
        let answer = get(&relay.addr, path, &[]).expect("an answer");
        assert_eq!(answer.status, 401, "{path} without credentials");
        assert_eq!(
            answer.header("WWW-Authenticate").as_deref(),
            Some("Basic"),
            "{path}"
        );
    }
    // The browser without credentials gets the 401, not the page.
    let url = format!("http://{}/", relay.addr);
    let (dom, _) = chromium(&browser, &dir.path().join("profile"), &url, &["--dump-dom"]);
    assert!(!dom.contains("relay status"), "{dom}");
    // With them (in the URL, as a user would type them), the page.
    let with = format!("http://alice:{password}@{}/", relay.addr);
    let (dom, log) = chromium(
        &browser,
        &dir.path().join("profile"),
        &with,
        &["--dump-dom"],
    );
    assert!(dom.contains("<title>relay status</title>"), "{dom}\n{log}");
    assert!(
        dom.contains(&format!("http://{}/metrics", app.addr)),
        "{dom}"
    );
    assert!(!dom.contains(password), "{dom}");
}

/// Keys and JSON types of `ours` against `theirs`, recursively; objects
/// whose keys are data (label maps) compare only their values' types.
/// `extra` keys may be in ours alone. Returns the differences.
fn shape_diff(path: &str, ours: &Value, theirs: &Value, extra: &[&str], out: &mut Vec<String>) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if kind(ours) != kind(theirs) {
        out.push(format!(
            "{path}: relay {} vs Prometheus {}",
            kind(ours),
            kind(theirs)
        ));
        return;
    }
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let data_keys = path.ends_with("abels");
            if !data_keys {
                for k in b.keys().filter(|k| !a.contains_key(*k)) {
                    out.push(format!("{path}.{k}: missing in relay"));
                }
                for k in a
                    .keys()
                    .filter(|k| !b.contains_key(*k) && !extra.contains(&k.as_str()))
                {
                    out.push(format!("{path}.{k}: not in Prometheus"));
                }
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    shape_diff(&format!("{path}.{k}"), v, w, extra, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                shape_diff(&format!("{path}[{i}]"), v, w, extra, out);
            }
        }
        _ => {}
    }
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn targets_api_has_prometheus_field_names_and_types() {
    let prometheus = require_peer("prometheus", "prometheus");
    let app = Target::start(Reply::text(&exposition()));
    let closed = format!("127.0.0.1:{}", free_port());
    let jobs = format!(
        "scrape_configs:\n\
         \x20 - job_name: app\n    static_configs:\n      - targets: [\"{}\"]\n        labels: {{team: a}}\n\
         \x20 - job_name: gone\n    static_configs:\n      - targets: [\"{closed}\"]\n",
        app.addr
    );
    let central = start_prometheus(&prometheus, &jobs);
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{jobs}"
    ));
    let theirs = scraped_targets(&central.addr, 2);
    let ours = scraped_targets(&relay.addr, 2);
    let by_url = |list: &[Value], url: &str| {
        list.iter()
            .find(|t| t["scrapeUrl"] == url)
            .unwrap_or_else(|| panic!("no {url} in {list:?}"))
            .clone()
    };
    for url in [
        format!("http://{}/metrics", app.addr),
        format!("http://{closed}/metrics"),
    ] {
        let (a, b) = (by_url(&ours, &url), by_url(&theirs, &url));
        let mut diff = Vec::new();
        shape_diff("activeTargets[]", &a, &b, &[], &mut diff);
        assert_eq!(
            diff,
            Vec::<String>::new(),
            "relay:\n{a:#}\nPrometheus:\n{b:#}"
        );
        // The same targets: the same labels, pools, health and settings.
        for key in [
            "discoveredLabels",
            "labels",
            "scrapePool",
            "scrapeUrl",
            "health",
            "scrapeInterval",
            "scrapeTimeout",
        ] {
            assert_eq!(a[key], b[key], "{key} of {url}");
        }
        assert_eq!(
            a["lastError"] == "",
            b["lastError"] == "",
            "lastError of {url}: {a} vs {b}"
        );
    }
    // The whole answer: 2.42 has no droppedTargetCounts (3.x does).
    let whole = |addr: &str| api(addr, "/api/v1/targets?state=any", &[]);
    let (a, b) = (whole(&relay.addr), whole(&central.addr));
    let mut diff = Vec::new();
    shape_diff("", &a, &b, &["droppedTargetCounts"], &mut diff);
    assert_eq!(
        diff,
        Vec::<String>::new(),
        "relay:\n{a:#}\nPrometheus:\n{b:#}"
    );
    assert_eq!(
        a["data"]["droppedTargetCounts"],
        serde_json::json!({"app": 0, "gone": 0})
    );
    // ?state= as Prometheus reads it.
    for (state, active, dropped) in [("active", 2, 0), ("dropped", 0, 0), ("ANY", 2, 0)] {
        let answer = |addr: &str| api(addr, &format!("/api/v1/targets?state={state}"), &[]);
        for body in [answer(&relay.addr), answer(&central.addr)] {
            assert_eq!(
                body["data"]["activeTargets"].as_array().map(Vec::len),
                Some(active),
                "{state}: {body}"
            );
            assert_eq!(
                body["data"]["droppedTargets"].as_array().map(Vec::len),
                Some(dropped),
                "{state}: {body}"
            );
        }
    }
}

#[test]
fn dropped_targets_are_listed_with_their_discovered_labels() {
    let relay = Relay::start(
        "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n    relabel_configs:\n      - {source_labels: [__address__], regex: '.*:2', action: drop}\n",
    );
    let body = api(&relay.addr, "/api/v1/targets", &[]);
    let data = &body["data"];
    assert_eq!(
        data["activeTargets"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    assert_eq!(
        data["droppedTargetCounts"],
        serde_json::json!({"app": 1}),
        "{body}"
    );
    let dropped = &data["droppedTargets"][0];
    assert_eq!(dropped["scrapePool"], "app", "{body}");
    assert_eq!(
        dropped["discoveredLabels"]["__address__"], "127.0.0.1:2",
        "{body}"
    );
    assert_eq!(
        dropped["discoveredLabels"]["__metrics_path__"], "/metrics",
        "{body}"
    );
    assert_eq!(dropped["discoveredLabels"]["job"], "app", "{body}");
}

#[test]
fn buildinfo_and_config_without_secrets() {
    let relay = Relay::start(
        "scrape_configs:\n\
         \x20 - job_name: app\n    basic_auth: {username: u, password: Basic-Secret-1}\n    static_configs:\n      - targets: [\"127.0.0.1:1\"]\n\
         \x20 - job_name: api\n    authorization: {credentials: Bearer-Secret-2}\n    static_configs:\n      - targets: [\"127.0.0.1:2\"]\n\
         remote_write:\n  - url: http://writer:Url-Secret-3@127.0.0.1:3/api/v1/write\n    headers: {X-Api-Key: Header-Secret-4}\n",
    );
    let info = api(&relay.addr, "/api/v1/status/buildinfo", &[]);
    assert_eq!(info["status"], "success");
    assert_eq!(info["data"]["version"], env!("CARGO_PKG_VERSION"), "{info}");
    for key in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(info["data"][key].is_string(), "{key} in {info}");
    }
    let config = api(&relay.addr, "/api/v1/status/config", &[]);
    let yaml = config["data"]["yaml"]
        .as_str()
        .unwrap_or_else(|| panic!("no yaml in {config}"));
    for secret in [
        "Basic-Secret-1",
        "Bearer-Secret-2",
        "Url-Secret-3",
        "Header-Secret-4",
    ] {
        assert!(!yaml.contains(secret), "{secret} shown:\n{yaml}");
    }
    assert!(yaml.contains("password: <secret>"), "{yaml}");
    assert!(yaml.contains("credentials: <secret>"), "{yaml}");
    assert!(
        yaml.contains("url: http://writer:xxxxx@127.0.0.1:3/api/v1/write"),
        "{yaml}"
    );
    assert!(yaml.contains("job_name: api"), "{yaml}");
    // The page shows no secret either.
    let page = get(&relay.addr, "/", &[]).expect("the page");
    assert_eq!(
        page.header("Content-Type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("Content-Security-Policy").unwrap_or_default();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let page = page.text();
    for secret in [
        "Basic-Secret-1",
        "Bearer-Secret-2",
        "Url-Secret-3",
        "Header-Secret-4",
    ] {
        assert!(!page.contains(secret), "{secret} shown:\n{page}");
    }
}

#[test]
fn tsdb_counts_a_known_exposition() {
    let app = Target::start(Reply::text(
        "# TYPE http_requests_total counter\n\
         http_requests_total{code=\"200\",path=\"/a\"} 1\n\
         http_requests_total{code=\"200\",path=\"/b\"} 1\n\
         http_requests_total{code=\"500\",path=\"/a\"} 1\n\
         # TYPE temperature gauge\n\
         temperature 3\n",
    ));
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"{}\"]\n",
        app.addr
    ));
    // Serving only: a GET of /metrics has the target scraped.
    assert!(relay.metrics_ok().contains("temperature"));
    let tsdb = api(&relay.addr, "/api/v1/status/tsdb", &[]);
    let data = &tsdb["data"];
    let list = |key: &str| -> Vec<(String, u64)> {
        data[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key} in {tsdb}"))
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_owned(),
                    s["value"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let pairs = |v: &[(&str, u64)]| {
        v.iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(data["headStats"]["numSeries"], 4, "{tsdb}");
    // __name__ 2, code 2, path 2, instance 1, job 1.
    assert_eq!(data["headStats"]["numLabelPairs"], 8, "{tsdb}");
    assert_eq!(
        list("seriesCountByMetricName"),
        pairs(&[("http_requests_total", 3), ("temperature", 1)])
    );
    assert_eq!(
        list("labelValueCountByLabelName"),
        pairs(&[
            ("__name__", 2),
            ("code", 2),
            ("path", 2),
            ("instance", 1),
            ("job", 1)
        ])
    );
    let instance = format!("instance={}", app.addr);
    let top = list("seriesCountByLabelValuePair");
    assert_eq!(
        top[..2],
        pairs(&[(instance.as_str(), 4), ("job=app", 4)])[..],
        "{tsdb}"
    );
    assert!(
        top.contains(&("__name__=http_requests_total".to_owned(), 3)),
        "{tsdb}"
    );
    assert!(top.contains(&("code=200".to_owned(), 2)), "{tsdb}");
    // job: "app" × 4 series.
    assert!(
        list("memoryInBytesByLabelName").contains(&("job".to_owned(), 12)),
        "{tsdb}"
    );
    let limited = api(&relay.addr, "/api/v1/status/tsdb?limit=1", &[]);
    assert_eq!(
        limited["data"]["seriesCountByMetricName"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let refused = get(&relay.addr, "/api/v1/status/tsdb?limit=0", &[]).expect("an answer");
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.text().contains("limit must be a positive number"),
        "{}",
        refused.text()
    );
}

/// The comparison the Prometheus test relies on finds what it must.
#[test]
fn shape_diff_finds_missing_extra_and_retyped_fields() {
    let theirs =
        serde_json::json!({"a": 1, "b": "x", "labels": {"job": "p"}, "list": [{"c": true}]});
    let ours = serde_json::json!({"b": 2, "labels": {"other": "q"}, "list": [{"c": "yes"}], "d": null, "e": 0});
    let mut diff = Vec::new();
    shape_diff("", &ours, &theirs, &["e"], &mut diff);
    diff.sort();
    assert_eq!(
        diff,
        vec![
            ".a: missing in relay",
            ".b: relay number vs Prometheus string",
            ".d: not in Prometheus",
            ".list[0].c: relay string vs Prometheus bool",
        ]
    );
}

/// A reload shows on the page: a removed queue leaves it, a refused
/// reload says so while the config before it runs on.
#[test]
fn reloads_show_on_the_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let closed = format!("127.0.0.1:{}", free_port());
    let base = format!(
        "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"{closed}\"]\n\
         relay:\n  listen_address: \"{addr}\"\n  wal_dir: \"{}\"\n",
        dir.path().join("wal").display()
    );
    let with_queue = format!(
        "{base}remote_write:\n  - url: http://{closed}/api/v1/write\n    name: old-queue\n"
    );
    std::fs::write(&path, &with_queue).expect("write config");
    let relay = Relay::start_file(&path, &addr);
    let page = || {
        get(&relay.addr, "/", &[])
            .map(|r| r.text())
            .unwrap_or_default()
    };
    assert!(page().contains("<td>old-queue</td>"), "{}", page());
    assert!(page().contains("config loaded at"), "{}", page());
    // The queue removed by a reload leaves the page.
    std::fs::write(&path, &base).expect("write config");
    let reload = || {
        wait_for("a reload not told to wait", || {
            post(&relay.addr, "/-/reload").filter(|a| a.status != 429)
        })
    };
    assert_eq!(reload().status, 200);
    let now = page();
    assert!(!now.contains("old-queue"), "{now}");
    assert!(now.contains("No remote_write configured"), "{now}");
    // A refused reload: said on the page; the running config stays.
    std::fs::write(&path, base.replace("job_name", "job_nam")).expect("write config");
    assert_eq!(reload().status, 500);
    let now = page();
    assert!(now.contains("the last config reload failed"), "{now}");
    let config = api(&relay.addr, "/api/v1/status/config", &[]);
    assert!(
        config["data"]["yaml"]
            .as_str()
            .unwrap_or("")
            .contains("job_name: app"),
        "{config}"
    );
}
