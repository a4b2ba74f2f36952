//! Remote write end to end: the real relay binary scrapes a target and
//! writes to a receiver started here — a scripted Rust receiver (headers,
//! labels, staleness, 500/429/400 handling, outages, kill -9, SIGTERM) and
//! the real receivers, Prometheus 2.42 and VictoriaMetrics (Debian packages;
//! `#[ignore]`d under plain `cargo test`, run by `scripts/test`).
//!
//! "No gaps" is proved with a target whose value counts its own answered
//! scrapes: every value 1..=N it served must arrive, stamped with its
//! scrape's time. See `common::rw`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::json::{seconds_text_to_ms, Json};
use common::peers::{require_peer, Kind, Peer, Stored};
use common::rw::{
    assert_no_gaps, labels, metric_value, now_ms, v2_samples, Answer, CountingTarget, Got,
    Receiver, Request, STALE_NAN_BITS, V2_CONTENT_TYPE,
};
use common::{free_port, wait_for, Relay, Reply, Target, DEADLINE};

/// A sample's identity: sorted labels, timestamp (ms), value bits.
type SampleKey = (Vec<(String, String)>, i64, u64);

/// The series relay adds for every target (besides what it scrapes).
const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// A relay config: job `app` scraping `target` every `interval` with
/// `external_labels: {cluster: c1}` (plus `more_external`), and the given
/// `remote_write` entries (from `entry`).
fn config(target: &str, interval: &str, more_external: &str, entries: &[String]) -> String {
    format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  external_labels: {{cluster: c1{more_external}}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{target}\"]}}]\nremote_write:\n{}",
        entries.concat()
    )
}

/// One `remote_write` entry with short backoffs and batch deadline, so
/// retries and flushes happen within a test's seconds. `queue` adds
/// `queue_config` fields (e.g. one shard, so requests come one at a time
/// and a script's answers meet the batches in order); `extra` adds fields.
/// The name is quoted: a hash name of digits alone would read as a number.
fn entry(name: &str, url: &str, queue: &str, extra: &str) -> String {
    format!(
        "  - url: {url}\n    name: \"{name}\"\n    queue_config: {{min_backoff: 50ms, max_backoff: 1s, batch_send_deadline: 200ms{queue}}}\n{extra}"
    )
}

const ONE_SHARD: &str = ", min_shards: 1, max_shards: 1";

/// `relay:` lines for tests that SIGTERM relay.
const SHUTDOWN: &str = "  shutdown_timeout: 10s\n";

/// The labels relay must send for `name` of job `app` scraping `instance`.
fn app_labels(name: &str, instance: &str) -> Vec<(String, String)> {
    labels(&[
        ("__name__", name),
        ("cluster", "c1"),
        ("instance", instance),
        ("job", "app"),
    ])
}

/// (timestamp, value) of the accepted samples of `name`, checking that
/// they all belong to the one series with exactly `expected` labels.
fn one_series(got: &[Got], expected: &[(String, String)]) -> Vec<(i64, f64)> {
    for g in got {
        assert_eq!(&g.series(), expected, "labels of {g:?}");
    }
    got.iter().map(|g| (g.ts, g.value)).collect()
}

/// True when `values` hold every count in `answered`.
fn has_every_count(answered: &[(u64, i64)], values: impl Iterator<Item = f64>) -> bool {
    let values: BTreeSet<u64> = values.map(|v| v as u64).collect();
    answered.iter().all(|(n, _)| values.contains(n))
}

/// Polls until `done` holds or the deadline passes, and returns the last
/// value either way: the caller's assertion then says what is missing,
/// rather than only that a wait timed out.
fn poll_until<T>(mut probe: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let start = std::time::Instant::now();
    loop {
        let value = probe();
        if done(&value) || start.elapsed() > DEADLINE {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The accepted `count_of_scrapes` samples once every served count is in
/// (or at the deadline, whatever arrived).
fn receiver_counts(receiver: &Receiver, answered: &[(u64, i64)]) -> Vec<Got> {
    poll_until(
        || receiver.accepted_named("count_of_scrapes"),
        |got| has_every_count(answered, got.iter().map(|g| g.value)),
    )
}

/// The samples of `refused` requests (answered with a retryable status)
/// arrive later, byte-identical; `_samples_retried_total` counts exactly
/// them and nothing failed; every count the target served arrives.
fn assert_retried_then_delivered(
    relay: &Relay,
    receiver: &Receiver,
    target: &CountingTarget,
    refused: &[Got],
    answer: &str,
    what: &str,
) {
    let accepted: BTreeSet<_> = receiver.accepted().iter().map(Got::key).collect();
    for g in refused {
        assert!(accepted.contains(&g.key()), "never delivered: {g:?}");
    }
    let answered = target.pause_and_settle(relay);
    let url = receiver.url.clone();
    settle(
        &format!("samples_retried_total = samples of the {answer}"),
        || {
            (
                (refused.len() as f64, 0.0),
                (
                    rw_metric(
                        relay,
                        "prometheus_remote_storage_samples_retried_total",
                        &url,
                    ),
                    rw_metric(
                        relay,
                        "prometheus_remote_storage_samples_failed_total",
                        &url,
                    ),
                ),
            )
        },
    );
    let counts = receiver_counts(receiver, &answered);
    assert_no_gaps(
        &answered,
        &one_series(&counts, &app_labels("count_of_scrapes", &target.addr)),
        what,
    );
}

/// Asserts that, in arrival order, the timestamps of every series never go
/// back (a redelivered sample may repeat its own timestamp, byte-identical).
fn assert_in_order_per_series(got: &[Got]) {
    let mut last: BTreeMap<Vec<(String, String)>, (i64, u64)> = BTreeMap::new();
    for g in got {
        let series = g.series();
        if let Some(&(ts, bits)) = last.get(&series) {
            assert!(
                g.ts > ts || (g.ts == ts && g.value.to_bits() == bits),
                "{series:?}: sample ({}, {}) arrived after ({ts}, {})",
                g.ts,
                g.value,
                f64::from_bits(bits)
            );
        }
        last.insert(series, (g.ts, g.value.to_bits()));
    }
}

/// Polls `probe` (expected, actual) until both are equal, then returns;
/// at the deadline asserts equality, so the failure shows the last values.
fn settle<T: PartialEq + std::fmt::Debug>(what: &str, mut probe: impl FnMut() -> (T, T)) {
    let start = std::time::Instant::now();
    loop {
        let (expected, actual) = probe();
        if expected == actual {
            return;
        }
        if start.elapsed() > DEADLINE {
            assert_eq!(expected, actual, "{what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A self-metric of the `rw` entry writing to `url`, from a good GET; a
/// missing metric fails the test (it is not a 0 that "nothing failed"
/// would pass on).
fn rw_metric(relay: &Relay, name: &str, url: &str) -> f64 {
    let body = relay.metrics_ok();
    metric_value(
        &body,
        name,
        &["remote_name=\"rw\"", &format!("url=\"{url}\"")],
    )
    .unwrap_or_else(|| panic!("no {name} for rw ({url}) on relay's /metrics:\n{body}"))
}

fn sample_count(requests: &[Request]) -> usize {
    requests.iter().map(|r| r.samples().len()).sum()
}

#[test]
fn json_reader_reads_a_prometheus_matrix() {
    let j = Json::parse(
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"x","a":"\"q\""},"values":[[1712345678.1,"5"],[17,"NaN"]]}]}}"#,
    )
    .expect("valid JSON");
    let result = &j["data"]["result"].array().expect("array")[0];
    assert_eq!(
        result["metric"].labels(),
        Some(labels(&[("__name__", "x"), ("a", "\"q\"")]))
    );
    let values = result["values"].array().expect("values");
    let ts = values[0].array().expect("pair")[0].num_text();
    assert_eq!(ts.and_then(seconds_text_to_ms), Some(1_712_345_678_100));
    assert_eq!(seconds_text_to_ms("17"), Some(17_000));
    assert_eq!(
        Json::parse("[null, NaN, true]").map(|j| j.array().map(<[Json]>::len)),
        Ok(Some(3))
    );
}

/// While nobody reads /metrics (here: 1.5 s without a GET), relay
/// renders nothing as it scrapes; the first GET after that has the target
/// scraped at once and serves that scrape's value, but that scrape is for
/// the GET only: remote write gets the interval scrapes, each exactly once,
/// and none of the ones a GET asked for (before, a GET after an idle time
/// added a sample about 100 ms after an interval one).
#[test]
fn a_get_after_an_idle_time_scrapes_for_the_get_only_and_remote_write_follows_the_interval() {
    let target = CountingTarget::start();
    let receiver = Receiver::start();
    let relay = Relay::start_env(
        &config(
            &target.addr,
            "2s",
            "",
            &[entry("rw", &receiver.url, "", "")],
        ),
        &[("RELAY_SERVING_FOR_MS", "1500")],
    );
    let interval_ms = 2000;
    let series = app_labels("count_of_scrapes", &target.addr);
    let served = |text: &str| metric_value(text, "count_of_scrapes", &[]);
    let mut on_demand = BTreeSet::new();
    let mut seen = 0;
    for round in 0..3 {
        // Idle (no GET for longer than 1.5 s), then right after an
        // interval scrape, so that the next tick is far from the GET.
        std::thread::sleep(Duration::from_millis(1600));
        let before = wait_for("an interval scrape", || {
            let n = target.answered().len();
            (n > seen).then_some(n)
        });
        let text = relay.metrics();
        let value = served(&text).unwrap_or_else(|| panic!("round {round}: no value:\n{text}"));
        assert_eq!(
            value,
            before as f64 + 1.0,
            "round {round}: served {value}, not the scrape the GET asked for (the target had answered {before})"
        );
        assert_eq!(
            metric_value(&text, "up", &[]),
            Some(1.0),
            "round {round}:\n{text}"
        );
        on_demand.insert(value as u64);
        seen = before + 1;
    }
    // Every answered scrape goes through the loop before this one (a GET
    // after idle again, for the GET only), which fails.
    target.pause();
    std::thread::sleep(Duration::from_millis(1600));
    common::rw::wait_for_up(&relay, &target.addr, "0");
    let answered = target.answered();
    let interval: Vec<(u64, i64)> = answered
        .iter()
        .copied()
        .filter(|(n, _)| !on_demand.contains(n))
        .collect();
    assert!(interval.len() >= 3, "{answered:?}");
    let got = receiver_counts(&receiver, &interval);
    let got = one_series(&got, &series);
    let extra: Vec<_> = got
        .iter()
        .filter(|(_, v)| on_demand.contains(&(*v as u64)))
        .collect();
    assert!(
        extra.is_empty(),
        "scrapes a GET asked for ({on_demand:?}) reached remote write: {extra:?}"
    );
    assert_no_gaps(
        &renumbered(&interval),
        &renumber_got(&got, &interval),
        "the interval scrapes",
    );
    let live: Vec<(i64, f64)> = got
        .iter()
        .copied()
        .filter(|(_, v)| v.to_bits() != STALE_NAN_BITS)
        .collect();
    assert_eq!(
        live.len(),
        interval.len(),
        "one sample per interval scrape: {got:?}"
    );
    for pair in live.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= interval_ms / 2,
            "samples {pair:?} are not an interval apart: {live:?}"
        );
    }
}

