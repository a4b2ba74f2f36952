//! `series_limit` (vmagent's field): a target that adds series over time.
//! Past the limit the samples of new series are dropped and counted while
//! the series already known keep flowing (the scrape does not fail); a
//! series that went stale frees its place; `scrape_series_limit`,
//! `scrape_series_current` and `scrape_series_limit_samples_dropped` say so;
//! the first dropped series is logged once. Checked in what relay
//! remote-writes and in what it serves on /metrics.

mod common;

use common::peers::{Kind, Peer};
use common::rw::{Got, Receiver};
use common::{wait_for, Relay, Reply, Target};

/// The app's body: series `s{i="N"}` for each N, all with `value`.
fn body(series: &[u32], value: u32) -> Reply {
    let text: String = series
        .iter()
        .map(|i| format!("s{{i=\"{i}\"}} {value}\n"))
        .collect();
    Reply::text(&text)
}

/// Accepted samples of `s{i="i"}`.
fn of(receiver: &Receiver, i: &str) -> Vec<Got> {
    receiver
        .accepted_named("s")
        .into_iter()
        .filter(|g| g.label("i") == Some(i))
        .collect()
}

/// The newest value remote-written of relay's report series `name`.
fn last(receiver: &Receiver, name: &str) -> Option<f64> {
    receiver.accepted_named(name).last().map(|g| g.value)
}

/// Waits until `s{i="i"}` has arrived with `value` at least `times` times.
fn wait_arrived(receiver: &Receiver, i: &str, value: f64, times: usize) {
    wait_for(
        &format!("{times} samples of s{{i={i:?}}} = {value}"),
        || {
            let n = of(receiver, i).iter().filter(|g| g.value == value).count();
            (n >= times).then_some(())
        },
    );
}

#[test]
fn past_the_series_limit_new_series_are_dropped_and_known_ones_keep_flowing() {
    let app = Target::start(body(&[1, 2], 1));
    let receiver = Receiver::start();
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    series_limit: 3\n    static_configs:\n      - targets: [\"{}\"]\nremote_write:\n  - url: {}\n",
        app.addr, receiver.url
    ));
    wait_arrived(&receiver, "2", 1.0, 1);
    assert_eq!(last(&receiver, "scrape_series_limit"), Some(3.0));
    assert_eq!(
        last(&receiver, "scrape_series_limit_samples_dropped"),
        Some(0.0)
    );

    // Three new series, one place left: i=3 gets in, i=4 and i=5 do not.
    app.set(body(&[1, 2, 3, 4, 5], 2));
    wait_arrived(&receiver, "1", 2.0, 3);
    wait_arrived(&receiver, "3", 2.0, 3);
    assert!(of(&receiver, "4").is_empty(), "{:?}", of(&receiver, "4"));
    assert!(of(&receiver, "5").is_empty(), "{:?}", of(&receiver, "5"));
    assert_eq!(last(&receiver, "scrape_series_current"), Some(3.0));
    assert_eq!(
        last(&receiver, "scrape_series_limit_samples_dropped"),
        Some(2.0)
    );
    assert_eq!(last(&receiver, "up"), Some(1.0), "the scrape did not fail");
    // All five count as kept after relabeling, as vmagent counts them.
    assert_eq!(
        last(&receiver, "scrape_samples_post_metric_relabeling"),
        Some(5.0)
    );

    // What /metrics serves agrees.
    let served = relay.metrics_ok();
    let line = |name: &str| {
        served
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .unwrap_or_else(|| panic!("no {name} in:\n{served}"))
            .rsplit_once(' ')
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(line("scrape_series_limit"), "3", "{served}");
    assert_eq!(line("scrape_series_current"), "3", "{served}");
    assert_eq!(line("scrape_series_limit_samples_dropped"), "2", "{served}");
    assert!(served.contains("s{i=\"3\""), "{served}");
    assert!(!served.contains("s{i=\"4\""), "{served}");
    assert!(!served.contains("s{i=\"5\""), "{served}");

    // i=2 vanishes: marked stale, its place goes to the first new series.
    app.set(body(&[1, 3, 4, 5], 3));
    wait_arrived(&receiver, "4", 3.0, 2);
    assert!(
        of(&receiver, "2").iter().any(Got::is_stale),
        "i=2 got no staleness marker: {:?}",
        of(&receiver, "2")
    );
    assert!(of(&receiver, "5").is_empty(), "{:?}", of(&receiver, "5"));
    assert_eq!(last(&receiver, "scrape_series_current"), Some(3.0));
    assert_eq!(
        last(&receiver, "scrape_series_limit_samples_dropped"),
        Some(1.0)
    );

    // One log line for the target, naming the first series kept out.
    let logs = relay.logs();
    assert_eq!(
        logs.matches("series_limit reached").count(),
        1,
        "logged once:\n{logs}"
    );
    let line = logs
        .lines()
        .find(|l| l.contains("series_limit reached"))
        .unwrap_or_default();
    assert!(
        line.contains("i=\\\"4\\\"") || line.contains("i=\"4\""),
        "{line}"
    );
}

#[test]
#[ignore = "needs prometheus (Debian); scripts/test runs it"]
fn a_real_prometheus_receiver_stores_the_known_series_and_none_past_the_limit() {
    let (prometheus, _dir) = Peer::fresh(Kind::Prometheus);
    let app = Target::start(body(&[1, 2], 1));
    let _relay = Relay::start(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    series_limit: 2\n    static_configs:\n      - targets: [\"{}\"]\nremote_write:\n  - url: {}\n",
        app.addr,
        prometheus.write_url()
    ));
    wait_for("s{i=\"2\"} stored", || {
        (!prometheus.raw("s{i=\"2\"}").is_empty()).then_some(())
    });
    app.set(body(&[1, 2, 3], 2));
    // Known series go on with the new value; the new one never arrives.
    wait_for("three samples of s{i=\"1\"} = 2 stored", || {
        let stored = prometheus.raw("s{i=\"1\"}");
        let twos = stored
            .iter()
            .flat_map(|(_, samples)| samples)
            .filter(|(_, v)| v == "2")
            .count();
        (twos >= 3).then_some(())
    });
    assert!(!prometheus.raw("s{i=\"2\"}").is_empty());
    assert_eq!(prometheus.raw("s{i=\"3\"}"), Vec::new());
    let dropped = prometheus.raw("scrape_series_limit_samples_dropped");
    let newest = dropped
        .first()
        .and_then(|(_, samples)| samples.last())
        .map(|(_, v)| v.clone());
    assert_eq!(newest.as_deref(), Some("1"), "{dropped:?}");
}
