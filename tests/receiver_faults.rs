//! The fault matrix, remote-write side: a receiver that accepts and then
//! hangs, resets connections, answers with something that is not HTTP, or
//! with an error body that never ends; a WAL directory that fills up or is
//! read-only. Each gives a clear outcome (retried and counted, or an error
//! that names the cause), relay keeps serving, nothing already written to
//! the WAL is lost once a healthy receiver is back, and relay's peak RSS
//! stays under a cap.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::procfs::{assert_peak_under, open_fds};
use common::rw::{assert_no_gaps, metric_value, CountingTarget, Got, Receiver};
use common::{free_port, get, read_head, wait_for, Relay};

/// How a [`BadReceiver`] treats each connection.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Reads the request, never answers, keeps the connection open.
    Hang,
    /// Closes with the request unread, which makes the kernel send a reset.
    Reset,
    /// Answers bytes that are not an HTTP response.
    NotHttp,
    /// Answers 500 with a body that never ends.
    EndlessError,
    /// Reads the request whole, answers 200 with a body of junk.
    JunkOk,
}

/// A remote-write endpoint that misbehaves as `mode` says until stopped;
/// then a healthy [`Receiver`] can take its address.
struct BadReceiver {
    stop: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes of endless error bodies written.
    written: Arc<AtomicU64>,
    connections: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl BadReceiver {
    fn start(addr: &str, mode: Mode) -> BadReceiver {
        let listener = TcpListener::bind(addr).expect("bind the bad receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(Mutex::new(Vec::new()));
        let written = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, h, w, c) = (
            stop.clone(),
            held.clone(),
            written.clone(),
            connections.clone(),
        );
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        c.fetch_add(1, Ordering::Relaxed);
                        let (h, w, s) = (h.clone(), w.clone(), s.clone());
                        thread::spawn(move || misbehave(stream, mode, &h, &w, &s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        BadReceiver {
            stop,
            held,
            written,
            connections,
            thread: Some(thread),
        }
    }

    /// Stops listening and closes what it held open.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for s in self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for BadReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn misbehave(
    mut stream: TcpStream,
    mode: Mode,
    held: &Mutex<Vec<TcpStream>>,
    written: &AtomicU64,
    stop: &AtomicBool,
) {
    match mode {
        Mode::Hang => {
            let _ = read_head(&stream);
            held.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
        }
        Mode::Reset => {
            // Wait for the request's first bytes, read none of them, close:
            // unread data makes the close a reset (RST), not a FIN.
            let mut one = [0u8; 1];
            let _ = stream.peek(&mut one);
            drop(stream);
        }
        Mode::NotHttp => {
            let _ = read_head(&stream);
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\nthis is not HTTP\r\n\r\n");
        }
        Mode::JunkOk => {
            let Ok(head) = read_head(&stream) else { return };
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            // The head was read through a buffered clone; what it read
            // ahead is lost, so the rest is drained until the peer waits.
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut body = vec![0u8; length];
            let _ = std::io::Read::read(&mut stream, &mut body);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n\xff\xfe\x00junk!\x01\x02\x03\x04",
            );
        }
        Mode::EndlessError => {
            let _ = read_head(&stream);
            let _ = stream.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
            );
            let junk = vec![b'x'; 64 * 1024];
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                if stream.write_all(&junk).is_err() {
                    break;
                }
                written.fetch_add(junk.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

/// relay scraping `target` every 250 ms, remote writing to `url` with a
/// one-second `remote_timeout`, short backoffs and one shard.
fn config(target: &str, url: &str) -> String {
    format!(
        "global:\n  scrape_interval: 250ms\n  scrape_timeout: 250ms\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{target}\"]}}]\nremote_write:\n  - url: {url}\n    name: rw\n    remote_timeout: 1s\n    queue_config: {{min_backoff: 50ms, max_backoff: 500ms, batch_send_deadline: 200ms, min_shards: 1, max_shards: 1}}\n"
    )
}

/// A self-metric of the `rw` entry, from a good GET; a missing metric
/// fails the test (it is not a 0 that "nothing failed" would pass on).
fn rw_metric(relay: &Relay, name: &str) -> f64 {
    let body = relay.metrics_ok();
    metric_value(&body, name, &["remote_name=\"rw\""])
        .unwrap_or_else(|| panic!("no {name} for rw on relay's /metrics:\n{body}"))
}

/// The (timestamp, value) of the target's count series as received.
fn counts(got: &[Got]) -> Vec<(i64, f64)> {
    got.iter().map(|g| (g.ts, g.value)).collect()
}

/// Pauses the target and waits until the receiver has every count it
/// served; asserts no gaps.
fn assert_all_delivered(relay: &Relay, target: &CountingTarget, receiver: &Receiver, what: &str) {
    let answered = target.pause_and_settle(relay);
    let last = answered.last().map_or(0, |(n, _)| *n) as f64;
    wait_for(&format!("{what}: count {last} at the receiver"), || {
        receiver
            .accepted_named("count_of_scrapes")
            .iter()
            .any(|g| g.value == last)
            .then_some(())
    });
    assert_no_gaps(
        &answered,
        &counts(&receiver.accepted_named("count_of_scrapes")),
        what,
    );
}

/// Runs relay against a receiver misbehaving as `mode` until it has
/// retried `retries` sample sends and logged `log`; then a healthy
/// receiver takes the address and must get every count. Returns the log
/// line and relay's peak RSS.
fn survive(mode: Mode, log: &[&str], cap_mib: u64) -> (String, BadReceiver) {
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/v1/write");
    let mut bad = BadReceiver::start(&addr, mode);
    let target = CountingTarget::start();
    // The first GET after start has the target scraped for that GET alone
    // (not remote-written): it happens while the target refuses, so every
    // count it answers later is an interval scrape that must arrive.
    target.pause();
    let relay = Relay::start(&config(&target.addr, &url));
    common::rw::wait_for_up(&relay, &target.addr, "0");
    target.resume();
    let fds_early = wait_for("a first retry", || {
        (rw_metric(&relay, "prometheus_remote_storage_samples_retried_total") > 0.0)
            .then(|| open_fds(relay.pid()))
    });
    let line = relay.wait_for_log(log);
    eprintln!("{mode:?}: {line}");
    // Several more attempts: no connection or fd is kept per attempt.
    let attempts = bad.connections.load(Ordering::Relaxed);
    wait_for("three more attempts", || {
        (bad.connections.load(Ordering::Relaxed) >= attempts + 3).then_some(())
    });
    let fds_late = open_fds(relay.pid());
    assert!(
        fds_late <= fds_early + 3,
        "{mode:?}: relay's open fds grew from {fds_early} to {fds_late}"
    );
    assert_eq!(
        rw_metric(&relay, "prometheus_remote_storage_samples_failed_total"),
        0.0,
        "{mode:?}: a retryable fault failed samples for good"
    );
    assert_eq!(
        get(&relay.addr, "/-/healthy", &[]).map(|r| r.status),
        Some(200)
    );
    bad.stop();
    let receiver = Receiver::start_on(&addr);
    assert_all_delivered(&relay, &target, &receiver, &format!("{mode:?}"));
    assert_peak_under(relay.pid(), cap_mib, &format!("receiver fault {mode:?}"));
    (line, bad)
}

#[test]
fn a_receiver_that_accepts_then_hangs_is_timed_out_and_retried() {
    let (line, bad) = survive(
        Mode::Hang,
        &["remote write failed; retrying", "timed out"],
        40,
    );
    assert!(line.contains("WARN"), "{line}");
    assert!(bad.connections.load(Ordering::Relaxed) >= 3);
}

#[test]
fn a_receiver_that_resets_connections_is_retried() {
    let (line, _) = survive(
        Mode::Reset,
        &["remote write failed; retrying", "error sending request"],
        40,
    );
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn a_receiver_that_answers_garbage_is_retried() {
    let (line, _) = survive(
        Mode::NotHttp,
        &["remote write failed; retrying", "error sending request"],
        40,
    );
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn an_endless_error_body_is_not_read_whole() {
    let (line, bad) = survive(
        Mode::EndlessError,
        &["remote write failed; retrying", "status=500"],
        40,
    );
    assert!(line.contains("WARN"), "{line}");
    let written = bad.written.load(Ordering::Relaxed);
    let per_attempt = written / bad.connections.load(Ordering::Relaxed).max(1) as u64;
    eprintln!("endless error body: {written} bytes written, {per_attempt} per attempt");
    assert!(
        per_attempt < 64 << 20,
        "relay read {per_attempt} bytes of one error body"
    );
}

#[test]
fn a_receiver_that_answers_200_with_junk_is_taken_at_its_word() {
    // As Prometheus: a 2xx acknowledges the batch, whatever its body.
    let addr = format!("127.0.0.1:{}", free_port());
    let bad = BadReceiver::start(&addr, Mode::JunkOk);
    let target = CountingTarget::start();
    let relay = Relay::start(&config(
        &target.addr,
        &format!("http://{addr}/api/v1/write"),
    ));
    wait_for("20 samples acknowledged", || {
        (rw_metric(&relay, "prometheus_remote_storage_samples_total") >= 20.0).then_some(())
    });
    assert!(bad.connections.load(Ordering::Relaxed) >= 2);
    for name in [
        "prometheus_remote_storage_samples_retried_total",
        "prometheus_remote_storage_samples_failed_total",
    ] {
        assert_eq!(rw_metric(&relay, name), 0.0, "{name}");
    }
    assert!(
        !relay.logs().contains("remote write failed"),
        "{}",
        relay.logs()
    );
    assert_peak_under(relay.pid(), 40, "receiver answers 200 with junk");
}

/// A 1 MiB tmpfs at `dir` (relay's WAL directory in the tests below).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (these tests need root, as scripts/test runs in CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system of `dir` with a file until a write fails.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("create filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
#[ignore = "needs root to mount a tmpfs; scripts/test runs it"]
fn a_full_wal_directory_loses_new_samples_with_an_error_and_keeps_the_written_ones() {
    let tmpfs = Tmpfs::mount("size=2m");
    let wal = tmpfs.path().join("wal");
    let target = CountingTarget::start();
    let receiver = Receiver::start();
    let relay = Relay::start_with(&config(&target.addr, &receiver.url), &wal, "");
    target.wait_answered(4);
    // Full: every count answered from now on may be lost, with an error.
    let filler = tmpfs.path().join("filler");
    fill(&filler);
    let full_at = target.answered().len() as u64;
    let line = relay.wait_for_log(&[
        "cannot write the scrape to the WAL",
        "No space left on device",
    ]);
    assert!(
        line.contains("ERROR") && line.contains("samples are lost"),
        "{line}"
    );
    // Scraping and serving go on; the lost samples are counted.
    let metrics = relay.metrics();
    assert_eq!(metric_value(&metrics, "up", &["job=\"app\""]), Some(1.0));
    wait_for("lost samples counted", || {
        let lost = metric_value(
            &relay.metrics(),
            "relay_wal_write_failed_samples_total",
            &[],
        )?;
        (lost >= 1.0).then_some(())
    });
    // Room again: what was written before, and what comes after, arrives.
    std::fs::remove_file(&filler).expect("remove filler");
    let room_at = target.answered().len() as u64 + 1;
    target.wait_answered(room_at as usize + 4);
    let answered = target.pause_and_settle(&relay);
    let last = answered.last().map_or(0, |(n, _)| *n) as f64;
    wait_for("the last count at the receiver", || {
        receiver
            .accepted_named("count_of_scrapes")
            .iter()
            .any(|g| g.value == last)
            .then_some(())
    });
    let got: Vec<u64> = receiver
        .accepted_named("count_of_scrapes")
        .iter()
        .filter(|g| !g.is_stale())
        .map(|g| g.value as u64)
        .collect();
    for (n, _) in &answered {
        let lost_window = *n > full_at && *n <= room_at;
        assert!(
            lost_window || got.contains(n),
            "count {n} (written while the WAL had room) never arrived; got {got:?}"
        );
    }
    assert_peak_under(relay.pid(), 40, "WAL directory full");
}

#[test]
#[ignore = "needs root to mount a tmpfs; scripts/test runs it"]
fn a_read_only_wal_directory_stops_relay_at_start_naming_it() {
    // A mode of 000 stops no root process, so a read-only mount it is.
    let tmpfs = Tmpfs::mount("size=1m,ro");
    let wal = tmpfs.path().join("wal");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    std::fs::write(
        &path,
        format!(
            "scrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"127.0.0.1:1\"]}}]\nremote_write:\n  - url: http://127.0.0.1:1/api/v1/write\nrelay:\n  listen_address: \"127.0.0.1:{}\"\n  wal_dir: \"{}\"\n",
            free_port(),
            wal.display()
        ),
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run relay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the remote-write WAL (relay.wal_dir)")
            && stderr.contains(&wal.display().to_string())
            && stderr.contains("Read-only file system"),
        "{stderr}"
    );
}
