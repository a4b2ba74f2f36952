//! The relay's own observability: the `relay_*` metrics that are served
//! beside the scraped ones, so a sidecar's health is visible in the same
//! Prometheus that collects the app, and the `process_*` metrics every
//! Prometheus client exposes (read from /proc when collected). Log setup is
//! in `logging`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type JobLabels = Vec<(String, String)>;

/// `relay_web_auth_checks_total` by `outcome` and `answered_by`: shows a
/// flood of wrong passwords, and whether good scrapers still hit the cache.
pub type WebAuthChecks = Family<Vec<(String, String)>, Counter>;

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The `relay_*` metrics. Per-job series carry `scrape_job`, not `job`
/// (as Prometheus's own `prometheus_target_*`): a scraper with
/// `honor_labels: true` would otherwise file them under the app's job.
pub struct Telemetry {
    registry: Registry,
    /// Remote write's and the WAL's families, apart: served only while a
    /// `remote_write` is configured (see [`Telemetry::remote_write_runs`]).
    remote_registry: Registry,
    remote_on: std::sync::atomic::AtomicBool,
    scrapes: Family<JobLabels, Counter>,
    failures: Family<JobLabels, Counter>,
    bytes: Family<JobLabels, Counter>,
    samples: Family<JobLabels, Counter>,
    duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    /// Remote write's metrics (Prometheus's names) and the WAL's.
    pub remote: crate::remote_write::metrics::RemoteWriteMetrics,
    reload_ok: Gauge,
    reload_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    last_success: Family<JobLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Basic auth checks on relay's port, counted by `web`.
    pub web_auth_checks: WebAuthChecks,
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
        let mut remote_registry = Registry::default();
        let remote =
            crate::remote_write::metrics::RemoteWriteMetrics::register(&mut remote_registry);
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
        let last_success = Family::<JobLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "relay_target_last_success_timestamp_seconds",
            "When each target's last successful scrape began; 0 until its first (readiness does not wait for it)",
            last_success.clone(),
        );
        let web_auth_checks = WebAuthChecks::default();
        registry.register(
            "relay_web_auth_checks",
            "Basic auth checks on relay's port, by outcome (accepted, refused) and answered_by (cache, bcrypt, none: no usable credentials)",
            web_auth_checks.clone(),
        );
        registry.register_collector(Box::new(process::ProcessCollector));
        Telemetry {
            web_auth_checks,
            last_success,
            remote,
            reload_ok,
            reload_time,
            registry,
            remote_registry,
            remote_on: std::sync::atomic::AtomicBool::new(false),
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

    /// Labels of a target's series: `scrape_job` and `scrape_instance`, not
    /// `job` and `instance`, which a scraper with `honor_labels: true` would
    /// take for relay's own.
    fn target_labels(job: &str, instance: &str) -> JobLabels {
        vec![
            ("scrape_job".to_owned(), job.to_owned()),
            ("scrape_instance".to_owned(), instance.to_owned()),
        ]
    }

    /// A target is scraped: its last-success gauge shows (0 until its
    /// first good scrape; a loop that replaces one keeps its value).
    pub fn target_started(&self, job: &str, instance: &str) {
        drop(
            self.last_success
                .get_or_create(&Self::target_labels(job, instance)),
        );
    }

    /// A target's scrape that began at `seconds` (Unix time) succeeded.
    pub fn target_succeeded(&self, job: &str, instance: &str, seconds: f64) {
        self.last_success
            .get_or_create(&Self::target_labels(job, instance))
            .set(seconds);
    }

    /// A target is no longer scraped: its series leave.
    pub fn target_stopped(&self, job: &str, instance: &str) {
        self.last_success
            .remove(&Self::target_labels(job, instance));
    }

    /// Records a config (re)load's outcome, as Prometheus does its own.
    pub fn reloaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_time.set(crate::clock::now_seconds());
        }
    }

    /// Says whether a `remote_write` is configured: the remote-write and
    /// WAL families are served only then (a relay that only serves would
    /// otherwise show `prometheus_remote_storage_highest_timestamp_in_seconds 0`).
    pub fn remote_write_runs(&self, on: bool) {
        self.remote_on
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The metrics as an OpenMetrics exposition (prometheus-client's format).
    pub fn openmetrics(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        if self.remote_on.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = encode_registry(&mut out, &self.remote_registry);
        }
        let _ = encode_eof(&mut out);
        out
    }
}

/// The `process_*` metrics of the Go and Python clients, from the same
/// sources: /proc/self/stat (CPU time in clock ticks, virtual size in
/// bytes, resident size in pages, start time in ticks after boot, whose
/// time is `btime` in /proc/stat), /proc/self/fd and the soft limit of
/// "Max open files" in /proc/self/limits. Read when collected; a value
/// that cannot be read is left out rather than reported wrong.
mod process {
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use std::sync::OnceLock;

    #[derive(Debug)]
    pub struct ProcessCollector;

    /// The fields of /proc/self/stat this collector reads.
    #[derive(Debug, PartialEq)]
    pub(super) struct Stat {
        pub utime: u64,
        pub stime: u64,
        pub starttime: u64,
        pub vsize: u64,
        pub rss: u64,
    }

