//! The send side of remote write: WAL-read samples encoded into a
//! `WriteRequest` and snappy-compressed, in batches of Prometheus's default
//! `max_samples_per_send` (2000). Compared with the same request built as
//! prost structs (what a sender using the generated types does: labels
//! copied into `Label` strings for every sample, then `encode_to_vec`),
//! compressed the same way; relay writes the wire format directly from
//! labels encoded once per series.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use relay::exposition::{Entry, Format, Labels, Parser};
use relay::relabel::Rules;
use relay::remote_write::encode::{compress, write_request, Outgoing, SeriesPrep};
use relay::remote_write::prompb;

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
    let mut encoder = snap::raw::Encoder::new();
    let (mut raw, mut compressed) = (Vec::new(), Vec::new());
    let mut ours = || {
        raw.clear();
        write_request(&samples, &mut raw);
        compress(&mut encoder, &raw, &mut compressed).expect("compresses");
        compressed.len()
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
        compress(&mut prost_encoder, &bytes, &mut prost_compressed).expect("compresses");
        prost_compressed.len()
    };
    assert_eq!(ours(), theirs(), "the same bytes either way");

    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("encode_snappy_2000", |b| b.iter(&mut ours));
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
        let rate = |d: std::time::Duration| BATCH as f64 / d.as_secs_f64() / 1e6;
        println!(
            "\nremote write: {BATCH} samples/batch, {} bytes protobuf, {} bytes snappy\n  relay, direct wire format    {:6.2} M samples/s\n  prost structs + encode       {:6.2} M samples/s\n  ratio                        {:6.1}x",
            raw.len(),
            compressed.len(),
            rate(t_ours),
            rate(t_theirs),
            t_theirs.as_secs_f64() / t_ours.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
