//! AWS Signature Version 4 for remote write (Amazon Managed Prometheus),
//! as Prometheus's `sigv4` block: every attempt of a request is signed
//! anew (its own `X-Amz-Date`) over the snappy body's SHA-256.
//!
//! Credentials are found as the AWS SDKs find them: the config's keys;
//! an explicit `profile`; `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//! (+ `AWS_SESSION_TOKEN`); the shared files' profile (`AWS_PROFILE` or
//! `default`); EKS IRSA's `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
//! through STS `AssumeRoleWithWebIdentity`; then, with `role_arn`, STS
//! `AssumeRole` on top. Temporary credentials are cached and renewed
//! before they expire.
//!
//! Written on `ring` (already relay's) rather than `aws-sigv4` +
//! `aws-config`: docs/remote-write.md says what those would cost.

mod credentials;
mod profile;
mod provider;
mod sign;
mod sts;
mod time;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use reqwest::header::HeaderMap;
use reqwest::Url;

use crate::config::{SigV4Config, TlsConfig};
pub use credentials::{Credentials, REFRESH_BEFORE_EXPIRY};
use provider::{AssumeRole, Provider, Source};
use sign::Scope;
use sts::Sts;

/// Why a `sigv4` block cannot sign (no secret in the text).
#[derive(Debug, thiserror::Error)]
#[error("sigv4: {0}")]
pub struct SigV4Error(pub String);

/// The environment variables the SDKs read, captured once (so a test or
/// `relay check config` resolves from a given set).
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

const VARIABLES: &[&str] = &[
    "HOME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
];

impl Env {
    /// The process's environment.
    pub fn from_process() -> Env {
        Env(VARIABLES
            .iter()
            .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
            .collect())
    }

    /// A given environment (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// A variable, if set and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Signs the requests of one `remote_write` entry.
pub struct Signer {
    region: String,
    service: String,
    provider: Provider,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("credentials", &self.provider.source.describe())
            .finish()
    }
}

impl Signer {
    /// A signer for `config` with the process's environment; fails when no
    /// region or no credentials can be found (the plan keeps the error and
    /// the entry's queue does not start).
    pub fn new(config: &SigV4Config) -> Result<Signer, SigV4Error> {
        Signer::with_env(config, &Env::from_process())
    }