/// `answered` numbered 1..=N again (for `assert_no_gaps`, which checks a
/// counting target's whole run).
fn renumbered(answered: &[(u64, i64)]) -> Vec<(u64, i64)> {
    answered
        .iter()
        .enumerate()
        .map(|(i, (_, at))| (i as u64 + 1, *at))
        .collect()
}

/// `got` with each value of `answered` replaced by its place (1..=N).
fn renumber_got(got: &[(i64, f64)], answered: &[(u64, i64)]) -> Vec<(i64, f64)> {
    got.iter()
        .map(|&(ts, v)| {
            let place = answered.iter().position(|(n, _)| *n as f64 == v);
            (ts, place.map_or(v, |p| p as f64 + 1.0))
        })
        .collect()
}

/// A receiver that refuses requests for a conflict ("out of order sample",
/// as Prometheus 2.42 answers) has relay split each one down to single
/// samples. The log gets one WARN per refused request, not one per piece
/// or sample, naming the queue, the URL, the status, the refused samples,
/// one of their series and the receiver's message; and at most one such
/// line per 10 s per queue. The failed-samples counter stays exact.
#[test]
fn refused_requests_log_one_line_each_with_what_to_act_on() {
    let receiver = Receiver::start();
    // Enough refusals for several requests and every piece of them.
    receiver.script(vec![Answer::text(400, "out of order sample\n"); 60]);
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, ONE_SHARD, "")],
    ));
    wait_for("the refusals used up", || {
        (receiver.requests().iter().filter(|r| r.accepted()).count() >= 2).then_some(())
    });
    let requests = receiver.requests();
    // A sample failed when its single-sample piece was refused.
    let failed = requests
        .iter()
        .filter(|r| r.status == 400 && r.samples().len() == 1)
        .count();
    assert!(failed > 10, "{failed} refused samples");
    let url = receiver.url.clone();
    settle("samples_failed_total = samples refused alone", || {
        (
            failed as f64,
            rw_metric(
                &relay,
                "prometheus_remote_storage_samples_failed_total",
                &url,
            ),
        )
    });
    let log = relay.logs();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("level=WARN") && l.contains("remote_name=rw"))
        .collect();
    assert_eq!(lines.len(), 1, "one WARN line for the refusals:\n{log}");
    let line = lines[0];
    eprintln!(
        "{} refused samples, {} requests, one line: {line}",
        failed,
        requests.len()
    );
    let first = &requests[0];
    assert_eq!(first.status, 400);
    let example = first.samples()[0].clone();
    for field in [
        format!("url={url}"),
        "status=400".to_owned(),
        format!("samples={}", first.samples().len()),
        "response=\"out of order sample\"".to_owned(),
        format!("instance=\\\"{}\\\"", target.addr),
        format!("series=\"{}{{", example.name()),
    ] {
        assert!(line.contains(&field), "{field} not in {line}");
    }
}

#[test]
fn receiver_credentials_and_headers_are_sent() {
    let receiver = Receiver::start();
    let other = Receiver::start();
    let target = CountingTarget::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").expect("password file");
    let basic = format!(
        "    headers: {{X-Scope-OrgID: tenant-1}}\n    basic_auth: {{username: relay, password_file: {}}}\n",
        password.display()
    );
    let bearer = "    authorization: {credentials: tok3n}\n";
    let _relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[
            entry("basic", &receiver.url, "", &basic),
            entry("bearer", &other.url, "", bearer),
        ],
    ));
    wait_for("a request at each receiver", || {
        (!receiver.requests().is_empty() && !other.requests().is_empty()).then_some(())
    });
    let r = &receiver.requests()[0];
    // base64("relay:s3cret")
    assert_eq!(
        r.header("Authorization"),
        Some("Basic cmVsYXk6czNjcmV0"),
        "{r:?}"
    );
    assert_eq!(r.header("X-Scope-OrgID"), Some("tenant-1"), "{r:?}");
    let o = &other.requests()[0];
    assert_eq!(o.header("Authorization"), Some("Bearer tok3n"), "{o:?}");
    assert_eq!(o.header("X-Scope-OrgID"), None, "{o:?}");
}

#[test]
fn requests_are_remote_write_1_0() {
    let receiver = Receiver::start();
    let target = CountingTarget::start();
    let _relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, "", "")],
    ));
    wait_for("3 requests at the receiver", || {
        (receiver.requests().len() >= 3).then_some(())
    });
    let requests = receiver.requests();
    for r in &requests {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/api/v1/write")
        );
        assert_eq!(r.header("Content-Encoding"), Some("snappy"), "{r:?}");
        assert_eq!(
            r.header("Content-Type"),
            Some("application/x-protobuf"),
            "{r:?}"
        );
        assert_eq!(
            r.header("X-Prometheus-Remote-Write-Version"),
            Some("0.1.0"),
            "{r:?}"
        );
        assert!(
            r.header("User-Agent")
                .is_some_and(|ua| ua.starts_with("relay/")),
            "{r:?}"
        );
        let write = r.write.as_ref().expect("a snappy-compressed WriteRequest");
        assert!(!write.timeseries.is_empty(), "an empty request: {r:?}");
        for series in &write.timeseries {
            // The spec: labels sorted by name, names unique, no empty value.
            let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "labels not sorted or not unique: {names:?}"
            );
            assert!(
                series.labels.iter().all(|l| !l.value.is_empty()),
                "{series:?}"
            );
            assert!(!series.samples.is_empty(), "{series:?}");
            assert!(
                series
                    .samples
                    .windows(2)
                    .all(|w| w[0].timestamp <= w[1].timestamp),
                "samples of a series out of timestamp order: {series:?}"
            );
        }
    }
    // Exactly the scraped series plus the five report series, each with
    // job, instance and the external label.
    let got = receiver.accepted();
    let names: BTreeSet<&str> = got.iter().map(Got::name).collect();
    let mut expected: BTreeSet<&str> = REPORT_SERIES.into_iter().collect();
    expected.insert("count_of_scrapes");
    assert_eq!(names, expected);
    for g in &got {
        assert_eq!(g.series(), app_labels(g.name(), &target.addr));
    }
    let up = receiver.accepted_named("up");
    assert!(up.iter().all(|g| g.value == 1.0), "{up:?}");
    let counts = receiver.accepted_named("count_of_scrapes");
    assert_eq!(counts.first().map(|g| g.value), Some(1.0), "{counts:?}");
}

