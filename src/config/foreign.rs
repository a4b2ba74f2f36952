//! Fields that exist in `prometheus.yml` but not in relay: those that do not
//! matter to a relay are dropped with a warning (so an existing config still
//! loads); those that would change behaviour are rejected by name, with the
//! reason. Also turns serde's errors into `path: message` with a did-you-mean.

use figment::error::Kind;
use figment::value::Value;

use super::ConfigError;

/// Top-level or `global:` fields relay ignores, with why it may.
const IGNORED: &[(&str, &str, &str)] = &[
    ("", "rule_files", "relay evaluates no rules"),
    ("", "alerting", "relay sends no alerts"),
    ("", "remote_read", "relay answers no queries"),
    ("", "storage", "relay keeps no TSDB"),
    ("", "tracing", "relay exports no traces"),
    ("global", "evaluation_interval", "relay evaluates no rules"),
    ("global", "rule_query_offset", "relay evaluates no rules"),
    ("global", "query_log_file", "relay answers no queries"),
];

/// Fields relay rejects because ignoring them would change what is scraped
/// or sent, with what to do instead.
const UNSUPPORTED: &[(&str, &str, &str)] = &[
    (
        "",
        "scrape_config_files",
        "list the scrape configs inline under scrape_configs",
    ),
    (
        "scrape_configs[]",
        "bearer_token",
        "use authorization: {credentials: ...}",
    ),
    (
        "scrape_configs[]",
        "bearer_token_file",
        "use authorization: {credentials_file: ...}",
    ),
    (
        "scrape_configs[]",
        "target_limit",
        "a sidecar has static targets",
    ),
    (
        "scrape_configs[]",
        "keep_dropped_targets",
        "a sidecar has static targets",
    ),
    (
        "scrape_configs[]",
        "scrape_classic_histograms",
        "Prometheus 3 renamed it always_scrape_classic_histograms",
    ),
    (
        "scrape_configs[]",
        "convert_classic_histograms_to_nhcb",
        "classic histograms are kept as they are (no custom-bucket native histograms)",
    ),
    (
        "global",
        "convert_classic_histograms_to_nhcb",
        "classic histograms are kept as they are (no custom-bucket native histograms)",
    ),
    (
        "scrape_configs[]",
        "track_timestamps_staleness",
        "not supported yet",
    ),
    (
        "scrape_configs[]",
        "enable_compression",
        "relay always accepts gzip",
    ),
    (
        "remote_write[]",
        "azuread",
        "use authorization, basic_auth or oauth2",
    ),
    (
        "remote_write[]",
        "bearer_token",
        "use authorization: {credentials: ...}",
    ),
    (
        "remote_write[]",
        "bearer_token_file",
        "use authorization: {credentials_file: ...}",
    ),
];

/// Removes ignored fields (returning a warning for each) and rejects
/// unsupported ones, before the strict deserialization sees them.
pub(super) fn strip(root: &mut Value) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    let Value::Dict(_, top) = root else {
        return Err(ConfigError::field(
            "(top level)",
            "expected a mapping of sections (global, scrape_configs, remote_write, relay)",
        ));
    };
    visit(top, "", "", &mut warnings)?;
    if let Some(Value::Dict(_, global)) = top.get_mut("global") {
        visit(global, "global", "global", &mut warnings)?;
    }
    for (section, kind) in [
        ("scrape_configs", "scrape_configs[]"),
        ("remote_write", "remote_write[]"),
    ] {
        if let Some(Value::Array(_, items)) = top.get_mut(section) {
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Dict(_, dict) = item {
                    visit(dict, &format!("{section}[{i}]"), kind, &mut warnings)?;
                }
            }
        }
    }
    Ok(warnings)
}

fn visit(
    dict: &mut figment::value::Dict,
    path: &str,
    kind: &str,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let field_path = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    for key in dict.keys() {
        let unsupported = UNSUPPORTED
            .iter()
            .find(|(k, f, _)| *k == kind && f == key)
            .map(|(_, _, why)| *why)
            .or_else(|| {
                (kind == "scrape_configs[]" && key.ends_with("_sd_configs"))
                    .then_some("a sidecar scrapes static targets (use static_configs)")
            });
        if let Some(why) = unsupported {
            return Err(ConfigError::field(
                field_path(key),
                format!("{key} is not supported by relay: {why}"),
            ));
        }
    }
    for (k, field, why) in IGNORED {
        if *k == kind && dict.remove(*field).is_some() {
            warnings.push(format!("{}: ignored ({why})", field_path(field)));
        }
    }
    Ok(())
}

/// `path: message` for a deserialization error, with a did-you-mean for an
/// unknown field.
pub(crate) fn describe_serde_error(e: serde_path_to_error::Error<figment::Error>) -> ConfigError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let join = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let inner = e.into_inner();
    match inner.kind {
        Kind::UnknownField(field, expected) => {
            let message = match did_you_mean(&field, expected) {
                Some(best) => format!("unknown field {field:?}, did you mean {best:?}?"),
                None => format!(
                    "unknown field {field:?} (expected one of: {})",
                    expected.join(", ")
                ),
            };
            // The path already ends in the unknown key.
            ConfigError::field(path, message)
        }
        Kind::MissingField(field) => ConfigError::field(join(&field), "missing required field"),
        Kind::UnknownVariant(value, expected) => ConfigError::field(
            path,
            format!(
                "unknown value {value:?} (expected one of: {})",
                expected.join(", ")
            ),
        ),
        Kind::InvalidType(actual, expected) => {
            ConfigError::field(path, format!("expected {expected}, got {actual}"))
        }
        Kind::Message(message) => ConfigError::field(path, message),
        other => ConfigError::field(path, other.to_string()),
    }
}

/// The closest expected field name, if one is close enough to be a typo.
fn did_you_mean<'a>(field: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|cand| (strsim::damerau_levenshtein(field, cand), *cand))
        .filter(|(d, cand)| *d <= 2.max(cand.len() / 4))
        .min()
        .map(|(_, cand)| cand)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggestions_are_close_or_absent() {
        let fields = ["scrape_interval", "scrape_timeout", "job_name"];
        assert_eq!(
            did_you_mean("scrape_intervall", &fields),
            Some("scrape_interval")
        );
        assert_eq!(did_you_mean("jobname", &fields), Some("job_name"));
        assert_eq!(did_you_mean("totally_else", &fields), None);
    }
}
