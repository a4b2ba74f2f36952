//! Native histograms through the pipeline, the series cache and the
//! snapshot: what a scrape with `scrape_native_histograms` keeps, how the
//! job's limits change it, its staleness marker, and what :9090 serves of
//! it (classic view in text, native in protobuf).

use prost::Message;

use super::pipeline::{process, process_into, Counts, NativeLimits, Rendered, Settings};
use super::SeriesCache;
use crate::exposition::proto::{pb, Options};
use crate::exposition::{Format, Labels};
use crate::relabel::Rules;
use crate::storage::{is_stale, Appended, Appender, HistogramCounts, Value};

fn target() -> Labels<'static> {
    [("instance", "localhost:8001"), ("job", "app")]
        .into_iter()
        .collect()
}

fn span(offset: i32, length: u32) -> pb::BucketSpan {
    pb::BucketSpan { offset, length }
}

fn family(name: &str, kind: pb::MetricType, metric: Vec<pb::Metric>) -> pb::MetricFamily {
    pb::MetricFamily {
        name: name.into(),
        help: format!("{name} help"),
        r#type: kind as i32,
        metric,
        unit: String::new(),
    }
}

fn histogram(h: pb::Histogram) -> pb::Metric {
    pb::Metric {
        histogram: Some(h),
        ..Default::default()
    }
}

