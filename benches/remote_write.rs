//! The send side of remote write: WAL-read samples encoded into a
//! `WriteRequest` and snappy-compressed, in batches of Prometheus's default
//! `max_samples_per_send` (2000). Compared with the same request built as
//! prost structs (what a sender using the generated types does: labels
//! copied into `Label` strings for every sample, then `encode_to_vec`),
//! compressed the same way; relay writes the wire format directly from
//! labels encoded once per series. Next to them, the same batch as a
//! remote-write 2.0 `Request` (symbol table, label refs, each family's
//! metadata with its series), with its bytes
//! after snappy and the heap allocations per request of each encoder once
//! its buffers have grown (a counting allocator).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use common::Families;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use relay::exposition::{Entry, Format, Labels, Parser};
use relay::relabel::Rules;
use relay::remote_write::encode::{compress, write_request, Outgoing, SeriesPrep};
use relay::remote_write::encode_v2::{NoMetadata, V2Encoder};
use relay::remote_write::{prompb, prompb_v2};

/// Counts allocations, to show what an encoder allocates per request.
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

/// Heap allocations of one call of `f` (after a warm-up call).
fn allocations(mut f: impl FnMut()) -> u64 {
    f();
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

const BATCH: usize = 2000;

/// 2000 samples of realistic series, as the queue holds them.
fn batch() -> (Vec<Outgoing>, Vec<Vec<(String, String)>>) {
    let text = common::exposition(BATCH);
    let rules = Rules::default();
    let external = vec![("cluster".to_owned(), "eu-1".to_owned())];
    let mut prep = SeriesPrep::new(&external, &rules);
    let mut out = Vec::new();
    let mut label_sets = Vec::new();
    for entry in Parser::new(text.as_bytes(), Format::Text) {
        let Ok(Entry::Sample(s)) = entry else {
            continue;
        };
        let mut labels = Labels::default();
        s.labels_into(&mut labels);
        labels.set("cluster", "eu-1");
        labels.sort();
        let mut rendered = Vec::new();
        relay::exposition::render::series(&mut rendered, &labels);
        let series = prep.prepare(&rendered).expect("kept");
        label_sets.push(
            labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
        );
        out.push(Outgoing::new(series, 1_700_000_000_000, s.value, false));
        if out.len() == BATCH {
            break;
        }
    }
    (out, label_sets)
}

fn bench(c: &mut Criterion) {
    let (samples, label_sets) = batch();
    let families = Families::of(
        label_sets
            .iter()
            .filter_map(|l| l.iter().find(|(n, _)| n == "__name__"))
            .map(|(_, name)| name.as_bytes()),
    );
    let mut encoder = snap::raw::Encoder::new();
    let (mut raw, mut compressed) = (Vec::new(), Vec::new());
    let mut ours = || {
        raw.clear();
        write_request(&samples, &mut raw);
        compress(&mut encoder, &raw, &mut compressed)
            .expect("compresses")
            .len()
    };
    let mut prost_encoder = snap::raw::Encoder::new();
    let mut prost_compressed = Vec::new();
    let mut theirs = || {
        let request = prompb::WriteRequest {
            timeseries: samples
                .iter()
                .zip(&label_sets)
                .map(|(s, labels)| prompb::TimeSeries {
                    labels: labels
                        .iter()
                        .map(|(name, value)| prompb::Label {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    samples: vec![prompb::Sample {
                        value: s.value.float().expect("float samples"),
                        timestamp: s.timestamp_ms,
                    }],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let bytes = request.encode_to_vec();
        compress(&mut prost_encoder, &bytes, &mut prost_compressed)
            .expect("compresses")
            .len()
    };
    assert_eq!(ours(), theirs(), "the same bytes either way");
    {
        let mut check = Vec::new();
        V2Encoder::new().write_request(&samples, &NoMetadata, &mut check);
        let back = prompb_v2::Request::decode(check.as_slice()).expect("a 2.0 request");
        assert_eq!(
            back.timeseries.len(),
            BATCH,
            "every sample in the 2.0 request"
        );
    }
    let mut v2 = V2Encoder::new();
    let mut v2_encoder = snap::raw::Encoder::new();
    let (mut v2_raw, mut v2_compressed) = (Vec::new(), Vec::new());
    let mut ours_v2 = || {
        v2_raw.clear();
        v2.write_request(&samples, &families, &mut v2_raw);
        compress(&mut v2_encoder, &v2_raw, &mut v2_compressed)
            .expect("compresses")
            .len()
    };
    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("encode_snappy_2000", |b| b.iter(&mut ours));
    group.bench_function("encode_v2_snappy_2000", |b| b.iter(&mut ours_v2));
    group.bench_function("prost_structs_snappy_2000", |b| b.iter(&mut theirs));
    group.finish();

    if common::bench_mode() {
        let runs = 200;
        let t_ours = common::median(runs, || {
            std::hint::black_box(ours());
        });
        let t_theirs = common::median(runs, || {
            std::hint::black_box(theirs());
        });
        let t_v2 = common::median(runs, || {
            std::hint::black_box(ours_v2());
        });
        let a_ours = allocations(|| {
            std::hint::black_box(ours());
        });
        let a_v2 = allocations(|| {
            std::hint::black_box(ours_v2());
        });
        let (ours_bytes, v2_bytes) = (ours(), ours_v2());
        let rate = |d: std::time::Duration| BATCH as f64 / d.as_secs_f64() / 1e6;
        println!(
            "\nremote write: {BATCH} samples/batch, {} bytes protobuf, {} bytes snappy\n  relay, direct wire format    {:6.2} M samples/s\n  prost structs + encode       {:6.2} M samples/s\n  ratio                        {:6.1}x",
            raw.len(),
            ours_bytes,
            rate(t_ours),
            rate(t_theirs),
            t_theirs.as_secs_f64() / t_ours.as_secs_f64()
        );
        println!(
            "remote write 2.0: {} bytes protobuf, {} bytes snappy ({:.2}x of 1.0)\n  relay 2.0, direct wire format {:6.2} M samples/s ({:.2}x the time of 1.0)\n  allocations per request: 1.0 {a_ours}, 2.0 {a_v2}",
            v2_raw.len(),
            v2_bytes,
            v2_bytes as f64 / ours_bytes as f64,
            rate(t_v2),
            t_v2.as_secs_f64() / t_ours.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
