//! The HTTP server Prometheus scrapes: `/metrics` from the latest snapshot
//! (text 0.0.4, or OpenMetrics when asked; gzip when accepted, compressed
//! once per snapshot), `/-/healthy` while running, and `/-/ready` only after
//! every target has had one successful scrape, so the Pod reads READY only
//! when metrics flow.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::exposition::{render, Format};
use crate::scrape::pipeline;
use crate::scrape::store::Store;

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One rendered exposition; the other encodings are made on first request.
pub struct Snapshot {
    text: Bytes,
    text_gzip: OnceLock<Bytes>,
    openmetrics: OnceLock<Bytes>,
    openmetrics_gzip: OnceLock<Bytes>,
}

impl Snapshot {
    pub fn new(text: Vec<u8>) -> Snapshot {
        Snapshot {
            text: Bytes::from(text),
            text_gzip: OnceLock::new(),
            openmetrics: OnceLock::new(),
            openmetrics_gzip: OnceLock::new(),
        }
    }

    /// The body for a format and encoding.
    pub fn body(&self, format: Format, gzip: bool) -> Bytes {
        match (format, gzip) {
            (Format::Text, false) => self.text.clone(),
            (Format::Text, true) => self.text_gzip.get_or_init(|| compress(&self.text)).clone(),
            (Format::OpenMetrics, false) => self.openmetrics().clone(),
            (Format::OpenMetrics, true) => self
                .openmetrics_gzip
                .get_or_init(|| compress(self.openmetrics()))
                .clone(),
        }
    }

    fn openmetrics(&self) -> &Bytes {
        self.openmetrics
            .get_or_init(|| Bytes::from(to_openmetrics(&self.text)))
    }
}

/// Re-renders our own text output as OpenMetrics (same samples and labels).
fn to_openmetrics(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    match pipeline::convert(text, Format::Text, Format::OpenMetrics) {
        Ok(rendered) => rendered.write(&mut out, Format::OpenMetrics),
        Err(e) => tracing::error!(error = %e, "cannot re-render the snapshot as OpenMetrics"),
    }
    render::end(&mut out, Format::OpenMetrics);
    out
}

fn compress(data: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// Serves `store` on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let store = store.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let store = store.clone();
                async move { Ok::<_, Infallible>(respond(&store, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                _ = conn_shutdown.changed() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

fn respond(store: &Store, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => metrics(store, req),
        "/-/healthy" => plain(StatusCode::OK, "relay is Healthy.\n".into()),
        "/-/ready" => {
            let waiting = store.waiting_for();
            if waiting.is_empty() {
                plain(StatusCode::OK, "relay is Ready.\n".into())
            } else {
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "relay is not ready: no successful scrape yet of {}\n",
                        waiting.join(", ")
                    ),
                )
            }
        }
        _ => plain(
            StatusCode::NOT_FOUND,
            "not found: relay serves /metrics, /-/healthy and /-/ready\n".into(),
        ),
    }
}

fn metrics(store: &Store, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
    };
    let format = if header(ACCEPT).contains("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let gzip = header(ACCEPT_ENCODING)
        .split(',')
        .any(|e| e.split(';').next().is_some_and(|c| c.trim() == "gzip"));
    let body = store.snapshot().body(format, gzip);
    let mut response = Response::new(Full::new(if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        body
    }));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if format == Format::OpenMetrics {
            OPENMETRICS
        } else {
            TEXT
        }),
    );
    headers.insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
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
