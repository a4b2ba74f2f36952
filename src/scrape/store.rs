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
//! While nobody has asked for /metrics for a while ([`Store::serving`]), a
//! scrape loop publishes its body instead of rendering it: the next GET
//! renders it (the same pipeline, so the same lines), and from then on the
//! loops render as they scrape again. A relay that only remote-writes holds
//! one body per target, not two rendered copies of it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::merge;
use super::pipeline::{self, Rendered, SeriesCache};
use crate::config::ScrapeConfig;
use crate::exposition::{Format, Labels};
use crate::serve::Snapshot;
use crate::telemetry::Telemetry;

struct Slot {
    name: String,
    output: Option<Arc<Rendered>>,
    /// The scrape's body when it was not rendered (its `output` then holds
    /// only the `up` and `scrape_*` series, which come after it).
    deferred: Option<Deferred>,
    ever_up: bool,
}

/// A successful scrape's body, not rendered yet, and what renders it.
pub struct Deferred {
    pub body: Arc<Vec<u8>>,
    pub format: Format,
    pub job: Arc<ScrapeConfig>,
    pub target_labels: Labels<'static>,
    /// The body rendered, once a GET asked for it.
    rendered: Option<Arc<Rendered>>,
}

impl Deferred {
    pub fn new(
        body: Arc<Vec<u8>>,
        format: Format,
        job: Arc<ScrapeConfig>,
        target_labels: Labels<'static>,
    ) -> Deferred {
        Deferred {
            body,
            format,
            job,
            target_labels,
            rendered: None,
        }
    }

    /// The body's lines as the scrape would have rendered them (it passed
    /// the pipeline then, so it passes again; a fresh cache gives the same
    /// lines, first duplicate winning).
    fn render(&mut self) -> Arc<Rendered> {
        let (body, format) = (&self.body, self.format);
        let (job, labels) = (&self.job, &self.target_labels);
        self.rendered
            .get_or_insert_with(|| {
                let mut out = Rendered::default();
                let settings = super::settings(job, labels, super::cache::NEVER);
                if let Err(e) =
                    pipeline::process(body, format, &settings, &mut SeriesCache::default(), &mut out)
                {
                    tracing::error!(error = %e, "a scraped body kept for /metrics did not render again");
                    out.clear_samples();
                }
                Arc::new(out)
            })
            .clone()
    }
}

/// What a publish replaced, for its buffers to be reused.
#[derive(Default)]
pub struct Replaced {
    pub output: Option<Arc<Rendered>>,
    pub body: Option<Arc<Vec<u8>>>,
}

