//! Protobuf parse throughput next to text on the same families (the
//! exposition of `common::exposition`, encoded both ways): the parse alone
//! (every sample's labels loaded) and a scrape of known series through the
//! pipeline (cache warm), in samples per second, with the heap allocations
//! per sample each makes (a counting allocator). Prints the ratios.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use relay::exposition::proto::{self, Options, ProtoError, Scratch};
use relay::exposition::{Entry, Format, Labels, Parser};
use relay::relabel::Rules;
use relay::scrape::pipeline::{process, Rendered, SeriesCache, Settings};

/// Counts allocations, to show what each path allocates per sample.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERIES: usize = 100_000;

/// Text: every sample, its labels loaded (as benches/parse.rs).
fn parse_text(input: &[u8]) -> usize {
    let mut labels = Labels::with_capacity(16);
    let mut n = 0;
    for entry in Parser::new(input, Format::Text) {
        if let Ok(Entry::Sample(s)) = entry {
            labels.clear();
            s.labels_into(&mut labels);
            n += 1;
        }
    }
    n
}

/// Protobuf: every family decoded, every series' sample made.
fn parse_protobuf(input: &[u8]) -> usize {
    let mut scratch = Scratch::default();
    let (mut pos, mut number, mut n) = (0, 1, 0);
    while pos < input.len() {
        let rest = &input[pos..];
        let Ok(Some(frame)) = proto::next_numbered_frame(rest, pos, number, 0, false) else {
            break;
        };
        let Ok(family) = proto::decode(rest, frame) else {
            break;
        };
        let _ = proto::for_each_sample(&family, frame, Options::default(), &mut scratch, |s| {
            // Decoding gave the labels as strings already.
            std::hint::black_box((s.name, s.labels, s.extra));
            n += 1;
            Ok::<_, ProtoError>(())
        });
        pos += frame.end;
        number += 1;
    }
    n
}

/// One scrape of `body` through the pipeline with a warm cache.
fn scrape(body: &[u8], format: Format, cache: &mut SeriesCache, out: &mut Rendered) -> usize {
    static TARGET: Labels<'static> = Labels::new();
    let rules = Rules::default();
    let settings = Settings::new(&TARGET, &rules);
    process(body, format, &settings, cache, out).expect("valid body");
    out.samples_scraped
}

fn allocs_per_sample(samples: usize, f: impl FnOnce()) -> f64 {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / samples as f64
}

fn bench(c: &mut Criterion) {
    let text = common::exposition(SERIES);
    let body = common::exposition_protobuf(SERIES);
    let samples = parse_text(text.as_bytes());
    assert_eq!(parse_protobuf(&body), samples, "the same samples both ways");
    let (mut text_cache, mut proto_cache) = (SeriesCache::default(), SeriesCache::default());
    let (mut text_out, mut proto_out) = (Rendered::default(), Rendered::default());
    assert_eq!(
        scrape(
            text.as_bytes(),
            Format::Text,
            &mut text_cache,
            &mut text_out
        ),
        samples
    );
    assert_eq!(
        scrape(&body, Format::Protobuf, &mut proto_cache, &mut proto_out),
        samples
    );

    let mut group = c.benchmark_group("parse_text_vs_protobuf");
    group.throughput(Throughput::Elements(samples as u64));
    group.sample_size(10);
    group.bench_function("text", |b| b.iter(|| parse_text(text.as_bytes())));
    group.bench_function("protobuf", |b| b.iter(|| parse_protobuf(&body)));
    group.bench_function("scrape_known_text", |b| {
        b.iter(|| {
            scrape(
                text.as_bytes(),
                Format::Text,
                &mut text_cache,
                &mut text_out,
            )
        })
    });
    group.bench_function("scrape_known_protobuf", |b| {
        b.iter(|| scrape(&body, Format::Protobuf, &mut proto_cache, &mut proto_out))
    });
    group.finish();

    if common::bench_mode() {
        let rate = |d: std::time::Duration| samples as f64 / d.as_secs_f64() / 1e6;
        let t = rate(common::median(5, || {
            std::hint::black_box(parse_text(text.as_bytes()));
        }));
        let p = rate(common::median(5, || {
            std::hint::black_box(parse_protobuf(&body));
        }));
        let st = rate(common::median(5, || {
            scrape(
                text.as_bytes(),
                Format::Text,
                &mut text_cache,
                &mut text_out,
            );
        }));
        let sp = rate(common::median(5, || {
            scrape(&body, Format::Protobuf, &mut proto_cache, &mut proto_out);
        }));
        let at = allocs_per_sample(samples, || {
            scrape(
                text.as_bytes(),
                Format::Text,
                &mut text_cache,
                &mut text_out,
            );
        });
        let ap = allocs_per_sample(samples, || {
            scrape(&body, Format::Protobuf, &mut proto_cache, &mut proto_out);
        });
        println!(
            "\nprotobuf vs text: {samples} samples; text {:.1} MB, protobuf {:.1} MB\n  parse          text {t:6.2} M samples/s   protobuf {p:6.2} M samples/s   ratio {:.2}x\n  scrape (known) text {st:6.2} M samples/s   protobuf {sp:6.2} M samples/s   ratio {:.2}x\n  allocations per sample, scrape (known): text {at:.3}, protobuf {ap:.3}",
            text.len() as f64 / 1e6,
            body.len() as f64 / 1e6,
            p / t,
            sp / st
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
