//! Credentials towards targets and receivers alike: `authorization`,
//! `basic_auth` and `oauth2` (client credentials), with secrets given
//! inline or read from their files on every request (so a rotated
//! Kubernetes Secret is picked up without a restart).
//!
//! An OAuth2 token is fetched as golang.org/x/oauth2's `clientcredentials`
//! does (Prometheus's client): a form POST to `token_url` with the client's
//! id and secret in a Basic `Authorization` header, then, if the endpoint
//! refuses that, in the form; the token is cached until 10 s before it
//! expires (x/oauth2's `defaultExpiryDelta`) and fetched again after, or
//! when the client secret changed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::RequestBuilder;
use tokio::time::Instant;

use crate::config::{redact_url, Authorization, BasicAuth, OAuth2};

/// A secret file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct SecretFileError {
    pub path: String,
    pub source: std::io::Error,
}

/// Why a request could not be given its credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    /// The token endpoint failed: its URL (redacted) and why, never the
    /// client secret.
    #[error("oauth2: cannot fetch token from {url}: {message}")]
    Token { url: String, message: String },
}

/// How long before its expiry a token is fetched again (x/oauth2's
/// `defaultExpiryDelta`), so a request never carries one that expires on
/// the way.
pub const EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// The credentials of one job or `remote_write` entry, built once by the
/// plan and shared by its targets or shards (so one OAuth2 token serves all).
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<Authorization>,
    basic_auth: Option<BasicAuth>,
    oauth2: Option<std::sync::Arc<TokenSource>>,
}

impl Credentials {
    /// Credentials from the config's blocks (at most one is set, as
    /// validated) and the token source built for `oauth2`.
    pub fn new(
        authorization: Option<Authorization>,
        basic_auth: Option<BasicAuth>,
        oauth2: Option<TokenSource>,
    ) -> Credentials {
        Credentials {
            authorization,
            basic_auth,
            oauth2: oauth2.map(std::sync::Arc::new),
        }
    }

    /// Adds the configured credentials to `request` (fetching an OAuth2
    /// token first when none is cached or it expired).
    pub async fn apply(&self, request: RequestBuilder) -> Result<RequestBuilder, AuthError> {
        let mut request = apply(
            request,
            self.authorization.as_ref(),
            self.basic_auth.as_ref(),
        )?;
        if let Some(source) = &self.oauth2 {
            request = request.header(AUTHORIZATION, source.header().await?);
        }
        Ok(request)
    }
}

/// Adds the configured static credentials to `request`.
pub fn apply(
    mut request: RequestBuilder,
    authorization: Option<&Authorization>,
    basic_auth: Option<&BasicAuth>,
) -> Result<RequestBuilder, SecretFileError> {
    if let Some(auth) = authorization {
        let credentials = secret(
            auth.credentials.as_ref().map(|s| s.0.as_str()),
            auth.credentials_file.as_deref(),
        )?;
        request = request.header(
            AUTHORIZATION,
            format!("{} {}", auth.kind, credentials.trim()),
        );
    }
    if let Some(basic) = basic_auth {
        let password = secret(
            basic.password.as_ref().map(|s| s.0.as_str()),
            basic.password_file.as_deref(),
        )?;
        request = request.basic_auth(&basic.username, Some(password.trim_end_matches('\n')));
    }
    Ok(request)
}

/// A secret given inline or read from its file now.
fn secret(inline: Option<&str>, file: Option<&Path>) -> Result<String, SecretFileError> {
    match (inline, file) {
        (Some(s), _) => Ok(s.to_owned()),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|source| SecretFileError {
            path: path.display().to_string(),
            source,
        }),
        (None, None) => Ok(String::new()),
    }
}

/// One `oauth2` block's token: fetched on first use, cached, refreshed.
pub struct TokenSource {
    config: OAuth2,
    /// With the block's own `tls_config` and proxy, and a timeout.
    client: reqwest::Client,
    /// Held while a token is fetched, so concurrent requests wait for one
    /// fetch instead of each making their own.
    cached: tokio::sync::Mutex<Option<Cached>>,
    /// The endpoint refused the id and secret in a header and took them
    /// in the form: ask that way from now on (x/oauth2's auth style probe).
    in_form: AtomicBool,
}

/// A token and the client secret it was fetched with.
struct Cached {
    secret: String,
    header: HeaderValue,
    /// None when the endpoint gave no `expires_in`: valid until refused.
    expiry: Option<Instant>,
}

