//! Inputs shared by the benchmarks, generated deterministically.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay::exposition::Format;
use relay::scrape::pipeline::{process_into, Counts, SeriesCache, Settings};
use relay::wal::{Next, Position, Reader, Record, Spilling, Wal, WalBatch};

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

/// One scrape of `text` with the WAL as its only sink (as a scrape loop
/// runs it when nobody reads /metrics): records built into `batch`, and
/// appended to `wal` if `append`. Returns the samples kept.
pub fn scrape_to_wal(
    text: &str,
    settings: &Settings<'_>,
    wal: &Wal,
    cache: &mut SeriesCache,
    batch: &mut WalBatch,
    ts: i64,
    append: bool,
) -> usize {
    let guard = wal.begin();
    let settings = Settings {
        epoch: guard.epoch(),
        ..*settings
    };
    batch.begin(ts);
    let mut counts = Counts::default();
    let mut sink = Spilling {
        batch: &mut *batch,
        guard: &guard,
    };
    process_into(
        text.as_bytes(),
        Format::Text,
        &settings,
        cache,
        &mut counts,
        &mut sink,
    )
    .expect("valid body");
    cache.commit(&mut sink, settings.epoch);
    batch.finish();
    if append {
        guard.append(batch).expect("appends");
    }
    counts.samples_kept
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
            Next::NewSegment(_) => refs.clear(),
            Next::Pending | Next::End => return (samples, sum),
        }
    }
}