#[test]
fn self_metrics_agree_with_what_the_receiver_got() {
    let receiver = Receiver::start();
    let target = CountingTarget::start();
    // A 2 s interval and a 200 ms batch deadline leave quiet gaps in which
    // everything scraped has been sent, so the counters can be compared
    // exactly with what arrived.
    let relay = Relay::start(&config(
        &target.addr,
        "2s",
        "",
        &[entry(
            "rw",
            &receiver.url,
            ", min_shards: 1, max_shards: 2",
            "",
        )],
    ));
    wait_for("2 requests at the receiver", || {
        (receiver.requests().len() >= 2).then_some(())
    });
    let url = receiver.url.clone();
    let ms = |seconds: f64| (seconds * 1000.0).round() as i64;
    settle(
        "self-metrics (samples, bytes, batches, highest timestamps) vs the receiver",
        || {
            let before = receiver.requests();
            let text = relay.metrics();
            let after = receiver.requests();
            let rw = |name: &str| {
                metric_value(
                    &text,
                    name,
                    &["remote_name=\"rw\"", &format!("url=\"{url}\"")],
                )
            };
            let max_ts = after
                .iter()
                .flat_map(Request::samples)
                .map(|g| g.ts)
                .max()
                .unwrap_or(0);
            let expected = (
                Some(sample_count(&after) as f64),
                Some(after.iter().map(|r| r.body_len).sum::<usize>() as f64),
                Some(after.len() as f64),
                Some(max_ts),
                Some(max_ts),
                before.len() == after.len(),
            );
            let actual = (
                rw("prometheus_remote_storage_samples_total"),
                rw("prometheus_remote_storage_bytes_total"),
                rw("prometheus_remote_storage_sent_batch_duration_seconds_count"),
                rw("prometheus_remote_storage_queue_highest_sent_timestamp_seconds").map(ms),
                metric_value(
                    &text,
                    "prometheus_remote_storage_highest_timestamp_in_seconds",
                    &[],
                )
                .map(ms),
                true,
            );
            (expected, actual)
        },
    );
    let text = relay.metrics();
    let rw_labels = ["remote_name=\"rw\"", &format!("url=\"{url}\"")];
    for (name, expected) in [
        ("prometheus_remote_storage_samples_failed_total", Some(0.0)),
        ("prometheus_remote_storage_samples_retried_total", Some(0.0)),
        ("prometheus_remote_storage_samples_dropped_total", Some(0.0)),
        ("prometheus_remote_storage_shards_min", Some(1.0)),
        ("prometheus_remote_storage_shards_max", Some(2.0)),
    ] {
        assert_eq!(metric_value(&text, name, &rw_labels), expected, "{name}");
    }
    let shards = metric_value(&text, "prometheus_remote_storage_shards", &rw_labels);
    assert!(
        shards.is_some_and(|s| (1.0..=2.0).contains(&s)),
        "shards {shards:?}"
    );
    assert!(
        metric_value(
            &text,
            "prometheus_remote_storage_shards_desired",
            &rw_labels
        )
        .is_some(),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("prometheus_remote_storage_highest_timestamp_in_seconds ")),
        "highest_timestamp_in_seconds has no labels, as in Prometheus: {text}"
    );
    assert!(
        metric_value(&text, "relay_wal_size_bytes", &[]).is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(
        metric_value(&text, "relay_wal_oldest_unsent_sample_age_seconds", &[])
            .is_some_and(|v| v >= 0.0),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "relay_wal_dropped_samples_total", &[]),
        Some(0.0)
    );
}

#[test]
fn external_labels_then_write_relabel_configs() {
    let receiver = Receiver::start();
    let target = Target::start(Reply::text(
        "# TYPE kept gauge\nkept{a=\"1\"} 5\n# TYPE dropped gauge\ndropped 7\n# TYPE own_cluster gauge\nown_cluster{cluster=\"own\"} 3\n# TYPE unscraped gauge\nunscraped 9\n",
    ));
    let rules = "    write_relabel_configs:\n      - source_labels: [__name__]\n        regex: dropped\n        action: drop\n      - source_labels: [cluster]\n        regex: c1\n        target_label: from_external\n        replacement: \"yes\"\n      - target_label: env\n        replacement: test\n";
    let base = config(
        &target.addr,
        "500ms",
        ", region: r1",
        &[entry("rw", &receiver.url, "", rules)],
    );
    // metric_relabel_configs come first: `unscraped` never reaches a queue.
    let with_metric_rules = base.replace(
        "\nremote_write:",
        "\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: unscraped\n        action: drop\nremote_write:",
    );
    let _relay = Relay::start(&with_metric_rules);
    wait_for("3 up samples at the receiver", || {
        (receiver.accepted_named("up").len() >= 3).then_some(())
    });
    let got = receiver.accepted();
    let instance = target.addr.as_str();
    let series = |name: &str| -> BTreeSet<(Vec<(String, String)>, u64)> {
        got.iter()
            .filter(|g| g.name() == name)
            .map(|g| (g.series(), g.value.to_bits()))
            .collect()
    };
    let ext = |name: &'static str| {
        labels(&[
            ("__name__", name),
            ("cluster", "c1"),
            ("region", "r1"),
            ("from_external", "yes"),
            ("env", "test"),
            ("instance", instance),
            ("job", "app"),
        ])
    };
    let mut kept = ext("kept");
    kept.push(("a".into(), "1".into()));
    kept.sort();
    assert_eq!(series("kept"), BTreeSet::from([(kept, 5f64.to_bits())]));
    // The series' own cluster wins over the external label, so the rule
    // matching cluster=c1 does not fire for it.
    assert_eq!(
        series("own_cluster"),
        BTreeSet::from([(
            labels(&[
                ("__name__", "own_cluster"),
                ("cluster", "own"),
                ("region", "r1"),
                ("env", "test"),
                ("instance", instance),
                ("job", "app"),
            ]),
            3f64.to_bits()
        )])
    );
    assert_eq!(series("up"), BTreeSet::from([(ext("up"), 1f64.to_bits())]));
    assert_eq!(
        series("scrape_samples_scraped"),
        BTreeSet::from([(ext("scrape_samples_scraped"), 4f64.to_bits())])
    );
    assert_eq!(
        series("scrape_samples_post_metric_relabeling"),
        BTreeSet::from([(ext("scrape_samples_post_metric_relabeling"), 3f64.to_bits())])
    );
    assert!(series("dropped").is_empty(), "write_relabel_configs drop");
    assert!(
        series("unscraped").is_empty(),
        "metric_relabel_configs drop"
    );
}

/// The sample with the highest timestamp of a series (and that it is alone
/// at that timestamp).
fn last_of(got: &[Got], name: &str) -> Got {
    let of: Vec<&Got> = got.iter().filter(|g| g.name() == name).collect();
    let max = of
        .iter()
        .map(|g| g.ts)
        .max()
        .expect("samples of the series");
    let at_max: BTreeSet<u64> = of
        .iter()
        .filter(|g| g.ts == max)
        .map(|g| g.value.to_bits())
        .collect();
    assert_eq!(at_max.len(), 1, "{name}: several values at {max}: {of:?}");
    of.into_iter()
        .find(|g| g.ts == max)
        .cloned()
        .expect("the last sample")
}

