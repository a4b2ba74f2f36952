//! `relay run` end to end: the real binary scraping a real HTTP target,
//! checked through its :9090 endpoint and its log.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::certs::TlsTarget;
use common::peers::{require_peer, start_prometheus};
use common::{get, wait_for, Relay, Reply, Target};
use relay::exposition::{Entry, Format, Labels, Parser};

const APP: &str = "# HELP app_temperature_celsius A gauge.\n# TYPE app_temperature_celsius gauge\napp_temperature_celsius{room=\"a\\\"b\\\\c\\nd\",floor=\"1\"} 21.5\n# HELP app_jobs_total A counter.\n# TYPE app_jobs_total counter\napp_jobs_total{job=\"inner\"} 7\n# HELP app_latency_seconds A histogram.\n# TYPE app_latency_seconds histogram\napp_latency_seconds_bucket{le=\"0.1\"} 1\napp_latency_seconds_bucket{le=\"+Inf\"} 2\napp_latency_seconds_sum 0.3\napp_latency_seconds_count 2\n# HELP special Special values.\nspecial{v=\"nan\"} NaN\nspecial{v=\"inf\"} +Inf\n";

fn job(name: &str, target: &str, extra: &str) -> String {
    format!("  - job_name: {name}\n    scrape_interval: 1s\n    scrape_timeout: 500ms\n    static_configs:\n      - targets: [\"{target}\"]\n        labels: {{team: core}}\n{extra}")
}

/// A sample as (name, sorted labels without `__name__`, value as text).
type Flat = (String, Vec<(String, String)>, String);

/// Every sample of an exposition, flattened for comparison.
fn samples(text: &str) -> Vec<Flat> {
    let mut out = Vec::new();
    for entry in Parser::new(text.as_bytes(), Format::Text) {
        if let Ok(Entry::Sample(s)) = entry {
            let mut labels = Labels::default();
            s.labels_into(&mut labels);
            let mut pairs: Vec<_> = labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            pairs.sort();
            out.push((s.name.to_string(), pairs, format!("{}", s.value)));
        }
    }
    out
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn values_and_labels_arrive_exact() {
    let target = Target::start(Reply::text(APP));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, "")
    ));
    relay.wait_for_line("up{");
    let text = relay.metrics();
    let got = samples(&text);
    let inst = target.addr.as_str();
    let want = [
        (
            "app_temperature_celsius",
            pairs(&[
                ("floor", "1"),
                ("instance", inst),
                ("job", "app"),
                ("room", "a\"b\\c\nd"),
                ("team", "core"),
            ]),
            "21.5",
        ),
        (
            "app_jobs_total",
            pairs(&[
                ("exported_job", "inner"),
                ("instance", inst),
                ("job", "app"),
                ("team", "core"),
            ]),
            "7",
        ),
        (
            "app_latency_seconds_bucket",
            pairs(&[
                ("instance", inst),
                ("job", "app"),
                ("le", "+Inf"),
                ("team", "core"),
            ]),
            "2",
        ),
        (
            "up",
            pairs(&[("instance", inst), ("job", "app"), ("team", "core")]),
            "1",
        ),
        (
            "scrape_samples_scraped",
            pairs(&[("instance", inst), ("job", "app"), ("team", "core")]),
            "8",
        ),
    ];
    for (name, labels, value) in want {
        assert!(
            got.iter()
                .any(|(n, l, v)| n == name && *l == labels && v == value),
            "missing {name}{labels:?} {value} in:\n{text}"
        );
    }
    let special: Vec<_> = got
        .iter()
        .filter(|(n, _, _)| n == "special")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(special, vec!["NaN", "inf"]);
    assert!(
        text.contains("# HELP app_jobs_total A counter.\n# TYPE app_jobs_total counter\n"),
        "{text}"
    );
    assert!(text.contains("relay_build_info{version=\""), "{text}");
}

