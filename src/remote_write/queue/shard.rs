//! The shards: each sends its chunks' samples in batches, one request
//! after another, so a series' samples stay in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::super::encode::{self, EncodedSeries, Outgoing};
use super::super::encode_v2::{NoMetadata, Sent, V2Encoder};
use super::super::send::{Outcome, Sender};
use super::metadata::SharedMetadata;
use super::tracker::Tracker;
use crate::config::ProtobufMessage;

/// Samples of one record for one shard.
pub(super) struct Chunk {
    pub(super) seq: u64,
    pub(super) samples: Vec<Outgoing>,
    /// The queue has caught up with the WAL: send what is buffered now
    /// rather than after `batch_send_deadline` (a scrape's last partial
    /// batch would otherwise wait for it).
    pub(super) flush: bool,
}

/// What the shards measured, for the desired-shards computation.
#[derive(Default)]
pub(super) struct SendStats {
    pub(super) samples_out: u64,
    pub(super) busy: Duration,
    pub(super) last_failure: Option<Instant>,
}

pub(super) struct Shards {
    pub(super) senders: Vec<mpsc::Sender<Chunk>>,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

/// Everything a shard task shares with the queue.
#[derive(Clone)]
pub(super) struct ShardContext {
    pub(super) sender: Arc<Sender>,
    pub(super) tracker: Arc<Tracker>,
    pub(super) stats: Arc<Mutex<SendStats>>,
    pub(super) max_samples: usize,
    pub(super) deadline: Duration,
    pub(super) abort: watch::Receiver<bool>,
    pub(super) failed: Counter,
    pub(super) redelivered: Counter,
    /// The queue's refusal log lines, shared by its shards.
    pub(super) refusals: Arc<Mutex<RefusalLog>>,
    /// The families' metadata 2.0 sends with each series (None when the
    /// queue keeps none).
    pub(super) metadata: Option<SharedMetadata>,
}

/// At most one refusal line per this time per queue: a receiver that
/// refuses every request would otherwise fill the log.
pub(super) const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// How many bytes of a receiver's message a log line quotes.
pub(super) const MESSAGE_LOGGED: usize = 256;

/// The rate limit of a queue's refusal lines: when the last went out, and
/// what was refused since without a line.
#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    pub(super) last: Option<Instant>,
    pub(super) suppressed_requests: u64,
    pub(super) suppressed_samples: u64,
}

impl RefusalLog {
    /// Whether a refused request of `samples` samples gets a line at `now`;
    /// if so, the requests and samples refused without a line since the
    /// last one (which that line reports), else it is counted for the next.
    pub(super) fn admit(&mut self, now: Instant, samples: u64) -> Option<(u64, u64)> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < REFUSAL_LOG_EVERY => {
                self.suppressed_requests += 1;
                self.suppressed_samples += samples;
                None
            }
            _ => {
                self.last = Some(now);
                Some((
                    std::mem::take(&mut self.suppressed_requests),
                    std::mem::take(&mut self.suppressed_samples),
                ))
            }
        }
    }
}

/// What a receiver refused of one request (all its split pieces).
pub(super) struct Refused {
    pub(super) status: u16,
    pub(super) message: String,
    /// One of the refused samples' series.
    pub(super) example: EncodedSeries,
}

/// A series' labels as `name{label="value",...}`, for a log line.
pub(super) fn series_text(series: &EncodedSeries) -> String {
    use prost::Message;
    let Ok(decoded) = super::super::prompb::TimeSeries::decode(series.labels().as_slice()) else {
        return String::new();
    };
    let mut name = "";
    let mut rest = Vec::new();
    for label in &decoded.labels {
        if label.name == "__name__" {
            name = &label.value;
        } else {
            let value = label
                .value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            rest.push(format!("{}=\"{value}\"", label.name));
        }
    }
    format!("{name}{{{}}}", rest.join(","))
}

/// The start of a receiver's message, on one line, cut at a character.
pub(super) fn message_excerpt(message: &str) -> String {
    let trimmed = message.trim();
    let mut end = trimmed.len().min(MESSAGE_LOGGED);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = trimmed[..end].replace(['\n', '\r'], " ");
    if end < trimmed.len() {
        out.push_str("...");
    }
    out
}

