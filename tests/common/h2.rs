//! An HTTPS server that offers HTTP/2 and HTTP/1.1 by ALPN (hyper on
//! tokio-rustls) and records, for each request, the protocol the TLS
//! handshake chose and the request's HTTP version: GET answers a
//! metrics page, POST (a remote-write batch) 204.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// (ALPN protocol or "", request line with its version).
pub type Seen = (String, String);

/// A running server; `addr` is `127.0.0.1:<port>`.
pub struct H2Server {
    pub addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl H2Server {
    /// Serves with `cert`/`key` (PEM), answering GETs with `metrics`.
    pub fn start(cert: &Path, key: &Path, metrics: &str) -> H2Server {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert))
            .collect::<Result<_, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(&read(key)).expect("key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let page = Bytes::from(metrics.to_owned());
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(listener, Arc::new(config), log, page));
        });
        H2Server { addr, seen }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    log: Arc<Mutex<Vec<Seen>>>,
    page: Bytes,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    while let Ok((tcp, _)) = listener.accept().await {
        let (acceptor, log, page) = (acceptor.clone(), log.clone(), page.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let alpn = tls
                .get_ref()
                .1
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            let h2 = alpn == "h2";
            let service = service_fn(move |req: Request<Incoming>| {
                let (log, page, alpn) = (log.clone(), page.clone(), alpn.clone());
                async move {
                    let line = format!("{} {} {:?}", req.method(), req.uri().path(), req.version());
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((alpn, line));
                    let post = req.method() == hyper::Method::POST;
                    let _ = req.into_body().collect().await;
                    if post {
                        Response::builder()
                            .status(204)
                            .body(Full::new(Bytes::new()))
                    } else {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(page))
                    }
                }
            });
            let io = TokioIo::new(tls);
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        });
    }
}
