//! The latest result of every target, merged into one exposition (one
//! block per metric family even when several targets share it, then relay's
//! own metrics; valid however the targets disagree, see [`super::merge`]) on
//! the first GET after a scrape finished, and kept until the next one
//! finishes, so that further GETs are a memory copy. Nobody asking
//! (remote write the only consumer) costs no merged copy. With remote write,
//! relay's own metrics move between scrapes (batches are sent then), so a
//! GET of a snapshot older than a second merges again with them as they are
//! now.
//!
//! When targets are scraped for a GET is not decided here (see
//! `scrape::demand`): this holds what the scrapes published.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::body::Snapshot;
use super::sink::Rendered;
use super::view::View;

/// Relay's own metrics as text 0.0.4 blocks, made when a snapshot is
/// merged: `run` owns the telemetry and hands this down.
pub type OwnMetrics = Box<dyn Fn() -> Rendered + Send + Sync>;

/// How old relay's own metrics in a served snapshot may be: they move
/// between scrapes (`process_*` always, remote write's while it runs), so a
/// snapshot older than this is merged again when served.
const OWN_METRICS_MAX_AGE: Duration = Duration::from_secs(1);

/// Shared between the scrape loops and the server. Targets come and go
/// with config reloads: each has a slot under a lasting id, in id order.
pub struct Latest {
    /// Each target's latest result (None before its first).
    slots: Mutex<BTreeMap<u64, Option<Arc<Rendered>>>>,
    /// The merged snapshot and when it was built; None once a target's
    /// result changed (built again on the next GET).
    snapshot: RwLock<Option<(Arc<Snapshot>, Instant, u64)>>,
    /// Counts changes to the targets' results: a snapshot merged from an
    /// older count is not current.
    changes: AtomicU64,
    /// Held while merging, so concurrent GETs merge once.
    merging: Mutex<()>,
    /// External labels and where relay's own metrics go (see [`View`]).
    view: RwLock<Arc<View>>,
    own: OwnMetrics,
}

impl Latest {
    /// No targets yet; `own` makes relay's own metrics when they are served.
    pub fn new(own: OwnMetrics) -> Latest {
        Latest {
            slots: Mutex::new(BTreeMap::new()),
            snapshot: RwLock::new(None),
            changes: AtomicU64::new(0),
            merging: Mutex::new(()),
            view: RwLock::new(Arc::new(View::default())),
            own,
        }
    }

    /// A new target (started, or a reload added it); results published
    /// under an id not added are dropped.
    pub fn add(&self, id: u64) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.insert(id, None);
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
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let replaced = slots.get_mut(&id).and_then(|slot| slot.replace(output));
        self.invalidate();
        replaced
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

