//! `enable_http2` as Prometheus 3: over TLS relay offers HTTP/2 by ALPN to
//! targets (default true) and, only when asked, to receivers (default
//! false for remote write); `false` keeps a job on HTTP/1.1.

mod common;

use common::certs::Certs;
use common::h2::H2Server;
use common::peers::require_peer;
use common::{wait_for, Relay};

#[test]
#[ignore = "needs openssl; scripts/test runs it"]
fn http2_is_offered_over_tls_as_enable_http2_says() {
    let openssl = require_peer("openssl", "openssl");
    let certs = Certs::make(&openssl, "IP:127.0.0.1");
    let (cert, key) = (certs.path("server.pem"), certs.path("server.key"));
    let default_job = H2Server::start(&cert, &key, "h2_metric 1\n");
    let http1_job = H2Server::start(&cert, &key, "h1_metric 1\n");
    let default_rw = H2Server::start(&cert, &key, "");
    let h2_rw = H2Server::start(&cert, &key, "");
    let ca = certs.file("ca.pem");
    let job = |name: &str, addr: &str, extra: &str| {
        format!("  - job_name: {name}\n    scheme: https\n    tls_config: {{ca_file: {ca}}}\n    static_configs: [{{targets: [\"{addr}\"]}}]\n{extra}")
    };
    let entry = |addr: &str, extra: &str| {
        format!("  - url: https://{addr}/api/v1/write\n    queue_config: {{batch_send_deadline: 200ms}}\n    tls_config: {{ca_file: {ca}}}\n{extra}")
    };
    let _relay = Relay::start(&format!(
        "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n{}{}remote_write:\n{}{}",
        job("h2", &default_job.addr, ""),
        job("h1", &http1_job.addr, "    enable_http2: false\n"),
        entry(&default_rw.addr, ""),
        entry(&h2_rw.addr, "    enable_http2: true\n"),
    ));
    for (server, alpn, request) in [
        (&default_job, "h2", "GET /metrics HTTP/2.0"),
        (&http1_job, "http/1.1", "GET /metrics HTTP/1.1"),
        (&default_rw, "http/1.1", "POST /api/v1/write HTTP/1.1"),
        (&h2_rw, "h2", "POST /api/v1/write HTTP/2.0"),
    ] {
        let seen = wait_for(&format!("a request at {}", server.addr), || {
            server.seen().first().cloned()
        });
        assert_eq!(
            seen,
            (alpn.to_owned(), request.to_owned()),
            "{}",
            server.addr
        );
    }
}
