//! relay's port secured in the generated Pod: `--web-tls-secret` mounts a
//! `kubernetes.io/tls` Secret (what cert-manager writes: tls.crt, tls.key,
//! ca.crt) and turns TLS on; `--web-config` embeds a web config of your own
//! (basic_auth_users, client certificates) instead of the generated one.
//! Either way the web config is the relay ConfigMap's `web.yml`, and the
//! kubelet's probes switch to HTTPS when it turns TLS on.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{flag, GenError, Options, CONFIG_DIR};
use crate::web::WebConfig;

/// The ConfigMap key holding the web config.
pub const WEB_CONFIG_KEY: &str = "web.yml";
/// The web config inside the container (the ConfigMap is mounted at CONFIG_DIR).
pub const WEB_CONFIG_PATH: &str = "/etc/relay/web.yml";
/// Where the TLS Secret is mounted (beside the ConfigMap, not inside it).
pub const WEB_TLS_DIR: &str = "/etc/relay-tls";

/// The web config as embedded, and what it asks of the Pod.
#[derive(Debug, Clone)]
pub(crate) struct WebSetup {
    pub yaml: String,
    /// Whether relay serves HTTPS: the probes' scheme.
    pub tls: bool,
    /// The Secret mounted at WEB_TLS_DIR.
    pub tls_secret: Option<String>,
}

static DNS_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        .expect("static regex")
});

/// Checks a Secret's name given to `flag_name` (a DNS subdomain, as Secret names are).
pub(crate) fn secret_name(flag_name: &'static str, value: &str) -> Result<String, GenError> {
    if value.len() > 253 || !DNS_SUBDOMAIN.is_match(value) {
        return Err(flag(
            flag_name,
            format!("{value:?} is not a Secret name (a DNS subdomain: lowercase letters, digits, '-' and '.')"),
        ));
    }
    Ok(value.to_owned())
}

fn generated(secret: &str) -> String {
    format!(
        "# relay's port over TLS with the Secret {secret:?} (cert-manager writes tls.crt and tls.key),\n\
         # read again on every handshake: a renewed certificate applies without a restart.\n\
         tls_server_config:\n  cert_file: {WEB_TLS_DIR}/tls.crt\n  key_file: {WEB_TLS_DIR}/tls.key\n"
    )
}

/// The web config for the options, if they ask for one.
pub(crate) fn build(options: &Options) -> Result<Option<WebSetup>, GenError> {
    let secret = options.web_tls_secret.clone();
    let Some(path) = &options.web_config else {
        return Ok(secret.map(|s| WebSetup {
            yaml: generated(&s),
            tls: true,
            tls_secret: Some(s),
        }));
    };
    let invalid = |message: String| GenError::WebConfig {
        path: path.clone(),
        message,
    };
    let yaml = std::fs::read_to_string(path).map_err(|source| GenError::Read {
        path: path.clone(),
        source,
    })?;
    let config =
        WebConfig::parse(&yaml, Some(Path::new(CONFIG_DIR))).map_err(|e| invalid(e.to_string()))?;
    let tls = config.tls_enabled();
    if let Some(t) = config.tls_server_config.as_ref().filter(|_| tls) {
        for (name, file) in [
            ("cert_file", &t.cert_file),
            ("key_file", &t.key_file),
            ("client_ca_file", &t.client_ca_file),
        ] {
            let Some(file) = file.as_ref().filter(|f| !f.as_os_str().is_empty()) else {
                continue;
            };
            if secret.is_none() || !file.starts_with(WEB_TLS_DIR) {
                return Err(invalid(format!(
                    "tls_server_config.{name}: {} is not in the Pod: name a file of \
                     --web-tls-secret's Secret, mounted at {WEB_TLS_DIR}",
                    file.display()
                )));
            }
        }
    }
    if secret.is_some() && !tls {
        return Err(flag(
            "--web-tls-secret",
            "the --web-config file has no tls_server_config, so TLS would stay off",
        ));
    }
    Ok(Some(WebSetup {
        yaml,
        tls,
        tls_secret: secret,
    }))
}

/// The web config file in the Pod, for relay's args.
pub(crate) fn config_path() -> PathBuf {
    PathBuf::from(WEB_CONFIG_PATH)
}
