//! Remote write's own metrics, under the names and labels Prometheus uses
//! (`remote_name`, `url`), so existing remote-write dashboards and the
//! Prometheus mixin's alerts (PrometheusRemoteWriteBehind,
//! PrometheusRemoteWriteDesiredShards) work unchanged; plus the WAL's.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::status::{QueueStatus, Status};

type QueueLabels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn batch_histogram() -> Histogram {
    // Prometheus's DefBuckets plus 25, 60, 120 and 300 seconds.
    Histogram::new(
        [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0,
        ]
        .into_iter(),
    )
}

/// The families, registered once; each queue takes its own series.
#[derive(Clone)]
pub struct RemoteWriteMetrics {
    samples: Family<QueueLabels, Counter>,
    failed: Family<QueueLabels, Counter>,
    retried: Family<QueueLabels, Counter>,
    dropped: Family<QueueLabels, Counter>,
    redelivered: Family<QueueLabels, Counter>,
    bytes: Family<QueueLabels, Counter>,
    batch_duration: Family<QueueLabels, Histogram, fn() -> Histogram>,
    shards: Family<QueueLabels, Gauge>,
    shards_desired: Family<QueueLabels, FloatGauge>,
    shards_max: Family<QueueLabels, Gauge>,
    shards_min: Family<QueueLabels, Gauge>,
    highest_sent: Family<QueueLabels, FloatGauge>,
    oldest_unsent: Family<QueueLabels, FloatGauge>,
    protocol: Family<QueueLabels, Gauge>,
    not_written: Family<QueueLabels, Counter>,
    /// Newest sample timestamp written to the WAL (no labels, as Prometheus).
    pub highest_timestamp: FloatGauge,
    pub wal_size: Gauge,
    /// `relay.wal_max_size` as the WAL applies it: the size's cap, for alerts.
    pub wal_max_size: Gauge,
    pub wal_dropped: Counter,
    pub wal_out_of_order: Counter,
    pub wal_write_failed: Counter,
    /// Where each queue's state is shown (the status page).
    pub status: Arc<Status>,
}

impl RemoteWriteMetrics {
    /// The families, registered in `registry`; queues show in `status`.
    pub fn register(registry: &mut Registry, status: Arc<Status>) -> Self {
        let m = RemoteWriteMetrics {
            status,
            samples: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            dropped: Family::default(),
            redelivered: Family::default(),
            bytes: Family::default(),
            batch_duration: Family::new_with_constructor(batch_histogram),
            shards: Family::default(),
            shards_desired: Family::default(),
            shards_max: Family::default(),
            shards_min: Family::default(),
            highest_sent: Family::default(),
            oldest_unsent: Family::default(),
            protocol: Family::default(),
            not_written: Family::default(),
            highest_timestamp: FloatGauge::default(),
            wal_size: Gauge::default(),
            wal_max_size: Gauge::default(),
            wal_dropped: Counter::default(),
            wal_out_of_order: Counter::default(),
            wal_write_failed: Counter::default(),
        };
        let p = "prometheus_remote_storage_";
        let r = registry;
        r.register(
            format!("{p}samples"),
            "Total number of samples sent to remote storage",
            m.samples.clone(),
        );
        r.register(
            format!("{p}samples_failed"),
            "Total number of samples which failed on send to remote storage, non-recoverable errors",
            m.failed.clone(),
        );
        r.register(
            format!("{p}samples_retried"),
            "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable",
            m.retried.clone(),
        );
        r.register(
            format!("{p}samples_dropped"),
            "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling or unintentionally because of an unknown reference ID",
            m.dropped.clone(),
        );
        r.register(
            "relay_remote_write_redelivered_samples",
            "Samples resent after a restart that the receiver already had (it refused them as out of order): delivered, not failed",
            m.redelivered.clone(),
        );
        r.register(
            format!("{p}bytes"),
            "The total number of bytes of data (not metadata) sent by the queue after compression",
            m.bytes.clone(),
        );
        r.register(
            format!("{p}sent_batch_duration_seconds"),
            "Duration of send calls to the remote storage",
            m.batch_duration.clone(),
        );
        r.register(
            format!("{p}shards"),
            "The number of shards used for parallel sending to the remote storage",
            m.shards.clone(),
        );
        r.register(
            format!("{p}shards_desired"),
            "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out",
            m.shards_desired.clone(),
        );
        r.register(
            format!("{p}shards_max"),
            "The maximum number of shards that the queue is allowed to run",
            m.shards_max.clone(),
        );
        r.register(
            format!("{p}shards_min"),
            "The minimum number of shards that the queue is allowed to run",
            m.shards_min.clone(),
        );
        r.register(
            format!("{p}queue_highest_sent_timestamp_seconds"),
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch",
            m.highest_sent.clone(),
        );
        r.register(
            format!("{p}highest_timestamp_in_seconds"),
            "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch",
            m.highest_timestamp.clone(),
        );
        r.register(
            "relay_wal_size_bytes",
            "Bytes of WAL segments on disk",
            m.wal_size.clone(),
        );
        r.register(
            "relay_wal_max_size_bytes",
            "relay.wal_max_size as applied (at least 1 MiB): past it the oldest segment is dropped",
            m.wal_max_size.clone(),
        );
        r.register(
            "relay_wal_dropped_samples",
            "Samples dropped from the WAL over relay.wal_max_size before every queue had sent them",
            m.wal_dropped.clone(),
        );
        r.register(
            "relay_wal_out_of_order_samples",
            "Samples not written to the WAL because the target's own timestamp was not newer than the series' last one (a receiver would reject the batch)",
            m.wal_out_of_order.clone(),
        );
        r.register(
            "relay_wal_write_failed_samples",
            "Samples of scrapes that could not be written to the WAL (disk full, I/O error): lost, and logged",
            m.wal_write_failed.clone(),
        );
        r.register(
            "relay_wal_oldest_unsent_sample_age_seconds",
            "Age of the oldest sample read from the WAL and not yet acknowledged by the receiver, by queue",
            m.oldest_unsent.clone(),
        );
        r.register(
            "relay_remote_write_protocol",
            "1 on the remote-write protocol a queue speaks now (protocol 1.0 or 2.0), 0 on one it configured but fell back from (a receiver that cannot read 2.0)",
            m.protocol.clone(),
        );
        r.register(
            "relay_remote_write_samples_not_written",
            "Samples, histograms and exemplars a 2.0 receiver acknowledged but said it did not write (its X-Prometheus-Remote-Write-*-Written headers counted fewer than were sent)",
            m.not_written.clone(),
        );
        m
    }

