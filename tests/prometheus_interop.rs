//! A real Prometheus (Debian's package) scrapes relay's :9090 with
//! `honor_labels: true`, as the classic sidecar setup does, and must store
//! the app's series under the app's own `job` and `instance`; and what it
//! stores through relay must equal what a second Prometheus stores scraping
//! the app itself with the same rules.

mod common;

use common::peers::{require_peer, scraping_relay, start_prometheus, Prometheus};
use common::{get, wait_for, Relay, Reply, Target};

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn prometheus_scraping_relay_sees_the_apps_series() {
    let prometheus = require_peer("prometheus", "prometheus");
    let target = Target::start(Reply::text(
        "# HELP orders_total Orders placed.\n# TYPE orders_total counter\norders_total{shop=\"eu\"} 42\n",
    ));
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: shop-app\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [\"{}\"]\n",
        target.addr
    ));
    relay.wait_for_line("orders_total{");
    let prom = start_prometheus(&prometheus, &scraping_relay(&relay.addr));
    let body = wait_for("Prometheus to have orders_total from relay", || {
        get(&prom.addr, "/api/v1/query?query=orders_total", &[])
            .map(|r| r.text())
            .filter(|t| t.contains("\"orders_total\""))
    });
    assert!(body.contains("\"job\":\"shop-app\""), "{body}");
    assert!(
        body.contains(&format!("\"instance\":\"{}\"", target.addr)),
        "{body}"
    );
    assert!(body.contains("\"shop\":\"eu\""), "{body}");
    assert!(body.contains(",\"42\"]"), "{body}");
    assert!(
        !body.contains("relay-sidecar"),
        "the app's job must win with honor_labels: {body}"
    );
    // relay's own up series for the app also arrives.
    let up = wait_for("Prometheus to have up{job=\"shop-app\"}", || {
        get(
            &prom.addr,
            "/api/v1/query?query=up%7Bjob%3D%22shop-app%22%7D",
            &[],
        )
        .map(|r| r.text())
        .filter(|t| t.contains("\"result\":[{"))
    });
    assert!(up.contains(",\"1\"]"), "{up}");
}

/// An app exposition with the cases where a relay could go wrong: escapes,
/// special floats, labels that clash with target labels, every type.
const RICH_APP: &str = r#"# HELP http_requests_total Requests by route and code.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/api/v1/items/7",code="200"} 1027
http_requests_total{method="POST",route="/api/v1/orders/1",code="500"} 3
http_requests_total{method="Get",route="/healthz",code="200"} 0.30000000000000004
# TYPE request_seconds histogram
request_seconds_bucket{route="/a",le="0.005"} 0
request_seconds_bucket{route="/a",le="0.1"} 12
request_seconds_bucket{route="/a",le="+Inf"} 13
request_seconds_sum{route="/a"} 1.2345e-05
request_seconds_count{route="/a"} 13
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} NaN
rpc_seconds{quantile="0.99"} 1.7976931348623157e+308
rpc_seconds_sum 5e-324
rpc_seconds_count 0
# TYPE temperature gauge
temperature{meta_room="lab",meta_floor="2"} -0
temperature{meta_room="hall \"B\"",meta_floor="0"} -Inf
temperature{meta_room="back\\slash\nnewline",meta_floor="1"} +Inf
# HELP clashing Labels that clash with the target's.
clashing{job="from-app",instance="app:1",exported_job="older"} 1e21
clashing{job="",instance="x"} 7
go_goroutines 42
pair{left="same",right="same"} 1
pair{left="this",right="that"} 2
"#;

