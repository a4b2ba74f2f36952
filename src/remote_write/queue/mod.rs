//! One queue per `remote_write` entry: a tailer reads the WAL in order from
//! the queue's checkpoint (the backlog after a restart and live data alike,
//! so a series' backlog always reaches the receiver before its newer
//! samples), prepares each series once per segment, and deals samples to
//! shards by series hash. Each shard sends its batches one after another,
//! so the samples of a series stay in order. The checkpoint moves past a
//! WAL record once every sample read from it has been acknowledged (or
//! rejected for good), and is saved every second and at the end.
//!
//! The number of shards follows the load between `min_shards` and
//! `max_shards`, computed as Prometheus does (time per sample sent times the
//! incoming rate plus a share of the backlog); resharding first drains the
//! running shards, so ordering holds across it.

mod deal;
mod metadata;
mod reshard;
mod shard;
mod tracker;
mod watcher;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use super::encode::{Outgoing, Payload, SeriesPrep};
use super::metrics::QueueMetrics;
use super::send::Sender;
use crate::config::ProtobufMessage;
use crate::plan::Writer;
use crate::wal::{Position, Reader, Wal};
use deal::{flush, send_chunk, Dealt};
use reshard::Resharder;
use shard::{RefusalLog, SendStats, ShardContext, Shards};
use tracker::{save, save_checkpoints, Tracker};
use watcher::{Kinds, Read, Watcher};

/// What one queue needs to run.
pub struct QueueSpec {
    pub remote_name: String,
    pub writer: Arc<Writer>,
    pub external_labels: Vec<(String, String)>,
}

/// Runs the queue until the WAL is closed and everything read is sent, or
/// `abort` turns true (shutdown's deadline); saves the checkpoint last.
pub async fn run(
    wal: Arc<Wal>,
    spec: QueueSpec,
    start: Position,
    metrics: QueueMetrics,
    highest_wal_ts: Gauge<f64, AtomicU64>,
    mut abort: watch::Receiver<bool>,
) {
    let name = spec.remote_name.clone();
    let sender = match Sender::new(&spec.writer, metrics.clone()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "remote write queue cannot start; its samples stay in the WAL");
            return;
        }
    };
    let queue = &spec.writer.config.queue_config;
    let mut resharder = Resharder::new(queue.min_shards.max(1), queue.max_shards.max(1));
    metrics.shards_min.set(resharder.min as i64);
    metrics.shards_max.set(resharder.max as i64);
    let tracker = Arc::new(Tracker::new(start, metrics.highest_sent.clone()));
    let config = &spec.writer.config;
    // 2.0 carries metadata with each series, whatever `metadata_config.send`
    // says (as Prometheus 3, which ignores it under 2.0); 1.0 sends it in
    // requests of its own, when asked. The requests of its own also run
    // for a 2.0 entry with `send` (the default), but only once the queue
    // has fallen back to 1.0.
    let store = (config.metadata_config.send || config.protobuf_message == ProtobufMessage::V2)
        .then(|| Arc::new(Mutex::new(metadata::MetadataStore::default())));
    let ctx = ShardContext {
        sender,
        tracker: tracker.clone(),
        stats: Arc::new(Mutex::new(SendStats::default())),
        max_samples: queue.max_samples_per_send.max(1),
        deadline: queue.batch_send_deadline.as_std(),
        abort: abort.clone(),
        failed: metrics.failed.clone(),
        redelivered: metrics.redelivered.clone(),
        refusals: Arc::new(Mutex::new(RefusalLog::default())),
        metadata: store
            .clone()
            .filter(|_| config.protobuf_message == ProtobufMessage::V2),
    };
    let saver = tokio::spawn(save_checkpoints(
        wal.clone(),
        name.clone(),
        tracker.clone(),
        metrics.clone(),
        abort.clone(),
    ));
    let metadata_task = store
        .clone()
        .filter(|_| config.metadata_config.send)
        .map(|store| {
            tokio::spawn(metadata::send_metadata(
                store,
                ctx.sender.clone(),
                config.metadata_config.clone(),
                abort.clone(),
            ))
        });
    let kinds = Kinds {
        exemplars: config.send_exemplars,
        histograms: config.send_native_histograms,
    };
    let mut n_shards = resharder.min;
    let mut shards = Shards::start(n_shards, &ctx);
    metrics.shards.set(n_shards as i64);
    metrics.shards_desired.set(n_shards as f64);
    let chunk_max = queue.capacity.max(ctx.max_samples);
    let mut watcher = Watcher::new(
        Reader::new(wal.clone(), start),
        wal.subscribe(),
        SeriesPrep::new(&spec.external_labels, &spec.writer.write_relabel),
        start,
        wal.opened_at(),
        kinds,
        store,
    );
    let mut dealt = Dealt::new(n_shards);
    let mut seq = 0u64;
    // Samples were dealt since the shards were last told to flush.
    let mut caught_up_pending = false;
    'read: loop {
        if let Some((desired, change)) =
            resharder.due(n_shards, &ctx.stats, &tracker, &highest_wal_ts)
        {
            metrics.shards_desired.set(desired);
            if let Some(n) = change {
                tracing::info!(remote_name = %name, from = n_shards, to = n, "resharding");
                shards.drain().await;
                n_shards = n;
                shards = Shards::start(n_shards, &ctx);
                dealt = Dealt::new(n_shards);
                metrics.shards.set(n_shards as i64);
            }
        }
        match watcher.read() {
            Read::Absorbed(end) => {
                tracker.open(seq, end);
                tracker.close(seq);
                seq += 1;
            }
            Read::NewSegment(segment) => {
                tracker.read(seq, Position { segment, offset: 0 }, 0, 0);
                seq += 1;
            }
            Read::Pending if caught_up_pending => {
                caught_up_pending = false;
                if !flush(&shards, seq, &mut abort).await {
                    break 'read;
                }
            }
            Read::Pending => {
                if !watcher.wait(&mut abort).await {
                    break 'read;
                }
            }
            Read::End => break,
            Read::Samples {
                entries,
                series,
                end,
                replayed,
            } => {
                tracker.open(seq, end);
                let mut dropped = 0;
                for (r, timestamp_ms, payload) in entries {
                    let Some(s) = series.get(r) else {
                        dropped += 1;
                        continue;
                    };
                    let shard = (s.shard_key() % n_shards as u64) as usize;
                    // Exemplars have no start timestamp.
                    let start = match payload {
                        Payload::Exemplar(_) => 0,
                        _ => series.start(r),
                    };
                    let sample = Outgoing::with(s, timestamp_ms, payload, replayed).starting(start);
                    // A full chunk goes at once: what is in flight is
                    // bounded by the shards' chunks, not by the record.
                    if let Some(chunk) = dealt.push(shard, sample, chunk_max) {
                        resharder.dealt(chunk.len());
                        caught_up_pending = true;
                        if !send_chunk(&shards, shard, seq, chunk, &tracker, &mut abort).await {
                            break 'read;
                        }
                    }
                }
                metrics.dropped.inc_by(dropped);
                for shard in 0..n_shards {
                    if let Some(chunk) = dealt.take(shard) {
                        resharder.dealt(chunk.len());
                        caught_up_pending = true;
                        if !send_chunk(&shards, shard, seq, chunk, &tracker, &mut abort).await {
                            break 'read;
                        }
                    }
                }
                tracker.close(seq);
                seq += 1;
            }
        }
    }
    shards.drain().await;
    saver.abort();
    if let Some(task) = metadata_task {
        task.abort();
    }
    save(&wal, &name, &tracker, &metrics);
}

