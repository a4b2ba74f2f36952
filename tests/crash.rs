//! Crash at any instant, and a power cut.
//!
//! relay is killed with SIGKILL at random instants (seeded: the seed is
//! printed, and `RELAY_CRASH_SEED=<seed>` replays it) while it scrapes a
//! target of thousands of series every 100 ms, appends them to its WAL and
//! sends them, and is started again at once on the same WAL, many times.
//! A power cut is a WAL whose newest segment (the one written since the last
//! fsync) and checkpoint are cut at random byte offsets, as a node that lost
//! power keeps them; relay is started on it.
//!
//! Which scrapes arrived is told exactly: every series of the target has the
//! scrape's number as its value (`common::rw::CountingTarget`), and the Rust
//! receiver of `common::rw` records every sample it accepts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::rw::{now_ms, CountingTarget, Receiver, STALE_NAN_BITS};
use common::{free_port, Relay, DEADLINE};

/// Series of the target besides `count_of_scrapes`.
const PADDING: usize = 2000;
/// Kills in the kill test.
const KILLS: usize = 20;
/// The longest a relay lives between its healthy start and its kill (ms).
const MAX_LIFE_MS: u64 = 1000;
/// Cuts in the power-cut test (each one a start of relay on a copy).
const CUTS: usize = 5;

/// A small seeded generator (splitmix64): a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("RELAY_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: seed {seed} (RELAY_CRASH_SEED={seed} replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in 0..=max.
    fn upto(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }
}

