//! Issue 21, item 5: exemplars and created timestamps kept from OpenMetrics
//! and protobuf targets and served in OpenMetrics, never in text 0.0.4.
//! prometheus_client's strict OpenMetrics parser reads relay's exemplars
//! back equal to the target's; a Prometheus 2.42 with exemplar storage
//! scraping relay stores them; a protobuf target's exemplars and created
//! timestamps (encoded by `common::protoenc`, not relay's code) come out as
//! OpenMetrics `# {...}` and `_created` samples, and none in text 0.0.4.

mod common;

use common::json::Json;
use common::peers::{require_peer, scraping_relay, start_prometheus_args, urlencode};
use common::protoenc::{client, Msg};
use common::pyclient;
use common::{get, wait_for, Relay, Reply, Target};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// A counter and a histogram with exemplars (one with a timestamp, one
/// with a second label `span`), a gauge without, and a counter whose
/// exemplar is over OpenMetrics's 128 characters.
fn openmetrics_body(span: &str) -> String {
    let long = "x".repeat(121);
    format!(
        "# TYPE shop_orders counter\n# HELP shop_orders Orders.\n\
         shop_orders_total{{kind=\"a\"}} 3 # {{trace_id=\"abc\"}} 1 1700000000.5\n\
         shop_orders_created{{kind=\"a\"}} 1600000000\n\
         shop_orders_total{{kind=\"b\"}} 4\n\
         shop_orders_created{{kind=\"b\"}} 1600000001\n\
         # TYPE shop_latency_seconds histogram\n\
         shop_latency_seconds_bucket{{le=\"0.1\"}} 1 # {{trace_id=\"def\",{span}}} 0.05\n\
         shop_latency_seconds_bucket{{le=\"+Inf\"}} 2 # {{trace_id=\"ghi\"}} 0.7 1700000001\n\
         shop_latency_seconds_count 2\nshop_latency_seconds_sum 0.75\n\
         # TYPE shop_temp gauge\nshop_temp 21.5\n\
         # TYPE shop_long counter\nshop_long_total 1 # {{trace_id=\"{long}\"}} 1\n\
         # EOF\n"
    )
}

fn openmetrics_reply(body: String) -> Reply {
    Reply {
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
        body: body.into_bytes(),
        ..Reply::text("")
    }
}

fn relay_for(target: &Target) -> Relay {
    Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        target.addr
    ))
}

/// relay's /metrics asked for `accept`, waiting for a 200 with `line`.
fn served(relay: &Relay, accept: &str, line: &str) -> String {
    wait_for(&format!("relay to serve {line:?}"), || {
        get(&relay.addr, "/metrics", &[("Accept", accept)])
            .filter(|r| r.status == 200)
            .map(|r| r.text())
            .filter(|t| t.contains(line))
    })
}

