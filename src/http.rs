//! HTTP helpers that scraping and remote write share, below both: the
//! redirect policy of Prometheus's `follow_redirects`, one-line client
//! errors without secrets, and the client builder the plan uses.

/// relay's `User-Agent`, towards targets and receivers alike.
pub const USER_AGENT: &str = concat!("relay/", env!("CARGO_PKG_VERSION"));

/// Builds a client on a built `tls` config with the redirect policy;
/// `configure` adds what differs between a scrape and a remote write
/// (headers, timeout).
pub fn client(
    tls: rustls::ClientConfig,
    follow_redirects: bool,
    configure: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, reqwest::Error> {
    configure(reqwest::Client::builder())
        .redirect(redirect_policy(follow_redirects))
        .use_preconfigured_tls(tls)
        .build()
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
