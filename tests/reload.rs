//! Live config reload against the real binary: SIGHUP, `POST /-/reload`
//! and a change of the file's content the way Kubernetes makes it (the
//! `..data` symlink of a mounted ConfigMap swapped to a new directory). A
//! bad edit leaves the old config running; what did not change keeps
//! running as it was.

mod common;

use std::path::Path;

use common::rw::Receiver;
use common::{free_port, get, post, wait_for, Relay, Reply, Target};

/// A config with `jobs` (name, target address, extra job lines) and the
/// `relay:` section on `addr`.
fn config(addr: &str, wal: &Path, jobs: &[(&str, &str, &str)], remote: &str) -> String {
    let mut out = String::from(
        "global:\n  scrape_interval: 300ms\n  scrape_timeout: 300ms\nscrape_configs:\n",
    );
    for (name, target, extra) in jobs {
        out.push_str(&format!(
            "  - job_name: {name}\n    static_configs: [{{targets: [\"{target}\"]}}]\n{extra}"
        ));
    }
    out.push_str(remote);
    out.push_str(&format!(
        "relay:\n  listen_address: \"{addr}\"\n  wal_dir: \"{}\"\n",
        wal.display()
    ));
    out
}

const DROP_B: &str =
    "    metric_relabel_configs:\n      - {source_labels: [__name__], regex: b, action: drop}\n";

/// The value of the first line of `metrics` that starts with `prefix`.
fn value(metrics: &str, prefix: &str) -> Option<String> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
}

/// POST /-/reload, again while it answers 429 (one reload a second at
/// most): the first answer that is not "wait".
fn post_reload(addr: &str) -> common::Http {
    wait_for("a reload that is not told to wait", || {
        post(addr, "/-/reload").filter(|a| a.status != 429)
    })
}

/// Waits until a good GET of /metrics has job one's `a` and no `b`: the
/// rule dropped b, not a failed GET or a target that went away.
fn wait_for_b_dropped(relay: &Relay, one: &Target) {
    let a = format!("a{{instance=\"{}\",job=\"one\"}} 1", one.addr);
    wait_for("b to be dropped while a is served", || {
        let m = relay.metrics_ok();
        (m.lines().any(|l| l == a) && !m.lines().any(|l| l.starts_with("b{"))).then_some(())
    });
}

fn app() -> Target {
    Target::start(Reply::text("# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\n"))
}

