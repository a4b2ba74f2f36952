//! Remote-write test tools: a receiver that decodes what relay sends (1.0,
//! and 2.0 when told to speak it, with prost types generated from the
//! spec's proto, not relay's hand-written encoder) and answers from a script (so retries, `Retry-After` and dropped 4xx can be
//! provoked on cue), and a target whose value counts its own answered
//! scrapes (so "no gaps" is a check of 1..=N, not a guess).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use relay::remote_write::prompb::{TimeSeries, WriteRequest};
use relay::remote_write::prompb_v2;

use super::{wait_for, Relay};

/// The bits of Prometheus's staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Milliseconds since the Unix epoch, the unit of remote-write timestamps.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One scripted reply of the receiver.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The error body (None: `scripted STATUS`), e.g. Prometheus's
    /// `out of order sample` for a conflict.
    pub body: Option<String>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// `status` with `body` as the error text (as a receiver says why).
    pub fn text(status: u16, body: &str) -> Answer {
        Answer {
            body: Some(body.to_owned()),
            ..Answer::status(status)
        }
    }

    /// `status` with `Retry-After: secs` (delay-seconds form).
    pub fn retry_after(status: u16, secs: u64) -> Answer {
        Answer {
            status,
            headers: vec![("Retry-After".into(), secs.to_string())],
            body: None,
        }
    }
}

/// One request as the receiver saw it, with what it answered.
#[derive(Clone, Debug)]
pub struct Request {
    /// When the whole body had been read.
    pub arrived: Instant,
    /// When the answer had been written.
    pub answered: Instant,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The compressed body's length (what `_bytes_total` counts).
    pub body_len: usize,
    /// The body as it arrived (a signature test hashes it).
    pub body: Vec<u8>,
    pub status: u16,
    /// The decoded body, or why it did not decode.
    pub write: Result<WriteRequest, String>,
    /// The body decoded as 2.0, when the request's Content-Type says it
    /// is one (None for 1.0).
    pub v2: Option<Result<prompb_v2::Request, String>>,
    /// The receiver read it as 2.0 (it speaks 2.0); a 1.x receiver reads a
    /// 2.0 body as an empty `WriteRequest`, as in `write`.
    pub read_v2: bool,
}

/// The Content-Type of a 2.0 request.
pub const V2_CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// Samples of a 2.0 request with their labels resolved from its symbols;
/// Err names a ref out of the table or an odd number of label refs.
pub fn v2_samples(request: &prompb_v2::Request) -> Result<Vec<Got>, String> {
    let symbol = |r: u32| {
        request
            .symbols
            .get(r as usize)
            .cloned()
            .ok_or_else(|| format!("ref {r} past the {} symbols", request.symbols.len()))
    };
    let mut out = Vec::new();
    for ts in &request.timeseries {
        if ts.labels_refs.len() % 2 != 0 {
            return Err(format!("odd labels_refs {:?}", ts.labels_refs));
        }
        let labels = ts
            .labels_refs
            .chunks(2)
            .map(|p| Ok((symbol(p[0])?, symbol(p[1])?)))
            .collect::<Result<Vec<_>, String>>()?;
        for s in &ts.samples {
            out.push(Got {
                labels: labels.clone(),
                ts: s.timestamp,
                value: s.value,
            });
        }
    }
    Ok(out)
}

/// A 2.0 exemplar with its labels resolved: (labels, value, timestamp).
pub type V2Exemplar = (Vec<(String, String)>, f64, i64);

/// One `TimeSeries` of a 2.0 request with every ref resolved from the
/// request's symbols.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<prompb_v2::Sample>,
    pub histograms: Vec<prompb_v2::Histogram>,
    pub exemplars: Vec<V2Exemplar>,
    /// `Metadata`: (type number, help, unit); an absent field reads as
    /// (0, "", "").
    pub metadata: (i32, String, String),
}

impl V2Series {
    /// The `__name__` label's value.
    pub fn name(&self) -> &str {
        self.label("__name__").unwrap_or("")
    }

