//! The latest result of every target, merged into one exposition (one
//! block per metric family even when several targets share it, then relay's
//! own metrics; valid however the targets disagree, see [`merge`]) on the
//! first GET after a scrape finished, and kept until the next one
//! finishes, so that further GETs are a memory copy. Nobody asking
//! (remote write the only consumer) costs no merged copy. With remote write,
//! relay's own metrics move between scrapes (batches are sent then), so a
//! GET of a snapshot older than a second merges again with them as they are
//! now.
//!
//! While nobody has asked for /metrics for a while ([`Store::serving`]), the
//! scrape loops render nothing and keep nothing (remote write still gets
//! every sample): the first GET after such an idle time has every target
//! scraped at once and waits (bounded) for those results, rendered as the
//! scrapes go from then on. A relay that only remote-writes holds neither a
//! body nor a rendered copy of it.
//!
//! Without remote write ([`Store::on_demand`]) nothing but GETs consumes
//! the scrapes, so there are no interval scrapes at all: every GET has each
//! target scraped for it (see [`Store::fresh_snapshot`]), and what a
//! Prometheus stores through relay is what the app said at that scrape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::pipeline::{self, Rendered};
use super::view::View;
use crate::exposition::Format;
use crate::serve::Snapshot;
use crate::telemetry::Telemetry;

struct Slot {
    /// `job/instance`, for the log.
    name: String,
    output: Option<Arc<Rendered>>,
    /// GETs wait (bounded) for a rendered result of a scrape begun at or
    /// after this instant, which has not come yet.
    want_from: Option<Instant>,
    /// When the scrape of the latest rendered result began.
    scraped_at: Option<Instant>,
    /// When the scrape the GETs wait for must be over (see
    /// [`Store::scrape_budget`]).
    scrape_by: Option<tokio::time::Instant>,
}

impl Slot {
    fn new(name: String) -> Slot {
        Slot {
            name,
            output: None,
            want_from: None,
            scraped_at: None,
            scrape_by: None,
        }
    }

    /// Whether the latest rendered result comes from a scrape begun at or
    /// after `from`.
    fn fresh_since(&self, from: Instant) -> bool {
        self.scraped_at.is_some_and(|at| at >= from)
    }

    /// Whether a GET still waits for a scrape of this target.
    fn owes(&self) -> bool {
        self.want_from.is_some_and(|from| !self.fresh_since(from))
    }

    fn forget_want(&mut self) {
        self.want_from = None;
        self.scrape_by = None;
    }
}

