//! Prometheus's proxy settings with the real relay binary and a loopback
//! proxy (`common::proxy`): targets and receivers reached through it, as a
//! forward proxy for http URLs and a CONNECT tunnel for https ones
//! (`proxy_connect_header` arriving with the CONNECT), `no_proxy`
//! bypassing it, and `proxy_from_environment` as Go's
//! `ProxyFromEnvironment` (never for loopback; off by default).

mod common;

use common::certs::{tls_target, Certs};
use common::peers::require_peer;
use common::proxy::{header, Proxy};
use common::rw::Receiver;
use common::{get, Relay, Reply, Target};

/// A job scraping `target` every second with `extra` lines.
fn job(name: &str, target: &str, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    scrape_interval: 1s\n    scrape_timeout: 900ms\n    static_configs: [{{targets: [\"{target}\"]}}]\n{extra}"
    )
}

/// The value of `up` for `job` (waiting for it to be served).
fn up(relay: &Relay, job: &str) -> String {
    common::wait_for(&format!("up of {job}"), || {
        relay
            .metrics()
            .lines()
            .find(|l| l.starts_with("up{") && l.contains(&format!("job=\"{job}\"")))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_owned())
    })
}

#[test]
fn a_target_is_scraped_through_the_proxy_and_no_proxy_bypasses_it() {
    let proxy = Proxy::start();
    let target = Target::start(Reply::text("app_metric 1\n"));
    let through = format!("    proxy_url: {}\n", proxy.url);
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, &through)
    ));
    assert_eq!(up(&relay, "app"), "1");
    assert!(relay.metrics().contains("app_metric{"));
    let seen = proxy.requests_starting(&format!("GET http://{}/metrics ", target.addr));
    assert!(!seen.is_empty(), "{:?}", proxy.requests());
    drop(relay);
    // no_proxy names the target's host: reached directly.
    let before = proxy.requests().len();
    let bypass = format!("{through}    no_proxy: \"example.com,127.0.0.1\"\n");
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, &bypass)
    ));
    assert_eq!(up(&relay, "app"), "1");
    assert!(target.paths().len() > seen.len());
    assert_eq!(proxy.requests().len(), before, "{:?}", proxy.requests());
}

#[test]
fn remote_write_goes_through_the_proxy() {
    let proxy = Proxy::start();
    let target = Target::start(Reply::text("app_metric 1\n"));
    let receiver = Receiver::start();
    let relay = Relay::start(&format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n{}remote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 200ms}}\n    proxy_url: {}\n",
        job("app", &target.addr, ""),
        receiver.url,
        proxy.url
    ));
    common::wait_for("samples at the receiver", || {
        (!receiver.accepted_named("app_metric").is_empty()).then_some(())
    });
    let seen = proxy.requests_starting(&format!("POST {} ", receiver.url));
    assert!(!seen.is_empty(), "{:?}", proxy.requests());
    assert!(
        header(&seen[0], "content-encoding") == Some("snappy"),
        "{}",
        seen[0]
    );
    // The scrape has no proxy of its own.
    assert!(proxy.requests_starting("GET ").is_empty());
    drop(relay);
}

#[test]
#[ignore = "needs openssl; scripts/test runs it"]
fn https_goes_through_a_connect_tunnel_with_the_connect_headers() {
    let openssl = require_peer("openssl", "openssl");
    let proxy = Proxy::start();
    let certs = Certs::make(&openssl, "IP:127.0.0.1");
    let receiver = Receiver::start_tls(&certs.path("server.pem"), &certs.path("server.key"), None);
    let target = tls_target(&openssl, "IP:127.0.0.1", false, "tls_metric 1\n");
    let via = format!(
        "    proxy_url: {}\n    proxy_connect_header:\n      X-Proxy-Token: [tok-123, tok-456]\n",
        proxy.url
    );
    let relay = Relay::start(&format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n{}    scheme: https\n    tls_config: {{ca_file: {}}}\nremote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 200ms}}\n    tls_config: {{ca_file: {}}}\n{via}",
        job("tls", &target.addr, &via),
        target.file("ca.pem"),
        receiver.url,
        certs.file("ca.pem"),
    ));
    common::wait_for("samples at the receiver over https", || {
        (!receiver.accepted_named("tls_metric").is_empty()).then_some(())
    });
    assert_eq!(up(&relay, "tls"), "1");
    for addr in [&receiver.addr, &target.addr] {
        let connects = proxy.requests_starting(&format!("CONNECT {addr} "));
        assert!(!connects.is_empty(), "{addr}: {:?}", proxy.requests());
        let values: Vec<&str> = connects[0]
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-proxy-token"))
            .map(|(_, v)| v.trim())
            .collect();
        assert_eq!(values, ["tok-123", "tok-456"], "{}", connects[0]);
    }
    // The header values are secrets: shown nowhere.
    let config = get(&relay.addr, "/api/v1/status/config", &[]).expect("config API");
    assert!(
        config.text().contains("X-Proxy-Token:"),
        "{}",
        config.text()
    );
    for (what, text) in [
        ("logs", relay.logs()),
        ("/metrics", relay.metrics_ok()),
        ("/api/v1/status/config", config.text()),
    ] {
        assert!(!text.contains("tok-123"), "{what}: {text}");
    }
}

#[test]
fn proxy_from_environment_is_go_s_and_off_by_default() {
    let proxy = Proxy::start();
    let target = Target::start(Reply::text("app_metric 1\n"));
    let port = target.addr.rsplit(':').next().unwrap_or_default();
    // A name only the proxy "resolves" (to 127.0.0.1).
    let named = format!("metrics.app.test:{port}");
    let env = "    proxy_from_environment: true\n";
    let config = format!(
        "scrape_configs:\n{}{}{}",
        job("env", &named, env),
        job("loopback", &target.addr, env),
        job("default", &named, ""),
    );
    let relay = Relay::start_env(&config, &[("HTTP_PROXY", &proxy.url), ("NO_PROXY", "")]);
    assert_eq!(up(&relay, "env"), "1");
    assert_eq!(up(&relay, "loopback"), "1");
    // Without proxy_from_environment the variable is not used: the name
    // does not resolve, so the scrape fails.
    assert_eq!(up(&relay, "default"), "0");
    let requests = proxy.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with(&format!("GET http://{named}/metrics "))),
        "only the env job's scrapes: {requests:?}"
    );
    assert!(!requests.is_empty());
}
