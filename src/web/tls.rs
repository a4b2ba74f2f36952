//! `tls_server_config` as a rustls server config, with Go's meanings: the
//! five client auth policies, `client_allowed_sans`, `min_version` and
//! `max_version`, `cipher_suites` (TLS 1.2; TLS 1.3's are always on, as in
//! Go) and `curve_preferences` by Go's names, refused by name where rustls
//! has no such suite or curve.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, NamedGroup, RootCertStore, SignatureScheme,
    SupportedCipherSuite,
};

use super::{field, ClientAuth, TlsServerConfig, WebConfigError};

const PATH: &str = "tls_server_config";

/// What a server config is built from, read from the files or the
/// inline fields; compared on each handshake to see whether to rebuild.
#[derive(PartialEq, Eq)]
pub(super) struct Inputs {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

fn nonempty<T: AsRef<std::ffi::OsStr>>(value: &Option<T>) -> Option<&T> {
    value.as_ref().filter(|v| !v.as_ref().is_empty())
}

impl Inputs {
    /// Reads the certificate, key and client CA now.
    pub(super) fn read(tls: &TlsServerConfig) -> Result<Inputs, WebConfigError> {
        let read = |name: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                field(
                    format!("{PATH}.{name}"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })
        };
        let cert = match nonempty(&tls.cert_file) {
            Some(path) => read("cert_file", path)?,
            None => tls.cert.clone().unwrap_or_default().into_bytes(),
        };
        let key = match nonempty(&tls.key_file) {
            Some(path) => read("key_file", path)?,
            None => tls
                .key
                .as_ref()
                .map(|k| k.0.clone())
                .unwrap_or_default()
                .into_bytes(),
        };
        let client_ca = match (nonempty(&tls.client_ca_file), nonempty(&tls.client_ca)) {
            (Some(path), _) => Some(read("client_ca_file", path)?),
            (None, Some(text)) => Some(text.clone().into_bytes()),
            (None, None) => None,
        };
        Ok(Inputs {
            cert,
            key,
            client_ca,
        })
    }
}

/// The field a PEM input came from, for errors.
fn source(tls: &TlsServerConfig, inline: &'static str, file: &'static str) -> &'static str {
    let has_file = match file {
        "cert_file" => nonempty(&tls.cert_file).is_some(),
        "key_file" => nonempty(&tls.key_file).is_some(),
        _ => nonempty(&tls.client_ca_file).is_some(),
    };
    if has_file {
        file
    } else {
        inline
    }
}

fn certificates(
    tls: &TlsServerConfig,
    pem: &[u8],
    inline: &'static str,
    file: &'static str,
) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let at = format!("{PATH}.{}", source(tls, inline, file));
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| field(&at, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(field(at, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Builds the server config; `relay run` does at start, so a bad
/// certificate or key stops it with the field at fault.
pub(super) fn server_config(
    tls: &TlsServerConfig,
    inputs: &Inputs,
) -> Result<rustls::ServerConfig, WebConfigError> {
    let provider = Arc::new(provider(tls)?);
    let versions =
        crate::tls::protocol_versions(tls.min_version.as_deref(), tls.max_version.as_deref())
            .map_err(|e| field(format!("{PATH}.{}", e.field), e.message))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| field(format!("{PATH}.min_version"), e.to_string()))?;
    let auth = tls.client_auth()?;
    let builder = match auth {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        _ => {
            let chain = match &inputs.client_ca {
                Some(pem) if auth.verifies() => {
                    let at = format!("{PATH}.{}", source(tls, "client_ca", "client_ca_file"));
                    let mut roots = RootCertStore::empty();
                    for cert in certificates(tls, pem, "client_ca", "client_ca_file")? {
                        roots.add(cert).map_err(|e| field(&at, e.to_string()))?;
                    }
                    let verifier = WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider.clone(),
                    );
                    let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                        verifier.allow_unauthenticated()
                    } else {
                        verifier
                    };
                    Some(verifier.build().map_err(|e| field(&at, e.to_string()))?)
                }
                _ => None,
            };
            builder.with_client_cert_verifier(Arc::new(ClientVerifier {
                chain,
                mandatory: matches!(
                    auth,
                    ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
                ),
                allowed_sans: allowed_sans(tls)?,
                algorithms: provider.signature_verification_algorithms,
            }))
        }
    };
    let chain = certificates(tls, &inputs.cert, "cert", "cert_file")?;
    let key_at = format!("{PATH}.{}", source(tls, "key", "key_file"));
    let key = PrivateKeyDer::from_pem_slice(&inputs.key)
        .map_err(|e| field(&key_at, format!("no PEM private key: {e}")))?;
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        field(
            format!("{PATH}.{}", source(tls, "cert", "cert_file")),
            format!("certificate and key do not go together: {e}"),
        )
    })?;
    config.ignore_client_order = tls.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks the names in the file (suites, curves, versions, SANs) without
