//! Relay at rest: once startup is over, the pages of code and read-only
//! data that only startup used (flag parsing, config loading and resolving,
//! TLS and client setup, the dynamic loader's relocations, libc's own
//! start-up) are dropped from the process, so a small Pod's resident memory
//! is what its steady work touches. Without this they stay for the
//! process's life: the kernel maps file pages in 64 KiB windows around each
//! fault ("fault-around"), and nothing takes back a clean page of a process
//! that is not under memory pressure.
//!
//! Only read-only private file mappings are dropped (relay's text and
//! read-only data, and its shared libraries'), and only those none of whose
//! pages was ever written: no anonymous or swapped page, which rules out
//! the relocated read-only data (RELRO) and a debugger's breakpoints. Every
//! resident page of such a mapping is the file's content, so dropping it
//! changes no byte the process reads; what is still used faults back in
//! from the page cache (a minor fault, no disk read). Writable mappings
//! are never touched.

use std::time::{Duration, Instant, SystemTime};

use crate::status::Status;

/// The longest wait for rest after a start or reload: a receiver that is
/// down keeps samples unacknowledged, and startup's code is out of use all
/// the same.
pub const AT_MOST: Duration = Duration::from_secs(120);

/// How often relay looks whether it is at rest, while it waits for it.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What one release gave back.
#[derive(Debug, Default)]
pub struct Released {
    /// Resident bytes dropped.
    pub bytes: u64,
    /// Resident bytes of them in relay's own executable.
    pub exe_bytes: u64,
    /// Mappings released.
    pub mappings: usize,
    /// Read-only mappings kept because a page of them was written.
    pub kept: usize,
    /// The first mapping the kernel refused to release, if any (the others
    /// were released all the same).
    pub refused: Option<RestError>,
}

/// Why text could not be released (logged at debug; relay runs on).
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// A file of /proc could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    /// /proc/self/smaps held a line not as the kernel writes it.
    #[error("/proc/self/smaps line {line}: {what}")]
    Parse { line: usize, what: &'static str },
    /// The kernel refused to drop a mapping's pages.
    #[error("madvise(MADV_DONTNEED) of {start:#x}+{len}: {source}")]
    Madvise {
        start: usize,
        len: usize,
        source: std::io::Error,
    },
    /// Not Linux: nothing to do.
    #[error("releasing text is done on Linux only")]
    Unsupported,
}

/// One read-only private file mapping, as /proc/self/smaps lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMapping {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
    /// The file's inode.
    pub inode: u64,
    /// Resident bytes.
    pub rss: u64,
    /// Bytes of pages that were written (copied from the file) or swapped.
    pub written: u64,
}

/// The read-only private file mappings (`r--p`, `r-xp`, inode not 0) in
/// `smaps` (the text of /proc/PID/smaps).
pub fn read_only_mappings(smaps: &str) -> Result<Vec<FileMapping>, RestError> {
    let mut out = Vec::new();
    let mut current: Option<FileMapping> = None;
    for (i, line) in smaps.lines().enumerate() {
        let line_no = i + 1;
        if let Some(header) = Header::parse(line) {
            out.extend(current.take());
            let header = header.map_err(|what| RestError::Parse {
                line: line_no,
                what,
            })?;
            if matches!(header.perms, "r-xp" | "r--p") && header.inode != 0 {
                current = Some(FileMapping {
                    start: header.start,
                    end: header.end,
                    inode: header.inode,
                    rss: 0,
                    written: 0,
                });
            }
        } else if let Some(m) = current.as_mut() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let kib = || -> Result<u64, RestError> {
                value
                    .trim()
                    .strip_suffix("kB")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .map(|n| n * 1024)
                    .ok_or(RestError::Parse {
                        line: line_no,
                        what: "a size not in kB",
                    })
            };
            match key {
                "Rss" => m.rss = kib()?,
                "Anonymous" | "Swap" => m.written += kib()?,
                _ => {}
            }
        }
    }
    out.extend(current);
    Ok(out)
}

/// The first line of a mapping in smaps:
/// `start-end perms offset major:minor inode   path`.
struct Header<'a> {
    start: usize,
    end: usize,
    perms: &'a str,
    inode: u64,
}

