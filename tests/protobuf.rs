//! Protobuf scrapes (delimited `MetricFamily` messages): bodies encoded by
//! `common::protoenc`, an encoder written from the wire format alone, so
//! nothing served here comes from relay's own code. Relay's series are
//! compared with what Prometheus 2.42 stores scraping the same target; the
//! text and protobuf encodings of the same families give the same samples;
//! broken, truncated and oversized bodies are refused saying where and what.

mod common;

use std::collections::BTreeMap;

use common::json::Json;
use common::peers::{prometheus_range, require_peer, start_prometheus_args, urlencode};
use common::protoenc::{client, Msg};
use common::{get, pipe, relay, wait_for, Relay, Reply, Target};
use proptest::prelude::*;
use relay::exposition::{Entry, Format, Labels, Parser};
use relay::relabel::Rules;
use relay::scrape::pipeline::{process, Rendered, SeriesCache, Settings};

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn protobuf_reply(body: Vec<u8>) -> Reply {
    Reply {
        content_type: PROTOBUF.into(),
        body,
        ..Reply::text("")
    }
}

/// Every kind of family, native histograms included (see
/// [`common::protoenc::every_kind`]).
fn families() -> Vec<u8> {
    common::protoenc::every_kind()
}

/// Series of a text exposition as (name, sorted labels) → value.
type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

fn text_series(text: &str) -> Series {
    let mut out = Series::new();
    for entry in Parser::new(text.as_bytes(), Format::Text) {
        if let Ok(Entry::Sample(s)) = entry {
            let mut labels = Labels::default();
            s.labels_into(&mut labels);
            let mut pairs: Vec<_> = labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            pairs.sort();
            out.insert((s.name.to_string(), pairs), s.value);
        }
    }
    out
}

fn job(name: &str, target: &str) -> String {
    format!("  - job_name: {name}\n    scrape_interval: 1s\n    scrape_timeout: 500ms\n    static_configs:\n      - targets: [\"{target}\"]\n")
}

/// An instant query's single value (`histogram_count(...)` and the like).
fn instant(addr: &str, query: &str) -> Option<f64> {
    let text = get(
        addr,
        &format!("/api/v1/query?query={}", urlencode(query)),
        &[],
    )
    .filter(|r| r.status == 200)?
    .text();
    let json = Json::parse(&text).ok()?;
    let result = json["data"]["result"].array()?.first()?.clone();
    result["value"].array()?.get(1)?.num_text()?.parse().ok()
}

#[test]
#[ignore = "needs prometheus"]
fn a_protobuf_scrape_gives_the_series_prometheus_stores() {
    let binary = require_peer("prometheus", "prometheus");
    let target = Target::start(protobuf_reply(families()));
    let prometheus = start_prometheus_args(
        &binary,
        &format!("scrape_configs:\n{}", job("direct", &target.addr)),
        &["--enable-feature=native-histograms"],
    );
    let relay = Relay::start(&format!("scrape_configs:\n{}", job("direct", &target.addr)));
    relay.wait_for_line("pt_both_count");
    let ours: Series = text_series(&relay.metrics_ok())
        .into_iter()
        .filter(|((name, _), _)| name.starts_with("pt_"))
        .collect();

    wait_for("Prometheus to be ready", || {
        get(&prometheus.addr, "/-/ready", &[]).filter(|r| r.status == 200)
    });
    // Prometheus's float series (its native histograms have no values).
    let stored = wait_for("Prometheus to store the classic series", || {
        let stored = prometheus_range(
            &prometheus.addr,
            r#"{job="direct",__name__=~"pt_.*"}"#,
            "10m",
        );
        let floats: Series = stored
            .into_iter()
            .filter_map(|(labels, samples)| {
                let (_, value) = samples.last()?;
                let name = labels.iter().find(|(k, _)| k == "__name__")?.1.clone();
                let rest = labels
                    .into_iter()
                    .filter(|(k, _)| k != "__name__")
                    .collect();
                Some(((name, rest), value.parse().ok()?))
            })
            .collect();
        (floats.len() >= 13).then_some(floats)
    });
    let mut names: Vec<_> = stored.keys().map(|(n, l)| format!("{n}{l:?}")).collect();
    names.dedup();
    // Counter 2, gauge 1, untyped 1, summary 4, classic histogram 5.
    assert_eq!(stored.len(), 13, "{names:#?}");
    for (series, value) in &stored {
        let mine = ours
            .get(series)
            .unwrap_or_else(|| panic!("relay lacks {series:?}: {ours:#?}"));
        assert_eq!(mine.to_bits(), value.to_bits(), "{series:?}");
    }
    // le and quantile as Prometheus writes them from protobuf floats.
    let le = |name: &str, le: &str| {
        stored
            .keys()
            .any(|(n, l)| n == name && l.iter().any(|(k, v)| k == "le" && v == le))
    };
    assert!(
        le("pt_size_bucket", "1.0") && le("pt_size_bucket", "10.0"),
        "{names:#?}"
    );
    assert!(le("pt_size_bucket", "+Inf"), "{names:#?}");
    assert!(stored
        .keys()
        .any(|(n, l)| n == "pt_latency" && l.iter().any(|(k, v)| k == "quantile" && v == "0.5")));

    // Without scrape_native_histograms relay reads native histograms as
    // classic (tests/native_histograms.rs has them with it): its _count and
    // _sum are the counts and sums Prometheus stores natively.
    for name in ["pt_native_int", "pt_native_float", "pt_both"] {
        let count = wait_for(&format!("histogram_count({name})"), || {
            instant(
                &prometheus.addr,
                &format!("histogram_count({name}{{job=\"direct\"}})"),
            )
        });
        let sum = instant(
            &prometheus.addr,
            &format!("histogram_sum({name}{{job=\"direct\"}})"),
        )
        .expect("histogram_sum");
        let series = |suffix: &str, extra: Option<(&str, &str)>| {
            let mut labels = vec![
                ("instance".to_owned(), target.addr.clone()),
                ("job".to_owned(), "direct".to_owned()),
            ];
            if let Some((k, v)) = extra {
                labels.push((k.to_owned(), v.to_owned()));
            }
            labels.sort();
            *ours
                .get(&(format!("{name}{suffix}"), labels))
                .unwrap_or_else(|| panic!("relay lacks {name}{suffix}: {ours:#?}"))
        };
        assert_eq!(series("_count", None), count, "{name}");
        assert_eq!(series("_sum", None), sum, "{name}");
        assert_eq!(series("_bucket", Some(("le", "+Inf"))), count, "{name}");
    }
    // Besides: the classic views of pt_native_int and pt_native_float
    // (count, sum, +Inf) and of pt_both (count, sum, 0.5, 1.0, +Inf).
    assert_eq!(ours.len(), 13 + 3 + 3 + 5, "{ours:#?}");
}