    /// A signer for `config` with the variables of `env`.
    pub fn with_env(config: &SigV4Config, env: &Env) -> Result<Signer, SigV4Error> {
        let explicit_profile = config.profile.as_deref().filter(|p| !p.is_empty());
        let profile = profile::load(explicit_profile, env).map_err(SigV4Error)?;
        let files = || {
            let files: Vec<String> = profile
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            files.join(" and ")
        };
        let region = config
            .region
            .as_deref()
            .filter(|r| !r.is_empty())
            .or_else(|| env.get("AWS_REGION"))
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
            .or_else(|| profile.get("region"))
            .ok_or_else(|| {
                SigV4Error(format!(
                    "region not configured in sigv4.region, AWS_REGION, AWS_DEFAULT_REGION or profile {:?} of {}",
                    profile.name,
                    files()
                ))
            })?
            .to_owned();
        let from_profile = || {
            Some(Source::Fixed(
                Credentials::new(
                    profile.get("aws_access_key_id")?.to_owned(),
                    profile.get("aws_secret_access_key")?.to_owned(),
                    profile.get("aws_session_token").map(str::to_owned),
                    None,
                ),
                "shared files profile",
            ))
        };
        let from_env = || {
            Some(Source::Fixed(
                Credentials::new(
                    env.get("AWS_ACCESS_KEY_ID")?.to_owned(),
                    env.get("AWS_SECRET_ACCESS_KEY")?.to_owned(),
                    env.get("AWS_SESSION_TOKEN").map(str::to_owned),
                    None,
                ),
                "environment (AWS_ACCESS_KEY_ID)",
            ))
        };
        let from_web_identity = || {
            Some(Source::WebIdentity {
                token_file: PathBuf::from(env.get("AWS_WEB_IDENTITY_TOKEN_FILE")?),
                role_arn: env.get("AWS_ROLE_ARN")?.to_owned(),
                session_name: env
                    .get("AWS_ROLE_SESSION_NAME")
                    .map_or_else(session_name, str::to_owned),
            })
        };
        let configured = config.access_key.as_deref().filter(|k| !k.is_empty());
        let source = match (configured, &config.secret_key) {
            (Some(key), Some(secret)) => Source::Fixed(
                Credentials::new(key.to_owned(), secret.0.clone(), None, None),
                "sigv4.access_key",
            ),
            _ if explicit_profile.is_some() => from_profile().ok_or_else(|| {
                SigV4Error(format!(
                    "profile {:?} has no aws_access_key_id and aws_secret_access_key in {}",
                    profile.name,
                    files()
                ))
            })?,
            _ => from_env()
                .or_else(from_profile)
                .or_else(from_web_identity)
                .ok_or_else(|| {
                    SigV4Error(format!(
                        "no AWS credentials found: set sigv4.access_key and secret_key, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile {:?} in {}, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (EKS IRSA)",
                        profile.name,
                        files()
                    ))
                })?,
        };
        let assume = config
            .role_arn
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|role_arn| AssumeRole {
                role_arn: role_arn.to_owned(),
                external_id: config.external_id.clone().filter(|e| !e.is_empty()),
                session_name: session_name(),
            });
        let endpoint = env
            .get("AWS_ENDPOINT_URL_STS")
            .or_else(|| env.get("AWS_ENDPOINT_URL"))
            .map_or_else(
                || {
                    let fips = if config.use_fips_sts_endpoint {
                        "-fips"
                    } else {
                        ""
                    };
                    format!("https://sts{fips}.{region}.amazonaws.com/")
                },
                str::to_owned,
            );
        let tls = crate::tls::client_config(&TlsConfig::default())
            .map_err(|e| SigV4Error(format!("STS client TLS: {e}")))?;
        // STS is reached directly (no proxy), as the remote-write entry's
        // proxy settings are its own.
        let no_proxy = crate::config::ProxyConfig::default();
        let client = crate::http::client(tls, true, &no_proxy, |b| {
            b.timeout(std::time::Duration::from_secs(30))
                .user_agent(crate::http::USER_AGENT)
        })
        .map_err(|e| SigV4Error(format!("STS client: {e}")))?;
        let sts = Sts {
            client,
            endpoint,
            region: region.clone(),
        };
        let service = config.service.clone().unwrap_or_else(|| "aps".to_owned());
        tracing::debug!(region = %region, service = %service, credentials = source.describe(), "sigv4 signer");
        Ok(Signer {
            region,
            service,
            provider: Provider::new(source, assume, sts),
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Where the first credentials come from ("environment (…)", …).
    pub fn credentials_source(&self) -> &'static str {
        self.provider.source.describe()
    }

    /// Signs a request about to be sent: adds `X-Amz-Date`,
    /// `X-Amz-Content-Sha256`, `X-Amz-Security-Token` (temporary
    /// credentials) and `Authorization` to `headers`, which must hold every
    /// header to be signed (all but hop-by-hop ones and `User-Agent`).
    pub async fn sign(
        &self,
        method: &str,
        url: &Url,
        headers: &mut HeaderMap,
        body: &[u8],
    ) -> Result<(), SigV4Error> {
        let credentials = self.provider.get().await.map_err(SigV4Error)?;
        let amz_date = time::amz_date(SystemTime::now());
        let scope = Scope {
            region: &self.region,
            service: &self.service,
            amz_date: &amz_date,
        };
        credentials
            .sign_into(&scope, method, url, headers, body)
            .map_err(SigV4Error)
    }
}

/// A session name as the SDKs make one when none is given.
fn session_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("relay-{nanos}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(yaml: &[(&str, &str)]) -> SigV4Config {
        let mut c = SigV4Config::default();
        for (k, v) in yaml {
            match *k {
                "region" => c.region = Some(v.to_string()),
                "access_key" => c.access_key = Some(v.to_string()),
                "secret_key" => c.secret_key = Some(Secret(v.to_string())),
                "profile" => c.profile = Some(v.to_string()),
                _ => panic!("{k}"),
            }
        }
        c
    }