/// The exemplars prometheus_client reads, without relay's `instance` and
/// `job` labels.
fn read_exemplars(body: &str) -> Vec<String> {
    let all = pyclient::exemplars(body.as_bytes())
        .unwrap_or_else(|e| panic!("prometheus_client refused the body: {e}\n{body}"));
    all.iter()
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.starts_with("instance=") && !w.starts_with("job="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn openmetrics_exemplars_are_served_in_openmetrics_and_never_in_text() {
    let target = Target::start(openmetrics_reply(openmetrics_body(
        "\"span.id\"=\"q\\\"1\"",
    )));
    let relay = relay_for(&target);
    let om = served(
        &relay,
        &format!("{OPENMETRICS}; escaping=allow-utf-8"),
        "shop_temp",
    );
    let instance = format!("instance=\"{}\",job=\"app\"", target.addr);
    for want in [
        format!("shop_orders_total{{{instance},kind=\"a\"}} 3 # {{trace_id=\"abc\"}} 1 1700000000.5\n"),
        format!("shop_orders_total{{{instance},kind=\"b\"}} 4\n"),
        format!("shop_orders_created{{{instance},kind=\"a\"}} 1.6e+09\n"),
        format!(
            "shop_latency_seconds_bucket{{{instance},le=\"0.1\"}} 1 # {{trace_id=\"def\",\"span.id\"=\"q\\\"1\"}} 0.05\n"
        ),
        format!(
            "shop_latency_seconds_bucket{{{instance},le=\"+Inf\"}} 2 # {{trace_id=\"ghi\"}} 0.7 1700000001\n"
        ),
        // Over 128 characters: the sample stays, its exemplar does not.
        format!("shop_long_total{{{instance}}} 1\n"),
    ] {
        assert!(om.contains(&want), "missing {want:?} in\n{om}");
    }
    assert_eq!(om.matches(" # {").count(), 3, "{om}");
    // A scraper that did not ask for UTF-8 names (Prometheus 2.x) gets
    // the exemplar's label names escaped too.
    let escaped = served(&relay, OPENMETRICS, "shop_temp");
    let want = format!(
        "shop_latency_seconds_bucket{{{instance},le=\"0.1\"}} 1 # {{trace_id=\"def\",span_id=\"q\\\"1\"}} 0.05\n"
    );
    assert!(escaped.contains(&want), "missing {want:?} in\n{escaped}");
    let text = served(&relay, "text/plain; version=0.0.4", "shop_temp");
    assert!(text.contains("shop_orders_total{"), "{text}");
    assert!(
        !text.contains(" # {"),
        "text 0.0.4 has no exemplars:\n{text}"
    );
}

#[test]
#[ignore = "needs prometheus_client (RELAY_TEST_PYTHON)"]
fn prometheus_client_reads_relays_exemplars_back_equal() {
    let body = openmetrics_body("span_id=\"q1\"");
    let target = Target::start(openmetrics_reply(body.clone()));
    let relay = relay_for(&target);
    let om = served(&relay, OPENMETRICS, "shop_temp");
    // prometheus_client refuses the over-long exemplar (relay drops it
    // and keeps its sample, as Prometheus): the others are the target's.
    let (long, _) = body.split_once("# TYPE shop_long").expect("the long one");
    let want = read_exemplars(&format!("{long}# EOF\n"));
    assert_eq!(want.len(), 3, "{want:?}");
    assert_eq!(read_exemplars(&om), want, "{om}");
}

#[test]
#[ignore = "needs prometheus"]
fn prometheus_with_exemplar_storage_stores_relays_exemplars() {
    let binary = require_peer("prometheus", "prometheus");
    let target = Target::start(openmetrics_reply(openmetrics_body(
        "\"span.id\"=\"q\\\"1\"",
    )));
    let relay = relay_for(&target);
    served(&relay, OPENMETRICS, "shop_temp");
    let prometheus = start_prometheus_args(
        &binary,
        &scraping_relay(&relay.addr),
        &["--enable-feature=exemplar-storage"],
    );
    let query = |q: &str| -> Option<Vec<(String, String, String)>> {
        let path = format!(
            "/api/v1/query_exemplars?query={}&start=0&end=9999999999",
            urlencode(q)
        );
        let text = get(&prometheus.addr, &path, &[])
            .filter(|r| r.status == 200)?
            .text();
        let json = Json::parse(&text).ok()?;
        let mut found = Vec::new();
        for series in json["data"].array()? {
            let name = series["seriesLabels"]["__name__"].str()?.to_owned();
            for e in series["exemplars"].array()? {
                found.push((
                    name.clone(),
                    e["labels"]["trace_id"].str()?.to_owned(),
                    e["value"].str()?.to_owned(),
                ));
            }
        }
        (!found.is_empty()).then_some(found)
    };
    let mut got = wait_for("Prometheus to store relay's exemplars", || {
        query(r#"{__name__=~"shop_orders_total|shop_latency_seconds_bucket"}"#)
            .filter(|f| f.len() >= 3)
    });
    got.sort();
    got.dedup();
    assert_eq!(
        got,
        [
            (
                "shop_latency_seconds_bucket".into(),
                "def".into(),
                "0.05".into()
            ),
            (
                "shop_latency_seconds_bucket".into(),
                "ghi".into(),
                "0.7".into()
            ),
            ("shop_orders_total".into(), "abc".into(), "1".into()),
        ]
        .map(|(a, b, c): (String, String, String)| (a, b, c))
        .to_vec()
    );
}

/// A protobuf counter and histogram with exemplars and created timestamps
/// (client_model: Counter 2 = exemplar, 3 = created_timestamp; Histogram
/// 15 = created_timestamp; Bucket 3 = exemplar; Exemplar 1 = label,
/// 2 = value, 3 = timestamp).
fn protobuf_body() -> Vec<u8> {
    use client::*;
    let exemplar = |trace: &str, v: f64, ts: Option<i64>| {
        let e = Msg::new()
            .msg(1, Msg::new().str(1, "trace_id").str(2, trace))
            .double(2, v);
        match ts {
            Some(ms) => e.msg(3, timestamp(ms)),
            None => e,
        }
    };
    let counter = value(7.0)
        .msg(2, exemplar("pa", 1.0, Some(1_700_000_000_250)))
        .msg(3, timestamp(1_600_000_000_500));
    let histogram = Msg::new()
        .uint(1, 3)
        .double(2, 1.5)
        .msg(3, bucket(0.5, 1).msg(3, exemplar("pb", 0.25, None)))
        .msg(3, bucket(1.0, 3))
        .msg(15, timestamp(1_600_000_001_000));
    let mut body = family(
        "pt_calls_total",
        "Calls.",
        COUNTER,
        vec![metric(&[("path", "/a")], COUNTER_FIELD, counter)],
    )
    .delimited();
    body.extend(
        family(
            "pt_wait_seconds",
            "",
            HISTOGRAM,
            vec![metric(&[], HISTOGRAM_FIELD, histogram)],
        )
        .delimited(),
    );
    body
}

#[test]
fn protobuf_exemplars_and_created_timestamps_are_served_in_openmetrics() {
    let target = Target::start(Reply {
        content_type: PROTOBUF.into(),
        body: protobuf_body(),
        ..Reply::text("")
    });
    let relay = relay_for(&target);
    let om = served(&relay, OPENMETRICS, "pt_wait_seconds_created");
    let l = format!("instance=\"{}\",job=\"app\"", target.addr);
    let want = format!(
        "# HELP pt_calls Calls.\n# TYPE pt_calls counter\n\
         pt_calls_total{{{l},path=\"/a\"}} 7 # {{trace_id=\"pa\"}} 1 1700000000.25\n\
         pt_calls_created{{{l},path=\"/a\"}} 1.6000000005e+09\n\
         # TYPE pt_wait_seconds histogram\n\
         pt_wait_seconds_count{{{l}}} 3\npt_wait_seconds_sum{{{l}}} 1.5\n\
         pt_wait_seconds_bucket{{{l},le=\"0.5\"}} 1 # {{trace_id=\"pb\"}} 0.25\n\
         pt_wait_seconds_bucket{{{l},le=\"1.0\"}} 3\n\
         pt_wait_seconds_bucket{{{l},le=\"+Inf\"}} 3\n\
         pt_wait_seconds_created{{{l}}} 1.600000001e+09\n"
    );
    assert!(om.contains(&want), "want\n{want}\nin\n{om}");
    // Text 0.0.4 as client_golang's: neither exemplars nor created
    // timestamps (they are no samples of the target).
    let text = served(
        &relay,
        "text/plain; version=0.0.4",
        "pt_wait_seconds_bucket",
    );
    assert!(
        text.contains(&format!("pt_calls_total{{{l},path=\"/a\"}} 7\n")),
        "{text}"
    );
    assert!(
        !text.contains(" # {") && !text.contains("_created"),
        "{text}"
    );
}

/// A summary and a native histogram with created timestamps (Summary 4,
/// Histogram 15), beside [`protobuf_body`]'s counter and histogram.
fn protobuf_body_with_more() -> Vec<u8> {
    use client::*;
    let mut body = protobuf_body();
    let summary = summary(4, 2.0, &[(0.5, 0.4)]).msg(4, timestamp(1_600_000_002_000));
    let native = Msg::new()
        .uint(1, 3)
        .double(2, 2.5)
        .sint(5, 0)
        .double(6, 0.001)
        .uint(7, 1)
        .msg(12, span(0, 2))
        .packed_sint(13, &[1, 0])
        .msg(15, timestamp(1_600_000_003_000));
    for f in [
        family(
            "pt_size_bytes",
            "Sizes.",
            SUMMARY,
            vec![metric(&[("q", "x")], SUMMARY_FIELD, summary)],
        ),
        family(
            "pt_native_seconds",
            "",
            HISTOGRAM,
            vec![metric(&[], HISTOGRAM_FIELD, native)],
        ),
    ] {
        body.extend(f.delimited());
    }
    body
}

/// The sample lines of an OpenMetrics body whose names start with one of
/// `prefixes`, with their exemplars, sorted: a histogram read from
/// protobuf has `_count` and `_sum` before its buckets (as Prometheus's
/// parser yields them), where an OpenMetrics target may have them after.
fn sample_lines<'a>(om: &'a str, prefixes: &[&str]) -> Vec<&'a str> {
    let mut lines: Vec<&str> = om
        .lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .collect();
    lines.sort_unstable();
    lines
}

/// Issue 21: relay's protobuf answer carries exemplars (counter, bucket)
/// and created timestamps (counter, summary, histogram, native histogram)
/// in their client_model fields, and `_created` series as no family of
/// their own: a second relay scraping the first's protobuf (asked first
/// with `scrape_native_histograms`) serves the same OpenMetrics lines,
/// from a protobuf target and from an OpenMetrics one with `_created`
/// lines.
#[test]
fn a_relay_reading_relays_protobuf_serves_the_same_exemplars_and_created_timestamps() {
    let proto_target = Target::start(Reply {
        content_type: PROTOBUF.into(),
        body: protobuf_body_with_more(),
        ..Reply::text("")
    });
    let om_target = Target::start(openmetrics_reply(openmetrics_body("span=\"1\"")));
    let first = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n  scrape_native_histograms: true\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\n  - job_name: om\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        proto_target.addr, om_target.addr
    ));
    let second = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n  scrape_native_histograms: true\nscrape_configs:\n  - job_name: relay\n    honor_labels: true\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        first.addr
    ));
    let prefixes = ["pt_", "shop_"];
    let want_line = "pt_native_seconds_created";
    let want = sample_lines(&served(&first, OPENMETRICS, want_line), &prefixes).join("\n");
    // The first relay's lines have what is compared: created timestamps
    // of each kind and exemplars of each.
    for part in [
        "pt_calls_created{",
        "pt_wait_seconds_created{",
        "pt_size_bytes_created{",
        "pt_native_seconds_created{",
        "shop_orders_created{",
        r#"# {trace_id="pa"} 1 1700000000.25"#,
        r#"# {trace_id="pb"} 0.25"#,
        r#"# {trace_id="abc"} 1 1700000000.5"#,
        r#"# {trace_id="def",span="1"} 0.05"#,
    ] {
        assert!(want.contains(part), "{part} in\n{want}");
    }
    let got = wait_for("the second relay to serve the first's lines", || {
        let om = get(&second.addr, "/metrics", &[("Accept", OPENMETRICS)])
            .filter(|r| r.status == 200)?
            .text();
        let got = sample_lines(&om, &prefixes).join("\n");
        (got.contains(want_line) && got.contains("shop_orders_created")).then_some(got)
    });
    assert_eq!(got, want);
    // The protobuf answer has no `_created` family: the second relay's
    // text 0.0.4 shows none, while the first's shows the OpenMetrics
    // target's own (they are its samples).
    let text = served(&second, "text/plain; version=0.0.4", "shop_orders_total");
    assert!(!text.contains("_created"), "{text}");
    let text = served(&first, "text/plain; version=0.0.4", "shop_orders_total");
    assert!(text.contains("shop_orders_created{"), "{text}");
}
