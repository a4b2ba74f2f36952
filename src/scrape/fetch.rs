//! The HTTP side of a scrape, as Prometheus 3 sends it: content negotiation
//! from `scrape_protocols` (with the `escaping=` relay wants names in), the
//! format from the answer's Content-Type (or `fallback_scrape_protocol`), gzip, the scrape-timeout header, auth and
//! TLS towards the target, and a body size limit enforced while reading.
//! The body is handed on chunk by chunk as it arrives, never held whole.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};

use crate::auth::{AuthError, Credentials};
use crate::config::{NameEscaping, ScrapeConfig, ScrapeProtocol};
use crate::exposition::Format;
use crate::plan::{Job, SetupError};
use crate::targets::Target;

/// The Accept header Prometheus 3 sends for `protocols` (scrape/scrape.go
/// `acceptHeader`): each protocol in order with a weight counting down from
/// `q=0.6` (one more than the number of protocols known), `escaping=` only
/// on the 1.0.0 text formats, then `*/*` with the next weight.
pub fn accept_header(protocols: &[ScrapeProtocol], escaping: NameEscaping) -> String {
    let mut weight = ScrapeProtocol::PROTO_FIRST.len() + 1;
    let mut out = String::with_capacity(256);
    for protocol in protocols {
        out.push_str(protocol.header());
        if protocol.takes_escaping() {
            out.push_str(";escaping=");
            out.push_str(escaping.name());
        }
        out.push_str(&format!(";q=0.{weight},"));
        weight = weight.saturating_sub(1);
    }
    out.push_str(&format!("*/*;q=0.{weight}"));
    out
}

/// The format of a body: its Content-Type's, else the fallback's, else why
/// the scrape fails (Prometheus 3's `extractMediaType`).
pub fn body_format(
    content_type: Option<&str>,
    fallback: Option<ScrapeProtocol>,
) -> Result<Format, FetchError> {
    let content_type = content_type.map(str::trim).unwrap_or("");
    if let Some(format) = Format::from_content_type(content_type) {
        return Ok(format);
    }
    match fallback {
        Some(protocol) => Ok(protocol_format(protocol)),
        None if content_type.is_empty() => Err(FetchError::ContentType(
            "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target".into(),
        )),
        None => Err(FetchError::ContentType(format!(
            "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
        ))),
    }
}

/// The parser a scrape protocol's bodies need.
fn protocol_format(protocol: ScrapeProtocol) -> Format {
    match protocol {
        ScrapeProtocol::PrometheusProto => Format::Protobuf,
        ScrapeProtocol::OpenMetricsText1_0_0 | ScrapeProtocol::OpenMetricsText0_0_1 => {
            Format::OpenMetrics
        }
        ScrapeProtocol::PrometheusText1_0_0 | ScrapeProtocol::PrometheusText0_0_4 => Format::Text,
    }
}

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
    /// The `oauth2` token endpoint failed (its URL redacted, and status).
    #[error("{0}")]
    Token(String),
    /// A missing or unknown Content-Type without `fallback_scrape_protocol`.
    #[error("{0}")]
    ContentType(String),
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
            FetchError::Token(_) => "oauth2",
            FetchError::ContentType(_) => "content_type",
        }
    }
}

/// A configured client for one target.
pub struct Fetcher {
    client: reqwest::Client,
    url: String,
    /// Accept and the scrape-timeout header, sent with every request.
    headers: HeaderMap,
    timeout: Duration,
    body_limit: u64,
    /// `fallback_scrape_protocol`.
    fallback: Option<ScrapeProtocol>,
    credentials: Credentials,
}

impl Fetcher {
    /// A fetcher for one target on its job's client (built once by the
    /// plan, TLS included); the request's headers are set per target.
    pub fn new(
        client: reqwest::Client,
        credentials: Credentials,
        job: &ScrapeConfig,
        url: String,
        timeout: Duration,
    ) -> Fetcher {
        let mut headers = HeaderMap::new();
        let accept = accept_header(job.protocols(), job.escaping());
        if let Ok(v) = HeaderValue::from_str(&accept) {
            headers.insert(ACCEPT, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("{}", timeout.as_secs_f64())) {
            headers.insert("X-Prometheus-Scrape-Timeout-Seconds", v);
        }
        // The timeout is the fetch's own (see `Body`), not reqwest's: that
        // one would count the time the pipeline spends on each chunk too.
        Fetcher {
            client,
            url,
            headers,
            timeout,
            body_limit: job.body_size_limit.0,
            fallback: job.fallback_scrape_protocol,
            credentials,
        }
    }

    /// The fetcher of `target` on its job's client (built by the plan), or
    /// why the job has none.
    pub fn for_target(job: &Job, target: &Target) -> Result<Fetcher, SetupError> {
        let client = job.client.clone()?;
        Ok(Fetcher::new(
            client,
            job.credentials.clone(),
            &job.config,
            target.url.clone(),
            target.timeout,
        ))
    }

    /// Sends the request; its body is then read with [`Body::chunk`], the
    /// whole within the scrape timeout.
    pub async fn start(&self) -> Result<Body<'_>, FetchError> {
        self.start_within(None).await
    }

