//! Pod identity (issue 17): every replica's relay scrapes `localhost`, so
//! under remote write all replicas send the same `job` and `instance`, and
//! their series collide at the receiver unless each adds labels of its own.
//! Prometheus 3 expands environment variables in `external_labels`, so one
//! config shared by every replica says `pod: '${POD_NAME}'` and each relay
//! sends its own pod. Two relays run here with the same config file and a
//! different `POD_NAME`, writing to a real Prometheus 2.42.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::peers::{require_peer, Kind, Peer, Stored};
use common::rw::{metric_value, wait_for_up, CountingTarget};
use common::{free_port, Relay, DEADLINE};

/// The `count_of_scrapes` values of `series`, in timestamp order.
fn values(series: &Stored) -> Vec<u64> {
    series
        .1
        .iter()
        .map(|(_, v)| v.parse::<f64>().expect("a number") as u64)
        .collect()
}

fn label<'s>(series: &'s Stored, name: &str) -> Option<&'s str> {
    series
        .0
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The value relay serves for `count_of_scrapes` right now.
fn served_count(relay: &Relay) -> u64 {
    let text = relay.metrics();
    metric_value(&text, "count_of_scrapes", &[])
        .unwrap_or_else(|| panic!("no count_of_scrapes in:\n{text}")) as u64
}

#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn replicas_sharing_one_config_are_told_apart_by_their_pod_label() {
    let binary = require_peer("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = Peer::start(
        Kind::Prometheus,
        &binary,
        &format!("127.0.0.1:{}", free_port()),
        &dir.path().join("prometheus"),
    );
    // One app target both replicas scrape (as each would scrape its own
    // localhost:8001): it counts every scrape, so the values the two
    // relays get are disjoint and together are every value it served.
    let target = CountingTarget::start();
    let file = dir.path().join("relay.yml");
    std::fs::write(
        &file,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels: {{pod: '${{POD_NAME}}', namespace: '$POD_NAMESPACE'}}\nscrape_configs:\n  - job_name: agent\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {}\n    queue_config: {{min_backoff: 50ms, max_backoff: 1s, batch_send_deadline: 200ms}}\n",
            target.addr,
            prometheus.write_url()
        ),
    )
    .expect("write relay.yml");
    let start = |pod: &str| {
        let addr = format!("127.0.0.1:{}", free_port());
        let wal = dir.path().join(format!("wal-{pod}"));
        let wal = wal.to_str().expect("a UTF-8 path").to_owned();
        Relay::start_file_env(
            &file,
            &addr,
            &[
                ("POD_NAME", pod),
                ("POD_NAMESPACE", "shop"),
                ("RELAY_LISTEN_ADDRESS", &addr),
                ("RELAY_WAL_DIR", &wal),
            ],
        )
    };
    let pods = ["agent-7c9d-0", "agent-7c9d-1"];
    // The first GET of a relay's /metrics has the target scraped for that
    // GET alone (not remote-written): it happens while the target refuses,
    // so every count the target answers later is an interval scrape that
    // must arrive.
    target.pause();
    let relays = [start(pods[0]), start(pods[1])];
    for relay in &relays {
        wait_for_up(relay, &target.addr, "0");
    }
    target.resume();

    target.wait_answered(12);
    for relay in &relays {
        wait_for_up(relay, &target.addr, "1");
    }
    let served: Vec<u64> = relays.iter().map(served_count).collect();
    // Stop serving, and wait until both relays have seen it, so every value
    // served has gone through a relay.
    target.pause();
    for relay in &relays {
        wait_for_up(relay, &target.addr, "0");
    }
    let answered: BTreeSet<u64> = target.answered().iter().map(|(n, _)| *n).collect();

    let started = Instant::now();
    let stored = loop {
        let stored = prometheus.raw("count_of_scrapes");
        let got: BTreeSet<u64> = stored.iter().flat_map(values).collect();
        if got == answered || started.elapsed() > DEADLINE {
            break stored;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        stored.len(),
        2,
        "one series per pod, got: {:?}",
        stored.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let mut union = BTreeSet::new();
    for (i, pod) in pods.iter().enumerate() {
        let series = stored
            .iter()
            .find(|s| label(s, "pod") == Some(pod))
            .unwrap_or_else(|| {
                panic!(
                    "no series with pod={pod}: {:?}",
                    stored.iter().map(|s| &s.0).collect::<Vec<_>>()
                )
            });
        assert_eq!(label(series, "namespace"), Some("shop"), "{:?}", series.0);
        assert_eq!(label(series, "job"), Some("agent"), "{:?}", series.0);
        assert_eq!(label(series, "instance"), Some(target.addr.as_str()));
        let got = values(series);
        assert!(got.len() >= 3, "{pod}: too few samples {got:?}");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "{pod}: its scrapes' values must rise in time: {got:?}"
        );
        assert!(
            got.contains(&served[i]),
            "{pod}: relay served count_of_scrapes {} but its series holds {got:?}",
            served[i]
        );
        for v in got {
            assert!(union.insert(v), "value {v} arrived under both pods");
        }
    }
    assert_eq!(
        union, answered,
        "every value the target served, each under exactly one pod"
    );
    for (relay, pod) in relays.iter().zip(pods) {
        let text = relay.metrics();
        assert_eq!(
            metric_value(&text, "prometheus_remote_storage_samples_failed_total", &[]),
            Some(0.0),
            "{pod}: refused samples\n{text}"
        );
    }
    let logs = prometheus.logs();
    assert!(!logs.contains("out of order"), "{logs}");
}