#[test]
#[ignore = "needs promtool; scripts/test runs it"]
fn promtool_accepts_the_output() {
    let promtool = require_peer("promtool", "prometheus");
    let target = Target::start(Reply::text(APP));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, "")
    ));
    relay.wait_for_line("up{");
    let metrics = relay.metrics();
    assert!(metrics.contains("\nprocess_open_fds "), "{metrics}");
    let mut promtool = Command::new(promtool);
    promtool.args(["check", "metrics"]);
    let out = common::pipe(promtool, metrics.as_bytes());
    assert_eq!(
        out.code, 0,
        "promtool check metrics failed:\n{}{}\n--- input:\n{metrics}",
        out.stdout, out.stderr
    );
}

#[test]
fn failing_targets_give_up_0_with_a_reason_and_relay_stays_healthy() {
    let garbage = Target::start(Reply::text("this is { not an exposition\n"));
    let missing = Target::start(Reply {
        status: 404,
        ..Reply::text("nothing here")
    });
    let hung = Target::start(Reply {
        delay: Duration::from_secs(3),
        ..Reply::text(APP)
    });
    let big = Target::start(Reply::text(APP));
    let limited = Target::start(Reply::text(APP));
    let config = format!(
        "scrape_configs:\n{}{}{}{}{}",
        job("garbage", &garbage.addr, ""),
        job("missing", &missing.addr, ""),
        job("hung", &hung.addr, ""),
        job("big", &big.addr, "    body_size_limit: 100B\n"),
        job("limited", &limited.addr, "    sample_limit: 1\n"),
    );
    let relay = Relay::start(&config);
    for (job, fragments) in [
        (
            "garbage",
            vec![
                // logfmt quotes the error value and escapes its quotes.
                "invalid exposition at line 1:6: bad number \\\"is\\\"",
                "garbage/",
            ],
        ),
        (
            "missing",
            vec!["server returned HTTP status 404 Not Found", "missing/"],
        ),
        ("hung", vec!["scrape timed out after 500ms", "hung/"]),
        ("big", vec!["body size limit exceeded (100 bytes)", "big/"]),
        (
            "limited",
            vec![
                "error=\"sample_limit exceeded: ",
                "samples after relabeling, limit 1",
                "limited/",
            ],
        ),
    ] {
        let line = relay.wait_for_line(&format!(
            "up{{instance=\"{}\",job=\"{job}\"",
            target_addr(job, &[&garbage, &missing, &hung, &big, &limited])
        ));
        assert!(line.ends_with(" 0"), "{line}");
        let log = relay.wait_for_log(&fragments);
        assert!(
            log.contains("WARN") && log.contains("scrape failed"),
            "{log}"
        );
    }
    assert_eq!(
        get(&relay.addr, "/-/healthy", &[]).map(|r| r.status),
        Some(200)
    );
    // Ready means up with its config loaded, whatever the targets do.
    assert_eq!(
        get(&relay.addr, "/-/ready", &[]).map(|r| r.status),
        Some(200)
    );
    let metrics = relay.metrics();
    assert!(
        metrics
            .contains("relay_scrape_failures_total{scrape_job=\"missing\",reason=\"http_status\"}"),
        "{metrics}"
    );

    // A target that comes back is up again.
    garbage.set(Reply::text("ok_metric 1\n"));
    common::wait_for("the garbage target to come back", || {
        relay
            .metrics()
            .lines()
            .any(|l| l.starts_with("up{") && l.contains("job=\"garbage\"") && l.ends_with(" 1"))
            .then_some(())
    });
    assert!(relay.metrics().contains("ok_metric{"));
    // Its first success is logged once, with how long and how many
    // scrapes failed before, and the last error.
    let line = relay.wait_for_log(&["first successful scrape", "target=garbage/"]);
    assert!(line.contains("level=INFO"), "{line}");
    assert_failed_before(&line, "invalid exposition");
    let logs = relay.logs();
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("successful scrape") && l.contains("target=garbage/"))
            .count(),
        1,
        "{logs}"
    );
    // A target that never succeeds logs no success.
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("successful scrape") && l.contains("target=big/")),
        "{logs}"
    );
}