impl TokenSource {
    /// A token source for `config` fetching through `client`.
    pub fn new(config: OAuth2, client: reqwest::Client) -> TokenSource {
        TokenSource {
            config,
            client,
            cached: tokio::sync::Mutex::new(None),
            in_form: AtomicBool::new(false),
        }
    }

    /// The `Authorization` value: the cached token while it is valid,
    /// else a new one.
    pub async fn header(&self) -> Result<HeaderValue, AuthError> {
        let secret = secret(
            self.config.client_secret.as_ref().map(|s| s.0.as_str()),
            self.config.client_secret_file.as_deref(),
        )?;
        let secret = secret.trim().to_owned();
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c.expiry.is_none_or(|e| {
                e.checked_sub(EXPIRY_DELTA)
                    .is_some_and(|e| e > Instant::now())
            });
            if fresh && c.secret == secret {
                return Ok(c.header.clone());
            }
        }
        let (header, expiry) = self.fetch(&secret).await?;
        *cached = Some(Cached {
            secret,
            header: header.clone(),
            expiry,
        });
        Ok(header)
    }

    /// Asks the endpoint, with the id and secret in a Basic header first
    /// and, if that is refused, in the form (remembered once it works).
    async fn fetch(&self, secret: &str) -> Result<(HeaderValue, Option<Instant>), AuthError> {
        if !self.in_form.load(Ordering::Relaxed) {
            match self.request(secret, false).await {
                Err(Refused::Status(_)) => {}
                other => return other.map_err(|e| self.error(e)),
            }
        }
        let token = self
            .request(secret, true)
            .await
            .map_err(|e| self.error(e))?;
        self.in_form.store(true, Ordering::Relaxed);
        Ok(token)
    }

    async fn request(
        &self,
        secret: &str,
        in_form: bool,
    ) -> Result<(HeaderValue, Option<Instant>), Refused> {
        let mut form: Vec<(&str, String)> = vec![("grant_type", "client_credentials".into())];
        if !self.config.scopes.is_empty() {
            form.push(("scope", self.config.scopes.join(" ")));
        }
        if in_form {
            form.push(("client_id", self.config.client_id.clone()));
            form.push(("client_secret", secret.to_owned()));
        }
        for (k, v) in &self.config.endpoint_params {
            form.retain(|(name, _)| name != k);
            form.push((k.as_str(), v.clone()));
        }
        let mut request = self.client.post(&self.config.token_url).form(&form);
        if !in_form {
            // As x/oauth2: both URL-encoded, then Basic.
            request = request.basic_auth(
                form_encode(&self.config.client_id),
                Some(form_encode(secret)),
            );
        }
        let sent = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| Refused::Other(crate::http::error_message(e, &self.config.token_url)))?;
        let status = response.status();
        let response_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let body = response
            .bytes()
            .await
            .map_err(|e| Refused::Other(crate::http::error_message(e, &self.config.token_url)))?;
        if !status.is_success() {
            return Err(Refused::Status(describe_refusal(status, &body)));
        }
        // As x/oauth2: a form-encoded answer (GitHub's default) when the
        // endpoint says so, else JSON.
        let form = response_type.as_deref().is_some_and(|t| {
            t.starts_with("application/x-www-form-urlencoded") || t.starts_with("text/plain")
        });
        if form {
            return token_from_form(&body, sent);
        }
        token(&body, sent)
    }

    fn error(&self, refused: Refused) -> AuthError {
        let message = match refused {
            Refused::Status(m) | Refused::Other(m) => m,
        };
        AuthError::Token {
            url: redact_url(&self.config.token_url),
            message,
        }
    }
}

/// Why one token request failed: the endpoint answered with an error
/// status (worth asking the other way), or anything else.
enum Refused {
    Status(String),
    Other(String),
}

/// `HTTP 401 Unauthorized`, plus the OAuth2 `error` code when the body
/// has one (RFC 6749 5.2); never the rest of the body.
fn describe_refusal(status: reqwest::StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()));
    match code {
        Some(code) => format!("HTTP {status} ({code})"),
        None => format!("HTTP {status}"),
    }
}

/// The header value and expiry from a JSON token response.
fn token(body: &[u8], sent: Instant) -> Result<(HeaderValue, Option<Instant>), Refused> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Refused::Other(format!("invalid token response: not JSON ({e})")))?;
    let text = |name: &str| v.get(name).and_then(|t| t.as_str()).map(str::to_owned);
    let expires_in = match v.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    token_from(text("access_token"), text("token_type"), expires_in, sent)
}

