//! Instruction counts per stage of the remote-write hot path, for
//! `valgrind --tool=callgrind` (run by `benches/stages.py`): wall time on a
//! shared 2-core machine moves by tens of percent between runs, instruction
//! counts by well under one. Each stage runs `--iterations` times inside
//! [`measured`], the only function callgrind collects, so input generation,
//! warm-up and the WAL's files are not counted.
//!
//! Without a stage (as `cargo test --benches` runs it) every stage runs once
//! and checks what it produced.

mod common;

use std::sync::Arc;

use common::Families;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use relay::exposition::{Entry, Format, Labels, Parser};
use relay::relabel::Rules;
use relay::remote_write::encode::{compress, name_value, write_request, Outgoing, SeriesPrep};
use relay::remote_write::encode_v2::V2Encoder;
use relay::scrape::pipeline::{process, Rendered, SeriesCache, Settings};
use relay::wal::{Wal, WalAppender};

/// The series of the body every stage works on: small enough for callgrind
/// (about 50 times slower than native) to run each stage in seconds.
const SERIES: usize = 10_000;

/// The same rules as the cycle bench: a drop, a labeldrop and a replace.
const RULES: &str = "scrape_configs:\n  - job_name: app\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'go_.*', action: drop}\n      - {regex: pod_template_hash, action: labeldrop}\n      - {source_labels: [namespace], regex: 'shop-0', target_label: tier, replacement: gold}\n";

const STAGES: [&str; 8] = [
    "parse",
    "first_scrape",
    "scrape_known",
    "scrape_to_wal",
    "wal_append",
    "wal_read",
    "encode_snappy",
    "encode_v2_snappy",
];

/// The only code callgrind counts (`--toggle-collect=*measured*`).
#[inline(never)]
fn measured(iterations: usize, f: &mut dyn FnMut() -> usize) -> usize {
    let mut last = 0;
    for _ in 0..iterations {
        last = std::hint::black_box(f());
    }
    last
}

struct Inputs {
    text: String,
    series: usize,
    target: Labels<'static>,
    rules: Rules,
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Inputs {
        let text = common::exposition(SERIES);
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        let plan = relay::plan::from_yaml_str(RULES).expect("rules");
        let rules = plan.jobs[0].metric_relabel.clone();
        let target = [("instance", "10.0.0.7:8001"), ("job", "app")]
            .into_iter()
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        Inputs {
            text,
            series,
            target,
            rules,
            dir,
        }
    }

    fn wal(&self, name: &str) -> Arc<Wal> {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).expect("wal dir");
        Arc::new(
            Wal::open(&path, 1 << 30, &[], Counter::default(), Gauge::default()).expect("opens"),
        )
    }
}