/// Asserts that a log line says how many scrapes failed, for how long, and
/// the last error (containing `error`).
fn assert_failed_before(line: &str, error: &str) {
    let failed: u64 = field(line, "failed_scrapes")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no failed_scrapes in {line}"));
    assert!(failed >= 1, "{line}");
    let failing_for = field(line, "failing_for").unwrap_or_else(|| panic!("{line}"));
    let seconds: f64 = failing_for
        .strip_suffix('s')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("failing_for {failing_for:?} in {line}"));
    assert!(seconds >= 0.0, "{line}");
    assert!(
        field(line, "last_error").is_some_and(|e| e.contains(error)),
        "{line}"
    );
}

/// A logfmt field's value (unquoted when quoted), from one log line.
fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '"' => return Some(out),
                c => out.push(c),
            }
        }
        None
    } else {
        Some(rest.split(' ').next().unwrap_or("").to_owned())
    }
}

fn target_addr<'a>(job: &str, targets: &[&'a Target]) -> &'a str {
    let i = ["garbage", "missing", "hung", "big", "limited"]
        .iter()
        .position(|j| *j == job)
        .unwrap_or(0);
    &targets[i].addr
}

/// `/-/ready` is Prometheus's "up with its config loaded": 200 while the
/// only target is down (a native sidecar's readiness is the Pod's, and the
/// app must not leave its Service over a metrics problem). The first good
/// scrape shows in `relay_target_last_success_timestamp_seconds` (0 until
/// then) and in one INFO line.
#[test]
fn readiness_does_not_wait_for_targets_and_a_metric_shows_the_first_success() {
    let target = Target::start(Reply {
        status: 503,
        ..Reply::text("")
    });
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, "")
    ));
    relay.wait_for_line("up{");
    let ready = get(&relay.addr, "/-/ready", &[]).expect("ready answers");
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (200, "relay is Ready.\n")
    );
    let gauge = format!(
        "relay_target_last_success_timestamp_seconds{{scrape_job=\"app\",scrape_instance=\"{}\"}} ",
        target.addr
    );
    let never = relay.wait_for_line(&gauge);
    assert_eq!(never, format!("{gauge}0"), "never scraped successfully");
    assert!(!relay.logs().contains("first successful scrape"));
    let fixed = unix_now();
    target.set(Reply::text(APP));
    let when = common::wait_for("the first success in the gauge", || {
        relay.metrics().lines().find_map(|l| {
            let v: f64 = l.strip_prefix(&gauge)?.parse().ok()?;
            (v > 0.0).then_some(v)
        })
    });
    // A scrape's time is when it began: at most one timeout before the fix.
    assert!(
        when >= fixed - 0.5,
        "{when} is before the target was fixed at {fixed}"
    );
    let line = relay.wait_for_log(&["first successful scrape", "target=app/"]);
    assert!(line.contains("level=INFO"), "{line}");
    assert_failed_before(&line, "HTTP status 503");
    assert!(!relay.logs().contains("scrape succeeds again"));
    // Down again, then back: the recovery is logged.
    // (Without remote write the app is scraped when /metrics is read.)
    target.set(Reply {
        status: 500,
        ..Reply::text("")
    });
    log_after_gets(&relay, &["scrape failed", "HTTP status 500"]);
    assert_eq!(
        get(&relay.addr, "/-/ready", &[]).map(|r| r.status),
        Some(200)
    );
    target.set(Reply::text(APP));
    let line = log_after_gets(&relay, &["scrape succeeds again", "target=app/"]);
    assert!(line.contains("level=INFO"), "{line}");
    assert_failed_before(&line, "HTTP status 500");
}

