//! STUB: the `relay run` lifecycle (owned by the scrape/serve work).

use crate::config::Config;

/// Why `relay run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
}

/// Scrapes every target, serves the result, and returns after SIGTERM/SIGINT
/// once in-flight work is done.
pub async fn run(config: Config) -> Result<(), RunError> {
    let _ = config;
    todo!()
}
