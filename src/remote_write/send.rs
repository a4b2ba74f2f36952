//! Sending one batch to a receiver as the remote-write 1.0 spec says: POST,
//! snappy-compressed protobuf, the spec's headers; 5xx (and 429 when
//! `retry_on_http_429`) and network errors retried with capped exponential
//! backoff or the receiver's `Retry-After`; any other 4xx never retried (the
//! spec forbids it). The caller decides what a rejection means (see
//! [`Outcome::Rejected`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use tokio::sync::watch;

use super::metrics::QueueMetrics;
use crate::config::RemoteWriteConfig;
use crate::plan::Writer;

/// Why a receiver's client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("remote_write {url}: {message}")]
pub struct ClientError {
    pub url: String,
    pub message: String,
}

/// How a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged with a 2xx.
    Sent,
    /// Rejected for good (a 4xx other than a retried 429). `conflict` when
    /// the receiver said it holds newer or other data for a series ("out of
    /// order sample", "duplicate sample for timestamp"): Prometheus then
    /// refuses the whole request, though only some samples conflict. The
    /// caller logs it (once per request it split, see `queue::deliver`),
    /// with the status and the start of the receiver's message.
    Rejected {
        conflict: bool,
        status: u16,
        message: String,
    },
    /// Given up at shutdown: not acknowledged, so it stays in the WAL.
    Aborted,
}

/// How much of an error response's body is read (for the log line and the
/// out-of-order check).
const ERROR_BODY_KEPT: usize = 512;

/// A configured HTTP client for one `remote_write` entry.
pub struct Sender {
    client: reqwest::Client,
    /// The remote-write 1.0 headers, sent with every request.
    headers: HeaderMap,
    config: RemoteWriteConfig,
    remote_name: String,
    metrics: QueueMetrics,
    /// With `sigv4`: the signer, and the URL parsed once for it.
    sigv4: Option<(Arc<crate::sigv4::Signer>, reqwest::Url)>,
}

impl Sender {
    /// A sender on the client the plan built for `writer`; the protocol's
    /// headers are added to each request.
    pub fn new(writer: &Writer, metrics: QueueMetrics) -> Result<Sender, ClientError> {
        let client = writer.client.clone().map_err(|e| ClientError {
            url: writer.config.url_redacted(),
            message: e.to_string(),
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("0.1.0"),
        );
        let sigv4 = match &writer.sigv4 {
            Some(Err(e)) => {
                return Err(ClientError {
                    url: writer.config.url_redacted(),
                    message: e.to_string(),
                })
            }
            Some(Ok(signer)) => {
                let url = reqwest::Url::parse(&writer.config.url).map_err(|e| ClientError {
                    url: writer.config.url_redacted(),
                    message: format!("sigv4: {e}"),
                })?;
                // The entry's own headers are the client's defaults, added
                // after signing: put them on each request so they are signed.
                for (name, value) in &writer.config.headers {
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(value),
                    ) {
                        headers.insert(n, v);
                    }
                }
                Some((signer.clone(), url))
            }
            None => None,
        };
        Ok(Sender {
            client,
            headers,
            sigv4,
            config: writer.config.clone(),
            remote_name: writer.name.clone(),
            metrics,
        })
    }

    /// The queue's name, for log lines.
    pub fn remote_name(&self) -> &str {
        &self.remote_name
    }

    /// The receiver's URL without credentials, for log lines.
    pub fn url_redacted(&self) -> String {
        self.config.url_redacted()
    }

    /// Sends one compressed batch of `samples` samples until it is
    /// acknowledged, rejected, or `abort` turns true.
    pub async fn send(
        &self,
        body: Bytes,
        samples: u64,
        abort: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let queue = &self.config.queue_config;
        let mut backoff = queue.min_backoff.as_std();
        let max_backoff = queue.max_backoff.as_std();
        loop {
            if *abort.borrow() {
                return Outcome::Aborted;
            }
            self.metrics.samples.inc_by(samples);
            self.metrics.bytes.inc_by(body.len() as u64);
            let started = Instant::now();
            let attempt = tokio::select! {
                r = self.post(body.clone()) => r,
                _ = abort.changed() => return Outcome::Aborted,
            };
            self.metrics
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
            let retry_after = match attempt {
                Ok((status, _, _)) if status.is_success() => return Outcome::Sent,
                Ok((status, retry_after, _))
                    if status.is_server_error()
                        || (status.as_u16() == 429 && queue.retry_on_http_429) =>
                {
                    tracing::warn!(remote_name = %self.remote_name, url = %self.config.url_redacted(), status = status.as_u16(), samples, "remote write failed; retrying");
                    self.metrics
                        .status
                        .failed(format!("HTTP {}; retrying", status.as_u16()));
                    retry_after
                }
                Ok((status, _, text)) => {
                    let conflict = status.as_u16() == 400
                        && (text.contains("out of order sample")
                            || text.contains("duplicate sample for timestamp"));
                    self.metrics.status.failed(format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        text.trim()
                    ));
                    return Outcome::Rejected {
                        conflict,
                        status: status.as_u16(),
                        message: text,
                    };
                }
                Err(e) => {
                    tracing::warn!(remote_name = %self.remote_name, url = %self.config.url_redacted(), error = %e, samples, "remote write failed; retrying");
                    self.metrics.status.failed(format!("{e}; retrying"));
                    None
                }
            };
            self.metrics.retried.inc_by(samples);
            let wait = retry_after.unwrap_or(backoff);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = abort.changed() => return Outcome::Aborted,
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    /// One POST: the status, `Retry-After` if any, and the start of the body.
    async fn post(
        &self,
        body: Bytes,
    ) -> Result<(reqwest::StatusCode, Option<Duration>, String), String> {
        let mut headers = self.headers.clone();
        if let Some((signer, url)) = &self.sigv4 {
            // Each attempt anew: a retry carries its own X-Amz-Date.
            signer
                .sign("POST", url, &mut headers, &body)
                .await
                .map_err(|e| e.to_string())?;
        }
        let request = crate::auth::apply(
            self.client
                .post(&self.config.url)
                .headers(headers)
                .body(body),
            self.config.authorization.as_ref(),
            self.config.basic_auth.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        // The URL only when a redirect led elsewhere (the log line names
        // the configured one), its password redacted.
        let mut response = request
            .send()
            .await
            .map_err(|e| crate::http::error_message(e, &self.config.url))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Only the start of an error body is read: a receiver that sends
        // one without end must not fill relay's memory until the timeout.
        let mut start = Vec::new();
        while !status.is_success() && start.len() < ERROR_BODY_KEPT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = ERROR_BODY_KEPT - start.len();
                    start.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&start).into_owned();
        Ok((status, retry_after, text))
    }
}