    /// A label's value.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every series of a 2.0 request, resolved; Err names what breaks the
/// spec's symbol table: not `""` first, a duplicate, an unused symbol, a
/// ref past the table, an odd number of label refs.
pub fn v2_series(request: &prompb_v2::Request) -> Result<Vec<V2Series>, String> {
    let symbols = &request.symbols;
    if symbols.first().map(String::as_str) != Some("") {
        return Err(format!("symbols do not start with \"\": {symbols:?}"));
    }
    let unique: std::collections::BTreeSet<&String> = symbols.iter().collect();
    if unique.len() != symbols.len() {
        return Err(format!("duplicate symbols: {symbols:?}"));
    }
    let mut used = vec![false; symbols.len()];
    used[0] = true;
    let mut symbol = |r: u32| -> Result<String, String> {
        let s = symbols
            .get(r as usize)
            .cloned()
            .ok_or_else(|| format!("ref {r} past the {} symbols", symbols.len()))?;
        used[r as usize] = true;
        Ok(s)
    };
    let mut pairs = |refs: &[u32]| -> Result<Vec<(String, String)>, String> {
        if refs.len() % 2 != 0 {
            return Err(format!("odd labels_refs {refs:?}"));
        }
        refs.chunks(2)
            .map(|p| Ok((symbol(p[0])?, symbol(p[1])?)))
            .collect()
    };
    let mut out = Vec::new();
    for ts in &request.timeseries {
        let labels = pairs(&ts.labels_refs)?;
        let exemplars = ts
            .exemplars
            .iter()
            .map(|e| Ok((pairs(&e.labels_refs)?, e.value, e.timestamp)))
            .collect::<Result<Vec<_>, String>>()?;
        let m = ts.metadata.unwrap_or_default();
        let help_unit = pairs(&[m.help_ref, m.unit_ref])?;
        let (help, unit) = help_unit.into_iter().next().unwrap_or_default();
        out.push(V2Series {
            labels,
            samples: ts.samples.clone(),
            histograms: ts.histograms.clone(),
            exemplars,
            metadata: (m.r#type, help, unit),
        });
    }
    if let Some(unused) = used.iter().position(|u| !u) {
        return Err(format!(
            "symbol {unused} ({:?}) is not used",
            symbols[unused]
        ));
    }
    Ok(out)
}

impl Request {
    /// A header's value (the first one of that name, case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Every sample of the request, with its series' labels (2.0's
    /// resolved from its symbols when the receiver read it as 2.0).
    pub fn samples(&self) -> Vec<Got> {
        if let (true, Some(v2)) = (self.read_v2, &self.v2) {
            return v2
                .as_ref()
                .ok()
                .and_then(|r| v2_samples(r).ok())
                .unwrap_or_default();
        }
        let Ok(write) = &self.write else {
            return Vec::new();
        };
        write
            .timeseries
            .iter()
            .flat_map(|ts| {
                let labels: Vec<(String, String)> = ts
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect();
                ts.samples.iter().map(move |s| Got {
                    labels: labels.clone(),
                    ts: s.timestamp,
                    value: s.value,
                })
            })
            .collect()
    }
}

/// A received sample: its series' labels as sent, timestamp (ms), value.
#[derive(Clone, Debug, PartialEq)]
pub struct Got {
    pub labels: Vec<(String, String)>,
    pub ts: i64,
    pub value: f64,
}

impl Got {
    pub fn name(&self) -> &str {
        self.label("__name__").unwrap_or("")
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The labels sorted by name (the series' identity).
    pub fn series(&self) -> Vec<(String, String)> {
        let mut labels = self.labels.clone();
        labels.sort();
        labels
    }

    /// Identity of this exact sample: series, timestamp and value bits
    /// (a redelivery must be byte-identical).
    pub fn key(&self) -> (Vec<(String, String)>, i64, u64) {
        (self.series(), self.ts, self.value.to_bits())
    }

    pub fn is_stale(&self) -> bool {
        self.value.to_bits() == STALE_NAN_BITS
    }
}

/// Labels written as `[("a","1"), ...]` from `&[("a", "1")]`, sorted.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}

/// Judges a request before the script does: `Some(answer)` answers it.
type Check = Box<dyn Fn(&Request) -> Option<Answer> + Send>;

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Answer>>,
    requests: Mutex<Vec<Request>>,
    /// Reads 2.0 requests and answers them with the written headers.
    speaks_v2: AtomicBool,
    check: Mutex<Option<Check>>,
}

/// A remote-write receiver on loopback (std threads, HTTP/1.1 with
/// keep-alive as relay's client uses it). It decodes every POST (snappy
/// block format, then protobuf `WriteRequest`), records it, and answers
/// from its script, then 204 as Prometheus does.
pub struct Receiver {
    pub addr: String,
    /// The write URL to put in `remote_write[].url`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0")
    }

    /// Listens on `addr`: a test that wants the receiver "down" for a while
    /// points relay at a free port first and starts the receiver there later.
    pub fn start_on(addr: &str) -> Receiver {
        let listener = TcpListener::bind(addr).expect("bind the receiver");
        let addr = listener.local_addr().expect("addr").to_string();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                thread::spawn(move || serve(stream, &state));
            }
        });
        Receiver {
            url: format!("http://{addr}/api/v1/write"),
            addr,
            shared,
        }
    }

    /// Like `start`, over HTTPS: the server certificate `cert`/`key` (PEM
    /// files), and with `client_ca` a client certificate signed by it is
    /// required. `url` is `https://127.0.0.1:<port>/api/v1/write`.
    pub fn start_tls(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert))
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(&read(key)).expect("server key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(&read(ca)) {
                    roots.add(c.expect("CA PEM")).expect("add the CA");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(builder.with_single_cert(chain, key).expect("server cert"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let addr = listener.local_addr().expect("addr").to_string();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, config) = (state.clone(), config.clone());
                thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    serve(rustls::StreamOwned::new(conn, stream), &state);
                });
            }
        });
        Receiver {
            url: format!("https://{addr}/api/v1/write"),
            addr,
            shared,
        }
    }

    /// Reads a 2.0 request as 2.0 (decoded into `Request::v2`) and, unless
    /// scripted otherwise, answers 204 with the
    /// `X-Prometheus-Remote-Write-*-Written` headers counting what it
    /// held, as a 2.0 receiver does. Without it the receiver is a 1.x one.
    pub fn speak_v2(&self) {
        self.shared.speaks_v2.store(true, Ordering::Relaxed);
    }

    /// The answers to the next requests, in order (then 204 again).
    pub fn script(&self, answers: Vec<Answer>) {
        self.shared
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(answers);
    }

    /// Judges every request from now on with `check` (e.g. a signature
    /// verifier): its `Some(answer)` is the answer, `None` leaves the
    /// request to the script.
    pub fn check(&self, check: impl Fn(&Request) -> Option<Answer> + Send + 'static) {
        *self.shared.check.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(check));
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The requests from the `from`th on (a test that polls a long run
    /// reads each request once rather than every one at every poll).
    pub fn requests_from(&self, from: usize) -> Vec<Request> {
        let requests = self
            .shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        requests
            .get(from..)
            .map(<[Request]>::to_vec)
            .unwrap_or_default()
    }

    /// Every sample of the requests answered 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Got> {
        self.requests()
            .iter()
            .filter(|r| r.accepted())
            .flat_map(Request::samples)
            .collect()
    }

    /// Every `MetricMetadata` of the requests answered 2xx, with when its
    /// request arrived: (arrival, type, family name, help, unit).
    pub fn accepted_metadata(&self) -> Vec<(Instant, i32, String, String, String)> {
        self.requests()
            .iter()
            .filter(|r| r.accepted())
            .flat_map(|r| {
                let arrived = r.arrived;
                r.write
                    .iter()
                    .flat_map(|w| w.metadata.iter())
                    .map(move |m| {
                        (
                            arrived,
                            m.r#type,
                            m.metric_family_name.clone(),
                            m.help.clone(),
                            m.unit.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every `TimeSeries` of the requests answered 2xx (histograms and
    /// exemplars included), with its labels sorted as sent.
    pub fn accepted_series(&self) -> Vec<TimeSeries> {
        self.requests()
            .iter()
            .filter(|r| r.accepted())
            .filter_map(|r| r.write.as_ref().ok())
            .flat_map(|w| w.timeseries.iter().cloned())
            .collect()
    }

    /// Accepted samples of series named `name`, in arrival order.
    pub fn accepted_named(&self, name: &str) -> Vec<Got> {
        self.accepted()
            .into_iter()
            .filter(|g| g.name() == name)
            .collect()
    }
}

/// Serves one connection (plain TCP or TLS over it): any number of
/// requests until the peer closes.
fn serve<S: Read + Write>(stream: S, shared: &Shared) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if request_line.trim().is_empty() {
            continue;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match read_chunked(&mut reader) {
                Some(b) => b,
                None => return,
            }
        } else {
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            body
        };
        let arrived = Instant::now();
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let write = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .map_err(|e| format!("not snappy (block format): {e}"))
            .and_then(|raw| {
                WriteRequest::decode(raw.as_slice())
                    .map_err(|e| format!("not a prompb WriteRequest: {e}"))
            });
        let read_v2 = shared.speaks_v2.load(Ordering::Relaxed);
        let v2 = header("content-type")
            .is_some_and(|v| v.contains("proto=io.prometheus.write.v2.Request"))
            .then(|| {
                snap::raw::Decoder::new()
                    .decompress_vec(&body)
                    .map_err(|e| format!("not snappy (block format): {e}"))
                    .and_then(|raw| {
                        prompb_v2::Request::decode(raw.as_slice())
                            .map_err(|e| format!("not an io.prometheus.write.v2.Request: {e}"))
                    })
            });
        let mut record = Request {
            arrived,
            answered: arrived,
            method,
            path,
            headers,
            body_len: body.len(),
            body,
            status: 0,
            write,
            v2,
            read_v2,
        };
        // Take the next answer and record the request under one lock, so
        // the record's order is the order of the answers.
        let mut requests = shared.requests.lock().unwrap_or_else(|e| e.into_inner());
        let checked = shared
            .check
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|check| check(&record));
        let answer = checked.unwrap_or_else(|| {
            shared
                .script
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
                .unwrap_or_else(|| match record.v2.as_ref().filter(|_| read_v2) {
                    Some(Ok(request)) => {
                        let samples: usize =
                            request.timeseries.iter().map(|t| t.samples.len()).sum();
                        let histograms: usize =
                            request.timeseries.iter().map(|t| t.histograms.len()).sum();
                        let exemplars: usize =
                            request.timeseries.iter().map(|t| t.exemplars.len()).sum();
                        Answer {
                            status: 204,
                            headers: vec![
                                (
                                    "X-Prometheus-Remote-Write-Samples-Written".into(),
                                    samples.to_string(),
                                ),
                                (
                                    "X-Prometheus-Remote-Write-Histograms-Written".into(),
                                    histograms.to_string(),
                                ),
                                (
                                    "X-Prometheus-Remote-Write-Exemplars-Written".into(),
                                    exemplars.to_string(),
                                ),
                            ],
                            body: None,
                        }
                    }
                    Some(Err(e)) => Answer::text(400, e),
                    None => Answer::status(204),
                })
        });
        let mut head = format!("HTTP/1.1 {} Scripted\r\n", answer.status);
        for (k, v) in &answer.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let text = answer
            .body
            .clone()
            .unwrap_or_else(|| format!("scripted {}\n", answer.status));
        if answer.status == 204 {
            head.push_str("\r\n");
        } else {
            head.push_str(&format!(
                "Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            ));
        }
        let stream = reader.get_mut();
        let written = stream
            .write_all(head.as_bytes())
            .and_then(|_| stream.flush());
        record.answered = Instant::now();
        record.status = answer.status;
        requests.push(record);
        drop(requests);
        if written.is_err() || close {
            return;
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).ok()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // Trailers, then the blank line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
                    return Some(out);
                }
            }
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        out.extend_from_slice(&chunk[..size]);
    }
}

#[derive(Default)]
struct Count {
    paused: bool,
    /// (value served, wall time of the answer in ms), in order.
    answered: Vec<(u64, i64)>,
    /// Wall times (ms) of the 503s answered while paused.
    refused: Vec<i64>,
    /// More series in each answer, `count_padding{i="0"}` and on, each
    /// with the scrape's number as its value (a target of thousands).
    padding: usize,
}

/// A target whose `count_of_scrapes` is the number of scrapes it has
/// answered with 200 (1, 2, 3, ...), remembering when it answered each.
/// Paused, it answers 503 without counting: once relay's /metrics shows
/// `up 0` for it, every counted scrape has been processed (and written).
pub struct CountingTarget {
    pub addr: String,
    state: Arc<Mutex<Count>>,
}

impl CountingTarget {
    pub fn start() -> CountingTarget {
        CountingTarget::start_with_series(0)
    }

    /// Like `start`, each answer with `padding` more series whose value is
    /// the scrape's number too (`count_padding{i="0"}`, ...), so a scrape
    /// is thousands of samples and a whole one can be told from a part.
    pub fn start_with_series(padding: usize) -> CountingTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind counting target");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(Count {
            padding,
            ..Count::default()
        }));
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                thread::spawn(move || count_answer(stream, &shared));
            }
        });
        CountingTarget { addr, state }
    }

    pub fn pause(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).paused = true;
    }

    pub fn resume(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).paused = false;
    }

    /// (value, answer time in ms) of every scrape answered with 200.
    pub fn answered(&self) -> Vec<(u64, i64)> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answered
            .clone()
    }

    /// Wall times (ms) of the scrapes answered 503 while paused.
    pub fn refused(&self) -> Vec<i64> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refused
            .clone()
    }

    /// Waits until at least `n` scrapes have been answered.
    pub fn wait_answered(&self, n: usize) {
        wait_for(&format!("{n} answered scrapes"), || {
            (self.answered().len() >= n).then_some(())
        });
    }

    /// Pauses the target and waits until relay has recorded a failed scrape
    /// of it, so every answered scrape has gone through relay's pipeline.
    pub fn pause_and_settle(&self, relay: &Relay) -> Vec<(u64, i64)> {
        self.pause();
        wait_for_up(relay, &self.addr, "0");
        self.answered()
    }
}

