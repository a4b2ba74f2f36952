//! What the kernel says about a running relay: resident memory (current and
//! peak, from /proc/PID/status) and open file descriptors, for the tests
//! that bound relay's memory and leaks under faults.

use std::fs;

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`), 0 if unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Peak resident memory so far, in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM") / 1024
}

/// Resident memory now, in MiB.
pub fn rss_mib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS") / 1024
}

/// How many file descriptors the process has open.
pub fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Asserts that relay's peak RSS stayed under `cap_mib`, and prints it (the
/// fault matrix's figures come from these lines).
pub fn assert_peak_under(pid: u32, cap_mib: u64, what: &str) -> u64 {
    let peak = peak_rss_mib(pid);
    eprintln!("{what}: peak RSS {peak} MiB (cap {cap_mib} MiB)");
    assert!(peak > 0, "{what}: no VmHWM in /proc/{pid}/status");
    assert!(
        peak < cap_mib,
        "{what}: relay's peak RSS {peak} MiB is over the {cap_mib} MiB cap"
    );
    peak
}

/// Size and resident KiB of the process's executable text: the summed
/// `r-xp` mappings of its own binary in /proc/PID/smaps (panics if none).
pub fn exe_text_kib(pid: u32) -> (u64, u64) {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).expect("read /proc/PID/exe");
    let exe = exe.to_string_lossy();
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read /proc/PID/smaps");
    let (mut size, mut rss, mut found, mut inside) = (0, 0, 0, false);
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let perms = fields.next().unwrap_or("");
            inside = perms == "r-xp" && line.ends_with(exe.as_ref());
            found += usize::from(inside);
        } else if inside {
            let mut kib = || {
                fields
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            match first {
                "Size:" => size += kib(),
                "Rss:" => rss += kib(),
                _ => {}
            }
        }
    }
    assert!(found > 0, "no r-xp mapping of {exe} in /proc/{pid}/smaps");
    (size, rss)
}
