//! The scrape loop: one task per target, every `scrape_interval` at a stable
//! per-target offset (as Prometheus spreads its scrapes), each scrape
//! fetched, run through the [`pipeline`], completed with the synthetic
//! series (`up`, `scrape_duration_seconds`, ...) and published to the
//! snapshot ([`Outlets`]). A failed scrape gives `up 0` and one warning;
//! nothing a target does stops the loop. Without remote write the interval
//! scrapes nothing: the loop scrapes when a GET of /metrics asks
//! ([`demand::Demand::on_demand`]).

mod arena;
pub mod cache;
pub mod demand;
pub mod error;
pub mod fetch;
mod lookup;
#[cfg(test)]
mod native_tests;
pub mod pipeline;
mod slots;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::clock;
use crate::exposition::{render, Format, Labels, MetricType};
use crate::plan::Job;
use crate::snapshot::{Latest, TextSink};
use crate::status::cardinality::Postings;
use crate::status::{self, LastScrape, TargetInfo, TargetStatus};
use crate::storage::{
    self, next_ref, stale_nan, Appended, Appender, Family, FanOut, SeriesRef, TargetAppender,
};
use crate::targets::Target;
use crate::telemetry::Telemetry;
use demand::Demand;
use fetch::Fetcher;
use pipeline::{Carry, Counts, Limits, PipelineError, Rendered, SeriesCache, Settings, Stream};

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
/// the same point of its interval, and targets are spread over it. `seed`
/// ([`offset_seed`]) tells apart relays whose targets are the same.
pub fn offset(target: &Target, seed: u64, now: SystemTime) -> Duration {
    let interval = target.interval.as_nanos().max(1);
    let since_epoch = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let base = interval - since_epoch % interval;
    let spread = u128::from(target.labels.hash64() ^ seed) % interval;
    let next = (base + spread) % interval;
    Duration::from_nanos(u64::try_from(next).unwrap_or(0))
}

/// As Prometheus's scrape offset seed: a hash of the host name and the
/// external labels. Every replica's relay scrapes `localhost:8001` with the
/// same labels, so without it all Pods of a Deployment scraped at the same
/// instant; a Pod's host name is its name.
pub fn offset_seed(external_labels: &std::collections::BTreeMap<String, String>) -> u64 {
    let mut text = host_name();
    for (name, value) in external_labels {
        text.push_str(&format!("{name}={value:?},"));
    }
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// The kernel's host name (a Pod's name), empty if it cannot be read.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Where a scrape loop's results go besides the WAL, all owned by `run`:
/// the snapshot's target results, the scheduler of scrapes for GETs, and
/// relay's own metrics.
#[derive(Clone)]
pub struct Outlets {
    pub latest: Arc<Latest>,
    pub demand: Arc<Demand>,
    pub telemetry: Arc<Telemetry>,
}

impl Outlets {
    /// Publishes target `id`'s result of a scrape begun at `scraped_at`
    /// (see [`Demand::published`] for `complete`); returns the result it
    /// replaced, so its buffers can be reused.
    fn publish(
        &self,
        id: u64,
        output: Arc<Rendered>,
        complete: bool,
        scraped_at: Instant,
    ) -> Option<Arc<Rendered>> {
        // The snapshot first: a GET the scheduler wakes reads the result.
        let replaced = self.latest.publish(id, output);
        self.demand.published(id, complete, scraped_at);
        replaced
    }
}

/// A target's result taken out for its next scrape to render over: if
/// that scrape ends without publishing (cancelled, or a panic), GETs stop
/// waiting for it.
struct TakenOut {
    latest: Arc<Latest>,
    id: u64,
}

impl Drop for TakenOut {
    fn drop(&mut self) {
        self.latest.abandon_render(self.id);
    }
}

/// What a scrape loop is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep scraping.
    Run,
    /// The target is gone (shutdown, or a reload removed it): with a WAL,
    /// one last scrape (a native sidecar is stopped after the app, so this
    /// usually records the app gone: `up 0`), then every series marked stale.
    Finish,
    /// A reload replaced the loop with one for the same target: the new
    /// loop carries the series on, so no staleness markers (as Prometheus
    /// disables end-of-run staleness for a reloaded loop).
    Replaced,
}

