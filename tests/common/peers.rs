//! Real remote-write receivers from Debian's packages, started by the
//! tests on loopback: Prometheus with `--web.enable-remote-write-receiver`
//! and VictoriaMetrics single-node. Each can be stopped and started again
//! on the same port and data directory, as a receiver outage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::json::{seconds_text_to_ms, Json};
use super::{get, wait_for};

/// A peer binary's path. Tests that call this are `#[ignore]`d under plain
/// `cargo test` and run by `scripts/test` (`--include-ignored`); there a
/// missing binary must fail, naming the package, never pass by skipping.
pub fn require_peer(binary: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(binary))
                .find(|p| Path::new(p).is_file())
        })
        .unwrap_or_else(|| {
            panic!("{binary} is not installed: install the Debian package {package} (scripts/test does)")
        })
}

/// A series as a receiver's API returned it: sorted labels, and
/// (timestamp ms, value text) samples.
pub type Stored = (Vec<(String, String)>, Vec<(i64, String)>);

/// Which receiver a `Peer` is.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Prometheus,
    VictoriaMetrics,
}

/// A receiver process; killed when dropped.
pub struct Peer {
    pub kind: Kind,
    pub addr: String,
    binary: PathBuf,
    dir: PathBuf,
    /// More flags (e.g. `--enable-feature=exemplar-storage`).
    args: Vec<String>,
    child: Option<Child>,
}

impl Peer {
    /// Starts `kind` listening on `addr` with its data under `dir` (which
    /// the caller keeps, so a restart finds the same data) and waits until
    /// it is ready.
    pub fn start(kind: Kind, binary: &Path, addr: &str, dir: &Path) -> Peer {
        Peer::start_args(kind, binary, addr, dir, &[])
    }