impl Shards {
    pub(super) fn start(n: usize, ctx: &ShardContext) -> Shards {
        let mut senders = Vec::with_capacity(n);
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::channel(1);
            senders.push(tx);
            tasks.push(tokio::spawn(shard(rx, ctx.clone())));
        }
        Shards { senders, tasks }
    }

    /// Closes the shards and waits until each has sent what it holds (or
    /// was aborted).
    pub(super) async fn drain(self) {
        drop(self.senders);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Sends a shard's samples in batches of up to `max_samples_per_send`, a
/// partial batch when the queue has caught up with the WAL or after
/// `batch_send_deadline`, until its channel closes.
pub(super) async fn shard(mut rx: mpsc::Receiver<Chunk>, mut ctx: ShardContext) {
    let mut buffer: VecDeque<Outgoing> = VecDeque::new();
    let mut runs: VecDeque<(u64, usize)> = VecDeque::new();
    let mut encoder = snap::raw::Encoder::new();
    let mut v2 = V2Encoder::new();
    let (mut raw, mut compressed, mut batch) = (Vec::new(), Vec::new(), Vec::new());
    let mut open = true;
    let mut flush = false;
    let mut oldest = Instant::now();
    loop {
        let full = buffer.len() >= ctx.max_samples;
        let due = !buffer.is_empty() && (!open || flush || oldest.elapsed() >= ctx.deadline);
        if full || due {
            let n = buffer.len().min(ctx.max_samples);
            batch.clear();
            batch.extend(buffer.drain(..n));
            let started = Instant::now();
            let mut buffers = Buffers {
                snappy: &mut encoder,
                v2: &mut v2,
                raw: &mut raw,
                compressed: &mut compressed,
            };
            let delivery = deliver(&mut ctx, &batch, &mut buffers).await;
            let busy = started.elapsed();
            {
                let mut stats = ctx.stats.lock().unwrap_or_else(PoisonError::into_inner);
                stats.busy += busy;
                stats.samples_out += delivery.sent;
                if delivery.failed > 0 {
                    stats.last_failure = Some(Instant::now());
                }
            }
            if delivery.aborted {
                return;
            }
            let sent_ts = delivery.highest_sent_ts;
            let mut left = n;
            while left > 0 {
                let Some((seq, count)) = runs.front_mut() else {
                    break;
                };
                let take = (*count).min(left);
                ctx.tracker.done(*seq, take, sent_ts);
                *count -= take;
                left -= take;
                if *count == 0 {
                    runs.pop_front();
                }
            }
            if buffer.is_empty() {
                flush = false;
                // Caught up: the request buffers (a few hundred KiB, mapped
                // apart from the heap) go back until the next batch, so an
                // idle Pod does not hold them between scrapes.
                (raw, compressed, batch) = (Vec::new(), Vec::new(), Vec::new());
                v2.release();
            } else {
                oldest = Instant::now();
            }
            continue;
        }
        if !open {
            return;
        }
        let wait = ctx.deadline.saturating_sub(oldest.elapsed());
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(chunk) => {
                    if buffer.is_empty() {
                        oldest = Instant::now();
                    }
                    if !chunk.samples.is_empty() {
                        runs.push_back((chunk.seq, chunk.samples.len()));
                        buffer.extend(chunk.samples);
                    }
                    flush |= chunk.flush && !buffer.is_empty();
                }
                None => open = false,
            },
            _ = tokio::time::sleep(wait), if !buffer.is_empty() => {}
            _ = ctx.abort.changed() => {
                if *ctx.abort.borrow() {
                    return;
                }
            }
        }
    }
}

/// A shard's encoders and request buffers, reused from batch to batch.
pub(super) struct Buffers<'a> {
    pub(super) snappy: &'a mut snap::raw::Encoder,
    pub(super) v2: &'a mut V2Encoder,
    pub(super) raw: &'a mut Vec<u8>,
    pub(super) compressed: &'a mut Vec<u8>,
}

/// What became of one batch.
#[derive(Default)]
pub(super) struct Delivery {
    pub(super) sent: u64,
    pub(super) failed: u64,
    pub(super) highest_sent_ts: Option<i64>,
    pub(super) aborted: bool,
}

