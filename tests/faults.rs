//! The fault matrix, target and config side: each fault gets a clear
//! outcome (`up 0` with a log line naming the cause, or samples served as
//! Prometheus would), relay keeps running and serving, and its peak RSS
//! (VmHWM from /proc) stays under a stated cap. Receiver-side faults are in
//! `tests/receiver_faults.rs`.
//!
//! The caps are memory bounds measured on the debug binary with headroom;
//! the run time is bounded by short intervals and timeouts.

mod common;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::procfs::{assert_peak_under, open_fds, rss_mib};
use common::rw::{metric_value, Receiver, STALE_NAN_BITS};
use common::{get, read_head, wait_for, Relay};

const MIB: u64 = 1 << 20;

/// A job scraping `addr` every second with a one-second timeout.
fn job(name: &str, addr: &str, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs: [{{targets: [\"{addr}\"]}}]\n{extra}"
    )
}

/// What a [`RawTarget`] saw.
#[derive(Default)]
struct Stats {
    connections: AtomicUsize,
    /// Connections still being answered.
    open: AtomicI64,
    /// Body bytes written, over all connections.
    bytes: AtomicU64,
    /// The most body bytes one connection took.
    most: AtomicU64,
    /// Connections relay closed before the target was done.
    cut: AtomicUsize,
    /// The latest request's head.
    head: std::sync::Mutex<String>,
}

/// A scrape target that speaks raw HTTP/1.1, so a test can misbehave at
/// the byte level: drip, never close, send without end, compress a bomb.
struct RawTarget {
    addr: String,
    stats: Arc<Stats>,
}

/// Writes `bytes` as body bytes of the current answer, counting them.
struct Body<'a> {
    stream: &'a mut TcpStream,
    stats: &'a Stats,
    written: u64,
}

impl Body<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.written += bytes.len() as u64;
        self.stats
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn head(&mut self, head: &str) -> io::Result<()> {
        self.stream.write_all(head.as_bytes())
    }

    /// A whole 200 answer of text 0.0.4 with a Content-Length, then close.
    fn text(&mut self, body: &[u8]) -> io::Result<()> {
        self.head(&format!(
            "HTTP/1.1 200 OK\r\n{TEXT}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ))?;
        self.write(body)
    }

    /// Waits until the peer closes (Ok) or `limit` passes (Err).
    fn until_closed(&mut self, limit: Duration) -> io::Result<()> {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))?;
        let start = Instant::now();
        let mut buf = [0u8; 64];
        while start.elapsed() < limit {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => return Ok(()),
            }
        }
        Err(io::Error::other("the peer never closed"))
    }
}