/// Scrapes `target` until `shutdown` says to stop, then ends as it says.
pub async fn run_target(
    id: u64,
    job: Arc<Job>,
    target: Target,
    store: Outlets,
    durable: storage::Shared,
    mut shutdown: watch::Receiver<Stop>,
    seed: u64,
) {
    // A target whose job's client could not be built (the plan decided it
    // once) still reports `up 0` with the reason every interval.
    let fetcher = Fetcher::for_target(&job, &target).map_err(|e| {
        tracing::error!(target = %target.name(), error = %e, "cannot set up scraping; the target reports up 0");
        e.to_string()
    });
    let report = Report::new(&target.labels, &job.config);
    let instance = target.labels.get("instance").unwrap_or("").to_owned();
    let (status, mut asks) = store
        .telemetry
        .status
        .add_target(id, target_info(&job, &target));
    store
        .telemetry
        .target_started(&job.config.job_name, &instance);
    let mut scraper = Scraper {
        status,
        instance,
        health: Health::default(),
        last_series_added: 0,
        last_text_len: 0,
        last_series_dropped: 0,
        id,
        job,
        target,
        fetcher,
        carry: Carry::default(),
        spare: Arc::new(Rendered::default()),
        cache: SeriesCache::default(),
        store,
        durable,
        appender: TargetAppender::default(),
        report,
        last_ts: i64::MIN,
    };
    let first = offset(&scraper.target, seed, SystemTime::now());
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + first, scraper.target.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut scrape_now = scraper.store.demand.scrape_now();
    loop {
        // Shutdown also cancels a scrape in flight: SIGTERM need not wait
        // for a slow target's timeout.
        tokio::select! {
            _ = async {
                let wake = tokio::select! {
                    _ = ticker.tick() => Wake::Tick,
                    // A GET wants this target's lines now (unless a scrape
                    // since gave them); the schedule goes on.
                    _ = now_wanted(&mut scrape_now, &scraper.store.demand, id) => Wake::ForGet,
                    Some(reply) = asks.recv() => Wake::Asked(reply),
                };
                let for_get = match wake {
                    Wake::Tick => false,
                    Wake::ForGet => true,
                    // The status page asks for the series: read from the
                    // cache between scrapes, on request only.
                    Wake::Asked(reply) => {
                        let _ = reply.send(Postings::of(scraper.cache.live_series()));
                        return;
                    }
                };
                if for_get && scraper.durable.get().is_some() {
                    scraper.scrape_for_get().await
                } else if for_get {
                    let budget = scraper.store.demand.scrape_budget(id);
                    scraper.scrape_once(budget).await
                } else if !scraper.store.demand.on_demand() {
                    scraper.scrape_once(None).await
                }
                // On demand (no remote write), the interval scrapes
                // nothing: each GET has the target scraped for it.
            } => {}
            _ = shutdown.changed() => break,
        }
    }
    let stop = *shutdown.borrow();
    if stop == Stop::Finish && scraper.durable.get().is_some() {
        scraper.finish().await;
    }
    if stop == Stop::Finish {
        scraper
            .store
            .telemetry
            .target_stopped(&scraper.job.config.job_name, &scraper.instance);
    }
}

/// What woke a scrape loop.
enum Wake {
    Tick,
    ForGet,
    Asked(status::PostingsRequest),
}

/// What the status page shows of `target` for its whole life.
fn target_info(job: &Job, target: &Target) -> TargetInfo {
    let pairs = |labels: &crate::exposition::Labels<'static>| {
        labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    };
    TargetInfo {
        job: job.config.job_name.clone(),
        url: crate::config::redact_url(&target.url),
        labels: pairs(&target.labels),
        discovered: pairs(&target.discovered),
        interval: target.interval,
        timeout: target.timeout,
    }
}

/// Resolves when a GET after an idle time wants target `id` scraped now.
async fn now_wanted(scrape_now: &mut watch::Receiver<u64>, demand: &Demand, id: u64) {
    loop {
        if scrape_now.changed().await.is_err() {
            // The scheduler is gone: only the interval scrapes.
            std::future::pending::<()>().await;
        }
        if demand.wanted(id) {
            return;
        }
    }
}