#[test]
fn stale_markers_for_vanished_failed_and_shut_down_series() {
    let receiver = Receiver::start();
    let target = Target::start(Reply::text("# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\n"));
    let wal = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start_with(
        &config(
            &target.addr,
            "500ms",
            "",
            &[entry("rw", &receiver.url, "", "")],
        ),
        wal.path(),
        SHUTDOWN,
    );
    wait_for("2 samples of b", || {
        (receiver.accepted_named("b").len() >= 2).then_some(())
    });

    // b vanishes: one stale marker, stamped with the first scrape without it.
    target.set(Reply::text("# TYPE a gauge\na 1\n"));
    let stale_b = wait_for("a stale marker for b", || {
        receiver
            .accepted_named("b")
            .into_iter()
            .find(|g| g.value.is_nan())
    });
    assert_eq!(stale_b.value.to_bits(), STALE_NAN_BITS, "{stale_b:?}");
    let last_b = receiver
        .accepted_named("b")
        .iter()
        .filter(|g| !g.value.is_nan())
        .map(|g| g.ts)
        .max()
        .expect("b's samples");
    let first_a_without_b = wait_for("a's sample of the scrape without b", || {
        let a = receiver.accepted_named("a");
        a.iter()
            .any(|g| g.ts >= stale_b.ts)
            .then(|| a.iter().map(|g| g.ts).filter(|&ts| ts > last_b).min())
    });
    assert_eq!(
        Some(stale_b.ts),
        first_a_without_b,
        "b's marker is stamped with the first scrape without b, as in Prometheus"
    );

    // The target fails: a's stale marker at the failed scrape's time, up 0.
    target.set(Reply {
        status: 503,
        ..Reply::text("down\n")
    });
    let stale_a = wait_for("a stale marker for a", || {
        receiver
            .accepted_named("a")
            .into_iter()
            .find(|g| g.value.is_nan())
    });
    assert_eq!(stale_a.value.to_bits(), STALE_NAN_BITS, "{stale_a:?}");
    let first_down = wait_for("up 0", || {
        receiver
            .accepted_named("up")
            .into_iter()
            .find(|g| g.value == 0.0)
    });
    assert_eq!(
        stale_a.ts, first_down.ts,
        "a's marker time is the failed scrape's"
    );

    // Back up, then SIGTERM: a final scrape, then every series of the
    // target ends with a marker stamped with the shutdown time.
    target.set(Reply::text("# TYPE a gauge\na 1\n"));
    wait_for("a again after the failure", || {
        receiver
            .accepted_named("a")
            .into_iter()
            .find(|g| g.ts > stale_a.ts && g.value == 1.0)
    });
    let sigterm_at = now_ms();
    let status = relay.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let exited_at = now_ms();
    let got = receiver.accepted();
    assert!(
        got.iter()
            .any(|g| g.name() == "a" && g.value == 1.0 && g.ts >= sigterm_at),
        "no final scrape of a after SIGTERM at {sigterm_at}"
    );
    for name in REPORT_SERIES.into_iter().chain(["a"]) {
        let last = last_of(&got, name);
        assert_eq!(
            last.value.to_bits(),
            STALE_NAN_BITS,
            "{name} must end with a stale marker: {last:?}"
        );
        assert!(
            sigterm_at <= last.ts && last.ts <= exited_at,
            "{name}'s marker at {} is not the shutdown time ({sigterm_at}..{exited_at})",
            last.ts
        );
    }
    // b stays stale: nothing of it after its marker.
    assert_eq!(last_of(&got, "b").ts, stale_b.ts);
    assert_in_order_per_series(&got);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let receiver = Receiver::start();
    receiver.script(vec![Answer::status(500); 3]);
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, ONE_SHARD, "")],
    ));
    wait_for("2 accepted requests after the 500s", || {
        (receiver.requests().iter().filter(|r| r.accepted()).count() >= 2).then_some(())
    });
    let requests = receiver.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses[..4], [500, 500, 500, 204], "{statuses:?}");
    // Capped exponential backoff from min_backoff (50ms): 50, 100, 200 ms.
    for (i, min) in [50u64, 100, 200].into_iter().enumerate() {
        let waited = requests[i + 1].arrived.duration_since(requests[i].answered);
        assert!(
            waited >= Duration::from_millis(min),
            "retry {} came {waited:?} after a 500, before the {min} ms backoff",
            i + 1
        );
    }
    // What the 500s held arrives later, byte-identical.
    let refused: Vec<Got> = requests[..3].iter().flat_map(Request::samples).collect();
    assert!(!refused.is_empty());
    assert_retried_then_delivered(
        &relay,
        &receiver,
        &target,
        &refused,
        "500s",
        "after three 500s",
    );
    assert_in_order_per_series(&receiver.accepted());
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let receiver = Receiver::start();
    // Retry-After (2 s) beyond max_backoff (1 s): Prometheus honours it.
    receiver.script(vec![Answer::retry_after(429, 2)]);
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, ONE_SHARD, "")],
    ));
    wait_for("an accepted request after the 429", || {
        receiver
            .requests()
            .iter()
            .any(|r| r.accepted())
            .then_some(())
    });
    let requests = receiver.requests();
    assert_eq!(requests[0].status, 429);
    let waited = requests[1].arrived.duration_since(requests[0].answered);
    assert!(
        waited >= Duration::from_secs(2),
        "retried {waited:?} after a 429 with Retry-After: 2"
    );
    // Not far beyond it either: a Retry-After misread (as minutes, or
    // added to a backoff that keeps growing) waits 10 s or more; a loaded
    // machine's late retry does not.
    assert!(
        waited < Duration::from_secs(2 + 8),
        "retried {waited:?} after a 429 with Retry-After: 2, far past it"
    );
    let refused = requests[0].samples();
    assert!(!refused.is_empty());
    assert_retried_then_delivered(&relay, &receiver, &target, &refused, "429", "after a 429");
}

#[test]
fn client_errors_are_dropped_counted_and_logged() {
    refused_batch_is_dropped_counted_and_logged(Answer::status(400), 400, ONE_SHARD);
}

/// `retry_on_http_429: false` (Prometheus 2.42's default): a 429 is a
/// refused batch like a 400: not retried (Retry-After or not), logged,
/// its samples counted as failed; everything else still arrives.
#[test]
fn with_retry_on_http_429_false_a_429_is_dropped_and_counted() {
    refused_batch_is_dropped_counted_and_logged(
        Answer::retry_after(429, 1),
        429,
        &format!("{ONE_SHARD}, retry_on_http_429: false"),
    );
}

/// The receiver answers the first request with `answer` (`status`), a
/// refusal for good: that batch is not sent again, a WARN line says so,
/// its samples are counted as failed (none as retried), and every count
/// of the other batches still arrives.
fn refused_batch_is_dropped_counted_and_logged(answer: Answer, status: u16, queue: &str) {
    let receiver = Receiver::start();
    receiver.script(vec![answer]);
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, queue, "")],
    ));
    wait_for("3 requests", || {
        (receiver.requests().len() >= 3).then_some(())
    });
    let log = relay.wait_for_log(&["not retried", &status.to_string()]);
    assert!(log.contains("WARN"), "{log}");
    let answered = target.pause_and_settle(&relay);
    let requests = receiver.requests();
    assert_eq!(requests[0].status, status);
    let dropped = requests[0].samples();
    assert!(!dropped.is_empty());
    let dropped_keys: BTreeSet<_> = dropped.iter().map(Got::key).collect();
    for later in &requests[1..] {
        for g in later.samples() {
            assert!(
                !dropped_keys.contains(&g.key()),
                "a sample refused with {status} was sent again: {g:?}"
            );
        }
    }
    let url = receiver.url.clone();
    settle(
        "samples_failed_total = samples of the refused batch",
        || {
            (
                (dropped.len() as f64, 0.0),
                (
                    rw_metric(
                        &relay,
                        "prometheus_remote_storage_samples_failed_total",
                        &url,
                    ),
                    rw_metric(
                        &relay,
                        "prometheus_remote_storage_samples_retried_total",
                        &url,
                    ),
                ),
            )
        },
    );
    // Everything else still arrives: exactly the refused batch's counts
    // are missing.
    let lost: BTreeSet<u64> = dropped
        .iter()
        .filter(|g| g.name() == "count_of_scrapes")
        .map(|g| g.value as u64)
        .collect();
    let expected: BTreeSet<u64> = answered
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !lost.contains(n))
        .collect();
    settle("the counts not in the refused batch arrive", || {
        let got: BTreeSet<u64> = receiver
            .accepted_named("count_of_scrapes")
            .iter()
            .filter(|g| !g.is_stale())
            .map(|g| g.value as u64)
            .collect();
        (expected.clone(), got)
    });
}

/// An HTTPS receiver that demands a client certificate: with `tls_config`
/// (`ca_file` to trust it, `cert_file`/`key_file` to be let in) every
/// answered scrape arrives; without the CA, or without the client
/// certificate, the handshake is refused, logged as such, and nothing is
/// delivered (the samples wait in the WAL).
#[test]
#[ignore = "needs openssl; scripts/test runs it"]
fn an_https_receiver_with_tls_config() {
    let openssl = common::peers::require_peer("openssl", "openssl");
    let certs = common::certs::Certs::make(&openssl, "IP:127.0.0.1");
    let ca = certs.path("ca.pem");
    let receiver = Receiver::start_tls(
        &certs.path("server.pem"),
        &certs.path("server.key"),
        Some(&ca),
    );
    let tls = |lines: &[String]| {
        let mut out = "    tls_config:\n".to_owned();
        for l in lines {
            out.push_str(&format!("      {l}\n"));
        }
        out
    };
    let ca_file = format!("ca_file: {}", certs.file("ca.pem"));
    let identity = [
        format!("cert_file: {}", certs.file("client.pem")),
        format!("key_file: {}", certs.file("client.key")),
    ];
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry(
            "rw",
            &receiver.url,
            ONE_SHARD,
            &tls(&[ca_file.clone(), identity[0].clone(), identity[1].clone()]),
        )],
    ));
    target.wait_answered(3);
    let answered = target.pause_and_settle(&relay);
    let got = receiver_counts(&receiver, &answered);
    let got: Vec<(i64, f64)> = got.iter().map(|g| (g.ts, g.value)).collect();
    assert_no_gaps(&answered, &got, "over HTTPS with a client certificate");
    // Refusals: the certificate error itself, and nothing delivered.
    let refusals = [
        (tls(&identity), "UnknownIssuer"),
        (tls(std::slice::from_ref(&ca_file)), "CertificateRequired"),
    ];
    for (tls_config, error) in refusals {
        let other = Receiver::start_tls(
            &certs.path("server.pem"),
            &certs.path("server.key"),
            Some(&ca),
        );
        let relay = Relay::start(&config(
            &target.addr,
            "500ms",
            "",
            &[entry("rw", &other.url, ONE_SHARD, &tls_config)],
        ));
        relay.wait_for_log(&["remote write failed; retrying", error]);
        assert!(other.accepted().is_empty(), "{error}: delivered anyway");
    }
}

