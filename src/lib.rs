//! relay: a Prometheus-compatible metrics relay for the Kubernetes native
//! sidecar slot. The binary (`src/main.rs`) only wires these modules.

pub mod auth;
pub mod buffers;
pub mod cli;
pub mod clock;
pub mod config;
pub mod exposition;
pub mod gen;
pub mod hostport;
pub mod http;
pub mod logging;
pub mod plan;
pub mod readiness;
pub mod relabel;
pub mod remote_write;
pub mod rest;
pub mod run;
pub mod scrape;
pub mod serve;
pub mod sigv4;
pub mod snapshot;
pub mod status;
pub mod storage;
pub mod targets;
pub mod telemetry;
pub mod tls;
pub mod varint;
pub mod wal;
pub mod web;
