//! `host:port` read one way for the config check, the scrape targets and
//! `relay gen`: a config that `relay check config` accepts gives targets the
//! scrape can reach, and gen finds the same ports in it.

use thiserror::Error;

/// Why an address is not `host[:port]`; each message says what would fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HostPortError {
    #[error("has an invalid port")]
    Port,
    #[error(
        "has user info (user:password@host), which relay refuses: put the credentials in basic_auth"
    )]
    UserInfo,
    #[error("is not a valid host (an IPv6 address goes in brackets, e.g. [::1]:8001)")]
    Host,
}

/// Splits `host[:port]` as Go's `net.SplitHostPort` does (an IPv6 host in
/// brackets, kept with them), except that the port is optional (Prometheus
/// 2.x adds the scheme's default). A bad port is reported before user info
/// and user info before a bad host, so the message names the first fix.
pub fn split(addr: &str) -> Result<(&str, Option<u16>), HostPortError> {
    let (host, port) = match addr.strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']').ok_or(HostPortError::Host)?;
            let (host, rest) = addr.split_at(close + 2);
            match rest {
                "" => (host, None),
                _ => (
                    host,
                    Some(rest.strip_prefix(':').ok_or(HostPortError::Host)?),
                ),
            }
        }
        None => match addr.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (addr, None),
        },
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().map_err(|_| HostPortError::Port)?),
        None => None,
    };
    if host.contains('@') {
        return Err(HostPortError::UserInfo);
    }
    let bracketed = host.starts_with('[');
    let inner = if bracketed {
        &host[1..host.len() - 1]
    } else {
        host
    };
    if inner.contains(['[', ']', '/', '?', '#', ' ']) || (!bracketed && inner.contains(':')) {
        return Err(HostPortError::Host);
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Split<'a> = Result<(&'a str, Option<u16>), HostPortError>;

    #[test]
    fn splits_like_go_with_an_optional_port() {
        use HostPortError::*;
        let cases: [(&str, Split<'_>); 14] = [
            ("localhost:8001", Ok(("localhost", Some(8001)))),
            ("localhost", Ok(("localhost", None))),
            (":9090", Ok(("", Some(9090)))),
            ("0.0.0.0:9090", Ok(("0.0.0.0", Some(9090)))),
            ("[::1]:8001", Ok(("[::1]", Some(8001)))),
            ("[::]", Ok(("[::]", None))),
            ("b:x", Err(Port)),
            ("host:", Err(Port)),
            ("a:70000", Err(Port)),
            ("alice:S3cret@127.0.0.1:notaport", Err(Port)),
            ("alice:S3cret@127.0.0.1:18001", Err(UserInfo)),
            ("::1:8001", Err(Host)),
            ("[::1]x", Err(Host)),
            ("[::1", Err(Host)),
        ];
        for (addr, want) in cases {
            assert_eq!(split(addr), want, "{addr}");
        }
    }

    /// What `relay check config` accepts, the scrape can reach: each
    /// target either is refused by the config check or becomes a URL with
    /// the same host and port (the two checks used to differ: "::1:8001"
    /// passed the config and became the URL "http://::1:8001:80/metrics").
    #[test]
    fn the_config_check_and_the_targets_agree() {
        for target in [
            "localhost:8001",
            "localhost",
            "[::1]:8001",
            "[::1]",
            "::1:8001",
            "a:b:8001",
            "h:1:2",
        ] {
            let yaml = format!(
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [{target:?}]\n"
            );
            let Ok(loaded) = crate::config::from_yaml_str(&yaml) else {
                continue;
            };
            let (targets, errors) = crate::targets::from_config(
                &loaded.config.scrape_configs[0],
                &crate::relabel::Rules::default(),
            );
            assert!(
                errors.is_empty(),
                "{target}: accepted by the config, refused by the scrape: {errors:?}"
            );
            let url = reqwest::Url::parse(&targets[0].url);
            assert!(
                url.is_ok_and(|u| u.authority().starts_with(target)),
                "{target}: accepted by the config, scraped at {:?}",
                targets[0].url
            );
        }
    }
}