#[cfg(test)]
mod tests {
    use super::reshard::desired_shards;
    use super::shard::{message_excerpt, series_text, MESSAGE_LOGGED};
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn refusal_lines_are_one_per_ten_seconds_and_the_next_counts_the_rest() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        assert_eq!(log.admit(t0, 7), Some((0, 0)));
        assert_eq!(log.admit(t0 + Duration::from_secs(1), 3), None);
        assert_eq!(log.admit(t0 + Duration::from_millis(9_999), 2), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(10), 4), Some((2, 5)));
        assert_eq!(log.admit(t0 + Duration::from_secs(25), 1), Some((0, 0)));
    }

    #[test]
    fn a_refusal_line_quotes_a_series_and_a_bounded_message() {
        let rules = crate::relabel::Rules::default();
        let mut prep = SeriesPrep::new(&[], &rules);
        let series = prep
            .prepare(b"up{job=\"app\",path=\"a\\\"b\"}")
            .expect("parses");
        assert_eq!(series_text(&series), "up{job=\"app\",path=\"a\\\"b\"}");
        let long = format!("out of order sample\n{}", "é".repeat(300));
        let excerpt = message_excerpt(&long);
        assert!(excerpt.starts_with("out of order sample é"), "{excerpt}");
        assert!(excerpt.ends_with("..."), "{excerpt}");
        assert!(excerpt.len() <= MESSAGE_LOGGED + 3, "{}", excerpt.len());
        assert_eq!(message_excerpt(" short\n"), "short");
    }

    #[test]
    fn a_record_is_delivered_when_all_its_samples_are_done_in_order() {
        let p = |offset| Position { segment: 1, offset };
        let t = Tracker::new(p(0), Gauge::default());
        t.read(0, p(10), 3, 100);
        t.read(1, p(20), 0, 0);
        t.read(2, p(30), 2, 200);
        t.done(2, 2, Some(200));
        assert_eq!(t.delivered(), p(0), "record 0 is still out");
        assert_eq!(t.oldest_unsent_ts(), Some(100));
        t.done(0, 2, Some(100));
        assert_eq!(t.delivered(), p(0));
        t.done(0, 1, None);
        assert_eq!(t.delivered(), p(30), "0 done, 1 had nothing, 2 done");
        assert_eq!(t.oldest_unsent_ts(), None);
        assert_eq!(t.highest_sent_ts(), Some(200));
    }

    #[test]
    fn shards_follow_load_as_prometheus_computes_them() {
        // 10k samples/s at 1 ms each needs 10 shards.
        assert_eq!(desired_shards(1, 10_000.0, 0.001, 0.0, 1, 50).1, 10);
        // Within ±30% of the current number: no change.
        assert_eq!(desired_shards(10, 11_000.0, 0.001, 0.0, 1, 50).1, 10);
        // Clamped to max_shards and min_shards.
        assert_eq!(desired_shards(1, 1e9, 0.001, 0.0, 1, 50).1, 50);
        assert_eq!(desired_shards(10, 0.0, 0.001, 0.0, 2, 50).1, 2);
    }
}
