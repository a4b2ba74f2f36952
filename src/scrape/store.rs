//! The latest result of every target, merged into one exposition (one
//! block per metric family even when several targets share it, then relay's
//! own metrics; valid however the targets disagree, see [`merge`]) on the
//! first GET after a scrape finished, and kept until the next one
//! finishes, so that further GETs are a memory copy. Nobody asking
//! (remote write the only consumer) costs no merged copy. With remote write,
//! relay's own metrics move between scrapes (batches are sent then), so a
//! GET of a snapshot older than a second merges again with them as they are
//! now.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::merge;
use super::pipeline::{self, Rendered};
use crate::exposition::Format;
use crate::serve::Snapshot;
use crate::telemetry::Telemetry;

struct Slot {
    name: String,
    output: Option<Arc<Rendered>>,
    ever_up: bool,
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
    pub telemetry: Telemetry,
    /// Set when remote write runs: its metrics move between scrapes.
    own_metrics_move: AtomicBool,
}

/// How old relay's own metrics in a served snapshot may be.
const OWN_METRICS_MAX_AGE: Duration = Duration::from_secs(1);

impl Store {
    /// A store for targets named `job/instance`, with ids 0, 1, ... in order.
    pub fn new(target_names: Vec<String>) -> Store {
        let slots = target_names
            .into_iter()
            .enumerate()
            .map(|(id, name)| {
                let slot = Slot {
                    name,
                    output: None,
                    ever_up: false,
                };
                (id as u64, slot)
            })
            .collect();
        Store {
            slots: Mutex::new(slots),
            snapshot: RwLock::new(None),
            changes: AtomicU64::new(0),
            merging: Mutex::new(()),
            telemetry: Telemetry::new(),
            own_metrics_move: AtomicBool::new(false),
        }
    }

    /// A new target (a reload added it): not ready until its first scrape.
    pub fn add(&self, id: u64, name: String) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.insert(
            id,
            Slot {
                name,
                output: None,
                ever_up: false,
            },
        );
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
    pub fn publish(&self, id: u64, output: Arc<Rendered>, up: bool) -> Option<Arc<Rendered>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = slots.get_mut(&id).and_then(|slot| {
            slot.ever_up |= up;
            slot.output.replace(output)
        });
        self.invalidate();
        drop(slots);
        previous
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
            && (!self.own_metrics_move.load(Ordering::Relaxed)
                || built.elapsed() < OWN_METRICS_MAX_AGE);
        fresh.then(|| snapshot.clone())
    }

    /// Says that relay's own metrics change between scrapes (remote write
    /// runs), so a snapshot over a second old is merged again when served.
    pub fn own_metrics_move(&self) {
        self.own_metrics_move.store(true, Ordering::Relaxed);
    }

    /// What `/metrics` serves now.
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

    /// The targets that have not had a successful scrape yet (ready when empty).
    pub fn waiting_for(&self) -> Vec<String> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .values()
            .filter(|s| !s.ever_up)
            .map(|s| s.name.clone())
            .collect()
    }

    /// The snapshot: the text body, and where each family's lines are in it
    /// (so OpenMetrics is written from the same lines, not parsed again).
    fn merge(&self, outputs: &[Arc<Rendered>]) -> Snapshot {
        // prometheus-client writes OpenMetrics; re-render it as text 0.0.4.
        let own = pipeline::convert(
            self.telemetry.openmetrics().as_bytes(),
            Format::OpenMetrics,
            Format::Text,
        )
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "relay's own metrics did not parse; leaving them out");
            Rendered::default()
        });
        let all: Vec<&Rendered> = outputs.iter().map(|o| o.as_ref()).chain([&own]).collect();
        let (text, layout) = merge::merge(&all);
        Snapshot::new(text, layout)
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
        let queue = store.telemetry.remote.queue("rw", "http://127.0.0.1:1/w");
        queue.samples.inc_by(3);
        queue.batch_duration.observe(0.2);
        store.publish(0, Arc::new(rendered), true);
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
}
