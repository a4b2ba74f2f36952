//! CI cannot go green by skipping: `fuzz/run.sh` fails when it finds no
//! fuzz target, and `benches/e2e.py` exits non-zero when a shipper's run
//! failed. Both are run for real, with what they call stubbed: `cargo` (a
//! script on PATH answering as cargo-fuzz would) and the measurement of a
//! Pod (a run that failed), so nothing is built, fuzzed or measured.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A `cargo` that answers `+nightly fuzz list` with `$FAKE_LIST` (exit
/// `$FAKE_LIST_STATUS`), a fuzz run with libFuzzer's final stats, and
/// everything else (toolchain and cargo-fuzz checks, the build) with success.
const FAKE_CARGO: &str = r#"#!/bin/sh
case "$*" in
    "+nightly fuzz list") printf '%s' "$FAKE_LIST"; exit "${FAKE_LIST_STATUS:-0}" ;;
    "+nightly fuzz run"*) echo "stat::number_of_executed_units: 5"; echo "cov: 7"; exit 0 ;;
    *) exit 0 ;;
esac
"#;

/// Runs a copy of `fuzz/run.sh` (in a directory of its own, with an empty
/// `seed.py`) with the fake cargo first on PATH.
fn run_fuzz_script(list: &str, list_status: i32) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let fuzz = dir.path().join("fuzz");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&fuzz).expect("fuzz dir");
    std::fs::create_dir_all(&bin).expect("bin dir");
    std::fs::copy(Path::new(ROOT).join("fuzz/run.sh"), fuzz.join("run.sh")).expect("copy run.sh");
    std::fs::write(fuzz.join("seed.py"), "").expect("write seed.py");
    let cargo = bin.join("cargo");
    std::fs::write(&cargo, FAKE_CARGO).expect("write the fake cargo");
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg(fuzz.join("run.sh"))
        .arg("1")
        .env("PATH", path)
        .env("FAKE_LIST", list)
        .env("FAKE_LIST_STATUS", list_status.to_string())
        .output()
        .expect("run fuzz/run.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn fuzz_run_fails_when_it_finds_no_target() {
    let out = run_fuzz_script("", 0);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no fuzz target found"), "{stderr}");
}

#[test]
fn fuzz_run_fails_when_listing_the_targets_fails() {
    let out = run_fuzz_script("", 101);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn fuzz_run_runs_every_listed_target() {
    let out = run_fuzz_script("wal\nscrape\n", 0);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for t in ["wal", "scrape"] {
        assert!(
            stderr.contains(&format!("fuzz {t}: 5 runs in 1s, cov: 7, no crash")),
            "{stderr}"
        );
    }
}

/// Runs `benches/e2e.py`'s remote-write mode on one Pod whose vmagent run
/// ended with `failure` (nothing built, started or measured).
fn e2e_with_failed_run(failure: &str) -> Output {
    let script = r#"
import argparse, sys
sys.path.insert(0, sys.argv[1])
import e2e

class Sink:
    def __init__(self):
        self.proc, self.url = None, "http://127.0.0.1:9/api/v1/write"

def run_pod(pod, sink, window, only, protocol):
    peer = next(p for p in e2e.rw_peers("127.0.0.1:1", pod.interval, sink.url, protocol) if p.key == "vmagent")
    return [e2e.Row(pod, peer, None, sys.argv[2])]

e2e.build = lambda *a, **k: None
e2e.require_peers = lambda: None
e2e.Sink = Sink
e2e.stop = lambda *a, **k: None
e2e.run_pod = run_pod
args = argparse.Namespace(no_build=True, window=1.0, series=None, interval=None, sizes="1k",
                          churn=0, churn_size=None, peers="vmagent", protocol="1.0")
sys.exit(e2e.remote_write_mode(args))
"#;
    Command::new("python3")
        .args(["-c", script])
        .arg(Path::new(ROOT).join("benches"))
        .arg(failure)
        .output()
        .expect("run python3")
}

#[test]
fn e2e_exits_non_zero_when_a_shippers_run_failed() {
    let out = e2e_with_failed_run("exited early with 1: vmagent: cannot bind");
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("FAILED: 1k every 15 s, vmagent") && stderr.contains("exited early"),
        "{stderr}"
    );
    // A peer that is not installed is a skip, said so in the table (CI
    // refuses to start without it), not a failed run.
    let skipped = e2e_with_failed_run("skipped: vmagent not installed");
    assert_eq!(
        skipped.status.code(),
        Some(0),
        "{}\n{}",
        text(&skipped.stdout),
        text(&skipped.stderr)
    );
}
