//! Our parser against prometheus-parse (the crate the product brief names as
//! the baseline) on the same generated exposition: ≥100k series, 6–7 labels,
//! histograms. Prints MB/s for both and the ratio measured in this run.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use relay::exposition::{Entry, Format, Labels, Parser};

/// What the scrape path does: every entry, every sample's labels loaded.
fn parse_ours(input: &[u8]) -> usize {
    let mut labels = Labels::with_capacity(16);
    let mut n = 0;
    for entry in Parser::new(input, Format::Text) {
        if let Ok(Entry::Sample(s)) = entry {
            labels.clear();
            s.labels_into(&mut labels);
            n += labels.len();
        }
    }
    n
}

fn parse_theirs(input: &str) -> usize {
    prometheus_parse::Scrape::parse(input.lines().map(|l| Ok(l.to_owned())))
        .map(|s| s.samples.len())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let text = common::exposition(100_000);
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series >= 100_000, "{series} series");
    let mut group = c.benchmark_group("parse_100k_series");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    group.bench_function("relay", |b| b.iter(|| parse_ours(text.as_bytes())));
    group.bench_function("prometheus-parse", |b| b.iter(|| parse_theirs(&text)));
    group.finish();

    if common::bench_mode() {
        let mb = text.len() as f64 / 1e6;
        let ours = common::median(7, || {
            std::hint::black_box(parse_ours(text.as_bytes()));
        });
        let theirs = common::median(3, || {
            std::hint::black_box(parse_theirs(&text));
        });
        let (a, b) = (mb / ours.as_secs_f64(), mb / theirs.as_secs_f64());
        println!(
            "\nparse: {series} series, {mb:.1} MB\n  relay            {a:8.1} MB/s\n  prometheus-parse {b:8.1} MB/s\n  ratio            {:8.1}x",
            a / b
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