/// Past `relay.wal_max_size` with the receiver down, the running relay
/// drops the oldest segments: the samples lost are counted in
/// `relay_wal_dropped_samples_total` and logged (the log's counts add up
/// to the metric), they are the oldest (one run of a target's first
/// values, but for the batch the queue had already read, which is sent),
/// and once the receiver is up nothing else is lost.
#[test]
fn the_wal_cap_drops_the_oldest_samples_counted_and_nothing_else() {
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/v1/write");
    // 3000 series a scrape fill the 1 MiB cap within seconds.
    let mut body = String::from("# TYPE big gauge\n");
    for i in 0..3000 {
        body.push_str(&format!("big{{i=\"{i}\"}} {i}\n"));
    }
    let big = Target::start(Reply::text(&body));
    let target = CountingTarget::start();
    let wal = tempfile::tempdir().expect("wal dir");
    let relay = Relay::start_with(
        &format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\n  - job_name: big\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n{}",
            target.addr,
            big.addr,
            entry("rw", &url, ONE_SHARD, "")
        ),
        wal.path(),
        "  wal_max_size: 1MiB\n",
    );
    let dropped = || {
        metric_value(&relay.metrics_ok(), "relay_wal_dropped_samples_total", &[])
            .unwrap_or_else(|| panic!("no relay_wal_dropped_samples_total:\n{}", relay.metrics()))
    };
    wait_for("two segments dropped over the cap", || {
        (relay
            .logs()
            .matches("WAL over relay.wal_max_size: dropped its oldest segment")
            .count()
            >= 2)
            .then_some(())
    });
    // Some scrapes after the drops; then the receiver comes up and the app
    // stops answering (its last values are then all in the WAL).
    let after_drops = target.answered().len();
    target.wait_answered(after_drops + 10);
    let receiver = Receiver::start_on(&addr);
    let answered = target.pause_and_settle(&relay);
    let got = poll_until(
        || receiver.accepted_named("count_of_scrapes"),
        |got| got.iter().any(|g| g.value as usize == answered.len()),
    );
    let values: BTreeSet<u64> = got
        .iter()
        .filter(|g| !g.is_stale())
        .map(|g| g.value as u64)
        .collect();
    // The lost values are one run of the oldest: before it only what the
    // queue had already read into its batch when the segment went (sent
    // once the receiver was up), after it every value.
    let missing: Vec<u64> = answered
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !values.contains(n))
        .collect();
    let (Some(&lost_from), Some(&lost_to)) = (missing.first(), missing.last()) else {
        panic!("nothing was dropped: {values:?}");
    };
    assert_eq!(
        missing.len() as u64,
        lost_to - lost_from + 1,
        "lost values are not one run: {missing:?}"
    );
    assert!(
        lost_to < after_drops as u64,
        "lost values {missing:?} reach past the drops (value {after_drops})"
    );
    // What the queue holds in memory is at most its capacity and one
    // request (10,000 + 2,000 samples by default), and each of the app's
    // values is written beside one of `big`'s 3000-sample scrapes: so at
    // most the first 1 + 12,000 / 3000 values can be kept before the lost
    // run. (How many it has read when the first segment goes depends on
    // the machine's load: 1..3 was seen on a busy CI machine.)
    let held = 1 + (10_000 + 2_000) / 3000;
    assert!(
        lost_from <= held + 1,
        "the oldest values {:?} were kept but later ones lost: {missing:?}",
        1..lost_from
    );
    // Counted and logged: the log lines' samples add up to the metric,
    // which holds at least the lost scrapes' samples of the app (its value
    // and its 5 report series each).
    let logged: f64 = relay
        .logs()
        .lines()
        .filter(|l| l.contains("dropped its oldest segment"))
        .map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("samples="))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no samples= in {l}"))
        })
        .sum();
    let counted = dropped();
    assert_eq!(counted, logged, "metric vs log");
    assert!(
        counted >= 6.0 * missing.len() as f64,
        "{counted} counted for {} lost scrapes of the app",
        missing.len()
    );
    eprintln!(
        "WAL cap: {counted} samples counted as dropped; app values {lost_from}..={lost_to} lost, {} of {} delivered",
        values.len(),
        answered.len()
    );
}

#[test]
fn sigterm_flushes_the_backlog() {
    flushes_the_backlog_on("TERM");
}

/// SIGINT (Ctrl-C in a terminal) stops relay as SIGTERM does: the last
/// scrape, staleness markers, the backlog flushed, exit 0.
#[test]
fn sigint_flushes_the_backlog_as_sigterm() {
    flushes_the_backlog_on("INT");
}

/// Relay stopped by `signal` with 6 scrapes waiting for a receiver that
/// has just come up: everything arrives before it exits 0.
fn flushes_the_backlog_on(signal: &str) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}/api/v1/write");
    let wal = tempfile::tempdir().expect("tempdir");
    let target = CountingTarget::start();
    let mut relay = Relay::start_with(
        &config(&target.addr, "500ms", "", &[entry("rw", &url, "", "")]),
        wal.path(),
        SHUTDOWN,
    );
    // Receiver down for 6 scrapes.
    target.wait_answered(6);
    let receiver = Receiver::start_on(&addr);
    let status = relay.stop_with(signal);
    assert!(
        status.success(),
        "exit status after SIG{signal}: {status:?}"
    );
    assert!(relay.logs().contains("msg=stopping"), "{}", relay.logs());
    // Everything, the final scrape included, arrived before relay exited.
    let answered = target.answered();
    let counts = receiver.accepted_named("count_of_scrapes");
    assert_no_gaps(
        &answered,
        &one_series(&counts, &app_labels("count_of_scrapes", &target.addr)),
        &format!("backlog flushed on SIG{signal}"),
    );
    let got = receiver.accepted();
    assert_in_order_per_series(&got);
    assert_eq!(
        last_of(&got, "count_of_scrapes").value.to_bits(),
        STALE_NAN_BITS
    );
}

#[test]
fn kill9_while_the_receiver_is_down_loses_nothing() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}/api/v1/write");
    let wal = tempfile::tempdir().expect("tempdir");
    let target = CountingTarget::start();
    let cfg = config(&target.addr, "500ms", "", &[entry("rw", &url, "", "")]);
    let mut first = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(4);
    let before = target.pause_and_settle(&first);
    first.kill9();
    target.resume();
    let second = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(before.len() + 3);
    let receiver = Receiver::start_on(&addr);
    target.wait_answered(before.len() + 5);
    let answered = target.pause_and_settle(&second);
    let counts = receiver_counts(&receiver, &answered);
    assert_no_gaps(
        &answered,
        &one_series(&counts, &app_labels("count_of_scrapes", &target.addr)),
        "kill -9 while the receiver was down",
    );
    // Replayed samples came before the newer ones, series by series.
    assert_in_order_per_series(&receiver.accepted());
}

/// An upgrade in place: an unnamed entry's queue (and its WAL checkpoint
/// file) was named by the md5 of its URL with the password, and now of the
/// URL redacted. The checkpoint under the old name is taken over, so the
/// backlog a relay killed while the receiver was down left still arrives.
#[test]
fn an_upgrade_resumes_the_checkpoint_saved_under_the_old_default_name() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://u:S3cret@{addr}/api/v1/write");
    let hash = |text: &str| format!("{:x}", md5::compute(text.as_bytes()))[..6].to_owned();
    let (old, new) = (hash(&url), hash(&url.replace("S3cret", "xxxxx")));
    assert_ne!(old, new);
    let wal = tempfile::tempdir().expect("tempdir");
    let checkpoints = wal.path().join("checkpoints");
    let target = CountingTarget::start();
    // The earlier release: the same queue, under the name it gave it.
    let mut first = Relay::start_with(
        &config(&target.addr, "500ms", "", &[entry(&old, &url, "", "")]),
        wal.path(),
        "",
    );
    target.wait_answered(4);
    let before = target.pause_and_settle(&first);
    first.kill9();
    assert!(checkpoints.join(&old).exists());
    target.resume();
    let unnamed = format!(
        "  - url: {url}\n    queue_config: {{min_backoff: 50ms, max_backoff: 1s, batch_send_deadline: 200ms}}\n"
    );
    let second = Relay::start_with(
        &config(&target.addr, "500ms", "", &[unnamed]),
        wal.path(),
        "",
    );
    // Not a GET of /metrics while the target counts: that would scrape it
    // for the GET alone. The queue resumes in the first relay's segment.
    second.wait_for_log(&[
        "remote write queue starting from its checkpoint",
        &format!("remote_name={new} "),
        "segment=1 ",
    ]);
    assert!(
        !checkpoints.join(&old).exists() && checkpoints.join(&new).exists(),
        "checkpoints: {:?}",
        std::fs::read_dir(&checkpoints)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    target.wait_answered(before.len() + 3);
    let receiver = Receiver::start_on(&addr);
    target.wait_answered(before.len() + 5);
    let answered = target.pause_and_settle(&second);
    let counts = receiver_counts(&receiver, &answered);
    assert_no_gaps(
        &answered,
        &one_series(&counts, &app_labels("count_of_scrapes", &target.addr)),
        "the backlog saved under the old queue name",
    );
    assert_in_order_per_series(&receiver.accepted());
    let line = second.wait_for_line("prometheus_remote_storage_samples_total{");
    assert!(line.contains(&format!("remote_name=\"{new}\"")), "{line}");
    let logs = second.logs();
    assert!(!logs.contains("S3cret"), "{logs}");
    // The client sends the user info as basic auth: the URL it reports
    // without it is the one requested, not a redirect.
    assert!(logs.contains("remote write failed; retrying"), "{logs}");
    assert!(!logs.contains("after a redirect"), "{logs}");
}

