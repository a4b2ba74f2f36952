//! The latest result of every target, merged into one exposition (one
//! block per metric family even when several targets share it, then relay's
//! own metrics; valid however the targets disagree, see [`super::merge`]) on
//! the first GET after a scrape finished, and kept until the next one
//! starts, so that further GETs share its bodies. Nobody asking (remote
//! write the only consumer) costs no merged body. With remote write,
//! relay's own metrics move between scrapes (batches are sent then), so a
//! GET of a snapshot older than a second merges again with them as they are
//! now. A large result is not held beside the one its next scrape renders:
//! that scrape renders over it, and GETs meanwhile get the compressed
//! bodies already made of it ([`Latest::begin_render`]).
//!
//! When targets are scraped for a GET is not decided here (see
//! `scrape::demand`): this holds what the scrapes published.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::body::{Asked, Snapshot};
use super::sink::Rendered;
use super::view::View;

/// Relay's own metrics as text 0.0.4 blocks, made when a snapshot is
/// merged: `run` owns the telemetry and hands this down.
pub type OwnMetrics = Box<dyn Fn() -> Rendered + Send + Sync>;

/// How old relay's own metrics in a served snapshot may be: they move
/// between scrapes (`process_*` always, remote write's while it runs), so a
/// snapshot older than this is merged again when served.
const OWN_METRICS_MAX_AGE: Duration = Duration::from_secs(1);

/// Results with at least this many bytes of lines are not kept while
/// their target's next scrape renders (see [`Latest::begin_render`]):
/// about 35,000 series. Below it, holding two results costs less than a GET
/// waiting would.
const HOLD_FROM: usize = 4 << 20;

/// A target's place: its latest result (None before its first, and while
/// its next scrape renders without it).
#[derive(Default)]
struct Slot {
    result: Option<Arc<Rendered>>,
    rendering: bool,
}

/// Shared between the scrape loops and the server. Targets come and go
/// with config reloads: each has a slot under a lasting id, in id order.
pub struct Latest {
    slots: Mutex<BTreeMap<u64, Slot>>,
    /// The merged snapshot and when it was built; None once a target's
    /// result changed (built again on the next GET).
    snapshot: RwLock<Option<(Arc<Snapshot>, Instant, u64)>>,
    /// Counts changes to the targets' results: a snapshot merged from an
    /// older count is not current.
    changes: AtomicU64,
    /// Held while merging, so concurrent GETs merge once.
    merging: Mutex<()>,
    /// While a slot renders: the compressed bodies answered of the
    /// snapshot in force when it began.
    held: Mutex<Vec<(Asked, Bytes)>>,
    /// GETs waiting for a rendering slot's result: while any does, no
    /// further result is taken out (so that they are answered).
    waiting: AtomicUsize,
    /// Wakes the GETs waiting when a result is published.
    published: tokio::sync::Notify,
    /// Results this large are not kept while their next scrape renders.
    hold_from: usize,
    /// External labels and where relay's own metrics go (see [`View`]).
    view: RwLock<Arc<View>>,
    own: OwnMetrics,
}

/// A slot renders: what is served now is held, or waits.
struct Rendering;

