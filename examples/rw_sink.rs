//! A remote-write receiver that acknowledges and counts, for `benches/e2e.py`.
//!
//! `cargo run --release --example rw_sink -- --port 0` prints
//! `listening on 127.0.0.1:PORT`, answers 204 to every `POST /api/v1/write`
//! as soon as its body is read, decodes it (snappy block format, then the
//! project's own prost `WriteRequest`) and counts it on a second thread, and
//! serves its counts as JSON on `GET /stats` (once everything received is
//! counted); `POST /reset` forgets everything, so one sink serves peer after
//! peer. Acknowledging before decoding keeps the sink's own work out of the
//! delays it measures: what is timed is the shipper. A body that does not
//! decode is counted as rejected, and the benchmark reports it.
//!
//! A remote-write 2.0 request (its Content-Type says
//! `proto=io.prometheus.write.v2.Request`) is decoded before it is answered,
//! with the project's prost types of the 2.0 proto, because a 2.0 receiver
//! answers with `X-Prometheus-Remote-Write-*-Written` counts (without them
//! relay falls back to 1.0); its labels are then resolved from its symbols
//! and it is counted as a 1.0 request would be. `bytes` counts the
//! compressed bodies of both, for the benchmark's bytes on the wire.
//!
//! The counts are what the benchmark needs to judge a shipper, not only time
//! it: samples are grouped by their timestamp (one per scrape), and within a
//! group by series, so a lost sample shows as a scrape with fewer distinct
//! series than the app exposes, and an at-least-once redelivery shows as
//! samples beyond the distinct ones instead of hiding in a total; staleness
//! markers are counted apart (a series that went away is not a sample
//! scraped). Each group also keeps a histogram of when its samples were
//! acknowledged relative to their timestamp (the scrape's start), and the
//! shipper's own `scrape_duration_seconds` for that scrape, so the benchmark
//! can tell the delay from the scrape's end to the acknowledgement. The sink
//! reports its own CPU time (both threads), so the benchmark can tell its
//! cost apart from the shipper's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prost::Message;
use relay::remote_write::prompb::{Label, Sample, TimeSeries, WriteRequest};
use relay::remote_write::prompb_v2;
use tokio::net::TcpListener;

/// The bit pattern Prometheus writes as a staleness marker (`value.StaleNaN`).
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The samples that carry one timestamp: in practice, one scrape of a target.
#[derive(Default)]
struct Group {
    samples: u64,
    stale: u64,
    /// Hashes of the series seen with this timestamp, staleness markers
    /// left out (64 bits: a collision among a few million series is about a
    /// one-in-a-million event).
    series: hashbrown::HashSet<u64>,
    /// The value of the shipper's `scrape_duration_seconds` sample with this
    /// timestamp: when the scrape ended, as the shipper sees it.
    scrape_duration: Option<f64>,
    /// Acknowledgement time minus the timestamp, in ms → samples.
    latency_ms: BTreeMap<i64, u64>,
}

#[derive(Default)]
struct Stats {
    requests: u64,
    bytes: u64,
    samples: u64,
    stale: u64,
    /// Requests answered 400 because their body did not decode.
    rejected: u64,
    /// Samples, not seen before, older than the last one of their series: a
    /// sender must keep each series in timestamp order (Prometheus answers
    /// 400). A redelivered sample is a duplicate, not out of order.
    out_of_order: u64,
    last_timestamp: hashbrown::HashMap<u64, i64>,
    groups: BTreeMap<i64, Group>,
}

impl Stats {
    /// Counts one decoded request, acknowledged at `now_ms`.
    fn record(
        &mut self,
        request: &WriteRequest,
        bytes: usize,
        now_ms: i64,
        hasher: &impl BuildHasher,
    ) {
        self.requests += 1;
        self.bytes += bytes as u64;
        for series in &request.timeseries {
            let id = hasher.hash_one(&series.labels);
            let is_duration = series
                .labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == "scrape_duration_seconds");
            for sample in &series.samples {
                let stale = sample.value.to_bits() == STALE_NAN;
                let group = self.groups.entry(sample.timestamp).or_default();
                group.samples += 1;
                group.stale += u64::from(stale);
                if is_duration && !stale {
                    group.scrape_duration = Some(sample.value);
                }
                let new = if stale {
                    !group.series.contains(&id)
                } else {
                    group.series.insert(id)
                };
                *group
                    .latency_ms
                    .entry(now_ms - sample.timestamp)
                    .or_default() += 1;
                self.samples += 1;
                self.stale += u64::from(stale);
                let last = self.last_timestamp.entry(id).or_insert(i64::MIN);
                if sample.timestamp < *last {
                    self.out_of_order += u64::from(new);
                } else {
                    *last = sample.timestamp;
                }
            }
        }
    }

    fn to_json(&self) -> String {
        let distinct: usize = self.groups.values().map(|g| g.series.len()).sum();
        let mut out = format!(
            "{{\"requests\":{},\"bytes\":{},\"samples\":{},\"distinct\":{},\"stale\":{},\
             \"rejected\":{},\"out_of_order\":{},\"series\":{},\"cpu_seconds\":{:.6},\"timestamps\":[",
            self.requests,
            self.bytes,
            self.samples,
            distinct,
            self.stale,
            self.rejected,
            self.out_of_order,
            self.last_timestamp.len(),
            own_cpu_seconds(),
        );
        for (i, (ts, g)) in self.groups.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                out,
                "{sep}{{\"ts\":{ts},\"samples\":{},\"distinct\":{},\"stale\":{},\"duration_s\":{},\"latency_ms\":[",
                g.samples,
                g.series.len(),
                g.stale,
                g.scrape_duration
                    .filter(|d| d.is_finite())
                    .map_or("null".to_owned(), |d| d.to_string()),
            );
            for (j, (ms, n)) in g.latency_ms.iter().enumerate() {
                let sep = if j == 0 { "" } else { "," };
                let _ = write!(out, "{sep}[{ms},{n}]");
            }
            out.push_str("]}");
        }
        out.push_str("]}\n");
        out
    }
}

