//! The HTTP server Prometheus scrapes: `/metrics` from the latest snapshot
//! (text 0.0.4, or OpenMetrics when asked; gzip when accepted, compressed
//! once per snapshot), `/-/healthy` while running, and `/-/ready` once
//! serving with its config loaded, whatever the targets do (as Prometheus;
//! whether a target was ever scraped is in relay's own metrics and log).
//! With `--web.config.file`, over TLS and behind basic
//! auth (the probes' paths excepted), as `crate::web` says.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE,
    RETRY_AFTER, VARY, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::NameEscaping;
use crate::exposition::Format;
use crate::readiness::Readiness;
use crate::scrape::demand::Demand;
use crate::snapshot::{Asked, Latest};
use crate::status::Status;
use crate::web::conns::{out_of_descriptors, AcceptBackoff, Registry, WriteDeadline};
use crate::web::Web;
use crate::web::{api, page};

pub use crate::web::conns::Limits;

/// The Content-Type of an answer, as client_golang's expfmt writes it:
/// the escaping used is named, and text with quoted UTF-8 names is 1.0.0.
fn content_type(format: Format, escaping: NameEscaping) -> String {
    let base = match (format, escaping) {
        (Format::Protobuf, _) => {
            return format!(
                "{PROTOBUF_MEDIA}; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping={}",
                escaping.name()
            )
        }
        (Format::OpenMetrics, _) => "application/openmetrics-text; version=1.0.0",
        (_, NameEscaping::AllowUtf8) => "text/plain; version=1.0.0",
        _ => "text/plain; version=0.0.4",
    };
    format!("{base}; charset=utf-8; escaping={}", escaping.name())
}

/// A reload asked for over HTTP, and where its outcome goes.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the server reads, all owned by `run`: the snapshot, the scheduler
/// that has targets scraped for a GET, and readiness.
#[derive(Clone)]
pub struct Sources {
    /// What the status page and JSON APIs show.
    pub status: Arc<Status>,
    pub latest: Arc<Latest>,
    pub demand: Arc<Demand>,
    pub readiness: Arc<Readiness>,
}

/// How the listen port is served: its limits, and whether `POST
/// /-/reload` is on (`--web.enable-lifecycle`, off by default as in
/// Prometheus: the port is reachable by the whole cluster, and SIGHUP and
/// the file watch reload without it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub limits: Limits,
    pub lifecycle: bool,
}

/// Serves `sources` on `listener` until `shutdown` turns true; `POST
/// /-/reload` goes to `reload` (None: nothing to reload from, as in `relay
/// demo`). `web` says whether to speak TLS and whom to let in.
pub async fn serve(
    listener: TcpListener,
    sources: Sources,
    mut shutdown: watch::Receiver<bool>,
    reload: Option<mpsc::Sender<ReloadRequest>>,
    web: Arc<Web>,
    options: Options,
) {
    let registry = Arc::new(Registry::default());
    let mut backoff = AcceptBackoff::default();
    let reloads = Arc::new(ReloadGate::new(options.lifecycle, reload));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff.succeeded();
                    stream
                }
                Err(e) => {
                    // Out of descriptors: closing an idle connection frees
                    // one; the pause keeps the loop from spinning either way.
                    if out_of_descriptors(&e) {
                        registry.shed();
                    }
                    let pause = backoff.failed(&e, registry.len());
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(slot) = registry.admit(options.limits.max_connections) else {
            // Every connection is inside a request: this one is closed
            // unanswered, as a full backlog would refuse it.
            tracing::debug!(
                max_connections = options.limits.max_connections,
                "connection refused: every connection is busy"
            );
            drop(stream);
            continue;
        };
        let slot = Arc::new(slot);
        let sources = sources.clone();
        let reloads = reloads.clone();
        let conn_shutdown = shutdown.clone();
        let web = web.clone();
        let limits = options.limits;
        tokio::spawn(async move {
            let tls = web.tls_config();
            let in_request = slot.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sources = sources.clone();
                let reloads = reloads.clone();
                let web = web.clone();
                let busy = in_request.busy();
                async move {
                    let verdict = web
                        .check(req.uri().path(), req.headers().get(AUTHORIZATION))
                        .await;
                    let mut response = if !verdict.allowed {
                        unauthorized()
                    } else if req.uri().path() == "/-/reload" {
                        reloads.respond(&req).await
                    } else {
                        respond(&sources, &req).await
                    };
                    response.headers_mut().extend(verdict.headers);
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            });
            let evicted = slot.evicted();
            let deadline = |s| TokioIo::new(WriteDeadline::new(s, limits.write_timeout));
            match tls {
                None => {
                    serve_connection(deadline(stream), service, conn_shutdown, limits, evicted)
                        .await
                }
                Some(config) => {
                    // The handshake has its own deadline; an eviction ends it too.
                    let accepted = tokio::select! {
                        s = accept_tls(stream, config) => s,
                        _ = slot.evicted() => None,
                    };
                    if let Some(stream) = accepted {
                        let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
                        serve_connection(io, service, conn_shutdown, limits, evicted).await
                    }
                }
            }
        });
    }
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS handshake; a client speaking plain HTTP gets Go's 400 answer
/// (so `curl http://` says what is wrong) and a failed handshake a debug
/// line (port scanners and probes with the wrong scheme are not errors).
async fn accept_tls(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) {
        return None;
    }
    // A TLS connection starts with a handshake record (content type 22).
    if first[0] != 22 {
        let mut stream = stream;
        let _ = stream
            .write_all(
                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
            )
            .await;
        let _ = stream.shutdown().await;
        return None;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// Serves HTTP/1.1 on one connection until it ends, relay stops, or the
/// registry closes it to make room. A request head must arrive within the
/// read timeout of the connection starting to wait for one (hyper's header
/// timer, which also runs while a keep-alive connection is idle).
async fn serve_connection<I, S>(
    io: I,
    service: S,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
    evicted: impl std::future::Future<Output = ()>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>> + Send,
    S::Future: Send,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            // Finish the request in flight, within the write deadline.
            let _ = tokio::time::timeout(limits.write_timeout, conn).await;
        }
        _ = evicted => tracing::debug!("connection closed to make room for a new one"),
    }
}