#[test]
fn sighup_applies_an_edit_and_unchanged_targets_keep_their_cache() {
    let (one, two) = (app(), app());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    let write = |extra: &str| {
        let jobs = [
            ("one", one.addr.as_str(), ""),
            ("two", two.addr.as_str(), extra),
        ];
        std::fs::write(&path, config(&addr, &wal, &jobs, "")).expect("write config");
    };
    write("");
    let relay = Relay::start_file(&path, &addr);
    relay.wait_for_line(&format!("b{{instance=\"{}\",job=\"two\"}} 2", two.addr));
    relay.wait_for_line("relay_config_last_reload_successful 1");
    // Job one's cache is warm: its second scrape added nothing.
    relay.wait_for_line(&format!(
        "scrape_series_added{{instance=\"{}\",job=\"one\"}} 0",
        one.addr
    ));
    write(DROP_B);
    relay.signal("HUP");
    // Job two restarts with the new rule: its b is gone.
    wait_for("job two's b to be dropped", || {
        let m = relay.metrics();
        let two_b = format!("b{{instance=\"{}\",job=\"two\"}}", two.addr);
        let two_a = format!("a{{instance=\"{}\",job=\"two\"}}", two.addr);
        (!m.contains(&two_b) && m.contains(&two_a)).then_some(())
    });
    relay.wait_for_log(&["config reloaded"]);
    // Job one did not change: its loop and series cache ran on, so no
    // scrape of it has counted its series as added since.
    let added = format!(
        "scrape_series_added{{instance=\"{}\",job=\"one\"}}",
        one.addr
    );
    for _ in 0..5 {
        let m = relay.metrics();
        assert_eq!(value(&m, &added).as_deref(), Some("0"), "{m}");
        assert!(m.contains(&format!("b{{instance=\"{}\",job=\"one\"}} 2", one.addr)));
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    // (Counting the "scraping" lines: the first success has a line too.)
    let scraping = relay
        .logs()
        .lines()
        .filter(|l| l.contains("msg=scraping ") && l.contains("target=one/"))
        .count();
    assert_eq!(scraping, 1, "job one was started again:\n{}", relay.logs());
}

#[test]
fn post_reload_refuses_a_bad_edit_and_keeps_the_old_config() {
    let one = app();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    let good = config(&addr, &wal, &[("one", &one.addr, "")], "");
    std::fs::write(&path, &good).expect("write config");
    let relay = Relay::start_file(&path, &addr);
    relay.wait_for_line(&format!("b{{instance=\"{}\",job=\"one\"}} 2", one.addr));
    // A typo: refused with the field path, the old config runs on.
    std::fs::write(
        &path,
        good.replace("scrape_interval: 300ms", "scrape_intervall: 300ms"),
    )
    .expect("write config");
    let answer = post(&addr, "/-/reload").expect("an answer");
    assert_eq!(answer.status, 500, "{}", answer.text());
    // The reason is in the log, not in the answer: a config error can
    // quote the file (a secret), and the caller need not be its reader.
    assert_eq!(
        answer.text(),
        "failed to reload config; relay's log says why, and the running config stays\n"
    );
    relay.wait_for_log(&["config reload refused", "scrape_intervall"]);
    relay.wait_for_line("relay_config_last_reload_successful 0");
    let before = relay.metrics();
    assert!(before.contains(&format!("b{{instance=\"{}\",job=\"one\"}} 2", one.addr)));
    // A change that needs a restart is refused too, saying so.
    let other = format!("127.0.0.1:{}", free_port());
    std::fs::write(&path, good.replace(&addr, &other)).expect("write config");
    // (a second within a second of the last is told to wait)
    let answer = post_reload(&addr);
    assert_eq!(answer.status, 500);
    relay.wait_for_log(&["relay.listen_address changed: that needs a restart"]);
    // A good edit is applied, and the gauge is back to 1.
    std::fs::write(
        &path,
        config(&addr, &wal, &[("one", &one.addr, DROP_B)], ""),
    )
    .expect("write config");
    let answer = post_reload(&addr);
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "config reloaded\n")
    );
    // A flood is refused, not run: one reload a second at most.
    let flood: Vec<u16> = (0..20)
        .map(|_| post(&addr, "/-/reload").expect("an answer").status)
        .collect();
    assert!(
        flood.iter().filter(|s| **s == 429).count() >= 19,
        "{flood:?}"
    );
    assert!(flood.iter().all(|s| *s == 429 || *s == 200), "{flood:?}");
    relay.wait_for_line("relay_config_last_reload_successful 1");
    wait_for_b_dropped(&relay, &one);
    assert_eq!(get(&addr, "/-/reload", &[]).map(|r| r.status), Some(405));
}

/// A mounted ConfigMap: `relay.yml -> ..data/relay.yml`, `..data -> ..<stamp>`,
/// and an update swaps `..data` atomically to a new directory.
#[test]
fn a_configmap_style_symlink_swap_is_picked_up() {
    let one = app();
    let dir = tempfile::tempdir().expect("tempdir");
    let mount = dir.path();
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    let publish = |stamp: &str, text: &str| {
        let data = mount.join(stamp);
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(data.join("relay.yml"), text).expect("write config");
        let tmp = mount.join("..data_tmp");
        std::os::unix::fs::symlink(stamp, &tmp).expect("symlink");
        std::fs::rename(&tmp, mount.join("..data")).expect("swap ..data");
    };
    publish(
        "..2026_11_25_1",
        &config(&addr, &wal, &[("one", &one.addr, "")], ""),
    );
    let path = mount.join("relay.yml");
    std::os::unix::fs::symlink("..data/relay.yml", &path).expect("symlink");
    let relay = Relay::start_file(&path, &addr);
    relay.wait_for_line(&format!("b{{instance=\"{}\",job=\"one\"}} 2", one.addr));
    // An invalid update: refused on its own, nothing changes.
    publish(
        "..2026_11_25_2",
        "scrape_configs: [{job_name: one, static_configs: [{targets: [\"http://x\"]}]}]\n",
    );
    relay.wait_for_log(&["config file changed"]);
    relay.wait_for_log(&["config reload refused", "is a URL"]);
    assert!(relay
        .metrics()
        .contains(&format!("b{{instance=\"{}\",job=\"one\"}} 2", one.addr)));
    // A valid update: applied without any signal.
    publish(
        "..2026_11_25_3",
        &config(&addr, &wal, &[("one", &one.addr, DROP_B)], ""),
    );
    wait_for_b_dropped(&relay, &one);
    relay.wait_for_line("relay_config_last_reload_successful 1");
}