/// CPU time of this whole process (all threads) in seconds, from the
/// scheduler's nanosecond counters rather than clock ticks: a small run may
/// cost the sink only a few ticks.
fn own_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// Snappy block format, then protobuf, as remote write 1.0 specifies.
fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// A 2.0 request as the 1.0 request with the same samples (labels
/// resolved from its symbols); Err for a ref past the symbols.
fn from_v2(request: &prompb_v2::Request) -> Result<WriteRequest, String> {
    let symbol = |r: u32| {
        request
            .symbols
            .get(r as usize)
            .cloned()
            .ok_or_else(|| format!("ref {r} past the symbols"))
    };
    let mut timeseries = Vec::with_capacity(request.timeseries.len());
    for ts in &request.timeseries {
        let labels = ts
            .labels_refs
            .chunks(2)
            .map(|p| {
                Ok(Label {
                    name: symbol(p[0])?,
                    value: symbol(*p.get(1).ok_or("odd labels_refs")?)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let samples = ts
            .samples
            .iter()
            .map(|s| Sample {
                value: s.value,
                timestamp: s.timestamp,
            })
            .collect();
        timeseries.push(TimeSeries {
            labels,
            samples,
            ..Default::default()
        });
    }
    Ok(WriteRequest {
        timeseries,
        ..Default::default()
    })
}

/// A 2.0 body decoded (snappy, then the 2.0 protobuf).
fn decode_v2(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    let request =
        prompb_v2::Request::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))?;
    from_v2(&request)
}

/// A request body acknowledged at `ms`, waiting to be counted (a 2.0 one
/// already decoded, as it was to be answered).
struct Received {
    body: Bytes,
    ms: i64,
    decoded: Option<Result<WriteRequest, String>>,
}

struct Sink {
    stats: Mutex<Stats>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Bodies acknowledged, and bodies counted: `/stats` waits until equal.
    received: AtomicU64,
    counted: AtomicU64,
    queue: Mutex<mpsc::Sender<Received>>,
}

impl Sink {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match (req.method(), req.uri().path()) {
            (&Method::POST, "/api/v1/write") => {
                let v2 = req
                    .headers()
                    .get(hyper::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("proto=io.prometheus.write.v2.Request"));
                let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                    return response(StatusCode::BAD_REQUEST, "body not read\n");
                };
                let ms = now_ms();
                let decoded = v2.then(|| decode_v2(&body));
                let written = match &decoded {
                    Some(Ok(r)) => {
                        Some(r.timeseries.iter().map(|t| t.samples.len()).sum::<usize>())
                    }
                    _ => None,
                };
                self.received.fetch_add(1, Ordering::SeqCst);
                let received = Received { body, ms, decoded };
                let sent = self
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .send(received);
                if sent.is_err() {
                    return response(StatusCode::INTERNAL_SERVER_ERROR, "counter gone\n");
                }
                let mut answer = response(StatusCode::NO_CONTENT, Bytes::new());
                if let Some(samples) = written {
                    let headers = answer.headers_mut();
                    headers.insert("X-Prometheus-Remote-Write-Samples-Written", samples.into());
                    headers.insert("X-Prometheus-Remote-Write-Histograms-Written", 0.into());
                    headers.insert("X-Prometheus-Remote-Write-Exemplars-Written", 0.into());
                }
                answer
            }
            (&Method::GET, "/stats") => {
                self.drained().await;
                let json = self
                    .stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .to_json();
                response(StatusCode::OK, json)
            }
            (&Method::POST, "/reset") => {
                self.drained().await;
                *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Stats::default();
                response(StatusCode::NO_CONTENT, Bytes::new())
            }
            _ => response(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Waits until every body acknowledged so far has been counted.
    async fn drained(&self) {
        while self.counted.load(Ordering::SeqCst) < self.received.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The counting thread: decodes and records each body in turn.
    fn count(&self, queue: mpsc::Receiver<Received>) {
        for Received { body, ms, decoded } in queue {
            let decoded = decoded.unwrap_or_else(|| decode(&body));
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            match decoded {
                Ok(request) => stats.record(&request, body.len(), ms, &self.hasher),
                Err(_) => stats.rejected += 1,
            }
            drop(stats);
            self.counted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn port_from_args() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut port = 0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value
                    .parse()
                    .map_err(|_| format!("--port: not a port: {value}"))?;
            }
            _ => return Err(format!("unknown argument {arg}; usage: rw_sink [--port N]")),
        }
    }
    Ok(port)
}

/// Two threads: one answers HTTP, one decodes and counts; the sink should
/// cost the machine as little as possible next to the shipper measured.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = port_from_args()?;
    let (tx, rx) = mpsc::channel();
    let sink = Arc::new(Sink {
        stats: Mutex::default(),
        hasher: hashbrown::DefaultHashBuilder::default(),
        received: AtomicU64::new(0),
        counted: AtomicU64::new(0),
        queue: Mutex::new(tx),
    });
    let counter = sink.clone();
    std::thread::spawn(move || counter.count(rx));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(port, sink))?;
    Ok(())
}

async fn serve(port: u16, sink: Arc<Sink>) -> std::io::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let sink = sink.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let sink = sink.clone();
                async move { Ok::<_, Infallible>(sink.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