/// Reads the body through the pipeline as it arrives (`bytes` counts it).
/// A pipeline error stops the parsing, not the reading: a fetch error
/// found later (the size limit, the timeout) is the scrape's error, as
/// when the body was read whole first. A line too long for the label
/// limits stops the reading too.
async fn read_through<S: Appender, C: lookup::Lookups>(
    fetcher: &Fetcher,
    budget: Option<Duration>,
    stream: &mut Stream<'_, '_, S, C>,
    carry: &mut Carry,
    bytes: &mut u64,
) -> Result<(), ScrapeError> {
    let mut body = fetcher.start_within(budget).await?;
    stream.set_format(body.format());
    let mut failed = None;
    loop {
        let chunk = body.chunk().await;
        *bytes = body.bytes_read();
        let Some(chunk) = chunk? else { break };
        if failed.is_none() {
            let parsing = Instant::now();
            failed = stream.feed(carry, &chunk).err();
            body.not_counting(parsing.elapsed());
            // A line past the label limits' bound is relay's own refusal
            // (Prometheus would buffer it): nothing read later can change
            // the outcome, so the rest of a huge body is not read at all.
            if matches!(failed, Some(PipelineError::LineTooLong { .. })) {
                break;
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(stream.finish(carry)?),
    }
}

/// How long the last scrape at shutdown may take: the flush needs the rest.
const FINAL_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a target's scrapes succeed, for the log lines that say when
/// that changes.
#[derive(Default)]
struct Health {
    ever_up: bool,
    /// Since when, how many scrapes in a row, and the last error.
    failing: Option<(Instant, u64, String)>,
}

struct Scraper {
    id: u64,
    /// Where the status page reads how the last scrape went.
    status: Arc<TargetStatus>,
    job: Arc<Job>,
    target: Target,
    /// The target's `instance` label, for relay's own metrics.
    instance: String,
    health: Health,
    /// `scrape_series_added` of the last interval scrape (see
    /// [`Scraper::scrape_for_get`]).
    last_series_added: usize,
    /// Bytes of the last rendered text, to size the next one at once.
    last_text_len: usize,
    /// `scrape_series_limit_samples_dropped` of the last interval scrape.
    last_series_dropped: usize,
    fetcher: Result<Fetcher, String>,
    /// The unparsed end of the body's last chunk, while reading.
    carry: Carry,
    spare: Arc<Rendered>,
    cache: SeriesCache,
    store: Outlets,
    /// Where samples go besides the snapshot (the WAL with remote write).
    durable: storage::Shared,
    appender: TargetAppender,
    report: Report,
    /// The newest timestamp this target wrote (staleness must come after it).
    last_ts: i64,
}

impl Scraper {
    /// One scrape, rendered if /metrics is read and appended to the WAL if
    /// there is one; within `budget` if shorter than the scrape timeout (a
    /// GET waits for it).
    async fn scrape_once(&mut self, budget: Option<Duration>) {
        let started = Instant::now();
        let timestamp = clock::now_ms().max(self.last_ts.saturating_add(1));
        // Nobody asked for /metrics lately: nothing is rendered (the first
        // GET has every target scraped again). Decided before fetching: a
        // scrape begun before the GET that ended the idle time renders
        // nothing, and does not count as the fresh result it waits for.
        let render = self.store.demand.serving();
        // Dropped after the publish, or with this future if it is cancelled.
        let _taken_out = render.then(|| self.render_over_result()).flatten();
        let mut rendered = std::mem::take(&mut self.spare);
        let out = Arc::make_mut(&mut rendered);
        out.clear_for(if render { self.last_text_len } else { 0 });
        out.format = Format::Text;
        let mut text = TextSink { out, on: render };
        let mut counts = Counts::default();
        let mut body_bytes = 0;
        let result = {
            let mut sink = FanOut(
                &mut text,
                self.appender.current(&self.durable, &self.target.name()),
            );
            sink.begin(timestamp);
            let result = match &self.fetcher {
                Ok(fetcher) => {
                    let settings = settings(&self.job, &self.target.labels);
                    let mut stream = Stream::new(
                        Format::Text,
                        &settings,
                        &mut self.cache,
                        &mut counts,
                        &mut sink,
                    );
                    read_through(
                        fetcher,
                        budget,
                        &mut stream,
                        &mut self.carry,
                        &mut body_bytes,
                    )
                    .await
                }
                Err(e) => Err(ScrapeError::from(fetch::FetchError::Setup(e.clone()))),
            };
            self.carry.clear();
            match &result {
                Ok(()) => self.cache.commit(&mut sink),
                Err(e) => {
                    // As Prometheus: a failed fetch reports 0 samples; a body
                    // that failed in the pipeline reports what was counted up
                    // to the failure (a sample limit: the whole body), but
                    // keeps none of it, and its series go stale.
                    if matches!(e, ScrapeError::Fetch(_)) {
                        counts = Counts::default();
                    }
                    sink.rollback();
                    self.cache.discard(&mut sink);
                    tracing::warn!(target = %self.target.name(), url = %self.target.url, error = %e, "scrape failed");
                }
            }
            let duration = started.elapsed().as_secs_f64();
            // The report's series are rendered either way.
            sink.0.on = true;
            let values = ReportValues {
                up: result.is_ok(),
                duration,
                counts: &counts,
                series_current: self.cache.series_count(),
            };
            self.report.append(&mut sink, &self.job.config, &values);
            sink.commit();
            result
        };
        self.last_series_added = counts.series_added;
        self.last_series_dropped = counts.series_limit_dropped;
        if let Some(series) = self.cache.take_first_limited() {
            tracing::warn!(target = %self.target.name(), series = %series, series_limit = self.job.config.series_limit, "series_limit reached: samples of new series are dropped (logged once per target; scrape_series_limit_samples_dropped counts them)");
        }
        self.last_ts = self
            .last_ts
            .max(timestamp)
            .max(counts.newest_own_timestamp.unwrap_or(i64::MIN));
        let out = text.out;
        out.set_counts(counts);
        if render {
            self.last_text_len = out.text.len();
        }
        out.give_back();
        // A failed scrape's result is whole either way (up 0, no lines).
        let complete = render || result.is_err();
        let kind = if render { "rendered" } else { "not rendered" };
        self.conclude(
            started, timestamp, body_bytes, &result, rendered, complete, kind,
        );
    }

    /// What every scrape ends with: relay's own metrics, the debug line
    /// naming the target, the target's health, and the result published
    /// for /metrics (`complete`: it holds the target's lines).
    #[allow(clippy::too_many_arguments)]
    fn conclude(
        &mut self,
        started: Instant,
        timestamp: i64,
        body_bytes: u64,
        result: &Result<(), ScrapeError>,
        rendered: Arc<Rendered>,
        complete: bool,
        kind: &'static str,
    ) {
        let samples = rendered.samples_scraped;
        let duration = started.elapsed().as_secs_f64();
        self.store.telemetry.scrape(
            &self.job.config.job_name,
            duration,
            usize::try_from(body_bytes).unwrap_or(usize::MAX),
            samples,
            result.as_ref().err().map(ScrapeError::reason),
        );
        tracing::debug!(target = %self.target.name(), up = result.is_ok(), samples, duration_seconds = duration, kind, "scraped");
        self.status.scraped(LastScrape {
            health: if result.is_ok() {
                status::Health::Up
            } else {
                status::Health::Down
            },
            at: UNIX_EPOCH
                .checked_add(Duration::from_millis(u64::try_from(timestamp).unwrap_or(0))),
            duration: started.elapsed(),
            samples_scraped: samples,
            samples_kept: rendered.samples_kept,
            series: self.cache.live_count(),
            error: result
                .as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default(),
        });
        self.note_health(result, timestamp);
        let replaced = self.store.publish(self.id, rendered, complete, started);
        // The replaced result is no longer in any snapshot: reuse its
        // buffers, but not its text (see [`Rendered::release_text`]).
        let mut spare = replaced.unwrap_or_default();
        match Arc::get_mut(&mut spare) {
            Some(spare) => spare.release_text(),
            // Still read elsewhere: not a buffer to reuse.
            None => spare = Arc::default(),
        }
        self.spare = spare;
    }

    /// Before rendering: the new text is not made beside a merged body of
    /// the old one, and a result too large to hold twice comes back from
    /// the snapshot to be rendered over (see [`Latest::begin_render`]).
    /// Keep what this returns until the new result is published.
    fn render_over_result(&mut self) -> Option<TakenOut> {
        let mut previous = self.store.latest.begin_render(self.id)?;
        // Still read by a GET in flight: not a buffer to reuse.
        if Arc::get_mut(&mut previous).is_some() {
            self.spare = previous;
        }
        Some(TakenOut {
            latest: self.store.latest.clone(),
            id: self.id,
        })
    }

    /// The scrape a GET after an idle time asked for, when remote write
    /// runs: rendered for the GET only, through a read-only peek at the
    /// loop's series cache ([`lookup::Peek`]: a series the loop knows is
    /// rendered as the loop has it, one it does not know goes into a small
    /// cache of the peek's own, dropped after), leaving the loop's cache,
    /// its report series and the WAL untouched.
    ///
    /// Why not an ordinary scrape: what remote write receives must follow
    /// the interval (one sample per series per tick), and this scrape comes
    /// at any time. Appending it to the WAL would put a sample 100 ms after
    /// an interval one. Leaving it out of the WAL but running it through the
    /// loop's cache would make the cache believe the WAL has seen this
    /// scrape: a series seen here and gone at the next tick would get no
    /// staleness marker, a series new here would not be described in the
    /// WAL segment before its first sample there, and `scrape_series_added`
    /// would be counted against a scrape the WAL never had. Through a peek
    /// this scrape changes nothing the next interval scrape relies on, and
    /// the WAL gets exactly what it would have without the GET; and unlike
    /// a fresh cache of its own (as before), it does not hold every series'
    /// text a second time. `scrape_series_added` is the last interval
    /// scrape's, so are `scrape_series_limit_samples_dropped` and
    /// `scrape_series_current`; new series count against the
    /// `series_limit` on top of the ones the loop holds.
    async fn scrape_for_get(&mut self) {
        let started = Instant::now();
        let timestamp = clock::now_ms();
        let _taken_out = self.render_over_result();
        let mut rendered = std::mem::take(&mut self.spare);
        let out = Arc::make_mut(&mut rendered);
        out.clear_for(self.last_text_len);
        out.format = Format::Text;
        let mut cache = lookup::Peek::new(&self.cache);
        let mut counts = Counts::default();
        let mut body_bytes = 0;
        let result = match &self.fetcher {
            Ok(fetcher) => {
                let settings = settings(&self.job, &self.target.labels);
                let mut stream =
                    Stream::new(Format::Text, &settings, &mut cache, &mut counts, &mut *out);
                read_through(fetcher, None, &mut stream, &mut self.carry, &mut body_bytes).await
            }
            Err(e) => Err(ScrapeError::from(fetch::FetchError::Setup(e.clone()))),
        };
        drop(cache);
        self.carry.clear();
        match &result {
            // Nothing to mark stale: this scrape follows no earlier one.
            Ok(()) => {}
            Err(e) => {
                if matches!(e, ScrapeError::Fetch(_)) {
                    counts = Counts::default();
                }
                out.clear_samples();
                tracing::warn!(target = %self.target.name(), url = %self.target.url, error = %e, "scrape failed");
            }
        }
        counts.series_added = self.last_series_added;
        counts.series_limit_dropped = self.last_series_dropped;
        let duration = started.elapsed().as_secs_f64();
        // A copy: the loop's report series keep what the WAL was told.
        let values = ReportValues {
            up: result.is_ok(),
            duration,
            counts: &counts,
            series_current: self.cache.series_count(),
        };
        self.report
            .clone()
            .append(&mut *out, &self.job.config, &values);
        // Writes a native histogram's classic view still pending.
        out.commit();
        out.set_counts(counts);
        self.last_text_len = out.text.len();
        out.give_back();
        let kind = "for a GET after an idle time (not remote-written)";
        self.conclude(
            started, timestamp, body_bytes, &result, rendered, true, kind,
        );
    }

    /// Keeps the target's last-success gauge, and logs its first
    /// successful scrape and its recovery after failed ones (each failure
    /// has its own WARN line already).
    fn note_health(&mut self, result: &Result<(), ScrapeError>, timestamp_ms: i64) {
        match result {
            Ok(()) => {
                self.store.telemetry.target_succeeded(
                    &self.job.config.job_name,
                    &self.instance,
                    timestamp_ms as f64 / 1000.0,
                );
                let failed = self.health.failing.take();
                let (scrapes, failing_for, last_error) = match &failed {
                    Some((since, n, e)) => (*n, since.elapsed().as_secs_f64(), e.as_str()),
                    None => (0, 0.0, ""),
                };
                let failing_for = format!("{failing_for:.1}s");
                if !self.health.ever_up {
                    self.health.ever_up = true;
                    if failed.is_some() {
                        tracing::info!(target = %self.target.name(), failed_scrapes = scrapes, failing_for = %failing_for, last_error = %last_error, "first successful scrape");
                    } else {
                        tracing::info!(target = %self.target.name(), "first successful scrape");
                    }
                } else if failed.is_some() {
                    tracing::info!(target = %self.target.name(), failed_scrapes = scrapes, failing_for = %failing_for, last_error = %last_error, "scrape succeeds again");
                }
            }
            Err(e) => {
                let failing = self
                    .health
                    .failing
                    .get_or_insert_with(|| (Instant::now(), 0, String::new()));
                failing.1 += 1;
                failing.2 = e.to_string();
            }
        }
    }

    /// Shutdown: a last scrape if the target still answers, then staleness
    /// markers for every series, stamped after anything written before.
    async fn finish(&mut self) {
        if tokio::time::timeout(FINAL_SCRAPE_TIMEOUT, self.scrape_once(None))
            .await
            .is_err()
        {
            tracing::warn!(target = %self.target.name(), "last scrape at shutdown timed out");
        }
        let timestamp = clock::now_ms().max(self.last_ts.saturating_add(1));
        let Some(mut wal) = self.appender.current(&self.durable, &self.target.name()) else {
            return;
        };
        wal.begin(timestamp);
        self.cache.stale_all(&mut wal);
        self.report.stale(&mut wal);
        wal.commit();
    }
}

/// How a target's samples are processed, from its job's config.
pub(crate) fn settings<'a>(job: &'a Job, target_labels: &'a Labels<'static>) -> Settings<'a> {
    Settings {
        target_labels,
        honor_labels: job.config.honor_labels,
        honor_timestamps: job.config.honor_timestamps,
        rules: &job.metric_relabel,
        limits: Limits {
            sample_limit: job.config.sample_limit,
            label_limit: job.config.label_limit,
            label_name_length_limit: job.config.label_name_length_limit,
            label_value_length_limit: job.config.label_value_length_limit,
            series_limit: job.config.series_limit,
            body_size_limit: usize::try_from(job.config.body_size_limit.0).unwrap_or(usize::MAX),
        },
        output: Format::Text,
        sort_labels: true,
        utf8_names: job.config.validation() == crate::config::NameValidation::Utf8,
        proto: crate::exposition::proto::Options {
            native: job.config.scrape_native_histograms.unwrap_or(false),
            classic: job.config.always_scrape_classic_histograms.unwrap_or(false),
        },
        native: pipeline::NativeLimits::of(
            job.config.native_histogram_bucket_limit,
            job.config.native_histogram_min_bucket_factor,
        ),
    }
}

