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
//! `proto=io.prometheus.write.v2.Request`) is answered with
//! `X-Prometheus-Remote-Write-*-Written` counts (without them relay falls
//! back to 1.0), taken before answering by a walk over its wire bytes that
//! only counts the series' samples, histograms and exemplars: decoding it
//! into the prost types first (every symbol a `String`, every label two)
//! made each 2.0 acknowledgement wait for the sink, which the 1.0 one does
//! not (at 100k series, scrape-to-acked p50 ~100 ms against ~17 ms). It is
//! then decoded on the counting thread with the project's prost types of the
//! 2.0 proto, its labels resolved from its symbols, and counted as a 1.0
//! request would be. `bytes` counts the compressed bodies of both, for the
//! benchmark's bytes on the wire.
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

/// The samples, histograms and exemplars of a 2.0 request (protobuf, not
/// compressed), counted by walking its wire bytes without decoding them:
/// what the `Written` headers say. None if the bytes are not protobuf.
fn written_v2(raw: &[u8]) -> Option<[u64; 3]> {
    let mut counts = [0u64; 3];
    // Request.timeseries is field 5; TimeSeries.samples, histograms and
    // exemplars are fields 2, 3 and 4, each one message per entry.
    each_field(raw, |field, payload| {
        if field == 5 {
            each_field(payload?, |field, _| {
                if let Some(n) = (field as usize)
                    .checked_sub(2)
                    .and_then(|i| counts.get_mut(i))
                {
                    *n += 1;
                }
                Some(())
            })?;
        }
        Some(())
    })?;
    Some(counts)
}

/// Calls `f` with each field's number and, for a length-delimited one, its
/// payload; None if the bytes are not protobuf (or `f` said None).
fn each_field<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(u64, Option<&'a [u8]>) -> Option<()>,
) -> Option<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        let key = relay::varint::get(bytes, &mut pos)?;
        let payload = match key & 7 {
            0 => {
                relay::varint::get(bytes, &mut pos)?;
                None
            }
            1 | 5 => {
                pos = pos.checked_add(if key & 7 == 1 { 8 } else { 4 })?;
                None
            }
            2 => {
                let len = usize::try_from(relay::varint::get(bytes, &mut pos)?).ok()?;
                let start = pos;
                pos = pos.checked_add(len)?;
                Some(bytes.get(start..pos)?)
            }
            _ => return None,
        };
        if pos > bytes.len() {
            return None;
        }
        f(key >> 3, payload)?;
    }
    Some(())
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

/// A request body acknowledged at `ms`, waiting to be decoded and counted.
struct Received {
    body: Bytes,
    ms: i64,
    v2: bool,
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
                // A body that does not decompress or walk gets no headers
                // (and is counted as rejected).
                let written = if v2 {
                    snap::raw::Decoder::new()
                        .decompress_vec(&body)
                        .ok()
                        .and_then(|raw| written_v2(&raw))
                } else {
                    None
                };
                self.received.fetch_add(1, Ordering::SeqCst);
                let received = Received { body, ms, v2 };
                let sent = self
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .send(received);
                if sent.is_err() {
                    return response(StatusCode::INTERNAL_SERVER_ERROR, "counter gone\n");
                }
                let mut answer = response(StatusCode::NO_CONTENT, Bytes::new());
                if let Some([samples, histograms, exemplars]) = written {
                    let headers = answer.headers_mut();
                    headers.insert("X-Prometheus-Remote-Write-Samples-Written", samples.into());
                    headers.insert(
                        "X-Prometheus-Remote-Write-Histograms-Written",
                        histograms.into(),
                    );
                    headers.insert(
                        "X-Prometheus-Remote-Write-Exemplars-Written",
                        exemplars.into(),
                    );
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
        for Received { body, ms, v2 } in queue {
            let decoded = if v2 { decode_v2(&body) } else { decode(&body) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_counts_what_prost_decodes() {
        let sample = |v: f64| prompb_v2::Sample {
            value: v,
            timestamp: 7,
            start_timestamp: 0,
        };
        let request = prompb_v2::Request {
            symbols: vec!["".into(), "__name__".into(), "m".into()],
            timeseries: vec![
                prompb_v2::TimeSeries {
                    labels_refs: vec![1, 2],
                    samples: vec![sample(1.0), sample(2.0)],
                    metadata: Some(prompb_v2::Metadata {
                        r#type: 1,
                        help_ref: 2,
                        unit_ref: 0,
                    }),
                    ..Default::default()
                },
                prompb_v2::TimeSeries {
                    labels_refs: vec![1, 2],
                    histograms: vec![prompb_v2::Histogram::default()],
                    exemplars: vec![prompb_v2::Exemplar::default(); 3],
                    ..Default::default()
                },
                prompb_v2::TimeSeries {
                    labels_refs: vec![1, 2],
                    samples: vec![sample(0.0)],
                    ..Default::default()
                },
            ],
        };
        let raw = request.encode_to_vec();
        assert_eq!(written_v2(&raw), Some([3, 1, 3]));
        assert_eq!(written_v2(&[]), Some([0, 0, 0]));
        // A length past the end, and a wire type protobuf does not have.
        assert_eq!(written_v2(&raw[..raw.len() - 1]), None);
        assert_eq!(written_v2(&[0x2f]), None);
        // Counted as prost would have: the same request through the
        // counting thread's decode.
        let body = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .expect("compresses");
        let decoded = decode_v2(&body).expect("decodes");
        let samples: usize = decoded.timeseries.iter().map(|t| t.samples.len()).sum();
        assert_eq!(samples, 3);
    }
}
