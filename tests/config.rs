//! The config language: defaults, Prometheus compatibility, and errors that
//! name the field path. The CLI cases run the real `relay` binary.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, Relay, DEADLINE};
use relay::config::{self, ByteSize, Scheme};

/// What loading and resolving refuse (as `relay check config` and `relay run`).
fn error_of(yaml: &str) -> String {
    match relay::plan::from_yaml_str(yaml) {
        Ok(_) => "loaded without error".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_match_prometheus() {
    let loaded = config::from_yaml_str("scrape_configs:\n  - job_name: app\n").expect("valid");
    let c = &loaded.config;
    assert_eq!(c.global.scrape_interval.as_std(), Duration::from_secs(60));
    assert_eq!(c.global.scrape_timeout.as_std(), Duration::from_secs(10));
    let job = &c.scrape_configs[0];
    assert_eq!(job.interval(), Duration::from_secs(60));
    assert_eq!(job.timeout(), Duration::from_secs(10));
    assert_eq!(job.metrics_path, "/metrics");
    assert_eq!(job.scheme, Scheme::Http);
    assert!(!job.honor_labels);
    assert!(job.honor_timestamps);
    assert_eq!(job.body_size_limit, ByteSize(0));
    assert_eq!(job.sample_limit, 0);
    assert_eq!(job.series_limit, 0);
    assert_eq!(c.relay.listen_address, "0.0.0.0:9090");
    assert_eq!(c.relay.shutdown_timeout.as_std(), Duration::from_secs(25));
    assert!(loaded.warnings.is_empty());
}

#[test]
fn job_timeout_defaults_to_global_clamped_to_interval() {
    let c = config::from_yaml_str("scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n")
        .expect("valid")
        .config;
    assert_eq!(c.scrape_configs[0].interval(), Duration::from_secs(5));
    assert_eq!(c.scrape_configs[0].timeout(), Duration::from_secs(5));
}

#[test]
fn shipped_configs_load() {
    let relay = config::load("config/relay.yml".as_ref(), &Default::default()).expect("relay.yml");
    let job = &relay.config.scrape_configs[0];
    assert_eq!(job.job_name, "app");
    assert_eq!(job.interval(), Duration::from_secs(15));
    assert_eq!(
        job.static_configs[0].targets,
        vec!["localhost:8001".to_owned()]
    );
    assert!(relay.warnings.is_empty(), "{:?}", relay.warnings);

    let sidecar = config::load(
        "config/prometheus-sidecar.yml".as_ref(),
        &Default::default(),
    )
    .expect("prometheus-sidecar.yml");
    assert_eq!(
        sidecar.warnings,
        vec![
            "rule_files: ignored (relay evaluates no rules)",
            "alerting: ignored (relay sends no alerts)",
            "global.evaluation_interval: ignored (relay evaluates no rules)",
        ]
    );
    let c = &sidecar.config;
    assert_eq!(
        c.global.external_labels.get("cluster").map(String::as_str),
        Some("prod-eu-1")
    );
    assert_eq!(c.remote_write[0].queue_config.max_samples_per_send, 1000);
    assert_eq!(c.remote_write[0].queue_config.capacity, 10_000);
    assert!(c.scrape_configs[0].honor_labels);
}

#[test]
fn invalid_configs_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            "global:\n  scrape_intervall: 1m\n",
            "global.scrape_intervall: unknown field \"scrape_intervall\", did you mean \"scrape_interval\"?",
        ),
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_intervall: 1m\n",
            "scrape_configs[1].scrape_intervall: unknown field \"scrape_intervall\", did you mean \"scrape_interval\"?",
        ),
        ("scrape_config:\n  - job_name: a\n", "scrape_config: unknown field \"scrape_config\", did you mean \"scrape_configs\"?"),
        (
            "scrape_configs:\n  - job_name: a\n    series_limit: -1\n",
            "scrape_configs[0].series_limit: invalid value signed int `-1`, expected usize",
        ),
        ("global:\n  scrape_interval: 1.5s\n", "global.scrape_interval: \"1.5s\" is not a valid duration"),
        ("global:\n  scrape_interval: 30\n", "global.scrape_interval: \"30\" is not a valid duration"),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n",
            "scrape_configs[0].scrape_timeout: 6s is greater than scrape_interval 5s",
        ),
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
            "scrape_configs[1].job_name: found multiple scrape configs with job name \"a\"",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [\"a:1\", \"b:x\"]\n",
            "scrape_configs[0].static_configs[0].targets[1]: \"b:x\" has an invalid port",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    consul_sd_configs: []\n",
            "scrape_configs[0].consul_sd_configs: consul_sd_configs is not supported by relay: a sidecar scrapes static targets",
        ),
        ("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", "scrape_configs[0].scheme: unknown value \"ftp\""),
        ("scrape_configs:\n  - scheme: http\n", "scrape_configs[0].job_name: missing required field"),
        (
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p, password_file: /f}\n",
            "scrape_configs[0].basic_auth: at most one of basic_auth password and password_file",
        ),
        (
            "global:\n  metric_name_validation_scheme: legacy\nscrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {\"0bad\": x}\n",
            "scrape_configs[0].static_configs[0].labels.0bad: \"0bad\" is not a valid label name under metric_name_validation_scheme legacy",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - labels: {\"\": x}\n",
            "scrape_configs[0].static_configs[0].labels.: a label name must not be empty",
        ),
        ("remote_write:\n  - url: ftp://x\n", "remote_write[0].url: \"ftp://x\" is not an http(s) URL"),
        ("relay:\n  listen_address: nowhere\n", "relay.listen_address: \"nowhere\" is not an address to listen on"),
        (
            "scrape_configs:\n  - job_name: a\n    metric_relabel_configs:\n      - action: dropp\n",
            "scrape_configs[0].metric_relabel_configs[0].action: unknown relabel action \"dropp\"",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config: {ca_file: /nonexistent/ca.pem}\n",
            "scrape_configs[0].tls_config.ca_file: /nonexistent/ca.pem: cannot read:",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: /c.pem}\n",
            "scrape_configs[0].tls_config.key_file: must be configured when cert_file is configured",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config: {server_name: \"not a name\"}\n",
            "scrape_configs[0].tls_config.server_name: \"not a name\" is not a valid DNS name or IP address",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config: {min_version: TLS14}\n",
            "scrape_configs[0].tls_config.min_version: unknown TLS version \"TLS14\"",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config: {max_version: TLS11}\n",
            "scrape_configs[0].tls_config.max_version: relay speaks TLS 1.2 and 1.3 only",
        ),
        (
            "remote_write:\n  - url: https://x\n    tls_config: {key_file: /k.pem}\n",
            "remote_write[0].tls_config.cert_file: must be configured when key_file is configured",
        ),
        (
            "scrape_configs:\n  - job_name: a\nscrape_configs:\n  - job_name: b\n",
            "cannot read YAML: duplicate entry with key \"scrape_configs\" at line 3 column 1",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_interval: 6s\n",
            "cannot read YAML: scrape_configs[0]: duplicate entry with key \"scrape_interval\" at line 4 column 5",
        ),
    ];
    for (yaml, want) in cases {
        let got = error_of(yaml);
        assert!(
            got.starts_with(want),
            "config:\n{yaml}\ngot:  {got}\nwant: {want}"
        );
    }
}