    fn files(credentials: &str, config_file: &str) -> (tempfile::TempDir, Vec<(String, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let conf = dir.path().join("config");
        std::fs::write(&creds, credentials).unwrap();
        std::fs::write(&conf, config_file).unwrap();
        let vars = vec![
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                creds.display().to_string(),
            ),
            ("AWS_CONFIG_FILE".into(), conf.display().to_string()),
        ];
        (dir, vars)
    }

    fn env(vars: &[(String, String)], more: &[(&str, &str)]) -> Env {
        let mut pairs: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.extend_from_slice(more);
        Env::from_pairs(&pairs)
    }

    fn key_of(s: &Signer) -> String {
        match &s.provider.source {
            Source::Fixed(c, _) => c.access_key_id().to_owned(),
            Source::WebIdentity { role_arn, .. } => format!("web:{role_arn}"),
        }
    }

    #[test]
    fn credentials_are_found_in_the_sdk_order() {
        let (_dir, vars) = files(
            "[default]\naws_access_key_id = FILEDEFAULT\naws_secret_access_key = s\n[p]\naws_access_key_id = FILEP\naws_secret_access_key = s\n",
            "[default]\nregion = eu-west-1\n",
        );
        let mut vars = vars;
        vars.push(("AWS_REGION".into(), "us-east-1".into()));
        let envkeys = [("AWS_ACCESS_KEY_ID", "ENV"), ("AWS_SECRET_ACCESS_KEY", "s")];
        let irsa = [
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:r"),
        ];
        let all: Vec<(&str, &str)> = envkeys.iter().chain(irsa.iter()).copied().collect();
        let sign = |c: &SigV4Config, e: &Env| key_of(&Signer::with_env(c, e).unwrap());
        // The config's keys first.
        let keys = config(&[("access_key", "CONF"), ("secret_key", "s")]);
        assert_eq!(sign(&keys, &env(&vars, &all)), "CONF");
        // An explicit profile over the environment.
        assert_eq!(
            sign(&config(&[("profile", "p")]), &env(&vars, &all)),
            "FILEP"
        );
        // Then the environment, then the shared files, then IRSA.
        assert_eq!(sign(&config(&[]), &env(&vars, &all)), "ENV");
        assert_eq!(sign(&config(&[]), &env(&vars, &irsa)), "FILEDEFAULT");
        assert_eq!(
            sign(&config(&[]), &env(&vars, &[("AWS_PROFILE", "p")])),
            "FILEP"
        );
        assert_eq!(
            sign(
                &config(&[]),
                &env(&[], &[("AWS_REGION", "x")]).clone_with(&irsa)
            ),
            "web:arn:r"
        );
    }

    #[test]
    fn the_region_comes_from_the_config_the_environment_or_the_profile() {
        let (_dir, vars) = files(
            "[default]\naws_access_key_id = A\naws_secret_access_key = s\n",
            "[default]\nregion = eu-west-1\n",
        );
        let region = |c: &SigV4Config, e: &Env| Signer::with_env(c, e).unwrap().region().to_owned();
        let both = [
            ("AWS_REGION", "us-east-2"),
            ("AWS_DEFAULT_REGION", "us-west-1"),
        ];
        assert_eq!(
            region(&config(&[("region", "ap-south-1")]), &env(&vars, &both)),
            "ap-south-1"
        );
        assert_eq!(region(&config(&[]), &env(&vars, &both)), "us-east-2");
        assert_eq!(region(&config(&[]), &env(&vars, &both[1..])), "us-west-1");
        assert_eq!(region(&config(&[]), &env(&vars, &[])), "eu-west-1");
    }

    #[test]
    fn no_region_or_no_credentials_is_an_error_that_says_where_it_looked() {
        let e = Signer::with_env(
            &config(&[("access_key", "A"), ("secret_key", "topsecret")]),
            &Env::from_pairs(&[("HOME", "/nonexistent")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("region not configured") && e.contains("/nonexistent/.aws/config"),
            "{e}"
        );
        assert!(!e.contains("topsecret"), "{e}");
        let e = Signer::with_env(
            &config(&[("region", "r")]),
            &Env::from_pairs(&[("HOME", "/nonexistent")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no AWS credentials found"), "{e}");
    }

    impl Env {
        fn clone_with(&self, more: &[(&str, &str)]) -> Env {
            let mut e = self.clone();
            for (k, v) in more {
                e.0.insert(k.to_string(), v.to_string());
            }
            e
        }
    }
}
