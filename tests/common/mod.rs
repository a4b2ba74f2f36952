//! Test harness: a controllable scrape target, the real `relay` binary as a
//! child process, a minimal HTTP client, and bounded waits. Everything talks
//! to 127.0.0.1 only.
#![allow(dead_code)]

pub mod aws;
pub mod certs;
pub mod h2;
pub mod json;
pub mod k8s;
pub mod oauth2;
pub mod peers;
pub mod procfs;
pub mod protoenc;
pub mod proxy;
pub mod pyclient;
pub mod rw;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen within seconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What the test target answers.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
    pub delay: Duration,
}

impl Reply {
    pub fn text(body: &str) -> Reply {
        Reply {
            status: 200,
            body: body.as_bytes().to_vec(),
            content_type: "text/plain; version=0.0.4".into(),
            delay: Duration::ZERO,
        }
    }
}

/// An app to scrape whose reply each test sets (and may change).
pub struct Target {
    pub addr: String,
    reply: Arc<Mutex<Reply>>,
    last_request: Arc<Mutex<String>>,
    /// (path, status, Location): requests for `path` get a redirect.
    redirects: Arc<Mutex<Vec<(String, u16, String)>>>,
    /// The path of every request, in order.
    paths: Arc<Mutex<Vec<String>>>,
}

impl Target {
    pub fn start(reply: Reply) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let addr = listener.local_addr().expect("addr").to_string();
        let shared = Arc::new(Mutex::new(reply));
        let last_request = Arc::new(Mutex::new(String::new()));
        let redirects = Arc::new(Mutex::new(Vec::new()));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let routes = Routes {
            reply: shared.clone(),
            seen: last_request.clone(),
            redirects: redirects.clone(),
            paths: paths.clone(),
        };
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let routes = routes.clone();
                thread::spawn(move || answer(stream, &routes));
            }
        });
        Target {
            addr,
            reply: shared,
            last_request,
            redirects,
            paths,
        }
    }

    /// Answers requests for `path` with `status` and `Location: location`
    /// (e.g. FastAPI's 307 from `/metrics` to `/metrics/`); others as set.
    pub fn redirect(&self, path: &str, status: u16, location: &str) {
        self.redirects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((path.to_owned(), status, location.to_owned()));
    }

    /// The path of every request so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The request line and headers of the latest scrape.
    pub fn last_request(&self) -> String {
        self.last_request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap_or_else(|e| e.into_inner()) = reply;
    }
}

/// What a target's connection threads share.
#[derive(Clone)]
struct Routes {
    reply: Arc<Mutex<Reply>>,
    seen: Arc<Mutex<String>>,
    redirects: Arc<Mutex<Vec<(String, u16, String)>>>,
    paths: Arc<Mutex<Vec<String>>>,
}

fn answer(stream: TcpStream, routes: &Routes) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut head = String::new();
    while reader.read_line(&mut head).map(|n| n > 0).unwrap_or(false) {
        if head.ends_with("\r\n\r\n") {
            break;
        }
    }
    // A POST's body (a remote-write batch) is read, so closing does not
    // reset the connection under the client.
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<u64>().ok())?
    });
    if let Some(n) = length {
        let _ = std::io::copy(&mut (&mut reader).take(n), &mut std::io::sink());
    }
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    *routes.seen.lock().unwrap_or_else(|e| e.into_inner()) = head;
    routes
        .paths
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    let mut reply = routes
        .reply
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut location = String::new();
    let redirects = routes.redirects.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, status, to)) = redirects.iter().find(|(from, _, _)| *from == path) {
        reply = Reply {
            status: *status,
            body: Vec::new(),
            content_type: "text/plain".into(),
            delay: Duration::ZERO,
        };
        location = format!("Location: {to}\r\n");
    }
    drop(redirects);
    thread::sleep(reply.delay);
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n{location}Connection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
}

