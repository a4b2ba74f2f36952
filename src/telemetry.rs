//! The relay's own observability: the `relay_*` metrics that are served
//! beside the scraped ones, so a sidecar's health is visible in the same
//! Prometheus that collects the app. Log setup is in `logging`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type JobLabels = Vec<(String, String)>;

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The `relay_*` metrics. Per-job series carry `scrape_job`, not `job`
/// (as Prometheus's own `prometheus_target_*`): a scraper with
/// `honor_labels: true` would otherwise file them under the app's job.
pub struct Telemetry {
    registry: Registry,
    scrapes: Family<JobLabels, Counter>,
    failures: Family<JobLabels, Counter>,
    bytes: Family<JobLabels, Counter>,
    samples: Family<JobLabels, Counter>,
    duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    /// Remote write's metrics (Prometheus's names) and the WAL's.
    pub remote: crate::remote_write::metrics::RemoteWriteMetrics,
    reload_ok: Gauge,
    reload_time: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let build = Family::<JobLabels, Gauge>::default();
        build
            .get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
            .set(1);
        registry.register("relay_build_info", "relay's version; always 1", build);
        let scrapes = Family::<JobLabels, Counter>::default();
        registry.register(
            "relay_scrapes",
            "Scrapes attempted, by scrape_job",
            scrapes.clone(),
        );
        let failures = Family::<JobLabels, Counter>::default();
        registry.register(
            "relay_scrape_failures",
            "Scrapes that gave up 0, by scrape_job and reason",
            failures.clone(),
        );
        let bytes = Family::<JobLabels, Counter>::default();
        registry.register(
            "relay_scraped_bytes",
            "Body bytes read from targets, uncompressed",
            bytes.clone(),
        );
        let samples = Family::<JobLabels, Counter>::default();
        registry.register(
            "relay_samples_scraped",
            "Samples read from targets, before relabeling",
            samples.clone(),
        );
        let duration =
            Family::<JobLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        registry.register(
            "relay_scrape_duration_seconds",
            "How long scrapes took, by scrape_job",
            duration.clone(),
        );
        let remote = crate::remote_write::metrics::RemoteWriteMetrics::register(&mut registry);
        let reload_ok = Gauge::default();
        registry.register(
            "relay_config_last_reload_successful",
            "Whether the last config (re)load succeeded",
            reload_ok.clone(),
        );
        let reload_time = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "relay_config_last_reload_success_timestamp_seconds",
            "When the config was last (re)loaded successfully",
            reload_time.clone(),
        );
        Telemetry {
            remote,
            reload_ok,
            reload_time,
            registry,
            scrapes,
            failures,
            bytes,
            samples,
            duration,
        }
    }

    /// Records one scrape; `failure` is the reason word when it failed.
    pub fn scrape(
        &self,
        job: &str,
        seconds: f64,
        bytes: usize,
        samples: usize,
        failure: Option<&str>,
    ) {
        let job_labels = vec![("scrape_job".to_owned(), job.to_owned())];
        self.scrapes.get_or_create(&job_labels).inc();
        self.bytes.get_or_create(&job_labels).inc_by(bytes as u64);
        self.samples
            .get_or_create(&job_labels)
            .inc_by(samples as u64);
        self.duration.get_or_create(&job_labels).observe(seconds);
        if let Some(reason) = failure {
            let labels = vec![
                ("scrape_job".to_owned(), job.to_owned()),
                ("reason".to_owned(), reason.to_owned()),
            ];
            self.failures.get_or_create(&labels).inc();
        }
    }

    /// Records a config (re)load's outcome, as Prometheus does its own.
    pub fn reloaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_time.set(crate::run::now_seconds());
        }
    }

    /// The metrics as an OpenMetrics exposition (prometheus-client's format).
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