    /// The series of one queue (`url` redacted), shown on the status page.
    pub fn queue(&self, remote_name: &str, url: &str) -> QueueMetrics {
        let labels = vec![
            ("remote_name".to_owned(), remote_name.to_owned()),
            ("url".to_owned(), url.to_owned()),
        ];
        let shards = self.shards.get_or_create(&labels).clone();
        let oldest_unsent = self.oldest_unsent.get_or_create(&labels).clone();
        let highest_sent = self.highest_sent.get_or_create(&labels).clone();
        let status = Arc::new(QueueStatus::new(
            remote_name,
            url,
            shards.clone(),
            oldest_unsent.clone(),
            highest_sent.clone(),
        ));
        self.status.add_queue(status.clone());
        QueueMetrics {
            status,
            samples: self.samples.get_or_create(&labels).clone(),
            failed: self.failed.get_or_create(&labels).clone(),
            retried: self.retried.get_or_create(&labels).clone(),
            dropped: self.dropped.get_or_create(&labels).clone(),
            redelivered: self.redelivered.get_or_create(&labels).clone(),
            bytes: self.bytes.get_or_create(&labels).clone(),
            batch_duration: self.batch_duration.get_or_create(&labels).clone(),
            shards,
            shards_desired: self.shards_desired.get_or_create(&labels).clone(),
            shards_max: self.shards_max.get_or_create(&labels).clone(),
            shards_min: self.shards_min.get_or_create(&labels).clone(),
            highest_sent,
            oldest_unsent,
            not_written: self.not_written.get_or_create(&labels).clone(),
            protocol: Arc::new(ProtocolGauges {
                family: self.protocol.clone(),
                labels,
            }),
        }
    }
}

/// One queue's series.
#[derive(Clone)]
pub struct QueueMetrics {
    /// The queue on the status page (pending samples, last error).
    pub status: Arc<QueueStatus>,
    pub samples: Counter,
    pub failed: Counter,
    pub retried: Counter,
    pub dropped: Counter,
    pub redelivered: Counter,
    pub bytes: Counter,
    pub batch_duration: Histogram,
    pub shards: Gauge,
    pub shards_desired: FloatGauge,
    pub shards_max: Gauge,
    pub shards_min: Gauge,
    pub highest_sent: FloatGauge,
    pub oldest_unsent: FloatGauge,
    /// Samples a 2.0 receiver said it did not write.
    pub not_written: Counter,
    /// `relay_remote_write_protocol` of the queue.
    pub protocol: Arc<ProtocolGauges>,
}

/// The queue's `relay_remote_write_protocol` series: one per protocol it
/// has spoken, 1 on the one in use.
pub struct ProtocolGauges {
    family: Family<QueueLabels, Gauge>,
    labels: QueueLabels,
}

impl ProtocolGauges {
    /// Marks `now` ("1.0" or "2.0") as in use and `before` (if any) as left.
    pub fn set(&self, now: &str, before: Option<&str>) {
        let series = |protocol: &str| {
            let mut labels = self.labels.clone();
            labels.push(("protocol".to_owned(), protocol.to_owned()));
            self.family.get_or_create(&labels).clone()
        };
        if let Some(before) = before {
            series(before).set(0);
        }
        series(now).set(1);
    }
}