/// Integer native (zero bucket, both sides), float native, one exposed
/// both ways, one classic only, and a counter: delimited protobuf.
fn body() -> Vec<u8> {
    let families = [
        family(
            "ints",
            pb::MetricType::Histogram,
            vec![histogram(pb::Histogram {
                sample_count: 9,
                sample_sum: 12.5,
                schema: 1,
                zero_threshold: 0.001,
                zero_count: 2,
                negative_span: vec![span(-1, 2)],
                negative_delta: vec![1, 0],
                positive_span: vec![span(0, 2), span(2, 1)],
                positive_delta: vec![2, -1, 1],
                ..Default::default()
            })],
        ),
        family(
            "floats",
            pb::MetricType::Histogram,
            vec![histogram(pb::Histogram {
                sample_count_float: 3.5,
                sample_sum: 1.25,
                schema: 0,
                zero_threshold: 0.0,
                zero_count_float: 0.5,
                positive_span: vec![span(1, 2)],
                positive_count: vec![1.0, 2.0],
                ..Default::default()
            })],
        ),
        family(
            "both",
            pb::MetricType::Histogram,
            vec![histogram(pb::Histogram {
                sample_count: 3,
                sample_sum: 3.0,
                schema: 3,
                positive_span: vec![span(0, 1)],
                positive_delta: vec![3],
                bucket: vec![pb::Bucket {
                    cumulative_count: 3,
                    upper_bound: 1.0,
                    ..Default::default()
                }],
                ..Default::default()
            })],
        ),
        family(
            "classic",
            pb::MetricType::Histogram,
            vec![histogram(pb::Histogram {
                sample_count: 4,
                sample_sum: 2.0,
                bucket: vec![
                    pb::Bucket {
                        cumulative_count: 1,
                        upper_bound: 0.5,
                        ..Default::default()
                    },
                    pb::Bucket {
                        cumulative_count: 4,
                        upper_bound: 1.0,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })],
        ),
        family(
            "c_total",
            pb::MetricType::Counter,
            vec![pb::Metric {
                counter: Some(pb::Counter {
                    value: 7.0,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        ),
    ];
    let mut out = Vec::new();
    for f in families {
        f.encode_length_delimited(&mut out).expect("to a Vec");
    }
    out
}

fn native_settings<'a>(target: &'a Labels<'static>, rules: &'a Rules) -> Settings<'a> {
    Settings {
        proto: Options {
            native: true,
            classic: false,
        },
        ..Settings::new(target, rules)
    }
}

fn decode(mut body: &[u8]) -> Vec<pb::MetricFamily> {
    let mut out = Vec::new();
    while !body.is_empty() {
        out.push(pb::MetricFamily::decode_length_delimited(&mut body).expect("decodes"));
    }
    out
}

/// What a target's protobuf gives, seen by a text scraper and a protobuf
/// scraper of :9090: the classic view in text; every family in protobuf,
/// native histograms as the target had them, classic buckets only where
/// they are served (a histogram exposed both ways is native only here, as
/// Prometheus 2.42 and 3 without always_scrape_classic_histograms).
#[test]
fn native_histograms_are_served_classic_in_text_and_native_in_protobuf() {
    let target = target();
    let rules = Rules::default();
    let settings = native_settings(&target, &rules);
    let mut out = Rendered::default();
    process(
        &body(),
        Format::Protobuf,
        &settings,
        &mut SeriesCache::default(),
        &mut out,
    )
    .expect("valid");
    // A native histogram is one sample; the classic one five series.
    assert_eq!(out.samples_scraped, 9);
    let mut text = Vec::new();
    out.write(&mut text, Format::Text);
    let text = String::from_utf8_lossy(&text);
    let l = r#"instance="localhost:8001",job="app""#;
    for line in [
        format!("ints_count{{{l}}} 9\n"),
        format!("ints_sum{{{l}}} 12.5\n"),
        format!("ints_bucket{{{l},le=\"+Inf\"}} 9\n"),
        format!("floats_count{{{l}}} 3.5\n"),
        format!("floats_bucket{{{l},le=\"+Inf\"}} 3.5\n"),
        format!("both_bucket{{{l},le=\"+Inf\"}} 3\n"),
        format!("classic_bucket{{{l},le=\"0.5\"}} 1\n"),
        format!("c_total{{{l}}} 7\n"),
    ] {
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    assert!(!text.contains("both_bucket{instance=\"localhost:8001\",job=\"app\",le=\"1.0\"}"));
    let view = crate::snapshot::View::default();
    let snapshot = view.metrics(&[std::sync::Arc::new(out.clone())], Rendered::default);
    let served = snapshot.body_escaped(
        Format::Protobuf,
        crate::config::NameEscaping::Underscores,
        false,
    );
    let gzipped = snapshot.body_escaped(
        Format::Protobuf,
        crate::config::NameEscaping::Underscores,
        true,
    );
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gzipped[..]),
        &mut unzipped,
    )
    .expect("gzip");
    assert_eq!(unzipped, served, "gzip as for text");
    let families = decode(&served);
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["ints", "floats", "both", "classic", "c_total"]);
    let h = |name: &str| {
        families
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.metric.first())
            .and_then(|m| m.histogram.clone())
            .expect("a histogram metric")
    };
    let ints = h("ints");
    assert_eq!(
        (
            ints.schema,
            ints.zero_count,
            ints.sample_count,
            ints.sample_sum
        ),
        (1, 2, 9, 12.5)
    );
    assert_eq!(ints.positive_span, vec![span(0, 2), span(2, 1)]);
    assert_eq!(ints.positive_delta, vec![2, -1, 1]);
    assert_eq!(ints.negative_span, vec![span(-1, 2)]);
    assert_eq!(ints.negative_delta, vec![1, 0]);
    assert!(ints.bucket.is_empty(), "no classic view bucket in protobuf");
    let floats = h("floats");
    assert_eq!(
        (floats.sample_count_float, floats.zero_count_float),
        (3.5, 0.5)
    );
    assert_eq!(floats.positive_count, vec![1.0, 2.0]);
    let both = h("both");
    assert_eq!((both.schema, both.positive_delta.clone()), (3, vec![3]));
    assert!(both.bucket.is_empty());
    let classic = h("classic");
    assert_eq!(classic.schema, 0);
    assert!(classic.positive_span.is_empty());
    let bounds: Vec<(f64, u64)> = classic
        .bucket
        .iter()
        .map(|b| (b.upper_bound, b.cumulative_count))
        .collect();
    assert_eq!(bounds, [(0.5, 1), (1.0, 4), (f64::INFINITY, 4)]);
    let labels: Vec<(&str, &str)> = families[0].metric[0]
        .label
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(labels, [("instance", "localhost:8001"), ("job", "app")]);
    let counter = &families[4];
    assert_eq!(counter.r#type, pb::MetricType::Counter as i32);
    assert_eq!(
        counter.metric[0].counter.as_ref().map(|c| c.value),
        Some(7.0)
    );
    // External labels go on the native histograms as on their view.
    let view = crate::snapshot::View {
        external_labels: vec![("pod".into(), "p-1".into())],
        ..Default::default()
    };
    let labelled = decode(
        &view
            .metrics(&[std::sync::Arc::new(out.clone())], Rendered::default)
            .body_escaped(
                Format::Protobuf,
                crate::config::NameEscaping::Underscores,
                false,
            ),
    );
    let ints = labelled
        .iter()
        .find(|f| f.name == "ints")
        .expect("ints served");
    let metric = &ints.metric[0];
    assert!(metric
        .label
        .iter()
        .any(|l| l.name == "pod" && l.value == "p-1"));
    assert_eq!(metric.histogram.as_ref().map(|h| h.schema), Some(1));
    assert_eq!(
        labelled.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        names
    );
    // Relay scraping relay reads back the same histograms.
    let mut again = Rendered::default();
    let own = Labels::new();
    let settings = Settings {
        honor_labels: true,
        ..native_settings(&own, &rules)
    };
    process(
        &served,
        Format::Protobuf,
        &settings,
        &mut SeriesCache::default(),
        &mut again,
    )
    .expect("relay reads its own protobuf");
    assert_eq!(again.native.series(), out.native.series());
}

/// Records histogram samples: (series, schema, buckets, sum bits).
#[derive(Debug, Default)]
struct Histograms(Vec<(String, i32, usize, u64)>);

impl Appender for Histograms {
    fn append(&mut self, s: &Appended<'_>) {
        if let Value::Histogram(h) = s.value {
            self.0.push((
                s.series.to_string(),
                h.schema,
                h.bucket_count(),
                h.sum.to_bits(),
            ));
        }
    }
}

fn run(
    settings: &Settings<'_>,
    body: &[u8],
    cache: &mut SeriesCache,
) -> Result<Histograms, String> {
    let mut sink = Histograms::default();
    let mut counts = Counts::default();
    process_into(
        body,
        Format::Protobuf,
        settings,
        cache,
        &mut counts,
        &mut sink,
    )
    .map_err(|e| e.to_string())?;
    cache.commit(&mut sink);
    Ok(sink)
}

fn one_histogram(schema: i32, buckets: u32) -> Vec<u8> {
    let h = family(
        "h",
        pb::MetricType::Histogram,
        vec![histogram(pb::Histogram {
            sample_count: u64::from(buckets),
            sample_sum: 1.0,
            schema,
            positive_span: vec![span(0, buckets)],
            positive_delta: std::iter::once(1)
                .chain(std::iter::repeat_n(0, buckets as usize - 1))
                .collect(),
            ..Default::default()
        })],
    );
    let mut out = Vec::new();
    h.encode_length_delimited(&mut out).expect("to a Vec");
    out
}

/// Schemas 9..52 are reduced to 8, the min bucket factor lowers it
/// further, the bucket limit halves the resolution until the histogram
/// fits and fails the scrape below schema -4; a schema Prometheus does
/// not know fails it too.
#[test]
fn limits_lower_the_resolution_as_prometheus() {
    let target = target();
    let rules = Rules::default();
    let plain = native_settings(&target, &rules);
    let series = r#"h{instance="localhost:8001",job="app"}"#;
    let got = run(&plain, &one_histogram(12, 64), &mut SeriesCache::default()).expect("ok");
    // 64 buckets from index 0 at schema 12: indexes 0..=63 become 0, 1..=4 at 8.
    assert_eq!(got.0, [(series.to_owned(), 8, 5, 1f64.to_bits())]);
    let factor = Settings {
        native: NativeLimits::of(0, 2.0),
        ..native_settings(&target, &rules)
    };
    let got = run(&factor, &one_histogram(3, 8), &mut SeriesCache::default()).expect("ok");
    assert_eq!((got.0[0].1, got.0[0].2), (0, 2));
    let limited = Settings {
        native: NativeLimits::of(4, 0.0),
        ..native_settings(&target, &rules)
    };
    let got = run(&limited, &one_histogram(2, 16), &mut SeriesCache::default()).expect("ok");
    // 16 buckets: schema 1 gives 9, schema 0 gives 5, schema -1 gives 3.
    assert_eq!((got.0[0].1, got.0[0].2), (-1, 3));
    let one = Settings {
        native: NativeLimits::of(1, 0.0),
        ..native_settings(&target, &rules)
    };
    // Indexes 0..=15 at schema -3 are still nine buckets at -4 (0..=8).
    let err = run(&one, &one_histogram(-3, 16), &mut SeriesCache::default()).expect_err("fails");
    assert_eq!(
        err,
        "native_histogram_bucket_limit exceeded (metric: h, 9 buckets at schema -4, limit: 1)"
    );
    let err = run(&plain, &one_histogram(-5, 2), &mut SeriesCache::default()).expect_err("fails");
    assert!(
        err.starts_with("invalid native histogram schema -5"),
        "{err}"
    );
}

/// A vanished histogram series is marked stale with a histogram of its
/// kind whose sum is the stale NaN (Prometheus 3), not a float.
#[test]
fn a_vanished_histogram_gets_a_histogram_staleness_marker() {
    let target = target();
    let rules = Rules::default();
    let settings = native_settings(&target, &rules);
    let mut cache = SeriesCache::default();
    run(&settings, &body(), &mut cache).expect("ok");
    let mut counter_only = Vec::new();
    family(
        "c_total",
        pb::MetricType::Counter,
        vec![pb::Metric {
            counter: Some(pb::Counter {
                value: 8.0,
                ..Default::default()
            }),
            ..Default::default()
        }],
    )
    .encode_length_delimited(&mut counter_only)
    .expect("to a Vec");
    let mut kinds = Vec::new();
    struct Kinds<'a>(&'a mut Vec<(String, Option<bool>, bool)>);
    impl Appender for Kinds<'_> {
        fn append(&mut self, s: &Appended<'_>) {
            let (float, stale) = match s.value {
                Value::Float(v) => (None, is_stale(v)),
                Value::Histogram(h) => (
                    Some(matches!(h.counts, HistogramCounts::Float { .. })),
                    is_stale(h.sum) && h.bucket_count() == 0,
                ),
            };
            self.0.push((s.name().into_owned(), float, stale));
        }
    }
    let mut counts = Counts::default();
    let mut sink = Kinds(&mut kinds);
    process_into(
        &counter_only,
        Format::Protobuf,
        &settings,
        &mut cache,
        &mut counts,
        &mut sink,
    )
    .expect("ok");
    cache.commit(&mut sink);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("both".to_owned(), Some(false), true),
            ("c_total".to_owned(), None, false),
            ("classic_bucket".to_owned(), None, true),
            ("classic_bucket".to_owned(), None, true),
            ("classic_bucket".to_owned(), None, true),
            ("classic_count".to_owned(), None, true),
            ("classic_sum".to_owned(), None, true),
            ("floats".to_owned(), Some(true), true),
            ("ints".to_owned(), Some(false), true),
        ]
    );
}

