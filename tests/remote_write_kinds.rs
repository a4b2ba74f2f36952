//! Remote write 1.0 beyond float samples: exemplars (`send_exemplars`)
//! into a Prometheus with exemplar storage, read back exactly with its
//! `/api/v1/query_exemplars`; family metadata (`metadata_config`) into the
//! decoding receiver on its interval, with type, help and unit as the
//! target exposed them; native histograms scraped from protobuf through
//! the WAL of the real binary, replayed after a `kill -9`; and neither
//! exemplars nor histograms sent without their options.

mod common;

use std::collections::BTreeSet;

use common::json::{seconds_text_to_ms, Json};
use common::peers::{require_peer, urlencode, Kind, Peer};
use common::rw::{now_ms, Receiver};
use common::{free_port, get, wait_for, Relay, Reply, Target, DEADLINE};

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// An OpenMetrics target: a counter with an exemplar on each of two
/// series (timestamps `t1`, `t2` in ms), and a histogram with units whose
/// first bucket has one.
fn openmetrics_target(t1: i64, t2: i64) -> Target {
    let secs = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let body = format!(
        "# TYPE req counter\n# HELP req Requests served.\nreq_total{{path=\"/a\"}} 5 # {{trace_id=\"abc\"}} 0.5 {}\nreq_total{{path=\"/b\"}} 7 # {{trace_id=\"def\",span_id=\"12\"}} 1.25 {}\n# TYPE lat_seconds histogram\n# UNIT lat_seconds seconds\n# HELP lat_seconds Request latency.\nlat_seconds_bucket{{le=\"0.1\"}} 1 # {{trace_id=\"x1\"}} 0.05 {}\nlat_seconds_bucket{{le=\"+Inf\"}} 2\nlat_seconds_count 2\nlat_seconds_sum 0.3\n# EOF\n",
        secs(t1),
        secs(t2),
        secs(t1)
    );
    Target::start(Reply {
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
        ..Reply::text(&body)
    })
}

/// Relay scraping `target` every 500ms into the given `remote_write` entries.
fn config(target: &str, entries: &str) -> String {
    format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{target}\"]}}]\nremote_write:\n{entries}"
    )
}

/// One exemplar as Prometheus returned it: (series name, its `path` or
/// `le`, exemplar labels, value text, timestamp ms).
type StoredExemplar = (String, String, Vec<(String, String)>, String, i64);