#[test]
fn relative_files_are_read_from_the_config_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.yml");
    std::fs::write(
        &file,
        "scrape_configs:\n  - job_name: a\n    tls_config: {ca_file: certs/ca.pem}\n",
    )
    .expect("write config");
    let err = relay::plan::load(&file, &Default::default())
        .err()
        .expect("the CA file does not exist")
        .to_string();
    let want = format!(
        "scrape_configs[0].tls_config.ca_file: {}: cannot read",
        dir.path().join("certs/ca.pem").display()
    );
    assert!(err.starts_with(&want), "got:  {err}\nwant: {want}");

    std::fs::write(
        &file,
        "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password_file: pw}\n",
    )
    .expect("write config");
    let loaded = config::load(&file, &Default::default()).expect("valid");
    let basic = loaded.config.scrape_configs[0]
        .basic_auth
        .as_ref()
        .expect("basic_auth");
    assert_eq!(
        basic.password_file.as_deref(),
        Some(dir.path().join("pw").as_path())
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let c = config::from_yaml_str(
        "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: hunter2}\n",
    )
    .expect("valid")
    .config;
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<secret>"));
}

fn relay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relay"))
}

#[test]
fn cli_check_config_exit_codes_and_messages() {
    let ok = relay()
        .args(["check", "config", "config/relay.yml"])
        .output()
        .expect("run relay");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "config/relay.yml: valid\n"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "scrape_configs:\n  - job_name: app\n    scrape_intervall: 15s\n",
    )
    .expect("write");
    let out = relay()
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .expect("run relay");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("scrape_configs[0].scrape_intervall: unknown field \"scrape_intervall\", did you mean \"scrape_interval\"?"),
        "{stderr}"
    );
    assert!(stderr.starts_with(&bad.display().to_string()), "{stderr}");
}