/// Sends `batch` (one request, or several when the receiver refuses it for
/// a conflict). Prometheus refuses a whole request when one sample is older
/// than what it holds for the series: after a restart that is a resend of
/// a sample it already stored (the checkpoint trails the acknowledgements
/// by up to a second). Such a batch is split in halves, first half first so
/// each series stays in order, down to single samples: the others arrive,
/// and a refused resent one was already delivered. Other refusals count
/// the batch as failed, as Prometheus does. A part a receiver refused for
/// being 2.0 goes again, as 1.0 (the sender has fallen back).
pub(super) async fn deliver(
    ctx: &mut ShardContext,
    batch: &[Outgoing],
    buffers: &mut Buffers<'_>,
) -> Delivery {
    let mut delivery = Delivery::default();
    let mut refused: Option<Refused> = None;
    let mut redelivered = 0;
    // Parts still to send, as (start, end): the last one goes next.
    let mut parts = vec![(0, batch.len())];
    while let Some((start, end)) = parts.pop() {
        let part = &batch[start..end];
        let Buffers {
            snappy,
            v2,
            raw,
            compressed,
        } = buffers;
        raw.clear();
        let message = ctx.sender.protocol();
        match message {
            ProtobufMessage::V1 => encode::write_request(part, raw),
            ProtobufMessage::V2 => match &ctx.metadata {
                Some(store) => {
                    let store = store.lock().unwrap_or_else(PoisonError::into_inner);
                    v2.write_request(part, &*store, raw);
                }
                None => v2.write_request(part, &NoMetadata, raw),
            },
        }
        let body = match encode::compress(snappy, raw, compressed) {
            Ok(body) => Bytes::copy_from_slice(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot compress a remote-write batch");
                delivery.failed += part.len() as u64;
                continue;
            }
        };
        let n = part.len() as u64;
        let outcome = ctx
            .sender
            .send(body, Sent::of(part), message, &mut ctx.abort)
            .await;
        match outcome {
            Outcome::FellBack => parts.push((start, end)),
            Outcome::Sent => {
                delivery.sent += n;
                let ts = part.iter().map(|s| s.timestamp_ms).max();
                delivery.highest_sent_ts = delivery.highest_sent_ts.max(ts);
            }
            Outcome::Rejected { conflict: true, .. } if part.len() > 1 => {
                let mid = start + part.len() / 2;
                parts.push((mid, end));
                parts.push((start, mid));
            }
            Outcome::Rejected { conflict: true, .. } if part.iter().all(|s| s.replayed) => {
                ctx.redelivered.inc_by(n);
                redelivered += n;
            }
            Outcome::Rejected {
                status, message, ..
            } => {
                ctx.failed.inc_by(n);
                delivery.failed += n;
                if refused.is_none() {
                    if let Some(first) = part.first() {
                        refused = Some(Refused {
                            status,
                            message,
                            example: first.series.clone(),
                        });
                    }
                }
            }
            Outcome::Aborted => {
                delivery.aborted = true;
                log_refused(ctx, refused, delivery.failed, redelivered);
                return delivery;
            }
        }
    }
    log_refused(ctx, refused, delivery.failed, redelivered);
    delivery
}

/// One WARN line for a refused request, whatever its pieces were (at most
/// one per [`REFUSAL_LOG_EVERY`] per queue; the next line counts the ones
/// left out). The counters count every sample either way.
pub(super) fn log_refused(
    ctx: &ShardContext,
    refused: Option<Refused>,
    failed: u64,
    redelivered: u64,
) {
    let Some(refused) = refused else {
        return;
    };
    let admitted = ctx
        .refusals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(Instant::now(), failed);
    let Some((suppressed_requests, suppressed_samples)) = admitted else {
        return;
    };
    tracing::warn!(
        remote_name = %ctx.sender.remote_name(),
        url = %ctx.sender.url_redacted(),
        status = refused.status,
        samples = failed,
        redelivered,
        series = %series_text(&refused.example),
        response = %message_excerpt(&refused.message),
        suppressed_requests,
        suppressed_samples,
        "remote write request refused, not retried; its samples are dropped"
    );
}
