//! prometheus_client (Python), the reference parsers tests use as an
//! independent oracle: its text parser and its strict OpenMetrics parser.
//! `scripts/test` provides the venv's python as RELAY_TEST_PYTHON.

use std::process::Command;

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
