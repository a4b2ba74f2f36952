//! What the status page and the JSON APIs (`/`, `/api/v1/targets`,
//! `/api/v1/status/*`) show, in one place: each target's last scrape, each
//! remote-write queue's state, the WAL's size against its cap, the config
//! and its last reload. The scrape loops and the queues write into it as
//! they go (a few fields per scrape or batch, never per sample); the server
//! reads it. Cardinality is not kept here: it is computed on request from
//! each target's series cache (see [`cardinality`] and
//! [`TargetStatus::postings`]).

pub mod cardinality;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot};

use cardinality::Postings;

/// A float gauge, as `prometheus_client` keeps one.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// A request for a target's series, answered by its scrape loop between
/// two scrapes.
pub type PostingsRequest = oneshot::Sender<Postings>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the status page and APIs read; one per `relay run`.
#[derive(Default)]
pub struct Status {
    targets: Mutex<BTreeMap<u64, Arc<TargetStatus>>>,
    queues: Mutex<BTreeMap<String, Arc<QueueStatus>>>,
    config: Mutex<ConfigStatus>,
    wal: Mutex<Option<WalStatus>>,
}

/// A target's health as Prometheus names it (`up`, `down`, `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// Its last scrape succeeded.
    Up,
    /// Its last scrape failed.
    Down,
}

impl Health {
    /// Prometheus's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What a target is, fixed for its scrape loop's life.
#[derive(Debug, Clone, Default)]
pub struct TargetInfo {
    /// The job (Prometheus's scrape pool).
    pub job: String,
    /// The scrape URL, its password redacted.
    pub url: String,
    /// The target labels after relabeling, sorted.
    pub labels: Vec<(String, String)>,
    /// The labels before relabeling (`__address__`, `__scheme__`, ...).
    pub discovered: Vec<(String, String)>,
    /// `scrape_interval` and `scrape_timeout` as resolved for it.
    pub interval: Duration,
    pub timeout: Duration,
}

/// How the last scrape went.
#[derive(Debug, Clone, Default)]
pub struct LastScrape {
    /// `up` or `down` (`unknown` before the first scrape).
    pub health: Health,
    /// When it began (None before the first).
    pub at: Option<SystemTime>,
    /// How long it took, fetch and processing.
    pub duration: Duration,
    /// `scrape_samples_scraped` and `scrape_samples_post_metric_relabeling`.
    pub samples_scraped: usize,
    pub samples_kept: usize,
    /// Series the target's cache holds from its last successful scrape.
    pub series: usize,
    /// Empty when it succeeded.
    pub error: String,
}

/// One target: what it is, how its last scrape went, and how to ask its
/// loop for its series.
pub struct TargetStatus {
    pub info: TargetInfo,
    last: Mutex<LastScrape>,
    asks: mpsc::Sender<PostingsRequest>,
}

impl TargetStatus {
    /// How its last scrape went.
    pub fn last(&self) -> LastScrape {
        lock(&self.last).clone()
    }

    /// Records a scrape's outcome.
    pub fn scraped(&self, last: LastScrape) {
        *lock(&self.last) = last;
    }

