//! Samples dealt to shards by series hash, handed over in chunks.

use tokio::sync::{mpsc, watch};

use super::super::encode::Outgoing;
use super::shard::{Chunk, Shards};
use super::tracker::Tracker;

/// Samples dealt to each shard and not yet handed over, with the oldest
/// timestamp among them.
pub(super) struct Dealt {
    pub(super) shards: Vec<(Vec<Outgoing>, i64)>,
}

/// Samples dealt to one shard, handed over together.
pub(super) struct DealtChunk {
    pub(super) samples: Vec<Outgoing>,
    pub(super) oldest_ts: i64,
}

impl DealtChunk {
    pub(super) fn len(&self) -> usize {
        self.samples.len()
    }
}

impl Dealt {
    pub(super) fn new(n_shards: usize) -> Dealt {
        Dealt {
            shards: (0..n_shards).map(|_| (Vec::new(), i64::MAX)).collect(),
        }
    }

    /// Deals `sample` to `shard`; the shard's chunk once it holds `chunk_max`.
    pub(super) fn push(
        &mut self,
        shard: usize,
        sample: Outgoing,
        chunk_max: usize,
    ) -> Option<DealtChunk> {
        let (samples, oldest) = &mut self.shards[shard];
        *oldest = (*oldest).min(sample.timestamp_ms);
        samples.push(sample);
        if samples.len() < chunk_max {
            return None;
        }
        // The record is large: the next chunk is likely full too.
        let full = std::mem::replace(samples, Vec::with_capacity(chunk_max));
        Some(DealtChunk {
            samples: full,
            oldest_ts: std::mem::replace(oldest, i64::MAX),
        })
    }

    /// What is dealt to `shard`, if anything (the end of a record).
    pub(super) fn take(&mut self, shard: usize) -> Option<DealtChunk> {
        let (samples, oldest) = &mut self.shards[shard];
        let samples = std::mem::take(samples);
        let oldest_ts = std::mem::replace(oldest, i64::MAX);
        (!samples.is_empty()).then_some(DealtChunk { samples, oldest_ts })
    }
}

/// Hands `chunk` of record `seq` to `shard`, counted in the tracker first;
/// false when the queue must stop.
pub(super) async fn send_chunk(
    shards: &Shards,
    shard: usize,
    seq: u64,
    chunk: DealtChunk,
    tracker: &Tracker,
    abort: &mut watch::Receiver<bool>,
) -> bool {
    tracker.add(seq, chunk.len(), chunk.oldest_ts);
    let chunk = Chunk {
        seq,
        samples: chunk.samples,
        flush: false,
    };
    hand_over(&shards.senders[shard], chunk, abort).await
}

/// Sends `chunk` to a shard; false when the shard is gone or `abort`
/// turned true (the queue stops).
pub(super) async fn hand_over(
    tx: &mpsc::Sender<Chunk>,
    chunk: Chunk,
    abort: &mut watch::Receiver<bool>,
) -> bool {
    let send = tx.send(chunk);
    tokio::pin!(send);
    loop {
        tokio::select! {
            sent = &mut send => return sent.is_ok(),
            changed = abort.changed() => {
                if changed.is_err() {
                    return send.await.is_ok();
                }
                if *abort.borrow() {
                    return false;
                }
            }
        }
    }
}

/// Tells every shard the queue has caught up with the WAL: what they
/// buffer goes now. False when the queue must stop.
pub(super) async fn flush(shards: &Shards, seq: u64, abort: &mut watch::Receiver<bool>) -> bool {
    for tx in &shards.senders {
        let flush = Chunk {
            seq,
            samples: Vec::new(),
            flush: true,
        };
        if !hand_over(tx, flush, abort).await {
            return false;
        }
    }
    true
}