/// `always_scrape_classic_histograms`: a histogram exposed both ways keeps
/// its classic series too, and protobuf serves it with both; metric
/// relabeling applies to native histograms like any series.
#[test]
fn classic_buckets_kept_beside_native_ones_and_relabeling_applies() {
    let config = crate::plan::from_yaml_str(
        "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: ints, action: drop}\n      - {target_label: team, replacement: t}\n",
    )
    .expect("valid");
    let target = target();
    let settings = Settings {
        proto: Options {
            native: true,
            classic: true,
        },
        ..Settings::new(&target, &config.jobs[0].metric_relabel)
    };
    let mut out = Rendered::default();
    process(
        &body(),
        Format::Protobuf,
        &settings,
        &mut SeriesCache::default(),
        &mut out,
    )
    .expect("valid");
    let kept: Vec<&str> = out
        .native
        .series()
        .iter()
        .map(|n| n.series.as_str())
        .collect();
    assert_eq!(
        kept,
        [
            r#"floats{instance="localhost:8001",job="app",team="t"}"#,
            r#"both{instance="localhost:8001",job="app",team="t"}"#
        ]
    );
    let mut text = Vec::new();
    out.write(&mut text, Format::Text);
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains(
            "both_bucket{instance=\"localhost:8001\",job=\"app\",le=\"1.0\",team=\"t\"} 3\n"
        ),
        "{text}"
    );
    assert!(!text.contains("ints"), "{text}");
    let snapshot = crate::snapshot::View::default()
        .metrics(&[std::sync::Arc::new(out.clone())], Rendered::default);
    let families = decode(&snapshot.body_escaped(
        Format::Protobuf,
        crate::config::NameEscaping::Underscores,
        false,
    ));
    let both = families
        .iter()
        .find(|f| f.name == "both")
        .and_then(|f| f.metric.first())
        .and_then(|m| m.histogram.as_ref())
        .expect("both served");
    assert_eq!((both.schema, both.positive_delta.clone()), (3, vec![3]));
    let bounds: Vec<(f64, u64)> = both
        .bucket
        .iter()
        .map(|b| (b.upper_bound, b.cumulative_count))
        .collect();
    assert_eq!(bounds, [(1.0, 3), (f64::INFINITY, 3)]);
}