impl RawTarget {
    /// Serves every connection with `answer` (after reading the request
    /// head); an Err from it means relay closed the connection first.
    fn start(
        answer: impl Fn(&mut Body<'_>) -> io::Result<()> + Send + Sync + 'static,
    ) -> RawTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let addr = listener.local_addr().expect("addr").to_string();
        let stats = Arc::new(Stats::default());
        let answer = Arc::new(answer);
        let shared = stats.clone();
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let (stats, answer) = (shared.clone(), answer.clone());
                thread::spawn(move || {
                    let Ok(head) = read_head(&stream) else {
                        return;
                    };
                    *stats.head.lock().unwrap_or_else(|e| e.into_inner()) = head;
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    stats.open.fetch_add(1, Ordering::Relaxed);
                    let mut body = Body {
                        stream: &mut stream,
                        stats: &stats,
                        written: 0,
                    };
                    let result = answer(&mut body);
                    let written = body.written;
                    stats.most.fetch_max(written, Ordering::Relaxed);
                    if result.is_err() {
                        stats.cut.fetch_add(1, Ordering::Relaxed);
                    }
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        RawTarget { addr, stats }
    }
}

const TEXT: &str = "Content-Type: text/plain; version=0.0.4";

/// The value of `up` for a job's target on relay's /metrics.
fn up(relay: &Relay, job: &str) -> Option<String> {
    relay
        .metrics()
        .lines()
        .find(|l| l.starts_with("up{") && l.contains(&format!("job=\"{job}\"")))
        .and_then(|l| l.rsplit(' ').next().map(str::to_owned))
}

/// Waits until the job's target reports `up <value>`.
fn wait_up(relay: &Relay, job: &str, value: &str) {
    wait_for(&format!("up {value} for job {job}"), || {
        (up(relay, job).as_deref() == Some(value)).then_some(())
    });
}

/// Waits until relay counted `n` failed scrapes of `job` for `reason`.
fn wait_failures(relay: &Relay, job: &str, reason: &str, n: f64) {
    let job_label = format!("scrape_job=\"{job}\"");
    let reason_label = format!("reason=\"{reason}\"");
    wait_for(&format!("{n} {reason} failures of {job}"), || {
        let text = relay.metrics();
        let got = metric_value(
            &text,
            "relay_scrape_failures_total",
            &[&job_label, &reason_label],
        )?;
        (got >= n).then_some(())
    });
}

/// Like [`wait_for`] with a longer deadline, for the scrapes of bodies of
/// tens of megabytes that the debug binary parses on a loaded machine.
fn wait_long<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "timed out after 180 s waiting for {what}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

fn assert_serving(relay: &Relay) {
    let health = get(&relay.addr, "/-/healthy", &[]).map(|r| r.status);
    assert_eq!(health, Some(200), "relay stopped serving");
}

#[test]
fn a_dripping_or_never_closing_target_times_out() {
    // 1 byte a second of a body announced as 1000 bytes.
    let drip = RawTarget::start(|b| {
        b.head(&format!(
            "HTTP/1.1 200 OK\r\n{TEXT}\r\nContent-Length: 1000\r\n\r\n"
        ))?;
        for _ in 0..60 {
            b.write(b"#")?;
            thread::sleep(Duration::from_secs(1));
        }
        Ok(())
    });
    // A whole exposition, then the connection stays open: a body without
    // a length ends only when the server closes.
    let open = RawTarget::start(|b| {
        b.head(&format!(
            "HTTP/1.1 200 OK\r\n{TEXT}\r\nConnection: close\r\n\r\n"
        ))?;
        b.write(b"never_closed 1\n")?;
        b.until_closed(Duration::from_secs(60))
    });
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}{}",
        job("drip", &drip.addr, ""),
        job("open", &open.addr, "")
    ));
    let fds_before = open_fds(relay.pid());
    for name in ["drip", "open"] {
        wait_up(&relay, name, "0");
        relay.wait_for_log(&[
            "scrape failed",
            &format!("{name}/"),
            "scrape timed out after 1s",
        ]);
        wait_failures(&relay, name, "timeout", 5.0);
    }
    // Each timed-out scrape closed its connection: the targets hold at
    // most the one in flight (the drip notices within its next byte).
    wait_for("relay's timed-out connections to be closed", || {
        (drip.stats.open.load(Ordering::Relaxed) <= 2
            && open.stats.open.load(Ordering::Relaxed) <= 1)
            .then_some(())
    });
    assert!(drip.stats.connections.load(Ordering::Relaxed) >= 5);
    assert!(
        open.stats.cut.load(Ordering::Relaxed) == 0,
        "the open target saw relay close each time"
    );
    let metrics = relay.metrics();
    assert!(
        !metrics.contains("never_closed"),
        "a body that never ended was served:\n{metrics}"
    );
    let fds_after = open_fds(relay.pid());
    assert!(
        fds_after <= fds_before + 4,
        "relay's open fds grew from {fds_before} to {fds_after}"
    );
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 40, "drip / never closes");
}

