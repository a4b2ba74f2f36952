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

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::encode::{self, EncodedSeries, Outgoing, SeriesPrep};
use super::metrics::QueueMetrics;
use super::send::{Outcome, Sender};
use super::series::SeriesTable;
use crate::clock;
use crate::plan::Writer;
use crate::wal::{Next, Position, Reader, Record, Wal};

/// How often the desired number of shards is computed (as Prometheus).
const RESHARD_EVERY: Duration = Duration::from_secs(10);

/// What one queue needs to run.
pub struct QueueSpec {
    pub remote_name: String,
    pub writer: Arc<Writer>,
    pub external_labels: Vec<(String, String)>,
}

/// Which records have been delivered: a record's samples are counted out
/// to the shards and back in as they are acknowledged.
struct Tracker {
    state: Mutex<TrackState>,
    /// Woken when the delivered position moves, so it is saved at once.
    moved: tokio::sync::Notify,
    /// `queue_highest_sent_timestamp_seconds`, set as batches are acknowledged.
    highest_sent: Gauge<f64, AtomicU64>,
}

struct Pending {
    seq: u64,
    end: Position,
    remaining: usize,
    oldest_ts: i64,
    /// Still being dealt: more samples may be added.
    open: bool,
}

struct TrackState {
    pending: VecDeque<Pending>,
    delivered: Position,
    highest_sent_ts: i64,
}