/// A response from the minimal client.
pub struct Http {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Http {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// GET over HTTP/1.1 with `Connection: close`; None if the server is not up.
pub fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Option<Http> {
    request("GET", addr, path, headers)
}

/// An empty POST, as `curl -X POST` sends to `/-/reload`.
pub fn post(addr: &str, path: &str) -> Option<Http> {
    request("POST", addr, path, &[("Content-Length", "0")])
}

fn request(method: &str, addr: &str, path: &str, headers: &[(&str, &str)]) -> Option<Http> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Http {
        status,
        headers,
        body,
    })
}

/// The payload of a `Transfer-Encoding: chunked` body (Go servers stream so).
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// Polls `probe` until it returns Some or the deadline passes.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The real relay binary running a config; killed when dropped.
pub struct Relay {
    pub addr: String,
    child: Child,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// Starts `relay run` with `config` (its `relay.listen_address` is set
    /// here, and its WAL goes to a private tempdir rather than `data/wal`
    /// under the repository) and waits until `/-/healthy` answers.
    pub fn start(config: &str) -> Relay {
        Relay::launch(config, None, "", &[])
    }

    /// Like `start`, with more environment variables for relay (e.g.
    /// `RELAY_SERVING_FOR_MS`, its idle time for /metrics shortened).
    pub fn start_env(config: &str, env: &[(&str, &str)]) -> Relay {
        Relay::launch(config, None, "", env)
    }

    /// Like `start`, with the WAL in `wal_dir` (so a second relay can
    /// reuse it, as after a `kill -9`) and `settings` as more lines of the
    /// `relay:` section (e.g. `"  shutdown_timeout: 10s\n"`).
    pub fn start_with(config: &str, wal_dir: &Path, settings: &str) -> Relay {
        Relay::launch(config, Some(wal_dir), settings, &[])
    }

    /// `relay run --config path --web.enable-lifecycle` (POST /-/reload on)
    /// on a file the test writes (and edits), whose `relay.listen_address`
    /// is `addr`.
    pub fn start_file(path: &Path, addr: &str) -> Relay {
        Relay::spawn_args(
            path,
            addr,
            tempfile::tempdir().expect("tempdir"),
            &[],
            &["--web.enable-lifecycle"],
        )
    }

    /// Like `start_file`, with more environment variables for relay (e.g.
    /// `POD_NAME`, or `RELAY_WAL_DIR` so replicas can share one file).
    pub fn start_file_env(path: &Path, addr: &str, env: &[(&str, &str)]) -> Relay {
        Relay::spawn(path, addr, tempfile::tempdir().expect("tempdir"), env)
    }

    /// Like `start_file_env`, with more flags of `relay run` (e.g.
    /// `--listen-address`, when `addr` is where it should win).
    pub fn start_file_args(path: &Path, addr: &str, env: &[(&str, &str)], args: &[&str]) -> Relay {
        Relay::spawn_args(path, addr, tempfile::tempdir().expect("tempdir"), env, args)
    }

    /// Runs `relay run --config path`, its stderr in `dir`, and waits
    /// until `/-/healthy` answers on `addr`.
    fn spawn(path: &Path, addr: &str, dir: tempfile::TempDir, env: &[(&str, &str)]) -> Relay {
        Relay::spawn_args(path, addr, dir, env, &[])
    }