    /// Parses /proc/PID/stat: the fields after the command name, which is
    /// in parentheses and may itself hold spaces and parentheses.
    pub(super) fn parse_stat(text: &str) -> Option<Stat> {
        let (_, rest) = text.rsplit_once(')')?;
        // Field 3 (state) is the first after the name; proc(5) numbers
        // fields from 1.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
            vsize: field(23)?,
            rss: field(24)?,
        })
    }

    /// The soft "Max open files" limit from /proc/PID/limits.
    pub(super) fn parse_max_fds(text: &str) -> Option<f64> {
        let soft = text
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))?
            .split_whitespace()
            .next()?;
        // "unlimited" is what Go's procfs reports as +Inf.
        if soft == "unlimited" {
            return Some(f64::INFINITY);
        }
        soft.parse().ok()
    }

    fn clock_ticks() -> f64 {
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if hz > 0 {
            hz as f64
        } else {
            100.0
        }
    }

    fn page_size() -> f64 {
        // SAFETY: sysconf only reads a configuration value.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 {
            size as f64
        } else {
            4096.0
        }
    }

    /// Boot time in Unix seconds (`btime` in /proc/stat), read once.
    fn boot_time() -> Option<f64> {
        static BOOT: OnceLock<Option<f64>> = OnceLock::new();
        *BOOT.get_or_init(|| {
            let text = std::fs::read_to_string("/proc/stat").ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("btime "))?
                .trim()
                .parse()
                .ok()
        })
    }

    fn gauge(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: f64,
    ) -> std::fmt::Result {
        let metric = ConstGauge::new(value);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
    }

    impl Collector for ProcessCollector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
            let ticks = clock_ticks();
            let stat = std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|t| parse_stat(&t));
            if let Some(stat) = &stat {
                let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
                cpu.encode(encoder.encode_descriptor(
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds.",
                    None,
                    cpu.metric_type(),
                )?)?;
            }
            if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
                // The directory's own descriptor, open while counting, is
                // one of them, as in the Go client.
                let open = fds.count() as f64;
                gauge(
                    &mut encoder,
                    "process_open_fds",
                    "Number of open file descriptors.",
                    open,
                )?;
            }
            if let Some(max) = std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|t| parse_max_fds(&t))
            {
                gauge(
                    &mut encoder,
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    max,
                )?;
            }
            if let Some(stat) = &stat {
                gauge(
                    &mut encoder,
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                    stat.vsize as f64,
                )?;
                gauge(
                    &mut encoder,
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    stat.rss as f64 * page_size(),
                )?;
                if let Some(boot) = boot_time() {
                    gauge(
                        &mut encoder,
                        "process_start_time_seconds",
                        "Start time of the process since unix epoch in seconds.",
                        boot + stat.starttime as f64 / ticks,
                    )?;
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::process::{parse_max_fds, parse_stat, Stat};
    use super::Telemetry;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 1260 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                starttime: 123456,
                vsize: 987654321,
                rss: 2048,
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
    }

    #[test]
    fn max_fds_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax processes             63434                63434                processes \nMax open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_max_fds(unlimited), Some(f64::INFINITY));
    }

    #[test]
    fn process_metrics_are_in_the_exposition_with_their_types() {
        let text = Telemetry::new().openmetrics();
        for (name, kind) in [
            ("process_cpu_seconds", "counter"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}:\n{text}"
            );
        }
    }

    #[test]
    fn remote_write_families_show_only_while_remote_write_runs() {
        let telemetry = Telemetry::new();
        let _queue = telemetry.remote.queue("rw", "http://127.0.0.1:1/w");
        let families = [
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "prometheus_remote_storage_samples_total",
            "relay_wal_size_bytes",
            "relay_wal_max_size_bytes",
        ];
        let text = telemetry.openmetrics();
        for name in families {
            assert!(!text.contains(name), "{name} without remote write:\n{text}");
        }
        assert!(text.contains("relay_build_info"), "{text}");
        telemetry.remote_write_runs(true);
        let text = telemetry.openmetrics();
        for name in families {
            assert!(text.contains(name), "{name} with remote write:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        telemetry.remote_write_runs(false);
        assert!(!telemetry
            .openmetrics()
            .contains("prometheus_remote_storage_"));
    }

    #[test]
    fn a_target_reads_0_until_its_first_success_and_leaves_when_stopped() {
        let telemetry = Telemetry::new();
        let line = "relay_target_last_success_timestamp_seconds{scrape_job=\"app\",scrape_instance=\"a:1\"}";
        telemetry.target_started("app", "a:1");
        assert!(
            telemetry.openmetrics().contains(&format!("{line} 0.0\n")),
            "{}",
            telemetry.openmetrics()
        );
        telemetry.target_succeeded("app", "a:1", 1700000000.5);
        telemetry.target_started("app", "a:1");
        assert!(
            telemetry
                .openmetrics()
                .contains(&format!("{line} 1700000000.5\n")),
            "{}",
            telemetry.openmetrics()
        );
        telemetry.target_stopped("app", "a:1");
        assert!(!telemetry.openmetrics().contains(line));
    }
}
