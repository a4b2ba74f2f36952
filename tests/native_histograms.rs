//! Native histograms end to end (issue 21 item 3: scrape, serve, remote write):
//! a target serving protobuf built by `common::protoenc` (not relay's
//! code), scraped by Prometheus 2.42 directly and by relay with
//! `scrape_native_histograms`; a second Prometheus scrapes relay's :9090
//! (honor_labels), which answers its protobuf-first Accept with delimited
//! protobuf; a third receives relay's remote write
//! (`send_native_histograms`). Every series and every histogram (count,
//! sum, buckets) the three store is the same.
//!
//! Prometheus 2.42 is the peer, so relay is set as 2.42 behaves: it has no
//! `always_scrape_classic_histograms` and stores a histogram exposed both
//! ways as native only (relay's default).

mod common;

use std::collections::BTreeMap;

use common::json::Json;
use common::peers::{
    prometheus_range, require_peer, scraping_relay, start_prometheus_args, urlencode, Kind, Peer,
};
use common::{free_port, get, wait_for, Relay, Reply, Target};

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

const NATIVE: &[&str] = &["pt_native_int", "pt_native_float", "pt_both"];

/// An instant query's first result, as JSON.
fn instant(addr: &str, query: &str) -> Option<Json> {
    let text = get(
        addr,
        &format!("/api/v1/query?query={}", urlencode(query)),
        &[],
    )
    .filter(|r| r.status == 200)?
    .text();
    let json = Json::parse(&text).ok()?;
    json.get("data")?.get("result")?.array()?.first().cloned()
}

/// An instant query's single float value.
fn value(addr: &str, query: &str) -> Option<f64> {
    instant(addr, query)?
        .get("value")?
        .array()?
        .get(1)?
        .num_text()?
        .parse()
        .ok()
}

/// A native histogram as 2.42's query API returns it: the object of
/// `"histogram": [ts, {count, sum, buckets}]`, without the timestamp.
fn histogram(addr: &str, selector: &str) -> Option<Json> {
    instant(addr, selector)?
        .get("histogram")?
        .array()?
        .get(1)
        .cloned()
}

/// The float series `{job="direct",__name__=~"pt_.*"}` stores, by name
/// and labels, with their last value (native histograms have none).
fn floats(addr: &str) -> BTreeMap<Vec<(String, String)>, String> {
    prometheus_range(addr, r#"{job="direct",__name__=~"pt_.*"}"#, "10m")
        .into_iter()
        .filter_map(|(labels, samples)| Some((labels, samples.last()?.1.clone())))
        .collect()
}

#[test]
#[ignore = "needs prometheus"]
fn prometheus_scraping_relay_stores_the_native_histograms_it_stores_scraping_the_target() {
    let binary = require_peer("prometheus", "prometheus");
    let target = Target::start(Reply {
        content_type: PROTOBUF.into(),
        body: common::protoenc::every_kind(),
        ..Reply::text("")
    });
    let job = format!(
        "  - job_name: direct\n    scrape_interval: 1s\n    scrape_timeout: 500ms\n    static_configs:\n      - targets: [\"{}\"]\n",
        target.addr
    );
    let native = ["--enable-feature=native-histograms"];
    let direct = start_prometheus_args(&binary, &format!("scrape_configs:\n{job}"), &native);
    // The third Prometheus receives relay's remote write.
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Peer::start_args(
        Kind::Prometheus,
        &binary,
        &format!("127.0.0.1:{}", free_port()),
        dir.path(),
        &native,
    );
    let relay = Relay::start(&format!(
        "global:\n  scrape_native_histograms: true\nscrape_configs:\n{job}remote_write:\n  - url: {}\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 200ms}}\n",
        receiver.write_url()
    ));
    let central = start_prometheus_args(&binary, &scraping_relay(&relay.addr), &native);
    // Text scrapers of relay get the classic view.
    let text = relay.metrics_ok();
    let line = relay.wait_for_line("pt_native_int_count{");
    assert!(line.ends_with(" 9"), "{line}\n{text}");
    let inf = relay.wait_for_line("pt_native_int_bucket{");
    assert!(inf.contains(r#"le="+Inf""#) && inf.ends_with(" 9"), "{inf}");

    let peers = [
        ("central", central.addr.as_str()),
        ("receiver", receiver.addr.as_str()),
    ];
    for (name, addr) in [("direct", direct.addr.as_str())].iter().chain(&peers) {
        wait_for(
            &format!("{name} Prometheus to store every histogram"),
            || {
                NATIVE
                    .iter()
                    .all(|h| histogram(addr, &format!("{h}{{job=\"direct\"}}")).is_some())
                    .then_some(())
            },
        );
    }
    // Every native histogram: count, sum and the raw value (buckets).
    for h in NATIVE {
        let selector = format!("{h}{{job=\"direct\"}}");
        let count = format!("histogram_count({selector})");
        let sum = format!("histogram_sum({selector})");
        let want_count = value(&direct.addr, &count).expect("direct count");
        let want_sum = value(&direct.addr, &sum).expect("direct sum");
        let want = histogram(&direct.addr, &selector).expect("direct histogram");
        let buckets = want
            .get("buckets")
            .and_then(Json::array)
            .map_or(0, <[Json]>::len);
        assert!(buckets >= 2, "{h}: {want:?}");
        for (name, addr) in peers {
            assert_eq!(value(addr, &count), Some(want_count), "{name}: {count}");
            assert_eq!(value(addr, &sum), Some(want_sum), "{name}: {sum}");
            assert_eq!(
                histogram(addr, &selector),
                Some(want.clone()),
                "{h}: the histogram {name} stores from relay"
            );
        }
    }
    // Every float series (counter, gauge, untyped, summary, the classic
    // histogram): the same names, labels and values; none of the native
    // histograms' classic view.
    let want = floats(&direct.addr);
    assert_eq!(want.len(), 13, "{want:#?}");
    for (name, addr) in peers {
        let got = wait_for(&format!("{name} to store every float series"), || {
            let got = floats(addr);
            (got.len() >= want.len()).then_some(got)
        });
        assert_eq!(got, want, "{name}");
    }
    assert!(
        !receiver.logs().contains("level=error"),
        "{}",
        receiver.logs()
    );
    // Relay's own metrics and the target's `up` reach it through protobuf too.
    let own = value(
        &central.addr,
        r#"count({job="relay-sidecar",__name__=~"relay_.+|process_.+"})"#,
    )
    .expect("relay's own metrics");
    assert!(own >= 5.0, "{own}");
    assert_eq!(value(&central.addr, r#"up{job="direct"}"#), Some(1.0));
}
