//! Remote write 2.0 beyond float samples, decoded with the types generated
//! from the spec's proto (not relay's encoder): an OpenMetrics target with
//! exemplars and `_created`, and a protobuf target with native histograms,
//! into a 2.0 test receiver; every request's symbol table, refs, samples,
//! histograms, exemplars, per-series metadata and start timestamps
//! checked exactly.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::protoenc::every_kind;
use common::rw::{now_ms, v2_series, Answer, Receiver, V2Series};
use common::{wait_for, Relay, Reply, Target};
use relay::remote_write::prompb_v2 as v2;

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// `ms` as OpenMetrics seconds.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// An OpenMetrics target: a counter with an exemplar and a created
/// timestamp on each of two series, and a histogram with a unit whose
/// first bucket has an exemplar.
fn openmetrics_target(t1: i64, t2: i64, created: i64) -> Target {
    let body = format!(
        "# TYPE req counter\n# HELP req Requests served.\nreq_total{{path=\"/a\"}} 5 # {{trace_id=\"abc\"}} 0.5 {t1}\nreq_created{{path=\"/a\"}} {c}\nreq_total{{path=\"/b\"}} 7 # {{trace_id=\"def\",span_id=\"12\"}} 1.25 {t2}\nreq_created{{path=\"/b\"}} {c}\n# TYPE lat_seconds histogram\n# UNIT lat_seconds seconds\n# HELP lat_seconds Request latency.\nlat_seconds_bucket{{le=\"0.1\"}} 1 # {{trace_id=\"x1\"}} 0.05 {t1}\nlat_seconds_bucket{{le=\"+Inf\"}} 2\nlat_seconds_count 2\nlat_seconds_sum 0.3\nlat_seconds_created {c}\n# EOF\n",
        t1 = secs(t1),
        t2 = secs(t2),
        c = secs(created),
    );
    Target::start(Reply {
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
        ..Reply::text(&body)
    })
}

/// A protobuf family holding a native histogram with a created timestamp.
fn started_histogram() -> Vec<u8> {
    use common::protoenc::client::*;
    use common::protoenc::Msg;
    let h = Msg::new()
        .uint(1, 3)
        .double(2, 1.5)
        .sint(5, 0)
        .msg(12, span(0, 1))
        .packed_sint(13, &[3])
        .msg(15, timestamp(1_700_000_001_000));
    family(
        "pt_started",
        "Started.",
        HISTOGRAM,
        vec![metric(&[], HISTOGRAM_FIELD, h)],
    )
    .delimited()
}

/// Every series of the 2.0 requests the receiver accepted.
fn accepted(receiver: &Receiver) -> Vec<V2Series> {
    let mut out = Vec::new();
    for r in receiver.requests() {
        match &r.v2 {
            Some(Ok(request)) if r.status / 100 == 2 => {
                out.extend(v2_series(request).unwrap_or_else(|e| panic!("{e}: {request:?}")));
            }
            other => panic!("not a 2.0 request: {other:?}"),
        }
    }
    out
}

