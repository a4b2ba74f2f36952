//! prometheus_client (Python), the reference parsers tests use as an
//! independent oracle: its text parser and its strict OpenMetrics parser.
//! `scripts/test` provides the venv's python as RELAY_TEST_PYTHON.

use std::process::{Child, Command, Stdio};

/// The venv python; tests that call this are `#[ignore]`d and run by
/// `scripts/test`, where a missing venv fails.
pub fn python() -> String {
    std::env::var("RELAY_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("RELAY_TEST_PYTHON is not set: run ./scripts/test, which creates the venv with prometheus_client")
    })
}

/// Parses `body` fully with prometheus_client's text parser, or its strict
/// OpenMetrics parser; Ok(number of families) or Err(the parser's error).
pub fn parse(body: &[u8], openmetrics: bool) -> Result<usize, String> {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let script = format!(
        "import sys\nfrom {module} import text_string_to_metric_families as p\nprint(len(list(p(sys.stdin.read()))))\n"
    );
    let mut command = Command::new(python());
    command.args(["-c", &script]);
    let out = super::pipe(command, body);
    if out.code == 0 {
        out.stdout
            .trim()
            .parse()
            .map_err(|e| format!("{e}: {}", out.stdout))
    } else {
        Err(out.stderr.lines().last().unwrap_or_default().to_owned())
    }
}

/// One python process kept running that judges many bodies with
/// prometheus_client's parsers, so a property test can have every case
/// (and every shrink step) judged without a python start per case.
pub struct Judge {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

const JUDGE: &str = "import sys
from prometheus_client.parser import text_string_to_metric_families as tx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
inp = sys.stdin.buffer
while True:
    head = inp.readline()
    if not head:
        break
    kind, n = head.split()
    body = inp.read(int(n))
    try:
        out = 'ok %d' % len(list((om if kind == b'om' else tx)(body.decode('utf-8'))))
    except Exception as e:
        out = 'err ' + repr(e).replace('\\n', ' ')
    sys.stdout.write(out + '\\n')
    sys.stdout.flush()
";

impl Judge {
    pub fn start() -> Judge {
        let mut child = Command::new(python())
            .args(["-c", JUDGE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start python with prometheus_client");
        let stdin = child.stdin.take().expect("python's stdin");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("python's stdout"));
        Judge {
            child,
            stdin,
            stdout,
        }
    }

    /// Like `parse`: Ok(number of families) or Err(the parser's error).
    pub fn parse(&mut self, body: &[u8], openmetrics: bool) -> Result<usize, String> {
        use std::io::{BufRead, Write};
        let kind = if openmetrics { "om" } else { "tx" };
        self.stdin
            .write_all(format!("{kind} {}\n", body.len()).as_bytes())
            .and_then(|()| self.stdin.write_all(body))
            .and_then(|()| self.stdin.flush())
            .expect("write to the judging python");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read the judging python's verdict");
        match line.trim_end().split_once(' ') {
            Some(("ok", n)) => n.parse().map_err(|e| format!("{e}: {line}")),
            Some(("err", e)) => Err(e.to_owned()),
            _ => panic!("the judging python answered {line:?} (did it die?)"),
        }
    }
}

impl Drop for Judge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A prometheus_client app: a Python script (given its port as argv[1])
/// run by the venv's python on a loopback port; killed when dropped.
pub struct App {
    child: Child,
    pub addr: String,
}

impl App {
    /// Starts `script` and waits until it answers `/metrics`.
    pub fn start(script: &str) -> App {
        let addr = format!("127.0.0.1:{}", super::free_port());
        let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
        let child = Command::new(python())
            .args(["-c", script, &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the prometheus_client app");
        let app = App { child, addr };
        super::wait_for("the prometheus_client app to answer", || {
            super::get(&app.addr, "/metrics", &[]).filter(|r| r.status == 200)
        });
        app
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each sample prometheus_client's parser reads from `body` (its strict
/// OpenMetrics parser with `openmetrics`), as `name label=value ...`
/// (labels sorted), or the parser's error.
pub fn samples(body: &[u8], openmetrics: bool) -> Result<Vec<String>, String> {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let script = format!(
        "import sys\nfrom {module} import text_string_to_metric_families as p\nfor f in p(sys.stdin.read()):\n    for s in f.samples:\n        print(' '.join([s.name] + ['%s=%s' % kv for kv in sorted(s.labels.items())]))\n"
    );
    let mut command = Command::new(python());
    command.args(["-c", &script]);
    let out = super::pipe(command, body);
    if out.code == 0 {
        Ok(out.stdout.lines().map(str::to_owned).collect())
    } else {
        Err(out.stderr.lines().last().unwrap_or_default().to_owned())
    }
}

/// Each sample prometheus_client's parser reads from `body`, as Python's
/// `repr((name, sorted labels))`: unambiguous for names that hold quotes,
/// backslashes or newlines. Or the parser's error.
pub fn samples_repr(body: &[u8], openmetrics: bool) -> Result<Vec<String>, String> {
    let module = if openmetrics {
        "prometheus_client.openmetrics.parser"
    } else {
        "prometheus_client.parser"
    };
    let script = format!(
        "import sys\nfrom {module} import text_string_to_metric_families as p\nfor f in p(sys.stdin.read()):\n    for s in f.samples:\n        print(repr((s.name, sorted(s.labels.items()))))\n"
    );
    let mut command = Command::new(python());
    command.args(["-c", &script]);
    let out = super::pipe(command, body);
    if out.code == 0 {
        Ok(out.stdout.lines().map(str::to_owned).collect())
    } else {
        Err(out.stderr.lines().last().unwrap_or_default().to_owned())
    }
}

/// Each exemplar prometheus_client's strict OpenMetrics parser reads from
/// `body`, as `sample-name label=value ... # label=value ... value [timestamp]`
/// (labels sorted), or the parser's error.
pub fn exemplars(body: &[u8]) -> Result<Vec<String>, String> {
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nkv = lambda d: ['%s=%s' % x for x in sorted(d.items())]\nfor f in p(sys.stdin.read()):\n    for s in f.samples:\n        e = s.exemplar\n        if e is None:\n            continue\n        ts = '' if e.timestamp is None else ' %s' % e.timestamp\n        print(' '.join([s.name] + kv(s.labels) + ['#'] + kv(e.labels) + [repr(float(e.value))]) + ts)\n";
    let mut command = Command::new(python());
    command.args(["-c", script]);
    let out = super::pipe(command, body);
    if out.code == 0 {
        Ok(out.stdout.lines().map(str::to_owned).collect())
    } else {
        Err(out.stderr.lines().last().unwrap_or_default().to_owned())
    }
}