impl Tracker {
    fn new(start: Position, highest_sent: Gauge<f64, AtomicU64>) -> Tracker {
        Tracker {
            state: Mutex::new(TrackState {
                pending: VecDeque::new(),
                delivered: start,
                highest_sent_ts: i64::MIN,
            }),
            highest_sent,
            moved: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record `seq`, ending at `end`, dealt `samples` samples to the shards.
    fn read(&self, seq: u64, end: Position, samples: usize, oldest_ts: i64) {
        self.open(seq, end);
        self.add(seq, samples, oldest_ts);
        self.close(seq);
    }

    /// Record `seq`, ending at `end`, is being dealt: it is not delivered
    /// before [`Tracker::close`], whatever is done with.
    fn open(&self, seq: u64, end: Position) {
        self.lock().pending.push_back(Pending {
            seq,
            end,
            remaining: 0,
            oldest_ts: i64::MAX,
            open: true,
        });
    }

    /// `samples` more samples of the open record `seq` go to a shard (told
    /// before they go, so that they cannot be done with first).
    fn add(&self, seq: u64, samples: usize, oldest_ts: i64) {
        let mut s = self.lock();
        if let Some(p) = s.pending.back_mut().filter(|p| p.seq == seq && samples > 0) {
            p.remaining += samples;
            p.oldest_ts = p.oldest_ts.min(oldest_ts);
        }
    }

    /// Every sample of record `seq` has been dealt. A record without
    /// samples moves the delivered position quietly (saved with the next).
    fn close(&self, seq: u64) {
        let mut s = self.lock();
        let mut had_samples = false;
        if let Some(p) = s.pending.back_mut().filter(|p| p.seq == seq) {
            p.open = false;
            had_samples = p.oldest_ts != i64::MAX;
        }
        if s.advance() && had_samples {
            self.moved.notify_one();
        }
    }

    /// `samples` samples of record `seq` are done with.
    fn done(&self, seq: u64, samples: usize, sent_ts: Option<i64>) {
        let mut s = self.lock();
        let i = s.pending.partition_point(|p| p.seq < seq);
        if let Some(p) = s.pending.get_mut(i).filter(|p| p.seq == seq) {
            p.remaining = p.remaining.saturating_sub(samples);
        }
        if let Some(ts) = sent_ts.filter(|&ts| ts > s.highest_sent_ts) {
            s.highest_sent_ts = ts;
            self.highest_sent.set(ts as f64 / 1000.0);
        }
        if s.advance() {
            self.moved.notify_one();
        }
    }

    fn delivered(&self) -> Position {
        self.lock().delivered
    }

    fn highest_sent_ts(&self) -> Option<i64> {
        Some(self.lock().highest_sent_ts).filter(|&t| t != i64::MIN)
    }

    /// The timestamp of the oldest sample read and not yet done with.
    fn oldest_unsent_ts(&self) -> Option<i64> {
        self.lock()
            .pending
            .iter()
            .find(|p| p.remaining > 0)
            .map(|p| p.oldest_ts)
    }
}

impl TrackState {
    /// Moves the delivered position past the records that are done;
    /// true if it moved.
    fn advance(&mut self) -> bool {
        let before = self.delivered;
        while let Some(front) = self.pending.front() {
            if front.remaining > 0 || front.open {
                break;
            }
            self.delivered = front.end;
            self.pending.pop_front();
        }
        self.delivered != before
    }
}

/// Samples of one record for one shard.
struct Chunk {
    seq: u64,
    samples: Vec<Outgoing>,
    /// The queue has caught up with the WAL: send what is buffered now
    /// rather than after `batch_send_deadline` (a scrape's last partial
    /// batch would otherwise wait for it).
    flush: bool,
}

/// What the shards measured, for the desired-shards computation.
#[derive(Default)]
struct SendStats {
    samples_out: u64,
    busy: Duration,
    last_failure: Option<Instant>,
}

struct Shards {
    senders: Vec<mpsc::Sender<Chunk>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Everything a shard task shares with the queue.
#[derive(Clone)]
struct ShardContext {
    sender: Arc<Sender>,
    tracker: Arc<Tracker>,
    stats: Arc<Mutex<SendStats>>,
    max_samples: usize,
    deadline: Duration,
    abort: watch::Receiver<bool>,
    failed: Counter,
    redelivered: Counter,
    /// The queue's refusal log lines, shared by its shards.
    refusals: Arc<Mutex<RefusalLog>>,
}

/// At most one refusal line per this time per queue: a receiver that
/// refuses every request would otherwise fill the log.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// How many bytes of a receiver's message a log line quotes.
const MESSAGE_LOGGED: usize = 256;

/// The rate limit of a queue's refusal lines: when the last went out, and
/// what was refused since without a line.
#[derive(Debug, Default)]
struct RefusalLog {
    last: Option<Instant>,
    suppressed_requests: u64,
    suppressed_samples: u64,
}

impl RefusalLog {
    /// Whether a refused request of `samples` samples gets a line at `now`;
    /// if so, the requests and samples refused without a line since the
    /// last one (which that line reports), else it is counted for the next.
    fn admit(&mut self, now: Instant, samples: u64) -> Option<(u64, u64)> {
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
struct Refused {
    status: u16,
    message: String,
    /// One of the refused samples' series.
    example: EncodedSeries,
}

/// A series' labels as `name{label="value",...}`, for a log line.
fn series_text(series: &EncodedSeries) -> String {
    use prost::Message;
    let Ok(decoded) = super::prompb::TimeSeries::decode(series.labels()) else {
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
fn message_excerpt(message: &str) -> String {
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
    fn start(n: usize, ctx: &ShardContext) -> Shards {
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
    async fn drain(self) {
        drop(self.senders);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Sends a shard's samples in batches of up to `max_samples_per_send`, a
/// partial batch when the queue has caught up with the WAL or after
/// `batch_send_deadline`, until its channel closes.
async fn shard(mut rx: mpsc::Receiver<Chunk>, mut ctx: ShardContext) {
    let mut buffer: VecDeque<Outgoing> = VecDeque::new();
    let mut runs: VecDeque<(u64, usize)> = VecDeque::new();
    let mut encoder = snap::raw::Encoder::new();
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
            let delivery = deliver(&mut ctx, &batch, &mut encoder, &mut raw, &mut compressed).await;
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

/// What became of one batch.
#[derive(Default)]
struct Delivery {
    sent: u64,
    failed: u64,
    highest_sent_ts: Option<i64>,
    aborted: bool,
}

/// Sends `batch` (one request, or several when the receiver refuses it for
/// a conflict). Prometheus refuses a whole request when one sample is older
/// than what it holds for the series: after a restart that is a resend of
/// a sample it already stored (the checkpoint trails the acknowledgements
/// by up to a second). Such a batch is split in halves, first half first so
/// each series stays in order, down to single samples: the others arrive,
/// and a refused resent one was already delivered. Other refusals count
/// the batch as failed, as Prometheus does.
async fn deliver(
    ctx: &mut ShardContext,
    batch: &[Outgoing],
    encoder: &mut snap::raw::Encoder,
    raw: &mut Vec<u8>,
    compressed: &mut Vec<u8>,
) -> Delivery {
    let mut delivery = Delivery::default();
    let mut refused: Option<Refused> = None;
    let mut redelivered = 0;
    // Parts still to send, as (start, end): the last one goes next.
    let mut parts = vec![(0, batch.len())];
    while let Some((start, end)) = parts.pop() {
        let part = &batch[start..end];
        raw.clear();
        encode::write_request(part, raw);
        if let Err(e) = encode::compress(encoder, raw, compressed) {
            tracing::error!(error = %e, "cannot compress a remote-write batch");
            delivery.failed += part.len() as u64;
            continue;
        }
        let n = part.len() as u64;
        let outcome = ctx
            .sender
            .send(Bytes::copy_from_slice(compressed), n, &mut ctx.abort)
            .await;
        match outcome {
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
fn log_refused(ctx: &ShardContext, refused: Option<Refused>, failed: u64, redelivered: u64) {
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

/// Prometheus's shard computation: the time sending one sample takes, times
/// the samples coming in per second plus 5% of the backlog, clamped, and
/// left alone within ±30% of the current number.
fn desired_shards(
    current: usize,
    in_rate: f64,
    time_per_sample: f64,
    backlog_samples: f64,
    min: usize,
    max: usize,
) -> (f64, usize) {
    let desired = time_per_sample * (in_rate + 0.05 * backlog_samples);
    let n = if desired > current as f64 * 1.3 || desired < current as f64 * 0.7 {
        desired.ceil() as usize
    } else {
        current
    };
    (desired, n.clamp(min.max(1), max.max(min).max(1)))
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
    let (min_shards, max_shards) = (queue.min_shards.max(1), queue.max_shards.max(1));
    metrics.shards_min.set(min_shards as i64);
    metrics.shards_max.set(max_shards as i64);
    let tracker = Arc::new(Tracker::new(start, metrics.highest_sent.clone()));
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
    };
    let saver = tokio::spawn(save_checkpoints(
        wal.clone(),
        name.clone(),
        tracker.clone(),
        metrics.clone(),
        abort.clone(),
    ));
    let mut n_shards = min_shards;
    let mut shards = Shards::start(n_shards, &ctx);
    metrics.shards.set(n_shards as i64);
    metrics.shards_desired.set(n_shards as f64);
    let chunk_max = queue.capacity.max(ctx.max_samples);
    let mut reader = Reader::new(wal.clone(), start);
    let replay_end = wal.opened_at();
    let mut head = wal.subscribe();
    let mut prep = SeriesPrep::new(&spec.external_labels, &spec.writer.write_relabel);
    let mut series = SeriesTable::default();
    let mut dealt = Dealt::new(n_shards);
    let mut seq = 0u64;
    // Samples were dealt since the shards were last told to flush.
    let mut caught_up_pending = false;
    let (mut samples_in, mut last_reshard) = (0u64, Instant::now());
    let mut last_stats = (0u64, Duration::ZERO);
    'read: loop {
        if last_reshard.elapsed() >= RESHARD_EVERY {
            let elapsed = last_reshard.elapsed().as_secs_f64();
            let (out, busy, failing) = {
                let s = ctx.stats.lock().unwrap_or_else(PoisonError::into_inner);
                let failing = s
                    .last_failure
                    .is_some_and(|t| t.elapsed() < RESHARD_EVERY * 2);
                (s.samples_out, s.busy, failing)
            };
            let (d_out, d_busy) = (out - last_stats.0, busy - last_stats.1);
            last_stats = (out, busy);
            let in_rate = samples_in as f64 / elapsed;
            samples_in = 0;
            last_reshard = Instant::now();
            if d_out > 0 {
                let time_per_sample = d_busy.as_secs_f64() / d_out as f64;
                let lag_s = tracker.highest_sent_ts().map_or(0.0, |sent| {
                    (highest_wal_ts.get() * 1000.0 - sent as f64).max(0.0) / 1000.0
                });
                let (desired, n) = desired_shards(
                    n_shards,
                    in_rate,
                    time_per_sample,
                    lag_s * in_rate,
                    min_shards,
                    max_shards,
                );
                metrics.shards_desired.set(desired);
                if n != n_shards && !failing {
                    tracing::info!(remote_name = %name, from = n_shards, to = n, "resharding");
                    shards.drain().await;
                    n_shards = n;
                    shards = Shards::start(n_shards, &ctx);
                    dealt = Dealt::new(n_shards);
                    metrics.shards.set(n_shards as i64);
                }
            }
        }
        let (record, end) = match reader.read_next() {
            Next::Record(record, end) => (record, end),
            Next::NewSegment(segment) => {
                // The next segment describes again the series it uses: the
                // old segment's (a burst's included) are given back.
                series.clear();
                tracker.read(seq, Position { segment, offset: 0 }, 0, 0);
                seq += 1;
                continue;
            }
            Next::Pending => {
                if caught_up_pending {
                    caught_up_pending = false;
                    for tx in &shards.senders {
                        let flush = Chunk {
                            seq,
                            samples: Vec::new(),
                            flush: true,
                        };
                        if !hand_over(tx, flush, &mut abort).await {
                            break 'read;
                        }
                    }
                    continue;
                }
                tokio::select! {
                    _ = head.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = abort.changed() => {
                        if *abort.borrow() {
                            break 'read;
                        }
                    }
                }
                continue;
            }
            Next::End => break,
        };
        tracker.open(seq, end);
        match record {
            Record::Series(entries) => {
                for (r, text) in entries {
                    series.insert(r, prep.prepare(text));
                }
            }
            Record::Samples(_) if end <= start => {}
            Record::Samples(entries) => {
                let replayed = end <= replay_end;
                let mut dropped = 0;
                for (r, timestamp_ms, value) in entries {
                    let Some(s) = series.get(r) else {
                        dropped += 1;
                        continue;
                    };
                    let shard = (s.hash() % n_shards as u64) as usize;
                    let sample = Outgoing {
                        series: s.clone(),
                        timestamp_ms,
                        value,
                        replayed,
                    };
                    // A full chunk goes at once: what is in flight is
                    // bounded by the shards' chunks, not by the record.
                    if let Some(chunk) = dealt.push(shard, sample, chunk_max) {
                        samples_in += chunk.len() as u64;
                        caught_up_pending = true;
                        if !send_chunk(&shards, shard, seq, chunk, &tracker, &mut abort).await {
                            break 'read;
                        }
                    }
                }
                metrics.dropped.inc_by(dropped);
                for shard in 0..n_shards {
                    if let Some(chunk) = dealt.take(shard) {
                        samples_in += chunk.len() as u64;
                        caught_up_pending = true;
                        if !send_chunk(&shards, shard, seq, chunk, &tracker, &mut abort).await {
                            break 'read;
                        }
                    }
                }
            }
        }
        tracker.close(seq);
        seq += 1;
    }
    shards.drain().await;
    saver.abort();
    save(&wal, &name, &tracker, &metrics);
}

/// Samples dealt to each shard and not yet handed over, with the oldest
/// timestamp among them.
struct Dealt {
    shards: Vec<(Vec<Outgoing>, i64)>,
}

/// Samples dealt to one shard, handed over together.
struct DealtChunk {
    samples: Vec<Outgoing>,
    oldest_ts: i64,
}

impl DealtChunk {
    fn len(&self) -> usize {
        self.samples.len()
    }
}

impl Dealt {
    fn new(n_shards: usize) -> Dealt {
        Dealt {
            shards: (0..n_shards).map(|_| (Vec::new(), i64::MAX)).collect(),
        }
    }

    /// Deals `sample` to `shard`; the shard's chunk once it holds `chunk_max`.
    fn push(&mut self, shard: usize, sample: Outgoing, chunk_max: usize) -> Option<DealtChunk> {
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
    fn take(&mut self, shard: usize) -> Option<DealtChunk> {
        let (samples, oldest) = &mut self.shards[shard];
        let samples = std::mem::take(samples);
        let oldest_ts = std::mem::replace(oldest, i64::MAX);
        (!samples.is_empty()).then_some(DealtChunk { samples, oldest_ts })
    }
}

/// Hands `chunk` of record `seq` to `shard`, counted in the tracker first;
/// false when the queue must stop.
async fn send_chunk(
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
async fn hand_over(
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

/// Saves the checkpoint as soon as acknowledgements move it (at most
/// every 50 ms), and every second for the gauges, while the queue runs. A
/// checkpoint that trails what the receiver has means resending after a
/// crash, and a Prometheus receiver refuses an older resent sample.
async fn save_checkpoints(
    wal: Arc<Wal>,
    name: String,
    tracker: Arc<Tracker>,
    metrics: QueueMetrics,
    mut abort: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => save(&wal, &name, &tracker, &metrics),
            _ = tracker.moved.notified() => {
                save(&wal, &name, &tracker, &metrics);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            r = abort.changed() => {
                if r.is_err() || *abort.borrow() {
                    return;
                }
            }
        }
    }
}

fn save(wal: &Wal, name: &str, tracker: &Tracker, metrics: &QueueMetrics) {
    let delivered = tracker.delivered();
    if let Err(e) = wal.save_checkpoint(name, delivered) {
        tracing::error!(error = %e, "cannot save the remote write checkpoint");
    }
    wal.truncate();
    let age = tracker
        .oldest_unsent_ts()
        .map_or(0.0, |ts| ((clock::now_ms() - ts) as f64 / 1000.0).max(0.0));
    metrics.oldest_unsent.set(age);
}

#[cfg(test)]
mod tests {
    use super::*;

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