/// Runs `stage` `iterations` times; returns what its last run produced
/// (samples, bytes or series, as the stage counts them) and what that must be.
fn run(stage: &str, iterations: usize, inputs: &Inputs) -> (usize, usize) {
    let body = inputs.text.as_bytes();
    let series = inputs.series;
    let settings = Settings::new(&inputs.target, &inputs.rules);
    let scrape_to_wal = |app: &mut WalAppender, cache: &mut SeriesCache, ts: i64| {
        common::scrape_to_wal(&inputs.text, &settings, app, cache, ts)
    };
    let mut out = Rendered::default();
    match stage {
        "parse" => {
            let mut parse = || {
                Parser::new(body, Format::Text)
                    .filter(|e| matches!(e, Ok(Entry::Sample(_))))
                    .count()
            };
            (measured(iterations, &mut parse), series)
        }
        "first_scrape" => {
            let mut first = || {
                let mut cache = SeriesCache::default();
                process(body, Format::Text, &settings, &mut cache, &mut out).expect("valid");
                out.samples_kept
            };
            (measured(iterations, &mut first), series)
        }
        "scrape_known" => {
            let mut cache = SeriesCache::default();
            let mut known = || {
                process(body, Format::Text, &settings, &mut cache, &mut out).expect("valid");
                cache.commit(&mut ());
                out.samples_kept
            };
            known();
            (measured(iterations, &mut known), series)
        }
        "scrape_to_wal" => {
            let wal = inputs.wal("scrape");
            let mut app = common::wal_appender(&wal);
            let mut cache = SeriesCache::default();
            let mut ts = 1_700_000_000_000;
            scrape_to_wal(&mut app, &mut cache, ts);
            let mut scrape = || {
                ts += 1000;
                scrape_to_wal(&mut app, &mut cache, ts)
            };
            (measured(iterations, &mut scrape), series)
        }
        "wal_append" => {
            let wal = inputs.wal("append");
            let batch = common::steady_batch(&inputs.text, &settings, 2);
            let mut append = || {
                wal.begin().append(&batch).expect("appends");
                batch.len()
            };
            assert!(!batch.is_empty(), "a steady scrape has records to append");
            (measured(iterations, &mut append), batch.len())
        }
        "wal_read" => {
            let wal = inputs.wal("read");
            let start = wal.opened_at();
            let mut app = common::wal_appender(&wal);
            scrape_to_wal(&mut app, &mut SeriesCache::default(), 1);
            let mut refs = hashbrown::HashMap::new();
            let mut read = || common::read_back(&wal, start, &mut refs).0;
            (measured(iterations, &mut read), series)
        }
        "encode_snappy" => {
            let samples = outgoing(inputs);
            let mut encoder = snap::raw::Encoder::new();
            let (mut raw, mut compressed) = (Vec::new(), Vec::new());
            let mut encode = || {
                // In batches of Prometheus's max_samples_per_send.
                for chunk in samples.chunks(2000) {
                    raw.clear();
                    write_request(chunk, &mut raw);
                    std::hint::black_box(
                        compress(&mut encoder, &raw, &mut compressed).expect("compresses"),
                    );
                }
                samples.len()
            };
            (measured(iterations, &mut encode), series)
        }
        "encode_v2_snappy" => {
            let samples = outgoing(inputs);
            let families = families_of(&samples);
            let mut v2 = V2Encoder::new();
            let mut encoder = snap::raw::Encoder::new();
            let (mut raw, mut compressed) = (Vec::new(), Vec::new());
            let mut encode = || {
                // The same batches as encode_snappy, as 2.0 requests with
                // each family's metadata (as the remote_write bench).
                for chunk in samples.chunks(2000) {
                    raw.clear();
                    v2.write_request(chunk, &families, &mut raw);
                    std::hint::black_box(
                        compress(&mut encoder, &raw, &mut compressed).expect("compresses"),
                    );
                }
                samples.len()
            };
            (measured(iterations, &mut encode), series)
        }
        other => panic!("unknown stage {other:?}; stages: {}", STAGES.join(", ")),
    }
}

/// The families of the samples, each with metadata (see [`Families`]).
fn families_of(samples: &[Outgoing]) -> Families {
    let mut names = Vec::new();
    for s in samples {
        let tables = s.series.segment().read();
        for &p in tables.run(s.series.at()).pairs {
            let (name, value) = name_value(tables.pair_bytes(p));
            if name == b"__name__" {
                names.push(value.to_vec());
            }
        }
    }
    Families::of(names.iter().map(Vec::as_slice))
}

/// Every sample of the body as the queue holds it before sending.
fn outgoing(inputs: &Inputs) -> Vec<Outgoing> {
    let external = vec![("cluster".to_owned(), "eu-1".to_owned())];
    let mut prep = SeriesPrep::new(&external, &inputs.rules);
    let mut out = Vec::new();
    for entry in Parser::new(inputs.text.as_bytes(), Format::Text) {
        let Ok(Entry::Sample(s)) = entry else {
            continue;
        };
        let mut labels = Labels::default();
        s.labels_into(&mut labels);
        labels.sort();
        let mut rendered = Vec::new();
        relay::exposition::render::series(&mut rendered, &labels);
        let series = prep.prepare(&rendered).expect("kept");
        out.push(Outgoing::new(series, 1_700_000_000_000, s.value, false));
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let stage = args.next();
    let iterations = args
        .next()
        .map(|n| n.parse().expect("iterations: a number"))
        .unwrap_or(1);
    let inputs = Inputs::new();
    let stages: Vec<&str> = match &stage {
        Some(s) => vec![s.as_str()],
        None => STAGES.to_vec(),
    };
    for stage in stages {
        let (produced, expected) = run(stage, iterations, &inputs);
        assert_eq!(produced, expected, "stage {stage}");
        println!("{stage} series={} produced={produced}", inputs.series);
    }
}