    /// A new receiver of `kind` on a free loopback port with its data in
    /// a new directory (kept alive by the caller: a restart finds it). The
    /// binary must be installed (see [`require_peer`]).
    pub fn fresh(kind: Kind) -> (Peer, tempfile::TempDir) {
        let binary = match kind {
            Kind::Prometheus => require_peer("prometheus", "prometheus"),
            Kind::VictoriaMetrics => require_peer("victoria-metrics", "victoria-metrics"),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = format!("127.0.0.1:{}", super::free_port());
        let peer = Peer::start(kind, &binary, &addr, dir.path());
        (peer, dir)
    }

    /// [`Peer::start`] with more flags, kept for restarts.
    pub fn start_args(kind: Kind, binary: &Path, addr: &str, dir: &Path, args: &[&str]) -> Peer {
        let mut peer = Peer {
            kind,
            addr: addr.to_owned(),
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        peer.restart();
        peer
    }

    /// The URL relay writes to: `/api/v1/write` for both.
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// The peer's own output, for failure messages.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("peer.log")).unwrap_or_default()
    }

    /// Starts the process (again) and waits until it answers as ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{:?} already runs", self.kind);
        std::fs::create_dir_all(&self.dir).expect("peer dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("peer.log"))
            .expect("peer log");
        let mut command = Command::new(&self.binary);
        let ready = match self.kind {
            Kind::Prometheus => {
                let config = self.dir.join("prometheus.yml");
                std::fs::write(&config, "global:\n  scrape_interval: 1m\n")
                    .expect("write prometheus.yml");
                command
                    .arg("--web.enable-remote-write-receiver")
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        self.dir.join("data").display()
                    ))
                    .arg(format!("--web.listen-address={}", self.addr));
                "/-/ready"
            }
            Kind::VictoriaMetrics => {
                command
                    .arg(format!("-httpListenAddr={}", self.addr))
                    .arg(format!(
                        "-storageDataPath={}",
                        self.dir.join("data").display()
                    ));
                "/health"
            }
        };
        let child = command
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the receiver");
        self.child = Some(child);
        let addr = self.addr.clone();
        wait_for(&format!("{:?} on {addr} to be ready", self.kind), || {
            get(&addr, ready, &[]).filter(|r| r.status == 200)
        });
    }

    /// Stops the process gracefully (SIGTERM, bounded wait), keeping its data.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        wait_for(&format!("{:?} to exit", self.kind), || {
            child.try_wait().ok().flatten()
        });
    }

    /// Every stored sample of the series matching `selector` (PromQL
    /// series selector), as raw samples, stale markers excluded (neither
    /// receiver returns them here).
    pub fn raw(&self, selector: &str) -> Vec<Stored> {
        match self.kind {
            Kind::Prometheus => self.prometheus_raw(selector),
            Kind::VictoriaMetrics => self.vm_raw(selector),
        }
    }

    /// The raw samples of the last 10 minutes (see [`prometheus_range`]).
    fn prometheus_raw(&self, selector: &str) -> Vec<Stored> {
        prometheus_range(&self.addr, selector, "10m")
    }

    /// `GET /internal/force_flush`, then `/api/v1/export?match[]=...`: one
    /// JSON line per series with its raw `values` and `timestamps` (ms),
    /// exact duplicates included.
    fn vm_raw(&self, selector: &str) -> Vec<Stored> {
        get(&self.addr, "/internal/force_flush", &[])
            .filter(|r| r.status == 200)
            .expect("VictoriaMetrics /internal/force_flush");
        let path = format!("/api/v1/export?match[]={}", urlencode(selector));
        let text = get(&self.addr, &path, &[])
            .filter(|r| r.status == 200)
            .map(|r| r.text())
            .unwrap_or_else(|| panic!("VictoriaMetrics export {path} failed"));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let json = Json::parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                let labels = json
                    .get("metric")
                    .and_then(Json::labels)
                    .unwrap_or_else(|| panic!("no metric in {line}"));
                let values = json.get("values").and_then(Json::array).unwrap_or(&[]);
                let stamps = json.get("timestamps").and_then(Json::array).unwrap_or(&[]);
                assert_eq!(values.len(), stamps.len(), "{line}");
                let samples = stamps
                    .iter()
                    .zip(values)
                    .filter_map(|(t, v)| {
                        let ts = t.num_text()?.parse().ok()?;
                        // A staleness marker exports as null or a NaN token.
                        let v = v.num_text()?;
                        (!v.contains("NaN")).then(|| (ts, v.to_owned()))
                    })
                    .collect();
                (labels, samples)
            })
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Percent-encodes a query parameter (everything but unreserved bytes).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus that scrapes (the test's "central" Prometheus); killed
/// when dropped.
pub struct Prometheus {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prometheus scraping relay's endpoint as the sidecar setup does.
pub fn scraping_relay(relay_addr: &str) -> String {
    format!(
        "scrape_configs:\n  - job_name: relay-sidecar\n    honor_labels: true\n    static_configs:\n      - targets: [\"{relay_addr}\"]\n"
    )
}

/// Starts Prometheus with `scrape_configs` (a YAML block) scraping every 1s.
pub fn start_prometheus(binary: &std::path::Path, scrape_configs: &str) -> Prometheus {
    start_prometheus_args(binary, scrape_configs, &[])
}

/// [`start_prometheus`] with more flags (e.g. `--enable-feature=native-histograms`).
pub fn start_prometheus_args(
    binary: &std::path::Path,
    scrape_configs: &str,
    args: &[&str],
) -> Prometheus {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{scrape_configs}"),
    )
    .expect("write prometheus.yml");
    let addr = format!("127.0.0.1:{}", super::free_port());
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .args(args)
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

/// `GET /api/v1/query?query=<selector>[<range>]&time=<now>` of the
/// Prometheus at `addr`: a range vector selector returns the raw samples,
/// timestamps in seconds with millisecond precision.
pub fn prometheus_range(addr: &str, selector: &str, range: &str) -> Vec<Stored> {
    let now = super::rw::now_ms() + 1000;
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        urlencode(&format!("{selector}[{range}]")),
        now / 1000,
        now % 1000
    );
    let text = get(addr, &path, &[])
        .filter(|r| r.status == 200)
        .map(|r| r.text())
        .unwrap_or_else(|| panic!("Prometheus query {path} failed"));
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    json.get("data")
        .and_then(|d| d.get("result"))
        .and_then(Json::array)
        .unwrap_or_else(|| panic!("no data.result in {text}"))
        .iter()
        .map(|series| {
            let labels = series
                .get("metric")
                .and_then(Json::labels)
                .unwrap_or_else(|| panic!("no metric in {text}"));
            let samples = series
                .get("values")
                .and_then(Json::array)
                .unwrap_or(&[])
                .iter()
                .map(|pair| {
                    let pair = pair.array().expect("[ts, value]");
                    (
                        seconds_text_to_ms(pair[0].num_text().expect("ts"))
                            .expect("a timestamp in ms"),
                        pair[1].num_text().expect("value").to_owned(),
                    )
                })
                .collect();
            (labels, samples)
        })
        .collect()
}
