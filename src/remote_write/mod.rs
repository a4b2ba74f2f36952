//! Remote write 1.0 and 2.0: the protobuf messages, the on-disk WAL that every
//! sample goes through first, and one queue per `remote_write` entry that
//! tails the WAL from its checkpoint and sends snappy-compressed batches.
//!
//! Delivery is at least once: the checkpoint moves only after the receiver
//! acknowledged, so after a crash a restarted relay resends from it, and a
//! receiver takes an exact resend as a no-op.

pub mod encode;
pub mod encode_v2;
pub mod metrics;
pub mod queue;
pub mod send;
pub mod series;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RemoteWriteConfig;
use crate::plan::{Plan, Writer, WriterKey};
use crate::wal::{Wal, WalError};
use metrics::RemoteWriteMetrics;

/// The remote-write 1.0 messages, generated from `proto/remote.proto`.
#[allow(missing_docs, clippy::doc_markdown)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// The remote-write 2.0 messages, generated from `proto/write_v2.proto`
/// (relay writes them by hand; tests and the bench decode with these).
#[allow(missing_docs, clippy::doc_markdown, clippy::enum_variant_names)]
pub mod prompb_v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// The default name earlier releases gave an unnamed entry whose URL has a
/// password (the hash of the URL with it), so that an upgraded relay takes
/// over the checkpoint saved under it; None when it is the same name.
pub fn former_remote_name(config: &RemoteWriteConfig) -> Option<String> {
    let unnamed = config.name.as_ref().is_none_or(String::is_empty);
    let former = crate::config::short_hash(&config.url);
    (unnamed && former != config.remote_name()).then_some(former)
}

/// Renames the checkpoint an earlier release saved under `rw`'s former
/// default name (see [`former_remote_name`]) to its name now, unless a
/// queue of `names` (this config's or a running one) is called that.
fn adopt_former_checkpoint(
    dir: &std::path::Path,
    rw: &RemoteWriteConfig,
    names: &[String],
) -> Result<(), WalError> {
    let Some(former) = former_remote_name(rw).filter(|f| !names.contains(f)) else {
        return Ok(());
    };
    let name = rw.remote_name();
    if Wal::adopt_checkpoint(dir, &former, &name)? {
        tracing::info!(remote_name = %name, url = %rw.url_redacted(), "remote write checkpoint taken over from the queue's former default name (a hash of the URL with its password)");
    }
    Ok(())
}

/// The running WAL and queues.
pub struct RemoteWrite {
    pub wal: Arc<Wal>,
    queues: HashMap<String, QueueHandle>,
    metrics: RemoteWriteMetrics,
    syncer: JoinHandle<()>,
}

/// One queue's task, and what it was started from.
struct QueueHandle {
    key: WriterKey,
    task: JoinHandle<()>,
    abort: watch::Sender<bool>,
}

impl RemoteWrite {
    /// Opens the WAL and starts a queue per `remote_write` entry; None when
    /// there is none (no WAL is kept then).
    pub fn start(
        plan: &Plan,
        metrics: &RemoteWriteMetrics,
    ) -> Result<Option<RemoteWrite>, WalError> {
        let config = &plan.config;
        if plan.writers.is_empty() {
            return Ok(None);
        }
        let names: Vec<String> = plan.writers.iter().map(|w| w.name.clone()).collect();
        for w in &plan.writers {
            adopt_former_checkpoint(&config.relay.wal_dir, &w.config, &names)?;
        }
        let wal = Arc::new(Wal::open(
            &config.relay.wal_dir,
            config.relay.wal_max_size.0,
            &names,
            metrics.wal_dropped.clone(),
            metrics.wal_size.clone(),
        )?);
        // As the WAL applies it (at least 1 MiB): alerts compare the size with it.
        metrics
            .wal_max_size
            .set(i64::try_from(config.relay.wal_max_size.0.max(1 << 20)).unwrap_or(i64::MAX));
        let syncer = tokio::spawn(sync_every_second(wal.clone()));
        let mut remote = RemoteWrite {
            wal,
            queues: HashMap::new(),
            metrics: metrics.clone(),
            syncer,
        };
        let changes = remote.changes(plan);
        debug_assert!(changes.stop.is_empty());
        for writer in changes.start {
            remote.spawn(writer, changes.external.clone())?;
        }
        Ok(Some(remote))
    }