#[test]
fn an_unchanged_remote_write_entry_keeps_its_queue_and_a_removed_one_stops() {
    let (keep, drop) = (Receiver::start(), Receiver::start());
    let one = app();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    let entry = |name: &str, url: &str| {
        format!(
            "  - url: {url}\n    name: {name}\n    queue_config: {{batch_send_deadline: 100ms}}\n"
        )
    };
    let both = format!(
        "remote_write:\n{}{}",
        entry("keep", &keep.url),
        entry("drop", &drop.url)
    );
    let only_keep = format!("remote_write:\n{}", entry("keep", &keep.url));
    std::fs::write(&path, config(&addr, &wal, &[("one", &one.addr, "")], &both)).expect("write");
    let relay = Relay::start_file(&path, &addr);
    wait_for("both receivers to get data", || {
        (!keep.requests().is_empty() && !drop.requests().is_empty()).then_some(())
    });
    std::fs::write(
        &path,
        config(&addr, &wal, &[("one", &one.addr, DROP_B)], &only_keep),
    )
    .expect("write");
    relay.signal("HUP");
    relay.wait_for_log(&["remote write queue stopping", "remote_name=drop"]);
    relay.wait_for_log(&["config reloaded"]);
    // The dropped entry's receiver gets nothing more; the kept one goes on.
    // (The removed queue was stopped before "config reloaded"; its count is
    // taken once the kept queue has sent again, so its last request is in.)
    let reloaded = keep.requests().len();
    wait_for("a request at the kept receiver after the reload", || {
        (keep.requests().len() > reloaded).then_some(())
    });
    let (drop_count, keep_count) = (drop.requests().len(), keep.requests().len());
    wait_for("more requests at the kept receiver", || {
        (keep.requests().len() > keep_count + 2).then_some(())
    });
    assert_eq!(
        drop.requests().len(),
        drop_count,
        "the removed queue still sends"
    );
    let started = relay.logs().matches("remote write queue starting").count();
    assert_eq!(started, 2, "a queue was started again:\n{}", relay.logs());
    // The kept queue sends the new rule's result: no b after the reload.
    let last = keep.requests().last().cloned().expect("a request");
    let names: Vec<String> = last.samples().iter().map(|g| g.name().to_owned()).collect();
    assert!(!names.iter().any(|n| n == "b"), "{names:?}");
    // Job one's loop was replaced, not removed: its series run on without
    // a staleness marker, and nothing was refused.
    let stale_a = keep
        .accepted()
        .iter()
        .filter(|g| g.name() == "a" && g.is_stale())
        .count();
    assert_eq!(stale_a, 0, "a replaced loop marked its series stale");
    let failed = common::rw::metric_value(
        &relay.metrics(),
        "prometheus_remote_storage_samples_failed_total",
        &["remote_name=\"keep\""],
    );
    assert_eq!(failed, Some(0.0));
}

/// As Prometheus without `--web.enable-lifecycle`: the reload endpoint
/// answers 403 and reloads nothing; SIGHUP still does.
#[test]
fn post_reload_is_off_without_the_lifecycle_flag() {
    let one = app();
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: one\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        one.addr
    ));
    let answer = post(&relay.addr, "/-/reload").expect("an answer");
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (
            403,
            "Lifecycle API is not enabled (relay run --web.enable-lifecycle).\n"
        )
    );
    assert!(
        !relay.logs().contains("reloading the config"),
        "{}",
        relay.logs()
    );
    relay.signal("HUP");
    relay.wait_for_log(&["SIGHUP: reloading the config"]);
}