/// Counts a GET among the waiting for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The results the slots hold, in id order.
fn results(slots: &BTreeMap<u64, Slot>) -> Vec<Arc<Rendered>> {
    slots.values().flat_map(|s| s.result.clone()).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Latest {
    /// No targets yet; `own` makes relay's own metrics when they are served.
    pub fn new(own: OwnMetrics) -> Latest {
        Latest {
            slots: Mutex::new(BTreeMap::new()),
            snapshot: RwLock::new(None),
            changes: AtomicU64::new(0),
            merging: Mutex::new(()),
            held: Mutex::new(Vec::new()),
            waiting: AtomicUsize::new(0),
            published: tokio::sync::Notify::new(),
            hold_from: HOLD_FROM,
            view: RwLock::new(Arc::new(View::default())),
            own,
        }
    }

    /// With results of `bytes` or more not kept while their next scrape
    /// renders (tests take small ones out).
    #[cfg(test)]
    pub(crate) fn holding_from(mut self, bytes: usize) -> Latest {
        self.hold_from = bytes;
        self
    }

    /// A new target (started, or a reload added it); results published
    /// under an id not added are dropped.
    pub fn add(&self, id: u64) {
        lock(&self.slots).insert(id, Slot::default());
    }

    /// A target a reload removed: its series leave the snapshot.
    pub fn remove(&self, id: u64) {
        let mut slots = lock(&self.slots);
        if slots.remove(&id).is_some() {
            self.invalidate();
            self.settle(&slots);
        }
    }

    /// Publishes target `id`'s latest result (the snapshot is merged again
    /// on the next GET); returns the result it replaced, so its buffers can
    /// be reused.
    pub fn publish(&self, id: u64, output: Arc<Rendered>) -> Option<Arc<Rendered>> {
        let mut slots = lock(&self.slots);
        let replaced = slots.get_mut(&id).and_then(|slot| {
            slot.rendering = false;
            slot.result.replace(output)
        });
        self.invalidate();
        self.settle(&slots);
        replaced
    }

    /// Once no slot renders, the held bodies go; GETs waiting are woken.
    fn settle(&self, slots: &BTreeMap<u64, Slot>) {
        if !slots.values().any(|s| s.rendering) {
            lock(&self.held).clear();
        }
        self.published.notify_waiters();
    }

    /// Target `id`'s scrape is about to render. A result of
    /// [`HOLD_FROM`] bytes or more is taken out and returned, so that its
    /// buffers hold the new one: a million series' text is not held twice.
    /// Until the new result is published, GETs are answered with the
    /// compressed bodies already answered of the snapshot in force (what a
    /// Prometheus asks for again); a GET for another body waits for the
    /// publish. None when the result stays until replaced: small, or a GET
    /// waits (then none is taken out until it is answered); the merged
    /// snapshot is dropped all the same, see [`Latest::release_merged`].
    pub fn begin_render(&self, id: u64) -> Option<Arc<Rendered>> {
        let mut slots = lock(&self.slots);
        let slot = slots.get_mut(&id)?;
        let large = slot
            .result
            .as_ref()
            .is_some_and(|r| r.text.len() + r.created.len() >= self.hold_from);
        if !large || self.waiting.load(Ordering::Acquire) > 0 {
            drop(slots);
            self.release_merged();
            return None;
        }
        let taken = slot.result.take();
        slot.rendering = true;
        self.changes.fetch_add(1, Ordering::AcqRel);
        let merged = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((snapshot, _, _)) = merged {
            // Not current (another target published since) is still what
            // the last GET saw: never older than what was served.
            *lock(&self.held) = snapshot.answered();
        }
        taken
    }

    /// A scrape that took target `id`'s result out ended without
    /// publishing (cancelled, or it panicked): its slot stops waiting for
    /// it, so no GET waits for a publish that will not come.
    pub fn abandon_render(&self, id: u64) {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get_mut(&id).filter(|s| s.rendering) {
            slot.rendering = false;
            self.invalidate();
            self.settle(&slots);
        }
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
    /// that its new text is not made beside the old one's compressed
    /// bodies (and pieces that keep the old result from its reuse) that
    /// its publish replaces anyway. A GET before that publish merges again
    /// from the same results, with relay's own metrics as they are then.
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

    /// What `/metrics` answers to `asked`: the targets' latest results as
    /// they are, or while a large result's next scrape renders, the body
    /// held for it (else this waits for that scrape's publish).
    pub async fn answer(&self, asked: Asked) -> Bytes {
        let mut waiting = None;
        loop {
            let published = self.published.notified();
            tokio::pin!(published);
            published.as_mut().enable();
            match self.merged() {
                Ok(snapshot) => return snapshot.answer(asked),
                Err(Rendering) => {
                    let held = lock(&self.held);
                    if let Some((_, body)) = held.iter().find(|(k, _)| *k == asked) {
                        tracing::debug!(
                            "GET answered with the body held while a large result renders"
                        );
                        return body.clone();
                    }
                }
            }
            waiting.get_or_insert_with(|| Waiting::new(&self.waiting));
            published.await;
        }
    }

    /// The targets' latest results merged, for a reader that is not a GET
    /// (tests, benchmarks): while a slot renders, the results there are.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.merged()
            .unwrap_or_else(|Rendering| Arc::new(self.merge(&results(&lock(&self.slots)))))
    }

    /// The current snapshot, merged if there is none; Err while a slot
    /// renders without its result.
    fn merged(&self) -> Result<Arc<Snapshot>, Rendering> {
        if let Some(snapshot) = self.current() {
            return Ok(snapshot);
        }
        let _merging = lock(&self.merging);
        // Another GET may have merged it while this one waited.
        if let Some(snapshot) = self.current() {
            return Ok(snapshot);
        }
        let slots = lock(&self.slots);
        if slots.values().any(|s| s.rendering) {
            return Err(Rendering);
        }
        // Read under the slots' lock: a result published after this is a
        // later change, and the snapshot merged now is not current then.
        let changes = self.changes.load(Ordering::Acquire);
        let outputs = results(&slots);
        drop(slots);
        let snapshot = Arc::new(self.merge(&outputs));
        drop(outputs);
        let mut kept = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Kept only if still current: one merged across a slot's taking
        // out would hold that result from its reuse.
        if changes == self.changes.load(Ordering::Acquire) {
            *kept = Some((snapshot.clone(), Instant::now(), changes));
        }
        Ok(snapshot)
    }

    /// Sets what the served bodies add and leave out (at start and on
    /// every reload); the next GET merges again.
    pub fn set_view(&self, new: View) {
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        if **view != new {
            *view = Arc::new(new);
            drop(view);
            lock(&self.held).clear();
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
    use crate::config::NameEscaping;
    use crate::exposition::{check, render, Format, Labels};
    use crate::relabel::Rules;
    use crate::scrape::pipeline::{self, process, SeriesCache, Settings};
    use crate::telemetry::Telemetry;
    use std::future::Future;
    use std::task::Poll;

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

    /// `body` rendered as a result of a target labelled `target`.
    fn result_of(body: &str, target: &Labels<'static>) -> Arc<Rendered> {
        let mut rendered = Rendered::default();
        process(
            body.as_bytes(),
            Format::Text,
            &Settings::new(target, &Rules::default()),
            &mut SeriesCache::default(),
            &mut rendered,
        )
        .expect("valid");
        Arc::new(rendered)
    }

    /// A scraped Prometheus exposes the remote-write families relay also
    /// exposes: the merged body holds each family once and stays valid.
    #[test]
    fn a_target_with_relays_own_families_still_gives_a_valid_body() {
        let body = "# HELP prometheus_remote_storage_samples_total Total number of samples sent to remote storage.\n# TYPE prometheus_remote_storage_samples_total counter\nprometheus_remote_storage_samples_total{remote_name=\"a\",url=\"http://r/w\"} 7\n# HELP prometheus_remote_storage_sent_batch_duration_seconds Duration of send calls to the remote storage.\n# TYPE prometheus_remote_storage_sent_batch_duration_seconds histogram\nprometheus_remote_storage_sent_batch_duration_seconds_bucket{remote_name=\"a\",url=\"http://r/w\",le=\"1\"} 1\nprometheus_remote_storage_sent_batch_duration_seconds_bucket{remote_name=\"a\",url=\"http://r/w\",le=\"+Inf\"} 1\nprometheus_remote_storage_sent_batch_duration_seconds_sum{remote_name=\"a\",url=\"http://r/w\"} 0.5\nprometheus_remote_storage_sent_batch_duration_seconds_count{remote_name=\"a\",url=\"http://r/w\"} 1\n# HELP prometheus_remote_storage_highest_timestamp_in_seconds Highest timestamp.\n# TYPE prometheus_remote_storage_highest_timestamp_in_seconds gauge\nprometheus_remote_storage_highest_timestamp_in_seconds 1.7e+09\n";
        let target: Labels<'static> = [("instance", "p:9090"), ("job", "prometheus")]
            .into_iter()
            .collect();
        let rendered = result_of(body, &target);
        let telemetry = Arc::new(Telemetry::new());
        let store = with_targets(1, telemetry.clone());
        telemetry.remote_write_runs(true);
        let queue = telemetry.remote.queue("rw", "http://127.0.0.1:1/w");
        queue.samples.inc_by(3);
        queue.batch_duration.observe(0.2);
        store.publish(0, rendered);
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
        let store = with_targets(1, Arc::new(Telemetry::new()));
        store.publish(0, result(body));
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

    /// `body` rendered as a result of a target without labels.
    fn result(body: &str) -> Arc<Rendered> {
        result_of(body, &Labels::default())
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    fn unzipped(body: &[u8]) -> String {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(body), &mut out)
            .expect("gzip");
        out
    }

    /// A large result comes back to be rendered over, not held beside the
    /// new one; meanwhile the gzip already answered is served, a body not
    /// yet made waits for the publish, and while it waits nothing more is
    /// taken out.
    #[test]
    fn a_large_result_is_rendered_over_while_its_gzip_is_served() {
        let store = with_targets(1, Arc::new(Telemetry::new())).holding_from(1);
        store.publish(0, result("old 1\n"));
        let gzip = (Format::OpenMetrics, NameEscaping::AllowUtf8, true);
        let plain = (Format::Text, NameEscaping::AllowUtf8, false);
        let answer = |asked| match poll_once(std::pin::pin!(store.answer(asked))) {
            Poll::Ready(body) => body,
            Poll::Pending => panic!("{asked:?} waits"),
        };
        let first = answer(gzip);
        assert!(unzipped(&first).contains("old 1\n"));
        let mut taken = store.begin_render(0).expect("a large result is taken out");
        assert!(
            Arc::get_mut(&mut taken).is_some(),
            "its buffers are free to reuse"
        );
        let held = answer(gzip);
        assert_eq!(held.as_ptr(), first.as_ptr(), "the gzip answered before");
        let mut waits = std::pin::pin!(store.answer(plain));
        assert!(
            poll_once(waits.as_mut()).is_pending(),
            "no text body was made"
        );
        store.publish(0, result("new 2\n"));
        assert!(
            store.begin_render(0).is_none(),
            "a GET waits: the new result stays"
        );
        let Poll::Ready(body) = poll_once(waits.as_mut()) else {
            panic!("the publish answers the waiting GET");
        };
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("new 2\n") && !body.contains("old"), "{body}");
        let second = answer(gzip);
        assert!(store.begin_render(0).is_some(), "nobody waits any more");
        let held = answer(gzip);
        assert_eq!(held.as_ptr(), second.as_ptr());
        assert!(unzipped(&held).contains("new 2\n"));
        // A GET given up while it waits counts no more.
        let mut gone = Box::pin(store.answer(plain));
        assert!(poll_once(gone.as_mut()).is_pending());
        assert_eq!(store.waiting.load(Ordering::Acquire), 1);
        drop(gone);
        assert_eq!(store.waiting.load(Ordering::Acquire), 0);
    }

    /// A scrape that took a result out and ended without publishing lets
    /// the waiting GETs go: they get what there is.
    #[test]
    fn an_abandoned_render_wakes_the_waiting() {
        let store = with_targets(1, Arc::new(Telemetry::new())).holding_from(1);
        store.publish(0, result("old 1\n"));
        assert!(store.begin_render(0).is_some());
        let plain = (Format::Text, NameEscaping::AllowUtf8, false);
        let mut waits = std::pin::pin!(store.answer(plain));
        assert!(poll_once(waits.as_mut()).is_pending());
        store.abandon_render(0);
        let Poll::Ready(body) = poll_once(waits.as_mut()) else {
            panic!("still waiting after the render was abandoned");
        };
        assert!(!String::from_utf8_lossy(&body).contains("old 1"));
        store.publish(0, result("new 2\n"));
        store.abandon_render(0);
        assert!(
            String::from_utf8_lossy(&store.snapshot().body(Format::Text, false))
                .contains("new 2\n"),
            "a published result is not abandoned"
        );
    }

    /// A small result stays in the snapshot while its next scrape renders.
    #[test]
    fn a_small_result_stays_while_the_next_one_renders() {
        let store = with_targets(1, Arc::new(Telemetry::new()));
        store.publish(0, result("small 1\n"));
        assert!(store.begin_render(0).is_none());
        let asked = (Format::Text, NameEscaping::AllowUtf8, false);
        let Poll::Ready(body) = poll_once(std::pin::pin!(store.answer(asked))) else {
            panic!("a GET waits");
        };
        assert!(String::from_utf8_lossy(&body).contains("small 1\n"));
    }

    /// A scrape about to render releases the merged snapshot; a GET
    /// before its publish gets the same results merged again.
    #[test]
    fn a_released_snapshot_is_merged_again_from_the_same_results() {
        let store = with_targets(1, Arc::new(Telemetry::new()));
        store.publish(0, result("kept 1\n"));
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
        let rendered = result("only_here 1\n");
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