impl<'a> Header<'a> {
    /// None when `line` is a field line (`Rss:  4 kB`), else the header or
    /// what is wrong with it.
    fn parse(line: &'a str) -> Option<Result<Header<'a>, &'static str>> {
        let (range, rest) = line.split_once(' ')?;
        let (start, end) = range.split_once('-')?;
        let hex = |s: &str| usize::from_str_radix(s, 16).ok();
        let (Some(start), Some(end)) = (hex(start), hex(end)) else {
            return None;
        };
        let mut rest = rest.trim_start();
        let mut field = || {
            let (f, r) = rest.split_once(' ').unwrap_or((rest, ""));
            rest = r.trim_start();
            f
        };
        let perms = field();
        let _offset = field();
        let _device = field();
        let Ok(inode) = field().parse::<u64>() else {
            return Some(Err("an inode that is not a number"));
        };
        if perms.len() != 4 {
            return Some(Err("permissions not of four letters"));
        }
        Some(Ok(Header {
            start,
            end,
            perms,
            inode,
        }))
    }
}

/// Drops the resident pages of the process's never-written read-only file
/// mappings; what is still used faults back in.
pub fn release() -> Result<Released, RestError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let exe = std::fs::metadata("/proc/self/exe")
            .map_err(|source| RestError::Read {
                path: "/proc/self/exe",
                source,
            })?
            .ino();
        let smaps =
            std::fs::read_to_string("/proc/self/smaps").map_err(|source| RestError::Read {
                path: "/proc/self/smaps",
                source,
            })?;
        let mut released = Released::default();
        for m in read_only_mappings(&smaps)? {
            if m.written > 0 {
                released.kept += 1;
                continue;
            }
            if m.rss == 0 {
                continue;
            }
            let len = m.end - m.start;
            // SAFETY: the range is one whole private, read-only mapping of a
            // file with no written or swapped page: every resident page is
            // the file's content, so dropping it changes no byte the process
            // reads (the next access maps the file's page again), and no
            // Rust object is written there.
            let rc =
                unsafe { libc::madvise(m.start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
            if rc != 0 {
                released.refused.get_or_insert(RestError::Madvise {
                    start: m.start,
                    len,
                    source: std::io::Error::last_os_error(),
                });
                continue;
            }
            released.bytes += m.rss;
            if m.inode == exe {
                released.exe_bytes += m.rss;
            }
            released.mappings += 1;
        }
        Ok(released)
    }
    #[cfg(not(target_os = "linux"))]
    Err(RestError::Unsupported)
}

/// Whether relay is at rest since `since`: every target has been scraped
/// since then, and every queue has acknowledged up to `written_before`, the
/// WAL's newest sample at the previous look (itself since then). Not the
/// newest now: with a scrape each second and a look each second, a look can
/// fall between a scrape's write and its send every time; what matters is
/// that the queues keep up with what was written a look ago.
pub fn at_rest(status: &Status, written_before: f64, since: SystemTime) -> bool {
    let scraped = status
        .targets()
        .iter()
        .all(|t| t.last().at.is_some_and(|at| at >= since));
    let queues = status.queues();
    let sent = queues.is_empty()
        || (written_before >= crate::status::unix_seconds(since).floor() - 1.0
            && queues.iter().all(|q| q.highest_sent() >= written_before));
    scraped && sent
}