#[test]
fn cli_environment_overrides_the_relay_section() {
    let out = relay()
        .args(["check", "config", "config/relay.yml"])
        .env("RELAY_LISTEN_ADDRESS", "not-an-address")
        .env("RELAY_UNRELATED", "ignored")
        .output()
        .expect("run relay");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("relay.listen_address: \"not-an-address\" is not an address to listen on"));
}

/// Precedence (docs/config.md): the YAML file, then `RELAY_*` variables
/// (only `listen_address`, `wal_dir`, `wal_max_size`, `shutdown_timeout`),
/// then flags. Each variable beats the file's valid value (its own bad
/// value is what is refused); in the running binary the variable's WAL
/// directory and address are used, `--listen-address` beats the variable,
/// and a `RELAY_*` name outside the four is ignored.
#[test]
fn environment_beats_the_file_and_flags_beat_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file_wal, env_wal) = (dir.path().join("file-wal"), dir.path().join("env-wal"));
    let file_addr = format!("127.0.0.1:{}", free_port());
    let target = common::Target::start(common::Reply::text("# TYPE a gauge\na 1\n"));
    let receiver = common::rw::Receiver::start();
    let path = dir.path().join("relay.yml");
    std::fs::write(
        &path,
        format!(
            "scrape_configs:\n  - job_name: app\n    scrape_interval: 200ms\n    scrape_timeout: 200ms\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {}\nrelay:\n  listen_address: \"{file_addr}\"\n  wal_dir: \"{}\"\n  wal_max_size: 64MiB\n  shutdown_timeout: 20s\n",
            target.addr,
            receiver.url,
            file_wal.display()
        ),
    )
    .expect("write config");
    let path_text = path.display().to_string();
    // Each variable's own (bad) value is what is judged, not the file's
    // (any wal_dir is valid to `check config`: it is seen running below).
    for (var, value, said) in [
        (
            "RELAY_LISTEN_ADDRESS",
            "not-an-address",
            "relay.listen_address: \"not-an-address\"",
        ),
        ("RELAY_WAL_MAX_SIZE", "1KiB", "relay.wal_max_size"),
        ("RELAY_SHUTDOWN_TIMEOUT", "soon", "relay.shutdown_timeout"),
    ] {
        let out = common::relay(&["check", "config", &path_text])
            .env(var, value)
            .output()
            .expect("run relay");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{var}={value:?}: {stderr}");
        assert!(stderr.contains(said), "{var}={value:?}: {stderr}");
    }
    let ok = common::relay(&["check", "config", &path_text])
        .output()
        .expect("run relay");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Running: the variables' address and WAL directory; a RELAY_* name
    // that is not one of the four (self_metrics) changes nothing.
    let env_addr = format!("127.0.0.1:{}", free_port());
    let env_wal_text = env_wal.display().to_string();
    let env = [
        ("RELAY_LISTEN_ADDRESS", env_addr.as_str()),
        ("RELAY_WAL_DIR", env_wal_text.as_str()),
        ("RELAY_SELF_METRICS", "off"),
    ];
    let relay = Relay::start_file_env(&path, &env_addr, &env);
    common::wait_for("requests at the receiver", || {
        (!receiver.requests().is_empty()).then_some(())
    });
    assert!(
        common::get(&file_addr, "/-/healthy", &[]).is_none(),
        "the file's listen_address answers"
    );
    let segments = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    assert!(segments(&env_wal) > 0, "nothing in RELAY_WAL_DIR");
    assert_eq!(segments(&file_wal), 0, "the file's wal_dir was used");
    let served = relay.metrics_ok();
    assert!(served.contains("\nrelay_build_info"), "{served}");
    drop(relay);
    // A flag beats the variable.
    let flag_addr = format!("127.0.0.1:{}", free_port());
    let _relay = Relay::start_file_args(&path, &flag_addr, &env, &["--listen-address", &flag_addr]);
    assert!(
        common::get(&env_addr, "/-/healthy", &[]).is_none(),
        "RELAY_LISTEN_ADDRESS answers though --listen-address was given"
    );
}