    /// [`Fetcher::start`] within `budget` if it is shorter than the scrape
    /// timeout: a scrape for a GET must end before that GET stops waiting.
    pub async fn start_within(&self, budget: Option<Duration>) -> Result<Body<'_>, FetchError> {
        let timeout = budget.map_or(self.timeout, |b| b.min(self.timeout));
        let deadline = tokio::time::Instant::now() + timeout;
        let response = match tokio::time::timeout_at(deadline, self.send()).await {
            Ok(response) => response?,
            Err(_) => return Err(FetchError::Timeout(timeout)),
        };
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        let format = body_format(content_type.as_deref(), self.fallback)?;
        Ok(Body {
            fetcher: self,
            response,
            format,
            read: 0,
            deadline,
            timeout,
        })
    }

    async fn send(&self) -> Result<reqwest::Response, FetchError> {
        let request = self
            .credentials
            .apply(self.client.get(&self.url).headers(self.headers.clone()))
            .await
            .map_err(|e| match e {
                AuthError::SecretFile(e) => FetchError::SecretFile {
                    path: e.path,
                    source: e.source,
                },
                token @ AuthError::Token { .. } => FetchError::Token(token.to_string()),
            })?;
        let response = request.send().await.map_err(|e| self.request_error(e))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        Ok(response)
    }

    fn request_error(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        FetchError::Request(crate::http::error_message(e, &self.url))
    }
}

/// A response being read, chunk by chunk as it arrives (decoded when
/// gzipped), so that nobody holds the whole body.
pub struct Body<'f> {
    fetcher: &'f Fetcher,
    response: reqwest::Response,
    format: Format,
    read: u64,
    deadline: tokio::time::Instant,
    /// The timeout the deadline came from, for the error.
    timeout: Duration,
}

impl Body<'_> {
    /// The body's format, from its Content-Type.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Decoded bytes read so far (the body's size once read).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Moves the deadline by time spent on the body between chunks: as in
    /// Prometheus, the scrape timeout bounds the fetch, not the parsing.
    pub fn not_counting(&mut self, spent: Duration) {
        self.deadline += spent;
    }

    /// The next decoded chunk, None at the end; fails past the body size
    /// limit (on decoded bytes, as Prometheus) or the scrape timeout.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, FetchError> {
        let fetcher = self.fetcher;
        let chunk = match tokio::time::timeout_at(self.deadline, self.response.chunk()).await {
            Ok(chunk) => chunk.map_err(|e| fetcher.request_error(e))?,
            Err(_) => return Err(FetchError::Timeout(self.timeout)),
        };
        if let Some(chunk) = &chunk {
            self.read += chunk.len() as u64;
            if fetcher.body_limit > 0 && self.read > fetcher.body_limit {
                return Err(FetchError::BodyTooLarge(fetcher.body_limit));
            }
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScrapeProtocol::*;

    /// Prometheus's own expectations (scrape/scrape_test.go `TestAcceptHeader`).
    #[test]
    fn accept_header_is_prometheus_3s() {
        for (protocols, escaping, want) in [
            (
                &ScrapeProtocol::DEFAULT[..],
                NameEscaping::Underscores,
                "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            ),
            (
                &ScrapeProtocol::PROTO_FIRST[..],
                NameEscaping::Dots,
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=dots;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=dots;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
            ),
            (
                &ScrapeProtocol::DEFAULT[..],
                NameEscaping::AllowUtf8,
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            ),
            (
                &ScrapeProtocol::PROTO_FIRST[..],
                NameEscaping::AllowUtf8,
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
            ),
            (
                &[PrometheusText0_0_4][..],
                NameEscaping::Values,
                "text/plain;version=0.0.4;q=0.6,*/*;q=0.5",
            ),
        ] {
            assert_eq!(accept_header(protocols, escaping), want);
        }
    }

    #[test]
    fn content_type_decides_the_format_or_the_fallback_does() {
        let ok = |ct: Option<&str>, fallback| body_format(ct, fallback).map_err(|e| e.to_string());
        assert_eq!(
            ok(Some("text/plain; version=0.0.4"), None),
            Ok(Format::Text)
        );
        assert_eq!(
            ok(
                Some("text/plain; version=1.0.0; escaping=allow-utf-8"),
                None
            ),
            Ok(Format::Text)
        );
        assert_eq!(
            ok(Some("Application/OpenMetrics-Text; version=1.0.0"), None),
            Ok(Format::OpenMetrics)
        );
        assert_eq!(
            ok(Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"), None),
            Ok(Format::Protobuf)
        );
        assert_eq!(
            ok(None, None),
            Err("non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target".into())
        );
        assert_eq!(
            ok(Some("application/json"), None),
            Err("received unsupported Content-Type \"application/json\" and no fallback_scrape_protocol specified for target".into())
        );
        assert_eq!(ok(None, Some(PrometheusText0_0_4)), Ok(Format::Text));
        assert_eq!(
            ok(Some("text/html"), Some(OpenMetricsText1_0_0)),
            Ok(Format::OpenMetrics)
        );
    }
}