/// The one series of `stored` (none if nothing was stored), checking it
/// has `expected` labels, as (ts, value).
fn stored_series(stored: &[Stored], expected: &[(String, String)]) -> Vec<(i64, f64)> {
    assert!(stored.len() <= 1, "one series expected: {stored:?}");
    let Some((labels, samples)) = stored.first() else {
        return Vec::new();
    };
    assert_eq!(labels, expected);
    samples
        .iter()
        .map(|(ts, v)| (*ts, v.parse().expect("a number")))
        .collect()
}

/// Waits until `peer` has every value the counting target served, then
/// asserts no gaps and exact labels.
fn assert_peer_has_all(peer: &Peer, target: &CountingTarget, answered: &[(u64, i64)], what: &str) {
    let stored = poll_until(
        || peer.raw("count_of_scrapes"),
        |stored| {
            has_every_count(
                answered,
                stored
                    .iter()
                    .flat_map(|(_, s)| s.iter().filter_map(|(_, v)| v.parse().ok())),
            )
        },
    );
    assert_no_gaps(
        answered,
        &stored_series(&stored, &app_labels("count_of_scrapes", &target.addr)),
        what,
    );
}

#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn prometheus_stores_exactly_what_relay_sent() {
    let (prometheus, _dir) = Peer::fresh(Kind::Prometheus);
    // The same samples also go to the Rust receiver, which shows exactly
    // what relay sent.
    let receiver = Receiver::start();
    let target = CountingTarget::start();
    let wal = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start_with(
        &config(
            &target.addr,
            "500ms",
            "",
            &[
                entry("prom", &prometheus.write_url(), "", ""),
                entry("rw", &receiver.url, "", ""),
            ],
        ),
        wal.path(),
        SHUTDOWN,
    );
    target.wait_answered(5);
    let status = relay.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let answered = target.answered();
    assert_peer_has_all(&prometheus, &target, &answered, "Prometheus");
    // Every series and sample Prometheus stored equals what was sent
    // (Prometheus leaves stale markers out of range queries).
    let sent: BTreeSet<SampleKey> = receiver
        .accepted()
        .iter()
        .filter(|g| !g.is_stale())
        .map(Got::key)
        .collect();
    let stored: BTreeSet<SampleKey> = prometheus
        .raw("{job=\"app\"}")
        .into_iter()
        .flat_map(|(labels, samples)| {
            samples.into_iter().map(move |(ts, v)| {
                let v: f64 = v.parse().expect("a number");
                (labels.clone(), ts, v.to_bits())
            })
        })
        .collect();
    let missing: Vec<_> = sent.difference(&stored).collect();
    let extra: Vec<_> = stored.difference(&sent).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "sent but not stored: {missing:?}\nstored but not sent: {extra:?}"
    );
    let names: BTreeSet<&str> = sent
        .iter()
        .filter_map(|(l, _, _)| l.iter().find(|(k, _)| k == "__name__"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn prometheus_down_then_back_no_gaps() {
    let (mut prometheus, _dir) = Peer::fresh(Kind::Prometheus);
    let target = CountingTarget::start();
    let url = prometheus.write_url();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &url, "", "")],
    ));
    target.wait_answered(3);
    wait_for("Prometheus to have a count", || {
        (!prometheus.raw("count_of_scrapes").is_empty()).then_some(())
    });
    prometheus.stop();
    let down = target.answered().len();
    target.wait_answered(down + 6);
    prometheus.restart();
    target.wait_answered(down + 9);
    let answered = target.pause_and_settle(&relay);
    assert_peer_has_all(
        &prometheus,
        &target,
        &answered,
        "Prometheus stopped for 3 s, then back",
    );
    // Nothing was refused as out of order on the way.
    assert_eq!(
        rw_metric(
            &relay,
            "prometheus_remote_storage_samples_failed_total",
            &url
        ),
        0.0,
        "{}",
        prometheus.logs()
    );
}

#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn kill9_while_prometheus_is_down_then_both_back_no_gaps() {
    let binary = require_peer("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/v1/write");
    let wal = tempfile::tempdir().expect("tempdir");
    let target = CountingTarget::start();
    let cfg = config(&target.addr, "500ms", "", &[entry("rw", &url, "", "")]);
    let mut first = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(4);
    let before = target.pause_and_settle(&first);
    first.kill9();
    target.resume();
    let second = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(before.len() + 3);
    let prometheus = Peer::start(Kind::Prometheus, &binary, &addr, dir.path());
    target.wait_answered(before.len() + 5);
    let answered = target.pause_and_settle(&second);
    assert_peer_has_all(
        &prometheus,
        &target,
        &answered,
        "kill -9 of relay while Prometheus was down",
    );
    assert_eq!(
        rw_metric(
            &second,
            "prometheus_remote_storage_samples_failed_total",
            &url
        ),
        0.0,
        "{}",
        prometheus.logs()
    );
}

/// The sidecar's everyday crash: relay killed while the receiver is up,
/// just after delivering, then restarted on its WAL. What it resends from
/// its checkpoint must not make Prometheus refuse anything (a refused
/// batch is dropped whole), and nothing may be missing.
#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn kill9_while_prometheus_is_up_then_restarted_no_gaps_nothing_refused() {
    let (prometheus, _dir) = Peer::fresh(Kind::Prometheus);
    let url = prometheus.write_url();
    let wal = tempfile::tempdir().expect("tempdir");
    let target = CountingTarget::start();
    // Scrapes every 200 ms, so that the checkpoint (saved every second)
    // lags several deliveries behind when relay is killed.
    let cfg = config(&target.addr, "200ms", "", &[entry("rw", &url, "", "")]);
    let mut first = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(10);
    let before = target.pause_and_settle(&first);
    // Kill right after a delivery: as soon as Prometheus has the up 0 of
    // a failed scrape (the checkpoint on disk may lag behind it). Not
    // necessarily the first one refused: that may be the first GET's own
    // scrape, which is not remote-written.
    let stored_up_0 = |up: &[Stored]| {
        let refused = target.refused();
        up.iter()
            .flat_map(|(_, s)| s)
            .any(|(ts, v)| v == "0" && refused.iter().any(|r| r - 1000 <= *ts && *ts <= r + 1))
    };
    let up = poll_until(|| prometheus.raw("up"), |up| stored_up_0(up));
    first.kill9();
    assert!(
        stored_up_0(&up),
        "no up 0 for the scrapes refused at {:?}: {up:?}",
        target.refused()
    );
    target.resume();
    let second = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(before.len() + 10);
    let answered = target.pause_and_settle(&second);
    assert_peer_has_all(
        &prometheus,
        &target,
        &answered,
        "kill -9 of relay while Prometheus was up",
    );
    assert_eq!(
        rw_metric(
            &second,
            "prometheus_remote_storage_samples_failed_total",
            &url
        ),
        0.0,
        "the restarted relay had samples refused:\n{}\n{}",
        second.logs(),
        prometheus
            .logs()
            .lines()
            .filter(|l| l.contains("remote write"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The worst resend: relay delivers for a while, then keeps scraping while
/// Prometheus is down, and its checkpoint is rewound to the start of the
/// WAL (as if it had died before saving any). The restarted relay replays
/// everything: samples Prometheus stored, several per series, mixed in the
/// same requests with samples it never got. Prometheus 2.42 refuses each
/// older resent sample with a 400 that rolls back its whole request, so
/// relay must split such requests to get the new samples through, and
/// count the refused resends as redelivered, not failed.
#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn a_rewound_checkpoint_resends_to_prometheus_without_loss() {
    let (mut prometheus, _dir) = Peer::fresh(Kind::Prometheus);
    let url = prometheus.write_url();
    let wal = tempfile::tempdir().expect("tempdir");
    let target = CountingTarget::start();
    let cfg = config(&target.addr, "200ms", "", &[entry("rw", &url, "", "")]);
    let mut first = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(10);
    let delivered = target.pause_and_settle(&first);
    assert_peer_has_all(&prometheus, &target, &delivered, "first relay");
    // Prometheus goes down; relay scrapes on into its WAL.
    prometheus.stop();
    target.resume();
    target.wait_answered(delivered.len() + 8);
    target.pause_and_settle(&first);
    first.kill9();
    let checkpoint = wal.path().join("checkpoints").join("rw");
    std::fs::write(&checkpoint, "1 0\n").expect("rewind the checkpoint");
    prometheus.restart();
    target.resume();
    let second = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(delivered.len() + 16);
    let answered = target.pause_and_settle(&second);
    assert_peer_has_all(&prometheus, &target, &answered, "after a full resend");
    let failed = rw_metric(
        &second,
        "prometheus_remote_storage_samples_failed_total",
        &url,
    );
    assert_eq!(failed, 0.0, "resends counted as failed:\n{}", second.logs());
    let redelivered = rw_metric(
        &second,
        "relay_remote_write_redelivered_samples_total",
        &url,
    );
    assert!(
        redelivered >= delivered.len() as f64,
        "{redelivered} samples counted as redelivered, expected at least the {} counts delivered before",
        delivered.len()
    );
}

#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn sigterm_flushes_the_backlog_to_prometheus() {
    let binary = require_peer("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/v1/write");
    let target = CountingTarget::start();
    let wal = tempfile::tempdir().expect("tempdir");
    let mut relay = Relay::start_with(
        &config(&target.addr, "500ms", "", &[entry("rw", &url, "", "")]),
        wal.path(),
        SHUTDOWN,
    );
    target.wait_answered(6);
    let prometheus = Peer::start(Kind::Prometheus, &binary, &addr, dir.path());
    let status = relay.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let answered = target.answered();
    // Delivered before exit: Prometheus has it all at once.
    let stored = prometheus.raw("count_of_scrapes");
    assert_no_gaps(
        &answered,
        &stored_series(&stored, &app_labels("count_of_scrapes", &target.addr)),
        "backlog flushed to Prometheus on SIGTERM",
    );
}

#[test]
#[ignore = "needs Debian package victoria-metrics; scripts/test runs it"]
fn victoria_metrics_gets_every_sample_with_external_labels() {
    let (vm, _dir) = Peer::fresh(Kind::VictoriaMetrics);
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &vm.write_url(), "", "")],
    ));
    target.wait_answered(6);
    let answered = target.pause_and_settle(&relay);
    // VictoriaMetrics keeps exact duplicates: assert_no_gaps counts
    // distinct timestamps per value.
    assert_peer_has_all(&vm, &target, &answered, "VictoriaMetrics");
    let up = vm.raw("up");
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].0, app_labels("up", &target.addr));
}

