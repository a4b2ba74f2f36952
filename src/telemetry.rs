//! The relay's own observability: log setup (and, with the scrape work, the
//! `relay_*` metrics registry).

use tracing_subscriber::EnvFilter;

/// Logs go to stderr so that CLI output on stdout stays pipeable; the level
/// comes from `RELAY_LOG` (e.g. `RELAY_LOG=debug`), default `info`.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("RELAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