/// A log line with all of `fragments`, reading /metrics until it comes
/// (a serve-only relay scrapes when /metrics is read).
fn log_after_gets(relay: &Relay, fragments: &[&str]) -> String {
    common::wait_for(&format!("a log line with {fragments:?}"), || {
        relay.metrics();
        relay
            .logs()
            .lines()
            .find(|l| fragments.iter().all(|f| l.contains(f)))
            .map(str::to_owned)
    })
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// relay's own `process_*` metrics, as every Prometheus client exposes
/// them, agree with what the kernel says about the process.
#[test]
fn process_metrics_agree_with_proc() {
    let target = Target::start(Reply::text(APP));
    let spawned = unix_now();
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, "")
    ));
    relay.wait_for_line("up{");
    let pid = relay.pid();
    // A snapshot serves relay's own metrics for up to a second: the GET
    // below comes later than that after the last one, so they are new.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let cpu_before = cpu_seconds(pid);
    let text = relay.metrics();
    let cpu_after = cpu_seconds(pid);
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    for (family, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} {kind}:\n{text}"
        );
    }
    let rss = common::procfs::status_kib(pid, "VmRSS") as f64 * 1024.0;
    let got = value("process_resident_memory_bytes");
    assert!(
        (got - rss).abs() <= rss * 0.25,
        "RSS {got}, /proc says {rss}"
    );
    let vsize = common::procfs::status_kib(pid, "VmSize") as f64 * 1024.0;
    let got = value("process_virtual_memory_bytes");
    assert!(
        (got - vsize).abs() <= vsize * 0.25,
        "virtual memory {got}, /proc says {vsize}"
    );
    let fds = common::procfs::open_fds(pid) as f64;
    let got = value("process_open_fds");
    assert!(
        (got - fds).abs() <= 5.0,
        "open fds {got}, /proc/{pid}/fd has {fds}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let soft: f64 = limits
        .lines()
        .find_map(|l| {
            l.strip_prefix("Max open files")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("Max open files");
    assert_eq!(value("process_max_fds"), soft);
    let started = value("process_start_time_seconds");
    assert!(
        (started - spawned).abs() <= 1.0,
        "start time {started}, spawned at {spawned}"
    );
    let cpu = value("process_cpu_seconds_total");
    assert!(
        cpu_before <= cpu && cpu <= cpu_after,
        "cpu {cpu} s, /proc says {cpu_before} s before the GET and {cpu_after} s after"
    );
}

/// The user and system CPU time of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

#[test]
fn gzip_and_openmetrics_are_negotiated() {
    let target = Target::start(Reply::text(APP));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, "")
    ));
    relay.wait_for_line("up{");
    let plain = get(&relay.addr, "/metrics", &[]).expect("plain");
    assert_eq!(
        plain.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    let zipped = get(&relay.addr, "/metrics", &[("Accept-Encoding", "gzip")]).expect("gzip");
    assert_eq!(zipped.header("content-encoding").as_deref(), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut unzipped)
        .expect("gunzip");
    assert!(unzipped.contains("app_temperature_celsius{"), "{unzipped}");
    let om = get(
        &relay.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    )
    .expect("om");
    assert_eq!(
        om.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores")
    );
    let om = om.text();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE app_jobs counter\n"), "{om}");
    assert_eq!(
        relay::exposition::check(om.as_bytes(), Format::OpenMetrics).len(),
        0,
        "{om}"
    );
}

#[test]
fn sigterm_exits_zero_promptly() {
    let target = Target::start(Reply::text(APP));
    let wal = tempfile::tempdir().expect("wal dir");
    // Nothing to flush (no remote write): relay must not sit out its flush
    // budget, here a minute, twice the harness's own wait for the exit.
    let budget = Duration::from_secs(60);
    let mut relay = Relay::start_with(
        &format!("scrape_configs:\n{}", job("app", &target.addr, "")),
        wal.path(),
        &format!("  shutdown_timeout: {}s\n", budget.as_secs()),
    );
    relay.wait_for_line("up{");
    let started = Instant::now();
    let status = relay.terminate();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    // A sixth of the budget: far above a loaded machine's exit, far below
    // a relay that waits out the budget with nothing to send.
    assert!(
        took < budget / 6,
        "relay took {took:?} to exit with nothing to flush (budget {budget:?})\n{}",
        relay.logs()
    );
    assert!(relay.logs().contains("stopping"));
}

