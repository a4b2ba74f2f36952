//! One set of AWS credentials: what signs a request, hidden from `Debug`,
//! and when temporary ones must be renewed.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Url;

use super::sign::{self, Key, Scope};

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
    pub(crate) fn stale(&self, now: SystemTime) -> bool {
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
