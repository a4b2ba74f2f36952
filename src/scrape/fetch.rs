//! The HTTP side of a scrape, as Prometheus sends it: content negotiation
//! for OpenMetrics and text 0.0.4, gzip, the scrape-timeout header, auth and
//! TLS towards the target, and a body size limit enforced while reading.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};

use crate::config::{Authorization, BasicAuth, ScrapeConfig};
use crate::exposition::Format;

/// What Prometheus 2.42 sends: OpenMetrics preferred, text 0.0.4 accepted.
const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The most a Content-Length header makes a fetch reserve up front.
const MAX_RESERVE: u64 = 256 << 20;

/// Why a fetch failed; each maps to `up 0` and one log line.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("server returned HTTP status {0}")]
    Status(reqwest::StatusCode),
    #[error("body size limit exceeded ({0} bytes)")]
    BodyTooLarge(u64),
    #[error("{0}")]
    Request(String),
    #[error("cannot read {path}: {source}")]
    SecretFile {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid TLS or client setup: {0}")]
    Setup(String),
}

impl FetchError {
    /// A short, stable word for the failure metric's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::Status(_) => "http_status",
            FetchError::BodyTooLarge(_) => "body_size_limit",
            FetchError::Request(_) => "connection",
            FetchError::SecretFile { .. } | FetchError::Setup(_) => "config",
        }
    }
}

/// A configured client for one target.
pub struct Fetcher {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    body_limit: u64,
    authorization: Option<Authorization>,
    basic_auth: Option<BasicAuth>,
}

impl Fetcher {
    pub fn new(job: &ScrapeConfig, url: String, timeout: Duration) -> Result<Fetcher, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("relay/", env!("CARGO_PKG_VERSION"))),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("{}", timeout.as_secs_f64())) {
            headers.insert("X-Prometheus-Scrape-Timeout-Seconds", v);
        }
        let builder = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout);
        let tls = crate::tls::client_config(&job.tls_config)
            .map_err(|e| FetchError::Setup(e.to_string()))?;
        let client = builder
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| FetchError::Setup(e.to_string()))?;
        Ok(Fetcher {
            client,
            url,
            timeout,
            body_limit: job.body_size_limit.0,
            authorization: job.authorization.clone(),
            basic_auth: job.basic_auth.clone(),
        })
    }

    /// Reads the body into `buf` (cleared first) and says its format.
    pub async fn fetch(&self, buf: &mut Vec<u8>) -> Result<Format, FetchError> {
        buf.clear();
        match tokio::time::timeout(self.timeout, self.fetch_inner(buf)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }

    async fn fetch_inner(&self, buf: &mut Vec<u8>) -> Result<Format, FetchError> {
        let request = crate::auth::apply(
            self.client.get(&self.url),
            self.authorization.as_ref(),
            self.basic_auth.as_ref(),
        )
        .map_err(|e| FetchError::SecretFile {
            path: e.path,
            source: e.source,
        })?;
        let mut response = request.send().await.map_err(|e| self.request_error(e))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        let format = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or(Format::Text, Format::from_content_type);
        // Room for the whole body at once when its length is known (and
        // allowed), rather than doubling up to twice its size; a length
        // past MAX_RESERVE is not taken on trust and grows as it comes.
        if let Some(len) = response
            .content_length()
            .filter(|&len| len <= MAX_RESERVE && (self.body_limit == 0 || len <= self.body_limit))
        {
            buf.reserve_exact(usize::try_from(len).unwrap_or(0));
        }
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(e))? {
            if self.body_limit > 0 && (buf.len() + chunk.len()) as u64 > self.body_limit {
                return Err(FetchError::BodyTooLarge(self.body_limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(format)
    }

    fn request_error(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        // reqwest's Display is terse; its source chain says what happened.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        FetchError::Request(message)
    }
}
