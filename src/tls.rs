//! `tls_config` towards a target (and a remote-write receiver, whose config
//! is checked the same way), with Prometheus's meaning: `ca_file`
//! replaces the public roots, `cert_file`/`key_file` is the client identity,
//! `server_name` is the name the certificate must carry (a sidecar scrapes
//! `localhost`, whose certificate names the service), and
//! `insecure_skip_verify` accepts any certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsConfig;

/// Why a `tls_config` cannot be turned into a client: which field, and why.
#[derive(Debug, thiserror::Error)]
#[error("tls_config.{field}: {message}")]
pub struct TlsError {
    /// The `tls_config` key at fault, for the config's field path.
    pub field: &'static str,
    pub message: String,
}

impl TlsError {
    fn new(field: &'static str, message: impl Into<String>) -> TlsError {
        TlsError {
            field,
            message: message.into(),
        }
    }

    fn file(field: &'static str, path: &Path, why: impl std::fmt::Display) -> TlsError {
        TlsError::new(field, format!("{}: {why}", path.display()))
    }
}

/// Builds the rustls client configuration for one `tls_config`; config
/// validation calls it too, so a bad file fails `relay check config`.
pub fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(tls)?)
        .map_err(|e| TlsError::new("min_version", e.to_string()))?;
    let chain = if tls.insecure_skip_verify {
        None
    } else {
        let roots = Arc::new(roots(tls.ca_file.as_deref())?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::new("ca_file", e.to_string()))?;
        Some(webpki)
    };
    let server_name = match &tls.server_name {
        Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
            TlsError::new(
                "server_name",
                format!("{name:?} is not a valid DNS name or IP address"),
            )
        })?),
        None => None,
    };
    let verifier = Arc::new(Verifier {
        chain,
        server_name,
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = certificates("cert_file", cert)?;
            let key_pem = read("key_file", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| TlsError::file("key_file", key, e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsError::file("cert_file", cert, e))
        }
        (Some(_), None) => Err(TlsError::new(
            "key_file",
            "must be configured when cert_file is configured",
        )),
        (None, Some(_)) => Err(TlsError::new(
            "cert_file",
            "must be configured when key_file is configured",
        )),
        (None, None) => Ok(builder.with_no_client_auth()),
    }
}

/// The protocol versions between `min_version` and `max_version`.
fn versions(tls: &TlsConfig) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    protocol_versions(tls.min_version.as_deref(), tls.max_version.as_deref())
}

/// The protocol versions between two Prometheus version names (`TLS12`…),
/// for clients and for the server of `--web.config.file` alike.
pub(crate) fn protocol_versions(
    min_version: Option<&str>,
    max_version: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let rank = |field: &'static str, value: Option<&str>, unset: u8| match value {
        None | Some("") => Ok(unset),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(TlsError::new(
            field,
            format!("unknown TLS version {other:?} (expected TLS10, TLS11, TLS12 or TLS13)"),
        )),
    };
    let (min, max) = (
        rank("min_version", min_version, 12)?,
        rank("max_version", max_version, 13)?,
    );
    let chosen: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, version)| version)
        .collect();
    if chosen.is_empty() {
        return Err(TlsError::new(
            "max_version",
            "relay speaks TLS 1.2 and 1.3 only; allow at least one of them",
        ));
    }
    Ok(chosen)
}

/// The CA file's certificates when given (as Go does), else the public roots.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates("ca_file", path)? {
                store
                    .add(cert)
                    .map_err(|e| TlsError::file("ca_file", path, e))?;
            }
        }
        None => store
            .roots
            .extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::file(field, path, format!("cannot read: {e}")))
}

/// Every certificate in a PEM file; a file with none is an error.
fn certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(field, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::file(field, path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Checks a target's certificate as `tls_config` says: its chain against
/// the roots and its name against `server_name` (else the URL's host), or
/// neither with `insecure_skip_verify`. The handshake signature must match
/// the certificate either way, as with Go's `InsecureSkipVerify`.
#[derive(Debug)]
struct Verifier {
    /// None with `insecure_skip_verify`.
    chain: Option<Arc<WebPkiServerVerifier>>,
    server_name: Option<ServerName<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        url_host: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.chain {
            Some(chain) => chain.verify_server_cert(
                end_entity,
                intermediates,
                self.server_name.as_ref().unwrap_or(url_host),
                ocsp_response,
                now,
            ),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(min: Option<&str>, max: Option<&str>) -> Result<Vec<u16>, String> {
        let tls = TlsConfig {
            min_version: min.map(str::to_owned),
            max_version: max.map(str::to_owned),
            ..TlsConfig::default()
        };
        versions(&tls)
            .map(|v| v.iter().map(|v| u16::from(v.version)).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn versions_follow_min_and_max() {
        let (v12, v13) = (0x0303, 0x0304);
        assert_eq!(chosen(None, None), Ok(vec![v12, v13]));
        assert_eq!(chosen(Some("TLS10"), None), Ok(vec![v12, v13]));
        assert_eq!(chosen(Some("TLS13"), None), Ok(vec![v13]));
        assert_eq!(chosen(None, Some("TLS12")), Ok(vec![v12]));
        assert!(chosen(Some("TLS13"), Some("TLS12")).is_err());
        assert_eq!(
            chosen(Some("tls13"), None),
            Err("tls_config.min_version: unknown TLS version \"tls13\" \
                 (expected TLS10, TLS11, TLS12 or TLS13)"
                .into())
        );
    }
}
