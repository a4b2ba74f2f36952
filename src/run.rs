//! The `relay run` lifecycle: targets from the config, one scrape loop each,
//! the remote-write WAL and queues, the server, live config reloads, and a
//! clean stop on SIGTERM/SIGINT (Kubernetes sends SIGTERM when the Pod
//! stops): scraping stops (with a last scrape and staleness markers when
//! remote writing), the queues flush for up to `relay.shutdown_timeout`, and
//! relay exits 0; what was not sent stays in the WAL for the next start.
//!
//! A reload (SIGHUP, `POST /-/reload`, or the config file's content
//! changing, as when Kubernetes swaps a ConfigMap's `..data` symlink)
//! validates the new file first and keeps the old config when it is
//! invalid. A target whose job and labels did not change keeps its scrape
//! loop, series cache and staleness state; a remote_write entry that did not
//! change keeps its queue and WAL position.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, Overrides};
use crate::exposition::Format;
use crate::plan::{self, Job, Plan, PlanError, TargetKey};
use crate::readiness::Readiness;
use crate::remote_write::RemoteWrite;
use crate::scrape::demand::Demand;
use crate::scrape::{self, pipeline, Outlets, Stop};
use crate::serve::{self, ReloadRequest, Sources};
use crate::snapshot::{Latest, OwnMetrics, Rendered, View};
use crate::status::{DroppedTarget, WalStatus};
use crate::storage::{self, Storage};
use crate::targets::Target;
use crate::telemetry::Telemetry;
use crate::wal::{AppendMetrics, Wal, WalError, WalStorage};
use crate::web::Web;

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

/// Why a reload was refused (the running config stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{path}: {source}")]
    Invalid { path: String, source: PlanError },
    #[error("{0} changed: that needs a restart of relay; the running config stays")]
    NeedsRestart(&'static str),
    #[error("cannot open the remote-write WAL (relay.wal_dir): {0}")]
    Wal(#[from] WalError),
}

/// Where the running config came from, so it can be read again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub path: PathBuf,
    pub overrides: Overrides,
}

/// How often the config file is read to see whether its content changed
/// (a ConfigMap update reaches the Pod within a minute or so anyway).
const WATCH_EVERY: Duration = Duration::from_secs(3);

