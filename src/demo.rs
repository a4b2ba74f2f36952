//! STUB: `relay demo` (owned by the scrape/serve work).

/// What `relay demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub listen_address: String,
    pub agent_address: String,
    pub series: usize,
    pub agent_only: bool,
}

/// Runs the synthetic agent (and, unless `agent_only`, relay against it).
pub async fn run(options: DemoOptions) -> Result<(), crate::run::RunError> {
    let _ = options;
    todo!()
}