/// How long after the last GET of /metrics scrapes still render as they
/// go; `RELAY_SERVING_FOR_MS` shortens it (for tests).
fn serving_for() -> Duration {
    std::env::var("RELAY_SERVING_FOR_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(600), Duration::from_millis)
}

/// Shared between the scrape loops and the server. Targets come and go
/// with config reloads: each has a slot under a lasting id, in id order.
pub struct Store {
    slots: Mutex<BTreeMap<u64, Slot>>,
    /// The merged snapshot and when it was built; None once a target's
    /// result changed (built again on the next GET).
    snapshot: RwLock<Option<(Arc<Snapshot>, Instant, u64)>>,
    /// Counts changes to the targets' results: a snapshot merged from an
    /// older count is not current.
    changes: AtomicU64,
    /// Held while merging, so concurrent GETs merge once.
    merging: Mutex<()>,
    /// Milliseconds from `started` to the last GET of /metrics, plus one;
    /// 0 before the first.
    last_get: AtomicU64,
    started: Instant,
    pub telemetry: Telemetry,
    serving_for: Duration,
    /// Bumped by the first GET after an idle time: each scrape loop then
    /// scrapes at once (see [`Store::scrape_now`]).
    demand: watch::Sender<u64>,
    /// Notified on every publish, for GETs waiting for fresh results.
    published: Notify,
    /// Set at shutdown (see [`Store::stop`]).
    stopping: AtomicBool,
    /// External labels and where relay's own metrics go (see [`super::view`]).
    view: RwLock<Arc<View>>,
    /// Set while nothing but GETs consumes the scrapes (no remote write):
    /// targets are scraped for each GET, not on an interval (see
    /// [`Store::fresh_snapshot`]).
    on_demand: AtomicBool,
}

/// How old relay's own metrics in a served snapshot may be: they move
/// between scrapes (`process_*` always, remote write's while it runs), so a
/// snapshot older than this is merged again when served.
const OWN_METRICS_MAX_AGE: Duration = Duration::from_secs(1);

/// How old a target's result may be and still answer a GET without a
/// scrape of its own, for a GET that waits `wait` (nine tenths of its
/// scrape timeout): a tenth of that timeout, between 100 ms and 1 s. An HA
/// pair's two scrapes within it share one scrape of the app, and the value
/// is then at most that much older than the scraper's timestamp, within
/// the time a scrape itself may take. The floor bounds how often a flood
/// of GETs hits the app: at most ten times a second.
fn reuse_for(wait: Duration) -> Duration {
    (wait / 9).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

impl Store {
    /// A store for targets named `job/instance`, with ids 0, 1, ... in order.
    pub fn new(target_names: Vec<String>) -> Store {
        let slots = target_names
            .into_iter()
            .enumerate()
            .map(|(id, name)| (id as u64, Slot::new(name)))
            .collect();
        Store {
            slots: Mutex::new(slots),
            snapshot: RwLock::new(None),
            changes: AtomicU64::new(0),
            merging: Mutex::new(()),
            last_get: AtomicU64::new(0),
            started: Instant::now(),
            telemetry: Telemetry::new(),
            serving_for: serving_for(),
            demand: watch::Sender::new(0),
            published: Notify::new(),
            stopping: AtomicBool::new(false),
            view: RwLock::new(Arc::new(View::default())),
            on_demand: AtomicBool::new(false),
        }
    }

    /// A new target (a reload added it).
    pub fn add(&self, id: u64, name: String) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.insert(id, Slot::new(name));
    }

    /// A target a reload removed: its series leave the snapshot.
    pub fn remove(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.remove(&id).is_some() {
            self.invalidate();
        }
    }

    /// Publishes target `id`'s latest result (the snapshot is merged again
    /// on the next GET); returns the result it replaced, so its buffers can
    /// be reused.
    pub fn publish(&self, id: u64, output: Arc<Rendered>) -> Option<Arc<Rendered>> {
        self.publish_scrape(id, output, true, Instant::now())
    }

    /// [`Store::publish`] of a scrape's result; `complete` says whether it
    /// holds the body's lines (not when nobody was reading, see
    /// [`Store::serving`]): only a complete one is what a GET waits for,
    /// if its scrape began (`scraped_at`) late enough for that GET.
    pub fn publish_scrape(
        &self,
        id: u64,
        output: Arc<Rendered>,
        complete: bool,
        scraped_at: Instant,
    ) -> Option<Arc<Rendered>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let replaced = slots.get_mut(&id).and_then(|slot| {
            if complete {
                slot.scraped_at = Some(scraped_at);
                if !slot.owes() {
                    slot.forget_want();
                }
            }
            slot.output.replace(output)
        });
        self.invalidate();
        drop(slots);
        self.published.notify_waiters();
        replaced
    }

    /// A receiver that changes when a GET after an idle time wants every
    /// target scraped now (a scrape loop selects on it next to its interval).
    pub fn scrape_now(&self) -> watch::Receiver<u64> {
        self.demand.subscribe()
    }

    /// Whether target `id` still owes a GET a rendered result.
    pub fn wanted(&self, id: u64) -> bool {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.get(&id).is_some_and(Slot::owes)
    }

    /// How long the scrape target `id` owes the waiting GETs may take:
    /// it must end (a hung app: `up 0`, no app series) before they stop
    /// waiting and serve the older result. None: no GET waits.
    pub fn scrape_budget(&self, id: u64) -> Option<Duration> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let by = slots.get(&id).filter(|s| s.owes())?.scrape_by?;
        Some(by.saturating_duration_since(tokio::time::Instant::now()))
    }

    /// Says whether GETs are the only consumer of the scrapes (no remote
    /// write): then each GET has the targets scraped for it.
    pub fn set_on_demand(&self, on: bool) {
        self.on_demand.store(on, Ordering::Relaxed);
    }

    /// Whether targets are scraped for each GET rather than on an interval.
    pub fn on_demand(&self) -> bool {
        self.on_demand.load(Ordering::Relaxed)
    }

    /// Whether /metrics was asked for lately: scrapes then render as they
    /// go, so that a GET finds their lines ready.
    pub fn serving(&self) -> bool {
        let last = self.last_get.load(Ordering::Relaxed);
        last != 0 && self.millis().saturating_sub(last - 1) < self.serving_for.as_millis() as u64
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops the merged snapshot (GETs in flight keep theirs); called with
    /// the slots locked, so a merge sees the change or is not current.
    fn invalidate(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The merged snapshot if it is current.
    fn current(&self) -> Option<Arc<Snapshot>> {
        let guard = self.snapshot.read().unwrap_or_else(PoisonError::into_inner);
        let (snapshot, built, changes) = guard.as_ref()?;
        let fresh = *changes == self.changes.load(Ordering::Acquire)
            && built.elapsed() < OWN_METRICS_MAX_AGE;
        fresh.then(|| snapshot.clone())
    }

    /// What `/metrics` serves. Without remote write ([`Store::on_demand`])
    /// every GET has each target scraped now, unless its result is at most
    /// [`reuse_for`] old, and concurrent GETs share one scrape per target:
    /// the central Prometheus stores what the app says at its own scrape,
    /// as if it scraped the app. With remote write (interval scrapes) only
    /// the GET after an idle time (the scrapes did not render) has every
    /// target scraped now. The results are awaited up to `wait`; whatever
    /// is there then is served.
    pub async fn fresh_snapshot(&self, wait: Duration) -> Arc<Snapshot> {
        let now = Instant::now();
        let deadline = tokio::time::Instant::now() + wait;
        // The scrapes end before this GET stops waiting: a tenth of the
        // wait is left for the pipeline's end, the merge and the answer.
        let scrape_by = tokio::time::Instant::now() + wait.mul_f64(0.9);
        let needs = if self.on_demand() {
            self.mark_get();
            let from = now.checked_sub(reuse_for(wait)).unwrap_or(now);
            self.demand_fresh(from, scrape_by)
        } else if !self.serving() {
            self.mark_get();
            self.demand_fresh(now, scrape_by)
        } else {
            // A GET while serving waits only for scrapes a GET asked for.
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots
                .iter()
                .filter(|(_, s)| s.owes())
                .filter_map(|(id, s)| Some((*id, s.want_from?)))
                .collect()
        };
        self.await_fresh(&needs, deadline).await;
        self.snapshot()
    }

    /// Asks for a result of every target from a scrape begun at or after
    /// `from` (ended by `scrape_by`); returns what the GET then waits for.
    fn demand_fresh(&self, from: Instant, scrape_by: tokio::time::Instant) -> Vec<(u64, Instant)> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut needs = Vec::new();
        for (id, slot) in slots.iter_mut().filter(|(_, s)| !s.fresh_since(from)) {
            // A scrape begun after the latest `from` serves every GET
            // waiting; it may run until the latest of their deadlines.
            slot.want_from = Some(slot.want_from.map_or(from, |w| w.max(from)));
            slot.scrape_by = Some(slot.scrape_by.map_or(scrape_by, |b| b.max(scrape_by)));
            needs.push((*id, from));
        }
        drop(slots);
        if !needs.is_empty() {
            self.demand.send_modify(|n| *n = n.wrapping_add(1));
        }
        needs
    }

    /// Waits until every target in `needs` has a result from a scrape
    /// begun at or after its instant (or is gone), or until `deadline`.
    async fn await_fresh(&self, needs: &[(u64, Instant)], deadline: tokio::time::Instant) {
        loop {
            let published = self.published.notified();
            tokio::pin!(published);
            // Registered before looking, so a publish in between wakes it.
            published.as_mut().enable();
            let waiting = {
                let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
                needs
                    .iter()
                    .any(|(id, from)| slots.get(id).is_some_and(|s| !s.fresh_since(*from)))
            };
            if !waiting {
                return;
            }
            if tokio::time::timeout_at(deadline, published).await.is_err() {
                // Given up: what is there is served, and the GETs after
                // this one do not wait for the same scrapes again (unless
                // they ask for their own).
                let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, from) in needs {
                    let Some(slot) = slots.get_mut(id).filter(|s| !s.fresh_since(*from)) else {
                        continue;
                    };
                    if slot.want_from.is_some_and(|w| w <= *from) {
                        slot.forget_want();
                    }
                    tracing::debug!(target = %slot.name, "a GET stopped waiting for this target's fresh scrape; its last result is served");
                }
                return;
            }
        }
    }

    fn mark_get(&self) {
        self.last_get
            .store(self.millis().saturating_add(1), Ordering::Relaxed);
    }

    /// What `/metrics` serves now (see [`Store::fresh_snapshot`]).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.mark_get();
        if let Some(snapshot) = self.current() {
            return snapshot;
        }
        let _merging = self.merging.lock().unwrap_or_else(PoisonError::into_inner);
        // Another GET may have merged it while this one waited.
        if let Some(snapshot) = self.current() {
            return snapshot;
        }
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // Read under the slots' lock: a result published after this is a
        // later change, and the snapshot merged now is not current then.
        let changes = self.changes.load(Ordering::Acquire);
        let outputs: Vec<Arc<Rendered>> = slots.values().filter_map(|s| s.output.clone()).collect();
        drop(slots);
        let snapshot = Arc::new(self.merge(&outputs));
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((snapshot.clone(), Instant::now(), changes));
        snapshot
    }

    /// Says that relay is shutting down: `/-/ready` answers 503 from now on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether relay is shutting down.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Sets what the served bodies add and leave out (at start and on
    /// every reload); the next GET merges again.
    pub fn set_view(&self, new: View) {
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        if **view != new {
            *view = Arc::new(new);
            drop(view);
            self.invalidate();
        }
    }

    fn view(&self) -> Arc<View> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What `/relay/metrics` serves: relay's own metrics, made now; None
    /// unless `relay.self_metrics` is `separate`.
    pub fn own_snapshot(&self) -> Option<Snapshot> {
        self.view().own_metrics(|| self.own())
    }

    /// Relay's own metrics as text 0.0.4.
    fn own(&self) -> Rendered {
        // prometheus-client writes OpenMetrics; re-render it as text 0.0.4.
        pipeline::convert(
            self.telemetry.openmetrics().as_bytes(),
            Format::OpenMetrics,
            Format::Text,
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "relay's own metrics did not parse; leaving them out");
            Rendered::default()
        })
    }

    /// The snapshot: the text body, and where each family's lines are in it
    /// (so OpenMetrics is written from the same lines, not parsed again).
    fn merge(&self, outputs: &[Arc<Rendered>]) -> Snapshot {
        let outputs: Vec<&Rendered> = outputs.iter().map(|o| o.as_ref()).collect();
        self.view().metrics(&outputs, || self.own())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{check, Labels};
    use crate::relabel::Rules;
    use crate::scrape::pipeline::{process, SeriesCache, Settings};

    /// A scraped Prometheus exposes the remote-write families relay also
    /// exposes: the merged body holds each family once and stays valid.
    #[test]
    fn a_target_with_relays_own_families_still_gives_a_valid_body() {
        let body = "# HELP prometheus_remote_storage_samples_total Total number of samples sent to remote storage.\n# TYPE prometheus_remote_storage_samples_total counter\nprometheus_remote_storage_samples_total{remote_name=\"a\",url=\"http://r/w\"} 7\n# HELP prometheus_remote_storage_sent_batch_duration_seconds Duration of send calls to the remote storage.\n# TYPE prometheus_remote_storage_sent_batch_duration_seconds histogram\nprometheus_remote_storage_sent_batch_duration_seconds_bucket{remote_name=\"a\",url=\"http://r/w\",le=\"1\"} 1\nprometheus_remote_storage_sent_batch_duration_seconds_bucket{remote_name=\"a\",url=\"http://r/w\",le=\"+Inf\"} 1\nprometheus_remote_storage_sent_batch_duration_seconds_sum{remote_name=\"a\",url=\"http://r/w\"} 0.5\nprometheus_remote_storage_sent_batch_duration_seconds_count{remote_name=\"a\",url=\"http://r/w\"} 1\n# HELP prometheus_remote_storage_highest_timestamp_in_seconds Highest timestamp.\n# TYPE prometheus_remote_storage_highest_timestamp_in_seconds gauge\nprometheus_remote_storage_highest_timestamp_in_seconds 1.7e+09\n";
        let target: Labels<'static> = [("instance", "p:9090"), ("job", "prometheus")]
            .into_iter()
            .collect();
        let rules = Rules::default();
        let mut rendered = Rendered::default();
        process(
            body.as_bytes(),
            Format::Text,
            &Settings::new(&target, &rules),
            &mut SeriesCache::default(),
            &mut rendered,
        )
        .expect("valid");
        let store = Store::new(vec!["prometheus/p:9090".into()]);
        store.telemetry.remote_write_runs(true);
        let queue = store.telemetry.remote.queue("rw", "http://127.0.0.1:1/w");
        queue.samples.inc_by(3);
        queue.batch_duration.observe(0.2);
        store.publish(0, Arc::new(rendered));
        let snapshot = store.snapshot();
        for format in [Format::Text, Format::OpenMetrics] {
            let out = snapshot.body(format, false);
            let text = String::from_utf8_lossy(&out);
            assert_eq!(check(&out, format), vec![], "{format:?}:\n{text}");
            for family in [
                "prometheus_remote_storage_samples",
                "prometheus_remote_storage_sent_batch_duration_seconds",
                "prometheus_remote_storage_highest_timestamp_in_seconds",
            ] {
                let headers = text
                    .lines()
                    .filter(|l| {
                        l.starts_with("# TYPE ")
                            && l[7..]
                                .split(' ')
                                .next()
                                .is_some_and(|n| n.trim_end_matches("_total") == family)
                    })
                    .count();
                assert_eq!(
                    headers, 1,
                    "{format:?}: one TYPE line for {family}:\n{text}"
                );
            }
            assert!(text.contains("prometheus_remote_storage_samples_total{remote_name=\"a\",url=\"http://r/w\",instance=\"p:9090\",job=\"prometheus\"} 7") || text.contains("prometheus_remote_storage_samples_total{instance=\"p:9090\",job=\"prometheus\",remote_name=\"a\",url=\"http://r/w\"} 7"), "{text}");
            assert!(text.contains("prometheus_remote_storage_samples_total{remote_name=\"rw\",url=\"http://127.0.0.1:1/w\"} 3"), "{text}");
        }
    }

    /// A GET that gave up waiting for a target's fresh result (its scrape
    /// is slow, or its loop is gone) is served what is there, and the GETs
    /// after it do not wait for that scrape again.
    #[tokio::test]
    async fn a_get_that_gave_up_waiting_does_not_make_the_next_ones_wait() {
        let store = Store::new(vec!["app/a:1".into()]);
        store.publish(0, Arc::new(Rendered::default()));
        assert!(!store.serving(), "idle before the first GET");
        store.fresh_snapshot(Duration::from_millis(20)).await;
        assert!(store.serving());
        assert!(!store.wanted(0), "the wait was given up");
        let next = tokio::time::timeout(
            Duration::from_secs(30),
            store.fresh_snapshot(Duration::from_secs(60)),
        )
        .await;
        assert!(next.is_ok(), "the next GET did not wait its whole minute");
    }

    /// Without remote write every GET asks for a scrape begun after it
    /// (less the reuse time), and GETs that come together share one.
    #[tokio::test]
    async fn on_demand_gets_share_one_scrape_and_reuse_only_a_fresh_result() {
        let store = Arc::new(Store::new(vec!["app/a:1".into()]));
        store.set_on_demand(true);
        let scraped = Instant::now();
        store.publish(0, Arc::new(Rendered::default()));
        let mut demand = store.scrape_now();
        demand.mark_unchanged();
        // A GET right after a scrape (within 100 ms): served at once.
        let now = tokio::time::timeout(
            Duration::from_secs(30),
            store.fresh_snapshot(Duration::from_millis(900)),
        )
        .await;
        assert!(now.is_ok() && !demand.has_changed().unwrap_or(true));
        // Later, two GETs together: one demand, both answered by one scrape.
        // (A 2 s timeout: results up to 200 ms old are reused.)
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gets: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.fresh_snapshot(Duration::from_millis(1800)).await })
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(30), demand.changed())
            .await
            .expect("a demand")
            .expect("the store is there");
        assert!(store.wanted(0));
        let budget = store.scrape_budget(0).expect("a GET waits");
        assert!(budget <= Duration::from_millis(1620), "{budget:?}");
        // A result from before the GETs does not answer them...
        store.publish_scrape(0, Arc::new(Rendered::default()), true, scraped);
        assert!(store.wanted(0));
        // ...one begun now does, both.
        store.publish(0, Arc::new(Rendered::default()));
        assert!(!store.wanted(0));
        for get in gets {
            let answered = tokio::time::timeout(Duration::from_secs(30), get).await;
            assert!(matches!(answered, Ok(Ok(_))), "a GET was not answered");
        }
        assert_eq!(store.scrape_budget(0), None);
    }
}