/// Rules exercising each action; they also read `job` and `instance`,
/// which metric relabeling sees because target labels come first.
const RICH_RULES: &str = r#"    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
      - source_labels: [route]
        regex: /api/v1/(?P<resource>[a-z]+)/.*
        target_label: resource
        replacement: ${resource}
      - source_labels: [job, instance]
        separator: "@"
        target_label: origin
      - source_labels: [__name__, code]
        modulus: 4
        target_label: shard
        action: hashmod
      - regex: meta_(.+)
        replacement: m_$1
        action: labelmap
      - regex: meta_.*
        action: labeldrop
      - source_labels: [method]
        target_label: method
        action: lowercase
      - source_labels: [route]
        regex: (.*)z
        target_label: route_x
        replacement: $1_x
      - source_labels: [left]
        regex: ""
        target_label: left
        replacement: none
      - source_labels: [left]
        target_label: right
        action: dropequal
"#;

/// The actions RICH_RULES leaves out, and Go's `$1_x` template reading.
/// (No `.` meets a newline here: relay anchors as `^(?s:…)$` like current
/// Prometheus, where Debian's 2.42 lets `.` stop at a newline.)
const MORE_RULES: &str = r#"    metric_relabel_configs:
      - source_labels: [__name__]
        regex: (http_requests_total|temperature|request_seconds_.*|clashing|pair)
        action: keep
      - source_labels: [method]
        target_label: method
        action: uppercase
      - source_labels: [route]
        regex: /healthz
        target_label: route
        replacement: ""
      - source_labels: [left]
        target_label: right
        action: keepequal
      - regex: (__name__|job|instance|route|method|code|le|meta_.*|left|right)
        action: labelkeep
      - source_labels: [meta_room]
        target_label: room
        replacement: $1_x
      - source_labels: [meta_room, meta_floor]
        regex: ([^;]*);(\d)
        target_label: room_floor
        replacement: ${1}_x@$2
"#;

/// `/federate` lines for `{job="app"}`, sorted, without the scrape's
/// timing-dependent values and scrape timestamps.
fn stored(prom: &Prometheus) -> Vec<String> {
    let text = get(
        &prom.addr,
        "/federate?match%5B%5D=%7Bjob%3D%22app%22%7D",
        &[],
    )
    .map(|r| r.text())
    .unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        // relay also serves scrape_sample_limit for a job with a
        // sample_limit (an extra scrape metric Prometheus has behind a
        // feature flag); the alert on it is tested in tests/monitoring.rs.
        .filter(|l| {
            !l.starts_with("scrape_duration_seconds")
                && !l.starts_with("scrape_series_added")
                && !l.starts_with("scrape_sample_limit")
        })
        // Scrape times differ; a timestamp the app gave must not.
        .map(|l| match l.rsplit_once(' ') {
            Some((series, _scrape_time)) if !l.starts_with("stamped") => series.to_owned(),
            _ => l.to_owned(),
        })
        .collect();
    lines.sort();
    lines
}

/// Runs `app` behind relay (scraped by one Prometheus with `honor_labels`)
/// and directly (scraped by another with the same `rules`), and asserts
/// both store the same series with the same values.
fn same_as_prometheus(app: Reply, rules: &str, min_series: usize) {
    same_as_prometheus_targets(&[app], rules, min_series);
}

/// `same_as_prometheus` for several targets of job `app`; returns what
/// both stored and relay's log, with the targets' addresses replaced by
/// `target<i>`.
fn same_as_prometheus_targets(
    apps: &[Reply],
    rules: &str,
    min_series: usize,
) -> (Vec<String>, String) {
    let prometheus = require_peer("prometheus", "prometheus");
    let apps: Vec<Target> = apps.iter().cloned().map(Target::start).collect();
    let addrs: Vec<String> = apps.iter().map(|a| format!("\"{}\"", a.addr)).collect();
    let job = format!(
        "scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n{rules}",
        addrs.join(", ")
    );
    let direct = start_prometheus(&prometheus, &job);
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{job}"
    ));
    let via_relay = start_prometheus(&prometheus, &scraping_relay(&relay.addr));
    // Both have ingested once every target's post-relabeling count arrives.
    let [direct_series, relayed_series] = [&direct, &via_relay].map(|prom| {
        wait_for("Prometheus to store the app's series", || {
            Some(stored(prom)).filter(|lines| {
                lines
                    .iter()
                    .filter(|l| l.starts_with("scrape_samples_post_metric_relabeling"))
                    .count()
                    == apps.len()
            })
        })
    });
    assert!(
        !relayed_series.iter().any(|l| l.starts_with("relay_")),
        "relay's own metrics must not land in the app's job: {relayed_series:#?}"
    );
    assert!(
        direct_series.len() >= min_series,
        "too few series to compare: {direct_series:#?}"
    );
    assert_eq!(
        relayed_series, direct_series,
        "left: through relay, right: Prometheus scraping the app"
    );
    let anonymous = |line: String| {
        apps.iter().enumerate().fold(line, |line, (i, app)| {
            line.replace(&app.addr, &format!("target{i}"))
        })
    };
    (
        relayed_series.into_iter().map(anonymous).collect(),
        anonymous(relay.logs()),
    )
}