/// The same from a form-encoded response (`access_token=…&expires_in=…`).
fn token_from_form(body: &[u8], sent: Instant) -> Result<(HeaderValue, Option<Instant>), Refused> {
    let body = String::from_utf8_lossy(body);
    let value = |name: &str| {
        body.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (form_decode(k) == name).then(|| form_decode(v))
        })
    };
    let expires_in = value("expires_in").and_then(|s| s.trim().parse::<f64>().ok());
    token_from(value("access_token"), value("token_type"), expires_in, sent)
}

/// The header value and expiry of a token's fields.
fn token_from(
    access: Option<String>,
    kind: Option<String>,
    expires_in: Option<f64>,
    sent: Instant,
) -> Result<(HeaderValue, Option<Instant>), Refused> {
    let bad = |why: &str| Refused::Other(format!("invalid token response: {why}"));
    let access = access
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("server response missing access_token"))?;
    // x/oauth2's `Token.Type`: bearer, mac and basic in their usual case.
    let kind = match kind.as_deref().unwrap_or("") {
        "" => "Bearer",
        t if t.eq_ignore_ascii_case("bearer") => "Bearer",
        t if t.eq_ignore_ascii_case("mac") => "MAC",
        t if t.eq_ignore_ascii_case("basic") => "Basic",
        t => t,
    };
    let expiry = expires_in
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| sent + Duration::from_secs_f64(s.min(1e9)));
    let mut header = HeaderValue::from_str(&format!("{kind} {access}"))
        .map_err(|_| bad("access_token is not a valid header value"))?;
    header.set_sensitive(true);
    Ok((header, expiry))
}

/// `application/x-www-form-urlencoded` encoding of one value (Go's
/// `url.QueryEscape`), which x/oauth2 applies to the id and secret.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One form-encoded value decoded (`+` is a space, `%XX` a byte).
fn form_decode(value: &str) -> String {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_are_encoded_as_go_s_query_escape() {
        assert_eq!(form_encode("a b+c/d:e~f"), "a+b%2Bc%2Fd%3Ae~f");
        assert_eq!(form_encode("é"), "%C3%A9");
    }

    #[test]
    fn a_token_response_gives_the_header_and_the_expiry() {
        let now = Instant::now();
        let value = |body: &str| {
            token(body.as_bytes(), now)
                .map(|(h, e)| (h.to_str().map(str::to_owned).unwrap_or_default(), e))
                .map_err(|e| match e {
                    Refused::Status(m) | Refused::Other(m) => m,
                })
        };
        assert_eq!(
            value(r#"{"access_token":"t1","token_type":"bearer","expires_in":60}"#),
            Ok(("Bearer t1".into(), Some(now + Duration::from_secs(60))))
        );
        assert_eq!(
            value(r#"{"access_token":"t2","expires_in":"30"}"#),
            Ok(("Bearer t2".into(), Some(now + Duration::from_secs(30))))
        );
        assert_eq!(
            value(r#"{"access_token":"t3","token_type":"MAC"}"#),
            Ok(("MAC t3".into(), None))
        );
        assert_eq!(
            value(r#"{"token_type":"bearer"}"#),
            Err("invalid token response: server response missing access_token".into())
        );
        assert!(value("access_token=x")
            .is_err_and(|e| e.starts_with("invalid token response: not JSON")));
        let form = token_from_form(b"access_token=a%2Bb+c&token_type=bearer&expires_in=60", now)
            .map(|(h, e)| (h.to_str().map(str::to_owned).unwrap_or_default(), e))
            .map_err(|_| ());
        assert_eq!(
            form,
            Ok(("Bearer a+b c".into(), Some(now + Duration::from_secs(60))))
        );
        assert_eq!(form_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn a_refusal_names_the_status_and_the_error_code_only() {
        let status = reqwest::StatusCode::UNAUTHORIZED;
        assert_eq!(
            describe_refusal(
                status,
                br#"{"error":"invalid_client","error_description":"secret s3cr3t is wrong"}"#
            ),
            "HTTP 401 Unauthorized (invalid_client)"
        );
        assert_eq!(describe_refusal(status, b"s3cr3t"), "HTTP 401 Unauthorized");
    }
}