#[test]
fn a_body_far_above_body_size_limit_is_cut_off_at_the_limit() {
    // 1 GiB of comment lines, made as they are sent, with no length: relay
    // must stop reading at 1 MiB and close.
    let line = b"# a comment line that pads the body out to a gigabyte..........\n";
    let huge = RawTarget::start(move |b| {
        b.head(&format!(
            "HTTP/1.1 200 OK\r\n{TEXT}\r\nConnection: close\r\n\r\n"
        ))?;
        let chunk: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
        while b.written < 1 << 30 {
            b.write(&chunk)?;
        }
        Ok(())
    });
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("huge", &huge.addr, "    body_size_limit: 1MiB\n")
    ));
    wait_up(&relay, "huge", "0");
    relay.wait_for_log(&[
        "scrape failed",
        "huge/",
        "body size limit exceeded (1048576 bytes)",
    ]);
    wait_failures(&relay, "huge", "body_size_limit", 3.0);
    wait_for("relay to close the huge bodies' connections", || {
        (huge.stats.cut.load(Ordering::Relaxed) >= 3).then_some(())
    });
    // What the target could write before relay closed: the limit plus
    // what the loopback socket buffers hold, far from the 1 GiB offered.
    let most = huge.stats.most.load(Ordering::Relaxed);
    eprintln!("body above the limit: at most {most} bytes written per scrape");
    assert!(
        most < 32 * MIB,
        "relay read {most} bytes of a body limited to 1 MiB"
    );
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 40, "1 GiB body, 1 MiB limit");
}

/// A gzip stream that inflates to `size` bytes of newlines, made without
/// compressing them: one fixed-Huffman deflate block of a literal and then
/// copies of 258 bytes at distance 1 (13 bits each, ~1:1000). Its trailer's
/// CRC is left 0: a reader that stops at a limit never gets there.
fn gzip_bomb(size: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        /// `count` bits of `value`, least significant first (deflate's order
        /// for headers and extra bits).
        fn put(&mut self, value: u64, count: u32) {
            self.acc |= value << self.n;
            self.n += count;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u64, len: u32) {
            let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.put(reversed, len);
        }
    }
    let mut bits = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // the last block
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0x30 + u64::from(b'\n'), 8); // the literal
    for _ in 0..(size - 1) / 258 {
        bits.code(0b1100_0101, 8); // length 258 (code 285)
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    bits.put(0, 7);
    let mut out = bits.out;
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out
}

#[test]
fn a_gzip_bomb_is_cut_off_at_the_decompressed_limit() {
    let bomb = Arc::new(gzip_bomb(4 << 30));
    eprintln!("gzip bomb: {} bytes inflating to 4 GiB", bomb.len());
    let served = bomb.clone();
    let target = RawTarget::start(move |b| {
        b.head(&format!(
            "HTTP/1.1 200 OK\r\n{TEXT}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            served.len()
        ))?;
        b.write(&served)
    });
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("bomb", &target.addr, "    body_size_limit: 10MiB\n")
    ));
    wait_up(&relay, "bomb", "0");
    relay.wait_for_log(&[
        "scrape failed",
        "bomb/",
        "body size limit exceeded (10485760 bytes)",
    ]);
    wait_failures(&relay, "bomb", "body_size_limit", 3.0);
    let head = target
        .stats
        .head
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .to_ascii_lowercase();
    assert!(
        head.contains("accept-encoding: gzip"),
        "relay did not offer gzip, so the bomb was not tried:\n{head}"
    );
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 60, "gzip bomb (4 GiB inflated), 10 MiB limit");
}