/// The series Prometheus adds to every scrape (`up`, `scrape_*`), with the
/// target's labels: a fixed ref each, appended like scraped samples. With a
/// `sample_limit`, Prometheus's `scrape_sample_limit` (an extra scrape
/// metric there) is added; with a `series_limit`, vmagent's three series.
#[derive(Clone)]
struct Report {
    series: Vec<(SeriesRef, String, usize, Auto)>,
}

/// One series of the report: its name and help; the order of [`REPORT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auto {
    Up,
    Duration,
    Scraped,
    Kept,
    Added,
    SampleLimit,
    SeriesLimit,
    SeriesCurrent,
    SeriesDropped,
}

const REPORT: [(Auto, &str, &str); 9] = [
    (
        Auto::Up,
        "up",
        "1 if the last scrape of the target succeeded, else 0.",
    ),
    (
        Auto::Duration,
        "scrape_duration_seconds",
        "How long the last scrape took.",
    ),
    (
        Auto::Scraped,
        "scrape_samples_scraped",
        "Samples the target exposed.",
    ),
    (
        Auto::Kept,
        "scrape_samples_post_metric_relabeling",
        "Samples left after metric relabeling.",
    ),
    (
        Auto::Added,
        "scrape_series_added",
        "Series not in the previous scrape.",
    ),
    (
        Auto::SampleLimit,
        "scrape_sample_limit",
        "The job's sample_limit: past it a scrape fails.",
    ),
    (
        Auto::SeriesLimit,
        "scrape_series_limit",
        "The job's series_limit: past it new series are dropped.",
    ),
    (
        Auto::SeriesCurrent,
        "scrape_series_current",
        "Series relay holds for the target, counted against series_limit.",
    ),
    (
        Auto::SeriesDropped,
        "scrape_series_limit_samples_dropped",
        "Samples of new series the last scrape dropped past series_limit.",
    ),
];

