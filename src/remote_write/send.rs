//! Sending one batch to a receiver as the remote-write 1.0 and 2.0 specs
//! say: POST, snappy-compressed protobuf, the spec's headers; 5xx (and 429 when
//! `retry_on_http_429`) and network errors retried with capped exponential
//! backoff or the receiver's `Retry-After`; any other 4xx never retried (the
//! spec forbids it). The caller decides what a rejection means (see
//! [`Outcome::Rejected`]).
//!
//! An entry configured for 2.0 falls back to 1.0 for good (logged once,
//! `relay_remote_write_protocol` shows it) when the receiver cannot read
//! 2.0: a 415; a 2xx without any `X-Prometheus-Remote-Write-*-Written`
//! header (a 1.x receiver read the request as an empty 1.0 one, so its
//! samples were not stored); a 400 before any 2.0 request to it succeeded
//! (the spec's advice for 1.x receivers, vmagent's own fallback). The
//! refused request is then [`Outcome::FellBack`]: the caller sends the
//! same samples again as 1.0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use tokio::sync::watch;

use super::encode_v2::{Sent, Written};
use super::metrics::QueueMetrics;
use crate::auth::Credentials;
use crate::config::{ProtobufMessage, RemoteWriteConfig};
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
    /// A 2.0 request the receiver could not read: the sender speaks 1.0
    /// from now on, and the caller sends the same samples again as 1.0.
    FellBack,
}

/// The protocol versions' labels in `relay_remote_write_protocol` and logs.
fn version(message: ProtobufMessage) -> &'static str {
    match message {
        ProtobufMessage::V1 => "1.0",
        ProtobufMessage::V2 => "2.0",
    }
}

/// How much of an error response's body is read (for the log line and the
/// out-of-order check).
const ERROR_BODY_KEPT: usize = 512;