/// 401 with a Basic challenge, as exporter-toolkit answers.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = plain(StatusCode::UNAUTHORIZED, "Unauthorized\n".into());
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    response
}

/// The least time between two reloads over HTTP: one connection ran
/// 37,785 reloads in 10 s before this (a ConfigMap update needs one).
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// `POST /-/reload`, when `--web.enable-lifecycle` turned it on.
struct ReloadGate {
    lifecycle: bool,
    reload: Option<mpsc::Sender<ReloadRequest>>,
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl ReloadGate {
    fn new(lifecycle: bool, reload: Option<mpsc::Sender<ReloadRequest>>) -> Self {
        ReloadGate {
            lifecycle,
            reload,
            last: std::sync::Mutex::new(None),
        }
    }

    /// POST (or PUT, as Prometheus takes both): 403 without the flag, as
    /// Prometheus answers; 429 within a second of the last; 200 once the
    /// new config runs; 500 when it was refused. The reason of a refusal
    /// goes to relay's log, not to the caller: a config error can quote a
    /// value of the file, and the caller need not be its reader.
    async fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::POST && req.method() != Method::PUT {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST /-/reload to reload the config\n".into(),
            );
        }
        if !self.lifecycle {
            return plain(
                StatusCode::FORBIDDEN,
                "Lifecycle API is not enabled (relay run --web.enable-lifecycle).\n".into(),
            );
        }
        let Some(reload) = &self.reload else {
            return plain(
                StatusCode::NOT_FOUND,
                "this relay has no config file to reload\n".into(),
            );
        };
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            if last.is_some_and(|at| now.duration_since(at) < RELOAD_EVERY) {
                let mut response = plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    "a reload ran less than a second ago\n".into(),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
            *last = Some(now);
        }
        let (reply, outcome) = oneshot::channel();
        if reload.send(reply).await.is_err() {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "relay is stopping\n".into(),
            );
        }
        match outcome.await {
            Ok(Ok(())) => plain(StatusCode::OK, "config reloaded\n".into()),
            Ok(Err(_)) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to reload config; relay's log says why, and the running config stays\n"
                    .into(),
            ),
            Err(_) => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "relay is stopping\n".into(),
            ),
        }
    }
}

