//! Inputs shared by the benchmarks, generated deterministically.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay::exposition::Format;
use relay::scrape::pipeline::{process_into, Counts, SeriesCache, Settings};
use relay::storage::{Appended, Appender};
use relay::wal::{AppendMetrics, Next, Position, Reader, Record, Wal, WalAppender, WalBatch};

/// A realistic exposition of about `series` series: counters with six
/// labels, histograms with seven (with `le`), gauges, HELP/TYPE for each.
pub fn exposition(series: usize) -> String {
    let groups = (series / 20).max(1);
    let mut out = String::with_capacity(series * 150);
    out.push_str(
        "# HELP http_requests_total Requests handled.\n# TYPE http_requests_total counter\n",
    );
    for g in 0..groups {
        for code in ["200", "201", "404", "500"] {
            let _ = writeln!(
                out,
                "http_requests_total{{namespace=\"shop-{}\",pod=\"checkout-7d9f8b-{g:05}\",service=\"checkout\",route=\"/api/v1/cart/{}\",method=\"POST\",code=\"{code}\"}} {}",
                g % 8,
                g % 50,
                g * 37 + 11
            );
        }
    }
    out.push_str("# HELP http_request_duration_seconds Latency.\n# TYPE http_request_duration_seconds histogram\n");
    for g in 0..groups {
        let labels = format!(
            "namespace=\"shop-{}\",pod=\"checkout-7d9f8b-{g:05}\",service=\"checkout\",route=\"/api/v1/cart/{}\",method=\"POST\",code=\"200\"",
            g % 8,
            g % 50
        );
        let mut cumulative = 0;
        for le in [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
        ] {
            cumulative += g % 13 + 1;
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "http_request_duration_seconds_sum{{{labels}}} {}.{}",
            g * 3,
            g % 1000
        );
        let _ = writeln!(
            out,
            "http_request_duration_seconds_count{{{labels}}} {cumulative}"
        );
    }
    out.push_str("# HELP queue_depth Items waiting.\n# TYPE queue_depth gauge\n");
    for g in 0..groups * 2 {
        let _ = writeln!(
            out,
            "queue_depth{{namespace=\"shop-{}\",pod=\"checkout-7d9f8b-{:05}\",service=\"checkout\",queue=\"q{}\",priority=\"high\"}} {}",
            g % 8,
            g / 2,
            g % 2,
            g as f64 * 0.25
        );
    }
    out
}

/// Median wall time of `runs` runs of `f` (after one warm-up run).
pub fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// True when run by `cargo bench` (criterion's bench mode), false under
/// `cargo test --benches`, where the long side-by-side summaries are skipped.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A target's appender into `wal`.
pub fn wal_appender(wal: &Arc<Wal>) -> WalAppender {
    WalAppender::new(wal.clone(), AppendMetrics::default())
}

/// One scrape of `text` with the WAL as its only sink (as a scrape loop
/// runs it when nobody reads /metrics): a transaction of `app`, committed
/// (its records written to the WAL). Returns the samples kept.
pub fn scrape_to_wal(
    text: &str,
    settings: &Settings<'_>,
    app: &mut WalAppender,
    cache: &mut SeriesCache,
    ts: i64,
) -> usize {
    app.begin(ts);
    let mut counts = Counts::default();
    process_into(
        text.as_bytes(),
        Format::Text,
        settings,
        cache,
        &mut counts,
        &mut *app,
    )
    .expect("valid body");
    cache.commit(&mut *app);
    app.commit();
    counts.samples_kept
}

/// A WAL batch built by hand, as the WAL's appender builds it (`describe`:
/// each series' labels before its first sample), to append again and again.
pub struct BatchOf<'b>(pub &'b mut WalBatch, pub bool);

impl Appender for BatchOf<'_> {
    fn append(&mut self, s: &Appended<'_>) {
        self.0.append(s, self.1);
    }
}

/// One steady scrape's WAL records (no descriptions), framed.
pub fn steady_batch(text: &str, settings: &Settings<'_>, ts: i64) -> WalBatch {
    let mut cache = SeriesCache::default();
    let mut batch = WalBatch::default();
    for (ts, describe) in [(ts - 1000, true), (ts, false)] {
        batch.begin(ts);
        let mut sink = BatchOf(&mut batch, describe);
        let mut counts = Counts::default();
        process_into(
            text.as_bytes(),
            Format::Text,
            settings,
            &mut cache,
            &mut counts,
            &mut sink,
        )
        .expect("valid body");
        cache.commit(&mut sink);
        batch.finish();
    }
    batch
}