#[test]
fn global_timeout_defaults_to_10s_clamped_to_the_global_interval() {
    // Prometheus (GlobalConfig.UnmarshalYAML): an unset global timeout is
    // min(10s, global interval); only a written one may be refused.
    let c =
        config::from_yaml_str("global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: a\n")
            .expect("a 5s global interval alone is valid")
            .config;
    assert_eq!(c.global.scrape_timeout.as_std(), Duration::from_secs(5));
    assert_eq!(c.scrape_configs[0].interval(), Duration::from_secs(5));
    assert_eq!(c.scrape_configs[0].timeout(), Duration::from_secs(5));

    let c = config::from_yaml_str("global:\n  scrape_interval: 15s\n")
        .expect("valid")
        .config;
    assert_eq!(c.global.scrape_timeout.as_std(), Duration::from_secs(10));

    let got = error_of("global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n");
    assert_eq!(
        got,
        "global.scrape_timeout: 10s is greater than global.scrape_interval 5s"
    );
}

#[test]
fn follow_redirects_and_enable_http2_load_in_jobs_and_remote_write() {
    let c = config::from_yaml_str(
        "scrape_configs:\n  - job_name: a\n  - job_name: b\n    follow_redirects: false\n    enable_http2: false\nremote_write:\n  - url: http://r/api/v1/write\n  - url: http://s/api/v1/write\n    follow_redirects: false\n    enable_http2: true\n",
    )
    .expect("valid")
    .config;
    // Prometheus's common http_config defaults: both true, except
    // enable_http2 for remote write (Prometheus 3's
    // DefaultRemoteWriteHTTPClientConfig).
    assert!(c.scrape_configs[0].follow_redirects);
    assert!(c.scrape_configs[0].enable_http2);
    assert!(!c.scrape_configs[1].follow_redirects);
    assert!(!c.scrape_configs[1].enable_http2);
    assert!(c.remote_write[0].follow_redirects);
    assert!(!c.remote_write[0].enable_http2);
    assert!(!c.remote_write[1].follow_redirects);
    assert!(c.remote_write[1].enable_http2);

    for (yaml, want) in [
        (
            "scrape_configs:\n  - job_name: a\n    follow_redirects: maybe\n",
            "scrape_configs[0].follow_redirects: expected a boolean",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    enable_http2: 2\n",
            "scrape_configs[0].enable_http2: expected a boolean",
        ),
        (
            "remote_write:\n  - url: http://r/\n    follow_redirects: [true]\n",
            "remote_write[0].follow_redirects: expected a boolean",
        ),
        (
            "remote_write:\n  - url: http://r/\n    enable_http2: yes please\n",
            "remote_write[0].enable_http2: expected a boolean",
        ),
    ] {
        let got = error_of(yaml);
        assert!(
            got.starts_with(want),
            "config:\n{yaml}\ngot:  {got}\nwant: {want}"
        );
    }
}

#[test]
fn cli_check_config_warns_of_an_empty_external_label_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.yml");
    std::fs::write(
        &file,
        "global:\n  external_labels:\n    pod: '${RELAY_TEST_POD_NAME}'\n    namespace: $RELAY_TEST_POD_NAMESPACE\n    cost: '$$5'\n",
    )
    .expect("write config");
    let unset = relay()
        .args(["check", "config"])
        .arg(&file)
        .env_remove("RELAY_TEST_POD_NAME")
        .env("RELAY_TEST_POD_NAMESPACE", "prod")
        .output()
        .expect("run relay");
    let stderr = String::from_utf8_lossy(&unset.stderr);
    // As Prometheus: a warning, and the label is kept with an empty value.
    assert_eq!(unset.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("global.external_labels.pod: environment variable RELAY_TEST_POD_NAME is empty or unset"),
        "{stderr}"
    );
    assert!(!stderr.contains("RELAY_TEST_POD_NAMESPACE"), "{stderr}");

    let set = relay()
        .args(["check", "config"])
        .arg(&file)
        .env("RELAY_TEST_POD_NAME", "app-0")
        .env("RELAY_TEST_POD_NAMESPACE", "prod")
        .output()
        .expect("run relay");
    let stderr = String::from_utf8_lossy(&set.stderr);
    assert_eq!(set.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("environment variable"), "{stderr}");
}

/// The password of every URL and target in [`SECRET_CASES`].
const SECRET: &str = "S3cret";