/// `GET /api/v1/query_exemplars` for `query` over the last hour.
fn query_exemplars(addr: &str, query: &str) -> BTreeSet<StoredExemplar> {
    let now = now_ms() / 1000;
    let path = format!(
        "/api/v1/query_exemplars?query={}&start={}&end={}",
        urlencode(query),
        now - 3600,
        now + 60
    );
    let text = get(addr, &path, &[])
        .filter(|r| r.status == 200)
        .map(|r| r.text())
        .unwrap_or_else(|| panic!("Prometheus {path} failed"));
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut out = BTreeSet::new();
    for series in json.get("data").and_then(Json::array).unwrap_or(&[]) {
        let labels = series
            .get("seriesLabels")
            .and_then(Json::labels)
            .unwrap_or_else(|| panic!("no seriesLabels in {text}"));
        let label = |name: &str| {
            labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let which = if label("__name__") == "req_total" {
            label("path")
        } else {
            label("le")
        };
        for e in series.get("exemplars").and_then(Json::array).unwrap_or(&[]) {
            out.insert((
                label("__name__"),
                which.clone(),
                e.get("labels").and_then(Json::labels).expect("labels"),
                e.get("value")
                    .and_then(Json::str)
                    .expect("value")
                    .to_owned(),
                seconds_text_to_ms(e.get("timestamp").and_then(Json::num_text).expect("ts"))
                    .expect("ts in ms"),
            ));
        }
    }
    out
}

/// An exemplar as sent: (series labels `k=v,...`, exemplar labels, value
/// bits, timestamp ms).
type SentExemplar = (String, Vec<(String, String)>, u64, i64);

/// A native histogram as Prometheus's API shows it: count, sum, and the
/// buckets as (boundary rule, lower, upper, count).
type Shown = (String, String, BTreeSet<(String, String, String, String)>);

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn exemplars_reach_prometheus_exactly_as_exposed() {
    let binary = require_peer("prometheus", "prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = Peer::start_args(
        Kind::Prometheus,
        &binary,
        &format!("127.0.0.1:{}", free_port()),
        dir.path(),
        &["--enable-feature=exemplar-storage"],
    );
    let (t1, t2) = (now_ms() - 5_123, now_ms() - 4_000);
    let target = openmetrics_target(t1, t2);
    let _relay = Relay::start(&config(
        &target.addr,
        &format!(
            "  - url: {}\n    send_exemplars: true\n    queue_config: {{batch_send_deadline: 200ms}}\n",
            prometheus.write_url()
        ),
    ));
    let want: BTreeSet<StoredExemplar> = [
        ("req_total", "/a", pairs(&[("trace_id", "abc")]), "0.5", t1),
        (
            "req_total",
            "/b",
            pairs(&[("span_id", "12"), ("trace_id", "def")]),
            "1.25",
            t2,
        ),
        (
            "lat_seconds_bucket",
            "0.1",
            pairs(&[("trace_id", "x1")]),
            "0.05",
            t1,
        ),
    ]
    .into_iter()
    .map(|(n, w, l, v, t)| (n.to_owned(), w.to_owned(), l, v.to_owned(), t))
    .collect();
    let query = "{__name__=~\"req_total|lat_seconds_bucket\"}";
    // Every scrape sends them again: Prometheus keeps one of each.
    let started = std::time::Instant::now();
    let got = loop {
        let got = query_exemplars(&prometheus.addr, query);
        if got == want || started.elapsed() > DEADLINE {
            break got;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(got, want, "Prometheus logs:\n{}", prometheus.logs());
}

#[test]
fn metadata_is_sent_on_its_interval_and_other_kinds_only_when_asked() {
    let receiver = Receiver::start();
    let with_exemplars = Receiver::start();
    let (t1, t2) = (now_ms() - 5_000, now_ms() - 4_000);
    let target = openmetrics_target(t1, t2);
    let relay = Relay::start(&config(
        &target.addr,
        &format!(
            "  - url: {}\n    metadata_config: {{send_interval: 300ms}}\n    queue_config: {{batch_send_deadline: 200ms}}\n  - url: {}\n    send_exemplars: true\n    metadata_config: {{send: false}}\n    queue_config: {{batch_send_deadline: 200ms}}\n",
            receiver.url, with_exemplars.url
        ),
    ));
    // Several rounds of metadata, each a request with no series.
    wait_for("three metadata requests", || {
        let n = receiver
            .requests()
            .iter()
            .filter(|r| r.write.as_ref().is_ok_and(|w| !w.metadata.is_empty()))
            .count();
        (n >= 3).then_some(())
    });
    let requests = receiver.requests();
    let rounds: Vec<_> = requests
        .iter()
        .filter_map(|r| r.write.as_ref().ok())
        .filter(|w| !w.metadata.is_empty())
        .collect();
    assert!(rounds.iter().all(|w| w.timeseries.is_empty()));
    let ours =
        |w: &&relay::remote_write::prompb::WriteRequest| -> Vec<(i32, String, String, String)> {
            w.metadata
                .iter()
                .filter(|m| ["req", "lat_seconds"].contains(&m.metric_family_name.as_str()))
                .map(|m| {
                    (
                        m.r#type,
                        m.metric_family_name.clone(),
                        m.help.clone(),
                        m.unit.clone(),
                    )
                })
                .collect()
        };
    let want = vec![
        (
            3,
            "lat_seconds".to_owned(),
            "Request latency.".to_owned(),
            "seconds".to_owned(),
        ),
        (
            1,
            "req".to_owned(),
            "Requests served.".to_owned(),
            String::new(),
        ),
    ];
    // The first round may come before the first scrape was read.
    let full: Vec<_> = rounds.iter().map(ours).filter(|m| !m.is_empty()).collect();
    assert!(full.len() >= 2, "{full:?}");
    assert!(full.iter().all(|m| *m == want), "{full:?}");
    // Each family once per round, relay's own `up` among them as a gauge.
    for w in rounds.iter().skip(1) {
        let names: Vec<&str> = w
            .metadata
            .iter()
            .map(|m| m.metric_family_name.as_str())
            .collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len(), "{names:?}");
    }
    // With send_exemplars: each exemplar its own series, after its sample.
    let exemplars = wait_for("exemplars", || {
        let got: Vec<_> = with_exemplars
            .accepted_series()
            .into_iter()
            .filter(|s| !s.exemplars.is_empty())
            .collect();
        (got.len() >= 6).then_some(got)
    });
    let seen: BTreeSet<SentExemplar> = exemplars
        .iter()
        .map(|s| {
            assert!(s.samples.is_empty() && s.exemplars.len() == 1, "{s:?}");
            let e = &s.exemplars[0];
            let series = s
                .labels
                .iter()
                .map(|l| format!("{}={}", l.name, l.value))
                .collect::<Vec<_>>()
                .join(",");
            let labels = e
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            (series, labels, e.value.to_bits(), e.timestamp)
        })
        .collect();
    let instance = &target.addr;
    let want: BTreeSet<_> = [
        (
            "req_total",
            "path=/a",
            pairs(&[("trace_id", "abc")]),
            0.5,
            t1,
        ),
        (
            "req_total",
            "path=/b",
            pairs(&[("span_id", "12"), ("trace_id", "def")]),
            1.25,
            t2,
        ),
        (
            "lat_seconds_bucket",
            "le=0.1",
            pairs(&[("trace_id", "x1")]),
            0.05,
            t1,
        ),
    ]
    .into_iter()
    .map(|(name, own, labels, v, t)| {
        let series = format!("__name__={name},instance={instance},job=app,{own}");
        (series, labels, f64::to_bits(v), t)
    })
    .collect();
    assert_eq!(seen, want);
    assert!(
        with_exemplars.accepted_metadata().is_empty(),
        "metadata_config.send: false"
    );
    // Without send_exemplars / send_native_histograms: samples only.
    let series = receiver.accepted_series();
    assert!(series.iter().any(|s| !s.samples.is_empty()));
    assert!(
        series
            .iter()
            .all(|s| s.exemplars.is_empty() && s.histograms.is_empty()),
        "{:?}",
        relay.logs()
    );
}

/// The `k`th native histogram of the replay test as a target serves it
/// (client_model protobuf from `common::protoenc`, not relay's code):
/// `lat`, schema 0 (buckets (0.5,1], (1,2], (2,4] and [-1,-0.5)), a zero
/// bucket, integer counts.
fn native(k: u64) -> Reply {
    use common::protoenc::client::{family, metric, span, HISTOGRAM, HISTOGRAM_FIELD};
    use common::protoenc::Msg;
    let k_i = k as i64;
    let h = Msg::new()
        .uint(1, 8 + 3 * k)
        .double(2, 9.5 + k as f64)
        .sint(5, 0)
        .double(6, 0.001)
        .uint(7, 1)
        .msg(9, span(0, 1))
        .packed_sint(10, &[1])
        .msg(12, span(0, 3))
        .packed_sint(13, &[2 + k_i, 1, -2]);
    let body = family(
        "lat",
        "Latency.",
        HISTOGRAM,
        vec![metric(&[], HISTOGRAM_FIELD, h)],
    );
    Reply {
        content_type: PROTOBUF.into(),
        body: body.delimited(),
        ..Reply::text("")
    }
}

/// What Prometheus's API shows of [`native`]`(k)`: count, sum, and the
/// buckets as (boundary rule, lower, upper, count).
fn native_as_shown(k: u64) -> Shown {
    let b = |rule: u8, lo: f64, hi: f64, n: u64| {
        (
            rule.to_string(),
            lo.to_string(),
            hi.to_string(),
            n.to_string(),
        )
    };
    (
        (8 + 3 * k).to_string(),
        (9.5 + k as f64).to_string(),
        [
            b(1, -1.0, -0.5, 1),
            b(3, -0.001, 0.001, 1),
            b(0, 0.5, 1.0, 2 + k),
            b(0, 1.0, 2.0, 3 + k),
            b(0, 2.0, 4.0, 1 + k),
        ]
        .into_iter()
        .collect(),
    )
}

/// The raw native histogram samples of `selector` over the last 10
/// minutes: (timestamp ms, as [`native_as_shown`]).
fn stored_histograms(addr: &str, selector: &str) -> Vec<(i64, Shown)> {
    let now = now_ms() + 1000;
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        urlencode(&format!("{selector}[10m]")),
        now / 1000,
        now % 1000
    );
    let text = get(addr, &path, &[])
        .filter(|r| r.status == 200)
        .map(|r| r.text())
        .unwrap_or_else(|| panic!("Prometheus query {path} failed"));
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let result = json
        .get("data")
        .and_then(|d| d.get("result"))
        .and_then(Json::array)
        .unwrap_or_else(|| panic!("no data.result in {text}"));
    let mut out = Vec::new();
    for series in result {
        for pair in series
            .get("histograms")
            .and_then(Json::array)
            .unwrap_or(&[])
        {
            let pair = pair.array().expect("[ts, histogram]");
            let ts = seconds_text_to_ms(pair[0].num_text().expect("ts")).expect("ms");
            let h = &pair[1];
            let text = |j: &Json| j.str().or_else(|| j.num_text()).unwrap_or("").to_owned();
            let buckets = h
                .get("buckets")
                .and_then(Json::array)
                .unwrap_or(&[])
                .iter()
                .map(|b| {
                    let b = b.array().expect("bucket");
                    (text(&b[0]), text(&b[1]), text(&b[2]), text(&b[3]))
                })
                .collect();
            let count = h.get("count").map(text).unwrap_or_default();
            let sum = h.get("sum").map(text).unwrap_or_default();
            out.push((ts, (count, sum, buckets)));
        }
    }
    out
}

/// A scraped native histogram goes through the WAL of the real binary
/// to Prometheus 2.42 with `send_native_histograms`: those a relay wrote
/// while the receiver was down and before it was killed with `kill -9`
/// reach the receiver from the next relay on the same WAL, exactly (count,
/// sum, buckets), and before that relay's own; a queue without the option
/// sends the floats and no histogram.
#[test]
#[ignore = "needs Debian package prometheus; scripts/test runs it"]
fn native_histograms_written_before_a_kill9_reach_prometheus_from_the_next_relay() {
    let binary = require_peer("prometheus", "prometheus");
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/v1/write");
    let plain = Receiver::start();
    let wal = tempfile::tempdir().expect("tempdir");
    let target = Target::start(native(0));
    let cfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n  scrape_native_histograms: true\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {url}\n    send_native_histograms: true\n    metadata_config: {{send: false}}\n    queue_config: {{batch_send_deadline: 100ms, min_backoff: 50ms, max_backoff: 200ms}}\n  - url: {}\n    queue_config: {{batch_send_deadline: 100ms}}\n",
        target.addr, plain.url
    );
    // Waits until `relay` has scraped the `k`th histogram and scraped
    // twice more after that (so that scrape's transaction is committed).
    let scraped = |relay: &Relay, k: u64| {
        let want = format!(" {}", 8 + 3 * k);
        wait_for(&format!("relay to scrape histogram {k}"), || {
            let text = relay.metrics();
            let line = text.lines().find(|l| l.starts_with("lat_count{"))?;
            line.ends_with(&want).then_some(())
        });
        let seen = target.paths().len();
        wait_for("two more scrapes", || {
            (target.paths().len() >= seen + 2).then_some(())
        });
    };
    // The first relay: the receiver is down all along.
    let mut first = Relay::start_with(&cfg, wal.path(), "");
    for k in 0..3 {
        target.set(native(k));
        scraped(&first, k);
    }
    first.kill9();
    // The receiver comes up, and a second relay starts on the same WAL.
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = Peer::start_args(
        Kind::Prometheus,
        &binary,
        &addr,
        dir.path(),
        &["--enable-feature=native-histograms"],
    );
    target.set(native(3));
    let second = Relay::start_with(&cfg, wal.path(), "");
    scraped(&second, 3);
    let want: Vec<Shown> = (0..4).map(native_as_shown).collect();
    let stored = wait_for("every histogram at the receiver", || {
        let got = stored_histograms(&prometheus.addr, "lat{job=\"app\"}");
        want.iter()
            .all(|w| got.iter().any(|(_, h)| h == w))
            .then_some(got)
    });
    // Nothing else, and in the order scraped: the backlog before the
    // second relay's own.
    let ks: Vec<usize> = stored
        .iter()
        .map(|(ts, h)| {
            want.iter()
                .position(|w| w == h)
                .unwrap_or_else(|| panic!("an unexpected histogram at {ts}: {h:?}"))
        })
        .collect();
    assert!(ks.windows(2).all(|w| w[0] <= w[1]), "{ks:?}");
    assert!(stored.windows(2).all(|w| w[0].0 < w[1].0), "{stored:?}");
    // The plain queue: the scrapes' floats (`up` of both relays), never a
    // histogram.
    wait_for("the plain queue's up samples", || {
        (plain.accepted_named("up").len() >= 4).then_some(())
    });
    let series = plain.accepted_series();
    assert!(
        series.iter().all(|s| s.histograms.is_empty()),
        "{}",
        second.logs()
    );
}