/// Scrapes `target` every 100 ms and remote-writes to `url` as queue `rw`
/// (named, so a copy of the WAL keeps its checkpoint with another URL).
fn config(target: &str, url: &str, queue: &str) -> String {
    format!(
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: [\"{target}\"]}}]\nremote_write:\n  - url: {url}\n    name: rw\n    queue_config: {{min_backoff: 50ms, max_backoff: 500ms, batch_send_deadline: 100ms{queue}}}\n"
    )
}

/// What the receiver got of the target's scrapes, read request by request.
#[derive(Default)]
struct Tally {
    /// Requests read so far.
    read: usize,
    /// Scrape number -> the series that arrived with it (-1:
    /// `count_of_scrapes`, i: `count_padding{i="i"}`).
    series: BTreeMap<u64, BTreeSet<i64>>,
    /// Scrape number -> the timestamps `count_of_scrapes` arrived with.
    stamps: BTreeMap<u64, BTreeSet<i64>>,
    /// The newest timestamp of `up` received.
    newest_up: i64,
    /// Every `up` received: timestamp (the scrape's start) -> value.
    up: BTreeMap<i64, f64>,
    /// Requests not answered 2xx or not decodable.
    refused: usize,
}

impl Tally {
    fn update(&mut self, receiver: &Receiver) {
        let new = receiver.requests_from(self.read);
        self.read += new.len();
        for request in &new {
            let write = match &request.write {
                Ok(w) if request.accepted() => w,
                _ => {
                    self.refused += 1;
                    continue;
                }
            };
            for ts in &write.timeseries {
                let label = |name: &str| {
                    ts.labels
                        .iter()
                        .find(|l| l.name == name)
                        .map(|l| l.value.as_str())
                };
                let id = match label("__name__") {
                    Some("count_of_scrapes") => -1,
                    Some("count_padding") => label("i")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| panic!("count_padding without i: {:?}", ts.labels)),
                    Some("up") => {
                        for s in &ts.samples {
                            self.newest_up = self.newest_up.max(s.timestamp);
                            if s.value.to_bits() != STALE_NAN_BITS {
                                self.up.insert(s.timestamp, s.value);
                            }
                        }
                        continue;
                    }
                    _ => continue,
                };
                for s in &ts.samples {
                    if s.value.to_bits() == STALE_NAN_BITS {
                        continue;
                    }
                    assert!(
                        s.value.fract() == 0.0 && s.value >= 1.0,
                        "value {} of {:?} was never served",
                        s.value,
                        ts.labels
                    );
                    let n = s.value as u64;
                    self.series.entry(n).or_default().insert(id);
                    if id == -1 {
                        self.stamps.entry(n).or_default().insert(s.timestamp);
                    }
                }
            }
        }
    }

    /// The `up` of the scrape the target answered at `at` (ms): the one
    /// that started last before it (relay stamps a scrape with its start).
    fn up_of(&self, at: i64) -> Option<(i64, f64)> {
        self.up.range(..=at + 1).next_back().map(|(t, v)| (*t, *v))
    }

    /// Scrapes that arrived whole: every series of the target.
    fn whole(&self) -> BTreeSet<u64> {
        self.series
            .iter()
            .filter(|(_, s)| s.len() == PADDING + 1)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Scrapes of which some series arrived, but not all.
    fn partial(&self) -> Vec<(u64, usize)> {
        self.series
            .iter()
            .filter(|(_, s)| s.len() != PADDING + 1)
            .map(|(n, s)| (*n, s.len()))
            .collect()
    }

    /// Scrapes whose `count_of_scrapes` arrived with more than one
    /// timestamp (a resend must be the sample first sent).
    fn restamped(&self) -> Vec<(u64, BTreeSet<i64>)> {
        self.stamps
            .iter()
            .filter(|(_, s)| s.len() > 1)
            .map(|(n, s)| (*n, s.clone()))
            .collect()
    }
}

/// A relay that needed a hand says so in its log: an error, a corrupt
/// record met by a reader (a kill leaves at most a torn tail, which the
/// next start cuts), a panic.
fn assert_clean_log(logs: &str, life: usize) {
    for line in logs.lines() {
        assert!(
            !(line.contains("ERROR")
                || line.contains("corrupt WAL record")
                || line.contains("panicked")),
            "relay {life}: {line}\n(whole log:\n{logs})"
        );
    }
}

#[test]
fn sigkill_at_random_instants_loses_at_most_the_scrape_being_appended() {
    let mut rng = Rng::seeded("sigkill_at_random_instants");
    let receiver = Receiver::start();
    let target = CountingTarget::start_with_series(PADDING);
    let wal = tempfile::tempdir().expect("tempdir");
    let cfg = config(&target.addr, &receiver.url, "");
    // Scrapes answered when each relay started; a killed relay's are those
    // up to the next one's start.
    let mut starts = Vec::new();
    let mut repairs = 0;
    starts.push(0);
    for life in 0..KILLS {
        let mut relay = Relay::start_with(&cfg, wal.path(), "");
        std::thread::sleep(Duration::from_millis(rng.upto(MAX_LIFE_MS)));
        relay.kill9();
        // A request the killed relay sent may still be read by the target
        // after the kill: paused, the target answers it 503 without counting,
        // and what it counted before is final.
        target.pause();
        starts.push(target.answered().len());
        target.resume();
        let logs = relay.logs();
        assert_clean_log(&logs, life);
        repairs += logs.matches("torn or corrupt tail").count();
    }
    let last = Relay::start_with(&cfg, wal.path(), "");
    target.wait_answered(starts[KILLS] + 10);
    let answers = target.pause_and_settle(&last);
    let answered = answers.len() as u64;
    let answered_at = |n: u64| answers.get(n as usize - 1).map_or(0, |a| a.1);
    // The scrape a kill may have interrupted: the last its relay was answered.
    let excusable: BTreeSet<u64> = starts
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| w[1] as u64)
        .collect();
    let mut tally = Tally::default();
    let started = Instant::now();
    let missing = loop {
        tally.update(&receiver);
        let whole = tally.whole();
        // A scrape relay failed (`up 0`: it timed out reading a body the
        // target had sent) was not relay's to keep.
        let missing: Vec<u64> = (1..=answered)
            .filter(|n| !whole.contains(n) && !excusable.contains(n))
            .filter(|n| tally.up_of(answered_at(*n)).is_none_or(|(_, up)| up != 0.0))
            .collect();
        if missing.is_empty() || started.elapsed() > DEADLINE {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_clean_log(&last.logs(), KILLS);
    let whole = tally.whole();
    let excused: Vec<u64> = excusable
        .iter()
        .copied()
        .filter(|n| !whole.contains(n))
        .collect();
    let failed: Vec<u64> = (1..=answered)
        .filter(|n| !whole.contains(n) && !excusable.contains(n))
        .filter(|n| {
            tally
                .up_of(answered_at(*n))
                .is_some_and(|(_, up)| up == 0.0)
        })
        .collect();
    eprintln!(
        "kills {KILLS}, scrapes answered {answered} ({} series each), delivered whole {}, excused {} {excused:?}, failed by relay (up 0) {} {failed:?}, torn tails repaired at start {repairs}, requests refused {}",
        PADDING + 1,
        whole.range(1..=answered).count(),
        excused.len(),
        failed.len(),
        tally.refused
    );
    let why: Vec<String> = missing
        .iter()
        .map(|n| {
            format!(
                "{n}: answered at {}, {} series arrived, up of its scrape {:?}",
                answered_at(*n),
                tally.series.get(n).map_or(0, BTreeSet::len),
                tally.up_of(answered_at(*n))
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} answered scrapes never arrived whole: {why:#?} (relays started at answered counts {starts:?})",
        missing.len()
    );
    assert_eq!(
        tally.partial(),
        vec![],
        "scrapes (number, series) that arrived in part"
    );
    assert_eq!(
        tally.restamped(),
        vec![],
        "scrapes resent with another timestamp"
    );
    assert!(
        whole.iter().all(|n| *n <= answered),
        "received scrapes the target never answered: {:?}",
        whole.range(answered + 1..).collect::<Vec<_>>()
    );
    assert!(excused.len() <= KILLS);
}

/// The WAL's segment files (8-digit names), oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the WAL dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    found.sort();
    found
}

/// The whole records of a segment as the WAL frames them (module doc of
/// the WAL: `[length u32][CRC32C u32][type u8][body]`, little-endian):
/// (start, end, type) of each; type 2 holds samples.
fn frames(data: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(header) = data.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some(payload) = data.get(at + 8..at + 8 + len).filter(|_| len > 0) else {
            break;
        };
        out.push((at, at + 8 + len, payload[0]));
        at += 8 + len;
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy a WAL file");
        }
    }
}

/// Cuts `path` to `len` bytes; with `zeros`, pads it back to its old
/// length with zeros (a file system that kept the size but not the data).
fn cut(path: &Path, len: u64, zeros: bool) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open a WAL file");
    let old = file.metadata().expect("metadata").len();
    file.set_len(len).expect("cut");
    if zeros {
        file.set_len(old).expect("pad with zeros");
    }
}