/// What the report's values come from besides the scrape's counts.
struct ReportValues<'c> {
    up: bool,
    duration: f64,
    counts: &'c Counts,
    series_current: usize,
}

impl Report {
    fn new(target: &Labels<'static>, job: &crate::config::ScrapeConfig) -> Report {
        let series = REPORT
            .iter()
            .filter(|(auto, _, _)| match auto {
                Auto::SampleLimit => job.sample_limit > 0,
                Auto::SeriesLimit | Auto::SeriesCurrent | Auto::SeriesDropped => {
                    job.series_limit > 0
                }
                _ => true,
            })
            .map(|(auto, name, _)| {
                let mut labels = target.clone();
                labels.set(crate::exposition::METRIC_NAME, *name);
                labels.sort();
                let mut text = Vec::new();
                render::series(&mut text, &labels);
                (
                    next_ref(),
                    String::from_utf8_lossy(&text).into_owned(),
                    name.len(),
                    *auto,
                )
            })
            .collect();
        Report { series }
    }

    /// Appends this scrape's values: up, duration, the counts and limits.
    fn append(
        &mut self,
        sink: &mut impl Appender,
        job: &crate::config::ScrapeConfig,
        v: &ReportValues<'_>,
    ) {
        self.append_values(sink, |auto| match auto {
            Auto::Up => f64::from(u8::from(v.up)),
            Auto::Duration => v.duration,
            Auto::Scraped => v.counts.samples_scraped as f64,
            Auto::Kept => v.counts.samples_kept as f64,
            Auto::Added => v.counts.series_added as f64,
            Auto::SampleLimit => job.sample_limit as f64,
            Auto::SeriesLimit => job.series_limit as f64,
            Auto::SeriesCurrent => v.series_current as f64,
            Auto::SeriesDropped => v.counts.series_limit_dropped as f64,
        });
    }

