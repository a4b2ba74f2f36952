//! A real Prometheus (Debian's package) scrapes relay's :9090 with
//! `honor_labels: true`, as the classic sidecar setup does, and must store
//! the app's series under the app's own `job` and `instance`.

mod common;

use std::process::{Child, Command, Stdio};

use common::{free_port, get, peer, wait_for, Relay, Reply, Target};

struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(binary: &std::path::Path, relay_addr: &str) -> Prometheus {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: relay-sidecar\n    honor_labels: true\n    static_configs:\n      - targets: [\"{relay_addr}\"]\n"
        ),
    )
    .expect("write prometheus.yml");
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        addr,
        _dir: dir,
    }
}

#[test]
fn prometheus_scraping_relay_sees_the_apps_series() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let target = Target::start(Reply::text(
        "# HELP orders_total Orders placed.\n# TYPE orders_total counter\norders_total{shop=\"eu\"} 42\n",
    ));
    let relay = Relay::start(&format!(
        "scrape_configs:\n  - job_name: shop-app\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [\"{}\"]\n",
        target.addr
    ));
    relay.wait_for_line("orders_total{");
    let prom = start_prometheus(&prometheus, &relay.addr);
    let body = wait_for("Prometheus to have orders_total from relay", || {
        get(&prom.addr, "/api/v1/query?query=orders_total", &[])
            .map(|r| r.text())
            .filter(|t| t.contains("\"orders_total\""))
    });
    assert!(body.contains("\"job\":\"shop-app\""), "{body}");
    assert!(
        body.contains(&format!("\"instance\":\"{}\"", target.addr)),
        "{body}"
    );
    assert!(body.contains("\"shop\":\"eu\""), "{body}");
    assert!(body.contains(",\"42\"]"), "{body}");
    assert!(
        !body.contains("relay-sidecar"),
        "the app's job must win with honor_labels: {body}"
    );
    // relay's own up series for the app also arrives.
    let up = wait_for("Prometheus to have up{job=\"shop-app\"}", || {
        get(
            &prom.addr,
            "/api/v1/query?query=up%7Bjob%3D%22shop-app%22%7D",
            &[],
        )
        .map(|r| r.text())
        .filter(|t| t.contains("\"result\":[{"))
    });
    assert!(up.contains(",\"1\"]"), "{up}");
}