/// reading any file.
pub(super) fn check_names(tls: &TlsServerConfig) -> Result<(), WebConfigError> {
    provider(tls)?;
    crate::tls::protocol_versions(tls.min_version.as_deref(), tls.max_version.as_deref())
        .map_err(|e| field(format!("{PATH}.{}", e.field), e.message))?;
    allowed_sans(tls)?;
    Ok(())
}

/// ring's suites and curves, narrowed and ordered as the file says.
fn provider(tls: &TlsServerConfig) -> Result<CryptoProvider, WebConfigError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = tls.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        let name = |s: &SupportedCipherSuite| format!("{:?}", s.suite());
        let (tls13, tls12): (Vec<_>, Vec<_>) = provider
            .cipher_suites
            .iter()
            .partition(|s| matches!(s, SupportedCipherSuite::Tls13(_)));
        let mut chosen = Vec::new();
        for (i, wanted) in names.iter().enumerate() {
            if tls13.iter().any(|s| &name(s) == wanted) {
                continue; // TLS 1.3's suites are not configurable, as in Go.
            }
            match tls12.iter().find(|s| &name(s) == wanted) {
                Some(s) => chosen.push(*s),
                None => {
                    let known: Vec<String> = tls12.iter().map(name).collect();
                    return Err(field(
                        format!("{PATH}.cipher_suites[{i}]"),
                        format!(
                            "{wanted:?} is not a TLS 1.2 cipher suite relay has (it has: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        provider.cipher_suites = tls13.into_iter().chain(chosen).collect();
    }
    if let Some(names) = tls.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        let mut groups = Vec::new();
        for (i, wanted) in names.iter().enumerate() {
            let group = match wanted.as_str() {
                "X25519" => Some(NamedGroup::X25519),
                "CurveP256" => Some(NamedGroup::secp256r1),
                "CurveP384" => Some(NamedGroup::secp384r1),
                _ => None,
            };
            let found = group.and_then(|g| provider.kx_groups.iter().find(|k| k.name() == g));
            match found {
                Some(k) => groups.push(*k),
                None => {
                    return Err(field(
                        format!("{PATH}.curve_preferences[{i}]"),
                        format!(
                            "{wanted:?} is not a curve relay has (it has: X25519, CurveP256, CurveP384)"
                        ),
                    ))
                }
            }
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// `client_allowed_sans` as names a certificate is checked against: DNS
/// names and IP addresses (relay does not match e-mail or URI SANs).
fn allowed_sans(tls: &TlsServerConfig) -> Result<Vec<ServerName<'static>>, WebConfigError> {
    let mut out = Vec::new();
    for (i, san) in tls.client_allowed_sans.iter().flatten().enumerate() {
        let name = ServerName::try_from(san.clone()).map_err(|_| {
            field(
                format!("{PATH}.client_allowed_sans[{i}]"),
                format!("{san:?} is neither a DNS name nor an IP address (relay matches those SANs only)"),
            )
        })?;
        out.push(name);
    }
    Ok(out)
}

/// A client certificate checked as `client_auth_type` says: its chain
/// against the client CA (the verifying policies), any certificate
/// otherwise; then its SANs against `client_allowed_sans`. The handshake
/// signature must match the certificate in every case.
#[derive(Debug)]
struct ClientVerifier {
    chain: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    allowed_sans: Vec<ServerName<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.as_ref().map_or(&[], |c| c.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(chain) = &self.chain {
            chain.verify_client_cert(end_entity, intermediates, now)?;
        }
        if !self.allowed_sans.is_empty() {
            let cert = webpki::EndEntityCert::try_from(end_entity)
                .map_err(|e| rustls::Error::General(format!("bad client certificate: {e}")))?;
            if !self
                .allowed_sans
                .iter()
                .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
            {
                return Err(rustls::Error::General(
                    "the client certificate has none of client_allowed_sans".into(),
                ));
            }
        }
        Ok(ClientCertVerified::assertion())
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