async fn respond(sources: &Sources, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => metrics(sources, req).await,
        OWN_METRICS_PATH => match sources.latest.own_snapshot() {
            Some(snapshot) => {
                let asked = negotiated(req);
                exposition(snapshot.answer(asked), asked, req)
            }
            None => plain(
                StatusCode::NOT_FOUND,
                "relay's own metrics are served here only with relay.self_metrics: separate\n"
                    .into(),
            ),
        },
        "/-/healthy" => plain(StatusCode::OK, "relay is Healthy.\n".into()),
        // As Prometheus: ready once serving with the config loaded, never
        // gated on the targets (a native sidecar's readiness is the Pod's);
        // 503 with `X-Prometheus-Stopping: true` once shutting down.
        "/-/ready" if sources.readiness.is_stopping() => {
            let mut response = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "relay is stopping.\n".into(),
            );
            response
                .headers_mut()
                .insert("X-Prometheus-Stopping", HeaderValue::from_static("true"));
            response
        }
        "/-/ready" => plain(StatusCode::OK, "relay is Ready.\n".into()),
        "/" => {
            let html = page::render(&sources.status).await;
            let mut response = body_of(req, StatusCode::OK, "text/html; charset=utf-8", html);
            // Defense in depth behind the escaping: the page loads nothing
            // and runs no script, so the browser is told to allow neither.
            response.headers_mut().insert(
                "Content-Security-Policy",
                HeaderValue::from_static(page::CONTENT_SECURITY_POLICY),
            );
            response
        }
        "/api/v1/targets" => json(req, api::targets(&sources.status, req.uri().query())),
        "/api/v1/status/config" => json(req, api::config(&sources.status)),
        "/api/v1/status/buildinfo" => json(req, api::buildinfo()),
        "/api/v1/status/tsdb" => json(req, api::tsdb(&sources.status, req.uri().query()).await),
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: relay serves / (status), /metrics, /relay/metrics, /api/v1/targets, /api/v1/status/{config,buildinfo,tsdb}, /-/healthy, /-/ready and /-/reload\n".into(),
        ),
    }
}

/// Where relay's own metrics are served with `relay.self_metrics:
/// separate`: under relay's name, so a scrape config that wants them says
/// so (`metrics_path: /relay/metrics`), and `/metrics` stays the app's.
pub const OWN_METRICS_PATH: &str = "/relay/metrics";

/// The name escaping a scraper asked for with the format it gets: the
/// `escaping=` of the first Accept entry of that format; without one,
/// underscores, as the exposition spec and client_golang say (so a
/// Prometheus 2.x scraper stores valid names).
pub fn escaping_asked(accept: &str, format: Format) -> NameEscaping {
    let media = match format {
        Format::OpenMetrics => "application/openmetrics-text",
        Format::Protobuf => PROTOBUF_MEDIA,
        Format::Text => "text/plain",
    };
    accept
        .split(',')
        .find(|entry| {
            let kind = entry.split(';').next().unwrap_or("").trim();
            kind.eq_ignore_ascii_case(media)
        })
        .and_then(|entry| {
            entry.split(';').skip(1).find_map(|param| {
                let (key, value) = param.split_once('=')?;
                (key.trim() == "escaping").then(|| NameEscaping::from_name(value.trim()))?
            })
        })
        .unwrap_or(NameEscaping::Underscores)
}

/// The media type of delimited protobuf `MetricFamily` messages.
const PROTOBUF_MEDIA: &str = "application/vnd.google.protobuf";

/// Whether the Accept entry with the highest weight (`q=`, 1 without; the
/// first of equals) is delimited protobuf `MetricFamily` messages, as a
/// Prometheus with native histograms asks first.
fn prefers_protobuf(accept: &str) -> bool {
    let mut best: Option<(f64, bool)> = None;
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0;
        let (mut proto, mut delimited) = (false, false);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "q" => q = value.parse().unwrap_or(0.0),
                "proto" => proto = value == "io.prometheus.client.MetricFamily",
                "encoding" => delimited = value == "delimited",
                _ => {}
            }
        }
        let is_protobuf = media == PROTOBUF_MEDIA && proto && delimited;
        let known = is_protobuf
            || matches!(
                media.as_str(),
                "text/plain" | "application/openmetrics-text" | "*/*" | "text/*"
            );
        if known && q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, is_protobuf));
        }
    }
    best.is_some_and(|(_, protobuf)| protobuf)
}

/// The format, name escaping and encoding a GET asks for.
fn negotiated(req: &Request<Incoming>) -> (Format, NameEscaping, bool) {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
    };
    let format = if prefers_protobuf(header(ACCEPT)) {
        Format::Protobuf
    } else if header(ACCEPT).contains("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let escaping = escaping_asked(header(ACCEPT), format);
    (format, escaping, accepts_gzip(header(ACCEPT_ENCODING)))
}

