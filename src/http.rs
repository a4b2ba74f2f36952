//! HTTP helpers that scraping and remote write share, below both: the
//! redirect policy of Prometheus's `follow_redirects`, its proxy settings,
//! one-line client errors without secrets, and the client builder the plan
//! uses.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::ProxyConfig;

/// relay's `User-Agent`, towards targets and receivers alike.
pub const USER_AGENT: &str = concat!("relay/", env!("CARGO_PKG_VERSION"));

/// Builds a client on a built `tls` config with the redirect policy and
/// the proxy settings; `configure` adds what differs between a scrape, a
/// remote write and a token request (headers, timeout).
pub fn client(
    tls: rustls::ClientConfig,
    follow_redirects: bool,
    proxy: &ProxyConfig,
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, reqwest::Error> {
    let builder = configure(reqwest::Client::builder())
        .redirect(redirect_policy(follow_redirects))
        .use_preconfigured_tls(tls);
    with_proxy(builder, proxy)?.build()
}

/// Prometheus's `ProxyConfig` on a client. Without one, no proxy at all:
/// reqwest would otherwise take `HTTP_PROXY` from the environment, which
/// Prometheus does only with `proxy_from_environment`.
fn with_proxy(
    builder: reqwest::ClientBuilder,
    config: &ProxyConfig,
) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    let builder = builder.no_proxy();
    let proxy = match config.proxy_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => reqwest::Proxy::all(url)?.no_proxy(
            config
                .no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string),
        ),
        None if config.proxy_from_environment => environment_proxy(),
        None => return Ok(builder),
    };
    Ok(builder.proxy(proxy.headers(connect_headers(config))))
}

/// The `proxy_connect_header` values (checked when the config loaded).
fn connect_headers(config: &ProxyConfig) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, values) in &config.proxy_connect_header {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(mut value) = HeaderValue::from_str(&value.0) {
                value.set_sensitive(true);
                headers.append(name.clone(), value);
            }
        }
    }
    headers
}

/// Go's `http.ProxyFromEnvironment`, read when the client is built:
/// `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http ones (upper case
/// first), `NO_PROXY`, and never a proxy for `localhost` or a loopback
/// address, so a sidecar in a pod with a corporate proxy in its
/// environment still scrapes its neighbour directly.
fn environment_proxy() -> reqwest::Proxy {
    let var = |names: [&str; 2]| {
        names
            .into_iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            .map(|v| {
                if v.contains("://") {
                    v
                } else {
                    format!("http://{v}")
                }
            })
    };
    let http = var(["HTTP_PROXY", "http_proxy"]);
    let https = var(["HTTPS_PROXY", "https_proxy"]);
    reqwest::Proxy::custom(move |url| environment_choice(url, http.as_deref(), https.as_deref()))
        .no_proxy(reqwest::NoProxy::from_env())
}

/// The proxy `ProxyFromEnvironment` picks for `url`, if any.
fn environment_choice(
    url: &reqwest::Url,
    http: Option<&str>,
    https: Option<&str>,
) -> Option<String> {
    let local = url.host_str().is_none_or(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if local {
        return None;
    }
    match url.scheme() {
        "https" => https.map(str::to_owned),
        "http" => http.map(str::to_owned),
        _ => None,
    }
}

/// Prometheus's `follow_redirects` as Go's client does it: at most 10
/// requests (the 10th redirect is refused, with Go's words), 307/308
/// resend the method and body, 301/302/303 turn a POST into a GET; reqwest
/// drops `Authorization` on a redirect to another host or port.
pub fn redirect_policy(follow: bool) -> reqwest::redirect::Policy {
    if !follow {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(|attempt| {
        // `previous` holds every URL requested so far, the first included.
        if attempt.previous().len() >= 10 {
            attempt.error("stopped after 10 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// A client error as one line: reqwest's terse Display plus its source
/// chain, and the URL it concerns only when a redirect led elsewhere than
/// `requested` (which the caller's log line names), password redacted.
/// reqwest reports the URL without the user info it sent as basic auth, so
/// the two are compared without it.
pub fn error_message(e: reqwest::Error, requested: &str) -> String {
    let without_user = |u: &reqwest::Url| {
        let mut u = u.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u
    };
    let requested = reqwest::Url::parse(requested)
        .ok()
        .map(|u| without_user(&u));
    let at = e
        .url()
        .filter(|u| requested.as_ref() != Some(&without_user(u)))
        .map(|u| crate::config::redact_url(u.as_str()));
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if let Some(at) = at {
        message.push_str(&format!(" (after a redirect to {at})"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::environment_choice;

    #[test]
    fn the_environment_proxy_is_go_s_choice() {
        let choose = |url: &str| {
            let url = reqwest::Url::parse(url).expect("a URL");
            environment_choice(&url, Some("http://p:1"), Some("http://s:2"))
        };
        assert_eq!(
            choose("http://app:8001/metrics").as_deref(),
            Some("http://p:1")
        );
        assert_eq!(
            choose("https://rw/api/v1/write").as_deref(),
            Some("http://s:2")
        );
        // Never for the pod's own loopback.
        assert_eq!(choose("http://localhost:8001/metrics"), None);
        assert_eq!(choose("http://LOCALHOST:8001/metrics"), None);
        assert_eq!(choose("http://127.0.0.1:8001/metrics"), None);
        assert_eq!(choose("http://127.3.2.1:8001/metrics"), None);
        assert_eq!(choose("http://[::1]:8001/metrics"), None);
        let url = reqwest::Url::parse("https://rw/").expect("a URL");
        assert_eq!(environment_choice(&url, Some("http://p:1"), None), None);
    }
}
