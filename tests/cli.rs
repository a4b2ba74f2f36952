//! The command line's small promises: what `--version`, `--help`, a
//! successful check and a failed start print.

mod common;

use std::net::TcpListener;

#[test]
fn version_names_the_commit_built() {
    let out = common::relay(&["--version"]).output().expect("run relay");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .expect("git is needed to build from a checkout");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert_eq!(head.len(), 12, "not a git checkout?");
    assert_eq!(
        stdout.trim(),
        format!("relay {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_metrics_says_valid_on_success() {
    let ran = common::pipe(
        common::relay(&["check", "metrics"]),
        b"# TYPE a gauge\na 1\n",
    );
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "<stdin>: valid\n"));
    let ran = common::pipe(common::relay(&["check", "metrics"]), b"a{ 1\n");
    assert_eq!(ran.code, 1);
    assert_eq!(ran.stdout, "", "nothing valid to report");
    assert!(ran.stderr.starts_with("<stdin>:1:"), "{}", ran.stderr);
}

#[test]
fn a_busy_listen_address_is_reported_once() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("relay.yml");
    std::fs::write(&config, "scrape_configs: []\n").expect("write");
    let out = common::relay(&["run", "--config", &config.display().to_string()])
        .args(["--web.listen-address", &addr])
        .output()
        .expect("run relay");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "relay: cannot listen on {addr}: Address already in use"
        )),
        "{stderr}"
    );
}

#[test]
fn every_flag_of_relabel_has_help_text() {
    let out = common::relay(&["relabel", "--help"])
        .output()
        .expect("run relay");
    let help = String::from_utf8_lossy(&out.stdout);
    // Each option's line is followed by its text, never by a blank line.
    let lines: Vec<&str> = help.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("-c, --config")
            || line.trim_start().starts_with("--target")
        {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            assert!(!next.is_empty(), "{line:?} has no help text:\n{help}");
        }
    }
    assert!(help.contains("--target"), "{help}");
}
