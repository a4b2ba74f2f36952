//! `relay demo` end to end: the synthetic app and relay come up, and relay's
//! endpoint shows the app's series with `job`/`instance` and `up 1`.

mod common;

use std::process::{Child, Command, Stdio};

use common::{free_port, get, wait_for};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_serves_the_synthetic_apps_series() {
    let relay_addr = format!("127.0.0.1:{}", free_port());
    let agent_addr = format!("127.0.0.1:{}", free_port());
    let _demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_relay"))
            .args([
                "demo",
                "--listen-address",
                &relay_addr,
                "--agent-address",
                &agent_addr,
                "--series",
                "500",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn relay demo"),
    );
    let metrics = wait_for("the demo's first scrape", || {
        get(&relay_addr, "/metrics", &[])
            .map(|r| r.text())
            .filter(|t| t.contains("\nup{"))
    });
    let up = format!("up{{instance=\"{agent_addr}\",job=\"demo-app\"}} 1\n");
    assert!(metrics.contains(&up), "{metrics}");
    let requests = metrics
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("job=\"demo-app\"")
                && l.contains(&format!("instance=\"{agent_addr}\""))
        })
        .count();
    assert_eq!(
        requests,
        500 / 19 * 6,
        "request counters by route, method and code"
    );
    assert_eq!(
        get(&relay_addr, "/-/ready", &[]).map(|r| r.status),
        Some(200)
    );
    let agent = get(&agent_addr, "/metrics", &[]).expect("the synthetic app answers");
    assert!(agent
        .text()
        .contains("# TYPE http_request_duration_seconds histogram"));
}
