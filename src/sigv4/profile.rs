//! The shared AWS files as the SDKs read them: `~/.aws/credentials`
//! (sections `[name]`) and `~/.aws/config` (sections `[profile name]`, and
//! `[default]`), their paths moved by `AWS_SHARED_CREDENTIALS_FILE` and
//! `AWS_CONFIG_FILE`. Only the keys relay uses are read: access key, secret,
//! session token and region.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Env;

/// One profile's settings, merged from both files (the credentials file
/// wins for keys both have, as in the SDKs).
#[derive(Default)]
pub(crate) struct Profile {
    pub name: String,
    /// Where the settings were looked for, for error messages.
    pub files: Vec<PathBuf>,
    pub values: HashMap<String, String>,
}

impl Profile {
    /// A setting, if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Reads profile `name` (None: `AWS_PROFILE`, else `default`) from the
/// shared files; a missing file is no error (most pods have none).
pub(crate) fn load(name: Option<&str>, env: &Env) -> Result<Profile, String> {
    let name = name
        .filter(|n| !n.is_empty())
        .or_else(|| env.get("AWS_PROFILE"))
        .unwrap_or("default")
        .to_owned();
    let home = env.get("HOME").map(PathBuf::from);
    let in_home = |rel: &str| home.as_ref().map(|h| h.join(".aws").join(rel));
    let config = env
        .get("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home("config"));
    let credentials = env
        .get("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home("credentials"));
    let mut profile = Profile {
        name: name.clone(),
        ..Profile::default()
    };
    let config_section = if name == "default" {
        "default".to_owned()
    } else {
        format!("profile {name}")
    };
    for (path, section) in [(config, config_section), (credentials, name)] {
        let Some(path) = path else { continue };
        profile.files.push(path.clone());
        if let Some(text) = read(&path)? {
            profile.values.extend(section_of(&text, &section));
        }
    }
    Ok(profile)
}

fn read(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The `key = value` pairs of `[section]` (names matched after trimming
/// the brackets' inside; comments `#`/`;` at a line's start).
fn section_of(text: &str, section: &str) -> HashMap<String, String> {
    let mut values = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let head = head.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = head == section;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_read_and_others_are_not() {
        let text = "[default]\naws_access_key_id = A\n# c\n[profile  other]\nregion=eu-west-1\n[x]\nregion = no\n";
        assert_eq!(
            section_of(text, "default")
                .get("aws_access_key_id")
                .map(String::as_str),
            Some("A")
        );
        assert_eq!(
            section_of(text, "profile other")
                .get("region")
                .map(String::as_str),
            Some("eu-west-1")
        );
        assert_eq!(section_of(text, "other").len(), 0);
    }

    #[test]
    fn the_credentials_file_wins_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &config,
            "[profile p]\nregion = eu-west-1\naws_access_key_id = FROMCONFIG\n",
        )
        .unwrap();
        std::fs::write(&credentials, "[p]\naws_access_key_id = FROMCREDS\n").unwrap();
        let env = Env::from_pairs(&[
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
            ("AWS_PROFILE", "p"),
        ]);
        let p = load(None, &env).unwrap();
        assert_eq!(p.name, "p");
        assert_eq!(p.get("aws_access_key_id"), Some("FROMCREDS"));
        assert_eq!(p.get("region"), Some("eu-west-1"));
    }
}