/// A queue's tailer reading `wal` from `start` to its end, as `queue::run`
/// does: records read and checksummed, samples decoded, each ref looked up
/// in the segment's series (`refs`, reused). Returns the samples read and
/// the sum of their series' text lengths (so nothing is optimised away).
pub fn read_back(
    wal: &Arc<Wal>,
    start: Position,
    refs: &mut hashbrown::HashMap<u64, usize>,
) -> (usize, usize) {
    refs.clear();
    let mut reader = Reader::new(wal.clone(), Position { offset: 0, ..start });
    let (mut samples, mut sum) = (0, 0);
    loop {
        match reader.read_next() {
            Next::Record(Record::Series(entries), _) => {
                for (r, text) in entries {
                    refs.insert(r, text.len());
                }
            }
            Next::Record(Record::Samples(entries), _) => {
                for (r, _, _) in entries {
                    sum += refs.get(&r).copied().unwrap_or(0);
                    samples += 1;
                }
            }
            // The benchmarks append floats only.
            Next::Record(_, _) => {}
            Next::NewSegment(_) => refs.clear(),
            Next::Pending | Next::End => return (samples, sum),
        }
    }
}

/// The families of [`exposition`] as a delimited protobuf body (what a
/// client_golang target sends for the same metrics): counters, classic
/// histograms and gauges with the same labels and values.
pub fn exposition_protobuf(series: usize) -> Vec<u8> {
    use prost::Message;
    use relay::exposition::proto::pb;
    let groups = (series / 20).max(1);
    let label = |name: &str, value: String| pb::LabelPair {
        name: name.into(),
        value,
    };
    let common = |g: usize| {
        vec![
            label("namespace", format!("shop-{}", g % 8)),
            label("pod", format!("checkout-7d9f8b-{g:05}")),
            label("service", "checkout".into()),
            label("route", format!("/api/v1/cart/{}", g % 50)),
            label("method", "POST".into()),
        ]
    };
    let family = |name: &str, help: &str, kind: pb::MetricType, metric| pb::MetricFamily {
        name: name.into(),
        help: help.into(),
        r#type: kind as i32,
        metric,
        unit: String::new(),
    };
    let mut requests = Vec::new();
    let mut durations = Vec::new();
    for g in 0..groups {
        for code in ["200", "201", "404", "500"] {
            let mut labels = common(g);
            labels.push(label("code", code.into()));
            requests.push(pb::Metric {
                label: labels,
                counter: Some(pb::Counter {
                    value: (g * 37 + 11) as f64,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let mut labels = common(g);
        labels.push(label("code", "200".into()));
        let mut cumulative = 0;
        let mut bucket = Vec::new();
        for le in [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ] {
            cumulative += (g % 13 + 1) as u64;
            bucket.push(pb::Bucket {
                cumulative_count: cumulative,
                upper_bound: le,
                ..Default::default()
            });
        }
        cumulative += (g % 13 + 1) as u64;
        durations.push(pb::Metric {
            label: labels,
            histogram: Some(pb::Histogram {
                sample_count: cumulative,
                sample_sum: format!("{}.{}", g * 3, g % 1000).parse().unwrap_or(0.0),
                bucket,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut depths = Vec::new();
    for g in 0..groups * 2 {
        depths.push(pb::Metric {
            label: vec![
                label("namespace", format!("shop-{}", g % 8)),
                label("pod", format!("checkout-7d9f8b-{:05}", g / 2)),
                label("service", "checkout".into()),
                label("queue", format!("q{}", g % 2)),
                label("priority", "high".into()),
            ],
            gauge: Some(pb::Gauge {
                value: g as f64 * 0.25,
            }),
            ..Default::default()
        });
    }
    let mut out = Vec::new();
    for f in [
        family(
            "http_requests_total",
            "Requests handled.",
            pb::MetricType::Counter,
            requests,
        ),
        family(
            "http_request_duration_seconds",
            "Latency.",
            pb::MetricType::Histogram,
            durations,
        ),
        family(
            "queue_depth",
            "Items waiting.",
            pb::MetricType::Gauge,
            depths,
        ),
    ] {
        f.encode_length_delimited(&mut out).unwrap_or_default();
    }
    out
}

/// Metadata for every family named (a gauge with a help text), as a 2.0
/// queue's store holds it: 2.0 sends it with each series.
pub struct Families(hashbrown::HashMap<Vec<u8>, String>);

impl Families {
    pub fn of<'n>(names: impl IntoIterator<Item = &'n [u8]>) -> Families {
        let help = |n: &[u8]| format!("What {} measures.", String::from_utf8_lossy(n));
        let mut families = hashbrown::HashMap::new();
        for n in names {
            families.entry(n.to_vec()).or_insert_with(|| help(n));
        }
        Families(families)
    }
}

impl relay::remote_write::encode_v2::MetadataLookup for Families {
    fn family(&self, name: &[u8]) -> Option<relay::remote_write::encode_v2::FamilyMetadata<'_>> {
        self.0
            .get(name)
            .map(|help| relay::remote_write::encode_v2::FamilyMetadata {
                kind: 2,
                help: help.as_bytes(),
                unit: b"",
            })
    }
}