#[test]
fn relay_scrapes_protobuf_and_refuses_a_huge_length_prefix() {
    let target = Target::start(protobuf_reply(families()));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}    body_size_limit: 4KB\n",
        job("direct", &target.addr)
    ));
    let line = relay.wait_for_line("pt_requests_total{");
    assert!(
        line.contains("code=\"200\"") || line.contains("code=\"500\""),
        "{line}"
    );
    let text = relay.metrics_ok();
    assert!(text.contains(r#"pt_temperature{instance="#), "{text}");
    assert!(text.contains(r#"room="a\"b\\c"} -1.5"#), "{text}");
    assert!(text.contains(r#"pt_size_bucket{instance=""#), "{text}");
    assert!(text.contains(r#"le="1.0"} 2"#), "{text}");

    // Without remote write relay scrapes when /metrics is asked for: each
    // wait below polls /metrics until the scrape's log line is there.
    let failed = |what: &str| {
        wait_for(&format!("a scrape failing with {what:?}"), || {
            relay.metrics_ok();
            relay
                .logs()
                .lines()
                .find(|l| l.contains(what))
                .map(str::to_owned)
        })
    };
    // A 2^40-byte message announced in 6 bytes: refused from its prefix.
    let huge = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 1, 2, 3];
    target.set(protobuf_reply(huge));
    let log = failed("goes past the body size limit");
    assert!(
        log.contains("message 1 at byte 0: message length 1099511627776 goes past the body size limit of 4096 bytes"),
        "{log}"
    );
    relay.wait_for_line(&format!(
        "up{{instance=\"{}\",job=\"direct\"}} 0",
        target.addr
    ));

    // A message cut short by the end of the body.
    let mut cut = families();
    cut.truncate(cut.len() - 3);
    target.set(protobuf_reply(cut));
    let log = failed("truncated message");
    assert!(log.contains("message 8 at byte"), "{log}");
}

#[test]
fn check_metrics_reads_protobuf() {
    let valid = pipe(
        relay(&["check", "metrics", "--format", "protobuf"]),
        &families(),
    );
    assert_eq!(valid.code, 0, "{}", valid.stderr);
    assert_eq!(valid.stdout.trim(), "<stdin>: valid");

    let mut cut = families();
    cut.truncate(cut.len() - 1);
    let ran = pipe(relay(&["check", "metrics", "--format", "protobuf"]), &cut);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("truncated message"), "{}", ran.stderr);

    // Spans that claim more buckets than the histogram has, a duplicate
    // label name and a family given twice: each named with its message.
    use client::*;
    let bad_native = Msg::new()
        .uint(1, 1)
        .msg(12, span(0, 2))
        .packed_sint(13, &[1]);
    let body: Vec<u8> = [
        family(
            "h",
            "",
            HISTOGRAM,
            vec![metric(&[], HISTOGRAM_FIELD, bad_native)],
        ),
        family(
            "g",
            "",
            GAUGE,
            vec![metric(&[("a", "1"), ("a", "2")], GAUGE_FIELD, value(1.0))],
        ),
        family("g", "", GAUGE, vec![metric(&[], GAUGE_FIELD, value(1.0))]),
    ]
    .iter()
    .flat_map(Msg::delimited)
    .collect();
    let ran = pipe(relay(&["check", "metrics", "--format", "protobuf"]), &body);
    assert_eq!(ran.code, 1);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", ran.stderr);
    assert!(lines[0].starts_with("<stdin>:1:1: message 1 at byte 0 (metric family \"h\"): native histogram, positive side: spans require 2 buckets, have 1"), "{}", lines[0]);
    assert!(
        lines[1].contains("message 2") && lines[1].ends_with("duplicate label name \"a\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("message 3") && lines[2].ends_with("metric family given twice"),
        "{}",
        lines[2]
    );
}

// --- text and protobuf encodings of the same families ---------------------

/// Bucket bounds and quantiles with how a client may write them in text
/// and how Prometheus 3 writes them (FormatOpenMetricsFloat).
const BOUNDS: [(f64, &str, &str); 8] = [
    (0.0, "0", "0.0"),
    (1e-05, "0.00001", "1e-05"),
    (0.005, "0.005", "0.005"),
    (0.5, "0.5", "0.5"),
    (0.99, "0.99", "0.99"),
    (1.0, "1", "1.0"),
    (10.0, "10", "10.0"),
    (1e6, "1000000", "1e+06"),
];

#[derive(Debug, Clone)]
enum Kind {
    Counter(f64),
    Gauge(f64),
    Untyped(f64),
    /// count, sum, (index into BOUNDS, value)
    Summary(u64, f64, Vec<(usize, f64)>),
    /// sum, (index into BOUNDS, cumulative count), +Inf given in protobuf
    Histogram(f64, Vec<(usize, u64)>, bool),
}

/// One metric: its labels, value and timestamp.
type Metric = (Vec<(String, String)>, Kind, Option<i64>);

#[derive(Debug, Clone)]
struct Fam {
    kind: u8,
    metrics: Vec<Metric>,
}

fn text_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        prop::num::f64::NORMAL,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(0.0),
    ]
}

fn kind_strategy(kind: u8) -> BoxedStrategy<Kind> {
    match kind {
        0 => value_strategy().prop_map(Kind::Counter).boxed(),
        1 => value_strategy().prop_map(Kind::Gauge).boxed(),
        2 => value_strategy().prop_map(Kind::Untyped).boxed(),
        3 => (
            0u64..1000,
            value_strategy(),
            prop::collection::btree_map(0..BOUNDS.len(), value_strategy(), 0..4),
        )
            .prop_map(|(c, s, q)| Kind::Summary(c, s, q.into_iter().collect()))
            .boxed(),
        _ => (
            value_strategy(),
            prop::collection::btree_set(0..BOUNDS.len(), 0..5),
            any::<bool>(),
            0u64..5,
        )
            .prop_map(|(sum, bounds, inf, step)| {
                let mut count = 0;
                let buckets = bounds
                    .into_iter()
                    .map(|b| {
                        count += step;
                        (b, count)
                    })
                    .collect();
                Kind::Histogram(sum, buckets, inf)
            })
            .boxed(),
    }
}

fn fam_strategy() -> impl Strategy<Value = Fam> {
    (0u8..5).prop_flat_map(|kind| {
        let metric = (
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "zz"]),
                "[a-z0-9 .\"\\\\\n]{0,5}",
                0..3,
            ),
            kind_strategy(kind),
            prop::option::of(1i64..2_000_000_000_000),
        );
        prop::collection::vec(metric, 1..4).prop_map(move |ms| Fam {
            kind,
            metrics: ms
                .into_iter()
                .enumerate()
                .map(|(i, (labels, k, ts))| {
                    let mut l = vec![("i".to_owned(), i.to_string())];
                    l.extend(labels.into_iter().map(|(n, v)| (n.to_owned(), v)));
                    (l, k, ts)
                })
                .collect(),
        })
    })
}

/// The families as a client writes them in text 0.0.4.
fn as_text(fams: &[Fam]) -> String {
    let mut out = String::new();
    for (f, fam) in fams.iter().enumerate() {
        let name = format!("f{f}");
        let keyword = ["counter", "gauge", "untyped", "summary", "histogram"][fam.kind as usize];
        out.push_str(&format!("# TYPE {name} {keyword}\n"));
        for (labels, kind, ts) in &fam.metrics {
            let ts = ts.map_or(String::new(), |t| format!(" {t}"));
            let line = |out: &mut String, suffix: &str, extra: Option<(&str, &str)>, v: String| {
                let mut pairs: Vec<String> = labels
                    .iter()
                    .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
                    .collect();
                if let Some((n, v)) = extra {
                    pairs.push(format!("{n}=\"{v}\""));
                }
                out.push_str(&format!("{name}{suffix}{{{}}} {v}{ts}\n", pairs.join(",")));
            };
            match kind {
                Kind::Counter(v) | Kind::Gauge(v) | Kind::Untyped(v) => {
                    line(&mut out, "", None, text_value(*v))
                }
                Kind::Summary(count, sum, qs) => {
                    for (q, v) in qs {
                        line(
                            &mut out,
                            "",
                            Some(("quantile", BOUNDS[*q].1)),
                            text_value(*v),
                        );
                    }
                    line(&mut out, "_sum", None, text_value(*sum));
                    line(&mut out, "_count", None, count.to_string());
                }
                Kind::Histogram(sum, buckets, _) => {
                    let count = buckets.last().map_or(0, |b| b.1);
                    for (b, c) in buckets {
                        line(
                            &mut out,
                            "_bucket",
                            Some(("le", BOUNDS[*b].1)),
                            c.to_string(),
                        );
                    }
                    line(&mut out, "_bucket", Some(("le", "+Inf")), count.to_string());
                    line(&mut out, "_sum", None, text_value(*sum));
                    line(&mut out, "_count", None, count.to_string());
                }
            }
        }
    }
    out
}

/// The same families as delimited protobuf, by the independent encoder.
fn as_protobuf(fams: &[Fam]) -> Vec<u8> {
    use client::*;
    let mut out = Vec::new();
    for (f, fam) in fams.iter().enumerate() {
        let kind = [COUNTER, GAUGE, UNTYPED, SUMMARY, HISTOGRAM][fam.kind as usize];
        let metrics = fam
            .metrics
            .iter()
            .map(|(labels, k, ts)| {
                let pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let (field, msg) = match k {
                    Kind::Counter(v) => (COUNTER_FIELD, value(*v)),
                    Kind::Gauge(v) => (GAUGE_FIELD, value(*v)),
                    Kind::Untyped(v) => (UNTYPED_FIELD, value(*v)),
                    Kind::Summary(count, sum, qs) => {
                        let qs: Vec<(f64, f64)> =
                            qs.iter().map(|(q, v)| (BOUNDS[*q].0, *v)).collect();
                        (SUMMARY_FIELD, summary(*count, *sum, &qs))
                    }
                    Kind::Histogram(sum, buckets, inf) => {
                        let count = buckets.last().map_or(0, |b| b.1);
                        let mut h = Msg::new().uint(1, count).double(2, *sum);
                        for (b, c) in buckets {
                            h = h.msg(3, bucket(BOUNDS[*b].0, *c));
                        }
                        if *inf {
                            h = h.msg(3, bucket(f64::INFINITY, count));
                        }
                        (HISTOGRAM_FIELD, h)
                    }
                };
                let mut m = metric(&pairs, field, msg);
                if let Some(t) = ts {
                    m = m.uint(6, *t as u64);
                }
                m
            })
            .collect();
        out.extend(family(&format!("f{f}"), "", kind, metrics).delimited());
    }
    out
}

/// The sample lines relay makes of `body`, sorted, `le`/`quantile`
/// written as Prometheus 3 writes them.
fn through_pipeline(body: &[u8], format: Format) -> Vec<String> {
    let target = Labels::default();
    let rules = Rules::default();
    let settings = Settings::new(&target, &rules);
    let mut out = Rendered::default();
    process(
        body,
        format,
        &settings,
        &mut SeriesCache::default(),
        &mut out,
    )
    .unwrap_or_else(|e| panic!("{format:?}: {e}"));
    let mut text = Vec::new();
    out.write(&mut text, Format::Text);
    let text = String::from_utf8(text).expect("utf-8");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(normalise)
        .collect();
    lines.sort();
    lines
}

fn normalise(line: &str) -> String {
    let mut line = line.to_owned();
    for label in ["le=\"", "quantile=\""] {
        if let Some(at) = line.find(label) {
            let start = at + label.len();
            let end = start + line[start..].find('"').expect("closing quote");
            if let Some(b) = BOUNDS.iter().find(|b| b.1 == &line[start..end]) {
                line.replace_range(start..end, b.2);
            }
        }
    }
    line
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn text_and_protobuf_of_the_same_families_give_the_same_samples(
        fams in prop::collection::vec(fam_strategy(), 1..5)
    ) {
        let text = through_pipeline(as_text(&fams).as_bytes(), Format::Text);
        let proto = through_pipeline(&as_protobuf(&fams), Format::Protobuf);
        prop_assert!(!text.is_empty());
        prop_assert_eq!(text, proto);
    }
}