    /// Drops the merged snapshot: a scrape about to render calls it, so
    /// that its new text is not made beside a merged body of the old one
    /// (a whole copy of every target's lines, and its gzip) that its
    /// publish replaces anyway. A GET before that publish merges again from
    /// the same results, with relay's own metrics as they are then.
    pub fn release_merged(&self) {
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

    /// What `/metrics` serves now: the targets' latest results as they are.
    pub fn snapshot(&self) -> Arc<Snapshot> {
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
        let outputs: Vec<Arc<Rendered>> = slots.values().flatten().cloned().collect();
        drop(slots);
        let snapshot = Arc::new(self.merge(&outputs));
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((snapshot.clone(), Instant::now(), changes));
        snapshot
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
        self.view().own_metrics(&self.own)
    }

    /// The snapshot: the text body, and where each family's lines are in it
    /// (so OpenMetrics is written from the same lines, not parsed again).
    fn merge(&self, outputs: &[Arc<Rendered>]) -> Snapshot {
        self.view().metrics(outputs, &self.own)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::exposition::{check, render, Format, Labels};
    use crate::relabel::Rules;
    use crate::scrape::pipeline::{self, process, SeriesCache, Settings};
    use crate::telemetry::Telemetry;

    /// A `Latest` with targets 0..n and relay's own metrics from
    /// `telemetry`, as `run` makes it.
    pub(crate) fn with_targets(n: u64, telemetry: Arc<Telemetry>) -> Latest {
        let latest = Latest::new(Box::new(move || {
            pipeline::convert(
                telemetry.openmetrics().as_bytes(),
                Format::OpenMetrics,
                Format::Text,
            )
            .expect("relay's own metrics parse")
        }));
        for id in 0..n {
            latest.add(id);
        }
        latest
    }

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
        let telemetry = Arc::new(Telemetry::new());
        let store = with_targets(1, telemetry.clone());
        telemetry.remote_write_runs(true);
        let queue = telemetry.remote.queue("rw", "http://127.0.0.1:1/w");
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

    #[test]
    fn openmetrics_is_the_text_snapshot_re_rendered() {
        let body = "# HELP c_total Requests \\\\ \"all\".\n# TYPE c_total counter\nc_total{a=\"x y\"} 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n# TYPE g gauge\n# UNIT g seconds\ng{q=\"\\\"\"} NaN 1700000000123\ng{q=\"b\"} 1\ng 2 -1500\nuntyped_one 4\n";
        let (target, rules) = (Labels::default(), Rules::default());
        let mut rendered = Rendered::default();
        process(
            body.as_bytes(),
            Format::Text,
            &Settings::new(&target, &rules),
            &mut SeriesCache::default(),
            &mut rendered,
        )
        .expect("valid");
        let store = with_targets(1, Arc::new(Telemetry::new()));
        store.publish(0, Arc::new(rendered));
        let snapshot = store.snapshot();
        let text = snapshot.body(Format::Text, false);
        let om = snapshot.body(Format::OpenMetrics, false);
        // What parsing the text body again and rendering it gives.
        let mut want = Vec::new();
        pipeline::convert(&text, Format::Text, Format::OpenMetrics)
            .expect("our text parses")
            .write(&mut want, Format::OpenMetrics);
        render::end(&mut want, Format::OpenMetrics);
        assert_eq!(String::from_utf8_lossy(&om), String::from_utf8_lossy(&want));
        // The gzip is of the same body, made from its pieces; the lines
        // without timestamps are the text body's, not a copy.
        let gz = snapshot.body(Format::OpenMetrics, true);
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
            .expect("gzip");
        assert_eq!(unzipped, om);
        let shared = snapshot.openmetrics_shared();
        let stamped: usize = String::from_utf8_lossy(&text)
            .lines()
            // The family has timestamps: its lines are all rewritten.
            .filter(|l| l.starts_with("g{") || l.starts_with("g "))
            .map(|l| l.len() + 1)
            .sum();
        assert!(stamped > 0);
        let lines: usize = String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.len() + 1)
            .sum();
        assert_eq!(
            shared,
            lines - stamped,
            "every line without a timestamp is shared"
        );
        let om_text = String::from_utf8_lossy(&om);
        assert!(
            om_text.contains("g{q=\"\\\"\"} NaN 1700000000.123\n"),
            "{om_text}"
        );
        assert!(om_text.contains("g 2 -1.5\n"), "{om_text}");
        assert!(
            om_text.contains("# TYPE c counter\nc_total{a=\"x y\"} 3\n"),
            "{om_text}"
        );
        assert_eq!(crate::exposition::check(&om, Format::OpenMetrics), vec![]);
    }

    /// A scrape about to render releases the merged snapshot; a GET
    /// before its publish gets the same results merged again.
    #[test]
    fn a_released_snapshot_is_merged_again_from_the_same_results() {
        let store = with_targets(1, Arc::new(Telemetry::new()));
        let mut rendered = Rendered::default();
        let (target, rules) = (Labels::default(), Rules::default());
        process(
            b"kept 1\n",
            Format::Text,
            &Settings::new(&target, &rules),
            &mut SeriesCache::default(),
            &mut rendered,
        )
        .expect("valid");
        store.publish(0, Arc::new(rendered));
        let first = store.snapshot();
        let held = || store.snapshot.read().map(|s| s.is_some()).unwrap_or(false);
        assert!(held());
        store.release_merged();
        assert!(!held(), "the merged snapshot is still held");
        let again = store.snapshot();
        assert!(!Arc::ptr_eq(&first, &again));
        assert!(held());
        let text = again.body(Format::Text, false);
        assert!(String::from_utf8_lossy(&text).contains("kept 1\n"));
    }

    /// A result published for a target that was never added, or was
    /// removed, is not served.
    #[test]
    fn only_added_targets_are_served() {
        let store = with_targets(1, Arc::new(Telemetry::new()));
        let mut rendered = Rendered::default();
        let (target, rules) = (Labels::default(), Rules::default());
        process(
            b"only_here 1\n",
            Format::Text,
            &Settings::new(&target, &rules),
            &mut SeriesCache::default(),
            &mut rendered,
        )
        .expect("valid");
        let rendered = Arc::new(rendered);
        assert!(store.publish(7, rendered.clone()).is_none());
        let served = |s: &Latest| {
            String::from_utf8_lossy(&s.snapshot().body(Format::Text, false)).into_owned()
        };
        assert!(!served(&store).contains("only_here"));
        store.publish(0, rendered.clone());
        assert!(served(&store).contains("only_here 1\n"));
        store.remove(0);
        assert!(!served(&store).contains("only_here"));
    }
}
