//! The scrape loop: one task per target, every `scrape_interval` at a stable
//! per-target offset (as Prometheus spreads its scrapes), each scrape
//! fetched, run through the [`pipeline`], completed with the synthetic
//! series (`up`, `scrape_duration_seconds`, ...) and published to the
//! [`store`]. A failed scrape gives `up 0` and one warning; nothing a target
//! does stops the loop.

pub mod fetch;
pub mod pipeline;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::ScrapeConfig;
use crate::exposition::{render, Format, Labels, MetricType};
use crate::targets::Target;
use fetch::Fetcher;
use pipeline::{Limits, PipelineError, Rendered, SeriesCache, Settings};
use store::Store;

/// Why one scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl ScrapeError {
    fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Fetch(e) => e.reason(),
            ScrapeError::Pipeline(e) => e.reason(),
        }
    }
}

/// The delay before a target's first scrape: the same target always lands at
/// the same point of its interval, and targets are spread over it.
pub fn offset(target: &Target, now: SystemTime) -> Duration {
    let interval = target.interval.as_nanos().max(1);
    let since_epoch = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let base = interval - since_epoch % interval;
    let next = (base + u128::from(target.labels.hash64()) % interval) % interval;
    Duration::from_nanos(u64::try_from(next).unwrap_or(0))
}

/// Scrapes `target` until `shutdown` turns true.
pub async fn run_target(
    index: usize,
    job: Arc<ScrapeConfig>,
    target: Target,
    store: Arc<Store>,
    mut shutdown: watch::Receiver<bool>,
) {
    let fetcher = match Fetcher::new(&job, target.url.clone(), target.timeout) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(target = %target.name(), error = %e, "cannot set up scraping; target stays down");
            return;
        }
    };
    let mut scraper = Scraper {
        index,
        job,
        target,
        fetcher,
        body: Vec::new(),
        spare: Arc::new(Rendered::default()),
        cache: SeriesCache::default(),
        store,
    };
    let first = offset(&scraper.target, SystemTime::now());
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = shutdown.changed() => return,
    }
    let mut ticker = tokio::time::interval(scraper.target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        // Shutdown also cancels a scrape in flight: SIGTERM need not wait
        // for a slow target's timeout.
        tokio::select! {
            _ = async { ticker.tick().await; scraper.scrape_once().await } => {}
            _ = shutdown.changed() => return,
        }
    }
}

struct Scraper {
    index: usize,
    job: Arc<ScrapeConfig>,
    target: Target,
    fetcher: Fetcher,
    body: Vec<u8>,
    spare: Arc<Rendered>,
    cache: SeriesCache,
    store: Arc<Store>,
}

impl Scraper {
    async fn scrape_once(&mut self) {
        let started = Instant::now();
        let fetched = self.fetcher.fetch(&mut self.body).await;
        let mut rendered = std::mem::take(&mut self.spare);
        let out = Arc::make_mut(&mut rendered);
        let result = match fetched {
            Ok(format) => self.process(format, out).map_err(ScrapeError::from),
            Err(e) => Err(ScrapeError::from(e)),
        };
        let duration = started.elapsed().as_secs_f64();
        let up = result.is_ok();
        match &result {
            Ok(()) => self.cache.commit(),
            Err(e) => {
                self.cache.discard();
                // As Prometheus: a failed fetch reports 0 samples; a body that
                // failed in the pipeline reports what was counted up to the
                // failure (a sample limit: the whole body), but serves none.
                match e {
                    ScrapeError::Fetch(_) => out.clear(),
                    ScrapeError::Pipeline(_) => out.clear_samples(),
                }
                tracing::warn!(target = %self.target.name(), url = %self.target.url, error = %e, "scrape failed");
            }
        }
        append_synthetic(out, &self.target.labels, up, duration);
        self.store.telemetry.scrape(
            &self.job.job_name,
            duration,
            self.body.len(),
            out.samples_scraped,
            result.as_ref().err().map(ScrapeError::reason),
        );
        let previous = self.store.publish(self.index, rendered, up);
        // The replaced result is no longer in any snapshot: reuse its buffers.
        self.spare = previous.unwrap_or_default();
    }

    fn process(&mut self, format: Format, out: &mut Rendered) -> Result<(), PipelineError> {
        let settings = Settings {
            target_labels: &self.target.labels,
            honor_labels: self.job.honor_labels,
            honor_timestamps: self.job.honor_timestamps,
            rules: &self.job.metric_relabel,
            limits: Limits {
                sample_limit: self.job.sample_limit,
                label_limit: self.job.label_limit,
                label_name_length_limit: self.job.label_name_length_limit,
                label_value_length_limit: self.job.label_value_length_limit,
            },
            output: Format::Text,
            sort_labels: true,
        };
        pipeline::process(&self.body, format, &settings, &mut self.cache, out)
    }
}

/// The series Prometheus adds to every scrape, with the target's labels.
fn append_synthetic(out: &mut Rendered, target: &Labels<'static>, up: bool, duration: f64) {
    let values = [
        (
            "up",
            if up { 1.0 } else { 0.0 },
            "1 if the last scrape of the target succeeded, else 0.",
        ),
        (
            "scrape_duration_seconds",
            duration,
            "How long the last scrape took.",
        ),
        (
            "scrape_samples_scraped",
            out.samples_scraped as f64,
            "Samples the target exposed.",
        ),
        (
            "scrape_samples_post_metric_relabeling",
            out.samples_kept as f64,
            "Samples left after metric relabeling.",
        ),
        (
            "scrape_series_added",
            out.series_added as f64,
            "Series not in the previous scrape.",
        ),
    ];
    let mut labels = target.clone();
    for (name, value, help) in values {
        labels.set(crate::exposition::METRIC_NAME, name);
        let start = out.text.len();
        render::sample(&mut out.text, Format::Text, &labels, value, None);
        out.families.push(pipeline::FamilyBlock {
            name: name.to_owned(),
            help: Some(help.to_owned()),
            kind: MetricType::Gauge,
            unit: None,
            lines: start..out.text.len(),
            timestamps: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let target = |instance: &str| Target {
            job: "app".into(),
            url: String::new(),
            labels: [("instance", instance.to_owned()), ("job", "app".to_owned())]
                .into_iter()
                .collect::<Labels>()
                .into_owned(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = offset(&target("a:1"), now);
        assert_eq!(a, offset(&target("a:1"), now));
        assert!(a < Duration::from_secs(15));
        assert_ne!(a, offset(&target("b:1"), now));
        // One second later, the same target is one second closer.
        let later = offset(&target("a:1"), now + Duration::from_secs(1));
        assert_eq!((a.as_millis() + 15_000 - 1_000) % 15_000, later.as_millis());
    }
}