/// `label_name_length_limit`: a scraped label name longer than the limit
/// fails the scrape whole (`up 0`, none of its samples, a log line naming
/// the metric, the name and the limit), as in Prometheus; a name of
/// exactly the limit passes.
#[test]
fn label_name_length_limit_fails_the_scrape() {
    let fits = "# TYPE ok_metric gauge\nok_metric{abcdefghij=\"1\"} 1\n";
    let limit = "    label_name_length_limit: 10\n";
    let target = Target::start(Reply::text(fits));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, limit)
    ));
    assert!(relay.wait_for_line("up{").ends_with(" 1"));
    relay.wait_for_line("ok_metric{abcdefghij=\"1\"");
    let over = format!("{fits}# TYPE bad gauge\nbad{{abcdefghijk=\"1\"}} 2\n");
    let target = Target::start(Reply::text(&over));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, limit)
    ));
    assert!(relay.wait_for_line("up{").ends_with(" 0"));
    relay.wait_for_log(&[
        "scrape failed",
        "label_name_length_limit exceeded (metric: bad, label name: abcdefghijk, limit: 10)",
    ]);
    let served = relay.metrics_ok();
    assert!(
        !served.contains("ok_metric{") && !served.contains("\nbad{"),
        "{served}"
    );
}

#[test]
fn honor_labels_keeps_the_apps_job() {
    let target = Target::start(Reply::text(APP));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("app", &target.addr, "    honor_labels: true\n")
    ));
    let line = relay.wait_for_line("app_jobs_total{");
    assert!(
        line.contains("job=\"inner\"") && !line.contains("exported_job"),
        "{line}"
    );
}

#[test]
fn requests_carry_negotiation_and_auth_headers() {
    let target = Target::start(Reply::text(APP));
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").expect("write token");
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job(
            "app",
            &target.addr,
            &format!(
                "    authorization:\n      credentials_file: {}\n",
                token.display()
            )
        )
    ));
    relay.wait_for_line("up{");
    let request = target.last_request().to_ascii_lowercase();
    assert!(
        request.starts_with("get /metrics http/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains("authorization: bearer s3cret-token\r\n"),
        "{request}"
    );
    // Prometheus 3's default Accept (scrape/scrape.go acceptHeader).
    assert!(
        request.contains("accept: application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2\r\n"),
        "{request}"
    );
    assert!(
        request.contains("x-prometheus-scrape-timeout-seconds: 0.5\r\n"),
        "{request}"
    );
    assert!(request.contains("accept-encoding: gzip"), "{request}");
    assert!(request.contains("user-agent: relay/"), "{request}");

    let basic = Target::start(Reply::text(APP));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job(
            "app",
            &basic.addr,
            "    basic_auth: {username: alice, password: wonderland}\n"
        )
    ));
    relay.wait_for_line("up{");
    // base64("alice:wonderland")
    assert!(
        basic
            .last_request()
            .contains("authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n"),
        "{}",
        basic.last_request()
    );
    assert!(
        !relay.logs().contains("wonderland"),
        "a secret reached the log"
    );
}