/// Scrapes every target, serves the result, reloads on request, and returns
/// after SIGTERM/SIGINT.
pub async fn run(
    plan: Plan,
    source: Option<ConfigSource>,
    web: Arc<Web>,
    options: serve::Options,
) -> Result<(), RunError> {
    let listener = bind(&plan.config.relay.listen_address).await?;
    run_on(plan, listener, shutdown_signal(), source, web, options).await
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

/// Like [`run`] on an already bound listener, until `stop` completes;
/// without a `source` there is nothing to reload from. A reload leaves `web`
/// alone: it reads its file again on every request anyway.
pub async fn run_on(
    plan: Plan,
    listener: TcpListener,
    stop: impl std::future::Future<Output = Result<(), RunError>>,
    source: Option<ConfigSource>,
    web: Arc<Web>,
    options: serve::Options,
) -> Result<(), RunError> {
    // Relay's own metrics, handed to whoever counts or serves them.
    let telemetry = Arc::new(Telemetry::new());
    let outlets = Outlets {
        latest: Arc::new(Latest::new(own_metrics(telemetry.clone()))),
        demand: Arc::new(Demand::new()),
        telemetry,
    };
    let readiness = Arc::new(Readiness::default());
    let sources = Sources {
        status: outlets.telemetry.status.clone(),
        latest: outlets.latest.clone(),
        demand: outlets.demand.clone(),
        readiness: readiness.clone(),
    };
    let mut running = Running::start(plan, outlets.clone())?;
    web.count_checks(outlets.telemetry.web_auth_checks.clone());
    let (server_stop_tx, server_stop_rx) = watch::channel(false);
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(address = %address, targets = running.targets.len(), remote_write = running.config.remote_write.len(), tls = web.tls(), basic_auth = web.basic_auth(), "relay is serving /metrics");
    if merges_replicas(
        &running.config,
        std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
    ) {
        tracing::warn!(
            external_labels = ?running.config.global.external_labels,
            "relay runs in Kubernetes and serves /metrics with no per-Pod external label: every replica serves the same job and instance (localhost), so a Prometheus scraping with honor_labels: true merges the replicas' series into one; add global.external_labels pod: '${{POD_NAME}}' and namespace: '${{POD_NAMESPACE}}' (from the Downward API; relay gen writes them)"
        );
    }
    let server = tokio::spawn(serve::serve(
        listener,
        sources,
        server_stop_rx,
        source.as_ref().map(|_| reload_tx),
        web,
        options,
    ));
    let trimmer = tokio::spawn(async {
        let mut every = tokio::time::interval(crate::buffers::TRIM_EVERY);
        loop {
            every.tick().await;
            crate::buffers::trim_heap();
        }
    });
    // Startup's code leaves memory once relay is at rest, and a reload's
    // after it.
    let reloaded = Arc::new(tokio::sync::Notify::new());
    let rest = tokio::spawn(crate::rest::keep(
        outlets.telemetry.status.clone(),
        {
            let newest = outlets.telemetry.remote.highest_timestamp.clone();
            move || newest.get()
        },
        reloaded.clone(),
    ));
    let mut hangup = hangup_signal()?;
    let mut last_seen = source.as_ref().and_then(|s| std::fs::read(&s.path).ok());
    let mut watch = tokio::time::interval(WATCH_EVERY);
    tokio::pin!(stop);
    let result = loop {
        tokio::select! {
            r = &mut stop => break r,
            _ = hangup.recv(), if source.is_some() => {
                if let Some(source) = &source {
                    tracing::info!("SIGHUP: reloading the config");
                    let _ = running.reload_from(source).await;
                    reloaded.notify_one();
                }
            }
            Some(reply) = reload_rx.recv() => {
                if let Some(source) = &source {
                    tracing::info!("POST /-/reload: reloading the config");
                    let _ = reply.send(running.reload_from(source).await.map_err(|e| e.to_string()));
                    reloaded.notify_one();
                }
            }
            _ = watch.tick(), if source.is_some() => {
                let Some(source) = &source else { continue };
                let now = std::fs::read(&source.path).ok();
                if now.is_some() && now != last_seen {
                    last_seen = now;
                    tracing::info!(file = %source.path.display(), "config file changed: reloading");
                    let _ = running.reload_from(source).await;
                    reloaded.notify_one();
                } else if now.is_none() && last_seen.is_some() {
                    // Deleted or made unreadable: said once (the reload
                    // fails naming why, and the reload metric turns 0); the
                    // running config stays until the file is back.
                    last_seen = None;
                    tracing::warn!(file = %source.path.display(), "config file can no longer be read");
                    let _ = running.reload_from(source).await;
                    reloaded.notify_one();
                }
            }
        }
    };
    tracing::info!("stopping");
    readiness.stop();
    trimmer.abort();
    rest.abort();
    running.shutdown(Instant::now()).await;
    let _ = server_stop_tx.send(true);
    let _ = server.await;
    result
}

/// A scrape loop that runs.
struct RunningTarget {
    id: u64,
    /// `job/instance`: a reload that keeps it replaces the loop quietly.
    name: String,
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
}

/// The running config and everything started from it.
struct Running {
    config: Config,
    /// The snapshot, the scheduler of scrapes for GETs and the telemetry.
    outlets: Outlets,
    /// The storage the scrape loops append to besides the snapshot, and the
    /// WAL it is (None without remote write).
    durable: storage::Shared,
    durable_wal: Option<Arc<Wal>>,
    remote: Option<RemoteWrite>,
    /// With their change keys: a target whose key is unchanged keeps running.
    targets: Vec<(TargetKey, RunningTarget)>,
    next_id: u64,
}

/// The targets of every job, with their keys; logs the ones relabeling
/// made invalid (they are skipped).
fn targets_of(plan: &Plan) -> Vec<(TargetKey, Arc<Job>, Target)> {
    let mut out = Vec::new();
    for job in &plan.jobs {
        for e in &job.refused {
            tracing::error!(error = %e, "target skipped");
        }
        out.extend(
            job.targets
                .iter()
                .map(|t| (job.target_key(t), job.clone(), t.clone())),
        );
    }
    out
}

impl Running {
    fn start(plan: Plan, outlets: Outlets) -> Result<Running, RunError> {
        let remote = RemoteWrite::start(&plan, &outlets.telemetry.remote)?;
        let mut running = Running {
            config: plan.config.clone(),
            outlets,
            durable: storage::Shared::default(),
            durable_wal: None,
            remote,
            targets: Vec::new(),
            next_id: 0,
        };
        running.set_sink();
        running.sync_targets(&plan);
        running.show_config(&plan);
        running.outlets.telemetry.reloaded(true);
        Ok(running)
    }

    /// Points the scrape loops at the WAL while there is remote write.
    fn set_sink(&mut self) {
        let wal = self
            .remote
            .as_ref()
            .filter(|_| !self.config.remote_write.is_empty())
            .map(|r| r.wal.clone());
        let same = match (&wal, &self.durable_wal) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        let telemetry = &self.outlets.telemetry;
        // A new storage makes every target's appender anew (each describes
        // its series again): only when the WAL itself changed.
        if !same {
            let metrics = AppendMetrics {
                highest_timestamp: telemetry.remote.highest_timestamp.clone(),
                out_of_order: telemetry.remote.wal_out_of_order.clone(),
                write_failed: telemetry.remote.wal_write_failed.clone(),
            };
            self.durable.set(
                wal.clone()
                    .map(|wal| Arc::new(WalStorage { wal, metrics }) as Arc<dyn Storage>),
            );
            self.durable_wal = wal;
        }
        let remote_writes = self.durable_wal.is_some();
        telemetry.remote_write_runs(remote_writes);
        self.outlets.latest.set_view(View::of(&self.config));
        // Serve only: targets are scraped for each GET, not on an interval.
        self.outlets.demand.set_on_demand(!remote_writes);
    }

    /// Stops the scrape loops `config` no longer has and starts the new
    /// ones. A removed target writes its staleness markers and leaves the
    /// snapshot; a target whose job changed is replaced by a new loop
    /// without them (the new loop carries its series on).
    fn sync_targets(&mut self, plan: &Plan) {
        let wanted = targets_of(plan);
        let names: std::collections::HashSet<String> =
            wanted.iter().map(|(_, _, t)| t.name()).collect();
        let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.targets)
            .into_iter()
            .partition(|(key, _)| wanted.iter().any(|(k, _, _)| k == key));
        self.targets = kept;
        for (_, t) in gone {
            let how = if names.contains(&t.name) {
                Stop::Replaced
            } else {
                Stop::Finish
            };
            let _ = t.stop.send(how);
            let outlets = self.outlets.clone();
            tokio::spawn(async move {
                let _ = t.task.await;
                outlets.telemetry.status.remove_target(t.id);
                outlets.latest.remove(t.id);
                outlets.demand.remove(t.id);
            });
        }
        for (key, job, target) in wanted {
            if self.targets.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            tracing::info!(target = %target.name(), url = %target.url, interval = ?target.interval, "scraping");
            let name = target.name();
            self.outlets.latest.add(id);
            self.outlets.demand.add(id, name.clone());
            let (stop, stop_rx) = watch::channel(Stop::Run);
            let task = tokio::spawn(scrape::run_target(
                id,
                job,
                target,
                self.outlets.clone(),
                self.durable.clone(),
                stop_rx,
                scrape::offset_seed(&self.config.global.external_labels),
            ));
            self.targets.push((
                key,
                RunningTarget {
                    id,
                    name,
                    stop,
                    task,
                },
            ));
        }
    }

    /// Reads, validates and applies the config file; records the outcome
    /// in `relay_config_last_reload_successful` and logs a refusal.
    async fn reload_from(&mut self, source: &ConfigSource) -> Result<(), ReloadError> {
        let result = match plan::load(&source.path, &source.overrides) {
            Ok((plan, warnings)) => {
                for w in &warnings {
                    tracing::warn!(file = %source.path.display(), "{w}");
                }
                self.apply(plan).await
            }
            Err(source_err) => Err(ReloadError::Invalid {
                path: source.path.display().to_string(),
                source: source_err,
            }),
        };
        match &result {
            Ok(()) => {
                tracing::info!(file = %source.path.display(), targets = self.targets.len(), "config reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; the running config stays")
            }
        }
        self.outlets.telemetry.reloaded(result.is_ok());
        result
    }

    async fn apply(&mut self, plan: Plan) -> Result<(), ReloadError> {
        let (old, fresh) = (&self.config.relay, &plan.config.relay);
        if old.listen_address != fresh.listen_address {
            return Err(ReloadError::NeedsRestart("relay.listen_address"));
        }
        if old.wal_dir != fresh.wal_dir {
            return Err(ReloadError::NeedsRestart("relay.wal_dir"));
        }
        if old.wal_max_size != fresh.wal_max_size {
            return Err(ReloadError::NeedsRestart("relay.wal_max_size"));
        }
        match &mut self.remote {
            Some(remote) => remote.reconcile(&plan).await?,
            None => self.remote = RemoteWrite::start(&plan, &self.outlets.telemetry.remote)?,
        }
        self.config = plan.config.clone();
        self.set_sink();
        self.sync_targets(&plan);
        self.show_config(&plan);
        Ok(())
    }

    /// Shows the config that runs on the status page: as YAML with its
    /// secrets redacted, its jobs and the targets relabeling dropped, and
    /// the WAL with its cap.
    fn show_config(&self, plan: &Plan) {
        let status = &self.outlets.telemetry.status;
        let mut dropped = Vec::new();
        for job in &plan.jobs {
            for labels in crate::targets::dropped(&job.config, &job.target_relabel) {
                dropped.push(DroppedTarget {
                    job: job.config.job_name.clone(),
                    discovered: labels
                        .iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect(),
                });
            }
        }
        let jobs = plan
            .jobs
            .iter()
            .map(|j| j.config.job_name.clone())
            .collect();
        status.set_config(crate::config::to_redacted_yaml(&plan.config), jobs, dropped);
        status.set_wal(self.durable_wal.as_ref().map(|wal| {
            WalStatus::new(
                wal.dir().display().to_string(),
                plan.config.relay.wal_max_size.0,
                self.outlets.telemetry.remote.wal_size.clone(),
            )
        }));
    }

    /// Stops scraping (each loop's last scrape and staleness markers), then
    /// flushes remote write for what is left of `relay.shutdown_timeout`.
    ///
    /// The last scrapes get at most half of the budget: a target that hangs
    /// loses its last scrape and staleness markers, not the flush, and relay
    /// exits within `shutdown_timeout` (Kubernetes kills it after its grace).
    async fn shutdown(self, stopping: Instant) {
        let budget = self.config.relay.shutdown_timeout.as_std();
        for (_, t) in &self.targets {
            let _ = t.stop.send(Stop::Finish);
        }
        let scrapes_until = tokio::time::Instant::from_std(stopping + budget / 2);
        for (_, mut t) in self.targets {
            if tokio::time::timeout_at(scrapes_until, &mut t.task)
                .await
                .is_err()
            {
                tracing::warn!(target = %t.name, "last scrape at shutdown did not finish within half of relay.shutdown_timeout; stopped without it");
                t.task.abort();
            }
        }
        if let Some(remote) = self.remote {
            remote
                .shutdown(budget.saturating_sub(stopping.elapsed()))
                .await;
        }
    }
}

/// Whether replicas' served series would merge at a central Prometheus:
/// relay runs in Kubernetes (`in_kubernetes`: `KUBERNETES_SERVICE_HOST` is
/// set; /metrics is always served) and no external label value came from
/// the environment (the way a value differs per Pod; basic auth changes
/// nothing, the central scraper has the password).
fn merges_replicas(config: &Config, in_kubernetes: bool) -> bool {
    in_kubernetes && !config.global.external_labels_from_env
}

/// Relay's own metrics as the snapshot merges them: prometheus-client
/// writes OpenMetrics, re-rendered here as text 0.0.4 blocks.
pub fn own_metrics(telemetry: Arc<Telemetry>) -> OwnMetrics {
    Box::new(move || {
        pipeline::convert(
            telemetry.openmetrics().as_bytes(),
            Format::OpenMetrics,
            Format::Text,
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "relay's own metrics did not parse; leaving them out");
            Rendered::default()
        })
    })
}

/// SIGHUP, which asks for a reload (never fires where there is none).
struct Hangup {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}

fn hangup_signal() -> Result<Hangup, RunError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let signal = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
        Ok(Hangup { signal })
    }
    #[cfg(not(unix))]
    Ok(Hangup {})
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