/// Configs whose bad value holds a password, and the start of the error
/// each gives: the value shown as Prometheus shows a URL, `xxxxx` for its
/// password, also where the value does not parse as a URL.
const SECRET_CASES: &[(&str, &str)] = &[
    (
        "remote_write:\n  - url: ftp://u:S3cret@h/\n",
        "remote_write[0].url: \"ftp://u:xxxxx@h/\" is not an http(s) URL",
    ),
    (
        "remote_write:\n  - url: u:S3cret@h:1\n",
        "remote_write[0].url: \"u:xxxxx@h:1\" is not an http(s) URL",
    ),
    (
        "remote_write:\n  - url: 'http://u:S3cret@[bad'\n",
        "remote_write[0].url: \"http://u:xxxxx@[bad\" is not an http(s) URL",
    ),
    (
        "remote_write:\n  - url: http://u:S3cret@127.0.0.1:1/w\n  - url: http://u:S3cret@127.0.0.1:1/w\n",
        "remote_write[1].url: found multiple remote write configs for \"http://u:xxxxx@127.0.0.1:1/w\" without a name",
    ),
    (
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [\"alice:S3cret@127.0.0.1:notaport\"]\n",
        "scrape_configs[0].static_configs[0].targets[0]: \"alice:xxxxx@127.0.0.1:notaport\" has an invalid port",
    ),
    (
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [\"alice:S3cret@127.0.0.1:18001\"]\n",
        "scrape_configs[0].static_configs[0].targets[0]: \"alice:xxxxx@127.0.0.1:18001\" has user info (user:password@host), which relay refuses: put the credentials in basic_auth",
    ),
    (
        "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [\"http://alice:S3cret@127.0.0.1:18001\"]\n",
        "scrape_configs[0].static_configs[0].targets[0]: \"http://alice:xxxxx@127.0.0.1:18001/\" is a URL",
    ),
];

#[test]
fn passwords_in_urls_and_targets_are_redacted_in_errors() {
    for (yaml, want) in SECRET_CASES {
        let got = error_of(yaml);
        assert!(
            got.starts_with(want) && !got.contains(SECRET),
            "config:\n{yaml}\ngot:  {got}\nwant: {want}"
        );
    }
}

/// `relay run --config path`, bounded: its exit code and stderr, or a
/// failure if it is still running at the deadline (it accepted the config).
fn run_until_exit(path: &Path) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let mut child = relay()
        .args(["run", "--config"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("stderr file"))
        .spawn()
        .expect("spawn relay");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for relay") {
            break Some(status);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.is_some(),
        "relay run accepted {}:\n{stderr}",
        path.display()
    );
    (status.and_then(|s| s.code()), stderr)
}

/// `relay check config` refuses what `relay run` refuses, and neither
/// shows the password, on stdout or stderr.
#[test]
fn cli_check_and_run_refuse_the_same_configs_without_showing_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.yml");
    for (yaml, want) in SECRET_CASES {
        let relay_section = format!(
            "relay:\n  listen_address: \"127.0.0.1:{}\"\n  wal_dir: \"{}\"\n",
            free_port(),
            dir.path().join("wal").display()
        );
        std::fs::write(&file, format!("{yaml}{relay_section}")).expect("write config");
        let checked = relay()
            .args(["check", "config"])
            .arg(&file)
            .output()
            .expect("run relay");
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
        assert_eq!(
            checked.status.code(),
            Some(1),
            "check config of\n{yaml}\n{out}"
        );
        assert!(
            out.contains(want),
            "check config of\n{yaml}\n{out}\nwant: {want}"
        );
        assert!(!out.contains(SECRET), "check config of\n{yaml}\n{out}");
        let (code, stderr) = run_until_exit(&file);
        assert_eq!(code, Some(1), "run of\n{yaml}\n{stderr}");
        assert!(
            stderr.contains(want),
            "run of\n{yaml}\n{stderr}\nwant: {want}"
        );
        assert!(!stderr.contains(SECRET), "run of\n{yaml}\n{stderr}");
    }
}