    /// Marks the report series stale (shutdown).
    fn stale(&mut self, sink: &mut impl Appender) {
        self.append_values(sink, |_| stale_nan());
    }

    fn append_values(&mut self, sink: &mut impl Appender, value: impl Fn(Auto) -> f64) {
        for (series_ref, text, name_len, auto) in &self.series {
            let Some((_, name, help)) = REPORT.iter().find(|(a, _, _)| a == auto) else {
                continue;
            };
            let family = Family {
                name: std::borrow::Cow::Borrowed(name),
                help: Some((*help).into()),
                kind: MetricType::Gauge,
                unit: None,
            };
            sink.append(&Appended::float(
                *series_ref,
                text,
                *name_len,
                &family,
                None,
                value(*auto),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Job `app`'s target `instance`, every 15 s.
    fn target(instance: &str) -> Target {
        Target {
            job: "app".into(),
            url: String::new(),
            labels: [("instance", instance.to_owned()), ("job", "app".to_owned())]
                .into_iter()
                .collect::<Labels>()
                .into_owned(),
            discovered: Labels::default(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn offsets_are_stable_and_within_the_interval() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let seed = 7;
        let a = offset(&target("a:1"), seed, now);
        assert_eq!(a, offset(&target("a:1"), seed, now));
        assert!(a < Duration::from_secs(15));
        assert_ne!(a, offset(&target("b:1"), seed, now));
        // One second later, the same target is one second closer.
        let later = offset(&target("a:1"), seed, now + Duration::from_secs(1));
        assert_eq!((a.as_millis() + 15_000 - 1_000) % 15_000, later.as_millis());
    }

    /// Replicas scrape the same `localhost` target: their relays' seeds
    /// (host name and external labels, e.g. `pod`) spread them apart.
    #[test]
    fn replicas_of_one_target_are_spread_by_the_seed() {
        let target = target("localhost:8001");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let pod =
            |name: &str| offset_seed(&[("pod".to_owned(), name.to_owned())].into_iter().collect());
        assert_eq!(pod("a-0"), pod("a-0"));
        let offsets: std::collections::BTreeSet<Duration> = (0..10)
            .map(|i| offset(&target, pod(&format!("shop-7c9d-{i}")), now))
            .collect();
        // Ten Pods, ten different instants (they were all one before).
        assert_eq!(offsets.len(), 10, "{offsets:?}");
    }
}
