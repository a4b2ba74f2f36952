//! `oauth2` (client credentials) towards targets and receivers, with the
//! real relay binary and a loopback token endpoint (`common::oauth2`): the
//! token is fetched once and reused, fetched again once it expires, a
//! refusing endpoint gives `up 0` and a log line naming it (or a retried
//! send), and the client secret shows nowhere.

mod common;

use common::oauth2::{form_value, TokenEndpoint};
use common::proxy::Proxy;
use common::rw::Receiver;
use common::{get, wait_for, Relay, Reply, Target};

const SECRET: &str = "s3cr3t/with+odd chars";

/// A job `app` scraping `target` every second, with `oauth2` at `token_url`
/// (plus `more` lines inside the block).
fn job(target: &str, token_url: &str, more: &str) -> String {
    format!(
        "scrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    static_configs: [{{targets: [\"{target}\"]}}]\n    oauth2:\n      client_id: relay-client\n      client_secret: \"{SECRET}\"\n      token_url: {token_url}\n      scopes: [metrics.read, metrics.list]\n      endpoint_params: {{audience: relay}}\n{more}"
    )
}

/// The `Authorization` header of the target's latest request.
fn authorization(target: &Target) -> Option<String> {
    target.last_request().lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_owned())
    })
}

#[test]
fn a_token_is_fetched_once_and_reused_across_scrapes() {
    let tokens = TokenEndpoint::start("relay-client", SECRET, 3600);
    let target = Target::start(Reply::text("app_metric 1\n"));
    let relay = Relay::start(&job(&target.addr, &tokens.url, ""));
    // Without remote write relay scrapes for each GET of /metrics.
    wait_for("four scrapes", || {
        relay.metrics();
        (target.paths().len() >= 4).then_some(())
    });
    assert!(relay.wait_for_line("up{").ends_with(" 1"));
    assert_eq!(authorization(&target).as_deref(), Some("Bearer token-1"));
    assert_eq!(tokens.issued(), 1, "one token for every scrape");
    // As x/oauth2: a form POST with the grant, the scopes space-separated,
    // the endpoint params, and the id and secret in a Basic header.
    let requests = tokens.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (head, body) = &requests[0];
    assert!(head.starts_with("POST /oauth2/token "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-www-form-urlencoded"),
        "{head}"
    );
    assert!(head.contains("uthorization: Basic "), "{head}");
    assert_eq!(
        form_value(body, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(
        form_value(body, "scope").as_deref(),
        Some("metrics.read metrics.list")
    );
    assert_eq!(form_value(body, "audience").as_deref(), Some("relay"));
    assert_eq!(form_value(body, "client_secret"), None, "not in the form");
    // Nowhere to be seen: logs, /metrics, the config API.
    let config = get(&relay.addr, "/api/v1/status/config", &[]).expect("config API");
    for (what, text) in [
        ("logs", relay.logs()),
        ("/metrics", relay.metrics_ok()),
        ("/api/v1/status/config", config.text()),
    ] {
        assert!(!text.contains("s3cr3t"), "{what}: {text}");
    }
    assert!(
        config.text().contains("client_secret: <secret>"),
        "{}",
        config.text()
    );
}

#[test]
fn a_token_is_fetched_again_after_it_expires() {
    // 11 s less x/oauth2's 10 s expiry delta: a token lasts about a second.
    let tokens = TokenEndpoint::start("relay-client", SECRET, 11);
    let target = Target::start(Reply::text("app_metric 1\n"));
    let relay = Relay::start(&job(&target.addr, &tokens.url, ""));
    wait_for("a third token", || {
        relay.metrics();
        std::thread::sleep(std::time::Duration::from_millis(200));
        (tokens.issued() >= 3).then_some(())
    });
    // The scrapes carry the newer tokens, not the first one.
    let newer = wait_for("a scrape with a refreshed token", || {
        relay.metrics();
        authorization(&target).filter(|a| a != "Bearer token-1" && a.starts_with("Bearer token-"))
    });
    assert!(newer.starts_with("Bearer token-"), "{newer}");
    assert!(relay.wait_for_line("up{").ends_with(" 1"));
}

#[test]
fn a_refusing_token_endpoint_is_up_0_and_a_log_line_not_a_crash() {
    let tokens = TokenEndpoint::start("relay-client", "another secret", 3600);
    let target = Target::start(Reply::text("app_metric 1\n"));
    let relay = Relay::start(&job(&target.addr, &tokens.url, ""));
    assert!(relay.wait_for_line("up{").ends_with(" 0"));
    let line = relay.wait_for_log(&["scrape failed", "oauth2"]);
    assert!(
        line.contains(&format!("cannot fetch token from {}", tokens.url)),
        "{line}"
    );
    assert!(line.contains("401"), "{line}");
    assert!(!line.contains("s3cr3t"), "{line}");
    // Header first, then the form (x/oauth2's probe); nothing reached the app.
    let requests = tokens.requests();
    assert!(
        requests
            .iter()
            .any(|(_, body)| form_value(body, "client_id").as_deref() == Some("relay-client")),
        "{requests:?}"
    );
    assert!(target.paths().is_empty(), "{:?}", target.paths());
    // Still running.
    assert!(relay.metrics_ok().contains("up{"));
    assert_eq!(tokens.issued(), 0);
}

#[test]
fn remote_write_sends_the_token_and_retries_while_the_endpoint_refuses() {
    let tokens = TokenEndpoint::start("relay-client", SECRET, 3600);
    tokens.refuse(true);
    let target = Target::start(Reply::text("app_metric 1\n"));
    let receiver = Receiver::start();
    // From a file, its trailing newline trimmed.
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    let config = format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {}\n    queue_config: {{min_backoff: 50ms, max_backoff: 200ms, batch_send_deadline: 200ms}}\n    oauth2:\n      client_id: relay-client\n      client_secret_file: {}\n      token_url: {}\n",
        target.addr,
        receiver.url,
        secret.display(),
        tokens.url
    );
    let relay = Relay::start(&config);
    // Refused: retried like a network error, logged with the token URL.
    let line = relay.wait_for_log(&["remote write failed; retrying", "oauth2"]);
    assert!(line.contains("401"), "{line}");
    assert!(receiver.requests().is_empty());
    let refused = tokens.requests().len();
    wait_for("a retry", || {
        (tokens.requests().len() > refused).then_some(())
    });
    tokens.refuse(false);
    let got = wait_for("samples at the receiver", || {
        let got = receiver.accepted_named("app_metric");
        (got.len() >= 3).then_some(got)
    });
    assert!(got.len() >= 3);
    let requests = receiver.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer token-1")),
        "every send carries the one token"
    );
    assert_eq!(tokens.issued(), 1);
    assert!(!relay.logs().contains("s3cr3t"));
}

#[test]
fn the_token_request_goes_through_the_blocks_own_proxy() {
    let tokens = TokenEndpoint::start("relay-client", SECRET, 3600);
    let proxy = Proxy::start();
    let target = Target::start(Reply::text("app_metric 1\n"));
    let relay = Relay::start(&job(
        &target.addr,
        &tokens.url,
        &format!("      proxy_url: {}\n", proxy.url),
    ));
    assert!(relay.wait_for_line("up{").ends_with(" 1"));
    let via = proxy.requests_starting(&format!("POST {}", tokens.url));
    assert_eq!(via.len(), 1, "{:?}", proxy.requests());
    // The scrape itself does not use the token's proxy.
    assert!(
        proxy.requests_starting("GET ").is_empty(),
        "{:?}",
        proxy.requests()
    );
}

#[test]
fn a_rotated_client_secret_file_is_read_at_the_next_scrape() {
    let tokens = TokenEndpoint::start("relay-client", SECRET, 3600);
    let target = Target::start(Reply::text("app_metric 1\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "an old secret\n").expect("secret");
    let config = job(&target.addr, &tokens.url, "").replace(
        &format!("client_secret: \"{SECRET}\""),
        &format!("client_secret_file: {}", secret.display()),
    );
    let relay = Relay::start(&config);
    assert!(relay.wait_for_line("up{").ends_with(" 0"));
    assert_eq!(tokens.issued(), 0);
    // The Secret is updated in place (as Kubernetes does): no restart.
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    wait_for("up 1 with the new secret", || {
        relay
            .metrics()
            .lines()
            .any(|l| l.starts_with("up{") && l.ends_with(" 1"))
            .then_some(())
    });
    assert_eq!(authorization(&target).as_deref(), Some("Bearer token-1"));
    assert!(!relay.logs().contains("s3cr3t"));
}