/// A reload refused for any of these configs logs why without the
/// password, and the running relay's log and /metrics never show the
/// password of its remote-write URL; its default `remote_name` is the
/// hash of the redacted URL, as Prometheus hashes a config with its
/// secrets redacted.
#[test]
fn refused_reloads_and_metrics_never_show_passwords() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let relay_section = format!(
        "relay:\n  listen_address: \"{addr}\"\n  wal_dir: \"{}\"\n",
        dir.path().join("wal").display()
    );
    let url = format!("http://u:{SECRET}@127.0.0.1:{}/api/v1/write", free_port());
    let redacted = url.replace(SECRET, "xxxxx");
    let good = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: a\n    static_configs: [{{targets: [\"127.0.0.1:1\"]}}]\nremote_write:\n  - url: {url}\n{relay_section}"
    );
    std::fs::write(&path, &good).expect("write config");
    let relay = Relay::start_file(&path, &addr);
    let name = format!("{:x}", md5::compute(redacted.as_bytes()))[..6].to_owned();
    let line = relay.wait_for_line("prometheus_remote_storage_samples_total{");
    assert!(
        line.contains(&format!("remote_name=\"{name}\""))
            && line.contains(&format!("url=\"{redacted}\"")),
        "{line}\nwant remote_name {name:?} (md5 of {redacted:?})"
    );
    for (yaml, want) in SECRET_CASES {
        std::fs::write(&path, format!("{yaml}{relay_section}")).expect("write config");
        // The file watcher reloads it: the field path and the value as shown.
        let at = want.split(": ").next().unwrap_or(want);
        let shown = want.split('"').nth(1).unwrap_or(want);
        relay.wait_for_log(&["config reload refused", at, shown]);
    }
    let logs = relay.logs();
    let metrics = relay.metrics();
    assert!(logs.contains("xxxxx"), "{logs}");
    for (what, text) in [("the log", &logs), ("/metrics", &metrics)] {
        assert!(!text.contains(SECRET), "{what} shows the password:\n{text}");
    }
}

/// A target that relabeling makes invalid is skipped by `relay run` (an
/// ERROR log line, as Prometheus drops it) and refused by `relay check
/// config`, which relabels the static targets as run does: the password
/// relabeling put in is shown in neither.
#[test]
fn cli_check_config_refuses_a_target_relabeling_makes_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.yml");
    std::fs::write(
        &file,
        "scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [\"127.0.0.1:1\", \"127.0.0.1:2\"]}]\n    relabel_configs:\n      - {source_labels: [__address__], regex: '127.0.0.1:1', target_label: __address__, replacement: 'u:S3cret@127.0.0.1:1'}\n  - job_name: b\n    static_configs: [{targets: [\"127.0.0.1:3\"]}]\n    relabel_configs:\n      - {target_label: __scheme__, replacement: ftp}\n",
    )
    .expect("write config");
    let out = relay()
        .args(["check", "config"])
        .arg(&file)
        .output()
        .expect("run relay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = file.display();
    for want in [
        format!("{file}: job \"a\", target \"127.0.0.1:1\": a target address with user info (user:password@host) is refused: use basic_auth"),
        format!("{file}: job \"b\", target \"127.0.0.1:3\": invalid scheme \"ftp\" (expected http or https)"),
    ] {
        assert!(stderr.contains(&want), "{stderr}\nwant: {want}");
    }
    assert!(!stderr.contains("127.0.0.1:2"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn protobuf_message_picks_the_remote_write_protocol_and_refuses_others() {
    let rw = |extra: &str| format!("remote_write:\n  - url: http://127.0.0.1:1/w\n{extra}");
    let loaded = config::from_yaml_str(&rw("")).expect("valid");
    assert_eq!(
        loaded.config.remote_write[0].protobuf_message,
        config::ProtobufMessage::V1,
        "1.0 by default, as Prometheus"
    );
    let loaded = config::from_yaml_str(&rw(
        "    protobuf_message: io.prometheus.write.v2.Request\n",
    ))
    .expect("valid");
    assert_eq!(
        loaded.config.remote_write[0].protobuf_message,
        config::ProtobufMessage::V2
    );
    let loaded = config::from_yaml_str(&rw("    protobuf_message: prometheus.WriteRequest\n"))
        .expect("valid");
    assert_eq!(
        loaded.config.remote_write[0].protobuf_message,
        config::ProtobufMessage::V1
    );
    let err = error_of(&rw(
        "    protobuf_message: io.prometheus.write.v3.Request\n",
    ));
    assert!(
        err.contains(
            "remote_write[0].protobuf_message: unknown value \"io.prometheus.write.v3.Request\""
        ),
        "{err}"
    );
    assert!(err.contains("io.prometheus.write.v2.Request"), "{err}");
}
