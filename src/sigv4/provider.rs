//! Where the signing credentials come from, in the AWS SDKs' order, and
//! their cache: temporary ones (STS) are fetched again before they expire.

use std::path::PathBuf;
use std::time::SystemTime;

use tokio::sync::Mutex;

use super::credentials::Credentials;
use super::sts::Sts;

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
                .filter(|c| c.expires().is_some_and(|t| t > now))
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
        tracing::info!(role_arn = %role.role_arn, access_key_id = %assumed.access_key_id(), "sigv4: assumed role");
        Ok(assumed)
    }
}
