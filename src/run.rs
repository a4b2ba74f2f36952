//! The `relay run` lifecycle: targets from the config, one scrape loop each,
//! the remote-write WAL and queues, the server, and a clean stop on
//! SIGTERM/SIGINT (Kubernetes sends SIGTERM when the Pod stops): scraping
//! stops (with a last scrape and staleness markers when remote writing),
//! the queues flush for up to `relay.shutdown_timeout`, and relay exits 0;
//! what was not sent stays in the WAL for the next start.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::remote_write::{wal::WalError, RemoteWrite};
use crate::scrape::{self, store::Store, WalSink};
use crate::{serve, targets};

/// Why `relay run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot wait for signals: {0}")]
    Signal(std::io::Error),
    #[error("cannot open the remote-write WAL (relay.wal_dir): {0}")]
    Wal(#[from] WalError),
}

/// Scrapes every target, serves the result, and returns after SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    let listener = bind(&config.relay.listen_address).await?;
    run_on(config, listener, shutdown_signal()).await
}

/// Binds the listen address, naming it in the error.
pub async fn bind(address: &str) -> Result<TcpListener, RunError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Listen {
            address: address.to_owned(),
            source,
        })
}

/// Like [`run`] on an already bound listener, until `stop` completes.
pub async fn run_on(
    config: Config,
    listener: TcpListener,
    stop: impl std::future::Future<Output = Result<(), RunError>>,
) -> Result<(), RunError> {
    let mut jobs = Vec::new();
    for job in &config.scrape_configs {
        let (found, errors) = targets::from_config(job);
        for e in errors {
            tracing::error!(error = %e, "target skipped");
        }
        let job = Arc::new(job.clone());
        jobs.extend(found.into_iter().map(|t| (job.clone(), t)));
    }
    let store = Arc::new(Store::new(jobs.iter().map(|(_, t)| t.name()).collect()));
    let remote = RemoteWrite::start(&config, &store.telemetry.remote)?;
    if remote.is_some() {
        store.own_metrics_move();
    }
    let sink = remote.as_ref().map(|r| WalSink {
        wal: r.wal.clone(),
        highest_timestamp: store.telemetry.remote.highest_timestamp.clone(),
        out_of_order: store.telemetry.remote.wal_out_of_order.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(address = %address, targets = jobs.len(), remote_write = config.remote_write.len(), "relay is serving /metrics");
    let server = tokio::spawn(serve::serve(listener, store.clone(), server_stop_rx));
    let mut scrapers = Vec::new();
    for (index, (job, target)) in jobs.into_iter().enumerate() {
        tracing::info!(target = %target.name(), url = %target.url, interval = ?target.interval, "scraping");
        scrapers.push(tokio::spawn(scrape::run_target(
            index,
            job,
            target,
            store.clone(),
            sink.clone(),
            stop_rx.clone(),
        )));
    }
    let result = stop.await;
    let stopping = Instant::now();
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for task in scrapers {
        let _ = task.await;
    }
    if let Some(remote) = remote {
        let budget = config.relay.shutdown_timeout.as_std();
        remote
            .shutdown(budget.saturating_sub(stopping.elapsed()))
            .await;
    }
    let _ = server_stop_tx.send(true);
    let _ = server.await;
    result
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() -> Result<(), RunError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r.map_err(RunError::Signal)?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.map_err(RunError::Signal)?;
    Ok(())
}
