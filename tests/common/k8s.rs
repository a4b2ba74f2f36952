//! kubernetes-validate (PyPI) from the test venv: the Kubernetes 1.30
//! schemas that what `relay gen` and `relay inject` print must pass.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The kubernetes-validate script beside RELAY_TEST_PYTHON; panics naming
/// what to install when it is missing (tests that call this are ignored
/// under plain `cargo test`, and scripts/test sets the venv up).
pub fn kubernetes_validate() -> PathBuf {
    let python = std::env::var_os("RELAY_TEST_PYTHON").unwrap_or_else(|| {
        panic!("RELAY_TEST_PYTHON is unset: scripts/test sets it to a venv with kubernetes-validate (PyPI)")
    });
    let bin = Path::new(&python)
        .parent()
        .expect("python in a bin/ directory")
        .join("kubernetes-validate");
    assert!(
        bin.is_file(),
        "{} is missing: install kubernetes-validate (PyPI) in the venv (scripts/test does)",
        bin.display()
    );
    bin
}

/// Runs `kubernetes-validate --strict -k 1.30.0 FILE`: whether it passed, and its report.
pub fn validate_strict(bin: &Path, file: &Path) -> (bool, String) {
    let out = Command::new(bin)
        .args(["--strict", "-k", "1.30.0"])
        .arg(file)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}