/// A receiver that accepts connections and never answers: every send hangs
/// until relay gives up on it.
struct HungReceiver {
    addr: String,
}

impl HungReceiver {
    fn start() -> HungReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind hung receiver");
        let addr = listener.local_addr().expect("addr").to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        HungReceiver { addr }
    }
}

#[test]
fn sigterm_exits_within_shutdown_timeout_when_target_and_receiver_hang() {
    let target = Target::start(Reply::text("# TYPE a gauge\na 1\n"));
    let receiver = HungReceiver::start();
    let url = format!("http://{}/api/v1/write", receiver.addr);
    let wal = tempfile::tempdir().expect("wal dir");
    let mut relay = Relay::start_with(
        &config(
            &target.addr,
            // A 4 s scrape timeout: the last scrape alone would outlast 2 s.
            "4s",
            "",
            &[entry("hung", &url, ONE_SHARD, "    remote_timeout: 30s\n")],
        ),
        wal.path(),
        "  shutdown_timeout: 2s\n",
    );
    // An interval scrape is in the WAL (a GET's own scrape is not).
    wait_for("a scrape in the WAL", || {
        metric_value(
            &relay.metrics(),
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            &[],
        )
        .filter(|v| *v > 0.0)
    });
    // The last scrape would now wait 60 s for the app, and every send 30 s
    // for the receiver: both must give way to the 2 s budget.
    target.set(Reply {
        delay: Duration::from_secs(60),
        ..Reply::text("# TYPE a gauge\na 1\n")
    });
    let sent = std::time::Instant::now();
    let status = relay.terminate();
    let took = sent.elapsed();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    // The budget is spent flushing to the hung receiver, then relay gives
    // up: not before 2 s, and well before what a relay that ignored it
    // would take (the 30 s remote_timeout, the 60 s scrape). The 5 s
    // margin is for a loaded machine's slow exit.
    assert!(
        took >= Duration::from_secs(2),
        "relay exited {took:?} after SIGTERM, before its 2 s flush budget\n{}",
        relay.logs()
    );
    assert!(
        took < Duration::from_secs(2 + 5),
        "relay took {took:?} to exit, past its 2 s shutdown_timeout\n{}",
        relay.logs()
    );
    let logs = relay.logs();
    assert!(
        logs.contains("not flushed within relay.shutdown_timeout"),
        "{logs}"
    );
}

/// A receiver behind a redirect (a load balancer moving the write path):
/// Prometheus's remote write follows it by default, 307 resending the POST
/// with its body; relay must too, and with `follow_redirects: false` the
/// 307 is a refused batch, counted as failed.
#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn remote_write_follows_a_307_to_the_receiver() {
    let (prometheus, _dir) = Peer::fresh(Kind::Prometheus);
    let front = Target::start(Reply::text("not a receiver\n"));
    front.redirect("/api/v1/write", 307, &prometheus.write_url());
    front.redirect("/old/write", 307, &prometheus.write_url());
    let target = CountingTarget::start();
    let moved = format!("http://{}/api/v1/write", front.addr);
    let refused = format!("http://{}/old/write", front.addr);
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[
            entry("rw", &moved, "", ""),
            entry("no", &refused, "", "    follow_redirects: false\n"),
        ],
    ));
    target.wait_answered(4);
    let answered = target.pause_and_settle(&relay);
    assert_peer_has_all(&prometheus, &target, &answered, "Prometheus behind a 307");
    assert!(front.paths().iter().any(|p| p == "/api/v1/write"));
    // The entry that does not follow: its batches are refused (a 3xx is
    // neither retried nor delivered).
    let failed = wait_for("failed samples of the entry not following", || {
        metric_value(
            &relay.metrics(),
            "prometheus_remote_storage_samples_failed_total",
            &["remote_name=\"no\""],
        )
        .filter(|v| *v > 0.0)
    });
    assert!(failed > 0.0);
    relay.wait_for_log(&["remote write request refused, not retried", "status=307"]);
    assert_eq!(
        metric_value(
            &relay.metrics(),
            "prometheus_remote_storage_samples_failed_total",
            &["remote_name=\"rw\""],
        ),
        Some(0.0)
    );
}

/// The `remote_write` field that asks for 2.0.
const V2: &str = "    protobuf_message: io.prometheus.write.v2.Request\n";

/// The log line of a queue falling back from 2.0 to 1.0.
const FELL_BACK: &str = "falling back to 1.0";

/// `relay_remote_write_protocol{protocol=...}` of the `rw` entry to `url`.
fn protocol_gauge(relay: &Relay, url: &str, protocol: &str) -> Option<f64> {
    metric_value(
        &relay.metrics_ok(),
        "relay_remote_write_protocol",
        &[
            "remote_name=\"rw\"",
            &format!("url=\"{url}\""),
            &format!("protocol=\"{protocol}\""),
        ],
    )
}

#[test]
fn requests_are_remote_write_2_0_into_a_2_0_receiver() {
    let receiver = Receiver::start();
    receiver.speak_v2();
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, "", V2)],
    ));
    target.wait_answered(4);
    let answered = target.pause_and_settle(&relay);
    let got = receiver_counts(&receiver, &answered);
    let requests = receiver.requests();
    assert!(requests.len() >= 3, "{}", requests.len());
    for r in &requests {
        assert_eq!(r.header("Content-Type"), Some(V2_CONTENT_TYPE), "{r:?}");
        assert_eq!(r.header("Content-Encoding"), Some("snappy"), "{r:?}");
        assert_eq!(
            r.header("X-Prometheus-Remote-Write-Version"),
            Some("2.0.0"),
            "{r:?}"
        );
        assert!(
            r.header("User-Agent")
                .is_some_and(|ua| ua.starts_with("relay/")),
            "{r:?}"
        );
        assert_eq!(r.status, 204, "answered with the written headers: {r:?}");
        let v2 = match &r.v2 {
            Some(Ok(v2)) => v2,
            other => panic!("not read as 2.0: {other:?}"),
        };
        // Its own symbol table: "" first, no duplicates, each one used.
        assert_eq!(v2.symbols.first().map(String::as_str), Some(""), "{v2:?}");
        let unique: BTreeSet<&String> = v2.symbols.iter().collect();
        assert_eq!(
            unique.len(),
            v2.symbols.len(),
            "duplicates: {:?}",
            v2.symbols
        );
        let mut used: BTreeSet<u32> = [0].into();
        assert!(!v2.timeseries.is_empty(), "an empty request: {r:?}");
        for ts in &v2.timeseries {
            used.extend(ts.labels_refs.iter().copied());
            let names: Vec<&str> = ts
                .labels_refs
                .chunks(2)
                .map(|p| v2.symbols[p[0] as usize].as_str())
                .collect();
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "labels not sorted or not unique: {names:?}"
            );
            assert!(
                ts.labels_refs.chunks(2).all(|p| p[1] != 0),
                "an empty value: {ts:?}"
            );
            assert_eq!(ts.samples.len(), 1, "{ts:?}");
            assert_eq!(ts.samples[0].start_timestamp, 0, "{ts:?}");
            assert!(
                ts.histograms.is_empty() && ts.exemplars.is_empty(),
                "{ts:?}"
            );
            // The family's metadata rides with the series (checked
            // exactly in tests/remote_write_v2_kinds.rs); an empty one is
            // left out.
            if let Some(m) = ts.metadata {
                assert!(
                    m.r#type != 0 || m.help_ref != 0 || m.unit_ref != 0,
                    "{ts:?}"
                );
                used.extend([m.help_ref, m.unit_ref]);
            }
        }
        assert_eq!(
            used.len(),
            v2.symbols.len(),
            "unused symbols: {:?}",
            v2.symbols
        );
        // Every request's samples resolve, and they are what `samples()` reads.
        assert_eq!(v2_samples(v2).expect("refs in the table"), r.samples());
    }
    // Exactly the scraped series plus the report series, each with job,
    // instance and the external label, every count with its scrape's time.
    let all = receiver.accepted();
    let names: BTreeSet<&str> = all.iter().map(Got::name).collect();
    let mut expected: BTreeSet<&str> = REPORT_SERIES.into_iter().collect();
    expected.insert("count_of_scrapes");
    assert_eq!(names, expected);
    for g in &all {
        assert_eq!(g.series(), app_labels(g.name(), &target.addr));
    }
    assert_no_gaps(
        &answered,
        &one_series(&got, &app_labels("count_of_scrapes", &target.addr)),
        "2.0 into a 2.0 receiver",
    );
    assert_eq!(protocol_gauge(&relay, &receiver.url, "2.0"), Some(1.0));
    assert_eq!(protocol_gauge(&relay, &receiver.url, "1.0"), None);
    assert_eq!(
        rw_metric(
            &relay,
            "relay_remote_write_samples_not_written_total",
            &receiver.url
        ),
        0.0
    );
    assert!(!relay.logs().contains(FELL_BACK), "{}", relay.logs());
}