#[test]
fn a_power_cut_at_random_bytes_of_the_wal_loses_only_what_came_after_the_cut() {
    let mut rng = Rng::seeded("a_power_cut_at_random_bytes");
    // The receiver is down while the WAL fills: nothing is delivered, the
    // checkpoint stays at the start, every scrape is in the WAL.
    let down = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let target = CountingTarget::start_with_series(PADDING);
    let wal = tempfile::tempdir().expect("tempdir");
    let one_shard = ", min_shards: 1, max_shards: 1";
    // Two lives, so the cut segment has an older one before it, whole.
    let mut lives = Vec::new();
    for more in [4, 8] {
        let before = target.answered().len();
        let mut relay = Relay::start_with(&config(&target.addr, &down, one_shard), wal.path(), "");
        target.wait_answered(before + more);
        let answered = target.pause_and_settle(&relay).len();
        relay.kill9();
        target.resume();
        lives.push((before, answered));
    }
    target.pause();
    let (older, (from, answered)) = (lives[0].1, lives[1]);
    let segs = segments(wal.path());
    let newest = segs.last().expect("a WAL segment").clone();
    let name = newest
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned();
    let data = std::fs::read(&newest).expect("read the newest segment");
    let records = frames(&data);
    let sample_ends: Vec<usize> = records.iter().filter(|r| r.2 == 2).map(|r| r.1).collect();
    assert!(
        sample_ends.len() >= answered - from,
        "segment {name}: {} sample records for {} scrapes",
        sample_ends.len(),
        answered - from
    );
    let checkpoint = wal.path().join("checkpoints").join("rw");
    let checkpoint_len = std::fs::metadata(&checkpoint).expect("checkpoint").len();
    for round in 0..CUTS {
        // The last round keeps the segment whole: everything arrives.
        // The first round anywhere; the others past the segment's first
        // record (the series descriptions of its first scrape), among the
        // scrapes' samples.
        let first_end = records.first().map_or(0, |r| r.1);
        let at = match round {
            0 => rng.upto(data.len() as u64) as usize,
            r if r + 1 == CUTS => data.len(),
            _ => first_end + rng.upto((data.len() - first_end) as u64) as usize,
        };
        let zeros = rng.upto(1) == 1;
        let cut_checkpoint = rng.upto(1) == 1;
        let copy = tempfile::tempdir().expect("tempdir");
        copy_dir(wal.path(), copy.path());
        cut(&copy.path().join(&name), at as u64, zeros);
        if cut_checkpoint {
            cut(
                &copy.path().join("checkpoints").join("rw"),
                rng.upto(checkpoint_len),
                false,
            );
        }
        let valid = records
            .iter()
            .map(|r| r.1)
            .filter(|end| *end <= at)
            .max()
            .unwrap_or(0);
        let kept = sample_ends.iter().filter(|end| **end <= valid).count();
        let expected: BTreeSet<u64> = (1..=older as u64)
            .chain(from as u64 + 1..=(from + kept.min(answered - from)) as u64)
            .collect();
        let what =
            format!(
            "cut {round}: segment {name} ({} bytes) cut at {at} (whole records end at {valid}){}{}",
            data.len(),
            if zeros { ", zeros after" } else { "" },
            if cut_checkpoint { ", checkpoint cut too" } else { "" }
        );
        let receiver = Receiver::start();
        let started_ms = now_ms();
        let relay = Relay::start_with(
            &config(&target.addr, &receiver.url, one_shard),
            copy.path(),
            "",
        );
        // One shard sends in WAL order: an `up` of this relay's own (failed)
        // scrapes means everything before it in the WAL was sent.
        let mut tally = Tally::default();
        let started = Instant::now();
        while tally.newest_up < started_ms && started.elapsed() < DEADLINE {
            std::thread::sleep(Duration::from_millis(100));
            tally.update(&receiver);
        }
        let logs = relay.logs();
        assert!(
            tally.newest_up >= started_ms,
            "{what}: no live sample arrived\n{logs}"
        );
        let size = if zeros { data.len() } else { at };
        let said = logs
            .lines()
            .find(|l| l.contains("torn or corrupt tail") && l.contains(&name))
            .map(str::to_owned);
        eprintln!(
            "{what}: delivered {} scrapes (expected {}); log: {}",
            tally.whole().len(),
            expected.len(),
            said.as_deref().unwrap_or("(no repair line)")
        );
        if valid < size {
            let line = said.unwrap_or_else(|| panic!("{what}: no repair line\n{logs}"));
            assert!(
                line.contains(&format!("valid={valid} ")) && line.contains(&format!("size={size}")),
                "{what}: {line}"
            );
        } else {
            assert_eq!(said, None, "{what}: nothing was torn");
        }
        assert_eq!(tally.whole(), expected, "{what}: the scrapes delivered");
        assert_eq!(
            tally.partial(),
            vec![],
            "{what}: scrapes (number, series) in part"
        );
        assert_eq!(
            tally.restamped(),
            vec![],
            "{what}: resent with another timestamp"
        );
        assert_clean_log(&logs, round);
    }
}