/// Seconds since the epoch: app timestamps must be within the query lookback.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn text_through_relay_is_stored_as_prometheus_stores_it() {
    // Prometheus's text lexer takes a raw newline inside a label value.
    let app = format!(
        "{RICH_APP}stamped 5 {}123\nraw_newline{{value=\"two\nlines\"}} 1\n",
        now_secs()
    );
    same_as_prometheus(Reply::text(&app), RICH_RULES, 20);
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn more_relabel_actions_as_in_prometheus() {
    same_as_prometheus(Reply::text(RICH_APP), MORE_RULES, 12);
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn openmetrics_through_relay_is_stored_as_prometheus_stores_it() {
    // A timestamp in OpenMetrics seconds.
    let now = now_secs();
    let body = format!(
        r#"# TYPE orders counter
# HELP orders Orders placed.
orders_total{{shop="eu"}} 42 # {{trace_id="abc"}} 1.0 1700000000.123
orders_created{{shop="eu"}} 1700000000.5
# TYPE build info
build_info{{version="1.2.3"}} 1
# TYPE feature stateset
feature{{feature="a"}} 1
feature{{feature="b"}} 0
# TYPE queue gaugehistogram
queue_bucket{{le="1.0"}} 3
queue_bucket{{le="+Inf"}} 5
queue_gcount 5
queue_gsum 7.5
# TYPE mystery unknown
mystery 1
# TYPE stamped gauge
stamped 3 {now}.25
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_bucket{{le="0.5"}} 1
latency_seconds_bucket{{le="+Inf"}} 2
latency_seconds_count 2
latency_seconds_sum 0.9
latency_seconds_created 1700000000
# EOF
"#
    );
    let app = Reply {
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
        ..Reply::text(&body)
    };
    same_as_prometheus(app, "", 15);
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn sample_limit_fails_the_scrape_as_in_prometheus() {
    same_as_prometheus(Reply::text(RICH_APP), "    sample_limit: 5\n", 3);
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn label_limit_fails_the_scrape_as_in_prometheus() {
    same_as_prometheus(Reply::text(RICH_APP), "    label_limit: 4\n", 3);
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn body_size_limit_fails_the_scrape_as_in_prometheus() {
    same_as_prometheus(Reply::text(RICH_APP), "    body_size_limit: 200B\n", 3);
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn honor_labels_and_timestamps_as_in_prometheus() {
    let app = format!("{RICH_APP}stamped{{job=\"batch\"}} 9 1700000000000\n");
    same_as_prometheus(
        Reply::text(&app),
        "    honor_labels: true\n    honor_timestamps: false\n",
        20,
    );
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn parse_error_fails_the_scrape_as_in_prometheus() {
    let app = "a 1\nb{x=\"1\"} 2\nc{x=\"unterminated} 3\nd 4\n";
    same_as_prometheus(Reply::text(app), "", 3);
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn target_relabeling_and_static_labels_as_in_prometheus() {
    // `labels:` belongs to the static config above it; the rest to the job.
    let job = r#"        labels: {env: prod, team: shop, __meta_zone: eu-1}
    params: {module: [http]}
    relabel_configs:
      - source_labels: [__address__]
        regex: (.*):(\d+)
        target_label: host
        replacement: $1
      - source_labels: [env]
        target_label: environment
      - regex: env
        action: labeldrop
      - source_labels: [__meta_zone]
        target_label: zone
      - source_labels: [__scheme__, __metrics_path__, __param_module]
        separator: "|"
        target_label: endpoint
      - target_label: __param_extra
        replacement: "1"
      - source_labels: [__address__]
        target_label: instance
        regex: (.*):.*
        replacement: app@$1
"#;
    // The app's own `team` clashes with the static one: exported_team.
    let app = format!("{RICH_APP}owned{{team=\"payments\"}} 1\n");
    same_as_prometheus(Reply::text(&app), job, 20);
}

/// Rules that make an invalid name from one target's series only: that
/// target's scrape fails (`up 0`, none of its series, a log line with the
/// series and the rule), the other's does not.
fn one_target_made_invalid(rule: &str, bad_body: &str, logged: &[&str]) {
    let good = "# TYPE kept gauge\nkept{a=\"1\"} 1\nmeta_other{b=\"2\"} 2\n";
    let rules = format!("    metric_relabel_configs:\n{rule}");
    let (stored, logs) =
        same_as_prometheus_targets(&[Reply::text(bad_body), Reply::text(good)], &rules, 6);
    let mut up: Vec<&String> = stored.iter().filter(|l| l.starts_with("up{")).collect();
    up.sort();
    assert_eq!(
        up,
        [
            "up{instance=\"target0\",job=\"app\"} 0",
            "up{instance=\"target1\",job=\"app\"} 1"
        ],
        "{stored:#?}"
    );
    assert!(
        stored
            .iter()
            .any(|l| l.starts_with("kept{a=\"1\",instance=\"target1\"")),
        "{stored:#?}"
    );
    assert!(
        !stored
            .iter()
            .any(|l| l.contains("target0") && !l.starts_with("up{") && !l.starts_with("scrape_")),
        "the failed target's series must not be stored: {stored:#?}"
    );
    let line = logs
        .lines()
        .find(|l| l.contains("scrape failed") && l.contains("target0"))
        .unwrap_or_else(|| panic!("no scrape failure logged for target0:\n{logs}"));
    for fragment in logged {
        assert!(line.contains(fragment), "{fragment:?} not in {line}");
    }
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("scrape failed") && l.contains("target1")),
        "{logs}"
    );
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn replacement_making_an_invalid_metric_name_fails_that_target_as_in_prometheus() {
    one_target_made_invalid(
        "      - source_labels: [__name__]\n        regex: bad_.*\n        target_label: __name__\n        replacement: 1bad\n",
        "# TYPE bad_total counter\nbad_total{x=\"1\"} 3\nfine 1\n",
        &[
            "invalid metric name or label names",
            "__name__=\\\"1bad\\\"",
            "metric_relabel_configs[0]: action replace",
            "replacement \\\"1bad\\\"",
        ],
    );
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn labelmap_making_an_empty_label_name_fails_that_target_as_in_prometheus() {
    one_target_made_invalid(
        "      - regex: meta_(.*)\n        action: labelmap\n",
        "fine 1\nwith_meta{meta_=\"x\"} 2\n",
        &[
            "invalid metric name or label names",
            "__name__=\\\"with_meta\\\"",
            "metric_relabel_configs[0]: action labelmap",
        ],
    );
}

#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn a_series_left_without_a_name_fails_that_target_as_in_prometheus() {
    one_target_made_invalid(
        "      - source_labels: [__name__]\n        regex: nameless\n        target_label: __name__\n        replacement: \"\"\n",
        "fine 1\nnameless{x=\"1\"} 2\n",
        &["missing metric name (__name__ label)", "x=\\\"1\\\"", "metric_relabel_configs[0]"],
    );
}
