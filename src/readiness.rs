//! What `/-/ready` answers, as Prometheus's: ready once relay serves with
//! its config loaded, never gated on the targets (a native sidecar's
//! readiness is the Pod's), and not ready once shutting down. `run` sets
//! it; the server reads it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Relay's readiness; shared by `run` and the server.
#[derive(Debug, Default)]
pub struct Readiness {
    stopping: AtomicBool,
}

impl Readiness {
    /// Says that relay is shutting down: `/-/ready` answers 503 from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether relay is shutting down.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_until_stopped() {
        let readiness = Readiness::default();
        assert!(!readiness.is_stopping());
        readiness.stop();
        assert!(readiness.is_stopping());
    }
}