    /// Like `spawn`, with more flags of `relay run`.
    fn spawn_args(
        path: &Path,
        addr: &str,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Relay {
        Relay::try_spawn(path, addr, dir, env, args)
            .unwrap_or_else(|(logs, status)| panic!("relay exited ({status}) at start:\n{logs}"))
    }

    /// Runs relay until it is healthy; Err(its log, exit status) if it
    /// exited first.
    fn try_spawn(
        path: &Path,
        addr: &str,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Relay, (String, std::process::ExitStatus)> {
        let stderr = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["run", "--config"])
            .arg(path)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn relay");
        let mut relay = Relay {
            addr: addr.to_owned(),
            child,
            stderr,
            _dir: dir,
        };
        // Healthy, or exited (saying why) rather than a 30 s wait for it.
        let exited = wait_for("relay's /-/healthy", || {
            if get(&relay.addr, "/-/healthy", &[]).is_some_and(|r| r.status == 200) {
                return Some(None);
            }
            relay.child.try_wait().ok().flatten().map(Some)
        });
        match exited {
            None => Ok(relay),
            Some(status) => Err((relay.logs(), status)),
        }
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to relay.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
    }

    /// Like `start`, with more flags of `relay run` (e.g. `--web.read-timeout 2s`).
    pub fn start_args(config: &str, args: &[&str]) -> Relay {
        Relay::launch_args(config, None, "", &[], args)
    }

    fn launch(config: &str, wal_dir: Option<&Path>, settings: &str, env: &[(&str, &str)]) -> Relay {
        Relay::launch_args(config, wal_dir, settings, env, &[])
    }

    fn launch_args(
        config: &str,
        wal_dir: Option<&Path>,
        settings: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Relay {
        // A free port can be taken by a test running beside this one before
        // relay binds it: then relay exits saying so, and gets another.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let path = dir.path().join("relay.yml");
            let wal_dir = wal_dir.map_or_else(|| dir.path().join("wal"), Path::to_path_buf);
            std::fs::write(
                &path,
                format!(
                    "{config}\nrelay:\n  listen_address: \"{addr}\"\n  wal_dir: \"{}\"\n{settings}",
                    wal_dir.display()
                ),
            )
            .expect("write config");
            match Relay::try_spawn(&path, &addr, dir, env, args) {
                Ok(relay) => return relay,
                Err((logs, _)) if logs.contains("Address already in use") => continue,
                Err((logs, status)) => panic!("relay exited ({status}) at start:\n{logs}"),
            }
        }
        panic!("relay found no free port in 5 tries")
    }

    pub fn metrics(&self) -> String {
        get(&self.addr, "/metrics", &[])
            .map(|r| r.text())
            .unwrap_or_default()
    }

    /// The body of a GET /metrics answered 200, waiting for one: unlike
    /// `metrics()`, a failed GET is never an empty page that a check for
    /// something's absence would pass on.
    pub fn metrics_ok(&self) -> String {
        wait_for("a 200 answer from relay's /metrics", || {
            get(&self.addr, "/metrics", &[])
                .filter(|r| r.status == 200)
                .map(|r| r.text())
        })
    }

    /// Waits until /metrics has a line starting with `prefix`; returns it.
    pub fn wait_for_line(&self, prefix: &str) -> String {
        wait_for(&format!("a /metrics line starting with {prefix:?}"), || {
            self.metrics()
                .lines()
                .find(|l| l.starts_with(prefix))
                .map(str::to_owned)
        })
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until the log has a line containing every fragment.
    pub fn wait_for_log(&self, fragments: &[&str]) -> String {
        wait_for(&format!("a log line with {fragments:?}"), || {
            self.logs()
                .lines()
                .find(|l| fragments.iter().all(|f| l.contains(f)))
                .map(str::to_owned)
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends the signal `name` (`TERM`, `INT`) and waits (bounded) for the
    /// exit status.
    pub fn stop_with(&mut self, name: &str) -> std::process::ExitStatus {
        self.signal(name);
        wait_for(&format!("relay to exit after SIG{name}"), || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// SIGKILL (as `kill -9`: no flush, no stale markers) and waits for
    /// the exit, so that a test can start a second relay on the same WAL.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL relay");
        self.child.wait().expect("wait for relay");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished command printed.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` with `input` on its stdin and waits for it.
pub fn pipe(mut command: Command, input: &[u8]) -> Ran {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    // A command may exit before reading everything (that is its business).
    let _ = child.stdin.take().expect("stdin").write_all(input);
    let out = child.wait_with_output().expect("wait for the command");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The real `relay` binary with `args`.
pub fn relay(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
    command.args(args);
    command
}

/// A request's head, read up to the blank line (the body is left unread).
pub fn read_head(stream: &TcpStream) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.trim().is_empty() {
            return Ok(head);
        }
        head.push_str(&line);
    }
}