#[test]
fn a_million_series_over_sample_limit_fail_the_scrape_in_bounded_memory() {
    let mut body = String::with_capacity(24 << 20);
    body.push_str("# TYPE churn gauge\n");
    for i in 0..1_000_000 {
        body.push_str(&format!("churn{{id=\"{i:07}\"}} 1\n"));
    }
    let body = Arc::new(body);
    eprintln!("1M series: body of {} bytes", body.len());
    let served = body.clone();
    let target = RawTarget::start(move |b| b.text(served.as_bytes()));
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: million\n    scrape_interval: 3s\n    scrape_timeout: 3s\n    sample_limit: 1000\n    static_configs: [{{targets: [\"{}\"]}}]\n",
        target.addr
    ));
    wait_long("up 0 for job million", || {
        (up(&relay, "million").as_deref() == Some("0")).then_some(())
    });
    relay.wait_for_log(&[
        "scrape failed",
        "million/",
        "sample_limit exceeded: 1000000 samples after relabeling, limit 1000",
    ]);
    wait_long("the sample_limit failure counted", || {
        let text = relay.metrics();
        let failures = metric_value(
            &text,
            "relay_scrape_failures_total",
            &["scrape_job=\"million\"", "reason=\"sample_limit\""],
        )?;
        (failures >= 1.0).then_some(())
    });
    let metrics = relay.metrics();
    eprintln!(
        "1M series: scrape took {:?} s",
        metric_value(&metrics, "scrape_duration_seconds", &["job=\"million\""])
    );
    let job = "job=\"million\"";
    // As Prometheus: the whole body is counted, nothing of it is kept.
    assert_eq!(
        metric_value(&metrics, "scrape_samples_scraped", &[job]),
        Some(1e6)
    );
    assert_eq!(
        metric_value(&metrics, "scrape_samples_post_metric_relabeling", &[job]),
        Some(1e6)
    );
    assert!(
        !metrics.contains("churn{"),
        "samples of a failed scrape were served"
    );
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 100, "1M series, sample_limit 1000");
}

#[test]
fn megabyte_label_values_are_refused_by_the_limit_or_served_whole() {
    let value = "v".repeat(1 << 20);
    let mut text = String::new();
    for i in 0..5 {
        text.push_str(&format!("big{{n=\"{i}\",blob=\"{value}\"}} {i}\n"));
    }
    let body = Arc::new(text);
    let target = |body: Arc<String>| RawTarget::start(move |b| b.text(body.as_bytes()));
    let (limited, open) = (target(body.clone()), target(body.clone()));
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}{}",
        job(
            "limited",
            &limited.addr,
            "    label_value_length_limit: 4096\n"
        ),
        job("open", &open.addr, "")
    ));
    wait_up(&relay, "limited", "0");
    relay.wait_for_log(&[
        "scrape failed",
        "limited/",
        "label_value_length_limit exceeded (metric: big, label value of blob: 1048576 bytes, limit: 4096)",
    ]);
    wait_up(&relay, "open", "1");
    let metrics = relay.metrics();
    let served: Vec<&str> = metrics.lines().filter(|l| l.starts_with("big{")).collect();
    assert_eq!(served.len(), 5, "the open job's five series");
    for line in served {
        assert!(
            line.contains(&format!("blob=\"{value}\"")),
            "a 1 MiB value was cut"
        );
        assert!(line.contains("job=\"open\""), "{}", &line[..80]);
    }
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 100, "five 1 MiB label values");
}

#[test]
fn invalid_utf8_fails_the_scrape_naming_the_line() {
    let target = RawTarget::start(|b| {
        let body: &[u8] = b"fine 1\nbad{l=\"\xff\xfe\"} 1\n";
        b.text(body)
    });
    let name = RawTarget::start(|b| {
        let body: &[u8] = b"fine 1\nb\xc3\x28d 1\n";
        b.text(body)
    });
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}{}",
        job("value", &target.addr, ""),
        job("name", &name.addr, "")
    ));
    wait_up(&relay, "value", "0");
    wait_up(&relay, "name", "0");
    let value_log =
        relay.wait_for_log(&["scrape failed", "value/", "invalid exposition at line 2"]);
    let name_log = relay.wait_for_log(&["scrape failed", "name/", "invalid exposition at line 2"]);
    eprintln!("invalid UTF-8:\n{value_log}\n{name_log}");
    assert!(
        !relay.metrics().contains("fine{"),
        "part of an invalid body was served"
    );
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 40, "invalid UTF-8");
}

#[test]
fn duplicate_series_keep_the_first_sample() {
    let target = RawTarget::start(|b| {
        let body: &[u8] = b"# TYPE dup gauge\ndup{a=\"1\",b=\"2\"} 1\ndup{a=\"1\",b=\"2\"} 2\ndup{b=\"2\",a=\"1\"} 3\nother 4\n";
        b.text(body)
    });
    let relay = Relay::start(&format!(
        "scrape_configs:\n{}",
        job("dup", &target.addr, "")
    ));
    wait_up(&relay, "dup", "1");
    let metrics = relay.metrics();
    let dups: Vec<&str> = metrics.lines().filter(|l| l.starts_with("dup{")).collect();
    assert_eq!(dups.len(), 1, "one series, once:\n{metrics}");
    assert!(
        dups[0].ends_with(" 1"),
        "the first sample wins: {}",
        dups[0]
    );
    let job = "job=\"dup\"";
    assert_eq!(
        metric_value(&metrics, "scrape_samples_scraped", &[job]),
        Some(4.0)
    );
    assert_eq!(metric_value(&metrics, "other", &[job]), Some(4.0));
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 40, "duplicate series");
}

