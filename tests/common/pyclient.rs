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