/// A target removed by a reload sends its series' staleness markers to the
/// receiver (docs/config.md, "Live reload"), as Prometheus's scrape pool
/// does for a dropped target; a target that stays sends none.
#[test]
fn a_removed_target_sends_its_staleness_markers_on_reload() {
    let receiver = Receiver::start();
    let (one, two) = (app(), app());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    let remote = format!(
        "remote_write:\n  - url: {}\n    name: rw\n    queue_config: {{batch_send_deadline: 100ms}}\n",
        receiver.url
    );
    let both = [
        ("one", one.addr.as_str(), ""),
        ("two", two.addr.as_str(), ""),
    ];
    std::fs::write(&path, config(&addr, &wal, &both, &remote)).expect("write");
    let relay = Relay::start_file(&path, &addr);
    let of_job = |job: &'static str, stale: bool| {
        receiver
            .accepted()
            .into_iter()
            .filter(move |g| g.label("job") == Some(job) && g.is_stale() == stale)
            .map(|g| g.name().to_owned())
            .collect::<std::collections::BTreeSet<String>>()
    };
    wait_for("job two's a and b at the receiver", || {
        let names = of_job("two", false);
        (names.contains("a") && names.contains("b")).then_some(())
    });
    std::fs::write(
        &path,
        config(&addr, &wal, &[("one", one.addr.as_str(), "")], &remote),
    )
    .expect("write");
    relay.signal("HUP");
    relay.wait_for_log(&["config reloaded"]);
    let stale_two = wait_for("job two's staleness markers at the receiver", || {
        let names = of_job("two", true);
        (names.contains("a") && names.contains("b")).then_some(names)
    });
    // Markers for its scraped series (and its up/scrape_* series).
    assert!(stale_two.contains("up"), "{stale_two:?}");
    // Job one runs on: more samples of it after the markers, none stale.
    let of_one = || {
        receiver
            .accepted()
            .iter()
            .filter(|g| g.label("job") == Some("one"))
            .count()
    };
    let sent = of_one();
    wait_for("job one still sent", || (of_one() > sent).then_some(()));
    assert_eq!(
        of_job("one", true),
        Default::default(),
        "job one marked stale"
    );
}

/// A changed `remote_write` entry (here its URL: a new receiver, the same
/// name) is stopped with its checkpoint saved and the new queue starts from
/// that checkpoint: the new receiver gets what the old one had not
/// acknowledged, nothing the old one had, and no answered scrape is lost.
#[test]
fn a_changed_remote_write_entry_resumes_from_its_checkpoint() {
    let (old, new) = (Receiver::start(), Receiver::start());
    let target = common::rw::CountingTarget::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    let remote = |url: &str| {
        format!(
            "remote_write:\n  - url: {url}\n    name: rw\n    queue_config: {{batch_send_deadline: 100ms, min_shards: 1, max_shards: 1}}\n"
        )
    };
    let jobs = [("count", target.addr.as_str(), "")];
    std::fs::write(&path, config(&addr, &wal, &jobs, &remote(&old.url))).expect("write");
    let relay = Relay::start_file(&path, &addr);
    wait_for("5 counts at the old receiver", || {
        (old.accepted_named("count_of_scrapes").len() >= 5).then_some(())
    });
    std::fs::write(&path, config(&addr, &wal, &jobs, &remote(&new.url))).expect("write");
    relay.signal("HUP");
    relay.wait_for_log(&["remote write queue stopping", "remote_name=rw"]);
    relay.wait_for_log(&["config reloaded"]);
    wait_for("counts at the new receiver", || {
        (new.accepted_named("count_of_scrapes").len() >= 3).then_some(())
    });
    let answered = target.pause_and_settle(&relay);
    let values = |r: &Receiver| -> Vec<(i64, f64)> {
        r.accepted_named("count_of_scrapes")
            .iter()
            .map(|g| (g.ts, g.value))
            .collect()
    };
    let at_old = values(&old);
    let old_count = old.requests().len();
    wait_for("every answered count at the new receiver", || {
        let got: std::collections::BTreeSet<u64> = at_old
            .iter()
            .chain(values(&new).iter())
            .filter(|(_, v)| v.to_bits() != common::rw::STALE_NAN_BITS)
            .map(|(_, v)| *v as u64)
            .collect();
        answered.iter().all(|(n, _)| got.contains(n)).then_some(())
    });
    assert_eq!(old.requests().len(), old_count, "the old queue still sends");
    let at_new = values(&new);
    let resent: Vec<&(i64, f64)> = at_new.iter().filter(|s| at_old.contains(s)).collect();
    assert!(
        resent.is_empty(),
        "the new queue resent what the old receiver acknowledged: {resent:?}"
    );
    let all: Vec<(i64, f64)> = at_old.iter().chain(at_new.iter()).copied().collect();
    common::rw::assert_no_gaps(&answered, &all, "old + new receiver");
}