    /// The target's series by label, from its loop's cache; None when the
    /// loop did not answer within `wait` (a scrape in flight holds the
    /// cache) or is gone.
    pub async fn postings(&self, wait: Duration) -> Option<Postings> {
        let (reply, answer) = oneshot::channel();
        self.asks.try_send(reply).ok()?;
        tokio::time::timeout(wait, answer).await.ok()?.ok()
    }
}

/// One remote-write queue as the page shows it.
pub struct QueueStatus {
    /// Its `remote_name` (the `name` of the entry, or a hash of its URL).
    pub remote_name: String,
    /// The receiver's URL, its password redacted.
    pub url: String,
    /// The remote-write protocol version spoken.
    pub protocol: &'static str,
    shards: Gauge,
    oldest_unsent: FloatGauge,
    highest_sent: FloatGauge,
    pending: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
}

impl QueueStatus {
    /// A queue whose shards, oldest unsent sample's age and newest sent
    /// timestamp are the gauges it already keeps for its metrics.
    pub fn new(
        remote_name: &str,
        url: &str,
        shards: Gauge,
        oldest_unsent: FloatGauge,
        highest_sent: FloatGauge,
    ) -> Self {
        QueueStatus {
            remote_name: remote_name.to_owned(),
            url: url.to_owned(),
            protocol: "1.0",
            shards,
            oldest_unsent,
            highest_sent,
            pending: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Samples read from the WAL and not yet acknowledged.
    pub fn set_pending(&self, samples: u64) {
        self.pending.store(samples, Ordering::Relaxed);
    }

    /// A send failed (retried or rejected): shown until the next one.
    pub fn failed(&self, error: String) {
        *lock(&self.last_error) = Some((SystemTime::now(), error));
    }

    /// Shards sending now.
    pub fn shards(&self) -> i64 {
        self.shards.get()
    }

    /// Samples read from the WAL and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Seconds the oldest unacknowledged sample has waited (0: none).
    pub fn oldest_unsent_age(&self) -> f64 {
        self.oldest_unsent.get()
    }

    /// Timestamp (seconds) of the newest sample acknowledged (0: none yet).
    pub fn highest_sent(&self) -> f64 {
        self.highest_sent.get()
    }

    /// The last failed send, and when.
    pub fn last_error(&self) -> Option<(SystemTime, String)> {
        lock(&self.last_error).clone()
    }
}

/// A target relabeling dropped, as `droppedTargets` lists it.
#[derive(Debug, Clone, Default)]
pub struct DroppedTarget {
    /// The job whose `relabel_configs` dropped it.
    pub job: String,
    pub discovered: Vec<(String, String)>,
}

/// The running config and its last (re)load.
#[derive(Debug, Clone, Default)]
pub struct ConfigStatus {
    /// The config as YAML, secrets redacted (`/api/v1/status/config`).
    pub yaml: String,
    /// Every job's name, in config order (scrape pools, even empty ones).
    pub jobs: Vec<String>,
    pub dropped: Vec<DroppedTarget>,
    /// Whether the last (re)load succeeded, and when the last success was.
    pub last_reload_ok: bool,
    pub last_reload_success: Option<SystemTime>,
    /// When the last attempt was.
    pub last_reload: Option<SystemTime>,
}

/// The WAL's size against its cap.
#[derive(Clone)]
pub struct WalStatus {
    /// `relay.wal_dir` and `relay.wal_max_size`.
    pub dir: String,
    pub cap_bytes: u64,
    size: Gauge,
}

impl WalStatus {
    /// `size` is the gauge the WAL keeps of its bytes on disk.
    pub fn new(dir: String, cap_bytes: u64, size: Gauge) -> Self {
        WalStatus {
            dir,
            cap_bytes,
            size,
        }
    }

    /// Bytes of WAL segments on disk now.
    pub fn size_bytes(&self) -> u64 {
        u64::try_from(self.size.get()).unwrap_or(0)
    }
}

impl Status {
    /// Registers target `id`'s loop; its requests for series arrive on the
    /// receiver returned.
    pub fn add_target(
        &self,
        id: u64,
        info: TargetInfo,
    ) -> (Arc<TargetStatus>, mpsc::Receiver<PostingsRequest>) {
        let (asks, requests) = mpsc::channel(4);
        let target = Arc::new(TargetStatus {
            info,
            last: Mutex::new(LastScrape::default()),
            asks,
        });
        lock(&self.targets).insert(id, target.clone());
        (target, requests)
    }

    /// Target `id`'s loop ended.
    pub fn remove_target(&self, id: u64) {
        lock(&self.targets).remove(&id);
    }

    /// Every target, in the order their loops started.
    pub fn targets(&self) -> Vec<Arc<TargetStatus>> {
        lock(&self.targets).values().cloned().collect()
    }

    /// Registers a queue (replacing one of the same name).
    pub fn add_queue(&self, queue: Arc<QueueStatus>) {
        lock(&self.queues).insert(queue.remote_name.clone(), queue);
    }

    /// Queue `remote_name` stopped.
    pub fn remove_queue(&self, remote_name: &str) {
        lock(&self.queues).remove(remote_name);
    }

    /// Every queue, by name.
    pub fn queues(&self) -> Vec<Arc<QueueStatus>> {
        lock(&self.queues).values().cloned().collect()
    }

    /// The config that runs now (after a start or a successful reload).
    pub fn set_config(&self, yaml: String, jobs: Vec<String>, dropped: Vec<DroppedTarget>) {
        let mut config = lock(&self.config);
        config.yaml = yaml;
        config.jobs = jobs;
        config.dropped = dropped;
    }

    /// Records a (re)load's outcome.
    pub fn reloaded(&self, ok: bool) {
        let mut config = lock(&self.config);
        let now = SystemTime::now();
        config.last_reload = Some(now);
        config.last_reload_ok = ok;
        if ok {
            config.last_reload_success = Some(now);
        }
    }

    /// The running config and its last reload, as now.
    pub fn config(&self) -> ConfigStatus {
        lock(&self.config).clone()
    }

    /// The WAL that runs (None without remote write).
    pub fn set_wal(&self, wal: Option<WalStatus>) {
        *lock(&self.wal) = wal;
    }

    /// The WAL, when remote write runs.
    pub fn wal(&self) -> Option<WalStatus> {
        lock(&self.wal).clone()
    }
}

/// Seconds since the Unix epoch of `t` (0 before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