#[test]
fn histograms_exemplars_metadata_ride_with_their_series_in_2_0() {
    let receiver = Receiver::start();
    receiver.speak_v2();
    let (t1, t2) = (now_ms() - 5_000, now_ms() - 4_000);
    let created = now_ms() - 60_000;
    let om = openmetrics_target(t1, t2, created);
    let pb = Target::start(Reply {
        content_type: PROTOBUF.into(),
        body: [every_kind(), started_histogram()].concat(),
        ..Reply::text("")
    });
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  scrape_native_histograms: true\nscrape_configs:\n  - job_name: om\n    static_configs: [{{targets: [\"{}\"]}}]\n  - job_name: pb\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {}\n    protobuf_message: io.prometheus.write.v2.Request\n    send_exemplars: true\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 200ms}}\n",
        om.addr, pb.addr, receiver.url
    ));
    let series = wait_for("histograms and exemplars of both targets", || {
        let got = accepted(&receiver);
        let histograms = got.iter().filter(|s| !s.histograms.is_empty()).count();
        let exemplars = got.iter().filter(|s| !s.exemplars.is_empty()).count();
        (histograms >= 8 && exemplars >= 8).then_some(got)
    });
    let job = |s: &V2Series| s.label("job").unwrap_or("").to_owned();
    // Each series carries one sample, one histogram or one exemplar, as
    // Prometheus sends them.
    for s in &series {
        let kinds = [s.samples.len(), s.histograms.len(), s.exemplars.len()];
        assert_eq!(kinds.iter().sum::<usize>(), 1, "{s:?}");
        assert!(kinds.contains(&1), "{s:?}");
    }
    // Metadata with every series, by its family: (type, help, unit).
    let counter = |help: &str| (1, help.to_owned(), String::new());
    let gauge = |help: &str| (2, help.to_owned(), String::new());
    let histogram = |help: &str| (3, help.to_owned(), String::new());
    let latency = (3, "Request latency.".to_owned(), "seconds".to_owned());
    let mut want_metadata: BTreeMap<&str, (i32, String, String)> = BTreeMap::new();
    for name in ["req_total", "req_created"] {
        want_metadata.insert(name, counter("Requests served."));
    }
    for suffix in ["bucket", "count", "sum", "created"] {
        let name: &'static str = Box::leak(format!("lat_seconds_{suffix}").into_boxed_str());
        want_metadata.insert(name, latency.clone());
    }
    want_metadata.insert("pt_requests_total", counter("Requests."));
    want_metadata.insert("pt_temperature", gauge("A gauge."));
    // Untyped with no help: nothing to say, the field is left out.
    want_metadata.insert("pt_untyped", (0, String::new(), String::new()));
    for name in ["pt_latency", "pt_latency_count", "pt_latency_sum"] {
        want_metadata.insert(name, (5, "A summary.".to_owned(), String::new()));
    }
    for name in ["pt_size_bucket", "pt_size_count", "pt_size_sum"] {
        want_metadata.insert(name, histogram("A classic histogram."));
    }
    want_metadata.insert("pt_native_int", histogram("A native histogram."));
    want_metadata.insert("pt_native_float", histogram("A float native histogram."));
    want_metadata.insert("pt_both", histogram("Classic and native buckets."));
    want_metadata.insert("pt_started", histogram("Started."));
    want_metadata.insert(
        "up",
        gauge("1 if the last scrape of the target succeeded, else 0."),
    );
    want_metadata.insert(
        "scrape_duration_seconds",
        gauge("How long the last scrape took."),
    );
    want_metadata.insert(
        "scrape_samples_scraped",
        gauge("Samples the target exposed."),
    );
    want_metadata.insert(
        "scrape_samples_post_metric_relabeling",
        gauge("Samples left after metric relabeling."),
    );
    want_metadata.insert(
        "scrape_series_added",
        gauge("Series not in the previous scrape."),
    );
    for s in &series {
        let want = want_metadata
            .get(s.name())
            .unwrap_or_else(|| panic!("unexpected series {s:?}"));
        assert_eq!(&s.metadata, want, "{s:?}");
    }
    // The scrapes' timestamps, by job (each scrape's `up` sample).
    let scrapes = |j: &str| -> BTreeSet<i64> {
        series
            .iter()
            .filter(|s| s.name() == "up" && job(s) == j)
            .flat_map(|s| s.samples.iter().map(|x| x.timestamp))
            .collect()
    };
    let (om_scrapes, pb_scrapes) = (scrapes("om"), scrapes("pb"));
    assert!(!om_scrapes.is_empty() && !pb_scrapes.is_empty());
    // Native histograms exactly as the protobuf target exposed them, at
    // a scrape's timestamp, integer and float counts.
    let span = |offset, length| v2::BucketSpan { offset, length };
    let mut want_histograms: BTreeMap<&str, v2::Histogram> = BTreeMap::new();
    want_histograms.insert(
        "pt_native_int",
        v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(9)),
            sum: 4.5,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(2)),
            negative_spans: vec![span(-1, 1)],
            negative_deltas: vec![3],
            positive_spans: vec![span(0, 2), span(2, 1)],
            positive_deltas: vec![1, 1, -1],
            ..Default::default()
        },
    );
    want_histograms.insert(
        "pt_native_float",
        v2::Histogram {
            count: Some(v2::histogram::Count::CountFloat(5.5)),
            sum: 10.0,
            schema: 1,
            zero_threshold: 0.01,
            zero_count: Some(v2::histogram::ZeroCount::ZeroCountFloat(0.5)),
            positive_spans: vec![span(1, 2)],
            positive_counts: vec![2.0, 3.0],
            ..Default::default()
        },
    );
    want_histograms.insert(
        "pt_both",
        v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(4)),
            sum: 3.0,
            zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(0)),
            positive_spans: vec![span(0, 2)],
            positive_deltas: vec![1, 2],
            ..Default::default()
        },
    );
    want_histograms.insert(
        "pt_started",
        v2::Histogram {
            count: Some(v2::histogram::Count::CountInt(3)),
            sum: 1.5,
            zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(0)),
            positive_spans: vec![span(0, 1)],
            positive_deltas: vec![3],
            // The target's created timestamp.
            start_timestamp: 1_700_000_001_000,
            ..Default::default()
        },
    );
    let mut seen_histograms = BTreeSet::new();
    for s in series.iter().filter(|s| !s.histograms.is_empty()) {
        let got = &s.histograms[0];
        assert_eq!(job(s), "pb", "{s:?}");
        assert!(pb_scrapes.contains(&got.timestamp), "{s:?}");
        let mut want = want_histograms
            .get(s.name())
            .unwrap_or_else(|| panic!("unexpected histogram {s:?}"))
            .clone();
        want.timestamp = got.timestamp;
        assert_eq!(got, &want, "{}", s.name());
        seen_histograms.insert(s.name().to_owned());
    }
    assert_eq!(seen_histograms.len(), 4, "{seen_histograms:?}");
    // Exemplars with their series: (series, its own label, exemplar
    // labels, value, timestamp); the protobuf one has no timestamp of its
    // own, so it has its scrape's.
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut seen_exemplars = BTreeSet::new();
    for s in series.iter().filter(|s| !s.exemplars.is_empty()) {
        let (labels, value, ts) = s.exemplars[0].clone();
        let own = ["path", "le", "code"]
            .iter()
            .find_map(|l| s.label(l))
            .unwrap_or("")
            .to_owned();
        let ts = if job(s) == "pb" {
            assert!(pb_scrapes.contains(&ts), "{s:?}");
            0
        } else {
            ts
        };
        seen_exemplars.insert((s.name().to_owned(), own, labels, value.to_bits(), ts));
    }
    let want_exemplars: BTreeSet<_> = [
        ("req_total", "/a", pairs(&[("trace_id", "abc")]), 0.5, t1),
        (
            "req_total",
            "/b",
            pairs(&[("span_id", "12"), ("trace_id", "def")]),
            1.25,
            t2,
        ),
        (
            "lat_seconds_bucket",
            "0.1",
            pairs(&[("trace_id", "x1")]),
            0.05,
            t1,
        ),
        (
            "pt_requests_total",
            "200",
            pairs(&[("trace_id", "abc")]),
            1.0,
            0,
        ),
    ]
    .into_iter()
    .map(|(n, own, l, v, t)| (n.to_owned(), own.to_owned(), l, f64::to_bits(v), t))
    .collect();
    assert_eq!(seen_exemplars, want_exemplars);
    // Float samples: values as exposed, each at its scrape's timestamp;
    // start_timestamp where the target gave a created timestamp.
    let mut values: BTreeMap<(String, String), BTreeSet<(u64, i64)>> = BTreeMap::new();
    for s in series.iter().filter(|s| !s.samples.is_empty()) {
        let x = &s.samples[0];
        let scrapes = if job(s) == "om" {
            &om_scrapes
        } else {
            &pb_scrapes
        };
        assert!(scrapes.contains(&x.timestamp), "{s:?}");
        if s.name().starts_with("scrape_") {
            continue;
        }
        let own = ["path", "le", "code", "room", "quantile"]
            .iter()
            .find_map(|l| s.label(l))
            .unwrap_or("")
            .to_owned();
        values
            .entry((s.name().to_owned(), own))
            .or_default()
            .insert((x.value.to_bits(), x.start_timestamp));
    }
    let created_s = created as f64 / 1000.0;
    let want_values: BTreeMap<(String, String), BTreeSet<(u64, i64)>> = [
        // OpenMetrics `_created` lines are samples of their own (as
        // Prometheus without created-timestamp-zero-ingestion).
        ("req_total", "/a", 5.0, 0),
        ("req_total", "/b", 7.0, 0),
        ("req_created", "/a", created_s, 0),
        ("req_created", "/b", created_s, 0),
        ("lat_seconds_bucket", "0.1", 1.0, 0),
        ("lat_seconds_bucket", "+Inf", 2.0, 0),
        ("lat_seconds_count", "", 2.0, 0),
        ("lat_seconds_sum", "", 0.3, 0),
        ("lat_seconds_created", "", created_s, 0),
        // The protobuf counter's `created_timestamp`.
        ("pt_requests_total", "200", 42.0, 1_700_000_000_000),
        ("pt_requests_total", "500", 3.0, 0),
        ("pt_temperature", "a\"b\\c", -1.5, 0),
        ("pt_untyped", "", 7.0, 0),
        ("pt_latency", "0.5", 0.1, 0),
        ("pt_latency", "0.99", 0.9, 0),
        ("pt_latency_count", "", 10.0, 0),
        ("pt_latency_sum", "", 2.5, 0),
        ("pt_size_bucket", "1.0", 2.0, 0),
        ("pt_size_bucket", "10.0", 5.0, 0),
        ("pt_size_bucket", "+Inf", 6.0, 0),
        ("pt_size_count", "", 6.0, 0),
        ("pt_size_sum", "", 20.0, 0),
        ("up", "", 1.0, 0),
    ]
    .into_iter()
    .map(|(n, own, v, st)| {
        (
            (n.to_owned(), own.to_owned()),
            [(f64::to_bits(v), st)].into(),
        )
    })
    .collect();
    assert_eq!(values, want_values, "{:?}", relay.logs());
}

