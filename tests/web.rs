//! `--web.config.file`: relay's port over TLS and behind basic auth, as
//! Prometheus's exporter-toolkit does it, checked with curl, openssl and a
//! real Prometheus scraping relay over HTTPS with basic_auth. The probes'
//! paths answer without credentials; secrets show up nowhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::certs::Certs;
use common::peers::{require_peer, start_prometheus};
use common::{free_port, get, relay, wait_for, Reply, Target};

/// The password the tests log in with; it must never be printed.
const PASSWORD: &str = "s3cret-Pa55word-relay-test";

/// A bcrypt hash of `password` (cost 4: the format is what matters here).
fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt hash")
}

/// `relay run --config ... --web.config.file ...`; killed on drop.
struct SecureRelay {
    child: Child,
    addr: String,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SecureRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SecureRelay {
    /// Starts relay scraping `target` with `web_config` (a path) and waits
    /// until `/-/healthy` answers over `scheme`, with no credentials.
    fn start(target: &str, web_config: &Path, ca: Option<&Path>, extra_config: &str) -> Self {
        SecureRelay::start_under(&[], target, web_config, ca, extra_config)
    }

    /// Like `start`, relay run by `wrapper` (`strace ...`) when not empty,
    /// with its working directory `dir/cwd` and its WAL in `dir/wal`.
    fn start_under(
        wrapper: &[&str],
        target: &str,
        web_config: &Path,
        ca: Option<&Path>,
        extra_config: &str,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cwd = dir.path().join("cwd");
        std::fs::create_dir(&cwd).expect("mkdir cwd");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("relay.yml");
        std::fs::write(
            &config,
            format!(
                "scrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [\"{target}\"]\n{extra_config}relay:\n  listen_address: \"{addr}\"\n  wal_dir: \"{}\"\n",
                dir.path().join("wal").display()
            ),
        )
        .expect("write config");
        let stderr = dir.path().join("stderr.log");
        let relay_bin = env!("CARGO_BIN_EXE_relay");
        let mut command = match wrapper {
            [] => Command::new(relay_bin),
            [first, rest @ ..] => {
                let mut c = Command::new(first);
                c.args(rest).arg(relay_bin);
                c
            }
        };
        let child = command
            .current_dir(&cwd)
            .args([
                "--log.level",
                "debug",
                "run",
                "--web.enable-lifecycle",
                "--config",
            ])
            .arg(&config)
            .arg("--web.config.file")
            .arg(web_config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn relay");
        let relay = SecureRelay {
            child,
            addr,
            stderr,
            _dir: dir,
        };
        wait_for("relay's /-/healthy", || {
            let healthy = match ca {
                Some(ca) => relay.curl(&["--cacert", &ca.display().to_string()], "/-/healthy"),
                None => relay.curl(&[], "/-/healthy"),
            };
            (healthy.status == 200).then_some(())
        });
        relay
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }

    /// curl on `path` over HTTPS when `args` has a `--cacert`, else HTTP.
    fn curl(&self, args: &[&str], path: &str) -> Curled {
        let scheme = if args.contains(&"--cacert") {
            "https"
        } else {
            "http"
        };
        curl(args, &self.url(scheme, path))
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// What curl got: its exit code, the HTTP status (0: none), headers, body.
#[derive(Debug)]
struct Curled {
    exit: i32,
    status: u16,
    head: String,
    body: String,
    stderr: String,
}

fn curl(args: &[&str], url: &str) -> Curled {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map_or((text.clone(), String::new()), |(h, b)| {
            (h.to_owned(), b.to_owned())
        });
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Curled {
        exit: out.status.code().unwrap_or(-1),
        status,
        head,
        body,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A web config with the server certificate and `more` lines.
fn write_web_config(certs: &Certs, tls_more: &str, more: &str) -> PathBuf {
    let path = certs.path("web.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{tls_more}{more}"
        ),
    )
    .expect("write web.yml");
    path
}

fn users(hash: &str) -> String {
    format!("basic_auth_users:\n  alice: {hash}\n")
}

fn app() -> Target {
    Target::start(Reply::text(
        "# TYPE app_requests_total counter\napp_requests_total{code=\"200\"} 7\n",
    ))
}

#[test]
#[ignore = "needs openssl and curl; scripts/test runs it"]
fn basic_auth_over_tls_with_curl() {
    let openssl = require_peer("openssl", "openssl");
    require_peer("curl", "curl");
    let certs = Certs::make(&openssl, "IP:127.0.0.1");
    let web = write_web_config(
        &certs,
        "",
        &format!(
            "{}http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
            users(&bcrypt_hash(PASSWORD))
        ),
    );
    let target = app();
    let ca = certs.path("ca.pem");
    let relay = SecureRelay::start(&target.addr, &web, Some(&ca), "");
    let ca = ca.display().to_string();
    let tls = ["--cacert", ca.as_str()];
    let right = format!("alice:{PASSWORD}");

    let none = relay.curl(&tls, "/metrics");
    assert_eq!(none.status, 401, "{none:?}");
    assert!(
        none.head
            .to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{none:?}"
    );
    assert!(
        none.head
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{none:?}"
    );
    for wrong in [
        "alice:wrong",
        "bob:wrong",
        &format!("bob:{PASSWORD}"),
        "alice:",
    ] {
        let got = relay.curl(&[&tls[..], &["-u", wrong]].concat(), "/metrics");
        assert_eq!(got.status, 401, "{wrong}: {got:?}");
    }
    let ok = wait_for("app_requests_total over HTTPS with basic auth", || {
        let got = relay.curl(&[&tls[..], &["-u", &right]].concat(), "/metrics");
        assert_eq!(got.status, 200, "{got:?}");
        got.body
            .lines()
            .find(|l| l.starts_with("app_requests_total{"))
            .map(str::to_owned)
    });
    assert!(ok.ends_with(" 7"), "{ok}");
    // The probes carry no data and kubelet sends no credentials.
    assert_eq!(relay.curl(&tls, "/-/healthy").status, 200);
    let ready = wait_for("/-/ready without credentials", || {
        let got = relay.curl(&tls, "/-/ready");
        (got.status == 200).then_some(got)
    });
    assert!(ready.body.contains("Ready"), "{ready:?}");
    // Reloading is an action: it needs the credentials.
    let reload = relay.curl(&[&tls[..], &["-X", "POST"]].concat(), "/-/reload");
    assert_eq!(reload.status, 401, "{reload:?}");
    let reload = relay.curl(
        &[&tls[..], &["-X", "POST", "-u", &right]].concat(),
        "/-/reload",
    );
    assert_eq!(reload.status, 200, "{reload:?}");
    // Plain HTTP to the TLS port: Go's 400, no data.
    let plain = relay.curl(&["-u", &right], "/metrics");
    assert_eq!(plain.status, 400, "{plain:?}");
    assert!(
        plain.body.contains("HTTP request to an HTTPS server"),
        "{plain:?}"
    );
    assert!(!plain.body.contains("app_requests_total"), "{plain:?}");
    // Without the CA, the certificate is not trusted (curl exit 60).
    let untrusted = curl(&["-u", &right], &relay.url("https", "/metrics"));
    assert_eq!(untrusted.exit, 60, "{untrusted:?}");
    assert!(untrusted.stderr.contains("certificate"), "{untrusted:?}");

    let logs = relay.logs();
    assert!(logs.contains("tls=true"), "{logs}");
    assert!(logs.contains("basic_auth=true"), "{logs}");
    assert!(!logs.contains(PASSWORD), "{logs}");
}

/// What curl says when relay's TLS handshake refuses the client
/// certificate: the alert relay sent (no certificate; one from another
/// CA; a SAN not in `client_allowed_sans`).
const TLS_REFUSALS: [&str; 3] = [
    "alert certificate required",
    "alert unknown ca",
    "alert handshake failure",
];

/// The client certificate policies, switched by rewriting the web config
/// (read again on every handshake) in one running relay: no certificate,
/// the CA's client certificate, and one from another CA.
#[test]
#[ignore = "needs openssl and curl; scripts/test runs it"]
fn client_certificate_policies_with_curl() {
    let openssl = require_peer("openssl", "openssl");
    require_peer("curl", "curl");
    let certs = Certs::make(&openssl, "IP:127.0.0.1");
    certs.ca("other-ca");
    certs.leaf("other-ca", "stranger", "stranger", "DNS:relay-test-client");
    let web = write_web_config(&certs, "", "");
    let target = app();
    let ca = certs.path("ca.pem");
    let relay = SecureRelay::start(&target.addr, &web, Some(&ca), "");
    let ca = ca.display().to_string();
    let (client, client_key) = (certs.file("client.pem"), certs.file("client.key"));
    let (stranger, stranger_key) = (certs.file("stranger.pem"), certs.file("stranger.key"));
    let fetch = |who: &str| {
        let mut args = vec!["--cacert", ca.as_str()];
        match who {
            "none" => {}
            "client" => args.extend(["--cert", &client, "--key", &client_key]),
            _ => args.extend(["--cert", &stranger, "--key", &stranger_key]),
        }
        let got = relay.curl(&args, "/-/healthy");
        if got.exit == 0 && got.status == 200 {
            return true;
        }
        // A refusal is the TLS handshake's own (an alert, no HTTP answer),
        // not a 401, a 5xx, a curl usage error or a relay that is down.
        let tls_refused = got.status == 0
            && [35, 56].contains(&got.exit)
            && TLS_REFUSALS.iter().any(|r| got.stderr.contains(r));
        assert!(tls_refused, "{who}: not a TLS refusal: {got:?}");
        false
    };
    // (client_auth_type, extra lines, [none, client, stranger] served?)
    let cases: [(&str, &str, [bool; 3]); 6] = [
        ("NoClientCert", "", [true, true, true]),
        ("RequestClientCert", "", [true, true, true]),
        ("RequireAnyClientCert", "", [false, true, true]),
        (
            "VerifyClientCertIfGiven",
            "  client_ca_file: ca.pem\n",
            [true, true, false],
        ),
        (
            "RequireAndVerifyClientCert",
            "  client_ca_file: ca.pem\n",
            [false, true, false],
        ),
        (
            "RequireAndVerifyClientCert",
            "  client_ca_file: ca.pem\n  client_allowed_sans: [someone-else.example]\n",
            [false, false, false],
        ),
    ];
    for (policy, more, want) in cases {
        write_web_config(&certs, &format!("  client_auth_type: {policy}\n{more}"), "");
        let got = ["none", "client", "stranger"].map(fetch);
        assert_eq!(got, want, "{policy} {more:?}: [none, client, stranger]");
    }
    // The allowed SAN the client certificate has.
    write_web_config(
        &certs,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [relay-test-client]\n",
        "",
    );
    assert_eq!(
        ["none", "client", "stranger"].map(fetch),
        [false, true, false]
    );
}

/// The subject of the certificate relay presents now.
fn served_subject(openssl: &Path, addr: &str) -> String {
    let out = Command::new(openssl)
        .args(["s_client", "-connect", addr, "-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .to_owned()
}

/// A renewed certificate (as cert-manager writes into the Secret) is
/// served from the next handshake on, without a restart or a SIGHUP; a
/// broken web config is refused with one log line and the last good one
/// stays.
#[test]
#[ignore = "needs openssl and curl; scripts/test runs it"]
fn certificate_rotation_and_bad_edits_apply_without_restart() {
    let openssl = require_peer("openssl", "openssl");
    require_peer("curl", "curl");
    let certs = Certs::make(&openssl, "IP:127.0.0.1");
    let web = write_web_config(&certs, "", &users(&bcrypt_hash(PASSWORD)));
    let target = app();
    let ca = certs.path("ca.pem");
    let relay = SecureRelay::start(&target.addr, &web, Some(&ca), "");
    let first = served_subject(&openssl, &relay.addr);
    assert!(first.contains("relay-test-server"), "{first}");
    certs.leaf("ca", "server", "relay-renewed-server", "IP:127.0.0.1");
    let renewed = served_subject(&openssl, &relay.addr);
    assert!(renewed.contains("relay-renewed-server"), "{renewed}");

    // A new user list applies on the next request.
    let ca = ca.display().to_string();
    let new_password = "another-pass";
    write_web_config(&certs, "", &users(&bcrypt_hash(new_password)));
    let got = relay.curl(
        &["--cacert", &ca, "-u", &format!("alice:{new_password}")],
        "/metrics",
    );
    assert_eq!(got.status, 200, "{got:?}");
    let got = relay.curl(
        &["--cacert", &ca, "-u", &format!("alice:{PASSWORD}")],
        "/metrics",
    );
    assert_eq!(got.status, 401, "{got:?}");

    // A broken edit: refused, logged naming the field, the last good stays.
    std::fs::write(&web, "basic_auth_users:\n  alice: not-a-hash\n").expect("write");
    let got = relay.curl(
        &["--cacert", &ca, "-u", &format!("alice:{new_password}")],
        "/metrics",
    );
    assert_eq!(got.status, 200, "{got:?}");
    let logs = relay.logs();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("web config refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{logs}");
    assert!(refused[0].contains("basic_auth_users.alice"), "{logs}");
    assert!(!logs.contains("not-a-hash"), "{logs}");
}

/// A bad web config stops `relay run` (exit 1) and fails `relay check
/// web-config`, naming the field; neither echoes a secret.
#[test]
fn invalid_web_configs_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("relay.yml");
    std::fs::write(&config, "relay:\n  listen_address: \"127.0.0.1:0\"\n").expect("write");
    let cases = [
        (
            "basic_auth_users:\n  alice: plain-password-here\n",
            "basic_auth_users.alice: not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  keyfile: k.pem\n",
            "tls_server_config.keyfile: unknown field \"keyfile\", did you mean \"key_file\"?",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n",
            "tls_server_config.key_file: must be configured",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: Always\n",
            "tls_server_config.client_auth_type: unknown value \"Always\"",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_ca_file: ca.pem\n",
            "tls_server_config.client_auth_type: a client CA is configured without a client auth policy",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
            "tls_server_config.client_ca_file: must be configured",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
            "tls_server_config.cipher_suites[0]: \"TLS_RSA_WITH_RC4_128_SHA\" is not a TLS 1.2 cipher suite",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  curve_preferences: [CurveP521]\n",
            "tls_server_config.curve_preferences[0]",
        ),
        (
            "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS14\n",
            "tls_server_config.min_version: unknown TLS version",
        ),
        (
            "tls_server_config:\n  cert_file: missing.pem\n  key_file: k.pem\n",
            "tls_server_config.cert_file: cannot read",
        ),
        (
            "http_server_config:\n  headers:\n    Server: relay\n",
            "http_server_config.headers.Server: this header cannot be configured",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "http_server_config.headers.X-Frame-Options: \"allow\" is not one of: deny, sameorigin",
        ),
        ("rate_limit:\n  burst: 1\n", "unknown field \"rate_limit\""),
    ];
    for (i, (web, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("web{i}.yml"));
        std::fs::write(&path, web).expect("write");
        let checked = common::pipe(
            relay(&["check", "web-config", &path.display().to_string()]),
            b"",
        );
        assert_eq!(checked.code, 1, "{web}: {}", checked.stderr);
        assert!(checked.stderr.contains(want), "{web}: {}", checked.stderr);
        assert!(
            !checked.stderr.contains("plain-password-here"),
            "{}",
            checked.stderr
        );
        let ran = common::pipe(
            relay(&[
                "run",
                "--config",
                &config.display().to_string(),
                "--web.config.file",
                &path.display().to_string(),
            ]),
            b"",
        );
        assert_eq!(ran.code, 1, "{web}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("--web.config.file") && ran.stderr.contains(want),
            "{web}: {}",
            ran.stderr
        );
        assert!(
            !ran.stderr.contains("plain-password-here"),
            "{}",
            ran.stderr
        );
    }
    // An empty file, or one with only headers: plain HTTP, no auth.
    let path = dir.path().join("empty.yml");
    std::fs::write(&path, "").expect("write");
    let checked = common::pipe(
        relay(&["check", "web-config", &path.display().to_string()]),
        b"",
    );
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert!(checked.stdout.contains("valid"), "{}", checked.stdout);
}

/// Basic auth without TLS (as exporter-toolkit allows) on plain HTTP.
#[test]
fn basic_auth_without_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, users(&bcrypt_hash(PASSWORD))).expect("write");
    let target = app();
    let relay = SecureRelay::start(&target.addr, &web, None, "");
    let none = get(&relay.addr, "/metrics", &[]).expect("an answer");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate").as_deref(), Some("Basic"));
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let ok = get(
        &relay.addr,
        "/metrics",
        &[("Authorization", &format!("Basic {token}"))],
    )
    .expect("an answer");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        get(&relay.addr, "/-/healthy", &[]).map(|r| r.status),
        Some(200)
    );
}

/// Issue 19: a flood of wrong passwords used to evict the good scraper's
/// cached outcome, so its scrapes queued behind the flood. Counted by
/// relay's own metric: the good scraper costs one bcrypt in all, every
/// other answer it gets comes from the cache, and each wrong password
/// costs one bcrypt.
#[test]
fn a_flood_of_wrong_passwords_leaves_the_good_scraper_cached() {
    use base64::Engine as _;
    const ATTACKERS: usize = 8;
    /// 8 × 40 = 320 distinct wrong passwords: more than the 256 failures kept.
    const EACH: usize = 40;
    const GOOD_DURING: usize = 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, users(&bcrypt_hash(PASSWORD))).expect("write");
    let target = app();
    let relay = SecureRelay::start(&target.addr, &web, None, "");
    let basic = |password: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}"));
        format!("Basic {token}")
    };
    let good = basic(PASSWORD);
    let status = |authorization: &str| {
        get(&relay.addr, "/metrics", &[("Authorization", authorization)]).map(|r| r.status)
    };
    assert_eq!(status(&good), Some(200));
    std::thread::scope(|s| {
        for a in 0..ATTACKERS {
            let (status, basic) = (&status, &basic);
            s.spawn(move || {
                for i in 0..EACH {
                    assert_eq!(status(&basic(&format!("wrong-{a}-{i}"))), Some(401));
                }
            });
        }
        for _ in 0..GOOD_DURING {
            assert_eq!(status(&good), Some(200));
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    // relay's own metrics are merged with the targets' results, and a
    // serve-only relay reuses those only if at most a tenth of the GET's
    // timeout old (at least 100 ms): the good GETs above took 400 ms at
    // least, so this GET (0.5 s timeout) has the app scraped and the body
    // merged again, with the counts as they are now.
    let metrics = get(
        &relay.addr,
        "/metrics",
        &[
            ("Authorization", &good),
            ("X-Prometheus-Scrape-Timeout-Seconds", "0.5"),
        ],
    )
    .expect("an answer")
    .text();
    let count = |outcome: &str, answered_by: &str| {
        let labels = [
            format!("outcome=\"{outcome}\""),
            format!("answered_by=\"{answered_by}\""),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        common::rw::metric_value(&metrics, "relay_web_auth_checks_total", &labels)
    };
    assert_eq!(
        (
            count("accepted", "bcrypt"),
            count("accepted", "cache"),
            count("refused", "bcrypt"),
        ),
        (
            Some(1.0),
            Some((GOOD_DURING + 1) as f64),
            Some((ATTACKERS * EACH) as f64)
        ),
        "(good by bcrypt, good from cache, wrong by bcrypt) in:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("relay_web_auth"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Prometheus (Debian's package) scrapes relay over HTTPS with basic_auth
/// and a ca_file, and stores the app's series.
#[test]
#[ignore = "needs prometheus and openssl; scripts/test runs it"]
fn prometheus_scrapes_relay_over_tls_with_basic_auth() {
    let prometheus = require_peer("prometheus", "prometheus");
    let openssl = require_peer("openssl", "openssl");
    require_peer("curl", "curl");
    let certs = Certs::make(&openssl, "IP:127.0.0.1");
    let web = write_web_config(&certs, "", &users(&bcrypt_hash(PASSWORD)));
    let target = app();
    let ca = certs.path("ca.pem");
    let relay = SecureRelay::start(&target.addr, &web, Some(&ca), "");
    let dir = tempfile::tempdir().expect("tempdir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).expect("write password");
    let scraper = start_prometheus(
        &prometheus,
        &format!(
            "scrape_configs:\n  - job_name: relay-sidecar\n    honor_labels: true\n    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: alice\n      password_file: {}\n    static_configs:\n      - targets: [\"{}\"]\n",
            ca.display(),
            password_file.display(),
            relay.addr
        ),
    );
    let addr = &scraper.addr;
    let body = wait_for("Prometheus to store app_requests_total from relay", || {
        get(addr, "/api/v1/query?query=app_requests_total", &[])
            .map(|r| r.text())
            .filter(|t| t.contains("\"app_requests_total\""))
    });
    let up = wait_for("Prometheus's up for relay", || {
        get(
            addr,
            "/api/v1/query?query=up%7Bjob%3D%22relay-sidecar%22%7D",
            &[],
        )
        .map(|r| r.text())
        .filter(|t| t.contains("\"result\":[{"))
    });
    drop(scraper);
    assert!(body.contains("\"job\":\"app\""), "{body}");
    assert!(body.contains("\"code\":\"200\""), "{body}");
    assert!(body.contains(",\"7\"]"), "{body}");
    assert!(up.contains(",\"1\"]"), "{up}");
    assert!(!relay.logs().contains(PASSWORD));
}

/// Secrets in the config, the web config and the requests show up in no
/// log line (at debug level), nowhere in /metrics and nowhere in `relay
/// check config`'s output, for a valid config and for invalid ones.
#[test]
#[ignore = "needs curl; scripts/test runs it"]
fn secrets_are_never_shown() {
    require_peer("curl", "curl");
    let secrets = [
        "scrape-basic-SECRET-1",
        "scrape-bearer-SECRET-2",
        "rw-url-SECRET-3",
        "rw-bearer-SECRET-4",
        "rw-basic-SECRET-5",
        "target-userinfo-SECRET-6",
        "98765432123456789",
        PASSWORD,
    ];
    let target = app();
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = bcrypt_hash(PASSWORD);
    let web = dir.path().join("web.yml");
    std::fs::write(&web, users(&hash)).expect("write web.yml");
    let jobs = format!(
        "  - job_name: other\n    scrape_interval: 1s\n    authorization:\n      credentials: {}\n    static_configs:\n      - targets: [\"{}\"]\n\
         remote_write:\n  - url: http://relay:{}@127.0.0.1:1/api/v1/write\n    authorization:\n      credentials: {}\n  - url: http://127.0.0.1:1/push\n    basic_auth:\n      username: u\n      password: {}\n",
        secrets[1], target.addr, secrets[2], secrets[3], secrets[4]
    );
    let extra = format!(
        "    basic_auth:\n      username: u\n      password: {}\n{jobs}",
        secrets[0]
    );
    let relay = SecureRelay::start(&target.addr, &web, None, &extra);
    use base64::Engine as _;
    let basic = |pass: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("alice:{pass}"));
        format!("Basic {token}")
    };
    let metrics = wait_for("the remote-write series in /metrics", || {
        get(
            &relay.addr,
            "/metrics",
            &[("Authorization", &basic(PASSWORD))],
        )
        .map(|r| r.text())
        .filter(|t| {
            t.contains("prometheus_remote_storage_samples_total{")
                && t.contains("app_requests_total")
        })
    });
    assert!(
        metrics.contains("url=\"http://relay:xxxxx@127.0.0.1:1/api/v1/write\""),
        "{metrics}"
    );
    let denied = get(
        &relay.addr,
        "/metrics",
        &[("Authorization", &basic(secrets[6]))],
    )
    .expect("answer");
    assert_eq!(denied.status, 401);
    assert!(!denied.text().contains(secrets[6]));
    // A reload, and a refused one whose bad value is a secret.
    let reloaded = relay.curl(
        &["-X", "POST", "-u", &format!("alice:{PASSWORD}")],
        "/-/reload",
    );
    assert_eq!(reloaded.status, 200, "{reloaded:?}");
    let config = relay._dir.path().join("relay.yml");
    let good = std::fs::read_to_string(&config).expect("read config");
    let bad = good.replace(
        &format!("credentials: {}", secrets[1]),
        &format!("credentials: {}", secrets[6]),
    );
    assert_ne!(good, bad);
    std::fs::write(&config, &bad).expect("write config");
    // One reload a second at most: asked again while told to wait.
    let refused = wait_for("a reload that is not told to wait", || {
        let got = relay.curl(
            &["-X", "POST", "-u", &format!("alice:{PASSWORD}")],
            "/-/reload",
        );
        (got.status != 429).then_some(got)
    });
    assert_eq!(refused.status, 500, "{refused:?}");
    // The reason goes to the log only (a config error can quote the file).
    assert!(refused.body.contains("relay's log says why"), "{refused:?}");
    common::wait_for("the refused reload's reason in the log", || {
        let logs = relay.logs();
        (logs.contains("config reload refused") && logs.contains("credentials: expected a string"))
            .then_some(())
    });
    let checked_bad = common::pipe(relay_check(&config), b"");
    assert_eq!(checked_bad.code, 1, "{}", checked_bad.stderr);
    // A target with user info: refused at load, so by `check config`.
    let userinfo = good.replace(
        &format!("[\"{}\"]", target.addr),
        &format!("[\"{}\", \"u:{}@127.0.0.1:1\"]", target.addr, secrets[5]),
    );
    assert_ne!(good, userinfo);
    std::fs::write(&config, &userinfo).expect("write config");
    let checked_userinfo = common::pipe(relay_check(&config), b"");
    assert_eq!(checked_userinfo.code, 1, "{}", checked_userinfo.stderr);
    assert!(
        checked_userinfo
            .stderr
            .contains("\"u:xxxxx@127.0.0.1:1\" has user info"),
        "{}",
        checked_userinfo.stderr
    );
    std::fs::write(&config, &good).expect("write config");
    let checked_good = common::pipe(relay_check(&config), b"");
    assert_eq!(checked_good.code, 0, "{}", checked_good.stderr);
    let later = get(
        &relay.addr,
        "/metrics",
        &[("Authorization", &basic(PASSWORD))],
    )
    .expect("answer")
    .text();
    let logs = relay.logs();
    assert!(logs.contains("remote write failed"), "{logs}");
    for (what, text) in [
        ("the log", &logs),
        ("/metrics", &metrics),
        ("/metrics later", &later),
        ("the refused reload", &refused.body),
        (
            "check config (invalid)",
            &format!("{}{}", checked_bad.stdout, checked_bad.stderr),
        ),
        (
            "check config (user info)",
            &format!("{}{}", checked_userinfo.stdout, checked_userinfo.stderr),
        ),
        (
            "check config (valid)",
            &format!("{}{}", checked_good.stdout, checked_good.stderr),
        ),
    ] {
        for secret in secrets.iter().chain([&hash.as_str()]) {
            assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
        }
    }
}

fn relay_check(config: &Path) -> Command {
    relay(&["check", "config", &config.display().to_string()])
}

/// The pid of the only child of `parent` (relay under strace).
fn only_child(parent: u32) -> u32 {
    wait_for("strace's child", || {
        let children =
            std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    })
}

/// Every path relay created, wrote, renamed, removed or changed, from an
/// strace of `--trace=%file,%desc`-style syscalls (`-e trace=` below).
fn written_paths(trace: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((call, rest)) = line
            .split_once(' ')
            .map(|(_, rest)| rest.trim_start())
            .and_then(|rest| rest.split_once('('))
        else {
            continue;
        };
        let writes = match call {
            "open" | "openat" | "openat2" => ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                .iter()
                .any(|f| rest.contains(f)),
            "creat" | "mkdir" | "mkdirat" | "rename" | "renameat" | "renameat2" | "unlink"
            | "unlinkat" | "rmdir" | "truncate" | "link" | "linkat" | "symlink" | "symlinkat"
            | "chmod" | "fchmodat" | "chown" | "fchownat" | "mknod" | "mknodat" | "utimensat" => {
                true
            }
            _ => false,
        };
        if !writes {
            continue;
        }
        // Every quoted argument is a path.
        for (i, part) in rest.split('"').enumerate() {
            if i % 2 == 1 {
                out.push(part.to_owned());
            }
        }
    }
    out
}

/// relay writes only to `wal_dir`: an strace of a run with TLS, basic
/// auth, scraping, remote write, a reload and a SIGTERM sees no file
/// created, written, renamed or removed anywhere else.
#[test]
#[ignore = "needs strace, openssl and curl; scripts/test runs it"]
fn relay_writes_only_to_wal_dir() {
    let strace = require_peer("strace", "strace");
    let openssl = require_peer("openssl", "openssl");
    require_peer("curl", "curl");
    let certs = Certs::make(&openssl, "IP:127.0.0.1");
    let web = write_web_config(&certs, "", &users(&bcrypt_hash(PASSWORD)));
    let target = app();
    let receiver = common::rw::Receiver::start();
    let trace_dir = tempfile::tempdir().expect("tempdir");
    let trace = trace_dir.path().join("trace.txt");
    let strace = strace.display().to_string();
    let trace_arg = trace.display().to_string();
    let wrapper = [
        strace.as_str(),
        "-f",
        "-qq",
        "-e",
        "trace=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,truncate,link,linkat,symlink,symlinkat,chmod,fchmodat,chown,fchownat,mknod,mknodat,utimensat",
        "-o",
        trace_arg.as_str(),
    ];
    let ca = certs.path("ca.pem");
    let mut relay = SecureRelay::start_under(
        &wrapper,
        &target.addr,
        &web,
        Some(&ca),
        &format!("remote_write:\n  - url: {}\n", receiver.url),
    );
    let relay_pid = only_child(relay.child.id());
    let wal_dir = relay._dir.path().join("wal");
    let ca = ca.display().to_string();
    let auth = format!("alice:{PASSWORD}");
    wait_for("a remote-write request", || {
        (!receiver.requests().is_empty()).then_some(())
    });
    let got = relay.curl(&["--cacert", &ca, "-u", &auth], "/metrics");
    assert_eq!(got.status, 200, "{got:?}");
    let got = relay.curl(&["--cacert", &ca, "-u", &auth, "-X", "POST"], "/-/reload");
    assert_eq!(got.status, 200, "{got:?}");
    let sent = Command::new("kill")
        .args(["-TERM", &relay_pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = wait_for("relay (under strace) to exit", || {
        relay.child.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status:?}: {}", relay.logs());
    let trace = std::fs::read_to_string(&trace).expect("read the trace");
    let written = written_paths(&trace);
    assert!(
        written.iter().any(|p| Path::new(p).starts_with(&wal_dir)),
        "the WAL writes must show in the trace:\n{trace}"
    );
    let elsewhere: Vec<&String> = written
        .iter()
        .filter(|p| !Path::new(p.as_str()).starts_with(&wal_dir))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "relay wrote outside wal_dir {}: {elsewhere:?}",
        wal_dir.display()
    );
}