/// A 2.0 entry whose receiver gives `first` to the first request (and
/// reads 2.0 after it when `speaks_v2`): relay falls back to 1.0 once,
/// sends the refused samples again as 1.0, and nothing is lost or failed.
fn falls_back_and_loses_nothing(first: Option<Answer>, speaks_v2: bool, reason: &str) {
    let receiver = Receiver::start();
    if speaks_v2 {
        receiver.speak_v2();
    }
    if let Some(first) = first {
        receiver.script(vec![first]);
    }
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, ONE_SHARD, V2)],
    ));
    target.wait_answered(4);
    let answered = target.pause_and_settle(&relay);
    let got = receiver_counts(&receiver, &answered);
    let requests = receiver.requests();
    let first = requests.first().expect("a request");
    assert_eq!(
        first.header("Content-Type"),
        Some(V2_CONTENT_TYPE),
        "{first:?}"
    );
    // What the refused 2.0 request held (decoded with the spec's types).
    let refused: Vec<SampleKey> = match &first.v2 {
        Some(Ok(v2)) => v2_samples(v2).expect("refs in the table"),
        other => panic!("not a 2.0 request: {other:?}"),
    }
    .iter()
    .map(Got::key)
    .collect();
    assert!(!refused.is_empty(), "{first:?}");
    for r in &requests[1..] {
        assert_eq!(
            r.header("Content-Type"),
            Some("application/x-protobuf"),
            "{r:?}"
        );
        assert_eq!(
            r.header("X-Prometheus-Remote-Write-Version"),
            Some("0.1.0"),
            "{r:?}"
        );
    }
    assert_no_gaps(
        &answered,
        &one_series(&got, &app_labels("count_of_scrapes", &target.addr)),
        reason,
    );
    // Every sample of the refused request arrived as 1.0.
    let accepted: BTreeSet<SampleKey> = receiver.accepted().iter().map(Got::key).collect();
    let lost: Vec<&SampleKey> = refused.iter().filter(|k| !accepted.contains(k)).collect();
    assert!(
        lost.is_empty(),
        "refused as 2.0 and never sent as 1.0: {lost:?}"
    );
    let line = relay.wait_for_log(&[FELL_BACK]);
    assert!(line.contains(reason), "{line}");
    assert_eq!(
        relay.logs().matches(FELL_BACK).count(),
        1,
        "{}",
        relay.logs()
    );
    assert_eq!(protocol_gauge(&relay, &receiver.url, "2.0"), Some(0.0));
    assert_eq!(protocol_gauge(&relay, &receiver.url, "1.0"), Some(1.0));
    assert_eq!(
        rw_metric(
            &relay,
            "prometheus_remote_storage_samples_failed_total",
            &receiver.url
        ),
        0.0
    );
}

#[test]
fn a_415_makes_a_2_0_entry_fall_back_to_1_0_losing_nothing() {
    falls_back_and_loses_nothing(Some(Answer::status(415)), true, "415");
}

#[test]
fn a_400_before_any_2_0_success_makes_it_fall_back_losing_nothing() {
    falls_back_and_loses_nothing(
        Some(Answer::text(400, "snappy: corrupt input")),
        true,
        "400 before any 2.0 request",
    );
}

#[test]
fn a_2xx_without_written_headers_makes_it_fall_back_losing_nothing() {
    // A 1.x receiver: it reads the 2.0 body as an empty 1.0 request, 204.
    falls_back_and_loses_nothing(None, false, "without X-Prometheus-Remote-Write-*-Written");
}

#[test]
fn a_400_after_a_2_0_success_is_a_refusal_not_a_fallback() {
    let receiver = Receiver::start();
    receiver.speak_v2();
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, ONE_SHARD, V2)],
    ));
    wait_for("a 2.0 request written", || {
        receiver
            .requests()
            .iter()
            .any(|r| r.status == 204 && r.v2.as_ref().is_some_and(|v| v.is_ok()))
            .then_some(())
    });
    receiver.script(vec![Answer::text(400, "out of bounds")]);
    let refused_at = receiver.requests().len();
    wait_for("the scripted 400 and a request after it", || {
        (receiver.requests().len() >= refused_at + 2).then_some(())
    });
    let requests = receiver.requests();
    let refused = requests
        .iter()
        .find(|r| r.status == 400)
        .expect("the scripted 400");
    let failed = refused.samples().len() as f64;
    assert!(failed > 0.0, "{refused:?}");
    for r in &requests {
        assert_eq!(r.header("Content-Type"), Some(V2_CONTENT_TYPE), "{r:?}");
    }
    assert_eq!(
        rw_metric(
            &relay,
            "prometheus_remote_storage_samples_failed_total",
            &receiver.url
        ),
        failed
    );
    assert_eq!(protocol_gauge(&relay, &receiver.url, "2.0"), Some(1.0));
    assert!(!relay.logs().contains(FELL_BACK), "{}", relay.logs());
}

#[test]
fn fewer_samples_written_than_sent_are_counted_and_logged() {
    let receiver = Receiver::start();
    receiver.speak_v2();
    receiver.script(vec![Answer {
        status: 204,
        headers: vec![(
            "X-Prometheus-Remote-Write-Samples-Written".into(),
            "1".into(),
        )],
        body: None,
    }]);
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &receiver.url, ONE_SHARD, V2)],
    ));
    let line = relay.wait_for_log(&["wrote fewer than were sent", "kind=samples"]);
    let first = receiver.requests()[0].clone();
    let sent = first.samples().len();
    assert!(sent > 1, "{first:?}");
    assert!(
        line.contains(&format!("sent={sent}")) && line.contains("written=1"),
        "{line}"
    );
    assert_eq!(
        rw_metric(
            &relay,
            "relay_remote_write_samples_not_written_total",
            &receiver.url
        ),
        (sent - 1) as f64
    );
    assert_eq!(protocol_gauge(&relay, &receiver.url, "2.0"), Some(1.0));
}

/// 2.0 configured against a real 1.x receiver: it answers 204 without the
/// written headers (it read an empty 1.0 request), relay falls back, and
/// the receiver stores every sample.
fn real_1x_receiver_falls_back(kind: Kind, binary: &str, package: &str) {
    let binary = require_peer(binary, package);
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = Peer::start(
        kind,
        &binary,
        &format!("127.0.0.1:{}", free_port()),
        dir.path(),
    );
    let target = CountingTarget::start();
    let url = peer.write_url();
    let relay = Relay::start(&config(
        &target.addr,
        "500ms",
        "",
        &[entry("rw", &url, "", V2)],
    ));
    target.wait_answered(5);
    let answered = target.pause_and_settle(&relay);
    assert_peer_has_all(
        &peer,
        &target,
        &answered,
        &format!("{kind:?} after the fallback"),
    );
    let line = relay.wait_for_log(&[FELL_BACK]);
    assert!(
        line.contains("without X-Prometheus-Remote-Write-*-Written"),
        "{line}"
    );
    assert_eq!(protocol_gauge(&relay, &url, "1.0"), Some(1.0));
    assert_eq!(protocol_gauge(&relay, &url, "2.0"), Some(0.0));
    assert_eq!(
        rw_metric(
            &relay,
            "prometheus_remote_storage_samples_failed_total",
            &url
        ),
        0.0
    );
    // The report series of every scrape too (the first went out as 2.0).
    let ups: usize = peer
        .raw("up")
        .iter()
        .map(|(_, samples)| samples.iter().filter(|(_, v)| v == "1").count())
        .sum();
    assert_eq!(ups, answered.len(), "{}", peer.logs());
}

#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn a_2_0_entry_falls_back_for_prometheus_2_42_and_it_has_every_sample() {
    real_1x_receiver_falls_back(Kind::Prometheus, "prometheus", "prometheus");
}

#[test]
#[ignore = "needs Debian package victoria-metrics; scripts/test runs it"]
fn a_2_0_entry_falls_back_for_victoria_metrics_and_it_has_every_sample() {
    real_1x_receiver_falls_back(
        Kind::VictoriaMetrics,
        "victoria-metrics",
        "victoria-metrics",
    );
}
