//! Credentials towards targets and receivers alike: `authorization` and
//! `basic_auth`, with secrets given inline or read from their files on every
//! request (so a rotated Kubernetes Secret is picked up without a restart).

use std::path::Path;

use reqwest::header::AUTHORIZATION;
use reqwest::RequestBuilder;

use crate::config::{Authorization, BasicAuth};

/// A secret file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct SecretFileError {
    pub path: String,
    pub source: std::io::Error,
}

/// Adds the configured credentials to `request`.
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