/// `relay.wal_dir` and `relay.wal_max_size` need a restart: a reload that
/// changes either is refused saying so, the gauge turns 0, and the
/// running config (and its WAL) stays.
#[test]
fn a_reload_changing_the_wal_is_refused() {
    let receiver = Receiver::start();
    let one = app();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    let remote = format!(
        "remote_write:\n  - url: {}\n    name: rw\n    queue_config: {{batch_send_deadline: 100ms}}\n",
        receiver.url
    );
    let good = config(&addr, &wal, &[("one", &one.addr, "")], &remote);
    std::fs::write(&path, &good).expect("write");
    let relay = Relay::start_file(&path, &addr);
    relay.wait_for_line("relay_config_last_reload_successful 1");
    let other = dir.path().join("other-wal");
    let edits = [
        (
            good.replace(&wal.display().to_string(), &other.display().to_string()),
            "relay.wal_dir changed: that needs a restart",
        ),
        (
            format!("{good}  wal_max_size: 2MiB\n"),
            "relay.wal_max_size changed: that needs a restart",
        ),
    ];
    for (edit, said) in edits {
        std::fs::write(&path, &edit).expect("write");
        let answer = post_reload(&addr);
        assert_eq!(answer.status, 500, "{said}: {}", answer.text());
        relay.wait_for_log(&["config reload refused", said]);
        relay.wait_for_line("relay_config_last_reload_successful 0");
        // Back to the good config, which reloads.
        std::fs::write(&path, &good).expect("write");
        assert_eq!(post_reload(&addr).status, 200);
        relay.wait_for_line("relay_config_last_reload_successful 1");
    }
    assert!(!other.exists(), "the refused wal_dir was created");
    // The WAL in use is still written to, and its queue still sends.
    let sent = receiver.requests().len();
    wait_for("more requests from the running queue", || {
        (receiver.requests().len() > sent).then_some(())
    });
}

#[test]
fn a_target_added_to_a_job_leaves_the_jobs_other_loops_running() {
    let (one, three) = (app(), app());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let wal = dir.path().join("wal");
    // Job one with its targets in one static group.
    let write = |targets: &[&str]| {
        let list = targets.join("\", \"");
        let jobs = [("one", list.as_str(), "")];
        std::fs::write(&path, config(&addr, &wal, &jobs, "")).expect("write config");
    };
    write(&[&one.addr]);
    let relay = Relay::start_file(&path, &addr);
    relay.wait_for_line("relay_config_last_reload_successful 1");
    let added_one = format!(
        "scrape_series_added{{instance=\"{}\",job=\"one\"}}",
        one.addr
    );
    // The target's cache is warm: its second scrape added nothing.
    relay.wait_for_line(&format!("{added_one} 0"));
    write(&[&one.addr, &three.addr]);
    relay.signal("HUP");
    relay.wait_for_line(&format!("a{{instance=\"{}\",job=\"one\"}} 1", three.addr));
    relay.wait_for_log(&["config reloaded"]);
    // The first target's loop and cache ran on: no scrape of it has
    // counted its series as added since, and it was not started again.
    for _ in 0..5 {
        let m = relay.metrics();
        assert_eq!(value(&m, &added_one).as_deref(), Some("0"), "{m}");
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    let scraping = |addr: &str| {
        relay
            .logs()
            .lines()
            .filter(|l| l.contains("msg=scraping ") && l.contains(&format!("target=one/{addr}")))
            .count()
    };
    assert_eq!(
        scraping(&one.addr),
        1,
        "target one was started again:\n{}",
        relay.logs()
    );
    assert_eq!(scraping(&three.addr), 1, "{}", relay.logs());
}
