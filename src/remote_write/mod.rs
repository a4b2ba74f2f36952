//! Remote write 1.0: the protobuf messages, the on-disk WAL that every
//! sample goes through first, and one queue per `remote_write` entry that
//! tails the WAL from its checkpoint and sends snappy-compressed batches.
//!
//! Delivery is at least once: the checkpoint moves only after the receiver
//! acknowledged, so after a crash a restarted relay resends from it, and a
//! receiver takes an exact resend as a no-op.

pub mod encode;
pub mod metrics;
pub mod queue;
pub mod send;
pub mod wal;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use metrics::RemoteWriteMetrics;
use wal::{Wal, WalError};

/// The remote-write 1.0 messages, generated from `proto/remote.proto`.
#[allow(missing_docs, clippy::doc_markdown)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// The `remote_name` label of an entry: its `name`, or as Prometheus does
/// without one, a short hash (here of the URL, so it survives reordering).
pub fn remote_name(config: &crate::config::RemoteWriteConfig) -> String {
    match &config.name {
        Some(name) if !name.is_empty() => name.clone(),
        _ => format!("{:x}", md5::compute(config.url.as_bytes()))[..6].to_owned(),
    }
}

/// The running WAL and queues.
pub struct RemoteWrite {
    pub wal: Arc<Wal>,
    queues: Vec<JoinHandle<()>>,
    syncer: JoinHandle<()>,
    abort: watch::Sender<bool>,
}

impl RemoteWrite {
    /// Opens the WAL and starts a queue per `remote_write` entry; None when
    /// there is none (no WAL is kept then).
    pub fn start(
        config: &Config,
        metrics: &RemoteWriteMetrics,
    ) -> Result<Option<RemoteWrite>, WalError> {
        if config.remote_write.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = config.remote_write.iter().map(remote_name).collect();
        let wal = Arc::new(Wal::open(
            &config.relay.wal_dir,
            config.relay.wal_max_size.0,
            &names,
            metrics.wal_dropped.clone(),
            metrics.wal_size.clone(),
        )?);
        let checkpoints = names.iter().map(|n| wal.checkpoint(n)).collect::<Vec<_>>();
        let (abort, abort_rx) = watch::channel(false);
        let external_labels: Vec<(String, String)> = config
            .global
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut queues = Vec::new();
        for ((rw, name), start) in config.remote_write.iter().zip(names).zip(checkpoints) {
            tracing::info!(remote_name = %name, url = %rw.url, segment = start.segment, offset = start.offset, wal = %config.relay.wal_dir.display(), "remote write queue starting from its checkpoint");
            let spec = queue::QueueSpec {
                remote_name: name.clone(),
                config: rw.clone(),
                external_labels: external_labels.clone(),
            };
            queues.push(tokio::spawn(queue::run(
                wal.clone(),
                spec,
                start,
                metrics.queue(&name, &rw.url),
                metrics.highest_timestamp.clone(),
                abort_rx.clone(),
            )));
        }
        let syncer = tokio::spawn(sync_every_second(wal.clone()));
        Ok(Some(RemoteWrite {
            wal,
            queues,
            syncer,
            abort,
        }))
    }

    /// After the last append: closes the WAL, lets the queues send what is
    /// left for up to `timeout`, then stops them; what was not sent stays in
    /// the WAL for the next start.
    pub async fn shutdown(self, timeout: Duration) {
        self.syncer.abort();
        self.wal.close();
        let all = futures_join(self.queues);
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => tracing::info!("remote write queues flushed"),
            _ = tokio::time::sleep(timeout) => {
                tracing::warn!(timeout = ?timeout, "remote write not flushed within relay.shutdown_timeout; the rest stays in the WAL for the next start");
                let _ = self.abort.send(true);
                all.await;
            }
        }
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// fsyncs the active segment every second, off the scrape path: a node
/// crash loses at most about a second of samples; `kill -9` loses none.
async fn sync_every_second(wal: Arc<Wal>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let w = wal.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || w.sync()).await {
            tracing::error!(error = %e, "cannot sync the WAL");
        }
    }
}
