//! The per-scrape work of relay on one body: parse → target labels →
//! metric relabeling → render, per series, next to prometheus-parse merely
//! parsing the same body (the baseline the product brief names). Timed in
//! the steady state (series known from the last scrape, as from a target's
//! second scrape on) and, printed beside it, on a target's first scrape.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use relay::exposition::{Format, Labels};
use relay::scrape::pipeline::{process, process_into, Counts, Rendered, SeriesCache, Settings};
use relay::storage::FanOut;
use relay::wal::WalBatch;

const RULES: &str = "scrape_configs:\n  - job_name: app\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'go_.*', action: drop}\n      - {regex: pod_template_hash, action: labeldrop}\n      - {source_labels: [namespace], regex: 'shop-0', target_label: tier, replacement: gold}\n";

fn bench(c: &mut Criterion) {
    let text = common::exposition(100_000);
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    let plan = relay::plan::from_yaml_str(RULES).expect("rules");
    let rules = plan.jobs[0].metric_relabel.clone();
    let target: Labels<'static> = [("instance", "10.0.0.7:8001"), ("job", "app")]
        .into_iter()
        .collect();
    let settings = Settings::new(&target, &rules);
    let mut cache = SeriesCache::default();
    let mut out = Rendered::default();
    let mut cycle = || {
        process(
            text.as_bytes(),
            Format::Text,
            &settings,
            &mut cache,
            &mut out,
        )
        .expect("valid body");
        cache.commit(&mut ());
        out.text.len()
    };
    // The same with remote write on: one pass feeds the text snapshot and
    // the WAL batch (encoded records, not written to disk).
    let wal_settings = settings;
    let mut wal_cache = SeriesCache::default();
    let mut batch = WalBatch::default();
    let mut wal_out = Rendered::default();
    let mut wal_cycle = || {
        wal_out.clear();
        batch.begin(1_700_000_000_000);
        let mut counts = Counts::default();
        let mut sink = FanOut(&mut wal_out, common::BatchOf(&mut batch, false));
        process_into(
            text.as_bytes(),
            Format::Text,
            &wal_settings,
            &mut wal_cache,
            &mut counts,
            &mut sink,
        )
        .expect("valid body");
        wal_cache.commit(&mut sink);
        batch.finish();
        batch.len()
    };
    let mut group = c.benchmark_group("scrape_cycle");
    group.throughput(Throughput::Elements(series as u64));
    group.sample_size(10);
    group.bench_function("parse_relabel_render_100k", |b| b.iter(&mut cycle));
    group.bench_function("parse_relabel_render_wal_100k", |b| b.iter(&mut wal_cycle));
    group.finish();

    if common::bench_mode() {
        let ours = common::median(5, || {
            std::hint::black_box(cycle());
        });
        let with_wal = common::median(5, || {
            std::hint::black_box(wal_cycle());
        });
        // A target's first scrape: every series new to the cache.
        let first = common::median(3, || {
            let mut out = Rendered::default();
            process(
                text.as_bytes(),
                Format::Text,
                &settings,
                &mut SeriesCache::default(),
                &mut out,
            )
            .expect("valid body");
            std::hint::black_box(out.text.len());
        });
        let theirs = common::median(3, || {
            std::hint::black_box(
                prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
                    .map(|s| s.samples.len())
                    .ok(),
            );
        });
        let per = |d: std::time::Duration| d.as_nanos() as f64 / series as f64;
        println!(
            "\ncycle: {series} series, 3 rules, target labels, sorted, rendered\n  relay, series known       {:6.0} ns/series\n  + WAL records (rw on)     {:6.0} ns/series\n  relay, first scrape       {:6.0} ns/series\n  prometheus-parse parse    {:6.0} ns/series\n  ratio (known series)      {:6.1}x",
            per(ours),
            per(with_wal),
            per(first),
            per(theirs),
            per(theirs) / per(ours)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
