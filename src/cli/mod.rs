//! Commands that sit on top of the library beside `main.rs`: they call into
//! `run` and the modules below it, and nothing imports them.

pub mod demo;
pub mod relabel;