async fn metrics(sources: &Sources, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let wait = fresh_wait(
        req.headers()
            .get("X-Prometheus-Scrape-Timeout-Seconds")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    sources.demand.before_get(wait).await;
    let asked = negotiated(req);
    exposition(sources.latest.answer(asked).await, asked, req)
}

/// `body`, answered to what `req` asked.
fn exposition(body: Bytes, asked: Asked, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (format, escaping, gzip) = asked;
    let mut response = Response::new(Full::new(if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        body
    }));
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type(format, escaping)) {
        headers.insert(CONTENT_TYPE, v);
    }
    headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// How long a GET waits for the targets' fresh results (every GET without
/// remote write, the first after an idle time with it): the scraper's
/// timeout less a tenth (for merging and sending), else 9 s (what
/// Prometheus' default 10 s timeout gives).
fn fresh_wait(timeout_header: &str) -> Duration {
    let timeout = timeout_header
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t > 0.0)
        .map_or(Duration::from_secs(10), |t| {
            Duration::from_secs_f64(t.min(3600.0))
        });
    timeout.mul_f64(0.9)
}

/// Whether `Accept-Encoding` takes gzip: listed (or `*`) with a q-value
/// above 0 (`gzip;q=0` refuses it, RFC 9110).
fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut star = false;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .filter_map(|q| q.trim().parse::<f64>().ok())
            .next()
            .unwrap_or(1.0);
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = q > 0.0,
            _ => {}
        }
    }
    star
}

/// An API answer as JSON (no body for HEAD).
fn json(req: &Request<Incoming>, answer: api::Answer) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    body_of(req, status, "application/json", answer.body)
}

/// `body` with its type; for HEAD the headers alone.
fn body_of(
    req: &Request<Incoming>,
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {

    /// Prometheus 3 asks with `escaping=allow-utf-8` (its acceptHeader),
    /// Prometheus 2.42 with no parameter: underscores then.
    #[test]
    fn protobuf_is_served_when_preferred() {
        let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        // Prometheus 2.42 with native histograms, and Prometheus 3's
        // protobuf-first order.
        for accept in [
            format!("{proto};q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            format!("{proto};q=0.5,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.4,*/*;q=0.1"),
        ] {
            assert!(super::prefers_protobuf(&accept), "{accept}");
        }
        for accept in [
            format!("application/openmetrics-text;version=1.0.0,{proto};q=0.9"),
            "application/vnd.google.protobuf;q=0.9,text/plain;q=0.5".to_owned(),
            "text/plain".to_owned(),
            String::new(),
        ] {
            assert!(!super::prefers_protobuf(&accept), "{accept}");
        }
        assert_eq!(
            super::escaping_asked(&format!("{proto};q=0.8,*/*;q=0.1"), Format::Protobuf),
            NameEscaping::Underscores
        );
        assert_eq!(
            super::content_type(Format::Protobuf, NameEscaping::Underscores),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
        );
    }

    #[test]
    fn escaping_comes_from_the_accept_entry_of_the_format() {
        use crate::config::{NameEscaping, ScrapeProtocol};
        use crate::scrape::fetch::accept_header;
        let p3 = accept_header(&ScrapeProtocol::DEFAULT, NameEscaping::AllowUtf8);
        let p2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, format, want) in [
            (p3.as_str(), Format::OpenMetrics, NameEscaping::AllowUtf8),
            (p3.as_str(), Format::Text, NameEscaping::AllowUtf8),
            (p2, Format::OpenMetrics, NameEscaping::Underscores),
            ("", Format::Text, NameEscaping::Underscores),
            (
                "text/plain; version=1.0.0; escaping=dots",
                Format::Text,
                NameEscaping::Dots,
            ),
            (
                "text/plain;escaping=bogus",
                Format::Text,
                NameEscaping::Underscores,
            ),
        ] {
            assert_eq!(super::escaping_asked(accept, format), want, "{accept}");
        }
        assert_eq!(
            super::content_type(Format::Text, NameEscaping::AllowUtf8),
            "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
        );
        assert_eq!(
            super::content_type(Format::Text, NameEscaping::Underscores),
            "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
        );
    }

    use super::*;

    #[test]
    fn gzip_is_served_only_when_accepted() {
        for (header, want) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0, identity", false),
            ("*", true),
            ("*;q=0", false),
            ("identity", false),
            ("", false),
            ("GZIP", true),
        ] {
            assert_eq!(accepts_gzip(header), want, "{header:?}");
        }
    }
}
