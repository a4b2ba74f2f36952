//! kubernetes-validate (PyPI, in the venv of `RELAY_TEST_PYTHON`), which
//! checks generated manifests against Kubernetes' own schemas.

use std::path::{Path, PathBuf};

/// The kubernetes-validate script beside the test Python; a missing one
/// fails, naming what to install (never a skip).
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
