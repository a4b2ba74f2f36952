//! The WAL stages of remote write at 100k series, each alone: a scrape with
//! remote write the only consumer (parse, series cache, WAL records; no
//! text snapshot), appending one scrape's records to a segment (the write
//! call, not synced, as the scrape loop does), and a queue's tailer
//! reading them back (records read and checksummed, samples decoded, each
//! ref looked up in the segment's series map, as `queue::run` does).

mod common;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use relay::exposition::Labels;
use relay::relabel::Rules;
use relay::scrape::pipeline::{SeriesCache, Settings};
use relay::wal::{Wal, WalBatch};

fn bench(c: &mut Criterion) {
    let text = common::exposition(100_000);
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    let dir = tempfile::tempdir().expect("tempdir");
    // Small segments and cap: the runs below append a few GB in all.
    let wal = Arc::new(
        Wal::open(
            dir.path(),
            256 << 20,
            &[],
            Counter::default(),
            Gauge::default(),
        )
        .expect("opens"),
    );
    let target: Labels<'static> = [("instance", "10.0.0.7:8001"), ("job", "app")]
        .into_iter()
        .collect();
    let rules = Rules::default();
    let settings = Settings::new(&target, &rules);
    // One scrape into `batch`, appended to `wal` if `append`.
    let run = |wal: &Wal, cache: &mut SeriesCache, batch: &mut WalBatch, ts: i64, append: bool| {
        common::scrape_to_wal(&text, &settings, wal, cache, batch, ts, append);
        batch.len()
    };
    let (mut cache, mut batch) = (SeriesCache::default(), WalBatch::default());
    let mut ts = 1_700_000_000_000;
    // The first scrape describes every series; the ones timed do not.
    run(&wal, &mut cache, &mut batch, ts, true);
    let mut scrape = || {
        ts += 1000;
        run(&wal, &mut cache, &mut batch, ts, true)
    };

    // One steady scrape's records, appended again and again.
    let (mut steady_cache, mut steady) = (SeriesCache::default(), WalBatch::default());
    run(&wal, &mut steady_cache, &mut steady, 1, true);
    let bytes = run(&wal, &mut steady_cache, &mut steady, 2, false);
    let append = || {
        let guard = wal.begin();
        guard.append(&steady).expect("appends");
    };

    // A segment holding one scrape (descriptions and samples), read back.
    let read_dir = tempfile::tempdir().expect("tempdir");
    let read_wal = Arc::new(
        Wal::open(
            read_dir.path(),
            1 << 30,
            &[],
            Counter::default(),
            Gauge::default(),
        )
        .expect("opens"),
    );
    run(
        &read_wal,
        &mut SeriesCache::default(),
        &mut WalBatch::default(),
        1,
        true,
    );
    let start = read_wal.opened_at();
    let mut refs = hashbrown::HashMap::new();
    let mut read = || {
        let (samples, sum) = common::read_back(&read_wal, start, &mut refs);
        assert_eq!(samples, series, "every sample read back");
        sum
    };

    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(series as u64));
    group.sample_size(10);
    group.bench_function("scrape_to_wal_only_100k", |b| b.iter(&mut scrape));
    group.bench_function("append_100k", |b| b.iter(append));
    group.bench_function("read_100k", |b| b.iter(&mut read));
    group.finish();

    if common::bench_mode() {
        let per = |d: std::time::Duration| d.as_nanos() as f64 / series as f64;
        let t_scrape = common::median(5, || {
            std::hint::black_box(scrape());
        });
        let t_append = common::median(5, append);
        let t_read = common::median(5, || {
            std::hint::black_box(read());
        });
        println!(
            "\nwal: {series} series, {bytes} bytes of records per steady scrape\n  scrape to WAL only (no snapshot)  {:6.0} ns/series\n  append one scrape's records      {:6.1} ns/series\n  read back (tailer)               {:6.1} ns/series",
            per(t_scrape),
            per(t_append),
            per(t_read)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