#[test]
fn sigterm_cancels_a_scrape_in_flight() {
    let hung = Target::start(Reply {
        delay: Duration::from_secs(60),
        ..Reply::text(APP)
    });
    // A 1m timeout, so the scrape outlives the harness's 30 s bound on
    // waiting for the exit. A serve-only relay scrapes for a GET: one whose
    // scrape timeout (100 s) lets the scrape run its whole minute.
    let mut relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: slow\n    scrape_interval: 1m\n    scrape_timeout: 1m\n    static_configs:\n      - targets: [\"{}\"]\n",
        hung.addr
    ));
    let addr = relay.addr.clone();
    let waiting = std::thread::spawn(move || {
        get(
            &addr,
            "/metrics",
            &[("X-Prometheus-Scrape-Timeout-Seconds", "100")],
        )
    });
    let start = Instant::now();
    while hung.last_request().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no scrape for the GET"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Exit must come from cancelling that scrape: it would otherwise take
    // 60 s, past the harness's 30 s bound on waiting for the exit.
    let status = relay.terminate();
    assert!(status.success(), "{status:?}");
    // The GET ends with relay (answered or cut), not after the minute.
    let _ = waiting.join();
}

/// A throwaway CA, a server certificate whose subjectAltName is `san`, a
/// client certificate, and `s_server` serving the page on 127.0.0.1.
fn tls_target(openssl: &std::path::Path, san: &str, client_auth: bool) -> TlsTarget {
    common::certs::tls_target(openssl, san, client_auth, "tls_metric{over=\"https\"} 1\n")
}

/// A relay scraping `target` over HTTPS with the given `tls_config` lines.
fn https_relay(target: &TlsTarget, tls_config: &[String]) -> Relay {
    let mut extra = "    scheme: https\n".to_owned();
    if !tls_config.is_empty() {
        extra.push_str("    tls_config:\n");
        for line in tls_config {
            extra.push_str(&format!("      {line}\n"));
        }
    }
    Relay::start(&format!(
        "scrape_configs:\n{}",
        job("tls", &target.addr, &extra)
    ))
}

/// The scrape reached the page: its sample and `up 1` are served.
fn assert_scraped_over_tls(relay: &Relay) {
    let line = relay.wait_for_line("tls_metric{");
    assert!(
        line.contains("over=\"https\"") && line.ends_with(" 1"),
        "{line}"
    );
    assert!(relay.wait_for_line("up{").ends_with(" 1"));
}

/// The scrape failed with `up 0` and a log line that mentions `word`.
fn assert_refused(relay: &Relay, word: &str) {
    assert!(relay.wait_for_line("up{").ends_with(" 0"));
    let log = relay.wait_for_log(&["scrape failed", "tls/"]);
    assert!(log.to_ascii_lowercase().contains(word), "{log}");
}

#[test]
#[ignore = "needs openssl; scripts/test runs it"]
fn https_targets_are_verified_against_ca_file() {
    let openssl = require_peer("openssl", "openssl");
    let target = tls_target(&openssl, "IP:127.0.0.1", false);
    let ca = format!("ca_file: {}", target.file("ca.pem"));
    assert_scraped_over_tls(&https_relay(&target, std::slice::from_ref(&ca)));
    // Without the CA, the self-signed chain must be refused...
    assert_refused(&https_relay(&target, &[]), "certificate");
    // ...unless verification is switched off, as in Prometheus.
    assert_scraped_over_tls(&https_relay(
        &target,
        &["insecure_skip_verify: true".to_owned()],
    ));
}

#[test]
#[ignore = "needs openssl; scripts/test runs it"]
fn server_name_is_what_the_certificate_must_name() {
    let openssl = require_peer("openssl", "openssl");
    // The sidecar case: the target is an IP, the certificate names a service.
    let target = tls_target(&openssl, "DNS:metrics.app.svc", false);
    let ca = format!("ca_file: {}", target.file("ca.pem"));
    assert_refused(
        &https_relay(&target, std::slice::from_ref(&ca)),
        "not valid for name",
    );
    let named = [ca.clone(), "server_name: metrics.app.svc".to_owned()];
    assert_scraped_over_tls(&https_relay(&target, &named));
    let wrong = [ca, "server_name: other.app.svc".to_owned()];
    assert_refused(&https_relay(&target, &wrong), "not valid for name");
}