/// How long after the last GET of /metrics scrapes still render as they go.
const SERVING_FOR: Duration = Duration::from_secs(600);

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
                    deferred: None,
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
            last_get: AtomicU64::new(0),
            started: Instant::now(),
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
                deferred: None,
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
        self.publish_deferred(id, output, None, up).output
    }

    /// Publishes a result whose body is rendered on the next GET (see
    /// [`Store::serving`]); `output` holds what follows the body's lines.
    pub fn publish_deferred(
        &self,
        id: u64,
        output: Arc<Rendered>,
        deferred: Option<Deferred>,
        up: bool,
    ) -> Replaced {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let replaced = slots
            .get_mut(&id)
            .map(|slot| {
                slot.ever_up |= up;
                Replaced {
                    output: slot.output.replace(output),
                    body: std::mem::replace(&mut slot.deferred, deferred).map(|d| d.body),
                }
            })
            .unwrap_or_default();
        self.invalidate();
        drop(slots);
        replaced
    }

    /// Whether /metrics was asked for lately: scrapes then render as they
    /// go, so that a GET finds their lines ready.
    pub fn serving(&self) -> bool {
        let last = self.last_get.load(Ordering::Relaxed);
        last != 0 && self.millis().saturating_sub(last - 1) < SERVING_FOR.as_millis() as u64
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
        self.last_get
            .store(self.millis().saturating_add(1), Ordering::Relaxed);
        if let Some(snapshot) = self.current() {
            return snapshot;
        }
        let _merging = self.merging.lock().unwrap_or_else(PoisonError::into_inner);
        // Another GET may have merged it while this one waited.
        if let Some(snapshot) = self.current() {
            return snapshot;
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        // Read under the slots' lock: a result published after this is a
        // later change, and the snapshot merged now is not current then.
        let changes = self.changes.load(Ordering::Acquire);
        let mut outputs: Vec<Arc<Rendered>> = Vec::with_capacity(slots.len());
        for slot in slots.values_mut() {
            if let Some(deferred) = slot.deferred.as_mut() {
                outputs.push(deferred.render());
            }
            outputs.extend(slot.output.clone());
        }
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
    use crate::scrape::pipeline::{process, FamilyBlock, SeriesCache, Settings};

    /// A body kept while nobody GETs is served as the scrape would have
    /// rendered it (relabeled, target labels, duplicates dropped), before the
    /// report series that followed it; the GET turns rendering at scrape on.
    #[test]
    fn a_deferred_body_is_served_as_the_scrape_would_have_rendered_it() {
        let yaml = "scrape_configs:\n  - job_name: app\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'drop_.*', action: drop}\n";
        let job = Arc::new(
            crate::config::from_yaml_str(yaml)
                .expect("config")
                .config
                .scrape_configs[0]
                .clone(),
        );
        let target: Labels<'static> = [("instance", "a:1"), ("job", "app")].into_iter().collect();
        let body = "# HELP c Things.\n# TYPE c counter\nc_total{b=\"2\",a=\"1\"} 3\nc_total{b=\"2\",a=\"1\"} 4\ndrop_me 1\ng{instance=\"x\"} 2 1700000000000\n";
        let report = "# TYPE up gauge\nup{instance=\"a:1\",job=\"app\"} 1\n";
        let render = |text: &str| {
            let mut out = Rendered::default();
            let settings = crate::scrape::settings(&job, &target, crate::scrape::cache::NEVER);
            process(
                text.as_bytes(),
                Format::Text,
                &settings,
                &mut SeriesCache::default(),
                &mut out,
            )
            .expect("valid");
            out
        };
        // What a scrape that renders publishes: the body's lines, then the report's.
        let mut whole = render(body);
        let tail = render(report);
        let offset = whole.text.len();
        whole.text.extend_from_slice(&tail.text);
        whole
            .families
            .extend(tail.families.iter().map(|f| FamilyBlock {
                lines: f.lines.start + offset..f.lines.end + offset,
                ..f.clone()
            }));
        let rendering = Store::new(vec!["app/a:1".into()]);
        rendering.publish(0, Arc::new(whole), true);

        let deferring = Store::new(vec!["app/a:1".into()]);
        assert!(!deferring.serving(), "nobody asked yet");
        let kept = Deferred::new(
            Arc::new(body.as_bytes().to_vec()),
            Format::Text,
            job.clone(),
            target.clone(),
        );
        deferring.publish_deferred(0, Arc::new(tail), Some(kept), true);
        for format in [Format::Text, Format::OpenMetrics] {
            let want = rendering.snapshot().body(format, false);
            let got = deferring.snapshot().body(format, false);
            let (want, got) = (
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&got),
            );
            assert_eq!(got, want, "{format:?}");
            assert!(
                got.contains("c_total{a=\"1\",b=\"2\",instance=\"a:1\",job=\"app\"} 3\n"),
                "{got}"
            );
            assert!(!got.contains("drop_me"), "{got}");
        }
        assert!(deferring.serving(), "a GET turns rendering at scrape on");
        // A later publish that renders gives the kept body back for reuse.
        let replaced = deferring.publish_deferred(0, Arc::new(Rendered::default()), None, true);
        assert_eq!(
            replaced.body.as_deref().map(Vec::as_slice),
            Some(body.as_bytes())
        );
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
