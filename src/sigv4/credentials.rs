//! Where the signing credentials come from, in the AWS SDKs' order, and
//! their cache: temporary ones (STS) are fetched again before they expire.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Url;
use tokio::sync::Mutex;

use super::sign::{self, Key, Scope};
use super::sts::Sts;

/// Temporary credentials are renewed this long before they expire (the
/// SDKs renew a few minutes early so a request is never signed with
/// credentials that lapse on the way).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// An access key, its secret and, for temporary credentials, the session
/// token and expiry. `Debug` shows the key id only.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expires: Option<SystemTime>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<secret>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<secret>"),
            )
            .field("expires", &self.expires)
            .finish()
    }
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        expires: Option<SystemTime>,
    ) -> Credentials {
        Credentials {
            access_key_id,
            secret_access_key,
            session_token: session_token.filter(|t| !t.is_empty()),
            expires,
        }
    }

    /// The access key id (not secret: it is in every Authorization header).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The session token of temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    /// When temporary credentials lapse.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    /// Whether these must be renewed before signing at `now`.
    fn stale(&self, now: SystemTime) -> bool {
        self.expires
            .is_some_and(|t| t <= now + REFRESH_BEFORE_EXPIRY)
    }

    /// Adds `X-Amz-Date`, `X-Amz-Content-Sha256`, `X-Amz-Security-Token`
    /// (temporary credentials) and `Authorization` to `headers`.
    pub(crate) fn sign_into(
        &self,
        scope: &Scope<'_>,
        method: &str,
        url: &Url,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let payload_hash = sign::sha256_hex(body);
        let value = |v: &str, what: &str| {
            HeaderValue::from_str(v).map_err(|_| format!("the {what} is not a valid header value"))
        };
        headers.remove(reqwest::header::AUTHORIZATION);
        headers.insert("x-amz-date", value(scope.amz_date, "date")?);
        headers.insert(
            "x-amz-content-sha256",
            value(&payload_hash, "payload hash")?,
        );
        headers.remove("x-amz-security-token");
        if let Some(token) = &self.session_token {
            let mut token = value(token, "session token")?;
            token.set_sensitive(true);
            headers.insert("x-amz-security-token", token);
        }
        let key = Key {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
        };
        let auth = sign::authorization(&key, scope, method, url, headers, &payload_hash);
        let mut auth = value(&auth, "access key id")?;
        auth.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        Ok(())
    }
}

/// Where the first credentials come from (before any `role_arn`).
#[derive(Debug)]
pub(crate) enum Source {
    /// `access_key`/`secret_key` in the config, the environment's
    /// `AWS_ACCESS_KEY_ID`…, or a profile of the shared files.
    Fixed(Credentials, &'static str),
    /// EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`.
    WebIdentity {
        token_file: PathBuf,
        role_arn: String,
        session_name: String,
    },
}

impl Source {
    /// What the source is, for logs and errors (no secret).
    pub fn describe(&self) -> &'static str {
        match self {
            Source::Fixed(_, what) => what,
            Source::WebIdentity { .. } => "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)",
        }
    }
}

/// `role_arn` of the config: assumed with the source's credentials.
pub(crate) struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
}

/// The source, the optional role, and the cache of what they gave.
pub(crate) struct Provider {
    pub source: Source,
    pub assume: Option<AssumeRole>,
    pub sts: Sts,
    cached: Mutex<Option<Credentials>>,
}

impl Provider {
    pub fn new(source: Source, assume: Option<AssumeRole>, sts: Sts) -> Provider {
        Provider {
            source,
            assume,
            sts,
            cached: Mutex::new(None),
        }
    }

    /// Credentials to sign with now: the cached ones unless they are about
    /// to expire, else fetched again (one caller fetches, the others wait).
    /// A failed renewal keeps using credentials that have not yet lapsed.
    pub async fn get(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cached.as_ref().filter(|c| !c.stale(now)) {
            return Ok(c.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                *cached = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cached
                .as_ref()
                .filter(|c| c.expires.is_some_and(|t| t > now))
            {
                Some(still_valid) => {
                    tracing::warn!(error = %e, "sigv4: renewing credentials failed; using the current ones until they expire");
                    Ok(still_valid.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<Credentials, String> {
        let base = match &self.source {
            Source::Fixed(c, _) => c.clone(),
            Source::WebIdentity {
                token_file,
                role_arn,
                session_name,
            } => {
                let token = std::fs::read_to_string(token_file).map_err(|e| {
                    format!(
                        "cannot read the web identity token {}: {e}",
                        token_file.display()
                    )
                })?;
                self.sts
                    .assume_role_with_web_identity(role_arn, session_name, token.trim())
                    .await?
            }
        };
        let Some(role) = &self.assume else {
            return Ok(base);
        };
        let assumed = self
            .sts
            .assume_role(
                &base,
                &role.role_arn,
                &role.session_name,
                role.external_id.as_deref(),
            )
            .await?;
        tracing::info!(role_arn = %role.role_arn, access_key_id = %assumed.access_key_id, "sigv4: assumed role");
        Ok(assumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secret_and_the_token() {
        let c = Credentials::new("AKID".into(), "s3cr3t".into(), Some("t0k3n".into()), None);
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID"), "{shown}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0k3n"),
            "{shown}"
        );
    }

    #[test]
    fn temporary_credentials_are_stale_before_they_expire() {
        let now = SystemTime::now();
        let soon = Credentials::new(
            "A".into(),
            "s".into(),
            None,
            Some(now + Duration::from_secs(60)),
        );
        let later = Credentials::new(
            "A".into(),
            "s".into(),
            None,
            Some(now + Duration::from_secs(3600)),
        );
        let fixed = Credentials::new("A".into(), "s".into(), None, None);
        assert!(soon.stale(now));
        assert!(!later.stale(now));
        assert!(!fixed.stale(now));
    }
}