#[test]
#[ignore = "needs openssl; scripts/test runs it"]
fn client_certificates_are_presented() {
    let openssl = require_peer("openssl", "openssl");
    let target = tls_target(&openssl, "IP:127.0.0.1", true);
    let ca = format!("ca_file: {}", target.file("ca.pem"));
    let with_identity = [
        ca.clone(),
        format!("cert_file: {}", target.file("client.pem")),
        format!("key_file: {}", target.file("client.key")),
    ];
    assert_scraped_over_tls(&https_relay(&target, &with_identity));
    // s_server ends the handshake when no client certificate comes: the
    // refusal must be that alert, not any failed scrape.
    assert_refused(
        &https_relay(&target, &[ca]),
        "received fatal alert: certificaterequired",
    );
}

/// A target that redirects `/metrics` through `hops` redirects (`/hop1`,
/// `/hop2`, …) to `/metrics/`, which serves APP.
fn redirecting(hops: usize) -> Target {
    let target = Target::start(Reply::text(APP));
    let mut from = "/metrics".to_owned();
    for i in 1..hops {
        let to = format!("/hop{i}");
        target.redirect(&from, 307, &to);
        from = to;
    }
    target.redirect(&from, 307, "/metrics/");
    target
}

/// The value of `up` for `target` on relay's /metrics, once it has one.
fn up_of(relay: &Relay, target: &Target) -> String {
    let line = relay.wait_for_line(&format!("up{{instance=\"{}\"", target.addr));
    line.rsplit(' ').next().unwrap_or_default().to_owned()
}

/// FastAPI (Starlette) answers `/metrics` with `307 Location: /metrics/`;
/// Prometheus follows it (`follow_redirects` defaults to true), and Go's
/// client gives up at the 10th redirect. relay must do the same: a
/// Prometheus 2.42 scrapes the same targets side by side.
#[test]
#[ignore = "needs prometheus; scripts/test runs it"]
fn redirects_are_followed_as_prometheus_follows_them() {
    let prometheus = require_peer("prometheus", "prometheus");
    let fastapi = redirecting(1);
    let nine = redirecting(9);
    let ten = redirecting(10);
    let jobs = format!(
        "{}{}{}",
        job("fastapi", &fastapi.addr, ""),
        job("nine", &nine.addr, ""),
        job("ten", &ten.addr, "")
    );
    let relay = Relay::start(&format!("scrape_configs:\n{jobs}"));
    let prom = start_prometheus(&prometheus, &format!("scrape_configs:\n{jobs}"));

    assert_eq!(up_of(&relay, &fastapi), "1", "{}", relay.logs());
    let text = relay.metrics();
    let want = format!(
        "app_jobs_total{{job=\"fastapi\",instance=\"{}\",team=\"core\",exported_job=\"inner\"}} 7",
        fastapi.addr
    );
    let got = samples(&text);
    assert!(
        got.iter()
            .any(|(name, labels, value)| name == "app_jobs_total"
                && value == "7"
                && labels.contains(&("job".into(), "fastapi".into()))),
        "no {want} in:\n{text}"
    );
    assert!(
        fastapi.paths().iter().any(|p| p == "/metrics/"),
        "relay never asked for /metrics/: {:?}",
        fastapi.paths()
    );
    assert_eq!(up_of(&relay, &nine), "1", "{}", relay.logs());
    assert_eq!(up_of(&relay, &ten), "0");
    let line = relay.wait_for_log(&["scrape failed", "ten/", "stopped after 10 redirects"]);
    assert!(!line.contains("/metrics/"), "{line}");

    for (job, want) in [("fastapi", "1"), ("nine", "1"), ("ten", "0")] {
        let path = format!("/api/v1/query?query=up%7Bjob%3D%22{job}%22%7D");
        let body = wait_for(&format!("Prometheus's up for {job}"), || {
            get(&prom.addr, &path, &[])
                .map(|r| r.text())
                .filter(|t| t.contains("\"result\":[{"))
        });
        assert!(
            body.contains(&format!(",\"{want}\"]")),
            "Prometheus's up for {job}, want {want}: {body}"
        );
    }
    let body = wait_for(
        "Prometheus's app_jobs_total from the FastAPI target",
        || {
            get(
                &prom.addr,
                "/api/v1/query?query=app_jobs_total%7Bjob%3D%22fastapi%22%7D",
                &[],
            )
            .map(|r| r.text())
            .filter(|t| t.contains("\"result\":[{"))
        },
    );
    assert!(body.contains(",\"7\"]"), "{body}");
}