#[test]
fn a_flapping_target_alternates_up_with_staleness_and_no_leak() {
    // Every other scrape answers 500.
    let flaps = Arc::new(AtomicUsize::new(0));
    let counter = flaps.clone();
    let target = RawTarget::start(move |b| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if n % 2 == 1 {
            return b.head("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        let body = format!("flappy {n}\n");
        b.text(body.as_bytes())
    });
    let receiver = Receiver::start();
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: flap\n    scrape_interval: 300ms\n    scrape_timeout: 300ms\n    static_configs: [{{targets: [\"{}\"]}}]\nremote_write:\n  - url: {}\n    name: rw\n    queue_config: {{min_backoff: 50ms, max_backoff: 1s, batch_send_deadline: 200ms}}\n",
        target.addr, receiver.url
    ));
    wait_for("10 flaps", || {
        (flaps.load(Ordering::Relaxed) >= 10).then_some(())
    });
    let fds_early = open_fds(relay.pid());
    wait_for("40 flaps", || {
        (flaps.load(Ordering::Relaxed) >= 40).then_some(())
    });
    let fds_late = open_fds(relay.pid());
    assert!(
        fds_late <= fds_early + 2,
        "relay's open fds grew from {fds_early} to {fds_late} over 30 flapping scrapes"
    );
    wait_for("the receiver to see 10 up and 10 down", || {
        let ups = receiver.accepted_named("up");
        let ones = ups.iter().filter(|g| g.value == 1.0).count();
        let zeros = ups.iter().filter(|g| g.value == 0.0).count();
        (ones >= 10 && zeros >= 10).then_some(())
    });
    // Each failed scrape marks the last good one's series stale.
    let flappy = receiver.accepted_named("flappy");
    let stale = flappy
        .iter()
        .filter(|g| g.value.to_bits() == STALE_NAN_BITS)
        .count();
    let values = flappy.len() - stale;
    assert!(
        stale >= 9 && values >= 10,
        "{values} values, {stale} staleness markers"
    );
    // up alternates (a scrape slowed past its timeout on a loaded machine
    // may break a few pairs, not the pattern).
    let mut ups = receiver.accepted_named("up");
    ups.sort_by_key(|g| g.ts);
    let changes = ups.windows(2).filter(|w| w[0].value != w[1].value).count();
    assert!(
        changes * 10 >= (ups.len() - 1) * 8,
        "up did not alternate: {:?}",
        ups.iter().map(|g| g.value).collect::<Vec<_>>()
    );
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 40, "flapping target");
}

#[test]
fn a_config_file_deleted_or_unreadable_keeps_the_running_config() {
    let target = common::Target::start(common::Reply::text("still_scraped 1\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("relay.yml");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let config = format!(
        "scrape_configs:\n{}relay:\n  listen_address: \"{addr}\"\n  wal_dir: \"{}\"\n",
        job("app", &target.addr, ""),
        dir.path().join("wal").display()
    );
    std::fs::write(&path, &config).expect("write config");
    let relay = Relay::start_file(&path, &addr);
    wait_up(&relay, "app", "1");
    let reloaded = |v: f64| {
        wait_for(&format!("relay_config_last_reload_successful {v}"), || {
            (metric_value(&relay.metrics(), "relay_config_last_reload_successful", &[]) == Some(v))
                .then_some(())
        })
    };
    reloaded(1.0);

    // Deleted: noticed by the file watch (every 3 s), and by SIGHUP.
    std::fs::remove_file(&path).expect("delete config");
    let line = relay.wait_for_log(&["config reload refused", "no such file"]);
    assert!(line.contains("ERROR"), "{line}");
    reloaded(0.0);
    relay.signal("HUP");
    wait_for("a second refusal after SIGHUP", || {
        (relay.logs().matches("config reload refused").count() >= 2).then_some(())
    });
    assert_serving(&relay);
    wait_up(&relay, "app", "1");

    // Back: reloaded from the file watch.
    std::fs::write(&path, &config).expect("restore config");
    reloaded(1.0);

    // Unreadable. A mode of 000 stops no root process (the tests may run
    // as root), so the file is made a directory, which no one can read as
    // a config; mode 000 is tried as well and must fail the same way
    // wherever it stops this process from reading.
    std::fs::remove_file(&path).expect("remove config");
    std::fs::create_dir(&path).expect("a directory in its place");
    let line = relay.wait_for_log(&["config reload refused", "is a directory"]);
    assert!(
        line.contains("ERROR") && line.contains("relay.yml"),
        "{line}"
    );
    reloaded(0.0);
    std::fs::remove_dir(&path).expect("remove the directory");
    std::fs::write(&path, &config).expect("restore config");
    reloaded(1.0);
    wait_up(&relay, "app", "1");
    assert_serving(&relay);
    assert_peak_under(relay.pid(), 40, "config deleted/unreadable");
}

#[test]
fn memory_of_one_huge_scrape_is_given_back() {
    huge_then_small(false);
}

#[test]
fn memory_of_one_huge_scrape_is_given_back_with_remote_write() {
    huge_then_small(true);
}

/// One scrape of 200k series (~50 MB), then small ones: relay's RSS must
/// fall back. With `remote_write`, nobody reads /metrics (relay then keeps
/// bodies unrendered) and the samples go through the WAL and a queue; the
/// test follows the scrapes at the receiver.
fn huge_then_small(remote_write: bool) {
    let what = if remote_write {
        "200k series once, remote write"
    } else {
        "200k series once"
    };
    let mut big = String::with_capacity(52 << 20);
    let pad = "p".repeat(200);
    for i in 0..200_000 {
        big.push_str(&format!("huge_series{{id=\"{i:06}\",pad=\"{pad}\"}} {i}\n"));
    }
    let big = Arc::new(big);
    let small = Arc::new("small_series 1\n".to_owned());
    // Big until relay has taken one whole (a loaded machine may time out
    // the first tries), small from then on.
    let big_mode = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let small_served = Arc::new(AtomicUsize::new(0));
    let (body_big, mode, count) = (big.clone(), big_mode.clone(), small_served.clone());
    let target = RawTarget::start(move |b| {
        let body = if mode.load(Ordering::Relaxed) {
            &body_big
        } else {
            count.fetch_add(1, Ordering::Relaxed);
            &small
        };
        b.text(body.as_bytes())
    });
    let receiver = Receiver::start();
    let remote = if remote_write {
        format!(
            "remote_write:\n  - url: {}\n    name: rw\n    queue_config: {{min_backoff: 50ms, max_backoff: 1s, batch_send_deadline: 200ms}}\n",
            receiver.url
        )
    } else {
        String::new()
    };
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: once\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs: [{{targets: [\"{}\"]}}]\n{remote}",
        target.addr
    ));
    let job = "job=\"once\"";
    // How many samples relay's last scrapes took: from /metrics (polled
    // slowly: 60 MB while the big one is in), or the receiver.
    let scraped = |value: f64| -> usize {
        if remote_write {
            receiver
                .accepted_named("scrape_samples_scraped")
                .iter()
                .filter(|g| g.value == value)
                .count()
        } else {
            usize::from(
                metric_value(&relay.metrics(), "scrape_samples_scraped", &[job]) == Some(value),
            )
        }
    };
    wait_long("relay to take the 200k-series body whole", || {
        (scraped(200_000.0) > 0).then_some(())
    });
    big_mode.store(false, Ordering::Relaxed);
    wait_for("four small scrapes", || {
        // Without remote write relay scrapes when /metrics is read.
        if !remote_write {
            relay.metrics();
        }
        (small_served.load(Ordering::Relaxed) >= 4).then_some(())
    });
    wait_long("the small scrapes through", || {
        (scraped(1.0) > usize::from(remote_write) * 3).then_some(())
    });
    let peak = assert_peak_under(relay.pid(), 600, what);
    assert!(
        peak >= 100,
        "{what}: the huge scrape did not happen: peak {peak} MiB"
    );
    // Freed heap goes back to the system within relay's trim period (10 s).
    // Remote write's WAL and queue add their steady few MiB.
    let cap = if remote_write { 50 } else { 40 };
    let start = Instant::now();
    let mut now = rss_mib(relay.pid());
    while now >= cap && start.elapsed() < Duration::from_secs(30) {
        thread::sleep(Duration::from_millis(500));
        now = rss_mib(relay.pid());
    }
    eprintln!("{what}: after small scrapes RSS {now} MiB (peak {peak} MiB)");
    assert!(
        now < cap,
        "{what}: relay kept {now} MiB after the huge scrape (peak {peak} MiB; cap {cap} MiB)"
    );
}

/// A gzip stream of one huge sample line (`prefix`, `size` bytes of `fill`,
/// `suffix`), made of one repeated compressed chunk so that neither side
/// holds the line: fixed-Huffman deflate blocks of 258-byte copies at
/// distance 1 (the same bytes wherever they stand), each closed by an
/// empty stored block so the next starts on a byte. The trailer is valid.
struct GzipLine {
    head: Vec<u8>,
    chunk: Vec<u8>,
    chunks: u64,
    tail: Vec<u8>,
}

impl GzipLine {
    /// Copies of 258 bytes in each repeated chunk.
    const COPIES: u64 = 1000;

    fn new(prefix: &[u8], fill: u8, size: u64, suffix: &[u8]) -> GzipLine {
        #[derive(Default)]
        struct Bits {
            out: Vec<u8>,
            acc: u64,
            n: u32,
        }
        impl Bits {
            fn put(&mut self, value: u64, count: u32) {
                self.acc |= value << self.n;
                self.n += count;
                while self.n >= 8 {
                    self.out.push(self.acc as u8);
                    self.acc >>= 8;
                    self.n -= 8;
                }
            }
            fn code(&mut self, code: u64, len: u32) {
                let reversed = (0..len).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
                self.put(reversed, len);
            }
            /// A literal byte in the fixed code (all bytes used here are < 144).
            fn literal(&mut self, byte: u8) {
                assert!(byte < 144);
                self.code(0x30 + u64::from(byte), 8);
            }
            /// End of block, then an empty stored block: back on a byte.
            fn align(&mut self) {
                self.code(0, 7);
                self.put(0, 3);
                if self.n > 0 {
                    self.put(0, 8 - self.n);
                }
                self.out.extend_from_slice(&[0, 0, 0xff, 0xff]);
            }
            fn take(&mut self) -> Vec<u8> {
                std::mem::take(&mut self.out)
            }
        }
        let per_chunk = 258 * Self::COPIES;
        let chunks = (size - 1) / per_chunk;
        let rest = size - 1 - chunks * per_chunk;
        let mut bits = Bits {
            out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
            ..Bits::default()
        };
        bits.put(0, 1);
        bits.put(1, 2);
        for &b in prefix {
            bits.literal(b);
        }
        bits.literal(fill);
        bits.align();
        let head = bits.take();
        bits.put(0, 1);
        bits.put(1, 2);
        for _ in 0..Self::COPIES {
            bits.code(0b1100_0101, 8); // length 258 (code 285)
            bits.code(0, 5); // distance 1
        }
        bits.align();
        let chunk = bits.take();
        bits.put(1, 1); // the last block
        bits.put(1, 2);
        for _ in 0..rest {
            bits.literal(fill);
        }
        for &b in suffix {
            bits.literal(b);
        }
        bits.code(0, 7);
        if bits.n > 0 {
            bits.put(0, 8 - bits.n);
        }
        let mut crc = flate2::Crc::new();
        crc.update(prefix);
        crc.update(&[fill]);
        let mut one = flate2::Crc::new();
        one.update(&vec![fill; per_chunk as usize]);
        for _ in 0..chunks {
            crc.combine(&one);
        }
        crc.update(&vec![fill; rest as usize]);
        crc.update(suffix);
        let mut tail = bits.take();
        tail.extend_from_slice(&crc.sum().to_le_bytes());
        tail.extend_from_slice(&crc.amount().to_le_bytes());
        GzipLine {
            head,
            chunk,
            chunks,
            tail,
        }
    }

    fn write(&self, out: &mut impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        out(&self.head)?;
        for _ in 0..self.chunks {
            out(&self.chunk)?;
        }
        out(&self.tail)
    }

    fn len(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.chunks * self.chunk.len() as u64
    }
}

#[test]
fn gzip_line_inflates_to_its_line() {
    use std::io::Read as _;
    let line = GzipLine::new(b"m{a=\"", b'x', 3 * 258 * GzipLine::COPIES + 7, b"\"} 1\n");
    let mut gz = Vec::new();
    line.write(&mut |b: &[u8]| {
        gz.extend_from_slice(b);
        Ok(())
    })
    .expect("in memory");
    assert_eq!(gz.len() as u64, line.len());
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut text)
        .expect("a valid gzip stream");
    let want = format!("m{{a=\"{}\"}} 1\n", "x".repeat(3 * 258 * 1000 + 7));
    assert!(text == want.as_bytes(), "inflated to {} bytes", text.len());
}

/// relay's default config (config/relay.yml, as `relay gen` embeds it)
/// scraping `addr` every 2 s instead of the app's localhost:8001 every 15 s;
/// its limits are the file's.
fn default_config(addr: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/relay.yml"))
        .expect("config/relay.yml");
    let (scrape, _relay) = text.split_once("\nrelay:").expect("a relay: section");
    assert!(scrape.contains("localhost:8001") && scrape.contains("scrape_interval: 15s"));
    scrape
        .replace("localhost:8001", addr)
        .replace("scrape_interval: 15s", "scrape_interval: 2s")
        .replace("scrape_timeout: 10s", "scrape_timeout: 2s")
}

#[test]
fn a_300_mib_label_value_fails_under_the_default_config_in_bounded_memory() {
    let line = Arc::new(GzipLine::new(b"huge{blob=\"", b'x', 300 << 20, b"\"} 1\n"));
    eprintln!("300 MiB label value: {} bytes gzipped", line.len());
    let served = line.clone();
    let target = RawTarget::start(move |b| {
        b.head(&format!(
            "HTTP/1.1 200 OK\r\n{TEXT}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            served.len()
        ))?;
        served.write(&mut |bytes| b.write(bytes))
    });
    let relay = Relay::start(&default_config(&target.addr));
    wait_long("up 0 for job app", || {
        (up(&relay, "app").as_deref() == Some("0")).then_some(())
    });
    let log = relay.wait_for_log(&["scrape failed", "app/"]);
    assert!(
        log.contains("label_value_length_limit exceeded (metric: huge, a line longer than"),
        "{log}"
    );
    wait_failures(&relay, "app", "label_limit", 2.0);
    // relay stopped reading at the line's bound (about 2 MiB), not at the
    // body's 300 MiB nor the body size limit's 16 MiB.
    let metrics = relay.metrics();
    let job = "scrape_job=\"app\"";
    let read = metric_value(&metrics, "relay_scraped_bytes_total", &[job]).expect("bytes read");
    let failed = metric_value(
        &metrics,
        "relay_scrape_failures_total",
        &[job, "reason=\"label_limit\""],
    )
    .expect("failures");
    let scrapes = metric_value(&metrics, "relay_scrapes_total", &[job]).unwrap_or(failed);
    eprintln!("300 MiB label value: {read} bytes read in {scrapes} scrapes ({failed} failed)");
    assert!(
        read / scrapes.max(1.0) < 4.0 * MIB as f64,
        "{read} bytes read in {scrapes} scrapes"
    );
    assert!(!metrics.contains("huge{"));
    assert_serving(&relay);
    assert_peak_under(
        relay.pid(),
        40,
        "one 300 MiB label value (gzip), default config",
    );
}