    /// Makes the queues match `config`'s entries: an unchanged entry keeps
    /// its queue (and its place in the WAL), a removed or changed one is
    /// stopped (its checkpoint saved), a new or changed one starts from its
    /// checkpoint.
    pub async fn reconcile(&mut self, plan: &Plan) -> Result<(), WalError> {
        let changes = self.changes(plan);
        for name in changes.stop {
            let Some(q) = self.queues.remove(&name) else {
                continue;
            };
            tracing::info!(remote_name = %name, "remote write queue stopping (config reload)");
            let _ = q.abort.send(true);
            let _ = q.task.await;
            self.wal.unregister(&name);
            self.metrics.status.remove_queue(&name);
        }
        let mut names: Vec<String> = plan.writers.iter().map(|w| w.name.clone()).collect();
        names.extend(self.queues.keys().cloned());
        for writer in changes.start {
            adopt_former_checkpoint(self.wal.dir(), &writer.config, &names)?;
            self.spawn(writer, changes.external.clone())?;
        }
        Ok(())
    }

    /// Which queues go and which come for `plan`: a queue whose writer's
    /// change key is unchanged keeps running.
    fn changes(&self, plan: &Plan) -> Changes {
        let external: Vec<(String, String)> = plan
            .config
            .global
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let wanted: HashMap<&str, &Arc<Writer>> =
            plan.writers.iter().map(|w| (w.name.as_str(), w)).collect();
        let stop: Vec<String> = self
            .queues
            .iter()
            .filter(|(name, q)| wanted.get(name.as_str()).is_none_or(|w| w.key != q.key))
            .map(|(name, _)| name.clone())
            .collect();
        let start = wanted
            .into_iter()
            .filter(|(name, _)| !self.queues.contains_key(*name) || stop.iter().any(|s| s == name))
            .map(|(_, w)| w.clone())
            .collect();
        Changes {
            stop,
            start,
            external,
        }
    }

    /// The queues running now, by `remote_name`.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.queues.keys().cloned().collect();
        names.sort();
        names
    }

    fn spawn(
        &mut self,
        writer: Arc<Writer>,
        external: Vec<(String, String)>,
    ) -> Result<(), WalError> {
        let (name, rw) = (writer.name.clone(), &writer.config);
        let start = self.wal.register(&name)?;
        tracing::info!(remote_name = %name, url = %rw.url_redacted(), segment = start.segment, offset = start.offset, wal = %self.wal.dir().display(), "remote write queue starting from its checkpoint");
        let (abort, abort_rx) = watch::channel(false);
        let metrics = self.metrics.queue(&name, &rw.url_redacted());
        let spec = queue::QueueSpec {
            remote_name: name.clone(),
            writer: writer.clone(),
            external_labels: external,
        };
        let task = tokio::spawn(queue::run(
            self.wal.clone(),
            spec,
            start,
            metrics,
            self.metrics.highest_timestamp.clone(),
            abort_rx,
        ));
        self.queues.insert(
            name,
            QueueHandle {
                key: writer.key.clone(),
                task,
                abort,
            },
        );
        Ok(())
    }

    /// After the last append: closes the WAL, lets the queues send what is
    /// left for up to `timeout`, then stops them; what was not sent stays in
    /// the WAL for the next start.
    pub async fn shutdown(self, timeout: Duration) {
        self.syncer.abort();
        self.wal.close();
        let (tasks, aborts): (Vec<_>, Vec<_>) =
            self.queues.into_values().map(|q| (q.task, q.abort)).unzip();
        let all = futures_join(tasks);
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => tracing::info!("remote write queues flushed"),
            _ = tokio::time::sleep(timeout) => {
                tracing::warn!(timeout = ?timeout, "remote write not flushed within relay.shutdown_timeout; the rest stays in the WAL for the next start");
                for abort in &aborts {
                    let _ = abort.send(true);
                }
                all.await;
            }
        }
    }
}

/// What a reload changes in the queues.
struct Changes {
    stop: Vec<String>,
    start: Vec<Arc<Writer>>,
    external: Vec<(String, String)>,
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