/// With `follow_redirects: false` a redirect is a failed scrape, as in
/// Prometheus: `up 0` and a log line naming the status.
#[test]
fn follow_redirects_false_gives_up_0_naming_the_307() {
    let fastapi = redirecting(1);
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("fastapi", &fastapi.addr, "    follow_redirects: false\n")
    ));
    assert_eq!(up_of(&relay, &fastapi), "0");
    relay.wait_for_log(&[
        "scrape failed",
        "fastapi/",
        "server returned HTTP status 307",
    ]);
    assert!(
        fastapi.paths().iter().all(|p| p == "/metrics"),
        "{:?}",
        fastapi.paths()
    );
}

/// A redirect to a URL with a password: an error that names the URL
/// shows it with the password replaced, as everywhere else.
#[test]
fn a_redirect_target_in_an_error_has_its_password_redacted() {
    let closed = common::free_port();
    let refused = Target::start(Reply::text(APP));
    refused.redirect(
        "/metrics",
        307,
        &format!("http://scraper:hunter2@127.0.0.1:{closed}/metrics"),
    );
    let ftp = Target::start(Reply::text(APP));
    ftp.redirect("/metrics", 302, "ftp://scraper:hunter2@127.0.0.1/metrics");
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}{}",
        job("refused", &refused.addr, ""),
        job("ftp", &ftp.addr, "")
    ));
    assert_eq!(up_of(&relay, &refused), "0");
    assert_eq!(up_of(&relay, &ftp), "0");
    relay.wait_for_log(&["scrape failed", "refused/", "Connection refused"]);
    let line = relay.wait_for_log(&["scrape failed", "ftp/"]);
    assert!(
        line.contains(
            "URL scheme is not allowed (after a redirect to ftp://scraper:xxxxx@127.0.0.1/metrics)"
        ),
        "{line}"
    );
    assert!(!relay.logs().contains("hunter2"), "{}", relay.logs());
}

/// Prometheus 3 (`textparse.New`): a body with no or an unknown
/// Content-Type fails the scrape unless `fallback_scrape_protocol` says
/// what it is.
#[test]
fn a_missing_or_unknown_content_type_needs_a_fallback() {
    let blank = Target::start(Reply {
        content_type: String::new(),
        ..Reply::text("app_up 1\n")
    });
    let json = Target::start(Reply {
        content_type: "application/json".into(),
        ..Reply::text("app_up 1\n")
    });
    let saved = Target::start(Reply {
        content_type: String::new(),
        ..Reply::text("app_up 1\n")
    });
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}{}{}",
        job("blank", &blank.addr, ""),
        job("json", &json.addr, ""),
        job(
            "saved",
            &saved.addr,
            "    fallback_scrape_protocol: PrometheusText0.0.4\n"
        )
    ));
    let metrics = wait_for("all three targets scraped", || {
        let m = relay.metrics();
        (m.matches("\nup{").count() == 3).then_some(m)
    });
    let up = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("up{") && l.contains(&format!(",job=\"{name}\",")))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
    };
    assert_eq!(up("saved").as_deref(), Some("1"), "{metrics}");
    assert_eq!(up("blank").as_deref(), Some("0"), "{metrics}");
    assert_eq!(up("json").as_deref(), Some("0"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("app_up{") && l.contains("job=\"saved\"")),
        "{metrics}"
    );
    relay.wait_for_log(&[
        "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target",
    ]);
    relay.wait_for_log(&["received unsupported Content-Type", "application/json"]);
}