/// Releases startup's read-only pages once relay is at rest after a start, and
/// again after each reload (`reloaded` is notified): `wal_newest` reads the
/// WAL's newest sample timestamp in seconds.
pub async fn keep(
    status: std::sync::Arc<Status>,
    wal_newest: impl Fn() -> f64,
    reloaded: std::sync::Arc<tokio::sync::Notify>,
) {
    loop {
        let (armed, since) = (Instant::now(), SystemTime::now());
        let mut look = tokio::time::interval(LOOK_EVERY);
        let mut written_before = 0.0;
        loop {
            look.tick().await;
            if at_rest(&status, written_before, since) || armed.elapsed() >= AT_MOST {
                break;
            }
            written_before = wal_newest();
        }
        match release() {
            Ok(r) => tracing::debug!(
                bytes = r.bytes,
                exe_bytes = r.exe_bytes,
                mappings = r.mappings,
                kept = r.kept,
                refused = r.refused.map(|e| e.to_string()),
                "at rest: read-only pages released"
            ),
            Err(e) => tracing::debug!("at rest: read-only pages not released: {e}"),
        }
        reloaded.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c7a00000-55d0c7c00000 r--p 00000000 fd:01 1234 /usr/bin/relay
Size:               2048 kB
Rss:                 512 kB
Anonymous:             0 kB
Swap:                  0 kB
55d0c7c00000-55d0c8400000 r-xp 00200000 fd:01 1234 /usr/bin/relay
Size:               8192 kB
Rss:                6000 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
55d0c8400000-55d0c8500000 rw-p 00a00000 fd:01 1234 /usr/bin/relay
Rss:                1024 kB
Anonymous:          1024 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/libc.so.6
Rss:                 900 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r-xp 00000000 fd:01 1234 /old/relay with space (deleted)
Rss:                   8 kB
Anonymous:             4 kB
Swap:                  4 kB
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
";

    #[test]
    fn read_only_file_mappings_are_found_with_their_written_pages() {
        let found = read_only_mappings(SMAPS).expect("parses");
        let brief: Vec<(usize, u64, u64, u64)> = found
            .iter()
            .map(|m| (m.start, m.inode, m.rss / 1024, m.written / 1024))
            .collect();
        assert_eq!(
            brief,
            vec![
                (0x55d0c7a00000, 1234, 512, 0),
                (0x55d0c7c00000, 1234, 6000, 0),
                (0x7f0000000000, 99, 900, 0),
                (0x7f0000200000, 1234, 8, 8),
            ],
            "not the writable data, not the vdso (inode 0)"
        );
        assert_eq!(found[1].end, 0x55d0c8400000);
    }

    #[test]
    fn a_malformed_header_names_its_line() {
        let bad = "55d0c7c00000-55d0c8400000 r-xp 00200000 fd:01 x /usr/bin/relay\n";
        let e = read_only_mappings(bad).expect_err("inode");
        assert_eq!(
            e.to_string(),
            "/proc/self/smaps line 1: an inode that is not a number"
        );
        let size = "55d0c7c00000-55d0c8400000 r-xp 00200000 fd:01 1 /r\nRss: many\n";
        let e = read_only_mappings(size).expect_err("size");
        assert_eq!(e.to_string(), "/proc/self/smaps line 2: a size not in kB");
    }

    #[test]
    fn at_rest_once_every_target_is_scraped_and_every_queue_keeps_up() {
        use crate::status::{LastScrape, QueueStatus, TargetInfo};
        use prometheus_client::metrics::gauge::Gauge;
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let status = Status::default();
        assert!(at_rest(&status, 0.0, since), "nothing to wait for");
        let (target, _asks) = status.add_target(1, TargetInfo::default());
        assert!(!at_rest(&status, 0.0, since), "not scraped yet");
        let scraped = |secs| LastScrape {
            at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            ..LastScrape::default()
        };
        target.scraped(scraped(999));
        assert!(!at_rest(&status, 0.0, since), "scraped before");
        target.scraped(scraped(1_001));
        assert!(at_rest(&status, 0.0, since));
        let sent = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        status.add_queue(std::sync::Arc::new(QueueStatus::new(
            "rw",
            "http://x",
            Gauge::default(),
            Gauge::default(),
            sent.clone(),
        )));
        assert!(!at_rest(&status, 0.0, since), "nothing written since");
        assert!(!at_rest(&status, 1_001.0, since), "written, not sent");
        sent.set(1_001.0);
        assert!(at_rest(&status, 1_001.0, since));
        assert!(
            !at_rest(&status, 1_002.0, since),
            "a newer scrape written a look ago and not yet acknowledged"
        );
        status.queues()[0].set_pending(5);
        sent.set(1_002.0);
        assert!(
            at_rest(&status, 1_002.0, since),
            "what was written a look ago is sent; the newest scrape may be in flight"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn releasing_drops_resident_pages_and_the_code_runs_on() {
        let first = release().expect("released");
        // The test binary's text is in use: some of it was resident.
        assert!(first.mappings >= 1, "{first:?}");
        assert!(first.exe_bytes > 0, "{first:?}");
        assert!(first.bytes >= first.exe_bytes, "{first:?}");
        assert!(first.refused.is_none(), "{first:?}");
        // Code runs after it (faulting back in), and releasing again works.
        let again = release().expect("released again");
        assert!(again.mappings >= 1, "{again:?}");
        assert!(again.refused.is_none(), "{again:?}");
    }
}