fn count_answer(stream: TcpStream, state: &Mutex<Count>) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let (status, body) = {
        let mut count = state.lock().unwrap_or_else(|e| e.into_inner());
        if count.paused {
            count.refused.push(now_ms());
            (503, "paused\n".to_owned())
        } else {
            let n = count.answered.len() as u64 + 1;
            count.answered.push((n, now_ms()));
            let mut body = format!(
                "# HELP count_of_scrapes Scrapes this target has answered with 200.\n# TYPE count_of_scrapes gauge\ncount_of_scrapes {n}\n"
            );
            if count.padding > 0 {
                body.push_str("# TYPE count_padding gauge\n");
            }
            for i in 0..count.padding {
                body.push_str(&format!("count_padding{{i=\"{i}\"}} {n}\n"));
            }
            (200, body)
        }
    };
    let mut stream = stream;
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// Waits until relay's /metrics has `up{instance="<instance>",...} <value>`.
pub fn wait_for_up(relay: &Relay, instance: &str, value: &str) {
    let fragment = format!("instance=\"{instance}\"");
    wait_for(
        &format!("up{{{fragment}}} {value} on relay's /metrics"),
        || {
            relay
                .metrics()
                .lines()
                .any(|l| {
                    l.starts_with("up{")
                        && l.contains(&fragment)
                        && l.split_whitespace().nth(1) == Some(value)
                })
                .then_some(())
        },
    );
}

