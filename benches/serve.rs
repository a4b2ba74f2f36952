//! GET /metrics on a 100k-series snapshot over loopback: latency p50/p99 for
//! plain text and gzip (compressed once per snapshot, then served from
//! memory), and the first OpenMetrics GET of a new snapshot (rendered then).
//! Bounded: 200 requests each, 9 snapshots.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use relay::exposition::{Format, Labels};
use relay::scrape::demand::Demand;
use relay::scrape::pipeline::{process, Rendered, SeriesCache, Settings};
use relay::snapshot::Latest;
use relay::telemetry::Telemetry;

fn get(addr: &str, gzip: bool) -> usize {
    request(
        addr,
        if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        },
    )
}

/// What Prometheus sends: OpenMetrics first.
const OPENMETRICS: &str =
    "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";

/// What Prometheus sends by default: OpenMetrics first, gzip accepted.
const OPENMETRICS_GZIP: &str = "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nAccept-Encoding: gzip\r\n";

fn request(addr: &str, extra: &str) -> usize {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    );
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    body.len()
}

fn percentiles(addr: &str, gzip: bool) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(200);
    let mut size = 0;
    for _ in 0..200 {
        let start = Instant::now();
        size = get(addr, gzip);
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100], size)
}

fn bench(c: &mut Criterion) {
    let text = common::exposition(100_000);
    let target: Labels<'static> = [("instance", "10.0.0.7:8001"), ("job", "app")]
        .into_iter()
        .collect();
    let rules = relay::relabel::Rules::default();
    let settings = Settings::new(&target, &rules);
    let mut rendered = Rendered::default();
    process(
        text.as_bytes(),
        Format::Text,
        &settings,
        &mut SeriesCache::default(),
        &mut rendered,
    )
    .expect("valid");
    let rendered = Arc::new(rendered);
    let store = Arc::new(Latest::new(relay::run::own_metrics(Arc::new(
        Telemetry::new(),
    ))));
    store.add(0);
    store.publish(0, rendered.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr").to_string();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    runtime.spawn(relay::serve::serve(
        listener,
        relay::serve::Sources {
            status: Arc::default(),
            latest: store.clone(),
            demand: Arc::new(Demand::new()),
            readiness: Arc::default(),
        },
        stop_rx,
        None,
        Arc::new(relay::web::Web::disabled()),
        relay::serve::Options::default(),
    ));

    // This bench has no scrape loops, and the scheduler no target to
    // wait for: every GET is served what was published. (A short scrape
    // timeout on the first, as when it had a target to give up on.)
    request(&addr, "X-Prometheus-Scrape-Timeout-Seconds: 0.01\r\n");

    let mut group = c.benchmark_group("serve_100k_series");
    group.sample_size(10);
    group.bench_function("get_metrics", |b| b.iter(|| get(&addr, false)));
    group.bench_function("get_metrics_gzip", |b| b.iter(|| get(&addr, true)));
    group.finish();

    if common::bench_mode() {
        let (p50, p99, size) = percentiles(&addr, false);
        let (gp50, gp99, gsize) = percentiles(&addr, true);
        // The first OpenMetrics GET of each snapshot (what a Prometheus
        // scraping relay asks for) renders it; against parsing the text
        // body again, as relay did before.
        let first_om = common::median(9, || {
            store.publish(0, rendered.clone());
            std::hint::black_box(request(&addr, OPENMETRICS));
        });
        let first_om_gzip = common::median(9, || {
            store.publish(0, rendered.clone());
            std::hint::black_box(request(&addr, OPENMETRICS_GZIP));
        });
        let body = store.snapshot().body(Format::Text, false);
        let reparse = common::median(5, || {
            let again = relay::scrape::pipeline::convert(&body, Format::Text, Format::OpenMetrics);
            std::hint::black_box(again.map(|r| r.text.len()).ok());
        });
        println!(
            "\nserve: GET /metrics, 100k series, 200 requests each over loopback\n  text  {:5.1} MB  p50 {:6.2} ms  p99 {:6.2} ms\n  gzip  {:5.1} MB  p50 {:6.2} ms  p99 {:6.2} ms\n  first OpenMetrics GET of a new snapshot  {:6.2} ms  (parsing the text again alone: {:6.2} ms)\n  first OpenMetrics + gzip GET of a new snapshot  {:6.2} ms",
            size as f64 / 1e6,
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            gsize as f64 / 1e6,
            gp50.as_secs_f64() * 1e3,
            gp99.as_secs_f64() * 1e3,
            first_om.as_secs_f64() * 1e3,
            reparse.as_secs_f64() * 1e3,
            first_om_gzip.as_secs_f64() * 1e3,
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