/// What a request carried, kind by kind: (kind, labels, timestamp).
type Item = (&'static str, Vec<(String, String)>, i64);

#[test]
fn a_2_0_request_with_histograms_and_exemplars_refused_with_415_goes_again_as_1_0() {
    let receiver = Receiver::start();
    receiver.script(vec![Answer::status(415)]);
    let pb = Target::start(Reply {
        content_type: PROTOBUF.into(),
        body: every_kind(),
        ..Reply::text("")
    });
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  scrape_native_histograms: true\nscrape_configs:\n  - job_name: pb\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {}\n    protobuf_message: io.prometheus.write.v2.Request\n    send_exemplars: true\n    send_native_histograms: true\n    metadata_config: {{send_interval: 300ms}}\n    queue_config: {{batch_send_deadline: 200ms, min_shards: 1, max_shards: 1}}\n",
        pb.addr, receiver.url
    ));
    // The refused 2.0 request, as the spec's types read it.
    let first = wait_for("a request", || receiver.requests().into_iter().next());
    assert_eq!(first.status, 415);
    let refused: BTreeSet<Item> = match &first.v2 {
        Some(Ok(request)) => v2_series(request).expect("a valid 2.0 request"),
        other => panic!("not a 2.0 request: {other:?}"),
    }
    .into_iter()
    .flat_map(|s| {
        let mut items: Vec<Item> = Vec::new();
        items.extend(
            s.samples
                .iter()
                .map(|x| ("sample", s.labels.clone(), x.timestamp)),
        );
        items.extend(
            s.histograms
                .iter()
                .map(|h| ("histogram", s.labels.clone(), h.timestamp)),
        );
        items.extend(
            s.exemplars
                .iter()
                .map(|e| ("exemplar", s.labels.clone(), e.2)),
        );
        items
    })
    .collect();
    let kinds: BTreeSet<&str> = refused.iter().map(|i| i.0).collect();
    assert_eq!(
        kinds,
        ["exemplar", "histogram", "sample"].into(),
        "the first request holds every kind: {refused:?}"
    );
    // Everything it held arrives again as 1.0, histograms and exemplars too.
    let resent = |receiver: &Receiver| -> BTreeSet<Item> {
        let mut out = BTreeSet::new();
        for r in receiver.requests().iter().skip(1).filter(|r| r.accepted()) {
            assert!(r.v2.is_none(), "after the fallback, 1.0 only: {r:?}");
            for ts in r.write.iter().flat_map(|w| &w.timeseries) {
                let labels: Vec<(String, String)> = ts
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                for x in &ts.samples {
                    out.insert(("sample", labels.clone(), x.timestamp));
                }
                for h in &ts.histograms {
                    out.insert(("histogram", labels.clone(), h.timestamp));
                }
                for e in &ts.exemplars {
                    out.insert(("exemplar", labels.clone(), e.timestamp));
                }
            }
        }
        out
    };
    wait_for("the refused request's items again as 1.0", || {
        resent(&receiver).is_superset(&refused).then_some(())
    });
    // Metadata, which rode with each 2.0 series, now goes in 1.0's own
    // requests on its interval.
    let want: BTreeSet<(i32, String, String, String)> = [
        (3, "pt_native_int", "A native histogram.", ""),
        (1, "pt_requests_total", "Requests.", ""),
        (2, "pt_temperature", "A gauge.", ""),
    ]
    .into_iter()
    .map(|(t, n, h, u)| (t, n.to_owned(), h.to_owned(), u.to_owned()))
    .collect();
    wait_for("1.0 metadata requests", || {
        let got: BTreeSet<(i32, String, String, String)> = receiver
            .accepted_metadata()
            .into_iter()
            .map(|(_, t, n, h, u)| (t, n, h, u))
            .filter(|m| want.iter().any(|w| w.1 == m.1))
            .collect();
        (got.len() >= want.len()).then_some(())
    });
    let got: BTreeSet<(i32, String, String, String)> = receiver
        .accepted_metadata()
        .into_iter()
        .map(|(_, t, n, h, u)| (t, n, h, u))
        .filter(|m| want.iter().any(|w| w.1 == m.1))
        .collect();
    assert_eq!(got, want);
    // The one line says what 1.0 loses and where metadata goes now.
    let logs = relay.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("falling back to 1.0"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        line.contains("start timestamps") && line.contains("1.0's own requests"),
        "{line}"
    );
}