/// The value of the first line of `name` in an exposition whose labels
/// contain every fragment (e.g. `remote_name="rw"`).
pub fn metric_value(text: &str, name: &str, fragments: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
                && fragments.iter().all(|f| l.contains(f))
        })
        .and_then(|l| {
            let rest = if l.as_bytes().get(name.len()) == Some(&b'{') {
                l.rsplit_once('}')?.1
            } else {
                &l[name.len()..]
            };
            rest.split_whitespace().next()?.parse().ok()
        })
}

/// Asserts "no gaps": each value 1..=N the counting target answered is in
/// `got` (timestamp ms, value) — at least once, always with the same
/// timestamp — stamped within 1 s before the target answered it (the
/// scrape's start), no other value, and timestamps increasing with the
/// value. Staleness markers in `got` are ignored.
pub fn assert_no_gaps(answered: &[(u64, i64)], got: &[(i64, f64)], what: &str) {
    assert!(
        !answered.is_empty(),
        "{what}: the target answered no scrape"
    );
    for (i, (n, _)) in answered.iter().enumerate() {
        assert_eq!(*n, i as u64 + 1, "{what}: the target's own count");
    }
    let mut by_value: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for &(ts, value) in got {
        if value.to_bits() == STALE_NAN_BITS {
            continue;
        }
        assert!(
            value.fract() == 0.0 && value >= 1.0,
            "{what}: count_of_scrapes {value} at {ts} was never served"
        );
        let stamps = by_value.entry(value as u64).or_default();
        if !stamps.contains(&ts) {
            stamps.push(ts);
        }
    }
    let served: Vec<u64> = answered.iter().map(|(n, _)| *n).collect();
    let missing: Vec<u64> = served
        .iter()
        .copied()
        .filter(|n| !by_value.contains_key(n))
        .collect();
    let extra: Vec<u64> = by_value
        .keys()
        .copied()
        .filter(|n| !served.contains(n))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} of {} served values missing: {missing:?}; never served but received: {extra:?}",
        missing.len(),
        served.len()
    );
    let mut previous = i64::MIN;
    for &(n, at) in answered {
        let stamps = &by_value[&n];
        assert_eq!(
            stamps.len(),
            1,
            "{what}: value {n} arrived with several timestamps {stamps:?}"
        );
        let ts = stamps[0];
        assert!(
            at - 1000 <= ts && ts <= at + 1,
            "{what}: value {n} stamped {ts}, but the target answered it at {at}"
        );
        assert!(
            ts > previous,
            "{what}: value {n} at {ts} is not after the previous value's {previous}"
        );
        previous = ts;
    }
}