/// A configured HTTP client for one `remote_write` entry.
pub struct Sender {
    client: reqwest::Client,
    /// Its credentials; a failing OAuth2 token endpoint is retried like a
    /// network error, as Prometheus (the round tripper's error).
    credentials: Credentials,
    /// The remote-write 1.0 headers, sent with every 1.0 request.
    headers: HeaderMap,
    /// The 2.0 headers.
    headers_v2: HeaderMap,
    /// Speaks 2.0 now (configured, and not fallen back).
    v2: AtomicBool,
    /// A 2.0 request to this receiver was acknowledged with the written
    /// headers: a 400 from now on is about the data, not the protocol.
    v2_succeeded: AtomicBool,
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
        let mut headers_v2 = headers.clone();
        headers.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("0.1.0"),
        );
        headers_v2.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        );
        headers_v2.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("2.0.0"),
        );
        let configured = writer.config.protobuf_message;
        metrics.protocol.set(version(configured), None);
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
                        headers.insert(n.clone(), v.clone());
                        headers_v2.insert(n, v);
                    }
                }
                Some((signer.clone(), url))
            }
            None => None,
        };
        Ok(Sender {
            client,
            credentials: writer.credentials.clone(),
            headers,
            headers_v2,
            v2: AtomicBool::new(configured == ProtobufMessage::V2),
            v2_succeeded: AtomicBool::new(false),
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

    /// The message to encode the next request as.
    pub fn protocol(&self) -> ProtobufMessage {
        if self.v2.load(Ordering::Relaxed) {
            ProtobufMessage::V2
        } else {
            ProtobufMessage::V1
        }
    }

    /// Speaks 1.0 from now on; logged and shown once, by whichever shard
    /// noticed first.
    fn fall_back(&self, status: u16, why: &str) {
        if self.v2.swap(false, Ordering::Relaxed) {
            let metadata = if self.config.metadata_config.send {
                "in 1.0's own requests every metadata_config.send_interval"
            } else {
                "not sent (metadata_config.send: false)"
            };
            tracing::warn!(remote_name = %self.remote_name, url = %self.config.url_redacted(), status, reason = why, metadata, lost = "start timestamps (1.0 has no field for them)", "remote write receiver cannot read 2.0; falling back to 1.0 for this queue, the refused request is sent again as 1.0");
            self.metrics.protocol.set("1.0", Some("2.0"));
        }
    }

    /// What a 2xx to a 2.0 request carrying `sent` says: None when the
    /// receiver wrote it, else why it must be sent again as 1.0. Fewer
    /// written than sent, of any kind, is counted and logged.
    fn check_written(&self, written: Written, sent: Sent) -> Option<&'static str> {
        if !written.any() {
            return (sent.total() > 0).then_some("2xx without X-Prometheus-Remote-Write-*-Written headers: a 1.x receiver read it as an empty 1.0 request");
        }
        self.v2_succeeded.store(true, Ordering::Relaxed);
        let kinds = [
            ("samples", sent.samples, written.samples),
            ("histograms", sent.histograms, written.histograms),
            ("exemplars", sent.exemplars, written.exemplars),
        ];
        for (kind, sent, written) in kinds {
            let written = written.unwrap_or(0);
            if written < sent {
                self.metrics.not_written.inc_by(sent - written);
                tracing::warn!(remote_name = %self.remote_name, url = %self.config.url_redacted(), kind, sent, written, "remote write 2.0 receiver acknowledged the request but wrote fewer than were sent");
            }
        }
        None
    }

    /// The receiver's URL without credentials, for log lines.
    pub fn url_redacted(&self) -> String {
        self.config.url_redacted()
    }

    /// Sends one compressed batch carrying `sent`, encoded as
    /// `message`, until it is acknowledged, rejected, refused for its
    /// protocol (2.0 only), or `abort` turns true.
    pub async fn send(
        &self,
        body: Bytes,
        sent: Sent,
        message: ProtobufMessage,
        abort: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let samples = sent.total();
        let v2 = message == ProtobufMessage::V2;
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
                r = self.post(body.clone(), v2) => r,
                _ = abort.changed() => return Outcome::Aborted,
            };
            self.metrics
                .batch_duration
                .observe(started.elapsed().as_secs_f64());
            let retry_after = match attempt {
                Ok(r) if r.status.is_success() && v2 => {
                    return match self.check_written(r.written, sent) {
                        None => Outcome::Sent,
                        Some(why) => {
                            self.fall_back(r.status.as_u16(), why);
                            Outcome::FellBack
                        }
                    };
                }
                Ok(r) if r.status.is_success() => return Outcome::Sent,
                Ok(r)
                    if v2
                        && (r.status.as_u16() == 415
                            || (r.status.as_u16() == 400
                                && !self.v2_succeeded.load(Ordering::Relaxed))) =>
                {
                    let why = if r.status.as_u16() == 415 {
                        "415 Unsupported Media Type"
                    } else {
                        "400 before any 2.0 request to this receiver succeeded (a 1.x receiver)"
                    };
                    self.fall_back(r.status.as_u16(), why);
                    return Outcome::FellBack;
                }
                Ok(Answer {
                    status,
                    retry_after,
                    ..
                }) if status.is_server_error()
                    || (status.as_u16() == 429 && queue.retry_on_http_429) =>
                {
                    tracing::warn!(remote_name = %self.remote_name, url = %self.config.url_redacted(), status = status.as_u16(), samples, "remote write failed; retrying");
                    self.metrics
                        .status
                        .failed(format!("HTTP {}; retrying", status.as_u16()));
                    retry_after
                }
                Ok(Answer { status, text, .. }) => {
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

    /// One POST (with 2.0's headers when `v2`): the answer.
    async fn post(&self, body: Bytes, v2: bool) -> Result<Answer, String> {
        let mut headers = if v2 { &self.headers_v2 } else { &self.headers }.clone();
        if let Some((signer, url)) = &self.sigv4 {
            // Each attempt anew: a retry carries its own X-Amz-Date.
            signer
                .sign("POST", url, &mut headers, &body)
                .await
                .map_err(|e| e.to_string())?;
        }
        let request = self
            .credentials
            .apply(
                self.client
                    .post(&self.config.url)
                    .headers(headers)
                    .body(body),
            )
            .await
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
        let written = Written::from_headers(response.headers());
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
        Ok(Answer {
            status,
            retry_after,
            text,
            written,
        })
    }
}

/// What a receiver answered to one POST.
struct Answer {
    status: reqwest::StatusCode,
    /// `Retry-After`, if any.
    retry_after: Option<Duration>,
    /// The start of an error body.
    text: String,
    /// The 2.0 written headers.
    written: Written,
}