#[test]
fn histograms_and_exemplars_written_fewer_than_sent_are_counted_by_kind() {
    let receiver = Receiver::start();
    receiver.speak_v2();
    // The first request: every sample written, no histogram or exemplar.
    receiver.script(vec![Answer {
        status: 204,
        headers: vec![
            (
                "X-Prometheus-Remote-Write-Samples-Written".into(),
                "1000000".into(),
            ),
            (
                "X-Prometheus-Remote-Write-Histograms-Written".into(),
                "0".into(),
            ),
            (
                "X-Prometheus-Remote-Write-Exemplars-Written".into(),
                "0".into(),
            ),
        ],
        body: None,
    }]);
    let pb = Target::start(Reply {
        content_type: PROTOBUF.into(),
        body: every_kind(),
        ..Reply::text("")
    });
    let relay = Relay::start(&format!(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\n  scrape_native_histograms: true\nscrape_configs:\n  - job_name: pb\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {}\n    name: rw\n    protobuf_message: io.prometheus.write.v2.Request\n    send_exemplars: true\n    send_native_histograms: true\n    queue_config: {{batch_send_deadline: 200ms, min_shards: 1, max_shards: 1}}\n",
        pb.addr, receiver.url
    ));
    let first = wait_for("a request", || receiver.requests().into_iter().next());
    let series = match &first.v2 {
        Some(Ok(request)) => v2_series(request).expect("a valid 2.0 request"),
        other => panic!("not a 2.0 request: {other:?}"),
    };
    let histograms: usize = series.iter().map(|s| s.histograms.len()).sum();
    let exemplars: usize = series.iter().map(|s| s.exemplars.len()).sum();
    assert!(histograms > 0 && exemplars > 0, "{series:?}");
    // Later requests are answered with what they held: nothing missing.
    wait_for("three requests", || {
        (receiver.requests().len() >= 3).then_some(())
    });
    let want = (histograms + exemplars) as f64;
    let not_written = || {
        common::rw::metric_value(
            &relay.metrics_ok(),
            "relay_remote_write_samples_not_written_total",
            &["remote_name=\"rw\""],
        )
    };
    wait_for("the count on /metrics", || {
        not_written().filter(|v| *v >= want).map(|_| ())
    });
    assert_eq!(not_written(), Some(want));
    let logs = relay.logs();
    for kind in ["histograms", "exemplars"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("wrote fewer than were sent")
                    && l.contains(&format!("kind={kind}"))),
            "{logs}"
        );
    }
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("wrote fewer than were sent") && l.contains("kind=samples")),
        "{logs}"
    );
}
